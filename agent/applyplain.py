"""Apply a task's result to a workspace that is not a git repository, and undo it.

    record = await apply_plain(workspace, {"a.py": b"...", "old.py": None, "l": Link("a.py")},
                               shadow_dir, expected={...}, label="task <id>")
    result = await rollback_plain(workspace, record)      # {"action": "restore", "message"}

`files` maps each path the task changed to its new content: bytes (a file; it keeps the
executable bit the workspace's file has), Content (bytes and the executable bit), Link (a
symlink, written as a symlink, never read through) or None (deleted). `expected` maps paths to
what the task started from: one the operator changed meanwhile refuses the apply. Anything of
the operator's in the way (a folder where a file goes, a file or a symlink where a folder
goes) refuses it too, and no write ever goes through a symlink. A new symlink pointing out of
the workspace refuses it. The workspace is snapshotted before and after (checkpoints in
`shadow_dir`); rollback restores the task's files from the pre-apply snapshot, refusing if
the operator changed one since. Record: {"kind": "plain", "workspace", "shadow_dir",
"pre_apply_checkpoint", "applied_checkpoint", "files"}.

Journaled like the git flavour (agent/applyback.py); the commit point here is the journal's
"switched" phase, written once every path holds its new content.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import fileswitch as fs
from . import gitcmd
from .checkpoints import Checkpoints
from .fileswitch import ApplyError, Content, Link
from .journal import Journal, crashpoint, keep

Source = bytes | Content | Link | None


def _confined(rel: str) -> str:
    parts = Path(rel).parts
    if not rel or Path(rel).is_absolute() or not parts or {"..", ".git"} & set(parts):
        raise ApplyError(f"apply refused: {rel!r} is outside the workspace")
    return rel


def _kind(value: Source) -> dict[str, str] | None:
    if value is None:
        return None
    return {"kind": "link" if isinstance(value, Link) else "file"}


def read_files(root: Path, paths: list[str]) -> dict[str, Source]:
    """What each path holds in `root` (a task's copy), symlinks as Link: never read through.
    A folder or anything else counts as absent (the task's change is its files)."""
    tree = fs.Tree(Path(root))
    out: dict[str, Source] = {}
    try:
        for rel in paths:
            try:
                found = tree.lstat(rel)
            except fs.Blocked:
                found = None
            if found is None:
                out[rel] = None
                continue
            fd, name, st = found
            if stat.S_ISLNK(st.st_mode):
                out[rel] = Link(os.readlink(name, dir_fd=fd))
            elif stat.S_ISREG(st.st_mode):
                handle = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                with os.fdopen(handle, "rb") as fh:
                    out[rel] = Content(fh.read(), bool(st.st_mode & 0o100))
            else:
                out[rel] = None
    finally:
        tree.close()
    return out


def links_outside(root: Path, files: Mapping[str, Source]) -> list[str]:
    """The symlinks among `files` whose target leaves `root`, as "path -> target"."""
    entries = [{"path": rel, "new": {"kind": "link", "target": v.target} if isinstance(v, Link)
                else _kind(v)} for rel, v in files.items()]  # fmt: skip
    return [f"{path} -> {target}" for path, target in fs.link_escapes(Path(root), entries)]


async def checkpoint_files(
    shadow_dir: Path, work_tree: Path, commit: str, paths: list[str]
) -> dict[str, Source]:
    """What each path held in checkpoint `commit` of a shadow repository (None: absent)."""
    shadow = Path(shadow_dir).resolve()
    env = gitcmd.git_env(isolated=True, index_file=shadow / "index")
    repo = gitcmd.Git(Path(work_tree), git_dir=shadow, env=env)
    listing = await repo.out("ls-tree", "-r", "-z", "--full-tree", commit)
    wanted, found = set(paths), {}
    for rec in listing.split(b"\0"):
        meta, _, raw_path = rec.partition(b"\t")
        path = os.fsdecode(raw_path)
        if path in wanted and meta:
            mode, _, oid = meta.decode().split(" ")
            found[path] = (mode, oid)
    blobs: dict[str, bytes] = {}
    oids = sorted({oid for _, oid in found.values()})
    if oids:
        raw = await repo.out("cat-file", "--batch", stdin=("\n".join(oids) + "\n").encode())
        view, at = memoryview(raw), 0
        for oid in oids:
            end = raw.index(b"\n", at)
            size = int(raw[at:end].split()[2])
            blobs[oid] = bytes(view[end + 1 : end + 1 + size])
            at = end + 1 + size + 1
    out: dict[str, Source] = {}
    for path in paths:
        if path not in found:
            out[path] = None
            continue
        mode, oid = found[path]
        data = blobs[oid]
        out[path] = Link(os.fsdecode(data)) if mode == "120000" else Content(data, mode == "100755")
    return out


async def apply_plain(
    workspace: Path,
    files: Mapping[str, Source],
    shadow_dir: Path,
    *,
    expected: Mapping[str, Source] | None = None,
    label: str = "",
    journal_dir: Path | None = None,
    task_id: str = "",
    keep_journal: bool = False,
) -> dict[str, Any]:
    root = Path(workspace).resolve()
    for rel in [*files, *(expected or {})]:
        _confined(rel)
    entries = [{"i": i, "path": rel, "old": None, "new": _kind(files[rel])}
               for i, rel in enumerate(sorted(files))]  # fmt: skip
    await _refuse_in_the_way(root, entries, "apply")
    if expected is not None:
        now = await fs.in_thread(fs.disk_state, root, list(expected))
        changed = sorted(rel for rel, want in expected.items() if not fs.matches(now[rel], want))
        if changed:
            raise ApplyError(
                f"apply refused: {fs.listed(changed)} changed since the task started; "
                "the task's version would overwrite it"
            )
    shadow = Path(shadow_dir).resolve()
    cp = Checkpoints(root, shadow)
    pre = await cp.snapshot(f"before apply {label}".strip()) or await cp.current()
    record: dict[str, Any] = {
        "kind": "plain", "workspace": str(root), "shadow_dir": str(shadow),
        "pre_apply_checkpoint": pre, "applied_checkpoint": None, "files": sorted(files),
    }  # fmt: skip

    def stage(journal: Journal) -> None:
        staged = fs.Stage(journal.stage)
        for e in entries:
            value = files[e["path"]]
            if isinstance(value, Link):
                e["new"] = staged.put_link(e["path"], value.target)
            elif isinstance(value, Content):
                e["new"] = staged.put(e["path"], value.data, value.exec)
            elif value is not None:  # bare bytes keep the file's executable bit
                exec_ = bool(e["old"] and e["old"]["kind"] == "file" and e["old"]["exec"])
                e["new"] = staged.put(e["path"], value, exec_)
        if bad := fs.link_escapes(root, entries):
            raise ApplyError(fs.outside_message(bad))

    async def after(journal: Journal) -> dict[str, Any]:
        applied = await cp.snapshot(f"applied {label}".strip())
        return {**record, "applied_checkpoint": applied}

    return await _switch(root, entries, "apply", task_id, journal_dir, shadow, record,
                         stage, after, keep_journal)  # fmt: skip


async def rollback_plain(
    workspace: Path,
    record: Mapping[str, Any],
    *,
    journal_dir: Path | None = None,
    task_id: str = "",
    keep_journal: bool = False,
) -> dict[str, Any]:
    applied, pre = record.get("applied_checkpoint"), record.get("pre_apply_checkpoint")
    files = list(record.get("files", []))
    if not applied or not pre:
        return {"action": "none", "files": [], "message": NOTHING}
    root = Path(workspace).resolve()
    shadow = Path(record["shadow_dir"])
    was = await checkpoint_files(shadow, root, str(applied), files)
    back = await checkpoint_files(shadow, root, str(pre), files)
    now = await fs.in_thread(fs.disk_state, root, files)
    # Only the task's files go back, so operator edits elsewhere since the apply survive.
    if touched := sorted(rel for rel in files if not fs.matches(now[rel], was[rel])):
        raise ApplyError(
            f"rollback refused: you changed {fs.listed(touched)} since the task was applied; "
            "nothing was changed"
        )
    entries = [{"i": i, "path": rel, "old": None, "new": _kind(back[rel])}
               for i, rel in enumerate(files) if was[rel] != back[rel]]  # fmt: skip
    await _refuse_in_the_way(root, entries, "rollback")
    message = (
        f"restored the task's {len(files)} file(s) from the pre-apply snapshot; "
        "your other files are untouched"
    )
    result = {"action": "restore", "checkpoint": pre, "files": files, "message": message}
    cp = Checkpoints(root, shadow)

    def stage(journal: Journal) -> None:
        staged = fs.Stage(journal.stage)
        for e in entries:
            value = back[e["path"]]
            if isinstance(value, Link):
                e["new"] = staged.put_link(e["path"], value.target)
            elif isinstance(value, Content):
                e["new"] = staged.put(e["path"], value.data, value.exec)

    async def after(journal: Journal) -> dict[str, Any]:
        await cp.snapshot("rolled back")
        return result

    return await _switch(root, entries, "rollback", task_id, journal_dir, shadow, result,
                         stage, after, keep_journal)  # fmt: skip


async def _refuse_in_the_way(root: Path, entries: list[dict[str, Any]], word: str) -> None:
    await fs.in_thread(fs.plan_old, root, entries)  # here the disk is the old state (checked)
    if problems := await fs.in_thread(fs.in_the_way, root, entries):
        raise ApplyError(
            f"{word} refused: {fs.described(problems)} would be overwritten or deleted; "
            "move them aside first (nothing was changed)"
        )


async def _switch(
    root: Path,
    entries: list[dict[str, Any]],
    kind: str,
    task_id: str,
    journal_dir: Path | None,
    shadow: Path,
    result: dict[str, Any],
    stage: Any,
    after: Any,
    keep_open: bool,
) -> dict[str, Any]:
    word = "apply" if kind == "apply" else "rollback"
    jdir = Path(journal_dir) if journal_dir else shadow.parent / "journal"
    # Not uuid4: the UI snapshots freeze it to number tasks; an apply must not count.
    op = f"{kind}-{task_id or 'plain'}-{secrets.token_hex(3)}"
    journal = Journal.begin(jdir, op, {
        "kind": kind, "flavour": "plain", "task_id": task_id, "workspace": str(root),
        "shadow_dir": str(shadow), "phase": "staging", "result": result,
    })  # fmt: skip
    try:
        await fs.in_thread(stage, journal)
        dirs = await fs.in_thread(fs.parent_modes, root, [e["path"] for e in entries])
        crashpoint(f"{kind}:staged")
        journal.save(phase="switching", entries=entries, dirs=dirs)
    except BaseException as exc:
        journal.close()
        fs.reraise(word, exc, False)
    sw = fs.Switch(root, journal.stage, entries, dirs, op)
    half = max(1, len(entries) // 2)
    sw.after_each = lambda done: crashpoint(f"{kind}:switching") if done == half else None
    crashpoint(f"{kind}:locked")
    try:
        await fs.in_thread(sw.forward)
        await fs.in_thread(lambda: journal.save(phase="switched"))  # the commit point
    except BaseException as exc:
        kept = await fs.in_thread(_undo, sw, journal, word)
        fs.reraise(word, exc, True, kept)
    crashpoint(f"{kind}:committed")
    try:
        done = await after(journal)
        journal.save(phase="done", result=done)
    except BaseException as exc:
        journal.release()  # done in the workspace; the next start records the rest
        raise ApplyError(
            f"{word} done, but recording it failed ({fs.why(exc)}); the next start of "
            "livhana-cockpit finishes that"
        ) from exc
    crashpoint(f"{kind}:done")
    if keep_open:
        return {**done, "journal": keep(journal)}
    journal.close()
    return done


def _undo(sw: fs.Switch, journal: Journal, word: str) -> list[str]:
    try:
        kept = fs.undo(sw, word)
    except ApplyError:
        journal.release()  # the next start (or `rollback`) takes it from here
        raise
    journal.close()
    return kept


async def recover_plain(journal: Journal) -> dict[str, Any]:
    """Finish (past "switched") or undo (before it) what a dead process left; see
    applyback.recover for the answer's shape."""
    data = journal.data
    word = "apply" if data["kind"] == "apply" else "rollback"
    result = dict(data.get("result") or {})
    phase = data.get("phase")
    if phase == "staging":
        return fs.recovered("untouched", f"the {word} had not changed the workspace yet", result)
    if phase == "done":
        return fs.recovered("finished", f"the {word} had finished", result)
    root = Path(data["workspace"])
    sw = fs.Switch(root, journal.stage, data["entries"], data.get("dirs", {}), journal.op)
    kept: list[str] = []
    if phase == "switched":
        try:
            await fs.in_thread(sw.forward, True)
        except fs.Conflict as exc:
            kept = [p for p, _ in exc.problems]
        cp = Checkpoints(root, Path(data["shadow_dir"]))
        snap = await cp.snapshot("applied (finished after a restart)" if word == "apply"
                                 else "rolled back (finished after a restart)")  # fmt: skip
        if word == "apply":
            result["applied_checkpoint"] = snap or await cp.current()
        return fs.recovered("finished", f"the {word} was finished", result, kept)
    try:
        await fs.in_thread(sw.back)
    except fs.Conflict as exc:
        kept = [p for p, _ in exc.problems]
    return fs.recovered("undone", f"the {word} was undone: the workspace is as before it",
                    result, kept)  # fmt: skip


NOTHING = "the apply changed nothing, so there was nothing to undo"
