"""`?` (or F1): the keys of the panel on screen and the ones that work everywhere, the way
k9s and lazygit show them. Built from the bindings in force (keymap remaps included), so it
never names a key that does nothing."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from .. import fmt

Section = tuple[str, list[tuple[str, str]]]


def section_text(title: str, rows: list[tuple[str, str]]) -> str:
    width = max((len(key) for key, _ in rows), default=0)
    lines = [f"[b $accent]{fmt.escape(title)}[/]"]
    for key, what in rows:
        lines.append(f"  [b]{fmt.escape(key.ljust(width))}[/]  {fmt.escape(what)}")
    return "\n".join(lines)


class HelpOverlay(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpOverlay { align: center middle; background: $background 60%; }
    HelpOverlay > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    HelpOverlay VerticalScroll { height: auto; max-height: 1fr; }
    HelpOverlay .help-section { margin-bottom: 1; }
    HelpOverlay #help-close { color: $text-muted; height: 1; }
    """
    BINDINGS = [Binding("escape,q,question_mark,f1", "close", "Close", id="help.close")]

    def __init__(self, title: str, sections: list[Section]) -> None:
        super().__init__()
        self._title = title
        self.sections = sections

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"Keys · {self._title}"
            with VerticalScroll():
                for title, rows in self.sections:
                    if rows:
                        yield Static(section_text(title, rows), classes="help-section")
            yield Static("esc, ? or q closes this", id="help-close")

    def action_close(self) -> None:
        self.dismiss(None)
