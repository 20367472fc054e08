"""What the help overlay lists and what the quit question says.

The overlay is built from the bindings in force on the panel and the app (remaps
applied), so a key it names is a key that works; a few rows describe keys that widgets
handle themselves (Enter on a row, the log's cursor, the mouse)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.binding import Binding
from textual.dom import DOMNode
from textual.widgets import DataTable

from . import fmt
from .panels import PANELS
from .textual_private import bindings_with_keymap

if TYPE_CHECKING:
    from textual.app import App
    from textual.screen import Screen

Rows = list[tuple[str, str]]
# Actions listed elsewhere (the panel digits get one row) or not meant for the operator.
UNLISTED = {"panel_key", "app.panel_key", "command_palette", "leave_input", "app.focus_next",
            "app.focus_previous", "focus_next", "focus_previous", "screen.copy_text",
            "app.copy_text", "copy_text"}


def _bindings(node: DOMNode) -> list[Binding]:
    bindings = bindings_with_keymap(node)
    out: list[Binding] = []
    for key_bindings in bindings.key_to_bindings.values():
        out.extend(key_bindings)
    return out


def binding_rows(node: DOMNode, app: App[Any]) -> Rows:
    """(keys, what) for each described binding of `node`, keys of one action joined."""
    grouped: dict[str, tuple[list[str], str]] = {}
    for binding in _bindings(node):
        action = binding.action
        if not binding.description or action.split("(")[0] in UNLISTED \
                or action.startswith("app.switch_mode"):
            continue
        if node.check_action(action, ()) is False:  # not offered here (as the footer says)
            continue
        keys, _ = grouped.setdefault(action, ([], binding.description))
        shown = app.get_key_display(binding)
        if shown not in keys:
            keys.append(shown)
    return [("/".join(keys), what) for keys, what in grouped.values()]


def help_sections(app: App[Any], screen: Screen[Any]) -> list[tuple[str, Rows]]:
    from .keys import key_for

    panel: Rows = binding_rows(screen, app)
    enter = getattr(screen, "ENTER", None)
    if enter:
        panel.insert(0, ("enter", enter))
    panel.extend(getattr(screen, "HELP_EXTRA", []))
    tables = [("↑/↓ PgUp/PgDn", "move through the rows"), ("Home/End", "first / last row")]
    digits = " ".join(key_for(app, f"panel.{p.mode}", p.key) for p in PANELS)
    everywhere: Rows = [(digits, "switch panel (when no text field has focus)")]
    everywhere += [row for row in binding_rows(app, app)]
    everywhere += [
        (key_for(app, "palette", "^p"), "command palette: panels, themes, stop, re-arm"),
        ("esc", "leave a text field · close a dialog"),
        ("tab / shift+tab", "next / previous field or table"),
        ("mouse", "click a tab to switch · scroll logs and tables · click a row"),
    ]
    sections = [(f"This panel: {getattr(screen, 'title', '')}", panel)]
    if screen.query(DataTable):  # (Charts has none)
        sections.append(("Tables", tables))
    return [*sections, ("Everywhere", everywhere)]


def quit_question(live: list[dict[str, Any]], waiting: list[dict[str, Any]],
                  engine_id: str) -> str:
    """What quitting does to the work in progress, in plain words."""
    own = [t for t in live if t.get("engine_id") == engine_id]
    others = [t for t in live if t.get("engine_id") != engine_id]
    mine = {t["id"] for t in own}
    their_requests = [a for a in waiting if a["task_id"] not in mine]
    lines = ["[b]Quit Liv Hana Cockpit?[/]"]
    if own:
        lines.append(f"• {fmt.plural(len(own), 'task')} of this cockpit "
                     f"{'is' if len(own) == 1 else 'are'} interrupted: the work so far stays "
                     "checkpointed on its branch (livhana/<id>), nothing is applied.")
    if others:
        lines.append(f"• {fmt.plural(len(others), 'task')} of another engine (a daemon or a "
                     f"`run`) {'goes' if len(others) == 1 else 'go'} on.")
    if their_requests:
        lines.append(f"• {fmt.plural(len(their_requests), 'request')} still "
                     f"{'waits' if len(their_requests) == 1 else 'wait'} for you: decide later "
                     "here or with `livhana-cockpit approve|deny`.")
    return "\n".join(lines)
