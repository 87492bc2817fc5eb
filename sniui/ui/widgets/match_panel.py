"""The test-match panel: type a server name, see the routing decision as you type.

It calls the same `RouteTable.match(..., explain=True)` as the engine and
`sniui match`, against whatever table the screen hands it (the staged one, so
a route can be tried before it takes traffic). Whether the rendered upstream
resolves is checked in a worker with a short timeout, so a slow resolver never
holds up typing.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Mapping

from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.timer import Timer
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Static

from sniui.config.addresses import is_ip_literal, parse_host_port
from sniui.routing.table import Decision, RouteTable
from sniui.ui.widgets.tones import tone_styles

# Long enough for a healthy resolver, short enough that a dead one is reported
# while the user is still looking at the panel.
RESOLVE_TIMEOUT = 2.0
# Seconds of no typing before a lookup starts.
RESOLVE_DEBOUNCE = 0.4


def _targets(decision: Decision, table: RouteTable) -> list[str]:
    """The host:port strings the engine would connect to for this decision."""
    if decision.action != "route" or not decision.upstream:
        return []
    if decision.upstream_group:
        group = table.config.upstreams.get(decision.upstream_group)
        return list(group.servers) if group else []
    return [decision.upstream]


def decision_view(decision: Decision, tones: Mapping[str, Style]) -> Group:
    """The decision in `sniui match`'s words: the summary and captures as its first lines, then
    every candidate pattern as a grid row (mark, kind, pattern, route, why), so long regexes
    and reasons wrap inside their own column instead of across the panel."""
    lines = decision.explanation()
    header = Text(lines[0], style=tones["error" if decision.action == "reject" else "success"] + Style(bold=True))
    # explanation() puts captures (or positional groups) right after the summary, unindented.
    extra = [Text(line, style=Style(bold=True)) for line in lines[1:] if not line.startswith("  ")]
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)                    # ✓ won · matched but lost ✗ no match
    grid.add_column(no_wrap=True)                    # kind
    grid.add_column(overflow="fold", ratio=3)        # pattern
    grid.add_column(no_wrap=True)                    # route
    grid.add_column(overflow="fold", ratio=4)        # why
    for c in decision.candidates:
        mark, tone = ("✓", "success") if c.won else (("·", "warning") if c.matched else ("✗", "muted"))
        style = tones[tone]
        grid.add_row(Text(mark, style=style), Text(c.kind, style=style), Text(c.pattern, style=style),
                     Text(f"[{c.route}]", style=style), Text(c.reason, style=style))
    return Group(header, *extra, grid)


class MatchPanel(Vertical):
    """Name and ALPN inputs over the decision, its explanation and a resolve check."""

    class Leave(Message):
        """The user is done testing names (esc): the screen decides where focus goes."""

    BINDINGS = [
        Binding("escape", "leave", "Back", id="match_panel.leave",
                tooltip="Leave the test panel (what you typed stays)"),
    ]

    DEFAULT_CSS = """
    MatchPanel { height: 1fr; }
    MatchPanel > Horizontal { height: auto; }
    MatchPanel #match-name { width: 2fr; }
    MatchPanel #match-alpn { width: 1fr; max-width: 24; }
    MatchPanel #match-resolve { height: auto; padding: 0 1; }
    MatchPanel #match-resolve.-fail { color: $text-error; }
    MatchPanel #match-resolve.-ok { color: $text-success; }
    MatchPanel #match-scroll { height: 1fr; }
    MatchPanel #match-result { padding: 0 1; }
    """

    def __init__(self, table: RouteTable | None = None, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._table = table
        self.decision: Decision | None = None
        self.resolve_state: str = ""     # "", "resolving", "ok", "fail": tests read it, CSS shows it
        self._resolve_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Input(placeholder="server name to test, e.g. shop.example.com", id="match-name",
                        tooltip="Type a server name: the decision against the staged routes updates as you type")
            yield Input(placeholder="ALPN (optional)", id="match-alpn", tooltip="Optional ALPN the client offers, e.g. h2")
        yield Static("", id="match-resolve")
        with VerticalScroll(id="match-scroll"):
            yield Static(Text("Type a name above to see which route wins and why.", style="dim"), id="match-result")

    def action_leave(self) -> None:
        self.post_message(self.Leave())

    @property
    def name_input(self) -> Input:
        return self.query_one("#match-name", Input)

    def set_table(self, table: RouteTable | None) -> None:
        """Match against a new table (the staged one changed); keeps what the user typed."""
        self._table = table
        self.refresh_decision()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.refresh_decision()

    def refresh_decision(self) -> None:
        if not self.is_mounted:
            return
        name = self.query_one("#match-name", Input).value.strip()
        alpn = self.query_one("#match-alpn", Input).value.strip() or None
        result = self.query_one("#match-result", Static)
        if self._table is None:
            self.decision = None
            result.update(Text("The staged config has errors: fix them to test names against it.", style=tone_styles(self.app)["error"]))
            self._show_resolve("", "")
            return
        if not name:
            self.decision = None
            result.update(Text("Type a name above to see which route wins and why.", style="dim"))
            self._show_resolve("", "")
            return
        # A name with a "-" alone stands for "no SNI", as in `sniui match -`.
        decision = self._table.match(None if name == "-" else name, alpn, explain=True)
        self.decision = decision
        result.update(decision_view(decision, tone_styles(self.app)))
        self._check_resolution(decision)

    # -- does the rendered upstream resolve? ----------------------------------

    def _show_resolve(self, state: str, message: str) -> None:
        self.resolve_state = state
        widget = self.query_one("#match-resolve", Static)
        widget.set_class(state == "fail", "-fail")
        widget.set_class(state == "ok", "-ok")
        widget.update(Text(message))

    def _check_resolution(self, decision: Decision) -> None:
        assert self._table is not None
        targets = _targets(decision, self._table)
        if self._resolve_timer is not None:
            self._resolve_timer.stop()
        if not targets:
            self.workers.cancel_group(self, "resolve")
            self._show_resolve("", "")
            return
        hosts = []
        for target in targets:
            try:
                hosts.append(parse_host_port(target))
            except ValueError as exc:
                self._show_resolve("fail", f"resolve: {target}: {exc}")
                return
        if all(is_ip_literal(h.host) for h in hosts):
            # Nothing to look up: answer at once (and keep snapshots free of timing).
            self._show_resolve("ok", "resolve: ok — " + ", ".join(str(h) for h in hosts) + " (IP literal)")
            return
        self._show_resolve("resolving", "resolve: resolving " + ", ".join(str(h) for h in hosts) + " …")
        # Wait for a pause in typing: every partial name would otherwise start a lookup.
        if self._resolve_timer is not None:
            self._resolve_timer.stop()
        self._resolve_timer = self.set_timer(RESOLVE_DEBOUNCE, lambda: self._resolve(tuple(hosts)))

    @work(exclusive=True, group="resolve", exit_on_error=False)
    async def _resolve(self, hosts: tuple) -> None:
        loop = asyncio.get_running_loop()
        results: list[str] = []
        failed = False
        for host in hosts:
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host.host, host.port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT)
            except asyncio.TimeoutError:
                failed = True
                results.append(f"{host.host}: no answer within {RESOLVE_TIMEOUT:g}s")
            except OSError as exc:
                failed = True
                results.append(f"{host.host}: {exc.strerror or exc}")
            else:
                addresses = sorted({info[4][0] for info in infos})
                results.append(f"{host.host} → {', '.join(addresses[:3])}" + (" …" if len(addresses) > 3 else ""))
        self._show_resolve("fail" if failed else "ok", ("resolve: FAILED — " if failed else "resolve: ok — ") + "; ".join(results))
