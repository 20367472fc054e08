"""Error lines of log files, counted per signature and per day, streamed.

The daily job compares the last day's errors with the seven days before (agent/improve/
daily.py); this module does the reading. Files are read in chunks (never whole), so 1 GB of
logs costs the same memory as 1 MB. The hot path is C: a chunk is lowered once and searched
for a few level words (`bytes.find`); only the lines around a hit are looked at in Python.
Almost every line of a log is not an error, so almost every line costs nothing here.

Understood formats (the timestamp and the level of a line):
- ISO 8601 (`2024-05-01T12:00:00.123Z`, `2024-05-01 12:00:00,123`), anywhere near the start;
- Python logging (`%(asctime)s %(levelname)s ...`, `[asctime] LEVEL`, `LEVEL:name:msg`);
- syslog (`May  1 12:00:00 host app[12]: ...`, RFC 5424 `<11>1 2024-...`);
- Apache/nginx (`[01/May/2024:12:00:00 +0000]`, `[error]`);
- JSON lines (`{"ts"|"time"|"timestamp"|"@timestamp": ..., "level"|"severity": ..., "msg": ...}`,
  numeric pino/bunyan levels included).
A line without its own timestamp belongs to the record above it (a traceback): it is not
counted again, but an exception it names is kept as that record's detail. Lines that cannot
be read (bad bytes, broken JSON, an error with no time at all) are counted, never fatal.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from ..tools.analyze_logs import VARYING

DAY_S = 86_400
CHUNK = 8 << 20
MAX_SIGNATURES = 20_000  # distinct error shapes kept; more are counted as "other"
MAX_EXAMPLES = 3
MAX_LINE = 2000  # bytes of one line looked at (a 10 MB JSON line is not read whole)
LOOKBACK_LINES = 200  # how far up a traceback line looks for its record's head
# Lowered level words: a line holding none of them is never an error line.
NEEDLES = (b"err", b"fatal", b"crit", b"panic", b"emerg", b"severe")
PINO_NEEDLES = (b'"level":5', b'"level":6', b'"level": 5', b'"level": 6')
PRI_NEEDLE = b"\n<"
_SEARCH = {n: re.compile(re.escape(n)).search for n in (*NEEDLES, *PINO_NEEDLES, PRI_NEEDLE)}

_ISO = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?\s?(Z|[+-]\d\d:?\d\d(?!\d))?"
)
_SYSLOG = re.compile(r"^(?:<\d{1,3}>)?([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d)")
_CLF = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_PRI = re.compile(r"^<(\d{1,3})>")
_MONTHS = {m: i for i, m in enumerate(calendar.month_abbr) if m}
_LEVEL = re.compile(
    r"\b(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|FATAL|CRITICAL|CRIT|SEVERE|PANIC|"
    r"EMERG|ALERT)\b|\[(trace|debug|info|notice|warn|warning|error|crit|alert|emerg|fatal)\]"
    r"|(?i:\blevel\s?[=:]\s?\"?(\w+))"
)
_ERROR_LEVELS = frozenset(
    ("error", "err", "fatal", "critical", "crit", "severe", "panic", "emerg", "alert", "emergency")
)
_LOOSE_ERROR = re.compile(r"(?i)\b(?:error|fatal|panic|critical)\b")
_EXCEPTION = re.compile(r"^(?:[\w.]*\w(?:Error|Exception|Fault)|panic)\b:?")
_DIGITS = bytes(range(48, 58))
_TIME_KEYS = ("ts", "time", "timestamp", "@timestamp", "t", "date", "asctime", "datetime")
_LEVEL_KEYS = ("level", "severity", "levelname", "lvl", "log.level", "loglevel")
_MSG_KEYS = ("msg", "message", "error", "err", "event")
_NAME_KEYS = ("logger", "name", "logger_name", "module", "component")


def normalise(message: str) -> str:
    """The message with what varies per occurrence (ids, numbers, paths...) replaced."""
    for pattern, repl in VARYING:
        message = pattern.sub(repl, message)
    return message.strip(" -:|[]")[:200]


@dataclass
class Signature:
    """One error shape: its count in the window (the last day) and on each baseline day."""

    window: int = 0
    baseline: list[int] = field(default_factory=lambda: [0] * 7)
    first: float = 0.0
    last: float = 0.0
    hours: list[int] = field(default_factory=lambda: [0] * 24)  # the window, hour by hour
    examples: list[str] = field(default_factory=list)  # from the window first
    files: list[str] = field(default_factory=list)
    detail: str = ""  # the exception a traceback below it names

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window, "baseline": self.baseline, "first": self.first,
            "last": self.last, "hours": self.hours, "examples": self.examples,
            "files": self.files, "detail": self.detail,
        }  # fmt: skip

    def merge(self, other: dict[str, Any]) -> None:
        self.window += other["window"]
        self.baseline = [a + b for a, b in zip(self.baseline, other["baseline"], strict=True)]
        self.hours = [a + b for a, b in zip(self.hours, other["hours"], strict=True)]
        firsts = [t for t in (self.first, other["first"]) if t]
        self.first = min(firsts) if firsts else 0.0
        self.last = max(self.last, other["last"])
        for ex in other["examples"]:
            if len(self.examples) < MAX_EXAMPLES and ex not in self.examples:
                self.examples.append(ex)
        for f in other["files"]:
            if len(self.files) < 5 and f not in self.files:
                self.files.append(f)
        self.detail = self.detail or other["detail"]


@dataclass
class Scan:
    """What the logs held, as of `now`: day 0 is the last 24 hours, days 1-7 the baseline."""

    now: float
    days: int = 7
    files: list[dict[str, Any]] = field(default_factory=list)  # path, bytes, lines, first
    bytes: int = 0
    lines: int = 0
    errors_window: int = 0
    errors_baseline: int = 0
    unreadable: dict[str, int] = field(default_factory=dict)  # reason -> lines
    other: int = 0  # error lines past MAX_SIGNATURES distinct shapes
    signatures: dict[str, Signature] = field(default_factory=dict)
    earliest: float = 0.0  # the oldest timestamp seen at the top of any file

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": self.now, "days": self.days, "files": self.files, "bytes": self.bytes,
            "lines": self.lines, "errors_window": self.errors_window,
            "errors_baseline": self.errors_baseline, "unreadable": self.unreadable,
            "other": self.other, "earliest": self.earliest,
            "signatures": {k: v.as_dict() for k, v in self.signatures.items()},
        }  # fmt: skip

    def merge(self, other: dict[str, Any]) -> None:
        self.files += other["files"]
        self.bytes += other["bytes"]
        self.lines += other["lines"]
        self.errors_window += other["errors_window"]
        self.errors_baseline += other["errors_baseline"]
        self.other += other["other"]
        for k, n in other["unreadable"].items():
            self.unreadable[k] = self.unreadable.get(k, 0) + n
        if other["earliest"]:
            self.earliest = min(self.earliest or other["earliest"], other["earliest"])
        for key, sig in other["signatures"].items():
            mine = self.signatures.get(key)
            if mine is None:
                if len(self.signatures) >= MAX_SIGNATURES:
                    self.other += sig["window"] + sum(sig["baseline"])
                    continue
                mine = self.signatures[key] = Signature()
            mine.merge(sig)

    def count_bad(self, reason: str, n: int = 1) -> None:
        self.unreadable[reason] = self.unreadable.get(reason, 0) + n


class _Clock:
    """Timestamps to epoch seconds, fast: the epoch of each (date, hour, zone) is cached."""

    def __init__(self, now: float) -> None:
        self.now = now
        self._hours: dict[tuple[Any, ...], float] = {}

    def hour(self, y: int, mo: int, d: int, h: int, tz: str | None) -> float:
        key = (y, mo, d, h, tz)
        hit = self._hours.get(key)
        if hit is None:
            if tz is None:  # no zone: the machine's local time, as the application logged it
                hit = time.mktime((y, mo, d, h, 0, 0, 0, 0, -1))
            else:
                offset = 0
                if tz not in ("Z", "z"):
                    sign = -1 if tz[0] == "-" else 1
                    digits = tz[1:].replace(":", "")
                    offset = sign * (int(digits[:2]) * 3600 + int(digits[2:4]) * 60)
                hit = calendar.timegm((y, mo, d, h, 0, 0, 0, 0, 0)) - offset
            if len(self._hours) > 100_000:
                self._hours.clear()
            self._hours[key] = hit
        return hit

    def parse(self, line: str) -> tuple[float | None, int, int]:
        """(epoch, start, end) of the line's timestamp, or (None, 0, 0)."""
        head = line[:80]
        try:
            m = _ISO.search(head)
            if m is not None:
                y, mo, d, h, mi, s, frac, tz = m.groups()
                t = self.hour(int(y), int(mo), int(d), int(h), tz) + int(mi) * 60 + int(s)
                if frac:
                    t += int(frac) / 10 ** len(frac)
                return t, m.start(), m.end()
            m = _SYSLOG.match(head)
            if m is not None:
                mon, d, h, mi, s = m.groups()
                year = time.localtime(self.now).tm_year
                t = self.hour(year, _MONTHS[mon], int(d), int(h), None) + int(mi) * 60 + int(s)
                if t > self.now + DAY_S:  # syslog has no year: last year's December
                    t = self.hour(year - 1, _MONTHS[mon], int(d), int(h), None) + int(mi) * 60 + int(s)
                return t, m.start(1), m.end()
            m = _CLF.search(head)
            if m is not None:
                d, mon, y, h, mi, s, sign, oh, om = m.groups()
                tz = f"{sign}{oh}{om}"
                t = self.hour(int(y), _MONTHS[mon], int(d), int(h), tz) + int(mi) * 60 + int(s)
                return t, m.start(), m.end()
        except (KeyError, ValueError, OverflowError):  # month 13, day 0...: not a time
            return None, 0, 0
        return None, 0, 0

    def value(self, raw: Any) -> float | None:
        """A JSON time field: an ISO string or epoch seconds/milliseconds/nanoseconds."""
        if isinstance(raw, bool):
            return None
        if isinstance(raw, int | float):
            t = float(raw)
            while t > 1e11:  # ms, µs or ns since the epoch
                t /= 1000
            return t if t > 0 else None
        if isinstance(raw, str):
            return self.parse(raw)[0]
        return None


def _is_error_level(value: Any) -> bool | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value >= 50  # pino / bunyan: 50 error, 60 fatal
    if isinstance(value, str):
        v = value.strip().lower()
        if v.isdigit():
            return int(v) >= 50
        return v in _ERROR_LEVELS
    return None


def classify(line: str) -> bool | None:
    """True: an error line; False: a line of another level; None: no level named."""
    m = _PRI.match(line)
    if m is not None:
        return int(m.group(1)) % 8 <= 3  # syslog severity: emerg, alert, crit, err
    m = _LEVEL.search(line)
    if m is not None:
        word = (m.group(1) or m.group(2) or m.group(3) or "").lower()
        return word in _ERROR_LEVELS
    return True if _LOOSE_ERROR.search(line) else None


class FileScanner:
    """One file (or a byte range of it), chunk by chunk, into a `Scan`."""

    def __init__(self, scan: Scan, clock: _Clock, name: str) -> None:
        self.scan = scan
        self.clock = clock
        self.name = name
        self.needles: tuple[bytes, ...] = NEEDLES
        # The record above the lines to come: its time, and its signature if it was an
        # error. Carried from chunk to chunk (a traceback may straddle two).
        self.carry_time: float | None = None
        self.carry_error: Signature | None = None
        self.first_time: float | None = None
        self.json_lines = False  # the file is JSON lines (sniffed)
        self._error_at = -1  # offset in this chunk of the last error line counted
        self._error: Signature | None = None
        self._keys: dict[str, str] = {}  # message without digits -> signature (a cache)

    # -- the hot path ------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        """Whole lines (the chunk ends with a newline, or at the end of the file)."""
        scan = self.scan
        scan.lines += chunk.count(b"\n") + (0 if chunk.endswith(b"\n") else 1)
        if not chunk.isascii():
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                scan.count_bad("not UTF-8", _bad_lines(chunk))
        if self.first_time is None:
            self._sniff(chunk)
        if self.json_lines:  # every line an object: one that does not end is cut off
            opened = chunk.count(b"\n{") + (chunk[:1] == b"{")
            closed = chunk.count(b"}\n") + (chunk.endswith(b"}"))
            if opened > closed:
                scan.count_bad("cut-off JSON", opened - closed)
        low = chunk.lower()
        hits: set[int] = set()
        find, rfind = low.find, low.rfind
        for needle in self.needles:
            # `re`'s literal search beats bytes.find on these short, common-letter needles.
            search = _SEARCH[needle]
            at_start = needle[:1] == b"\n"  # the needle begins at the line's start
            m = search(low)
            while m is not None:
                i = m.start()
                start = i + 1 if at_start else rfind(b"\n", 0, i) + 1
                hits.add(start)
                end = find(b"\n", i + 1 if at_start else i)
                if end < 0:
                    break
                m = search(low, end)
        if PRI_NEEDLE in self.needles and chunk[:1] == b"<":
            hits.add(0)
        self._error_at, self._error = -1, None
        for start in sorted(hits):
            self._line(chunk, start)
        self._carry(chunk)

    def _sniff(self, chunk: bytes) -> None:
        """The file's first timestamp (how far back its baseline goes), and extra needles
        for formats whose error lines carry no level word (pino's numbers, syslog PRI)."""
        top = chunk[:65536].decode("utf-8", "replace").splitlines()[:50]
        self.first_time = next((t for t in map(self._time_of, top) if t is not None), 0.0)
        extra: list[bytes] = []
        if any(re.search(r'"level":\s?\d', line) for line in top):
            extra += PINO_NEEDLES
        if any(_PRI.match(line) for line in top):
            extra.append(PRI_NEEDLE)
        self.needles = NEEDLES + tuple(extra)
        self.json_lines = sum(line.startswith("{") for line in top) * 2 > len(top)

    def _json_time(self, line: str) -> float | None:
        try:
            rec = json.loads(line)
        except ValueError:
            return None
        if not isinstance(rec, dict):
            return None
        return next((self.clock.value(rec[k]) for k in _TIME_KEYS if k in rec), None)

    def _time_of(self, line: str) -> float | None:
        if line.startswith("{"):
            return self._json_time(line)
        return self.clock.parse(line)[0]

    def _head_above(self, chunk: bytes, start: int) -> tuple[float | None, Signature | None]:
        """The record a line at `start` belongs to: the nearest line above with a time
        (its time, and its signature if it was an error counted here)."""
        i = start
        for _ in range(LOOKBACK_LINES):
            if i == 0:
                return self.carry_time, self.carry_error  # it began in the chunk before
            prev = chunk.rfind(b"\n", 0, i - 1) + 1
            line = chunk[prev : min(i - 1, prev + MAX_LINE)].decode("utf-8", "replace")
            t = self._time_of(line)
            if t is not None:
                return t, self._error if prev == self._error_at else None
            i = prev
        return None, None

    def _carry(self, chunk: bytes) -> None:
        t, error = self._head_above(chunk, len(chunk))
        if t is not None:
            self.carry_time, self.carry_error = t, error

    def _line(self, chunk: bytes, start: int) -> None:
        end = chunk.find(b"\n", start)
        raw = chunk[start : (end if end >= 0 else len(chunk))][:MAX_LINE]
        # Bad bytes were counted once by `feed`; the rest of the line is still read.
        line = raw.decode("utf-8", "replace").rstrip("\r")
        if not line.strip():
            return
        if line.startswith("{"):
            self._json_line(line, start)
            return
        t, a, b = self.clock.parse(line)
        if t is None:
            self._tail(chunk, start, line)
            return
        rest = line[:a] + line[b:]
        if classify(rest):
            self._counted(start, self._count(t, rest, line))

    def _counted(self, start: int, sig: Signature | None) -> None:
        if sig is not None:
            self._error_at, self._error = start, sig

    def _json_line(self, line: str, start: int) -> None:
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if not isinstance(rec, dict):
            if line.rstrip().endswith("}") or not self.json_lines:  # a cut-off one: counted
                self.scan.count_bad("broken JSON")
            return
        level = next((_is_error_level(rec[k]) for k in _LEVEL_KEYS if k in rec), None)
        if level is None:  # no level field: the message decides
            level = bool(_LOOSE_ERROR.search(str(rec.get("msg") or rec.get("message") or "")))
        if not level:
            return
        t = next((self.clock.value(rec[k]) for k in _TIME_KEYS if k in rec), None)
        if t is None:
            self.scan.count_bad("error without a time")
            return
        msg: Any = next((rec[k] for k in _MSG_KEYS if rec.get(k)), "")
        if isinstance(msg, dict):  # {"err": {"type": ..., "message": ...}}
            msg = f"{msg.get('type') or ''} {msg.get('message') or ''}".strip()
        name = next((str(rec[k]) for k in _NAME_KEYS if isinstance(rec.get(k), str)), "")
        text = f"{name}: {msg}" if name else str(msg)
        self._counted(start, self._count(t, text, line))

    def _tail(self, chunk: bytes, start: int, line: str) -> None:
        """A line with no timestamp of its own: part of the record above it."""
        if line[:1].isspace():
            return  # a traceback frame
        head_time, head_error = self._head_above(chunk, start)
        if head_time is None:
            if classify(line):
                self.scan.count_bad("error without a time")
            return
        if head_error is not None:  # an error's traceback: keep the exception it ends with
            if not head_error.detail and _EXCEPTION.match(line):
                head_error.detail = line.strip()[:300]
            return
        if _EXCEPTION.match(line) or line.startswith("Traceback"):
            return  # a warning's (or an info's) traceback
        if classify(line):  # an error printed without a stamp: dated by its record
            self._counted(start, self._count(head_time, line, line))

    def _count(self, t: float, message: str, line: str) -> Signature | None:
        scan = self.scan
        age = scan.now - t
        if age < -3600:  # more than an hour ahead of us: a clock off, not the last day
            scan.count_bad("time in the future")
            return None
        day = int(age // DAY_S) if age > 0 else 0
        if day > scan.days:
            return None
        cache_key = message.translate(_NO_DIGITS)
        key = self._keys.get(cache_key)
        if key is None:
            key = normalise(message)
            if len(self._keys) > 50_000:
                self._keys.clear()
            self._keys[cache_key] = key
        sig = scan.signatures.get(key)
        if sig is None:
            if len(scan.signatures) >= MAX_SIGNATURES:
                scan.other += 1
                return None
            sig = scan.signatures[key] = Signature()
        if day == 0:
            sig.window += 1
            scan.errors_window += 1
            hour = int(max(0.0, min(age, DAY_S - 1)) // 3600)
            sig.hours[23 - hour] += 1
            if len(sig.examples) < MAX_EXAMPLES:
                sig.examples.append(line.strip()[:300])
        else:
            sig.baseline[day - 1] += 1
            scan.errors_baseline += 1
        sig.first = min(sig.first, t) if sig.first else t
        sig.last = max(sig.last, t)
        if self.name not in sig.files and len(sig.files) < 5:
            sig.files.append(self.name)
        return sig


_NO_DIGITS = str.maketrans("", "", "0123456789")


def _bad_lines(chunk: bytes) -> int:
    n = 0
    for raw in chunk.split(b"\n"):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            n += 1
    return n


def scan_file(scan: Scan, clock: _Clock, path: str, start: int = 0, stop: int | None = None,
              name: str | None = None) -> None:
    """Stream `path` (its lines starting in bytes `start`..`stop`) into `scan`."""
    import stat

    shown = name or path
    scanner = FileScanner(scan, clock, shown)
    info: dict[str, Any] = {"path": shown, "bytes": 0}
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO never hangs
    except OSError as exc:
        scan.files.append({**info, "skipped": exc.strerror or str(exc)})
        return
    lines_before = scan.lines
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            scan.files.append({**info, "skipped": "not a regular file"})
            return
        os.set_blocking(fd, True)
        stop = st.st_size if stop is None else min(stop, st.st_size)
        pos = start
        if start > 0:  # a range of a split file: the line cut in two is the range before's
            os.lseek(fd, start - 1, os.SEEK_SET)
            if os.read(fd, 1) != b"\n":
                pos += _skip_line(fd)
            scanner.carry_time = _time_before(fd, start, clock)
            scanner.first_time = 0.0
            os.lseek(fd, pos, os.SEEK_SET)
        rest = b""
        while pos < stop:
            data = os.read(fd, min(CHUNK, stop - pos))
            if not data:
                break
            pos += len(data)
            data = rest + data
            if pos >= stop:  # our last line may run past `stop`: it is ours to finish
                if not data.endswith(b"\n"):
                    data += _read_line(fd)
                rest = b""
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0 and len(data) < 8 * CHUNK:
                    rest = data  # one very long line: read on
                    continue
                cut = cut or len(data)
                data, rest = data[:cut], data[cut:]
            info["bytes"] += len(data)
            scanner.feed(data)
        if rest:
            info["bytes"] += len(rest)
            scanner.feed(rest)
        scan.bytes += info["bytes"]
        info["lines"] = scan.lines - lines_before
        info["first"] = scanner.first_time or None
        if scanner.first_time and start == 0:
            scan.earliest = min(scan.earliest or scanner.first_time, scanner.first_time)
        scan.files.append(info)
    except OSError as exc:
        scan.files.append({**info, "skipped": exc.strerror or str(exc)})
    finally:
        os.close(fd)


def _skip_line(fd: int) -> int:
    n = 0
    while True:
        block = os.read(fd, 65536)
        if not block:
            return n
        i = block.find(b"\n")
        if i >= 0:
            return n + i + 1
        n += len(block)


def _read_line(fd: int) -> bytes:
    out = b""
    while True:
        block = os.read(fd, 65536)
        if not block:
            return out
        i = block.find(b"\n")
        if i >= 0:
            return out + block[: i + 1]
        out += block


def _time_before(fd: int, start: int, clock: _Clock) -> float | None:
    """The timestamp of the last record head before `start` (a split range's carry)."""
    back = max(0, start - 65536)
    os.lseek(fd, back, os.SEEK_SET)
    block = os.read(fd, start - back).decode("utf-8", "replace").splitlines()
    for line in reversed(block[1:] if back else block):
        t = clock.parse(line)[0]
        if t is not None:
            return t
    return None


# -- several files, on several cores, in a child process ------------------------------------
PIECE = 128 << 20  # a file larger than this is read in pieces, side by side


def pieces(files: list[tuple[str, str]]) -> list[tuple[str, str, int, int | None]]:
    """(path, shown, start, stop) work units: big files cut in byte ranges."""
    units: list[tuple[str, str, int, int | None]] = []
    for path, shown in files:
        try:
            size = os.stat(path).st_size
        except OSError:
            size = 0
        if size <= PIECE:
            units.append((path, shown, 0, None))
            continue
        n = -(-size // PIECE)
        step = -(-size // n)
        units += [(path, shown, i * step, min(size, (i + 1) * step)) for i in range(n)]
    return units


def scan_unit(unit: tuple[str, str, int, int | None], now: float, days: int) -> dict[str, Any]:
    path, shown, start, stop = unit
    scan = Scan(now=now, days=days)
    scan_file(scan, _Clock(now), path, start, stop, shown)
    return scan.as_dict()


def scan_all(files: list[tuple[str, str]], now: float, days: int = 7,
             workers: int = 1) -> Scan:
    """Every file into one `Scan`; with `workers` > 1 the pieces are read in parallel
    (forked processes: call this only where forking is safe, i.e. in `main`)."""
    units = pieces(files)
    total = Scan(now=now, days=days)
    if workers > 1 and len(units) > 1:
        import multiprocessing

        with multiprocessing.get_context("fork").Pool(min(workers, len(units))) as pool:
            results = pool.starmap(scan_unit, [(u, now, days) for u in units], chunksize=1)
    else:
        results = [scan_unit(u, now, days) for u in units]
    by_path: dict[str, dict[str, Any]] = {}
    for result in results:
        for info in result["files"]:  # a file read in pieces is one entry
            seen = by_path.get(info["path"])
            if seen is None:
                by_path[info["path"]] = dict(info)
            else:
                seen["bytes"] += info.get("bytes", 0)
                seen["lines"] = seen.get("lines", 0) + info.get("lines", 0)
                seen["first"] = seen.get("first") or info.get("first")
                if "skipped" in info:
                    seen["skipped"] = info["skipped"]
        result["files"] = []
        total.merge(result)
    total.files = list(by_path.values())
    return total


def main() -> None:
    """The child: a job as JSON on stdin, the merged scan as one JSON line on stdout."""
    import resource
    import sys

    job = json.loads(sys.stdin.buffer.read())
    memory = int(job.get("memory", 1 << 30))
    # No file-size limit: it only reads, but its pool's semaphores live in /dev/shm files.
    for name, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CORE, 0)):
        with contextlib.suppress(ValueError, OSError):  # a lower hard limit already holds
            resource.setrlimit(name, (value, value))
    with contextlib.suppress(OSError):
        os.nice(5)  # the engine and the operator's shell come first on a busy machine
    files = [(str(p), str(s)) for p, s in job["files"]]
    try:
        scan = scan_all(files, float(job["now"]), int(job.get("days", 7)),
                        int(job.get("workers", 1)))
        out: dict[str, Any] = {"scan": scan.as_dict()}
    except MemoryError:
        out = {"error": f"out of memory (limit {memory >> 20} MiB)"}
    sys.stdout.write(json.dumps(out, ensure_ascii=True))
    sys.stdout.flush()
