"""The connections table's model: filter, sort, group and cap, as plain data.

Kept free of widgets so the same code serves the table, the tests and the
10,000-connection measurement. Everything here is O(n log n) over the live
connections once per refresh; the table then renders at most `limit` rows.
"""

from __future__ import annotations

import fnmatch
import heapq
from dataclasses import dataclass, field
from typing import Callable, Iterable, Literal, Mapping

from sniui.engine.model import ConnectionInfo, ConnState, Counters
from sniui.ui.format import clip, human_age, human_bytes, human_rate

GroupBy = Literal["flat", "sni", "upstream", "route"]
GROUP_MODES: tuple[GroupBy, ...] = ("flat", "sni", "upstream", "route")

# (key, header, width). Ordered by what an operator scans first, so the useful
# columns stay on screen at 80 columns and the rest scroll in.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("sni", "SNI", 28),
    ("upstream", "Upstream", 26),
    ("state", "State", 11),
    ("up", "↑ Up", 6),
    ("down", "↓ Down", 6),
    ("rate", "Rate", 8),
    ("age", "Age", 6),
    ("client", "Client", 21),
    ("route", "Route", 14),
)
COLUMN_KEYS = tuple(key for key, _, _ in COLUMNS)
WIDE: Mapping[str, int] = {key: width for key, _, width in COLUMNS}
# Under ~100 columns the name columns give up some width so state, bytes and rate stay on screen.
NARROW: Mapping[str, int] = {**WIDE, "sni": 19, "upstream": 17}

# Table labels for states: at most 11 cells, so the State column never crops one.
STATE_LABEL = {
    ConnState.READING_HELLO: "hello", ConnState.CONNECTING: "connecting", ConnState.HANDSHAKING: "handshake",
    ConnState.ESTABLISHED: "established", ConnState.CLOSING: "closing", ConnState.CLOSED: "closed",
}

# Rendering is the expensive part, so rows beyond this are not given to the
# table at all; the status line says how many were left out and how to narrow.
DEFAULT_ROW_LIMIT = 500


_NO_LABELS: Mapping[str, str] = {}


def upstream_text(conn: ConnectionInfo, labels: Mapping[str, str] = _NO_LABELS, *, full: bool = False) -> str:
    """'web → 10.0.0.1:443' for a group, the address alone when it is the rendered upstream.

    `labels` names connected addresses (the demo's servers: "127.0.0.1:40211" → "shop-2"); a table
    cell shows the name instead of the address, `full` shows both.
    """
    rendered = conn.upstream or ""
    address = conn.upstream_address
    if address and address in labels:
        address = f"{address} ({labels[address]})" if full else labels[address]
    if address and address != rendered:
        return f"{rendered} → {address}" if rendered else address
    return rendered or "-"


def group_key(conn: ConnectionInfo, group_by: GroupBy) -> str:
    if group_by == "sni":
        return conn.sni or "(no SNI)"
    if group_by == "route":
        return conn.route or "(no route)"
    # per_upstream counters are keyed by the connected address, so group the same way.
    return conn.upstream_address or conn.upstream or "(not connected)"


# -- filtering ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnFilter:
    """`/` filter: a substring, or a glob when it has * ? [, over SNI, client and upstream; `!` inverts."""

    text: str
    invert: bool = False

    @property
    def is_glob(self) -> bool:
        return any(c in self.text for c in "*?[")

    def matches(self, conn: ConnectionInfo) -> bool:
        fields = (conn.sni or "", conn.client, conn.upstream or "", conn.upstream_address or "")
        if self.is_glob:
            hit = any(fnmatch.fnmatchcase(f.lower(), self.text) for f in fields)
        else:
            hit = any(self.text in f.lower() for f in fields)
        return hit != self.invert

    def describe(self) -> str:
        return ("not " if self.invert else "") + ("glob " if self.is_glob else "") + repr(self.text)


def parse_filter(text: str) -> ConnFilter | None:
    text = text.strip()
    invert = text.startswith("!")
    if invert:
        text = text[1:].strip()
    if not text:
        return None
    return ConnFilter(text.lower(), invert)


# -- sorting ------------------------------------------------------------------


def _sort_key(column: str, now: float, rates: Mapping[int, float]) -> Callable[[ConnectionInfo], object]:
    if column == "sni":
        return lambda c: (c.sni or "", c.id)
    if column == "client":
        return lambda c: (c.client_ip, c.client)
    if column == "route":
        return lambda c: (c.route or "", c.id)
    if column == "upstream":
        return lambda c: (upstream_text(c), c.id)
    if column == "state":
        return lambda c: (c.state.value, c.id)
    if column == "up":
        return lambda c: c.bytes_up
    if column == "down":
        return lambda c: c.bytes_down
    if column == "rate":
        return lambda c: rates.get(c.id, 0.0)
    # "age": ascending age, i.e. newest first; ties by id keep the order stable.
    return lambda c: (-c.started, -c.id)


# -- rows ---------------------------------------------------------------------


@dataclass(slots=True)
class Group:
    key: str
    connections: list[ConnectionInfo] = field(default_factory=list)
    bytes_up: int = 0
    bytes_down: int = 0
    rate: float = 0.0
    errors: int = 0

    @property
    def count(self) -> int:
        return len(self.connections)


RowKind = Literal["conn", "group"]


@dataclass(frozen=True, slots=True)
class DisplayRow:
    key: str                           # DataTable row key: "c:<id>" or "g:<group>"
    kind: RowKind
    cells: tuple[str, ...]             # in COLUMN_KEYS order, already clipped
    tone: str                          # semantic colour: "", "muted", "warning", "error", "accent"
    connection: ConnectionInfo | None = None
    group: Group | None = None


@dataclass(frozen=True, slots=True)
class RowSet:
    rows: list[DisplayRow]
    live: int            # live connections in the snapshot
    matched: int         # after the filter
    groups: int          # group rows (0 when flat)
    truncated: int       # rows left out by the limit


def state_tone(state: ConnState) -> str:
    if state is ConnState.ESTABLISHED:
        return ""
    if state in (ConnState.CLOSING, ConnState.CLOSED):
        return "muted"
    return "warning"  # reading hello / connecting / handshaking: in progress, worth noticing when it lingers


def connection_cells(conn: ConnectionInfo, now: float, rate: float, *, indent: bool = False,
                     widths: Mapping[str, int] = WIDE, labels: Mapping[str, str] = _NO_LABELS) -> tuple[str, ...]:
    sni = conn.sni or "(no SNI)"
    if indent:
        sni = "  " + sni
    return (
        clip(sni, widths["sni"]),
        clip(upstream_text(conn, labels), widths["upstream"]),
        STATE_LABEL.get(conn.state, conn.state.value),
        human_bytes(conn.bytes_up),
        human_bytes(conn.bytes_down),
        human_rate(rate),
        human_age(now - conn.started),
        clip(conn.client, widths["client"]),
        clip(conn.route or "-", widths["route"]),
    )


def group_cells(group: Group, group_by: GroupBy, expanded: bool, widths: Mapping[str, int] = WIDE,
                labels: Mapping[str, str] = _NO_LABELS) -> tuple[str, ...]:
    marker = "▾" if expanded else "▸"
    label = f"{marker} {group.key}"
    count = f"{group.count} conn" + ("" if group.count == 1 else "s")
    errors = f"{group.errors} err" if group.errors else ""  # in the age column: visible even at 80 columns
    cells = {
        "sni": clip(label, widths["sni"]),
        "upstream": "",
        "state": count,
        "up": human_bytes(group.bytes_up),
        "down": human_bytes(group.bytes_down),
        "rate": human_rate(group.rate),
        "age": errors,
        "client": "",
        "route": "",
    }
    # Show the group's own label in the column it is grouped by, so the header still reads right.
    column = {"sni": "sni", "upstream": "upstream", "route": "route"}.get(group_by)
    if column and column != "sni":
        name = f"{group.key} ({labels[group.key]})" if group.key in labels else group.key
        cells[column] = clip(name, widths[column])
        cells["sni"] = f"{marker} {count}"
        cells["state"] = ""
    return tuple(cells[k] for k in COLUMN_KEYS)


def group_errors(group_by: GroupBy, key: str, per_route: Mapping[str, Counters],
                 per_upstream: Mapping[str, Counters], sni_errors: Mapping[str, int]) -> int:
    if group_by == "route":
        counters = per_route.get(key)
        return counters.error_total if counters else 0
    if group_by == "upstream":
        counters = per_upstream.get(key)
        return counters.error_total if counters else 0
    return sni_errors.get(key, 0)


def build_rows(
    connections: Iterable[ConnectionInfo],
    *,
    now: float,
    rates: Mapping[int, float],
    conn_filter: ConnFilter | None = None,
    group_by: GroupBy = "flat",
    sort: str = "age",
    reverse: bool = False,
    expanded: frozenset[str] | set[str] = frozenset(),
    per_route: Mapping[str, Counters] | None = None,
    per_upstream: Mapping[str, Counters] | None = None,
    sni_errors: Mapping[str, int] | None = None,
    limit: int = DEFAULT_ROW_LIMIT,
    widths: Mapping[str, int] = WIDE,
    labels: Mapping[str, str] = _NO_LABELS,
) -> RowSet:
    conns = list(connections)
    live = len(conns)
    if conn_filter is not None:
        conns = [c for c in conns if conn_filter.matches(c)]
    matched = len(conns)
    key = _sort_key(sort, now, rates)

    if group_by == "flat":
        # Only the first `limit` rows are shown: a partial sort of n items is O(n log limit).
        if matched > 2 * limit:
            shown = (heapq.nlargest if reverse else heapq.nsmallest)(limit, conns, key=key)
        else:
            shown = sorted(conns, key=key, reverse=reverse)[:limit]
        rows = [DisplayRow(f"c:{c.id}", "conn", connection_cells(c, now, rates.get(c.id, 0.0), widths=widths, labels=labels),
                           state_tone(c.state), connection=c) for c in shown]
        return RowSet(rows, live, matched, 0, matched - len(shown))

    groups: dict[str, Group] = {}
    for conn in conns:
        name = group_key(conn, group_by)
        group = groups.get(name)
        if group is None:
            group = groups[name] = Group(name)
        group.connections.append(conn)
        group.bytes_up += conn.bytes_up
        group.bytes_down += conn.bytes_down
        group.rate += rates.get(conn.id, 0.0)
    for group in groups.values():
        group.errors = group_errors(group_by, group.key, per_route or {}, per_upstream or {}, sni_errors or {})
        if group.key in expanded:  # only open groups show members, so only they need sorting
            group.connections.sort(key=key, reverse=reverse)

    ordered = _order_groups(list(groups.values()), sort, reverse)
    rows: list[DisplayRow] = []
    truncated = 0
    for group in ordered:
        is_open = group.key in expanded
        if len(rows) >= limit:
            truncated += 1 + (group.count if is_open else 0)
            continue
        rows.append(DisplayRow(f"g:{group.key}", "group", group_cells(group, group_by, is_open, widths, labels),
                               "error" if group.errors else "accent", group=group))
        if is_open:
            for conn in group.connections:
                if len(rows) >= limit:
                    truncated += 1
                    continue
                rows.append(DisplayRow(f"c:{conn.id}", "conn",
                                       connection_cells(conn, now, rates.get(conn.id, 0.0), indent=True,
                                                        widths=widths, labels=labels),
                                       state_tone(conn.state), connection=conn, group=group))
    return RowSet(rows, live, matched, len(groups), truncated)


def _order_groups(groups: list[Group], sort: str, reverse: bool) -> list[Group]:
    """Groups sort by their aggregate for numeric columns, else by name; busiest first is most useful."""
    if sort == "up":
        return sorted(groups, key=lambda g: g.bytes_up, reverse=not reverse)
    if sort == "down":
        return sorted(groups, key=lambda g: g.bytes_down, reverse=not reverse)
    if sort == "rate":
        return sorted(groups, key=lambda g: g.rate, reverse=not reverse)
    if sort in ("age", "state"):
        return sorted(groups, key=lambda g: (-g.count, g.key), reverse=reverse)
    return sorted(groups, key=lambda g: g.key, reverse=reverse)
