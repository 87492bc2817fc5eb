"""Compare sniui with nginx stream and HAProxy as SNI routers on this machine.

Every row routes the same TLS traffic by SNI to the same origin (nginx serving
HTTPS on loopback), in passthrough mode, one worker each:

    direct        curl/wrk straight to the origin (the ceiling)
    nginx         nginx stream, ssl_preread + map
    haproxy       HAProxy mode tcp, req.ssl_sni
    sniui         sniui --headless on asyncio's event loop (SNIUI_LOOP=asyncio)
    sniui-uvloop  sniui --headless on uvloop (the headless default when uvloop is installed)
    sniui-2w      sniui --headless --workers 2 (uvloop; two engine processes on one SO_REUSEPORT port;
                  CPU and RSS are the supervisor's and both workers')
    sniui-tui     sniui with the TUI open (on a 120x40 pseudo-terminal), same engine in-process,
                  on uvloop like the headless default; compared with sniui-uvloop

and, terminating TLS and forwarding plain HTTP to the origin's cleartext port:

    nginx-ssl     nginx stream `listen … ssl`
    haproxy-ssl   HAProxy `bind … ssl crt`
    sniui-ssl     sniui --headless, `mode: terminate`

Every router writes one access-log line per connection to a file, as it would
be run in production (`--access-log off`: nginx and HAProxy log nothing, their
default, and sniui's log goes to /dev/null); the line counts are printed at
the end as evidence.

Measured, interleaving the rows and repeating to report medians:

    bulk MB/s         one curl download of a large file through the row
    CPU s/GB          router CPU seconds (user+sys, /proc) per GB relayed
    conn/s            new TLS connections per second (wrk, Connection: close)
    p50/p99 ms        latency of those requests
    CPU µs/conn       router CPU per new connection during the conn/s run
    keep-alive req/s  requests per second over held connections (wrk)
    KiB/idle conn     router RSS growth per held idle connection (--idle N)

Each held connection costs a router two descriptors (client and upstream);
where RLIMIT_NOFILE's hard limit is 20,000 (as on the shared benchmark
machines) a router cannot hold 10,000, so the default idle counts are 1,000
and 9,000.

Ratios are against nginx stream and against direct, measured in the same run:
the machines are shared and noisy, absolute numbers are not comparable across
runs. Installs nothing; it tells you what is missing. Loopback only; every
loop is bounded in time and count.

    python bench/compare.py [--repeat 3] [--seconds 5] [--big-mib 1024] [--idle 1000,10000] [--rows ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SNI = "localhost"
NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
# One worker and room for 9,900 proxied connections (two descriptors each), like the other rows.
NGINX_STREAM_HEAD = f"""
load_module {NGINX_STREAM_MODULE};
worker_processes 1;
worker_rlimit_nofile 19900;
events {{ worker_connections 19000; }}
stream {{"""
# One line per connection with what sniui's access log records (client, name, upstream, bytes, time, status);
# written unbuffered, nginx's default for access_log.
NGINX_STREAM_LOG = """
    log_format sni '$remote_addr [$time_iso8601] "$ssl_preread_server_name$ssl_server_name" $upstream_addr '
                   '$bytes_received $bytes_sent $session_time $status';
    access_log {path} sni;"""
# HAProxy's tcplog line (client, frontend/backend/server, timers, bytes, termination state) on stdout.
HAPROXY_LOG_GLOBAL = "\n    log stdout format raw local0"
HAPROXY_LOG_DEFAULTS = "\n    log global\n    option tcplog"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def missing_tools() -> list[str]:
    missing = [tool for tool in ("nginx", "haproxy", "wrk", "curl") if shutil.which(tool) is None]
    if shutil.which("nginx") and not Path(NGINX_STREAM_MODULE).exists():
        missing.append("libnginx-mod-stream")
    return missing


def make_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a leaf for `localhost`, written to `directory`."""
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert(SNI, "127.0.0.1")
    cert, key, ca_path = directory / "origin.pem", directory / "origin.key", directory / "ca.pem"
    leaf.private_key_pem.write_to_path(str(key))
    os.chmod(key, 0o600)
    with open(cert, "wb") as out:
        for blob in leaf.cert_chain_pems:
            out.write(blob.bytes())
    ca.cert_pem.write_to_path(str(ca_path))
    return cert, key, ca_path


@dataclass
class Row:
    name: str
    port: int
    process: subprocess.Popen | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, metric: str, value: float | None) -> None:
        if value is not None:
            self.samples.setdefault(metric, []).append(value)

    def median(self, metric: str) -> float | None:
        values = self.samples.get(metric)
        return statistics.median(values) if values else None

    def processes(self) -> list[psutil.Process]:
        if self.process is None:
            return []
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self.processes():
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total

    def rss(self) -> int:
        total = 0
        for proc in self.processes():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path):
        self.args = args
        self.work = work
        self.cert, self.key, self.ca = make_certificate(work)
        self.origin_port = free_port()
        self.plain_port = free_port()   # the origin's cleartext side, behind terminating rows
        self.origin: subprocess.Popen | None = None
        self.rows: list[Row] = []

    # -- processes -----------------------------------------------------------

    def start_origin(self) -> None:
        root = self.work / "www"
        root.mkdir()
        # nginx's workers drop to an unprivileged user: they must be able to read the files.
        os.chmod(self.work, 0o755)
        os.chmod(root, 0o755)
        big = root / "big"
        with open(big, "wb") as out:  # a real file (not sparse) so the origin reads from the page cache
            chunk = os.urandom(1 << 20)
            for _ in range(self.args.big_mib):
                out.write(chunk)
        conf = self.work / "origin.conf"
        conf.write_text(f"""
worker_processes 1;
worker_rlimit_nofile 19900;
events {{ worker_connections 19000; }}
http {{
    access_log off;
    sendfile on;
    keepalive_requests 1000000;
    keepalive_timeout 600s;
    server {{
        listen 127.0.0.1:{self.origin_port} ssl;
        listen 127.0.0.1:{self.plain_port};
        ssl_certificate {self.cert};
        ssl_certificate_key {self.key};
        root {root};
        location = /small {{ return 200 "ok\\n"; }}
    }}
}}
""")
        self.origin = self._nginx(conf, "origin")

    # -- access logs: every router logs each connection to a file, or none does (--access-log off) --

    @property
    def _logging(self) -> bool:
        return self.args.access_log == "file"

    def _nginx_log(self, name: str) -> str:
        return NGINX_STREAM_LOG.format(path=self.work / f"{name}-access.log") if self._logging else ""

    def _haproxy_head(self) -> str:
        """The global and defaults sections both HAProxy rows share: one thread, TCP mode, nginx's timeouts."""
        log_global, log_defaults = (HAPROXY_LOG_GLOBAL, HAPROXY_LOG_DEFAULTS) if self._logging else ("", "")
        return f"""
global
    maxconn 9900
    nbthread 1{log_global}
defaults
    mode tcp{log_defaults}
    timeout connect 5s
    timeout client 600s
    timeout server 600s"""

    def _log_output(self, name: str):
        return open(self.work / f"{name}-access.log", "w") if self._logging else subprocess.DEVNULL

    def _sniui_log(self, name: str) -> str:
        # sniui always writes its access log; "off" sends it where nobody keeps it.
        return str(self.work / f"{name}-access.log") if self._logging else os.devnull

    def _nginx(self, conf: Path, name: str) -> subprocess.Popen:
        prefix = self.work / f"nginx-{name}"
        prefix.mkdir(exist_ok=True)
        (prefix / "logs").mkdir(exist_ok=True)
        process = subprocess.Popen(
            ["nginx", "-p", str(prefix), "-c", str(conf), "-g", f"daemon off; pid {prefix}/nginx.pid; error_log stderr warn;"],
            stdout=subprocess.DEVNULL, stderr=open(prefix / "stderr.log", "w"),
        )
        return process

    def start_rows(self) -> None:
        for name in self.args.rows:
            if name == "direct":
                self.rows.append(Row("direct", self.origin_port))
            elif name == "nginx":
                port = free_port()
                conf = self.work / "nginx-stream.conf"
                conf.write_text(NGINX_STREAM_HEAD + self._nginx_log("nginx") + f"""
    map $ssl_preread_server_name $backend {{
        hostnames;
        {SNI} 127.0.0.1:{self.origin_port};
        default 127.0.0.1:9;
    }}
    server {{
        listen 127.0.0.1:{port};
        ssl_preread on;
        proxy_pass $backend;
        proxy_timeout 600s;
    }}
}}
""")
                self.rows.append(Row("nginx", port, self._nginx(conf, "stream")))
            elif name == "haproxy":
                port = free_port()
                conf = self.work / "haproxy.cfg"
                conf.write_text(self._haproxy_head() + f"""
frontend sni
    bind 127.0.0.1:{port}
    tcp-request inspect-delay 5s
    tcp-request content accept if {{ req.ssl_hello_type 1 }}
    use_backend origin if {{ req.ssl_sni -i {SNI} }}
backend origin
    server origin 127.0.0.1:{self.origin_port}
""")
                process = subprocess.Popen(["haproxy", "-db", "-f", str(conf)], stdout=self._log_output("haproxy"),
                                           stderr=open(self.work / "haproxy.log", "w"))
                self.rows.append(Row("haproxy", port, process))
            elif name in ("sniui", "sniui-uvloop", "sniui-2w"):
                port = free_port()
                conf = self.work / f"{name}.yaml"
                conf.write_text(f"""
listen: [{{address: "127.0.0.1:{port}"}}]
timeouts: {{idle: 10m, client_hello: 30s}}
routes: [{{sni: {SNI}, upstream: "127.0.0.1:{self.origin_port}"}}]
limits: {{max_connections: 9900, max_connections_per_client: 9900}}
""")
                # The headless default is uvloop when it is installed; each row names its loop.
                env = dict(os.environ, SNIUI_LOOP="asyncio" if name == "sniui" else "uvloop")
                command = [sys.executable, "-m", "sniui", "--headless", "-c", str(conf), "--log-file", self._sniui_log(name)]
                if name == "sniui-2w":
                    command += ["--workers", "2"]
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(self.work / f"{name}.log", "w"), env=env)
                self.rows.append(Row(name, port, process))
            elif name == "sniui-tui":
                port = free_port()
                conf = self._sniui_config(name, port, terminate=False)
                self.rows.append(Row(name, port, start_on_pty([sys.executable, "-m", "sniui", "-c", str(conf)])))
            elif name == "nginx-ssl":
                port = free_port()
                conf = self.work / "nginx-ssl.conf"
                conf.write_text(NGINX_STREAM_HEAD + self._nginx_log(name) + f"""
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {self.cert};
        ssl_certificate_key {self.key};
        proxy_pass 127.0.0.1:{self.plain_port};
        proxy_timeout 600s;
    }}
}}
""")
                self.rows.append(Row(name, port, self._nginx(conf, "ssl")))
            elif name == "haproxy-ssl":
                port = free_port()
                combined = self.work / "combined.pem"
                combined.write_bytes(self.cert.read_bytes() + self.key.read_bytes())
                os.chmod(combined, 0o600)
                conf = self.work / "haproxy-ssl.cfg"
                conf.write_text(self._haproxy_head() + f"""
frontend tls
    bind 127.0.0.1:{port} ssl crt {combined}
    default_backend origin
backend origin
    server origin 127.0.0.1:{self.plain_port}
""")
                process = subprocess.Popen(["haproxy", "-db", "-f", str(conf)], stdout=self._log_output("haproxy-ssl"),
                                           stderr=open(self.work / "haproxy-ssl.log", "w"))
                self.rows.append(Row(name, port, process))
            elif name == "sniui-ssl":
                port = free_port()
                conf = self._sniui_config(name, port, terminate=True)
                command = [sys.executable, "-m", "sniui", "--headless", "-c", str(conf), "--log-file", self._sniui_log(name)]
                process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(self.work / f"{name}.log", "w"))
                self.rows.append(Row(name, port, process))
            else:
                raise SystemExit(f"unknown row {name!r}")
        for row in [Row("origin", self.origin_port, self.origin), *self.rows]:
            self.wait_listening(row)

    def _sniui_config(self, name: str, port: int, *, terminate: bool) -> Path:
        conf = self.work / f"{name}.yaml"
        if terminate:
            route = f'{{sni: {SNI}, mode: terminate, certificate: local, upstream: "127.0.0.1:{self.plain_port}"}}'
            certificates = f"certificates: {{local: {{cert: {self.cert}, key: {self.key}}}}}\n"
        else:
            route = f'{{sni: {SNI}, upstream: "127.0.0.1:{self.origin_port}"}}'
            certificates = ""
        conf.write_text(f"""
listen: [{{address: "127.0.0.1:{port}"}}]
timeouts: {{idle: 10m, client_hello: 30s}}
{certificates}routes: [{route}]
limits: {{max_connections: 9900, max_connections_per_client: 9900}}
""")
        return conf

    def wait_listening(self, row: Row, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if row.process is not None and row.process.poll() is not None:
                raise SystemExit(f"{row.name} exited with {row.process.returncode}; see {self.work}")
            try:
                with socket.create_connection(("127.0.0.1", row.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit(f"{row.name} did not listen on {row.port} within {timeout}s")

    def stop(self) -> None:
        for process in [row.process for row in self.rows] + [self.origin]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [row.process for row in self.rows] + [self.origin]:
            if process is not None:
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    # -- measurements --------------------------------------------------------

    def url(self, row: Row, path: str) -> str:
        return f"https://{SNI}:{row.port}{path}"

    def bulk(self, row: Row) -> None:
        cpu = row.cpu_seconds()
        result = subprocess.run(
            ["curl", "-fsS", "--cacert", str(self.ca), "--resolve", f"{SNI}:{row.port}:127.0.0.1", "-o", "/dev/null",
             "--max-time", str(self.args.seconds * 12), "-w", "%{speed_download} %{size_download}", self.url(row, "/big")],
            capture_output=True, text=True, timeout=self.args.seconds * 12 + 10,
        )
        cpu = row.cpu_seconds() - cpu
        if result.returncode != 0:
            print(f"  {row.name}: curl failed: {result.stderr.strip()}", file=sys.stderr)
            return
        speed, size = (float(x) for x in result.stdout.split())
        row.add("bulk_MBps", speed / 1e6)
        if row.process is not None and size:
            row.add("cpu_s_per_GB", cpu / (size / 1e9))

    def wrk(self, row: Row, close: bool) -> dict[str, float] | None:
        cpu = row.cpu_seconds()
        command = ["wrk", "-t", "1", "-c", str(self.args.wrk_connections), "-d", f"{self.args.seconds}s", "--latency",
                   "--timeout", "5s"]
        if close:
            command += ["-H", "Connection: close"]
        result = subprocess.run(command + [self.url(row, "/small")], capture_output=True, text=True,
                                timeout=self.args.seconds + 30)
        cpu = row.cpu_seconds() - cpu
        if result.returncode != 0:
            print(f"  {row.name}: wrk failed: {result.stderr.strip()}", file=sys.stderr)
            return None
        out = result.stdout
        requests = int(re.search(r"(\d+) requests in", out).group(1))
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        return {
            "rate": rate, "requests": requests, "cpu": cpu,
            "p50": _latency_ms(out, "50%"), "p99": _latency_ms(out, "99%"),
            "errors": sum(int(x) for x in errors.groups()) if errors else 0,
            "non2xx": int(non2xx.group(1)) if non2xx else 0,
        }

    def connections(self, row: Row) -> None:
        measured = self.wrk(row, close=True)
        if measured is None:
            return
        row.add("conn_per_s", measured["rate"])
        row.add("p50_ms", measured["p50"])
        row.add("p99_ms", measured["p99"])
        row.add("wrk_errors", measured["errors"] + measured["non2xx"])
        if row.process is not None and measured["requests"]:
            row.add("cpu_us_per_conn", measured["cpu"] / measured["requests"] * 1e6)

    def keepalive(self, row: Row) -> None:
        measured = self.wrk(row, close=False)
        if measured is not None:
            row.add("keepalive_rps", measured["rate"])

    def idle(self, row: Row, count: int) -> None:
        if row.process is None:
            return
        before = row.rss()
        after, held, failed = asyncio.run(hold_and_measure(row, self.ca, count, timeout=max(60.0, count / 100)))
        if failed:
            print(f"  {row.name}: {failed} of {count} idle connections failed", file=sys.stderr)
        if held:
            row.add(f"KiB_per_idle_conn@{count}", (after - before) / held / 1024)
            row.add(f"idle_failed@{count}", failed)
        time.sleep(1.0)  # let the routers close their upstream sides before the next row


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def start_on_pty(command: list[str], rows: int = 40, columns: int = 120) -> subprocess.Popen:
    """Run a full-screen program on a pseudo-terminal of the given size, draining what it draws."""
    import fcntl
    import struct
    import termios
    import threading

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(columns), LINES=str(rows))
    process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)

    def drain() -> None:
        # A terminal that nobody reads would block the app's writes, and so its event loop.
        while True:
            try:
                if not os.read(master, 1 << 16):
                    break
            except OSError:
                break
        os.close(master)

    threading.Thread(target=drain, daemon=True).start()
    return process


def _latency_ms(output: str, percentile: str) -> float | None:
    m = re.search(rf"^\s+{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if not m:
        return None
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


async def hold_and_measure(row: Row, ca: Path, count: int, timeout: float) -> tuple[int, int, int]:
    """Open `count` TLS connections through the router (handshake completed), read its RSS while they
    are held, then close them. Returns (rss, held, failed)."""
    context = ssl.create_default_context(cafile=str(ca))
    semaphore = asyncio.Semaphore(64)
    held: list[asyncio.StreamWriter] = []
    failed = 0

    async def one() -> None:
        nonlocal failed
        async with semaphore:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", row.port, ssl=context, server_hostname=SNI), 10)
                held.append(writer)
            except (OSError, asyncio.TimeoutError, ssl.SSLError):
                failed += 1

    try:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout)
    except asyncio.TimeoutError:
        failed = count - len(held)
    await asyncio.sleep(0.5)  # let the router settle its buffers before reading its RSS
    rss = row.rss()
    for writer in held:
        writer.transport.abort()
    await asyncio.sleep(0)
    return rss, len(held), failed


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(soft, needed), hard) if hard != resource.RLIM_INFINITY else max(soft, needed)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):
        pass


METRICS = [
    ("bulk_MBps", "bulk MB/s", True),
    ("cpu_s_per_GB", "CPU s/GB", False),
    ("conn_per_s", "conn/s", True),
    ("p50_ms", "p50 ms", False),
    ("p99_ms", "p99 ms", False),
    ("cpu_us_per_conn", "CPU µs/conn", False),
    ("keepalive_rps", "keep-alive req/s", True),
]


def report(bench: Bench, args: argparse.Namespace) -> dict:
    metrics = list(METRICS)
    for count in args.idle:
        metrics.append((f"KiB_per_idle_conn@{count}", f"KiB/idle conn @{count}", False))
    reference = {row.name: row for row in bench.rows}
    # Passthrough rows against nginx stream and direct; terminating rows against nginx stream `ssl`;
    # the TUI row against the same engine headless on the same loop (uvloop, both defaults).
    bases = [reference.get(name) for name in ("nginx", "direct", "nginx-ssl", "sniui-uvloop")]
    width = max(len(label) for _, label, _ in metrics) + 2
    header = f"{'':<{width}}" + "".join(f"{row.name:>14}" for row in bench.rows)
    print()
    print(header)
    for key, label, _ in metrics:
        line = f"{label:<{width}}"
        for row in bench.rows:
            value = row.median(key)
            line += f"{_fmt(value):>14}"
        print(line)
    for base in bases:
        if base is None:
            continue
        print(f"\nratio to {base.name}")
        for key, label, _ in metrics:
            base_value = base.median(key)
            if not base_value:
                continue
            line = f"{label:<{width}}"
            for row in bench.rows:
                value = row.median(key)
                line += f"{(_fmt(value / base_value, 2) + '×') if value is not None else '—':>14}"
            print(line)
    return {
        "when": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "kernel": platform.release(),
                    "memory_GiB": round(psutil.virtual_memory().total / 2**30, 1)},
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "rows": {row.name: {key: {"median": row.median(key), "samples": values}
                            for key, values in row.samples.items()} for row in bench.rows},
    }


def _fmt(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return "—"
    if digits is not None:
        return f"{value:.{digits}f}"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--access-log", choices=("file", "off"), default="file",
                        help="file: every router writes one access-log line per connection to a file, as it would "
                             "be run in production (default); off: nginx and HAProxy log nothing (their default) "
                             "and sniui writes its log to /dev/null")
    parser.add_argument("--rows", default="direct,nginx,haproxy,sniui,sniui-uvloop,sniui-tui,nginx-ssl,haproxy-ssl,sniui-ssl",
                        type=lambda s: [x.strip() for x in s.split(",") if x.strip()])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--wrk-connections", type=int, default=32)
    parser.add_argument("--big-mib", type=int, default=1024, help="size of the bulk download")
    parser.add_argument("--idle", default="1000,9000", type=lambda s: [int(x) for x in s.split(",") if x])
    parser.add_argument("--json", metavar="FILE", help="write the results here (default bench/results/compare-<time>.json)")
    args = parser.parse_args(argv)

    missing = missing_tools()
    if missing:
        print("bench/compare.py needs: " + ", ".join(missing), file=sys.stderr)
        print("install with: apt-get install -y nginx libnginx-mod-stream haproxy wrk curl", file=sys.stderr)
        return 2
    raise_fd_limit(max(args.idle, default=0) * 3 + 1000)

    with tempfile.TemporaryDirectory(prefix="sniui-bench-") as tmp:
        bench = Bench(args, Path(tmp))
        try:
            bench.start_origin()
            bench.start_rows()
            print(f"origin 127.0.0.1:{bench.origin_port}; rows: " + ", ".join(f"{r.name}=:{r.port}" for r in bench.rows))
            for round_ in range(args.repeat):
                print(f"round {round_ + 1}/{args.repeat}")
                # Interleave the rows within each round so drift in machine load hits all of them alike.
                for row in bench.rows:
                    bench.bulk(row)
                for row in bench.rows:
                    bench.connections(row)
                for row in bench.rows:
                    bench.keepalive(row)
            for count in args.idle:
                for row in bench.rows:
                    bench.idle(row, count)
            result = report(bench, args)
            if args.access_log == "file":   # evidence that every router logged alike
                time.sleep(0.5)
                counts = {row.name: _count_lines(bench.work / f"{row.name}-access.log") for row in bench.rows
                          if (bench.work / f"{row.name}-access.log").exists()}
                print("access-log lines written: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()))
        finally:
            bench.stop()
    out = Path(args.json) if args.json else Path(__file__).parent / "results" / f"compare-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
