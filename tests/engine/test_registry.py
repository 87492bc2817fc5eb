"""Registry, events, admin close and drain."""

from __future__ import annotations

import asyncio

import pytest

from sniui.engine.model import CloseReason, ConnState

from .conftest import DEADLINE, port_of, read_until_closed, running, tls_exchange, wait_until


def config(upstream: str, extra: str = "") -> str:
    return f"""
listen:
  - address: "127.0.0.1:0"
routes:
  - name: web
    sni: ".example.com"
    upstream: "{upstream}"
{extra}
"""


async def open_tls(port: int, context, sni: str = "www.example.com"):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=sni)
    writer.write(b"hello\n")
    await reader.readline()
    await reader.readexactly(6)
    return reader, writer


async def test_events_stream_and_lossy_queue(tls_upstream, client_context):
    up = await tls_upstream("up")
    async with running(config(up.address)) as engine:
        port = port_of(engine)
        events = engine.subscribe()
        tiny = engine.subscribe(maxsize=2)
        for _ in range(3):
            await tls_exchange(port, "www.example.com", client_context)
        await wait_until(lambda: engine.snapshot().totals.closed == 3, what="closed")
        kinds = []
        while (event := events.get_nowait()) is not None:
            kinds.append(event.kind)
        assert kinds.count("connection_opened") == 3 and kinds.count("connection_closed") == 3
        assert tiny.pending() == 2 and tiny.dropped == 4
        assert engine.snapshot().events_dropped == 4
        # Async iteration ends when the subscription closes.
        tiny.close()
        got = [event async for event in tiny]
        assert len(got) == 2 and got[-1].kind == "connection_closed"
        last = got[-1].connection
        assert last.sni == "www.example.com" and last.route == "web" and last.state is ConnState.CLOSED


async def test_close_connection_by_id(tls_upstream, client_context):
    up = await tls_upstream("up")
    async with running(config(up.address)) as engine:
        reader, writer = await open_tls(port_of(engine), client_context)
        [live] = engine.snapshot().connections
        assert engine.close_connection(live.id) is True
        assert engine.close_connection(live.id) is False
        assert await read_until_closed(reader) == b""
        assert engine.snapshot().recent[0].close_reason is CloseReason.KILLED
        writer.close()


async def test_rates_and_counters(tls_upstream, client_context):
    up = await tls_upstream("up")
    async with running(config(up.address, "timeouts:\n  client_hello: 200ms")) as engine:
        await tls_exchange(port_of(engine), "www.example.com", client_context)
        await wait_until(lambda: sum(r.connections for r in engine.snapshot().rates) == 1, timeout=5, what="rate sample")
        snap = engine.snapshot()
        assert sum(r.bytes for r in snap.rates) == snap.totals.bytes_up + snap.totals.bytes_down > 0
        assert snap.listeners[0].counters.accepted == 1
        assert snap.per_upstream[up.address].accepted == 1


async def test_drain_lets_established_finish_and_refuses_new(tls_upstream, client_context):
    up = await tls_upstream("up")
    async with running(config(up.address)) as engine:
        port = port_of(engine)
        reader, writer = await open_tls(port, client_context)
        drain = asyncio.create_task(engine.drain(timeout=DEADLINE))
        await wait_until(lambda: engine.draining, what="draining")
        await asyncio.sleep(0)
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"more\n")
        assert await reader.readexactly(5) == b"more\n"   # still relayed while draining
        writer.close()
        async with asyncio.timeout(DEADLINE):
            await drain
        assert engine.snapshot().recent[0].close_reason in (CloseReason.CLIENT_CLOSED, CloseReason.UPSTREAM_CLOSED)


async def test_drain_timeout_closes_the_rest_with_shutdown(tls_upstream, client_context):
    up = await tls_upstream("up")
    async with running(config(up.address)) as engine:
        reader, writer = await open_tls(port_of(engine), client_context)
        await engine.drain(timeout=0.2)
        assert engine.snapshot().recent[0].close_reason is CloseReason.SHUTDOWN
        writer.close()
