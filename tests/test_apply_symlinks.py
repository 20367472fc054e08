"""Symlinks and apply: a link the task made is applied as a link, never read through; one
pointing out of the workspace is refused (and shown on the apply request); an operator's
symlink in the workspace is never written through. Git and plain workspaces, real CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli, write_script
from tests.test_apply_in_the_way import last_task, operator_state, shell_task
from tests.test_rollback_flow import tree


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    path = tmp_path / "plain"
    path.mkdir()
    (path / "app.py").write_text("print('v1')\n")
    return path


def run_json(ws: Path, model: str) -> tuple[int, list[dict[str, Any]]]:
    result = cli("run", "links", "--workspace", str(ws), "--approve", "auto", "--model", model,
                 "--json")  # fmt: skip
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("kind", ["plain", "git"])
def test_a_link_out_of_the_workspace_is_refused_and_shown_on_the_card(
    kind: str, plain: Path, repo: Path, tmp_path: Path
) -> None:
    ws = plain if kind == "plain" else repo
    secret = tmp_path / "operator-secret.txt"  # stands for /etc/shadow, ~/.ssh/id_rsa, ...
    secret.write_text("the operator's secret\n")
    before = tree(ws)
    model = shell_task(
        tmp_path, f"ln -s {secret} shadow_copy && ln -s ../../../escape up && echo ok > fine.txt"
    )
    code, events = run_json(ws, model)
    assert code == 1
    (card,) = [e for e in events if e["type"] == "approval_requested"]
    assert sorted(card["detail"]["refused_links"]) == sorted(
        [f"shadow_copy -> {secret}", "up -> ../../../escape"]
    )
    assert "refused: 2 symlink(s) pointing outside the workspace" in card["summary"]
    task = last_task()
    assert task["state"] == "failed"
    assert task["error"].startswith("apply refused: the task made symlink(s) pointing outside")
    assert f"shadow_copy -> {secret}" in task["error"] and "nothing was changed" in task["error"]
    assert tree(ws) == before  # no link, no copy of the secret, not even the harmless file
    assert not any("secret" in open(p, errors="replace").read()  # noqa: SIM115
                   for p in ws.rglob("*") if p.is_file() and ".git" not in p.parts)  # fmt: skip


@pytest.mark.parametrize("kind", ["plain", "git"])
def test_a_link_inside_the_workspace_is_applied_as_a_link_and_rolled_back(
    kind: str, plain: Path, repo: Path, tmp_path: Path
) -> None:
    ws = plain if kind == "plain" else repo
    before = tree(ws)
    model = shell_task(tmp_path, "mkdir -p sub && ln -s ../app.py sub/alias && ln -s app.py top")
    code, _ = run_json(ws, model)
    assert code == 0, last_task()["error"]
    assert os.readlink(ws / "sub/alias") == "../app.py" and os.readlink(ws / "top") == "app.py"
    assert cli("rollback", last_task()["id"]).returncode == 0
    assert tree(ws) == before


def test_plain_apply_never_reads_through_a_link(plain: Path, tmp_path: Path) -> None:
    """The issue's case, plain folder: a link to a file outside must never land as a copy of
    that file's contents (the diff showed a link; apply wrote /etc/shadow's bytes)."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$hash:19000:0:99999:7:::\n")
    model = shell_task(tmp_path, f"ln -s {secret} shadow_copy")
    code, _ = run_json(plain, model)
    assert code == 1
    assert not os.path.lexists(plain / "shadow_copy")


@pytest.mark.parametrize("where", ["outside", "inside"])
@pytest.mark.parametrize("kind", ["plain", "git"])
def test_an_operator_symlink_is_never_written_through(
    kind: str, where: str, plain: Path, repo: Path, tmp_path: Path
) -> None:
    """While the task works, the operator makes `a` a symlink to a folder (elsewhere, or
    another folder of the workspace); the task writes a/b.txt. The apply must refuse, not
    write into that folder, nor replace the operator's link."""
    ws = plain if kind == "plain" else repo
    target = tmp_path / "elsewhere" if where == "outside" else ws / "real"
    target.mkdir()
    turns = [
        {"tool_calls": [{"name": "write_file", "input": {"path": "a/b.txt", "content": "task\n"}}]}
    ]
    model = write_script(tmp_path / "w.json", [{"match": ".", "turns": turns}])
    task_id = _start_and_hold(ws, model)
    os.symlink(target, ws / "a")  # the operator's, made meanwhile
    before = operator_state(ws) if kind == "git" else tree(ws)
    result = cli("approve", task_id)
    assert result.returncode == 0, result.stderr
    task = _wait_end(task_id)
    assert task["state"] == "failed"
    assert "a (your symlink, which the task needs as a folder)" in task["error"]
    assert list(target.iterdir()) == []
    assert os.readlink(ws / "a") == str(target)
    assert (operator_state(ws) if kind == "git" else tree(ws)) == before


def _start_and_hold(ws: Path, model: str) -> str:
    """A `run --approve ask` in the background, waiting at its apply request."""
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    proc = subprocess.Popen(
        [sys.executable, "-m", "cockpit", "run", "hold", "--workspace", str(ws), "--approve",
         "ask", "--model", model, "--json"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        cwd=ROOT,
    )  # fmt: skip
    _HELD.append(proc)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        event = json.loads(line)
        if event["type"] == "approval_requested" and event.get("kind") == "apply":
            return str(event["task_id"])
        assert time.monotonic() < deadline
    raise AssertionError("the task never asked to apply")


_HELD: list[Any] = []


def _wait_end(task_id: str) -> dict[str, Any]:
    proc = _HELD.pop()
    proc.stdout.read()
    proc.wait(60)
    result = cli("history", "--json")
    return next(t for t in json.loads(result.stdout) if t["id"] == task_id)


@pytest.fixture(autouse=True)
def _reap() -> Any:
    yield
    while _HELD:
        proc = _HELD.pop()
        proc.kill()
        proc.wait()
