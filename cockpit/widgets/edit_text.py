"""A modal that edits one line of text: Enter (or Save) answers the new text, Escape None.

The modal is the confirmation: nothing changes until Save."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class EditText(ModalScreen[str | None]):
    DEFAULT_CSS = """
    EditText { align: center middle; }
    EditText > Vertical {
        width: 90%; max-width: 100; height: auto; padding: 1 2;
        border: thick $primary; background: $surface;
    }
    EditText #question { margin-bottom: 1; }
    EditText Input { margin-bottom: 1; }
    EditText Horizontal { height: auto; align: right middle; }
    EditText Button { margin-left: 2; }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, text: str, save: str = "Save") -> None:
        super().__init__()
        self._question = question
        self._text = text
        self._save = save

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._question, id="question")
            # Not selected on focus: a key typed would replace the whole text.
            yield Input(self._text, id="text", select_on_focus=False)
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel")
                yield Button(f"{self._save} (enter)", id="save", variant="primary")

    def on_mount(self) -> None:
        field = self.query_one("#text", Input)
        field.focus()
        field.cursor_position = len(field.value)

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self._answer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self._answer()
        else:
            self.dismiss(None)

    def _answer(self) -> None:
        self.dismiss(self.query_one("#text", Input).value)

    def action_cancel(self) -> None:
        self.dismiss(None)
