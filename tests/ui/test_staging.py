"""The staged edit session, without a terminal: edits, located messages, diff, tests, save."""

from __future__ import annotations

import sys
import subprocess
from pathlib import Path

import pytest

from sniui.config import ConfigError, load_file, load_text
from sniui.ui.route_data import fields_to_route, precedence_rows, route_to_fields
from sniui.ui.staging import StagedSession

CONFIG = r"""
upstreams:
  web:
    servers: ["10.0.0.1:443", "10.0.0.2:443"]
routes:
  - name: shop
    sni: shop.example.com
    upstream: web
  - sni: "*.apps.example.com"
    upstream: "apps.internal:443"
  - name: k8s
    sni: '~^(?<app>.+)-(?<ns>.+)-(?<port>\d+)\.k8s\.example\.com$'
    upstream: "$app-public.$ns.svc.cluster.local:$port"
tests:
  - sni: shop.example.com
    expect: web
  - sni: shop-staging-9999.k8s.example.com
    expect: shop-public.staging.svc.cluster.local:9999
  - sni: unknown.example.net
    expect: reject
"""


@pytest.fixture
def session(tmp_path: Path) -> StagedSession:
    path = tmp_path / "sniui.yaml"
    path.write_text(CONFIG)
    return StagedSession(load_file(path).config, path=path)


def test_a_fresh_session_has_nothing_to_apply(session: StagedSession) -> None:
    assert not session.unapplied and not session.unsaved
    assert session.diff().empty
    assert session.validate().ok
    assert [o.passed for o in session.expectations()] == [True, True, True]


def test_add_route_is_staged_not_running(session: StagedSession) -> None:
    index = session.add_route({"sni": ["*.example.net"], "upstream": "net.internal:443"})
    assert index == 3 and session.unapplied and session.unsaved
    assert len(session.running.routes) == 3, "the running config is untouched"
    table = session.staged_table()
    assert table is not None
    assert table.match("a.example.net").upstream == "net.internal:443"


def test_route_errors_are_located_at_the_field_with_check_messages(session: StagedSession) -> None:
    bad_regex = session.check_route({"sni": ["~^(?<app>.+"], "upstream": "x:1"})
    assert not bad_regex.ok
    [issue] = bad_regex.for_field("sni")
    assert issue.path == "routes[3].sni[0]"
    assert "does not compile" in issue.message

    missing_capture = session.check_route({"sni": [r"~^(?<app>.+)-(?<ns>.+)\.k8s$"], "upstream": "$app.$nss:443"})
    [issue] = missing_capture.for_field("upstream")
    assert issue.path == "routes[3].upstream"
    assert "$nss is not a capture" in issue.message and "did you mean 'ns'" in issue.message

    typo_group = session.check_route({"sni": ["a.example.com"], "upstream": "wbe"}, index=0)
    [issue] = typo_group.for_field("upstream")
    assert issue.path == "routes[0].upstream"
    assert issue.message == "unknown upstream group 'wbe' (did you mean 'web'?)"

    assert session.check_route({"sni": ["b.example.com"], "upstream": "web"}).ok


def test_form_messages_are_the_ones_sniui_check_prints(session: StagedSession) -> None:
    # The same mistake written into a file: `sniui check` (load_text) reports the same text.
    route = {"sni": ["a.example.com"], "upstream": "wbe"}
    check = session.check_route(route)
    data = session.data
    data["routes"].append(route)
    import yaml

    with pytest.raises(ConfigError) as caught:
        load_text(yaml.safe_dump(data))
    assert [i.message for i in caught.value.errors] == [i.message for i in check.issues]


def test_invalid_working_copy_refuses_to_build(session: StagedSession) -> None:
    session.add_route({"sni": ["x.example.com"], "upstream": "nowhere"})
    validation = session.validate()
    assert not validation.ok
    assert [str(i).split(" ", 1)[1] for i in validation.errors] == ["routes[3].upstream: unknown upstream group 'nowhere'"]
    with pytest.raises(ConfigError):
        session.build()
    assert session.staged_table() is None


def test_diff_names_added_removed_changed_and_moved_routes(session: StagedSession) -> None:
    session.add_route({"name": "legacy", "sni": ["~^legacy-"], "upstream": "legacy:443"})
    session.delete_route(1)                       # *.apps.example.com
    shop = session.route(0)
    shop["upstream"] = "shop.internal:443"
    session.replace_route(0, shop)
    diff = session.diff()
    kinds = {(c.kind, c.label) for c in diff.routes}
    assert kinds == {("changed", "shop"), ("removed", "*.apps.example.com"), ("added", "legacy")}
    [changed] = [c for c in diff.routes if c.kind == "changed"]
    assert changed.fields == ("upstream",)
    assert "upstream: web → shop.internal:443" in changed.describe()


def test_moving_a_regex_is_shown_because_file_order_decides_between_regexes(session: StagedSession) -> None:
    session.add_route({"name": "legacy", "sni": ["~^legacy-"], "upstream": "legacy:443"})
    session.mark_applied(session.build())
    session.move_route(3, -1)
    assert [c.describe() for c in session.diff().routes] == ["↕ legacy: routes[3] → routes[2]", "↕ k8s: routes[2] → routes[3]"]
    session.revert()
    session.move_route(1, -1)   # two non-regex routes: order decides nothing, so nothing to show
    assert session.unapplied and session.diff().routes == ()


def test_renaming_a_route_is_a_change_not_remove_and_add(session: StagedSession) -> None:
    route = session.route(1)
    route["sni"] = ["*.apps.example.org"]
    session.replace_route(1, route)
    [change] = session.diff().routes
    assert change.kind == "changed" and change.fields == ("sni",)


def test_diff_lists_tests_whose_decision_changes(session: StagedSession) -> None:
    # Send shop to a fixed address: its expectation (`web`) now fails; the others keep their decision.
    shop = session.route(0)
    shop["upstream"] = "shop.internal:443"
    session.replace_route(0, shop)
    [change] = session.diff().tests
    assert change.after.sni == "shop.example.com"
    assert change.before is not None and change.before.passed and not change.after.passed
    assert change.breaks
    assert "now FAILS" in change.describe()
    assert [o.passed for o in session.expectations()] == [False, True, True]


def test_a_new_catch_all_fixes_nothing_and_breaks_the_reject_test(session: StagedSession) -> None:
    session.add_route({"sni": [".example.net"], "upstream": "net.internal:443"})
    [change] = session.diff().tests
    assert change.after.sni == "unknown.example.net"
    assert change.before.result == "reject" and change.after.result == "net.internal:443"
    assert change.breaks


def test_revert_returns_to_running(session: StagedSession) -> None:
    session.delete_route(0)
    session.revert()
    assert not session.unapplied
    assert session.diff().empty


def test_mark_applied_makes_the_staged_config_the_reference(session: StagedSession) -> None:
    session.add_route({"sni": ["new.example.com"], "upstream": "new.internal:443"})
    config = session.build()
    session.mark_applied(config)
    assert not session.unapplied and session.unsaved
    assert session.diff().empty


def test_save_round_trips_through_load_file_and_keeps_a_backup(session: StagedSession) -> None:
    assert session.path is not None
    original = session.path.read_text()
    session.add_route({"name": "net", "sni": ["*.example.net"], "upstream": "net.internal:443"})
    backup = session.save()
    assert backup is not None and backup.read_text() == original
    assert not session.unsaved and session.unapplied, "saved, but not yet applied"
    reloaded = load_file(session.path).config
    assert [r.name or r.sni[0] for r in reloaded.routes] == ["shop", "*.apps.example.com", "k8s", "net"]
    assert reloaded.model_dump() == session.build().model_dump()


def test_save_round_trips_through_sniui_check(session: StagedSession) -> None:
    session.add_route({"sni": ["*.example.org"], "upstream": "net.internal:443"})
    session.save()
    done = subprocess.run([sys.executable, "-m", "sniui", "check", "-c", str(session.path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr + done.stdout


def test_save_refuses_an_invalid_working_copy_and_leaves_the_file(session: StagedSession) -> None:
    before = session.path.read_text()
    session.add_route({"sni": ["x.example.com"], "upstream": "nowhere"})
    with pytest.raises(ConfigError):
        session.save()
    assert session.path.read_text() == before


def test_precedence_rows_follow_nginx_order(session: StagedSession) -> None:
    session.add_route({"sni": ["www.example.*"], "upstream": "t:443"})
    session.add_route({"sni": ["*.example.com"], "upstream": "short:443"})
    rows = session.rows()
    assert [(r.kind, r.pattern) for r in rows] == [
        ("exact", "shop.example.com"),
        ("wildcard", "*.apps.example.com"),     # longer wildcard first
        ("wildcard", "*.example.com"),
        ("trailing wildcard", "www.example.*"),
        ("regex", r"~^(?<app>.+)-(?<ns>.+)-(?<port>\d+)\.k8s\.example\.com$"),
        ("default", "(anything else)"),
    ]
    assert rows[-1].upstream == "reject (alert)"


def test_precedence_rows_keep_an_invalid_pattern_visible() -> None:
    rows = precedence_rows({"routes": [{"sni": ["~(unclosed"], "upstream": "x:1"}, {"sni": "a.b", "upstream": "y:1"}]})
    assert [r.kind for r in rows] == ["exact", "invalid", "default"]
    assert rows[1].error and "does not compile" in rows[1].error


def test_form_fields_round_trip_and_keep_hidden_fields() -> None:
    route = {"name": "api", "sni": ["api.example.com", "api.example.org"], "upstream": "web",
             "description": "kept even though the form does not show it", "min_version": "1.3"}
    fields = route_to_fields(route)
    assert fields["sni"] == "api.example.com, api.example.org"
    assert fields["mode"] == "passthrough"
    assert fields_to_route(fields, route) == route
    fields["proxy_protocol"] = "v2"
    fields["name"] = ""
    changed = fields_to_route(fields, route)
    assert changed["proxy_protocol"] == "v2" and "name" not in changed


def test_certificates_are_staged_and_mapped(session: StagedSession, tmp_path: Path) -> None:
    check = session.check_certificate("", {"cert": "a.pem", "key": "a.key"})
    assert [i.field for i in check.issues] == ["name"]
    check = session.check_certificate("api", {"cert": "a.pem"})
    assert [(i.field, i.message) for i in check.issues] == [("key", "missing required field 'key'")]
    session.set_certificate("api", {"cert": "a.pem", "key": "a.key"})
    session.map_certificate(1, "api")
    route = session.route(1)
    assert route["mode"] == "terminate" and route["certificate"] == "api"
    diff = session.diff()
    assert [c.describe() for c in diff.entries] == ["+ certificates.api"]
    session.map_certificate(1, None)
    assert "mode" not in session.route(1)


def test_staging_does_not_import_textual() -> None:
    code = "import sys, sniui.ui.staging, sniui.ui.staged_diff, sniui.ui.route_data; print('textual' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr


def test_fallbacks_are_staged_validated_and_diffed(session: StagedSession) -> None:
    assert session.fallback("default") == {} and session.fallback("no_sni") is None
    [issue] = session.check_fallback("default", {"action": "route"}).issues
    assert (issue.field, issue.path) == ("upstream", "default.upstream")
    [issue] = session.check_fallback("default", {"action": "route", "upstream": "wbe"}).issues
    assert issue.message == "unknown upstream group 'wbe' (did you mean 'web'?)"
    session.set_fallback("default", {"action": "route", "upstream": "web"})
    session.set_fallback("no_sni", {"action": "reject", "reject_with": "close"})
    diff = session.diff()
    assert diff.fallbacks == ("~ default: reject (alert) → route to web", "+ no_sni: reject (close)")
    [change] = diff.tests
    assert change.after.sni == "unknown.example.net" and change.breaks
    assert [r.kind for r in session.rows()][-2:] == ["no_sni", "default"]
    session.set_fallback("no_sni", None)
    session.set_fallback("default", {})
    assert not session.unapplied


def test_pinned_tests_run_against_the_staged_table(session: StagedSession) -> None:
    index = session.add_test("a.apps.example.com", "apps.internal:443")
    assert index == 3 and session.expectations()[3].passed
    assert session.diff().lines()[-1] == "sections changed: tests"
    session.remove_test(index)
    assert not session.unapplied
