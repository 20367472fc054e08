"""The one git layer (agent/gitcmd.py) and its users, with real git: the operator's
environment never steers it, nothing model-written is ever run or entered by it."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from agent import gitcmd, workspace
from agent.checkpoints import Checkpoints
from tests.conftest import git


def _script(path: Path, marker: Path, tail: str = "") -> str:
    """An executable that records it ran (and its environment) in `marker`."""
    path.write_text(f'#!/bin/sh\necho "ran $*" >> {marker}\nenv >> {marker}.env\n{tail}')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def _ran(marker: Path) -> str:
    return marker.read_text() if marker.exists() else ""


async def test_engine_git_gets_no_secret_and_no_operator_git_variable(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An operator-configured filter (as git-lfs is) may run: what environment does it see?
    marker = tmp_path / "filter"
    dump = _script(tmp_path / "dump.sh", marker, "cat\n")
    git(repo, "config", "filter.dump.clean", dump)
    (repo / ".gitattributes").write_text("*.txt filter=dump\n")
    (repo / "a.txt").write_text("a\n")
    for name, value in {
        "ANTHROPIC_API_KEY": "sk-ant-FAKE",
        "AWS_SECRET_ACCESS_KEY": "aws-FAKE",
        "GITHUB_TOKEN": "ghp_FAKE",
        "DB_PASSWORD": "pw-FAKE",
        "GIT_EXEC_PATH": "/nonexistent",  # would break git entirely if honoured
        "GIT_TRACE": str(tmp_path / "trace"),
        "GIT_CONFIG_PARAMETERS": "'core.fsmonitor'='false'",
    }.items():
        monkeypatch.setenv(name, value)
    await gitcmd.git("add", "-A", cwd=repo)
    env = (tmp_path / "filter.env").read_text()
    assert "FAKE" not in env
    assert not (tmp_path / "trace").exists()
    assert "GIT_EXEC_PATH=/nonexistent" not in env and "GIT_CONFIG_PARAMETERS='core.fsm" not in env


async def test_relative_path_entries_never_find_a_planted_git(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "planted"
    expected = git(repo, "rev-parse", "HEAD").strip()
    _script(repo / "git", marker)  # as a model could leave one in its worktree
    monkeypatch.setenv("PATH", os.pathsep.join([".", "", os.environ["PATH"]]))
    assert await workspace.head_commit(repo) == expected
    assert _ran(marker) == ""


async def test_operator_git_dir_never_redirects_the_engine(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "f").write_text("other\n")
    git(other, "init", "-q", "-b", "main")
    git(other, "add", "-A")
    git(other, "-c", "user.email=o@x", "-c", "user.name=o", "commit", "-qm", "other")
    plain = tmp_path / "plain"
    plain.mkdir()
    expected = git(repo, "rev-parse", "HEAD").strip()
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.setenv("GIT_WORK_TREE", str(other))
    assert await workspace.head_commit(repo) == expected  # not the other repository's HEAD
    assert not await gitcmd.is_git_repo(plain)


def _nested(root: Path, marker: Path, name: str = "sub") -> None:
    """A repository inside `root` whose config runs `marker`'s script (fsmonitor, filter)."""
    sub = root / name
    sub.mkdir(parents=True)
    evil = _script(root / f"{name}-evil.sh", marker, "cat\n")
    subprocess.run(["git", "init", "-q"], cwd=sub, check=True)
    git(sub, "config", "core.fsmonitor", evil)
    git(sub, "config", "filter.evil.clean", evil)
    (sub / ".gitattributes").write_text("* filter=evil\n")
    (sub / "file").write_text("nested\n")
    git(sub, "add", "-A")
    git(sub, "-c", "user.email=n@x", "-c", "user.name=n", "commit", "-qm", "nested")
    marker.unlink(missing_ok=True)  # our own setup ran it: only the engine counts


async def test_checkpoints_never_enter_a_nested_repository(tmp_path: Path) -> None:
    tree, marker = tmp_path / "tree", tmp_path / "marker"
    tree.mkdir()
    (tree / "a.py").write_text("a\n")
    _nested(tree, marker)
    (tree / ".gitmodules").write_text('[submodule "s"]\n\tpath = sub\n\tignore = none\n')
    cp = Checkpoints(tree, tmp_path / "shadow")
    first = await cp.snapshot("one")
    (tree / "sub" / "file").write_text("changed\n")
    (tree / "a.py").write_text("b\n")
    second = await cp.snapshot("two")
    assert first and second
    assert "a.py" in await cp.changed_files(first)
    await cp.diff(first)
    await cp.restore(first)
    assert (tree / "a.py").read_text() == "a\n"
    assert _ran(marker) == ""


async def test_checkpoint_restore_is_byte_exact_whatever_the_attributes_say(
    tmp_path: Path,
) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / ".gitattributes").write_text("*.txt text eol=crlf\n*.bin ident\n")
    (tree / "a.txt").write_bytes(b"one\ntwo\n")
    (tree / "b.bin").write_bytes(b"$Id$\n")
    cp = Checkpoints(tree, tmp_path / "shadow")
    first = await cp.snapshot("one")
    assert first
    (tree / "a.txt").write_bytes(b"changed\n")
    (tree / "b.bin").write_bytes(b"changed\n")
    await cp.restore(first)
    assert (tree / "a.txt").read_bytes() == b"one\ntwo\n"
    assert (tree / "b.bin").read_bytes() == b"$Id$\n"


async def test_task_diff_runs_no_diff_driver(repo: Path, tmp_path: Path) -> None:
    # The operator's own config names an external diff and a textconv; the worktree's
    # attributes (the model's) select it. The approval patch must be git's, nothing run.
    marker = tmp_path / "marker"
    git(repo, "config", "diff.external", _script(tmp_path / "ext.sh", marker))
    git(repo, "config", "diff.txt.textconv", _script(tmp_path / "conv.sh", marker, "cat $1\n"))
    tree = await workspace.prepare(repo, "t1", tmp_path / "data" / "worktrees")
    (tree.path / ".gitattributes").write_text("*.txt diff=txt\n")
    (tree.path / "n.txt").write_text("new line\n")
    patch, files = await workspace.diff(tree)
    assert sorted(files) == [".gitattributes", "n.txt"]
    assert "+new line" in patch
    assert _ran(marker) == ""


@pytest.mark.parametrize("how", ["deleted", "dir", "symlink-to-operator-repo", "chmod-000"])
async def test_discard_survives_whatever_the_model_did_to_dotgit(
    repo: Path, tmp_path: Path, how: str
) -> None:
    tree = await workspace.prepare(repo, "t2", tmp_path / "data" / "worktrees")
    dotgit = tree.path / ".git"
    dotgit.unlink()
    if how == "dir":
        subprocess.run(["git", "init", "-q", str(tree.path)], check=True)
    elif how == "symlink-to-operator-repo":
        dotgit.symlink_to(repo / ".git")
    elif how == "chmod-000":
        locked = tree.path / "locked" / "deeper"
        locked.mkdir(parents=True)
        (locked / "f").write_text("x\n")
        locked.chmod(0)
        locked.parent.chmod(0)
    (tree.path / "new.txt").write_text("x\n")
    head = git(repo, "rev-parse", "HEAD")
    await workspace.discard(repo, tree)
    assert not tree.path.exists()
    assert git(repo, "branch", "--list", "livhana/*") == ""
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert git(repo, "rev-parse", "HEAD") == head
    git(repo, "fsck", "--no-progress")  # the operator's repository is whole


async def test_a_later_process_finds_the_worktree_git_dir_without_reading_dotgit(
    repo: Path, tmp_path: Path
) -> None:
    tree = await workspace.prepare(repo, "t4", tmp_path / "data" / "worktrees")
    (tree.path / ".git").unlink()
    (tree.path / ".git").write_text(f"gitdir: {tmp_path}\n")  # a lie
    (tree.path / "new.txt").write_text("x\n")
    record = {"workspace": str(repo), "worktree": str(tree.path), "branch": tree.branch,
              "base_commit": tree.base_commit}  # fmt: skip
    again = await workspace.tree_for(record)
    assert again.git_dir == tree.git_dir and again.git_dir is not None
    assert again.git_dir.parent == repo / ".git" / "worktrees"
    assert await workspace.has_changes(again)
    assert await workspace.commit_all(again, "livhana: x") != tree.base_commit
    assert git(repo, "show", f"{tree.branch}:new.txt") == "x\n"


async def test_task_commit_leaves_nested_repositories_out(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    tree = await workspace.prepare(repo, "t3", tmp_path / "data" / "worktrees")
    _nested(tree.path, marker, "vendor/thing")
    (tree.path / "kept.txt").write_text("k\n")
    commit = await workspace.commit_all(tree, "livhana: test")
    (tree.path / "vendor" / "thing" / "file").write_text("again\n")
    assert await workspace.commit_all(tree, "livhana: again") == commit  # nothing new
    _patch, files = await workspace.diff(tree)
    assert files == ["kept.txt", "vendor/thing-evil.sh"]
    assert _ran(marker) == ""
    assert git(repo, "log", "-1", "--format=%an <%ae>", str(commit)).strip() == (
        f"{gitcmd.IDENTITY[0]} <{gitcmd.IDENTITY[1]}>"
    )
