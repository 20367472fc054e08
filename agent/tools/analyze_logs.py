"""analyze_logs: cluster error/warning lines by normalised message and find error spikes.
Reads configured logs (`config.logs`: only the operator may point outside the worktree;
a relative entry is a worktree glob) or a worktree path, through agent/tools/confine.py.
The reading and matching (the `pattern` is the model's regex) run in a killable child
(agent/tools/isolate.py)."""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import re
import stat
import statistics
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import ToolError
from ..text import marked
from . import confine, isolate
from .base import ToolContext, ToolResult, string_arg, truncate

MAX_BYTES_PER_FILE = 20_000_000
MAX_FILES = 50
SHOW_GROUPS = 20
MIN_SPIKE = 5  # a minute with fewer errors than this is never a spike
MAX_GROUPS = 200  # groups handed back (the event stream stays bounded)
SKIP_DIRS = frozenset({".git", "node_modules", "__pycache__", ".venv", "venv"})

_ISO = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d+))?\s?(Z|[+-]\d{2}:?\d{2}(?!\d))?"
)
_CLF = re.compile(r"\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}")  # nginx/apache
_SYSLOG = re.compile(r"^[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2}")
_ERROR = re.compile(
    r"\b(?:ERROR|ERR|FATAL|CRITICAL|CRIT|SEVERE|PANIC|EMERG|ALERT)\b"
    r"|\[(?:error|crit|alert|emerg|fatal)\]|(?i:\blevel\W{0,3}(?:error|err|fatal|critical|panic)\b)"
)
_WARN = re.compile(r"\b(?:WARN|WARNING)\b|\[warn(?:ing)?\]|(?i:\blevel\W{0,3}warn(?:ing)?\b)")
_EXC = re.compile(r"^\s*(?:[\w.]*\w(?:Error|Exception|Fault)\b:?|panic:|Exception in thread)")
# What varies per occurrence of one error (ids, numbers, paths...), and what stands in for
# it: shared with the daily analysis (agent/improve/logscan.py), so both name an error alike.
VARYING = [
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"(?<!\w)\"[^\"]*\"|(?<!\w)'[^']*'(?!\w)"), "<str>"),
    (re.compile(r"(?<![\w.])(?:/[\w.@+-]+){2,}/?|\b[A-Za-z]:\\\S+"), "<path>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
]


def normalise(message: str) -> str:
    """The message with the parts that vary per occurrence (ids, numbers, ...) replaced."""
    for pattern, repl in VARYING:
        message = pattern.sub(repl, message)
    return message.strip()[:300]


def _aware(dt: datetime) -> datetime:
    return (dt.astimezone() if dt.tzinfo is None else dt).astimezone(UTC)


def parse_time(line: str) -> tuple[datetime | None, str]:
    """(timestamp, line without it) for ISO 8601, nginx/apache and syslog stamps."""
    head = line[:120]
    try:
        if m := _ISO.search(head):
            frac = f".{m.group(3)[:6].ljust(6, '0')}" if m.group(3) else ""
            tz = (m.group(4) or "").replace("Z", "+00:00")
            tz = f"{tz[:3]}:{tz[-2:]}" if tz else ""
            dt = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{frac}{tz}")
        elif m := _CLF.search(head):
            dt = datetime.strptime(m.group(0), "%d/%b/%Y:%H:%M:%S %z")
        elif m := _SYSLOG.match(head):
            now = datetime.now()  # syslog has no year: this one, unless that is in the future
            dt = datetime.strptime(f"{now.year} {m.group(0)}", "%Y %b %d %H:%M:%S")
            dt = dt.replace(year=now.year - 1) if dt > now + timedelta(days=1) else dt
        else:
            return None, line
        when = _aware(dt)
    except (ValueError, OverflowError):  # not a real date (month 13, year 10000 in UTC, ...)
        return None, line
    return when, line[: m.start()] + line[m.end() :]


def parse_since(raw: object, now: datetime) -> datetime | None:
    if raw in (None, ""):
        return None
    if not isinstance(raw, str):
        raise ToolError("since must be a string like '1h' or an ISO time")
    if m := re.fullmatch(r"\s*(\d{1,12})\s*([smhdw])\s*", raw):
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
        try:
            return now - timedelta(**{unit[m.group(2)]: int(m.group(1))})
        except OverflowError:  # further back than datetime goes: everything
            return datetime.min.replace(tzinfo=UTC)
    try:
        return _aware(datetime.fromisoformat(raw.strip().replace("Z", "+00:00")))
    except (ValueError, OverflowError):
        raise ToolError(f"since {raw!r}: use an ISO time or a span like 30m, 1h, 2d") from None


def classify(line: str) -> tuple[str | None, str]:
    """(error | exception | warning | None, the message to group by)."""
    if line.lstrip().startswith("{"):
        try:
            rec = json.loads(line)
        except ValueError:
            rec = None
        if isinstance(rec, dict):  # structured log: group by its message, not the whole JSON
            level = str(rec.get("level") or rec.get("severity") or rec.get("levelname") or "")
            line = f"{level.upper()} {rec.get('msg') or rec.get('message') or rec.get('error')}"
    for kind, pattern in (("error", _ERROR), ("exception", _EXC), ("warning", _WARN)):
        if pattern.search(line):
            return kind, line
    return None, line


def find_spikes(times: list[datetime], window: list[datetime]) -> tuple[int, list[dict]]:
    """Buckets with count > mean + 3σ of the other buckets (σ >= sqrt(mean), Poisson noise) or
    > 3x their median. Leave-one-out: a spike must not raise its own baseline."""
    start, end = min(window), max(window)
    span_s = (end - start).total_seconds()  # at most ~5000 buckets, however long the log
    bucket_s = 60 if span_s <= 5000 * 60 else 3600 if span_s <= 5000 * 3600 else 86400
    base = int(start.timestamp()) // bucket_s
    counts = [0] * (int(end.timestamp()) // bucket_s - base + 1)
    for t in times:
        counts[int(t.timestamp()) // bucket_s - base] += 1
    spikes = []
    for i, count in enumerate(counts):
        rest = counts[:i] + counts[i + 1 :]
        if count < MIN_SPIKE or not rest:
            continue
        mean = statistics.fmean(rest)
        sigma = max(statistics.pstdev(rest), mean**0.5)
        median = statistics.median(rest)
        if count > mean + 3 * sigma or (median > 0 and count > 3 * median):
            at = datetime.fromtimestamp((base + i) * bucket_s, UTC).isoformat()
            spikes.append({"start": at, "count": count, "baseline_mean": round(mean, 2)})
    return bucket_s, spikes


def analyze(
    sources: Iterable[tuple[str, str]], since: datetime | None, pattern: re.Pattern[str] | None
) -> dict:
    """Groups, spikes and totals of (name, text) log sources, read one at a time."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    error_times: list[datetime] = []
    all_times: list[datetime] = []
    lines = 0
    names: list[str] = []
    for name, text in sources:
        names.append(name)
        when: datetime | None = None
        counted = False  # the current record already counted: its traceback lines are not
        for line in text.splitlines():
            if not line.strip() or (pattern and not pattern.search(line)):
                continue
            lines += 1
            stamp, rest = parse_time(line)
            if stamp:
                when, counted = stamp, False
            if since and (when is None or when < since):
                continue
            if stamp:  # the span of the analysed window: quiet minutes are part of the baseline
                all_times.append(stamp)
            level, message = classify(rest)
            tail = not stamp and counted  # inside an already counted record (a traceback)
            if level is None or (tail and (level == "exception" or line[:1].isspace())):
                continue
            counted = True
            key = (level if level != "exception" else "error", normalise(message))
            new = dict(level=level, message=key[1], count=0, first=None, last=None, examples=[])
            g = groups.setdefault(key, new)
            g["count"] += 1
            if when:
                g["first"] = min(g["first"] or when, when)
                g["last"] = max(g["last"] or when, when)
                if key[0] == "error":
                    error_times.append(when)
            if len(g["examples"]) < 2 and line.strip()[:300] not in g["examples"]:
                g["examples"].append(line.strip()[:300])
    bucket_s, spikes = find_spikes(error_times, all_times) if error_times else (60, [])
    ordered = sorted(groups.values(), key=lambda g: -g["count"])
    for g in ordered:
        for k in ("first", "last"):
            g[k] = g[k].isoformat() if g[k] else None
    errors = sum(g["count"] for g in ordered if g["level"] != "warning")
    warnings = sum(g["count"] for g in ordered) - errors
    totals = dict(files=names, lines=lines, errors=errors, warnings=warnings)
    shown = dict(groups=ordered[:MAX_GROUPS], group_count=len(ordered))
    return totals | shown | dict(spikes=spikes, bucket_s=bucket_s)


def render(d: dict[str, Any]) -> str:
    out = [
        f"{len(d['files'])} file(s), {d['lines']} lines: {d['errors']} errors/exceptions, "
        f"{d['warnings']} warnings in {d['group_count']} groups"
    ]
    unit = {60: "minute", 3600: "hour", 86400: "day"}[d["bucket_s"]]
    for s in d["spikes"]:
        base = s["baseline_mean"]
        out.append(f"SPIKE {s['start']}: {s['count']} errors in one {unit} (baseline {base})")
    if not d["spikes"] and d["errors"]:
        out.append("no error spikes")
    for i, g in enumerate(d["groups"][:SHOW_GROUPS], 1):
        span = f" {g['first']} .. {g['last']}" if g["first"] else ""
        out.append(f"{i}. [{g['level']}] x{g['count']}{span}\n   {g['message']}")
        out += [f"   e.g. {ex}" for ex in g["examples"]]
    if d["group_count"] > SHOW_GROUPS:
        out.append(f"... {d['group_count'] - SHOW_GROUPS} more groups (see data)")
    out += [f"[{n}]" for n in d.get("notes", [])]
    return "\n".join(out)


def scan(job: dict[str, Any], emit: isolate.Emit) -> None:
    """In the child: find the sources, analyse them, hand back one result record."""
    try:
        pattern = re.compile(job["pattern"]) if job.get("pattern") else None
    except (re.error, OverflowError) as exc:
        raise ToolError(f"bad pattern: {exc}") from None
    since = datetime.fromisoformat(job["since"]) if job.get("since") else None
    root = confine.Root(Path(job["root"]))
    report = confine.WalkReport()
    if job.get("path"):
        found = list(_workspace_logs(root, job["path"], report))
    else:
        found = []
        for pat in job["configured"]:
            found += _configured_logs(root, pat, report)
            if len(found) >= MAX_FILES:
                break
    if not found:
        raise ToolError("no log files found" + "".join(f" ({n})" for n in report.notes()))
    data = analyze(_texts(found[:MAX_FILES]), since, pattern)
    emit({"result": data | {"notes": report.notes()}})


# A source: (name shown, folder fd or None for an operator's absolute path, entry, lstat).
_Source = tuple[str, int | None, str, os.stat_result | None]


def _workspace_logs(root: confine.Root, raw: str, report: confine.WalkReport) -> Iterator[_Source]:
    with confine.locate(root, raw) as place:
        if place.st is None and not place.is_dir:
            raise ToolError(f"{confine.shown(raw)}: no such file or folder")
        if not place.is_dir:
            os.close(confine.open_entry(place, raw))  # a FIFO or a device named: say so
            yield place.rel, os.dup(place.fd), place.name or "", place.st
            return
        n = 0
        for rel, fd, name, st in confine.walk_files(root, place, report, skip_dirs=SKIP_DIRS):
            if name.endswith(".log"):
                yield rel, os.dup(fd), name, st
                n += 1
                if n >= MAX_FILES:
                    return


def _configured_logs(root: confine.Root, pat: str, report: confine.WalkReport) -> list[_Source]:
    path = os.path.expanduser(pat)
    if os.path.isabs(path):  # the operator's own choice: read where it points
        return [(p, None, p, None) for p in sorted(glob.glob(path)) if os.path.isfile(p)]
    # Relative: a glob over the worktree, which the model may have filled with links.
    out: list[_Source] = []
    with confine.locate(root, ".") as top:
        for rel, fd, name, st in confine.walk_files(root, top, report, skip_dirs=SKIP_DIRS):
            if fnmatch.fnmatch(rel, path):
                out.append((rel, os.dup(fd), name, st))
                if len(out) >= MAX_FILES:
                    break
    return out


def _texts(sources: list[_Source]) -> Iterator[tuple[str, str]]:
    """The tail (MAX_BYTES_PER_FILE) of each source as text, one at a time."""
    for shown, dir_fd, name, st in sources:
        try:
            if dir_fd is None:
                fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # no FIFO hang
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    os.close(fd)
                    continue
                os.set_blocking(fd, True)
            else:
                fd = confine.open_regular(dir_fd, name, st, shown)
        except (OSError, ToolError):
            continue
        finally:
            if dir_fd is not None:
                os.close(dir_fd)
        try:
            os.lseek(fd, max(0, os.fstat(fd).st_size - MAX_BYTES_PER_FILE), os.SEEK_SET)
            data = confine.read_fd(fd, MAX_BYTES_PER_FILE)
        finally:
            os.close(fd)
        yield marked(shown), data.decode("utf-8", "replace")


class AnalyzeLogs:
    name = "analyze_logs"
    kind = "logs"
    description = (
        "Analyse log files (configured logs, or a workspace path): groups errors and warnings "
        "by normalised message with counts, first/last time and examples, and finds error "
        "spikes against the baseline. Optional `since` (ISO time or 30m/1h/2d) and `pattern`."
    )
    input_schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "path": {"type": "string", "description": "log file or folder in the workspace"},
            "since": {"type": "string", "description": "ISO time or a span like 1h"},
            "pattern": {"type": "string", "description": "regex: only lines matching it"},
        },
    }

    async def run(self, args: dict[str, Any], ctx: ToolContext) -> ToolResult:
        path = string_arg(args, "path", required=False)
        if path is not None:
            confine.parse(path)  # a bad path is named before a process starts
        elif not ctx.config.logs:
            raise ToolError("no log files configured (config `logs`); pass a workspace `path`")
        since = parse_since(args.get("since"), datetime.now(UTC))
        job = {
            "kind": "logs",
            "root": confine.Root(ctx.root).real,
            "path": path,
            "configured": list(ctx.config.logs),
            "since": since.isoformat() if since else None,
            "pattern": string_arg(args, "pattern", required=False, limit=10_000),
        }
        limit = isolate.time_limit(ctx)
        out = await isolate.run_job(ctx, job, limit)
        if out.killed:
            return ToolResult("log analysis stopped: the task was stopped", is_error=True)
        if out.timed_out:
            return ToolResult(
                f"log analysis stopped after {limit:g}s: the logs are too large or the pattern "
                "backtracks catastrophically; narrow path, since or pattern",
                is_error=True,
            )
        data = out.last("result")
        if out.error or not isinstance(data, dict):
            return ToolResult(f"log analysis failed: {out.error or 'no result'}", is_error=True)
        return ToolResult(truncate(render(data)), data=data)


tool = AnalyzeLogs()
