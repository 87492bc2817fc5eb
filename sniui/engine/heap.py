"""Garbage collection for a process whose long-lived state is built before it serves.

Start-up leaves tens of thousands of objects that live as long as the process
(modules, the config's pydantic models, compiled routes, TLS contexts). The
cyclic collector's oldest generation re-scans all of them on every full
collection: 25-40 ms with the loop stopped, which was the asyncio row's p99
latency. Freezing them after start-up moves them out of the collector's view;
what connections allocate later is still collected as before.

A frozen object that later becomes cyclic garbage (the previous config's
objects after a reload) is never collected while frozen, so `settle_heap`
unfreezes first: call it after start-up and again after each reload.
"""

from __future__ import annotations

import gc


def settle_heap() -> None:
    """Collect everything collectable once, then keep every survivor out of later collections."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
