"""Micro-benchmark: sniui's CPU per relayed connection, without TLS on either end.

The expensive parts of a TLS benchmark (handshakes in the client and the
origin) are left out, so the number is the router's own cost per connection:
accept, read and parse the ClientHello, route, connect upstream, forward the
hello, relay a small answer, see both EOFs, close, log.

Three processes on loopback: a raw upstream that answers every connection with
a few bytes and closes, the sniui headless daemon in front of it, and a client
that opens connections (a fixed number in flight), sends a real ClientHello,
reads to EOF and closes. Reported: connections/s and the daemon's CPU
(user+sys from /proc) per connection, plus the client's and the upstream's CPU
per connection as the reference cost of the same socket work in plain asyncio.

    python bench/conn_cost.py [--connections 20000] [--concurrency 32] [--loop asyncio|uvloop] [--profile out.txt]

`--profile FILE` records the daemon with py-spy (raw format, for aggregating).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

SNI = "bench.example.com"
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n"


def client_hello(sni: str) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2", "http/1.1"])
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- roles (each runs in its own process) ------------------------------------------------------


class _Answer(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(ANSWER)   # type: ignore[attr-defined]
        self.transport.close()


async def run_upstream(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Answer, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    server.close()


class _Client(asyncio.Protocol):
    __slots__ = ("hello", "done", "received", "transport")

    def __init__(self, hello: bytes, done: asyncio.Future) -> None:
        self.hello = hello
        self.done = done
        self.received = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.hello)   # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.received += len(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(self.received)


async def run_client(port: int, total: int, concurrency: int, out: Path) -> None:
    loop = asyncio.get_running_loop()
    hello = client_hello(SNI)
    failures = 0
    short = 0
    started = time.monotonic()
    remaining = total

    async def worker() -> None:
        nonlocal remaining, failures, short
        while remaining > 0:
            remaining -= 1
            done = loop.create_future()
            try:
                await loop.create_connection(lambda: _Client(hello, done), "127.0.0.1", port)
                got = await asyncio.wait_for(done, 10)
                if got != len(ANSWER):
                    short += 1
            except (OSError, asyncio.TimeoutError):
                failures += 1

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    out.write_text(json.dumps({"elapsed": elapsed, "failures": failures, "short": short}))


def role_main(argv: list[str]) -> int:
    role, port = argv[0], int(argv[1])
    loop_name = os.environ.get("BENCH_LOOP", "asyncio")
    if loop_name == "uvloop":
        import uvloop
        uvloop.install()
    if role == "upstream":
        asyncio.run(run_upstream(port))
    else:
        asyncio.run(run_client(port, int(argv[2]), int(argv[3]), Path(argv[4])))
    return 0


# -- the driver ----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def wait_listening(port: int, process: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"process exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listening on {port} after {timeout}s")


def measure(args: argparse.Namespace, work: Path) -> dict:
    upstream_port, router_port = free_port(), free_port()
    env = dict(os.environ, BENCH_LOOP=args.client_loop)
    upstream = subprocess.Popen([sys.executable, __file__, "--role", "upstream", str(upstream_port)], env=env)
    conf = work / "sniui.yaml"
    conf.write_text(f"""
listen: [{{address: "127.0.0.1:{router_port}"}}]
timeouts: {{idle: 10m, client_hello: 30s}}
routes: [{{sni: {SNI}, upstream: "127.0.0.1:{upstream_port}"}}]
limits: {{max_connections: 9900, max_connections_per_client: 9900}}
""")
    router_env = dict(os.environ, SNIUI_LOOP=args.loop)
    if args.tui:
        from compare import start_on_pty   # the same pseudo-terminal the comparison's TUI row runs on

        router = start_on_pty([sys.executable, "-m", "sniui", "-c", str(conf)])
    else:
        router = subprocess.Popen([sys.executable, "-m", "sniui", "--headless", "-c", str(conf),
                                   "--log-file", str(work / "access.log")],
                                  stdout=subprocess.DEVNULL, stderr=open(work / "sniui.log", "w"), env=router_env)
    profiler = None
    try:
        wait_listening(upstream_port, upstream)
        wait_listening(router_port, router)
        # Warm up (imports, first-connection paths), then measure.
        subprocess.run([sys.executable, __file__, "--role", "client", str(router_port), "500", str(args.concurrency),
                        str(work / "warm.json")], env=env, check=True, timeout=120)
        if args.profile:
            if shutil.which("py-spy") is None:
                raise SystemExit("--profile needs py-spy")
            profiler = subprocess.Popen(["py-spy", "record", "-f", "raw", "-r", "250", "-o", args.profile, "-p",
                                         str(router.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        router_cpu, upstream_cpu = cpu_seconds(router.pid), cpu_seconds(upstream.pid)
        client = subprocess.Popen([sys.executable, __file__, "--role", "client", str(router_port),
                                   str(args.connections), str(args.concurrency), str(work / "run.json")], env=env)
        client_process = psutil.Process(client.pid)
        client_cpu = 0.0
        while client.poll() is None:
            try:
                client_cpu = cpu_seconds(client.pid)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.05)
        del client_process
        router_cpu = cpu_seconds(router.pid) - router_cpu
        upstream_cpu = cpu_seconds(upstream.pid) - upstream_cpu
        run = json.loads((work / "run.json").read_text())
    finally:
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=30)
        for process in (router, upstream):
            process.send_signal(signal.SIGTERM)
        for process in (router, upstream):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
    n = args.connections
    return {
        "loop": "asyncio (TUI)" if args.tui else args.loop,
        "connections": n,
        "concurrency": args.concurrency,
        "conn_per_s": n / run["elapsed"],
        "router_cpu_us_per_conn": router_cpu / n * 1e6,
        "upstream_cpu_us_per_conn": upstream_cpu / n * 1e6,
        "client_cpu_us_per_conn": client_cpu / n * 1e6,
        "failures": run["failures"],
        "short_answers": run["short"],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--role"]:
        return role_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"], help="the router's event loop")
    parser.add_argument("--client-loop", default="uvloop" if _has_uvloop() else "asyncio",
                        help="event loop of the client and upstream processes")
    parser.add_argument("--tui", action="store_true",
                        help="run sniui with the TUI open on a pseudo-terminal (its loop is Textual's asyncio loop)")
    parser.add_argument("--profile", metavar="FILE", help="py-spy raw profile of the router during the run")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sniui-conn-cost-") as tmp:
        result = measure(args, Path(tmp))
    for key, value in result.items():
        print(f"{key:<26} {value:,.1f}" if isinstance(value, float) else f"{key:<26} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    raise SystemExit(main())
