"""What the dashboard says in words: the status line, the tab labels, the empty-table hint, group names.

Pure functions of a snapshot, the table's rows and the view settings, kept free of Textual so the
wording can be unit-tested without a screen (the dashboard only puts the results on its widgets).
"""

from __future__ import annotations

from typing import Iterable

from rich.text import Text

from sniui.engine.model import ConnectionInfo, EngineSnapshot
from sniui.ui.rows import ConnFilter, GroupBy, RowSet

GROUP_LABEL: dict[GroupBy, str] = {"flat": "flat", "sni": "by SNI", "upstream": "by upstream", "route": "by route"}


def ended_in_error(conn: ConnectionInfo) -> bool:
    return conn.close_reason is not None and conn.close_reason.is_error


def error_closes(recent: Iterable[ConnectionInfo]) -> tuple[ConnectionInfo, ...]:
    """The recently closed connections that ended in an error (the closed tab's "errors only")."""
    return tuple(c for c in recent if ended_in_error(c))


def sni_errors(recent: Iterable[ConnectionInfo]) -> dict[str, int]:
    """Error closes per server name, for the by-SNI groups; a hello without SNI counts as "(no SNI)"."""
    out: dict[str, int] = {}
    for conn in recent:
        if ended_in_error(conn):
            key = conn.sni or "(no SNI)"
            out[key] = out.get(key, 0) + 1
    return out


def tab_labels(snapshot: EngineSnapshot, *, errors_only: bool) -> dict[str, tuple[str, bool]]:
    """Each tab's label with its count, and whether it should draw the eye (servers down, errors)."""
    down = sum(1 for s in snapshot.servers if not s.up)
    errors = sum(1 for c in snapshot.recent if ended_in_error(c))
    return {
        "live": (f"Live {len(snapshot.connections)}", False),
        "closed": (f"Closed: errors only {errors}" if errors_only else
                   f"Closed {len(snapshot.recent)}" + (f" ({errors} err)" if errors else ""), errors > 0),
        "servers": (f"Servers {len(snapshot.servers)}" + (f" ({down} down)" if down else ""), down > 0),
    }


def status_line(rows: RowSet | None, *, conn_filter: ConnFilter | None, group_by: GroupBy, sort_column: str,
                sort_reverse: bool, events_dropped: int, paused: bool) -> Text:
    """The line under the tables: counts, filter, grouping, truncation, sort, dropped events, pause."""
    text = Text()
    if rows is not None:
        text.append(f"{rows.live} live")
        if conn_filter is not None:
            text.append(f" · {rows.matched} match {conn_filter.describe()}")
        if group_by != "flat":
            text.append(f" · {rows.groups} groups {GROUP_LABEL[group_by]}")
        if rows.truncated:
            text.append(f" · first {len(rows.rows)} rows shown, {rows.truncated} more: narrow with /", style="bold")
    text.append(f" · sort {sort_column} {'▲' if sort_reverse else '▼'}")
    if events_dropped:
        text.append(f" · {events_dropped} events dropped")
    if paused:
        text.append("  PAUSED (p resumes)", style="bold reverse")
    return text


def empty_hint(rows: RowSet, *, conn_filter: ConnFilter | None, demo_text: str | None = None) -> str:
    """Why the live table is empty, and what to do about it ("" when it is not empty)."""
    if rows.rows:
        return ""
    if rows.live:
        return (f"No live connection matches {conn_filter.describe() if conn_filter else 'the filter'}."
                "  esc clears the filter.")
    text = "No live connections right now.  r shows the recently closed ones."
    if demo_text:
        text += "  t sends demo traffic.\n\n" + demo_text
    return text


def group_description(group_by: GroupBy, key: str) -> str:
    """How the close confirmation names a group: "by SNI group 'shop.example.com'"."""
    return f"{GROUP_LABEL[group_by]} group {key!r}"
