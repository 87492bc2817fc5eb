"""One client connection: PROXY header, ClientHello, decision, upstream, close.

A `Connection` is the asyncio Protocol of the accepted socket while the
router reads the client's first bytes; once the upstream is connected the
relay takes the transport over (see relay.py) and this object is left as the
connection's record: a slots object the registry lists and the snapshot reads.

Per connection there is no task while reading the hello or relaying, nor
while connecting to IP-literal upstreams (`Upstreams.start_dial`, driven by
callbacks); a task exists only while a name must be resolved and connected. Timeouts (hello, idle) are
enforced by the engine's ticker, not by a timer per connection.

After the routing decision, `_passthrough` connects and relays the bytes
already read; a terminating route goes to `_terminate`, which hands the
client transport to a `TerminatingRelay` (terminate.py): an ssl.SSLObject
over MemoryBIOs fed with those same bytes. Once its handshake completes the
connection dials the upstream exactly as for passthrough (same dialer, PROXY
header, counters) and the relay moves plaintext.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from typing import TYPE_CHECKING

from sniui.engine.balancer import ServerState, UpstreamPool, format_address
from sniui.engine.dialer import Dialed, DialError, Dialing
from sniui.engine.model import CloseReason, ConnectionInfo, ConnState
from sniui.engine.proxy_protocol import ProxyHeader, ProxyHeaderReader, encode_v1, encode_v2
from sniui.engine.relay import CLIENT, close_transports
from sniui.engine.terminate import TerminatingRelay, negotiated, peer_subject
from sniui.tls import alerts
from sniui.tls.contexts import ContextError, describe_ssl_error
from sniui.tls.clienthello import ClientHello, ClientHelloReader, NeedMore, Reject, count_not_grease

if TYPE_CHECKING:
    from sniui.engine.engine import Engine
    from sniui.engine.listener import Listener
    from sniui.engine.registry import Stats
    from sniui.routing.table import Decision

_LINGER_RESET = struct.pack("ii", 1, 0)
CONNECT_BUFFER = 64 * 1024   # client bytes held while connecting upstream before reading pauses


def _split_peer(peer: object) -> tuple[str, int]:
    if isinstance(peer, tuple) and len(peer) >= 2:
        return str(peer[0]), int(peer[1])
    return "unknown", 0


class Connection(asyncio.Protocol):
    __slots__ = (
        "engine", "listener", "id", "transport", "upstream_transport", "relay",
        "client", "client_ip", "client_port", "admitted", "admitted_ip", "local",
        "state", "started", "started_mono", "last_activity", "active_mono", "seen_total",
        "sni", "alpn", "tls_versions", "ech", "cipher_count", "record_version",
        "route", "mode", "upstream", "upstream_address", "client_subject",
        "tls_version", "tls_cipher", "alpn_selected",
        "bytes_up", "bytes_down", "hello_ms", "connect_ms",
        "closed", "close_reason", "close_detail",
        "reader", "proxy_reader", "first_bytes", "task", "pool", "server",
        "listener_stats", "route_stats", "upstream_stats",
        "client_eof", "upstream_eof", "first_eof", "cached_info", "pending",
        "dialing", "dial_decision", "decided",
    )

    def __init__(self, engine: Engine, listener: Listener) -> None:
        self.engine = engine
        self.listener = listener
        self.id = 0
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.upstream_transport: asyncio.Transport | None = None
        self.relay = None
        self.client = self.client_ip = ""
        self.client_port = 0
        self.admitted = False                 # holds a slot in the engine's Admission
        self.admitted_ip: str | None = None   # the address that slot counts against, once known
        self.local: tuple[str, int] = ("", 0)
        self.state = ConnState.READING_HELLO
        self.started = self.last_activity = 0.0
        self.started_mono = self.active_mono = 0.0
        self.seen_total = 0
        self.sni: str | None = None
        self.alpn: tuple[str, ...] = ()
        self.tls_versions: tuple[int, ...] = ()
        self.ech = False
        self.cipher_count = 0
        self.record_version = 0x0301
        self.route: str | None = None
        self.mode = "passthrough"
        self.upstream: str | None = None
        self.upstream_address: str | None = None
        self.client_subject: str | None = None
        self.tls_version = self.tls_cipher = self.alpn_selected = None   # set once a terminating handshake completes
        self.bytes_up = self.bytes_down = 0
        self.hello_ms: float | None = None
        self.connect_ms: float | None = None
        self.closed: float | None = None
        self.close_reason: CloseReason | None = None
        self.close_detail: str | None = None
        self.reader: ClientHelloReader | None = None
        self.proxy_reader: ProxyHeaderReader | None = None
        self.first_bytes = b""
        self.task: asyncio.Task[None] | None = None
        self.pool: UpstreamPool | None = None
        self.server: ServerState | None = None
        self.listener_stats: Stats | None = None
        self.route_stats: Stats | None = None
        self.upstream_stats: Stats | None = None
        self.client_eof = self.upstream_eof = False
        self.first_eof: str | None = None
        self.cached_info: ConnectionInfo | None = None
        self.pending: Decision | None = None   # a terminating route's decision, during the handshake
        self.dialing: Dialing | None = None    # a dial without a Task (IP-literal upstreams), in flight
        self.dial_decision: Decision | None = None
        self.decided = 0.0

    # -- the accepted socket ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        engine = self.engine
        self.transport = transport  # type: ignore[assignment]
        self.id = next(engine.ids)
        self.started = self.last_activity = time.time()
        self.started_mono = self.active_mono = time.monotonic()
        ip, port = _split_peer(transport.get_extra_info("peername"))
        self._set_client(ip, port)
        self.local = _split_peer(transport.get_extra_info("sockname"))
        self.listener_stats = self.listener.stats
        self.listener.stats.opened()
        engine.registry.opened(self)
        expect_proxy = self.listener.accept_proxy_protocol
        refusal = engine.admission.admit_unnamed() if expect_proxy else engine.admission.admit(ip)
        if refusal is not None:
            self._refuse_by_limit(refusal, ip)
            return
        self.admitted = True
        self.admitted_ip = None if expect_proxy else ip
        if expect_proxy:
            self.proxy_reader = ProxyHeaderReader()
        self.reader = ClientHelloReader(engine.config.limits.max_client_hello)

    def data_received(self, data: bytes) -> None:
        if self.state is not ConnState.READING_HELLO:
            # While connecting, keep what the client sends so it is forwarded in
            # order. A passthrough connection reads on (a TLS client waits for the
            # server's answer, so this is rare) until CONNECT_BUFFER bytes are held.
            if self.state is ConnState.CONNECTING:
                first = self.first_bytes = self.first_bytes + data
                if len(first) >= CONNECT_BUFFER:
                    self.transport.pause_reading()
            return
        proxy_reader = self.proxy_reader
        if proxy_reader is not None:
            answer = proxy_reader.feed(data)
            if answer.__class__ is NeedMore:
                return
            self.proxy_reader = None
            if isinstance(answer, Reject):
                self._fail_hello(CloseReason.BAD_PROXY_HEADER, answer.detail, None)
                return
            if not self._apply_proxy_header(answer):  # type: ignore[arg-type]
                return
            data = proxy_reader.remainder
            if not data:
                return
        answer = self.reader.feed(data)  # type: ignore[union-attr]
        if answer.__class__ is NeedMore:
            return
        if isinstance(answer, Reject):
            reason = CloseReason.NOT_TLS if answer.alert is None else CloseReason.BAD_HELLO
            self._fail_hello(reason, answer.detail, answer.alert)
            return
        self._on_hello(answer)  # type: ignore[arg-type]

    def eof_received(self) -> bool:
        if self.state is ConnState.READING_HELLO:
            self.finish(CloseReason.CLIENT_CLOSED, "closed before its ClientHello was complete")
            return False
        self.client_eof = True
        self.first_eof = self.first_eof or CLIENT
        return True    # the hello is on its way upstream; the answer may still come back

    def connection_lost(self, exc: Exception | None) -> None:
        # Only reached before the relay takes the transport over.
        if self.state is not ConnState.CLOSED:
            detail = _describe(exc) if exc else "closed before the upstream was connected"
            self.finish(CloseReason.CLIENT_CLOSED, detail)

    # -- reading the first bytes --------------------------------------------------------------

    def _set_client(self, ip: str, port: int) -> None:
        self.client_ip = ip
        self.client_port = port
        self.client = format_address(ip, port)

    def _refuse_by_limit(self, refusal: CloseReason, ip: str) -> None:
        limits = self.engine.config.limits
        detail = (f"{limits.max_connections} connections open" if refusal is CloseReason.LIMIT
                  else f"{limits.max_connections_per_client} connections from {ip} open")
        self.reject(refusal, detail, self.engine.config.default.reject_with, alerts.INTERNAL_ERROR)

    def _apply_proxy_header(self, header: ProxyHeader) -> bool:
        if header.source is not None:
            self._set_client(*header.source)
        # LOCAL (the balancer's own health check): the balancer is the client.
        refusal = self.engine.admission.assign(self.client_ip)
        if refusal is not None:
            self._refuse_by_limit(refusal, self.client_ip)
            return False
        self.admitted_ip = self.client_ip
        if header.destination is not None:
            self.local = header.destination
        self.cached_info = None
        return True

    def _fail_hello(self, reason: CloseReason, detail: str, alert: int | None) -> None:
        if alert is not None:
            self.transport.write(alerts.fatal_alert(alert, self.record_version))
        self.finish(reason, detail)

    def _on_hello(self, hello: ClientHello) -> None:
        engine = self.engine
        now = time.monotonic()
        self.hello_ms = (now - self.started_mono) * 1000.0
        self.sni = hello.sni
        self.alpn = hello.alpn
        self.tls_versions = hello.supported_versions or (hello.legacy_version,)
        self.ech = hello.ech
        self.cipher_count = count_not_grease(hello.cipher_suites)
        self.record_version = hello.record_version
        self.cached_info = None
        decision = engine.table.match(hello.sni, hello.alpn[0] if hello.alpn else None)
        self.route = decision.route
        self.upstream = decision.upstream
        self.mode = decision.mode
        if decision.route is not None:
            self.route_stats = engine.registry.route_stats(decision.route)
            self.route_stats.opened()
        if decision.action == "reject":
            if hello.sni is None:
                reason = CloseReason.NO_SNI
            elif decision.upstream is not None:
                reason = CloseReason.BAD_UPSTREAM
            else:
                reason = CloseReason.NO_ROUTE
            self.reject(reason, decision.reject_reason or reason.value, decision.reject_with, alerts.UNRECOGNIZED_NAME)
            return
        target = decision.target
        if target is not None and target.allow_clients and not target.admits_client(self.client_ip):
            self.reject(CloseReason.ACL, f"{self.client_ip} is not in allow_clients of route {decision.route!r}",
                        decision.reject_with, alerts.ACCESS_DENIED)
            return
        self.first_bytes = self.reader.buffered  # type: ignore[union-attr]
        self.reader = None
        if decision.mode == "terminate":
            self._terminate(decision)
        else:
            self._passthrough(decision)

    # -- after the decision -----------------------------------------------------------------

    def _terminate(self, decision: Decision) -> None:
        """Complete the TLS handshake ourselves with the route's certificate, then connect."""
        try:
            context = self.engine.contexts.select_context(decision)
        except (ContextError, ValueError) as exc:
            # The config was applied with working contexts, so this is a file gone since.
            self.transport.write(alerts.fatal_alert(alerts.INTERNAL_ERROR, self.record_version))
            self.finish(CloseReason.ERROR, f"no TLS context for route {decision.route!r}: {exc}")
            return
        self.state = ConnState.HANDSHAKING
        self.active_mono = time.monotonic()   # the ticker bounds the handshake from here
        self.cached_info = None
        self.pending = decision
        relay = TerminatingRelay(self, context)
        self.relay = relay
        first, self.first_bytes = self.first_bytes, b""
        relay.begin(self.transport, first)

    def handshake_completed(self, tls: ssl.SSLObject) -> None:
        """Called by the TerminatingRelay: the client is verified; dial the upstream."""
        decision, self.pending = self.pending, None
        if self.state is not ConnState.HANDSHAKING or decision is None:
            return
        if tls.context.verify_mode == ssl.CERT_REQUIRED:
            self.client_subject = peer_subject(tls)
        self.tls_version, self.tls_cipher, self.alpn_selected = negotiated(tls)
        self.state = ConnState.CONNECTING
        self.cached_info = None
        self.transport.pause_reading()
        self._dial(decision)

    def _passthrough(self, decision: Decision) -> None:
        self.state = ConnState.CONNECTING
        self.relay = self.engine.relay_factory(self)
        # Not paused: pausing and resuming costs two readiness changes per connection, and
        # data_received bounds what is held (the relay resumes reading once started).
        if len(self.first_bytes) >= CONNECT_BUFFER:
            self.transport.pause_reading()
        self._dial(decision)

    def _dial(self, decision: Decision) -> None:
        """Connect upstream: by callbacks when no name needs resolving, else in a task."""
        self.decided = time.monotonic()
        self.dial_decision = decision
        dialing = self.engine.upstreams.start_dial(decision, self.client_ip, self.relay.upstream_protocol,
                                                   self._dialed)
        if dialing is None:
            self.task = asyncio.get_running_loop().create_task(self._connect(decision))
        else:
            self.dialing = dialing

    def _dialed(self, dialed: Dialed | None, error: BaseException | None) -> None:
        """The callback dial's outcome (see `Dialing`): as `_connect` after its await."""
        self.dialing = None
        decision, self.dial_decision = self.dial_decision, None
        if dialed is None:
            if self.state is ConnState.CLOSED:
                return
            if isinstance(error, DialError):
                self.finish(error.reason, error.detail)
            else:   # a bug must cost one connection, not the engine
                self.finish(CloseReason.ERROR, f"{type(error).__name__}: {error}")
            return
        self._connected(decision, dialed)  # type: ignore[arg-type]

    async def _connect(self, decision: Decision) -> None:
        engine = self.engine
        relay = self.relay
        try:
            dialed = await engine.upstreams.dial(decision, self.client_ip, relay.upstream_protocol)
        except DialError as exc:
            self.finish(exc.reason, exc.detail)
            return
        except asyncio.CancelledError:
            # finish() cancels us when the client leaves; anything else must not strand the connection.
            if self.state is not ConnState.CLOSED:
                self.finish(CloseReason.ERROR, "connecting to the upstream was cancelled")
            raise
        except Exception as exc:   # a bug must cost one connection, not the engine
            self.finish(CloseReason.ERROR, f"{type(exc).__name__}: {exc}")
            return
        self.task = None
        self.dial_decision = None
        self._connected(decision, dialed)

    def _connected(self, decision: Decision, dialed: Dialed) -> None:
        engine = self.engine
        if dialed.pool is not None:
            self.pool, self.server = dialed.pool, dialed.server
        self.upstream_transport = dialed.transport
        if self.state is ConnState.CLOSED:  # the client left while we were connecting
            self._release_upstream()
            dialed.transport.close()
            return
        now = time.monotonic()
        self.connect_ms = (now - self.decided) * 1000.0
        self.active_mono = now
        self.upstream_address = dialed.address
        self.state = ConnState.ESTABLISHED
        self.cached_info = None
        self.upstream_stats = engine.registry.upstream_stats(dialed.address)
        self.upstream_stats.opened()
        first = self.first_bytes
        self.first_bytes = b""
        self.bytes_up += len(first)   # the hello (and anything after it) came from the client
        if decision.proxy_protocol is not None:
            source = (self.client_ip, self.client_port)
            encode = encode_v1 if decision.proxy_protocol == "v1" else encode_v2
            try:
                first = encode(source, self.local) + first
            except ValueError as exc:
                self.finish(CloseReason.ERROR, f"cannot encode PROXY header: {exc}")
                return
        self.relay.start(self.transport, dialed.transport, first, self.client_eof)
        if self.client_eof:
            self.half_closed(CLIENT)
        engine.connection_event(self, "connection_opened")

    # -- closing ----------------------------------------------------------------------------

    def half_closed(self, side: str) -> None:
        """The first EOF: one direction is done, the other still flows."""
        self.first_eof = self.first_eof or side
        if self.state is ConnState.ESTABLISHED:
            self.state = ConnState.CLOSING
            self.cached_info = None

    def relay_finished(self, side: str, exc: Exception | None) -> None:
        if self.state is ConnState.CLOSED:
            return
        # An error names the side it came from; a clean end is credited to whoever sent EOF first.
        first = side if exc is not None else (self.first_eof or side)
        reason = CloseReason.CLIENT_CLOSED if first == CLIENT else CloseReason.UPSTREAM_CLOSED
        self.finish(reason, _describe(exc) if exc else None)

    def reject(self, reason: CloseReason, detail: str, reject_with: str, alert: int) -> None:
        """Refuse the client the configured way: TLS alert, plain close, or TCP reset."""
        if reject_with == "alert":
            self.transport.write(alerts.fatal_alert(alert, self.record_version))
            self.finish(reason, detail)
        elif reject_with == "reset":
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                except OSError:
                    pass
            self.finish(reason, detail, abort=True)
        else:
            self.finish(reason, detail)

    def finish(self, reason: CloseReason, detail: str | None = None, *, abort: bool = False) -> None:
        """Close both sides and record why. Idempotent: the first reason stands."""
        if self.state is ConnState.CLOSED:
            return
        self.state = ConnState.CLOSED
        self.close_reason = reason
        self.close_detail = detail
        self.closed = time.time()
        self.cached_info = None
        self.reader = self.proxy_reader = None
        self.pending = None
        task = self.task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        self.task = None
        dialing = self.dialing
        if dialing is not None:
            self.dialing = None
            dialing.cancel()
        self.dial_decision = None
        if self.relay is not None:
            self.relay.close(abort)
        close_transports((self.transport, self.upstream_transport), abort)
        # The relay and uvloop's transports point back at this connection: drop our links to them
        # so a closed connection is freed by reference counting, not left for the cyclic collector.
        self.relay = None
        self.transport = self.upstream_transport = None  # type: ignore[assignment]
        self._release_upstream()
        if self.admitted:
            self.engine.admission.release(self.admitted_ip)
            self.admitted = False
            self.admitted_ip = None
        self.engine.connection_closed(self)

    def _release_upstream(self) -> None:
        if self.pool is not None and self.server is not None:
            self.pool.released(self.server)
            self.pool = self.server = None

    # -- observation ------------------------------------------------------------------------

    def info(self) -> ConnectionInfo:
        cached = self.cached_info
        if cached is not None and cached.bytes_up == self.bytes_up and cached.bytes_down == self.bytes_down:
            return cached
        info = ConnectionInfo(
            id=self.id, client=self.client, client_ip=self.client_ip, listener=self.listener.address,
            state=self.state, started=self.started, last_activity=self.last_activity,
            sni=self.sni, alpn=self.alpn, tls_versions=self.tls_versions, ech=self.ech,
            cipher_count=self.cipher_count, route=self.route, mode=self.mode,  # type: ignore[arg-type]
            upstream=self.upstream, upstream_address=self.upstream_address,
            bytes_up=self.bytes_up, bytes_down=self.bytes_down,
            hello_ms=self.hello_ms, connect_ms=self.connect_ms, closed=self.closed,
            close_reason=self.close_reason, close_detail=self.close_detail, client_subject=self.client_subject,
            tls_version=self.tls_version, tls_cipher=self.tls_cipher, alpn_selected=self.alpn_selected,
        )
        self.cached_info = info
        return info


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return "TLS: " + describe_ssl_error(exc)
    if isinstance(exc, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(exc, BrokenPipeError):
        return "broken pipe"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
