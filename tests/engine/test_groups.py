"""Upstream groups: round robin spreads, dead servers are skipped and marked down, least_conn, source_hash."""

from __future__ import annotations

import asyncio
import collections
import socket

from sniui.engine.model import CloseReason

from .conftest import port_of, running, tls_exchange, wait_until


def group_config(servers: list[str], balance: str, extra: str = "") -> str:
    listed = ", ".join(f'"{s}"' for s in servers)
    return f"""
listen:
  - address: "127.0.0.1:0"
upstreams:
  web:
    servers: [{listed}]
    balance: {balance}
    max_fails: 1
    fail_timeout: 30s
{extra}
routes:
  - sni: ".example.com"
    upstream: web
"""


async def who(port: int, context, local: str | None = None) -> str:
    line = await tls_exchange(port, "www.example.com", context, local_addr=(local, 0) if local else None)
    return line.split()[0].removeprefix("upstream=")


async def test_round_robin_spreads(tls_upstream, client_context):
    ups = [await tls_upstream(f"s{i}") for i in range(3)]
    async with running(group_config([u.address for u in ups], "round_robin")) as engine:
        port = port_of(engine)
        seen = collections.Counter([await who(port, client_context) for _ in range(6)])
        assert seen == {"s0": 2, "s1": 2, "s2": 2}
        await wait_until(lambda: engine.snapshot().totals.closed == 6, what="closed")
        servers = {s.address: s for s in engine.snapshot().servers}
        assert all(servers[u.address].total == 2 and servers[u.address].group == "web" for u in ups)


def dead_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


async def test_dead_server_is_skipped_and_marked_down(tls_upstream, client_context):
    live = await tls_upstream("live")
    dead = dead_address()
    events_seen = []
    async with running(group_config([dead, live.address], "round_robin")) as engine:
        events = engine.subscribe()
        port = port_of(engine)
        assert [await who(port, client_context) for _ in range(4)] == ["live"] * 4
        snap = engine.snapshot()
        server = next(s for s in snap.servers if s.address == dead)
        assert not server.up and server.down_until is not None and "refused" in server.last_error
        # Tried once, then skipped while down: one failure only.
        assert snap.per_upstream[dead].errors == {CloseReason.CONNECT_FAILED.value: 1}
        while (event := events.get_nowait()) is not None:
            events_seen.append(event.kind)
        assert "server_down" in events_seen


async def test_least_conn_prefers_the_idle_server(tls_upstream, client_context):
    a, b = await tls_upstream("a"), await tls_upstream("b")
    async with running(group_config([a.address, b.address], "least_conn")) as engine:
        port = port_of(engine)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context,
                                                       server_hostname="hold.example.com")
        writer.write(b"x")
        held_on = (await reader.readline()).decode().split()[0].removeprefix("upstream=")
        other = "b" if held_on == "a" else "a"
        assert [await who(port, client_context) for _ in range(3)] == [other] * 3
        writer.close()


async def test_source_hash_is_sticky_per_client(tls_upstream, client_context):
    ups = [await tls_upstream(f"s{i}") for i in range(3)]
    async with running(group_config([u.address for u in ups], "source_hash")) as engine:
        port = port_of(engine)
        chosen = {}
        for last in range(1, 17):
            ip = f"127.0.0.{last}"
            picks = {await who(port, client_context, ip) for _ in range(2)}
            assert len(picks) == 1, f"{ip} moved between servers: {picks}"
            chosen[ip] = picks.pop()
        assert len(set(chosen.values())) > 1, "sixteen clients all hashed to one server"


async def test_health_survives_reload_for_unchanged_servers(tls_upstream, client_context):
    live = await tls_upstream("live")
    dead = dead_address()
    from .conftest import config_from

    async with running(group_config([dead, live.address], "round_robin")) as engine:
        port = port_of(engine)
        await who(port, client_context)
        await who(port, client_context)
        assert not next(s for s in engine.snapshot().servers if s.address == dead).up
        # Same servers, another balance method and an extra route: the dead server stays down.
        await engine.apply(config_from(group_config([dead, live.address], "least_conn")
                                       + '  - sni: other.test\n    upstream: web\n'))
        server = next(s for s in engine.snapshot().servers if s.address == dead)
        assert not server.up and server.fails == 1
        assert await who(port, client_context) == "live"
        assert engine.snapshot().per_upstream[dead].errors == {CloseReason.CONNECT_FAILED.value: 1}
