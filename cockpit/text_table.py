"""Plain text tables for the command line: a header row, aligned columns, and one free-text
column that gets the rest of the terminal's width, clipped at a word boundary."""

from __future__ import annotations

import shutil
from collections.abc import Sequence

from agent.clip import clip

GAP = "  "


def terminal_width() -> int:
    """The terminal's width; when piped, wide enough that nothing useful is cut."""
    return max(60, shutil.get_terminal_size((160, 24)).columns)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    flex: int | None = None,
    width: int | None = None,
) -> list[str]:
    """Lines of a table. Column `flex` (default: the last) takes the room the others
    leave, at least 20 columns; every other cell is shown whole."""
    cells = [[" ".join(str(c).split()) for c in row] for row in rows]
    n = len(headers)
    flex = n - 1 if flex is None else flex
    widths = [max([len(headers[i]), *(len(r[i]) for r in cells)]) for i in range(n)]
    room = (width or terminal_width()) - sum(w for i, w in enumerate(widths) if i != flex)
    room -= len(GAP) * (n - 1)
    widths[flex] = max(min(widths[flex], room), 20, len(headers[flex]))
    lines = []
    for row in [list(headers), *cells]:
        shown = [clip(c, widths[i]) if i == flex else c for i, c in enumerate(row)]
        lines.append(GAP.join(c.ljust(widths[i]) for i, c in enumerate(shown)).rstrip())
    return lines
