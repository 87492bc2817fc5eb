"""The dashboard refreshes 3x a second, and 2x under load so the shared event loop stays the relay's."""

from __future__ import annotations

import dataclasses

from sniui.engine.model import RateSample
from sniui.ui.app import TICKS_PER_BUSY_REFRESH, TICKS_PER_REFRESH, create_app, is_busy
from sniui.ui.replay_data import make_connections, replay_view


def with_rate(snapshot, new_per_second: int):
    last = snapshot.rates[-1] if snapshot.rates else RateSample(snapshot.taken_at, 0, 0, 0)
    return dataclasses.replace(snapshot, rates=snapshot.rates[:-1] + (dataclasses.replace(last, connections=new_per_second),))


def test_busy_means_many_new_connections_a_second_or_thousands_live():
    quiet = with_rate(replay_view(40).snapshot(), 5)
    assert not is_busy(quiet)
    assert is_busy(with_rate(quiet, 1500))
    assert is_busy(dataclasses.replace(quiet, connections=tuple(make_connections(2500))))


async def test_the_refresh_loop_slows_down_under_load_and_speeds_up_after():
    view = replay_view(40)
    app = create_app(view, refresh_interval=None)   # ticks driven by the test, not by the clock
    shown: list[int] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app.screen.show_snapshot = lambda snapshot: shown.append(snapshot.rates[-1].connections)

        def refreshes_in(ticks: int) -> int:
            before = len(shown)
            for _ in range(ticks):
                app._refresh_tick()
            return len(shown) - before

        view.replace_snapshot(with_rate(view.snapshot(), 3))
        assert refreshes_in(12) == 12 // TICKS_PER_REFRESH          # 3 Hz
        view.replace_snapshot(with_rate(view.snapshot(), 1500))
        assert refreshes_in(12) in (12 // TICKS_PER_BUSY_REFRESH, 12 // TICKS_PER_BUSY_REFRESH + 1)   # 2 Hz
        view.replace_snapshot(with_rate(view.snapshot(), 3))
        refreshes_in(TICKS_PER_BUSY_REFRESH)                         # the first quiet snapshot is seen
        assert refreshes_in(12) == 12 // TICKS_PER_REFRESH          # back to 3 Hz
