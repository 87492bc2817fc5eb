"""No SNI, unknown SNI, garbage, plain HTTP, limits and allow_clients: refused the documented way and counted."""

from __future__ import annotations

import asyncio
import resource
import socket
import ssl

import pytest

from sniui.engine.model import CloseReason
from sniui.tls import alerts

from .conftest import (DEADLINE, make_client_hello, no_sni_context, port_of, read_until_closed, running,
                       tls_exchange, wait_until)


def config(upstream: str, *, default: str = "", extra: str = "", route_extra: str = "") -> str:
    return f"""
listen:
  - address: "127.0.0.1:0"
routes:
  - name: shop
    sni: shop.example.com
    upstream: "{upstream}"
{route_extra}
{default}
{extra}
"""


async def send_and_read(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await read_until_closed(reader)
    finally:
        writer.close()


def alert(description: int) -> bytes:
    return bytes((21, 3, 1, 0, 2, 2, description))


async def test_unknown_sni_gets_unrecognized_name_alert(tls_upstream, client_context):
    shop = await tls_upstream("shop")
    async with running(config(shop.address)) as engine:
        port = port_of(engine)
        answer = await send_and_read(port, make_client_hello("nope.example.net"))
        assert answer == alert(alerts.UNRECOGNIZED_NAME)
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            await tls_exchange(port, "other.example.com", client_context)
        await wait_until(lambda: engine.snapshot().totals.errors.get(CloseReason.NO_ROUTE.value) == 2, what="counted")
        snap = engine.snapshot()
        assert snap.per_route["default"].errors[CloseReason.NO_ROUTE.value] == 2
        assert snap.recent[0].close_reason is CloseReason.NO_ROUTE
        assert shop.seen_sni == []


async def test_no_sni_gets_alert_and_is_counted(tls_upstream, ca):
    shop = await tls_upstream("shop")
    async with running(config(shop.address)) as engine:
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            await tls_exchange(port_of(engine), None, no_sni_context(ca))
        await wait_until(lambda: engine.snapshot().totals.errors.get(CloseReason.NO_SNI.value) == 1, what="counted")


async def test_no_sni_can_route(tls_upstream, ca):
    shop = await tls_upstream("shop")
    text = config(shop.address, default=f'no_sni:\n  action: route\n  upstream: "{shop.address}"')
    async with running(text) as engine:
        line = await tls_exchange(port_of(engine), None, no_sni_context(ca))
        assert line == "upstream=shop sni=None"


async def test_garbage_and_plain_http_are_closed_without_alert(tls_upstream):
    shop = await tls_upstream("shop")
    async with running(config(shop.address)) as engine:
        port = port_of(engine)
        assert await send_and_read(port, b"GET / HTTP/1.1\r\nHost: shop.example.com\r\n\r\n") == b""
        assert await send_and_read(port, b"\x00\x01garbage\r\n") == b""
        # A TLS record header with a broken hello inside: decode_error.
        broken = b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00"
        assert await send_and_read(port, broken) == alert(alerts.DECODE_ERROR)
        await wait_until(lambda: engine.snapshot().totals.closed == 3, what="three closes")
        errors = engine.snapshot().totals.errors
        assert errors[CloseReason.NOT_TLS.value] == 2
        assert errors[CloseReason.BAD_HELLO.value] == 1
        details = [info.close_detail for info in engine.snapshot().recent]
        assert any("plain-text HTTP" in (d or "") for d in details)


async def test_reject_with_close_and_reset(tls_upstream):
    shop = await tls_upstream("shop")
    async with running(config(shop.address, default="default:\n  reject_with: close")) as engine:
        assert await send_and_read(port_of(engine), make_client_hello("nope.example.net")) == b""
    async with running(config(shop.address, default="default:\n  reject_with: reset")) as engine:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
        writer.write(make_client_hello("nope.example.net"))
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(DEADLINE):
                while await reader.read(65536):
                    pass
        writer.close()
        await wait_until(lambda: engine.snapshot().totals.errors.get(CloseReason.NO_ROUTE.value) == 1, what="counted")


async def test_allow_clients_refuses_others(tls_upstream, client_context):
    shop = await tls_upstream("shop")
    text = config(shop.address, route_extra='    allow_clients: ["127.0.0.2/32"]')
    async with running(text) as engine:
        port = port_of(engine)
        answer = await send_and_read(port, make_client_hello("shop.example.com"))
        assert answer == alert(alerts.ACCESS_DENIED)
        line = await tls_exchange(port, "shop.example.com", client_context, local_addr=("127.0.0.2", 0))
        assert line == "upstream=shop sni=shop.example.com"
        await wait_until(lambda: engine.snapshot().totals.closed == 2, what="both closed")
        assert engine.snapshot().per_route["shop"].errors == {CloseReason.ACL.value: 1}


async def test_total_and_per_client_limits(tls_upstream, client_context):
    shop = await tls_upstream("shop")
    text = config(shop.address, extra="limits:\n  max_connections: 3\n  max_connections_per_client: 2")
    async with running(text) as engine:
        port = port_of(engine)
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await wait_until(lambda: len(engine.snapshot().connections) == 2, what="two pending")
        # A third from the same address is over the per-client limit.
        assert await send_and_read(port, make_client_hello("shop.example.com")) == alert(alerts.INTERNAL_ERROR)
        # Another address still gets in, up to the total.
        line = await tls_exchange(port, "shop.example.com", client_context, local_addr=("127.0.0.2", 0))
        assert line.startswith("upstream=shop")
        await wait_until(lambda: len(engine.snapshot().connections) == 2, what="back to two")
        held.append(await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.3", 0)))
        await wait_until(lambda: len(engine.snapshot().connections) == 3, what="three pending")
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.4", 0))
        writer.write(make_client_hello("shop.example.com"))
        assert await read_until_closed(reader) == alert(alerts.INTERNAL_ERROR)
        writer.close()
        errors = engine.snapshot().totals.errors
        assert errors[CloseReason.CLIENT_LIMIT.value] == 1
        assert errors[CloseReason.LIMIT.value] == 1
        for _, w in held:
            w.close()
        await wait_until(lambda: not engine.snapshot().connections, what="all closed")


def _raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < wanted:
        pytest.skip(f"needs {wanted} file descriptors")


@pytest.mark.slow
async def test_two_thousand_half_open_sockets_do_not_stop_a_real_client(tls_upstream, client_context):
    _raise_fd_limit(5000)
    shop = await tls_upstream("shop")
    text = config(shop.address, extra="limits:\n  max_connections: 2500\n  max_connections_per_client: 2100\n"
                                      "timeouts:\n  client_hello: 60s")
    hello = make_client_hello("shop.example.com")
    async with running(text) as engine:
        port = port_of(engine)
        sockets = []
        try:
            for _ in range(2000):
                sock = socket.socket()
                sock.setblocking(False)
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
                sock.send(hello[: len(hello) // 2])
                sockets.append(sock)
            await wait_until(lambda: len(engine.registry.live) == 2000, timeout=30, what="2000 half-open")
            line = await tls_exchange(port, "shop.example.com", client_context, local_addr=("127.0.0.2", 0))
            assert line == "upstream=shop sni=shop.example.com"
            # The per-client limit caps one address's half-open sockets.
            await engine.apply(engine.config.model_copy(update={"limits": engine.config.limits.model_copy(
                update={"max_connections_per_client": 2000})}))
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(hello)
            assert await read_until_closed(reader) == alert(alerts.INTERNAL_ERROR)
            writer.close()
        finally:
            for sock in sockets:
                sock.close()
        await wait_until(lambda: not engine.registry.live, timeout=30, what="all closed")
        closed_mid_hello = [i for i in engine.registry.recent if i.close_reason is CloseReason.CLIENT_CLOSED
                            and "before its ClientHello" in (i.close_detail or "")]
        assert len(closed_mid_hello) >= 900   # the ring keeps the newest 1000 closes


async def test_random_first_bytes_never_hurt_the_router(tls_upstream, client_context):
    import random

    shop = await tls_upstream("shop")
    rng = random.Random(1234)
    hello = make_client_hello("shop.example.com")
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 600))) for _ in range(60)]
    # Truncated and corrupted real hellos too: the reader must answer each with a close, never a crash.
    samples += [hello[:n] for n in range(1, len(hello), 37)]
    samples += [hello[:n] + bytes([hello[n] ^ 0xFF]) + hello[n + 1:] for n in range(0, len(hello), 41)]
    async with running(config(shop.address, extra="timeouts:\n  client_hello: 500ms")) as engine:
        port = port_of(engine)
        for sample in samples:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(sample)
            writer.write_eof()
            await read_until_closed(reader)
            writer.close()
        await wait_until(lambda: not engine.registry.live, what="every sample closed")
        assert engine.snapshot().totals.closed == len(samples)
        assert await tls_exchange(port, "shop.example.com", client_context) == "upstream=shop sni=shop.example.com"


async def test_default_route_sends_unmatched_names_to_a_group(tls_upstream, client_context):
    shop, fallback = await tls_upstream("shop"), await tls_upstream("fallback")
    text = f"""
listen:
  - address: "127.0.0.1:0"
upstreams:
  rest:
    servers: ["{fallback.address}"]
routes:
  - sni: shop.example.com
    upstream: "{shop.address}"
default:
  action: route
  upstream: rest
"""
    async with running(text) as engine:
        port = port_of(engine)
        assert await tls_exchange(port, "other.example.com", client_context) == "upstream=fallback sni=other.example.com"
        assert await tls_exchange(port, "shop.example.com", client_context) == "upstream=shop sni=shop.example.com"
        await wait_until(lambda: engine.snapshot().totals.closed == 2, what="closed")
        assert engine.snapshot().per_route["default"].accepted == 1
