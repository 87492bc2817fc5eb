"""The one interface the UI reads the engine through.

Screens and widgets never touch the engine directly: they get an `EngineView`.
`LiveEngineView` wraps a running `Engine`; `ReplayEngineView` serves fixed
snapshots, events and a fixed clock, so snapshot tests and screenshots do not
depend on ports, timing or ages.

This module must not import Textual: the replay data is also useful to tools.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable, Iterable, Mapping, Protocol, Sequence, runtime_checkable

from sniui.config import Config
from sniui.engine.model import CloseReason, ConnState, EngineSnapshot, Event
from sniui.routing.table import RouteTable

if TYPE_CHECKING:  # the engine module is imported lazily; only the type is needed here
    from sniui.engine.engine import Engine


@runtime_checkable
class EngineView(Protocol):
    read_only: bool

    @property
    def running_config(self) -> Config: ...

    @property
    def config_path(self) -> Path | None: ...

    @property
    def table(self) -> RouteTable: ...        # of the running config

    def now(self) -> float: ...                # wall clock; fixed in replay

    def snapshot(self) -> EngineSnapshot: ...

    def subscribe(self) -> AsyncIterator[Event]: ...

    async def apply(self, config: Config) -> None: ...   # raises ConfigError or EngineError

    def close_connection(self, connection_id: int) -> bool: ...


# Events arrive in bursts (a reload closes many connections at once); the
# log screen keeps up easily, so a modest queue loses nothing in practice and
# drops are counted by the engine when it does.
EVENT_QUEUE_SIZE = 2000


class LiveEngineView:
    """An `EngineView` over a real, running `Engine` in this process."""

    def __init__(self, engine: "Engine", *, config_path: Path | None = None, read_only: bool = False,
                 address_labels: Mapping[str, str] | None = None, after_apply: Callable[[], None] | None = None):
        self.engine = engine
        self.read_only = read_only
        self._config_path = config_path
        # Run once the engine has taken a config (the TUI lets the old config's objects go: engine/heap.py).
        self.after_apply = after_apply
        # Optional names for upstream addresses ("127.0.0.1:40211" → "shop-2"), e.g. the demo's servers.
        self.address_labels: Mapping[str, str] = address_labels or {}

    @property
    def running_config(self) -> Config:
        return self.engine.config

    @property
    def config_path(self) -> Path | None:
        return self._config_path

    @property
    def table(self) -> RouteTable:
        return self.engine.table

    def now(self) -> float:
        return time.time()

    def snapshot(self) -> EngineSnapshot:
        return self.engine.snapshot()

    def subscribe(self) -> AsyncIterator[Event]:
        return self.engine.subscribe(EVENT_QUEUE_SIZE)

    async def apply(self, config: Config) -> None:
        if self.read_only:
            raise PermissionError("read-only: applying a config is disabled")
        await self.engine.apply(config)
        if self.after_apply is not None:
            self.after_apply()

    def close_connection(self, connection_id: int) -> bool:
        if self.read_only:
            return False
        return self.engine.close_connection(connection_id)


class ReplayEngineView:
    """An `EngineView` over fixed data: no sockets, no clock.

    `snapshots` are served in turn, one per `advance()`; the last one stays.
    `subscribe()` yields the fixed events, then waits forever like a quiet
    engine. `apply` swaps the config (and its table); `close_connection` moves
    a live connection to the recently-closed list, as the engine would.
    """

    def __init__(
        self,
        config: Config,
        snapshots: Sequence[EngineSnapshot],
        events: Iterable[Event] = (),
        *,
        now: float | None = None,
        config_path: Path | None = None,
        read_only: bool = False,
    ):
        if not snapshots:
            raise ValueError("a replay needs at least one snapshot")
        self.read_only = read_only
        self._config = config
        self._table = RouteTable(config)
        self._snapshots = list(snapshots)
        self._index = 0
        self._events = list(events)
        self._now = now if now is not None else self._snapshots[0].taken_at
        self._config_path = config_path
        self.applied: list[Config] = []

    @property
    def running_config(self) -> Config:
        return self._config

    @property
    def config_path(self) -> Path | None:
        return self._config_path

    @property
    def table(self) -> RouteTable:
        return self._table

    def now(self) -> float:
        return self._now

    def snapshot(self) -> EngineSnapshot:
        return self._snapshots[self._index]

    def advance(self) -> EngineSnapshot:
        """Step to the next fixed snapshot (tests use this to simulate time passing)."""
        if self._index + 1 < len(self._snapshots):
            self._index += 1
            self._now = max(self._now, self._snapshots[self._index].taken_at)
        return self.snapshot()

    def replace_snapshot(self, snapshot: EngineSnapshot) -> None:
        self._snapshots[self._index] = snapshot

    async def subscribe(self) -> AsyncIterator[Event]:  # type: ignore[override]
        for event in self._events:
            yield event
        await asyncio.Event().wait()  # a quiet engine: nothing more, ever

    async def apply(self, config: Config) -> None:
        if self.read_only:
            raise PermissionError("read-only: applying a config is disabled")
        table = RouteTable(config)  # compiling is the validation the engine would do
        self._config, self._table = config, table
        self.applied.append(config)

    def close_connection(self, connection_id: int) -> bool:
        if self.read_only:
            return False
        snap = self.snapshot()
        for conn in snap.connections:
            if conn.id == connection_id:
                closed = dataclasses.replace(conn, state=ConnState.CLOSED, closed=self._now,
                                             close_reason=CloseReason.KILLED, close_detail="closed from the UI")
                self.replace_snapshot(dataclasses.replace(
                    snap,
                    connections=tuple(c for c in snap.connections if c.id != connection_id),
                    recent=(closed,) + snap.recent,
                ))
                return True
        return False
