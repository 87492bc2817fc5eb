"""SNIUI_LOOP picks the event loop for the daemon and the TUI alike (sniui/engine/loops.py)."""

from __future__ import annotations

import asyncio
import builtins

import pytest
import uvloop

from sniui.engine import loops


def test_uvloop_is_the_default_and_asyncio_opts_out(monkeypatch):
    warnings: list[str] = []
    monkeypatch.delenv("SNIUI_LOOP", raising=False)
    assert loops.loop_factory(warnings.append) is uvloop.new_event_loop
    monkeypatch.setenv("SNIUI_LOOP", "asyncio")
    assert loops.loop_factory(warnings.append) is None
    assert warnings == []


@pytest.mark.parametrize("choice, warned", [("uvloop", True), ("", False)])
def test_without_uvloop_asyncio_runs_and_an_explicit_request_is_answered(monkeypatch, choice, warned):
    real_import = builtins.__import__

    def no_uvloop(name, *args, **kwargs):
        if name == "uvloop":
            raise ImportError("no module named uvloop")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uvloop)
    monkeypatch.setenv("SNIUI_LOOP", choice)
    warnings: list[str] = []
    assert loops.loop_factory(warnings.append) is None
    assert bool(warnings) == warned
    assert all("SNIUI_LOOP=uvloop" in text for text in warnings)


def test_run_uses_the_chosen_loop(monkeypatch):
    async def loop_type() -> str:
        return type(asyncio.get_running_loop()).__module__

    monkeypatch.delenv("SNIUI_LOOP", raising=False)
    assert loops.run(loop_type(), print).startswith("uvloop")
    monkeypatch.setenv("SNIUI_LOOP", "asyncio")
    assert loops.run(loop_type(), print).startswith("asyncio")
