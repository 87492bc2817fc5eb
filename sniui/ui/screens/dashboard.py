"""The dashboard: header strip, live connections (flat or grouped), detail, recent closes, servers.

The app's refresh loop calls `show_snapshot` a few times a second; everything
here is derived from that one immutable snapshot, so a slow frame never holds
up the engine, and a paused dashboard simply ignores the calls.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static, TabbedContent, TabPane

from sniui.engine.model import ConnectionInfo, EngineSnapshot
from sniui.ui.connection_lookup import ConnectionIndex, RouteExplainer, connection_id_of, group_at
from sniui.ui.dashboard_text import empty_hint, error_closes, sni_errors, status_line, tab_labels
from sniui.ui.rates import RateTracker
from sniui.ui.rows import (
    COLUMN_KEYS, GROUP_MODES, NARROW, WIDE, ConnFilter, Group, GroupBy, RowSet, build_rows, parse_filter,
)
from sniui.ui.view import EngineView
from sniui.ui.widgets.close_flow import close_selected
from sniui.ui.widgets.connections import ConnectionsTable
from sniui.ui.widgets.detail import DetailPanel
from sniui.ui.widgets.filter import FilterBar
from sniui.ui.widgets.header import HeaderStrip
from sniui.ui.widgets.line import Line
from sniui.ui.widgets.tables import RecentTable, ServersTable
from sniui.ui.widgets.tones import tone_styles

# Numbers are most useful biggest-first; names and ages read best ascending.
_DESCENDING_FIRST = {"up", "down", "rate"}
# Below this width the detail panel takes the whole screen instead of sharing it.
_NARROW = 110
# Below this width the name columns narrow so state and bytes stay on screen.
_NARROW_COLUMNS = 100


class DashboardScreen(Screen):
    CSS_PATH = "dashboard.tcss"
    BINDINGS = [
        Binding("slash", "filter", "Filter", id="dashboard.filter",
                tooltip="Filter by SNI, client or upstream: text or glob, ! inverts, esc clears"),
        Binding("g", "cycle_group", "Group", id="dashboard.group",
                tooltip="Group connections: flat → by SNI → by upstream → by route"),
        Binding("s", "cycle_sort", "Sort", id="dashboard.sort", tooltip="Sort by the next column"),
        Binding("S", "reverse_sort", "Reverse", id="dashboard.reverse", show=False, tooltip="Reverse the sort order"),
        Binding("k", "close_connection", "Close", id="dashboard.close",
                tooltip="Close the selected connection, or every connection of the selected group (asks first)"),
        Binding("p", "toggle_pause", "Pause", id="dashboard.pause", tooltip="Freeze the dashboard; traffic keeps flowing"),
        Binding("c", "show_tab('live')", "Live", id="dashboard.live", show=False, tooltip="Live connections"),
        Binding("r", "show_tab('closed')", "Closed", id="dashboard.closed", show=False,
                tooltip="Recently closed connections with their close reasons"),
        Binding("u", "show_tab('servers')", "Servers", id="dashboard.servers", show=False,
                tooltip="Upstream servers and their health"),
        Binding("e", "toggle_errors", "Errors only", id="dashboard.errors", show=False,
                tooltip="Recently closed: show only connections that ended in an error, or all again"),
        Binding("escape", "back", "Back", id="dashboard.back", show=False,
                tooltip="Close the detail panel, else clear the filter"),
    ]

    paused: reactive[bool] = reactive(False, init=False)
    group_by: reactive[GroupBy] = reactive("flat", init=False)

    def __init__(self, view: EngineView, **kwargs):
        super().__init__(**kwargs)
        self.view = view
        self.conn_filter: ConnFilter | None = None
        self.sort_column = "age"
        self.sort_reverse = False
        self.expanded: set[str] = set()
        self.detail_id: int | None = None
        self.errors_only = False
        self.last_rows: RowSet | None = None
        self._snapshot: EngineSnapshot | None = None
        self._rate_tracker = RateTracker()
        self._rates: dict[int, float] = {}
        self._close_state: bool | None = None   # last availability of close_connection shown in the footer
        self._explainer = RouteExplainer()
        self._rows_key: tuple | None = None
        self._index = ConnectionIndex()

    # -- layout ---------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HeaderStrip(id="header")
        yield FilterBar("filter: text or glob over SNI, client, upstream; !text inverts; esc clears", id="filter")
        with Horizontal(id="main"):
            with TabbedContent(id="tabs", initial="live"):
                with TabPane("Live", id="live"):
                    yield ConnectionsTable(id="connections")
                    yield Static(id="empty", markup=False)
                with TabPane("Closed", id="closed"):
                    yield RecentTable(id="recent")
                with TabPane("Servers", id="servers"):
                    yield ServersTable(id="servers-table")
            yield DetailPanel(id="detail")
        yield Line(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(ConnectionsTable).focus()
        self._apply_width(self.size.width)
        self.show_snapshot(self.view.snapshot())
        self.watch(self.app, "unapplied", lambda: self._snapshot and self.show_snapshot(self._snapshot), init=False)

    def on_resize(self, event) -> None:
        self._apply_width(event.size.width)

    def _apply_width(self, width: int) -> None:
        if width <= 0:
            return  # not laid out yet; on_resize brings the real width
        narrow = 0 < width < _NARROW
        self.set_class(narrow, "-narrow")
        if self.query_one(ConnectionsTable).set_widths(NARROW if width < _NARROW_COLUMNS else WIDE):
            self._rows_key = None
            self.refresh_now()

    def on_screen_resume(self) -> None:
        # Coming back from another screen: show the present at once, not at the next tick.
        if self.is_mounted:
            self.show_snapshot(self.view.snapshot())

    # -- refresh --------------------------------------------------------------

    def show_snapshot(self, snapshot: EngineSnapshot) -> None:
        self._snapshot = snapshot
        now = self.view.now()
        self._rates = self._rate_tracker.update(snapshot, now)
        with self.app.batch_update():
            self.query_one(HeaderStrip).show(
                snapshot, now=now, config_path=str(self.view.config_path) if self.view.config_path else None,
                unapplied=bool(getattr(self.app, "unapplied", False)), read_only=self.view.read_only)
            tabs = self.query_one(TabbedContent)
            active = tabs.active
            # Only the visible table pays for rendering; the tab labels still carry the counts.
            if active == "live":
                self._show_connections(snapshot, now)
            elif active == "closed":
                recent = error_closes(snapshot.recent) if self.errors_only else snapshot.recent
                self.query_one(RecentTable).show(recent, now)
            else:
                self.query_one(ServersTable).show(snapshot.servers, now)
            self._label_tabs(snapshot)
            if self.detail_id is not None:
                self._show_detail(now)
            self._show_status(snapshot)
        self._sync_bindings()   # the selected connection may have closed since the last refresh

    def compute_rows(self, snapshot: EngineSnapshot, now: float) -> RowSet:
        return build_rows(
            snapshot.connections, now=now, rates=self._rates, conn_filter=self.conn_filter, group_by=self.group_by,
            sort=self.sort_column, reverse=self.sort_reverse != (self.sort_column in _DESCENDING_FIRST),
            expanded=self.expanded, per_route=snapshot.per_route, per_upstream=snapshot.per_upstream,
            sni_errors=sni_errors(snapshot.recent) if self.group_by == "sni" else None,
            widths=self.query_one(ConnectionsTable).widths,
            labels=getattr(self.view, "address_labels", None) or {},
        )

    def _show_connections(self, snapshot: EngineSnapshot, now: float) -> None:
        # The same snapshot with the same view settings gives the same rows: skip the work.
        key = (id(snapshot), now, self.conn_filter, self.group_by, self.sort_column, self.sort_reverse,
               frozenset(self.expanded), self.app.theme)
        if key == self._rows_key:
            return
        self._rows_key = key
        rows = self.compute_rows(snapshot, now)
        self.last_rows = rows
        self.query_one(ConnectionsTable).show_rows(rows.rows)
        self._show_empty(rows)

    def _show_empty(self, rows: RowSet) -> None:
        """An empty table says why, and what to do about it."""
        self.set_class(not rows.rows, "-empty")
        if not rows.rows:
            self.query_one("#empty", Static).update(
                empty_hint(rows, conn_filter=self.conn_filter, demo_text=getattr(self.app, "demo_text", None)))

    def _label_tabs(self, snapshot: EngineSnapshot) -> None:
        tabs = self.query_one(TabbedContent)
        for pane_id, (label, alert) in tab_labels(snapshot, errors_only=self.errors_only).items():
            tab = tabs.get_tab(pane_id)
            if str(tab.label) != label:
                tab.label = label
            tab.set_class(alert, "-alert")

    def _show_status(self, snapshot: EngineSnapshot) -> None:
        self.query_one("#status", Line).show(status_line(
            self.last_rows, conn_filter=self.conn_filter, group_by=self.group_by, sort_column=self.sort_column,
            sort_reverse=self.sort_reverse, events_dropped=snapshot.events_dropped, paused=self.paused))

    # -- detail ---------------------------------------------------------------

    def _find(self, connection_id: int) -> tuple[ConnectionInfo | None, bool]:
        """The connection by id in the latest snapshot, and whether it is live."""
        return self._index.find(self._snapshot, connection_id)

    def explanation(self, conn: ConnectionInfo) -> list[str]:
        """The same lines as `sniui match`, against the running table; cached per name until an apply."""
        return self._explainer.explain(self.view.table, conn)

    def _show_detail(self, now: float) -> None:
        panel = self.query_one(DetailPanel)
        assert self.detail_id is not None
        conn, _live = self._find(self.detail_id)
        if conn is None:
            panel.show_gone(self.detail_id)
            return
        panel.show(conn, now=now, rate=self._rates.get(conn.id, 0.0), explanation=self.explanation(conn),
                   styles=tone_styles(self.app), can_close=not self.view.read_only,
                   labels=getattr(self.view, "address_labels", None) or {})

    def open_detail(self, connection_id: int) -> None:
        self.detail_id = connection_id
        self.query_one(DetailPanel).add_class("-open")
        self.add_class("-detail-open")
        self._show_detail(self.view.now())
        self.refresh_bindings()

    def close_detail(self) -> None:
        self.detail_id = None
        self.query_one(DetailPanel).remove_class("-open")
        self.remove_class("-detail-open")
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#connections")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        key = str(event.row_key.value)
        if key.startswith("g:"):
            group = key[2:]
            self.expanded.symmetric_difference_update({group})
            self.refresh_now()
        else:
            self.open_detail(int(key[2:]))

    @on(DataTable.RowHighlighted, "#connections")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # While the panel is open it follows the cursor, so arrowing through rows reads like k9s' describe.
        conn_id = connection_id_of(str(event.row_key.value) if event.row_key is not None else None)
        if self.detail_id is not None and conn_id is not None:
            self.detail_id = conn_id
            self._show_detail(self.view.now())
        self._sync_bindings()

    def _sync_bindings(self) -> None:
        """Refresh the footer only when the close action's availability changed.

        Every refresh re-highlights the cursor row; refreshing bindings each time rebuilt the
        footer's widgets 3x a second, which was the TUI's largest cost under connection churn.
        """
        state = self.check_action("close_connection", ())
        if state != self._close_state:
            self._close_state = state
            self.refresh_bindings()

    @on(DataTable.RowSelected, "#recent")
    def _recent_selected(self, event: DataTable.RowSelected) -> None:
        self.open_detail(int(str(event.row_key.value)[2:]))

    @on(ConnectionsTable.SortRequested)
    def _sort_requested(self, event: ConnectionsTable.SortRequested) -> None:
        if event.column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_column, self.sort_reverse = event.column, False
        self._sort_changed()

    @on(TabbedContent.TabActivated)
    def _tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_now()
        pane = event.pane
        table = pane.query(DataTable).first() if pane is not None else None
        if table is not None:
            table.focus()

    # -- filter ---------------------------------------------------------------

    @on(FilterBar.Updated)
    def _filter_changed(self, event: FilterBar.Updated) -> None:
        self.conn_filter = parse_filter(event.text)
        self.refresh_now()

    @on(FilterBar.Done)
    def _filter_done(self) -> None:
        self.query_one(ConnectionsTable).focus()

    # -- actions --------------------------------------------------------------

    def refresh_now(self) -> None:
        if self._snapshot is not None:
            self.show_snapshot(self.view.snapshot() if not self.paused else self._snapshot)

    def selected_connection_id(self) -> int | None:
        """The connection row under the cursor on the live tab, else the one the detail panel shows."""
        conn_id = None
        if self.query_one(TabbedContent).active == "live":
            conn_id = connection_id_of(self.query_one(ConnectionsTable).selected_key)
        return conn_id if conn_id is not None else self.detail_id

    def selected_group(self) -> Group | None:
        """The group row under the cursor on the live tab (grouped views only)."""
        if self.query_one(TabbedContent).active != "live":
            return None
        return group_at(self.last_rows, self.query_one(ConnectionsTable).selected_key)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "close_connection":
            if self.view.read_only:
                return False  # hidden: read-only mode shows no action that changes anything
            if self.selected_group() is not None:
                return True   # a group row: close every connection in it
            conn_id = self.selected_connection_id()
            if conn_id is None or not self._find(conn_id)[1]:
                return None   # shown but disabled: nothing live is selected
        return True

    def action_filter(self) -> None:
        self.query_one(TabbedContent).active = "live"
        self.query_one(FilterBar).open()

    def action_back(self) -> None:
        if self.detail_id is not None:
            self.close_detail()
        elif self.conn_filter is not None:
            self.query_one(FilterBar).action_clear()

    def action_cycle_group(self) -> None:
        index = GROUP_MODES.index(self.group_by)
        self.group_by = GROUP_MODES[(index + 1) % len(GROUP_MODES)]

    def watch_group_by(self) -> None:
        self.expanded.clear()  # the status line names the grouping; no toast to cover the table
        self.refresh_now()

    def action_cycle_sort(self) -> None:
        index = COLUMN_KEYS.index(self.sort_column) if self.sort_column in COLUMN_KEYS else -1
        self.sort_column, self.sort_reverse = COLUMN_KEYS[(index + 1) % len(COLUMN_KEYS)], False
        self._sort_changed()

    def action_reverse_sort(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self._sort_changed()

    def _sort_changed(self) -> None:
        self.query_one(ConnectionsTable).set_sort(self.sort_column, self.sort_reverse)
        self.refresh_now()

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused

    def watch_paused(self) -> None:
        if self._snapshot is not None:
            self._show_status(self._snapshot)

    def action_toggle_errors(self) -> None:
        self.errors_only = not self.errors_only
        tabs = self.query_one(TabbedContent)
        if tabs.active != "closed":
            tabs.active = "closed"  # activating the tab refreshes it
        else:
            self.refresh_now()

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_close_connection(self) -> None:
        close_selected(self.app, self.view, group=self.selected_group(), group_by=self.group_by,
                       conn_id=self.selected_connection_id(), find=self._find, on_done=self.refresh_now)
