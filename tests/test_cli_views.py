"""The command line says what the cockpit says: text tables with headers, the cockpit's
words and formats ("rolled back", "50%"), an empty listing that says what exists
elsewhere, id prefixes like git's (with "ambiguous" and "too short"), an unknown id that
points to `history`, descriptions never cut mid-word, and help text for every argument."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path

from agent.store import Store
from tests.conftest import cli, write_script

LEARNED = {"patterns": ["keep greet's output in lower case"], "improvements": [],
           "nextSteps": []}  # fmt: skip


def run(repo: Path, tmp_path: Path, title: str, path: str) -> str:
    turns = [{"tool_calls": [{"name": "write_file", "input": {"path": path, "content": "x\n"}}]}]
    model = write_script(tmp_path / f"{path}.json",
                         [{"match": ".", "turns": turns, "learnings": LEARNED}])  # fmt: skip
    result = cli("run", title, "--workspace", str(repo), "--model", model, "--approve", "auto",
                 "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout.splitlines()[0])["task_id"])


def one_line_error(result: object, code: int = 2) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    err = result.stderr.strip()  # type: ignore[attr-defined]
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_listings_speak_the_cockpits_words_with_headers(repo: Path, tmp_path: Path) -> None:
    assert cli("tasks").stdout.strip() == "no live tasks (0 in history: `livhana-cockpit history`)"
    first = run(repo, tmp_path, "write the first note", "one.txt")
    second = run(repo, tmp_path, "write the second note", "two.txt")
    assert cli("rollback", first[:6]).returncode == 0  # a unique prefix names it

    # Finished tasks and decided requests are counted, not denied.
    assert cli("tasks").stdout.strip() == "no live tasks (2 in history: `livhana-cockpit history`)"
    assert cli("approvals").stdout.strip() == "no pending approvals (2 decided)"

    history = cli("history").stdout.splitlines()
    assert history[0].split() == ["ID", "Finished", "State", "Working", "Waiting", "Cost",
                                  "Task", "Outcome"]  # fmt: skip
    rows = {line.split()[0]: line for line in history[1:]}
    assert "rolled back" in rows[first] and "rolled_back" not in rows[first]
    assert "succeeded" in rows[second]

    learnings = cli("learnings").stdout.splitlines()
    assert learnings[0].split() == ["ID", "State", "Category", "Used", "Taught", "Learning"]
    assert any(" pattern " in line and LEARNED["patterns"][0] in line
               for line in learnings[1:])  # fmt: skip

    metrics = dict(re.split(r"\s{2,}", line.strip(), maxsplit=1)
                   for line in cli("metrics").stdout.splitlines()[1:])  # fmt: skip
    assert metrics["success"] == "50%" and metrics["rolled back"] == "1"
    assert re.fullmatch(r"\$\d+\.\d{4}", metrics["cost"])
    # JSON stays raw.
    assert json.loads(cli("metrics", "--json").stdout)["totals"]["success_rate"] == 0.5


def test_id_prefixes_answer_ambiguous_too_short_or_unknown(tmp_path: Path) -> None:
    async def seed() -> None:
        store = await Store.open(tmp_path / "data" / "livhana.db")
        for task_id in ("ae01aa000001", "ae02bb000002", "c0ffee000003"):
            await store.create_task({"id": task_id, "title": f"task {task_id}", "workspace": "/x",
                                     "state": "succeeded", "finished_at": time.time()})  # fmt: skip
        await store.close()

    asyncio.run(seed())
    err = one_line_error(cli("cancel", "ae"))
    assert err.startswith("livhana-cockpit: ambiguous: 2 tasks start with ae (")
    assert "ae01aa000001" in err and "ae02bb000002" in err
    err = one_line_error(cli("approve", "c0"))
    assert "too short" in err and "c0ffee000003" in err
    err = one_line_error(cli("rollback", "deadbeef"))
    assert "no task 'deadbeef'" in err and "livhana-cockpit history" in err
    # A long enough unique prefix is the task itself.
    err = one_line_error(cli("cancel", "c0ffee"))
    assert "c0ffee000003" in err and "already ended" in err

def test_capabilities_are_never_cut_mid_word() -> None:
    lines = cli("capabilities", env={"COLUMNS": "100"}).stdout.splitlines()
    lines = lines[:lines.index("")] if "" in lines else lines  # the table; notes follow it
    assert lines[0].split() == ["Tool", "Kind", "Policy", "Description"]
    described = json.loads(cli("capabilities", "--json").stdout)
    start = lines[0].index("Description")
    for line, cap in zip(lines[1:], described, strict=True):
        assert len(line) <= 100
        shown = line[start:]
        whole = " ".join(cap["description"].split())
        if shown != whole:  # clipped: whole words, then an ellipsis
            assert shown.endswith("…")
            kept = shown[:-1]
            assert whole.startswith(kept) and re.match(r"[,;:.]* ", whole[len(kept):]), shown


def test_help_says_what_every_argument_is() -> None:
    import argparse

    from cockpit.cli import build_parser

    for command in ("approve", "deny", "cancel", "rollback"):
        text = cli(command, "--help").stdout
        assert "TASK_ID" in text and "unique prefix of at least 4" in text, text
    listing = " ".join(cli("--help").stdout.split())
    assert "approve the pending requests of a task" in listing
    assert "cancel a live task" in listing
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in [("", parser), *commands.choices.items()]:
        for action in sub._actions:
            if not isinstance(action, argparse._SubParsersAction):
                assert action.help, f"`{name} {'/'.join(action.option_strings) or action.dest}`"
