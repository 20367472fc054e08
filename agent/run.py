"""One task's run: the bridge between the small agent loop and whoever hosts it.

It owns the per-task state (model, tools, worktree, limits, checkpoints, counters) and
turns each loop action into events, policy checks, checkpoints and limit checks. What it
needs from outside is the small `RunHost` below: the engine's worker is one host
(agent/worker.py), a test's tiny host another (tests/test_run_host.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from . import events as ev
from . import prompts
from .audit import call_args
from .errors import TaskStopped, ToolError
from .models.base import Model, ModelResponse
from .outcome import Ledger, target_of
from .procs import ProcessGroups
from .tools.base import Grant, Tool, ToolContext, ToolResult, spec, truncate
from .verify import baseline, judge
from .workspace import TaskTree

if TYPE_CHECKING:
    from .approvals import Decision
    from .checkpoints import Checkpoints
    from .config import Config

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


class RunHost(Protocol):
    """What a run needs from whoever hosts it. Everything else (model, tools, worktree,
    limits, checkpoints, counters) the run holds itself."""

    config: Config

    async def emit(self, task_id: str, type_: str, **payload: Any) -> None:
        """An event into the task's stream."""

    def stream(self, task_id: str, kind: str, text: str) -> None:
        """A piece of the model's live thinking or text (agent/bus.py: deltas)."""

    def end_stream(self, task_id: str) -> None:
        """The model call that streamed ended."""

    def state_of(self, task_id: str) -> str: ...

    async def transition(self, task_id: str, state: str, reason: str = "") -> None: ...

    async def hold(self, task_id: str) -> bool:
        """Wait here while the task is paused; True if it waited."""

    def policy(self, tool: str, args: dict[str, Any]) -> tuple[str, str]:
        """(allow | ask | deny, the rule that decided)."""

    async def ask(
        self, task_id: str, approve_mode: str, kind: str, summary: str, detail: dict[str, Any]
    ) -> Decision:
        """An approval request, waited for until decided."""

    async def audit(
        self, actor: str, action: str, task_id: str | None, detail: dict[str, Any]
    ) -> None: ...

    async def record_usage(
        self, task_id: str, model: str, usage: dict[str, Any], counters: dict[str, Any]
    ) -> None:
        """One model call's usage; raises TaskStopped when a shared budget is spent."""

    async def learnings_for(self, task_id: str, title: str) -> dict[str, Any]:
        """The lessons from earlier tasks given to this one, recorded with it:
        `{"holdout": bool, "given": [{"id", "text", ...}], ...}` (agent/learnings/book.py)."""

    def worktree_lock(self, repo: str) -> asyncio.Lock:
        """Held around `git worktree add/remove` on `repo` (the test baseline's worktree)."""


class TaskRun:
    def __init__(
        self,
        host: RunHost,
        task: dict[str, Any],
        model: Model,
        tools: dict[str, Tool],
        tree: TaskTree,
        limits: Limits,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.host = host
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
            config=host.config,
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
        self.ledger = Ledger()  # calls not done (denied, or an outside effect that failed)
        self._step_denied: str | None = None  # who denied the current step's call
        self._step_external = False  # the current step's call reaches outside the worktree
        self.context_tokens = 0
        self.last_decision = ""  # who decided the latest approval: operator, rule, timeout
        self.checkpoints = checkpoints  # None: no checkpoints (a test's host)
        self.checkpoint_steps: list[dict[str, Any]] = []
        self._last_calls: list[str] = []
        self._quiet_steps = 0
        self._wrap_up_sent = False
        self._specs = [spec(t) for t in tools.values()]

    # -- plumbing the loop uses ------------------------------------------------------------
    async def emit(self, type_: str, **payload: Any) -> None:
        await self.host.emit(self.task_id, type_, **payload)

    async def set_state(self, state: str, reason: str = "") -> None:
        await self.host.transition(self.task_id, state, reason)

    def counters(self) -> dict[str, Any]:
        """What the task row keeps of the run so far."""
        return {"steps": self.steps, "tokens": self.tokens, "cost_usd": round(self.cost, 6)}

    async def ask(self, kind: str, summary: str, detail: dict[str, Any]) -> bool:
        """A request for the current step's call (the policy's, or one a tool asks itself,
        like a database write), a stall question, or the apply. A no is remembered for the
        outcome."""
        decision = await self.host.ask(self.task_id, self.approve_mode, kind, summary, detail)
        approved, self.last_decision = decision.approved, decision.by
        # Tools word their own refusal from this (never a blanket "denied by operator").
        self.ctx.state.decided_by = decision.by
        tool = detail.get("tool")
        # What this yes covers: the tool call of this step, once (agent/sandbox.py takes it).
        self.ctx.state.grant = (
            Grant(self.steps, tool, decision.by, decision.network) if approved and tool else None
        )
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
        analysis = await asyncio.to_thread(workspace_summary, self.tree.path)
        # Which learnings it gets (none for a holdout) is part of the task's record.
        chosen = await self.host.learnings_for(self.task_id, self.title)
        await self.emit("analysis", **analysis, learnings=chosen)
        lessons = [str(item["text"]) for item in chosen.get("given", [])]
        return prompts.task_prompt(self.title, analysis["summary"], lessons)

    async def call_model(self, messages: list[dict[str, Any]], tools: bool = True) -> ModelResponse:
        await self._hold()
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
            self.host.end_stream(self.task_id)
        self.check()
        usage = response.usage
        self.tokens += (
            usage.input_tokens
            + usage.output_tokens
            + usage.cache_read_input_tokens
            + usage.cache_creation_input_tokens
        )
        # The micro-dollars its usage row keeps: the task's total is the sum of its rows.
        self.cost += round(usage.cost_usd, 6)
        if tools:  # what the model just read: the conversation's real size in tokens
            self.context_tokens = (
                usage.input_tokens
                + usage.cache_read_input_tokens
                + usage.cache_creation_input_tokens
            )
        await self.host.record_usage(
            self.task_id, response.model or self.model.name, usage.as_dict(), self.counters()
        )
        for block in response.content if tools else []:  # the learnings answer is not chat
            if block.get("type") == "thinking" and block.get("thinking"):
                await self.emit("thinking", text=block["thinking"])
            elif block.get("type") == "text" and block.get("text"):
                await self.emit("text", text=block["text"])
        if tools and self.host.state_of(self.task_id) == ev.PLANNING:
            await self.set_state(ev.RUNNING)
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
        config = self.host.config
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
        self.host.stream(self.task_id, kind, text)

    async def _hold(self) -> None:
        """Stopped: end here. Paused: wait here (agent/pausing.py), then look again."""
        self.check()
        if await self.host.hold(self.task_id):
            self.check()  # stopped while held (the worker is normally cancelled first)

    async def checkpoint(self, label: str) -> str | None:
        """A snapshot of the worktree, and a `checkpoint` event naming it (rollback's steps)."""
        if self.checkpoints is None:
            return None
        commit = await self.checkpoints.snapshot(label)
        if commit:
            self.checkpoint_steps.append({"step": self.steps, "commit": commit, "label": label})
            await self.emit(ev.CHECKPOINT, step=self.steps, commit=commit, label=label)
        return commit

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
        await self._hold()
        if self.steps >= self.limits.max_steps:
            raise TaskStopped("failed", f"step limit reached: {self.limits.max_steps} steps")
        self.steps += 1
        self.ctx.state.step = self.steps
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
        decision, rule = self.host.policy(tool.name, args)
        if decision == "allow":
            return
        if decision == "deny":
            await self.host.audit(
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
        await self.host.audit(
            "agent",
            "tool_call",
            self.task_id,
            {"step": step, "tool": tool.name if tool else None, "is_error": result.is_error,
             "args": call_args(args)},  # fmt: skip
        )
        touched = bool(result.changed) or (
            tool is not None and tool.kind in ("exec", "test", "deploy")
        )
        commit = await self.checkpoint(f"step {step}") if touched else None
        self.changed.update(result.changed)
        if tool is not None:
            external = self._step_external or (tool.kind == "deploy" and not args.get("dry_run"))
            target = target_of(tool.name, args, self._defaults())
            self.ledger.record(tool.name, target, result, self._step_denied, external)
        progressed = self.ctx.state.progress_at_step == step
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
        await self.checkpoint("verification")
        data = result.data
        passed = not result.is_error
        evidence = f"{command}: {data.get('passed', '?')} passed, {data.get('failed', '?')} failed"
        if not passed:
            passed, note = judge(result, await self._baseline(command))
            evidence += f"; {note}" if note else ""
        await self.emit(
            "verification",
            passed=passed,
            evidence=evidence,
            command=command,
            counts={k: data.get(k) for k in ("passed", "failed")},
            failures=data.get("failures") or [],
        )
        report = prompts.VERIFY_FAILED.format(
            command=command, failed=data.get("failed", "?"), output=truncate(result.output, 8000)
        )
        return passed, report


    async def _baseline(self, command: str) -> ToolResult | None:
        """The suite's result on the task's starting commit (run once, agent/verify.py)."""
        state = self.ctx.state
        if not state.baseline_run:
            path = self.host.config.worktrees_dir / f"{self.task_id}-baseline"
            # The worker's lock for worktree add/remove on this repository (keyed by the
            # operator's checkout): two adds at once can read each other's half-made entry.
            lock = self.host.worktree_lock(str(self.ctx.workspace or self.tree.path))
            tests = self.tools["run_tests"]
            state.baseline = await baseline(self.tree, self.ctx, tests, command, path, lock)
            state.baseline_run = True
        return state.baseline


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
