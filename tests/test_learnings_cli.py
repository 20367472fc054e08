"""`livhana-cockpit learnings` as a user runs it: the seed's JSON, the stats, the counts
`metrics` agrees with, and the operator's pin/edit/retire/restore, each taking effect on
the next task."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import cli, write_script

PAGES = "The users endpoint pagination is 1-based: start at page 1"
CHANGELOG = "Every release gets a CHANGELOG entry with the version and date"
SAME_AS_PAGES = "Users endpoint pages are 1-based: start the pagination at page 1"
TESTS = "Run the test suite before committing"
LINTER = "Run the linter before committing"
NEXT = "tag release 0.2"


def run(repo: Path, model: str, title: str) -> list[dict[str, Any]]:
    result = cli("run", title, "--workspace", str(repo), "--json", "--model", model,
                 "--approve", "auto", "--no-apply")
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def given(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["type"] == "analysis")["learnings"]


def stats() -> dict[str, dict[str, Any]]:
    result = cli("learnings", "--stats", "--json")
    assert result.returncode == 0, result.stderr
    return {row["text"]: row for row in json.loads(result.stdout)}


@pytest.fixture
def seeded(tmp_path: Path) -> None:
    """A store holding a few learnings (learning 1 among them), written by the store."""
    from agent.store import Store

    async def seed() -> None:
        store = await Store.open(tmp_path / "data" / "livhana.db")
        try:
            await store.add_learnings("t1", [("pattern", PAGES), ("pattern", TESTS)])
        finally:
            await store.close()

    asyncio.run(seed())


@pytest.fixture
def taught(repo: Path, tmp_path: Path) -> tuple[Path, str]:
    """Two tasks taught: the second says one thing again in other words. No holdout: a
    task given nothing must be so for the reason each test checks, not by chance."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "config.toml").write_text("[learnings]\nholdout = 0.0\n")
    model = write_script(tmp_path / "s.json", [
        {"match": "first lesson", "learnings": {
            "patterns": [PAGES, TESTS], "improvements": [CHANGELOG], "nextSteps": [NEXT]}},
        {"match": "second lesson", "learnings": {
            "patterns": [SAME_AS_PAGES, LINTER], "improvements": [], "nextSteps": []}},
        {"match": ".", "summary": "Done."},
    ])
    run(repo, model, "first lesson: look at the project")
    run(repo, model, "second lesson: look again")
    return repo, model


def test_near_duplicates_merge_and_every_count_agrees_with_metrics(
        taught: tuple[Path, str]) -> None:
    rows = stats()
    # The same advice in other words is one learning, taught twice; different advice
    # ("the linter" against "the test suite") is not merged.
    assert set(rows) == {PAGES, TESTS, CHANGELOG, NEXT, LINTER}
    pages = rows[PAGES]
    assert pages["taught"] == 2 and pages["merged"] == 1
    assert pages["said"] == [PAGES, SAME_AS_PAGES]
    assert len(pages["source_tasks"]) == 2 and pages["source_task"] == pages["source_tasks"][0]
    assert rows[LINTER]["merged"] == 0 and rows[TESTS]["merged"] == 0
    for row in rows.values():
        for key in ("id", "text", "category", "source_task", "uses", "success_with",
                    "success_without", "state"):
            assert key in row, key
    assert rows[CHANGELOG]["category"] == "improvement" and rows[NEXT]["category"] == "nextStep"

    seed = json.loads(cli("learnings", "--json").stdout)
    assert set(seed) == {"patterns", "improvements", "nextSteps"}  # the seed's shape, exactly
    assert seed["improvements"] == [CHANGELOG] and seed["nextSteps"] == [NEXT]
    assert sorted(seed["patterns"]) == sorted([PAGES, TESTS, LINTER])

    totals = json.loads(cli("metrics", "--json").stdout)["totals"]
    assert totals["learnings"] == len(rows) == 5
    assert totals["learnings_merged"] == 1 and totals["learnings_active"] == 5
    plain = [line.split() for line in cli("metrics").stdout.splitlines()]
    assert ["learnings", "5"] in plain and ["merged", "near-duplicates", "1"] in plain

    listing = cli("learnings").stdout.splitlines()
    assert listing[0].split() == ["ID", "State", "Category", "Used", "Taught", "Learning"]
    assert listing[-1] == ("5 learnings (5 active); 1 more taught was merged into them as "
                           "near-duplicates (each counts once)")
    assert len([line for line in listing[1:-2] if line.strip()]) == 5 and listing[-2] == ""
    with_stats = cli("learnings", "--stats").stdout.splitlines()
    assert with_stats[0].split()[:6] == ["ID", "State", "Category", "Used", "With", "Without"]


def test_pin_edit_retire_restore_from_the_command_line(
        taught: tuple[Path, str], tmp_path: Path) -> None:
    repo, model = taught
    pages, changelog = stats()[PAGES], stats()[CHANGELOG]

    out = cli("learnings", "pin", str(changelog["id"]))
    assert out.returncode == 0 and out.stdout.startswith(f"learning {changelog['id']} pinned")
    assert stats()[CHANGELOG]["pinned"] is True
    # Pinned: given to a task it has nothing to do with.
    chosen = given(run(repo, model, "add a farewell function"))
    assert [g["id"] for g in chosen["given"]] == [changelog["id"]]
    assert chosen["given"][0]["pinned"] is True

    new = "Users endpoint pages start at 1 (1-based), never at 0"
    out = cli("learnings", "edit", str(pages["id"]), new)
    assert out.returncode == 0, out.stderr
    assert json.loads(cli("learnings", "--json").stdout)["patterns"].count(new) == 1
    edited = stats()[new]
    assert edited["id"] == pages["id"] and edited["said"] == [PAGES, SAME_AS_PAGES]
    chosen = given(run(repo, model, "fix the users endpoint pagination"))
    assert {g["text"] for g in chosen["given"]} >= {new, CHANGELOG}

    out = cli("learnings", "retire", str(pages["id"]), "--reason", "wrong since v2")
    assert out.returncode == 0, out.stderr
    row = stats()[new]
    assert row["state"] == "retired" and row["reason"] == "wrong since v2"
    assert new not in json.loads(cli("learnings", "--json").stdout)["patterns"]
    chosen = given(run(repo, model, "fix the users endpoint pagination"))
    assert pages["id"] not in {g["id"] for g in chosen["given"]}  # retired: never given
    assert "retired" in cli("learnings").stdout

    out = cli("learnings", "restore", str(pages["id"]))
    assert out.returncode == 0 and "restored" in out.stdout
    assert stats()[new]["state"] == "active"
    chosen = given(run(repo, model, "fix the users endpoint pagination"))
    assert pages["id"] in {g["id"] for g in chosen["given"]}

    out = cli("learnings", "unpin", str(changelog["id"]))
    assert out.returncode == 0 and stats()[CHANGELOG]["pinned"] is False
    # Every change is in the audit log, and the chain still verifies.
    assert cli("audit", "verify").returncode == 0


@pytest.mark.parametrize(("args", "says"), [
    (("learnings", "pin"), "needs a learning ID"),
    (("learnings", "pin", "abc"), "whole number"),
    (("learnings", "pin", "999"), "no learning 999"),
    (("learnings", "edit", "1"), "give the new text"),
    (("learnings", "edit", "1", "   "), "give the new text"),
    (("learnings", "--stats", "pin", "1"), "does not go with an action"),
    (("learnings", "forget", "1"), "invalid choice"),
    (("learnings", "pin", "1", "extra"), "takes nothing more"),
])
def test_bad_learnings_commands_are_one_line_and_exit_2(
        seeded: None, args: tuple[str, ...], says: str) -> None:
    before = cli("learnings", "--stats", "--json").stdout
    out = cli(*args)
    assert out.returncode == 2, out
    assert says in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr
    assert cli("learnings", "--stats", "--json").stdout == before  # nothing changed


def test_retiring_twice_or_restoring_an_active_one_says_so(seeded: None) -> None:
    learning = stats()[TESTS]["id"]
    assert cli("learnings", "retire", str(learning)).returncode == 0
    again = cli("learnings", "retire", str(learning))
    assert again.returncode == 2 and "already retired" in again.stderr
    assert cli("learnings", "restore", str(learning)).returncode == 0
    twice = cli("learnings", "restore", str(learning))
    assert twice.returncode == 2 and "is not retired" in twice.stderr


def test_an_empty_store_lists_no_learnings_in_every_shape() -> None:
    assert json.loads(cli("learnings", "--json").stdout) == {
        "patterns": [], "improvements": [], "nextSteps": []}
    assert json.loads(cli("learnings", "--stats", "--json").stdout) == []
    assert "no learnings yet" in cli("learnings").stdout
