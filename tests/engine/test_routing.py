"""Real TLS clients reach the right upstream by SNI; the upstream does the handshake itself."""

from __future__ import annotations

import asyncio
import shutil

import pytest

from sniui.engine.model import CloseReason, ConnState

from .conftest import (DEADLINE, make_client_hello, port_of, requires_ipv6, running, tls_exchange,
                       wait_until)


def routes_config(shop: str, apps: str, k8s_port: int, listen: str = "127.0.0.1:0") -> str:
    return f"""
listen:
  - address: "{listen}"
routes:
  - name: shop
    sni: shop.example.com
    upstream: "{shop}"
  - name: apps
    sni: "*.apps.example.com"
    upstream: "{apps}"
  - name: k8s
    sni: "~^(?<app>[a-z]+)-(?<port>\\\\d+)\\\\.k8s\\\\.example\\\\.com$"
    upstream: "127.0.0.1:$port"
    allow: ["127.0.0.1:1-65535"]
"""


async def three_upstreams(tls_upstream):
    return await tls_upstream("shop"), await tls_upstream("apps"), await tls_upstream("k8s")


async def test_exact_wildcard_and_regex_routes_reach_their_upstream(tls_upstream, client_context):
    shop, apps, k8s = await three_upstreams(tls_upstream)
    async with running(routes_config(shop.address, apps.address, k8s.port)) as engine:
        port = port_of(engine)
        assert await tls_exchange(port, "shop.example.com", client_context) == "upstream=shop sni=shop.example.com"
        assert await tls_exchange(port, "a.apps.example.com", client_context) == "upstream=apps sni=a.apps.example.com"
        name = f"web-{k8s.port}.k8s.example.com"
        assert await tls_exchange(port, name, client_context) == f"upstream=k8s sni={name}"
        await wait_until(lambda: engine.snapshot().totals.closed == 3, what="three closed connections")
        snap = engine.snapshot()
        by_route = {info.route: info for info in snap.recent}
        assert set(by_route) == {"shop", "apps", "k8s"}
        k8s_info = by_route["k8s"]
        assert k8s_info.upstream == f"127.0.0.1:{k8s.port}"
        assert k8s_info.upstream_address == f"127.0.0.1:{k8s.port}"
        assert k8s_info.sni == name
        assert k8s_info.bytes_up > 0 and k8s_info.bytes_down > 0
        assert k8s_info.close_reason in (CloseReason.CLIENT_CLOSED, CloseReason.UPSTREAM_CLOSED)
        assert 0x0304 in k8s_info.tls_versions
        assert snap.per_route["shop"].accepted == 1


async def test_live_connection_appears_in_snapshot(tls_upstream, client_context):
    shop, apps, k8s = await three_upstreams(tls_upstream)
    async with running(routes_config(shop.address, apps.address, k8s.port)) as engine:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine), ssl=client_context,
                                                       server_hostname="shop.example.com")
        writer.write(b"hi\n")
        await reader.readline()
        snap = engine.snapshot()
        assert len(snap.connections) == 1
        live = snap.connections[0]
        assert live.state is ConnState.ESTABLISHED
        assert live.route == "shop" and live.sni == "shop.example.com"
        assert live.upstream_address == shop.address
        writer.close()
        await wait_until(lambda: not engine.snapshot().connections, what="connection gone")


async def raw_hello_exchange(port: int, chunks: list[bytes], rest_of_handshake: bool = False) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        async with asyncio.timeout(DEADLINE):
            # The upstream answers with a ServerHello record: content type 22.
            head = await reader.readexactly(5)
        return head
    finally:
        writer.close()


async def test_hello_one_byte_per_write_routes(tls_upstream):
    shop, apps, k8s = await three_upstreams(tls_upstream)
    async with running(routes_config(shop.address, apps.address, k8s.port)) as engine:
        hello = make_client_hello("shop.example.com")
        head = await raw_hello_exchange(port_of(engine), [hello[i:i + 1] for i in range(len(hello))])
        assert head[0] == 22
        await wait_until(lambda: shop.seen_sni == ["shop.example.com"], what="shop saw the SNI")


def split_into_records(hello: bytes, parts: int) -> bytes:
    """Re-frame one handshake record as `parts` records carrying the same handshake bytes."""
    version, body = hello[1:3], hello[5:]
    size = -(-len(body) // parts)
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"\x16" + version + len(piece).to_bytes(2, "big") + piece
    return out


async def test_hello_split_across_three_records_routes(tls_upstream):
    shop, apps, k8s = await three_upstreams(tls_upstream)
    async with running(routes_config(shop.address, apps.address, k8s.port)) as engine:
        hello = split_into_records(make_client_hello("x.apps.example.com"), 3)
        assert hello.count(b"\x16\x03\x01") >= 3
        head = await raw_hello_exchange(port_of(engine), [hello])
        assert head[0] == 22
        await wait_until(lambda: apps.seen_sni == ["x.apps.example.com"], what="apps saw the SNI")


@requires_ipv6
async def test_ipv6_listener_and_upstream(tls_upstream, client_context):
    shop = await tls_upstream("shop6", host="::1")
    async with running(routes_config(shop.address, shop.address, 1, listen="[::1]:0")) as engine:
        line = await tls_exchange(port_of(engine), "shop.example.com", client_context, host="::1")
        assert line == "upstream=shop6 sni=shop.example.com"
        await wait_until(lambda: engine.snapshot().recent, what="closed record")
        assert engine.snapshot().recent[0].client_ip == "::1"


@pytest.mark.realclient
@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl")),
                    reason="needs openssl and curl (apt-get install openssl curl)")
async def test_openssl_s_client_and_curl(tls_upstream, ca_file):
    shop, apps, k8s = await three_upstreams(tls_upstream)
    async with running(routes_config(shop.address, apps.address, k8s.port)) as engine:
        port = port_of(engine)
        proc = await asyncio.create_subprocess_exec(
            "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "shop.example.com",
            "-CAfile", str(ca_file), "-verify_return_error", "-quiet",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(DEADLINE):
            out, err = await proc.communicate(b"GET / HTTP/1.0\r\nHost: shop.example.com\r\n\r\n")
        assert b"upstream=shop sni=shop.example.com" in out, err
        name = "curl.apps.example.com"
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--max-time", "10", "--cacert", str(ca_file), "--resolve", f"{name}:{port}:127.0.0.1",
            f"https://{name}:{port}/", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(DEADLINE + 2):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert out.decode().strip() == f"upstream=apps sni={name}"
        # The regex route, its upstream rendered from the name's captures.
        name = f"api-{k8s.port}.k8s.example.com"
        proc = await asyncio.create_subprocess_exec(
            "curl", "-sS", "--max-time", "10", "--cacert", str(ca_file), "--resolve", f"{name}:{port}:127.0.0.1",
            f"https://{name}:{port}/", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(DEADLINE + 2):
            out, err = await proc.communicate()
        assert proc.returncode == 0, err
        assert out.decode().strip() == f"upstream=k8s sni={name}"
        # An unknown name: openssl reports the router's unrecognized_name alert.
        proc = await asyncio.create_subprocess_exec(
            "openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "nobody.example.net",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(DEADLINE):
            out, err = await proc.communicate(b"")
        assert proc.returncode != 0
        assert b"unrecognized name" in err or b"alert number 112" in err, err
