"""A DataTable that is synced from a mapping, row by row, the way Dolphie keeps live tables.

`sync(rows)` adds new keys, removes gone ones and updates only the cells whose value
changed, all inside one `batch_update()` so a refresh costs one repaint. The cursor stays on
the same row key across syncs, and the rows keep the mapping's order (a row that belongs
anywhere but last makes the table rebuild, so a newest-first list stays in order).

It fits its width, at any terminal size, without sideways scrolling:
- one column may be `flex`: it takes the width the others leave;
- columns declared with `Col(..., drop=N)` are hidden when they do not fit, lowest `drop`
  first, and the table then ends with a `+N` column of `…` cells: N columns are hidden
  (the order is each table's declaration, listed in the README);
- a cell wider than its column ends with an ellipsis.

`/` filters: `filter_text` keeps the rows whose text contains it (any column, hidden ones
too, case-insensitive); the others stay synced and come back when the filter is cleared.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from ..textual_private import relayout_columns

HIDDEN_KEY = "__hidden__"


@dataclass(frozen=True)
class Col:
    """A column: its label (also its key), its width (None: fit the content, or flex), and
    when it is dropped on a narrow terminal (0: never; 1 goes first, then 2, ...)."""

    label: str
    width: int | None = None
    drop: int = 0


def _col(spec: str | tuple[str, int] | Col) -> Col:
    if isinstance(spec, Col):
        return spec
    if isinstance(spec, tuple):
        return Col(spec[0], spec[1])
    return Col(spec)


class KeyedTable(DataTable[Any]):
    # No sideways scrolling (see above): a table a few cells too wide would otherwise grow
    # a horizontal scrollbar, whose thumb shows as stray ▎▊▉ glyphs under the rows.
    DEFAULT_CSS = """
    KeyedTable { height: 1fr; overflow-x: hidden; }
    """
    BINDINGS = [
        Binding("home", "scroll_top", "Top", show=False),
        Binding("end", "scroll_bottom", "Bottom", show=False),
    ]

    class Filtered(Message):
        """The filter changed what is shown: (shown, total) rows."""

        def __init__(self, table: KeyedTable, shown: int, total: int) -> None:
            super().__init__()
            self.table = table
            self.shown = shown
            self.total = total

    def __init__(self, *columns: str | tuple[str, int] | Col, flex: str | None = None,
                 flex_min: int = 12, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self._spec = [_col(c) for c in columns]
        self._labels = [c.label for c in self._spec]
        self._all: dict[str, tuple[Any, ...]] = {}  # every synced row, filtered or not
        self._cells: dict[str, tuple[Any, ...]] = {}  # the rows shown, as shown
        self._visible: list[int] = list(range(len(self._spec)))
        self._flex = flex
        self._flex_min = flex_min
        self.filter_text = ""

    @property
    def hidden_columns(self) -> list[str]:
        """Labels of the columns dropped to fit the width, in the order they went."""
        gone = [c for i, c in enumerate(self._spec) if i not in self._visible]
        return [c.label for c in sorted(gone, key=lambda c: c.drop)]

    def on_mount(self) -> None:
        self._build_columns()
        self._fit()

    def on_resize(self, _event: events.Resize) -> None:
        self._fit()

    # -- columns ---------------------------------------------------------------------------
    def _build_columns(self) -> None:
        for i in self._visible:
            spec = self._spec[i]
            width = spec.width or (self._flex_min if spec.label == self._flex else None)
            self.add_column(spec.label, key=spec.label, width=width)
        hidden = len(self._spec) - len(self._visible)
        if hidden:
            self.add_column(f"+{hidden}", key=HIDDEN_KEY, width=len(str(hidden)) + 1)

    def _needed(self, visible: list[int]) -> int:
        """Cells the columns take (padding included) with the flex one at its minimum."""
        total = 0
        for i in visible:
            spec = self._spec[i]
            if spec.label == self._flex:
                width = self._flex_min
            elif spec.width is not None:
                width = spec.width
            elif spec.label in self.columns:  # fit to content: as wide as it is now
                width = self.columns[spec.label].get_render_width(self) - 2 * self.cell_padding  # type: ignore[index]
            else:
                width = len(spec.label)
            total += width + 2 * self.cell_padding
        hidden = len(self._spec) - len(visible)
        if hidden:
            total += len(str(hidden)) + 1 + 2 * self.cell_padding
        return total

    def _room(self) -> int:
        overflow = len(self._cells) + (1 if self.show_header else 0) > self.size.height
        return self.size.width - (self.styles.scrollbar_size_vertical if overflow else 0)

    def _fit(self) -> None:
        """Drop what does not fit (lowest `drop` first), bring back what fits again, and
        give the flex column what the others leave."""
        if not self.size.width:
            return
        room = self._room()
        visible = list(range(len(self._spec)))
        droppable = sorted((c.drop, i) for i, c in enumerate(self._spec) if c.drop)
        while droppable and self._needed(visible) > room:
            visible.remove(droppable.pop(0)[1])
        if visible != self._visible:
            self._visible = visible
            self._rebuild(columns=True)
        self._fit_flex(room)

    def _fit_flex(self, room: int) -> None:
        if self._flex is None or self._flex not in self.columns:
            return
        others = sum(c.get_render_width(self) for key, c in self.columns.items()
                     if key != self._flex)
        width = max(self._flex_min, room - others - 2 * self.cell_padding)
        column = self.columns[self._flex]  # type: ignore[index]
        if column.width != width or column.auto_width:
            column.auto_width = False
            column.width = width
            relayout_columns(self)
            self.refresh()

    def _shown_cells(self, cells: tuple[Any, ...]) -> tuple[Any, ...]:
        shown = tuple(cells[i] if i < len(cells) else "" for i in self._visible)
        if len(self._visible) < len(self._spec):
            shown += ("[dim]…[/]",)
        return shown

    def _shown_labels(self) -> list[str]:
        labels = [self._labels[i] for i in self._visible]
        if len(self._visible) < len(self._spec):
            labels.append(HIDDEN_KEY)
        return labels

    # -- style cache -----------------------------------------------------------------------
    def notify_style_update(self) -> None:
        """Keep the rendered rows when the styles did not really change.

        Every panel switch re-applies styles to the whole screen, and DataTable answers by
        dropping all its render caches: the table was most of a switch's repaint cost."""
        signature = (self.app.theme, tuple(sorted(self.get_pseudo_classes())),
                     repr(self.styles.get_render_rules()))
        if signature == getattr(self, "_style_signature", None):
            Widget.notify_style_update(self)
            self.refresh()
            return
        self._style_signature = signature
        super().notify_style_update()

    # -- rows ------------------------------------------------------------------------------
    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except RowDoesNotExist:
            return None
        return key.value

    def row_cells(self, key: str) -> tuple[Any, ...] | None:
        """Every cell of a synced row, hidden columns included."""
        return self._all.get(key)

    def select_key(self, key: str) -> bool:
        """Put the cursor on `key`'s row (False when it is not shown)."""
        if key not in self._cells:
            return False
        self.move_cursor(row=self.get_row_index(key), animate=False)
        return True

    def _matches(self, cells: tuple[Any, ...]) -> bool:
        if not self.filter_text:
            return True
        needle = self.filter_text.casefold()
        return any(needle in _plain(cell).casefold() for cell in cells)

    def set_filter(self, text: str) -> None:
        self.filter_text = text.strip()
        self.sync(dict(self._all))

    def sync(self, rows: Mapping[str, Sequence[Any]]) -> None:
        """Show exactly `rows` (key -> cells in column order), in the mapping's order, minus
        those the filter hides."""
        self._all = {key: tuple(cells) for key, cells in rows.items()}
        shown = {key: cells for key, cells in self._all.items() if self._matches(cells)}
        selected = self.selected_key
        wanted = list(shown)
        kept = [k for k in self._cells if k in shown]
        # New rows may only come after every kept one: elsewhere they would be appended out
        # of order (a newest-first list gets its new rows at the top).
        in_order = wanted[: len(kept)] == kept
        with self.app.batch_update():
            if not in_order:
                self.clear()
                self._cells = {}
            for key in [k for k in self._cells if k not in shown]:
                self.remove_row(key)
                del self._cells[key]
            labels = self._shown_labels()
            for key, cells in shown.items():
                old = self._cells.get(key)
                if old is None:
                    self.add_row(*map(_text, self._shown_cells(cells)), key=key)
                elif old != cells:
                    for label, before, after in zip(labels, self._shown_cells(old),
                                                    self._shown_cells(cells), strict=False):
                        if before != after:
                            self.update_cell(key, label, _text(after))
                self._cells[key] = cells
            if selected in self._cells:
                self.move_cursor(row=self.get_row_index(selected), animate=False)
            self._fit()
        self.post_message(self.Filtered(self, len(self._cells), len(self._all)))

    def _rebuild(self, columns: bool = False) -> None:
        """Re-add every shown row (and the columns, when the visible set changed)."""
        selected = self.selected_key
        rows = dict(self._cells)
        with self.app.batch_update():
            self.clear(columns=columns)
            if columns:
                self._build_columns()
            for key, cells in rows.items():
                self.add_row(*map(_text, self._shown_cells(cells)), key=key)
            if selected in rows:
                self.move_cursor(row=self.get_row_index(selected), animate=False)

    def action_scroll_top(self) -> None:
        if self.row_count:
            self.move_cursor(row=0, animate=False)

    def action_scroll_bottom(self) -> None:
        if self.row_count:
            self.move_cursor(row=self.row_count - 1, animate=False)


def _plain(cell: Any) -> str:
    if isinstance(cell, Text):
        return cell.plain
    if isinstance(cell, str):
        try:
            return Text.from_markup(cell).plain
        except Exception:
            return cell
    return str(cell)


def _text(cell: Any) -> Any:
    """Markup parsed once here, not by the table on every repaint. One line: text wider
    than its column ends with an ellipsis (it never wraps out of sight)."""
    if not isinstance(cell, str):
        return cell
    text = Text.from_markup(cell, end="", overflow="ellipsis")
    text.no_wrap = True
    return text
