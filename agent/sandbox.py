"""Sandboxing shell commands with bubblewrap.

Under bwrap a command sees `/` read-only, only its worktree (and any `extra_rw`) writable,
a private /tmp, its own PID namespace (so killing bwrap takes every descendant with it) and,
unless the policy allows it, no network. Without bwrap, commands run plainly: callers must
treat that as unsandboxed (warn and ask) — `run_command` does it for them.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ToolError

if TYPE_CHECKING:
    from .procs import Completed
    from .tools.base import ToolContext

# The HOME commands see: inside the private /tmp, so dotfiles and caches never land in the
# worktree (they would show up as task changes) and vanish with the sandbox.
SANDBOX_HOME = "/tmp/home"

# Toolchains found through $HOME (pyenv shims, rustup, cargo, go) keep working after HOME moves.
_TOOL_HOMES = {
    "PYENV_ROOT": ".pyenv",
    "RUSTUP_HOME": ".rustup",
    "CARGO_HOME": ".cargo",
    "GOPATH": "go",
    "NVM_DIR": ".nvm",
}

# ctx.state key of an approval given to this step's tool call (set by agent/approvals.py):
# {"step", "tool", "by", "network"}. Taken once, so it never covers a later command.
GRANT = "approved_call"

# Environment variables never handed to agent commands: a prompt-injected command must not
# be able to read the operator's API keys.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)


@functools.cache
def _probe() -> tuple[bool, str, str]:
    """(available, version, reason). Runs bwrap once: being on PATH is not enough (user
    namespaces may be disabled, or setuid stripped)."""
    path = shutil.which("bwrap")
    if not path:
        return False, "", "bubblewrap (bwrap) is not installed"
    try:
        version = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        probe = subprocess.run(
            [path, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid"]
            + ["--unshare-net", "--die-with-parent", "--", "true"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, "", f"bwrap could not be started: {exc}"
    if probe.returncode != 0:
        detail = probe.stderr.strip().splitlines()[-1:] or [f"exit {probe.returncode}"]
        return False, version, f"bwrap is installed but cannot create a sandbox: {detail[0]}"
    return True, version, "commands run under bubblewrap"


def bwrap_available() -> bool:
    return _probe()[0]


def sandbox_status() -> dict[str, Any]:
    """For System Health: is the sandbox live, which version, and why not."""
    available, version, reason = _probe()
    return {"available": available, "version": version, "reason": reason}


def sandbox_argv(
    command: str, worktree: Path, *, network: bool, extra_rw: list[Path] | None = None
) -> list[str]:
    """The argv that runs `command` (bash) confined to `worktree`; plain bash without bwrap."""
    if not bwrap_available():
        return ["bash", "-c", command]
    real = os.path.realpath(worktree)
    argv = ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    # /tmp first, then the binds: a worktree that lives under /tmp must stay visible.
    argv += ["--tmpfs", "/tmp", "--dir", SANDBOX_HOME]
    if common := _git_common_dir(real):  # a git worktree: git must find its repo (read-only)
        argv += ["--ro-bind", common, common]
    for path in _interpreter_dirs():  # a venv under /tmp (e.g. a CI checkout) stays usable
        argv += ["--ro-bind", path, path]
    for path in [real, *(os.path.realpath(p) for p in extra_rw or [])]:
        argv += ["--bind", path, path]  # same path inside and out, so paths in output match
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    if not network:
        argv.append("--unshare-net")
    # die-with-parent: killing bwrap (a stop) kills the PID namespace and so every child.
    # new-session: the command cannot inject keystrokes into the operator's terminal.
    argv += ["--die-with-parent", "--new-session", "--chdir", real]
    for key, value in _tool_homes().items():
        argv += ["--setenv", key, value]
    argv += ["--setenv", "HOME", SANDBOX_HOME, "--setenv", "TMPDIR", "/tmp"]
    return argv + ["--", "bash", "-c", command]


def _interpreter_dirs() -> list[str]:
    """Where our own Python lives, when the private /tmp would hide it: commands such as
    the fallback `python -m pytest` run with this interpreter."""
    dirs = {
        os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, os.path.dirname(sys.executable))
    }
    return sorted(d for d in dirs if d == "/tmp" or d.startswith("/tmp/"))


def _git_common_dir(worktree: str) -> str | None:
    """The repository a `git worktree` belongs to (its `.git` is a file naming it), so that
    git works inside the sandbox even when the repository lives under the hidden /tmp."""
    dotgit = Path(worktree) / ".git"
    try:
        match = re.match(r"gitdir:\s*(.+)", dotgit.read_text(errors="replace"))
    except OSError:  # no .git, or a .git directory: already inside the worktree bind
        return None
    if not match:
        return None
    gitdir = Path(worktree) / match.group(1).strip()  # an absolute gitdir stays absolute
    try:
        common = gitdir / (gitdir / "commondir").read_text().strip()
    except OSError:
        common = gitdir
    return os.path.realpath(common) if common.is_dir() else None


def _tool_homes() -> dict[str, str]:
    home = Path.home()
    found: dict[str, str] = {}
    for var, sub in _TOOL_HOMES.items():
        if var not in os.environ and (home / sub).is_dir():
            found[var] = str(home / sub)
    return found


def child_env(*, keep_secrets: bool = False) -> dict[str, str]:
    """The environment for agent commands: the operator's, minus anything secret-looking."""
    if keep_secrets:
        return dict(os.environ)
    return {k: v for k, v in os.environ.items() if not _SECRET_NAME.search(k)}


def take_grant(ctx: ToolContext, tool: str) -> dict[str, Any] | None:
    """The approval given to this step's call of `tool`, if any (consumed)."""
    grant = ctx.state.get(GRANT)
    if not grant or grant.get("tool") != tool or grant.get("step") != ctx.state.get("step"):
        return None
    ctx.state.pop(GRANT, None)
    return dict(grant)


async def run_command(
    ctx: ToolContext,
    command: str,
    *,
    network: bool,
    timeout_s: float,
    keep_secrets: bool = False,
    grant: dict[str, Any] | None = None,
) -> Completed:
    """Run `command` in the task's worktree, sandboxed when possible.

    Unsandboxed: a `warning` event, and the operator is asked (or, with sandbox.require,
    refused) unless `grant` (the policy's approval of this very call, whose summary said
    UNSANDBOXED) already covers it. Raises ToolError("denied by operator") on a no.
    """
    sandboxed = bwrap_available()
    if not sandboxed:
        reason = _probe()[2]
        if ctx.config.sandbox.require:
            raise ToolError(f"refused: sandbox required but unavailable ({reason})")
        await ctx.emit("warning", message=f"UNSANDBOXED command: {reason}", command=command)
        detail = {"command": command, "sandboxed": False, "reason": reason, "network": network}
        # The policy may already have asked the operator about this very call: once is enough.
        if grant is None and not await ctx.ask(
            "command", f"run UNSANDBOXED: {command[:200]}", detail
        ):
            raise ToolError("denied by operator")
    argv = sandbox_argv(command, ctx.root, network=network)
    env = child_env(keep_secrets=keep_secrets)
    return await ctx.procs.run(argv, cwd=ctx.root, timeout_s=timeout_s, env=env)
