"""Cron expressions (five fields, local time) through `croniter`: checking one, and the due
times around a moment. Nothing else of the engine is imported here (config checks with it)."""

from __future__ import annotations

import datetime as dt

ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def check_cron(expr: str) -> str | None:
    """Why `expr` is not a usable schedule, or None ("" is: it disables the job)."""
    if not isinstance(expr, str):
        return "must be a cron expression in quotes"
    text = expr.strip()
    if not text:
        return None
    if not (text.lower() in ALIASES or len(text.split()) == 5):
        return (f"must be a five-field cron expression (minute hour day month weekday), "
                f"like \"0 2 * * *\", got {expr!r}")
    from croniter import croniter

    if not croniter.is_valid(text):
        return f"is not a valid cron expression: {expr!r}"
    return None


def _local(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts).astimezone()  # local time, with its offset


def next_after(expr: str, ts: float) -> float:
    """The first due time strictly after `ts` (seconds since the epoch)."""
    from croniter import croniter

    return float(croniter(expr.strip(), _local(ts)).get_next(dt.datetime).timestamp())


def latest_due(expr: str, ts: float) -> float:
    """The last due time at or before `ts`."""
    from croniter import croniter

    it = croniter(expr.strip(), _local(ts + 1e-3))  # a time exactly due counts as due
    return float(it.get_prev(dt.datetime).timestamp())
