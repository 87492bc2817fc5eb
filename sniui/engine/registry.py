"""The live connection registry, close history, counters and per-second rates.

The relay path only bumps two integers on its connection object; everything
here is computed from those when a connection closes, once per second (the
rate ring), or when someone asks for a snapshot. Counters per route, upstream
and listener keep closed connections' totals; live bytes are added at snapshot
time, so a snapshot is exact without the relay paying per chunk.
"""

from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import TYPE_CHECKING, Iterable, Mapping

from sniui.engine.model import CloseReason, ConnectionInfo, Counters, RateSample

if TYPE_CHECKING:
    from sniui.engine.connection import Connection

RECENT_SIZE = 1000
RATE_SECONDS = 300
MAX_UPSTREAM_SCOPES = 4096


class Stats:
    """Mutable counters for one route, upstream, listener or the whole engine."""

    __slots__ = ("accepted", "active", "bytes_up", "bytes_down", "closed", "errors")

    def __init__(self) -> None:
        self.accepted = 0
        self.active = 0
        self.bytes_up = 0      # closed connections only; live bytes are added at snapshot time
        self.bytes_down = 0
        self.closed = 0
        self.errors: dict[str, int] = {}

    def opened(self) -> None:
        self.accepted += 1
        self.active += 1

    def finished(self, bytes_up: int, bytes_down: int, reason: CloseReason, *, counted_open: bool = True) -> None:
        if counted_open:
            self.active -= 1
        self.closed += 1
        self.bytes_up += bytes_up
        self.bytes_down += bytes_down
        if reason.is_error:
            self.errors[reason.value] = self.errors.get(reason.value, 0) + 1

    def error(self, reason: CloseReason) -> None:
        """Count an error against a scope the connection never opened in (e.g. a refused upstream)."""
        self.errors[reason.value] = self.errors.get(reason.value, 0) + 1

    def freeze(self, live_up: int = 0, live_down: int = 0) -> Counters:
        return Counters(
            accepted=self.accepted,
            active=self.active,
            bytes_up=self.bytes_up + live_up,
            bytes_down=self.bytes_down + live_down,
            closed=self.closed,
            errors=MappingProxyType(dict(self.errors)),
        )

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


class Registry:
    def __init__(self, recent_size: int = RECENT_SIZE, rate_seconds: int = RATE_SECONDS) -> None:
        self.live: dict[int, Connection] = {}
        self.recent: deque[ConnectionInfo] = deque(maxlen=recent_size)
        self.totals = Stats()
        self.per_route: dict[str, Stats] = {}
        self.per_upstream: dict[str, Stats] = {}
        self.per_listener: dict[str, Stats] = {}
        self.rates: deque[RateSample] = deque(maxlen=rate_seconds)
        # State of the rate ring: totals at the end of the previous sample.
        self._rate_accepted = 0
        self._rate_bytes = 0
        self._rate_errors = 0
        self._closed_bytes = 0

    # -- scopes -------------------------------------------------------------------

    def route_stats(self, label: str) -> Stats:
        stats = self.per_route.get(label)
        if stats is None:
            stats = self.per_route[label] = Stats()
        return stats

    def upstream_stats(self, address: str) -> Stats:
        stats = self.per_upstream.get(address)
        if stats is None:
            if len(self.per_upstream) >= MAX_UPSTREAM_SCOPES:
                self._forget_idle_upstreams()
            stats = self.per_upstream[address] = Stats()
        return stats

    def _forget_idle_upstreams(self) -> None:
        # Regex routes render upstream addresses from client-chosen names, so
        # this map must not grow without bound: drop the oldest idle half.
        idle = [key for key, stats in self.per_upstream.items() if stats.active == 0]
        for key in idle[: max(1, len(idle) // 2)]:
            del self.per_upstream[key]

    def listener_stats(self, address: str) -> Stats:
        stats = self.per_listener.get(address)
        if stats is None:
            stats = self.per_listener[address] = Stats()
        return stats

    # -- lifecycle ------------------------------------------------------------------

    def opened(self, connection: Connection) -> None:
        self.live[connection.id] = connection
        self.totals.opened()

    def closed(self, connection: Connection, info: ConnectionInfo) -> None:
        self.live.pop(connection.id, None)
        reason = info.close_reason or CloseReason.ERROR
        up, down = info.bytes_up, info.bytes_down
        self._closed_bytes += up + down
        self.totals.finished(up, down, reason)
        for stats in (connection.listener_stats, connection.route_stats, connection.upstream_stats):
            if stats is not None:
                stats.finished(up, down, reason)
        self.recent.appendleft(info)

    # -- observation ------------------------------------------------------------------

    def live_bytes(self) -> int:
        return sum(c.bytes_up + c.bytes_down for c in self.live.values())

    def sample_rate(self, at: float) -> RateSample:
        """Close one second of the rate ring (called by the engine's ticker)."""
        total_bytes = self._closed_bytes + self.live_bytes()
        errors = self.totals.error_total
        sample = RateSample(
            at=at,
            connections=self.totals.accepted - self._rate_accepted,
            bytes=max(0, total_bytes - self._rate_bytes),
            errors=errors - self._rate_errors,
        )
        self._rate_accepted = self.totals.accepted
        self._rate_bytes = total_bytes
        self._rate_errors = errors
        self.rates.append(sample)
        return sample

    def frozen_counters(self, connections: Iterable[Connection]) -> tuple[Counters, dict[str, Counters], dict[str, Counters], dict[str, Counters]]:
        """Totals and per-scope counters with live connections' bytes included."""
        live: dict[int, list] = {}   # id(Stats) → [stats, up, down]
        total_up = total_down = 0
        for c in connections:
            up, down = c.bytes_up, c.bytes_down
            if not (up or down):
                continue
            total_up += up
            total_down += down
            for stats in (c.listener_stats, c.route_stats, c.upstream_stats):
                if stats is not None:
                    entry = live.get(id(stats))
                    if entry is None:
                        live[id(stats)] = [stats, up, down]
                    else:
                        entry[1] += up
                        entry[2] += down

        def frozen(scopes: Mapping[str, Stats]) -> dict[str, Counters]:
            out = {}
            for key, stats in scopes.items():
                entry = live.get(id(stats))
                out[key] = stats.freeze(entry[1], entry[2]) if entry else stats.freeze()
            return out

        return (
            self.totals.freeze(total_up, total_down),
            frozen(self.per_route),
            frozen(self.per_upstream),
            frozen(self.per_listener),
        )
