"""The engine: listeners, connections, the config in force, and what the outside sees.

Its public surface is three things (see DESIGN.md), and nothing here imports
a front end:

commands
    `await start()` binds every listener (EngineError names the address that
    failed); `await apply(config)` validates, compiles and binds, then swaps
    atomically, or raises EngineError and keeps the running config;
    `close_connection(id)`, `close_all()`, `await drain(timeout)`, `await stop()`.
snapshots
    `snapshot()` returns an immutable `EngineSnapshot` (model.py): live
    connections, recently closed ones, counters per route / upstream address /
    listener, server health, one `RateSample` per second for the last 300 s.
    Live rows are cached per connection and rebuilt only when they change.
events
    `subscribe(maxsize)` gives a `Subscription`: an async iterator over a
    bounded queue that drops its oldest event when full (`.dropped`).
    Kinds: connection_opened (upstream connected), connection_closed,
    rejected (refused by the router: bad hello, no route, limits, ACL),
    config_applied, config_refused, server_down, server_up,
    listener_started, listener_stopped, listener_error, draining.
    `add_close_hook(fn)` is the lossless, synchronous alternative for the
    access log: `fn(ConnectionInfo)` for every closed connection.

Terminating routes: the engine holds the server `ssl.SSLContext`s
(`ServerContexts`). A config whose certificates have error findings
(tls/certificates.py), or whose contexts cannot be built, is refused by
`Engine(config)` and by `apply()`, and the running config keeps serving; an
error the running config already has (a certificate that expired since it
was applied) does not block other changes, as in the TUI. `apply()` updates
the contexts after its listeners are bound and before the swap.

Per connection the relay only bumps two integers; hello, handshake (terminating
routes: `timeouts.client_hello` again, from the routing decision) and idle
timeouts and the rate ring are enforced by one ticker task, not a timer per
connection.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from datetime import datetime, timezone
from typing import Callable, Iterable

from sniui.config.models import Config, cross_check, format_loc
from sniui.config.models import Listener as ListenerConfig
from sniui.engine.connection import Connection
from sniui.engine.dialer import Upstreams
from sniui.engine.events import EventBus, Subscription
from sniui.engine.limits import Admission, ensure_fd_budget
from sniui.engine.listener import EngineError, Listener
from sniui.engine.model import (
    CloseReason, ConnectionInfo, ConnState, Counters, EngineSnapshot, Event, ListenerInfo,
)
from sniui.engine.registry import Registry
from sniui.engine.relay import BufferedRelay
from sniui.engine.splice_relay import make_relay
from sniui.routing.table import RouteTable
from sniui.tls.certificates import validate_certificates
from sniui.tls.contexts import ContextError, ServerContexts

__all__ = ["Engine", "EngineError"]

# The ticker enforces hello and idle timeouts and closes one rate sample per
# second; it runs at least this often, and a quarter of the shortest timeout.
MAX_TICK = 1.0
MIN_TICK = 0.02

# Close reasons that are the upstream side's fault: worth an error-level event.
UPSTREAM_ERRORS = frozenset({
    CloseReason.RESOLVE_FAILED, CloseReason.CONNECT_FAILED, CloseReason.CONNECT_TIMEOUT,
    CloseReason.BAD_UPSTREAM, CloseReason.ERROR,
})
# Closes that are a refusal by the router rather than the end of a relayed connection.
REJECTIONS = frozenset({
    CloseReason.BAD_HELLO, CloseReason.NOT_TLS, CloseReason.BAD_PROXY_HEADER, CloseReason.NO_SNI,
    CloseReason.NO_ROUTE, CloseReason.BAD_UPSTREAM, CloseReason.LIMIT, CloseReason.CLIENT_LIMIT, CloseReason.ACL,
})


class Engine:
    def __init__(self, config: Config, *, reuse_port: bool = False) -> None:
        self.config = config
        self.reuse_port = reuse_port   # bind listeners with SO_REUSEPORT (one of several worker processes)
        self.registry = Registry()
        self.admission = Admission(config.limits.max_connections, config.limits.max_connections_per_client)
        self.events = EventBus()
        self.contexts = ServerContexts()
        try:
            self.table = RouteTable(config)
            self.upstreams = Upstreams(config, notify=self._notify, count_failure=self._count_upstream_failure)
        except ValueError as exc:
            raise EngineError(f"config refused: {exc}") from exc
        _refuse_certificate_errors(config, None)
        try:
            self.contexts.update(config)
        except ContextError as exc:
            raise EngineError(f"config refused: {exc}") from exc
        self.listeners: dict[str, Listener] = {}
        self.ids = itertools.count(1)
        self.relay_factory: Callable[[Connection], BufferedRelay] = make_relay
        self.generation = 0
        self.started_at = time.time()
        self.draining = False
        self._close_hooks: list[Callable[[ConnectionInfo], None]] = []
        self._apply_lock = asyncio.Lock()
        self._ticker: asyncio.Task[None] | None = None
        self._next_sample = math.floor(time.time()) + 1.0
        self._idle: asyncio.Event | None = None
        self.fd_warning: str | None = None   # set by start/apply when the fd limit is below max_connections

    # -- commands -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listener of the config; raise EngineError naming the first that fails."""
        async with self._apply_lock:
            _refuse_invalid(self.config)
            opened = await self._open_listeners(self.config.listen)
            self.listeners = {listener.address: listener for listener in opened}
            self.generation = 1
        self._ensure_ticker()
        self.fd_warning = ensure_fd_budget(self.config.limits.max_connections)
        if self.fd_warning:
            self._notify("listener_error", "warning", self.fd_warning)
        for listener in opened:
            self._notify("listener_started", "info", f"listening on {', '.join(listener.bound_text)}"
                         + (" (PROXY protocol expected)" if listener.accept_proxy_protocol else ""))

    async def apply(self, config: Config) -> None:
        """Validate, compile and bind, then swap atomically; on any failure keep the old config.

        Established connections keep their upstream; new connections use the
        new routes. Listeners missing from the new config stop accepting.
        """
        async with self._apply_lock:
            try:
                _refuse_invalid(config)
                table = RouteTable(config)
                if config.certificates:
                    # Reading and checking certificate files (and building a context per
                    # certificate to ask OpenSSL) stays off the event loop that relays.
                    await asyncio.to_thread(_refuse_certificate_errors, config, self.config)
                upstreams = self.upstreams.reconfigured(config)
            except EngineError as exc:
                self._notify("config_refused", "error", str(exc))
                raise
            except Exception as exc:
                self._notify("config_refused", "error", f"config refused: {exc}")
                raise EngineError(f"config refused: {exc}") from exc
            keep = {listener.address for listener in config.listen} & set(self.listeners)
            fresh = [entry for entry in config.listen if entry.address not in keep]
            # A listener moving to another address on the same port (127.0.0.1:8443 →
            # 0.0.0.0:8443) cannot bind while the old one holds the port: release it
            # first, and take it back if the new config is refused.
            fresh_ports = {entry.host_port.port for entry in fresh} - {0}
            yielding = [listener for address, listener in self.listeners.items()
                        if address not in keep and listener.port in fresh_ports and listener.server is not None]
            for listener in yielding:
                listener.close()
            try:
                opened = await self._open_listeners(fresh) if not self.draining else []
                try:
                    # Certificates were validated above; this loads them for serving.
                    self.contexts.update(config)
                except ContextError as exc:
                    for listener in opened:
                        listener.close()
                    raise EngineError(f"config refused: {exc}") from exc
            except EngineError as exc:
                for listener in yielding:
                    try:
                        await listener.open(self._protocol_factory(listener))
                    except EngineError as again:
                        self._notify("listener_error", "error", f"{again} (while restoring the running config)")
                self._notify("config_refused", "error", str(exc))
                raise
            # The swap: nothing below can fail.
            self.config, self.table, self.upstreams = config, table, upstreams
            self.admission.configure(config.limits.max_connections, config.limits.max_connections_per_client)
            listeners: dict[str, Listener] = {}
            for entry in config.listen:
                listener = self.listeners.get(entry.address)
                if listener is not None:
                    listener.accept_proxy_protocol = entry.accept_proxy_protocol
                    listeners[entry.address] = listener
            for listener in opened:
                listeners[listener.address] = listener
            for address, listener in self.listeners.items():
                if address not in listeners:
                    listener.close()
                    self._notify("listener_stopped", "info", f"stopped listening on {address}")
            self.listeners = listeners
            self.generation += 1
            self.fd_warning = ensure_fd_budget(config.limits.max_connections)
        self._ensure_ticker()
        for listener in opened:
            self._notify("listener_started", "info", f"listening on {', '.join(listener.bound_text)}")
        self._notify("config_applied", "info", f"config applied (generation {self.generation}, {len(table)} routes)")

    def close_connection(self, connection_id: int) -> bool:
        connection = self.registry.live.get(connection_id)
        if connection is None:
            return False
        connection.finish(CloseReason.KILLED, "closed by admin", abort=True)
        return True

    def close_all(self, detail: str = "closed by admin") -> int:
        """Close every live connection now (reason: shutdown); returns how many."""
        count = len(self.registry.live)
        self._close_all(CloseReason.SHUTDOWN, detail)
        return count

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let live connections finish for up to `timeout` seconds, close the rest."""
        self.draining = True
        for listener in self.listeners.values():
            listener.close()
        live = len(self.registry.live)
        self._notify("draining", "info", f"draining {live} connection(s) for up to {timeout:g}s")
        if live:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout)
            except TimeoutError:
                pass
            finally:
                self._idle = None
        self._close_all(CloseReason.SHUTDOWN, f"still open after the {timeout:g}s drain")

    async def stop(self) -> None:
        self.draining = True
        for listener in self.listeners.values():
            listener.close()
        self._close_all(CloseReason.SHUTDOWN, "router stopped")
        if self._ticker is not None:
            self._ticker.cancel()
            try:
                await self._ticker
            except asyncio.CancelledError:
                pass
            self._ticker = None
        await self.upstreams.close()
        self.events.close()

    # -- observation --------------------------------------------------------------------------

    @property
    def bound_addresses(self) -> list[tuple[str, int]]:
        return [address for listener in self.listeners.values() for address in listener.bound]

    def snapshot(self) -> EngineSnapshot:
        live = list(self.registry.live.values())
        totals, per_route, per_upstream, per_listener = self.registry.frozen_counters(live)
        return EngineSnapshot(
            taken_at=time.time(),
            started_at=self.started_at,
            config_source=self.config.source,
            config_generation=self.generation,
            listeners=tuple(
                ListenerInfo(l.address, l.bound_text, l.accept_proxy_protocol, per_listener.get(l.address) or Counters())
                for l in self.listeners.values()
            ),
            connections=tuple(c.info() for c in live),
            recent=tuple(self.registry.recent),
            totals=totals,
            per_route=per_route,
            per_upstream=per_upstream,
            servers=self.upstreams.health(),
            rates=tuple(self.registry.rates),
            events_dropped=self.events.dropped,
        )

    def subscribe(self, maxsize: int = 1000, kinds: Iterable[str] | None = None) -> Subscription:
        """Events into a bounded queue (oldest dropped when full); `kinds` narrows them, so a
        subscriber that wants no per-connection events spares the engine building them."""
        return self.events.subscribe(maxsize, kinds)

    def add_close_hook(self, hook: Callable[[ConnectionInfo], None]) -> Callable[[], None]:
        """Call `hook` with every closed connection's final record, synchronously and losslessly
        (the access log). Returns a function that removes the hook."""
        self._close_hooks.append(hook)
        return lambda: self._close_hooks.remove(hook) if hook in self._close_hooks else None

    # -- called by connections -------------------------------------------------------------------

    def connection_closed(self, connection: Connection) -> None:
        info = connection.info()
        self.registry.closed(connection, info)
        for hook in self._close_hooks:
            try:
                hook(info)
            except Exception as exc:   # a broken log pipe must not break the data path
                self._notify("listener_error", "error", f"close hook {hook!r} failed: {exc!r}")
        if self.events.wants_connections:
            self.connection_event(connection, "connection_closed", info)
        if self._idle is not None and not self.registry.live:
            self._idle.set()

    def connection_event(self, connection: Connection, kind: str, info: ConnectionInfo | None = None) -> None:
        if not self.events.wants_connections:
            return
        info = info or connection.info()
        reason = info.close_reason
        if kind == "connection_closed" and reason in REJECTIONS:
            kind = "rejected"
        level = "info"
        if reason is not None and reason.is_error:
            level = "error" if reason in UPSTREAM_ERRORS else "warning"
        target = info.upstream_address or info.upstream or "-"
        message = f"#{info.id} {info.client} {info.sni or '(no SNI)'} → {target}"
        if reason is not None:
            message += f": {reason.value}" + (f" ({info.close_detail})" if info.close_detail else "")
        self.events.publish(Event(time.time(), kind, level, message, info, info.route, info.sni))  # type: ignore[arg-type]

    # -- internals ---------------------------------------------------------------------------------

    async def _open_listeners(self, entries: list[ListenerConfig]) -> list[Listener]:
        opened: list[Listener] = []
        try:
            for entry in entries:
                listener = Listener(entry.address, entry.accept_proxy_protocol,
                                    self.registry.listener_stats(entry.address), reuse_port=self.reuse_port)
                await listener.open(self._protocol_factory(listener))
                opened.append(listener)
        except BaseException as exc:
            for listener in opened:
                listener.close()
            if isinstance(exc, EngineError):
                self._notify("listener_error", "error", str(exc))
            raise
        return opened

    def _ensure_ticker(self) -> None:
        # apply() on an engine that was never start()ed must still enforce timeouts.
        if self._ticker is None and not self.draining:
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def _protocol_factory(self, listener: Listener) -> Callable[[], Connection]:
        return lambda: Connection(self, listener)

    def _close_all(self, reason: CloseReason, detail: str) -> None:
        for connection in list(self.registry.live.values()):
            connection.finish(reason, detail, abort=True)

    def _notify(self, kind: str, level: str, message: str) -> None:
        if self.events.active:
            self.events.publish(Event(time.time(), kind, level, message))  # type: ignore[arg-type]

    def _count_upstream_failure(self, address: str, reason: CloseReason) -> None:
        self.registry.upstream_stats(address).error(reason)

    def _tick_interval(self) -> float:
        timeouts = self.config.timeouts
        shortest = min(timeouts.client_hello, timeouts.idle) / 4
        return max(MIN_TICK, min(MAX_TICK, shortest))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_interval())
            try:
                self._sweep()
            except Exception as exc:  # never let the ticker die: timeouts depend on it
                self._notify("listener_error", "error", f"internal error in the ticker: {exc!r}")

    def _sweep(self) -> None:
        now = time.monotonic()
        wall = time.time()
        timeouts = self.config.timeouts
        hello_timeout, idle_timeout = timeouts.client_hello, timeouts.idle
        expired: list[tuple[Connection, CloseReason, str]] = []
        reading, established, closing = ConnState.READING_HELLO, ConnState.ESTABLISHED, ConnState.CLOSING
        handshaking = ConnState.HANDSHAKING
        for c in self.registry.live.values():
            total = c.bytes_up + c.bytes_down
            if total != c.seen_total:
                c.seen_total = total
                c.last_activity = wall
                c.active_mono = now
                c.cached_info = None
                continue
            state = c.state
            if state is reading:
                if now - c.started_mono >= hello_timeout:
                    expired.append((c, CloseReason.HELLO_TIMEOUT, f"no complete ClientHello within {hello_timeout:g}s"))
            elif state is established or state is closing:
                if now - c.active_mono >= idle_timeout:
                    expired.append((c, CloseReason.IDLE_TIMEOUT, f"no bytes either way for {idle_timeout:g}s"))
            elif state is handshaking:
                # A terminating route's handshake (no plaintext moves yet) gets the hello's budget.
                if now - c.active_mono >= hello_timeout:
                    expired.append((c, CloseReason.TLS_HANDSHAKE_FAILED,
                                    f"TLS handshake not complete within {hello_timeout:g}s"))
        for c, reason, detail in expired:
            c.finish(reason, detail, abort=True)
        if wall >= self._next_sample:
            self.registry.sample_rate(math.floor(wall))
            self._next_sample = math.floor(wall) + 1.0


def _refuse_invalid(config: Config) -> None:
    errors = [i for i in cross_check(config) if i.severity == "error"]
    if errors:
        lines = "; ".join(f"{format_loc(i.loc)}: {i.message}" if i.loc else i.message for i in errors)
        raise EngineError(f"config refused: {lines}")


def _refuse_certificate_errors(config: Config, running: Config | None) -> None:
    """Raise EngineError for certificate error findings `running` does not already have."""
    if not config.certificates:
        return
    now = datetime.now(timezone.utc)
    errors = [f for f in validate_certificates(config, now) if f.severity == "error"]
    if errors and running is not None and running.certificates:
        # One the engine already runs with (expired since) must not block every other change.
        known = {(f.loc, f.message) for f in validate_certificates(running, now) if f.severity == "error"}
        errors = [f for f in errors if (f.loc, f.message) not in known]
    if errors:
        raise EngineError("config refused: certificate errors: " + "; ".join(str(f) for f in errors))
