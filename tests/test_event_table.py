"""One table says how each event type is shown (cockpit/render.py): the CLI's one-line
summary and the cockpit log's line both come from its row."""

from __future__ import annotations

from typing import Any

import pytest

from agent import events as ev
from agent.pausing import PAUSED, RESUMED
from agent.rebase import REBASE_EVENT
from cockpit import render
from cockpit.widgets import event_log

TYPES = [v for k, v in vars(ev).items() if k.isupper() and isinstance(v, str)
         and k not in ev.ALL_STATES and v not in ev.ALL_STATES] + [PAUSED, RESUMED, REBASE_EVENT]  # fmt: skip


def test_every_event_type_has_a_row() -> None:
    assert set(TYPES) == set(render.SHOWN), "a type without a row shows as raw JSON"


def test_the_log_and_the_summary_come_from_the_same_row(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.text import Text

    def line(event: dict[str, Any]) -> str:
        return f"fresh: {event['what']}"

    def log(event: dict[str, Any], _thinking: bool) -> Text:
        return Text(f"✧ {event['what']}")

    monkeypatch.setitem(render.SHOWN, "fresh", render.Shown(line, log))
    event = {"task_id": "t", "seq": 1, "ts": 0, "type": "fresh", "what": "new kind"}
    assert render.describe(event) == "fresh: new kind"
    assert event_log.render(event).plain == "✧ new kind"  # what the EventLog widget writes


def test_pause_and_resume_read_as_words_not_json() -> None:
    paused = {"type": PAUSED, "by": "cli", "message": "paused by cli: holds before its next step"}
    assert render.describe(paused) == "paused: paused by cli: holds before its next step"
    assert event_log.render(paused).plain == "‖ paused by cli: holds before its next step"


def test_a_rebase_reads_as_words_not_json() -> None:
    rebased = {"type": REBASE_EVENT, "onto": "9f8e7d6c5b4a", "commit": "1a2b3c4d5e6f",
               "message": "rebased onto HEAD 9f8e7d6c5b: branch livhana/ab12 now holds it"}
    assert render.describe(rebased) == (
        "rebase: rebased onto HEAD 9f8e7d6c5b: branch livhana/ab12 now holds it")
    assert event_log.render(rebased).plain == (
        "◆ rebase rebased onto HEAD 9f8e7d6c5b: branch livhana/ab12 now holds it")


def test_the_cli_summary_never_loads_textual() -> None:
    import subprocess
    import sys

    code = ("import sys, cockpit.run_command, cockpit.render as r;"
            "r.describe({'type': 'step', 'step': 1, 'action': 'read_file', 'target': 'a'});"
            "sys.exit(1 if 'textual' in sys.modules or 'rich' in sys.modules else 0)")  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
