"""The apply request of a task, and the rebase it offers when a change landed on its files.

The worker asks to apply through `Rebaser.ask_apply`. Its card names every overlap the radar sees
(agent/conflicts.py's Radar): live tasks changing the same files, and changes that landed since the
task started. When the operator approves and a change landed on the task's files since its
base (another task applied first, or a commit of the operator's), nothing is applied: the
diff they approved is not what would land. The second apply explains that and asks anew
(kind "rebase"): yes rebases the task onto the workspace's HEAD and asks to apply again,
with the diff of what would land now; no keeps the change on its branch (the task ends
cancelled, its branch untouched). Where the same lines changed, no rebase can help: the
task ends failed before anything changes, its change kept on its branch, and the message
names who changed those lines.

Rebasing (`rebase_onto_head`): the task's branch gets a merge commit of its tip and HEAD
(a 3-way merge computed by `git merge-tree`, nothing touched if it conflicts), its
worktree and index move to it, and the task's base becomes that HEAD; history is kept
(the branch's earlier commits stay its first parents). It runs in the task's own worker:
`request` (the CLI's `rebase`, the Approval Queue's key) approves the pending
request with the reason "rebase", which the worker reads as "rebase, then ask again",
never as "apply". `keep` denies it, with the reason "kept on its branch".

Pending apply requests of other tasks on the workspace are refreshed (`refresh_cards`)
when a task asks to apply and when one lands, so both cards name each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import conflicts, workspace
from . import events as ev
from .errors import UsageError
from .fileswitch import ApplyError
from .gitcmd import Git

if TYPE_CHECKING:
    from .approvals import ApprovalDesk
    from .bus import EventBus
    from .changes import Changes
    from .conflicts import Radar
    from .run import TaskRun
    from .safety import Safety
    from .store import Store
    from .taskbook import TaskBook

REBASE = "rebase"  # the reason of an approval that asks for a rebase, not an apply
KEEP = "kept on its branch"
REBASE_EVENT = "rebase"


class Rebaser:
    """The apply request (its card names the overlaps), the rebase it offers, and the
    operator's choices for a task waiting to apply (`request` a rebase, `keep`)."""

    def __init__(
        self,
        store: Store,
        bus: EventBus,
        book: TaskBook,
        safety: Safety,
        changes: Changes,
        radar: Radar,
        desk: ApprovalDesk,
    ) -> None:
        self.store, self.bus, self.book, self.safety = store, bus, book, safety
        self.changes, self.radar, self.desk = changes, radar, desk

    async def ask_apply(
        self,
        run: TaskRun,
        task: dict[str, Any],
        tree: workspace.TaskTree,
        patch: str,
        files: list[str],
    ) -> bool:
        """Ask to apply the task's change; True once approved for what would land now."""
        ws = task["workspace"]
        while True:
            summary, detail = await self.card(task, tree, patch, files)
            await self.refresh_cards(ws, skip=task["id"])  # the others now name this one
            if not await run.ask("apply", summary, detail):
                return False
            asked = await self._last_reason(task["id"]) == REBASE
            landed = []
            if tree.is_git and tree.base_commit:
                landed = await self.radar.landed_since(ws, tree.base_commit, files)
            if not landed and not asked:
                return True
            if tree.is_git and landed and not asked:
                await _mergeable_or_fail(task, tree, landed)
                head = await _head(Path(ws))
                question = (f"Rebase onto HEAD {head[:10]}? {conflicts.note(landed)} since this "
                            "task started; yes: rebase and ask again with what would land, "
                            f"no: keep it on branch {tree.branch}")  # fmt: skip
                about = {"conflict": _conflict(landed), "branch": tree.branch, "onto": head,
                         "note": conflicts.describe(landed), "files": files}  # fmt: skip
                self.bus.emit(task["id"], ev.WARNING, message=conflicts.note(landed))
                if not await run.ask(REBASE, question, about):
                    return False
            if tree.is_git:
                await self.rebase_onto_head(task, tree, by=run.last_decision or "operator")
            patch, files = await workspace.diff(tree)

    async def card(
        self, task: dict[str, Any], tree: workspace.TaskTree, patch: str, files: list[str]
    ) -> tuple[str, dict[str, Any]]:
        """The apply request's summary and detail: what it changes, links it would refuse,
        and what it overlaps with."""
        ws = Path(task["workspace"])
        refused = await self.changes.links_outside(ws, tree, task, files)
        base = f"Apply {len(files)} changed file(s) to {ws}"
        detail: dict[str, Any] = {"diff": patch, "files": files, "branch": tree.branch}
        if refused:  # the apply refuses them: the operator sees so before deciding
            base += f"; refused: {len(refused)} symlink(s) pointing outside the workspace"
            detail["refused_links"] = refused
        detail["apply_summary"] = base
        now = {**task, "base_commit": tree.base_commit, "branch": tree.branch}
        clashes = await self.radar.for_task(now, files)
        if clashes:
            detail["conflict"] = _conflict(clashes)
        return base + (f"; {conflicts.note(clashes)}" if clashes else ""), detail

    async def refresh_cards(self, ws: str, skip: str | None = None) -> None:
        """Pending apply requests of the workspace's other tasks say what they overlap with
        now (same id: a decision on its way applies to the same change)."""
        for row in await self.store.approvals("pending"):
            if row["kind"] != "apply" or row["task_id"] == skip:
                continue
            task = await self.store.get_task(row["task_id"])
            if task is None or task["workspace"] != ws:
                continue
            detail = dict(row.get("detail") or {})
            clashes = await self.radar.for_task(task, detail.get("files") or [])
            found = _conflict(clashes) if clashes else None
            if _same(found, detail.get("conflict")):
                continue
            detail.pop("conflict", None)
            if found:
                detail["conflict"] = found
            base = detail.get("apply_summary") or row["summary"]
            summary = base + (f"; {conflicts.note(clashes)}" if clashes else "")
            summary, detail = self.safety.redact(summary), self.safety.redact(detail)
            await self.store.execute(
                "UPDATE approvals SET summary = ?, detail = ? WHERE id = ? AND state = 'pending'",
                [summary, json.dumps(detail, default=str), row["id"]],
            )
            if self.bus.owns(task["id"]):  # shown again where it is asked (run --approve ask)
                self.bus.emit(task["id"], ev.APPROVAL_REQUESTED, approval_id=row["id"],
                              kind="apply", summary=summary, detail=detail, risk=row["risk"],
                              refreshed=True)  # fmt: skip

    async def _last_reason(self, task_id: str) -> str:
        rows = await self.store.approvals(None, task_id=task_id, limit=1)
        return str((rows[0].get("reason") if rows else "") or "")

    async def rebase_onto_head(
        self, task: dict[str, Any], tree: workspace.TaskTree, by: str = "operator"
    ) -> str:
        """Rebase the task's branch (and worktree) onto the workspace's HEAD; the message."""
        ws = Path(task["workspace"])
        if not tree.is_git or not tree.branch or tree.git_dir is None:
            raise UsageError(f"task {task['id']} has no branch to rebase")
        repo, ref = Git(ws), f"refs/heads/{tree.branch}"
        head = await _head(ws)
        tip = (await repo.text("rev-parse", "--verify", f"{ref}^{{commit}}")).strip()
        old_base = tree.base_commit
        code, _, _ = await repo.run("merge-base", "--is-ancestor", head, tip, check=False)
        commit = tip
        if code != 0:
            merged, clash = await _merged(repo, head, tip)
            if merged is None:
                landed = await self.radar.landed_since(str(ws), str(old_base), clash)
                raise ApplyError(_cannot(tree, landed, clash))
            message = f"livhana: rebase onto {head[:10]} (task {task['id']})"
            commit = (await repo.text("commit-tree", merged, "-p", tip, "-p", head,
                                      "-m", message)).strip()  # fmt: skip
            there = Git(tree.path, git_dir=tree.git_dir, work_tree=tree.path)
            # Index and files first (refused, nothing changed, if anything there would be
            # lost), then the branch, compare-and-swap; a branch moved meanwhile puts the
            # files back.
            await there.run("read-tree", "-m", "-u", tip, commit)
            code, _, _ = await repo.run("update-ref", "-m", message, ref, commit, tip, check=False)
            if code != 0:
                await there.run("read-tree", "-m", "-u", commit, tip, check=False)
                raise ApplyError(
                    f"rebase failed: branch {tree.branch} moved meanwhile; nothing changed"
                )
        tree.base_commit = head
        fresh = await self.store.get_task(task["id"]) or task
        rebased = {"onto": head, "from": old_base, "commit": commit, "by": by}
        await self.book.record(task["id"], base_commit=head,
                               options={**fresh["options"], "rebased": rebased})  # fmt: skip
        text = (f"rebased onto HEAD {head[:10]}: branch {tree.branch} now holds the task's "
                f"change merged onto it (commit {commit[:10]}); the apply request shows what "
                "would land")  # fmt: skip
        await self.safety.audit(by, "rebase", task["id"], rebased)
        self.bus.emit(task["id"], REBASE_EVENT, message=text, onto=head, commit=commit, by=by)
        return text

    # -- the operator's choices (the CLI, the Approval Queue) ---------------------------------
    async def request(self, task_id: str, by: str = "operator") -> dict[str, Any]:
        """Ask the task's worker to rebase it onto HEAD and ask to apply again; the decided
        request."""
        row = await self._waiting(task_id)
        return await self.desk.decide(row["id"], True, by, reason=REBASE)

    async def keep(self, task_id: str, by: str = "operator") -> dict[str, Any]:
        """Leave the task's change on its branch, unapplied (the task ends cancelled)."""
        row = await self._waiting(task_id)
        return await self.desk.decide(row["id"], False, by, reason=KEEP)

    async def _waiting(self, task_id: str) -> dict[str, Any]:
        task = await self.store.get_task(task_id)
        if task is None:
            raise UsageError(f"no task {task_id!r} (see `livhana-cockpit history`)")
        rows = [r for r in await self.store.approvals("pending", task_id=task["id"])
                if r["kind"] in ("apply", REBASE)]  # fmt: skip
        if rows:
            return rows[0]
        if task["state"] in ev.END_STATES:
            branch = task.get("branch")
            kept = "" if task["options"].get("applied") or not branch else (
                f"; its change is on branch {branch} (git merge {branch})")
            raise UsageError(f"task {task['id']} already ended ({task['state']}): nothing "
                             f"waits to be applied{kept}")  # fmt: skip
        raise UsageError(f"task {task['id']} is {task['state'].replace('_', ' ')}: it can be "
                         "rebased or kept once it asks to apply")  # fmt: skip


def _conflict(clashes: list[dict[str, Any]]) -> dict[str, Any]:
    paths = sorted({p for c in clashes for p in c["paths"]})
    return {"with": clashes, "paths": paths, "note": conflicts.describe(clashes)}


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


async def _head(ws: Path) -> str:
    return (await Git(ws).text("rev-parse", "--verify", "HEAD^{commit}")).strip()


async def _merged(repo: Git, head: str, tip: str) -> tuple[str | None, list[str]]:
    """The tree of the 3-way merge of `tip` onto `head` (None and the conflicting paths
    when the same lines changed). Writes only objects: nothing checked out, no ref moved."""
    code, raw, err = await repo.run(
        "merge-tree", "--write-tree", "--name-only", "-z", head, tip, check=False
    )
    parts = raw.decode(errors="surrogateescape").split("\0")
    if code == 0:
        return parts[0].strip(), []
    if code == 1:
        clash = parts[1 : parts.index("", 1)] if "" in parts[1:] else parts[1:2]
        return None, sorted(set(clash))
    raise ApplyError(f"rebase failed: git merge-tree: {(err or raw).decode(errors='replace')[:200]}")


async def _mergeable_or_fail(
    task: dict[str, Any], tree: workspace.TaskTree, landed: list[dict[str, Any]]
) -> None:
    """Before offering a rebase: one that cannot work (the same lines changed) ends the
    task here, before anything changed, its change kept on its branch."""
    repo = Git(Path(task["workspace"]))
    tip = (await repo.text("rev-parse", "--verify", f"refs/heads/{tree.branch}^{{commit}}")).strip()
    merged, clash = await _merged(repo, await _head(Path(task["workspace"])), tip)
    if merged is None:
        raise ApplyError(_cannot(tree, landed, clash))


def _cannot(tree: workspace.TaskTree, landed: list[dict[str, Any]], clash: list[str]) -> str:
    whom = ", ".join(conflicts.who(c) for c in landed[:3]) or "a newer commit"
    shown = ", ".join(clash[:3]) + (f" and {len(clash) - 3} more" if len(clash) > 3 else "")
    return (f"not applied: {whom} changed the same lines of {shown or 'its files'} since this "
            f"task started, so it cannot be rebased; its change is kept on branch {tree.branch} "
            f"(merge it by hand: git merge {tree.branch})")  # fmt: skip
