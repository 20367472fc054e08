"""How each event type is shown, in one table: its plain summary (the CLI's plain output,
`describe`) and its line in the cockpit's log (widgets/event_log.py, `log_line`), side by
side, one row per type. A new event type gets its row here and both show it; a type
without a row shows as its JSON in both.

A plain summary is one line that says what happened; some rows add detail lines under it
(`more`: a tool's output with its line breaks, the failing tests of a run, the items
learned, the plan's steps), indented so they read as belonging to that line. Long lines
are clipped at a word boundary; names (failing tests, files) are never cut.

Import-light: the plain summaries need nothing but this module (the headless `run` never
loads Textual); the log's lines load rich and the cockpit's formatting on first use.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent import events as ev
from agent.clip import clip
from agent.failing_tests import summary_lines

from . import words

if TYPE_CHECKING:
    from rich.text import Text

OUTPUT_LINES = 6  # a tool result keeps its first lines in the log, not one run-on line
OUTPUT_WIDTH = 200
PLAIN_LINES = 8  # ... and in `run`'s plain output
MORE = " " * 11  # plain detail lines start under the event's text ("[  12] " + 4)
LEARNED = (("patterns", "pattern"), ("improvements", "improvement"), ("nextSteps", "next step"))
PAUSED, RESUMED = "paused", "resumed"  # agent/pausing.py: status-neutral event types
REBASED = "rebase"  # agent/rebase.py: a task moved onto the workspace's new HEAD

Event = dict[str, Any]


@dataclass(frozen=True)
class Shown:
    line: Callable[[Event], str]  # one plain line
    log: Callable[[Event, bool], Text | None]  # the log's line(s): (event, thinking unfolded)
    more: Callable[[Event, int], list[str]] | None = None  # plain detail lines, in this room


def width() -> int:
    """Room for a plain line: the terminal's width, or 120 columns when not a terminal."""
    return max(60, shutil.get_terminal_size((120, 24)).columns)


def describe(event: Event, columns: int | None = None) -> str:
    """One event as human-readable text: its line, then any detail lines, indented."""
    shown = SHOWN.get(event.get("type", ""), _OTHER)
    first = shown.line(event)
    if shown.more is None:
        return first
    room = (columns or width()) - len(MORE) - 2  # the indent, and a tool result's 2 more
    return "\n".join([first, *((MORE + line).rstrip() for line in shown.more(event, room))])


def log_line(event: Event, show_thinking: bool = False) -> Text | None:
    """One event as one (or a few) lines of the cockpit's log; None hides it."""
    return SHOWN.get(event.get("type", ""), _OTHER).log(event, show_thinking)


def _ui() -> tuple[Any, type[Text]]:
    """The cockpit's formatting and rich's Text, loaded on the log's first line."""
    from rich.text import Text

    from . import fmt

    return fmt, Text


def _t(style: str) -> str:
    """A TONE role or theme-variable style as markup the current theme reads well."""
    fmt, _ = _ui()
    return fmt.resolve(fmt.TONE.get(style, style)) or "none"


def _first(text: str, limit: int = 160) -> str:
    """One line, cut at a word boundary (never mid-name) and marked when cut."""
    return clip(str(text), limit)


def _lines(
    text: str, room: int, keep: int = PLAIN_LINES, whole: frozenset[str] = frozenset()
) -> list[str]:
    """The text's first `keep` lines, breaks and indentation kept; a longer line is clipped
    at a word boundary, except the lines in `whole` (test names)."""
    lines = [line.rstrip() for line in str(text).expandtabs(4).splitlines()]
    while lines and not lines[-1].strip():
        lines.pop()
    while lines and not lines[0].strip():
        lines.pop(0)
    shown = [line if line in whole else _cut(line, room) for line in lines[:keep]]
    if len(lines) > keep:
        shown.append(f"… {words.plural(len(lines) - keep, 'more line')}")
    return shown


def _cut(line: str, room: int) -> str:
    """A line as it was (its indentation kept), clipped at a word boundary if too long."""
    if len(line) <= room:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    return indent + clip(line.strip(), max(20, room - len(indent)))


def _reason(event: Event, escape: Callable[[Any], str] = str) -> str:
    return f" — {escape(event['reason'])}" if event.get("reason") else ""


# -- the rows, in the order a task's stream has them -------------------------------------------
def _status(event: Event) -> str:
    return f"state: {words.state_word(str(event['state']))}{_reason(event)}"


def _status_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    reason = _reason(event, fmt.escape)
    return Text.from_markup(f"[b]● {fmt.state(event.get('state', ''))}[/]{reason}")


def _analysis(event: Event) -> str:
    chosen = event.get("learnings")
    note = ""
    if isinstance(chosen, dict):
        given = chosen.get("given") or []
        if chosen.get("holdout"):
            note = " [learnings: holdout, run without them as a baseline]"
        elif given:
            note = f" [learnings given: {', '.join(str(g.get('id')) for g in given)}]"
    return f"analysis: {event.get('summary', '')}{note}"


def _analysis_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    summary = fmt.escape(fmt.short(event.get("summary", ""), 200))
    given = given_note(event.get("learnings"))
    note = f" [dim]· {fmt.escape(given)}[/]" if given else ""
    return Text.from_markup(f"[{_t('info')}]🔎 analysis[/] {summary}{note}")


def given_note(chosen: Any) -> str:
    """What the task was given of the learnings (the analysis event's `learnings`)."""
    if not isinstance(chosen, dict):
        return ""
    if chosen.get("error"):
        return "no learnings (the store could not be read)"
    given = chosen.get("given") or []
    if chosen.get("holdout"):
        pinned = f"; {len(given)} pinned given" if given else ""
        return f"holdout: runs without learnings, as a baseline{pinned}"
    if not given:
        return "no learning relevant"
    return f"{len(given)} learning{'' if len(given) == 1 else 's'} given"


def _thinking(event: Event) -> str:
    return f"thinking: {_first(event.get('text', ''))}"


def _thinking_log(event: Event, unfolded: bool) -> Text:
    fmt, Text = _ui()
    text = event.get("text", "")
    if unfolded:
        return Text.from_markup(f"[dim italic]💭 {fmt.escape(text)}[/]")
    return Text.from_markup(f"[dim]💭 thinking… ({len(text)} chars, t to unfold)[/]")


def _text(event: Event) -> str:
    lines = _lines(str(event.get("text", "")), 300, keep=1)
    return f"agent: {lines[0] if lines else ''}"


def _text_more(event: Event, room: int) -> list[str]:
    return _lines(str(event.get("text", "")), room)[1:]


def _text_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    return Text.from_markup(f"[b]▌[/] {fmt.escape(event.get('text', ''))}")


def _plan(event: Event) -> str:
    return f"plan: {words.plural(len(event.get('steps') or []), 'step')}"


def _plan_more(event: Event, _room: int) -> list[str]:
    return [plan_line(s) for s in event.get("steps") or []]


def plan_line(step: Event) -> str:
    marks = {"done": "x", "in_progress": ">", "pending": " "}
    return f"[{marks.get(step.get('status', ''), ' ')}] {step.get('title', '')}"


def _plan_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    marks = {"done": "✓", "in_progress": "▶"}
    items = "  ".join(f"{marks.get(s.get('status'), '·')} {fmt.escape(s.get('title', ''))}"
                      for s in event.get("steps", []))  # fmt: skip
    return Text.from_markup(f"[{_t('alt')}]☰ plan[/] {items}")


def _progress(event: Event) -> str:
    return f"progress: {event['completed']}/{event['total']}"


def _progress_log(event: Event, _thinking: bool) -> Text:
    _, Text = _ui()
    done = f"{event.get('completed')}/{event.get('total')}"
    return Text.from_markup(f"[{_t('alt')}]◔ progress {done}[/]")


def _step(event: Event) -> str:
    return f"step {event.get('step')}: {event['action']} {event.get('target', '')}".rstrip()


def _step_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    e, target = fmt.escape, event.get("target") or ""
    return Text.from_markup(f"[{_t('bold $text-primary')}]→ {event.get('step', '')} "
                            f"{e(event.get('action', ''))}[/] {e(fmt.short(target, 120))}")


def _tool_result(event: Event) -> str:
    mark = "error" if event.get("is_error") else "ok"
    first = _lines(str(event.get("output", "")), 200, keep=1)
    return f"  -> {mark}: {first[0] if first else '(no output)'}"


def _tool_result_more(event: Event, room: int) -> list[str]:
    """The output's next lines, line breaks kept; a test run's failing tests in full (they
    come right after its verdict line), then its first lines of output."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    failed = data.get("failed")
    named = summary_lines(list(data.get("failures") or []),
                          failed if isinstance(failed, int) else None)  # fmt: skip
    lines = _lines(str(event.get("output", "")), room, keep=1 + len(named) + PLAIN_LINES,
                   whole=frozenset(named))  # fmt: skip
    return ["  " + line for line in lines[1:]]


def _tool_result_log(event: Event, _thinking: bool) -> Text:
    """The first OUTPUT_LINES lines of the output, indented under the step."""
    _, Text = _ui()
    style = _t("bad") if event.get("is_error") else "dim"
    lines = [line.rstrip() for line in str(event.get("output") or "").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    text = Text("  ↳ ", style=style)
    for n, line in enumerate(lines[:OUTPUT_LINES]):
        if n:
            text.append("\n    ")
        cut = line if len(line) <= OUTPUT_WIDTH else line[: OUTPUT_WIDTH - 1] + "…"
        text.append(cut.expandtabs(4), style=style)
    if len(lines) > OUTPUT_LINES:
        text.append(f"\n    … {len(lines) - OUTPUT_LINES} more lines", style="dim italic")
    changed = event.get("changed") or []
    if changed:
        text.append(f" ✎ {', '.join(map(str, changed))}", style="green")
    return text


def _approval_requested(event: Event) -> str:
    return f"approval #{event['approval_id']} needed ({event['risk']} risk): {event['summary']}"


def _approval_requested_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    e = fmt.escape
    return Text.from_markup(
        f"[{_t('bold $text-warning')}]⚑ approval needed[/] ({e(event.get('kind', ''))}, risk "
        f"{fmt.risk(event.get('risk', ''))}) {e(event.get('summary', ''))}")  # fmt: skip


def _approval_decided(event: Event) -> str:
    verdict = "approved" if event["approved"] else "denied"
    return f"approval #{event['approval_id']} {verdict} by {event['by']}"


def _approval_decided_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    verdict = fmt.paint("approved", "ok") if event.get("approved") else fmt.paint("denied", "bad")
    by = fmt.escape(event.get("by", "?"))
    return Text.from_markup(f"{fmt.paint('⚑', 'warn')} {verdict} by {by}")


def _verification(event: Event) -> str:
    verdict = {True: "passed", False: "FAILED", None: "skipped"}[event.get("passed")]
    return f"verification {verdict}: {event.get('evidence', '')}"


def _verification_more(event: Event, _room: int) -> list[str]:
    """The failing tests, named whole, each with its first assertion line."""
    failed = (event.get("counts") or {}).get("failed")
    return summary_lines(list(event.get("failures") or []),
                         failed if isinstance(failed, int) else None)  # fmt: skip


def _verification_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    passed = event.get("passed")
    mark = fmt.paint("✓ verified", "ok") if passed else (
        "[dim]? unverified[/]" if passed is None else fmt.paint("✗ verification failed", "bad"))
    return Text.from_markup(f"{mark} {fmt.escape(fmt.short(event.get('evidence', ''), 140))}")


def _usage(event: Event) -> str:
    """Input counts cache reads and writes too: all of it is input the model read."""
    total = words.money(event.get("total_cost_usd"))
    return f"usage: {words.usage_line(event)}, task total {total}"


def _usage_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    return Text.from_markup(
        f"[dim]$ {fmt.escape(fmt.usage_line(event))} · "
        f"total {fmt.money(event.get('total_cost_usd'))}[/]")  # fmt: skip


def learned_items(event: Event) -> list[tuple[str, str]]:
    """(category word, text) of a learning event, in the cockpit's words."""
    return [(word, str(item)) for key, word in LEARNED
            for item in event.get(key) or [] if str(item).strip()]  # fmt: skip


def _learning(event: Event) -> str:
    items = learned_items(event)
    merged = f" ({event['merged']} already known: merged)" if event.get("merged") else ""
    if not items:
        return f"learned nothing new{merged}"
    return f"learned {words.plural(len(items), 'item')}{merged}:"


def _learning_more(event: Event, room: int) -> list[str]:
    return [f"{word}: {clip(text, room - len(word) - 2)}" for word, text in learned_items(event)]


def _learning_log(event: Event, _thinking: bool) -> Text:
    """'◆ learned 2 patterns, 1 improvement: prefer …' (the first item shown)."""
    fmt, Text = _ui()
    counts, first = [], ""
    for key, word in LEARNED:
        items = [str(i) for i in event.get(key) or [] if str(i).strip()]
        if items:
            counts.append(fmt.plural(len(items), word))
            first = first or items[0]
    if not counts:
        body = event.get("message") or event.get("text") or "nothing new"
        return Text.from_markup(f"{fmt.paint('◆ learning', 'accent')} "
                                f"{fmt.escape(fmt.short(str(body), 160))}")
    learned = fmt.paint(f"◆ learned {', '.join(counts)}:", "accent")
    merged = int(event.get("merged") or 0)
    note = f" [dim]({merged} already known: merged)[/]" if merged else ""
    return Text.from_markup(f"{learned} "
                            f"{fmt.escape(fmt.short(first, 160))}{note}")


def _checkpoint(event: Event) -> str:
    return f"checkpoint after step {event.get('step')}: {str(event.get('commit', ''))[:10]}"


def _marked_log(event: Event, _thinking: bool) -> Text:
    """'◆ rollback …', '◆ checkpoint …': the kind, then what it says."""
    fmt, Text = _ui()
    kind = event.get("type", "")
    body = event.get("message") or event.get("text") or event.get("label") or ""
    said = fmt.escape(fmt.short(str(body), 160))
    return Text.from_markup(f"[{_t('alt')}]◆ {kind}[/] {said}")


def _said(event: Event) -> str:
    """'warning: …', 'rollback: …', 'paused: …': the type, then its message."""
    return f"{event['type']}: {event.get('message', '')}"


def _alert_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    style = _t("warn") if event["type"] == ev.WARNING else _t("bold $text-error")
    return Text.from_markup(f"[{style}]! {fmt.escape(event.get('message', ''))}[/]")


def _held_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    kind = event["type"]
    mark = "‖" if kind == PAUSED else "▶"
    return Text.from_markup(fmt.paint(f"{mark} {event.get('message') or kind}",
                                      "bold $text-warning"))  # fmt: skip


def _complete(event: Event) -> str:
    verdict = "succeeded" if event["success"] else "did not succeed"
    files = ", ".join(event.get("changes", [])[:10])
    return f"task {verdict}: {_first(event.get('summary', ''), 300)}" + (
        f" [files: {files}]" if files else ""
    )


def _complete_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    mark = (fmt.paint("✔ complete", "bold $text-success") if event.get("success")
            else fmt.paint("✘ ended", "bold $text-error"))  # fmt: skip
    return Text.from_markup(f"{mark} {fmt.escape(fmt.short(event.get('summary', ''), 200))}")


def _payload(event: Event) -> str:
    payload = {k: v for k, v in event.items() if k not in ("task_id", "seq", "ts", "type")}
    return json.dumps(payload, default=str)


def _other(event: Event) -> str:
    return f"{event.get('type', '')}: {_first(_payload(event), 200)}"


def _other_log(event: Event, _thinking: bool) -> Text:
    fmt, Text = _ui()
    e = fmt.escape
    said = e(fmt.short(_payload(event), 160))
    return Text.from_markup(f"[dim]{e(event.get('type', ''))} {said}[/]")


SHOWN: dict[str, Shown] = {
    ev.STATUS: Shown(_status, _status_log),
    ev.ANALYSIS: Shown(_analysis, _analysis_log),
    ev.THINKING: Shown(_thinking, _thinking_log),
    ev.TEXT: Shown(_text, _text_log, _text_more),
    ev.PLAN: Shown(_plan, _plan_log, _plan_more),
    ev.PROGRESS: Shown(_progress, _progress_log),
    ev.STEP: Shown(_step, _step_log),
    ev.TOOL_RESULT: Shown(_tool_result, _tool_result_log, _tool_result_more),
    ev.APPROVAL_REQUESTED: Shown(_approval_requested, _approval_requested_log),
    ev.APPROVAL_DECIDED: Shown(_approval_decided, _approval_decided_log),
    ev.VERIFICATION: Shown(_verification, _verification_log, _verification_more),
    ev.USAGE: Shown(_usage, _usage_log),
    ev.LEARNING: Shown(_learning, _learning_log, _learning_more),
    ev.CHECKPOINT: Shown(_checkpoint, _marked_log),
    ev.ROLLBACK: Shown(_said, _marked_log),
    REBASED: Shown(_said, _marked_log),
    ev.WARNING: Shown(_said, _alert_log),
    ev.ERROR: Shown(_said, _alert_log),
    PAUSED: Shown(_said, _held_log),
    RESUMED: Shown(_said, _held_log),
    ev.COMPLETE: Shown(_complete, _complete_log),
}
_OTHER = Shown(_other, _other_log)
