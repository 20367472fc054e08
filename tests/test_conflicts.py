"""Conflict radar and the second apply, on real git with the scripted model: two live tasks
changing one file are both flagged (the radar and each apply card name the other); the one
applied second explains the conflict, and a rebase makes it land (what would land shown
first) or it stays on its branch; where the same lines changed, nothing is applied."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from agent import events as ev
from tests.conftest import cli, git, pending_for, until, write_script

ORIGINAL = "".join(f"line {n}\n" for n in range(1, 11))


def edited(**lines: str) -> str:
    """ORIGINAL with some lines replaced: edited(l2="two")."""
    out = ORIGINAL.splitlines(keepends=True)
    for key, text in lines.items():
        out[int(key[1:]) - 1] = text + "\n"
    return "".join(out)


def model(tmp_path: Path, **contents: str) -> str:
    """A script per task word (alpha, beta, ...): each writes shared.py as given."""
    scripts = [
        {"match": word, "turns": [{"tool_calls": [
            {"name": "write_file", "input": {"path": "shared.py", "content": text}},
            {"name": "write_file", "input": {"path": f"{word}.txt", "content": word}},
        ]}]}
        for word, text in contents.items()
    ]
    return write_script(tmp_path / "s.json", scripts)


@pytest.fixture
def shared(repo: Path) -> Path:
    (repo / "shared.py").write_text(ORIGINAL)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "shared file")
    return repo


async def two_waiting(engine: Any, repo: Path, spec: str) -> tuple[str, str, dict, dict]:
    a = await engine.submit("alpha edit", repo, model=spec)
    (req_a,) = await until(lambda: pending_for(engine, a), timeout=30)
    b = await engine.submit("beta edit", repo, model=spec)
    (req_b,) = await until(lambda: pending_for(engine, b), timeout=30)
    return a, b, req_a, req_b


async def test_two_live_tasks_on_one_file_are_both_flagged(
    shared: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    spec = model(tmp_path, alpha=edited(l2="two"), beta=edited(l9="nine"))
    a, b, _, req_b = await two_waiting(engine, shared, spec)

    found = await engine.conflicts()
    assert [c["task_id"] for c in found[a]] == [b] and found[a][0]["paths"] == ["shared.py"]
    assert [c["task_id"] for c in found[b]] == [a] and found[b][0]["paths"] == ["shared.py"]
    # alpha.txt and beta.txt are each one task's: not a conflict.
    # The second card names the first task; the first card was refreshed to name the second.
    assert f"CONFLICT: task {a[:8]} also changes shared.py" in req_b["summary"]
    assert req_b["detail"]["conflict"]["paths"] == ["shared.py"]
    (req_a,) = await engine.store.approvals("pending", task_id=a)
    assert f"task {b[:8]}" in req_a["summary"] and req_a["detail"]["conflict"]["with"][0][
        "task_id"] == b
    assert req_a["summary"].startswith("Apply 2 changed file(s)")
    # Once beta has ended, alpha is alone on its files: no longer flagged.
    await engine.cancel(b)
    await engine.wait(b)
    assert await engine.conflicts() == {}


async def test_second_apply_explains_and_rebase_makes_it_land(
    shared: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    spec = model(tmp_path, alpha=edited(l2="two"), beta=edited(l9="nine"))
    a, b, req_a, _ = await two_waiting(engine, shared, spec)
    await engine.decide(req_a["id"], True)
    assert (await engine.wait(a))["state"] == ev.SUCCEEDED
    assert (shared / "shared.py").read_text() == edited(l2="two")
    # beta's card now says a change landed on its file.
    (card,) = await until(lambda: _refreshed(engine, b, "applied"), timeout=10)
    assert f"task {a[:8]} (applied) changed shared.py" in card["summary"]

    # The second apply: approving does not apply over it; it explains and offers.
    head = git(shared, "rev-parse", "HEAD").strip()
    assert (await asyncio.to_thread(cli, "approve", b)).returncode == 0
    (offer,) = await until(lambda: _pending_kind(engine, b, "rebase"), timeout=10)
    assert f"task {a[:8]} (applied) changed shared.py" in offer["summary"]
    assert offer["summary"].startswith(f"Rebase onto HEAD {head[:10]}?")
    assert f"keep it on branch livhana/{b}" in offer["summary"]
    assert (shared / "shared.py").read_text() == edited(l2="two")  # nothing changed yet
    assert git(shared, "rev-parse", "HEAD").strip() == head

    done = await asyncio.to_thread(cli, "rebase", b)
    assert done.returncode == 0, done.stderr
    assert f"rebased task {b} onto HEAD {head[:10]}" in done.stdout
    assert "now shows what would land: 2 file(s): beta.txt, shared.py" in done.stdout
    (again,) = await until(lambda: _pending_kind(engine, b, "apply"), timeout=10)
    # What would land now: beta's own line only, against the new HEAD.
    diff = again["detail"]["diff"]
    assert "+line nine" not in diff and "+nine" in diff and "+two" not in diff
    assert "CONFLICT" not in again["summary"]
    task = await engine.get(b)
    assert task["base_commit"] == head and task["options"]["rebased"]["onto"] == head
    assert git(shared, "merge-base", "--is-ancestor", head, f"livhana/{b}") == ""

    await engine.decide(again["id"], True)
    assert (await engine.wait(b))["state"] == ev.SUCCEEDED
    assert (shared / "shared.py").read_text() == edited(l2="two", l9="nine")
    assert (shared / "beta.txt").read_text() == "beta"
    rebases = [e for e in await engine.events(b) if e["type"] == "rebase"]
    assert len(rebases) == 1 and rebases[0]["onto"] == head
    # The rollback of the rebased task still undoes exactly its change.
    await engine.rollback(b)
    assert (shared / "shared.py").read_text() == edited(l2="two")


async def test_keep_leaves_the_second_on_its_branch(
    shared: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    spec = model(tmp_path, alpha=edited(l2="two"), beta=edited(l9="nine"))
    a, b, req_a, _ = await two_waiting(engine, shared, spec)
    await engine.decide(req_a["id"], True)
    await engine.wait(a)
    head = git(shared, "rev-parse", "HEAD").strip()
    tip = git(shared, "rev-parse", f"livhana/{b}").strip()
    done = await asyncio.to_thread(cli, "keep", b)
    assert done.returncode == 0, done.stderr
    assert f"kept on branch livhana/{b}" in done.stdout
    task = await engine.wait(b)
    assert task["state"] == ev.CANCELLED and f"kept on branch livhana/{b}" in task["error"]
    assert git(shared, "rev-parse", "HEAD").strip() == head
    assert git(shared, "rev-parse", f"livhana/{b}").strip() == tip
    assert (shared / "shared.py").read_text() == edited(l2="two")
    assert not (shared / "beta.txt").exists()


async def test_same_lines_changed_end_it_unapplied_before_anything_changes(
    shared: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    spec = model(tmp_path, alpha=edited(l5="five by alpha"), beta=edited(l5="five by beta"))
    a, b, req_a, _ = await two_waiting(engine, shared, spec)
    await engine.decide(req_a["id"], True)
    await engine.wait(a)
    head = git(shared, "rev-parse", "HEAD").strip()
    (req_b,) = await engine.store.approvals("pending", task_id=b)
    await engine.decide(req_b["id"], True)
    task = await engine.wait(b)
    assert task["state"] == ev.FAILED
    assert f"task {a[:8]} (applied) changed the same lines of shared.py" in task["error"]
    assert f"kept on branch livhana/{b}" in task["error"]
    assert git(shared, "rev-parse", "HEAD").strip() == head
    assert (shared / "shared.py").read_text() == edited(l5="five by alpha")
    assert git(shared, "show", f"livhana/{b}:shared.py") == edited(l5="five by beta")


async def test_rebase_and_keep_say_why_when_nothing_waits(
    shared: Path, tmp_path: Path, engine_factory: Any
) -> None:
    engine = await engine_factory()
    spec = model(tmp_path, alpha=edited(l2="two"))
    a = await engine.submit("alpha edit", shared, model=spec, apply=False)
    await engine.wait(a)
    await engine.close()
    for command in ("rebase", "keep"):
        done = cli(command, a)
        assert done.returncode == 2
        assert done.stderr.strip() == (
            f"livhana-cockpit: task {a} already ended (succeeded): nothing waits to be "
            f"applied; its change is on branch livhana/{a} (git merge livhana/{a})")
    done = cli("rebase", "0000")
    assert done.returncode == 2 and "no task '0000'" in done.stderr


async def _pending_kind(engine: Any, task_id: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in await engine.store.approvals("pending", task_id=task_id)
            if r["kind"] == kind]


async def _refreshed(engine: Any, task_id: str, word: str) -> list[dict[str, Any]]:
    rows = await engine.store.approvals("pending", task_id=task_id)
    return [r for r in rows if f"({word})" in r["summary"]]
