"""agent/tools/confine.py, the one way a tool reaches a worktree path: links out of the tree
(files, folders in the middle, chains, absolute, /proc/self/root, dangling) are refused,
links inside are followed, FIFOs never block, writes never go through a hard link, a
concurrent swap cannot lead a read outside, and walks name the links they skipped."""

from __future__ import annotations

import os
import stat
import threading
import uuid
from pathlib import Path

import pytest

from agent.errors import ToolError
from agent.tools import confine

SECRET = f"OUTSIDE-{uuid.uuid4().hex}"


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """A worktree `wt` beside an `outside` folder holding a secret, and links of every kind."""
    root, outside = tmp_path / "wt", tmp_path / "outside"
    (root / "sub" / "inner").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (root / "app.py").write_text("print('hi')\n")
    (root / "sub" / "inner" / "note.txt").write_text("inside\n")
    links = {
        "out_file": str(outside / "secret.txt"),  # absolute, outside
        "out_rel": "../outside/secret.txt",
        "out_dir": "../outside",  # a folder in the middle of a path
        "chain1": "chain2",
        "chain2": "sub/../../outside",
        "proc_root": "/proc/self/root",
        "proc_cwd": "/proc/self/cwd",
        "dangling_out": "../outside/not-yet.txt",
        "dangling_in": "sub/later.txt",
        "loop_a": "loop_b",
        "loop_b": "loop_a",
        "abs_in": str(root / "sub" / "inner"),  # absolute, but inside: allowed
        "sub/up": "..",  # the root itself: allowed
        "sub/upup": "../..",
        "inner_link": "sub/inner",
    }
    for name, target in links.items():
        os.symlink(target, root / name)
    return root, outside


REFUSED = [
    "out_file",
    "out_rel",
    "out_dir/secret.txt",
    "out_dir",
    "chain1/secret.txt",
    "proc_root" + "/etc/passwd",
    "proc_cwd",
    "dangling_out",
    "loop_a",
    "sub/upup/outside/secret.txt",
    "sub/up/out_dir/secret.txt",  # a link reached through an allowed link
    "../outside/secret.txt",
    "/etc/passwd",
    "sub/../../outside/secret.txt",
]


@pytest.mark.parametrize("raw", REFUSED)
def test_every_way_out_is_refused_for_read_and_write(tree: tuple[Path, Path], raw: str) -> None:
    root, outside = tree
    before = sorted(p.name for p in outside.iterdir())
    with pytest.raises(ToolError) as read:
        confine.read_bytes(root, raw, 1 << 20)
    with pytest.raises(ToolError) as write:
        confine.write_bytes(root, raw, b"PWNED")
    for exc in (read, write):
        message = str(exc.value)
        assert "\n" not in message and SECRET not in message
    assert sorted(p.name for p in outside.iterdir()) == before  # nothing created outside
    assert (outside / "secret.txt").read_text() == SECRET


def test_links_inside_are_followed(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    assert confine.read_bytes(root, "inner_link/note.txt", 100)[:2] == (
        "sub/inner/note.txt",
        b"inside\n",
    )
    assert confine.read_bytes(root, "abs_in/note.txt", 100)[1] == b"inside\n"
    assert confine.read_bytes(root, "sub/up/app.py", 100)[1] == b"print('hi')\n"
    # A link to a missing place inside: a write creates it there.
    assert confine.write_bytes(root, "dangling_in", b"later\n") == ("sub/later.txt", False)
    assert (root / "sub" / "later.txt").read_text() == "later\n"
    assert os.path.islink(root / "dangling_in")


def test_a_loop_of_links_is_one_line(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    with pytest.raises(ToolError, match="too many levels of symbolic links"):
        confine.read_bytes(root, "loop_a", 10)


def test_a_fifo_is_refused_without_blocking(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    os.mkfifo(root / "pipe")
    os.symlink("pipe", root / "pipe_link")
    outcome: list[BaseException | None] = []

    def read(raw: str) -> None:
        try:
            confine.read_bytes(root, raw, 10)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    for raw in ("pipe", "pipe_link"):
        worker = threading.Thread(target=read, args=(raw,), daemon=True)
        worker.start()
        worker.join(20)  # a blocking open of a FIFO with no writer would never return
        assert not worker.is_alive(), f"reading {raw} blocked"
    assert all(isinstance(e, ToolError) and "named pipe" in str(e) for e in outcome), outcome


def test_a_write_never_goes_through_a_hard_link(tree: tuple[Path, Path]) -> None:
    """A hard link cannot be told from the file it shares: the write replaces the name,
    so the other name (outside) keeps its content; the mode of the old file is kept."""
    root, outside = tree
    os.link(outside / "secret.txt", root / "hard.txt")
    (root / "hard.txt").chmod(0o751)
    assert confine.read_bytes(root, "hard.txt", 100)[1] == SECRET.encode()  # documented
    assert confine.write_bytes(root, "hard.txt", b"new\n") == ("hard.txt", True)
    assert (outside / "secret.txt").read_text() == SECRET
    assert (root / "hard.txt").read_text() == "new\n"
    assert stat.S_IMODE((root / "hard.txt").stat().st_mode) == 0o751
    assert not [p for p in root.iterdir() if p.name.startswith(".livhana-")]  # no temp left


def test_git_is_refused_also_through_a_link(tree: tuple[Path, Path]) -> None:
    root, _ = tree
    (root / ".git").write_text("gitdir: /somewhere\n")
    os.symlink(".git", root / "g")
    for raw in (".git", ".GIT/config", "g"):
        with pytest.raises(ToolError, match=r"\.git"):
            confine.write_bytes(root, raw, b"x")
    assert (root / ".git").read_text() == "gitdir: /somewhere\n"


def test_parse_refuses_bad_names_in_one_line() -> None:
    for raw, why in (
        ("a\ud800b", "lone surrogate"),
        ("a\x00b", "NUL"),
        ("~/x", "absolute"),
        ("a/../b", "'..'"),
        ("d/" * 2100, "too long"),
        (7, "non-empty string"),
    ):
        with pytest.raises(ToolError, match=why) as exc:
            confine.parse(raw)
        assert "\n" not in str(exc.value) and "\ud800" not in str(exc.value)


def test_a_concurrent_swap_never_leads_a_read_outside(tree: tuple[Path, Path]) -> None:
    """`flip` is swapped between a folder inside and a link to the outside folder while
    reads of `flip/secret.txt` run: each read gets the inside file or a refusal."""
    root, outside = tree
    (root / "real").mkdir()
    (root / "real" / "secret.txt").write_text("inside copy")
    os.symlink("real", root / "flip")
    stop = threading.Event()

    def swapper() -> None:
        while not stop.is_set():
            for target in ("../outside", "real"):
                tmp = root / f"flip.{uuid.uuid4().hex}"
                os.symlink(target, tmp)
                os.replace(tmp, root / "flip")

    worker = threading.Thread(target=swapper, daemon=True)
    worker.start()
    got = {"inside": 0, "refused": 0}
    try:
        for _ in range(3000):
            try:
                data = confine.read_bytes(root, "flip/secret.txt", 100)[1]
            except ToolError:
                got["refused"] += 1
                continue
            assert data == b"inside copy", "a read followed the swapped link outside"
            got["inside"] += 1
    finally:
        stop.set()
        worker.join(10)
    assert got["refused"] > 0 and got["inside"] > 0, got  # both sides of the race were hit


def test_a_walk_names_links_leaving_the_tree_and_never_follows_any(
    tree: tuple[Path, Path],
) -> None:
    root, _ = tree
    report = confine.WalkReport()
    top = confine.Root(root)
    with confine.locate(top, ".") as place:
        files = [rel for rel, _, _, _ in confine.walk_files(top, place, report)]
    assert files == ["app.py", "sub/inner/note.txt"]  # no file reached twice through a link
    assert sorted(report.links_out) == sorted(
        ["out_file", "out_rel", "out_dir", "chain1", "chain2", "proc_root", "proc_cwd"]
        + ["dangling_out", "dangling_in", "loop_a", "loop_b", "sub/upup"]
    )
    note = " ".join(report.notes())
    assert "12 symbolic link(s) that lead outside the workspace or nowhere" in note
    assert SECRET not in note


def test_a_deep_tree_is_walked_to_a_bound(tmp_path: Path) -> None:
    root = tmp_path / "wt"
    deep = root.joinpath(*["d"] * (confine.MAX_DEPTH + 5))
    deep.mkdir(parents=True)
    (deep / "f.txt").write_text("x")
    (root / "top.txt").write_text("x")
    report = confine.WalkReport()
    top = confine.Root(root)
    with confine.locate(top, ".") as place:
        files = [rel for rel, _, _, _ in confine.walk_files(top, place, report)]
    assert files == ["top.txt"] and report.too_deep == 1
