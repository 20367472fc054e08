"""The engine's part for learnings: pick them for a task, measure them, let the operator
change them. Its state is the relevance index (rebuilt from the store as lessons change);
the truth is the store (agent/store/lessons.py).

Picking, for a task about to start (`select`):
- the active learnings of the task's workspace (or of none: imported ones) whose relevance
  to its title (cosine, agent/learnings/index.py) is at least `[learnings] min_relevance`
  are its relevant ones; next steps are advice for the operator, not the agent, and are
  never given unless pinned;
- a relevant learning whose measured effect is clearly negative is retired there and
  then, with its reason, before it can be given again (`[learnings] auto_retire`);
- a share `[learnings] holdout` of tasks (10% by default) is a holdout: given none;
  the others get the `limit` most relevant;
- pinned learnings of the workspace are always given, holdout or not; retired ones never;
- every relevant learning is recorded with the task, given or not, and so is the holdout.

Comparable tasks. A learning's effect compares the tasks it was relevant to: same
workspace, and a title the learning scored at least `min_relevance` against when the task
started. Those given it are "with", those not given it (holdouts, mostly; or tasks where
it ranked past `limit`) "without". Only tasks that ended count: succeeded is a success,
failed and rolled back are failures; cancelled and interrupted tasks say nothing about the
advice and are left out. The confidence figure is a 95% interval of the difference
(agent/learnings/effect.py), and no effect is claimed before each side has
`[learnings] min_tasks` tasks.

Retired automatically: a learning not pinned whose interval lies wholly below zero. When
the operator restores one, only the evidence gathered after the restore can retire it again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ..errors import StoreError, TaskStopped
from . import effect as fx

if TYPE_CHECKING:
    from ..config import LearningsConfig
    from ..store import Store
    from .index import Index

log = logging.getLogger(__name__)

CATEGORIES = {"pattern": "patterns", "improvement": "improvements", "nextStep": "nextSteps"}
GIVEN_KINDS = ("pattern", "improvement")  # what the agent is told (next steps: the operator)
SUCCESS, FAILURE = "succeeded", ("failed", "rolled_back")
CANDIDATES = 30  # relevant learnings looked at per task (given, withheld, checked)
RECENT = 20  # tasks listed per learning in the stats
FOR_OPERATOR = "for the operator"  # a next step: never given to the agent unless pinned

Audit = Callable[[str, str, "str | None", dict[str, Any]], Awaitable[None]]


class LearningBook:
    def __init__(
        self,
        store: Store,
        config: LearningsConfig,
        audit: Audit | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self._audit = audit
        self._rng = rng or random.Random()
        self._index: Index | None = None
        self._pinned: dict[int, tuple[str, str | None]] = {}  # id -> (text, workspace)
        self._seen = 0.0  # the newest `changed_at` the index has taken in
        self._at_seen: dict[int, tuple[Any, ...]] = {}  # the rows taken at exactly _seen
        self._lock = asyncio.Lock()

    # -- the index -------------------------------------------------------------------------
    async def _fresh_index(self) -> Index:
        """The index, brought up to date with what changed in the store since last time
        (by any process)."""
        async with self._lock:
            # `>=` so a lesson stamped in the same instant as the last one taken is not
            # missed; the rows taken at that instant, unchanged, are not taken again (a
            # batch stamped at once was re-indexed whole on every pick).
            rows = [r for r in await self.store.lessons_changed_since(self._seen)
                    if self._at_seen.get(int(r["id"])) != _fingerprint(r)]
            if self._index is None:
                from .index import Index  # numpy: only once a task needs it

                self._index = Index()
            index = self._index
            if rows:
                build = len(index) == 0 and len(rows) > 1
                docs = []
                for row in rows:
                    lesson_id = int(row["id"])
                    self._pinned.pop(lesson_id, None)
                    index.remove(lesson_id)
                    if row["state"] != "active":
                        continue
                    if row["pinned"]:
                        self._pinned[lesson_id] = (row["text"], row["workspace"])
                    if row["category"] in GIVEN_KINDS or row["pinned"]:
                        docs.append((lesson_id, row["text"], row["workspace"]))
                if build:
                    index.rebuild(docs)
                else:
                    index.add_many(docs)
                newest = max(float(r["changed_at"]) for r in rows)
                if newest > self._seen:
                    self._seen, self._at_seen = newest, {}
                self._at_seen.update((int(r["id"]), _fingerprint(r)) for r in rows
                                     if float(r["changed_at"]) == self._seen)
            return index

    # -- picking for a task ----------------------------------------------------------------
    async def select(self, task_id: str, title: str, workspace: str) -> dict[str, Any]:
        """The learnings task `task_id` is given, recorded with it. Never fails the task:
        a store that cannot be read or written gives no learnings, with the reason."""
        try:
            return await self._select(task_id, title, workspace)
        except (TaskStopped, asyncio.CancelledError):
            raise
        except (StoreError, OSError, ValueError) as exc:
            log.warning("task %s: no learnings: %s", task_id, exc)
            return {"holdout": False, "given": [], "withheld": [], "retired": [],
                    "error": str(exc)}

    async def _select(self, task_id: str, title: str, workspace: str) -> dict[str, Any]:
        cfg = self.config
        index = await self._fresh_index()
        groups = [workspace, None]
        hits = index.search(title, CANDIDATES, groups=groups, min_score=cfg.min_relevance)
        pinned = {i: text for i, (text, ws) in self._pinned.items() if ws in groups}
        retired = await self._retire_harmful([i for i, _s in hits if i not in pinned])
        gone = {r["id"] for r in retired}
        relevant = [(i, s) for i, s in hits if i not in gone and i not in pinned]
        holdout = self._rng.random() < cfg.holdout
        chosen = [] if holdout else relevant[: cfg.limit]
        chosen_ids = {i for i, _s in chosen}
        scores = dict(hits)
        given = [{"id": i, "text": pinned[i], "pinned": True,
                  "score": round(scores.get(i) or index.score(title, i), 4)} for i in pinned]
        given += [{"id": i, "text": index.text(i), "pinned": False, "score": round(s, 4)}
                  for i, s in chosen]
        withheld = [i for i, _s in relevant if i not in chosen_ids]
        rows = [(g["id"], True, float(g["score"])) for g in given]
        rows += [(i, False, float(s)) for i, s in relevant if i not in chosen_ids]
        await self.store.record_lesson_selection(task_id, workspace, holdout, rows)
        return {"holdout": holdout, "holdout_share": cfg.holdout, "given": given,
                "withheld": withheld, "retired": retired}

    async def _retire_harmful(self, ids: list[int]) -> list[dict[str, Any]]:
        """Retire those of `ids` whose effect (since their last restore) is clearly
        negative: their id and reason."""
        cfg = self.config
        if not cfg.auto_retire or not ids:
            return []
        outcomes = await self.store.lesson_outcomes(
            ids, since_restore=True, min_score=cfg.min_relevance
        )
        effects = _effects(outcomes, cfg.min_tasks)
        harmful = [(i, e) for i, e in effects.items() if e.verdict == fx.HURTS]
        if not harmful:
            return []
        restored = {r["id"]: r["restored_at"] for r in await self._rows([i for i, _ in harmful])}
        out = []
        for lesson_id, e in harmful:
            reason = f"retired automatically: it made comparable tasks worse: {e.describe()}"
            if await self.store.retire_lesson_if_active(
                lesson_id, reason, "engine", restored.get(lesson_id)
            ):
                out.append({"id": lesson_id, "reason": reason})
                if self._audit is not None:
                    await self._audit("engine", "learning_retire", None,
                                      {"learning": lesson_id, "reason": reason})
        return out

    async def _rows(self, ids: list[int]) -> list[dict[str, Any]]:
        if not ids:
            return []
        marks = ", ".join("?" for _ in ids)
        return await self.store.fetch(
            f"SELECT id, restored_at FROM lessons WHERE id IN ({marks})", ids
        )

    async def relevant(self, title: str, limit: int = 8, workspace: str | None = None) -> list[str]:
        """The texts of the active learnings most relevant to `title` (in `workspace`, or
        anywhere): a look only, nothing recorded."""
        index = await self._fresh_index()
        groups = None if workspace is None else [workspace, None]
        hits = index.search(title, limit, groups=groups, min_score=self.config.min_relevance)
        return [index.text(i) for i, _s in hits]

    # -- views -----------------------------------------------------------------------------
    async def rows(self, query: str | None = None, state: str | None = None) -> list[dict[str, Any]]:
        """Every lesson with its teachings (agent/store Store.learnings)."""
        return await self.store.learnings(query, limit=1_000_000, state=state)

    async def by_kind(self) -> dict[str, list[str]]:
        """The active learnings in the seed's shape."""
        out: dict[str, list[str]] = {key: [] for key in CATEGORIES.values()}
        for row in await self.rows(state="active"):
            key = CATEGORIES.get(row["category"])
            if key:
                out[key].append(row["text"])
        return out

    async def counts(self) -> dict[str, int]:
        return await self.store.lesson_counts()

    async def stats(self, query: str | None = None) -> list[dict[str, Any]]:
        """Each learning with its provenance and measured effect (`learnings --stats
        --json`, the Self-Improvement panel)."""
        cfg = self.config
        rows = await self.rows(query)
        effects = _effects(
            await self.store.lesson_outcomes(min_score=cfg.min_relevance), cfg.min_tasks
        )
        pending = _pending(await self.store.lesson_outcomes(min_score=cfg.min_relevance))
        recent: dict[int, list[dict[str, Any]]] = {}
        for r in await self.store.lessons_given_to(RECENT):
            recent.setdefault(r["lesson_id"], []).append(
                {"task_id": r["task_id"], "state": r["state"], "outcome": _outcome(r["state"])}
            )
        return [_record(row, effects.get(row["id"]), pending.get(row["id"], 0),
                        recent.get(row["id"], []), cfg.min_tasks) for row in rows]

    # -- the operator's changes ------------------------------------------------------------
    async def change(
        self, lesson_id: int, action: str, by: str, text: str = "", reason: str = ""
    ) -> dict[str, Any]:
        row = await self.store.change_lesson(lesson_id, action, by, text=text, reason=reason)
        if self._audit is not None:
            detail: dict[str, Any] = {"learning": lesson_id}
            if action == "edit":
                detail["text"] = row["text"]
            if reason:
                detail["reason"] = reason
            await self._audit(by, f"learning_{action}", None, detail)
        return row


def _outcome(state: str) -> str:
    if state == SUCCESS:
        return "success"
    if state in FAILURE:
        return "failure"
    if state in ("cancelled", "interrupted"):
        return "not counted"
    return "pending"


def _effects(outcomes: list[dict[str, Any]], min_tasks: int) -> dict[int, fx.Effect]:
    counts: dict[int, list[int]] = {}  # id -> [succ with, n with, succ without, n without]
    for r in outcomes:
        kind = _outcome(r["state"])
        if kind not in ("success", "failure"):
            continue
        c = counts.setdefault(int(r["lesson_id"]), [0, 0, 0, 0])
        side = 0 if r["given"] else 2
        c[side + 1] += int(r["n"])
        if kind == "success":
            c[side] += int(r["n"])
    return {i: fx.Effect(c[0], c[1], c[2], c[3], min_tasks) for i, c in counts.items()}


def _pending(outcomes: list[dict[str, Any]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for r in outcomes:
        if r["given"] and _outcome(r["state"]) == "pending":
            out[int(r["lesson_id"])] = out.get(int(r["lesson_id"]), 0) + int(r["n"])
    return out


def _record(
    row: dict[str, Any],
    e: fx.Effect | None,
    pending: int,
    recent: list[dict[str, Any]],
    min_tasks: int,
) -> dict[str, Any]:
    e = e or fx.Effect(0, 0, 0, 0, min_tasks)
    interval = e.interval
    verdict = e.verdict
    if verdict == fx.NOT_USED and row["category"] not in GIVEN_KINDS and not row["pinned"]:
        verdict = FOR_OPERATOR
    return {
        "id": row["id"],
        "text": row["text"],
        "category": row["category"],
        "source_task": row["source_task"],
        "state": row["state"],
        "pinned": bool(row["pinned"]),
        "uses": row["uses"],
        "success_with": _round(e.rate_with),
        "success_without": _round(e.rate_without),
        "tasks_with": e.tasks_with,
        "succeeded_with": e.succeeded_with,
        "tasks_without": e.tasks_without,
        "succeeded_without": e.succeeded_without,
        "pending": pending,
        "effect": _round(e.effect),
        "confidence": None if interval is None else {
            "level": 0.95, "low": _round(interval[0]), "high": _round(interval[1])},
        "verdict": verdict,
        "summary": e.describe(),
        "reason": row["reason"],
        "changed_by": row["changed_by"],
        "edited": bool(row["edited"]),
        "taught": row["taught"],
        "merged": max(0, row["taught"] - 1),
        "said": row["said"],
        "source_tasks": row["task_ids"],
        "given_to": recent,
        "workspace": row["workspace"],
        "origin": row["origin"],
        "created_at": row["created_at"],
        "last_taught_at": row["last_taught_at"],
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _fingerprint(row: dict[str, Any]) -> tuple[Any, ...]:
    """A lesson row as the index took it: a row read again unchanged is not taken again."""
    return tuple(row.values())
