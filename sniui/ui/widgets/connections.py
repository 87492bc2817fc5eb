"""The live connections table: updated in place by row key, never rebuilt.

Following dolphie: inside one batch, remove rows that went away, update only
the cells that changed, add new rows, and re-order only when the order did
change. The rows themselves come from `sniui.ui.rows` already filtered,
sorted, grouped and capped.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from typing import Mapping

from sniui.ui.rows import COLUMNS, COLUMN_KEYS, WIDE, DisplayRow
from sniui.ui.widgets.fast_cells import FastCells
from sniui.ui.widgets.tones import tone_styles


# Rows this far beyond the viewport are still updated, so short scrolls never show stale cells.
VIEW_MARGIN = 20
REBUILD_AFTER = 40


class _OrderedCell(Text):
    """The first cell of each row carries its row's position, so `DataTable.sort` can re-order by key."""

    __slots__ = ("position",)


class ConnectionsTable(FastCells):
    BINDINGS = [
        Binding("enter", "select_cursor", "Open", id="connections.details",
                tooltip="Open the selected connection, or expand/collapse the selected group"),
    ]

    class SortRequested(Message):
        def __init__(self, column: str):
            super().__init__()
            self.column = column

    def __init__(self, **kwargs):
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)
        self._cells: dict[str, tuple[str, ...]] = {}   # what each row currently shows
        self._tones: dict[str, str] = {}
        self._order: list[str] = []
        self._styles = {}
        self.sort_column = "age"
        self.sort_reverse = False
        self.widths: Mapping[str, int] = WIDE

    def on_mount(self) -> None:
        self._add_columns()
        self._styles = tone_styles(self.app)
        self.watch(self.app, "theme", self._theme_changed, init=False)

    def _add_columns(self) -> None:
        for key, label, _ in COLUMNS:
            self.add_column(label, key=key, width=self.widths[key])
        self._label_sort()

    def set_widths(self, widths: Mapping[str, int]) -> bool:
        """Switch column widths (wide/narrow terminal). Rows come back at the next `show_rows`."""
        if widths == self.widths:
            return False
        self.widths = widths
        if self.is_mounted:
            self.clear(columns=True)
            self._cells.clear()
            self._tones.clear()
            self._order = []
            self._add_columns()
        return True

    def _theme_changed(self) -> None:
        self._styles = tone_styles(self.app)
        self._cells.clear()  # force every cell to be written again in the new colours
        self.clear()
        self._order = []

    def set_sort(self, column: str, reverse: bool) -> None:
        self.sort_column, self.sort_reverse = column, reverse
        self._label_sort()

    def _label_sort(self) -> None:
        arrow = " ▲" if self.sort_reverse else " ▼"
        for key, label, _ in COLUMNS:
            column = self.columns.get(key)  # type: ignore[arg-type]
            if column is not None:
                column.label = Text(label + (arrow if key == self.sort_column else ""))
        self.refresh()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.post_message(self.SortRequested(str(event.column_key.value)))

    @property
    def selected_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return str(self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value)
        except Exception:  # cursor outside the rows while the table is being emptied
            return None

    def show_rows(self, rows: list[DisplayRow]) -> None:
        """Bring the table to `rows` with the fewest changes; keep the cursor on the same row key.

        Cells of rows outside the viewport (plus a margin) are left as they are: updating a
        cell costs a refresh, and with 10,000 connections nearly every byte counter changes
        every tick. Those rows keep their old cells recorded, so they are brought up to date
        at the first refresh after they scroll into view.
        """
        keep = self.selected_key
        wanted = {row.key for row in rows}
        stale = [k for k in self._cells if k not in wanted]
        if len(stale) > REBUILD_AFTER or len(stale) * 2 > len(self._cells):
            # DataTable.remove_row re-indexes every row: past a few dozen removals, or when most rows
            # went away (short connections under load), a rebuild is cheaper.
            scroll_y = self.scroll_y
            self.clear()
            self._cells.clear()
            self._tones.clear()
            self.scroll_to(y=scroll_y, animate=False, immediate=True)
        else:
            for key in stale:
                self.remove_row(key)
                del self._cells[key]
                self._tones.pop(key, None)
        position = {row.key: i for i, row in enumerate(rows)}
        top = int(self.scroll_y)
        first, last = top - VIEW_MARGIN, top + self.size.height + VIEW_MARGIN
        for index, row in enumerate(rows):
            old = self._cells.get(row.key)
            if old is None:
                self.add_row(*self._render_cells(row, index), key=row.key)
            elif old != row.cells or self._tones.get(row.key) != row.tone:
                if not first <= index <= last:
                    continue  # off screen: catch up when visible
                retone = self._tones.get(row.key) != row.tone
                style = self._styles.get(row.tone)
                for column_index, (column, before, after) in enumerate(zip(COLUMN_KEYS, old, row.cells)):
                    if before != after or retone:
                        cell = _OrderedCell(after, style=style) if column_index == 0 else Text(after, style=style)
                        self.update_cell(row.key, column, cell, update_width=False)
            self._cells[row.key] = row.cells
            self._tones[row.key] = row.tone
        order = [row.key for row in rows]
        if order != self._order_now():
            for row in rows:
                first_cell = self.get_cell(row.key, COLUMN_KEYS[0])
                if isinstance(first_cell, _OrderedCell):
                    first_cell.position = position[row.key]
            self.sort(COLUMN_KEYS[0], key=lambda cell: getattr(cell, "position", 0))
        self._order = order
        if keep is not None and keep in position:
            index = position[keep]
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)

    def _order_now(self) -> list[str]:
        return [str(row.key.value) for row in self.ordered_rows]

    def _render_cells(self, row: DisplayRow, position: int) -> list[Text]:
        style = self._styles.get(row.tone)
        first = _OrderedCell(row.cells[0], style=style)
        first.position = position
        return [first, *(Text(cell, style=style) for cell in row.cells[1:])]
