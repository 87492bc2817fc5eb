"""Per-connection bytes/s from successive snapshots, smoothed so bursty traffic does not flicker to zero.

The engine reports byte counters, not rates; the UI derives rates from the
change between the snapshots it is handed. Textual-free so it is easy to test.
"""

from __future__ import annotations

import math

from sniui.engine.model import EngineSnapshot

# Seconds over which per-connection rates are smoothed (time constant of the moving average).
RATE_SMOOTHING = 3.0


class RateTracker:
    def __init__(self, smoothing: float = RATE_SMOOTHING):
        self.smoothing = smoothing
        self.rates: dict[int, float] = {}
        self._bytes_seen: dict[int, int] = {}
        self._seen_at: float | None = None

    def update(self, snapshot: EngineSnapshot, now: float) -> dict[int, float]:
        """An exponential moving average of the change since the previous snapshot; a connection seen
        for the first time starts at its lifetime average. The same snapshot twice changes nothing."""
        if self._seen_at is not None and snapshot.taken_at <= self._seen_at:
            return self.rates
        elapsed = snapshot.taken_at - self._seen_at if self._seen_at is not None else None
        weight = 1 - math.exp(-elapsed / self.smoothing) if elapsed else 1.0
        previous = self.rates
        rates: dict[int, float] = {}
        seen: dict[int, int] = {}
        for conn in snapshot.connections:
            total = conn.bytes_up + conn.bytes_down
            before = self._bytes_seen.get(conn.id)
            if before is not None and elapsed:
                instant = max(0.0, (total - before) / elapsed)
                rates[conn.id] = weight * instant + (1 - weight) * previous.get(conn.id, instant)
            else:
                age = now - conn.started
                rates[conn.id] = total / age if age > 1 else 0.0
            seen[conn.id] = total
        self.rates, self._bytes_seen, self._seen_at = rates, seen, snapshot.taken_at
        return rates
