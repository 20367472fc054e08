"""Rolling back a task that never changed the workspace keeps how it ended (its state and
its error): only its leftovers (worktree, branch) go, and the message says so. Real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import cli, git
from tests.test_apply_in_the_way import last_task, operator_state, run, shell_task


def totals() -> dict[str, int]:
    result = cli("metrics", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["totals"]


@pytest.mark.parametrize("how", ["failed", "cancelled"])
def test_rollback_of_a_task_that_never_applied_keeps_its_outcome(
    how: str, repo: Path, tmp_path: Path
) -> None:
    if how == "failed":  # its apply is refused: the operator's untracked file is in the way
        (repo / "out.txt").write_text("operator's own out.txt\n")
    model = shell_task(tmp_path, "echo task > out.txt && echo more > more.txt")
    approve = "auto" if how == "failed" else "deny"
    result = cli("run", "make files", "--workspace", str(repo), "--approve", approve,
                 "--model", model)  # fmt: skip
    assert result.returncode in (1, 7), result.stdout
    task = last_task()
    assert task["state"] == how and task["error"]
    branch = f"livhana/{task['id']}"
    assert git(repo, "branch", "--list", branch).strip()  # its work is kept for review
    before, counted = operator_state(repo), totals()
    assert counted[how] == 1

    rolled = cli("rollback", task["id"])
    assert rolled.returncode == 0, rolled.stderr
    after = last_task()
    assert (after["state"], after["error"]) == (task["state"], task["error"])
    assert totals() == counted  # still counted as what it was
    assert rolled.stdout.strip() == (
        f"discarded the task's worktree and branch; it stays {how}, and nothing of it is in "
        "the workspace"
    )
    assert git(repo, "branch", "--list", branch) == ""
    assert not Path(task["worktree"]).exists()
    assert operator_state(repo) == before

    again = cli("rollback", task["id"])
    assert again.returncode == 2
    assert "nothing to roll back" in again.stderr and "\n" not in again.stderr.strip()


def test_rollback_of_a_succeeded_no_apply_task_still_rolls_it_back(
    repo: Path, tmp_path: Path
) -> None:
    """Its result was the branch: discarding it undoes the task, so it is rolled back."""
    assert run(repo, shell_task(tmp_path, "echo x > x.txt"), "--no-apply").returncode == 0
    task = last_task()
    rolled = cli("rollback", task["id"])
    assert rolled.returncode == 0 and "the workspace was never changed" in rolled.stdout
    assert last_task()["state"] == "rolled_back"
