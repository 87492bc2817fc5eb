"""Which event loop the engine runs on, for both front ends (the daemon and the TUI).

uvloop when it is installed (a declared dependency on Linux and macOS):
measured with bench/conn_cost.py it costs about a third less CPU per new
connection than asyncio's loop, headless (~290 vs ~340 µs) and with the TUI
open (~320 vs ~470 µs; Textual runs on it unchanged), with the same bulk
throughput. `SNIUI_LOOP=asyncio` keeps asyncio's loop; `SNIUI_LOOP=uvloop`
insists, and says so when uvloop is missing.
"""

from __future__ import annotations

import asyncio
import os
from typing import Awaitable, Callable, TypeVar

T = TypeVar("T")
LOOP_ENV = "SNIUI_LOOP"


def loop_factory(warn: Callable[[str], None]) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory, or None for asyncio's loop."""
    choice = os.environ.get(LOOP_ENV, "")
    if choice == "asyncio":
        return None
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        if choice == "uvloop":
            warn(f"{LOOP_ENV}=uvloop but uvloop is not installed; using asyncio's loop")
        return None
    return uvloop.new_event_loop


def run(main: Awaitable[T], warn: Callable[[str], None]) -> T:
    """asyncio.run(main) on the chosen loop."""
    factory = loop_factory(warn)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)  # type: ignore[arg-type]
