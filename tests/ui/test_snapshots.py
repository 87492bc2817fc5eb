"""SVG snapshots of the dashboard and logs, fed by replay data only (fixed data, fixed clock).

Update with `pytest tests/ui/test_snapshots.py --snapshot-update` after checking the change by eye.
"""

from __future__ import annotations

from sniui.ui.app import create_app
from sniui.ui.replay_data import replay_view
from sniui.ui.screens.logs import LogsScreen
from tests.ui.conftest import wait_for


def app_for(**kwargs):
    return create_app(replay_view(**kwargs), refresh_interval=None)


def test_dashboard_120x40(snap_compare):
    assert snap_compare(app_for(), terminal_size=(120, 40))


def test_dashboard_80x24(snap_compare):
    assert snap_compare(app_for(), terminal_size=(80, 24))


def test_dashboard_grouped_by_route_with_one_group_open(snap_compare):
    assert snap_compare(app_for(), terminal_size=(120, 40), press=["g", "g", "g", "enter"])


def test_dashboard_detail_panel(snap_compare):
    assert snap_compare(app_for(), terminal_size=(120, 40), press=["slash", *"k8s", "enter", "enter"])


def test_dashboard_detail_panel_of_a_terminating_connection(snap_compare):
    # The api route terminates TLS: the panel adds what the handshake negotiated.
    assert snap_compare(app_for(), terminal_size=(120, 40), press=["slash", *"api.example", "enter", "enter"])


def test_dashboard_detail_80x24(snap_compare):
    assert snap_compare(app_for(), terminal_size=(80, 24), press=["enter"])


def test_dashboard_servers_tab(snap_compare):
    assert snap_compare(app_for(), terminal_size=(120, 40), press=["u"])


def test_dashboard_light_theme(snap_compare):
    assert snap_compare(app_for(), terminal_size=(120, 40), press=["T"])


def test_dashboard_read_only(snap_compare):
    assert snap_compare(app_for(read_only=True), terminal_size=(120, 40))


def test_logs_120x40(snap_compare):
    app = app_for()

    async def show_logs(pilot):
        await pilot.press("4")
        await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen) and app.events_seen > 0, what="events")
        app.screen.show_snapshot(None)
        await pilot.pause()

    assert snap_compare(app, terminal_size=(120, 40), run_before=show_logs)


def test_help_120x40(snap_compare):
    assert snap_compare(app_for(), terminal_size=(120, 40), press=["question_mark"])
