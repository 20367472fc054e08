"""Telling the operator that a scheduled run produced proposals or failed, beyond the toast
an open cockpit shows (it tails the store): a desktop notification (`notify-send`, when
installed) and a webhook (a JSON POST), both optional, in config `[notify]`.

A webhook URL may carry a token: it is never logged, only its host. Nothing here imports
the config module (the config checks a webhook URL with `check_webhook`)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)


def check_webhook(url: str) -> str | None:
    """Why `url` cannot be a webhook, or None."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL"
    return None


def worth_telling(ended: dict[str, Any]) -> bool:
    return ended.get("outcome") == "failed" or bool(ended.get("proposals"))


def message(ended: dict[str, Any]) -> tuple[str, str]:
    """(title, body) of the notification."""
    job = ended.get("job", "?")
    if ended.get("outcome") == "failed":
        return f"Liv Hana: the {job} run failed", str(ended.get("error") or "")[:300]
    proposals = ended.get("proposals") or []
    titles = "; ".join(str(p.get("title", "")) for p in proposals[:3])
    more = f" (and {len(proposals) - 3} more)" if len(proposals) > 3 else ""
    return (f"Liv Hana: {job} proposes {len(proposals)} change(s)",
            f"{titles}{more}. Decide in the cockpit (7) or with `livhana-cockpit proposals`.")


def payload(ended: dict[str, Any]) -> dict[str, Any]:
    title, body = message(ended)
    return {
        "source": "livhana-cockpit", "job": ended.get("job"), "outcome": ended.get("outcome"),
        "run_id": ended.get("run_id"), "scheduled_for": ended.get("scheduled_for"),
        "error": ended.get("error") or None, "report": ended.get("report"),
        "summary": ended.get("summary") or "", "title": title, "text": body,
        "proposals": [{k: p.get(k) for k in ("id", "title", "impact", "effort")}
                      for p in ended.get("proposals") or []],
    }  # fmt: skip


async def desktop(title: str, body: str) -> bool:
    exe = shutil.which("notify-send")
    if exe is None:
        return False
    try:
        proc = await asyncio.create_subprocess_exec(
            exe, "--app-name=livhana-cockpit", title, body,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        return await asyncio.wait_for(proc.wait(), 10) == 0
    except (OSError, TimeoutError):
        return False


async def webhook(url: str, body: dict[str, Any], timeout_s: float) -> str:
    """"" when delivered, else why not (one line, without the URL's secrets)."""
    import httpx

    host = urlsplit(url).hostname or "?"
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=False) as client:
            response = await client.post(url, json=body)
    except httpx.HTTPError as exc:
        return f"webhook to {host} failed: {type(exc).__name__}"
    if response.status_code >= 300:
        return f"webhook to {host} answered {response.status_code}"
    return ""


async def announce(settings: Any, ended: dict[str, Any], redact: Any = None) -> list[str]:
    """Send what `settings` ([notify]) asks for (`redact`: the engine's, over everything
    sent); what was sent, or why not, for the log."""
    if not worth_telling(ended):
        return []
    if redact is not None:
        ended = redact(ended)
    done = []
    title, body = message(ended)
    if settings.desktop:
        done.append("desktop" if await desktop(title, body) else "desktop: notify-send missing")
    if settings.webhook:
        problem = await webhook(settings.webhook, payload(ended), settings.timeout_s)
        if problem:
            log.warning("%s", problem)
        done.append(problem or "webhook")
    return done
