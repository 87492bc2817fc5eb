"""LiveEngineView.apply: the engine takes the config, then the view's after-apply hook runs (never on a refusal)."""

from __future__ import annotations

import socket

import pytest

from sniui.config import load_text
from sniui.engine.engine import Engine
from sniui.engine.listener import EngineError
from sniui.ui.view import LiveEngineView


def config(port: int, upstream: str = "127.0.0.1:9"):
    return load_text(f'listen: [{{address: "127.0.0.1:{port}"}}]\nroutes: [{{sni: a.test, upstream: "{upstream}"}}]\n').config


async def test_after_apply_runs_once_the_engine_took_the_config_and_not_on_a_refusal():
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    engine = Engine(config(port))
    await engine.start()
    generations: list[int] = []
    view = LiveEngineView(engine, after_apply=lambda: generations.append(engine.generation))
    busy = socket.create_server(("127.0.0.1", 0))   # a port the engine cannot listen on
    try:
        await view.apply(config(port, "127.0.0.1:10"))   # same listener, new upstream
        assert engine.table.match("a.test").upstream == "127.0.0.1:10"
        assert generations == [engine.generation]
        with pytest.raises(EngineError):
            await view.apply(config(busy.getsockname()[1]))
        assert generations == [engine.generation]             # refused: the hook did not run
        assert engine.table.match("a.test").upstream == "127.0.0.1:10"
    finally:
        busy.close()
        await engine.stop()
