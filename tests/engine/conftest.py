"""Helpers for engine tests: a trustme CA, TLS and raw upstreams on loopback,
a tiny DNS server, and a running-engine context. Port 0 everywhere; every wait
has a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import struct
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from sniui.config import load_text
from sniui.config.models import Config
from sniui.engine import Engine

NAMES = ["*.example.com", "example.com", "*.apps.example.com", "*.k8s.example.com", "*.test", "localhost", "127.0.0.1", "::1"]
DEADLINE = 10.0


def has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


requires_ipv6 = pytest.mark.skipif(not has_ipv6(), reason="no IPv6 loopback")


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="session")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


@pytest.fixture(scope="session")
def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def wait_until(predicate: Callable[[], object], timeout: float = DEADLINE, what: str = "condition") -> None:
    """Poll `predicate` until true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


# -- upstreams -----------------------------------------------------------------------------


@dataclass(eq=False)
class TlsUpstream:
    """A TLS server that says who it is and which SNI it saw, then echoes.

    HTTP GETs get a one-line HTTP response (for curl); anything else gets the
    identity line followed by an echo of everything sent until EOF.
    """

    name: str
    context: ssl.SSLContext
    host: str = "127.0.0.1"
    port: int = 0
    seen_sni: list[str | None] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)
    server: asyncio.Server | None = None
    _snis: "weakref.WeakKeyDictionary" = field(default_factory=weakref.WeakKeyDictionary)

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self) -> "TlsUpstream":
        # Share the certificate but not the callback: each server records its own SNIs.
        self.context = _clone_server_context(self.context)
        self.context.sni_callback = self._on_sni
        self.server = await asyncio.start_server(self._handle, self.host, self.port, ssl=self.context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def _on_sni(self, sslobj: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        self._snis[sslobj] = name
        self.seen_sni.append(name)   # recorded during the handshake, even if it never completes

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sni = self._snis.get(writer.get_extra_info("ssl_object"))
        self.peers.append(writer.get_extra_info("peername")[:2])
        identity = f"upstream={self.name} sni={sni}\n".encode()
        try:
            first = await reader.read(65536)
            if first.startswith(b"GET "):
                while b"\r\n\r\n" not in first:
                    more = await reader.read(65536)
                    if not more:
                        break
                    first += more
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(identity) + identity)
                await writer.drain()
            else:
                writer.write(identity + first)
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


def _clone_server_context(base: ssl.SSLContext) -> ssl.SSLContext:
    # A fresh context per upstream so each can carry its own sni_callback.
    cert = base._sniui_cert  # type: ignore[attr-defined]
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context._sniui_cert = cert  # type: ignore[attr-defined]
    return context


@pytest.fixture(scope="session")
def upstream_context(ca: trustme.CA) -> ssl.SSLContext:
    cert = ca.issue_cert(*NAMES)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context._sniui_cert = cert  # type: ignore[attr-defined]
    return context


@pytest.fixture
async def tls_upstream(upstream_context: ssl.SSLContext) -> AsyncIterator[Callable[..., Awaitable[TlsUpstream]]]:
    started: list[TlsUpstream] = []

    async def start(name: str, host: str = "127.0.0.1") -> TlsUpstream:
        upstream = await TlsUpstream(name, upstream_context, host=host).start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.stop()


@dataclass(eq=False)
class RawUpstream:
    """A plain TCP server that records what each connection sent and replies with a fixed greeting."""

    host: str = "127.0.0.1"
    port: int = 0
    received: list[bytearray] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)
    reply: bytes = b""
    server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def start(self) -> "RawUpstream":
        self.server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        self.received.append(buffer)
        self.peers.append(writer.get_extra_info("peername")[:2])
        if self.reply:
            writer.write(self.reply)
        try:
            while data := await reader.read(65536):
                buffer += data
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def raw_upstream() -> AsyncIterator[Callable[..., Awaitable[RawUpstream]]]:
    started: list[RawUpstream] = []

    async def start(host: str = "127.0.0.1", reply: bytes = b"") -> RawUpstream:
        upstream = await RawUpstream(host=host, reply=reply).start()
        started.append(upstream)
        return upstream

    yield start
    for upstream in started:
        await upstream.stop()


# -- a tiny DNS server -------------------------------------------------------------------------


class DnsServer(asyncio.DatagramProtocol):
    """Answers A queries for `records`; NXDOMAIN for any other name; empty NOERROR for AAAA of known names."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = records
        self.delay = 0.0   # seconds before each answer, to hold lookups in flight
        self.queries: list[str] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        labels, offset = [], 12
        while data[offset]:
            length = data[offset]
            labels.append(data[offset + 1: offset + 1 + length].decode())
            offset += 1 + length
        qtype = struct.unpack_from("!H", data, offset + 1)[0]
        question = data[12: offset + 5]
        name = ".".join(labels).lower()
        self.queries.append(name)
        ip = self.records.get(name)
        answers = b""
        rcode = 0 if ip else 3
        if ip and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton(ip)
        header = data[:2] + struct.pack("!HHHHH", 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
        assert self.transport is not None
        if self.delay:
            asyncio.get_running_loop().call_later(self.delay, self.transport.sendto, header + question + answers, addr)
        else:
            self.transport.sendto(header + question + answers, addr)


@pytest.fixture
async def dns_server() -> AsyncIterator[Callable[[dict[str, str]], Awaitable[tuple[DnsServer, str]]]]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(records: dict[str, str]) -> tuple[DnsServer, str]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(lambda: DnsServer(records), local_addr=("127.0.0.1", 0))
        transports.append(transport)
        port = transport.get_extra_info("sockname")[1]
        return protocol, f"127.0.0.1:{port}"

    yield start
    for transport in transports:
        transport.close()


# -- the engine -------------------------------------------------------------------------------


def config_from(text: str, tmp_path: Path | None = None) -> Config:
    return load_text(text, file="test.yaml", base_dir=tmp_path).config


@contextlib.asynccontextmanager
async def running(config: Config | str) -> AsyncIterator[Engine]:
    if isinstance(config, str):
        config = config_from(config)
    engine = Engine(config)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.stop()
    # Bookkeeping invariants every test gets for free: nothing leaks past stop().
    assert not engine.registry.live
    assert engine.admission.total == 0 and engine.admission.clients() == 0
    assert all(server.active == 0 for server in engine.snapshot().servers)
    totals = engine.snapshot().totals
    assert totals.active == 0 and totals.accepted == totals.closed


def port_of(engine: Engine, index: int = 0) -> int:
    return engine.bound_addresses[index][1]


async def tls_exchange(port: int, sni: str | None, context: ssl.SSLContext, payload: bytes = b"ping\n",
                       host: str = "127.0.0.1", local_addr: tuple[str, int] | None = None) -> str:
    """Connect through the router with TLS, send `payload`, return the upstream's identity line."""
    async with asyncio.timeout(DEADLINE):
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname=sni or "", local_addr=local_addr)
        try:
            writer.write(payload)
            line = (await reader.readline()).decode()
            echoed = await reader.readexactly(len(payload))
            assert echoed == payload
            return line.strip()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


def no_sni_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.check_hostname = False
    return context


def make_client_hello(sni: str | None, alpn: list[str] | None = None) -> bytes:
    """A real ClientHello from Python's ssl, captured from a MemoryBIO."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


async def read_until_closed(reader: asyncio.StreamReader, limit: int = 1 << 20) -> bytes:
    data = b""
    async with asyncio.timeout(DEADLINE):
        while len(data) < limit:
            try:
                chunk = await reader.read(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data


async def count_until_closed(reader: asyncio.StreamReader, timeout: float = DEADLINE * 3) -> int:
    """Read a (large) stream to its end and return how many bytes it carried."""
    total = 0
    async with asyncio.timeout(timeout):
        while chunk := await reader.read(1 << 20):
            total += len(chunk)
    return total


# -- termination -------------------------------------------------------------------------------


def write_leaf(ca: trustme.CA, directory: Path, stem: str, *names: str, **issue: object) -> tuple[Path, Path]:
    """Issue a leaf for `names` and write `<stem>.pem` (chain, leaf first) and `<stem>.key` (mode 0600)."""
    leaf = ca.issue_cert(*names, **issue)  # type: ignore[arg-type]
    cert, key = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    key.chmod(0o600)
    return cert, key


def peer_sans(der: bytes) -> list[str]:
    """The DNS names of a DER certificate."""
    from cryptography import x509

    certificate = x509.load_der_x509_certificate(der)
    return certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)


class TlsClientPipe:
    """A TLS client driven by hand (SSLObject over MemoryBIOs) on a blocking socket.

    Unlike ssl.SSLSocket it can send close_notify and keep reading, as a
    DNS-over-TLS client or a half-closing bulk sender does.
    """

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(1 << 20)
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()

    def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()

    def send(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[self.tls.write(view):]
        self._flush()

    def close_notify(self) -> None:
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        self._flush()

    def recv(self, size: int = 1 << 16) -> bytes:
        """Plaintext, or b"" once the server's close_notify arrived (SSLEOFError if it never does)."""
        while True:
            try:
                return self.tls.read(size)
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except ssl.SSLZeroReturnError:
                return b""

    def recv_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.recv(size - len(data))
            if not chunk:
                raise EOFError(f"closed after {len(data)} of {size} bytes")
            data += chunk
        return data


@dataclass(eq=False)
class FloodingUpstream:
    """A plain upstream that writes `total` bytes as fast as the router takes them, then EOF.

    `sent` shows how far it got: while the router's client does not read, a router that honours
    backpressure keeps it well below `total`.
    """

    total: int
    read_first: bool = False   # read what the router forwards (the hello) before flooding
    sent: int = 0
    server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def start(self) -> "FloodingUpstream":
        self.server = await asyncio.start_server(self._flood, "127.0.0.1", 0)
        return self

    async def _flood(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        block = b"x" * 65536
        try:
            if self.read_first:
                await reader.read(65536)
            while self.sent < self.total:
                writer.write(block)
                self.sent += len(block)
                await writer.drain()
            writer.write_eof()
            await reader.read()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


async def wait_for_flow_to_stop(connection: object, message: str) -> None:
    """Poll a live connection's bytes_down until it stops moving (bounded: at most ~10 s)."""
    previous, stable_rounds = -1, 0
    for _ in range(200):
        await asyncio.sleep(0.05)
        current = connection.bytes_down  # type: ignore[attr-defined]
        stable_rounds = stable_rounds + 1 if current == previous else 0
        previous = current
        if stable_rounds >= 6:
            return
    raise AssertionError(message)
