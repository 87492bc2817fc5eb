"""`sniui --headless`: run the engine without a screen.

stdout carries the access log (one JSON line per closed connection) unless
`--log-file` sends it to a file; stderr carries human lines: what is
listening, reloads, refusals, upstream trouble. SIGHUP reloads the config
file (a refused config is logged and the running one kept) and reopens the
log file; SIGTERM or SIGINT stop accepting, let established connections
finish for the drain time, close the rest, and exit 0; a second SIGTERM or
SIGINT during the drain closes the remaining connections at once.

The event loop is uvloop's unless `SNIUI_LOOP=asyncio` (engine/loops.py).

Passthrough connections relay with splice(2) once they carry bulk
(engine/splice_relay.py); `SNIUI_RELAY=buffered` keeps the buffered relay.

`--workers N` (N ≥ 2) makes this process a supervisor of N worker processes,
each running this daemon with `--worker-index i` and SO_REUSEPORT listeners
(headless/workers.py); `--workers 1` is exactly the single daemon.

Per-connection lines come from the engine's close hook (the access log and
the stderr line for upstream failures); the event subscription asks only for
router-level kinds, so the engine need not build an event per connection.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from sniui.config import ConfigError, load_file
from sniui.config.units import parse_duration
from sniui.engine import Engine, EngineError, loops
from sniui.engine.engine import REJECTIONS, UPSTREAM_ERRORS
from sniui.engine.heap import settle_heap
from sniui.engine.model import ConnectionInfo, Event
from sniui.engine.splice_relay import make_relay
from sniui.headless.accesslog import AccessLog

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_CONFIG = 2

# Events worth a line on stderr; per-connection lines go to the access log.
STDERR_KINDS = frozenset({"server_down", "server_up", "listener_error", "listener_stopped"})
# Closed connections worth a line on stderr too: the upstream failed (not a refusal by the router).
STDERR_CLOSES = UPSTREAM_ERRORS - REJECTIONS


_PREFIX = ["sniui"]   # "sniui[worker 1]" in a worker process of `--workers N`


def say(message: str) -> None:
    if _PREFIX[0] == "sniui":
        print(f"sniui: {message}", file=sys.stderr, flush=True)
        return
    try:   # a worker: one write per line, so the workers' lines on the shared stderr never mix
        sys.stderr.flush()
        os.write(sys.stderr.fileno(), f"{_PREFIX[0]}: {message}\n".encode("utf-8", "replace"))
    except (OSError, ValueError):
        pass


def run_daemon(config_path: Path | None, drain: str = "30s", log_format: str = "json", log_file: str | None = None,
               workers: int = 1, worker_index: int | None = None) -> int:
    """One engine in this process; with `workers` ≥ 2, a supervisor of that many
    worker processes (headless/workers.py); `worker_index` set: one of them."""
    if workers > 1 and worker_index is None:
        from sniui.headless.workers import run_supervisor

        return run_supervisor(config_path, drain=drain, log_format=log_format, log_file=log_file, workers=workers)
    if worker_index is not None:
        from sniui.headless.workers import become_worker

        _PREFIX[0] = f"sniui[worker {worker_index}]"
        become_worker()
    try:
        drain_seconds = parse_duration(drain)
    except ValueError as exc:
        say(f"--drain: {exc}")
        return EXIT_CONFIG
    try:
        return loops.run(Daemon(config_path, drain_seconds, log_format, log_file, worker_index).run(), say)
    except KeyboardInterrupt:
        return EXIT_OK


class Daemon:
    def __init__(self, config_path: Path | None, drain: float, log_format: str, log_file: str | None,
                 worker_index: int | None = None) -> None:
        self.config_path = config_path
        self.worker_index = worker_index   # None: the only engine; else one of `--workers N`
        self.drain = drain
        self.log_format = log_format
        self.log_file = log_file
        self.engine: Engine | None = None
        self.demo = None
        self.stopping = asyncio.Event()
        self.reloading: asyncio.Task[None] | None = None

    async def run(self) -> int:
        try:
            if self.worker_index is None:
                access_log = AccessLog(self.log_format, self.log_file)
            else:
                from sniui.headless.workers import WorkerAccessLog

                access_log = WorkerAccessLog(self.worker_index, self.log_format, self.log_file)
        except OSError as exc:
            say(f"cannot open the access log {self.log_file}: {exc.strerror or exc}")
            return EXIT_RUNTIME
        try:
            code = await self._start()
            if code != EXIT_OK:
                return code
            assert self.engine is not None
            self.engine.add_close_hook(access_log)
            self.engine.add_close_hook(_report_upstream_failure)
            watcher = asyncio.get_running_loop().create_task(self._watch_events())
            self._install_signals(access_log)
            if self.worker_index is not None:
                from sniui.headless.workers import signals_ready

                signals_ready()
            settle_heap()
            await self.stopping.wait()
            say(f"stopping: no new connections; draining for up to {self.drain:g}s")
            await self.engine.drain(self.drain)
            await self.engine.stop()
            watcher.cancel()
            say("stopped")
            return EXIT_OK
        finally:
            access_log.close()
            if self.demo is not None:
                await self.demo.close()

    async def _start(self) -> int:
        if self.config_path is None:
            return await self._start_demo()
        try:
            loaded = self._load(self.config_path)
        except ConfigError as exc:
            for issue in exc.issues:
                print(str(issue), file=sys.stderr)
            say(f"{self.config_path}: config refused")
            return EXIT_CONFIG
        for warning in loaded.warnings:
            print(str(warning), file=sys.stderr)
        try:
            self.engine = Engine(loaded.config, reuse_port=self.worker_index is not None)
        except EngineError as exc:
            say(str(exc))
            return EXIT_CONFIG
        self._choose_relay()
        try:
            await self.engine.start()
        except EngineError as exc:
            say(str(exc))
            return EXIT_RUNTIME
        self._announce()
        return EXIT_OK

    def _load(self, path: Path):
        loaded = load_file(path)
        if self.worker_index is not None:
            from sniui.headless.workers import pin_ports

            pin_ports(loaded.config)
        return loaded

    def _choose_relay(self) -> None:
        assert self.engine is not None
        if os.environ.get("SNIUI_RELAY") != "buffered":
            self.engine.relay_factory = make_relay  # type: ignore[assignment]

    def _install_exception_handler(self) -> None:
        """asyncio reports failed accepts (EMFILE under a flood) with a traceback each;
        turn them into one human line per second."""
        loop = asyncio.get_running_loop()
        state = {"last": 0.0, "suppressed": 0}

        def handler(loop: asyncio.AbstractEventLoop, context: dict) -> None:
            now = loop.time()
            if now - state["last"] < 1.0:
                state["suppressed"] += 1
                return
            exc = context.get("exception")
            detail = f": {exc}" if exc else ""
            more = f" ({state['suppressed']} similar message(s) suppressed)" if state["suppressed"] else ""
            say(f"{context.get('message', 'error in the event loop')}{detail}{more}")
            state["last"], state["suppressed"] = now, 0

        loop.set_exception_handler(handler)

    async def _start_demo(self) -> int:
        from sniui.demo import build_demo
        from sniui.demo.scenario import DEFAULT_PORT

        for port in (DEFAULT_PORT, 0):
            self.demo = await build_demo(port)
            self.engine = Engine(self.demo.config)
            self._choose_relay()
            try:
                await self.engine.start()
            except EngineError as exc:
                await self.demo.close()
                self.demo = None
                if port == 0:
                    say(str(exc))
                    return EXIT_RUNTIME
                say(f"{exc}; the demo takes a free port instead")
                continue
            self._announce()
            bound = self.engine.bound_addresses[0][1]
            print(self.demo.instructions_for(bound), file=sys.stderr, flush=True)
            return EXIT_OK
        return EXIT_RUNTIME

    def _announce(self) -> None:
        assert self.engine is not None
        self._install_exception_handler()
        if self.engine.fd_warning:
            say(f"warning: {self.engine.fd_warning}")
        for listener in self.engine.listeners.values():
            extra = " (expects a PROXY protocol header)" if listener.accept_proxy_protocol else ""
            say(f"listening on {', '.join(listener.bound_text)}{extra}")
        config = self.engine.config
        say(f"{len(config.routes)} route(s), {len(config.upstreams)} upstream group(s); "
            f"source {config.source or '<built-in>'}")

    def _install_signals(self, access_log: AccessLog) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGHUP, lambda: self._on_hup(access_log))

    def _on_stop_signal(self) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            return
        # A second SIGTERM/SIGINT: the operator does not want to wait for the drain.
        assert self.engine is not None
        count = self.engine.close_all("second stop signal during the drain")
        say(f"second stop signal: closed {count} connection(s) without waiting")

    def _on_hup(self, access_log: AccessLog) -> None:
        try:
            access_log.reopen()
        except OSError as exc:
            say(f"cannot reopen the access log {access_log.path}: {exc.strerror or exc}; still writing the old one")
        if self.reloading is None or self.reloading.done():
            self.reloading = asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> bool:
        assert self.engine is not None
        if self.config_path is None:
            say("SIGHUP: the built-in demo has no file to reload")
            return False
        try:
            loaded = self._load(self.config_path)
        except ConfigError as exc:
            for issue in exc.issues:
                print(str(issue), file=sys.stderr)
            say(f"reload refused: {self.config_path} has errors; the running config keeps serving")
            return False
        try:
            await self.engine.apply(loaded.config)
        except EngineError as exc:
            say(f"reload refused: {exc}; the running config keeps serving")
            return False
        for warning in loaded.warnings:
            print(str(warning), file=sys.stderr)
        settle_heap()   # the previous config's objects were frozen: let them go
        say(f"reloaded {self.config_path} (generation {self.engine.generation})")
        if self.engine.fd_warning:
            say(f"warning: {self.engine.fd_warning}")
        for listener in self.engine.listeners.values():
            say(f"listening on {', '.join(listener.bound_text)}")
        return True

    async def _watch_events(self) -> None:
        assert self.engine is not None
        subscription = self.engine.subscribe(maxsize=1000, kinds=STDERR_KINDS)
        reported_drops = 0
        async for event in subscription:
            if _worth_reporting(event):
                say(event.message)
            if subscription.dropped > reported_drops:
                say(f"{subscription.dropped - reported_drops} event(s) dropped while stderr was slow")
                reported_drops = subscription.dropped


def _worth_reporting(event: Event) -> bool:
    return event.kind in STDERR_KINDS


def _report_upstream_failure(info: ConnectionInfo) -> None:
    """A close hook: one stderr line per connection the upstream failed (the
    engine's connection_closed event message, at error level)."""
    reason = info.close_reason
    if reason in STDERR_CLOSES:
        target = info.upstream_address or info.upstream or "-"
        detail = f" ({info.close_detail})" if info.close_detail else ""
        say(f"#{info.id} {info.client} {info.sni or '(no SNI)'} → {target}: {reason.value}{detail}")
