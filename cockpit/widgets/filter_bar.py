"""The `/` filter of a panel's tables (k9s style): a one-line field above the key bar.
Typing filters the table as you go; Enter goes back to the rows with the filter kept (the
bar stays, showing it); Escape clears it and hides the bar."""

from __future__ import annotations

from textual import on
from textual.binding import Binding
from textual.widgets import Input

from .keyed_table import KeyedTable


class FilterBar(Input):
    DEFAULT_CSS = """
    FilterBar { display: none; height: 1; border: none; padding: 0 1; background: $panel; }
    FilterBar.-shown { display: block; }
    FilterBar:focus { background: $boost; }
    """
    BINDINGS = [Binding("escape", "clear", "Clear filter", show=False)]

    def __init__(self) -> None:
        super().__init__(placeholder="filter the rows: type, Enter keeps it, Esc clears",
                         compact=True, id="filter-bar")
        self.table: KeyedTable | None = None

    def open(self, table: KeyedTable) -> None:
        self.table = table
        self.add_class("-shown")
        self.focus()

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        if self.table is not None:
            self.table.set_filter(event.value)

    @on(Input.Submitted)
    def _kept(self, event: Input.Submitted) -> None:
        event.stop()
        if not self.value.strip():
            self.action_clear()
        elif self.table is not None:
            self.table.focus()

    def action_clear(self) -> None:
        self.value = ""
        if self.table is not None:
            self.table.set_filter("")
            self.table.focus()
        self.remove_class("-shown")
