"""analyze_logs: clustering by normalised message, spike detection, time filters, sources."""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent.config import Config
from agent.errors import ToolError
from agent.procs import ProcessGroups
from agent.tools import analyze_logs
from agent.tools.analyze_logs import normalise, parse_time
from agent.tools.base import ToolContext


def make_ctx(root: Path, logs: list[str] | None = None) -> ToolContext:
    async def emit(type_: str, **payload: Any) -> None:
        pass

    async def ask(kind: str, summary: str, detail: dict[str, Any]) -> bool:
        return True

    config = Config()
    config.data_dir = root.parent / "data"
    config.logs = logs or []
    return ToolContext(
        root=root, task_id="t-1", config=config, emit=emit, procs=ProcessGroups(), ask=ask
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "wt"
    (path / "logs").mkdir(parents=True)
    return path


START = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
SPIKE_MINUTE = 42


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S,") + f"{t.microsecond // 1000:03d}"


def spiky_log() -> str:
    """An hour of traffic: ~1 error a minute, then 40 timeouts in minute 42."""
    rnd = random.Random(7)
    lines = []
    for minute in range(60):
        base = START + timedelta(minutes=minute)
        for i in range(5):
            lines.append(
                f"{stamp(base + timedelta(seconds=i * 10))} INFO request {rnd.randint(1, 9999)} ok"
            )
        if minute % 2 == 0:
            lines.append(
                f"{stamp(base + timedelta(seconds=55))} WARNING slow query took {rnd.randint(500, 900)}ms"
            )
        lines.append(
            f"{stamp(base + timedelta(seconds=30))} ERROR payment failed for order {rnd.randint(1000, 99999)} "
            f"user {uuid.UUID(int=rnd.getrandbits(128))} at /srv/app/pay.py"
        )
        if minute == SPIKE_MINUTE:
            for i in range(40):
                t = base + timedelta(seconds=i, milliseconds=rnd.randint(0, 999))
                lines.append(
                    f"{stamp(t)} ERROR upstream timeout after {rnd.randint(1000, 5000)} ms "
                    f"calling 10.0.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}:8080 req=0x{rnd.getrandbits(48):x}"
                )
    return "\n".join(lines) + "\n"


async def test_spike_found_and_ids_merged(root: Path) -> None:
    (root / "logs" / "app.log").write_text(spiky_log())
    result = await analyze_logs.tool.run({"path": "logs/app.log"}, make_ctx(root))
    data = result.data
    assert not result.is_error
    assert [s["start"] for s in data["spikes"]] == [
        (START + timedelta(minutes=SPIKE_MINUTE)).isoformat()
    ]
    assert data["spikes"][0]["count"] == 41  # the 40 timeouts and that minute's payment error
    by_count = {g["message"]: g["count"] for g in data["groups"]}
    # Lines that differ only by order number, uuid, ip, hex id: one group each.
    assert by_count == {
        "ERROR upstream timeout after <n> ms calling <ip> req=<hex>": 40,
        "ERROR payment failed for order <n> user <uuid> at <path>": 60,
        "WARNING slow query took <n>ms": 30,
    }
    assert data["errors"] == 100 and data["warnings"] == 30
    timeouts = next(g for g in data["groups"] if "timeout" in g["message"])
    assert timeouts["first"].startswith("2024-05-01T10:42:00") and len(timeouts["examples"]) == 2
    assert timeouts["last"].startswith("2024-05-01T10:42:39")
    assert "SPIKE 2024-05-01T10:42:00+00:00: 41 errors in one minute" in result.output


async def test_steady_errors_are_not_a_spike(root: Path) -> None:
    lines = [
        f"{stamp(START + timedelta(minutes=m, seconds=s))} ERROR db retry {m}"
        for m in range(30)
        for s in (5, 25, 45)
    ]
    (root / "logs" / "steady.log").write_text("\n".join(lines))
    result = await analyze_logs.tool.run({"path": "logs"}, make_ctx(root))
    assert result.data["spikes"] == [] and result.data["errors"] == 90
    assert "no error spikes" in result.output


async def test_since_and_pattern_filter(root: Path) -> None:
    now = datetime.now(UTC)
    lines = [
        f"{(now - timedelta(hours=3)).isoformat()} ERROR old failure 1",
        f"{(now - timedelta(minutes=20)).isoformat()} ERROR fresh failure 2",
        f"{(now - timedelta(minutes=10)).isoformat()} ERROR cache miss storm 3",
    ]
    (root / "logs" / "a.log").write_text("\n".join(lines) + "\n")
    result = await analyze_logs.tool.run({"path": "logs/a.log", "since": "1h"}, make_ctx(root))
    assert sorted(g["message"] for g in result.data["groups"]) == [
        "ERROR cache miss storm <n>",
        "ERROR fresh failure <n>",
    ]
    since = (now - timedelta(minutes=15)).isoformat()
    result = await analyze_logs.tool.run({"path": "logs/a.log", "since": since}, make_ctx(root))
    assert result.data["errors"] == 1
    result = await analyze_logs.tool.run({"path": "logs/a.log", "pattern": "fail"}, make_ctx(root))
    assert result.data["errors"] == 2
    with pytest.raises(ToolError, match="bad pattern"):
        await analyze_logs.tool.run({"path": "logs/a.log", "pattern": "("}, make_ctx(root))
    with pytest.raises(ToolError, match="since"):
        await analyze_logs.tool.run({"path": "logs/a.log", "since": "yesterday"}, make_ctx(root))


async def test_traceback_counts_once_and_json_lines_group(root: Path) -> None:
    text = (
        "2024-05-01T10:00:00Z ERROR handler crashed\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app.py", line 3, in handle\n'
        "ValueError: bad input 12\n"
        "2024-05-01T10:01:00Z INFO fine\n"
        "KeyError: 'user'\n"
    )
    records = [
        {"ts": f"2024-05-01T10:02:0{i}Z", "level": "error", "msg": f"queue {i} full"}
        for i in range(3)
    ]
    text += "\n".join(json.dumps(r) for r in records) + "\n"
    (root / "logs" / "mixed.log").write_text(text)
    result = await analyze_logs.tool.run({"path": "logs/mixed.log"}, make_ctx(root))
    groups = {g["message"]: g["count"] for g in result.data["groups"]}
    assert groups == {"ERROR handler crashed": 1, "KeyError: <str>": 1, "ERROR queue <n> full": 3}


async def test_configured_absolute_logs_and_confinement(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "var-log"
    outside.mkdir()
    (outside / "svc.log").write_text("Jan  5 10:00:01 host svc[12]: ERROR disk /dev/sda1 full\n")
    result = await analyze_logs.tool.run({}, make_ctx(root, [str(outside / "*.log")]))
    assert result.data["errors"] == 1 and result.data["files"] == [str(outside / "svc.log")]
    with pytest.raises(ToolError):
        await analyze_logs.tool.run({"path": str(outside / "svc.log")}, make_ctx(root))
    with pytest.raises(ToolError):
        await analyze_logs.tool.run({"path": "../var-log/svc.log"}, make_ctx(root))
    with pytest.raises(ToolError, match="no log files configured"):
        await analyze_logs.tool.run({}, make_ctx(root))


def test_normalise_and_timestamps() -> None:
    a = normalise('Timeout for "alice" id=7f3a9c2e11 at https://x.io/a?b=1 file /var/lib/x.db')
    b = normalise('Timeout for "bob" id=00ab12cd34ef at https://y.io/ file /tmp/y/z.db')
    assert a == b == "Timeout for <str> id=<hex> at <url> file <path>"
    t, rest = parse_time('10.0.0.1 - - [01/May/2024:10:00:00 +0200] "GET / HTTP/1.1" 500')
    assert t == datetime(2024, 5, 1, 8, 0, tzinfo=UTC) and "[01/May" not in rest
    t, _ = parse_time("2024-05-01T10:00:00.5+0100 x")
    assert t == datetime(2024, 5, 1, 9, 0, 0, 500000, tzinfo=UTC)


async def test_relative_configured_logs_are_worktree_globs_without_links_out(
    root: Path, tmp_path: Path
) -> None:
    (tmp_path / "private.log").write_text("2024-05-01 10:00:00 ERROR private thing\n")
    (root / "logs" / "app.log").write_text("2024-05-01 10:00:00 ERROR app failed\n")
    os.symlink(tmp_path / "private.log", root / "logs" / "leak.log")
    result = await analyze_logs.tool.run({}, make_ctx(root, ["logs/*.log"]))
    assert result.data["files"] == ["logs/app.log"]
    assert [g["message"] for g in result.data["groups"]] == ["ERROR app failed"]
    assert "skipped 1 symbolic link(s)" in result.output and "private" not in result.output


async def test_dates_beyond_what_datetime_holds_are_no_crash(root: Path) -> None:
    (root / "logs" / "odd.log").write_text(
        "9999-12-31T23:59:59-14:00 ERROR from the far future\n"
        "2024-05-01T10:00:00Z ERROR an ordinary one\n"
    )
    result = await analyze_logs.tool.run(
        {"path": "logs/odd.log", "since": "99999999999d"}, make_ctx(root)
    )
    # The far stamp is no date (year 10000 in UTC): its line has no time, so `since` drops it.
    assert not result.is_error and result.data["errors"] == 1


async def test_a_fifo_among_the_logs_does_not_block(root: Path) -> None:
    os.mkfifo(root / "logs" / "pipe.log")
    (root / "logs" / "ok.log").write_text("2024-05-01 10:00:00 ERROR fine\n")
    result = await asyncio.wait_for(analyze_logs.tool.run({"path": "logs"}, make_ctx(root)), 60)
    assert result.data["files"] == ["logs/ok.log"] and result.data["errors"] == 1
    with pytest.raises(ToolError, match="is not a regular file"):  # named, it is refused
        await asyncio.wait_for(analyze_logs.tool.run({"path": "logs/pipe.log"}, make_ctx(root)), 60)
