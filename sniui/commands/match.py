"""`sniui match -c FILE NAME...`: explain the routing decision for each name."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from sniui.commands.common import load_or_report
from sniui.routing import Decision, RouteTable

NO_SNI = "-"


def render_decision(decision: Decision) -> RenderableType:
    """The verdict, the captures, then a table of every candidate pattern and why it won or lost."""
    lines = decision.explanation()
    header = Text(lines[0], style="bold red" if decision.action == "reject" else "bold green")
    parts: list[RenderableType] = [header]
    if decision.captures or decision.groups:
        parts.append(Text("  " + lines[1], style="cyan"))
    if decision.candidates:
        table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
        for column in ("mark", "kind", "pattern", "route", "reason"):
            table.add_column(column, overflow="fold")
        for c in decision.candidates:
            mark, style = ("✓", "green") if c.won else (("·", "yellow") if c.matched else ("✗", "dim"))
            # Unnamed routes are labelled by their first pattern; don't print it twice.
            route = Text(f"route {c.route}" if c.route != c.pattern else "")
            table.add_row(" " + mark, c.kind, Text(c.pattern), route, c.reason, style=style)
        parts.append(table)
    return Group(*parts, Text(""))


def run_match(config_path: Path, names: list[str], *, alpn: str | None = None, as_json: bool = False) -> int:
    loaded = load_or_report(config_path)
    if loaded is None:
        return 2
    table = RouteTable(loaded.config)
    decisions = [table.match(None if name == NO_SNI else name, alpn, explain=True) for name in names]
    if as_json:
        json.dump([d.to_json() for d in decisions], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    else:
        console = Console(highlight=False)
        for decision in decisions:
            console.print(render_decision(decision))
    return 0
