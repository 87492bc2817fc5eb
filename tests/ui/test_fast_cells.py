"""The dashboard tables paint their cells directly (FastCells); what the user sees must not change.

Each test paints the same table twice, the direct way and DataTable's own way, and compares
every visible line segment by segment (text, colours, and the click metadata of each cell).
If a Textual upgrade changes DataTable's rendering internals, these fail instead of the
dashboard silently drawing something else.
"""

from __future__ import annotations

import dataclasses

import pytest
from rich.segment import Segment
from textual.geometry import Region

from sniui.ui.widgets.connections import ConnectionsTable
from sniui.ui.widgets.fast_cells import FastCells
from sniui.ui.widgets.tables import RecentTable, ServersTable


def painted(table: FastCells, fast: bool) -> list[list[tuple[str, object]]]:
    table.fast_cells = fast
    table._clear_caches()   # DataTable's own line caches would otherwise hand back the other path's lines
    table._painted.clear()
    width, height = table.size
    lines = table.render_lines(Region(0, 0, width, height))
    return [[(segment.text, segment.style) for segment in Segment.simplify(list(strip))] for strip in lines]


def assert_same_paint(table: FastCells) -> None:
    direct, textual = painted(table, True), painted(table, False)
    assert len(direct) == len(textual) > 3
    for number, (ours, theirs) in enumerate(zip(direct, textual)):
        assert ours == theirs, f"line {number} differs"
    table.fast_cells = True


@pytest.mark.parametrize("theme", ["textual-dark", "textual-light"])
async def test_connections_table_paints_as_datatable_does(replay_app, theme):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.theme = theme
        app.screen.refresh_now()   # a theme change repaints the rows at the next refresh
        await pilot.pause()
        table = app.screen.query_one(ConnectionsTable)
        table.focus()
        table.move_cursor(row=2)   # the cursor row is painted in the cursor's colours
        await pilot.pause()
        assert table.cursor_row == 2
        assert_same_paint(table)


@pytest.mark.parametrize("key, table_type", [("r", RecentTable), ("u", ServersTable)])
async def test_closed_and_servers_tables_paint_as_datatable_does(replay_app, key, table_type):
    """Includes the header row, and empty cells (a server with no last error)."""
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
        table = app.screen.query_one(table_type)
        assert table.row_count > 3
        assert_same_paint(table)


async def test_wide_and_clipped_text_paints_as_datatable_does(replay_app):
    """Names wider than their column, and double-width characters, are cropped and padded alike."""
    app = replay_app()
    view = app.view
    snapshot = view.snapshot()
    odd = [dataclasses.replace(snapshot.connections[0], sni="名前.例え.テスト.example"),
           dataclasses.replace(snapshot.connections[1], sni="a-very-long-name-that-cannot-fit." * 3 + "example")]
    view.replace_snapshot(dataclasses.replace(snapshot, connections=tuple(odd) + snapshot.connections[2:]))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(ConnectionsTable)
        shown = {table.get_cell(f"c:{c.id}", "sni").plain for c in odd}
        assert any("名前" in text for text in shown)
        assert_same_paint(table)


async def test_cells_repaint_when_they_change(replay_app):
    """The direct paint is cached by content: a changed cell must show its new text at once."""
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(ConnectionsTable)
        key = str(table.ordered_rows[0].key.value)
        before = painted(table, True)
        table.update_cell(key, "sni", "changed.example")
        after = painted(table, True)
        assert "changed.example" in "".join(text for text, _ in after[1])
        assert "changed.example" not in "".join(text for text, _ in before[1])


async def test_hovered_and_scrolled_rows_paint_as_datatable_does(replay_app):
    """The mouse hover row, and a table scrolled down (the header stays, rows shift)."""
    from textual.coordinate import Coordinate

    app = replay_app(80)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(ConnectionsTable)
        table.scroll_to(y=7, animate=False, immediate=True)
        await pilot.pause()
        assert table.scroll_offset.y == 7
        table._show_hover_cursor = True
        table.hover_coordinate = Coordinate(9, 2)
        table.move_cursor(row=12, animate=False, scroll=False)
        await pilot.pause()
        assert_same_paint(table)
