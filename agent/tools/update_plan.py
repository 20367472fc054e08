"""update_plan: the model's plan; drives `plan` and `progress` events."""

from __future__ import annotations

from typing import Any

from ..errors import ToolError
from .base import ToolContext, ToolResult

STATUSES = ("pending", "in_progress", "done")
MAX_STEPS = 100


class UpdatePlan:
    name = "update_plan"
    kind = "plan"
    description = (
        "Set or update your plan: the full list of steps, each with a title and a status "
        "(pending, in_progress, done). Call it first, and again as steps are completed."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "steps": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "title": {"type": "string"},
                        "status": {"type": "string", "enum": list(STATUSES)},
                    },
                    "required": ["title", "status"],
                },
            }
        },
        "required": ["steps"],
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        steps = args.get("steps")
        if not isinstance(steps, list) or not steps:
            raise ToolError("steps must be a non-empty list of {title, status}")
        if len(steps) > MAX_STEPS:  # every plan goes into the event stream: keep it bounded
            raise ToolError(f"a plan has at most {MAX_STEPS} steps, got {len(steps)}")
        clean = []
        for step in steps:
            if not isinstance(step, dict) or not isinstance(step.get("title"), str):
                raise ToolError("each step needs a string title")
            status = step.get("status", "pending")
            if status not in STATUSES:
                raise ToolError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
            clean.append({"title": step["title"][:200], "status": status})
        done = sum(1 for s in clean if s["status"] == "done")
        previous = ctx.state.plan_done
        ctx.state.plan = clean
        ctx.state.plan_done = done
        await ctx.emit("plan", steps=clean)
        await ctx.emit("progress", completed=done, total=len(clean))
        if done > previous:
            ctx.state.progress_at_step = ctx.state.step
        return ToolResult(f"plan updated: {done}/{len(clean)} steps done")


tool = UpdatePlan()
