"""Answers the dashboard asks about the selected connection: which connection or group a table row key
names, where that connection is in the latest snapshot, and why it routed so.

The last two are asked often (every key binding check, every cursor move while the detail panel is
open), so both are cached: the id index per snapshot, the explanation per (SNI, ALPN) until a new route
table is applied. Free of Textual, so all of it can be tested without a screen.
"""

from __future__ import annotations

from sniui.engine.model import ConnectionInfo, EngineSnapshot
from sniui.routing import RouteTable
from sniui.ui.rows import Group, RowSet

# Row keys of the tables: "c:<id>" for a connection, "g:<group key>" for a group row.


def connection_id_of(key: str | None) -> int | None:
    """The connection id a row key names, or None for a group row (or no row)."""
    return int(key[2:]) if key and key.startswith("c:") else None


def group_at(rows: RowSet | None, key: str | None) -> Group | None:
    """The group a row key names among the rows shown, or None for a connection row (or no row)."""
    if rows is None or not key or not key.startswith("g:"):
        return None
    return next((row.group for row in rows.rows if row.key == key), None)


class ConnectionIndex:
    """A connection by id, and whether it is live, indexed once per snapshot."""

    def __init__(self) -> None:
        self._index_of: EngineSnapshot | None = None
        self._live_by_id: dict[int, ConnectionInfo] = {}
        self._recent_by_id: dict[int, ConnectionInfo] = {}

    def find(self, snapshot: EngineSnapshot | None, connection_id: int) -> tuple[ConnectionInfo | None, bool]:
        if snapshot is None:
            return None, False
        if self._index_of is not snapshot:
            self._live_by_id = {c.id: c for c in snapshot.connections}
            self._recent_by_id = {c.id: c for c in snapshot.recent}
            self._index_of = snapshot
        conn = self._live_by_id.get(connection_id)
        if conn is not None:
            return conn, True
        return self._recent_by_id.get(connection_id), False


class RouteExplainer:
    """The same lines as `sniui match` for a connection, against the running table; cached per name."""

    def __init__(self) -> None:
        self._explained: dict[tuple[str | None, str | None], list[str]] = {}
        self._table: RouteTable | None = None

    def explain(self, table: RouteTable, conn: ConnectionInfo) -> list[str]:
        if table is not self._table:   # a new table after an apply: old answers may be wrong
            self._explained, self._table = {}, table
        alpn = conn.alpn[0] if conn.alpn else None
        key = (conn.sni, alpn)
        if key not in self._explained:
            self._explained[key] = table.match(conn.sni, alpn, explain=True).explanation()
        return self._explained[key]
