"""PROXY protocol v1/v2 (haproxy proxy-protocol.txt): encoders and a sans-IO reader.

The reader is fed the first bytes of an accepted connection and answers
`NEED_MORE`, a `ProxyHeader`, or a `Reject`; it never raises on hostile input,
because those bytes come straight from the network.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

# The same answer types as the ClientHello reader, so the engine drives both
# readers with one loop.
from sniui.tls.clienthello import NEED_MORE, NeedMore, Reject

__all__ = [
    "NEED_MORE",
    "NeedMore",
    "ProxyHeader",
    "ProxyHeaderReader",
    "Reject",
    "encode_v1",
    "encode_v2",
]


@dataclass(frozen=True, slots=True)
class ProxyHeader:
    # None for LOCAL (health checks from the balancer itself) and for UNKNOWN /
    # unsupported families: the connection is then treated as its own peer.
    source: tuple[str, int] | None
    destination: tuple[str, int] | None
    consumed: int


V1_PREFIX = b"PROXY "
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_HEADER_LEN = 16
# The spec bounds a v1 line (CRLF included) so a receiver can give up early.
V1_MAX_LINE = 107

_V2_VERSION = 0x20
_V2_CMD_LOCAL = 0x0
_V2_CMD_PROXY = 0x1
_V2_AF_INET = 0x10
_V2_AF_INET6 = 0x20
_V2_STREAM = 0x01

REASON_MISSING = "proxy_missing"
REASON_MALFORMED = "proxy_malformed"
REASON_TOO_LARGE = "proxy_too_large"
REASON_VERSION = "proxy_unsupported_version"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _reject(reason: str, detail: str) -> Reject:
    # No TLS alert: the peer is a load balancer, not a TLS client, so far.
    return Reject(reason, detail, None)


def _address_pair(
    source: tuple[str, int], destination: tuple[str, int]
) -> tuple[IPAddress, int, IPAddress, int]:
    """Parse both ends and bring them to one family.

    A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; sending
    those as TCP4 keeps the upstream's view identical to a v4-only listener.
    Only when one end is genuinely IPv6 is the other mapped up to IPv6.
    """
    src_ip = ipaddress.ip_address(source[0].strip("[]"))
    dst_ip = ipaddress.ip_address(destination[0].strip("[]"))
    for port in (source[1], destination[1]):
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port!r}")

    def unmapped(ip: IPAddress) -> IPAddress:
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        return ip

    src_ip, dst_ip = unmapped(src_ip), unmapped(dst_ip)
    if src_ip.version != dst_ip.version:
        src_ip = _as_ipv6(src_ip)
        dst_ip = _as_ipv6(dst_ip)
    # Zone ids are local to this host and meaningless to the upstream.
    if isinstance(src_ip, ipaddress.IPv6Address) and src_ip.scope_id:
        src_ip = ipaddress.IPv6Address(src_ip.packed)
    if isinstance(dst_ip, ipaddress.IPv6Address) and dst_ip.scope_id:
        dst_ip = ipaddress.IPv6Address(dst_ip.packed)
    return src_ip, source[1], dst_ip, destination[1]


def _as_ipv6(ip: IPAddress) -> ipaddress.IPv6Address:
    if isinstance(ip, ipaddress.IPv6Address):
        return ip
    return ipaddress.IPv6Address(b"\x00" * 10 + b"\xff\xff" + ip.packed)


def encode_v1(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """The text header, e.g. b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\\r\\n"."""
    src_ip, src_port, dst_ip, dst_port = _address_pair(source, destination)
    proto = "TCP4" if src_ip.version == 4 else "TCP6"
    return f"PROXY {proto} {src_ip} {dst_ip} {src_port} {dst_port}\r\n".encode("ascii")


def encode_v2(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """The binary header: PROXY command, STREAM transport, no TLVs."""
    src_ip, src_port, dst_ip, dst_port = _address_pair(source, destination)
    family = _V2_AF_INET if src_ip.version == 4 else _V2_AF_INET6
    body = src_ip.packed + dst_ip.packed + struct.pack("!HH", src_port, dst_port)
    return (
        V2_SIGNATURE
        + bytes((_V2_VERSION | _V2_CMD_PROXY, family | _V2_STREAM))
        + struct.pack("!H", len(body))
        + body
    )


def _parse_port(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 5:
        return None
    value = int(text)
    return value if value <= 65535 else None


def _parse_v1_line(line: bytes, consumed: int) -> ProxyHeader | Reject:
    """`line` is the header without its CRLF."""
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError:
        return _reject(REASON_MALFORMED, "v1 header is not ASCII")
    parts = text.split(" ")
    if len(parts) < 2 or parts[0] != "PROXY":
        return _reject(REASON_MALFORMED, "v1 header lacks a protocol")
    if parts[1] == "UNKNOWN":
        # The spec tells receivers to ignore whatever follows UNKNOWN.
        return ProxyHeader(None, None, consumed)
    if parts[1] not in ("TCP4", "TCP6"):
        protocol = parts[1][:8]
        return _reject(REASON_MALFORMED, f"v1 protocol {protocol!r} is not TCP4/TCP6/UNKNOWN")
    if len(parts) != 6:
        return _reject(REASON_MALFORMED, "v1 header needs exactly four fields after the protocol")
    want: type[IPAddress] = (
        ipaddress.IPv4Address if parts[1] == "TCP4" else ipaddress.IPv6Address
    )
    try:
        src_ip = want(parts[2])
        dst_ip = want(parts[3])
    except ValueError:
        return _reject(REASON_MALFORMED, f"v1 address is not a valid {parts[1]} address")
    # ipaddress accepts "%zone" suffixes; they are not part of the wire format.
    if "%" in parts[2] or "%" in parts[3]:
        return _reject(REASON_MALFORMED, "v1 address carries a zone id")
    src_port = _parse_port(parts[4])
    dst_port = _parse_port(parts[5])
    if src_port is None or dst_port is None:
        return _reject(REASON_MALFORMED, "v1 port is not a number in 0-65535")
    return ProxyHeader((str(src_ip), src_port), (str(dst_ip), dst_port), consumed)


def _parse_v2(buffer: bytes, length: int) -> ProxyHeader | Reject:
    """`buffer` holds at least the whole header of `V2_HEADER_LEN + length` bytes."""
    ver_cmd, fam = buffer[12], buffer[13]
    consumed = V2_HEADER_LEN + length
    if ver_cmd & 0xF0 != _V2_VERSION:
        return _reject(REASON_VERSION, f"v2 signature with version {ver_cmd >> 4}")
    command = ver_cmd & 0x0F
    if command == _V2_CMD_LOCAL:
        # The sender's own connection (e.g. a health check): addresses, if
        # any, must be ignored, and the TLVs are skipped with them.
        return ProxyHeader(None, None, consumed)
    if command != _V2_CMD_PROXY:
        return _reject(REASON_MALFORMED, f"v2 command {command} is neither LOCAL nor PROXY")
    family, transport = fam & 0xF0, fam & 0x0F
    body = buffer[V2_HEADER_LEN:consumed]
    if transport == _V2_STREAM and family == _V2_AF_INET:
        if length < 12:
            return _reject(REASON_MALFORMED, f"v2 IPv4 block needs 12 bytes, header says {length}")
        src = ipaddress.IPv4Address(body[0:4])
        dst = ipaddress.IPv4Address(body[4:8])
        src_port, dst_port = struct.unpack_from("!HH", body, 8)
    elif transport == _V2_STREAM and family == _V2_AF_INET6:
        if length < 36:
            return _reject(REASON_MALFORMED, f"v2 IPv6 block needs 36 bytes, header says {length}")
        src = ipaddress.IPv6Address(body[0:16])
        dst = ipaddress.IPv6Address(body[16:32])
        src_port, dst_port = struct.unpack_from("!HH", body, 32)
    else:
        # UNSPEC, AF_UNIX or datagram: the spec says to accept the connection
        # and use the real connection's addresses instead.
        return ProxyHeader(None, None, consumed)
    return ProxyHeader((str(src), src_port), (str(dst), dst_port), consumed)


class ProxyHeaderReader:
    """Feed bytes until a PROXY v1 or v2 header is complete.

    After a result, further `feed` calls return the same result; bytes fed
    after a complete header are appended to `remainder`, so the caller can
    hand everything after the header to the ClientHello reader.
    """

    def __init__(self, max_size: int = 536) -> None:
        self._max_size = max_size
        self._buffer = bytearray()
        self._result: ProxyHeader | Reject | None = None
        self._remainder = b""

    @property
    def remainder(self) -> bytes:
        return self._remainder

    def feed(self, data: bytes) -> NeedMore | ProxyHeader | Reject:
        if self._result is not None:
            if isinstance(self._result, ProxyHeader):
                self._remainder += data
            return self._result
        self._buffer += data
        result = self._parse()
        if result is NEED_MORE:
            return NEED_MORE
        assert not isinstance(result, NeedMore)
        self._result = result
        if isinstance(result, ProxyHeader):
            self._remainder = bytes(self._buffer[result.consumed:])
        self._buffer = bytearray()
        return result

    def _parse(self) -> NeedMore | ProxyHeader | Reject:
        buf = bytes(self._buffer)
        head = buf[: len(V2_SIGNATURE)]
        if V2_SIGNATURE.startswith(head) and len(head) == len(V2_SIGNATURE):
            return self._parse_v2(buf)
        if V1_PREFIX.startswith(buf[: len(V1_PREFIX)]) and len(buf) >= len(V1_PREFIX):
            return self._parse_v1(buf)
        # Too short to tell yet, but still a prefix of one of the signatures.
        if V2_SIGNATURE.startswith(head) or V1_PREFIX.startswith(buf[: len(V1_PREFIX)]):
            return NEED_MORE
        return _reject(REASON_MISSING, "connection did not start with a PROXY v1 or v2 header")

    def _parse_v1(self, buf: bytes) -> NeedMore | ProxyHeader | Reject:
        limit = min(V1_MAX_LINE, self._max_size)
        end = buf.find(b"\r\n", 0, limit)
        if end == -1:
            # A lone CR or LF inside the window can never become a valid line.
            # (A CR as the very last byte may still be followed by its LF.)
            if b"\n" in buf[:limit] or b"\r" in buf[: min(len(buf) - 1, limit)]:
                return _reject(REASON_MALFORMED, "v1 header has a bare CR or LF")
            if len(buf) >= limit:
                if limit < V1_MAX_LINE:
                    return _reject(REASON_TOO_LARGE, f"v1 header longer than {limit} bytes")
                return _reject(REASON_MALFORMED, f"v1 header without CRLF in {V1_MAX_LINE} bytes")
            return NEED_MORE
        return _parse_v1_line(buf[:end], end + 2)

    def _parse_v2(self, buf: bytes) -> NeedMore | ProxyHeader | Reject:
        if len(buf) < V2_HEADER_LEN:
            return NEED_MORE
        # Version is checked before waiting for the body, so a v3 sender is
        # told so at once instead of timing out.
        if buf[12] & 0xF0 != _V2_VERSION:
            return _reject(REASON_VERSION, f"v2 signature with version {buf[12] >> 4}")
        (length,) = struct.unpack_from("!H", buf, 14)
        if V2_HEADER_LEN + length > self._max_size:
            size = V2_HEADER_LEN + length
            return _reject(REASON_TOO_LARGE, f"v2 header of {size} bytes exceeds {self._max_size}")
        if len(buf) < V2_HEADER_LEN + length:
            return NEED_MORE
        return _parse_v2(buf, length)
