"""The built-in demo: its config routes as its own tests say, its upstreams answer
real TLS on loopback and report the SNI, its files are private, and close() cleans up."""

from __future__ import annotations

import asyncio
import datetime
import ssl
import stat
import subprocess
import shutil

import pytest
from cryptography import x509

from sniui.config import load_text
from sniui.config.addresses import parse_listen_address
from sniui.demo import DemoPKI, DemoUpstreams, build_demo, demo_traffic
from sniui.demo.traffic import fetch
from sniui.routing import RouteTable


@pytest.fixture
async def demo(tmp_path):
    demo = await build_demo(0, tmp_path, terminate=True)
    try:
        yield demo
    finally:
        await demo.close()


def _content_length(head: bytes) -> int:
    line = next(l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:"))
    return int(line.split(b":")[1])


def _passes(expect: str, decision) -> bool:
    # The `sniui check` vocabulary: "reject", an upstream (group or host:port), or route:NAME.
    if expect == "reject":
        return decision.action == "reject"
    return decision.action == "route" and expect in (decision.upstream, f"route:{decision.route}")


async def test_config_is_loopback_only_and_its_tests_pass(demo):
    config = demo.config
    assert [parse_listen_address(l.address) for l in config.listen] == [("127.0.0.1", 0)]
    for group in config.upstreams.values():
        assert all(server.startswith("127.0.0.1:") for server in group.servers)
    assert config.default.action == "reject"
    assert len(config.tests) >= 8
    table = RouteTable(config)
    failures = [(t.sni, t.expect, table.match(t.sni).summary) for t in config.tests
                if not _passes(t.expect, table.match(t.sni))]
    assert failures == []
    # The kinds of route the demo is meant to show, each reached by its example name.
    kinds = {table.match(e.name).kind for e in demo.examples}
    assert {"exact", "wildcard", "regex"} <= kinds


async def test_regex_capture_picks_the_group(demo):
    table = RouteTable(demo.config)
    prod = table.match("prod.api.demo.localhost")
    staging = table.match("staging.api.demo.localhost")
    assert (prod.upstream_group, dict(prod.captures)) == ("api-prod", {"env": "prod"})
    assert (staging.upstream_group, dict(staging.captures)) == ("api-staging", {"env": "staging"})
    labels = demo.server_names
    assert [labels[s] for s in demo.config.upstreams["api-prod"].servers] == ["api-prod"]
    assert [labels[s] for s in demo.config.upstreams["api-staging"].servers] == ["api-staging"]


async def test_yaml_text_round_trips_to_the_same_config(demo):
    again = load_text(demo.yaml_text, base_dir=demo.directory).config
    assert again.model_dump() == demo.config.model_dump()


async def test_listen_port_is_used_and_checked(tmp_path):
    demo = await build_demo(18443, tmp_path)
    try:
        assert demo.config.listen[0].address == "127.0.0.1:18443"
        assert f"https://shop.demo.localhost:18443/" in demo.curl_lines[0]
        assert "web.demo.localhost" in demo.yaml_text  # the terminating route is on by default
    finally:
        await demo.close()
    with pytest.raises(ValueError):
        await build_demo(70000, tmp_path)


async def test_upstreams_answer_tls_and_report_sni(demo):
    context = demo.pki.client_context()
    shop_servers = [demo.upstreams.servers["shop-1"], demo.upstreams.servers["shop-2"]]
    for server in shop_servers:
        result = await fetch("127.0.0.1", server.port, "shop.demo.localhost", context, path="/cart")
        assert result.outcome == "ok", result
        assert result.upstream == server.name
        assert result.body == f'hello from demo upstream "{server.name}" — you asked for shop.demo.localhost (SNI), path /cart\n'
        assert server.last.sni == "shop.demo.localhost"
        assert server.last.host == "shop.demo.localhost"
        assert server.last.tls_version in ("TLSv1.2", "TLSv1.3")

    apps = demo.upstreams.servers["apps"]
    result = await fetch("127.0.0.1", apps.port, "www.apps.demo.localhost", context)
    assert (result.outcome, apps.last.sni) == ("ok", "www.apps.demo.localhost")


async def test_upstream_certificate_is_checked_against_the_name(demo):
    # The client verifies the host name: the shop server cannot pass for another name.
    server = demo.upstreams.servers["shop-1"]
    result = await fetch("127.0.0.1", server.port, "prod.api.demo.localhost", demo.pki.client_context())
    assert result.outcome == "error" and "certificate" in result.error
    assert server.request_count == 0


async def test_keep_alive_serves_several_requests_on_one_connection(demo):
    server = demo.upstreams.servers["api-prod"]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=demo.pki.client_context(), server_hostname="prod.api.demo.localhost")
    try:
        for path in ("/a", "/b", "/c"):
            writer.write(f"GET {path} HTTP/1.1\r\nHost: prod.api.demo.localhost\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: keep-alive" in head
            body = await reader.readexactly(_content_length(head))
            assert f"path {path}".encode() in body
    finally:
        writer.close()
        await writer.wait_closed()
    assert server.connections == 1 and server.request_count == 3


async def test_plain_upstream_for_terminating_route(demo):
    server = demo.upstreams.servers["web"]
    assert not server.tls
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /x HTTP/1.0\r\nHost: web.demo.localhost\r\n\r\n")
    response = await reader.read()  # HTTP/1.0 without keep-alive: the server closes after answering
    writer.close()
    assert b"Connection: close" in response
    assert response.endswith('hello from demo upstream "web" — you asked for web.demo.localhost '
                             '(Host header, plain HTTP after sniui terminated TLS), path /x\n'.encode())
    assert server.last.sni is None


async def test_garbage_gets_400_and_close(tmp_path):
    async with DemoUpstreams(None) as ups:
        server = await ups.start("plain", tls=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"HELLO THERE\r\n\r\n")
        response = await reader.read()
        writer.close()
        assert response.startswith(b"HTTP/1.1 400 ")
        assert server.request_count == 0


async def test_idle_client_is_closed_by_the_upstream(tmp_path):
    # A short idle timeout keeps this test quick; awaiting EOF needs no sleep.
    async with DemoUpstreams(None, idle_timeout=0.2) as ups:
        server = await ups.start("idle", tls=False)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


async def test_files_are_private_and_close_removes_them(tmp_path):
    demo = await build_demo(0, tmp_path, terminate=True)
    directory = demo.directory
    assert directory.parent == tmp_path
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    keys = list(directory.glob("*.key"))
    assert keys, "terminate=True issues a leaf for sniui itself"
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    # The CA's private key is never written: no file holds more than one private key,
    # and each key file belongs to a leaf certificate next to it.
    for key in keys:
        assert key.with_suffix(".pem").exists()
    assert demo.ca_path.read_bytes() == demo.pki.ca_pem
    assert "PRIVATE" not in repr(demo.pki) and "PRIVATE" not in demo.yaml_text

    ports = [s.port for s in demo.upstreams.servers.values()]
    await demo.close()
    assert not directory.exists()
    for port in ports:
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
    await demo.close()  # idempotent


async def test_close_ends_connected_clients(tmp_path):
    demo = await build_demo(0, tmp_path)
    server = demo.upstreams.servers["shop-1"]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", server.port, ssl=demo.pki.client_context(), server_hostname="shop.demo.localhost")
    # One answered request proves the server-side handler exists; the client then idles on keep-alive.
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.demo.localhost\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"Connection: keep-alive" in head
    await reader.readexactly(_content_length(head))
    await demo.close()
    # close() ends the idle client itself instead of leaving it to the idle timeout:
    # the client sees the end of the stream (an abort may surface as an error instead of EOF).
    try:
        rest = await asyncio.wait_for(reader.read(), 10)
    except (ConnectionError, ssl.SSLError):
        rest = b""
    assert rest == b""
    writer.close()


def test_ca_is_name_constrained_and_refuses_other_names(tmp_path):
    with DemoPKI(tmp_path) as pki:
        constraints = pki.ca_certificate.extensions.get_extension_for_class(x509.NameConstraints)
        assert constraints.critical
        assert x509.DNSName("localhost") in constraints.value.permitted_subtrees
        with pytest.raises(ValueError):
            pki.issue(["example.com"])
        with pytest.raises(ValueError):
            pki.issue(["10.0.0.1"])
        leaf = pki.issue(["shop.demo.localhost", "127.0.0.1"])
        assert pki.issue(["shop.demo.localhost", "127.0.0.1"]) == leaf  # same names, same files
        cert = x509.load_pem_x509_certificate(leaf.cert_path.read_bytes())
        assert cert.public_key().curve.name == "secp256r1"
        assert cert.not_valid_after_utc - cert.not_valid_before_utc < datetime.timedelta(days=7)


async def test_curl_and_openssl_lines_need_a_real_port(demo):
    with pytest.raises(ValueError):
        demo.curl_lines  # listen_port 0: only the engine knows the port
    lines = demo.curl_lines_for(9443)
    assert len(lines) == len(demo.examples)
    assert lines[0].startswith("curl --cacert ")
    assert "--resolve shop.demo.localhost:9443:127.0.0.1 https://shop.demo.localhost:9443/" in lines[0]
    assert str(demo.ca_path) in lines[0]
    assert demo.openssl_line_for(9443).startswith(
        "openssl s_client -connect 127.0.0.1:9443 -servername shop.demo.localhost -CAfile ")
    text = demo.instructions_for(9443)
    assert "127.0.0.1:9443" in text and "unknown.demo.localhost" in text


@pytest.mark.realclient
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
async def test_curl_line_works_against_an_upstream_directly(demo):
    # Without the engine, point the demo's own curl line at one upstream: this checks the
    # quoting, the CA file and the certificate names as a user's paste would use them.
    server = demo.upstreams.servers["api-staging"]
    line = demo.curl_line("staging.api.demo.localhost", server.port)
    process = await asyncio.create_subprocess_shell(
        line + " --silent --show-error --max-time 10", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err
    assert out.decode() == 'hello from demo upstream "api-staging" — you asked for staging.api.demo.localhost (SNI), path /\n'


@pytest.mark.realclient
@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_openssl_line_verifies_against_an_upstream_directly(demo):
    server = demo.upstreams.servers["shop-2"]
    process = await asyncio.create_subprocess_shell(
        demo.openssl_line_for(server.port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, out
    assert b"Verification: OK" in out
    assert b"CN = shop.demo.localhost" in out or b"CN=shop.demo.localhost" in out


async def test_traffic_generator_is_bounded_and_reports_outcomes(demo):
    # Straight at one upstream (no engine here): the right name succeeds, a name the
    # certificate does not cover fails verification and is reported as an error, not a reject.
    server = demo.upstreams.servers["shop-1"]
    report = await demo_traffic(("127.0.0.1", server.port), demo.ca_path,
                                names=["shop.demo.localhost", "unknown.demo.localhost"], count=6, concurrency=2)
    assert len(report.results) == 6 and report.cancelled == 0
    assert report.count("ok") == 3 and report.count("error") == 3
    assert all("certificate" in r.error for r in report.results if r.outcome == "error")
    assert {r.upstream for r in report.results if r.outcome == "ok"} == {"shop-1"}
    assert server.request_count == 3

    empty = await demo_traffic(("127.0.0.1", server.port), demo.pki.ca_pem, names=["x.demo.localhost"], count=0)
    assert empty.results == [] and empty.summary == "no requests"
    with pytest.raises(ValueError):
        await demo_traffic(("127.0.0.1", server.port), demo.ca_path, names=[], count=1)
