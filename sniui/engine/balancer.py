"""Upstream server selection and passive health for one upstream group.

Pure: no clock, no I/O. The engine passes `now` (its loop time) to every call
that depends on time, so tests drive health transitions without sleeping.

Health follows nginx's `max_fails` / `fail_timeout`: `max_fails` failures
within `fail_timeout` seconds mark a server down for `fail_timeout` seconds;
after that it is offered again, and a single further failure puts it straight
back down (nginx's "one probe") while a success clears its record.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

BALANCE_METHODS = ("round_robin", "least_conn", "source_hash")


def parse_server(address: str) -> tuple[str, int]:
    """Split "host:port" or "[v6]:port"; raises ValueError with the address in it."""
    text = address.strip()
    if text.startswith("["):
        host, sep, port_text = text[1:].partition("]:")
        if not sep or not host:
            raise ValueError(f"bad server address {address!r}: expected [ipv6]:port")
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise ValueError(f"bad server address {address!r}: expected host:port")
        if ":" in host:
            raise ValueError(f"bad server address {address!r}: write IPv6 as [addr]:port")
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"bad server address {address!r}: port must be 1-65535")
    return host, int(port_text)


def format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ServerState:
    """One server of a group: live counters and health, mutated by its pool.

    The same object is carried into a reconfigured pool, so a connection that
    started before a reload still releases the counter it incremented.
    """

    __slots__ = (
        "host",
        "port",
        "address",
        "active",
        "total_connections",
        "fails",
        "first_fail_at",
        "down_until",
        "last_error",
    )

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.address = format_address(host, port)
        self.active = 0
        self.total_connections = 0
        self.fails = 0
        self.first_fail_at: float | None = None
        self.down_until: float | None = None
        self.last_error: str | None = None

    def is_up(self, now: float) -> bool:
        return self.down_until is None or now >= self.down_until

    def __repr__(self) -> str:
        return f"ServerState({self.address!r}, active={self.active}, fails={self.fails})"


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    address: str
    up: bool
    fails: int
    down_until: float | None
    last_error: str | None
    active: int
    total_connections: int


def _client_key(client_ip: str) -> bytes:
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; hash them
    # as plain IPv4 so the same client sticks to the same server either way.
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip.encode("utf-8", "surrogatepass")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.packed


def _rendezvous_score(client: bytes, server: ServerState) -> int:
    # Highest-random-weight hashing: each client ranks every server by a
    # stable hash of (client, server). Removing or downing one server moves
    # only its own clients, and they spread over the rest instead of piling
    # onto one neighbour. blake2b rather than hash(): stable across processes.
    digest = hashlib.blake2b(
        client + b"\x00" + server.address.encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


class UpstreamPool:
    """Selection and health for one named upstream group."""

    def __init__(
        self,
        name: str,
        servers: list[str],
        balance: str,
        max_fails: int,
        fail_timeout: float,
        *,
        _previous: UpstreamPool | None = None,
    ) -> None:
        if balance not in BALANCE_METHODS:
            raise ValueError(
                f"upstream {name!r}: unknown balance {balance!r}; "
                f"expected one of {', '.join(BALANCE_METHODS)}"
            )
        if max_fails < 0:
            raise ValueError(f"upstream {name!r}: max_fails must be >= 0")
        if fail_timeout < 0:
            raise ValueError(f"upstream {name!r}: fail_timeout must be >= 0")
        if not servers:
            raise ValueError(f"upstream {name!r}: needs at least one server")
        kept = {s.address: s for s in _previous.servers} if _previous else {}
        states: list[ServerState] = []
        for entry in servers:
            host, port = parse_server(entry)
            address = format_address(host, port)
            if any(s.address == address for s in states):
                raise ValueError(f"upstream {name!r}: server {address} is listed twice")
            states.append(kept.get(address) or ServerState(host, port))
        self.name = name
        self.servers: tuple[ServerState, ...] = tuple(states)
        self.balance = balance
        self.max_fails = max_fails
        self.fail_timeout = fail_timeout
        self._next = _previous._next if _previous else 0
        # Latest time seen, so snapshot() can say up/down without a clock.
        self._last_now = _previous._last_now if _previous else float("-inf")

    # --- selection --------------------------------------------------------------------

    def candidates(self, client_ip: str, now: float) -> list[ServerState]:
        """Servers to try in order; down ones only when every server is down."""
        self._seen(now)
        live = [s for s in self.servers if self._is_up(s, now)]
        if not live:
            # As nginx does when all peers failed: better to try than to refuse.
            live = list(self.servers)
        if self.balance == "source_hash":
            client = _client_key(client_ip)
            return sorted(live, key=lambda s: _rendezvous_score(client, s), reverse=True)
        start = self._next % len(live)
        self._next = (self._next + 1) % (1 << 62)
        rotated = live[start:] + live[:start]
        if self.balance == "least_conn":
            # sorted() is stable, so equal loads keep the round-robin order.
            rotated.sort(key=lambda s: s.active)
        return rotated

    # --- connection accounting --------------------------------------------------------

    def connected(self, server: ServerState) -> None:
        server.active += 1
        server.total_connections += 1

    def released(self, server: ServerState) -> None:
        # Never negative: a double release is a caller bug, but a negative
        # count would make least_conn prefer this server forever.
        if server.active > 0:
            server.active -= 1

    # --- passive health ---------------------------------------------------------------

    def failed(self, server: ServerState, now: float, error: str) -> None:
        self._seen(now)
        server.last_error = error
        if self.max_fails == 0:
            return  # nginx: max_fails=0 disables accounting
        if server.down_until is not None and now < server.down_until:
            return  # already down; stragglers must not extend the penalty
        if server.down_until is not None:
            # The probe after fail_timeout failed: straight back down.
            server.fails += 1
            server.first_fail_at = now
            server.down_until = now + self.fail_timeout
            return
        window_open = (
            server.first_fail_at is not None and now - server.first_fail_at <= self.fail_timeout
        )
        if window_open:
            server.fails += 1
        else:
            server.fails = 1
            server.first_fail_at = now
        if server.fails >= self.max_fails:
            server.down_until = now + self.fail_timeout

    def succeeded(self, server: ServerState, now: float) -> None:
        self._seen(now)
        if not self._is_up(server, now):
            # A connection that began before the server was marked down does
            # not revive it early (nginx ignores it too); the probe after
            # fail_timeout decides.
            return
        server.fails = 0
        server.first_fail_at = None
        server.down_until = None

    # --- reload and observation -------------------------------------------------------

    def reconfigured(
        self, servers: list[str], balance: str, max_fails: int, fail_timeout: float
    ) -> UpstreamPool:
        """A new pool for a reloaded group; servers that remain keep their state."""
        return UpstreamPool(
            self.name, servers, balance, max_fails, fail_timeout, _previous=self
        )

    def snapshot(self, now: float | None = None) -> tuple[ServerSnapshot, ...]:
        """Immutable view; `up` is judged at `now`, or at the latest time seen."""
        at = self._last_now if now is None else now
        return tuple(
            ServerSnapshot(
                address=s.address,
                up=self._is_up(s, at),
                fails=s.fails,
                down_until=s.down_until,
                last_error=s.last_error,
                active=s.active,
                total_connections=s.total_connections,
            )
            for s in self.servers
        )

    def _is_up(self, server: ServerState, now: float) -> bool:
        # A reload to max_fails=0 must not leave servers down from before.
        return self.max_fails == 0 or server.is_up(now)

    def _seen(self, now: float) -> None:
        if now > self._last_now:
            self._last_now = now
