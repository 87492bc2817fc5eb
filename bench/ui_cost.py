"""What the open TUI costs its process per second: refreshing *and painting*, by traffic shape.

    python bench/ui_cost.py [--seconds 6] [--scenario churn] [--profile out.raw]

The TUI shares one event loop with the engine, so every millisecond the app
spends building rows and painting them is a millisecond the engine does not
relay. This runs the real app (headless, 120x40, its own 3 Hz refresh loop
and Textual's compositor, which renders even though nothing is displayed; 2 Hz
when the snapshot says the router is busy) on
replayed snapshots that change every tick the way live traffic does, and
reports the process's CPU time per wall-clock second, and per refresh:

    quiet   40 connections, nothing moves (the floor: timers, clocks, ages)
    bulk    one connection moving ~600 MB/s (the throughput benchmark's shape)
    churn   32 short connections, all replaced every tick, 1,600 new a second;
            recent closes fill (the connection-rate benchmark's shape)
    10k     10,000 connections, every byte counter moving, 1% replaced per tick

No sockets; CPU time of this process, so other load on the machine does not
count. Compare runs of the same machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import time

SCENARIOS = ("quiet", "bulk", "churn", "10k")


class Traffic:
    """Makes the next snapshot of one scenario each time the app asks for one."""

    def __init__(self, scenario: str) -> None:
        from sniui.ui.replay_data import make_connections, make_snapshot

        self.scenario = scenario
        size = {"quiet": 40, "bulk": 1, "churn": 32, "10k": 10_000}[scenario]
        self.base = make_snapshot(size)
        self.spare = iter(make_connections(200_000 if scenario == "churn" else 20_000, seed=99, first_id=10_000_000))
        self.connections = list(self.base.connections)
        self.recent = list(self.base.recent)
        self.tick = 0

    def next(self, now: float):
        from sniui.engine.model import CloseReason, ConnState

        self.tick += 1
        i = self.tick
        conns = self.connections
        if self.scenario == "bulk":
            conns = [dataclasses.replace(c, bytes_down=c.bytes_down + 200_000_000 * i) for c in conns]
        elif self.scenario == "churn":
            closed = [dataclasses.replace(c, state=ConnState.CLOSED, closed=now, close_reason=CloseReason.CLIENT_CLOSED)
                      for c in conns]
            self.recent = (closed + self.recent)[:500]
            conns = self.connections = [dataclasses.replace(next(self.spare), started=now - 0.01) for _ in conns]
        elif self.scenario == "10k":
            churn = len(conns) // 100
            conns = self.connections = conns[churn:] + [next(self.spare) for _ in range(churn)]
            conns = [dataclasses.replace(c, bytes_up=c.bytes_up + 97 * i, bytes_down=c.bytes_down + 1009 * i)
                     for c in conns]
        # The last second's new connections, as the header and the refresh pacing read them.
        rate = {"quiet": 2, "bulk": 0, "churn": 1600, "10k": 100}[self.scenario]
        rates = self.base.rates[:-1] + (dataclasses.replace(self.base.rates[-1], at=now, connections=rate),)
        return dataclasses.replace(self.base, taken_at=now, connections=tuple(conns), recent=tuple(self.recent),
                                   rates=rates)


async def measure(scenario: str, seconds: float) -> dict[str, float]:
    from sniui.ui.app import create_app
    from sniui.ui.replay_data import replay_view

    view = replay_view(40)
    traffic = Traffic(scenario)
    clock = [view.now()]
    refreshes = [0]

    def snapshot():
        refreshes[0] += 1
        clock[0] += 1 / 3
        return traffic.next(clock[0])

    view.snapshot = snapshot          # type: ignore[method-assign]
    view.now = lambda: clock[0]       # type: ignore[method-assign]
    app = create_app(view, follow_events=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(1.0)        # mounted, first paints done
        refreshes[0] = 0
        wall, cpu = time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    count = max(refreshes[0], 1)
    return {"cpu_ms_per_s": cpu / wall * 1000, "refreshes_per_s": refreshes[0] / wall, "cpu_ms_per_refresh": cpu / count * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--scenario", choices=SCENARIOS, action="append")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario; the median is reported")
    args = parser.parse_args()
    for scenario in args.scenario or SCENARIOS:
        runs = [asyncio.run(measure(scenario, args.seconds)) for _ in range(args.repeat)]
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"{scenario:>6}: UI CPU {median['cpu_ms_per_s']:6.1f} ms per second "
              f"({median['refreshes_per_s']:.1f} refreshes/s, {median['cpu_ms_per_refresh']:5.1f} ms each incl. painting)")


if __name__ == "__main__":
    main()
