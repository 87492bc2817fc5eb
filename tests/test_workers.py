"""`sniui --headless --workers N` as real processes: SO_REUSEPORT spreading, one access log,
SIGHUP reaching every worker, SIGTERM draining all of them, a killed worker restarted."""

from __future__ import annotations

import asyncio
import signal

import psutil

from tests.engine.conftest import (DEADLINE, TlsUpstream, ca, ca_file, client_context,  # noqa: F401
                                   tls_exchange, tls_upstream, upstream_context)
from tests.test_headless import daemon, write_config

CONNECTIONS = 60


async def listening_workers(d, count: int) -> int:
    """Wait until `count` "listening on" lines came (one per worker); return the shared port."""
    ports = set()
    for _ in range(count):
        line = await d.wait_for_stderr(r"sniui\[worker (\d+)\]: listening on 127\.0\.0\.1:(\d+)")
        ports.add(int(line.group(2)))
        d.stderr_lines.remove(line.string)   # the next wait finds the next worker's line
    assert len(ports) == 1, ports
    return ports.pop()


async def run_connections(d, port: int, context, expect: str, count: int = CONNECTIONS) -> set[int]:
    """`count` sequential TLS connections; every one must reach `expect`; returns the workers that logged them."""
    for _ in range(count):
        assert await tls_exchange(port, "shop.example.com", context) == f"upstream={expect} sni=shop.example.com"
    workers = set()
    for _ in range(count):
        record = await d.access_line()
        assert record["route"] == "shop"
        workers.add(record["worker"])
    return workers


def worker_pids(d) -> list[int]:
    return [child.pid for child in psutil.Process(d.process.pid).children()]


async def test_workers_share_the_port_and_the_access_log(tmp_path, tls_upstream, client_context):
    one = await tls_upstream("one")
    config = tmp_path / "sniui.yaml"
    write_config(config, one.address)
    async with daemon("-c", str(config), "--workers", "2", "--drain", "5s") as d:
        port = await listening_workers(d, 2)
        assert len(worker_pids(d)) == 2
        assert await run_connections(d, port, client_context, "one") == {0, 1}


async def test_sighup_reaches_every_worker(tmp_path, tls_upstream, client_context):
    one, two = await tls_upstream("one"), await tls_upstream("two")
    config = tmp_path / "sniui.yaml"
    write_config(config, one.address)
    async with daemon("-c", str(config), "--workers", "2") as d:
        port = await listening_workers(d, 2)
        write_config(config, two.address)
        d.process.send_signal(signal.SIGHUP)
        reloaded = set()
        for _ in range(2):
            line = await d.wait_for_stderr(r"sniui\[worker (\d+)\]: reloaded .*generation 2")
            reloaded.add(line.group(1))
            d.stderr_lines.remove(line.string)
        assert reloaded == {"0", "1"}
        assert await run_connections(d, port, client_context, "two") == {0, 1}

        # A refused reload: every worker says so and keeps serving the running config.
        config.write_text("routes: [{sni: x, upstream: nowhere}]\n")
        d.process.send_signal(signal.SIGHUP)
        for worker in ("0", "1"):
            await d.wait_for_stderr(rf"sniui\[worker {worker}\]: reload refused")
        assert await tls_exchange(port, "shop.example.com", client_context) == "upstream=two sni=shop.example.com"


async def test_sigterm_drains_every_worker_and_exits_0(tmp_path, tls_upstream, client_context):
    one = await tls_upstream("one")
    config = tmp_path / "sniui.yaml"
    write_config(config, one.address)
    async with daemon("-c", str(config), "--workers", "2", "--drain", "10s") as d:
        port = await listening_workers(d, 2)
        pids = worker_pids(d)
        assert len(pids) == 2
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context,
                                                       server_hostname="shop.example.com")
        writer.write(b"first\n")
        assert (await reader.readline()).startswith(b"upstream=one")
        d.process.send_signal(signal.SIGTERM)
        for worker in ("0", "1"):
            await d.wait_for_stderr(rf"sniui\[worker {worker}\]: stopping")
        writer.write(b"second\n")   # the established connection finishes during the drain
        assert await reader.readexactly(len(b"first\nsecond\n")) == b"first\nsecond\n"
        writer.close()
        async with asyncio.timeout(DEADLINE):
            assert await d.process.wait() == 0
        record = await d.access_line()
        assert record["bytes_in"] > 0 and record["worker"] in (0, 1)
        assert not [pid for pid in pids if psutil.pid_exists(pid)
                    and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]


async def test_a_killed_worker_is_restarted(tmp_path, tls_upstream, client_context):
    one = await tls_upstream("one")
    config = tmp_path / "sniui.yaml"
    write_config(config, one.address)
    async with daemon("-c", str(config), "--workers", "2") as d:
        port = await listening_workers(d, 2)
        victim = psutil.Process(worker_pids(d)[0])
        victim.kill()
        await d.wait_for_stderr(r"worker \d \(pid %d\) died unexpectedly \(killed by SIGKILL\)" % victim.pid)
        await d.wait_for_stderr(r"worker \d restarted")
        assert await listening_workers(d, 1) == port
        pids = worker_pids(d)
        assert len(pids) == 2 and victim.pid not in pids
        assert await run_connections(d, port, client_context, "one") == {0, 1}
        d.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE):
            assert await d.process.wait() == 0


async def test_workers_refuse_a_bad_config_once(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("listen:\n  - address: \"127.0.0.1:0\"\nroutes:\n  - sni: a.example.com\n    upstrem: x:1\n")
    async with daemon("-c", str(config), "--workers", "2") as d:
        async with asyncio.timeout(DEADLINE):
            code = await d.process.wait()
        err = (await d.process.stderr.read()).decode()
    assert code == 2
    assert "bad.yaml:5 routes[0].upstrem: unknown field" in err and err.count("config refused") == 1
    assert "sniui[worker" not in err and "starting 2 workers" not in err


async def test_workers_name_the_address_in_use(tmp_path):
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        config = tmp_path / "c.yaml"
        config.write_text(f'listen:\n  - address: "127.0.0.1:{port}"\n')
        async with daemon("-c", str(config), "--workers", "2") as d:
            async with asyncio.timeout(DEADLINE):
                code = await d.process.wait()
            err = (await d.process.stderr.read()).decode()
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}: address in use" in err
