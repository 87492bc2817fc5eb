"""Real ClientHellos made at test time, and tools to reshape them.

Hellos come from Python's ssl (MemoryBIO, no socket) and from
``openssl s_client`` talking to a loopback listener that keeps only the first
flight. The framing helpers here decode records and extensions on their own,
independently of sniui.tls.clienthello, so a bug there cannot hide itself.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

RECORD_HEADER_SIZE = 5
HANDSHAKE_HEADER_SIZE = 4
CONTENT_TYPE_HANDSHAKE = 22

OPENSSL = shutil.which("openssl")


def python_hello(
    server_hostname: str | None = None,
    alpn: list[str] | None = None,
    maximum_version: ssl.TLSVersion | None = None,
) -> tuple[bytes, ssl.SSLContext]:
    """The bytes Python's ssl sends first, and the context that sent them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    if maximum_version is not None:
        context.maximum_version = maximum_version
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        client.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read(), context


def openssl_hello(*s_client_args: str, timeout: float = 10.0) -> bytes:
    """The first flight of ``openssl s_client`` against a loopback listener."""
    assert OPENSSL, "openssl binary not found"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(timeout)
        port = listener.getsockname()[1]
        client = subprocess.Popen(
            [OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", *s_client_args],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            connection, _ = listener.accept()
            with connection:
                return read_first_flight(connection, deadline=time.monotonic() + timeout)
        finally:
            client.kill()
            client.wait(timeout=timeout)


def read_first_flight(connection: socket.socket, deadline: float) -> bytes:
    """Read whole records until the first handshake message is complete."""
    received = bytearray()
    while True:
        message = handshake_message(bytes(received), allow_partial=True)
        if message is not None and len(message) >= HANDSHAKE_HEADER_SIZE:
            if len(message) >= HANDSHAKE_HEADER_SIZE + int.from_bytes(message[1:4], "big"):
                return bytes(received)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"client sent only {len(received)} bytes")
        connection.settimeout(remaining)
        chunk = connection.recv(65536)
        if not chunk:
            raise ConnectionError(f"client closed after {len(received)} bytes")
        received += chunk


@dataclass
class Record:
    content_type: int
    version: int
    payload: bytes


def split_records(stream: bytes) -> tuple[list[Record], bytes]:
    """Whole records at the start of ``stream``, and the bytes left over."""
    records = []
    offset = 0
    while len(stream) - offset >= RECORD_HEADER_SIZE:
        length = int.from_bytes(stream[offset + 3 : offset + 5], "big")
        end = offset + RECORD_HEADER_SIZE + length
        if end > len(stream):
            break
        version = int.from_bytes(stream[offset + 1 : offset + 3], "big")
        records.append(Record(stream[offset], version, stream[offset + RECORD_HEADER_SIZE : end]))
        offset = end
    return records, stream[offset:]


def handshake_message(stream: bytes, allow_partial: bool = False) -> bytes | None:
    """Payloads of the leading handshake records joined: the ClientHello message."""
    records, _ = split_records(stream)
    joined = bytearray()
    for record in records:
        if record.content_type != CONTENT_TYPE_HANDSHAKE:
            break
        joined += record.payload
        if len(joined) >= HANDSHAKE_HEADER_SIZE:
            needed = HANDSHAKE_HEADER_SIZE + int.from_bytes(joined[1:4], "big")
            if len(joined) >= needed:
                return bytes(joined[:needed])
    return bytes(joined) if allow_partial else None


def frame(message: bytes, fragment_sizes: list[int], version: int = 0x0301) -> bytes:
    """``message`` as handshake records with these payload sizes (last takes the rest)."""
    stream = bytearray()
    offset = 0
    sizes = [*fragment_sizes, len(message)]
    for size in sizes:
        fragment = message[offset : offset + size]
        if not fragment:
            break
        stream += record(CONTENT_TYPE_HANDSHAKE, fragment, version)
        offset += len(fragment)
    return bytes(stream)


def frame_evenly(message: bytes, pieces: int, version: int = 0x0301) -> bytes:
    size = -(-len(message) // pieces)
    return frame(message, [size] * (pieces - 1), version)


def record(content_type: int, payload: bytes, version: int = 0x0303) -> bytes:
    return bytes((content_type,)) + version.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload


def u8_vector(data: bytes) -> bytes:
    return len(data).to_bytes(1, "big") + data


def u16_vector(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


@dataclass
class HelloParts:
    """A ClientHello message taken apart, so tests can edit and rebuild it."""

    handshake_type: int
    prefix: bytes  # legacy_version .. compression methods, untouched
    extensions: list[tuple[int, bytes]]

    @classmethod
    def parse(cls, message: bytes) -> HelloParts:
        body = message[HANDSHAKE_HEADER_SIZE:]
        offset = 2 + 32
        offset += 1 + body[offset]
        offset += 2 + int.from_bytes(body[offset : offset + 2], "big")
        offset += 1 + body[offset]
        prefix = body[:offset]
        extensions_end = offset + 2 + int.from_bytes(body[offset : offset + 2], "big")
        offset += 2
        extensions = []
        while offset < extensions_end:
            extension_type = int.from_bytes(body[offset : offset + 2], "big")
            length = int.from_bytes(body[offset + 2 : offset + 4], "big")
            extensions.append((extension_type, body[offset + 4 : offset + 4 + length]))
            offset += 4 + length
        return cls(message[0], prefix, extensions)

    def message(self) -> bytes:
        encoded = b"".join(t.to_bytes(2, "big") + u16_vector(data) for t, data in self.extensions)
        body = self.prefix + u16_vector(encoded)
        return bytes((self.handshake_type,)) + len(body).to_bytes(3, "big") + body

    def stream(self, version: int = 0x0301) -> bytes:
        return frame(self.message(), [], version)

    def replace(self, extension_type: int, data: bytes) -> HelloParts:
        """A copy with that extension's data replaced, or appended if absent."""
        types = [t for t, _ in self.extensions]
        extensions = list(self.extensions)
        if extension_type in types:
            extensions[types.index(extension_type)] = (extension_type, data)
        else:
            extensions.append((extension_type, data))
        return HelloParts(self.handshake_type, self.prefix, extensions)


def server_name_data(*names: bytes, name_type: int = 0) -> bytes:
    return u16_vector(b"".join(bytes((name_type,)) + u16_vector(name) for name in names))


def alpn_data(*protocols: bytes) -> bytes:
    return u16_vector(b"".join(u8_vector(protocol) for protocol in protocols))


def supported_versions_data(*versions: int) -> bytes:
    return u8_vector(b"".join(version.to_bytes(2, "big") for version in versions))


def length_fields(stream: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every length field in a one-record hello stream."""
    fields = [(3, 2), (6, 3)]
    body_start = RECORD_HEADER_SIZE + HANDSHAKE_HEADER_SIZE
    offset = body_start + 2 + 32
    fields.append((offset, 1))
    offset += 1 + stream[offset]
    fields.append((offset, 2))
    offset += 2 + int.from_bytes(stream[offset : offset + 2], "big")
    fields.append((offset, 1))
    offset += 1 + stream[offset]
    if offset >= len(stream):
        return fields
    fields.append((offset, 2))
    offset += 2
    while offset + 4 <= len(stream):
        fields.append((offset + 2, 2))
        offset += 4 + int.from_bytes(stream[offset + 2 : offset + 4], "big")
    return fields


def sslv2_compatible_hello() -> bytes:
    """An SSLv2-format ClientHello as old clients sent to reach SSL 3/TLS servers."""
    cipher_specs = bytes.fromhex("010080" "00002f" "000035")
    challenge = bytes(range(16))
    body = (
        bytes((1,))  # msg_type client_hello
        + (0x0301).to_bytes(2, "big")
        + len(cipher_specs).to_bytes(2, "big")
        + (0).to_bytes(2, "big")  # session id length
        + len(challenge).to_bytes(2, "big")
        + cipher_specs
        + challenge
    )
    return (0x8000 | len(body)).to_bytes(2, "big") + body
