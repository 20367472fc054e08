"""Worktree confinement: the one way a tool reaches a path of the task's worktree.

A model-supplied path is resolved one component at a time from an open descriptor of the
worktree root, never by handing the kernel a path it would resolve by itself:
- every component is looked at with lstat and opened with O_NOFOLLOW relative to the
  descriptor of its folder, so a link swapped in concurrently makes the open fail instead
  of leading somewhere else;
- symbolic links are read and followed here, by the same rules: a link may lead anywhere
  inside the worktree (`docs -> ../shared/docs` from a subfolder is fine) but a `..` that
  would climb above the root, an absolute target outside it (`/etc`, `/proc/self/root/...`,
  `$HOME/...`), or more than MAX_LINKS links is a refusal, whether the target exists or
  not (a dangling link is not an existence oracle either: the outside is never looked at);
- `..` never reaches the kernel: it pops our own stack of folder descriptors.
Regular files are opened O_NONBLOCK (a FIFO cannot hang us) and checked with fstat.

Hard links cannot be told apart: a file with st_nlink > 1 may have its other name
outside the worktree, and nothing says where. So writes never go through one: a write
makes a new file and renames it over the old name (`write_bytes`), which leaves the other
name's file untouched. Reads of such a file are allowed: making the link needed read
access to the file already (and the sandbox shows the model nothing outside the worktree
and what a build needs), so it reveals nothing the linker could not read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ToolError
from ..text import lone_surrogate

MAX_LINKS = 40  # like the kernel's ELOOP limit
MAX_DEPTH = 128  # folders deep; also bounds the descriptors held at once
MAX_PATH_BYTES = 4095  # PATH_MAX - 1
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def shown(name: str, limit: int = 120) -> str:
    """A path for a message: quoted, with escapes for what is not printable (a lone
    surrogate included), bounded."""
    return repr(name if len(name) <= limit else name[: limit - 1] + "…")


def parse(raw: object) -> list[str]:
    """The components of a model-supplied path, or a ToolError saying why not.

    Refuses absolute paths, `~`, `..` components, NUL bytes, lone surrogates and paths
    longer than PATH_MAX. Unicode is NFKC-normalised first and backslashes are separators,
    so look-alike dots and slashes count as what they look like. [] is the root itself.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise ToolError("path must be a non-empty string")
    if bad := lone_surrogate(raw):
        raise ToolError(
            f"path {shown(raw)} is not valid Unicode (a lone surrogate {bad}): name files in UTF-8"
        )
    text = unicodedata.normalize("NFKC", raw)
    if "\x00" in text:
        raise ToolError(f"path {shown(raw)} contains a NUL byte")
    if text.startswith(("/", "\\", "~")) or (len(text) > 1 and text[1] == ":"):
        raise ToolError(f"path {shown(raw)} is absolute; use a path relative to the workspace")
    parts = [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ToolError(f"path {shown(raw)} leaves the workspace ('..' is not allowed)")
    if len(os.fsencode(text)) > MAX_PATH_BYTES:
        raise ToolError(f"path {shown(raw)} is too long ({len(text):,} characters)")
    return parts


@dataclass
class Place:
    """Where a path ended up: a folder (`name` None; `fd` is the folder) or an entry
    `name` of the folder `fd` (`st` its lstat, None when it does not exist yet). `rel` is
    its physical path from the root, without links. Owns `fd`: use it in a `with`."""

    fd: int
    rel: str
    name: str | None = None
    st: os.stat_result | None = None

    @property
    def is_dir(self) -> bool:
        return self.name is None

    @property
    def is_file(self) -> bool:
        return self.st is not None and stat.S_ISREG(self.st.st_mode)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def __enter__(self) -> Place:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Root:
    """The worktree root: its real path (the engine's, trusted) and how to open it."""

    path: Path
    real: str = field(init=False)

    def __post_init__(self) -> None:
        self.real = os.path.realpath(self.path)

    def open(self) -> int:
        return os.open(self.real, _DIR & ~os.O_NOFOLLOW)

    def inside(self, target: str) -> list[str] | None:
        """An absolute link target as components below the root, or None (outside)."""
        for prefix in {self.real, os.path.abspath(self.path)}:
            if target == prefix or target.startswith(prefix.rstrip("/") + "/"):
                return target[len(prefix) :].split("/")
        return None


def locate(root: Path | Root, raw: object, *, create_dirs: bool = False) -> Place:
    """Resolve a model-supplied path inside `root` (see the module doc). With
    `create_dirs`, missing folders on the way are made (for a write)."""
    parts = parse(raw)
    return resolve(root if isinstance(root, Root) else Root(root), parts, str(raw), create_dirs)


def resolve(root: Root, parts: list[str], label: str, create_dirs: bool = False) -> Place:
    """Resolve `parts` (already checked, or from a link we read) below `root`."""
    stack = [root.open()]
    names: list[str] = []
    todo = list(parts)
    links = 0
    via = ""  # the last link taken, named when its target climbs out
    try:
        while todo:
            name = todo.pop(0)
            if name in ("", "."):
                continue
            if name == "..":
                if len(stack) == 1:  # only a link's target holds `..` (parse refuses it)
                    raise ToolError(
                        f"{shown(label)}: the symbolic link {shown(via)} leads outside the workspace"
                    )
                os.close(stack.pop())
                names.pop()
                continue
            st = _lstat(stack[-1], name)
            if st is None and todo and create_dirs:
                st = _mkdir(stack[-1], name)
            if st is None:
                if todo:
                    raise ToolError(
                        f"{shown(label)}: no such file or folder ({shown('/'.join(names + [name]))})"
                    )
                return Place(stack.pop(), "/".join(names + [name]), name, None)
            if stat.S_ISLNK(st.st_mode):
                links += 1
                via = "/".join(names + [name])
                if links > MAX_LINKS:
                    raise ToolError(f"{shown(label)}: too many levels of symbolic links")
                target = os.readlink(name, dir_fd=stack[-1])
                if not target:  # the kernel finds nothing there either
                    raise ToolError(f"{shown(label)}: the symbolic link {shown(via)} is empty")
                if target.startswith("/"):
                    below = root.inside(target)
                    if below is None:
                        raise ToolError(
                            f"{shown(label)}: the symbolic link {shown(via)} leads outside the "
                            "workspace"
                        )
                    while len(stack) > 1:  # restart from the root
                        os.close(stack.pop())
                    names.clear()
                    todo[:0] = below
                else:
                    todo[:0] = target.split("/")
                continue
            if stat.S_ISDIR(st.st_mode):
                if len(stack) > MAX_DEPTH:
                    raise ToolError(f"{shown(label)}: nested too deeply (over {MAX_DEPTH} folders)")
                stack.append(_open_dir(stack[-1], name, st, label))
                names.append(name)
                continue
            if todo:
                raise ToolError(
                    f"{shown(label)}: {shown('/'.join(names + [name]))} is not a folder"
                )
            return Place(stack.pop(), "/".join(names + [name]), name, st)
        return Place(stack.pop(), "/".join(names) or ".")
    except OSError as exc:
        raise ToolError(f"{shown(label)}: {exc.strerror or exc}") from None
    finally:
        for fd in stack:
            os.close(fd)


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _mkdir(dir_fd: int, name: str) -> os.stat_result | None:
    with contextlib.suppress(FileExistsError):  # made meanwhile (maybe as a link): look again
        os.mkdir(name, 0o777, dir_fd=dir_fd)
    return _lstat(dir_fd, name)


def _open_dir(dir_fd: int, name: str, st: os.stat_result, label: str) -> int:
    try:
        fd = os.open(name, _DIR, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise ToolError(f"{shown(label)}: changed while it was being opened") from None
        raise
    got = os.fstat(fd)
    if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise ToolError(f"{shown(label)}: changed while it was being opened")
    return fd


def open_entry(place: Place, label: str) -> int:
    """Open the regular file `place` names for reading (no link, no FIFO, no device)."""
    if place.is_dir or place.st is None:
        raise ToolError(f"{shown(label)}: no such file")
    return open_regular(place.fd, place.name or "", place.st, label)


def open_regular(dir_fd: int, name: str, st: os.stat_result | None, label: str) -> int:
    """Open the regular file `name` of `dir_fd`; `st` (its lstat) must still match."""
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise ToolError(f"{shown(label)} is not a regular file ({_kind(st.st_mode)})")
    try:
        fd = os.open(name, _FILE, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ToolError(f"{shown(label)}: changed while it was being opened") from None
        raise ToolError(f"{shown(label)}: {exc.strerror}") from None
    got = os.fstat(fd)
    if not stat.S_ISREG(got.st_mode) or (
        st is not None and (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino)
    ):
        os.close(fd)
        raise ToolError(f"{shown(label)}: changed while it was being opened")
    os.set_blocking(fd, True)
    return fd


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISLNK, "a symbolic link"),
    ):
        if test(mode):
            return name
    return "not a file"


def read_fd(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from the start of `fd`."""
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_bytes(root: Path | Root, raw: object, limit: int) -> tuple[str, bytes, int]:
    """(physical rel path, up to `limit` bytes, file size) of a regular file."""
    with locate(root, raw) as place:
        if place.is_dir:
            raise ToolError(f"{shown(str(raw))} is a folder")
        if place.st is None:
            raise ToolError(f"{shown(str(raw))}: no such file")
        fd = open_entry(place, str(raw))
        try:
            return place.rel, read_fd(fd, limit), os.fstat(fd).st_size
        finally:
            os.close(fd)


def is_git_path(rel: str) -> bool:
    return any(part.casefold() == ".git" for part in rel.split("/"))


def write_bytes(root: Path | Root, raw: object, data: bytes) -> tuple[str, bool]:
    """Write a whole file inside `root`: (physical rel path, whether it existed).

    The data goes to a new file that is then renamed over the name, so a hard link or a
    link swapped in at the last moment is replaced, never written through."""
    if is_git_path("/".join(parse(raw))):
        raise ToolError("writing inside .git is not allowed")
    with locate(root, raw, create_dirs=True) as place:
        label = str(raw)
        if place.is_dir:
            raise ToolError(f"{shown(label)} is a folder")
        if is_git_path(place.rel):
            raise ToolError("writing inside .git is not allowed")
        existed = place.st is not None
        if place.st is not None and not stat.S_ISREG(place.st.st_mode):
            raise ToolError(f"{shown(label)} is not a regular file ({_kind(place.st.st_mode)})")
        try:
            _replace(place, data)
        except OSError as exc:  # a full disk, a read-only folder: one line, nothing half-written
            raise ToolError(f"{shown(label)}: not written: {exc.strerror or exc}") from None
        return place.rel, existed


def _replace(place: Place, data: bytes) -> None:
    tmp = f".livhana-{secrets.token_hex(6)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, 0o666, dir_fd=place.fd)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if place.st is not None:  # keep the mode (an executable stays executable)
                os.fchmod(fd, stat.S_IMODE(place.st.st_mode))
        finally:
            os.close(fd)
        os.replace(tmp, place.name or "", src_dir_fd=place.fd, dst_dir_fd=place.fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=place.fd)
        raise


@dataclass
class WalkReport:
    """What a walk left out, so the tool can say so."""

    links_out: list[str] = field(default_factory=list)  # links leaving the tree (or nowhere)
    too_deep: int = 0
    stopped_at: int = 0  # entries seen when the entry budget ran out; 0: walked it all

    def notes(self) -> list[str]:
        out = []
        if self.links_out:
            names = ", ".join(shown(n, 60) for n in self.links_out[:5])
            more = f" and {len(self.links_out) - 5} more" if len(self.links_out) > 5 else ""
            out.append(
                f"skipped {len(self.links_out)} symbolic link(s) that lead outside the "
                f"workspace or nowhere: {names}{more}"
            )
        if self.too_deep:
            out.append(f"skipped {self.too_deep} folder(s) nested over {MAX_DEPTH} deep")
        if self.stopped_at:
            out.append(f"stopped after {self.stopped_at:,} entries: narrow the path")
        return out


def walk_files(
    root: Root,
    start: Place,
    report: WalkReport,
    *,
    skip_dirs: frozenset[str] = frozenset(),
    max_entries: int = 200_000,
) -> Iterator[tuple[str, int, str, os.stat_result]]:
    """(rel, folder fd, name, lstat) of every regular file below the folder `start`, in
    name order, without following any link. Links inside the tree are skipped quietly
    (their targets are walked at their own place); links leaving it go in `report`.
    The folder fd is only valid until the next item."""
    assert start.is_dir
    first = os.dup(start.fd)
    stack: list[tuple[int, str, list[os.DirEntry[str]]]] = []
    seen = 0

    def push(fd: int, rel: str) -> None:
        nonlocal seen
        with os.scandir(fd) as it:
            entries = []
            for entry in it:
                seen += 1
                if seen > max_entries:
                    report.stopped_at = max_entries
                    break
                entries.append(entry)
        entries.sort(key=lambda e: e.name, reverse=True)  # popped from the end: name order
        stack.append((fd, rel, entries))

    try:
        push(first, "" if start.rel == "." else start.rel)
        while stack:
            fd, rel, entries = stack[-1]
            if not entries:
                os.close(fd)
                stack.pop()
                continue
            entry = entries.pop()
            path = f"{rel}/{entry.name}" if rel else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                if link_leaves(root, path):
                    report.links_out.append(path)
            elif stat.S_ISDIR(st.st_mode):
                if entry.name in skip_dirs or report.stopped_at:
                    continue
                if len(stack) >= MAX_DEPTH:
                    report.too_deep += 1
                    continue
                try:
                    sub = _open_dir(fd, entry.name, st, path)
                except (OSError, ToolError):
                    continue
                push(sub, path)
            elif stat.S_ISREG(st.st_mode):
                yield path, fd, entry.name, st
    finally:
        for fd, _, _ in stack:
            with contextlib.suppress(OSError):
                os.close(fd)


def link_leaves(root: Root, rel: str) -> bool:
    """True when the link at `rel` (a physical path) leads outside the tree or nowhere."""
    try:
        with resolve(root, rel.split("/"), rel) as place:
            return place.st is None and not place.is_dir
    except ToolError:
        return True


# -- small look-ups (runner detection and the like): never an error, never outside ----------
def peek(root: Path | Root, rel: str, limit: int = 1_000_000) -> str:
    """The text of a regular file inside the tree, or "" (missing, refused, not a file)."""
    try:
        return read_bytes(root, rel, limit)[1].decode("utf-8", "replace")
    except ToolError:
        return ""


def exists(root: Path | Root, rel: str) -> bool:
    """True when `rel` names something inside the tree: a file, a folder, or a link at its
    last component (a venv's `bin/python` links to the system's, and that is fine)."""
    head, _, last = rel.rpartition("/")
    try:
        with locate(root, head or ".") as folder:
            if not folder.is_dir:
                return False
            return _lstat(folder.fd, last) is not None
    except ToolError:
        return False


def has_file(root: Path | Root, folder: str, pattern: str, *, deep: bool) -> bool:
    """True when a regular file whose name matches `pattern` lies in `folder` (or below it,
    with `deep`; links never followed, at most 20,000 entries looked at)."""
    import fnmatch

    root = root if isinstance(root, Root) else Root(root)
    try:
        with locate(root, folder) as top:
            if not top.is_dir:
                return False
            if not deep:
                with os.scandir(top.fd) as it:
                    return any(
                        e.is_file(follow_symlinks=False) and fnmatch.fnmatch(e.name, pattern)
                        for e in it
                    )
            report = WalkReport()
            files = walk_files(root, top, report, max_entries=20_000)
            return any(fnmatch.fnmatch(name, pattern) for _, _, name, _ in files)
    except (ToolError, OSError):
        return False
