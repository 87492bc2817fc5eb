"""Moving bytes between a client and its upstream once routing is decided.

The relay is the only code on the per-chunk path, so it is kept behind one
small interface that a zero-copy implementation (splice(2) through a pipe) can
replace without touching the rest of the engine:

    relay = BufferedRelay(connection)            # before connecting upstream
    loop.create_connection(relay.upstream_protocol, ...)
    relay.start(client_transport, upstream_transport, first_bytes, client_eof)
    relay.close(abort)                           # idempotent

`Engine.relay_factory` (default `BufferedRelay`) picks the implementation per
engine; a connection calls it once it has decided to pass traffic through.

A relay reports back only through its connection: it adds to
`connection.bytes_up` / `bytes_down` (the only per-chunk work besides the
write), sets `client_eof` / `upstream_eof`, calls `connection.half_closed(side)`
on the first EOF and `connection.relay_finished(side, exc)` when a side is gone. Backpressure is the
transports' own: a side whose write buffer passes its high-water mark pauses
reading on the other side until it drains. An EOF from one side becomes a
write shutdown on the other, and the opposite direction keeps flowing.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sniui.engine.connection import Connection

# Per-direction write buffer bounds: how much one slow side may make us hold.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024

CLIENT = "client"
UPSTREAM = "upstream"


class _ClientSide(asyncio.Protocol):
    """Protocol of the client transport once relaying: client → upstream."""

    __slots__ = ("conn", "sink", "source")

    def __init__(self, conn: Connection, source: asyncio.Transport, sink: asyncio.Transport) -> None:
        self.conn = conn
        self.source = source
        self.sink = sink

    def data_received(self, data: bytes) -> None:
        self.sink.write(data)
        self.conn.bytes_up += len(data)

    def eof_received(self) -> bool:
        conn = self.conn
        conn.client_eof = True
        if conn.upstream_eof:
            conn.relay_finished(CLIENT, None)
            return False
        conn.half_closed(CLIENT)
        if not self.sink.is_closing():
            self.sink.write_eof()
        return True   # keep our write side open: the upstream may still answer

    def pause_writing(self) -> None:
        self.sink.pause_reading()        # the client is slow: stop reading the upstream

    def resume_writing(self) -> None:
        if not self.sink.is_closing():
            self.sink.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn.relay_finished(CLIENT, exc)


class _UpstreamSide(asyncio.Protocol):
    """Protocol of the upstream transport from connect on: upstream → client."""

    __slots__ = ("conn", "sink", "source")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sink: asyncio.Transport = conn.transport   # the client: known before we connect
        self.source: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.source = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(HIGH_WATER, LOW_WATER)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.sink.write(data)
        self.conn.bytes_down += len(data)

    def eof_received(self) -> bool:
        conn = self.conn
        conn.upstream_eof = True
        if conn.client_eof:
            conn.relay_finished(UPSTREAM, None)
            return False
        conn.half_closed(UPSTREAM)
        if not self.sink.is_closing():
            self.sink.write_eof()
        return True

    def pause_writing(self) -> None:
        self.sink.pause_reading()        # the upstream is slow: stop reading the client

    def resume_writing(self) -> None:
        if not self.sink.is_closing():
            self.sink.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.source is not None and self.conn.upstream_transport is self.source:
            self.conn.relay_finished(UPSTREAM, exc)


def close_transports(transports: tuple[asyncio.BaseTransport | None, ...], abort: bool = False) -> None:
    """Close (or abort: RST, nothing flushed) each transport that is still open."""
    for transport in transports:
        if transport is not None and not transport.is_closing():
            if abort:
                transport.abort()  # type: ignore[attr-defined]
            else:
                transport.close()


class BufferedRelay:
    """Relay through the transports' buffers (works for any transport, TLS included)."""

    __slots__ = ("conn", "upstream_side", "client_transport", "upstream_transport")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.upstream_side = self._upstream_side()
        self.client_transport: asyncio.Transport | None = None
        self.upstream_transport: asyncio.Transport | None = None

    def upstream_protocol(self) -> asyncio.Protocol:
        return self.upstream_side

    def _upstream_side(self) -> _UpstreamSide:
        return _UpstreamSide(self.conn)

    def _client_side(self, client: asyncio.Transport, upstream: asyncio.Transport) -> asyncio.Protocol:
        return _ClientSide(self.conn, client, upstream)

    def start(self, client: asyncio.Transport, upstream: asyncio.Transport, first_bytes: bytes, client_eof: bool) -> None:
        """Forward what was read before the decision, then relay both ways."""
        self.client_transport = client
        self.upstream_transport = upstream
        # The upstream transport holds its protocol now; keeping it here too made relay <-> side a
        # cycle that only the garbage collector could free, one per connection.
        self.upstream_side = None
        client.set_write_buffer_limits(HIGH_WATER, LOW_WATER)
        client.set_protocol(self._client_side(client, upstream))
        if first_bytes:
            upstream.write(first_bytes)
        if client_eof:
            upstream.write_eof()
        else:
            client.resume_reading()

    def close(self, abort: bool = False) -> None:
        close_transports((self.client_transport, self.upstream_transport), abort)
