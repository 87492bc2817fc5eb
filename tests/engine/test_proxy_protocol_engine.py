"""PROXY protocol out (v1, v2; IPv4 and IPv6 clients) checked by an independent parser, and in."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import struct

import pytest

from .conftest import make_client_hello, port_of, requires_ipv6, running, wait_until

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def parse_proxy(data: bytes) -> tuple[str, tuple[str, int], tuple[str, int], bytes]:
    """(version, source, destination, rest) — written from the spec, independent of sniui's reader."""
    if data.startswith(b"PROXY "):
        line, _, rest = data.partition(b"\r\n")
        m = re.fullmatch(rb"PROXY (TCP4|TCP6) (\S+) (\S+) (\d+) (\d+)", line)
        assert m, line
        family, src, dst, sport, dport = m.groups()
        version = ipaddress.ip_address(src.decode()).version
        assert (family == b"TCP4") == (version == 4)
        return "v1", (src.decode(), int(sport)), (dst.decode(), int(dport)), rest
    assert data[:12] == V2_SIGNATURE
    ver_cmd, fam, length = data[12], data[13], struct.unpack("!H", data[14:16])[0]
    assert ver_cmd == 0x21, "version 2, command PROXY"
    body, rest = data[16:16 + length], data[16 + length:]
    if fam == 0x11:
        src, dst = ipaddress.IPv4Address(body[0:4]), ipaddress.IPv4Address(body[4:8])
        sport, dport = struct.unpack("!HH", body[8:12])
        assert length == 12
    else:
        assert fam == 0x21, f"family/transport byte {fam:#x}"
        src, dst = ipaddress.IPv6Address(body[0:16]), ipaddress.IPv6Address(body[16:32])
        sport, dport = struct.unpack("!HH", body[32:36])
        assert length == 36
    return "v2", (str(src), sport), (str(dst), dport), rest


async def send_hello(host: str, port: int, sni: str, prefix: bytes = b"") -> tuple[str, int]:
    reader, writer = await asyncio.open_connection(host, port)
    hello = make_client_hello(sni)
    writer.write(prefix + hello)
    await writer.drain()
    local = writer.get_extra_info("sockname")[:2]
    writer.write_eof()
    await reader.read()
    writer.close()
    return local


@pytest.mark.parametrize("family", ["ipv4", pytest.param("ipv6", marks=requires_ipv6)])
@pytest.mark.parametrize("version", ["v1", "v2"])
async def test_proxy_header_out_is_byte_correct(raw_upstream, family, version):
    host = "127.0.0.1" if family == "ipv4" else "::1"
    up = await raw_upstream(host)
    listen = "127.0.0.1:0" if family == "ipv4" else "[::1]:0"
    text = f"""
listen:
  - address: "{listen}"
routes:
  - sni: pp.example.com
    upstream: "{up.address}"
    proxy_protocol: {version}
"""
    async with running(text) as engine:
        port = port_of(engine)
        local = await send_hello(host, port, "pp.example.com")
        await wait_until(lambda: up.received and engine.snapshot().recent, what="upstream got bytes")
        got_version, src, dst, rest = parse_proxy(bytes(up.received[0]))
        assert got_version == version
        assert src == (local[0], local[1])
        assert dst == (host, port)
        # Exactly one whole hello record follows the header, unchanged.
        assert rest.startswith(b"\x16\x03") and len(rest) == 5 + int.from_bytes(rest[3:5], "big")
        assert engine.snapshot().recent[0].bytes_up == len(rest)


async def test_accept_proxy_protocol_passes_the_original_client_on(raw_upstream):
    up = await raw_upstream()
    text = f"""
listen:
  - address: "127.0.0.1:0"
    accept_proxy_protocol: true
routes:
  - sni: pp.example.com
    upstream: "{up.address}"
    proxy_protocol: v2
"""
    async with running(text) as engine:
        port = port_of(engine)
        inbound = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 443\r\n"
        await send_hello("127.0.0.1", port, "pp.example.com", prefix=inbound)
        await wait_until(lambda: up.received and engine.snapshot().recent, what="relayed")
        version, src, dst, rest = parse_proxy(bytes(up.received[0]))
        assert (version, src, dst) == ("v2", ("2001:db8::7", 40000), ("2001:db8::1", 443))
        assert rest.startswith(b"\x16\x03")
        info = engine.snapshot().recent[0]
        assert info.client == "[2001:db8::7]:40000" and info.client_ip == "2001:db8::7"
        # A connection without the header is refused and counted.
        await send_hello("127.0.0.1", port, "pp.example.com")
        await wait_until(lambda: engine.snapshot().totals.errors.get("malformed PROXY header") == 1, what="refusal")
        assert len(up.received) == 1


async def test_per_client_limit_applies_to_the_client_named_by_the_proxy_header(raw_upstream):
    up = await raw_upstream()
    text = f"""
listen:
  - address: "127.0.0.1:0"
    accept_proxy_protocol: true
limits:
  max_connections_per_client: 2
routes:
  - sni: pp.example.com
    upstream: "{up.address}"
"""
    hello = make_client_hello("pp.example.com")
    async with running(text) as engine:
        port = port_of(engine)
        held = []
        # Five clients behind one balancer address: all admitted, each counted as itself.
        for i in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"PROXY TCP4 192.0.2.{i + 1} 198.51.100.1 4000{i} 443\r\n".encode() + hello)
            held.append((reader, writer))
        await wait_until(lambda: len(up.received) == 5, what="five relayed")
        # Two more from one client are the per-client limit; the third is refused.
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"PROXY TCP4 192.0.2.1 198.51.100.1 5000 443\r\n" + hello)
            held.append((reader, writer))
        await wait_until(lambda: engine.snapshot().totals.errors.get("rejected: per-client limit") == 1,
                         what="the third connection of 192.0.2.1 refused")
        refused = next(i for i in engine.snapshot().recent if i.close_reason and i.close_reason.value == "rejected: per-client limit")
        assert refused.client_ip == "192.0.2.1"
        for _, writer in held:
            writer.close()
        await wait_until(lambda: not engine.registry.live, what="all closed")
        assert engine.admission.total == 0 and engine.admission.clients() == 0
