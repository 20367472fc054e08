"""agent.Engine driven by scripted models: lifecycle, queue, subscribe, recovery, limits."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import time
from pathlib import Path
from typing import Any

from agent.models.scripted import ScriptedModel
from agent.store import Store
from tests.conftest import git, until, write_script

READ = {"tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}]}


def scripted(*scripts: dict[str, Any]) -> Any:
    return lambda spec: ScriptedModel(list(scripts))


async def test_subscribe_sees_the_whole_lifecycle_in_order(engine_factory: Any, repo: Path) -> None:
    engine = await engine_factory(scripted({"match": ".", "turns": [READ]}))
    seen: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in engine.subscribe():
            seen.append(event)
            if event["type"] == "complete":
                return

    follower = asyncio.create_task(follow())
    task_id = await engine.submit("look at app.py", repo, approve="auto")
    await asyncio.wait_for(follower, 20)
    task = await engine.get(task_id)
    assert task["state"] == "succeeded" and task["steps"] == 1
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert [e["type"] for e in seen][:2] == ["status", "status"]
    assert await engine.events(task_id) == seen  # the store holds exactly what was streamed
    assert [t["id"] for t in await engine.list()] == [task_id]


async def test_concurrency_limit_queues_the_rest(
    engine_factory: Any, config: Any, repo: Path
) -> None:
    config.engine.max_concurrent = 2
    slow = {"match": ".", "turns": [{**READ, "delay_s": 0.3}]}
    engine = await engine_factory(scripted(slow))
    running: set[str] = set()
    peak = 0

    async def follow() -> None:
        nonlocal peak
        async for event in engine.subscribe():
            if event["type"] == "status" and event["state"] == "planning":
                running.add(event["task_id"])
                peak = max(peak, len(running))
            if event["type"] == "complete":
                running.discard(event["task_id"])

    follower = asyncio.create_task(follow())
    ids = [await engine.submit(f"task {i}", repo, approve="auto", apply=False) for i in range(5)]
    states = [(await engine.wait(i))["state"] for i in ids]
    follower.cancel()
    assert states == ["succeeded"] * 5
    assert peak == 2


async def test_parallel_tasks_work_in_separate_worktrees(engine_factory: Any, repo: Path) -> None:
    def write(name: str) -> dict[str, Any]:
        return {
            "match": name,
            "turns": [
                {
                    "delay_s": 0.1,
                    "tool_calls": [
                        {
                            "name": "write_file",
                            "input": {"path": "app.py", "content": f"# {name}\n"},
                        }
                    ],
                }
            ],
        }

    engine = await engine_factory(scripted(write("alpha"), write("beta")))
    a = await engine.submit("alpha", repo, approve="auto", apply=False)
    b = await engine.submit("beta", repo, approve="auto", apply=False)
    ta, tb = await engine.wait(a), await engine.wait(b)
    assert (Path(ta["worktree"]) / "app.py").read_text() == "# alpha\n"
    assert (Path(tb["worktree"]) / "app.py").read_text() == "# beta\n"
    assert "greet" in (repo / "app.py").read_text()


async def test_tasks_of_a_dead_engine_become_interrupted(config: Any, engine_factory: Any) -> None:
    store = await Store.open(config.store_path)
    await store.register_engine("tui-dead", 999_999, socket.gethostname(), "tui")
    await store.create_task(
        {
            "id": "orphan1",
            "title": "half done",
            "workspace": "/w",
            "state": "running",
            "engine_id": "tui-dead",
        }
    )
    await store.close()
    engine = await engine_factory()
    task = await engine.get("orphan1")
    assert task["state"] == "interrupted"
    events = await engine.events("orphan1")
    assert events[-1]["type"] == "complete" and events[-1]["success"] is False


async def test_step_limit_ends_the_task_with_a_reason(engine_factory: Any, repo: Path) -> None:
    many = [
        {"tool_calls": [{"name": "read_file", "input": {"path": "app.py", "offset": i + 1}}]}
        for i in range(10)
    ]
    engine = await engine_factory(scripted({"match": ".", "turns": many}))
    task_id = await engine.submit("loop forever", repo, approve="auto", max_steps=3)
    task = await engine.wait(task_id)
    assert task["state"] == "failed" and "step limit" in task["error"]
    assert task["steps"] == 3


async def test_model_error_fails_the_task_and_the_engine_keeps_working(
    engine_factory: Any, repo: Path
) -> None:
    engine = await engine_factory(
        scripted(
            {"match": "broken", "turns": [{"error": "model API unavailable"}]},
            {"match": ".", "turns": [READ]},
        )
    )
    bad = await engine.wait(await engine.submit("broken task", repo, approve="auto"))
    good = await engine.wait(await engine.submit("fine task", repo, approve="auto"))
    assert bad["state"] == "failed" and "unavailable" in bad["error"]
    assert good["state"] == "succeeded"


async def test_large_tool_output_is_truncated_with_a_note(engine_factory: Any, repo: Path) -> None:
    (repo / "big.txt").write_text("line\n" * 100_000)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "big")
    seen: list[Any] = []

    class Recording(ScriptedModel):
        async def complete(self, **kw: Any) -> Any:
            seen.append(copy.deepcopy(kw["messages"]))
            return await super().complete(**kw)

    engine = await engine_factory(
        lambda spec: Recording(
            [
                {
                    "match": ".",
                    "turns": [
                        {"tool_calls": [{"name": "read_file", "input": {"path": "big.txt"}}]}
                    ],
                }
            ]
        )
    )
    await engine.wait(await engine.submit("read big", repo, approve="auto"))
    result = seen[1][-1]["content"][0]
    assert result["type"] == "tool_result" and "characters truncated" in result["content"]
    assert len(result["content"]) < 25_000


async def test_workspace_that_is_not_git_runs_on_a_copy(
    engine_factory: Any, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("old\n")
    engine = await engine_factory(
        scripted(
            {
                "match": ".",
                "turns": [
                    {
                        "tool_calls": [
                            {
                                "name": "write_file",
                                "input": {"path": "notes.txt", "content": "new\n"},
                            }
                        ]
                    }
                ],
            }
        )
    )
    task = await engine.wait(await engine.submit("edit notes", plain, approve="auto"))
    assert task["state"] == "succeeded", task
    assert (plain / "notes.txt").read_text() == "new\n"
    result = await engine.rollback(task["id"])
    assert (plain / "notes.txt").read_text() == "old\n", result


async def test_submit_is_fast_and_returns_before_the_task_runs(
    engine_factory: Any, repo: Path
) -> None:
    engine = await engine_factory(scripted({"match": ".", "turns": [{**READ, "delay_s": 1}]}))
    t0 = time.monotonic()
    task_id = await engine.submit("slow", repo, approve="auto")
    assert time.monotonic() - t0 < 0.5
    assert (await engine.get(task_id))["state"] in ("queued", "planning")
    await engine.cancel(task_id)
    assert (await engine.wait(task_id))["state"] == "cancelled"


async def test_a_stuck_auto_run_is_stopped_not_left_spinning(
    engine_factory: Any, config: Any, repo: Path
) -> None:
    config.engine.stall_repeats = 3
    same = [{"tool_calls": [{"name": "read_file", "input": {"path": "app.py"}}]}] * 10
    engine = await engine_factory(scripted({"match": ".", "turns": same}))
    task = await engine.wait(await engine.submit("spin", repo, approve="auto"))
    assert task["state"] == "failed" and "stalled" in task["error"]
    assert task["steps"] == 3
    decided = [e for e in await engine.events(task["id"]) if e["type"] == "approval_decided"]
    assert decided[-1]["by"] == "rule:stall under approve=auto" and decided[-1]["approved"] is False


async def test_closing_the_engine_interrupts_its_tasks(
    engine_factory: Any, config: Any, repo: Path
) -> None:
    config.engine.max_concurrent = 1
    slow = {"match": ".", "turns": [{**READ, "delay_s": 30}]}
    engine = await engine_factory(scripted(slow))
    running = await engine.submit("slow one", repo, approve="auto")
    queued = await engine.submit("waiting one", repo, approve="auto")
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    await engine.close(reason="cockpit closed")
    assert time.monotonic() - t0 < 5
    store = await Store.open(config.store_path)
    for task_id in (running, queued):
        task = await store.get_task(task_id)
        assert task["state"] == "interrupted" and task["error"] == "cockpit closed"
    await store.close()


async def test_a_cancel_at_any_moment_of_the_start_ends_the_task_and_frees_its_slot(
    engine_factory: Any, config: Any, repo: Path
) -> None:
    """Cancelled between dispatch and the first line of its worker (or during it), a task
    still ends `cancelled`, and the slot it held goes back to the queue."""
    config.engine.max_concurrent = 1
    engine = await engine_factory(scripted({"match": ".", "turns": [{**READ, "delay_s": 1}]}))
    for yields in range(12):
        task_id = await engine.submit(f"cancel after {yields} yields", repo, approve="auto")
        for _ in range(yields):
            await asyncio.sleep(0)
        await engine.cancel(task_id)
        task = await asyncio.wait_for(engine.wait(task_id), 10)
        assert task["state"] == "cancelled", task
    # Nothing leaked: with one slot, a new task still runs to the end.
    quick = await engine.submit("quick one", repo, approve="auto")
    assert (await asyncio.wait_for(engine.wait(quick), 20))["state"] in ("succeeded", "failed")


def _leftovers(repo: Path) -> tuple[int, str]:
    """(worktrees besides the operator's checkout, task branches)."""
    branches = git(repo, "branch", "--list", "--format=%(refname:short)", "livhana/*")
    return git(repo, "worktree", "list").count("\n") - 1, branches


async def test_a_task_that_ends_without_any_change_leaves_no_worktree_or_branch(
    engine_factory: Any, config: Any, repo: Path
) -> None:
    engine = await engine_factory(
        scripted(
            {"match": "broken", "turns": [READ, {"error": "model API unavailable"}]},
            {"match": "slow", "turns": [{**READ, "delay_s": 30}]},
        )
    )
    failed = await engine.wait(await engine.submit("broken task", repo, approve="auto"))
    assert failed["state"] == "failed" and failed["steps"] == 1
    slow = await engine.submit("slow task", repo, approve="auto")
    await until(lambda: engine.state_of(slow) == "planning")  # inside its first model call
    await engine.cancel(slow)
    cancelled = await engine.wait(slow)
    assert cancelled["state"] == "cancelled"
    assert _leftovers(repo) == (0, "")
    for task in (failed, cancelled):
        assert not Path(task["worktree"]).exists()
    assert list(config.worktrees_dir.iterdir()) == []


async def test_a_failed_task_with_changes_keeps_them_for_review_and_rollback(
    engine_factory: Any, repo: Path
) -> None:
    write = {
        "tool_calls": [{"name": "write_file", "input": {"path": "new.py", "content": "x = 1\n"}}]
    }
    engine = await engine_factory(
        scripted({"match": ".", "turns": [write, {"error": "model API unavailable"}]})
    )
    task = await engine.wait(await engine.submit("write then break", repo, approve="auto"))
    assert task["state"] == "failed"
    assert Path(task["worktree"], "new.py").read_text() == "x = 1\n"
    assert _leftovers(repo) == (1, f"livhana/{task['id']}\n")
    result = await engine.rollback(task["id"])
    assert "discarded" in result["message"]
    assert _leftovers(repo) == (0, "") and not Path(task["worktree"]).exists()
    after = await engine.get(task["id"])  # it never changed the workspace: still failed
    assert (after["state"], after["error"]) == ("failed", task["error"])


async def test_a_plain_folder_task_without_changes_leaves_no_copy(
    engine_factory: Any, config: Any, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "app.py").write_text("x = 1\n")
    engine = await engine_factory(
        scripted({"match": ".", "turns": [READ, {"error": "model API unavailable"}]})
    )
    task = await engine.wait(await engine.submit("read then break", plain, approve="auto"))
    assert task["state"] == "failed"
    assert list(config.worktrees_dir.iterdir()) == []
    assert (plain / "app.py").read_text() == "x = 1\n"


async def test_the_apply_audit_record_names_who_approved_it(
    engine_factory: Any, repo: Path
) -> None:
    write = {
        "tool_calls": [{"name": "write_file", "input": {"path": "new.py", "content": "x = 1\n"}}]
    }
    engine = await engine_factory(scripted({"match": ".", "turns": [write]}))
    task = await engine.wait(await engine.submit("write", repo, approve="auto"))
    assert task["state"] == "succeeded" and (repo / "new.py").exists()
    rows = await engine.store.fetch("SELECT actor FROM audit WHERE action = 'apply'")
    assert [r["actor"] for r in rows] == ["rule:approve=auto"]


async def test_a_plain_folder_holding_the_data_dir_is_copied_without_it(
    engine_factory: Any, tmp_path: Path
) -> None:
    """An operator who keeps the data dir inside the project folder: the task's copy must
    not copy the data dir (and with it the copy being made) into itself."""
    from agent.config import load_config

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("old\n")
    cfg = load_config(plain / ".livhana")
    write = {"tool_calls": [{"name": "write_file", "input": {"path": "notes.txt", "content": "new\n"}}]}
    engine = await engine_factory(scripted({"match": ".", "turns": [write]}), cfg=cfg)
    task = await asyncio.wait_for(engine.wait(await engine.submit("edit", plain, approve="auto")), 30)
    assert task["state"] == "succeeded", task
    assert (plain / "notes.txt").read_text() == "new\n"
    assert not (Path(task["worktree"]) / ".livhana").exists()


async def test_a_dead_engines_unchanged_worktree_is_removed_a_changed_one_kept(
    config: Any, engine_factory: Any, repo: Path
) -> None:
    base = git(repo, "rev-parse", "HEAD").strip()
    store = await Store.open(config.store_path)
    await store.register_engine("tui-dead", 999_999, socket.gethostname(), "tui")
    for task_id in ("idle1", "busy1"):
        path = config.worktrees_dir / task_id
        git(repo, "worktree", "add", "-q", "-b", f"livhana/{task_id}", str(path), base)
        await store.create_task(
            {"id": task_id, "title": task_id, "workspace": str(repo), "state": "running",
             "engine_id": "tui-dead"}
        )
        await store.update_task(task_id, worktree=str(path), branch=f"livhana/{task_id}",
                                base_commit=base)
    (config.worktrees_dir / "busy1" / "half.txt").write_text("half a change\n")
    await store.close()
    engine = await engine_factory()
    assert (await engine.get("idle1"))["state"] == "interrupted"
    branches = git(repo, "branch", "--list", "livhana/*")
    assert "livhana/idle1" not in branches and not (config.worktrees_dir / "idle1").exists()
    assert "livhana/busy1" in branches  # work in progress is kept for review or rollback
    assert (config.worktrees_dir / "busy1" / "half.txt").exists()


async def test_lone_surrogates_past_the_edges_are_still_recorded(
    engine_factory: Any, repo: Path, tmp_path: Path
) -> None:
    """Defence in depth behind the edges (agent/text.py): a payload or audit detail that
    still holds a lone surrogate (a file name from surrogateescape) is stored escaped
    (`\\xNN`), never a dropped event batch or a missing audit record."""
    from agent.audit import verify

    command = "printf 'bad \\377 byte\\n'"
    turns = [{"tool_calls": [{"name": "execute_bash", "input": {"command": command}}]}]
    model = write_script(tmp_path / "s.json", [{"match": ".", "turns": turns}])
    engine = await engine_factory()
    task_id = await engine.submit("fix caf\udce9", repo, model=model, approve="auto")
    await engine.emit(task_id, "warning", message="odd name caf\udce9.txt", **{"k\udcff": 1})
    await engine.audit("operator", "note", task_id, {"path": "caf\udce9.txt"})
    task = await engine.wait(task_id)
    assert task["state"] == "succeeded", task["error"]
    events = await engine.events(task_id)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "complete"
    warning = next(e for e in events if e["type"] == "warning")
    assert warning["message"] == "odd name caf\\xe9.txt" and warning["k\\xff"] == 1
    text = json.dumps(events, ensure_ascii=False)
    assert "bad \\\\xff byte" in text or "bad \ufffd byte" in text  # the tool's output
    notes = await engine.store.fetch("SELECT detail FROM audit WHERE action = 'note'")
    assert json.loads(notes[0]["detail"]) == {"path": "caf\\xe9.txt"}
    assert (await verify(engine.store))[0] is True
