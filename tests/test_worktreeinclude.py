""".worktreeinclude: the operator's ignored files it lists (a .env) are copied into each new
task worktree, only from inside the workspace and never over anything, and never come back
with the task's change, even when the model un-ignores them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from agent import events as ev
from tests.conftest import git, write_script

SECRET = "API_TOKEN=operator-local-value-123\nDEBUG_LEVEL=3\n"


def setup_workspace(repo: Path, outside: Path) -> None:
    (repo / ".gitignore").write_text(".env\n*.key\nbuild.log\nlinked.env\nnotes/\n")
    (repo / ".worktreeinclude").write_text("# copied into task worktrees\n.env\nconf/*.key\n"
                                           "linked.env\nnotes/\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "ignore rules")
    (repo / ".env").write_text(SECRET)
    os.chmod(repo / ".env", 0o600)
    (repo / "conf").mkdir()
    (repo / "conf" / "dev.key").write_text("dev key\n")
    (repo / "build.log").write_text("ignored but not listed\n")
    (outside / "elsewhere.env").write_text("outside the workspace\n")
    (repo / "linked.env").symlink_to(outside / "elsewhere.env")  # ignored, listed, a link
    (repo / "notes").symlink_to(outside)  # a listed folder that is a link out


async def test_included_files_are_copied_and_never_applied_back(
    repo: Path, tmp_path: Path, engine_factory: Any
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    setup_workspace(repo, outside)
    turns = [
        {"tool_calls": [{"name": "read_file", "input": {"path": ".env"}}]},
        # The model un-ignores .env, edits it, and changes a tracked file.
        {"tool_calls": [
            {"name": "write_file", "input": {"path": ".gitignore", "content": "build.log\n"}},
            {"name": "write_file", "input": {"path": ".env", "content": SECRET + "MORE=1\n"}},
            {"name": "write_file", "input": {"path": "app.py", "content": "print('hi')\n"}},
        ]},
    ]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    engine = await engine_factory()
    task_id = await engine.submit("use the env", repo, model=model, approve="auto")
    task = await engine.wait(task_id)
    assert task["state"] == ev.SUCCEEDED, task["error"]
    worktree = Path(task["worktree"])

    # Copied: the listed ignored files, with their mode; not the unlisted one, not links.
    assert (worktree / "conf" / "dev.key").read_text() == "dev key\n"
    assert (worktree / ".env").stat().st_mode & 0o777 == 0o600
    assert not (worktree / "build.log").exists()
    assert not (worktree / "linked.env").exists() and not (worktree / "notes").exists()
    # The model could read it (the operator's explicit choice).
    results = [e for e in await engine.events(task_id) if e["type"] == ev.TOOL_RESULT]
    assert "DEBUG_LEVEL=3" in results[0]["output"]  # (the token itself is redacted)

    # Applied: app.py and .gitignore; .env neither in the commit nor changed on disk.
    assert (repo / "app.py").read_text() == "print('hi')\n"
    assert (repo / ".env").read_text() == SECRET
    shown = git(repo, "show", "--name-only", "--format=", "HEAD").split()
    assert sorted(shown) == [".gitignore", "app.py"]
    branch = git(repo, "ls-tree", "-r", "--name-only", f"livhana/{task_id}").split()
    assert ".env" not in branch and "conf/dev.key" not in branch
    assert ".env" not in task["changes"]
    assert (outside / "elsewhere.env").read_text() == "outside the workspace\n"


async def test_an_included_path_never_overwrites_a_tracked_file(
    repo: Path, tmp_path: Path
) -> None:
    # settings.local is tracked (force-added) though the rules ignore it; a listed file that
    # is not ignored in the task's base (an uncommitted .gitignore edit) is not copied.
    (repo / ".gitignore").write_text("*.local\n")
    (repo / "settings.local").write_text("tracked\n")
    (repo / ".worktreeinclude").write_text("*.local\n.env\n")
    git(repo, "add", "-A")
    git(repo, "add", "-f", "settings.local")
    git(repo, "commit", "-q", "-m", "tracked local")
    (repo / "settings.local").write_text("operator's edit, uncommitted\n")
    (repo / "other.local").write_text("untracked, ignored, listed\n")
    (repo / ".env").write_text(SECRET)
    with open(repo / ".gitignore", "a") as fh:
        fh.write(".env\n")  # not committed: the task's base does not ignore .env
    from agent.workspace import prepare

    tree = await prepare(repo, "probe", tmp_path / "data" / "worktrees")
    assert (tree.path / "settings.local").read_text() == "tracked\n"
    assert (tree.path / "other.local").read_text() == "untracked, ignored, listed\n"
    assert not (tree.path / ".env").exists()
    assert (repo / "settings.local").read_text() == "operator's edit, uncommitted\n"
