"""TLS termination: an ssl.SSLObject over MemoryBIOs between the client and a plain upstream.

asyncio's `start_tls` cannot take the bytes the router already read to route
the connection, so the TLS layer is driven by hand (the sans-IO way): what
the client sends goes into the `incoming` BIO, what OpenSSL wants to send
comes out of the `outgoing` BIO and is written to the client transport.

    relay = TerminatingRelay(connection, context)   # context: ServerContexts.select_context(decision)
    relay.begin(client_transport, first_bytes)      # the ClientHello already read, replayed
    ...                                             # handshake; then connection.handshake_completed()
    relay.start(client, upstream, proxy_header, client_eof)   # the relay interface of relay.py
    relay.close(abort)

Life of a connection, as its connection's state shows it:

handshaking
    The client's bytes are pumped through `do_handshake()`. Any SSLError
    (a bad or missing client certificate on an mTLS route, a protocol
    version below `min_version`, the client giving up) flushes OpenSSL's
    alert to the client and closes with `TLS_HANDSHAKE_FAILED` and OpenSSL's
    reason. The engine's ticker bounds the handshake by `timeouts.client_hello`.
connecting
    The client is not read while the upstream is dialled; whatever it sent
    meanwhile waits, still encrypted, in the incoming BIO.
established / closing
    Plaintext both ways, with the passthrough relay's backpressure: a side
    whose write buffer passes HIGH_WATER pauses reading the other side.
    Half-close maps onto TLS close_notify:
    - the client's close_notify (or a bare TCP EOF, which OpenSSL reports as
      SSLEOFError) becomes a write shutdown towards the upstream, and the
      upstream's answer still flows back encrypted;
    - the upstream's EOF becomes our close_notify (then a TCP FIN) to the
      client, and whatever the client still sends is read and relayed
      until it closes too (or the idle timeout ends it).
    Data a client sends after its own close_notify is discarded rather than
    treated as an error. A connection is "client closed" or "upstream closed"
    after whoever ended first, as for passthrough.

Byte counters count plaintext: `bytes_up` is what the upstream received from
the client (the PROXY header excluded), `bytes_down` what the upstream sent.
That is what the route and upstream columns of the TUI and the access log's
bytes_in/bytes_out compare with the upstream's own logs; TLS framing and the
handshake are not counted (for passthrough the two are the same thing).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import TYPE_CHECKING

from cryptography import x509

from sniui.engine.model import CloseReason
from sniui.engine.relay import CLIENT, HIGH_WATER, LOW_WATER, UPSTREAM, close_transports
from sniui.tls.contexts import describe_ssl_error

if TYPE_CHECKING:
    from sniui.engine.connection import Connection

# One SSLObject.read() returns at most one TLS record (16 KiB of plaintext).
READ_SIZE = 16 * 1024


def describe_handshake_error(exc: BaseException) -> str:
    """Why a handshake failed, in OpenSSL's words; never key material."""
    if isinstance(exc, ssl.SSLEOFError):
        return "the client closed the connection during the TLS handshake"
    return describe_ssl_error(exc)


def peer_subject(tls: ssl.SSLObject) -> str | None:
    """The verified client certificate's subject (RFC 4514), or None without one."""
    der = tls.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return x509.load_der_x509_certificate(der).subject.rfc4514_string() or "(empty subject)"
    except ValueError:
        return None


def negotiated(tls: ssl.SSLObject) -> tuple[str | None, str | None, str | None]:
    """What a completed handshake agreed on: (protocol version, cipher suite name, selected ALPN)."""
    cipher = tls.cipher()
    return tls.version(), cipher[0] if cipher else None, tls.selected_alpn_protocol()


class _TlsClientSide(asyncio.Protocol):
    """Protocol of the client transport from the handshake on."""

    __slots__ = ("relay",)

    def __init__(self, relay: TerminatingRelay) -> None:
        self.relay = relay

    def data_received(self, data: bytes) -> None:
        self.relay.client_data(data)

    def eof_received(self) -> bool:
        return self.relay.client_tcp_eof()

    def pause_writing(self) -> None:
        upstream = self.relay.upstream_transport
        if upstream is not None:
            upstream.pause_reading()     # the client is slow: stop reading the upstream

    def resume_writing(self) -> None:
        upstream = self.relay.upstream_transport
        if upstream is not None and not upstream.is_closing():
            upstream.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.client_lost(exc)


class _PlainUpstreamSide(asyncio.Protocol):
    """Protocol of the plain upstream transport from connect on."""

    __slots__ = ("relay", "source", "full")

    def __init__(self, relay: TerminatingRelay) -> None:
        self.relay = relay
        self.source: asyncio.Transport | None = None
        self.full = False              # the upstream's write buffer is above HIGH_WATER

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.source = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.relay.upstream_data(data)

    def eof_received(self) -> bool:
        return self.relay.upstream_eof()

    def pause_writing(self) -> None:
        self.full = True
        client = self.relay.client_transport
        if client is not None:
            client.pause_reading()       # the upstream is slow: stop reading the client

    def resume_writing(self) -> None:
        self.full = False
        relay = self.relay
        client = relay.client_transport
        if client is not None and relay.started and not client.is_closing():
            client.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        conn = self.relay.conn
        if self.source is not None and conn.upstream_transport is self.source:
            conn.relay_finished(UPSTREAM, exc)


class TerminatingRelay:
    """The TLS server side of one terminating connection, and its plaintext relay."""

    __slots__ = (
        "conn", "tls", "incoming", "outgoing", "upstream_side", "client_transport", "upstream_transport",
        "handshaken", "started", "client_done", "upstream_done", "close_notify_sent",
    )

    def __init__(self, conn: Connection, context: ssl.SSLContext) -> None:
        self.conn = conn
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.upstream_side = _PlainUpstreamSide(self)
        self.client_transport: asyncio.Transport | None = None
        self.upstream_transport: asyncio.Transport | None = None
        self.handshaken = False        # our handshake with the client completed
        self.started = False           # the upstream is connected and plaintext flows
        self.client_done = False       # the client's close_notify or EOF was seen
        self.upstream_done = False     # the upstream's EOF was seen
        self.close_notify_sent = False

    # -- the relay interface (see relay.py) ---------------------------------------------------

    def upstream_protocol(self) -> asyncio.Protocol:
        return self.upstream_side

    def begin(self, client: asyncio.Transport, first_bytes: bytes) -> None:
        """Take the client transport over and start the handshake with the bytes already read."""
        self.client_transport = client
        client.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        client.set_protocol(_TlsClientSide(self))
        self.client_data(first_bytes)

    def start(self, client: asyncio.Transport, upstream: asyncio.Transport, first_bytes: bytes, client_eof: bool) -> None:
        """The upstream is connected: send `first_bytes` (a PROXY header, if any), then relay."""
        self.upstream_transport = upstream
        self.started = True
        if first_bytes:
            upstream.write(first_bytes)
        self._decrypt()      # what the client sent while we were connecting
        if not self.client_done and not self.upstream_side.full and not client.is_closing():
            client.resume_reading()

    def close(self, abort: bool = False) -> None:
        close_transports((self.client_transport, self.upstream_transport), abort)

    # -- the client side ------------------------------------------------------------------------

    def client_data(self, data: bytes) -> None:
        if self.client_done:
            return       # anything after the client's close_notify is not ours to read
        self.incoming.write(data)
        if not self.handshaken:
            self._handshake()
        elif self.started:
            self._decrypt()
        # else: connecting; the records wait in the incoming BIO (reading is paused)

    def client_tcp_eof(self) -> bool:
        if self.client_done:
            return True
        self.incoming.write_eof()
        if not self.handshaken:
            self._handshake()        # SSLEOFError inside: the handshake fails
            return self.handshaken
        if self.started:
            self._decrypt()
        return True   # keep our write side open: the upstream may still answer

    def client_lost(self, exc: Exception | None) -> None:
        conn = self.conn
        if not self.handshaken:
            detail = "the client closed the connection during the TLS handshake"
            if exc is not None:
                detail += f" ({describe_ssl_error(exc)})"
            conn.finish(CloseReason.TLS_HANDSHAKE_FAILED, detail)
            return
        conn.relay_finished(CLIENT, exc)

    def _handshake(self) -> None:
        conn = self.conn
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            self._flush()
            return
        except ssl.SSLError as exc:
            self._flush()              # OpenSSL's alert tells the client why
            conn.finish(CloseReason.TLS_HANDSHAKE_FAILED, describe_handshake_error(exc))
            return
        self._flush()                  # our Finished, and TLS 1.3 session tickets
        self.handshaken = True
        conn.handshake_completed(self.tls)

    def _decrypt(self) -> None:
        """Read every whole record in the incoming BIO and send the plaintext upstream."""
        tls = self.tls
        chunks: list[bytes] = []
        ended = False
        error: ssl.SSLError | None = None
        try:
            while True:
                chunk = tls.read(READ_SIZE)
                if not chunk:          # close_notify (Python returns b"" for a clean close)
                    ended = True
                    break
                chunks.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            ended = True               # close_notify, or a TCP EOF without one: either ends the client
        except ssl.SSLError as exc:
            error = exc
        conn = self.conn
        if chunks:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            upstream = self.upstream_transport
            if upstream is not None and not upstream.is_closing():
                upstream.write(data)
            conn.bytes_up += len(data)
        self._flush()                  # reading can answer (a TLS 1.3 KeyUpdate)
        if error is not None:
            conn.relay_finished(CLIENT, error)
        elif ended:
            self._client_ended()

    def _client_ended(self) -> None:
        conn = self.conn
        self.client_done = True
        conn.client_eof = True
        if self.upstream_done:
            conn.relay_finished(CLIENT, None)
            return
        conn.half_closed(CLIENT)
        upstream = self.upstream_transport
        if upstream is not None and not upstream.is_closing():
            try:
                upstream.write_eof()
            except OSError as exc:     # the upstream is gone already
                conn.relay_finished(UPSTREAM, exc)
        # The client keeps reading: its answer is still to come.

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            client = self.client_transport
            if client is not None and not client.is_closing():
                client.write(data)

    # -- the upstream side ---------------------------------------------------------------------

    def upstream_data(self, data: bytes) -> None:
        if self.close_notify_sent:
            return
        tls = self.tls
        try:
            view = memoryview(data)
            while view:
                written = tls.write(view)
                view = view[written:]
        except ssl.SSLError as exc:
            self._flush()
            self.conn.relay_finished(CLIENT, exc)
            return
        self.conn.bytes_down += len(data)
        self._flush()

    def upstream_eof(self) -> bool:
        conn = self.conn
        self.upstream_done = True
        conn.upstream_eof = True
        self._send_close_notify()
        if self.client_done:
            conn.relay_finished(UPSTREAM, None)
            return False
        conn.half_closed(UPSTREAM)
        return True   # the client may still send; keep the upstream's write side open

    def _send_close_notify(self) -> None:
        if self.close_notify_sent:
            return
        self.close_notify_sent = True
        try:
            self.tls.unwrap()          # queues our close_notify; the client's comes later, if at all
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError:
            pass                       # already shut down, or the session is broken: nothing to say
        self._flush()
        client = self.client_transport
        if self.client_done or client is None or client.is_closing():
            return                     # both ends are done: the connection closes now anyway
        try:
            client.write_eof()         # for clients that wait for the TCP end rather than close_notify
        except OSError:
            pass                       # the client is already gone; its transport reports that itself
