"""Hello timeout, connect timeout, refused upstream, DNS failure and idle timeout each give their close reason."""

from __future__ import annotations

import asyncio
import socket


from sniui.engine.model import CloseReason

from .conftest import DEADLINE, make_client_hello, port_of, read_until_closed, running, tls_exchange, wait_until


def config(upstream: str, timeouts: str = "", extra: str = "") -> str:
    return f"""
listen:
  - address: "127.0.0.1:0"
timeouts:
{timeouts or "  client_hello: 5s"}
routes:
  - name: r
    sni: ".example.com"
    upstream: "{upstream}"
{extra}
"""


async def closed_record(engine, reason: CloseReason):
    await wait_until(lambda: any(i.close_reason is reason for i in engine.snapshot().recent), what=reason.value)
    return next(i for i in engine.snapshot().recent if i.close_reason is reason)


async def test_stalled_half_hello_is_closed_at_client_hello_timeout(tls_upstream):
    up = await tls_upstream("up")
    async with running(config(up.address, "  client_hello: 300ms")) as engine:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
        hello = make_client_hello("a.example.com")
        writer.write(hello[:40])
        assert await read_until_closed(reader) == b""
        info = await closed_record(engine, CloseReason.HELLO_TIMEOUT)
        assert info.duration is not None and info.duration >= 0.3
        writer.close()


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_refused_upstream_is_connect_failed():
    port = unused_port()
    async with running(config(f"127.0.0.1:{port}")) as engine:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
        writer.write(make_client_hello("a.example.com"))
        assert await read_until_closed(reader) == b""
        info = await closed_record(engine, CloseReason.CONNECT_FAILED)
        assert "connection refused" in info.close_detail
        assert f"127.0.0.1:{port}" in info.close_detail
        snap = engine.snapshot()
        assert snap.per_upstream[f"127.0.0.1:{port}"].errors == {CloseReason.CONNECT_FAILED.value: 1}
        server = next(s for s in snap.servers if s.address == f"127.0.0.1:{port}")
        assert server.group is None and not server.up and server.last_error


async def test_unanswered_connect_is_connect_timeout():
    # A listener with a full accept queue never completes new handshakes: SYNs are dropped.
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(0)
    fillers = []
    try:
        address = blackhole.getsockname()
        for _ in range(8):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
        text = config(f"127.0.0.1:{address[1]}", "  client_hello: 5s\n  connect: 300ms")
        async with running(text) as engine:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
            writer.write(make_client_hello("a.example.com"))
            assert await read_until_closed(reader) == b""
            info = await closed_record(engine, CloseReason.CONNECT_TIMEOUT)
            assert "no answer within 0.3s" in info.close_detail
    finally:
        for filler in fillers:
            filler.close()
        blackhole.close()


async def test_dns_failure_is_resolve_failed_naming_the_host(dns_server, tls_upstream, client_context):
    up = await tls_upstream("up")
    dns, nameserver = await dns_server({"up.internal": "127.0.0.1"})
    text = f"""
listen:
  - address: "127.0.0.1:0"
resolver:
  nameservers: ["{nameserver}"]
routes:
  - sni: good.example.com
    upstream: "up.internal:{up.port}"
  - sni: bad.example.com
    upstream: "missing.internal:443"
"""
    async with running(text) as engine:
        port = port_of(engine)
        assert await tls_exchange(port, "good.example.com", client_context) == "upstream=up sni=good.example.com"
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(make_client_hello("bad.example.com"))
        assert await read_until_closed(reader) == b""
        info = await closed_record(engine, CloseReason.RESOLVE_FAILED)
        assert "missing.internal" in info.close_detail and "NXDOMAIN" in info.close_detail
        assert "missing.internal" in dns.queries
        assert engine.snapshot().totals.errors[CloseReason.RESOLVE_FAILED.value] == 1


async def test_idle_connection_is_closed_at_idle_timeout(tls_upstream, client_context):
    up = await tls_upstream("up")
    async with running(config(up.address, "  idle: 400ms")) as engine:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine), ssl=client_context,
                                                       server_hostname="a.example.com")
        writer.write(b"hi\n")
        assert (await reader.readline()).startswith(b"upstream=up")
        async with asyncio.timeout(DEADLINE):
            assert await reader.read() in (b"", b"hi\n")
        info = await closed_record(engine, CloseReason.IDLE_TIMEOUT)
        assert info.bytes_up > 0 and info.duration >= 0.4
        writer.close()
