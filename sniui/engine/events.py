"""The engine's lossy event stream.

Each subscriber owns a bounded queue. Publishing appends to every queue and
never awaits: when a queue is full its oldest event is dropped and counted, so
a slow consumer (a busy UI, a blocked log pipe) loses history instead of
slowing the relay.

A subscriber may name the kinds it wants. `wants_connections` tells the
engine whether anyone wants per-connection events at all, so a consumer that
only reports router-level events (the headless daemon's stderr) does not make
every connection build an event nobody reads.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Iterable

from sniui.engine.model import Event

CONNECTION_KINDS = frozenset({"connection_opened", "connection_closed", "rejected"})


class Subscription:
    """An async iterator of events with a bounded, drop-oldest queue."""

    __slots__ = ("_queue", "_waiter", "_bus", "dropped", "closed", "kinds")

    def __init__(self, bus: EventBus, maxsize: int, kinds: Iterable[str] | None = None) -> None:
        if maxsize < 1:
            raise ValueError("a subscription needs room for at least one event")
        self.kinds = None if kinds is None else frozenset(kinds)   # None: every kind
        self._queue: deque[Event] = deque(maxlen=maxsize)
        self._waiter: asyncio.Future[None] | None = None
        self._bus = bus
        self.dropped = 0
        self.closed = False

    def _push(self, event: Event) -> None:
        queue = self._queue
        if len(queue) == queue.maxlen:
            self.dropped += 1
            self._bus.dropped += 1
        queue.append(event)   # a full deque discards its oldest entry itself
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Event | None:
        """The oldest queued event, or None when the queue is empty."""
        return self._queue.popleft() if self._queue else None

    def pending(self) -> int:
        return len(self._queue)

    def close(self) -> None:
        """Stop receiving; an iterating consumer ends after the queued events."""
        if self.closed:
            return
        self.closed = True
        self._bus._remove(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self.closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._queue.popleft()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    __slots__ = ("_subscribers", "dropped", "wants_connections")

    def __init__(self) -> None:
        self._subscribers: tuple[Subscription, ...] = ()
        self.dropped = 0   # across all subscribers, for the snapshot
        self.wants_connections = False   # some subscriber takes connection_* / rejected events

    @property
    def active(self) -> bool:
        """Whether anyone listens: callers skip building events nobody reads."""
        return bool(self._subscribers)

    def subscribe(self, maxsize: int = 1000, kinds: Iterable[str] | None = None) -> Subscription:
        """A new subscription to every kind, or only to `kinds`."""
        subscription = Subscription(self, maxsize, kinds)
        self._subscribers = self._subscribers + (subscription,)
        self._recount()
        return subscription

    def publish(self, event: Event) -> None:
        kind = event.kind
        for subscription in self._subscribers:
            kinds = subscription.kinds
            if kinds is None or kind in kinds:
                subscription._push(event)

    def _remove(self, subscription: Subscription) -> None:
        self._subscribers = tuple(s for s in self._subscribers if s is not subscription)
        self._recount()

    def _recount(self) -> None:
        self.wants_connections = any(s.kinds is None or not s.kinds.isdisjoint(CONNECTION_KINDS)
                                     for s in self._subscribers)

    def close(self) -> None:
        for subscription in self._subscribers:
            subscription.close()
