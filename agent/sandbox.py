"""Sandboxing shell commands with bubblewrap.

Under bwrap a command sees only what agent/sandbox_view.py lists: the system read-only, the
dirs a build needs read-only, its worktree (and any `extra_rw`) writable, a private /tmp and
HOME; not the operator's home, other homes, /run, /var or the data dir. It gets its own PID
namespace (so killing bwrap takes every descendant with it) and, unless the policy allows
it, no network. Its environment carries no secret, no secret's value under another name,
and no pointer to the operator's agents and buses. Without bwrap, commands run plainly:
callers must treat that as unsandboxed (warn and ask) — `run_command` does it for them.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import sandbox_view
from .errors import ToolError
from .redact import redact_registered
from .sandbox_view import SANDBOX_HOME

if TYPE_CHECKING:
    from .procs import Completed
    from .tools.base import Grant, ToolContext

__all__ = ["SANDBOX_HOME", "bwrap_available", "sandbox_status", "sandbox_argv",
           "child_env", "take_grant", "run_command"]  # fmt: skip

# Environment variables never handed to agent commands: a prompt-injected command must not
# be able to read the operator's API keys...
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION", re.I)
# ...nor find the operator's agents, buses, displays and terminals (an ssh-agent or the
# Secret Service hands out keys to whoever connects; a display or a tmux socket takes
# keystrokes), nor our own data dir.
_POINTER_NAME = re.compile(
    r"^(?:DBUS_\w+|SSH_AUTH_SOCK|SSH_AGENT_PID|GPG_AGENT_INFO|GNOME_KEYRING_\w+|"
    r"XDG_RUNTIME_DIR|XDG_(?:CONFIG|DATA|CACHE|STATE)_HOME|DISPLAY|WAYLAND_DISPLAY|"
    r"XAUTHORITY|TMUX|TMUX_PANE|STY|KRB5CCNAME|DOCKER_HOST|SWAYSOCK|I3SOCK|NVIM|"
    r"NVIM_LISTEN_ADDRESS|KITTY_LISTEN_ON|VSCODE_\w+|\w*ASKPASS|LIVHANA_\w+)$|_SOCK$|_SOCKET$",
    re.I,
)
# A value that is an address of such a socket, whatever its name.
_POINTER_VALUE = re.compile(r"^unix:|/run/user/|^@")


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
    command: str,
    worktree: Path,
    *,
    network: bool,
    extra_rw: list[Path] | None = None,
    data_dir: Path | None = None,
    workspace: Path | None = None,
    expose: list[str] | tuple[str, ...] = (),
    operator_view: bool = False,
) -> list[str]:
    """The argv that runs `command` (bash) confined to `worktree`; plain bash without bwrap.

    `workspace` is the operator's project the engine made the worktree from: its git dir is
    shown (read-only) so git works inside. `operator_view` is for the operator's own deploy
    command: it sees / as the operator does (sandbox_view.operator_view)."""
    if not bwrap_available():
        return ["bash", "-c", command]
    real = os.path.realpath(worktree)
    rw = [os.path.realpath(p) for p in extra_rw or []]
    data = str(data_dir) if data_dir else None
    if operator_view:
        view = sandbox_view.operator_view(real, data_dir=data, extra_rw=rw)
    else:
        git_dir = sandbox_view.git_dir_for(workspace, real)
        ws = str(workspace) if workspace else None
        view = sandbox_view.build_view(
            real, data_dir=data, workspace=ws, git_dir=git_dir, extra_rw=rw, expose=expose
        )
    argv = ["bwrap", *view.args]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not network:
        argv.append("--unshare-net")
    # die-with-parent: killing bwrap (a stop) kills the PID namespace and so every child.
    # new-session: the command cannot inject keystrokes into the operator's terminal.
    argv += ["--die-with-parent", "--new-session", "--chdir", real]
    for key, value in sandbox_view.tool_env().items():
        argv += ["--setenv", key, value]
    argv += ["--setenv", "HOME", SANDBOX_HOME, "--setenv", "TMPDIR", "/tmp"]
    return argv + ["--", "bash", "-c", command]


def child_env(*, keep_secrets: bool = False) -> dict[str, str]:
    """The environment for agent commands: the operator's, minus anything secret-looking,
    any value that is (or holds, or encodes) a known secret, and pointers to sockets."""
    if keep_secrets:
        return dict(os.environ)
    return {k: v for k, v in os.environ.items() if not _withheld(k, v)}


def _withheld(name: str, value: str) -> bool:
    if _SECRET_NAME.search(name) or _POINTER_NAME.search(name) or _POINTER_VALUE.search(value):
        return True
    # Known secrets under any name (MY_CONF=<the API key>), and token shapes (a URL with a
    # password): whatever a redactor of this process would change.
    return redact_registered(value) != value


def take_grant(ctx: ToolContext, tool: str) -> Grant | None:
    """The approval given to this step's call of `tool`, if any (consumed: it never covers
    a later command)."""
    grant = ctx.state.grant
    if grant is None or grant.tool != tool or grant.step != ctx.state.step:
        return None
    ctx.state.grant = None
    return grant


async def run_command(
    ctx: ToolContext,
    command: str,
    *,
    network: bool,
    timeout_s: float,
    keep_secrets: bool = False,
    grant: Grant | None = None,
) -> Completed:
    """Run `command` in the task's worktree, sandboxed when possible.

    Unsandboxed: a `warning` event, and the operator is asked (or, with sandbox.require,
    refused) unless `grant` (the policy's approval of this very call, whose summary said
    UNSANDBOXED) already covers it. Raises ToolError("denied by <who decided>") on a no.
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
            raise ToolError(f"denied by {ctx.state.decided_by or 'operator'}: not run")
    argv = sandbox_argv(
        command,
        ctx.root,
        network=network,
        data_dir=ctx.config.data_dir,
        workspace=ctx.workspace,
        expose=ctx.config.sandbox.expose,
        operator_view=keep_secrets,
    )
    env = child_env(keep_secrets=keep_secrets)
    return await ctx.procs.run(argv, cwd=ctx.root, timeout_s=timeout_s, env=env)
