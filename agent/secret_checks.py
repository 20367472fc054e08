"""Does a stored secret work? One cheap, real check per known secret (the `secrets test`
command and the cockpit's secrets dialog):

- the Anthropic key: the model API's cheapest authenticated request (list one model);
- the BigQuery service account: a dry run of `SELECT 1` (free) in the configured project;
- the API signing secret: long enough, and an HS256 token signed with it verifies;
- anything else: that it is stored and readable (there is nothing to call).

Each answers (ok, one line). A check never prints or keeps the value.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from . import secrets
from .errors import CockpitError

MIN_JWT_SECRET_BYTES = 32  # HS256 wants a key at least as long as its hash


async def check_secret(name: str, config: Any, value: str | None = None) -> tuple[bool, str]:
    """Check `value` (default: what the keyring holds for `name`)."""
    if value is None:
        value = await asyncio.to_thread(secrets.get_secret, name)
    if not value:
        return False, f"{name} is not set"
    try:
        if name == secrets.ANTHROPIC_KEY_NAME:
            return await _anthropic(value, config)
        if name == secrets.BIGQUERY_CREDENTIALS_NAME:
            return await asyncio.to_thread(_bigquery, value, config)
        if name == secrets.JWT_SECRET_NAME:
            return _jwt(value)
    except CockpitError as exc:
        return False, str(exc)
    except Exception as exc:  # a library's own error: its first line
        text = str(exc).strip().splitlines()
        return False, f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
    return True, f"{name} is stored ({len(value)} characters); it has no test of its own"


async def _anthropic(key: str, config: Any) -> tuple[bool, str]:
    from .models.anthropic import AnthropicModel

    model = AnthropicModel(config.engine.model, api_key=key, max_retries=0, timeout_s=20.0)
    try:
        seconds = await asyncio.wait_for(model.ping(), 25)
    finally:
        await model.aclose()
    return True, f"the Anthropic API accepted the key ({seconds * 1000:.0f} ms)"


def _bigquery(value: str, config: Any) -> tuple[bool, str]:
    from .export.warehouse import Warehouse
    from .gcp import bigquery_client, error_text, parse_service_account

    info = parse_service_account(value)
    cfg = copy.copy(config.bigquery)
    project = cfg.project or str(info.get("project_id") or "")
    started = time.perf_counter()
    warehouse = Warehouse(cfg, client=bigquery_client(project, cfg.api_endpoint, info))
    try:
        warehouse.dry_run()
    except Exception as exc:
        return False, f"BigQuery refused {info['client_email']}: {error_text(exc)}"
    ms = (time.perf_counter() - started) * 1000
    return True, (f"BigQuery accepted {info['client_email']} in project {project} "
                  f"(a dry run, {ms:.0f} ms)")  # fmt: skip


def _jwt(value: str) -> tuple[bool, str]:
    import jwt

    size = len(value.encode())
    if size < MIN_JWT_SECRET_BYTES:
        return False, (f"{secrets.JWT_SECRET_NAME} is {size} bytes: HS256 needs at least "
                       f"{MIN_JWT_SECRET_BYTES} (a random one: `openssl rand -hex 32`)")  # fmt: skip
    token = jwt.encode({"sub": "secrets-test", "exp": int(time.time()) + 60}, value, "HS256")
    claims: dict[str, Any] = jwt.decode(token, value, algorithms=["HS256"])
    if claims.get("sub") != "secrets-test":
        return False, "a token signed with it did not verify"
    return True, f"signs and verifies HS256 tokens ({size} bytes)"
