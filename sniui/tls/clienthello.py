"""Sans-IO reader for the first TLS handshake message a client sends.

Feed it the bytes a client sends, in whatever chunks TCP delivered them, and
it answers ``NEED_MORE``, a ``ClientHello`` (server name, ALPN, versions…) or
a ``Reject`` saying why the stream cannot be routed. It never raises on input:
every byte sequence maps to one of those three answers, so the engine can treat
a hostile client exactly like a confused one.

The reader only looks; it never consumes. ``buffered`` hands back every byte
it was fed so a passthrough route can forward the hello unchanged.

Cost stays linear in the input: record headers are walked as bytes arrive and
the hello body is parsed once, when its last byte is in. The common case (the
whole hello in one record, arriving in one chunk) is read in one pass over the
caller's bytes without copying them; anything unusual in the body sends the
parse to the field-by-field reader, which is the reference and words every
refusal, so both paths always give the same answer.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from . import alerts

__all__ = [
    "NEED_MORE",
    "ClientHello",
    "ClientHelloReader",
    "NeedMore",
    "Reject",
    "count_not_grease",
    "parse_client_hello",
]

DEFAULT_MAX_SIZE = 16384

_RECORD_HEADER_SIZE = 5
_HANDSHAKE_HEADER_SIZE = 4
_CONTENT_TYPE_HANDSHAKE = 22
_HANDSHAKE_TYPE_CLIENT_HELLO = 1
_MAX_RECORD_PAYLOAD = 2**14  # RFC 8446 §5.1
_MAX_SESSION_ID = 32
_RANDOM_SIZE = 32

# A hello within max_size needs at most a couple of full records. Clients
# (and DPI-evasion tools) sometimes split it into many small records, so the
# framing gets room for this many extra headers; a fixed allowance keeps the
# bytes held per pending connection bounded however the stream is framed.
_RECORD_HEADER_ALLOWANCE = 256

_EXT_SERVER_NAME = 0
_EXT_ALPN = 16
_EXT_SUPPORTED_VERSIONS = 43
_EXT_ENCRYPTED_CLIENT_HELLO = 0xFE0D
_SNI_NAME_TYPE_HOST_NAME = 0

# Method tokens of HTTP/1.x request lines, and "PRI " for the HTTP/2 prior
# knowledge preface: the usual reason plain text reaches a TLS port is a
# client that forgot https.
_HTTP_REQUEST_STARTS = (
    b"GET ",
    b"HEAD ",
    b"POST ",
    b"PUT ",
    b"DELETE ",
    b"CONNECT ",
    b"OPTIONS ",
    b"TRACE ",
    b"PATCH ",
    b"PRI ",
)
_LONGEST_HTTP_START = max(len(start) for start in _HTTP_REQUEST_STARTS)

# Letters, digits, hyphen, dot, plus underscore: underscores are invalid in
# hostnames but common in real service names, and routing on them is
# harmless. Everything else (NUL, space, '/', ':', non-ASCII) could smuggle a
# different meaning into logs, templates or upstream names.
_HOST_NAME_ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
_HOST_NAME_BYTES = frozenset(_HOST_NAME_ALPHABET)
_MAX_HOST_NAME = 253
_MAX_LABEL = 63


@dataclass(frozen=True, slots=True)
class NeedMore:
    """The bytes so far are a valid beginning; feed more."""


NEED_MORE = NeedMore()


@dataclass(frozen=True, slots=True)
class ClientHello:
    sni: str | None
    alpn: tuple[str, ...]
    legacy_version: int
    supported_versions: tuple[int, ...]
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    ech: bool
    record_version: int
    hello_length: int
    consumed: int


@dataclass(frozen=True, slots=True)
class Reject:
    """Why the stream cannot be routed.

    ``reason`` is a stable code for counters and filters; ``detail`` is for
    people. ``alert`` is the TLS alert description to send before closing,
    or None when the peer does not speak TLS and should just be closed.
    """

    reason: str
    detail: str
    alert: int | None


Result = NeedMore | ClientHello | Reject


def is_grease(value: int) -> bool:
    """RFC 8701 reserved values (0x0a0a, 0x1a1a, … 0xfafa)."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def count_not_grease(values: tuple[int, ...]) -> int:
    """How many of `values` are not GREASE, without a Python call per value."""
    return len(values) - sum(map(_GREASE_VALUES.__contains__, values))


class ClientHelloReader:
    """Incremental reader over the client's first bytes.

    After a final answer (hello or reject) the reader is done: further
    ``feed`` calls return that same answer and are not buffered, since the
    caller has already taken over the stream.
    """

    __slots__ = (
        "_max_size", "_max_record_bytes", "_buffer", "_whole", "_result", "_looks_like_tls", "_cursor",
        "_record_remaining", "_records_seen", "_record_version", "_handshake", "_hello_length",
    )

    def __init__(self, max_size: int = DEFAULT_MAX_SIZE) -> None:
        if max_size < 0:
            raise ValueError(f"max_size must not be negative, got {max_size}")
        self._max_size = max_size
        self._max_record_bytes = max_size + _HANDSHAKE_HEADER_SIZE + _RECORD_HEADER_ALLOWANCE * _RECORD_HEADER_SIZE
        self._buffer = bytearray()
        self._whole: bytes | None = None   # the first chunk, when it held the whole hello
        self._result: ClientHello | Reject | None = None
        self._looks_like_tls = False
        # Offset in _buffer of the next record header or payload byte.
        self._cursor = 0
        self._record_remaining = 0
        self._records_seen = 0
        self._record_version = 0
        self._handshake = bytearray()
        self._hello_length: int | None = None

    @property
    def buffered(self) -> bytes:
        if self._whole is not None:
            return self._whole
        return bytes(self._buffer)

    @property
    def result(self) -> ClientHello | Reject | None:
        """The final answer, or None while more bytes are needed."""
        return self._result

    def feed(self, data: bytes) -> Result:
        if self._result is not None:
            return self._result
        if not self._buffer and len(data) > _RECORD_HEADER_SIZE + _HANDSHAKE_HEADER_SIZE and data[0] == _CONTENT_TYPE_HANDSHAKE:
            hello = self._read_whole(bytes(data))
            if hello is not None:
                self._result = hello
                return hello
        self._buffer += data
        answer = self._advance()
        if not isinstance(answer, NeedMore):
            self._result = answer
        return answer

    def _read_whole(self, data: bytes) -> ClientHello | None:
        """The common case in one pass: one record holding exactly the whole hello,
        all in this first chunk. None sends the bytes down the general path."""
        _, major, record_length, message_type, length_high, length_low = _WHOLE_HEADER.unpack_from(data)
        hello_length = length_high << 16 | length_low
        end = _RECORD_HEADER_SIZE + record_length
        if (major != 3 or message_type != _HANDSHAKE_TYPE_CLIENT_HELLO or record_length > _MAX_RECORD_PAYLOAD
                or record_length != _HANDSHAKE_HEADER_SIZE + hello_length or hello_length > self._max_size
                or len(data) < end):
            return None
        fields = _parse_body_fast(data, _RECORD_HEADER_SIZE + _HANDSHAKE_HEADER_SIZE, end)
        if fields is None:
            return None
        self._whole = data
        return ClientHello(*fields, data[1] << 8 | data[2], hello_length, end)

    def _advance(self) -> Result:
        if not self._looks_like_tls:
            if not self._buffer:
                return NEED_MORE
            verdict = _classify_stream_start(bytes(self._buffer[:_LONGEST_HTTP_START]))
            if verdict is not None:
                return verdict
            self._looks_like_tls = True
        while True:
            if self._record_remaining == 0:
                verdict = self._read_record_header()
            else:
                verdict = self._take_record_payload()
            if verdict is not None:
                return verdict
            verdict = self._check_handshake_progress()
            if verdict is not None:
                return verdict

    def _read_record_header(self) -> Result | None:
        header_end = self._cursor + _RECORD_HEADER_SIZE
        if header_end >= self._max_record_bytes:
            # Judged before the header arrives, so the bytes held while
            # waiting never pass the limit.
            return self._too_many_record_bytes(header_end + 1)
        if len(self._buffer) < header_end:
            return NEED_MORE
        content_type, major, minor, length_high, length_low = self._buffer[self._cursor : header_end]
        length = length_high << 8 | length_low
        record_number = self._records_seen + 1
        if content_type != _CONTENT_TYPE_HANDSHAKE:
            return Reject(
                "bad_record",
                f"record {record_number} has content type {content_type}, "
                "but the ClientHello was not complete",
                alerts.UNEXPECTED_MESSAGE,
            )
        if major != 3:
            return Reject(
                "bad_record",
                f"record {record_number} has version {major}.{minor}, not 3.x",
                alerts.PROTOCOL_VERSION,
            )
        if length == 0:
            # RFC 8446 §5.1 forbids empty handshake fragments; allowing them
            # would let a client hold the connection without sending data.
            return Reject("bad_record", f"record {record_number} is empty", alerts.UNEXPECTED_MESSAGE)
        if length > _MAX_RECORD_PAYLOAD:
            return Reject(
                "bad_record",
                f"record {record_number} claims {length} bytes, limit is {_MAX_RECORD_PAYLOAD}",
                alerts.RECORD_OVERFLOW,
            )
        if header_end + length > self._max_record_bytes:
            return self._too_many_record_bytes(header_end + length)
        if self._records_seen == 0:
            self._record_version = major << 8 | minor
        self._records_seen += 1
        self._cursor = header_end
        self._record_remaining = length
        return None

    def _too_many_record_bytes(self, needed: int) -> Reject:
        return Reject(
            "too_large",
            f"ClientHello records need at least {needed} bytes, limit is {self._max_record_bytes}",
            alerts.ILLEGAL_PARAMETER,
        )

    def _take_record_payload(self) -> NeedMore | None:
        available = len(self._buffer) - self._cursor
        if available == 0:
            return NEED_MORE
        take = min(available, self._record_remaining)
        self._handshake += self._buffer[self._cursor : self._cursor + take]
        self._cursor += take
        self._record_remaining -= take
        return None

    def _check_handshake_progress(self) -> Result | None:
        if self._hello_length is None:
            if len(self._handshake) < _HANDSHAKE_HEADER_SIZE:
                return None
            message_type = self._handshake[0]
            length = int.from_bytes(self._handshake[1:4], "big")
            if message_type != _HANDSHAKE_TYPE_CLIENT_HELLO:
                return Reject(
                    "not_client_hello",
                    f"first handshake message has type {message_type}, expected ClientHello (1)",
                    alerts.UNEXPECTED_MESSAGE,
                )
            if length > self._max_size:
                # Decided from the header alone so that a client cannot make
                # us hold max_size bytes just to be told no.
                return Reject(
                    "too_large",
                    f"ClientHello is {length} bytes, limit is {self._max_size}",
                    alerts.ILLEGAL_PARAMETER,
                )
            self._hello_length = length
        message_end = _HANDSHAKE_HEADER_SIZE + self._hello_length
        promised = len(self._handshake) + self._record_remaining
        if promised > message_end:
            return Reject(
                "malformed",
                f"records carry {promised - message_end} bytes past the end of a "
                f"{self._hello_length}-byte ClientHello",
                alerts.DECODE_ERROR,
            )
        if len(self._handshake) < message_end:
            return None
        return self._finish()

    def _finish(self) -> ClientHello | Reject:
        message = bytes(self._handshake)
        fast = _parse_body_fast(message, _HANDSHAKE_HEADER_SIZE, len(message))
        if fast is not None:
            return ClientHello(*fast, self._record_version, len(message) - _HANDSHAKE_HEADER_SIZE, self._cursor)
        body = memoryview(message)[_HANDSHAKE_HEADER_SIZE:]
        try:
            fields = _parse_client_hello_body(body)
        except _Refused as refused:
            return refused.reject
        return ClientHello(
            record_version=self._record_version,
            hello_length=len(body),
            consumed=self._cursor,
            **fields,
        )


def parse_client_hello(data: bytes, max_size: int = DEFAULT_MAX_SIZE) -> Result:
    """One-shot form of ``ClientHelloReader`` for bytes already in hand."""
    return ClientHelloReader(max_size).feed(data)


def _classify_stream_start(prefix: bytes) -> NeedMore | Reject | None:
    """None when the stream starts like a TLS handshake record."""
    first = prefix[0]
    if first == _CONTENT_TYPE_HANDSHAKE:
        return None
    if first & 0x80:
        # SSLv2 framing: a two-byte length with the high bit set. Clients that
        # still send a v2-compatible hello also speak SSL 3/TLS and can read a
        # TLS alert; a genuine SSLv2-only peer just sees the connection close.
        return Reject(
            "sslv2",
            "SSLv2-format record header; only TLS record framing is supported",
            alerts.PROTOCOL_VERSION,
        )
    undecided = False
    for start in _HTTP_REQUEST_STARTS:
        if prefix.startswith(start):
            method = start.decode().strip()
            return Reject("http", f"plain-text HTTP request ({method}) sent to a TLS port", None)
        if start.startswith(prefix):
            undecided = True
    if undecided:
        return NEED_MORE
    # Only the first byte goes in the detail: how much else arrived depends
    # on TCP chunking, and the same stream should always read the same.
    return Reject(
        "not_tls",
        f"stream starts with byte {first:#04x} {_printable(prefix[:1])}, not a TLS handshake record (0x16)",
        None,
    )


def _printable(raw: bytes) -> str:
    return repr(raw.decode("ascii", "backslashreplace"))


# Record header (type, major, minor, length) and handshake header (type, 24-bit length).
_WHOLE_HEADER = struct.Struct(">BBxHBBH")
_U16_PAIR = struct.Struct(">HH")
_U16_VECTORS = [struct.Struct(f">{count}H") for count in range(129)]   # the usual list sizes, compiled once
_GREASE_VALUES = frozenset(0x0A0A + 0x1010 * i for i in range(16))


def _u16_list(buf: bytes, pos: int, count: int) -> tuple[int, ...]:
    layout = _U16_VECTORS[count] if count < len(_U16_VECTORS) else struct.Struct(f">{count}H")
    return layout.unpack_from(buf, pos)


def _parse_body_fast(buf: bytes, pos: int, end: int) -> tuple | None:
    """The hello body in buf[pos:end], read with offsets and struct in one pass.

    Returns the first seven ClientHello fields (sni … ech) when the body is
    well formed, or None at the first thing that is not: the reference parser
    (`_parse_client_hello_body`) then finds and words the problem. It must
    accept exactly what the reference accepts, with the same fields.
    """
    if pos + 35 > end:
        return None
    legacy_version = buf[pos] << 8 | buf[pos + 1]
    session_id_length = buf[pos + 34]
    if session_id_length > _MAX_SESSION_ID:
        return None
    pos += 35 + session_id_length                 # legacy_version, random, legacy_session_id
    if pos + 2 > end:
        return None
    suites_length = buf[pos] << 8 | buf[pos + 1]
    pos += 2
    if suites_length < 2 or suites_length & 1 or pos + suites_length > end:
        return None
    cipher_suites = _u16_list(buf, pos, suites_length >> 1)
    pos += suites_length
    if pos >= end:
        return None
    compression_length = buf[pos]
    pos += 1 + compression_length
    if compression_length < 1 or pos > end:
        return None
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    ech = False
    if pos == end:
        return sni, alpn, legacy_version, versions, cipher_suites, (), ech
    if pos + 2 > end or pos + 2 + (buf[pos] << 8 | buf[pos + 1]) != end:
        return None
    pos += 2
    types = []
    unpack_pair = _U16_PAIR.unpack_from
    while pos < end:
        if pos + 4 > end:
            return None
        extension_type, length = unpack_pair(buf, pos)
        pos += 4
        data_end = pos + length
        if data_end > end:
            return None
        types.append(extension_type)
        if extension_type == _EXT_SERVER_NAME:
            # Exactly one host_name entry, filling the list, filling the extension.
            if (length < 6 or (buf[pos] << 8 | buf[pos + 1]) != length - 2 or buf[pos + 2] != _SNI_NAME_TYPE_HOST_NAME
                    or (buf[pos + 3] << 8 | buf[pos + 4]) != length - 5):
                return None
            sni = _host_name_fast(buf[pos + 5:data_end])
            if sni is None:
                return None
        elif extension_type == _EXT_ALPN:
            if length < 4 or (buf[pos] << 8 | buf[pos + 1]) != length - 2:
                return None
            protocols = []
            at = pos + 2
            while at < data_end:
                size = buf[at]
                at += 1
                if size == 0 or at + size > data_end:
                    return None
                protocols.append(buf[at:at + size].decode("ascii", "backslashreplace"))
                at += size
            alpn = tuple(protocols)
        elif extension_type == _EXT_SUPPORTED_VERSIONS:
            if length < 3 or buf[pos] != length - 1 or length & 1 == 0:
                return None
            offered = _u16_list(buf, pos + 1, (length - 1) >> 1)
            versions = tuple(v for v in offered if v not in _GREASE_VALUES)
        elif extension_type == _EXT_ENCRYPTED_CLIENT_HELLO:
            ech = True
        pos = data_end
    if len(set(types)) != len(types):
        return None
    return sni, alpn, legacy_version, versions, cipher_suites, tuple(types), ech


def _host_name_fast(raw: bytes) -> str | None:
    """`_normalise_host_name` for the names it accepts; None for any it would refuse."""
    if raw.translate(None, _HOST_NAME_ALPHABET):
        return None
    name = raw.decode("ascii").lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > _MAX_HOST_NAME:
        return None
    for label in name.split("."):
        if not label or len(label) > _MAX_LABEL:
            return None
    return name


class _Refused(Exception):
    """Internal: unwinds the body parser to the first problem found."""

    def __init__(self, reason: str, detail: str, alert: int | None) -> None:
        super().__init__(detail)
        self.reject = Reject(reason, detail, alert)


def _malformed(detail: str) -> _Refused:
    return _Refused("malformed", detail, alerts.DECODE_ERROR)


class _Fields:
    """Bounds-checked reads over one length-delimited part of the hello."""

    __slots__ = ("_data", "_pos", "_what")

    def __init__(self, data: memoryview, what: str) -> None:
        self._data = data
        self._pos = 0
        self._what = what

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, count: int, what: str) -> memoryview:
        if count > self.remaining:
            raise _malformed(f"{what} needs {count} bytes, {self._what} has {self.remaining} left")
        chunk = self._data[self._pos : self._pos + count]
        self._pos += count
        return chunk

    def uint(self, size: int, what: str) -> int:
        return int.from_bytes(self.take(size, what), "big")

    def vector(self, length_size: int, what: str, minimum: int = 0) -> _Fields:
        length = self.uint(length_size, f"length of {what}")
        if length < minimum:
            raise _malformed(f"{what} is {length} bytes, at least {minimum} required")
        return _Fields(self.take(length, what), what)

    def rest(self) -> bytes:
        chunk = bytes(self._data[self._pos :])
        self._pos = len(self._data)
        return chunk

    def expect_end(self) -> None:
        if self.remaining:
            raise _malformed(f"{self.remaining} unexpected bytes after {self._what}")


def _parse_client_hello_body(body: memoryview) -> dict:
    hello = _Fields(body, "ClientHello")
    legacy_version = hello.uint(2, "legacy_version")
    hello.take(_RANDOM_SIZE, "random")
    session_id = hello.vector(1, "legacy_session_id")
    if session_id.remaining > _MAX_SESSION_ID:
        raise _malformed(f"legacy_session_id is {session_id.remaining} bytes, limit is {_MAX_SESSION_ID}")
    suites = hello.vector(2, "cipher_suites", minimum=2)
    if suites.remaining % 2:
        raise _malformed(f"cipher_suites has odd length {suites.remaining}")
    cipher_suites = tuple(suites.uint(2, "cipher suite") for _ in range(suites.remaining // 2))
    hello.vector(1, "legacy_compression_methods", minimum=1)

    fields = {
        "sni": None,
        "alpn": (),
        "legacy_version": legacy_version,
        "supported_versions": (),
        "cipher_suites": cipher_suites,
        "extensions": (),
        "ech": False,
    }
    # A hello that ends after compression methods is legal (pre-TLS 1.2
    # clients); it simply offers no extensions.
    if hello.remaining == 0:
        return fields
    extensions = hello.vector(2, "extensions")
    hello.expect_end()

    in_order: list[int] = []
    seen: set[int] = set()
    while extensions.remaining:
        extension_type = extensions.uint(2, "extension type")
        data = extensions.vector(2, f"extension {extension_type}")
        if extension_type in seen:
            # RFC 8446 §4.2: a repeated extension type is a decode error, and
            # two server_name extensions would let a client show one name to
            # the router and another to the upstream.
            raise _malformed(f"extension {extension_type} appears more than once")
        seen.add(extension_type)
        in_order.append(extension_type)
        if extension_type == _EXT_SERVER_NAME:
            fields["sni"] = _parse_server_name(data)
        elif extension_type == _EXT_ALPN:
            fields["alpn"] = _parse_alpn(data)
        elif extension_type == _EXT_SUPPORTED_VERSIONS:
            fields["supported_versions"] = _parse_supported_versions(data)
        elif extension_type == _EXT_ENCRYPTED_CLIENT_HELLO:
            fields["ech"] = True
    fields["extensions"] = tuple(in_order)
    return fields


def _parse_server_name(data: _Fields) -> str | None:
    names = data.vector(2, "server_name list", minimum=1)
    data.expect_end()
    host_name = None
    while names.remaining:
        name_type = names.uint(1, "server name type")
        name = names.vector(2, "server name", minimum=1)
        if name_type != _SNI_NAME_TYPE_HOST_NAME:
            # RFC 6066 defines only host_name; OpenSSL refuses others too, so
            # an upstream would never accept this hello.
            raise _Refused(
                "bad_sni",
                f"server_name list holds name type {name_type}; only host_name (0) is defined",
                alerts.DECODE_ERROR,
            )
        if host_name is not None:
            raise _Refused("bad_sni", "server_name list holds more than one host_name", alerts.DECODE_ERROR)
        host_name = _normalise_host_name(name.rest())
    return host_name


def _normalise_host_name(raw: bytes) -> str:
    def refuse(problem: str) -> _Refused:
        return _Refused("bad_sni", f"server name {_printable(raw[:80])} {problem}", alerts.UNRECOGNIZED_NAME)

    for byte in raw:
        if byte not in _HOST_NAME_BYTES:
            raise refuse(f"contains {_printable(bytes((byte,)))}")
    name = raw.decode("ascii").lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise refuse("is empty")
    if len(name) > _MAX_HOST_NAME:
        raise refuse(f"is {len(name)} characters, limit is {_MAX_HOST_NAME}")
    for label in name.split("."):
        if not label:
            raise refuse("has an empty label")
        if len(label) > _MAX_LABEL:
            raise refuse(f"has a {len(label)}-character label, limit is {_MAX_LABEL}")
    return name


def _parse_alpn(data: _Fields) -> tuple[str, ...]:
    protocol_list = data.vector(2, "ALPN protocol list", minimum=2)
    data.expect_end()
    protocols = []
    while protocol_list.remaining:
        protocol = protocol_list.vector(1, "ALPN protocol name", minimum=1)
        # ALPN names are opaque bytes; backslash escapes keep odd ones
        # printable without losing which bytes were sent.
        protocols.append(protocol.rest().decode("ascii", "backslashreplace"))
    return tuple(protocols)


def _parse_supported_versions(data: _Fields) -> tuple[int, ...]:
    versions = data.vector(1, "supported_versions", minimum=2)
    data.expect_end()
    if versions.remaining % 2:
        raise _malformed(f"supported_versions has odd length {versions.remaining}")
    offered = (versions.uint(2, "version") for _ in range(versions.remaining // 2))
    return tuple(version for version in offered if not is_grease(version))
