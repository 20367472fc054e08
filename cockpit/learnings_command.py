"""`livhana-cockpit learnings`: what the agent has learned, what it was worth, and the
operator's pin/unpin/edit/retire/restore.

Plain output has column headers and ends with the count `metrics` shows too (distinct
learnings), and how many teachings were merged into them as near-duplicates.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from agent.errors import UsageError

from .cli_views import CATEGORY

ACTIONS = ("pin", "unpin", "edit", "retire", "restore")
TEXT_WIDTH = 70
DONE = {"pin": "pinned: given to every task of its workspace",
        "unpin": "unpinned: given when relevant, like any other",
        "edit": "edited", "retire": "retired: never given again (restore brings it back)",
        "restore": "restored: given again when relevant"}


def add_parser(sub: Any) -> None:
    lp = sub.add_parser(
        "learnings",
        help="what the agent has learned and what it was worth; pin|unpin|edit|retire|restore ID",
        description="List learnings (--stats: uses and measured effect), or change one: "
        "`learnings pin ID`, `unpin ID`, `edit ID TEXT`, `retire ID [--reason R]`, "
        "`restore ID`. Pinned learnings are always given, retired ones never.",
    )
    lp.add_argument("--json", action="store_true", help="JSON on stdout")
    lp.add_argument("--stats", action="store_true", help="each learning's uses and effect")
    lp.add_argument("action", nargs="?", choices=ACTIONS, metavar="ACTION",
                    help="pin, unpin, edit, retire or restore")
    lp.add_argument("learning_id", nargs="?", metavar="ID", help="the learning's id")
    lp.add_argument("text", nargs="?", metavar="TEXT", help="edit: the new text")
    lp.add_argument("--reason", help="retire/restore: why (recorded with the learning)")


def learning_id(text: str | None, action: str) -> int:
    if not text:
        raise UsageError(f"learnings {action} needs a learning ID (see `livhana-cockpit learnings`)")
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"a learning ID is a whole number, got '{text[:40]}'") from None
    if not 1 <= value < 2**63:
        raise UsageError(f"no learning {text[:40]} (see `livhana-cockpit learnings`)")
    return value


def check_args(args: argparse.Namespace) -> None:
    """Before any store is opened: a wrong combination is one line and exit 2."""
    if not args.action:
        if args.learning_id or args.text or args.reason:
            raise UsageError("learnings: say what to do first: pin, unpin, edit, retire or restore")
        return
    learning_id(args.learning_id, args.action)
    if args.stats:
        raise UsageError("learnings --stats lists; it does not go with an action")
    if args.action == "edit" and not (args.text or "").strip():
        raise UsageError("learnings edit ID TEXT: give the new text (quote it)")
    if args.action != "edit" and args.text and args.reason:
        raise UsageError(f"learnings {args.action}: give the reason once (--reason)")
    if args.action in ("pin", "unpin") and (args.text or args.reason):
        raise UsageError(f"learnings {args.action} ID takes nothing more")


async def change(engine: Any, args: argparse.Namespace) -> int:
    reason = args.reason or (args.text if args.action in ("retire", "restore") else "") or ""
    row = await engine.change_learning(
        learning_id(args.learning_id, args.action), args.action,
        text=args.text or "" if args.action == "edit" else "", reason=reason, by="cli",
    )
    if args.json:
        print(json.dumps(row, default=str))
    else:
        print(f"learning {row['id']} {DONE[args.action]}")
        if args.action == "edit":
            print(f"  now: {row['text']}")
    return 0


async def show(engine: Any, args: argparse.Namespace) -> int:
    if args.json and not args.stats:
        print(json.dumps(await engine.learnings_by_kind()))
        return 0
    stats = await engine.learning_stats()
    if args.json:
        print(json.dumps(stats, default=str))
        return 0
    counts = await engine.learning_counts()
    if not stats:
        print("no learnings yet: they are collected when a task ends")
        return 0
    if args.stats:
        head = ("ID", "State", "Category", "Used", "With", "Without", "Effect (95%)", "Learning")
        rows = [(str(s["id"]), state_of(s), CATEGORY.get(s["category"], s["category"]),
                 str(s["uses"]), rate(s["succeeded_with"], s["tasks_with"]),
                 rate(s["succeeded_without"], s["tasks_without"]), effect_cell(s),
                 text_of(s)) for s in stats]
    else:
        head = ("ID", "State", "Category", "Used", "Taught", "Learning")
        rows = [(str(s["id"]), state_of(s), CATEGORY.get(s["category"], s["category"]),
                 str(s["uses"]), str(s["taught"]),
                 text_of(s)) for s in stats]
    table([head, *rows])
    print()
    print(summary(counts))
    if args.stats:
        print("WITH/WITHOUT: comparable tasks (same workspace, a title the learning is "
              "relevant to) given it or not, that ended; succeeded/all.")
    return 0


def summary(counts: dict[str, int]) -> str:
    """The line `metrics` agrees with: distinct learnings, their states, merged teachings."""
    n = counts.get("lessons", 0)
    parts = [f"{counts.get('active', 0)} active"]
    if counts.get("pinned"):
        parts.append(f"{counts['pinned']} pinned")
    if counts.get("retired"):
        parts.append(f"{counts['retired']} retired")
    line = f"{n} learning{'' if n == 1 else 's'} ({', '.join(parts)})"
    merged = counts.get("merged", 0)
    if merged:
        line += (f"; {merged} more taught {'was' if merged == 1 else 'were'} merged into "
                 "them as near-duplicates (each counts once)")
    return line


def state_of(s: dict[str, Any]) -> str:
    if s["state"] == "retired":
        return "retired"
    return "pinned" if s["pinned"] else "active"


def rate(k: int, n: int) -> str:
    return f"{k}/{n} {k / n:.0%}" if n else "—"


def effect_cell(s: dict[str, Any]) -> str:
    conf = s.get("confidence")
    if s.get("effect") is None or not conf:
        return s["verdict"]
    return (f"{s['effect'] * 100:+.0f} ({conf['low'] * 100:+.0f}..{conf['high'] * 100:+.0f}) "
            f"{s['verdict']}")


def text_of(s: dict[str, Any]) -> str:
    """The learning's text, and the teammate it came from (pulled from BigQuery)."""
    origin = f"  (from {s['origin']})" if s.get("origin") else ""
    return clip(s["text"], TEXT_WIDTH - len(origin)) + origin


def clip(text: str, width: int = TEXT_WIDTH) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
