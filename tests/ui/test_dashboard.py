"""Dashboard behaviour with Pilot: grouping, sorting, filtering, detail, closing; and one real connection
through a live engine made by a real TLS client."""

from __future__ import annotations

import asyncio
import ssl

import pytest
import trustme

from sniui.engine.model import CloseReason
from sniui.ui.rows import build_rows, parse_filter
from sniui.ui.screens.dashboard import DashboardScreen
from sniui.ui.widgets.connections import ConnectionsTable
from sniui.ui.widgets.detail import DetailPanel
from tests.ui.conftest import screen_text, wait_for


def table_keys(app) -> list[str]:
    table = app.screen.query_one(ConnectionsTable)
    return [str(row.key.value) for row in table.ordered_rows]


def cell(app, key: str, column: str) -> str:
    return app.screen.query_one(ConnectionsTable).get_cell(key, column).plain


async def test_flat_table_shows_every_live_connection(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        snapshot = app.view.snapshot()
        assert isinstance(app.screen, DashboardScreen)
        assert sorted(table_keys(app)) == sorted(f"c:{c.id}" for c in snapshot.connections)
        newest = max(snapshot.connections, key=lambda c: c.started)
        assert table_keys(app)[0] == f"c:{newest.id}"  # default sort: age, newest first


async def test_group_by_cycles_and_groups_aggregate(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        snapshot = app.view.snapshot()
        await pilot.press("g")  # by SNI
        keys = table_keys(app)
        assert all(k.startswith("g:") for k in keys)
        assert set(keys) == {f"g:{c.sni or '(no SNI)'}" for c in snapshot.connections}
        shop = [c for c in snapshot.connections if c.sni == "shop.example.com"]
        assert cell(app, "g:shop.example.com", "state") == f"{len(shop)} conns"

        # enter on a group expands it to its connections, enter again collapses it
        table = app.screen.query_one(ConnectionsTable)
        table.move_cursor(row=table.get_row_index("g:shop.example.com"))
        await pilot.press("enter")
        keys = table_keys(app)
        start = keys.index("g:shop.example.com")
        assert set(keys[start + 1:start + 1 + len(shop)]) == {f"c:{c.id}" for c in shop}
        await pilot.press("enter")
        assert all(k.startswith("g:") for k in table_keys(app))

        await pilot.press("g")  # by upstream: the connected address
        assert "g:10.0.1.12:443" in table_keys(app)
        await pilot.press("g")  # by route
        assert set(table_keys(app)) == {f"g:{c.route or '(no route)'}" for c in snapshot.connections}
        # group rows carry the route's error count from the engine's per-route counters
        assert cell(app, "g:shop", "age") == f"{snapshot.per_route['shop'].error_total} err"
        await pilot.press("g")  # back to flat
        assert all(k.startswith("c:") for k in table_keys(app))


async def test_sort_by_column_and_reverse(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        snapshot = app.view.snapshot()
        screen = app.screen
        screen.sort_column = "down"
        screen._sort_changed()
        await pilot.pause()
        by_down = sorted(snapshot.connections, key=lambda c: c.bytes_down, reverse=True)
        assert table_keys(app)[0] == f"c:{by_down[0].id}"  # numbers: biggest first
        await pilot.press("S")
        by_id = {f"c:{c.id}": c for c in snapshot.connections}
        shown = [by_id[k].bytes_down for k in table_keys(app)]
        assert shown == sorted(shown)
        # `s` walks the columns
        await pilot.press("s")
        assert screen.sort_column == "rate"


async def test_sort_keeps_cursor_on_the_same_connection(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(ConnectionsTable)
        table.move_cursor(row=5)
        chosen = table.selected_key
        await pilot.press("s")  # sort by SNI: rows move, the cursor follows its row
        assert table.selected_key == chosen


async def test_filter_substring_glob_invert_and_clear(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        snapshot = app.view.snapshot()
        await pilot.press("slash", *"api.example")
        api = {f"c:{c.id}" for c in snapshot.connections if c.sni == "api.example.com"}
        assert set(table_keys(app)) == api
        await pilot.press("enter")  # keep the filter, back to the table
        assert app.focused is app.screen.query_one(ConnectionsTable)

        await pilot.press("slash", *["backspace"] * 20, *"*.k8s.*")
        k8s = {f"c:{c.id}" for c in snapshot.connections if (c.sni or "").endswith(".k8s.example.com")}
        assert set(table_keys(app)) == k8s

        await pilot.press(*["backspace"] * 20, *"!shop")
        assert set(table_keys(app)) == {f"c:{c.id}" for c in snapshot.connections
                                        if not parse_filter("shop").matches(c)}
        # the client address counts too
        await pilot.press(*["backspace"] * 20, *"2001:db8")
        assert set(table_keys(app)) == {f"c:{c.id}" for c in snapshot.connections if "2001:db8" in c.client}

        await pilot.press("escape")
        assert len(table_keys(app)) == len(snapshot.connections)
        assert app.screen.conn_filter is None


async def test_enter_opens_detail_with_routing_explanation(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("slash", *"k8s", "enter")
        await pilot.press("enter")
        screen = app.screen
        assert screen.detail_id is not None
        conn = next(c for c in app.view.snapshot().connections if c.id == screen.detail_id)
        panel = screen.query_one(DetailPanel)
        assert panel.has_class("-open")
        text = str(panel.query_one("#detail-body").render())
        rendered = screen_text(app)
        explanation = app.view.table.match(conn.sni, explain=True).explanation()
        assert explanation[0] in screen.explanation(conn)
        assert "captures: app=" in screen.explanation(conn)[1]
        assert conn.sni in rendered and "hello" in rendered and "routing" in rendered
        assert text  # rendered something
        await pilot.press("escape")
        assert screen.detail_id is None and not panel.has_class("-open")


async def test_close_connection_asks_then_closes(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(ConnectionsTable)
        victim = int(table.selected_key[2:])
        await pilot.press("k")
        from sniui.ui.widgets.confirm import ConfirmDialog

        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")  # cancel: nothing happens
        assert any(c.id == victim for c in app.view.snapshot().connections)
        await pilot.press("k", "y")
        await pilot.pause()
        snapshot = app.view.snapshot()
        assert all(c.id != victim for c in snapshot.connections)
        assert snapshot.recent[0].id == victim and snapshot.recent[0].close_reason is CloseReason.KILLED
        assert f"c:{victim}" not in table_keys(app)


async def test_read_only_hides_close(replay_app):
    app = replay_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        victim = int(app.screen.query_one(ConnectionsTable).selected_key[2:])
        await pilot.press("k")
        assert isinstance(app.screen, DashboardScreen)  # no dialog
        assert any(c.id == victim for c in app.view.snapshot().connections)
        assert app.screen.check_action("close_connection", ()) is False  # hidden, not merely disabled
        assert "Close" not in screen_text(app).splitlines()[-1]           # so the footer does not offer it


async def test_recent_and_servers_tabs(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("r")
        rendered = screen_text(app)
        assert "connect failed" in rendered and "rejected: no route" in rendered
        await pilot.press("e")  # errors only
        rendered = screen_text(app)
        assert "connect failed" in rendered and "client closed" not in rendered
        await pilot.press("e")
        assert "client closed" in screen_text(app)
        await pilot.press("u")
        rendered = screen_text(app)
        assert "DOWN" in rendered and "10.0.1.13:443" in rendered
        await pilot.press("c")
        assert table_keys(app)


async def test_narrow_terminal_detail_replaces_table(replay_app):
    app = replay_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert app.screen.has_class("-narrow")
        await pilot.press("enter")
        assert not app.screen.query_one("#tabs").display or app.screen.query_one("#tabs").region.width == 0


def test_ten_thousand_connections_are_capped(replay_app):
    """The model hands the table at most its row limit, and says how many it left out."""
    from sniui.ui.replay_data import NOW, make_connections

    conns = make_connections(10_000)
    rows = build_rows(conns, now=NOW, rates={}, limit=500)
    assert len(rows.rows) == 500 and rows.truncated == 9_500 and rows.live == 10_000
    grouped = build_rows(conns, now=NOW, rates={}, group_by="route", limit=500)
    assert grouped.groups == len(grouped.rows) == len({c.route for c in conns})  # 5 routes + "(no route)"


async def test_ten_thousand_connections_refresh(replay_app):
    app = replay_app(10_000)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert screen.last_rows.live == 10_000 and len(table_keys(app)) == 500
        assert "9500 more" in screen_text(app)
        await pilot.press("g")
        names = {c.sni for c in app.view.snapshot().connections}  # None: still reading the hello
        assert len(table_keys(app)) == len(names)
        # a second refresh of the same snapshot changes nothing and keeps the rows
        screen.show_snapshot(app.view.snapshot())
        assert len(table_keys(app)) == len(names)


# -- a live engine, a real TLS client ------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _tls_upstream(ca: trustme.CA):
    cert = ca.issue_cert("shop.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(4096):
                writer.write(data)  # echo
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)


async def test_live_engine_real_client_row_appears_and_closes(ca):
    from sniui.config import load_text
    from sniui.engine.engine import Engine
    from sniui.ui.app import create_app
    from sniui.ui.view import LiveEngineView

    upstream = await _tls_upstream(ca)
    upstream_port = upstream.sockets[0].getsockname()[1]
    config = load_text(
        f"listen: [{{address: '127.0.0.1:0'}}]\n"
        f"routes:\n  - {{name: shop, sni: shop.test, upstream: '127.0.0.1:{upstream_port}'}}\n").config
    engine = Engine(config)
    await engine.start()
    writer = None
    try:
        host, port = engine.bound_addresses[0][:2]
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)
        app = create_app(LiveEngineView(engine), refresh_interval=0.05)
        async with app.run_test(size=(120, 40)) as pilot:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                host, port, ssl=client_context, server_hostname="shop.test"), 10)
            writer.write(b"hello through sniui\n")
            assert await asyncio.wait_for(reader.readline(), 10) == b"hello through sniui\n"

            def shop_row():
                for key in table_keys(app):
                    if key.startswith("c:") and cell(app, key, "sni") == "shop.test":
                        return key
                return None

            # the row may first appear while connecting; it must reach established
            await wait_for(pilot, lambda: shop_row() and cell(app, shop_row(), "state") == "established",
                           what="the client's row, established")
            key = shop_row()
            assert cell(app, key, "upstream") == f"127.0.0.1:{upstream_port}"
            table = app.screen.query_one(ConnectionsTable)
            table.move_cursor(row=table.get_row_index(key))
            await pilot.press("k", "y")
            # the client sees the connection end, and the row leaves the table
            assert await asyncio.wait_for(reader.read(), 10) == b""
            await wait_for(pilot, lambda: key not in table_keys(app), what="the row to go")
            closed = next(c for c in engine.snapshot().recent if f"c:{c.id}" == key)
            assert closed.close_reason is CloseReason.KILLED
    finally:
        if writer is not None:
            writer.close()
        await engine.stop()
        upstream.close()
        await upstream.wait_closed()


async def test_command_palette_offers_the_screen_actions(replay_app):
    from sniui.ui.app import screen_commands

    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert {"Go to Dashboard", "Go to Routes", "Go to Certificates", "Go to Logs"} <= set(titles)
        assert any(t.startswith("Group (g)") for t in titles)
        assert any(t.startswith("Close (k)") for t in titles)
        # running a palette command runs the same action as its key
        command = next(c for c in screen_commands(app.screen) if c.title.startswith("Group"))
        command.callback()
        await pilot.pause()
        assert app.screen.group_by == "sni"

    app = replay_app(read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert not any(t.startswith("Close (k)") for t in titles)


async def test_clicking_a_header_sorts_by_it(replay_app):
    from sniui.ui.rows import COLUMNS

    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(ConnectionsTable)
        x = 0
        for key, _, width in COLUMNS:
            if key == "down":
                break
            x += width + 2 * table.cell_padding
        await pilot.click(ConnectionsTable, offset=(x + 2, 0))
        assert app.screen.sort_column == "down"
        await pilot.click(ConnectionsTable, offset=(x + 2, 0))  # again: reversed
        assert app.screen.sort_reverse


async def test_unapplied_marker_shows_in_the_header(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "unapplied" not in screen_text(app).splitlines()[0]
        app.unapplied = True  # what the routes and certificates screens set while edits are staged
        await pilot.pause()
        assert "● unapplied changes" in screen_text(app).splitlines()[0]


def test_rates_from_successive_snapshots():
    import dataclasses
    import math

    from sniui.ui.rates import RateTracker
    from sniui.ui.replay_data import NOW, make_snapshot

    snapshot = make_snapshot(5)
    conn = next(c for c in snapshot.connections if c.bytes_up)
    tracker = RateTracker(smoothing=3.0)
    first = tracker.update(snapshot, NOW)[conn.id]
    assert first == (conn.bytes_up + conn.bytes_down) / (NOW - conn.started)  # lifetime average at first sight
    assert tracker.update(snapshot, NOW)[conn.id] == first                    # same snapshot: unchanged
    moved = dataclasses.replace(conn, bytes_down=conn.bytes_down + 3000)
    later = dataclasses.replace(snapshot, taken_at=NOW + 1, connections=(moved,))
    weight = 1 - math.exp(-1 / 3.0)
    assert tracker.update(later, NOW + 1)[conn.id] == pytest.approx(weight * 3000 + (1 - weight) * first)


async def test_close_a_whole_group(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("g", "g", "g")  # by route
        table = app.screen.query_one(ConnectionsTable)
        table.move_cursor(row=table.get_row_index("g:org"))
        org = {c.id for c in app.view.snapshot().connections if c.route == "org"}
        assert org
        await pilot.press("k", "y")
        await pilot.pause()
        snapshot = app.view.snapshot()
        assert not any(c.id in org for c in snapshot.connections)
        assert {c.id for c in snapshot.recent if c.close_reason is CloseReason.KILLED} == org
        assert "g:org" not in table_keys(app)


async def test_quit_asks_first_when_changes_are_unapplied(replay_app):
    from sniui.ui.widgets.confirm import ConfirmDialog

    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.unapplied = True
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("n")
        assert isinstance(app.screen, DashboardScreen) and app.is_running
        await pilot.press("q", "y")
        await pilot.pause()
        assert app.return_code == 0 and not app.is_running
