"""The Certificates screen driven with Pilot, over material generated at test time."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest
import trustme
from textual.widgets import DataTable, Input, Select, Static

from cert_material import CERT_CONFIG, write_material
from conftest_routes import NOW, ScreenHarness, plain, settle, view_for
from sniui.config import load_file
from sniui.ui.screens.certificates import CertificatesScreen
from sniui.ui.widgets.certificate_form import CertificateForm, MapCertificateForm
from sniui.ui.widgets.diff_dialog import DiffDialog


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    write_material(tmp_path, datetime.fromtimestamp(NOW, timezone.utc))
    path = tmp_path / "sniui.yaml"
    path.write_text(CERT_CONFIG)
    return path


def harness(config_path: Path, *, read_only: bool = False) -> ScreenHarness:
    view = view_for(load_file(config_path).config, path=config_path, read_only=read_only)
    return ScreenHarness(view, lambda v: CertificatesScreen(v))


def _rows(screen) -> dict[str, list[str]]:
    table = screen.query_one("#certs-table", DataTable)
    keys = [column.key.value for column in table.columns.values()]
    return {str(row[0]): dict(zip(keys, map(str, row))) for row in (table.get_row_at(i) for i in range(table.row_count))}


async def test_expired_certificate_and_key_mismatch_are_errors(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        rows = _rows(screen)
        assert rows["expired"]["days"] == "-3" and rows["expired"]["findings"] == "✗ 1"
        assert rows["mismatch"]["key_ok"] == "✗" and rows["mismatch"]["findings"] == "✗ 1"
        assert rows["good"]["findings"] == "✓" and rows["good"]["routes"] == "api" and rows["good"]["days"] == "200"
        assert rows["soon"]["findings"] == "! 1" and rows["soon"]["routes"] == "-"
        errors = {f.certificate: f.message for f in screen.report.findings if f.severity == "error"}
        assert "expired on" in errors["expired"]
        assert "does not match the leaf certificate" in errors["mismatch"]
        findings = plain(screen.query_one("#findings", Static))
        assert "2 error(s), 1 warning(s)" in screen.query_one("#findings-box").border_title
        assert "fix: renew it" in findings
        assert "key file certs/mismatch.key does not match" in findings, "files named relative to the config"


async def test_detail_follows_the_cursor(config_path: Path) -> None:
    from tests.ui.conftest import screen_text

    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert "subject   CN=api.example.com" in screen_text(app)
        await pilot.press("down", "down")
        await pilot.pause()
        text = screen_text(app)
        assert "DOES NOT MATCH" in text and "routes    shop" in text


async def test_add_a_certificate_entry_with_immediate_validation(config_path: Path, tmp_path: Path) -> None:
    # Fresh material from trustme, as a user's CA would issue it.
    ca = trustme.CA()
    leaf = ca.issue_cert("beta.example.com")
    leaf.cert_chain_pems[0].write_to_path(str(tmp_path / "beta.pem"))
    leaf.private_key_pem.write_to_path(str(tmp_path / "beta.key"))
    other = ca.issue_cert("other.example.com")
    other.private_key_pem.write_to_path(str(tmp_path / "other.key"))

    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, CertificateForm)
        form.query_one("#cert-field-name", Input).value = "good"
        await settle(pilot)
        assert "already exists" in str(form.query_one("#cert-error-name", Static).render())
        form.query_one("#cert-field-name", Input).value = "beta"
        form.query_one("#cert-field-cert", Input).value = "beta.pem"
        form.query_one("#cert-field-key", Input).value = "missing.key"
        await settle(pilot)
        assert "missing.key" in str(form.query_one("#cert-error-key", Static).render())
        assert form.query_one("#cert-field-key").has_class("-invalid")
        form.query_one("#cert-field-key", Input).value = "other.key"
        await settle(pilot)
        assert "does not match" in str(form.query_one("#cert-error-key", Static).render())
        form.query_one("#cert-field-key", Input).value = "beta.key"
        await settle(pilot)
        # trustme writes keys 0644: a warning at the field, not an error, and the entry can be staged.
        assert str(form.query_one("#cert-error-key", Static).render()).startswith("warning: key file beta.key is open")
        assert not form.query_one("#cert-field-key").has_class("-invalid")
        assert "beta.example.com" in str(form.query_one("#cert-form-info", Static).render())
        assert form.last_info is not None and form.last_info.key_matches
        await pilot.press("ctrl+s")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, CertificatesScreen)
        assert screen.session.certificates["beta"] == {"cert": "beta.pem", "key": "beta.key"}
        assert _rows(screen)["beta"]["key_ok"] == "✓"
        assert app.unapplied is True


async def test_map_a_certificate_to_a_route_then_apply(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.query_one("#certs-table", DataTable).move_cursor(row=3)     # soon
        await pilot.press("m")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, MapCertificateForm)
        form.query_one("#map-route", Select).value = 3                   # beta
        assert form.query_one("#map-certificate", Select).value == "soon"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.session.route(3)["mode"] == "terminate" and screen.session.route(3)["certificate"] == "soon"
        assert _rows(screen)["soon"]["routes"] == "beta"
        await pilot.press("A")
        await pilot.pause()
        assert isinstance(app.screen, DiffDialog)
        assert "~ routes[3] beta: certificate: (unset) → soon; mode: (unset) → terminate" in \
            str(app.screen.query_one("#diff-body", Static).render())
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.view.running_config.routes[3].certificate == "soon"
        assert not screen.session.unapplied


async def test_mapping_a_certificate_that_does_not_cover_the_route_is_an_error(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.session.map_certificate(0, "soon")     # api.example.com served with beta.example.com's certificate
        screen.sync_staged()
        await pilot.pause()
        coverage = [f for f in screen.report.findings if f.route == "api"]
        assert coverage and coverage[0].severity == "error" and "api.example.com" in coverage[0].message
        assert "route api" in plain(screen.query_one("#findings", Static))
        assert _rows(screen)["soon"]["routes"] == "api"


async def test_both_screens_edit_one_staged_config(config_path: Path) -> None:
    from sniui.ui.app import create_app
    from sniui.ui.screens.routes import RoutesScreen

    app = create_app(view_for(load_file(config_path).config, path=config_path), refresh_interval=None,
                     follow_events=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        await pilot.pause()
        certificates = app.screen
        certificates.session.map_certificate(3, "soon")
        certificates.sync_staged()
        await pilot.press("2")
        await pilot.pause()
        routes = app.screen
        assert isinstance(routes, RoutesScreen) and routes.session is certificates.session
        row = next(r for r in routes.rows if r.label == "beta")
        table = routes.query_one("#routes-table", DataTable)
        cells = [str(c) for c in table.get_row(row.key)]
        assert cells[0] == "~" and cells[6] == "terminate"
        assert app.unapplied is True


async def test_apply_refuses_new_certificate_errors(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.session.set_certificate("bad", {"cert": "certs/good.pem", "key": "certs/soon.key"})
        screen.sync_staged()
        await pilot.press("A")
        await pilot.pause()
        assert isinstance(app.screen, CertificatesScreen), "no diff dialog: the new entry's key does not match"
        assert "bad" not in app.view.running_config.certificates


async def test_remove_warns_when_routes_use_it(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("d")          # good, used by api
        await pilot.pause()
        assert "Routes api still use it" in str(app.screen.query_one("#confirm-body", Static).render())
        await pilot.press("y")
        await pilot.pause()
        assert "good" not in screen.session.certificates
        assert not screen.session.validate().ok
        assert "-error" in screen.query_one("#staged-status").classes
        findings = plain(screen.query_one("#findings", Static))
        assert "unknown certificate 'good'" in findings


async def test_read_only_hides_every_change(config_path: Path) -> None:
    app = harness(config_path, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        offered = {active.binding.action for active in screen.active_bindings.values() if active.enabled}
        assert not offered & {"add_certificate", "edit_certificate", "remove_certificate", "map_certificate",
                              "apply", "save", "revert"}
        await pilot.press("a")
        await pilot.pause()
        assert app.screen is screen


def test_every_binding_names_a_real_action() -> None:
    for cls in (CertificatesScreen, CertificateForm, MapCertificateForm):
        for binding in cls.BINDINGS:
            name = binding.action.split("(")[0]
            assert callable(getattr(cls, f"action_{name}", None)), f"{cls.__name__}: {binding.key} → {binding.action}"
            assert binding.id and binding.tooltip


def test_material_is_the_same_on_every_run(tmp_path: Path) -> None:
    now = datetime.fromtimestamp(NOW, timezone.utc)
    write_material(tmp_path / "a", now)
    write_material(tmp_path / "b", now)
    for name in ("good.pem", "mismatch.key", "expired.pem"):
        assert (tmp_path / "a/certs" / name).read_bytes() == (tmp_path / "b/certs" / name).read_bytes()
