"""A live engine with N idle relayed connections: what one UI refresh costs on the shared event loop.

    python bench/ui_live_refresh.py [--connections 2000]

The TUI runs the engine and the app on one asyncio loop, so each refresh pays
for `engine.snapshot()` (the engine freezes every live connection into a
ConnectionInfo) and for the dashboard's own work. Both are reported, as CPU
time of this process. Clients send a real ClientHello (made by Python's ssl
with a MemoryBIO) for a passthrough route to a loopback upstream that accepts
and holds; loopback only. Each connection uses four descriptors (client,
accepted, upstream dial, upstream accept): mind `ulimit -n`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from conn_cost import client_hello   # same directory: bench/ scripts run as `python bench/NAME.py`


async def main(count: int, rounds: int) -> None:
    from sniui.config import load_text
    from sniui.engine.engine import Engine
    from sniui.ui.app import create_app
    from sniui.ui.screens.dashboard import DashboardScreen
    from sniui.ui.view import LiveEngineView

    held: list[asyncio.StreamWriter] = []
    handlers: set[asyncio.Task] = set()

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        handlers.add(asyncio.current_task())
        await reader.read()  # until the router closes

    upstream = await asyncio.start_server(hold, "127.0.0.1", 0, backlog=4096)
    port = upstream.sockets[0].getsockname()[1]
    config = load_text(
        "listen: [{address: '127.0.0.1:0'}]\n"
        f"limits: {{max_connections: {count + 100}, max_connections_per_client: {count + 100}}}\n"
        f"routes:\n  - {{name: shop, sni: shop.test, upstream: '127.0.0.1:{port}'}}\n").config
    engine = Engine(config)
    await engine.start()
    host, listen_port = engine.bound_addresses[0][:2]
    hello = client_hello("shop.test")
    clients = []
    for start in range(0, count, 200):  # in batches, so the accept backlog never overflows
        batch = [asyncio.open_connection(host, listen_port) for _ in range(start, min(count, start + 200))]
        for reader, writer in await asyncio.gather(*batch):
            writer.write(hello)
            clients.append(writer)
    deadline = time.monotonic() + 60
    while sum(1 for c in engine.snapshot().connections if c.upstream_address) < count:
        if time.monotonic() > deadline:
            raise SystemExit("connections did not all reach the upstream within 60s")
        await asyncio.sleep(0.1)

    snap_cpu = []
    for _ in range(rounds):
        t = time.process_time()
        engine.snapshot()
        snap_cpu.append(time.process_time() - t)

    app = create_app(LiveEngineView(engine), refresh_interval=None, follow_events=False)
    show_cpu = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, DashboardScreen)
        for _ in range(rounds):
            snapshot = engine.snapshot()
            t = time.process_time()
            screen.show_snapshot(snapshot)
            show_cpu.append(time.process_time() - t)
            await pilot.pause(0.05)
    print(f"{count} live connections: engine.snapshot() CPU median {statistics.median(snap_cpu) * 1000:.1f} ms; "
          f"dashboard refresh CPU median {statistics.median(show_cpu) * 1000:.1f} ms "
          f"(one refresh = both, on the shared loop)")
    for writer in clients:
        writer.close()
    await engine.stop()
    for writer in held:
        writer.close()
    upstream.close()
    await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 30)  # each sees EOF and ends
    await upstream.wait_closed()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(main(args.connections, args.rounds))
