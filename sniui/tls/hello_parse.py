"""The reference parser of a ClientHello body: field by field, every refusal worded.

Given the body of a complete ClientHello message (after its 4-byte handshake
header), it reads legacy_version, random, session id, cipher suites,
compression methods and the extensions, and either returns the fields a
``ClientHello`` carries or raises ``Refused`` holding a ``Reject`` that says
exactly what is wrong and which TLS alert to send. Of the extensions it
reads server_name (one host_name, normalised and restricted to a safe
alphabet), ALPN, supported_versions (GREASE values dropped) and notes whether
ECH was offered; any other extension is only listed by type.

Each read is bounds-checked through ``_Fields``, which makes this parser easy
to trust and slow (about 50 µs a hello). The reader therefore tries the
one-pass parser in `hello_fast` first and comes here only when that one
declines; this module is what `hello_fast` must agree with, so it also holds
the wire values and host-name rules the two share.
"""

from __future__ import annotations

from . import alerts
from .hello_answers import Reject

__all__ = [
    "EXT_ALPN",
    "EXT_ENCRYPTED_CLIENT_HELLO",
    "EXT_SERVER_NAME",
    "EXT_SUPPORTED_VERSIONS",
    "GREASE_VALUES",
    "HOST_NAME_ALPHABET",
    "MAX_HOST_NAME",
    "MAX_LABEL",
    "MAX_SESSION_ID",
    "SNI_NAME_TYPE_HOST_NAME",
    "Refused",
    "count_not_grease",
    "is_grease",
    "parse_client_hello_body",
    "printable",
]

MAX_SESSION_ID = 32
_RANDOM_SIZE = 32

EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43
EXT_ENCRYPTED_CLIENT_HELLO = 0xFE0D
SNI_NAME_TYPE_HOST_NAME = 0

# Letters, digits, hyphen, dot, plus underscore: underscores are invalid in
# hostnames but common in real service names, and routing on them is
# harmless. Everything else (NUL, space, '/', ':', non-ASCII) could smuggle a
# different meaning into logs, templates or upstream names.
HOST_NAME_ALPHABET = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._"
_HOST_NAME_BYTES = frozenset(HOST_NAME_ALPHABET)
MAX_HOST_NAME = 253
MAX_LABEL = 63

GREASE_VALUES = frozenset(0x0A0A + 0x1010 * i for i in range(16))


def is_grease(value: int) -> bool:
    """RFC 8701 reserved values (0x0a0a, 0x1a1a, … 0xfafa)."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


def count_not_grease(values: tuple[int, ...]) -> int:
    """How many of `values` are not GREASE, without a Python call per value."""
    return len(values) - sum(map(GREASE_VALUES.__contains__, values))


def printable(raw: bytes) -> str:
    """Client bytes quoted for a refusal's detail: ASCII kept, anything else escaped."""
    return repr(raw.decode("ascii", "backslashreplace"))


class Refused(Exception):
    """Unwinds the body parser to the first problem found; ``reject`` is the answer."""

    def __init__(self, reason: str, detail: str, alert: int | None) -> None:
        super().__init__(detail)
        self.reject = Reject(reason, detail, alert)


def _malformed(detail: str) -> Refused:
    return Refused("malformed", detail, alerts.DECODE_ERROR)


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


def parse_client_hello_body(body: memoryview) -> dict:
    """The ClientHello fields sni … ech of `body`, by name; raises ``Refused``."""
    hello = _Fields(body, "ClientHello")
    legacy_version = hello.uint(2, "legacy_version")
    hello.take(_RANDOM_SIZE, "random")
    session_id = hello.vector(1, "legacy_session_id")
    if session_id.remaining > MAX_SESSION_ID:
        raise _malformed(f"legacy_session_id is {session_id.remaining} bytes, limit is {MAX_SESSION_ID}")
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
        if extension_type == EXT_SERVER_NAME:
            fields["sni"] = _parse_server_name(data)
        elif extension_type == EXT_ALPN:
            fields["alpn"] = _parse_alpn(data)
        elif extension_type == EXT_SUPPORTED_VERSIONS:
            fields["supported_versions"] = _parse_supported_versions(data)
        elif extension_type == EXT_ENCRYPTED_CLIENT_HELLO:
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
        if name_type != SNI_NAME_TYPE_HOST_NAME:
            # RFC 6066 defines only host_name; OpenSSL refuses others too, so
            # an upstream would never accept this hello.
            raise Refused(
                "bad_sni",
                f"server_name list holds name type {name_type}; only host_name (0) is defined",
                alerts.DECODE_ERROR,
            )
        if host_name is not None:
            raise Refused("bad_sni", "server_name list holds more than one host_name", alerts.DECODE_ERROR)
        host_name = _normalise_host_name(name.rest())
    return host_name


def _normalise_host_name(raw: bytes) -> str:
    def refuse(problem: str) -> Refused:
        return Refused("bad_sni", f"server name {printable(raw[:80])} {problem}", alerts.UNRECOGNIZED_NAME)

    for byte in raw:
        if byte not in _HOST_NAME_BYTES:
            raise refuse(f"contains {printable(bytes((byte,)))}")
    name = raw.decode("ascii").lower()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise refuse("is empty")
    if len(name) > MAX_HOST_NAME:
        raise refuse(f"is {len(name)} characters, limit is {MAX_HOST_NAME}")
    for label in name.split("."):
        if not label:
            raise refuse("has an empty label")
        if len(label) > MAX_LABEL:
            raise refuse(f"has a {len(label)}-character label, limit is {MAX_LABEL}")
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
