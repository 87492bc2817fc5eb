"""Logs screen: the event stream from the view, filtered by level, route and SNI, and pausable."""

from __future__ import annotations

from textual.widgets import RichLog

from sniui.engine.model import Event
from sniui.ui.replay_data import NOW
from sniui.ui.screens.logs import LogsScreen, parse_event_filter
from tests.ui.conftest import wait_for


def log_lines(app) -> list[str]:
    """One string per event shown (lines wrapped in the log are joined back: each event starts with a time)."""
    out: list[str] = []
    for strip in app.screen.query_one(RichLog).lines:
        text = strip.text.rstrip()
        if len(text) > 8 and text[2] == ":" and text[5] == ":" and text[:2].isdigit():
            out.append(text)
        elif out:
            out[-1] += " " + text.strip()
    return out


async def open_logs(app, pilot) -> LogsScreen:
    await pilot.press("4")
    await wait_for(pilot, lambda: isinstance(app.screen, LogsScreen) and app.events_seen > 0, what="logs")
    app.screen.show_snapshot(None)
    await pilot.pause()
    return app.screen


async def test_events_arrive_and_level_filter(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_logs(app, pilot)
        lines = log_lines(app)
        events = list(app.events)
        assert len(lines) == sum(1 for e in events if e.level != "debug")
        assert any("config_refused" in line for line in lines)
        await pilot.press("l")  # info → warning
        assert screen.min_level == "warning"
        lines = log_lines(app)
        assert lines and all(("WARNING" in line or "ERROR" in line) for line in lines)
        await pilot.press("l")  # → error
        assert all("ERROR" in line for line in log_lines(app))


async def test_filter_by_route_sni_words_and_invert(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await open_logs(app, pilot)
        events = [e for e in app.events if e.level != "debug"]
        await pilot.press("slash", *"route:api")
        assert len(log_lines(app)) == sum(1 for e in events if e.route == "api")
        await pilot.press(*["backspace"] * 9, *"sni:*.k8s.example.com")
        k8s = [e for e in events if (e.sni or "").endswith(".k8s.example.com")]
        assert k8s and len(log_lines(app)) == len(k8s)
        await pilot.press(*["backspace"] * 30, *"!connection")
        assert all("connection_" not in line for line in log_lines(app))
        await pilot.press("escape")
        assert len(log_lines(app)) == len(events)


def test_filter_parser():
    flt, level = parse_event_filter("route:shop sni:*.example.com level:warning refused")
    assert level == "warning" and flt is not None
    event = Event(NOW, "config_refused", "error", "refused thing", route="shop", sni="a.example.com")
    assert flt.matches(event)
    assert not flt.matches(Event(NOW, "config_refused", "error", "refused", route="api", sni="a.example.com"))
    assert parse_event_filter("") == (None, None)


async def test_pause_holds_new_events_until_resumed(replay_app):
    app = replay_app()
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_logs(app, pilot)
        before = len(log_lines(app))
        await pilot.press("p")
        assert not screen.following
        # an event arrives while paused: kept, not shown
        app.events.append(Event(NOW + 1, "server_down", "warning", "web 10.0.1.11:443 marked down"))
        app.events_seen += 1
        screen.show_snapshot(None)
        assert len(log_lines(app)) == before
        await pilot.press("p")
        await pilot.pause()
        assert len(log_lines(app)) == before + 1
        assert "marked down" in log_lines(app)[-1]
