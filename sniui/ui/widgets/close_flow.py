"""Closing connections from the UI: always through a confirmation, then one notification with the outcome."""

from __future__ import annotations

from typing import Callable

from textual.app import App

from sniui.engine.model import ConnectionInfo
from sniui.ui.dashboard_text import group_description
from sniui.ui.rows import Group, GroupBy
from sniui.ui.view import EngineView
from sniui.ui.widgets.confirm import ConfirmDialog


def confirm_close_one(app: App, view: EngineView, conn: ConnectionInfo, *, on_done: Callable[[], None]) -> None:
    body = (f"#{conn.id}  {conn.client} → {conn.sni or '(no SNI)'}\n"
            f"route {conn.route or '-'}, upstream {conn.upstream_address or conn.upstream or '-'}\n\n"
            "The client and the upstream both see the connection drop.")

    def answered(confirmed: bool | None) -> None:
        if not confirmed:
            return
        if view.close_connection(conn.id):
            app.notify(f"closed connection #{conn.id}", timeout=3)
        else:
            app.notify(f"connection #{conn.id} had already closed", severity="warning")
        on_done()

    app.push_screen(ConfirmDialog("Close this connection?", body, confirm_label="Close"), answered)


def confirm_close_many(app: App, view: EngineView, ids: list[int], what: str, *,
                       on_done: Callable[[], None]) -> None:
    """hatop/k9s "kill many": every live connection of one group, after one confirmation."""
    plural = "s" if len(ids) != 1 else ""
    body = f"{len(ids)} connection{plural} in {what}\n\nTheir clients and upstreams all see the connections drop."

    def answered(confirmed: bool | None) -> None:
        if not confirmed:
            return
        done = sum(1 for connection_id in ids if view.close_connection(connection_id))
        app.notify(f"closed {done} of {len(ids)} connection{plural}", timeout=3)
        on_done()

    app.push_screen(ConfirmDialog(f"Close {len(ids)} connection{plural}?", body, confirm_label="Close all"), answered)


def close_selected(app: App, view: EngineView, *, group: Group | None, group_by: GroupBy, conn_id: int | None,
                   find: Callable[[int], tuple[ConnectionInfo | None, bool]], on_done: Callable[[], None]) -> None:
    """`k` on the dashboard: every connection of the group under the cursor, else the selected live one."""
    if view.read_only:
        return
    if group is not None:
        confirm_close_many(app, view, [c.id for c in group.connections], group_description(group_by, group.key),
                           on_done=on_done)
        return
    if conn_id is None:
        return
    conn, live = find(conn_id)
    if conn is None or not live:
        app.notify("that connection has already closed", severity="warning")
        return
    confirm_close_one(app, view, conn, on_done=on_done)
