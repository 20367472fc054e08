"""The daily job's log reading (agent/improve/logscan.py, logfiles.py): every format the
issue names, unreadable lines counted and never fatal, a traceback counted once, big files
read in pieces with the same result, and spikes told from steady errors."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from agent.improve import logscan
from agent.improve.daily import spikes
from agent.improve.logfiles import find_logs, scan_logs
from agent.improve.logscan import DAY_S, Scan, _Clock, scan_all, scan_file

NOW = time.time()


def scan_text(tmp_path: Path, text: str | bytes, name: str = "x.log") -> Scan:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    scan = Scan(now=NOW)
    scan_file(scan, _Clock(NOW), str(path), name=name)
    return scan


def local(t: float, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return datetime.fromtimestamp(t).strftime(fmt)


def test_each_format_gives_its_time_and_level(tmp_path: Path) -> None:
    t = NOW - 3600  # an hour ago: the last day
    old = NOW - 3 * DAY_S  # a baseline day (day 3 before the window... index 2)
    iso_utc = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lines = [
        f"{local(t)},123 ERROR app.auth: token rejected",  # Python logging (asctime)
        f"[{local(t)}] CRITICAL worker: disk full",  # bracketed asctime
        f"{iso_utc} level=error msg=\"upstream gone\"",  # logfmt, ISO 8601 in UTC
        f"{local(t, '%b %e %H:%M:%S')} host sshd[42]: error: kex failed",  # syslog
        f"<11>1 {iso_utc} host app 99 - - payment failed",  # RFC 5424, severity err
        json.dumps({"time": t, "level": "error", "msg": "db down", "logger": "api"}),
        json.dumps({"ts": int(t * 1000), "level": 50, "msg": "pino boom"}),  # pino, ms
        f"{local(old)},000 ERROR app.auth: token rejected",  # the baseline
        f"{local(t)},000 INFO app: retrying after error",  # an info line naming an error
        f"{local(t)},000 WARNING app: slow error handler",  # a warning: not an error
    ]
    scan = scan_text(tmp_path, "\n".join(lines) + "\n")
    window = {k: s.window for k, s in scan.signatures.items() if s.window}
    assert len(window) == 7, window
    assert scan.errors_window == 7 and scan.errors_baseline == 1
    token = next(s for k, s in scan.signatures.items() if "token rejected" in k)
    assert token.window == 1 and token.baseline[2] == 1  # 3 days ago: baseline day index 2
    assert any("api: db down" in k for k in scan.signatures)  # JSON: logger and message
    assert not any("retrying" in k or "slow error" in k for k in scan.signatures)


def test_traceback_is_one_error_with_its_exception_as_detail(tmp_path: Path) -> None:
    t = local(NOW - 60)
    text = (f"{t},1 ERROR app.auth: JWT validation failed\n"
            "Traceback (most recent call last):\n"
            '  File "app/auth.py", line 3, in validate\n'
            "    raise RuntimeError('JWT_SECRET is not set')\n"
            "RuntimeError: JWT_SECRET is not set\n"
            f"{t},2 INFO app: next request\n"
            "ValueError: an info's traceback is not an error\n")
    scan = scan_text(tmp_path, text)
    assert scan.errors_window == 1
    (sig,) = scan.signatures.values()
    assert sig.detail == "RuntimeError: JWT_SECRET is not set"


def test_unreadable_lines_are_counted_and_never_fatal(tmp_path: Path) -> None:
    t = local(NOW - 60)
    data = (f"{t} ERROR ok line\n".encode() + b"\xff\xfe\x00 binary junk ERROR \xc3\n"
            + b"ERROR: no time anywhere above\n")
    scan = scan_text(tmp_path, data)
    assert scan.unreadable["not UTF-8"] == 1
    assert scan.errors_window >= 1  # the good line still counts
    undated = scan_text(tmp_path, "ERROR:root:default logging format has no time\n", "u.log")
    assert undated.unreadable == {"error without a time": 1} and not undated.signatures
    jsonl = "\n".join([json.dumps({"ts": NOW - 60, "level": "info", "msg": "ok"})] * 3
                      + ['{"ts": 12, "level": "error", "msg": "cut', '{"level": "error", "ms'])
    cut = scan_text(tmp_path, jsonl + "\n", "j.log")
    assert cut.unreadable.get("cut-off JSON") == 2


def test_a_file_read_in_pieces_counts_the_same(tmp_path: Path, monkeypatch) -> None:
    lines = []
    for i in range(4000):
        t = NOW - DAY_S * 8 * (1 - i / 4000)
        lines.append(f"{local(t)},000 INFO app: request {i} served")
        if i % 7 == 0:
            lines += [f"{local(t)},500 ERROR app.db: timeout {i % 13}s", "Traceback (most recent call last):",
                      "  File 'x', line 1", "TimeoutError: timed out"]
    path = tmp_path / "big.log"
    path.write_text("\n".join(lines) + "\n")
    whole = scan_all([(str(path), "big.log")], NOW)
    monkeypatch.setattr(logscan, "PIECE", 7_777)  # dozens of pieces, cut mid-line
    monkeypatch.setattr(logscan, "CHUNK", 1_000)
    pieces = scan_all([(str(path), "big.log")], NOW, workers=2)
    assert len(logscan.pieces([(str(path), "big.log")])) > 20
    assert pieces.lines == whole.lines == len(lines)
    assert pieces.bytes == whole.bytes == path.stat().st_size
    assert pieces.errors_window == whole.errors_window > 0
    assert pieces.errors_baseline == whole.errors_baseline > 0
    (a,), (b,) = whole.signatures.values(), pieces.signatures.values()
    assert (a.window, a.baseline) == (b.window, b.baseline)
    assert a.detail == b.detail == "TimeoutError: timed out"


def test_new_and_many_times_usual_are_spikes_steady_is_not(tmp_path: Path) -> None:
    lines = []
    for day in range(8):
        for h in range(0, 24, 2):
            t = NOW - day * DAY_S - h * 3600 - 300
            lines.append(f"{local(t)},0 ERROR db: timeout")  # steady: 12 a day
            if day == 0 or h == 0:
                lines.append(f"{local(t)},0 ERROR cache: evicted")  # 1 a day, 12 today
            if day == 0 and h < 8:
                lines.append(f"{local(t)},0 ERROR auth: JWT_SECRET is not set")  # new today
    path = tmp_path / "app.log"
    path.write_text("\n".join(sorted(lines)) + "\n")
    scan = scan_all([(str(path), "app.log")], NOW).as_dict()
    found = spikes(scan, NOW, factor=5, minimum=3, redact=str)
    kinds = {i["signature"]: i for i in found}
    assert set(kinds) == {"ERROR auth: JWT_SECRET is not set", "ERROR cache: evicted"}
    assert kinds["ERROR auth: JWT_SECRET is not set"]["new"] is True
    assert kinds["ERROR cache: evicted"]["ratio"] >= 5
    assert found[0]["signature"] == "ERROR auth: JWT_SECRET is not set"  # the strongest first


def test_no_baseline_no_spike(tmp_path: Path) -> None:
    """Logs that began today cannot tell a spike from a steady error: none is claimed."""
    text = "\n".join(f"{local(NOW - h * 600)},0 ERROR db: timeout" for h in range(20))
    path = tmp_path / "new.log"
    path.write_text(text + "\n")
    scan = scan_all([(str(path), "new.log")], NOW).as_dict()
    assert scan["errors_window"] == 20
    assert spikes(scan, NOW, 5, 3, str) == []


def test_log_globs_skip_vendored_folders_and_fifos(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    for rel in ("app.log", "logs/a.log", "logs/deep/b.log", "node_modules/x/c.log",
                "logs/.git/d.log", "other/e.log", "logs/notes.txt"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_text("x\n")
    os.mkfifo(ws / "logs" / "pipe.log")
    found = [shown for _, shown in find_logs(ws, ["logs/**/*.log", "*.log"])]
    assert found == ["app.log", "logs/a.log", "logs/deep/b.log"]
    absolute = find_logs(ws, [str(ws / "other" / "*.log")])
    assert [p for p, _ in absolute] == [str(ws / "other" / "e.log")]


async def test_the_child_reads_the_logs_and_a_fifo_never_hangs(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(f"{local(NOW - 60)},0 ERROR x: y\n")
    fifo = tmp_path / "p.log"
    os.mkfifo(fifo)
    scan = await scan_logs([(str(log), "a.log"), (str(fifo), "p.log")], NOW)
    assert scan["errors_window"] == 1
    assert {"path": "p.log", "bytes": 0, "skipped": "not a regular file"} in scan["files"]
