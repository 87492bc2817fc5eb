"""Paint the dashboard's table cells without Rich's layout engine.

DataTable renders every cell through `Console.render_lines(Padding(cell))`
and keys its caches on a counter that any cell update bumps, so one changed
byte counter re-renders every visible cell: about 90 µs each, 30 ms a frame
for a screenful, on the loop the engine relays on. Our cells are one-line,
single-style `Text` already clipped to their column, so they can be painted
as three segments (padding, text, padding) and cached by what they show.

Rows are assembled the same way for a row cursor over plain columns, without
re-deriving per row what is fixed for a paint (header style, background
colours, column widths, the widget's style).

Anything else (row labels, fixed columns, zebra stripes, multi-line rows,
styled spans) takes DataTable's own path. This leans on DataTable's private
rendering hooks, so the pinned Textual version is tested to paint
identically both ways, cursor, hover and scrolling included
(tests/ui/test_fast_cells.py). bench/ui_cost.py: a quiet dashboard of 40
connections costs ~35-45 ms of CPU a second, 183 before any of this.
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
        self._meta_styles: dict[int, Style] = {}
        self._paint_style: Style | None = None

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

    def render_lines(self, crop):
        # The widget's style is the same for every line of one paint; DataTable asks for it per line
        # (DOMNode.rich_style walks the ancestors each time).
        self._paint_style = self.rich_style
        try:
            return super().render_lines(crop)
        finally:
            self._paint_style = None

    def render_line(self, y: int):
        style = self._paint_style
        if style is None or self.fixed_rows or not self.fast_cells:
            return super().render_line(y)
        width = self.size.width
        scroll_x, scroll_y = self.scroll_offset
        if y >= (self.header_height if self.show_header else 0):
            y += scroll_y
        return self._render_line(y, scroll_x, scroll_x + width, style)

    def _render_line_in_row(self, row_key, line_no: int, base_style: Style, cursor_location, hover_location):
        # DataTable's own assembly re-derives per row what is the same for the whole paint (the
        # header style, the background colours, every column's width twice, a highlight test per
        # cell); for a row cursor over plain columns this assembles the same segments directly.
        if (not self.fast_cells or self.cursor_type != "row" or self.fixed_columns or self.zebra_stripes
                or (self._labelled_row_exists and self.show_row_labels)):
            return super()._render_line_in_row(row_key, line_no, base_style, cursor_location, hover_location)
        row_index = self._row_locations.get(row_key) if row_key in self._row_locations else -1
        row_style = (self.get_component_styles("datatable--header").rich_style if row_index == -1 else base_style)
        cursor = cursor_location.row == row_index
        hover = hover_location.row == row_index
        render_cell = self._render_cell
        widths = [column.get_render_width(self) for column in self.ordered_columns]
        row = [render_cell(row_index, index, row_style, width, cursor=cursor, hover=hover)[line_no]
               for index, width in enumerate(widths)]
        remaining = max(0, self.size.width - (sum(widths) + self._row_label_column_width))
        extend_style, _ = self._get_styles_to_render_cell(
            row_index == -1, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor, False, False)
        extend_style = row_style + extend_style + self._out_of_bounds_meta(row_index)
        row.append([Segment(" " * remaining, extend_style)])
        return [], row

    def _out_of_bounds_meta(self, row_index: int) -> Style:
        """What a click right of the last column carries (cached: Style.from_meta pickles its dict)."""
        meta = self._meta_styles.get(row_index)
        if meta is None:
            if len(self._meta_styles) >= CACHE_LIMIT:
                self._meta_styles.clear()
            meta = self._meta_styles[row_index] = Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
        return meta

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
