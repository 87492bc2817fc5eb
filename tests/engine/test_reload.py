"""Config apply: atomic swap under load, refusals keep the old config, listeners come and go."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from sniui.config.models import Config
from sniui.engine import EngineError

from .conftest import DEADLINE, config_from, make_client_hello, port_of, running, wait_until

HELLO = make_client_hello("app.example.com")


class EchoUpstream:
    """Reads one ClientHello's worth of bytes, answers its name, then echoes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> "EchoUpstream":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader, writer) -> None:
        try:
            await reader.readexactly(len(HELLO))
            writer.write(self.name.encode() + b"\n")
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def two_route_config(listen: list[str], target: int) -> Config:
    listed = "\n".join(f'  - address: "{a}"' for a in listen)
    return config_from(f"""
listen:
{listed}
routes:
  - sni: app.example.com
    upstream: "127.0.0.1:{target}"
""")


async def which(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(HELLO)
        async with asyncio.timeout(DEADLINE):
            return (await reader.readline()).decode().strip()
    finally:
        writer.close()


async def stream(port: int, rounds: int, stop: asyncio.Event) -> int:
    """Keep a connection busy with echo round trips; return how many rounds completed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HELLO)
    await reader.readline()
    done = 0
    try:
        while done < rounds and not (stop.is_set() and done >= 5):
            payload = os.urandom(32 * 1024)
            writer.write(payload)
            async with asyncio.timeout(DEADLINE):
                assert await reader.readexactly(len(payload)) == payload
            done += 1
    finally:
        writer.close()
    return done


@pytest.mark.slow
async def test_reload_under_load_drops_nothing_and_new_connections_follow():
    one, two = await EchoUpstream("one").start(), await EchoUpstream("two").start()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = f"127.0.0.1:{blocker.getsockname()[1]}"
    try:
        async with running(two_route_config(["127.0.0.1:0"], one.port)) as engine:
            port = port_of(engine)
            stop = asyncio.Event()
            workers = [asyncio.create_task(stream(port, 2000, stop)) for _ in range(8)]
            await wait_until(lambda: len(engine.registry.live) == 8, what="8 streams")
            for i in range(20):
                target, name = (two.port, "two") if i % 2 == 0 else (one.port, "one")
                await engine.apply(two_route_config(["127.0.0.1:0"], target))
                assert await which(port) == name
                if i % 5 == 0:   # a config that cannot bind is refused; the old one keeps serving
                    with pytest.raises(EngineError, match=f"cannot listen on {taken}: address in use"):
                        await engine.apply(two_route_config(["127.0.0.1:0", taken], one.port if name == "two" else two.port))
                    assert await which(port) == name
                if i % 5 == 1:   # an invalid config is refused
                    bad = Config.model_validate({"routes": [{"sni": "x.example.com", "upstream": "nogroup"}]})
                    with pytest.raises(EngineError, match="unknown upstream group 'nogroup'"):
                        await engine.apply(bad)
                    assert await which(port) == name
            stop.set()
            rounds = await asyncio.gather(*workers)
            assert all(r >= 5 for r in rounds), rounds
            assert engine.generation == 21
            closed = engine.snapshot().recent
            assert all(i.close_reason.value in ("client closed", "upstream closed") for i in closed)
    finally:
        blocker.close()
        for up in (one, two):
            up.server.close()


async def test_listeners_added_and_removed_on_apply():
    one = await EchoUpstream("one").start()
    async with running(two_route_config(["127.0.0.1:0"], one.port)) as engine:
        first = port_of(engine)
        reader, writer = await asyncio.open_connection("127.0.0.1", first)
        writer.write(HELLO)
        assert await reader.readline() == b"one\n"
        # Swap the listener for a new one on ::1-less IPv4 loopback address 127.0.0.2.
        await engine.apply(two_route_config(["127.0.0.2:0"], one.port))
        assert [a for a, _ in engine.bound_addresses] == ["127.0.0.2"]
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", first)
        # The established connection through the removed listener still flows.
        writer.write(b"still here")
        assert await reader.readexactly(10) == b"still here"
        reader2, writer2 = await asyncio.open_connection("127.0.0.2", port_of(engine))
        writer2.write(HELLO)
        assert await reader2.readline() == b"one\n"
        writer.close()
        writer2.close()
        one.server.close()


async def test_start_names_the_address_in_use():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    taken = f"127.0.0.1:{blocker.getsockname()[1]}"
    try:
        from sniui.engine import Engine

        engine = Engine(two_route_config([taken], 1))
        with pytest.raises(EngineError, match=f"^cannot listen on {taken}: address in use$"):
            await engine.start()
        await engine.stop()
    finally:
        blocker.close()


async def test_listener_can_move_to_another_address_on_the_same_port():
    one = await EchoUpstream("one").start()
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    async with running(two_route_config([f"127.0.0.1:{port}"], one.port)) as engine:
        await engine.apply(two_route_config([f"0.0.0.0:{port}"], one.port))
        assert engine.bound_addresses == [("0.0.0.0", port)]
        assert await which(port) == "one"
        # A refused move gives the port back to the running listener.
        blocker = socket.socket()
        blocker.bind(("127.0.0.2", 0))
        blocker.listen(1)
        try:
            taken = blocker.getsockname()[1]
            with pytest.raises(EngineError):
                await engine.apply(two_route_config([f"127.0.0.1:{port}", f"127.0.0.2:{taken}"], one.port))
        finally:
            blocker.close()
        assert await which(port) == "one"
    one.server.close()


async def test_reload_replacing_the_resolver_does_not_strand_a_lookup(dns_server, tls_upstream, client_context):
    from .conftest import tls_exchange

    up = await tls_upstream("up")
    dns, nameserver = await dns_server({"up.internal": "127.0.0.1"})
    dns.delay = 0.5

    def config(ttl: str) -> Config:
        return config_from(f"""
listen:
  - address: "127.0.0.1:0"
resolver:
  nameservers: ["{nameserver}"]
  cache_ttl: {ttl}
routes:
  - sni: good.example.com
    upstream: "up.internal:{up.port}"
""")

    async with running(config("30s")) as engine:
        exchange = asyncio.create_task(tls_exchange(port_of(engine), "good.example.com", client_context))
        await wait_until(lambda: dns.queries, what="a lookup in flight")
        await engine.apply(config("31s"))     # new resolver settings: a new resolver
        assert await exchange == "upstream=up sni=good.example.com"
