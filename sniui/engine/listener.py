"""Listening sockets: bind one configured address, with errors that name it."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Callable

from sniui.config.addresses import parse_listen_address
from sniui.engine.balancer import format_address
from sniui.engine.registry import Stats

BACKLOG = 4096


class EngineError(Exception):
    """A command the engine refused; the message is for people and names what failed."""


class Listener:
    """One configured listen address and the server bound to it."""

    __slots__ = ("address", "host", "port", "accept_proxy_protocol", "server", "bound", "stats")

    def __init__(self, address: str, accept_proxy_protocol: bool, stats: Stats) -> None:
        host_port = parse_listen_address(address)
        self.address = address
        self.host = host_port.host
        self.port = host_port.port
        self.accept_proxy_protocol = accept_proxy_protocol
        self.server: asyncio.Server | None = None
        self.bound: tuple[tuple[str, int], ...] = ()
        self.stats = stats

    @property
    def bound_text(self) -> tuple[str, ...]:
        return tuple(format_address(host, port) for host, port in self.bound)

    async def open(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        loop = asyncio.get_running_loop()
        try:
            self.server = await loop.create_server(
                protocol_factory, self.host, self.port, reuse_address=True, backlog=BACKLOG,
            )
        except OSError as exc:
            raise EngineError(f"cannot listen on {self.address}: {describe_bind_error(exc)}") from None
        self.bound = tuple(_sockname(sock) for sock in self.server.sockets)

    def close(self) -> None:
        """Stop accepting; connections already accepted are not touched."""
        if self.server is not None:
            self.server.close()
            self.server = None


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
