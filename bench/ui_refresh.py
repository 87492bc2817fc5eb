"""How long one dashboard refresh takes with 10,000 live connections (replay data, headless app).

    python bench/ui_refresh.py [--connections 10000] [--rounds 20]

Each round hands the dashboard a new snapshot in which every connection has
moved bytes (the worst case for the keyed table: every visible row changes)
and 1% of connections are replaced. CPU time of this process is reported, so
other work on the machine does not inflate it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time


async def measure(connections: int, rounds: int) -> None:
    from sniui.ui.app import create_app
    from sniui.ui.replay_data import make_connections, replay_view

    view = replay_view(connections)
    app = create_app(view, refresh_interval=None, follow_events=False)
    base = view.snapshot()
    spare = make_connections(connections // 100 * rounds, seed=99, first_id=10_000_000)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        screen = app.screen
        for mode in ("flat", "sni", "route"):
            screen.group_by = mode
            await pilot.pause()
            wall, cpu = [], []
            for i in range(1, rounds + 1):
                churn = connections // 100
                kept = base.connections[churn * i % connections:] + base.connections[:churn * i % connections]
                conns = [dataclasses.replace(c, bytes_up=c.bytes_up + 97 * i, bytes_down=c.bytes_down + 1009 * i)
                         for c in kept[churn:]] + spare[churn * (i - 1):churn * i]
                snapshot = dataclasses.replace(base, taken_at=base.taken_at + i, connections=tuple(conns))
                w, c = time.perf_counter(), time.process_time()
                screen.show_snapshot(snapshot)
                wall.append(time.perf_counter() - w)
                cpu.append(time.process_time() - c)
                await pilot.pause()  # let the table paint, as between real ticks
            print(f"{connections} connections, {mode:>5}: refresh CPU median {statistics.median(cpu) * 1000:5.1f} ms, "
                  f"p90 {sorted(cpu)[int(len(cpu) * 0.9) - 1] * 1000:5.1f} ms (wall median "
                  f"{statistics.median(wall) * 1000:5.1f} ms); rows given to the table: {len(screen.last_rows.rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(measure(args.connections, args.rounds))


if __name__ == "__main__":
    main()
