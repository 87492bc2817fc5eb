"""The dashboard's words and lookups without a screen: status line, tab labels, empty hint, row keys, caches."""

from __future__ import annotations

import dataclasses

from sniui.engine.model import CloseReason, ConnectionInfo, ConnState, ServerHealth
from sniui.routing import RouteTable
from sniui.ui.connection_lookup import ConnectionIndex, RouteExplainer, connection_id_of, group_at
from sniui.ui.dashboard_text import (
    empty_hint, error_closes, group_description, sni_errors, status_line, tab_labels,
)
from sniui.ui.replay_data import NOW, make_snapshot, replay_config
from sniui.ui.rows import build_rows, parse_filter


def conn(conn_id: int, sni: str | None = "shop.example.com", *, reason: CloseReason | None = None,
         alpn: tuple[str, ...] = ()) -> ConnectionInfo:
    closed = NOW - 1 if reason is not None else None
    return ConnectionInfo(conn_id, "203.0.113.7:50000", "203.0.113.7", "0.0.0.0:443",
                          ConnState.CLOSED if closed else ConnState.ESTABLISHED, NOW - 10, NOW - 1, sni=sni,
                          alpn=alpn, closed=closed, close_reason=reason)


def server(up: bool) -> ServerHealth:
    return ServerHealth("web", "10.0.1.11:443", up, 0, None, None, 0, 0)


def rows_of(connections, **kwargs):
    return build_rows(connections, now=NOW, rates={}, **kwargs)


# -- errors among the recently closed ---------------------------------------------------------


def test_only_error_closes_count_as_errors_and_a_missing_sni_has_a_name():
    recent = [conn(1, reason=CloseReason.CLIENT_CLOSED), conn(2, reason=CloseReason.NO_ROUTE),
              conn(3, None, reason=CloseReason.NO_SNI), conn(4, reason=CloseReason.UPSTREAM_CLOSED),
              conn(5, reason=CloseReason.IDLE_TIMEOUT)]
    assert [c.id for c in error_closes(recent)] == [2, 3, 5]
    assert sni_errors(recent) == {"shop.example.com": 2, "(no SNI)": 1}


# -- tab labels -------------------------------------------------------------------------------


def test_tab_labels_carry_counts_and_alert_only_on_trouble():
    snapshot = dataclasses.replace(
        make_snapshot(3), servers=(server(True), server(False), server(False)),
        recent=(conn(1, reason=CloseReason.CLIENT_CLOSED), conn(2, reason=CloseReason.NO_ROUTE)))
    assert tab_labels(snapshot, errors_only=False) == {
        "live": ("Live 3", False), "closed": ("Closed 2 (1 err)", True), "servers": ("Servers 3 (2 down)", True)}
    assert tab_labels(snapshot, errors_only=True)["closed"] == ("Closed: errors only 1", True)


def test_tab_labels_are_plain_when_all_is_well():
    snapshot = dataclasses.replace(make_snapshot(0), servers=(server(True),),
                                   recent=(conn(1, reason=CloseReason.UPSTREAM_CLOSED),))
    assert tab_labels(snapshot, errors_only=False) == {
        "live": ("Live 0", False), "closed": ("Closed 1", False), "servers": ("Servers 1", False)}


# -- status line ------------------------------------------------------------------------------


def status(rows, **overrides) -> str:
    settings = dict(conn_filter=None, group_by="flat", sort_column="age", sort_reverse=False, events_dropped=0,
                    paused=False)
    return status_line(rows, **(settings | overrides)).plain


def test_status_line_flat_and_unfiltered_says_count_and_sort():
    rows = rows_of([conn(1), conn(2)])
    assert status(rows) == "2 live · sort age ▼"
    assert status(rows, sort_column="up", sort_reverse=True) == "2 live · sort up ▲"
    assert status(None) == " · sort age ▼"   # before the first table refresh


def test_status_line_names_filter_grouping_drops_and_pause():
    connections = [conn(1), conn(2, "api.example.com"), conn(3, "api.example.com")]
    shown = parse_filter("api")
    rows = rows_of(connections, conn_filter=shown, group_by="sni")
    text = status(rows, conn_filter=shown, group_by="sni", events_dropped=7, paused=True)
    assert text == "3 live · 2 match 'api' · 1 groups by SNI · sort age ▼ · 7 events dropped  PAUSED (p resumes)"


def test_status_line_says_how_many_rows_the_limit_left_out_in_bold():
    rows = rows_of([conn(i) for i in range(5)], limit=3)
    line = status_line(rows, conn_filter=None, group_by="flat", sort_column="age", sort_reverse=False,
                       events_dropped=0, paused=False)
    assert line.plain == "5 live · first 3 rows shown, 2 more: narrow with / · sort age ▼"
    bold = [line.plain[span.start:span.end] for span in line.spans if span.style == "bold"]
    assert bold == [" · first 3 rows shown, 2 more: narrow with /"]


# -- the empty live table ---------------------------------------------------------------------


def test_empty_hint_blames_the_filter_when_connections_exist():
    shown = parse_filter("!shop")
    rows = rows_of([conn(1)], conn_filter=shown)
    assert empty_hint(rows, conn_filter=shown) == "No live connection matches not 'shop'.  esc clears the filter."


def test_empty_hint_without_connections_points_at_closed_and_the_demo():
    rows = rows_of([])
    assert empty_hint(rows, conn_filter=None) == "No live connections right now.  r shows the recently closed ones."
    assert empty_hint(rows, conn_filter=None, demo_text="curl ...") == (
        "No live connections right now.  r shows the recently closed ones.  t sends demo traffic.\n\ncurl ...")


def test_empty_hint_is_empty_when_rows_are_shown():
    assert empty_hint(rows_of([conn(1)]), conn_filter=None) == ""


def test_group_description_names_the_grouping_and_the_key():
    assert group_description("sni", "shop.example.com") == "by SNI group 'shop.example.com'"
    assert group_description("upstream", "10.0.1.11:443") == "by upstream group '10.0.1.11:443'"


# -- row keys and lookups ---------------------------------------------------------------------


def test_row_keys_name_connections_and_groups():
    assert connection_id_of("c:1042") == 1042
    assert connection_id_of("g:shop.example.com") is None
    assert connection_id_of(None) is None and connection_id_of("") is None
    rows = rows_of([conn(1), conn(2), conn(3, "api.example.com")], group_by="sni")
    group = group_at(rows, "g:shop.example.com")
    assert group is not None and sorted(c.id for c in group.connections) == [1, 2]
    assert group_at(rows, "g:nobody.example.com") is None
    assert group_at(rows, "c:1") is None and group_at(None, "g:shop.example.com") is None


def test_connection_index_finds_live_then_recent_and_follows_new_snapshots():
    index = ConnectionIndex()
    first = dataclasses.replace(make_snapshot(0), connections=(conn(1),), recent=(conn(2, reason=CloseReason.NO_ROUTE),))
    assert index.find(first, 1) == (conn(1), True)
    assert index.find(first, 2) == (conn(2, reason=CloseReason.NO_ROUTE), False)
    assert index.find(first, 3) == (None, False)
    assert index.find(None, 1) == (None, False)
    # Connection 1 closed in the next snapshot: the index must not answer from the old one.
    second = dataclasses.replace(first, connections=(), recent=(conn(1, reason=CloseReason.CLIENT_CLOSED),))
    assert index.find(second, 1) == (conn(1, reason=CloseReason.CLIENT_CLOSED), False)


def test_route_explainer_matches_sniui_match_and_forgets_on_a_new_table():
    table = RouteTable(replay_config())
    explainer = RouteExplainer()
    shop = conn(1, "shop.example.com")
    lines = explainer.explain(table, shop)
    assert lines == table.match("shop.example.com", None, explain=True).explanation()
    assert explainer.explain(table, conn(2, "shop.example.com")) is lines     # cached per name
    api = explainer.explain(table, conn(3, "api.example.com", alpn=("h2", "http/1.1")))
    assert api == table.match("api.example.com", "h2", explain=True).explanation()
    applied = RouteTable(replay_config())
    assert explainer.explain(applied, shop) is not lines                      # an apply clears the cache
    assert explainer.explain(applied, shop) == lines
