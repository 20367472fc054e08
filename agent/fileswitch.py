"""Switching a set of paths in the operator's folder from their old content to their new
one, so that a crash at any point can be finished or undone, and nothing else in the folder
is ever written, deleted or followed.

A path's content is a Spec: {"kind": "file", "sha256", "exec"} or {"kind": "link",
"target"}, or None (absent). The plan is a list of entries {"path", "old", "new", "stat"}
("stat": the old file's identity when planned, so an unchanged file is known without
re-hashing it) and `dirs`, each parent folder's mode when planned (None: it did not exist).

    problems = in_the_way(root, entries)      # what of the operator's the plan would hit
    stage = Stage(stage_dir)                   # new contents are written there first:
    e["new"] = stage.put(e["path"], data, exec) or stage.put_link(e["path"], target)
    sw = Switch(root, stage_dir, entries, dirs, tag)
    sw.forward()     # old -> new; raises Conflict; entries already new are skipped
    sw.back()        # new -> old from the backups it made; entries already old are skipped

Every folder is entered with openat(O_NOFOLLOW): a symlink (or a file) where the plan needs a
folder stops the switch, so a write never lands outside through an operator's symlink. A new
file is renamed into place whole (never truncated in place); the old one is kept as a hard
link in stage_dir/old/<i> until the change is settled. So at every instant each path holds
its whole old or its whole new content, and both directions are plain renames.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import CockpitError

Spec = dict[str, Any]
DIR, OTHER = "dir", "other"  # states that no plan ever asks for
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_FD_CACHE = 128
WALK_LIMIT = 10_000  # a folder in the way is looked into this far, then called in the way


T = TypeVar("T")


@dataclass(frozen=True)
class Content:
    """A regular file's bytes and whether it is executable."""

    data: bytes
    exec: bool = False


@dataclass(frozen=True)
class Link:
    """A symlink, by its target (never what it points at)."""

    target: str


class ApplyError(CockpitError):
    """Apply or rollback refused or failed; one line for the operator saying what changed.
    Exit 2 (like bad input): the operator's workspace needs their action first."""

    exit_code = 2


class Blocked(Exception):
    """A part of the path that must be a folder is a symlink or a file."""

    def __init__(self, prefix: str, kind: str) -> None:
        super().__init__(f"{prefix} is a {kind}")
        self.prefix, self.kind = prefix, kind


class Conflict(Exception):
    """Paths that hold neither the plan's old nor its new content (the operator's)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{p} ({why})" for p, why in problems))
        self.problems = problems


def same(a: Spec | str | None, b: Spec | None) -> bool:
    if a is None or b is None or isinstance(a, str):
        return a is None and b is None
    if a["kind"] != b["kind"]:
        return False
    if a["kind"] == "link":
        return bool(a["target"] == b["target"])
    return bool(a["sha256"] == b["sha256"] and bool(a.get("exec")) == bool(b.get("exec")))


def ident(st: os.stat_result) -> list[int]:
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_mode]


def _split(rel: str) -> tuple[str, str]:
    head, _, name = rel.rpartition("/")
    return head, name


def _depth(entry: Spec) -> int:
    return str(entry["path"]).count("/")


class Tree:
    """A folder whose sub-folders are only ever entered through real directories."""

    def __init__(self, root: Path) -> None:
        self.fd = os.open(root, _DIR_FLAGS)
        self._fds: dict[str, int] = {}

    def close(self) -> None:
        self.forget()
        os.close(self.fd)

    def forget(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()

    def dir(self, rel: str, create: dict[str, int | None] | None = None) -> int | None:
        """The fd of folder `rel` ("" is the root). None when a part is missing, unless
        `create` (modes by folder) says to make it; Blocked when a part is not a folder."""
        if not rel:
            return self.fd
        if rel in self._fds:
            return self._fds[rel]
        head, name = _split(rel)
        parent = self.dir(head, create)
        if parent is None:
            return None
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if create is None:
                return None
            os.mkdir(name, 0o777, dir_fd=parent)
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            if create.get(rel) is not None:
                os.fchmod(fd, int(create[rel] or 0))
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                raise Blocked(rel, "symlink" if stat.S_ISLNK(st.st_mode) else "file") from None
            raise
        if len(self._fds) >= _FD_CACHE:
            self.forget()  # `parent` may close with it: it is not used again below
        self._fds[rel] = fd
        return fd

    def lstat(self, rel: str) -> tuple[int, str, os.stat_result] | None:
        head, name = _split(rel)
        fd = self.dir(head)
        if fd is None:
            return None
        try:
            return fd, name, os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def state(self, rel: str, entry: Spec | None = None) -> Spec | str | None:
        """What `rel` holds now: a Spec, None (absent), DIR or OTHER. Blocked propagates."""
        found = self.lstat(rel)
        if found is None:
            return None
        fd, name, st = found
        if entry is not None and entry.get("stat") == ident(st):
            return dict(entry["old"])  # untouched since planned: no need to hash it again
        if stat.S_ISLNK(st.st_mode):
            return {"kind": "link", "target": os.readlink(name, dir_fd=fd)}
        if stat.S_ISDIR(st.st_mode):
            return DIR
        if not stat.S_ISREG(st.st_mode):
            return OTHER
        return {"kind": "file", "sha256": _hash(fd, name), "exec": bool(st.st_mode & 0o100)}


def _hash(dir_fd: int, name: str) -> str:
    fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    try:
        digest = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            digest.update(chunk)
        return digest.hexdigest()
    finally:
        os.close(fd)


def disk_state(root: Path, paths: Iterable[str]) -> dict[str, Spec | str | None]:
    """What each path holds now, never following a symlink; "blocked:<prefix>" when a part
    of it is not a real folder."""
    tree = Tree(root)
    out: dict[str, Spec | str | None] = {}
    try:
        for rel in paths:
            try:
                out[rel] = tree.state(rel)
            except Blocked as exc:
                out[rel] = f"blocked:{exc.prefix}"
    finally:
        tree.close()
    return out


def plan_old(root: Path, entries: list[Spec]) -> None:
    """Fill each entry's "old" and "stat" from the disk (after the flavour's own checks
    said the disk holds what the task started from)."""
    tree = Tree(root)
    try:
        for e in entries:
            try:
                found = tree.lstat(e["path"])
                state = tree.state(e["path"])
            except Blocked:
                found, state = None, None
            e["old"] = state if isinstance(state, dict) else None
            e["stat"] = ident(found[2]) if found is not None and e["old"] else None
    finally:
        tree.close()


def parent_modes(root: Path, paths: Iterable[str]) -> dict[str, int | None]:
    """Every parent folder of `paths`: its mode, or None when it does not exist (yet)."""
    modes: dict[str, int | None] = {}
    tree = Tree(root)
    try:
        for rel in paths:
            parts = rel.split("/")[:-1]
            for k in range(1, len(parts) + 1):
                prefix = "/".join(parts[:k])
                if prefix in modes:
                    continue
                try:
                    found = tree.lstat(prefix)
                except Blocked:
                    found = None
                ok = found is not None and stat.S_ISDIR(found[2].st_mode)
                modes[prefix] = stat.S_IMODE(found[2].st_mode) if ok and found else None
    finally:
        tree.close()
    return modes


def in_the_way(root: Path, entries: list[Spec]) -> list[tuple[str, str]]:
    """What of the operator's stands where the plan writes or deletes, as (path, why):
    a symlink or a file where the plan needs a folder, a folder (with things the plan does
    not remove) where it needs a file, anything where it expects nothing, another kind of
    thing than it expects. Content is the flavour's check; this is the shape."""
    removed = {e["path"]: e["old"] for e in entries if e["old"] is not None and e["new"] is None}
    problems: list[tuple[str, str]] = []
    tree = Tree(root)
    try:
        for e in entries:
            rel = e["path"]
            try:
                found = tree.lstat(rel)
            except Blocked as exc:
                old = removed.get(exc.prefix)
                kind = "link" if exc.kind == "symlink" else "file"
                if old is None or old["kind"] != kind:
                    problems.append(
                        (exc.prefix, f"your {exc.kind}, which the task needs as a folder")
                    )
                continue
            if found is None:
                if e["old"] is not None and e["new"] is not None:
                    problems.append((rel, "gone from your workspace"))
                continue
            fd, name, st = found
            want = e["old"]
            if stat.S_ISDIR(st.st_mode):
                if not _only_removed(fd, name, rel, removed):
                    problems.append((rel + "/", "your folder, where the task puts a file"))
            elif not (stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode)):
                problems.append((rel, "a special file of yours"))
            elif want is None:
                kind = "symlink" if stat.S_ISLNK(st.st_mode) else "file"
                problems.append((rel, f"your {kind}, not tracked, where the task puts its own"))
            elif (want["kind"] == "link") != stat.S_ISLNK(st.st_mode):
                problems.append((rel, "changed from a file to a symlink or back"))
    finally:
        tree.close()
    return problems


def _only_removed(parent_fd: int, name: str, rel: str, removed: dict[str, Spec]) -> bool:
    """Whether everything inside folder `rel` is something the plan removes."""
    seen = 0
    top = os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
    try:
        for folder, dirs, files, fd in os.fwalk(".", dir_fd=top, follow_symlinks=False):
            for item in [*files, *dirs]:
                st = os.stat(item, dir_fd=fd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    continue  # fwalk goes in (a symlink to a folder is not a folder here)
                seen += 1
                path = os.path.normpath(f"{rel}/{folder}/{item}")
                if seen > WALK_LIMIT or path not in removed:
                    return False
    finally:
        os.close(top)
    return True


class Stage:
    """New contents, written whole (at stage/new/<path>) before anything in the workspace
    changes; backups of old ones (stage/old/<i>) while it changes."""

    def __init__(self, directory: Path) -> None:
        self.new, self.old = Path(directory) / "new", Path(directory) / "old"
        self.new.mkdir(parents=True, exist_ok=True)
        self.old.mkdir(parents=True, exist_ok=True)

    def path(self, rel: str) -> Path:
        return self.new / rel

    def _fresh(self, rel: str) -> Path:
        path = self.path(rel)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return path

    def put(self, rel: str, data: bytes | memoryview, exec_: bool = False) -> Spec:
        path = self._fresh(rel)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o777 if exec_ else 0o666)  # fmt: skip
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        spec = self.spec(rel)
        assert spec is not None
        return spec

    def put_link(self, rel: str, target: str) -> Spec:
        os.symlink(target, self._fresh(rel))
        return {"kind": "link", "target": target}

    def spec(self, rel: str) -> Spec | None:
        """What is staged for `rel` (the umask decided the mode bits, as for git)."""
        path = self.path(rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return None
        if stat.S_ISLNK(st.st_mode):
            return {"kind": "link", "target": os.readlink(path)}
        fd = os.open(path.parent, _DIR_FLAGS)
        try:
            digest = _hash(fd, path.name)
        finally:
            os.close(fd)
        return {"kind": "file", "sha256": digest, "exec": bool(st.st_mode & 0o100)}


class Switch:
    def __init__(
        self,
        root: Path,
        stage_dir: Path,
        entries: list[Spec],
        dirs: dict[str, int | None],
        tag: str,
    ) -> None:
        self.root, self.entries, self.dirs = Path(root), entries, dirs
        self.stage = Stage(stage_dir)
        self.tmp_suffix = f".livhana-{tag}"
        self.after_each: Any = None  # test hook: called with the count of entries done

    # -- old -> new --------------------------------------------------------------------------
    def forward(self, keep_going: bool = False) -> None:
        """Old -> new. The first path holding something else stops it with a Conflict, or,
        with `keep_going` (finishing after a crash), is left alone and raised at the end."""
        problems: list[tuple[str, str]] = []
        tree = Tree(self.root)
        done = 0
        try:
            removals = sorted((e for e in self.entries if e["new"] is None), key=_depth,
                              reverse=True)  # fmt: skip
            placements = sorted((e for e in self.entries if e["new"] is not None), key=_depth)
            for e in [*removals, *placements]:
                try:
                    self._remove(tree, e) if e["new"] is None else self._place(tree, e)
                except Conflict as exc:
                    if not keep_going:
                        raise
                    problems += exc.problems
                done += 1
                self._tick(done)
        finally:
            tree.close()
        if problems:
            raise Conflict(problems)

    def _tick(self, done: int) -> None:
        if self.after_each is not None:
            self.after_each(done)

    def _remove(self, tree: Tree, e: Spec) -> None:
        rel, i = e["path"], e["i"]
        try:
            now = tree.state(rel, e)
        except Blocked as exc:
            raise Conflict([(exc.prefix, f"made a {exc.kind} by you")]) from None
        if now is None:
            return
        if not same(now, e["old"]):
            raise Conflict([(rel, "changed")])
        fd, name = tree.dir(_split(rel)[0]), _split(rel)[1]
        assert fd is not None
        self._backup(fd, name, i)
        os.unlink(name, dir_fd=fd)
        self._prune(tree, rel)

    def _prune(self, tree: Tree, rel: str) -> None:
        """Folders the removal emptied go too (as git does); one with anything left stays."""
        head = _split(rel)[0]
        pruned = False
        while head:
            parent, name = _split(head)
            fd = tree.dir(parent)
            if fd is None:
                break
            try:
                os.rmdir(name, dir_fd=fd)
            except OSError:
                break
            pruned = True
            head = parent
        if pruned:
            tree.forget()

    def _place(self, tree: Tree, e: Spec) -> None:
        rel, i = e["path"], e["i"]
        head, name = _split(rel)
        try:
            fd = tree.dir(head, create=self.dirs)
            now = tree.state(rel, e)
        except Blocked as exc:
            raise Conflict([(exc.prefix, f"made a {exc.kind} by you")]) from None
        assert fd is not None
        if same(now, e["new"]):
            return
        if now is not None and not same(now, e["old"]):
            raise Conflict([(rel, "changed" if e["old"] else "made by you")])
        if now is None and e["old"] is not None and not os.path.lexists(self.stage.old / str(i)):
            raise Conflict([(rel, "removed")])
        src = self.stage.path(rel)
        if not os.path.lexists(src):
            raise Conflict([(rel, "changed")])
        if now is not None:
            self._backup(fd, name, i)
        self._move_in(src, fd, name)

    def _backup(self, fd: int, name: str, i: int) -> None:
        backup = self.stage.old / str(i)
        if os.path.lexists(backup):
            return
        try:
            os.link(name, backup, src_dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            _copy_out(fd, name, backup)  # another file system: a copy serves as well

    def _move_in(self, src: Path, fd: int, name: str) -> None:
        try:
            os.replace(src, name, dst_dir_fd=fd)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        # Another file system: copy beside the target, then rename (still never half a file).
        tmp = f".{name}{self.tmp_suffix}"
        try:
            _copy_in(src, fd, tmp)
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=fd)
            raise
        src.unlink()

    # -- new -> old --------------------------------------------------------------------------
    def back(self) -> None:
        """Put every path back to its old content. Paths that hold something else (the
        operator changed them meanwhile) are left alone and raised as a Conflict at the end,
        after everything else is back."""
        problems: list[tuple[str, str]] = []
        tree = Tree(self.root)
        try:
            for e in sorted((e for e in self.entries if e["new"] is not None), key=_depth,
                            reverse=True):  # fmt: skip
                self._unplace(tree, e, problems)
            tree.forget()
            for e in sorted((e for e in self.entries if e["old"] is not None), key=_depth):
                self._restore(tree, e, problems)
            tree.forget()
            for folder in sorted((d for d, m in self.dirs.items() if m is None), reverse=True):
                with contextlib.suppress(OSError, Blocked):
                    head, name = _split(folder)
                    fd = tree.dir(head)
                    if fd is not None:
                        os.rmdir(name, dir_fd=fd)  # only if empty: it was not there before
        finally:
            tree.close()
        if problems:
            raise Conflict(problems)

    def _unplace(self, tree: Tree, e: Spec, problems: list[tuple[str, str]]) -> None:
        rel, i = e["path"], e["i"]
        head, name = _split(rel)
        try:
            fd = tree.dir(head)
            if fd is None:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f".{name}{self.tmp_suffix}", dir_fd=fd)
            now = tree.state(rel, e)
        except Blocked as exc:
            problems.append((exc.prefix, f"your {exc.kind} in the way"))
            return
        if now is None or same(now, e["old"]):
            return
        if not same(now, e["new"]):
            problems.append((rel, "changed meanwhile"))
            return
        backup = self.stage.old / str(i)
        if e["old"] is None:
            os.unlink(name, dir_fd=fd)
        elif os.path.lexists(backup):
            self._move_in(backup, fd, name)
        else:
            problems.append((rel, "its old content is lost"))

    def _restore(self, tree: Tree, e: Spec, problems: list[tuple[str, str]]) -> None:
        rel, i = e["path"], e["i"]
        head, name = _split(rel)
        try:
            now = tree.state(rel, e)
            if now is not None:
                if not same(now, e["old"]) and (rel, "changed meanwhile") not in problems:
                    problems.append((rel, "changed meanwhile"))
                return
            backup = self.stage.old / str(i)
            if not os.path.lexists(backup):
                problems.append((rel, "removed meanwhile"))
                return
            fd = tree.dir(head, create=self.dirs)
        except Blocked as exc:
            problems.append((exc.prefix, f"your {exc.kind} in the way"))
            return
        assert fd is not None
        self._move_in(backup, fd, name)

    def status(self) -> dict[str, str]:
        """Per path: "old", "new" or "neither" (absent counts as either where allowed)."""
        out: dict[str, str] = {}
        tree = Tree(self.root)
        try:
            for e in self.entries:
                try:
                    now = tree.state(e["path"], e)
                except Blocked:
                    out[e["path"]] = "neither"
                    continue
                out[e["path"]] = (
                    "new" if same(now, e["new"]) else "old" if same(now, e["old"]) else "neither"
                )
        finally:
            tree.close()
        return out


def _copy_out(fd: int, name: str, dest: Path) -> None:
    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=fd), dest)
        return
    src = os.open(name, _READ_FLAGS, dir_fd=fd)
    try:
        out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while chunk := os.read(src, 1 << 20):
                os.write(out, chunk)
            os.fchmod(out, stat.S_IMODE(st.st_mode))
        finally:
            os.close(out)
    finally:
        os.close(src)


def _copy_in(src: Path, fd: int, name: str) -> None:
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), name, dir_fd=fd)
        return
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    out = os.open(name, flags, 0o600, dir_fd=fd)
    try:
        with open(src, "rb") as fh:
            while chunk := fh.read(1 << 20):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
        os.fchmod(out, stat.S_IMODE(st.st_mode))
    finally:
        os.close(out)


def link_escapes(root: Path, entries: list[Spec]) -> list[tuple[str, str]]:
    """New symlinks whose target leaves `root`: absolute, or climbing out with `..`, also
    through another link (the plan's new ones, else what the disk has). (path, target)."""
    links = {
        e["path"]: e["new"]["target"] for e in entries if e["new"] and e["new"]["kind"] == "link"
    }
    gone = {e["path"] for e in entries if e["new"] is None or e["new"]["kind"] != "link"}
    tree = Tree(root)
    try:

        def link_at(rel: str) -> str | None:
            if rel in links:
                return links[rel]
            if rel in gone:
                return None
            try:
                found = tree.lstat(rel)
            except Blocked:
                return None
            if found is None or not stat.S_ISLNK(found[2].st_mode):
                return None
            return os.readlink(found[1], dir_fd=found[0])

        return [(rel, t) for rel, t in sorted(links.items()) if _escapes(rel, t, link_at)]
    finally:
        tree.close()


def _escapes(rel: str, target: str, link_at: Any) -> bool:
    """Resolve `target` (of the link at `rel`) inside a virtual root, following links up
    to 40 hops (the kernel's limit): leaving the root, or looping, counts as escaping."""
    if target.startswith("/"):
        return True
    pending = target.split("/")
    parts = rel.split("/")[:-1]  # where the link sits
    hops = 0
    while pending:
        name = pending.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            if not parts:
                return True
            parts.pop()
            continue
        here = "/".join([*parts, name])
        found = link_at(here)
        if found is None:
            parts.append(name)
            continue
        hops += 1
        if hops > 40 or found.startswith("/"):
            return True
        pending = found.split("/") + pending  # relative to the link's own folder
    return False


def matches(now: Spec | str | None, want: bytes | Content | Link | None) -> bool:
    """Whether what a path holds (`disk_state`) is `want`; plain bytes ignore the mode."""
    if want is None or now is None or isinstance(now, str):
        return want is None and now is None
    if isinstance(want, Link):
        return bool(now["kind"] == "link" and now["target"] == want.target)
    data = want.data if isinstance(want, Content) else bytes(want)
    if now["kind"] != "file" or now["sha256"] != hashlib.sha256(data).hexdigest():
        return False
    return not isinstance(want, Content) or bool(now["exec"]) == want.exec


def listed(paths: list[str], limit: int = 3) -> str:
    more = f" and {len(paths) - limit} more" if len(paths) > limit else ""
    return ", ".join(paths[:limit]) + more


def described(problems: list[tuple[str, str]], limit: int = 3) -> str:
    return listed([f"{path} ({why})" for path, why in problems], limit)


async def to_the_end(awaitable: Awaitable[T]) -> T:
    """Await it to its end even if we are cancelled meanwhile (half an apply or rollback is
    worse than a late stop); a cancel is re-raised once it is done."""
    future = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(future)
            break
        except asyncio.CancelledError:
            if future.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """Blocking file work, off the event loop and run to its end (`to_the_end`). A thread
    also keeps KeyboardInterrupt out: Python raises it in the main thread only."""
    return await to_the_end(asyncio.to_thread(fn, *args))


def outside_message(bad: list[tuple[str, str]]) -> str:
    links = listed([f"{path} -> {target}" for path, target in bad])
    return (
        f"apply refused: the task made symlink(s) pointing outside the workspace ({links}); "
        "nothing was changed"
    )


def nearly_full(path: Path, margin: int = 1 << 20) -> bool:
    """Whether the file system holding `path` has (almost) no room left."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < margin


def why(exc: BaseException) -> str:
    """An error in a few words (an OSError by its strerror: "no space left on device")."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def reraise(word: str, exc: BaseException, undone: bool, kept: list[str] | None = None) -> None:
    """Raise what a failed apply/rollback should: a refusal as it is, a cancel or Ctrl-C as
    it is (after the undo), anything else as one line saying what became of the workspace."""
    if isinstance(exc, ApplyError) or not isinstance(exc, Exception):
        raise exc
    done = "undone: your workspace is as it was" if undone else "nothing was changed"
    if kept:
        done += f", except {listed(kept)}, changed meanwhile and left exactly as you have it"
    if isinstance(exc, Conflict):  # the operator's doing while it ran: theirs wins
        raise ApplyError(f"{word} stopped: {described(exc.problems)} meanwhile; {done}") from exc
    raise ApplyError(f"{word} failed ({why(exc)}); {done}") from exc


def undo(sw: Switch, word: str) -> list[str]:
    """Put everything back; the paths left alone because they changed meanwhile."""
    try:
        sw.back()
    except Conflict as exc:
        return [path for path, _ in exc.problems]
    except OSError as exc:
        raise ApplyError(
            f"{word} failed and could not be fully undone ({why(exc)}); the next start of "
            "livhana-cockpit settles it"
        ) from exc
    return []


def recovered(
    outcome: str, message: str, result: dict[str, Any], kept: list[str] | None = None
) -> dict[str, Any]:
    """What recovering a journal did: "untouched", "undone" or "finished", in words; `kept`
    are paths that held neither version (the operator's since): left exactly as they are."""
    kept = kept or []
    if kept:
        message += (
            f", except {listed(kept)}, which changed meanwhile and is left exactly as you have it"
        )
    return {"outcome": outcome, "message": message, "result": result, "kept": kept}
