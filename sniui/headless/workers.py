"""`sniui --headless --workers N`: a supervisor and N worker processes.

Each worker is `python -m sniui --headless … --worker-index i`: a full engine
(its own registry, limits, health checks) whose listeners are bound with
SO_REUSEPORT, so the kernel spreads new connections across the workers.
Limits such as `max_connections` therefore apply per worker.

The supervisor validates the config once (same messages and exit code as a
single daemon), checks that every listen address can be bound, and pins
`port 0` listeners to one port for all workers (it keeps a bound, never
listening SO_REUSEPORT socket on that port; such a socket receives no
connections). Then it starts the workers and:

- forwards SIGHUP (each worker reloads the file; a worker that refuses it logs
  so and keeps its running config), SIGTERM and SIGINT (each worker drains
  for --drain; a second signal closes the rest at once); after a stop signal
  it waits for every worker and exits 0 (1 if a worker failed to stop cleanly);
- logs a worker that dies unexpectedly with its exit code or signal and starts
  a new one after a backoff (0.5 s, doubling to 30 s while it keeps dying
  young), at most RESTARTS_PER_MINUTE restarts in any minute; with no worker
  left and the budget spent, it gives up and exits 1.

Workers run in their own process group (Ctrl-C reaches only the supervisor,
which forwards it once) and ask the kernel for SIGTERM if the supervisor dies.

All workers write the access log to the same stdout or --log-file: every write
is one os.write of whole lines of at most PIPE_BUF bytes (O_APPEND for a
file), so lines never interleave; JSON lines carry `"worker": i`.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from sniui.config import ConfigError, load_file
from sniui.config.addresses import parse_listen_address
from sniui.config.models import Config
from sniui.config.units import parse_duration
from sniui.engine import Engine, EngineError
from sniui.engine.balancer import format_address
from sniui.engine.listener import describe_bind_error
from sniui.headless.accesslog import AccessLog

EXIT_OK, EXIT_RUNTIME, EXIT_CONFIG = 0, 1, 2
PORTS_ENV = "SNIUI_WORKER_PORTS"          # JSON {configured address: address with the pinned port}
SUPERVISOR_ENV = "SNIUI_SUPERVISOR_PID"
RESTARTS_PER_MINUTE = 10
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 30.0
HEALTHY_AFTER = 10.0                      # a worker that lived this long resets its backoff
TICK = 0.1
WORKER_SIGNALS = frozenset({signal.SIGHUP, signal.SIGTERM, signal.SIGINT})
PIPE_BUF = getattr(select, "PIPE_BUF", 4096)


def say(message: str) -> None:
    print(f"sniui: {message}", file=sys.stderr, flush=True)


# -- in the worker ------------------------------------------------------------------------------


def become_worker() -> None:
    """Ask for SIGTERM when the supervisor dies (Linux), and stop if it is already gone."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    expected = os.environ.get(SUPERVISOR_ENV)
    if expected and os.getppid() != int(expected):
        raise SystemExit(EXIT_RUNTIME)


def signals_ready() -> None:
    """The worker's signal handlers are installed: let the signals the supervisor blocked in."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, WORKER_SIGNALS)


def pin_ports(config: Config) -> None:
    """Give port-0 listeners the port the supervisor chose (at start and on every reload)."""
    try:
        pinned = json.loads(os.environ.get(PORTS_ENV) or "{}")
    except ValueError:
        return
    for entry in config.listen:
        entry.address = pinned.get(entry.address, entry.address)


class WorkerAccessLog(AccessLog):
    """The access log of one worker: `"worker": i` in JSON lines, `worker=i` in text lines,
    and writes that cannot interleave with the other workers' (see the module docstring)."""

    def __init__(self, index: int, fmt: str = "json", path: str | Path | None = None) -> None:
        self.index = index
        self._fd = -1
        super().__init__(fmt, path)
        plain = self.format
        tail = f',"worker":{index}}}' if fmt == "json" else f" worker={index}"
        if fmt == "json":
            self.format = lambda info: plain(info)[:-1] + tail   # type: ignore[method-assign]
        else:
            self.format = lambda info: plain(info) + tail   # type: ignore[method-assign]

    def reopen(self) -> None:
        if self.path is None:
            return
        new = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = new

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        if self._fd >= 0:
            fd = self._fd
        else:
            try:
                sys.stdout.flush()
                fd = sys.stdout.fileno()
            except (ValueError, OSError):
                self.lost += len(lines)
                return
        chunk: list[bytes] = []
        size = 0
        try:
            for line in lines:
                data = line.encode("utf-8", "replace") + b"\n"
                if chunk and size + len(data) > PIPE_BUF:
                    _write_all(fd, b"".join(chunk))
                    chunk, size = [], 0
                chunk.append(data)
                size += len(data)
            if chunk:
                _write_all(fd, b"".join(chunk))
        except OSError:   # the reader went away, or the disk is full: keep routing, count the loss
            self.lost += len(lines)

    def close(self) -> None:
        self.flush()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [], 1.0)
            continue
        view = view[written:]


# -- in the supervisor --------------------------------------------------------------------------


def _validate(config_path: Path) -> Config | None:
    try:
        loaded = load_file(config_path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(str(issue), file=sys.stderr)
        say(f"{config_path}: config refused")
        return None
    try:
        Engine(loaded.config)
    except EngineError as exc:
        say(str(exc))
        return None
    return loaded.config


def _reserve(config: Config) -> tuple[dict[str, str], list[socket.socket]]:
    """Bind (never listen) every listen address with SO_REUSEPORT: an address in use fails here,
    naming it; a port-0 address gets one port for every worker. Returns the pinned addresses
    and the sockets to hold for port-0 addresses. Raises OSError naming nothing (the caller does)."""
    pinned: dict[str, str] = {}
    held: list[socket.socket] = []
    for entry in config.listen:
        host_port = parse_listen_address(entry.address)
        host = host_port.host or None
        port = host_port.port
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        sockets = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0:
                    address = (address[0], 0, *address[2:])
                sock.bind(address)
                if port == 0:
                    port = sock.getsockname()[1]
                    pinned[entry.address] = format_address(str(host_port.host), port)
        except OSError as exc:
            for sock in sockets:
                sock.close()
            for sock in held:
                sock.close()
            raise OSError(exc.errno, f"cannot listen on {entry.address}: {describe_bind_error(exc)}") from None
        if host_port.port == 0:
            held.extend(sockets)
        else:
            for sock in sockets:
                sock.close()
    return pinned, held


class Worker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0
        self.restart_at: float | None = None
        self.backoff = FIRST_BACKOFF


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


def run_supervisor(config_path: Path | None, *, drain: str, log_format: str, log_file: str | None,
                   workers: int) -> int:
    try:
        parse_duration(drain)
    except ValueError as exc:
        say(f"--drain: {exc}")
        return EXIT_CONFIG
    if config_path is None:
        say("--workers needs a config file (-c FILE); the built-in demo runs one engine")
        return EXIT_CONFIG
    config = _validate(config_path)
    if config is None:
        return EXIT_CONFIG
    if log_file:
        try:
            open(log_file, "a").close()
        except OSError as exc:
            say(f"cannot open the access log {log_file}: {exc.strerror or exc}")
            return EXIT_RUNTIME
    try:
        pinned, held = _reserve(config)
    except OSError as exc:
        say(str(exc.strerror))
        return EXIT_RUNTIME
    try:
        return Supervisor(config_path, drain, log_format, log_file, workers, pinned).run()
    finally:
        for sock in held:
            sock.close()


class Supervisor:
    def __init__(self, config_path: Path, drain: str, log_format: str, log_file: str | None, count: int,
                 pinned: dict[str, str]) -> None:
        self.command = [sys.executable, "-m", "sniui", "--headless", "-c", str(config_path), "--drain", drain,
                        "--log-format", log_format, *(["--log-file", log_file] if log_file else [])]
        self.env = dict(os.environ, **{PORTS_ENV: json.dumps(pinned), SUPERVISOR_ENV: str(os.getpid())})
        self.workers = [Worker(i) for i in range(count)]
        self.signals: list[int] = []
        self.stopping = False
        self.failed_stop = False
        self.restarts: deque[float] = deque()

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)
        say(f"supervisor {os.getpid()}: starting {len(self.workers)} workers "
            "(each a full engine; limits apply per worker)")
        for worker in self.workers:
            self._start(worker)
        while True:
            self._handle_signals()
            now = time.monotonic()
            for worker in self.workers:
                self._reap(worker, now)
            if self.stopping:
                if all(worker.process is None for worker in self.workers):
                    say("all workers stopped")
                    return EXIT_RUNTIME if self.failed_stop else EXIT_OK
            else:
                code = self._restart_due(now)
                if code is not None:
                    return code
            time.sleep(TICK)

    def _start(self, worker: Worker) -> None:
        # The worker starts with these signals blocked (the mask survives exec) and unblocks them
        # once its handlers are in: a SIGHUP forwarded while it starts waits instead of killing it.
        old = signal.pthread_sigmask(signal.SIG_BLOCK, WORKER_SIGNALS)
        try:
            worker.process = subprocess.Popen([*self.command, "--worker-index", str(worker.index)], env=self.env,
                                              stdin=subprocess.DEVNULL, process_group=0)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        worker.started = time.monotonic()
        worker.restart_at = None

    def _handle_signals(self) -> None:
        while self.signals:
            signum = self.signals.pop(0)
            if signum == signal.SIGHUP:
                say(f"SIGHUP: each of the {len(self.workers)} workers reloads")
            elif not self.stopping:
                self.stopping = True
                say(f"{signal.Signals(signum).name}: stopping the workers")
            for worker in self.workers:
                if worker.process is not None and worker.process.poll() is None:
                    try:
                        worker.process.send_signal(signum)
                    except ProcessLookupError:
                        pass

    def _reap(self, worker: Worker, now: float) -> None:
        if worker.process is None:
            return
        code = worker.process.poll()
        if code is None:
            return
        pid = worker.process.pid
        worker.process = None
        if self.stopping:
            if code != 0:
                self.failed_stop = True
                say(f"worker {worker.index} (pid {pid}) stopped with {_describe_exit(code)}")
            return
        if now - worker.started >= HEALTHY_AFTER:
            worker.backoff = FIRST_BACKOFF
        say(f"worker {worker.index} (pid {pid}) died unexpectedly ({_describe_exit(code)}); "
            f"restarting it in {worker.backoff:g}s")
        worker.restart_at = now + worker.backoff
        worker.backoff = min(worker.backoff * 2, MAX_BACKOFF)

    def _restart_due(self, now: float) -> int | None:
        while self.restarts and now - self.restarts[0] > 60.0:
            self.restarts.popleft()
        for worker in self.workers:
            if worker.process is not None or worker.restart_at is None or worker.restart_at > now:
                continue
            if len(self.restarts) >= RESTARTS_PER_MINUTE:
                if all(w.process is None for w in self.workers):
                    say(f"no worker running and {RESTARTS_PER_MINUTE} restarts in the last minute: giving up")
                    return EXIT_RUNTIME
                wait = 60.0 - (now - self.restarts[0])
                worker.restart_at = now + wait
                say(f"{RESTARTS_PER_MINUTE} restarts in the last minute: worker {worker.index} waits {wait:.0f}s")
                continue
            self.restarts.append(now)
            self._start(worker)
            say(f"worker {worker.index} restarted (pid {worker.process.pid})")   # type: ignore[union-attr]
        return None
