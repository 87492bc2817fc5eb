"""Reaching an upstream: pick servers per the group's balance, resolve, connect.

`Upstreams` holds one `UpstreamPool` per configured group and one per fixed
`host:port` a route or fallback names (so the UI can show their health too);
addresses rendered from a regex route's captures are resolved and dialled
without a pool, since the client chooses them. `reconfigured(config)` builds
the next generation, carrying health and live counts over for servers that
stay, and keeping the resolver (and its cache) when its settings are unchanged.

Connecting is on every connection's path, so it skips what
`loop.create_connection` does for a general caller: on asyncio's selector
loops a non-blocking socket is connected with one writability callback and
wrapped in a transport directly (no address re-resolution, no second future,
no `asyncio.timeout` scope); other loops (uvloop) use their own
`create_connection`, which is already compiled.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import time
from asyncio.selector_events import BaseSelectorEventLoop
from dataclasses import dataclass
from typing import Callable

from sniui.config.addresses import HostPort, parse_host_port
from sniui.config.models import Config, classify_upstream
from sniui.engine.balancer import ServerState, UpstreamPool, format_address
from sniui.engine.model import CloseReason, ServerHealth
from sniui.engine.resolver import ResolveError, Resolver
from sniui.routing.table import Decision

# Health settings for a route's single fixed upstream (nginx's server defaults).
DIRECT_MAX_FAILS = 1
DIRECT_FAIL_TIMEOUT = 10.0

Notify = Callable[[str, str, str], None]            # (event kind, level, message)
CountFailure = Callable[[str, CloseReason], None]    # (address tried, reason)


def tcp_socket(family: int) -> socket.socket:
    """A non-blocking TCP socket for an upstream connection.

    The protocol is named, not left 0: asyncio's transports turn TCP_NODELAY on only for
    sockets whose proto is IPPROTO_TCP. Without it the relay's small writes to the upstream
    waited on Nagle and the peer's delayed ACK, 40 ms stalls: the asyncio loop's p99 of
    ~50 ms in bench/compare.py (uvloop sets TCP_NODELAY itself).
    """
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setblocking(False)
    return sock


class DialError(Exception):
    def __init__(self, reason: CloseReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Dialed:
    transport: asyncio.Transport
    address: str                  # "ip:port" actually connected
    pool: UpstreamPool | None
    server: ServerState | None


def literal_family(host: str) -> int | None:
    """AF_INET or AF_INET6 when `host` is an IP literal, else None."""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except (OSError, ValueError):
            continue
        return family
    return None


def is_ip_literal(host: str) -> bool:
    return literal_family(host) is not None


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _set_timed_out(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


async def open_transport(loop: asyncio.AbstractEventLoop, family: int, ip: str, port: int,
                         protocol_factory: Callable[[], asyncio.Protocol], timeout: float) -> asyncio.Transport:
    """Connect to an IP literal and return a transport whose protocol came from `protocol_factory`.

    Raises TimeoutError after `timeout` seconds and OSError when refused or
    unreachable, as `loop.create_connection` under `asyncio.timeout` would.
    """
    if not isinstance(loop, BaseSelectorEventLoop):
        async with asyncio.timeout(timeout):
            transport, _ = await loop.create_connection(protocol_factory, ip, port)
        return transport  # type: ignore[return-value]
    sock = tcp_socket(family)
    try:
        error = sock.connect_ex((ip, port))
        if error == errno.EINPROGRESS:
            fd = sock.fileno()
            connected = loop.create_future()
            loop.add_writer(fd, _set_done, connected)
            timer = loop.call_later(timeout, _set_timed_out, connected)
            try:
                await connected
            finally:
                loop.remove_writer(fd)
                timer.cancel()
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise OSError(error, os.strerror(error))
        # The transport calls connection_made (and starts reading) on the loop's next pass.
        return loop._make_socket_transport(sock, protocol_factory())  # type: ignore[attr-defined,return-value]
    except BaseException:
        sock.close()
        raise


class Dialing:
    """One dial driven by readiness callbacks instead of a Task (IP-literal servers only).

    `Upstreams.start_dial` builds it when every candidate server is an IP
    literal, so nothing needs the resolver: it tries the servers in order as
    `dial` does (same balance and health accounting, same failure texts) and
    calls `done(dialed, None)` or `done(None, exc)` exactly once, never from
    inside `start_dial`. `cancel()` (the client left) stops it quietly, as
    cancelling the dial's Task does: no accounting, no callback.

    On asyncio's selector loops an attempt is a non-blocking connect plus one
    writability callback and a timer; on other loops (uvloop) it steps the
    loop's own `create_connection` coroutine from its futures' callbacks,
    which is what a Task would do, minus the Task, the coroutine frames above
    it and the `asyncio.timeout` scope.
    """

    __slots__ = ("upstreams", "loop", "servers", "pool", "factory", "done", "index", "failures",
                 "last_reason", "sock", "timer", "coro", "waiting", "finished", "family")

    def __init__(self, upstreams: Upstreams, loop: asyncio.AbstractEventLoop, servers: list[ServerState],
                 pool: UpstreamPool | None, factory: Callable[[], asyncio.Protocol],
                 done: Callable[[Dialed | None, BaseException | None], None]) -> None:
        self.upstreams = upstreams
        self.loop = loop
        self.servers = servers
        self.pool = pool
        self.factory = factory
        self.done = done
        self.index = -1
        self.failures: list[str] = []
        self.last_reason = CloseReason.CONNECT_FAILED
        self.sock: socket.socket | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.coro = None
        self.waiting: asyncio.Future | None = None
        self.finished = False
        self.family = 0

    # -- driving ----------------------------------------------------------------------

    def _next(self) -> None:
        """Try the next server, or report the failure once all were tried."""
        self.index += 1
        if self.index >= len(self.servers):
            self.finished = True
            # Through the loop: a refusal can come straight from connect(), inside start_dial.
            self.timer = self.loop.call_soon(self.done, None, DialError(self.last_reason, "; ".join(self.failures)))
            return
        server = self.servers[self.index]
        upstreams = self.upstreams
        host = server.host
        if self.pool is not None:
            family = upstreams._families.get(host, 0)
            if family == 0:
                family = upstreams._families[host] = literal_family(host)
        else:
            family = literal_family(host)
        self.family = family or _family_of(host)
        loop = self.loop
        self.timer = loop.call_later(upstreams.connect_timeout, self._timed_out)
        if isinstance(loop, BaseSelectorEventLoop):
            try:
                sock = self.sock = tcp_socket(self.family)
                error = sock.connect_ex((host, server.port))
            except OSError as exc:
                self._attempt_failed(exc)
                return
            if error == errno.EINPROGRESS:
                loop.add_writer(sock.fileno(), self._writable)
            elif error:
                self._attempt_failed(OSError(error, os.strerror(error)))
            else:
                loop.call_soon(self._writable)   # connected at once (loopback): report from the loop
        else:
            self.coro = loop.create_connection(self.factory, host, server.port)
            loop.call_soon(self._step, None)   # as a Task would: never run the caller's way

    def _writable(self) -> None:
        sock = self.sock
        if self.finished or sock is None:
            return
        self.loop.remove_writer(sock.fileno())
        error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            self._attempt_failed(OSError(error, os.strerror(error)))
            return
        self.sock = None
        try:
            transport = self.loop._make_socket_transport(sock, self.factory())  # type: ignore[attr-defined]
        except BaseException as exc:
            sock.close()
            self._stop_timer()
            self.finished = True
            self.done(None, exc)
            return
        self._attempt_succeeded(transport)

    def _step(self, future: asyncio.Future | None) -> None:
        coro = self.coro
        if self.finished or coro is None:
            return
        self.waiting = None
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            self.coro = None
            self._attempt_succeeded(stop.value[0])
            return
        except OSError as exc:
            self.coro = None
            self._attempt_failed(exc)
            return
        except BaseException as exc:   # a bug costs this connection, as in the Task path
            self.coro = None
            self._stop_timer()
            self.finished = True
            self.done(None, exc)
            return
        if yielded is None:
            self.loop.call_soon(self._step, None)
        else:
            yielded._asyncio_future_blocking = False
            self.waiting = yielded
            yielded.add_done_callback(self._step)

    def _timed_out(self) -> None:
        self.timer = None
        if self.finished:
            return
        self._abandon_attempt()
        self._attempt_failed(TimeoutError())

    # -- outcomes ---------------------------------------------------------------------

    def _attempt_succeeded(self, transport: asyncio.Transport) -> None:
        self._stop_timer()
        self.finished = True
        server = self.servers[self.index]
        ip, port = server.host, server.port
        pool = self.pool
        if pool is not None:
            pool.connected(server)
            self.upstreams._succeeded(pool, server, self.loop.time())
        label = format_address(ip, port)
        self.done(Dialed(transport, label, pool, server if pool is not None else None), None)

    def _attempt_failed(self, exc: BaseException) -> None:
        self._stop_timer()
        self._close_socket()
        server = self.servers[self.index]
        upstreams = self.upstreams
        label = format_address(server.host, server.port)
        if isinstance(exc, TimeoutError):
            problem, self.last_reason = f"no answer within {upstreams.connect_timeout:g}s", CloseReason.CONNECT_TIMEOUT
        else:
            problem, self.last_reason = describe_os_error(exc), CloseReason.CONNECT_FAILED  # type: ignore[arg-type]
        self.failures.append(f"{label}: {problem}")
        if upstreams.count_failure is not None:
            upstreams.count_failure(label, self.last_reason)
        upstreams._failed(self.pool, server, self.loop.time(), self.failures[-1])
        self._next()

    def _stop_timer(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None:
            timer.cancel()

    def _abandon_attempt(self) -> None:
        """Stop the attempt in flight: its socket or its create_connection coroutine."""
        waiting, self.waiting = self.waiting, None
        if waiting is not None:
            waiting.remove_done_callback(self._step)
            waiting.cancel()
        coro, self.coro = self.coro, None
        if coro is not None:
            coro.close()

    def cancel(self) -> None:
        self._stop_timer()   # also a failure report still on its way
        if self.finished:
            return
        self.finished = True
        self._abandon_attempt()
        self._close_socket()

    def _close_socket(self) -> None:
        """Close the socket of a connect still in flight (selector loops), and stop watching it."""
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                self.loop.remove_writer(sock.fileno())
            except (OSError, ValueError):
                pass
            sock.close()


def describe_os_error(exc: OSError) -> str:
    if exc.errno == errno.ECONNREFUSED:
        return "connection refused"
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    return exc.strerror or str(exc) or type(exc).__name__


class Upstreams:
    def __init__(self, config: Config, *, previous: Upstreams | None = None,
                 notify: Notify | None = None, count_failure: CountFailure | None = None) -> None:
        self.connect_timeout = config.timeouts.connect
        self.notify = notify or (previous.notify if previous else None)
        self.count_failure = count_failure or (previous.count_failure if previous else None)
        resolver_settings = (tuple(config.resolver.nameservers), config.resolver.cache_ttl)
        if previous is not None and previous.resolver_settings == resolver_settings:
            self.resolver = previous.resolver
        else:
            self.resolver = Resolver(list(config.resolver.nameservers), config.resolver.cache_ttl)
        self.resolver_settings = resolver_settings
        old_groups = previous.groups if previous else {}
        self.groups: dict[str, UpstreamPool] = {}
        for name, group in config.upstreams.items():
            old = old_groups.get(name)
            args = (list(group.servers), group.balance, group.max_fails, group.fail_timeout)
            self.groups[name] = old.reconfigured(*args) if old else UpstreamPool(name, *args)
        old_direct = previous.direct if previous else {}
        self.direct: dict[str, UpstreamPool] = {}
        fixed = [r.upstream for r in config.routes if classify_upstream(r.upstream) == "address"]
        fixed += [f.upstream for f in (config.default, config.no_sni)
                  if f is not None and f.action == "route" and f.upstream and classify_upstream(f.upstream) == "address"]
        for text in fixed:
            pool = _direct_pool(text, old_direct.get(_key(text)))
            self.direct.setdefault(pool.name, pool)
        # Per-connection lookups: a route's fixed address → its pool, a pooled host → its
        # address family. Both only ever hold what the config names, so they stay bounded.
        self._direct_by_address: dict[HostPort, UpstreamPool] = {}
        self._families: dict[str, int | None] = {}

    def reconfigured(self, config: Config) -> Upstreams:
        return Upstreams(config, previous=self)

    async def close(self) -> None:
        """Cancel lookups in flight (engine stop). A replaced resolver is simply
        dropped instead, so connections still resolving through it finish normally."""
        await self.resolver.close()

    # -- connecting -------------------------------------------------------------------

    def start_dial(self, decision: Decision, client_ip: str, protocol_factory: Callable[[], asyncio.Protocol],
                   done: Callable[[Dialed | None, BaseException | None], None]) -> Dialing | None:
        """Dial without a Task when no candidate needs the resolver, else return None (use `dial`).

        `done(dialed, None)` or `done(None, error)` comes later from the loop,
        where error is a DialError (or, for a bug, any other exception).
        """
        if decision.upstream_group is not None:
            pool = self.groups.get(decision.upstream_group)
            if pool is None:
                return None
            families = self._families
            for server in pool.servers:
                family = families.get(server.host, 0)
                if family == 0:
                    family = families[server.host] = literal_family(server.host)
                if family is None:
                    return None
            loop = asyncio.get_running_loop()
            servers = pool.candidates(client_ip, loop.time())
        else:
            address = decision.address
            if address is None:
                return None
            pool = self._direct_by_address.get(address)
            if pool is None:
                pool = self.direct.get(_key(str(address)))
                if pool is not None:
                    self._direct_by_address[address] = pool
            if pool is not None:
                server = pool.servers[0]
                family = self._families.get(server.host, 0)
                if family == 0:
                    family = self._families[server.host] = literal_family(server.host)
                if family is None:
                    return None
            else:
                if literal_family(address.host) is None:
                    return None
                server = ServerState(address.host, address.port)
            servers = [server]
            loop = asyncio.get_running_loop()
        dialing = Dialing(self, loop, servers, pool, protocol_factory, done)
        dialing._next()
        return dialing

    async def dial(self, decision: Decision, client_ip: str, protocol_factory: Callable[[], asyncio.Protocol]) -> Dialed:
        loop = asyncio.get_running_loop()
        if decision.upstream_group is not None:
            pool = self.groups.get(decision.upstream_group)
            if pool is None:
                raise DialError(CloseReason.BAD_UPSTREAM, f"upstream group {decision.upstream_group!r} is not configured")
            servers = pool.candidates(client_ip, loop.time())
        else:
            address = decision.address
            if address is None:
                raise DialError(CloseReason.BAD_UPSTREAM, f"no upstream for {decision.upstream!r}")
            pool = self._direct_by_address.get(address)
            if pool is None:
                pool = self.direct.get(_key(str(address)))
                if pool is not None:
                    self._direct_by_address[address] = pool
            servers = [pool.servers[0]] if pool is not None else [ServerState(address.host, address.port)]

        failures: list[str] = []
        resolve_failures = 0
        last_reason = CloseReason.CONNECT_FAILED
        for server in servers:
            host = server.host
            if pool is not None:
                family = self._families.get(host, 0)
                if family == 0:
                    family = self._families[host] = literal_family(host)
            else:
                family = literal_family(host)
            try:
                if family is not None:   # skip the resolver's slower literal check
                    addresses = [(host, server.port)]
                else:
                    addresses = await self.resolver.resolve(host, server.port)
            except ResolveError as exc:
                resolve_failures += 1
                failures.append(str(exc))
                self._failed(pool, server, loop.time(), str(exc))
                continue
            for ip, port in addresses:
                label = format_address(ip, port)
                try:
                    transport = await open_transport(loop, family or _family_of(ip), ip, port,
                                                     protocol_factory, self.connect_timeout)
                except TimeoutError:
                    problem, last_reason = f"no answer within {self.connect_timeout:g}s", CloseReason.CONNECT_TIMEOUT
                except OSError as exc:
                    problem, last_reason = describe_os_error(exc), CloseReason.CONNECT_FAILED
                else:
                    if pool is not None:
                        pool.connected(server)
                        self._succeeded(pool, server, loop.time())
                    return Dialed(transport, label, pool, server if pool is not None else None)  # type: ignore[arg-type]
                failures.append(f"{label}: {problem}")
                if self.count_failure is not None:
                    self.count_failure(label, last_reason)
            self._failed(pool, server, loop.time(), failures[-1])
        if resolve_failures == len(servers):
            raise DialError(CloseReason.RESOLVE_FAILED, "; ".join(failures))
        raise DialError(last_reason, "; ".join(failures))

    def _failed(self, pool: UpstreamPool | None, server: ServerState, now: float, error: str) -> None:
        if pool is None:
            return
        was_up = pool._is_up(server, now)
        pool.failed(server, now, error)
        if was_up and not pool._is_up(server, now) and self.notify is not None:
            self.notify("server_down", "warning",
                        f"upstream {server.address} ({_scope(pool)}) marked down for {pool.fail_timeout:g}s: {error}")

    def _succeeded(self, pool: UpstreamPool, server: ServerState, now: float) -> None:
        recovering = server.down_until is not None
        pool.succeeded(server, now)
        if recovering and server.down_until is None and self.notify is not None:
            self.notify("server_up", "info", f"upstream {server.address} ({_scope(pool)}) is answering again")

    # -- observation ------------------------------------------------------------------

    def health(self) -> tuple[ServerHealth, ...]:
        loop_now = time.monotonic()
        to_wall = time.time() - loop_now
        out = []
        for is_group, pools in ((True, self.groups.values()), (False, self.direct.values())):
            for pool in pools:
                for s in pool.snapshot(loop_now):
                    out.append(ServerHealth(
                        group=pool.name if is_group else None, address=s.address, up=s.up, fails=s.fails,
                        down_until=None if s.down_until is None or s.up else s.down_until + to_wall,
                        last_error=s.last_error, active=s.active, total=s.total_connections,
                    ))
        return tuple(out)


def _family_of(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


def _scope(pool: UpstreamPool) -> str:
    return f"group {pool.name}" if not pool.name.startswith("direct:") else "route upstream"


def _key(text: str) -> str:
    return "direct:" + str(parse_host_port(text))


def _direct_pool(text: str, previous: UpstreamPool | None) -> UpstreamPool:
    address = parse_host_port(text)
    name = "direct:" + str(address)
    servers = [str(address)]
    if previous is not None:
        return previous.reconfigured(servers, "round_robin", DIRECT_MAX_FAILS, DIRECT_FAIL_TIMEOUT)
    return UpstreamPool(name, servers, "round_robin", DIRECT_MAX_FAILS, DIRECT_FAIL_TIMEOUT)
