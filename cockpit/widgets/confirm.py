"""A yes/no modal. The caller awaits its answer (`push_screen_wait`) like a future.

A question about a task (`task_id`) closes itself, answering None, when that task ends
first: a "Cancel task …?" must not outlive the task (the app calls `task_ended`)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class Confirm(ModalScreen[bool | None]):
    DEFAULT_CSS = """
    Confirm { align: center middle; }
    Confirm > Vertical {
        width: 64; height: auto; padding: 1 2;
        border: thick $warning; background: $surface;
    }
    Confirm #question { margin-bottom: 1; }
    Confirm Horizontal { height: auto; align: right middle; }
    Confirm Button { margin-left: 2; }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, yes: str = "Yes", task_id: str | None = None) -> None:
        super().__init__()
        self._question = question
        self._yes = yes
        self.task_id = task_id
        self._ended: str | None = None  # the task's end state, once it ended

    def task_ended(self, state: str) -> None:
        """The task this question is about has ended: close, and say why."""
        self._ended = state
        if self.is_current:
            self._close()

    def on_screen_resume(self) -> None:
        if self._ended:  # it ended while this dialog sat on a panel not shown
            self._close()

    def _close(self) -> None:
        self.notify(f"Task {str(self.task_id)[:8]} already ended "
                    f"({str(self._ended).replace('_', ' ')}): nothing left to ask.",
                    severity="warning")
        self.dismiss(None)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self._question, id="question")
            with Horizontal():
                yield Button("No (n)", id="no")
                yield Button(f"{self._yes} (y)", id="yes", variant="warning")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)
