"""The dashboard refreshes 3x a second, and 2x under load so the shared event loop stays the relay's."""

from __future__ import annotations

import dataclasses

from sniui.engine.model import RateSample
from sniui.ui.app import BUSY_REFRESH_INTERVAL, REFRESH_INTERVAL, create_app, is_busy
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
    app = create_app(view)
    scheduled: list[float] = []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        app._schedule_refresh = scheduled.append   # record the next interval instead of waiting for it
        view.replace_snapshot(with_rate(view.snapshot(), 1500))
        app._refresh_tick()
        view.replace_snapshot(with_rate(view.snapshot(), 3))
        app._refresh_tick()
    assert scheduled == [BUSY_REFRESH_INTERVAL, REFRESH_INTERVAL]
