"""`?`: every key, grouped by screen, the filter syntax, and the demo's curl lines when running the demo."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

FILTERS = """\
Dashboard /   text matches SNI, client or upstream; * ? [ make it a glob (*.example.com)
              !text shows what does NOT match; esc clears
Logs /        words, route:NAME, sni:GLOB, level:warning; ! inverts; esc clears"""


def _screen_classes() -> list[tuple[str, type]]:
    from sniui.ui.app import SniuiApp
    from sniui.ui.screens.dashboard import DashboardScreen
    from sniui.ui.screens.logs import LogsScreen

    out: list[tuple[str, type]] = [("Everywhere", SniuiApp), ("1 Dashboard", DashboardScreen)]
    try:
        from sniui.ui.widgets.connections import ConnectionsTable

        out.append(("  connections table", ConnectionsTable))
    except ImportError:  # pragma: no cover
        pass
    for title, module, name in (("2 Routes", "sniui.ui.screens.routes", "RoutesScreen"),
                                ("3 Certificates", "sniui.ui.screens.certificates", "CertificatesScreen")):
        try:
            module_obj = __import__(module, fromlist=[name])
            out.append((title, getattr(module_obj, name)))
        except (ImportError, AttributeError):
            continue
    out.append(("4 Logs", LogsScreen))
    return out


def key_table(read_only: bool, hidden_when_read_only: set[str]) -> Table:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold", no_wrap=True)
    table.add_column(no_wrap=True)
    table.add_column(style="dim")
    for title, cls in _screen_classes():
        table.add_row(Text(title, style="underline"), "", "")
        for binding in cls.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description:
                continue
            if read_only and binding.action.partition("(")[0] in hidden_when_read_only:
                continue
            key = binding.key_display or binding.key.replace("slash", "/").replace("question_mark", "?")
            key = key.replace("escape", "esc").replace(",", " ")
            table.add_row(f"  {key}", binding.description, binding.tooltip)
    return table


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90%; max-width: 120; height: 90%; border: thick $primary 60%; background: $surface; padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close", id="help.close", tooltip="Back"),
        Binding("c", "copy_demo", "Copy curl lines", id="help.copy_demo",
                tooltip="Copy the demo's curl lines to the clipboard (OSC 52; most terminals allow it)"),
    ]

    def compose(self) -> ComposeResult:
        read_only = bool(getattr(self.app, "view", None) and self.app.view.read_only)  # type: ignore[attr-defined]
        parts = [Text("Keys", style="bold"), key_table(read_only, {"close_connection", "demo_traffic"}),
                 Text("\nFilters", style="bold"), Text(FILTERS),
                 Text("\nCommand palette: ctrl+p lists the same actions by name.", style="dim")]
        if read_only:
            parts.append(Text("Read-only: actions that change anything are hidden.", style="bold"))
        demo = getattr(self.app, "demo_text", None)
        if demo:
            # Folded, never cut: these lines are meant to be copied (c copies them whole).
            parts += [Text("\nDemo  (c copies these lines)", style="bold"), Text(demo, overflow="fold")]
        with VerticalScroll() as scroll:
            scroll.border_title = "help · esc closes"
            yield Static(Group(*parts))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "copy_demo":
            return bool(getattr(self.app, "demo_text", None))
        return True

    def action_copy_demo(self) -> None:
        demo = getattr(self.app, "demo_text", None)
        if demo:
            commands = [line.strip() for line in demo.splitlines() if line.strip().startswith(("curl ", "openssl "))]
            self.app.copy_to_clipboard("\n".join(commands) + "\n")
            self.notify(f"copied {len(commands)} command lines", timeout=3)

    def action_dismiss(self) -> None:  # type: ignore[override]
        self.dismiss(None)
