"""Upstream name resolution with a small cache.

Without nameservers the system resolver (getaddrinfo) answers, so /etc/hosts
and the platform's configuration apply. With nameservers a minimal DNS client
asks them directly over UDP: A and AAAA, recursion desired, no search domains,
and no TCP fallback (a truncated answer is used as far as it goes).

The cache keeps answers for `cache_ttl` whatever the records' TTL says, like
nginx's `resolver ... valid=`. Failures are not cached; concurrent lookups of
one name share a single query, which is what protects the nameserver during a
burst of connections.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

QTYPE_A = 1
QTYPE_CNAME = 5
QTYPE_AAAA = 28
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_NXDOMAIN = 3
RCODE_NAMES = {1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}

_FLAG_QR = 0x8000
_FLAG_TC = 0x0200
_FLAG_RD = 0x0100
_MAX_NAME = 253
_MAX_LABEL = 63
_MAX_POINTER_HOPS = 32
_MAX_CNAME_HOPS = 16
# Regex routes render upstream names from client SNI, so distinct names are
# attacker-chosen; the cache must not grow without bound.
DEFAULT_MAX_ENTRIES = 4096


class ResolveError(Exception):
    """A name could not be turned into addresses; the message names the host."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"cannot resolve {host!r}: {reason}")
        self.host = host
        self.reason = reason


class DnsFormatError(ValueError):
    """A DNS message that cannot be parsed or does not answer our question."""


# --- sans-IO DNS messages -------------------------------------------------------------


def encode_name(name: str) -> bytes:
    """Wire form of a host name; raises DnsFormatError for names DNS cannot carry."""
    if name.endswith("."):
        name = name[:-1]  # the root label is implied
    try:
        raw = name.encode("ascii") if name.isascii() else name.encode("idna")
    except UnicodeError as exc:
        raise DnsFormatError(f"not a valid host name: {exc}") from None
    if not raw or len(raw) > _MAX_NAME:
        raise DnsFormatError("host name must be 1-253 characters")
    out = bytearray()
    for label in raw.split(b"."):
        if not 1 <= len(label) <= _MAX_LABEL:
            raise DnsFormatError("each label of a host name must be 1-63 characters")
        out.append(len(label))
        out += label
    out.append(0)
    return bytes(out)


def encode_query(query_id: int, name: str, qtype: int) -> bytes:
    header = struct.pack("!HHHHHH", query_id, _FLAG_RD, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, CLASS_IN)


@dataclass(frozen=True, slots=True)
class DnsResponse:
    query_id: int
    rcode: int
    truncated: bool
    addresses: tuple[str, ...]
    ttl: int | None  # smallest TTL of the records used; informational


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """Decode a possibly compressed name; returns it lowercased and the offset after it."""
    labels: list[str] = []
    length = 0
    end: int | None = None  # where the name ends in the original stream
    position = offset
    for _ in range(_MAX_POINTER_HOPS + _MAX_NAME):
        if position >= len(data):
            raise DnsFormatError("name runs past the end of the message")
        size = data[position]
        if size == 0:
            return ".".join(labels), (position + 1 if end is None else end)
        if size & 0xC0 == 0xC0:
            if position + 1 >= len(data):
                raise DnsFormatError("truncated compression pointer")
            target = ((size & 0x3F) << 8) | data[position + 1]
            # Pointers must go backwards; that alone rules out loops.
            if target >= position:
                raise DnsFormatError("compression pointer does not point backwards")
            if end is None:
                end = position + 2
            position = target
            continue
        if size & 0xC0:
            raise DnsFormatError("unsupported label type")
        label = data[position + 1 : position + 1 + size]
        if len(label) != size:
            raise DnsFormatError("label runs past the end of the message")
        length += size + 1
        if length > _MAX_NAME + 2:
            raise DnsFormatError("name too long")
        labels.append(label.decode("latin-1").lower())
        position += 1 + size
    raise DnsFormatError("name too long")


def parse_response(data: bytes, name: str, qtype: int) -> DnsResponse:
    """Addresses of type `qtype` for `name`, following CNAMEs within the answer.

    Raises DnsFormatError when the message is malformed or answers some other
    question; never anything else, whatever the bytes.
    """
    if len(data) < 12:
        raise DnsFormatError("message shorter than a DNS header")
    query_id, flags, qdcount, ancount, _, _ = struct.unpack_from("!HHHHHH", data, 0)
    if not flags & _FLAG_QR:
        raise DnsFormatError("message is a query, not a response")
    rcode = flags & 0x000F
    qname = name.rstrip(".").lower()
    offset = 12
    if qdcount == 0 and rcode == RCODE_NOERROR:
        raise DnsFormatError("response carries no question")
    for index in range(qdcount):
        owner, offset = _read_name(data, offset)
        if offset + 4 > len(data):
            raise DnsFormatError("question runs past the end of the message")
        q_type, q_class = struct.unpack_from("!HH", data, offset)
        offset += 4
        if index == 0 and (owner != qname or q_type != qtype or q_class != CLASS_IN):
            raise DnsFormatError("response answers a different question")
    cnames: dict[str, str] = {}
    found: list[tuple[str, str, int]] = []
    truncated = bool(flags & _FLAG_TC)
    for _ in range(ancount):
        try:
            owner, offset = _read_name(data, offset)
            if offset + 10 > len(data):
                raise DnsFormatError("record header runs past the end of the message")
            r_type, r_class, ttl, rdlength = struct.unpack_from("!HHIH", data, offset)
            offset += 10
            rdata = data[offset : offset + rdlength]
            if len(rdata) != rdlength:
                raise DnsFormatError("record data runs past the end of the message")
        except DnsFormatError:
            if truncated:
                break  # a truncated answer is used as far as it goes
            raise
        if r_class == CLASS_IN and r_type == QTYPE_CNAME:
            cnames[owner] = _read_name(data, offset)[0]
        elif r_class == CLASS_IN and r_type == qtype == QTYPE_A and rdlength == 4:
            found.append((owner, str(ipaddress.IPv4Address(rdata)), ttl))
        elif r_class == CLASS_IN and r_type == qtype == QTYPE_AAAA and rdlength == 16:
            found.append((owner, str(ipaddress.IPv6Address(rdata)), ttl))
        offset += rdlength
    # Only records on the CNAME chain from our name count; anything else in
    # the answer section is not an answer to our question.
    chain = {qname}
    current = qname
    for _ in range(_MAX_CNAME_HOPS):
        if current not in cnames or cnames[current] in chain:
            break
        current = cnames[current]
        chain.add(current)
    used = [(address, ttl) for owner, address, ttl in found if owner in chain]
    addresses = tuple(dict.fromkeys(address for address, _ in used))
    ttl_min = min((ttl for _, ttl in used), default=None)
    return DnsResponse(query_id, rcode, truncated, addresses, ttl_min)


# --- asyncio transport ----------------------------------------------------------------


class _QueryProtocol(asyncio.DatagramProtocol):
    def __init__(self, query_id: int, name: str, qtype: int, answer: asyncio.Future) -> None:
        self._query_id = query_id
        self._name = name
        self._qtype = qtype
        self.answer = answer

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.answer.done() or len(data) < 2 or int.from_bytes(data[:2], "big") != self._query_id:
            return  # late, spoofed or stray: keep waiting for the real answer
        try:
            response = parse_response(data, self._name, self._qtype)
        except DnsFormatError:
            return
        self.answer.set_result(response)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable arrives here: fail now rather than time out.
        if not self.answer.done():
            self.answer.set_exception(exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("socket closed"))


async def query_udp(
    nameserver: tuple[str, int], name: str, qtype: int, timeout: float
) -> DnsResponse:
    """One question to one nameserver; raises TimeoutError or OSError."""
    loop = asyncio.get_running_loop()
    query_id = secrets.randbits(16)
    message = encode_query(query_id, name, qtype)
    answer: asyncio.Future[DnsResponse] = loop.create_future()
    # A fresh socket per query gives each query its own random source port.
    transport, _ = await loop.create_datagram_endpoint(
        lambda: _QueryProtocol(query_id, name, qtype, answer), remote_addr=nameserver
    )
    try:
        transport.sendto(message)
        async with asyncio.timeout(timeout):
            return await answer
    finally:
        transport.close()


def parse_nameserver(text: str) -> tuple[str, int]:
    """"1.1.1.1", "1.1.1.1:53", "::1" or "[::1]:5353" to (ip, port)."""
    value = text.strip()
    host, port = value, 53
    if value.startswith("["):
        host, sep, port_text = value[1:].partition("]")
        if sep and port_text.startswith(":"):
            port_text = port_text[1:]
            port = int(port_text) if port_text.isdigit() else -1
        elif sep and port_text:
            port = -1
    elif value.count(":") == 1:
        host, _, port_text = value.partition(":")
        port = int(port_text) if port_text.isdigit() else -1
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"nameserver {text!r} must be an IP address[:port]") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"nameserver {text!r}: port must be 1-65535")
    return str(ip), port


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# --- the resolver ---------------------------------------------------------------------


class Resolver:
    def __init__(
        self,
        nameservers: list[str] = [],  # noqa: B006 - never mutated, copied below
        cache_ttl: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        timeout: float = 5.0,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.nameservers = tuple(parse_nameserver(ns) for ns in nameservers)
        self.cache_ttl = cache_ttl
        self.timeout = timeout
        self._clock = clock
        self._max_entries = max_entries
        self._cache: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._inflight: dict[str, asyncio.Task[tuple[str, ...]]] = {}

    async def resolve(self, host: str, port: int) -> list[tuple[str, int]]:
        literal = _ip_literal(host)
        if literal is not None:
            return [(literal, port)]
        key = host.lower()
        if key.endswith("."):
            key = key[:-1]  # "a.example." and "a.example" share one entry
        cached = self._cache.get(key)
        if cached is not None and self._clock() < cached[0]:
            return [(ip, port) for ip in cached[1]]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._lookup(key))
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        try:
            # Shielded: one caller giving up must not cancel the others' query.
            addresses = await asyncio.shield(task)
        except ResolveError as exc:
            raise ResolveError(host, exc.reason) from None
        return [(ip, port) for ip in addresses]

    async def close(self) -> None:
        """Cancel lookups still in flight (engine shutdown)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _finished(self, key: str, task: asyncio.Task[tuple[str, ...]]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        # Reading the exception also keeps asyncio from logging it as
        # "never retrieved" when every caller had already given up.
        if task.cancelled() or task.exception() is not None or self.cache_ttl <= 0:
            return
        now = self._clock()
        if key not in self._cache and len(self._cache) >= self._max_entries:
            for stale in [k for k, (expires, _) in self._cache.items() if expires <= now]:
                del self._cache[stale]
            if len(self._cache) >= self._max_entries:
                del self._cache[next(iter(self._cache))]  # oldest insertion
        self._cache.pop(key, None)  # re-insert so insertion order tracks age
        self._cache[key] = (now + self.cache_ttl, task.result())

    async def _lookup(self, host: str) -> tuple[str, ...]:
        if not host:
            raise ResolveError(host, "empty host name")
        if self.nameservers:
            return await self._lookup_dns(host)
        return await self._lookup_system(host)

    async def _lookup_system(self, host: str) -> tuple[str, ...]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except TimeoutError:
            reason = f"system resolver gave no answer within {self.timeout:g}s"
            raise ResolveError(host, reason) from None
        except (OSError, UnicodeError) as exc:
            raise ResolveError(host, _describe(exc, self.timeout)) from None
        addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        if not addresses:
            raise ResolveError(host, "no addresses")
        return addresses

    async def _lookup_dns(self, host: str) -> tuple[str, ...]:
        try:
            encode_name(host)
        except DnsFormatError as exc:
            raise ResolveError(host, str(exc)) from None
        problems: list[str] = []
        for nameserver in self.nameservers:
            label = f"{nameserver[0]}:{nameserver[1]}"
            answers = await asyncio.gather(
                query_udp(nameserver, host, QTYPE_A, self.timeout),
                query_udp(nameserver, host, QTYPE_AAAA, self.timeout),
                return_exceptions=True,
            )
            addresses: list[str] = []
            failures: list[str] = []
            nxdomain = False
            for answer in answers:
                if isinstance(answer, DnsResponse):
                    if answer.rcode == RCODE_NOERROR:
                        addresses.extend(answer.addresses)
                    elif answer.rcode == RCODE_NXDOMAIN:
                        nxdomain = True
                    else:
                        failures.append(RCODE_NAMES.get(answer.rcode, f"rcode {answer.rcode}"))
                elif isinstance(answer, Exception):
                    failures.append(_describe(answer, self.timeout))
                else:
                    raise answer  # CancelledError and friends: not ours to swallow
            if addresses:
                # IPv4 first: IPv6 is often resolvable but not routable.
                return tuple(dict.fromkeys(addresses))
            if nxdomain:
                raise ResolveError(host, f"no such domain (NXDOMAIN from {label})")
            if not failures:
                raise ResolveError(host, f"no A or AAAA records (from {label})")
            # Only a server that could not answer is a reason to ask the next one.
            problems.append(f"{label}: {', '.join(dict.fromkeys(failures))}")
        raise ResolveError(host, "; ".join(problems))


def _ip_literal(host: str) -> str | None:
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
