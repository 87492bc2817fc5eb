"""Resolver against a tiny DNS server on 127.0.0.1 (no external network) and the system resolver."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniui.engine.resolver import (
    QTYPE_A,
    QTYPE_AAAA,
    DnsFormatError,
    ResolveError,
    Resolver,
    encode_query,
    parse_nameserver,
    parse_response,
)

A, AAAA, CNAME = 1, 28, 5
FUZZ = settings(max_examples=int(os.environ.get("SNIUI_FUZZ_EXAMPLES", "300")), deadline=None)
WAIT = 10.0  # generous bound for awaits that should finish at once


def wire_name(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"


def read_query(data: bytes) -> tuple[int, str, int, bytes]:
    """The test server's own minimal parser: id, name, qtype, raw question."""
    (query_id,) = struct.unpack_from("!H", data)
    labels, pos = [], 12
    while data[pos]:
        labels.append(data[pos + 1 : pos + 1 + data[pos]].decode())
        pos += 1 + data[pos]
    qtype = struct.unpack_from("!H", data, pos + 1)[0]
    return query_id, ".".join(labels), qtype, data[12 : pos + 5]


def record(owner: bytes, rtype: int, rdata: bytes, ttl: int = 300) -> bytes:
    return owner + struct.pack("!HHIH", rtype, 1, ttl, len(rdata)) + rdata


class FakeDns(asyncio.DatagramProtocol):
    """Answers from a dict; names not in it get NXDOMAIN, names in `silent` nothing."""

    def __init__(self, zone: dict[str, list[tuple[int, str]]], silent=(), spoof=()):
        self.zone = zone
        self.silent = set(silent)
        self.spoof = set(spoof)
        self.queries: list[tuple[str, int]] = []
        self.query_seen = asyncio.Event()
        self.held: list[tuple[bytes, object]] | None = None  # not None: answers wait
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport):
        self.transport = transport

    def release(self):
        held, self.held = self.held or [], None
        for reply, addr in held:
            self.transport.sendto(reply, addr)

    def datagram_received(self, data, addr):
        query_id, name, qtype, question = read_query(data)
        self.queries.append((name, qtype))
        self.query_seen.set()
        if name in self.silent:
            return
        if name in self.spoof:  # a forged answer with the wrong id arrives first
            forged = struct.pack("!HHHHHH", query_id ^ 1, 0x8180, 1, 1, 0, 0) + question
            self.transport.sendto(forged + record(b"\xc0\x0c", A, bytes([6, 6, 6, 6])), addr)
        reply = self.answer(query_id, name, qtype, question)
        if self.held is not None:
            self.held.append((reply, addr))
        else:
            self.transport.sendto(reply, addr)

    def answer(self, query_id, name, qtype, question):
        if name not in self.zone:
            return struct.pack("!HHHHHH", query_id, 0x8183, 1, 0, 0, 0) + question
        answers = []
        owner = b"\xc0\x0c"  # compressed: points at the question name
        for rtype, value in self.zone[name]:
            if rtype == CNAME:
                answers.append(record(owner, CNAME, wire_name(value)))
                owner = wire_name(value)
                for target_type, target_value in self.zone.get(value, []):
                    if target_type == qtype:
                        answers.append(record(owner, qtype, ip_bytes(target_value)))
            elif rtype == qtype:
                answers.append(record(owner, qtype, ip_bytes(value)))
        header = struct.pack("!HHHHHH", query_id, 0x8180, 1, len(answers), 0, 0)
        return header + question + b"".join(answers)


def ip_bytes(value: str) -> bytes:
    return ipaddress.ip_address(value).packed


ZONE = {
    "web.test": [(A, "192.0.2.10"), (A, "192.0.2.11"), (AAAA, "2001:db8::10")],
    "v6only.test": [(AAAA, "2001:db8::20")],
    "empty.test": [],
    "alias.test": [(CNAME, "web.test")],
    "slow.test": [(A, "192.0.2.30")],
    "spoofed.test": [(A, "192.0.2.40")],
}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
async def dns():
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        lambda: FakeDns(ZONE, silent={"silent.test"}, spoof={"spoofed.test"}),
        local_addr=("127.0.0.1", 0),
    )
    host, port = transport.get_extra_info("sockname")[:2]
    server.address = f"{host}:{port}"
    yield server
    transport.close()


def resolver_for(dns, **kwargs) -> Resolver:
    return Resolver(nameservers=[dns.address], **kwargs)


# --- literals and the system resolver -------------------------------------------------


@pytest.mark.parametrize(
    "host, expected",
    [("192.0.2.1", "192.0.2.1"), ("2001:db8::1", "2001:db8::1"), ("[2001:DB8::1]", "2001:db8::1")],
)
async def test_ip_literals_are_returned_without_a_lookup(dns, host, expected):
    assert await resolver_for(dns).resolve(host, 443) == [(expected, 443)]
    assert dns.queries == []


async def test_localhost_through_the_system_resolver():
    addresses = await Resolver().resolve("localhost", 8443)
    assert addresses
    assert {ip for ip, _ in addresses} <= {"127.0.0.1", "::1"}
    assert {port for _, port in addresses} == {8443}


# --- DNS client against the fake server -----------------------------------------------


async def test_a_and_aaaa_answers_ipv4_first(dns):
    addresses = await resolver_for(dns).resolve("web.test", 443)
    assert addresses == [("192.0.2.10", 443), ("192.0.2.11", 443), ("2001:db8::10", 443)]
    assert sorted(dns.queries) == [("web.test", A), ("web.test", AAAA)]


async def test_ipv6_only_name(dns):
    assert await resolver_for(dns).resolve("v6only.test", 443) == [("2001:db8::20", 443)]


async def test_cname_chain_is_followed(dns):
    addresses = await resolver_for(dns).resolve("alias.test", 80)
    assert [ip for ip, _ in addresses] == ["192.0.2.10", "192.0.2.11", "2001:db8::10"]


async def test_name_is_case_insensitive_and_trailing_dot_is_ignored(dns):
    resolver = resolver_for(dns)
    await resolver.resolve("WEB.test.", 443)
    await resolver.resolve("web.test", 443)
    assert len(dns.queries) == 2  # one A + one AAAA, then the cache


async def test_forged_answer_with_wrong_id_is_ignored(dns):
    assert await resolver_for(dns).resolve("spoofed.test", 443) == [("192.0.2.40", 443)]


async def test_nxdomain_names_the_host(dns):
    with pytest.raises(ResolveError, match="missing.test") as caught:
        await resolver_for(dns).resolve("missing.test", 443)
    assert caught.value.host == "missing.test"
    assert "NXDOMAIN" in caught.value.reason


async def test_name_without_addresses_is_an_error(dns):
    with pytest.raises(ResolveError, match="empty.test.*no A or AAAA"):
        await resolver_for(dns).resolve("empty.test", 443)


async def test_timeout_is_a_resolve_error(dns):
    resolver = resolver_for(dns, timeout=0.2)
    with pytest.raises(ResolveError, match="silent.test.*no answer within 0.2s"):
        await resolver.resolve("silent.test", 443)


async def test_next_nameserver_is_asked_when_the_first_does_not_answer(dns):
    loop = asyncio.get_running_loop()
    mute_transport, mute = await loop.create_datagram_endpoint(
        lambda: FakeDns({}, silent={"web.test"}), local_addr=("127.0.0.1", 0)
    )
    try:
        mute_address = "%s:%d" % mute_transport.get_extra_info("sockname")[:2]
        resolver = Resolver(nameservers=[mute_address, dns.address], timeout=0.2)
        assert (await resolver.resolve("web.test", 1))[0] == ("192.0.2.10", 1)
        assert len(mute.queries) == 2 and len(dns.queries) == 2
    finally:
        mute_transport.close()


async def test_failures_are_not_cached(dns):
    resolver = resolver_for(dns)
    for _ in range(2):
        with pytest.raises(ResolveError):
            await resolver.resolve("missing.test", 443)
    assert len(dns.queries) == 4


@pytest.mark.parametrize("host", ["a..test", "x" * 64 + ".test", ".".join(["abc"] * 70), ""])
async def test_names_dns_cannot_carry_fail_without_a_query(dns, host):
    with pytest.raises(ResolveError):
        await resolver_for(dns).resolve(host, 443)
    assert dns.queries == []


# --- cache and shared lookups ---------------------------------------------------------


async def test_cache_hit_does_not_query_again(dns):
    resolver = resolver_for(dns, clock=Clock())
    first = await resolver.resolve("web.test", 443)
    second = await resolver.resolve("web.test", 8443)
    assert [ip for ip, _ in second] == [ip for ip, _ in first]
    assert {port for _, port in second} == {8443}
    assert len(dns.queries) == 2


async def test_cache_entry_expires_after_cache_ttl(dns):
    clock = Clock()
    resolver = resolver_for(dns, cache_ttl=30.0, clock=clock)
    await resolver.resolve("web.test", 443)
    clock.now += 29.9
    await resolver.resolve("web.test", 443)
    assert len(dns.queries) == 2
    clock.now += 0.1
    await resolver.resolve("web.test", 443)
    assert len(dns.queries) == 4


async def test_cache_ttl_zero_disables_caching(dns):
    resolver = resolver_for(dns, cache_ttl=0.0, clock=Clock())
    await resolver.resolve("web.test", 443)
    await resolver.resolve("web.test", 443)
    assert len(dns.queries) == 4


async def test_cache_size_is_bounded(dns):
    clock = Clock()
    resolver = resolver_for(dns, clock=clock, max_entries=2)
    for host in ("web.test", "v6only.test", "alias.test"):
        await resolver.resolve(host, 443)
    dns.queries.clear()
    await resolver.resolve("alias.test", 443)  # newest: still cached
    assert dns.queries == []
    await resolver.resolve("web.test", 443)  # oldest: evicted
    assert len(dns.queries) == 2


async def test_concurrent_lookups_of_one_name_share_one_query(dns):
    dns.held = []
    resolver = resolver_for(dns)
    waiters = [asyncio.create_task(resolver.resolve("slow.test", 443)) for _ in range(10)]
    async with asyncio.timeout(WAIT):
        while len(dns.queries) < 2:
            dns.query_seen.clear()
            await dns.query_seen.wait()
    dns.release()
    async with asyncio.timeout(WAIT):
        results = await asyncio.gather(*waiters)
    assert all(result == [("192.0.2.30", 443)] for result in results)
    assert sorted(dns.queries) == [("slow.test", A), ("slow.test", AAAA)]


async def test_one_caller_giving_up_does_not_cancel_the_shared_query(dns):
    dns.held = []
    resolver = resolver_for(dns)
    quitter = asyncio.create_task(resolver.resolve("slow.test", 443))
    stayer = asyncio.create_task(resolver.resolve("slow.test", 443))
    async with asyncio.timeout(WAIT):
        while len(dns.queries) < 2:
            dns.query_seen.clear()
            await dns.query_seen.wait()
    quitter.cancel()
    dns.release()
    async with asyncio.timeout(WAIT):
        assert await stayer == [("192.0.2.30", 443)]
    assert quitter.cancelled()


async def test_close_cancels_lookups_in_flight(dns):
    dns.held = []
    resolver = resolver_for(dns)
    waiter = asyncio.create_task(resolver.resolve("slow.test", 443))
    async with asyncio.timeout(WAIT):
        await dns.query_seen.wait()
        await resolver.close()
        with pytest.raises(asyncio.CancelledError):
            await waiter


# --- nameserver strings and the sans-IO codec -----------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
    ],
)
def test_parse_nameserver(text, expected):
    assert parse_nameserver(text) == expected


@pytest.mark.parametrize(
    "text", ["dns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1]x", "[::1]:99999"]
)
def test_bad_nameserver_is_refused_naming_it(text):
    with pytest.raises(ValueError, match="nameserver"):
        Resolver(nameservers=[text])


def test_encode_query_is_a_recursive_question():
    assert encode_query(0x1234, "web.test", QTYPE_AAAA) == (
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
        + b"\x03web\x04test\x00"
        + b"\x00\x1c\x00\x01"
    )


def test_response_to_another_question_is_refused():
    server = FakeDns(ZONE)
    query = encode_query(7, "web.test", QTYPE_A)
    _, name, qtype, question = read_query(query)
    reply = server.answer(7, name, qtype, question)
    assert parse_response(reply, "web.test", QTYPE_A).addresses == ("192.0.2.10", "192.0.2.11")
    with pytest.raises(DnsFormatError):
        parse_response(reply, "other.test", QTYPE_A)
    with pytest.raises(DnsFormatError):
        parse_response(reply, "web.test", QTYPE_AAAA)
    with pytest.raises(DnsFormatError):
        parse_response(query, "web.test", QTYPE_A)  # a query is not an answer


def test_compression_loop_is_refused():
    header = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0)
    with pytest.raises(DnsFormatError):
        parse_response(header + b"\xc0\x0c", "web.test", QTYPE_A)


@FUZZ
@given(st.binary(max_size=512))
def test_parser_raises_only_its_own_error_on_garbage(data):
    try:
        parse_response(data, "web.test", QTYPE_A)
    except DnsFormatError:
        pass


@FUZZ
@given(st.data())
def test_parser_survives_truncated_and_corrupted_answers(data):
    server = FakeDns(ZONE)
    _, name, qtype, question = read_query(encode_query(9, "alias.test", QTYPE_A))
    reply = bytearray(server.answer(9, name, qtype, question))
    cut = data.draw(st.integers(0, len(reply)))
    position = data.draw(st.integers(0, len(reply) - 1))
    reply[position] = data.draw(st.integers(0, 255))
    try:
        parse_response(bytes(reply[:cut]), "alias.test", QTYPE_A)
    except DnsFormatError:
        pass
