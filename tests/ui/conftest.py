"""UI test fixtures: the replay app (fixed data, fixed clock), and helpers to wait with a deadline."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Callable

import pytest

# Clock times in the logs are local time; pin the zone so snapshots match everywhere.
os.environ["TZ"] = "UTC"
time.tzset()

DEADLINE = 10.0


@pytest.fixture
def replay_app():
    """A factory: the real app over the replay dataset, with the refresh loop off (tests refresh explicitly)."""
    from sniui.ui.app import create_app
    from sniui.ui.replay_data import replay_view

    def make(connection_count: int = 40, *, read_only: bool = False):
        return create_app(replay_view(connection_count, read_only=read_only), refresh_interval=None)

    return make


async def wait_for(pilot, predicate: Callable[[], object], *, timeout: float = DEADLINE, what: str = "condition"):
    """Let the app run until `predicate()` holds; fail after `timeout` seconds (a deadline, not a speed check)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await pilot.pause(0.02)


def screen_text(app) -> str:
    """The current screen as plain text, as a user would read it (no colours, no SVG escaping)."""
    import io

    from rich.console import Console

    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), force_terminal=True, color_system=None,
                      record=True, legacy_windows=False, safe_box=False)
    console.print(app.screen._compositor.render_update(full=True, screen_stack=app._background_screens))
    return console.export_text()
