"""The splice(2) relay and its buffered fallback, each forced in turn: large transfers stay
byte-identical with half-close in both orders (splicing from the first byte, or switching
mid-stream), a slow reader stops the flow, and a kill mid-transfer leaves nothing behind."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sniui.engine import splice_relay
from sniui.engine.model import CloseReason
from sniui.engine.relay import BufferedRelay
from sniui.engine.splice_relay import SpliceRelay

from .conftest import (
    DEADLINE, FloodingUpstream, count_until_closed, make_client_hello, port_of, running, wait_for_flow_to_stop, wait_until,
)
from .test_bulk import HalfCloseExchange

SIZE = 64 * 1024 * 1024
requires_splice = pytest.mark.skipif(not splice_relay.AVAILABLE, reason="no os.splice on this platform")

RELAYS = [
    pytest.param(SpliceRelay, 0, id="splice-from-start", marks=requires_splice),
    pytest.param(SpliceRelay, 1 << 20, id="splice-after-switch", marks=requires_splice),
    pytest.param(BufferedRelay, None, id="buffered"),
]


@pytest.fixture
def splice_at_once(monkeypatch):
    monkeypatch.setattr(splice_relay, "SWITCH_AFTER", 0)


def config(port: int) -> str:
    return f"""
listen:
  - address: "127.0.0.1:0"
routes:
  - sni: bulk.example.com
    upstream: "127.0.0.1:{port}"
"""


@pytest.mark.slow
@pytest.mark.parametrize("first", ["client", "upstream"])
@pytest.mark.parametrize(("relay", "switch_after"), RELAYS)
async def test_large_transfer_both_ways_is_byte_identical_with_half_close(relay, switch_after, first, monkeypatch):
    if switch_after is not None:
        monkeypatch.setattr(splice_relay, "SWITCH_AFTER", switch_after)
    hello = make_client_hello("bulk.example.com")
    exchange = HalfCloseExchange(hello, SIZE, first)
    used: list[object] = []

    def factory(conn):
        made = relay(conn)
        used.append(made)
        return made

    try:
        async with running(config(exchange.upstream_port)) as engine:
            engine.relay_factory = factory
            await exchange.run(port_of(engine))
            await wait_until(lambda: engine.snapshot().recent, what="closed record")
            info = engine.snapshot().recent[0]
            assert info.bytes_up == SIZE + len(hello) and info.bytes_down == SIZE
            expected = CloseReason.CLIENT_CLOSED if first == "client" else CloseReason.UPSTREAM_CLOSED
            assert info.close_reason is expected
            assert [type(r) for r in used] == [relay]
            if relay is SpliceRelay:
                assert used[0].spliced, "the splice path was not taken"
    finally:
        exchange.close()


@requires_splice
async def test_slow_client_stops_the_flow_under_splice(splice_at_once):
    total = 32 * 1024 * 1024


    upstream = await FloodingUpstream(total, read_first=True).start()
    try:
        async with running(config(upstream.port)) as engine:
            engine.relay_factory = SpliceRelay
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port_of(engine)))
            reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
            writer.write(make_client_hello("bulk.example.com"))
            await wait_until(lambda: engine.registry.live and next(iter(engine.registry.live.values())).bytes_down > 0,
                             what="bytes flowing")
            conn = next(iter(engine.registry.live.values()))
            assert conn.relay.spliced
            reader._transport.pause_reading()
            await wait_for_flow_to_stop(conn, "the relay kept moving bytes towards a client that does not read")
            assert upstream.sent < total
            reader._transport.resume_reading()
            assert await count_until_closed(reader) == total
            writer.close()
            await wait_until(lambda: engine.snapshot().recent, what="closed")
            assert engine.snapshot().recent[0].bytes_down == total
    finally:
        upstream.close()


@requires_splice
async def test_kill_during_splice_closes_both_sides(splice_at_once):
    async def echo(reader, writer):
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        async with running(config(server.sockets[0].getsockname()[1])) as engine:
            engine.relay_factory = SpliceRelay
            hello = make_client_hello("bulk.example.com")
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
            writer.write(hello)
            assert await asyncio.wait_for(reader.readexactly(len(hello)), DEADLINE) == hello
            writer.write(b"after the hello")
            assert await asyncio.wait_for(reader.readexactly(15), DEADLINE) == b"after the hello"
            conn = next(iter(engine.registry.live.values()))
            relay = conn.relay
            assert relay.spliced
            assert engine.close_connection(conn.id)
            async with asyncio.timeout(DEADLINE):
                with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
                    await reader.readexactly(1)
            info = engine.snapshot().recent[0]
            assert info.close_reason is CloseReason.KILLED
            assert info.bytes_up == len(hello) + 15 and info.bytes_down == len(hello) + 15
            assert relay.socks is None and relay.directions is None   # the duplicated sockets and pipes are closed
            writer.close()
    finally:
        server.close()
