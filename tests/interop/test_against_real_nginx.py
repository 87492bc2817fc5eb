"""Differential test: the exported configs run in real nginx and HAProxy pick the same upstream as sniui.

One config holding every kind of route is exported to nginx and HAProxy; both
are checked (`nginx -t`, `haproxy -c`), started on loopback, and sent real TLS
ClientHellos. Every upstream is a small TLS server that answers with its own
name (the terminating route's upstream is plain TCP and does the same), so the
answer a client reads says which upstream the router chose. The rows compared:
sniui's RouteTable decision, the live sniui engine, nginx and HAProxy.

Templates render to 127.0.0.1 ports and to group names: a real peer cannot
reach made-up host names, and these are also the shapes HAProxy can render.

Needs: apt-get install -y nginx libnginx-mod-stream haproxy
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
import subprocess
import threading
import time
from contextlib import ExitStack, closing, contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
import trustme

from sniui.config import load_text
from sniui.interop.haproxy_export import export_haproxy
from sniui.interop.nginx_export import export_nginx
from sniui.routing import RouteTable
from tests.interop.route_kinds import PROBES, UPSTREAMS, every_kind_config

pytestmark = pytest.mark.peers

APT_LINE = "apt-get install -y nginx libnginx-mod-stream haproxy"
STREAM_MODULE = Path("/usr/lib/nginx/modules/ngx_stream_module.so")
DEADLINE = 10.0
REJECT = "reject"


# --- finding the peers ------------------------------------------------------------------


def nginx_stream_load_line() -> str | None:
    """The `load_module` line nginx needs for `stream {}` ("" when built in), None when unavailable."""
    if shutil.which("nginx") is None:
        return None
    if STREAM_MODULE.exists():
        return f"load_module {STREAM_MODULE};"
    version = subprocess.run(["nginx", "-V"], capture_output=True, text=True, timeout=DEADLINE).stderr
    if "--with-stream " in version + " " and "--with-stream=dynamic" not in version:
        return ""
    return None


def require_peers() -> str:
    load_line = nginx_stream_load_line()
    if load_line is None:
        pytest.skip(f"nginx with the stream module is not installed: {APT_LINE}")
    if shutil.which("haproxy") is None:
        pytest.skip(f"haproxy is not installed: {APT_LINE}")
    return load_line


def free_ports(count: int) -> list[int]:
    # Port 0 cannot be written into nginx's or HAProxy's config: ask the kernel for free
    # ports, then release them. All sockets stay open until every port is chosen, so the
    # ports differ from each other.
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# --- upstreams that say who they are ------------------------------------------------------


class NamedUpstream:
    """A loopback server that answers every connection with its identity, over TLS or plain TCP."""

    def __init__(self, identity: str, context: ssl.SSLContext | None):
        self.identity = identity
        self.context = context
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept_loop, name=f"upstream-{identity}", daemon=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "NamedUpstream":
        self.thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(DEADLINE)
        try:
            if self.context is not None:
                connection = self.context.wrap_socket(connection, server_side=True)
            connection.sendall(self.identity.encode())
        except (OSError, ssl.SSLError):
            pass   # health checks and rejected clients hang up early
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        self.thread.join(DEADLINE)


def ask(port: int, name: str | None) -> str:
    """Send a real ClientHello for `name` and return the identity that answers, or "reject"."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE   # we ask who answers, not whether we trust it
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                for _ in range(16):
                    chunk = tls.recv(256)
                    if not chunk:
                        break
                    received += chunk
    except (OSError, ssl.SSLError):
        pass
    return received.decode() or REJECT


def wait_for_port(port: int, process: subprocess.Popen | None, log: Path) -> None:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} before listening:\n{log.read_text()}")
        try:
            with closing(socket.create_connection(("127.0.0.1", port), timeout=0.5)):
                return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {DEADLINE}s:\n{log.read_text()}")


@contextmanager
def running(command: list[str], log: Path, port: int) -> Iterator[subprocess.Popen]:
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        wait_for_port(port, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(DEADLINE)


def check(command: list[str], what: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=DEADLINE * 3)
    assert result.returncode == 0, f"{what} refused the exported config:\n{result.stdout}{result.stderr}"


# --- the live sniui engine -------------------------------------------------------------------


@contextmanager
def live_engine(config_text: str, base_dir: Path) -> Iterator[int]:
    """The real engine in a thread of its own; yields its port."""
    from sniui.engine.engine import Engine

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="sniui-engine", daemon=True)
    thread.start()
    engine = None

    async def start():
        started = Engine(load_text(config_text, base_dir=base_dir).config)
        await started.start()
        return started

    try:
        engine = asyncio.run_coroutine_threadsafe(start(), loop).result(DEADLINE)
        yield engine.bound_addresses[0][1]
    finally:
        if engine is not None:
            asyncio.run_coroutine_threadsafe(engine.stop(), loop).result(DEADLINE)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(DEADLINE)
        loop.close()


# --- the peers, started once for every probe ----------------------------------------------------


@pytest.fixture(scope="module")
def routers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Callable[[str | None], str]]]:
    load_line = require_peers()
    workdir = tmp_path_factory.mktemp("peers")
    ca = trustme.CA()
    certificate = ca.issue_cert("secure.test", "*.test", "upstream.test")
    combined = workdir / "secure.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(combined))
    upstream_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    certificate.configure_cert(upstream_context)

    with ExitStack() as stack:
        upstreams: dict[str, list[NamedUpstream]] = {}
        for identity in UPSTREAMS:
            count = 2 if identity == "pool" else 1
            context = None if identity == "terminated" else upstream_context
            upstreams[identity] = [NamedUpstream(identity, context).start() for _ in range(count)]
            for upstream in upstreams[identity]:
                stack.callback(upstream.stop)
        addresses = {identity: ",".join(u.address for u in group) for identity, group in upstreams.items()}
        tmpl_port = upstreams["tmpl"][0].port
        nginx_port, nginx_inner, haproxy_port, haproxy_inner = free_ports(4)

        def config_text(listen: str) -> str:
            return every_kind_config(addresses, listen=listen, tmpl_port=tmpl_port, certificate=str(combined))

        reference = load_text(config_text("127.0.0.1:0"), base_dir=workdir).config
        table = RouteTable(reference)
        identity_of = {address: identity for identity, address in addresses.items()}

        def sniui_decision(name: str | None) -> str:
            decision = table.match(name)
            return REJECT if decision.action == "reject" else identity_of.get(decision.upstream, decision.upstream)

        nginx_config = load_text(config_text(f"127.0.0.1:{nginx_port}"), base_dir=workdir).config
        stream_conf = workdir / "stream.conf"
        stream_conf.write_text(export_nginx(nginx_config, internal_port_base=nginx_inner).text)
        nginx_conf = workdir / "nginx.conf"
        nginx_conf.write_text(f"{load_line}\nworker_processes 1;\nevents {{ worker_connections 256; }}\ninclude {stream_conf};\n")
        nginx_globals = f"daemon off; pid {workdir}/nginx.pid; error_log stderr;"
        nginx_command = ["nginx", "-p", str(workdir), "-c", str(nginx_conf), "-g", nginx_globals]
        check([*nginx_command[:1], "-t", *nginx_command[1:]], "nginx -t")

        haproxy_config = load_text(config_text(f"127.0.0.1:{haproxy_port}"), base_dir=workdir).config
        haproxy_cfg = workdir / "haproxy.cfg"
        haproxy_cfg.write_text(export_haproxy(haproxy_config, internal_port_base=haproxy_inner).text)
        check(["haproxy", "-c", "-f", str(haproxy_cfg)], "haproxy -c")

        stack.enter_context(running(nginx_command, workdir / "nginx.log", nginx_port))
        stack.enter_context(running(["haproxy", "-db", "-f", str(haproxy_cfg)], workdir / "haproxy.log", haproxy_port))
        engine_port = stack.enter_context(live_engine(config_text("127.0.0.1:0"), workdir))

        yield {
            "sniui": sniui_decision,
            "engine": lambda name: ask(engine_port, name),
            "nginx": lambda name: ask(nginx_port, name),
            "haproxy": lambda name: ask(haproxy_port, name),
            "_tmpl_port": lambda name: str(tmpl_port),   # type: ignore[dict-item]
        }


CASES = [(name, identity, kind) for name, identity, kind in PROBES] + [
    ("EXACT.test", "exact", "exact, upper case"),
    ("exact.test.", "exact", "exact, trailing dot"),
    ("{tmpl}", "tmpl", "regex template → 127.0.0.1:$port"),
]


@pytest.mark.parametrize("name, identity, kind", CASES, ids=[kind for _, _, kind in CASES])
def test_nginx_haproxy_and_sniui_pick_the_same_upstream(routers, name, identity, kind):
    if name == "{tmpl}":
        name = f"port-{routers['_tmpl_port'](None)}.tmpl.test"
    sniui = routers["sniui"](name)
    assert sniui == identity, f"sniui's route table sends {name!r} to {sniui}, the test expects {identity}"
    answers = {row: routers[row](name) for row in ("nginx", "haproxy")}
    expected = {"nginx": sniui, "haproxy": sniui}
    assert answers == expected, f"{name!r} ({kind})"
    engine = routers["engine"](name)
    assert engine == sniui, f"the live engine sends {name!r} ({kind}) to {engine}"
