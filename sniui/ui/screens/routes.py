"""The Routes screen: the staged route table, its editor, a test-match panel and the tests block.

Everything shown here is the *staged* config (the working copy), so a user can
try a change — match names against it, see which `tests:` expectations it
breaks — before it takes traffic. Hits and active counts come from the
running engine's snapshot, keyed by route label.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import DataTable, Footer, Static

from sniui.engine.model import EngineSnapshot
from sniui.ui.format import clip, human_count
from sniui.ui.screens.staged import StagedScreen
from sniui.ui.route_data import RouteRow
from sniui.ui.widgets.confirm import ConfirmDialog
from sniui.ui.widgets.match_panel import MatchPanel
from sniui.ui.widgets.route_form import FallbackForm, RouteForm
from sniui.ui.widgets.tones import tone_styles

# (key, header, width): sized so the table fits 120 columns with the cell padding.
ROUTE_COLUMNS = (
    ("delta", "", 1),
    ("index", "#", 3),
    ("kind", "Kind", 8),
    ("pattern", "Pattern", 28),
    ("route", "Route", 12),
    ("upstream", "Upstream / template", 24),
    ("mode", "Mode", 11),
    ("hits", "Hits", 6),
    ("active", "Active", 6),
)
TEST_COLUMNS = (
    ("status", "", 1),
    ("sni", "Name", 26),
    ("expect", "Expect", 26),
    ("got", "Staged decision", 26),
    ("via", "Via", 10),
    ("note", "vs running", 10),
)
_KIND_SHORT = {"trailing wildcard": "trailing"}
_DELTA = {"added": "+", "changed": "~", "moved": "↕"}


class RoutesScreen(StagedScreen):
    CSS_PATH = "routes.tcss"
    BINDINGS = [
        Binding("a", "add_route", "Add", id="routes.add", tooltip="Add a route to the staged config"),
        Binding("e", "edit_route", "Edit", id="routes.edit", tooltip="Edit the selected route (enter does the same)"),
        Binding("d", "delete_route", "Delete", id="routes.delete", tooltip="Delete the selected route (asks first)"),
        # Reordering is rare and only matters between regexes: kept out of the footer, listed in help and the palette.
        Binding("K,shift+up", "move_route(-1)", "Move up", id="routes.move_up", show=False,
                tooltip="Move the selected route earlier in file order (decides between regexes)"),
        Binding("J,shift+down", "move_route(1)", "Move down", id="routes.move_down", show=False,
                tooltip="Move the selected route later in file order"),
        Binding("t", "focus_test", "Test", id="routes.test", tooltip="Type a server name to see which route wins"),
        Binding("ctrl+t", "pin_test", "Pin test", id="routes.pin",
                tooltip="Add the tested name and its staged decision to the tests: block"),
        Binding("A", "apply", "Apply", id="routes.apply", tooltip="Show the diff, then swap the staged config into the engine"),
        Binding("ctrl+s", "save", "Save", id="routes.save", tooltip="Write the staged config to its file (atomic; keeps .bak)"),
        Binding("R", "revert", "Revert", id="routes.revert", tooltip="Drop staged edits and return to the running config"),
    ]
    MUTATING = StagedScreen.MUTATING | {"add_route", "edit_route", "delete_route", "move_route", "pin_test"}

    def __init__(self, view=None, session=None, **kwargs):
        super().__init__(view, session, **kwargs)
        self.rows: list[RouteRow] = []
        self._row_for_key: dict[str, RouteRow] = {}
        self._counts_shown: dict[str, tuple[str, str]] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="staged-status")
        table = DataTable(id="routes-table", cursor_type="row", zebra_stripes=True)
        table.border_title = "Routes (staged, in precedence order)"
        yield table
        with Vertical(id="match-box") as box:
            box.border_title = "Test a name against the staged routes (t)"
            yield MatchPanel(id="match-panel")
        tests = DataTable(id="tests-table", cursor_type="row")
        tests.border_title = "tests: (staged)"
        yield tests
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#routes-table", DataTable)
        for key, header, width in ROUTE_COLUMNS:
            table.add_column(header, key=key, width=width)
        tests = self.query_one("#tests-table", DataTable)
        for key, header, width in TEST_COLUMNS:
            tests.add_column(header, key=key, width=width)
        self.staged_ready()
        self.show_snapshot(self.view.snapshot())
        table.focus()

    # -- selection ---------------------------------------------------------------

    @property
    def selected_row(self) -> RouteRow | None:
        table = self.query_one("#routes-table", DataTable)
        if not self.rows or table.cursor_row < 0 or table.cursor_row >= len(self.rows):
            return None
        return self.rows[table.cursor_row]

    @property
    def selected_route(self) -> int | None:
        row = self.selected_row
        return row.route_index if row is not None else None

    def select_route(self, index: int) -> None:
        for position, row in enumerate(self.rows):
            if row.route_index == index:
                self.query_one("#routes-table", DataTable).move_cursor(row=position)
                return

    # -- drawing -------------------------------------------------------------------

    def staged_changed(self) -> None:
        session = self.session
        keep = self.selected_route
        keep_position = self.query_one("#routes-table", DataTable).cursor_row
        self.rows = session.rows()
        diff = session.diff()
        deltas = {c.new_index: _DELTA[c.kind] for c in diff.routes if c.new_index is not None and c.kind in _DELTA}
        tones = tone_styles(self.app)
        table = self.query_one("#routes-table", DataTable)
        with self.app.batch_update():
            table.clear()
            self._counts_shown.clear()
            for row in self.rows:
                style = tones["error"] if row.kind == "invalid" else (tones["muted"] if row.route_index is None else None)
                delta = deltas.get(row.route_index, "") if row.route_index is not None else ""
                cells = [
                    Text(delta, style=tones["warning"]),
                    Text(str(row.route_index) if row.route_index is not None else "", style=tones["muted"]),
                    Text(_KIND_SHORT.get(row.kind, row.kind), style=style or ""),
                    Text(clip(row.pattern, 28), style=style or ""),
                    Text(clip(row.label, 12)),
                    Text(clip(row.upstream, 24)),
                    Text("terminate" if row.mode == "terminate" else ("passthrough" if row.route_index is not None else ""),
                         style=tones["accent"] if row.mode == "terminate" else ""),
                    Text("", justify="right"),
                    Text("", justify="right"),
                ]
                table.add_row(*cells, key=row.key)
            if keep is not None:
                self.select_route(min(keep, max(0, len(session.routes) - 1)))
            elif self.rows:
                table.move_cursor(row=min(max(keep_position, 0), len(self.rows) - 1))
            self._draw_tests()
            self.query_one(MatchPanel).set_table(session.staged_table())
        self._draw_counts(self.view.snapshot())

    def _draw_tests(self) -> None:
        session = self.session
        tests = self.query_one("#tests-table", DataTable)
        tests.clear()
        outcomes = session.expectations()
        changes = {c.after.index: c for c in session.diff().tests}
        tones = tone_styles(self.app)
        for outcome in outcomes:
            change = changes.get(outcome.index)
            note = ""
            if change is not None:
                note = "now fails" if change.breaks else ("now passes" if change.fixes else "changes")
            tone = tones["success"] if outcome.passed else tones["error"]
            tests.add_row(
                Text("✓" if outcome.passed else "✗", style=tone),
                Text(clip(outcome.sni or "(no SNI)", 26)),
                Text(clip(outcome.expect, 26)),
                Text(clip(outcome.result, 26), style=tone),
                Text(clip(outcome.route or "", 10)),
                Text(note, style=tones["error"] if change and change.breaks else tones["warning"]),
                key=str(outcome.index),
            )
        passed = sum(o.passed for o in outcomes)
        if session.validate().ok:
            tests.border_title = f"tests: {passed}/{len(outcomes)} pass against the staged routes" if outcomes else \
                "tests: none — add expectations to the config's tests: block"
        else:
            tests.border_title = "tests: not run — the staged config has errors"
        tests.set_class(passed < len(outcomes), "-failing")

    def show_snapshot(self, snapshot: EngineSnapshot) -> None:
        super().show_snapshot(snapshot)
        if self._ready:
            self._draw_counts(snapshot)

    def _draw_counts(self, snapshot: EngineSnapshot) -> None:
        """Hits and active per route from the running engine; only changed cells are touched."""
        table = self.query_one("#routes-table", DataTable)
        running = set(self.session.running.route_labels()) | {"default", "no_sni"}
        for row in self.rows:
            counters = snapshot.per_route.get(row.label) if row.label in running else None
            shown = (human_count(counters.accepted), human_count(counters.active)) if counters else ("-", "-")
            if row.route_index is not None and row.pattern_index > 0:
                shown = ("", "")   # a route's counts once, on its first pattern
            if self._counts_shown.get(row.key) == shown:
                continue
            self._counts_shown[row.key] = shown
            table.update_cell(row.key, "hits", Text(shown[0], justify="right"))
            table.update_cell(row.key, "active", Text(shown[1], justify="right"))

    # -- editing ---------------------------------------------------------------------

    def _form(self, title: str, index: int | None, route: dict | None) -> RouteForm:
        session = self.session
        data = session.data
        return RouteForm(
            title,
            lambda candidate: session.check_route(candidate, index),
            route,
            upstream_names=sorted(data.get("upstreams") or {}),
            certificate_names=sorted(data.get("certificates") or {}),
        )

    def action_add_route(self) -> None:
        def done(route: dict | None) -> None:
            if route is None:
                return
            index = self.session.add_route(route)
            self.sync_staged()
            self.select_route(index)
            self.notify(f"Route staged as routes[{index}]; A applies it.", title="Add route")

        self.app.push_screen(self._form("Add a route", None, None), done)

    def action_edit_route(self) -> None:
        index = self.selected_route
        if index is None:
            row = self.selected_row
            if row is not None:
                self.edit_fallback(row.kind)
            return
        label = self.session.labels()[index]

        def done(route: dict | None) -> None:
            if route is None:
                return
            self.session.replace_route(index, route)
            self.sync_staged()
            self.select_route(index)

        self.app.push_screen(self._form(f"Edit route routes[{index}] {label}", index, self.session.route(index)), done)

    def edit_fallback(self, name: str) -> None:
        """`default` or `no_sni`: the rows that catch what no route does."""
        session = self.session

        def done(data: dict | None) -> None:
            if data is None:
                return
            session.set_fallback(name, data)
            self.sync_staged()
            self.notify(f"{name} staged; A applies it.", title=f"Edit {name}")

        self.app.push_screen(FallbackForm(name, lambda data: session.check_fallback(name, data), session.fallback(name),
                                          upstream_names=sorted(session.data.get("upstreams") or {})), done)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "routes-table":
            event.stop()
            if not self.view.read_only:
                self.action_edit_route()
        elif event.data_table.id == "tests-table":
            # Enter on a saved test puts its name into the match panel, to see the why.
            event.stop()
            outcomes = self.session.expectations()
            index = int(event.row_key.value or 0)
            if index < len(outcomes):
                panel = self.query_one(MatchPanel)
                panel.query_one("#match-alpn").value = outcomes[index].alpn or ""  # type: ignore[attr-defined]
                panel.name_input.value = outcomes[index].sni or "-"
                panel.name_input.focus()

    def action_delete_route(self) -> None:
        if self.focused is self.query_one("#tests-table"):
            self.delete_test()
            return
        index = self.selected_route
        if index is None:
            self.notify("Select a route to delete (default and no_sni cannot be deleted).", severity="warning")
            return
        label = self.session.labels()[index]
        route = self.session.route(index)

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.session.delete_route(index)
                self.sync_staged()
                self.notify(f"Route {label} removed from the staged config; A applies.", title="Delete route")

        sni = ", ".join(route.get("sni") or [])
        self.app.push_screen(ConfirmDialog(f"Delete route {label}?", f"routes[{index}]: {sni} → {route.get('upstream')}\n"
                                           "Only the staged config changes until you apply.", confirm_label="Delete"),
                             answered)

    def action_move_route(self, delta: int) -> None:
        index = self.selected_route
        if index is None:
            return
        target = self.session.move_route(index, delta)
        if target != index:
            self.sync_staged()
            self.select_route(target)

    def action_pin_test(self) -> None:
        panel = self.query_one(MatchPanel)
        decision = panel.decision
        if decision is None:
            self.notify("Test a name first (t), then pin its decision as a test.", severity="warning")
            return
        expect = "reject" if decision.action == "reject" else (decision.upstream or "")
        name = panel.name_input.value.strip()
        index = self.session.add_test(None if name == "-" else name, expect, decision.alpn)
        self.sync_staged()
        self.notify(f"tests[{index}]: {name} → {expect} staged; it is checked on every change from now on.",
                    title="Pin as test")

    def delete_test(self) -> None:
        tests = self.query_one("#tests-table", DataTable)
        outcomes = self.session.expectations()
        if not outcomes or not (0 <= tests.cursor_row < len(outcomes)):
            return
        outcome = outcomes[tests.cursor_row]

        def answered(confirmed: bool | None) -> None:
            if confirmed:
                self.session.remove_test(outcome.index)
                self.sync_staged()

        self.app.push_screen(ConfirmDialog(f"Remove test {outcome.sni or '(no SNI)'}?",
                                           f"expect {outcome.expect}; only the staged config changes until you apply.",
                                           confirm_label="Remove"), answered)

    def on_match_panel_leave(self, event: MatchPanel.Leave) -> None:
        event.stop()
        self.query_one("#routes-table", DataTable).focus()

    def action_focus_test(self) -> None:
        self.query_one(MatchPanel).name_input.focus()
