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

This module is the public face and does the stream's framing: telling TLS from
plain HTTP or SSLv2, reassembling handshake records, enforcing the size
limits. The body is parsed elsewhere: `hello_fast` (the one-pass common case)
and `hello_parse` (the reference); the answer types live in `hello_answers`.
Every public name is importable from here.
"""

from __future__ import annotations

import struct

from . import alerts
from .hello_answers import NEED_MORE, ClientHello, NeedMore, Reject, Result
from .hello_fast import parse_body_fast as _parse_body_fast
from .hello_parse import Refused as _Refused
from .hello_parse import count_not_grease, is_grease
from .hello_parse import parse_client_hello_body as _parse_client_hello_body
from .hello_parse import printable as _printable


__all__ = [
    "NEED_MORE",
    "ClientHello",
    "ClientHelloReader",
    "NeedMore",
    "Reject",
    "count_not_grease",
    "is_grease",
    "parse_client_hello",
]

DEFAULT_MAX_SIZE = 16384

_RECORD_HEADER_SIZE = 5
_HANDSHAKE_HEADER_SIZE = 4
_CONTENT_TYPE_HANDSHAKE = 22
_HANDSHAKE_TYPE_CLIENT_HELLO = 1
_MAX_RECORD_PAYLOAD = 2**14  # RFC 8446 §5.1

# A hello within max_size needs at most a couple of full records. Clients
# (and DPI-evasion tools) sometimes split it into many small records, so the
# framing gets room for this many extra headers; a fixed allowance keeps the
# bytes held per pending connection bounded however the stream is framed.
_RECORD_HEADER_ALLOWANCE = 256

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

# Record header (type, major, minor, length) and handshake header (type, 24-bit length).
_WHOLE_HEADER = struct.Struct(">BBxHBBH")


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
