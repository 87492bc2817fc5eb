"""SVG snapshots of the Routes and Certificates screens at 120×40, from fixed data only.

The routes use the replay dataset; the certificates use material generated
deterministically against the replay clock, and the view shows a fixed config
path, so nothing depends on ports, temp folders or today's date.
Update with `pytest tests/ui/test_snapshots_routes.py --snapshot-update` after checking the change by eye.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from cert_material import CERT_CONFIG, write_material
from conftest_routes import NOW, settle, view_for
from sniui.config import load_file
from sniui.ui.app import create_app
from sniui.ui.replay_data import replay_view

SIZE = (120, 40)


def routes_app(**kwargs):
    return create_app(replay_view(**kwargs), refresh_interval=None, follow_events=False)


def test_routes_120x40(snap_compare):
    assert snap_compare(routes_app(), terminal_size=SIZE, press=["2"])


def test_routes_read_only(snap_compare):
    assert snap_compare(routes_app(read_only=True), terminal_size=SIZE, press=["2"])


def test_routes_light_theme(snap_compare):
    # Tones come from the theme, so the light theme must read as well as the dark one.
    app = routes_app()

    async def stage(pilot):
        await pilot.press("T", "2")
        app.screen.session.add_route({"name": "net", "sni": [".example.net"], "upstream": "10.0.9.9:443"})
        app.screen.sync_staged()
        await pilot.press("t", *"shop.example.com")

    assert snap_compare(app, terminal_size=SIZE, run_before=stage)


def test_routes_match_panel(snap_compare):
    # The web group's servers are IP literals, so the resolve line needs no DNS and never changes.
    assert snap_compare(routes_app(), terminal_size=SIZE, press=["2", "t", *"shop.example.com"])


def test_routes_with_staged_changes(snap_compare):
    app = routes_app()

    async def stage(pilot):
        await pilot.press("2")
        screen = app.screen
        screen.session.add_route({"name": "net", "sni": [".example.net"], "upstream": "10.0.9.9:443"})
        screen.session.add_route({"name": "legacy", "sni": ["~^legacy-"], "upstream": "10.0.9.10:443"})
        screen.sync_staged()
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=stage)


def test_route_editor_with_field_errors(snap_compare):
    app = routes_app()

    async def edit(pilot):
        await pilot.press("2", "a")
        form = app.screen
        form.query_one("#field-sni").value = r"~^(?<app>.+)-(?<ns>.+)\.k9s$"
        form.query_one("#field-upstream").value = "$app.$nss:443"
        form.query_one("#field-allow_clients").value = "10.0.0.0/33"
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=edit)


def test_apply_diff_dialog(snap_compare):
    app = routes_app()

    async def apply(pilot):
        await pilot.press("2")
        screen = app.screen
        screen.session.add_route({"name": "net", "sni": [".example.net"], "upstream": "10.0.9.9:443"})
        shop = screen.session.route(0)
        shop["upstream"] = "10.0.1.11:443"
        screen.session.replace_route(0, shop)
        screen.sync_staged()
        await pilot.press("A")

    assert snap_compare(app, terminal_size=SIZE, run_before=apply)


@pytest.fixture
def cert_app(tmp_path: Path):
    def make(read_only: bool = False):
        write_material(tmp_path, datetime.fromtimestamp(NOW, timezone.utc))
        (tmp_path / "sniui.yaml").write_text(CERT_CONFIG)
        config = load_file(tmp_path / "sniui.yaml").config
        # Shown in the status line only: a fixed path keeps the temp folder out of the SVG.
        view = view_for(config, path=Path("/etc/sniui/sniui.yaml"), read_only=read_only)
        return create_app(view, refresh_interval=None, follow_events=False)

    return make


def test_certificates_120x40(snap_compare, cert_app):
    assert snap_compare(cert_app(), terminal_size=SIZE, press=["3", "down"])


def test_certificates_add_entry_form(snap_compare, cert_app):
    app = cert_app()

    async def add(pilot):
        await pilot.press("3", "a")
        form = app.screen
        form.query_one("#cert-field-name").value = "beta"
        form.query_one("#cert-field-cert").value = "certs/soon.pem"
        form.query_one("#cert-field-key").value = "certs/good.key"
        await settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=add)
