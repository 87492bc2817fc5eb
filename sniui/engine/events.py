"""The engine's lossy event stream.

Each subscriber owns a bounded queue. Publishing appends to every queue and
never awaits: when a queue is full its oldest event is dropped and counted, so
a slow consumer (a busy UI, a blocked log pipe) loses history instead of
slowing the relay.
"""

from __future__ import annotations

import asyncio
from collections import deque

from sniui.engine.model import Event


class Subscription:
    """An async iterator of events with a bounded, drop-oldest queue."""

    __slots__ = ("_queue", "_waiter", "_bus", "dropped", "closed")

    def __init__(self, bus: EventBus, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("a subscription needs room for at least one event")
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
    __slots__ = ("_subscribers", "dropped")

    def __init__(self) -> None:
        self._subscribers: tuple[Subscription, ...] = ()
        self.dropped = 0   # across all subscribers, for the snapshot

    @property
    def active(self) -> bool:
        """Whether anyone listens: callers skip building events nobody reads."""
        return bool(self._subscribers)

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        subscription = Subscription(self, maxsize)
        self._subscribers = self._subscribers + (subscription,)
        return subscription

    def publish(self, event: Event) -> None:
        for subscription in self._subscribers:
            subscription._push(event)

    def _remove(self, subscription: Subscription) -> None:
        self._subscribers = tuple(s for s in self._subscribers if s is not subscription)

    def close(self) -> None:
        for subscription in self._subscribers:
            subscription.close()
