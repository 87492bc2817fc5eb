"""Relay behaviour: backpressure bounds what a slow side makes us hold; hello size limit."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sniui.engine.model import CloseReason
from sniui.engine.relay import HIGH_WATER

from .conftest import (
    FloodingUpstream, count_until_closed, make_client_hello, port_of, read_until_closed, running, wait_for_flow_to_stop,
    wait_until,
)

TOTAL = 32 * 1024 * 1024
READ_CHUNK = 256 * 1024   # asyncio's largest single read


async def test_slow_client_pauses_the_upstream_instead_of_buffering():

    upstream = await FloodingUpstream(TOTAL).start()
    upstream_port = upstream.port
    text = f"""
listen:
  - address: "127.0.0.1:0"
routes:
  - sni: slow.example.com
    upstream: "127.0.0.1:{upstream_port}"
"""
    try:
        async with running(text) as engine:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port_of(engine)))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
            writer.write(make_client_hello("slow.example.com"))
            # Without reading, wait until the flow stops: the router must have paused the upstream.
            await wait_until(lambda: engine.registry.live and next(iter(engine.registry.live.values())).bytes_down > 0,
                             what="bytes flowing")
            conn = next(iter(engine.registry.live.values()))
            reader._transport.pause_reading()   # the client stops reading entirely
            await wait_for_flow_to_stop(conn, "the relay never stopped moving bytes towards a client that does not read")
            # Paused, not closed: a closed connection also stops the flow.
            assert conn.closed is None, f"closed instead of paused: {conn.close_reason} ({conn.close_detail})"
            assert upstream.sent < TOTAL
            assert conn.transport.get_write_buffer_size() <= HIGH_WATER + READ_CHUNK
            reader._transport.resume_reading()
            assert await count_until_closed(reader) == TOTAL
            writer.close()
    finally:
        upstream.close()


async def test_oversized_hello_is_refused(tls_upstream):
    up = await tls_upstream("up")
    text = f"""
listen:
  - address: "127.0.0.1:0"
limits:
  max_client_hello: 1KiB
routes:
  - sni: big.example.com
    upstream: "{up.address}"
"""
    async with running(text) as engine:
        hello = make_client_hello("big.example.com", alpn=[f"protocol-{i:03d}-{'p' * 40}" for i in range(40)])
        assert len(hello) > 1024
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
        writer.write(hello)
        answer = await read_until_closed(reader)
        assert answer[:1] == b"\x15"   # a fatal alert record
        writer.close()
        await wait_until(lambda: engine.snapshot().recent, what="closed")
        info = engine.snapshot().recent[0]
        assert info.close_reason is CloseReason.BAD_HELLO and "limit" in info.close_detail
        assert up.seen_sni == []


async def test_upstream_reset_is_passed_on_and_named():
    import struct

    async def reset_after_hello(reader, writer):
        await reader.read(65536)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    server = await asyncio.start_server(reset_after_hello, "127.0.0.1", 0)
    text = f"""
listen:
  - address: "127.0.0.1:0"
routes:
  - sni: reset.example.com
    upstream: "127.0.0.1:{server.sockets[0].getsockname()[1]}"
"""
    try:
        async with running(text) as engine:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
            writer.write(make_client_hello("reset.example.com"))
            writer.write_eof()   # the client finished first; the error still names the upstream
            assert await read_until_closed(reader) == b""
            writer.close()
            await wait_until(lambda: engine.snapshot().recent, what="closed")
            info = engine.snapshot().recent[0]
            assert info.close_reason is CloseReason.UPSTREAM_CLOSED
            assert "reset" in (info.close_detail or "")
    finally:
        server.close()


async def test_half_closed_connection_shows_closing_and_keeps_flowing():
    release = asyncio.Event()

    async def answer_after_eof(reader, writer):
        data = await reader.read()              # everything up to the client's EOF
        await release.wait()
        writer.write(b"late answer after %d bytes" % len(data))
        writer.close()

    server = await asyncio.start_server(answer_after_eof, "127.0.0.1", 0)
    text = f"""
listen:
  - address: "127.0.0.1:0"
routes:
  - sni: half.example.com
    upstream: "127.0.0.1:{server.sockets[0].getsockname()[1]}"
"""
    hello = make_client_hello("half.example.com")
    try:
        async with running(text) as engine:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
            writer.write(hello)
            writer.write_eof()
            await wait_until(lambda: [c.state.value for c in engine.snapshot().connections] == ["closing"],
                             what="the half-closed state")
            release.set()
            assert await read_until_closed(reader) == b"late answer after %d bytes" % len(hello)
            writer.close()
            await wait_until(lambda: engine.snapshot().recent, what="closed")
            assert engine.snapshot().recent[0].close_reason is CloseReason.CLIENT_CLOSED
    finally:
        server.close()


@pytest.mark.parametrize("upstream_host", ["127.0.0.1", "localhost"])   # the callback dial; the resolving dial
async def test_both_sides_of_a_relayed_connection_send_without_nagle(raw_upstream, upstream_host):
    """Small relayed writes must leave at once: with Nagle on, a TLS client's second flight
    waited for the upstream's delayed ACK (40 ms) whenever the first was still unacknowledged."""
    upstream = await raw_upstream()
    text = f"""
listen: [{{address: "127.0.0.1:0"}}]
routes: [{{sni: small.example.com, upstream: "{upstream_host}:{upstream.port}"}}]
"""
    async with running(text) as engine:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
        writer.write(make_client_hello("small.example.com"))
        await wait_until(lambda: upstream.received and upstream.received[0], what="the hello upstream")
        conn = next(iter(engine.registry.live.values()))
        for side in (conn.transport, conn.upstream_transport):
            sock = side.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), side
        writer.close()
