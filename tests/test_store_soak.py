"""The soak: 20 `run` processes at once on one store that does not exist yet (so they
also race to create and migrate it), twice. Contention may slow a task, never fail it or
lose one of its events."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, git, write_script

pytestmark = pytest.mark.skipif(not Path("/usr/bin/bwrap").exists(), reason="needs bubblewrap")

RUNS = 20
TURNS = [
    {"tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}]},
    {"tool_calls": [{"name": "execute_bash", "input": {"command": "echo ok > out.txt"}}]},
    {"tool_calls": [{"name": "write_file", "input": {"path": "notes.md", "content": "n\n"}}]},
]


def _repo(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "app.py").write_text("print('hi')\n")
    git(path, "init", "-q", "-b", "main")
    git(path, "-c", "user.email=o@example.com", "-c", "user.name=O", "add", "-A")
    git(path, "-c", "user.email=o@example.com", "-c", "user.name=O", "commit", "-qm", "init")
    return path


async def _round(tmp_path: Path, name: str, model: str) -> None:
    data = tmp_path / name / "data"  # does not exist: the first runs create it together
    repos = [_repo(tmp_path / name / f"p{i}") for i in range(RUNS)]
    env = {**os.environ, "LIVHANA_DATA_DIR": str(data)}
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cockpit",
            "run",
            f"task {i}",
            "--workspace",
            str(repo),
            "--approve",
            "auto",
            "--model",
            model,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for i, repo in enumerate(repos)
    ]
    errors = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in procs)), 600)
    failed = [(p.returncode, e[1].decode()) for p, e in zip(procs, errors, strict=True)
              if p.returncode != 0]  # fmt: skip
    assert not failed, f"{len(failed)} of {RUNS} runs failed: {failed[:3]}"
    with contextlib.closing(sqlite3.connect(data / "livhana.db")) as db:
        tasks = db.execute("SELECT id, state FROM tasks").fetchall()
        assert len(tasks) == RUNS and {s for _, s in tasks} == {"succeeded"}
        for task_id, _ in tasks:
            rows = db.execute(
                "SELECT seq, type FROM events WHERE task_id = ? ORDER BY seq", [task_id]
            ).fetchall()
            assert [r[0] for r in rows] == list(range(1, len(rows) + 1)), f"gap in {task_id}"
            assert [r[1] for r in rows].count("complete") == 1 and rows[-1][1] == "complete"
    for repo in repos:
        assert (repo / "out.txt").read_text() == "ok\n"


@pytest.mark.slow  # ~50 s on an idle 2-core machine; still in the default run
@pytest.mark.timeout(900)
async def test_twenty_runs_at_once_on_a_fresh_store_lose_nothing(tmp_path: Path) -> None:
    model = write_script(tmp_path / "model.json", [{"match": ".", "turns": TURNS}])
    for name in ("first", "second"):
        await _round(tmp_path, name, model)
