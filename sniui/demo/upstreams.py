"""Small HTTP/1.1 servers that stand in for real upstreams in the demo.

Each server has a name and answers every request with one line saying who it
is and what it was asked for, so a user pasting the demo's `curl` line can see
which route and which server of a group took the request:

    hello from demo upstream "shop-2" — you asked for shop.demo.localhost (SNI), path /

TLS servers complete the handshake themselves (sniui passes TLS through) and
record the SNI the client sent; plain servers stand behind terminating routes.
Everything is bounded: idle clients are closed after a few seconds, request
heads and bodies have size caps, and each server takes a limited number of
clients, so a demo left running cannot be made to hold unbounded resources.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
import time
import weakref
from dataclasses import dataclass, field
from typing import Iterable

from sniui.demo.certs import DemoPKI

HOST = "127.0.0.1"
IDLE_TIMEOUT = 5.0            # seconds a client may sit without sending a request
MAX_HEAD = 16 * 1024          # request line + headers
MAX_BODY = 64 * 1024          # request bodies are read and discarded, up to this
MAX_REQUESTS_PER_CONNECTION = 100
MAX_CLIENTS = 64              # per server; beyond it new clients are closed at once
RECENT = 50                   # requests remembered per server, for tests and the TUI


@dataclass(frozen=True, slots=True)
class SeenRequest:
    """One request as the upstream saw it."""

    server: str
    sni: str | None          # from the TLS handshake; None for plain servers or clients sending none
    host: str | None         # the Host header
    method: str
    path: str
    peer: str
    tls_version: str | None
    at: float


@dataclass(eq=False)
class DemoServer:
    name: str
    tls: bool
    names: tuple[str, ...]             # the names on its certificate (TLS servers)
    port: int = 0
    connections: int = 0               # accepted in total
    active: int = 0
    requests: collections.deque[SeenRequest] = field(default_factory=lambda: collections.deque(maxlen=RECENT))
    request_count: int = 0
    _server: asyncio.AbstractServer | None = field(default=None, repr=False)
    _tasks: set[asyncio.Task] = field(default_factory=set, repr=False)

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def last(self) -> SeenRequest | None:
        return self.requests[-1] if self.requests else None


class DemoUpstreams:
    """A set of named demo servers on 127.0.0.1 with OS-chosen ports.

    `async with DemoUpstreams(pki) as ups: server = await ups.start("shop-1", names=[...])`
    """

    def __init__(self, pki: DemoPKI | None, *, idle_timeout: float = IDLE_TIMEOUT):
        self.pki = pki
        self.idle_timeout = idle_timeout
        self.servers: dict[str, DemoServer] = {}
        # SSLObject → the SNI it received. The callback runs during the handshake,
        # before the connection handler exists, so we park the name here.
        self._sni: weakref.WeakKeyDictionary[ssl.SSLObject, str] = weakref.WeakKeyDictionary()
        self._closing = False

    async def __aenter__(self) -> "DemoUpstreams":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, name: str, *, tls: bool = True, names: Iterable[str] | None = None) -> DemoServer:
        """Start a server called `name`; TLS ones present a certificate for `names`
        (default: `<name>.demo.localhost`). Returns it, with its port bound."""
        if name in self.servers:
            raise ValueError(f"a demo upstream called {name!r} is already running")
        cert_names = tuple(names) if names is not None else (f"{name}.demo.localhost",)
        server = DemoServer(name, tls, cert_names if tls else ())
        context = None
        if tls:
            if self.pki is None:
                raise ValueError("TLS demo upstreams need a DemoPKI")
            context = self.pki.server_context(cert_names)
            context.sni_callback = self._remember_sni
        server._server = await asyncio.start_server(
            lambda r, w: self._accept(server, r, w), HOST, 0, ssl=context, limit=MAX_HEAD,
            ssl_handshake_timeout=self.idle_timeout if tls else None,
        )
        server.port = server._server.sockets[0].getsockname()[1]
        self.servers[name] = server
        return server

    def _remember_sni(self, ssl_object: ssl.SSLObject, server_name: str | None, context: ssl.SSLContext) -> None:
        if server_name is not None:
            self._sni[ssl_object] = server_name
        return None  # carry on with the handshake on the same context

    def _accept(self, server: DemoServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or server.active >= MAX_CLIENTS:
            # A handshake that finishes after close() began must not start a new handler.
            writer.transport.abort()
            return
        server.connections += 1
        server.active += 1
        handler = asyncio.ensure_future(self._serve(server, reader, writer))
        server._tasks.add(handler)
        handler.add_done_callback(server._tasks.discard)

    async def _serve(self, server: DemoServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ssl_object: ssl.SSLObject | None = writer.get_extra_info("ssl_object")
        sni = self._sni.get(ssl_object) if ssl_object is not None else None
        tls_version = ssl_object.version() if ssl_object is not None else None
        peer = writer.get_extra_info("peername")
        peer_text = f"{peer[0]}:{peer[1]}" if peer else "?"
        try:
            for _ in range(MAX_REQUESTS_PER_CONNECTION):
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_timeout)
                except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                    return
                request = _parse_head(head)
                if request is None:
                    writer.write(_response(400, "demo upstream: that was not an HTTP/1.x request\n", close=True))
                    await writer.drain()
                    return
                method, path, version, headers = request
                length = headers.get("content-length", "0")
                if not length.isdigit() or int(length) > MAX_BODY or "transfer-encoding" in headers:
                    writer.write(_response(413, "demo upstream: bodies up to 64 KiB with Content-Length only\n", close=True))
                    await writer.drain()
                    return
                if int(length):
                    await asyncio.wait_for(reader.readexactly(int(length)), self.idle_timeout)
                seen = SeenRequest(server.name, sni, headers.get("host"), method, path, peer_text, tls_version, time.time())
                server.requests.append(seen)
                server.request_count += 1
                connection = headers.get("connection", "").lower()
                keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
                writer.write(_response(200, greeting(server, seen), close=not keep_alive,
                                       head_only=method == "HEAD", server_name=server.name))
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, ssl.SSLError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            return  # the client went away mid-request; nothing to report to anyone
        finally:
            server.active -= 1
            if self._closing:
                # Shutting down: do not wait for each client to answer our TLS close_notify.
                writer.transport.abort()
            else:
                writer.close()
                with contextlib.suppress(Exception):
                    # Bounded: the TLS close_notify exchange must not outlive the idle timeout.
                    await asyncio.wait_for(writer.wait_closed(), self.idle_timeout)

    async def close(self) -> None:
        """Stop listening and close every client connection (idempotent)."""
        self._closing = True
        servers = list(self.servers.values())
        for server in servers:
            if server._server is not None:
                server._server.close()
        tasks = [task for server in servers for task in server._tasks]
        for task in tasks:
            task.cancel()
        # Cancelled handlers run their `finally`, which closes the transport.
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in servers:
            if server._server is not None:
                await server._server.wait_closed()
        self.servers.clear()


def greeting(server: DemoServer, seen: SeenRequest) -> str:
    if seen.sni:
        asked = f"{seen.sni} (SNI)"
    elif server.tls:
        asked = f"{seen.host or 'no name'} (Host header; the client sent no SNI)"
    else:
        # Behind a terminating route the TLS ended at sniui; only the Host header arrives.
        asked = f"{seen.host or 'no name'} (Host header, plain HTTP after sniui terminated TLS)"
    return f'hello from demo upstream "{server.name}" — you asked for {asked}, path {seen.path}\n'


def _parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]] | None:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes everything
        return None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] not in ("HTTP/1.1", "HTTP/1.0") or not parts[1]:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            return None
        headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], parts[2], headers


_REASONS = {200: "OK", 400: "Bad Request", 413: "Content Too Large"}


def _response(status: int, body: str, *, close: bool, head_only: bool = False, server_name: str | None = None) -> bytes:
    payload = body.encode("utf-8")
    headers = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(payload)}",
        "Connection: close" if close else "Connection: keep-alive",
    ]
    if server_name:
        # Lets scripts tell group members apart without parsing the body.
        headers.append(f"X-Demo-Upstream: {server_name}")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else payload)
