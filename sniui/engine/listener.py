"""Listening sockets: bind one configured address, with errors that name it.

Binding is `loop.create_server`'s (dual stack, reuse_address, backlog; and
SO_REUSEPORT when the engine runs as one of several `--workers`). On
asyncio's selector loops the accepting is ours: asyncio starts a Task per
accepted socket just to await its transport's connection_made, while here an
accept callback wraps each socket in a transport directly, passing the peer
address it already has. Other loops (uvloop) serve with their own accept.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from asyncio.selector_events import BaseSelectorEventLoop
from typing import Callable

from sniui.config.addresses import parse_listen_address
from sniui.engine.balancer import format_address
from sniui.engine.registry import Stats

BACKLOG = 4096
ACCEPT_BATCH = 128           # accepts per readiness callback, so one flood cannot starve the loop
ACCEPT_RETRY_DELAY = 1.0     # out of descriptors: stop accepting for this long (as asyncio does)
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class EngineError(Exception):
    """A command the engine refused; the message is for people and names what failed."""


class Listener:
    """One configured listen address and the server bound to it."""

    __slots__ = ("address", "host", "port", "accept_proxy_protocol", "server", "bound", "stats", "reuse_port",
                 "_accepting")

    def __init__(self, address: str, accept_proxy_protocol: bool, stats: Stats, reuse_port: bool = False) -> None:
        host_port = parse_listen_address(address)
        self.address = address
        self.host = host_port.host
        self.port = host_port.port
        self.accept_proxy_protocol = accept_proxy_protocol
        self.server: asyncio.Server | None = None
        self.bound: tuple[tuple[str, int], ...] = ()
        self.stats = stats
        self.reuse_port = reuse_port   # one of several workers: share the port, the kernel spreads connections
        self._accepting: list[_Acceptor] = []

    @property
    def bound_text(self) -> tuple[str, ...]:
        return tuple(format_address(host, port) for host, port in self.bound)

    async def open(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        loop = asyncio.get_running_loop()
        sockets = None
        try:
            server = await loop.create_server(
                protocol_factory, self.host, self.port, reuse_address=True, backlog=BACKLOG, start_serving=False,
                reuse_port=self.reuse_port or None,
            )
            sockets = getattr(server, "_sockets", None) if isinstance(loop, BaseSelectorEventLoop) else None
            if not sockets or not hasattr(loop, "_make_socket_transport"):
                await server.start_serving()
                sockets = None
        except OSError as exc:
            raise EngineError(f"cannot listen on {self.address}: {describe_bind_error(exc)}") from None
        self.server = server
        self.bound = tuple(_sockname(sock) for sock in server.sockets)
        if sockets:
            for sock in sockets:
                sock.listen(BACKLOG)   # what Server.start_serving would do before adding its reader
            self._accepting = [_Acceptor(loop, sock, protocol_factory) for sock in sockets]

    def close(self) -> None:
        """Stop accepting; connections already accepted are not touched."""
        for acceptor in self._accepting:
            acceptor.stop()
        self._accepting = []
        if self.server is not None:
            self.server.close()
            self.server = None


class _Acceptor:
    """Accepts on one listening socket and makes each connection's transport directly."""

    __slots__ = ("loop", "sock", "fd", "protocol_factory", "retry")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        self.loop = loop
        self.sock = sock
        self.fd = sock.fileno()
        self.protocol_factory = protocol_factory
        self.retry: asyncio.TimerHandle | None = None
        loop.add_reader(self.fd, self._accept)

    def stop(self) -> None:
        if self.retry is not None:
            self.retry.cancel()
            self.retry = None
        if self.fd >= 0:
            self.loop.remove_reader(self.fd)
            self.fd = -1

    def _resume(self) -> None:
        self.retry = None
        if self.fd >= 0:
            self.loop.add_reader(self.fd, self._accept)

    def _accept(self) -> None:
        loop, sock, factory = self.loop, self.sock, self.protocol_factory
        make_transport = loop._make_socket_transport  # type: ignore[attr-defined]
        for _ in range(ACCEPT_BATCH):
            try:
                conn, address = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    raise   # the loop logs it and calls us again
                # Linux keeps reporting the socket readable: pause instead of spinning.
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": exc, "socket": sock})
                loop.remove_reader(self.fd)
                self.retry = loop.call_later(ACCEPT_RETRY_DELAY, self._resume)
                return
            try:
                conn.setblocking(False)
                # connection_made and the first read follow on the loop's next pass.
                make_transport(conn, factory(), extra={"peername": address})
            except Exception as exc:   # one broken connection, not the listener
                conn.close()
                loop.call_exception_handler({"message": "could not set up an accepted connection",
                                             "exception": exc})


def _sockname(sock: socket.socket) -> tuple[str, int]:
    name = sock.getsockname()
    return str(name[0]), int(name[1])


def describe_bind_error(exc: OSError) -> str:
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the address ({exc.strerror or exc})"
    if exc.errno == errno.EADDRINUSE:
        return "address in use"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges or CAP_NET_BIND_SERVICE)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not available on this host"
    return exc.strerror or str(exc)
