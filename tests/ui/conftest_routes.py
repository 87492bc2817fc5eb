"""A tiny harness App for the Routes and Certificates screens.

It pushes one screen over an `EngineView` (the replay view, or a ReplayEngineView
over a test's own config), so these tests do not depend on the app shell.
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from textual.app import App
from textual.reactive import reactive

from sniui.config import Config
from sniui.engine.model import Counters, EngineSnapshot
from sniui.ui.view import EngineView, ReplayEngineView

NOW = 1773480400.0


def quiet_snapshot(per_route: dict[str, Counters] | None = None) -> EngineSnapshot:
    return EngineSnapshot(
        taken_at=NOW, started_at=NOW - 60, config_source=None, config_generation=1, listeners=(),
        connections=(), recent=(), totals=Counters(), per_route=MappingProxyType(per_route or {}),
        per_upstream=MappingProxyType({}), servers=(), rates=(),
    )


def view_for(config: Config, *, path: Path | None = None, read_only: bool = False,
             per_route: dict[str, Counters] | None = None) -> ReplayEngineView:
    return ReplayEngineView(config, [quiet_snapshot(per_route)], now=NOW, config_path=path, read_only=read_only)


class ScreenHarness(App):
    """Shows one staged screen; has the App-level `unapplied` flag the real app has."""

    unapplied: reactive[bool] = reactive(False)

    def __init__(self, view: EngineView, screen_factory):
        super().__init__()
        self.view = view
        self._screen_factory = screen_factory

    def on_mount(self) -> None:
        self.push_screen(self._screen_factory(self.view))


async def settle(pilot) -> None:
    """Wait (with a deadline) until an editor dialog shows the check for what is in its fields.

    The editors validate in a thread worker, so a test reads the messages only
    once they belong to the current values.
    """
    from tests.ui.conftest import wait_for

    await pilot.pause()
    await wait_for(pilot, lambda: getattr(pilot.app.screen, "settled", True), what="the editor's check")
    await pilot.pause()


def plain(static) -> str:
    """What a Static shows, as plain text on wide lines (no wrapping to trip substring checks)."""
    import io

    from rich.console import Console

    console = Console(width=400, file=io.StringIO(), color_system=None)
    console.print(static.content)
    return console.file.getvalue()
