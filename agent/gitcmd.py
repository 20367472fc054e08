"""Running git from asyncio, with errors as one-line messages."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from .errors import CockpitError

# No hooks, no signing prompts, no pager, no editor: the agent's git must never block.
_SAFE = ["-c", "core.hooksPath=/dev/null", "-c", "commit.gpgsign=false", "-c", "core.pager=cat"]
_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_AUTHOR_NAME": "Liv Hana",
    "GIT_AUTHOR_EMAIL": "agent@livhana.local",
    "GIT_COMMITTER_NAME": "Liv Hana",
    "GIT_COMMITTER_EMAIL": "agent@livhana.local",
}


class GitError(CockpitError):
    pass


async def git(*args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        "git",
        *_SAFE,
        *args,
        cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, **_ENV, **(env or {})},
    )
    out, err = await proc.communicate()
    if check and proc.returncode != 0:
        message = (err or out).decode(errors="replace").strip().splitlines()
        raise GitError(f"git {args[0]} failed: {message[-1] if message else proc.returncode}")
    return out.decode(errors="replace")


async def is_git_repo(path: Path) -> bool:
    proc = await asyncio.create_subprocess_exec(
        "git",
        "rev-parse",
        "--is-inside-work-tree",
        cwd=str(path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    if b"dubious ownership" in err:
        # Treating it as a plain folder would silently lose git's safety net: say so.
        raise GitError(
            f"git refuses {path} (owned by another user); if you trust it, run: "
            f"git config --global --add safe.directory {path}"
        )
    return out.strip() == b"true"
