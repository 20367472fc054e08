"""deploy_code: run the operator-configured deploy command for a target.

The model never supplies the command: it only picks a configured target, so a deploy does
exactly what the operator wrote down. The engine's policy asks before this tool runs.
"""

from __future__ import annotations

from typing import Any

from .. import sandbox
from ..config import Config, DeployTarget
from ..errors import ToolError
from .base import ToolContext, ToolResult
from .execute_bash import clamp_timeout, format_completed


def pick_target(config: Config, raw: object) -> tuple[str, DeployTarget]:
    """The named target, or the first configured one; a clear error otherwise."""
    targets = config.deploy
    if not targets:
        raise ToolError("no deploy targets configured (add [deploy.<name>] command = ... )")
    if raw is None or raw == "":
        name = next(iter(targets))
    elif isinstance(raw, str) and raw in targets:
        name = raw
    else:
        raise ToolError(f"unknown deploy target {raw!r}; configured: {', '.join(targets)}")
    target = targets[name]
    if not target.command.strip():
        raise ToolError(f"deploy target {name!r} has no command configured")
    return name, target


class DeployCode:
    name = "deploy_code"
    kind = "deploy"
    description = (
        "Deploy the workspace with the operator's configured command for a target "
        "(default: the first configured). Use dry_run to see what would run. "
        "Needs operator approval."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "target": {"type": "string", "description": "a configured deploy target name"},
            "dry_run": {"type": "boolean", "description": "only report what would run"},
        },
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        name, target = pick_target(ctx.config, args.get("target"))
        data: dict[str, Any] = {
            "target": name,
            "command": target.command,
            "rollback_command": target.rollback or None,
            "dry_run": bool(args.get("dry_run")),
        }
        rollback_note = f"rollback: {target.rollback}" if target.rollback else "no rollback command"
        if args.get("dry_run"):
            return ToolResult(
                f"dry run: would deploy target {name!r} by running:\n  {target.command}\n"
                f"in {ctx.root}; {rollback_note}",
                data=data,
            )
        timeout = clamp_timeout(None, ctx.config.engine.command_timeout_s)
        # Deploys talk to the outside world, so network is on; secrets stay too (a deploy
        # usually needs the operator's credentials, and the command is the operator's own).
        try:
            done = await sandbox.run_command(
                ctx,
                target.command,
                network=True,
                timeout_s=timeout,
                keep_secrets=True,
                grant=sandbox.take_grant(ctx, self.name),
            )
        except ToolError as exc:
            return ToolResult(str(exc), is_error=True, data=data)
        failed = done.returncode != 0 or done.timed_out or done.killed
        data.update(exit_code=done.returncode, timed_out=done.timed_out)
        verdict = "deploy FAILED" if failed else "deployed"
        return ToolResult(
            f"{verdict}: target {name!r} ({rollback_note})\n{format_completed(done, timeout)}",
            is_error=failed,
            data=data,
        )


tool = DeployCode()
