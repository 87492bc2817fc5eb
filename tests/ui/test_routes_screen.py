"""The Routes screen driven with Pilot: editor, field errors, test-match panel, apply, save."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import yaml
from textual.widgets import Button, DataTable, Input, Select, Static

from conftest_routes import ScreenHarness, plain, quiet_snapshot as app_snapshot, settle, view_for
from sniui.config import ConfigError, load_file, load_text
from sniui.engine.model import Counters
from sniui.ui.screens.routes import RoutesScreen
from sniui.ui.widgets.diff_dialog import DiffDialog
from sniui.ui.widgets.match_panel import MatchPanel
from sniui.ui.widgets.route_form import RouteForm

CONFIG = r"""
upstreams:
  web:
    servers: ["127.0.0.1:9001", "127.0.0.1:9002"]
routes:
  - name: shop
    sni: [shop.example.com, www.shop.example.com]
    upstream: web
  - name: apps
    sni: "*.apps.example.com"
    upstream: "127.0.0.1:9100"
  - name: k8s
    sni: '~^(?<app>[a-z0-9]+)-(?<ns>[a-z0-9]+)-(?<port>\d+)\.k8s\.example\.com$'
    upstream: "$app-public.$ns.svc.cluster.local:$port"
tests:
  - {sni: shop.example.com, expect: web}
  - {sni: grafana.apps.example.com, expect: "127.0.0.1:9100"}
  - {sni: unknown.example.net, expect: reject}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "sniui.yaml"
    path.write_text(CONFIG)
    return path


def harness(config_path: Path, *, read_only: bool = False) -> ScreenHarness:
    view = view_for(load_file(config_path).config, path=config_path, read_only=read_only,
                    per_route={"shop": Counters(accepted=42, active=3)})
    return ScreenHarness(view, lambda v: RoutesScreen(v))


async def _type(pilot, selector: str, text: str) -> None:
    """Type into a field key by key, as a user would (validation runs on every key)."""
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    field.value = ""
    await pilot.press(*list(text))
    await settle(pilot)


async def _fill(pilot, selector: str, text: str) -> None:
    """Set a field's text at once (Pilot types about 20 keys a second); the same Changed event follows."""
    field = pilot.app.screen.query_one(selector, Input)
    field.focus()
    field.value = text
    await settle(pilot)


def _error(app, field: str) -> str:
    return str(app.screen.query_one(f"#error-{field}", Static).render())


def _table_cells(app, table_id: str = "#routes-table") -> list[list[str]]:
    screen = app.screen if not isinstance(app.screen, (RouteForm, DiffDialog)) else app.screen_stack[-2]
    table = screen.query_one(table_id, DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_routes_listed_in_precedence_order_with_counts(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        rows = _table_cells(app)
        assert [(r[2], r[3]) for r in rows] == [
            ("exact", "shop.example.com"), ("exact", "www.shop.example.com"), ("wildcard", "*.apps.example.com"),
            ("regex", r"~^(?<app>[a-z0-9]+)-(?<ns>[…"), ("default", "(anything else)"),
        ]
        assert rows[0][7:] == ["42", "3"], "hits and active come from the engine snapshot"
        assert rows[1][7:] == ["", ""], "a route's counts are shown once"


async def test_add_a_wildcard_route_in_the_editor(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, RouteForm)
        await _type(pilot, "#field-sni", "*.example.net")
        await _type(pilot, "#field-upstream", "127.0.0.1:9200")
        assert app.screen.last_check.ok
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, RoutesScreen)
        screen = app.screen
        assert screen.session.routes[-1] == {"sni": ["*.example.net"], "upstream": "127.0.0.1:9200"}
        rows = _table_cells(app)
        assert ["+", "3", "wildcard", "*.example.net"] == rows[3][:4], "a longer wildcard sorts first; marked as added"
        assert app.unapplied is True
        assert "unapplied" in str(screen.query_one("#staged-status", Static).render())
        assert len(app.view.running_config.routes) == 3, "nothing reaches the engine before apply"


async def test_add_a_regex_route_and_test_a_name_against_it(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        await _fill(pilot, "#field-name", "k9s")
        await _fill(pilot, "#field-sni", r"~^(?<app>[a-z]+)\.(?<ns>[a-z]+)\.k9s\.example\.com$")
        await _fill(pilot, "#field-upstream", "$app.$ns.svc.cluster.local:443")
        await pilot.press("enter")   # enter in a field stages the route too
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RoutesScreen)
        assert screen.session.routes[-1]["name"] == "k9s"
        await pilot.press("t")
        await _fill(pilot, "#match-name", "shop.prod.k9s.example.com")
        panel = screen.query_one(MatchPanel)
        assert panel.decision is not None
        assert panel.decision.route == "k9s"
        assert panel.decision.upstream == "shop.prod.svc.cluster.local:443"
        assert dict(panel.decision.captures) == {"app": "shop", "ns": "prod"}


async def test_field_errors_for_a_bad_regex_and_a_missing_capture(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("a")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, RouteForm)

        await _type(pilot, "#field-sni", "~^(?<app>.+")
        await _fill(pilot, "#field-upstream", "127.0.0.1:1")
        assert "does not compile" in _error(app, "sni")
        assert form.query_one("#field-sni").has_class("-invalid")
        assert form.query_one("#form-ok", Button).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.screen is form, "an invalid route never leaves the editor"

        await _fill(pilot, "#field-sni", r"~^(?<app>.+)-(?<ns>.+)\.k9s$")
        assert _error(app, "sni") == ""
        await _fill(pilot, "#field-upstream", "$app.$nss:443")
        message = _error(app, "upstream")
        assert "$nss is not a capture" in message and "did you mean 'ns'?" in message
        assert not form.query_one("#field-sni").has_class("-invalid")

        # The editor's message is the one `sniui check` prints for the same file.
        data = yaml.safe_load(CONFIG)
        data["routes"].append({"sni": r"~^(?<app>.+)-(?<ns>.+)\.k9s$", "upstream": "$app.$nss:443"})
        with pytest.raises(ConfigError) as caught:
            load_text(yaml.safe_dump(data))
        assert [i.message for i in caught.value.errors] == [message]

        await _fill(pilot, "#field-upstream", "wbe")
        assert _error(app, "upstream") == "unknown upstream group 'wbe' (did you mean 'web'?)"

        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RoutesScreen)
        assert not app.screen.session.unapplied


async def test_match_panel_decisions_and_explanations(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.press("t")
        await pilot.pause()
        assert app.focused is app.screen.query_one("#match-name")
        panel = app.screen.query_one(MatchPanel)
        result = app.screen.query_one("#match-result", Static)

        await _type(pilot, "#match-name", "shop.example.com")
        assert panel.decision.route == "shop" and panel.decision.upstream == "web"
        text = plain(result)
        assert "wins: exact names are consulted first" in text
        assert panel.resolve_state == "ok"   # the web group's servers are IP literals

        await _fill(pilot, "#match-name", "grafana.apps.example.com")
        assert panel.decision.route == "apps" and panel.decision.kind == "wildcard"
        assert "does not match" in plain(result)

        await _fill(pilot, "#match-name", "shop-staging-8443.k8s.example.com")
        assert panel.decision.upstream == "shop-public.staging.svc.cluster.local:8443"
        text = plain(result)
        assert "captures: app='shop', ns='staging', port='8443'" in text
        assert r"(?<port>\d+)\.k8s\.example\.com$" in text, "the whole regex, not clipped"
        assert panel.resolve_state in ("resolving", "ok", "fail")  # a real lookup, in a worker

        await _fill(pilot, "#match-name", "evil-x-99999.k8s.example.com")
        assert panel.decision.action == "reject"
        assert "rendered upstream is invalid" in plain(result)

        await _fill(pilot, "#match-name", "unknown.example.net")
        assert panel.decision.action == "reject" and panel.decision.route == "default"
        assert "no route matched" in plain(result)

        await pilot.press("escape")     # back to the routes table, so screen keys work again
        assert app.focused is app.screen.query_one("#routes-table")
        assert panel.name_input.value == "unknown.example.net"


async def test_match_panel_resolves_the_rendered_upstream_in_a_worker(config_path: Path) -> None:
    from tests.ui.conftest import wait_for

    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.session.add_route({"sni": ["local.example.org"], "upstream": "localhost:443"})
        screen.session.add_route({"sni": ["gone.example.org"], "upstream": "no-such-host.invalid:443"})
        screen.sync_staged()
        panel = screen.query_one(MatchPanel)
        resolve = screen.query_one("#match-resolve", Static)

        await _fill(pilot, "#match-name", "local.example.org")
        assert panel.resolve_state in ("resolving", "ok")   # shown at once; the answer comes from the worker
        await wait_for(pilot, lambda: panel.resolve_state != "resolving", what="localhost to resolve")
        assert panel.resolve_state == "ok" and "localhost →" in str(resolve.render())

        await _fill(pilot, "#match-name", "gone.example.org")
        await wait_for(pilot, lambda: panel.resolve_state != "resolving", what="the lookup to fail")
        assert panel.resolve_state == "fail" and "FAILED" in str(resolve.render())
        assert resolve.has_class("-fail")


async def test_pin_a_tested_name_as_a_test_then_remove_it(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        await pilot.press("t")
        await _fill(pilot, "#match-name", "grafana.apps.example.com")
        await pilot.press("ctrl+t")
        await pilot.pause()
        assert screen.session.data["tests"][-1] == {"sni": "grafana.apps.example.com", "expect": "127.0.0.1:9100"}
        rows = _table_cells(app, "#tests-table")
        assert rows[-1][:4] == ["✓", "grafana.apps.example.com", "127.0.0.1:9100", "127.0.0.1:9100"]
        tests = screen.query_one("#tests-table", DataTable)
        tests.focus()
        tests.move_cursor(row=3)
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert len(screen.session.data["tests"]) == 3 and not screen.session.unapplied


async def test_tests_panel_shows_pass_fail_against_the_staged_table(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert [r[0] for r in _table_cells(app, "#tests-table")] == ["✓", "✓", "✓"]
        # A catch-all for example.net breaks the `reject` expectation, before anything is applied.
        screen.session.add_route({"sni": [".example.net"], "upstream": "127.0.0.1:9300"})
        screen.sync_staged()
        await pilot.pause()
        rows = _table_cells(app, "#tests-table")
        assert rows[2][0] == "✗" and rows[2][3] == "127.0.0.1:9300" and rows[2][5] == "now fails"
        assert "2/3 pass" in screen.query_one("#tests-table").border_title


async def test_apply_shows_the_diff_then_swaps_the_views_config(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.session.add_route({"sni": [".example.net"], "upstream": "127.0.0.1:9300"})
        screen.sync_staged()
        await pilot.press("A")
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, DiffDialog)
        body = str(dialog.query_one("#diff-body", Static).render())
        assert "+ routes[3] .example.net: .example.net → 127.0.0.1:9300" in body
        assert "unknown.example.net: reject via default → 127.0.0.1:9300 via .example.net" in body
        assert "now FAILS" in body
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.screen is screen
        assert app.view.table.match("unknown.example.net").upstream == "127.0.0.1:9300"
        assert not screen.session.unapplied and app.unapplied is False
        assert "staged = running" in str(screen.query_one("#staged-status", Static).render()) or \
            "not saved" in str(screen.query_one("#staged-status", Static).render())


async def test_a_refused_apply_keeps_the_staged_edits_and_says_why(config_path: Path) -> None:
    from sniui.engine.engine import EngineError
    from sniui.ui.view import ReplayEngineView

    class RefusingView(ReplayEngineView):
        async def apply(self, config):
            raise EngineError("cannot listen on 127.0.0.1:1: permission denied")

    view = RefusingView(load_file(config_path).config, [app_snapshot()], config_path=config_path)
    app = ScreenHarness(view, lambda v: RoutesScreen(v))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.session.add_route({"sni": ["x.example.net"], "upstream": "127.0.0.1:9300"})
        screen.sync_staged()
        await pilot.press("A", "y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(view.running_config.routes) == 3
        assert screen.session.unapplied and app.unapplied is True
        assert any("permission denied" in str(n.message) for n in app._notifications)


async def test_stage_and_apply_with_the_mouse(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await pilot.click("#routes-table", offset=(20, 4))     # a row: the cursor follows the mouse
        await pilot.pause()
        assert app.screen.selected_route == 1
        await pilot.press("a")
        await pilot.pause()
        await _fill(pilot, "#field-sni", "mouse.example.org")
        await _fill(pilot, "#field-upstream", "127.0.0.1:9500")
        await pilot.click("#form-ok")
        await pilot.pause()
        assert isinstance(app.screen, RoutesScreen)
        await pilot.press("A")
        await pilot.pause()
        await pilot.click("#diff-yes")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.view.table.match("mouse.example.org").upstream == "127.0.0.1:9500"


async def test_apply_dialog_lists_warnings(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.session.add_route({"sni": ["w.example.org"], "upstream": "127.0.0.1:9600", "allow": ["*.svc:443"]})
        app.screen.sync_staged()
        await pilot.press("A")
        await pilot.pause()
        body = str(app.screen.query_one("#diff-body", Static).render())
        assert "routes[3].allow: allow bounds templated upstreams; this route's upstream is fixed" in body


async def test_apply_cancelled_changes_nothing(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.session.add_route({"sni": ["x.example.net"], "upstream": "127.0.0.1:9300"})
        app.screen.sync_staged()
        await pilot.press("A")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert len(app.view.running_config.routes) == 3
        assert app.screen.session.unapplied


async def test_delete_asks_then_reorder_moves_regexes(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.session.add_route({"name": "legacy", "sni": ["~^legacy-"], "upstream": "127.0.0.1:9400"})
        screen.sync_staged()
        screen.select_route(3)
        await pilot.press("K")           # legacy before k8s: only regex order matters
        await pilot.pause()
        assert screen.session.labels() == ["shop", "apps", "legacy", "k8s"]
        assert screen.selected_route == 2
        await pilot.press("J")
        await pilot.pause()
        assert screen.session.labels() == ["shop", "apps", "k8s", "legacy"]

        screen.select_route(1)
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("n")           # the dialog's safe answer
        await pilot.pause()
        assert screen.session.labels() == ["shop", "apps", "k8s", "legacy"]
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert screen.session.labels() == ["shop", "k8s", "legacy"]


async def test_edit_with_enter_and_revert(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.select_route(1)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RouteForm)
        assert app.screen.query_one("#field-sni", Input).value == "*.apps.example.com"
        await _fill(pilot, "#field-upstream", "127.0.0.1:9101")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.session.route(1)["upstream"] == "127.0.0.1:9101"
        assert _table_cells(app)[2][0] == "~"
        await pilot.press("R")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert screen.session.route(1)["upstream"] == "127.0.0.1:9100"
        assert app.unapplied is False


async def test_edit_the_default_fallback(config_path: Path) -> None:
    from sniui.ui.widgets.route_form import FallbackForm

    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        table = screen.query_one("#routes-table", DataTable)
        table.move_cursor(row=table.row_count - 1)          # the default row, last in precedence
        await pilot.press("e")
        await pilot.pause()
        form = app.screen
        assert isinstance(form, FallbackForm)
        form.query_one("#fallback-action", Select).value = "route"
        await settle(pilot)
        assert "needs an upstream" in str(form.query_one("#fallback-error-upstream", Static).render())
        form.query_one("#fallback-upstream", Input).value = "web"
        await settle(pilot)
        assert form.last_check.ok
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert screen.session.fallback("default") == {"action": "route", "upstream": "web"}
        assert _table_cells(app)[-1][5] == "web"
        assert _table_cells(app, "#tests-table")[2][5] == "now fails"


async def test_save_as_when_there_is_no_file(config_path: Path, tmp_path: Path) -> None:
    from sniui.ui.widgets.diff_dialog import SaveAsDialog

    view = view_for(load_file(config_path).config, path=None)
    app = ScreenHarness(view, lambda v: RoutesScreen(v))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.session.add_route({"name": "net", "sni": ["*.example.net"], "upstream": "127.0.0.1:9300"})
        app.screen.sync_staged()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, SaveAsDialog)
        target = tmp_path / "saved.yaml"
        app.screen.query_one("#save-path", Input).value = str(target)
        await pilot.press("enter")
        await pilot.pause()
        assert [r.name for r in load_file(target).config.routes] == ["shop", "apps", "k8s", "net"]
        assert str(target) in str(app.screen.query_one("#staged-status", Static).render())


async def test_save_writes_the_staged_config_atomically_with_backup(config_path: Path) -> None:
    app = harness(config_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        screen.session.add_route({"name": "net", "sni": ["*.example.net"], "upstream": "127.0.0.1:9300"})
        screen.sync_staged()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert config_path.with_name("sniui.yaml.bak").read_text() == CONFIG
        saved = load_file(config_path).config
        assert [r.name for r in saved.routes] == ["shop", "apps", "k8s", "net"]
        assert "applied" not in str(screen.query_one("#staged-status", Static).render()) or screen.session.unapplied


async def test_read_only_hides_every_change(config_path: Path) -> None:
    app = harness(config_path, read_only=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        offered = {active.binding.action for active in screen.active_bindings.values() if active.enabled}
        assert "action_focus_test" not in offered and "focus_test" in offered
        assert not offered & {"add_route", "edit_route", "delete_route", "apply", "save", "revert", "move_route(-1)"}
        for action in ("add_route", "edit_route", "delete_route", "apply", "save", "revert"):
            assert screen.check_action(action, ()) is False
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, RoutesScreen), "no editor in read-only mode"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RoutesScreen)
        # Testing names changes nothing, so it stays available.
        await pilot.press("t")
        await _fill(pilot, "#match-name", "shop.example.com")
        assert app.screen.query_one(MatchPanel).decision.route == "shop"


async def test_screens_accept_snapshots_before_they_are_built() -> None:
    # The app's refresh loop may hand a snapshot to a screen before its on_mount has built the tables.
    from sniui.ui.app import create_app
    from sniui.ui.replay_data import replay_view
    from sniui.ui.screens.certificates import CertificatesScreen

    app = create_app(replay_view(), refresh_interval=None, follow_events=False)
    async with app.run_test(size=(120, 40)) as pilot:
        for screen_class, table_id, rows in ((RoutesScreen, "#routes-table", 7), (CertificatesScreen, "#certs-table", 1)):
            screen = screen_class(app.view)
            screen.show_snapshot(app.view.snapshot())       # not mounted: must be a no-op
            await app.push_screen(screen)
            screen.show_snapshot(app.view.snapshot())
            await pilot.pause()
            assert screen.query_one(table_id, DataTable).row_count == rows
            app.pop_screen()
            await pilot.pause()
        await pilot.press("2")
        app.refresh_screen()
        await pilot.pause()
        assert app.screen.query_one("#routes-table", DataTable).row_count == 7


def test_every_binding_names_a_real_action() -> None:
    from sniui.ui.screens.routes import RoutesScreen
    from sniui.ui.widgets.diff_dialog import DiffDialog
    from sniui.ui.widgets.route_form import RouteForm

    from sniui.ui.widgets.diff_dialog import SaveAsDialog
    from sniui.ui.widgets.route_form import FallbackForm

    for cls in (RoutesScreen, RouteForm, DiffDialog, MatchPanel, FallbackForm, SaveAsDialog):
        for binding in cls.BINDINGS:
            name = binding.action.split("(")[0]
            assert callable(getattr(cls, f"action_{name}", None)), f"{cls.__name__}: {binding.key} → {binding.action}"
            assert binding.id and binding.tooltip, f"{cls.__name__}: {binding.key} needs an id and a tooltip"


# -- against the real engine -------------------------------------------------------------------

LIVE_DEADLINE = 10.0


async def _identity_upstream(name: str, context: ssl.SSLContext) -> asyncio.Server:
    """A TLS server that first says who it is, then echoes: enough to see where a client was routed."""

    async def serve(reader, writer):
        try:
            writer.write(f"upstream={name}\n".encode())
            await writer.drain()
            while data := await reader.read(4096):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0, ssl=context)


async def test_apply_in_the_routes_screen_routes_a_real_tls_client_to_the_new_upstream(tmp_path: Path) -> None:
    import trustme

    from sniui.engine.engine import Engine
    from sniui.ui.app import create_app
    from sniui.ui.view import LiveEngineView

    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("shop.test", "*.new.test").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    old = await _identity_upstream("old", server_context)
    new = await _identity_upstream("new", server_context)
    new_port = new.sockets[0].getsockname()[1]
    path = tmp_path / "sniui.yaml"
    path.write_text(
        "listen: [{address: '127.0.0.1:0'}]\n"
        f"routes:\n  - {{name: shop, sni: shop.test, upstream: '127.0.0.1:{old.sockets[0].getsockname()[1]}'}}\n")
    engine = Engine(load_file(path).config)
    await engine.start()
    host, port = engine.bound_addresses[0][:2]

    async def connect(name: str):
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=client_context, server_hostname=name), LIVE_DEADLINE)
        return reader, writer, (await asyncio.wait_for(reader.readline(), LIVE_DEADLINE)).decode().strip()

    established = None
    try:
        app = create_app(LiveEngineView(engine, config_path=path), refresh_interval=None, follow_events=False)
        async with app.run_test(size=(120, 40)) as pilot:
            reader, writer, who = await connect("shop.test")
            established = writer
            assert who == "upstream=old"
            # Before the apply, the new name has no route: the router refuses the handshake.
            with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
                await connect("api.new.test")

            await pilot.press("2")
            await pilot.pause()
            await pilot.press("a")
            await pilot.pause()
            await _type(pilot, "#field-sni", "*.new.test")
            await _fill(pilot, "#field-upstream", f"127.0.0.1:{new_port}")
            await pilot.press("ctrl+s")
            await pilot.pause()
            await pilot.press("A")
            await pilot.pause()
            assert isinstance(app.screen, DiffDialog)
            await pilot.press("y")
            await app.workers.wait_for_complete()
            await pilot.pause()

            assert engine.table.match("api.new.test").upstream == f"127.0.0.1:{new_port}"
            _, fresh, who = await connect("api.new.test")
            fresh.close()
            assert who == "upstream=new"
            # The connection made before the apply still flows to its upstream.
            writer.write(b"still here\n")
            assert await asyncio.wait_for(reader.readline(), LIVE_DEADLINE) == b"still here\n"
            assert not app.screen.session.unapplied and app.unapplied is False
    finally:
        if established is not None:
            established.close()
        await engine.stop()
        for server in (old, new):
            server.close()
            await server.wait_closed()
