"""One task's run: the bridge between the small agent loop and the engine.

It owns the per-task state (model, tools, worktree, limits, counters) and turns each
loop action into events, policy checks, checkpoints and limit checks.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import pausing, prompts
from .audit import call_args
from .errors import TaskStopped, ToolError
from .models.base import Model, ModelResponse
from .outcome import Ledger, target_of
from .procs import ProcessGroups
from .tools.base import Tool, ToolContext, ToolResult, spec, truncate
from .workspace import TaskTree

if TYPE_CHECKING:
    from .config import Config
    from .engine import Engine

WRAP_UP_AT = 0.8  # share of a budget at which the model is told to wrap up


@dataclass
class Limits:
    max_steps: int
    max_tokens: int
    max_cost_usd: float
    verify_retries: int
    stall_repeats: int
    stall_steps: int


def limits_for(config: Config, options: dict[str, Any]) -> Limits:
    """The task's own caps (from `run --max-steps/--max-cost`) over the configured ones."""
    e = config.engine
    # `is None`, not `or`: an explicit value is never silently swapped for the default
    # (the CLI and config already refuse non-positive ones).
    steps, cost = options.get("max_steps"), options.get("max_cost")
    return Limits(
        max_steps=e.max_steps if steps is None else int(steps),
        max_tokens=e.max_tokens,
        max_cost_usd=e.max_cost_usd if cost is None else float(cost),
        verify_retries=e.verify_retries,
        stall_repeats=e.stall_repeats,
        stall_steps=e.stall_steps,
    )


class TaskRun:
    def __init__(
        self,
        engine: Engine,
        task: dict[str, Any],
        model: Model,
        tools: dict[str, Tool],
        tree: TaskTree,
        limits: Limits,
    ) -> None:
        self.engine = engine
        self.task_id: str = task["id"]
        self.title: str = task["title"]
        self.approve_mode: str = task["approve_mode"]
        self.model = model
        self.tools = tools
        self.tree = tree
        self.limits = limits
        self.procs = ProcessGroups()
        self.ctx = ToolContext(
            root=tree.path,
            task_id=self.task_id,
            config=engine.config,
            emit=self.emit,
            procs=self.procs,
            ask=self.ask,
            workspace=Path(task["workspace"]) if task.get("workspace") else None,
        )
        self.steps = 0
        self.tokens = 0
        self.cost = 0.0
        self.changed: set[str] = set()
        self.stop_reason: tuple[str, str] | None = None  # (state, reason) once cancelled/stopped
        self.pending_approvals: list[int] = []
        self.announced: set[int] = set()  # requests whose decision this run put in the stream
        self.ledger = Ledger()  # calls not done (denied, or an outside effect that failed)
        self._step_denied: str | None = None  # who denied the current step's call
        self._step_external = False  # the current step's call reaches outside the worktree
        self.context_tokens = 0
        self.row_written_at = -1e9  # monotonic time the task row's counters were last written
        self.last_decision = ""  # who decided the latest approval: operator, rule, timeout
        self.checkpoints: Any = None  # agent.checkpoints.Checkpoints, set by the worker
        self.checkpoint_steps: list[dict[str, Any]] = []
        self._last_calls: list[str] = []
        self._quiet_steps = 0
        self._wrap_up_sent = False
        self._specs = [spec(t) for t in tools.values()]

    # -- plumbing the loop uses ------------------------------------------------------------
    async def emit(self, type_: str, **payload: Any) -> None:
        await self.engine.emit(self.task_id, type_, **payload)

    async def set_state(self, state: str, reason: str = "") -> None:
        await self.engine.transition(self.task_id, state, reason)

    async def ask(self, kind: str, summary: str, detail: dict[str, Any]) -> bool:
        """A request for the current step's call (the policy's, or one a tool asks itself,
        like a database write), or a stall question. A no is remembered for the outcome."""
        approved = await self.engine.request_approval(self, kind, summary, detail)
        # Tools word their own refusal from this (never a blanket "denied by operator").
        self.ctx.state["decided_by"] = self.last_decision
        if kind != "stall":
            if not approved:
                self._step_denied = self.last_decision
            elif kind == "db_write":
                self._step_external = True
        return approved

    def check(self) -> None:
        if self.stop_reason:
            raise TaskStopped(*self.stop_reason)

    async def opening_prompt(self) -> str:
        analysis = await self.engine.analyse(self.tree.path)
        # Which learnings it gets (none for a holdout) is part of the task's record.
        chosen = await self.engine.learnings_for_task(self.task_id, self.title)
        await self.emit("analysis", **analysis, learnings=chosen)
        lessons = [item["text"] for item in chosen["given"]]
        return prompts.task_prompt(self.title, analysis["summary"], lessons)

    async def call_model(self, messages: list[dict[str, Any]], tools: bool = True) -> ModelResponse:
        self.check()
        await pausing.hold(self)  # a paused task waits here (agent/pausing.py)
        bus = self.engine.bus
        try:
            response = await self.model.complete(
                system=prompts.SYSTEM,
                messages=messages,
                tools=self._specs if tools else None,
                # Live thinking/text for opted-in subscribers (agent/bus.py); the learnings
                # answer is not chat, so it streams to nobody.
                on_delta=self._on_delta if tools else None,
            )
        finally:
            bus.end_deltas(self.task_id)
        self.check()
        usage = response.usage
        self.tokens += (
            usage.input_tokens
            + usage.output_tokens
            + usage.cache_read_input_tokens
            + usage.cache_creation_input_tokens
        )
        self.cost += usage.cost_usd
        if tools:  # what the model just read: the conversation's real size in tokens
            self.context_tokens = (
                usage.input_tokens
                + usage.cache_read_input_tokens
                + usage.cache_creation_input_tokens
            )
        await self.engine.record_usage(self, response.model or self.model.name, usage.as_dict())
        for block in response.content if tools else []:  # the learnings answer is not chat
            if block.get("type") == "thinking" and block.get("thinking"):
                await self.emit("thinking", text=block["thinking"])
            elif block.get("type") == "text" and block.get("text"):
                await self.emit("text", text=block["text"])
        if tools and self.engine_state() == "planning":
            await self.set_state("running")
        if self.cost > self.limits.max_cost_usd:
            raise TaskStopped(
                "failed", f"cost limit reached: ${self.cost:.2f} > ${self.limits.max_cost_usd:.2f}"
            )
        if self.tokens > self.limits.max_tokens:
            raise TaskStopped(
                "failed", f"token limit reached: {self.tokens:,} > {self.limits.max_tokens:,}"
            )
        return response

    def _defaults(self) -> dict[str, str]:
        """The targets a call without one acts on: the first configured of each."""
        config = self.engine.config
        return {
            "deploy_code": next(iter(config.deploy), ""),
            "query_database": next(iter(config.databases), ""),
        }

    async def check_actions(self) -> str:
        """After the work and its tests: '' when every call was done, else why not, said
        as a failed `verification` (the reason the task will end with)."""
        reason = self.ledger.reason()
        if reason:
            missed = [asdict(m) for m in self.ledger.missed()]
            await self.emit(
                "verification", passed=False, evidence=reason, check="actions", missed=missed
            )
        return reason

    def _on_delta(self, kind: str, text: str) -> None:
        self.engine.bus.delta(self.task_id, kind, text)

    def engine_state(self) -> str:
        return self.engine.state_of(self.task_id)

    def notes(self) -> list[dict[str, Any]]:
        """Extra text for the next user turn: the wrap-up warning, once."""
        if self._wrap_up_sent:
            return []
        near = []
        if self.cost >= WRAP_UP_AT * self.limits.max_cost_usd:
            near.append(f"${self.cost:.2f} of ${self.limits.max_cost_usd:.2f}")
        if self.steps >= WRAP_UP_AT * self.limits.max_steps:
            near.append(f"{self.steps} of {self.limits.max_steps} steps")
        if self.tokens >= WRAP_UP_AT * self.limits.max_tokens:
            near.append(f"{self.tokens:,} of {self.limits.max_tokens:,} tokens")
        if not near:
            return []
        self._wrap_up_sent = True
        return [{"type": "text", "text": prompts.WRAP_UP.format(what=", ".join(near))}]

    # -- steps -----------------------------------------------------------------------------
    async def begin_step(self, name: str, args: dict[str, Any]) -> int:
        self.check()
        await pausing.hold(self)
        if self.steps >= self.limits.max_steps:
            raise TaskStopped("failed", f"step limit reached: {self.limits.max_steps} steps")
        self.steps += 1
        self.ctx.state["step"] = self.steps
        self._step_denied, self._step_external = None, False
        target = (
            args.get("path")
            or args.get("command")
            or args.get("pattern")
            or args.get("sql")
            or args.get("target")
            or args.get("title")
            or ""
        )
        await self.emit(
            "step", step=self.steps, action=name, target=str(target)[:300], input=_clip_input(args)
        )
        await self._check_repeats(name, args)
        return self.steps

    async def authorize(self, tool: Tool, args: dict[str, Any]) -> None:
        decision, rule = self.engine.policy_decision(tool, args)
        if decision == "allow":
            return
        if decision == "deny":
            await self.engine.audit(
                "policy", "tool_denied", self.task_id, {"tool": tool.name, "rule": rule}
            )
            self._step_denied = f"policy ({rule})"
            raise ToolError(f"denied by policy ({rule})")
        summary = f"{tool.name}: {_describe(tool.name, args)}"
        if not await self.ask(
            tool.kind if tool.kind != "exec" else "command",
            summary,
            {"tool": tool.name, "input": _clip_input(args), "rule": rule},
        ):
            raise ToolError(f"denied by {self.last_decision}: not run")

    async def end_step(
        self, step: int, tool: Tool | None, args: dict[str, Any], result: ToolResult
    ) -> None:
        await self.emit(
            "tool_result",
            step=step,
            action=tool.name if tool else "?",
            output=truncate(result.output, 4000),
            is_error=result.is_error,
            changed=result.changed,
            data=result.data,
        )
        await self.engine.audit(
            "agent",
            "tool_call",
            self.task_id,
            {"step": step, "tool": tool.name if tool else None, "is_error": result.is_error,
             "args": call_args(args)},  # fmt: skip
        )
        touched = bool(result.changed) or (
            tool is not None and tool.kind in ("exec", "test", "deploy")
        )
        commit = await self.engine.checkpoint(self, f"step {step}") if touched else None
        self.changed.update(result.changed)
        if tool is not None:
            external = self._step_external or (tool.kind == "deploy" and not args.get("dry_run"))
            target = target_of(tool.name, args, self._defaults())
            self.ledger.record(tool.name, target, result, self._step_denied, external)
        progressed = self.ctx.state.get("progress_at_step") == step
        self._quiet_steps = 0 if (commit or progressed) else self._quiet_steps + 1
        if self._quiet_steps >= self.limits.stall_steps:
            self._quiet_steps = 0
            await self._stall(
                f"{self.limits.stall_steps} steps without a file change or plan progress"
            )

    async def _check_repeats(self, name: str, args: dict[str, Any]) -> None:
        key = hashlib.sha1(
            f"{name}{json.dumps(args, sort_keys=True, default=str)}".encode()
        ).hexdigest()
        self._last_calls = (self._last_calls + [key])[-self.limits.stall_repeats :]
        if len(self._last_calls) == self.limits.stall_repeats and len(set(self._last_calls)) == 1:
            self._last_calls = []
            await self._stall(f"the same {name} call {self.limits.stall_repeats} times in a row")

    async def _stall(self, reason: str) -> None:
        await self.emit("warning", message=f"stalled: {reason}")
        if not await self.ask(
            "stall", f"Task looks stuck: {reason}. Continue?", {"reason": reason}
        ):
            raise TaskStopped("failed", f"stalled: {reason}")

    # -- verification ----------------------------------------------------------------------
    async def verify(self) -> tuple[bool | None, str]:
        await self.set_state("verifying")
        from .tools.run_tests import detect_test_command

        command = detect_test_command(self.tree.path)
        if not command:
            await self.emit("verification", passed=None, evidence="no test suite found")
            return None, ""
        result = await self.tools["run_tests"].run({"command": command}, self.ctx)
        await self.engine.checkpoint(self, "verification")
        data = result.data
        passed = not result.is_error
        evidence = f"{command}: {data.get('passed', '?')} passed, {data.get('failed', '?')} failed"
        if not passed:
            from .verify import baseline, judge

            passed, note = judge(result, await baseline(self, command))
            evidence += f"; {note}" if note else ""
        await self.emit(
            "verification",
            passed=passed,
            evidence=evidence,
            command=command,
            counts={k: data.get(k) for k in ("passed", "failed")},
        )
        report = prompts.VERIFY_FAILED.format(
            command=command, failed=data.get("failed", "?"), output=truncate(result.output, 8000)
        )
        return passed, report


def _clip_input(args: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in args.items():
        if isinstance(value, str) and len(value) > 2000:
            value = value[:2000] + f"... [{len(value) - 2000} more characters]"
        out[key] = value
    return out


def _describe(name: str, args: dict[str, Any]) -> str:
    for key in ("command", "sql", "target", "path"):
        if args.get(key):
            return str(args[key])[:200]
    return json.dumps(args)[:200]


def workspace_summary(root: Path) -> dict[str, Any]:
    """A cheap local analysis: what kind of project this is (no model call needed)."""
    counts: Counter[str] = Counter()
    files = 0
    for path in root.rglob("*"):
        if ".git" in path.parts or "node_modules" in path.parts or not path.is_file():
            continue
        files += 1
        counts[path.suffix or path.name] += 1
        if files > 20_000:
            break
    top = ", ".join(f"{ext} ×{n}" for ext, n in counts.most_common(6))
    from .tools.run_tests import detect_test_command

    test = detect_test_command(root)
    summary = f"{files} files ({top}). Test command: {test or 'none detected'}."
    return {
        "summary": summary,
        "files": files,
        "kinds": dict(counts.most_common(10)),
        "test_command": test,
        "ts_start": time.time(),
    }
