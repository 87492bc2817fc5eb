"""Paint the dashboard's table cells without Rich's layout engine.

DataTable renders every cell through `Console.render_lines(Padding(cell))`
and keys its caches on a counter that any cell update bumps, so one changed
byte counter re-renders every visible cell: about 90 µs each, 30 ms a frame
for a screenful, on the loop the engine relays on. Our cells are one-line,
single-style `Text` already clipped to their column, so they can be painted
as three segments (padding, text, padding) and cached by what they show.

Anything else (headers, labels, multi-line rows, styled spans, a Textual
without these internals) takes DataTable's own path. This leans on
DataTable's private rendering hooks, so the pinned Textual version is tested
to paint identically both ways (tests/ui/test_fast_cells.py).
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.widgets import DataTable

CACHE_LIMIT = 20_000


class FastCells(DataTable):
    """A DataTable whose plain one-line cells are painted directly (see the module docstring)."""

    fast_cells = True   # tests turn this off on one instance to paint the same table the slow way

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._painted: dict[tuple, list[list[Segment]]] = {}

    def _render_cell(self, row_index: int, column_index: int, base_style: Style, width: int,
                     cursor: bool = False, hover: bool = False):
        cell = self._plain_cell(row_index, column_index) if self.fast_cells else None
        if cell is None:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        component_style, post_style = self._get_styles_to_render_cell(
            row_index == -1, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css",
        )
        key = (row_index, column_index, cell.plain, cell.style, width, base_style, component_style, post_style)
        painted = self._painted.get(key)
        if painted is None:
            if len(self._painted) >= CACHE_LIMIT:
                self._painted.clear()
            # What Styled(Padding(cell), pre_style, post_style) paints, as DataTable builds it.
            pre_style = base_style + Style.from_meta({"row": row_index, "column": column_index}) + component_style
            text_style = cell.style if isinstance(cell.style, Style) else self.app.console.get_style(cell.style)
            pad_style = pre_style + post_style
            room = max(0, width - 2 * self.cell_padding)
            text = cell.plain if cell_len(cell.plain) <= room else set_cell_size(cell.plain, room)
            # Rich pads a short line with the padding's style, not the text's.
            fill = " " * (room - cell_len(text) + self.cell_padding)
            line = [Segment(" " * self.cell_padding, pad_style), Segment(text, pre_style + text_style + post_style),
                    Segment(fill, pad_style)] if text else [Segment(" " * width, pad_style)]
            painted = self._painted[key] = [line]
        return painted

    def _plain_cell(self, row_index: int, column_index: int) -> Text | None:
        """The cell's Text when the direct paint shows exactly what Rich would; else None."""
        if column_index < max(self.fixed_columns, 0) or 0 <= row_index < self.fixed_rows:
            return None
        try:
            if row_index == -1:   # the header: repainted with every frame, like the rows
                height = self.header_height
                cell = self.ordered_columns[column_index].label
            elif row_index >= 0:
                row_key = self._row_locations.get_key(row_index)
                height = self.rows[row_key].height
                cell = self._data[row_key][self._column_locations.get_key(column_index)]
            else:
                return None
        except (AttributeError, IndexError, KeyError, TypeError):
            return None
        if height != 1 or not isinstance(cell, Text) or self.cell_padding < 0:
            return None
        if cell._spans or cell.justify not in (None, "left", "default") or cell.overflow not in (None, "fold", "crop"):
            return None
        plain = cell.plain
        if "\n" in plain or "\t" in plain or not plain.isprintable():
            return None
        return cell

    def clear(self, columns: bool = False):
        self._painted.clear()
        return super().clear(columns)
