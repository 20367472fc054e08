"""Checkpoints in a shadow git dir: real git, shell-made edits, byte-identical restores."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from agent.checkpoints import Checkpoints, GitError

GIT_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
    "GIT_AUTHOR_NAME": "Op", "GIT_AUTHOR_EMAIL": "op@example.com",
    "GIT_COMMITTER_NAME": "Op", "GIT_COMMITTER_EMAIL": "op@example.com",
}  # fmt: skip


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=GIT_ENV, check=True, capture_output=True, text=True
    ).stdout


def sh(cwd: Path, script: str) -> None:
    subprocess.run(["bash", "-ec", script], cwd=cwd, check=True)


def tree_state(root: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mode of every file and symlink, `.git` excluded."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git"]
        for name in filenames:
            if name == ".git":
                continue
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                state[rel] = ("link:" + os.readlink(path), 0)
            else:
                state[rel] = (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mode)
    return state


def dirs(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_dir()} - {".git"}


def seed(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    sh(
        root,
        "mkdir -p src/pkg docs && printf 'print(1)\\n' > src/pkg/main.py && "
        "printf 'notes\\n' > docs/notes.md && printf 'doomed\\n' > docs/old.md && "
        "printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod +x run.sh && "
        "printf '*.log\\nbuild/\\n' > .gitignore && ln -s src/pkg/main.py link.py",
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    root = tmp_path / "work"
    seed(root)
    return root


async def test_shell_edits_restore_byte_identical(work: Path, tmp_path: Path) -> None:
    cp = Checkpoints(work, tmp_path / "shadow")
    c1 = await cp.snapshot("start")
    assert c1
    before = tree_state(work)
    # A shell command edits, deletes, creates (deep), writes binary and flips a mode bit.
    sh(
        work,
        "printf 'print(2)\\n' >> src/pkg/main.py && rm docs/old.md && "
        "mkdir -p new/deep && printf 'fresh\\n' > new/deep/file.txt && "
        "head -c 4096 /dev/urandom > blob.bin && printf '\\x00\\xff\\x00' > docs/notes.md && "
        "chmod -x run.sh && rm link.py && ln -s docs/notes.md link.py",
    )
    c2 = await cp.snapshot("step 1")
    assert c2 and c2 != c1
    after = tree_state(work)
    assert set(await cp.changed_files(c1, c2)) == {
        "src/pkg/main.py", "docs/old.md", "new/deep/file.txt", "blob.bin", "docs/notes.md",
        "run.sh", "link.py",
    }  # fmt: skip

    await cp.restore(c1)
    assert tree_state(work) == before
    assert "new" not in dirs(work)  # directories created after the checkpoint are gone
    await cp.restore(c2)
    assert tree_state(work) == after


async def test_restore_to_an_earlier_step_and_back(work: Path, tmp_path: Path) -> None:
    cp = Checkpoints(work, tmp_path / "shadow")
    states, commits = [], []
    for step in range(4):
        sh(work, f"printf 'v{step}\\n' > src/pkg/main.py && printf '{step}' > s{step}.txt")
        commits.append(await cp.snapshot(f"step {step}"))
        states.append(tree_state(work))
    sh(work, "rm -rf src && printf 'junk' > junk.txt")  # a failed step
    await cp.restore(commits[1])
    assert tree_state(work) == states[1]
    assert await cp.snapshot("same as step 1") is None  # nothing changed since the restore
    await cp.restore(commits[3])  # later checkpoints survive a restore
    assert tree_state(work) == states[3]
    labels = [c["label"] for c in await cp.list()]
    assert labels == ["step 0", "step 1", "step 2", "step 3"]
    assert all(isinstance(c["ts"], float) for c in await cp.list())


async def test_snapshot_none_when_unchanged_and_ignored_files_kept(
    work: Path, tmp_path: Path
) -> None:
    cp = Checkpoints(work, tmp_path / "shadow")
    c1 = await cp.snapshot("a")
    assert await cp.snapshot("again") is None
    sh(work, "mkdir -p build && printf 'x' > build/out.o && printf 'log' > app.log")
    assert await cp.snapshot("only ignored files") is None
    sh(work, "printf 'new' > added.txt")
    c2 = await cp.snapshot("b")
    assert c2
    await cp.restore(c1)
    assert not (work / "added.txt").exists()
    assert (work / "app.log").read_text() == "log" and (work / "build/out.o").exists()


async def test_diff_and_live_changes(work: Path, tmp_path: Path) -> None:
    cp = Checkpoints(work, tmp_path / "shadow")
    c1 = await cp.snapshot("a")
    sh(work, "printf 'print(3)\\n' > src/pkg/main.py && printf 'u' > untracked.txt")
    assert await cp.changed_files(c1) == ["src/pkg/main.py", "untracked.txt"]
    text = await cp.diff(c1)
    assert "+print(3)" in text and "untracked.txt" in text


async def test_partial_restore(work: Path, tmp_path: Path) -> None:
    cp = Checkpoints(work, tmp_path / "shadow")
    c1 = await cp.snapshot("a")
    sh(work, "printf 'x' > src/pkg/main.py && printf 'y' > docs/notes.md && printf 'n' > n.txt")
    await cp.restore(c1, paths=["src/pkg/main.py", "n.txt", "never-existed.txt"])
    assert (work / "src/pkg/main.py").read_text() == "print(1)\n"
    assert not (work / "n.txt").exists()
    assert (work / "docs/notes.md").read_text() == "y"  # not asked for: untouched


async def test_non_git_directory(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    seed(plain)
    cp = Checkpoints(plain, tmp_path / "shadow")
    c1 = await cp.snapshot("a")
    before = tree_state(plain)
    sh(plain, "rm docs/old.md && printf 'z' > z.bin")
    assert await cp.snapshot("b")
    await cp.restore(c1)
    assert tree_state(plain) == before
    assert not (plain / ".git").exists()


async def test_git_worktree_user_repo_untouched(tmp_path: Path, monkeypatch) -> None:
    repo = tmp_path / "repo"
    seed(repo)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "initial")
    sh(repo, "printf 'operator wip\\n' >> docs/notes.md")  # uncommitted operator work
    worktree = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", str(worktree), "-b", "livhana/t1")
    probe = ("log", "--all", "--format=%H %s"), ("status", "--porcelain"), ("stash", "list")
    user_before = [git(repo, *p) for p in probe]
    wt_before = [git(worktree, *p) for p in probe[1:]]
    index_before = (repo / ".git/index").read_bytes()
    # A GIT_DIR leaking in (e.g. from a hook) must not redirect the shadow repo.
    monkeypatch.setenv("GIT_DIR", str(repo / ".git"))

    cp = Checkpoints(worktree, tmp_path / "shadow")
    c1 = await cp.snapshot("a")
    before = tree_state(worktree)
    sh(worktree, "printf 'task edit\\n' > src/pkg/main.py && rm docs/old.md && printf 'n' > n")
    assert await cp.snapshot("b")
    files = await cp.changed_files(c1)
    assert ".git" not in files and files == ["docs/old.md", "n", "src/pkg/main.py"]
    await cp.restore(c1)
    assert tree_state(worktree) == before
    assert (worktree / ".git").is_file()  # the worktree's .git file was never touched

    monkeypatch.delenv("GIT_DIR")
    assert [git(repo, *p) for p in probe] == user_before
    assert [git(worktree, *p) for p in probe[1:]] == wt_before
    assert (repo / ".git/index").read_bytes() == index_before
    assert "checkpoints" not in git(repo, "for-each-ref")


async def test_unknown_checkpoint_is_one_line_error(work: Path, tmp_path: Path) -> None:
    cp = Checkpoints(work, tmp_path / "shadow")
    await cp.snapshot("a")
    with pytest.raises(GitError, match="unknown checkpoint"):
        await cp.restore("deadbeef" * 5)
    assert await Checkpoints(work, tmp_path / "other").list() == []


async def test_stale_index_lock_from_a_killed_process_is_cleared(
    work: Path, tmp_path: Path
) -> None:
    shadow = tmp_path / "shadow"
    c1 = await Checkpoints(work, shadow).snapshot("a")
    lock = shadow / "index.lock"
    lock.write_text("")
    os.utime(lock, (1, 1))  # left behind long ago
    sh(work, "printf 'x' > x.txt")
    cp = Checkpoints(work, shadow)  # e.g. the engine restarted after a crash
    assert await cp.snapshot("b")
    await cp.restore(c1)
    assert not (work / "x.txt").exists()


async def test_shadow_dir_inside_the_tree_is_not_snapshotted(work: Path) -> None:
    cp = Checkpoints(work, work / ".livhana-shadow")
    c1 = await cp.snapshot("a")
    assert c1 and await cp.snapshot("again") is None
    assert not any(p.startswith(".livhana-shadow") for p in await cp.changed_files(c1))
