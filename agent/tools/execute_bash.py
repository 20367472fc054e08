"""execute_bash: one shell command in the task's worktree, sandboxed, in its own process group."""

from __future__ import annotations

import math
from typing import Any

from .. import sandbox
from ..errors import ToolError
from ..procs import Completed
from .base import ToolContext, ToolResult, decode, string_arg, truncate


class ExecuteBash:
    name = "execute_bash"
    kind = "exec"
    description = (
        "Run a bash command in the workspace root (sandboxed: only the workspace is writable, "
        "no network unless the policy allows it). Returns the exit code, stdout and stderr. "
        "Long-running commands are killed at the timeout, together with their children."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "command": {"type": "string", "description": "the bash command line"},
            "timeout_s": {
                "type": "integer",
                "minimum": 1,
                "description": "seconds before the command is killed (capped by configuration)",
            },
        },
        "required": ["command"],
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        command = string_arg(args, "command", limit=100_000)
        timeout = clamp_timeout(args.get("timeout_s"), ctx.config.engine.command_timeout_s)
        grant = sandbox.take_grant(ctx, self.name)
        network = ctx.config.sandbox.network
        if grant and grant.network and not network:
            # The operator said yes to a request that asked because of network use: that
            # one command gets the network (a rule's yes, approve=auto, does not).
            network = True
            await ctx.emit(
                "warning",
                message=f"network allowed for this command only: approved by {grant.by}",
                command=command,
                network=True,
            )
        try:
            done = await sandbox.run_command(
                ctx, command, network=network, timeout_s=timeout, grant=grant
            )
        except ToolError as exc:
            return ToolResult(str(exc), is_error=True, data={"exit_code": None})
        return ToolResult(
            format_completed(done, timeout),
            is_error=done.returncode != 0 or done.timed_out or done.killed,
            data={
                "exit_code": done.returncode,
                "timed_out": done.timed_out,
                "seconds": round(done.seconds, 3),
                "sandboxed": sandbox.bwrap_available(),
                "network": network,
            },
        )


def clamp_timeout(raw: object, cap: float) -> float:
    """The model's timeout, within [1, configured cap]; junk (nan too) falls back to the cap."""
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return float(cap)
    if isinstance(raw, float) and not math.isfinite(raw):
        return float(cap)
    return float(max(1, min(raw, cap)))


def format_completed(done: Completed, timeout_s: float) -> str:
    """Exit status first (the model reads it before the noise), then capped streams."""
    if done.timed_out:
        head = (
            f"timed out after {timeout_s:g}s: the command and every process it started were killed"
        )
    elif done.killed:
        head = "killed: the task was stopped"
    else:
        head = f"exit code: {done.returncode}"
    parts = [head]
    # Each stream gets part of the budget, so a chatty stdout cannot hide the stderr.
    for label, raw, share in (("stdout", done.stdout, 2 / 3), ("stderr", done.stderr, 1 / 3)):
        if raw:
            parts.append(f"--- {label} ---\n{truncate(decode(raw), int(12_000 * share))}")
    if len(parts) == 1:
        parts.append("(no output)")
    return "\n".join(parts)


tool = ExecuteBash()
