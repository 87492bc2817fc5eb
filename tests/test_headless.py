"""`sniui --headless` as a real process: listener lines, JSON access log, SIGHUP reload, SIGTERM drain, demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.engine.conftest import (DEADLINE, TlsUpstream, ca, ca_file, client_context,  # noqa: F401
                                   dns_server, make_client_hello, tls_exchange, tls_upstream, upstream_context)

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


class DaemonProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr_lines: list[str] = []

    async def wait_for_stderr(self, pattern: str, timeout: float = DEADLINE) -> re.Match[str]:
        regex = re.compile(pattern)
        for line in self.stderr_lines:
            if m := regex.search(line):
                return m
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.process.stderr.readline()
                if not raw:
                    raise AssertionError(f"daemon exited before {pattern!r}; stderr: {self.stderr_lines}")
                line = raw.decode()
                self.stderr_lines.append(line)
                if m := regex.search(line):
                    return m

    async def access_line(self) -> dict:
        async with asyncio.timeout(DEADLINE):
            raw = await self.process.stdout.readline()
        assert raw, "no access-log line"
        return json.loads(raw)

    async def port(self) -> int:
        return int((await self.wait_for_stderr(LISTENING.pattern)).group(1))


@contextlib.asynccontextmanager
async def daemon(*args: str):
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sniui", "--headless", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=Path(__file__).parent.parent)
    handle = DaemonProcess(process)
    try:
        yield handle
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def write_config(path: Path, upstream: str, sni: str = "shop.example.com") -> None:
    path.write_text(f"""
listen:
  - address: "127.0.0.1:0"
routes:
  - name: shop
    sni: {sni}
    upstream: "{upstream}"
""")


async def test_daemon_logs_reloads_and_drains(tmp_path, tls_upstream, client_context):
    one, two = await tls_upstream("one"), await tls_upstream("two")
    config = tmp_path / "sniui.yaml"
    write_config(config, one.address)
    async with daemon("-c", str(config), "--drain", "10s") as d:
        port = await d.port()
        assert await tls_exchange(port, "shop.example.com", client_context) == "upstream=one sni=shop.example.com"
        record = await d.access_line()
        assert record["sni"] == "shop.example.com" and record["route"] == "shop"
        assert record["upstream_address"] == one.address and record["client"].startswith("127.0.0.1:")
        assert record["bytes_in"] > 0 and record["bytes_out"] > 0
        assert record["close_reason"] in ("client closed", "upstream closed")
        assert {"time", "listener", "alpn", "upstream", "duration_ms"} <= set(record)

        write_config(config, two.address)
        d.process.send_signal(signal.SIGHUP)
        await d.wait_for_stderr(r"reloaded .*generation 2")
        assert await tls_exchange(port, "shop.example.com", client_context) == "upstream=two sni=shop.example.com"
        await d.access_line()

        config.write_text("routes: [{sni: x, upstream: nowhere}]\n")
        d.process.send_signal(signal.SIGHUP)
        await d.wait_for_stderr(r"reload refused")
        assert any("unknown upstream group 'nowhere'" in line for line in d.stderr_lines)
        assert await tls_exchange(port, "shop.example.com", client_context) == "upstream=two sni=shop.example.com"
        await d.access_line()

        # Drain: an established transfer finishes, new connections are refused, exit 0.
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context,
                                                       server_hostname="shop.example.com")
        writer.write(b"first\n")
        assert (await reader.readline()).startswith(b"upstream=two")
        d.process.send_signal(signal.SIGTERM)
        await d.wait_for_stderr(r"stopping")
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"second\n")
        assert await reader.readexactly(len(b"first\nsecond\n")) == b"first\nsecond\n"
        writer.close()
        async with asyncio.timeout(DEADLINE):
            assert await d.process.wait() == 0
        record = await d.access_line()
        assert record["bytes_in"] > 0


async def test_daemon_refuses_a_bad_config_with_file_and_line(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("listen:\n  - address: \"127.0.0.1:0\"\nroutes:\n  - sni: a.example.com\n    upstrem: x:1\n")
    async with daemon("-c", str(config)) as d:
        async with asyncio.timeout(DEADLINE):
            code = await d.process.wait()
        err = (await d.process.stderr.read()).decode()
        assert code == 2
        assert f"{config}:5" in err and "upstrem" in err


async def test_daemon_names_the_address_in_use(tmp_path):
    import socket

    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(1)
        port = blocker.getsockname()[1]
        config = tmp_path / "c.yaml"
        config.write_text(f'listen:\n  - address: "127.0.0.1:{port}"\n')
        async with daemon("-c", str(config)) as d:
            async with asyncio.timeout(DEADLINE):
                code = await d.process.wait()
            err = (await d.process.stderr.read()).decode()
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}: address in use" in err


async def test_demo_serves_its_own_routes(tmp_path):
    async with daemon("--demo", "--log-format", "text") as d:
        port = await d.port()
        cacert = (await d.wait_for_stderr(r"--cacert (\S+)")).group(1)
        await d.wait_for_stderr(r"openssl s_client")
        context = ssl.create_default_context(cafile=cacert)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context,
                                                       server_hostname="shop.demo.localhost")
        writer.write(b"GET / HTTP/1.1\r\nHost: shop.demo.localhost\r\nConnection: close\r\n\r\n")
        async with asyncio.timeout(DEADLINE):
            body = await reader.read()
        assert b"shop-" in body
        writer.close()
        line = (await asyncio.wait_for(d.process.stdout.readline(), DEADLINE)).decode()
        assert '"shop.demo.localhost" route=shop' in line
        d.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE):
            assert await d.process.wait() == 0


def test_headless_modules_do_not_import_textual():
    code = ("import sys, sniui.headless.daemon, sniui.engine.engine, sniui.cli; "
            "assert 'textual' not in sys.modules, 'textual imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_second_stop_signal_ends_the_drain_at_once(tmp_path, tls_upstream, client_context):
    one = await tls_upstream("one")
    config = tmp_path / "sniui.yaml"
    write_config(config, one.address)
    async with daemon("-c", str(config), "--drain", "60s") as d:
        port = await d.port()
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context,
                                                       server_hostname="shop.example.com")
        writer.write(b"x\n")
        await reader.readline()
        d.process.send_signal(signal.SIGTERM)
        await d.wait_for_stderr(r"stopping")
        d.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE):
            assert await d.process.wait() == 0
        record = await d.access_line()
        assert record["close_reason"] == "shutdown"
        writer.close()


async def test_log_file_is_reopened_on_sighup(tmp_path, tls_upstream, client_context):
    one = await tls_upstream("one")
    config = tmp_path / "sniui.yaml"
    write_config(config, one.address)
    log = tmp_path / "access.log"
    async with daemon("-c", str(config), "--log-file", str(log)) as d:
        port = await d.port()
        await tls_exchange(port, "shop.example.com", client_context)
        await wait_for_file_lines(log, 1)
        log.rename(tmp_path / "access.log.1")          # what logrotate does
        d.process.send_signal(signal.SIGHUP)
        await d.wait_for_stderr(r"reloaded")
        await tls_exchange(port, "shop.example.com", client_context)
        await wait_for_file_lines(log, 1)
        assert json.loads(log.read_text())["sni"] == "shop.example.com"
        assert len((tmp_path / "access.log.1").read_text().splitlines()) == 1
        d.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(DEADLINE):
            assert await d.process.wait() == 0
        assert await d.process.stdout.read() == b""   # the access log went to the file only


async def wait_for_file_lines(path: Path, count: int) -> None:
    async with asyncio.timeout(DEADLINE):
        while not (path.exists() and len(path.read_text().splitlines()) >= count):
            await asyncio.sleep(0.02)


async def test_resolve_failure_is_logged_naming_the_host(tmp_path, dns_server):
    _, nameserver = await dns_server({})
    config = tmp_path / "sniui.yaml"
    config.write_text(f"""
listen:
  - address: "127.0.0.1:0"
resolver:
  nameservers: ["{nameserver}"]
routes:
  - sni: shop.example.com
    upstream: "missing.internal:443"
""")
    async with daemon("-c", str(config)) as d:
        port = await d.port()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(make_client_hello("shop.example.com"))
        async with asyncio.timeout(DEADLINE):
            await reader.read()
        writer.close()
        line = (await d.wait_for_stderr(r"resolve failed.*missing\.internal")).string
        assert "NXDOMAIN" in line
        record = await d.access_line()
        assert record["close_reason"] == "resolve failed" and "missing.internal" in record["detail"]


def test_access_log_formats():
    import io

    from sniui.engine.model import CloseReason, ConnectionInfo, ConnState
    from sniui.headless.accesslog import AccessLog, format_text

    info = ConnectionInfo(id=7, client="[2001:db8::7]:40000", client_ip="2001:db8::7", listener="[::]:443",
                          state=ConnState.CLOSED, started=1000.0, last_activity=1001.0, sni="shop.example.com",
                          alpn=("h2", "http/1.1"), route="shop", upstream="web", upstream_address="10.0.0.1:443",
                          bytes_up=517, bytes_down=4096, closed=1001.5, close_reason=CloseReason.UPSTREAM_CLOSED)
    out = io.StringIO()
    log = AccessLog("json", stream=out)
    log(info)
    log.flush()
    record = json.loads(out.getvalue())
    assert record == {
        "time": "1970-01-01T00:16:41.500Z", "id": 7, "client": "[2001:db8::7]:40000", "listener": "[::]:443",
        "sni": "shop.example.com", "alpn": ["h2", "http/1.1"], "route": "shop", "mode": "passthrough",
        "upstream": "web", "upstream_address": "10.0.0.1:443", "bytes_in": 517, "bytes_out": 4096,
        "duration_ms": 1500.0, "hello_ms": None, "connect_ms": None, "close_reason": "upstream closed", "detail": None,
    }
    assert format_text(info) == ('1970-01-01T00:16:41.500Z [2001:db8::7]:40000 "shop.example.com" route=shop '
                                 '→ 10.0.0.1:443 in=517 out=4096 1500.0ms upstream closed')
