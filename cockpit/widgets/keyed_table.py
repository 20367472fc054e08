"""A DataTable that is synced from a mapping, row by row, the way Dolphie keeps live tables.

`sync(rows)` adds new keys, removes gone ones and updates only the cells whose value
changed, all inside one `batch_update()` so a refresh costs one repaint. The cursor stays on
the same row key across syncs. One column may be `flex`: it takes the width the others
leave, so the table fits its panel (no sideways scrolling) at any terminal size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual import events
from textual.widget import Widget
from textual.widgets import DataTable
from textual.widgets.data_table import RowDoesNotExist

from ..textual_private import relayout_columns


class KeyedTable(DataTable[Any]):
    DEFAULT_CSS = """
    KeyedTable { height: 1fr; }
    """

    def __init__(self, *columns: str | tuple[str, int], flex: str | None = None,
                 flex_min: int = 12, **kwargs: Any) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", True)
        super().__init__(**kwargs)
        self._spec = columns
        self._cells: dict[str, tuple[Any, ...]] = {}
        self._flex = flex
        self._flex_min = flex_min

    def on_mount(self) -> None:
        for column in self._spec:
            label, width = column if isinstance(column, tuple) else (column, None)
            self.add_column(label, key=label, width=width or (self._flex_min if label == self._flex
                                                               else None))
        self._fit()

    def on_resize(self, _event: events.Resize) -> None:
        self._fit()

    def _fit(self) -> None:
        """Give the flex column what the others leave (and a vertical scrollbar's room when
        the rows overflow the height)."""
        if self._flex is None or self._flex not in self.columns or not self.size.width:
            return
        others = sum(c.get_render_width(self) for key, c in self.columns.items()
                     if key != self._flex)
        overflow = self.row_count + (1 if self.show_header else 0) > self.size.height
        room = self.size.width - (self.styles.scrollbar_size_vertical if overflow else 0)
        width = max(self._flex_min, room - others - 2 * self.cell_padding)
        column = self.columns[self._flex]  # type: ignore[index]
        if column.width != width or column.auto_width:
            column.auto_width = False
            column.width = width
            relayout_columns(self)
            self.refresh()

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

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key
        except RowDoesNotExist:
            return None
        return key.value

    def sync(self, rows: Mapping[str, Sequence[Any]]) -> None:
        """Show exactly `rows` (key -> cells in column order), in the mapping's order."""
        selected = self.selected_key
        wanted = list(rows)
        kept = [k for k in self._cells if k in rows]
        in_order = kept == [k for k in wanted if k in self._cells]
        with self.app.batch_update():
            if not in_order:  # an insertion in the middle: rebuild (rare: new rows come last)
                self.clear()
                self._cells = {}
            for key in [k for k in self._cells if k not in rows]:
                self.remove_row(key)
                del self._cells[key]
            labels = [c[0] if isinstance(c, tuple) else c for c in self._spec]
            for key, cells in rows.items():
                cells = tuple(cells)
                old = self._cells.get(key)
                if old is None:
                    self.add_row(*map(_text, cells), key=key)
                elif old != cells:
                    for label, before, after in zip(labels, old, cells, strict=False):
                        if before != after:
                            self.update_cell(key, label, _text(after))
                self._cells[key] = cells
            if selected in self._cells:
                self.move_cursor(row=self.get_row_index(selected), animate=False)
            self._fit()


def _text(cell: Any) -> Any:
    """Markup parsed once here, not by the table on every repaint. One line: text wider
    than its column ends with an ellipsis (it never wraps out of sight)."""
    if not isinstance(cell, str):
        return cell
    text = Text.from_markup(cell, end="", overflow="ellipsis")
    text.no_wrap = True
    return text
