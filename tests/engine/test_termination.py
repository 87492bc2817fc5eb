"""TLS termination on a shared listener: per-route certificates, mTLS, the negotiated version, cipher and ALPN
recorded and logged, close_notify both ways, resumption, bulk transfer, handshake failures and timeouts, and
certificate errors refusing a config.

Certificates are issued per test by trustme; clients are Python's ssl, `openssl s_client` and `curl`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import re
import shutil
import socket
import ssl
import struct
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import trustme

from sniui.engine import EngineError
from sniui.engine.model import CloseReason
from sniui.engine.proxy_protocol import ProxyHeaderReader
from sniui.headless.accesslog import AccessLog

from .conftest import (
    DEADLINE, FloodingUpstream, TlsClientPipe, config_from, count_until_closed, make_client_hello, peer_sans, port_of, read_until_closed, running,
    tls_exchange, wait_for_flow_to_stop, wait_until, write_leaf,
)
from .test_bulk import ThreadResult, expected_digest, pattern_stream

HANDSHAKE_FAILED = CloseReason.TLS_HANDSHAKE_FAILED.value


# -- a plain upstream for terminating routes ------------------------------------------------------


@dataclass(eq=False)
class PlainService:
    """A plain TCP upstream that speaks what it is spoken to.

    HTTP/1.1 requests get keep-alive responses naming the service and path
    (`Connection: close` is honoured); 2-byte length-prefixed messages (DNS
    over TLS framing) get "answer:<message>" in the same framing; anything
    else gets an identity line and an echo. `ends` records, per connection,
    whether the connection ended with a clean EOF from the router.
    """

    name: str
    port: int = 0
    received: list[bytes] = field(default_factory=list)
    ends: list[str] = field(default_factory=list)
    server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> "PlainService":
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.read(65536)
            self.received.append(first)
            if first.startswith((b"GET ", b"POST ")):
                await self._http(first, reader, writer)
            elif len(first) >= 2 and first[0] == 0:
                await self._dns(first, reader, writer)
            else:
                writer.write(f"upstream={self.name}\n".encode() + first)
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
                self.ends.append("eof")
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            self.ends.append(type(exc).__name__)
        finally:
            writer.close()

    async def _http(self, buffered: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = 0
        while True:
            while b"\r\n\r\n" not in buffered:
                more = await reader.read(65536)
                if not more:
                    self.ends.append("eof")
                    return
                buffered += more
            head, _, buffered = buffered.partition(b"\r\n\r\n")
            count += 1
            path = head.split(b" ")[1].decode()
            close = b"connection: close" in head.lower()
            body = f"upstream={self.name} path={path} request={count}\n".encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n"
                         % (len(body), b"Connection: close\r\n" if close else b"") + body)
            await writer.drain()
            if close:
                self.ends.append("closed by us")
                return

    async def _dns(self, buffered: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            while len(buffered) < 2 or len(buffered) < 2 + struct.unpack_from("!H", buffered)[0]:
                more = await reader.read(65536)
                if not more:
                    self.ends.append("eof" if not buffered else "eof mid-message")
                    return
                buffered += more
            length = struct.unpack_from("!H", buffered)[0]
            message, buffered = buffered[2: 2 + length], buffered[2 + length:]
            answer = b"answer:" + message
            writer.write(struct.pack("!H", len(answer)) + answer)
            await writer.drain()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


@pytest.fixture
async def plain_service():
    started: list[PlainService] = []

    async def start(name: str) -> PlainService:
        service = await PlainService(name).start()
        started.append(service)
        return service

    yield start
    for service in started:
        await service.stop()


def terminating_config(routes: list[dict], certificates: dict[str, tuple[Path, Path]], *,
                       client_hello: str = "5s", extra_routes: str = "") -> str:
    """YAML for one loopback listener with terminating `routes` (dicts of route fields)."""
    lines = ["listen:", '  - address: "127.0.0.1:0"', "timeouts:", f"  client_hello: {client_hello}", "certificates:"]
    for name, (cert, key) in certificates.items():
        lines += [f"  {name}:", f"    cert: '{cert}'", f"    key: '{key}'"]
    lines.append("routes:")
    for route in routes:
        lines.append(f"  - name: {route['name']}")
        lines.append("    mode: terminate")
        for key, value in route.items():
            if key != "name":
                lines.append(f"    {key}: {json.dumps(value)}")
    return "\n".join(lines) + "\n" + extra_routes


def client_context_for(ca: trustme.CA, *, client_cert: trustme.LeafCert | None = None,
                       max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    if client_cert is not None:
        client_cert.configure_cert(context)
    if max_version is not None:
        context.maximum_version = max_version
    return context


async def exchange(port: int, name: str, context: ssl.SSLContext, payload: bytes = b"ping\n") -> tuple[list[str], str]:
    """Through a terminating route: the presented certificate's SANs and the upstream's identity line (echo checked)."""
    async with asyncio.timeout(DEADLINE):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name)
        try:
            sans = peer_sans(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
            writer.write(payload)
            line = (await reader.readline()).decode().strip()
            assert await reader.readexactly(len(payload)) == payload
            return sans, line
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


class CapturedAccessLogs:
    """A JSON and a text access log on the engine's close hook, written to memory."""

    def __init__(self, engine) -> None:
        self.json_out, self.text_out = io.StringIO(), io.StringIO()
        self.logs = (AccessLog("json", stream=self.json_out), AccessLog("text", stream=self.text_out))
        for log in self.logs:
            engine.add_close_hook(log)

    def lines(self) -> tuple[list[dict], list[str]]:
        """The JSON lines parsed and the text lines written so far."""
        for log in self.logs:
            log.flush()
        return [json.loads(line) for line in self.json_out.getvalue().splitlines()], self.text_out.getvalue().splitlines()


async def closed_records(engine, count: int):
    await wait_until(lambda: len(engine.snapshot().recent) >= count, what=f"{count} closed connection(s)")
    return list(reversed(engine.snapshot().recent))   # oldest first


# -- certificates per route, next to passthrough -----------------------------------------------------


async def test_two_terminating_routes_and_a_passthrough_route_share_one_listener(
        ca, tmp_path, plain_service, tls_upstream, client_context):
    a, b = await plain_service("plain-a"), await plain_service("plain-b")
    passthrough = await tls_upstream("tls-upstream")
    certificates = {"a": write_leaf(ca, tmp_path, "a", "a.test"), "b": write_leaf(ca, tmp_path, "b", "b.test")}
    text = terminating_config(
        [{"name": "a", "sni": "a.test", "certificate": "a", "upstream": a.address},
         {"name": "b", "sni": "b.test", "certificate": "b", "upstream": b.address}],
        certificates,
        extra_routes=f"  - name: pass\n    sni: pass.example.com\n    upstream: '{passthrough.address}'\n")
    async with running(text) as engine:
        port = port_of(engine)
        assert await exchange(port, "a.test", client_context) == (["a.test"], "upstream=plain-a")
        assert await exchange(port, "b.test", client_context) == (["b.test"], "upstream=plain-b")
        sans, line = await exchange(port, "pass.example.com", client_context)
        assert line == "upstream=tls-upstream sni=pass.example.com"   # the upstream's own TLS, end to end
        assert "*.example.com" in sans
        records = await closed_records(engine, 3)
        assert [(r.route, r.mode) for r in records] == [("a", "terminate"), ("b", "terminate"), ("pass", "passthrough")]
        # Terminating routes count plaintext: exactly what the upstream received and sent.
        assert (records[0].bytes_up, records[0].bytes_down) == (len(b"ping\n"), len(b"upstream=plain-a\nping\n"))
        assert all(r.close_reason in (CloseReason.CLIENT_CLOSED, CloseReason.UPSTREAM_CLOSED) and r.close_detail is None
                   for r in records)
        assert a.received == [b"ping\n"] and b.received == [b"ping\n"]
        per_route = engine.snapshot().per_route
        assert (per_route["a"].closed, per_route["a"].bytes_up, per_route["a"].error_total) == (1, 5, 0)


@pytest.mark.realclient
@pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("curl")), reason="needs openssl and curl")
async def test_openssl_s_client_and_curl_see_each_routes_certificate_and_the_plain_reply(
        ca, ca_file, tmp_path, plain_service):
    from cryptography import x509

    a, b = await plain_service("plain-a"), await plain_service("plain-b")
    certificates = {"a": write_leaf(ca, tmp_path, "a", "a.test"), "b": write_leaf(ca, tmp_path, "b", "b.test")}
    text = terminating_config(
        [{"name": "a", "sni": "a.test", "certificate": "a", "upstream": a.address},
         {"name": "b", "sni": "b.test", "certificate": "b", "upstream": b.address}], certificates)

    async def run(*command: str, stdin: bytes = b"") -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(DEADLINE):
            out, err = await process.communicate(stdin)
        return process.returncode or 0, out.decode(errors="replace"), err.decode(errors="replace")

    async with running(text) as engine:
        port = port_of(engine)
        for name, upstream in (("a.test", "plain-a"), ("b.test", "plain-b")):
            request = f"GET /s_client HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode()
            code, out, err = await run("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
                                       "-CAfile", str(ca_file), "-verify_return_error", "-showcerts", "-ign_eof",
                                       stdin=request)
            assert code == 0, err
            leaf = x509.load_pem_x509_certificate(re.search(
                r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S).group(0).encode())
            assert peer_sans(leaf.public_bytes(_der())) == [name]
            assert "Verify return code: 0 (ok)" in out
            assert f"upstream={upstream} path=/s_client request=1" in out

            code, out, err = await run("curl", "-sS", "-v", "--cacert", str(ca_file),
                                       "--resolve", f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/curl")
            assert code == 0, err
            assert out == f"upstream={upstream} path=/curl request=1\n"
            assert f'subjectAltName: host "{name}" matched cert\'s "{name}"' in err
        records = await closed_records(engine, 4)
        assert all(r.mode == "terminate" and r.close_detail is None for r in records), records


def _der():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


# -- mTLS ---------------------------------------------------------------------------------------


async def test_mtls_relays_a_verified_client_and_logs_its_subject_and_refuses_the_rest(
        ca, ca_file, tmp_path, plain_service):
    service = await plain_service("plain-m")
    certificates = {"m": write_leaf(ca, tmp_path, "m", "m.test")}
    text = terminating_config([{"name": "m", "sni": "m.test", "certificate": "m", "client_ca": str(ca_file),
                                "upstream": service.address}], certificates)
    good = ca.issue_cert("alice@clients.test", common_name="alice", organization_name="Clients",
                          organization_unit_name="Staff")
    stranger = trustme.CA().issue_cert("mallory@clients.test", common_name="mallory")
    async with running(text) as engine:
        logs = CapturedAccessLogs(engine)
        port = port_of(engine)

        sans, line = await exchange(port, "m.test", client_context_for(ca, client_cert=good))
        assert (sans, line) == (["m.test"], "upstream=plain-m")
        [record] = await closed_records(engine, 1)
        assert record.client_subject == "CN=alice,OU=Staff,O=Clients"

        for context, alert in ((client_context_for(ca), "CERTIFICATE_REQUIRED"),
                               (client_context_for(ca, client_cert=stranger), "UNKNOWN_CA")):
            # TLS 1.3: the client's side of the handshake completes before the server checks its
            # certificate, so the refusal (the alert saying why) arrives on the first read.
            with pytest.raises(ssl.SSLError, match=alert):
                await exchange(port, "m.test", context)
        records = await closed_records(engine, 3)
        no_cert, wrong_ca = records[1], records[2]
        assert no_cert.close_reason is CloseReason.TLS_HANDSHAKE_FAILED
        assert "did not return a certificate" in no_cert.close_detail.lower(), no_cert.close_detail
        assert wrong_ca.close_reason is CloseReason.TLS_HANDSHAKE_FAILED
        assert "certificate verify failed" in wrong_ca.close_detail.lower(), wrong_ca.close_detail
        assert no_cert.client_subject is None and wrong_ca.client_subject is None
        assert no_cert.upstream_address is None and len(service.received) == 1   # never reached the upstream
        counters = engine.snapshot().per_route["m"]
        assert counters.errors == {HANDSHAKE_FAILED: 2} and counters.accepted == 3
        lines, text_lines = logs.lines()
    assert lines[0]["client_subject"] == "CN=alice,OU=Staff,O=Clients" and lines[0]["mode"] == "terminate"
    assert [l["close_reason"] for l in lines[1:]] == [HANDSHAKE_FAILED, HANDSHAKE_FAILED]
    assert 'subject="CN=alice,OU=Staff,O=Clients"' in text_lines[0]


async def test_a_client_below_the_routes_min_version_is_refused_with_the_reason(ca, tmp_path, plain_service):
    service = await plain_service("plain-v")
    text = terminating_config([{"name": "v", "sni": "v.test", "certificate": "v", "min_version": "1.3",
                                "upstream": service.address}], {"v": write_leaf(ca, tmp_path, "v", "v.test")})
    async with running(text) as engine:
        with pytest.raises(ssl.SSLError):
            await exchange(port_of(engine), "v.test", client_context_for(ca, max_version=ssl.TLSVersion.TLSv1_2))
        [record] = await closed_records(engine, 1)
        assert record.close_reason is CloseReason.TLS_HANDSHAKE_FAILED
        assert "protocol" in record.close_detail.lower(), record.close_detail
        assert record.tls_version is None and record.tls_cipher is None   # no handshake, nothing negotiated


async def negotiated_through(port: int, name: str, context: ssl.SSLContext) -> tuple[str, str, str | None]:
    """Through the router: what the client's own ssl object says was negotiated (the echo checked)."""
    async with asyncio.timeout(DEADLINE):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name)
        try:
            tls = writer.get_extra_info("ssl_object")
            writer.write(b"ping\n")
            await reader.readline()
            assert await reader.readexactly(5) == b"ping\n"
            return tls.version(), tls.cipher()[0], tls.selected_alpn_protocol()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()


async def test_the_negotiated_version_cipher_and_alpn_are_recorded_and_logged_for_terminating_routes_only(
        ca, tmp_path, plain_service, tls_upstream, client_context):
    service = await plain_service("plain-n")
    passthrough = await tls_upstream("tls-upstream")
    certificates = {"n": write_leaf(ca, tmp_path, "n", "h.test", "plain.test")}
    text = terminating_config(
        [{"name": "h", "sni": "h.test", "certificate": "n", "alpn": ["h2", "http/1.1"], "upstream": service.address},
         {"name": "plain", "sni": "plain.test", "certificate": "n", "upstream": service.address}],
        certificates,
        extra_routes=f"  - name: pass\n    sni: pass.example.com\n    upstream: '{passthrough.address}'\n")

    tls13 = client_context_for(ca)
    tls13.set_alpn_protocols(["h2", "http/1.1"])
    tls12 = client_context_for(ca, max_version=ssl.TLSVersion.TLSv1_2)
    tls12.set_ciphers("ECDHE+CHACHA20")   # not what the server would pick first: the record must be this one
    tls12.set_alpn_protocols(["http/1.1"])
    async with running(text) as engine:
        logs = CapturedAccessLogs(engine)
        port = port_of(engine)
        seen = [await negotiated_through(port, "h.test", tls13),
                await negotiated_through(port, "h.test", tls12),
                await negotiated_through(port, "plain.test", tls13)]   # the route offers no ALPN
        assert [(version, alpn) for version, _, alpn in seen] == [("TLSv1.3", "h2"), ("TLSv1.2", "http/1.1"),
                                                                  ("TLSv1.3", None)]
        assert "CHACHA20" in seen[1][1] and seen[0][1].startswith("TLS_")
        assert await tls_exchange(port, "pass.example.com", tls13) == "upstream=tls-upstream sni=pass.example.com"
        records = await closed_records(engine, 4)
        assert [(r.tls_version, r.tls_cipher, r.alpn_selected) for r in records[:3]] == seen
        assert (records[3].mode, records[3].tls_version, records[3].tls_cipher, records[3].alpn_selected) == (
            "passthrough", None, None, None)
        lines, text_lines = logs.lines()
    assert [(l.get("tls_version"), l.get("tls_cipher"), l.get("alpn_selected")) for l in lines[:3]] == seen
    assert lines[3]["mode"] == "passthrough" and "tls_version" not in lines[3] and "alpn_selected" not in lines[3]
    assert text_lines[0].endswith(f" tls=TLSv1.3 cipher={seen[0][1]} alpn=h2")
    assert text_lines[1].endswith(f" tls=TLSv1.2 cipher={seen[1][1]} alpn=http/1.1")
    assert text_lines[2].endswith(f" tls=TLSv1.3 cipher={seen[2][1]} alpn=-")
    assert " tls=" not in text_lines[3]


async def test_a_client_that_distrusts_the_certificate_or_leaves_is_a_counted_handshake_failure(
        ca, tmp_path, plain_service):
    # nginx users see "peer closed connection in SSL handshake"; here the record says why.
    service = await plain_service("plain-d")
    text = terminating_config([{"name": "d", "sni": "d.test", "certificate": "d", "upstream": service.address}],
                              {"d": write_leaf(ca, tmp_path, "d", "d.test")})
    async with running(text) as engine:
        def distrusting_client(port: int) -> None:
            # A blocking SSLSocket sends its alert before raising (asyncio's client just closes).
            with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
                client_context_for(trustme.CA()).wrap_socket(raw, server_hostname="d.test")

        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.to_thread(distrusting_client, port_of(engine))
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
        writer.write(make_client_hello("d.test"))
        writer.write_eof()                           # gone before finishing the handshake
        await read_until_closed(reader)
        writer.close()
        distrusted, gone = await closed_records(engine, 2)
        assert distrusted.close_reason is CloseReason.TLS_HANDSHAKE_FAILED
        assert "unknown ca" in distrusted.close_detail.lower(), distrusted.close_detail
        assert gone.close_reason is CloseReason.TLS_HANDSHAKE_FAILED
        assert gone.close_detail == "the client closed the connection during the TLS handshake"
        assert engine.snapshot().per_route["d"].errors == {HANDSHAKE_FAILED: 2}
        assert service.received == []


async def test_an_unreachable_upstream_after_the_handshake_closes_without_close_notify(ca, tmp_path, client_context):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed_port = unused.getsockname()[1]
    text = terminating_config([{"name": "u", "sni": "u.test", "certificate": "u", "upstream": f"127.0.0.1:{closed_port}"}],
                              {"u": write_leaf(ca, tmp_path, "u", "u.test")})
    def client(port: int) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
            pipe = TlsClientPipe(sock, client_context, "u.test")
            pipe.handshake()
            pipe.send(b"anyone there?\n")
            pipe.recv()

    async with running(text) as engine:
        # Not a clean end (no close_notify): the client cannot mistake a failed upstream for an empty answer.
        with pytest.raises((ssl.SSLEOFError, ConnectionError)):
            await asyncio.to_thread(client, port_of(engine))
        [record] = await closed_records(engine, 1)
        assert record.close_reason is CloseReason.CONNECT_FAILED and "refused" in record.close_detail


async def test_a_stalled_handshake_ends_after_the_hello_timeout(ca, tmp_path, plain_service):
    service = await plain_service("plain-t")
    text = terminating_config([{"name": "t", "sni": "t.test", "certificate": "t", "upstream": service.address}],
                              {"t": write_leaf(ca, tmp_path, "t", "t.test")}, client_hello="200ms")
    async with running(text) as engine:
        reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine))
        writer.write(make_client_hello("t.test"))   # then never answer the server's flight
        flight = await read_until_closed(reader)
        assert flight[:1] == b"\x16"                 # our ServerHello came, then the close
        writer.close()
        [record] = await closed_records(engine, 1)
        assert record.close_reason is CloseReason.TLS_HANDSHAKE_FAILED
        assert "not complete within" in record.close_detail
        assert service.received == []


# -- close_notify, keep-alive, framing -----------------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
async def test_dns_over_tls_exchange_with_close_notify_then_reading_completes_cleanly(
        ca, tmp_path, plain_service, version):
    client_context = client_context_for(ca, max_version=version)
    service = await plain_service("plain-dot")
    text = terminating_config([{"name": "dot", "sni": "dot.test", "certificate": "dot", "upstream": service.address}],
                              {"dot": write_leaf(ca, tmp_path, "dot", "dot.test")})
    queries = [f"query-{i}.example.".encode() for i in range(5)]

    def frame(message: bytes) -> bytes:
        return struct.pack("!H", len(message)) + message

    def client(port: int, close_first: bool) -> list[bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as sock:
            pipe = TlsClientPipe(sock, client_context, "dot.test")
            pipe.handshake()
            answers = []
            if close_first:
                # All queries, then close_notify, and only then read every answer (RFC 7858 pipelining).
                pipe.send(b"".join(frame(q) for q in queries))
                pipe.close_notify()
            for query in queries:
                if not close_first:
                    pipe.send(frame(query))
                length = struct.unpack("!H", pipe.recv_exactly(2))[0]
                answers.append(pipe.recv_exactly(length))
            if not close_first:
                pipe.close_notify()
            assert pipe.recv() == b""   # the router's close_notify, not a truncation (SSLEOFError)
            return answers

    async with running(text) as engine:
        for close_first in (True, False):
            answers = await asyncio.to_thread(client, port_of(engine), close_first)
            assert answers == [b"answer:" + q for q in queries]
        records = await closed_records(engine, 2)
        for record in records:
            assert (record.close_reason, record.close_detail) == (CloseReason.CLIENT_CLOSED, None)
            assert record.bytes_up == sum(len(frame(q)) for q in queries)
        await wait_until(lambda: len(service.ends) == 2, what="the upstream to see both ends")
        assert service.ends == ["eof", "eof"]


async def test_http_keep_alive_through_a_terminating_route_and_either_side_closing(
        ca, tmp_path, plain_service, client_context):
    service = await plain_service("plain-web")
    text = terminating_config([{"name": "web", "sni": "web.test", "certificate": "web", "upstream": service.address}],
                              {"web": write_leaf(ca, tmp_path, "web", "web.test")})

    async def fetch(reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        return await reader.readexactly(length)

    async with running(text) as engine:
        port = port_of(engine)
        async with asyncio.timeout(DEADLINE):
            # The client closes: asyncio sends close_notify and waits for ours.
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context, server_hostname="web.test")
            for i in range(1, 4):
                writer.write(f"GET /page{i} HTTP/1.1\r\nHost: web.test\r\n\r\n".encode())
                assert await fetch(reader) == f"upstream=plain-web path=/page{i} request={i}\n".encode()
            assert len(engine.registry.live) == 1      # one connection carried all three
            writer.close()
            await writer.wait_closed()

            # The upstream closes (Connection: close): the client reads a clean end of stream.
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context, server_hostname="web.test")
            writer.write(b"GET /a HTTP/1.1\r\nHost: web.test\r\n\r\nGET /b HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
            assert await fetch(reader) == b"upstream=plain-web path=/a request=1\n"
            assert await fetch(reader) == b"upstream=plain-web path=/b request=2\n"
            assert await reader.read() == b""          # close_notify: no SSLError, no truncation
            writer.close()
            await writer.wait_closed()
        first, second = await closed_records(engine, 2)
        assert (first.close_reason, first.close_detail) == (CloseReason.CLIENT_CLOSED, None)
        assert (second.close_reason, second.close_detail) == (CloseReason.UPSTREAM_CLOSED, None)


# -- resumption -----------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
async def test_a_resumed_session_is_routed_and_logged_by_its_sni(ca, tmp_path, plain_service, version):
    service = await plain_service("plain-r")
    text = terminating_config([{"name": "r", "sni": "r.test", "certificate": "r", "upstream": service.address}],
                              {"r": write_leaf(ca, tmp_path, "r", "r.test")})
    context = client_context_for(ca, max_version=version)
    log = io.StringIO()

    def connect(port: int, session: ssl.SSLSession | None) -> tuple[ssl.SSLSession, bool, bytes]:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE) as raw:
            with context.wrap_socket(raw, server_hostname="r.test", session=session) as sock:
                sock.sendall(b"hello\n")
                reply = b""
                while not reply.endswith(b"hello\n"):
                    reply += sock.recv(4096)   # reading also takes TLS 1.3 session tickets in
                return sock.session, sock.session_reused, reply

    async with running(text) as engine:
        access = AccessLog("json", stream=log)
        engine.add_close_hook(access)
        port = port_of(engine)
        session, reused, reply = await asyncio.to_thread(connect, port, None)
        assert not reused and reply == b"upstream=plain-r\nhello\n"
        _, reused, reply = await asyncio.to_thread(connect, port, session)
        assert reused, "the second connection did not resume the first one's session"
        assert reply == b"upstream=plain-r\nhello\n"
        # A reload that leaves the route's certificate alone keeps its sessions resumable.
        await engine.apply(config_from(text))
        _, reused, _ = await asyncio.to_thread(connect, port, session)
        assert reused, "an unchanged reload dropped the route's sessions"
        records = await closed_records(engine, 3)
        assert [(r.sni, r.route, r.mode) for r in records] == [("r.test", "r", "terminate")] * 3
        access.flush()
    assert [json.loads(line)["sni"] for line in log.getvalue().splitlines()] == ["r.test"] * 3


# -- PROXY header towards the upstream ----------------------------------------------------------------


async def test_proxy_header_carries_the_original_client_before_the_plaintext(ca, tmp_path, raw_upstream, client_context):
    upstream = await raw_upstream(reply=b"hi\n")
    text = terminating_config([{"name": "p", "sni": "p.test", "certificate": "p", "upstream": upstream.address,
                                "proxy_protocol": "v2"}], {"p": write_leaf(ca, tmp_path, "p", "p.test")})
    async with running(text) as engine:
        async with asyncio.timeout(DEADLINE):
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(engine), ssl=client_context,
                                                           server_hostname="p.test")
            client_port = writer.get_extra_info("sockname")[1]
            writer.write(b"plaintext for the upstream")
            assert await reader.readexactly(3) == b"hi\n"
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
        await closed_records(engine, 1)
        await wait_until(lambda: upstream.received and upstream.received[0].endswith(b"plaintext for the upstream"),
                         what="the plaintext upstream")
        proxy = ProxyHeaderReader()
        header = proxy.feed(bytes(upstream.received[0]))
        assert header.source == ("127.0.0.1", client_port)
        assert proxy.remainder == b"plaintext for the upstream"


# -- bulk -----------------------------------------------------------------------------------------

BULK = 50 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["tls1.2", "tls1.3"])
@pytest.mark.parametrize("first", ["client", "upstream"])
async def test_50_mb_each_way_byte_identical_with_half_close(ca, tmp_path, first, version):
    client_context = client_context_for(ca, max_version=version)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(60)

    def receive_plain(conn: socket.socket) -> tuple[str, int]:
        digest, total = hashlib.sha256(), 0
        while chunk := conn.recv(1 << 20):
            digest.update(chunk)
            total += len(chunk)
        return digest.hexdigest(), total

    def upstream_side() -> tuple[str, int]:
        conn, _ = listener.accept()
        conn.settimeout(60)
        with conn:
            if first == "client":
                got = receive_plain(conn)
            for piece in pattern_stream(BULK, 2):
                conn.sendall(piece)
            conn.shutdown(socket.SHUT_WR)
            if first == "upstream":
                got = receive_plain(conn)
            return got

    def receive_tls(pipe: TlsClientPipe) -> tuple[str, int]:
        digest, total = hashlib.sha256(), 0
        while chunk := pipe.recv(1 << 20):
            digest.update(chunk)
            total += len(chunk)
        return digest.hexdigest(), total

    def client_side(port: int) -> tuple[str, int]:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            pipe = TlsClientPipe(sock, client_context, "bulk.test")
            pipe.handshake()
            if first == "upstream":
                got = receive_tls(pipe)            # ends with the router's close_notify
            for piece in pattern_stream(BULK, 1):
                pipe.send(piece)
            pipe.close_notify()                    # half-close: keep reading after it
            if first == "client":
                got = receive_tls(pipe)
            return got

    text = terminating_config([{"name": "bulk", "sni": "bulk.test", "certificate": "bulk",
                                "upstream": f"127.0.0.1:{listener.getsockname()[1]}"}],
                              {"bulk": write_leaf(ca, tmp_path, "bulk", "bulk.test")})
    try:
        async with running(text) as engine:
            started = time.monotonic()
            upstream = ThreadResult(upstream_side)
            client = ThreadResult(client_side, port_of(engine))
            client_got = await client.result(120)
            upstream_got = await upstream.result(120)
            elapsed = time.monotonic() - started
            assert upstream_got == (expected_digest(BULK, 1), BULK)
            assert client_got == (expected_digest(BULK, 2), BULK)
            [record] = await closed_records(engine, 1)
            assert (record.bytes_up, record.bytes_down) == (BULK, BULK)
            expected = CloseReason.CLIENT_CLOSED if first == "client" else CloseReason.UPSTREAM_CLOSED
            assert (record.close_reason, record.close_detail) == (expected, None)
            print(f"\nterminating {version.name}, {first} first: {2 * BULK / elapsed / 1e6:.0f} MB/s of plaintext "
                  f"({elapsed:.2f}s)")
    finally:
        listener.close()


# -- certificate errors refuse a config -------------------------------------------------------------


@pytest.mark.parametrize("fault", ["key of another certificate", "expired", "name not covered"])
async def test_a_config_with_a_certificate_error_is_refused_and_the_old_one_keeps_serving(
        ca, tmp_path, plain_service, client_context, fault):
    service = await plain_service("plain-k")
    good = write_leaf(ca, tmp_path, "good", "k.test")
    text = terminating_config([{"name": "k", "sni": "k.test", "certificate": "k", "upstream": service.address}],
                              {"k": good})
    if fault == "key of another certificate":
        bad = (good[0], write_leaf(ca, tmp_path, "other", "k.test")[1])
        expected = "does not match"
    elif fault == "expired":
        now = datetime.now(timezone.utc)
        bad = write_leaf(ca, tmp_path, "old", "k.test", not_before=now - timedelta(days=90), not_after=now - timedelta(days=1))
        expected = "expired"
    else:
        bad = write_leaf(ca, tmp_path, "elsewhere", "elsewhere.test")
        expected = "not covered"
    async with running(text) as engine:
        port = port_of(engine)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context, server_hostname="k.test")
        served = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        writer.write(b"before\n")
        assert await reader.readexactly(len(b"upstream=plain-k\nbefore\n")) == b"upstream=plain-k\nbefore\n"

        generation = engine.generation
        with pytest.raises(EngineError, match=expected):
            await engine.apply(config_from(terminating_config(
                [{"name": "k", "sni": "k.test", "certificate": "k", "upstream": service.address}], {"k": bad})))
        assert engine.generation == generation

        writer.write(b"after\n")                     # the live connection keeps flowing
        assert await reader.readexactly(len(b"after\n")) == b"after\n"
        async with asyncio.timeout(DEADLINE):        # and a new one gets the old certificate
            second_reader, second_writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_context, server_hostname="k.test")
        assert second_writer.get_extra_info("ssl_object").getpeercert(binary_form=True) == served
        second_writer.write(b"new\n")
        assert await second_reader.readexactly(len(b"upstream=plain-k\nnew\n")) == b"upstream=plain-k\nnew\n"
        for w in (writer, second_writer):
            w.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await w.wait_closed()


async def test_a_renewed_certificate_serves_new_connections_after_apply_and_live_ones_keep_flowing(
        ca, tmp_path, plain_service, client_context):
    from cryptography import x509

    service = await plain_service("plain-n")

    def config_with(files: tuple[Path, Path]) -> str:
        return terminating_config([{"name": "n", "sni": "n.test", "certificate": "n", "upstream": service.address}],
                                  {"n": files})

    old, renewed = write_leaf(ca, tmp_path, "old", "n.test"), write_leaf(ca, tmp_path, "renewed", "n.test")

    def der(path: Path) -> bytes:
        return x509.load_pem_x509_certificate(path.read_bytes()).public_bytes(_der())

    async with running(config_with(old)) as engine:
        port = port_of(engine)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context, server_hostname="n.test")
        assert writer.get_extra_info("ssl_object").getpeercert(binary_form=True) == der(old[0])
        writer.write(b"one\n")
        assert await reader.readexactly(len(b"upstream=plain-n\none\n")) == b"upstream=plain-n\none\n"
        await engine.apply(config_from(config_with(renewed)))
        writer.write(b"two\n")
        assert await reader.readexactly(len(b"two\n")) == b"two\n"
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
        async with asyncio.timeout(DEADLINE):
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_context, server_hostname="n.test")
        assert writer.get_extra_info("ssl_object").getpeercert(binary_form=True) == der(renewed[0])
        writer.close()
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()


async def test_a_certificate_error_refuses_the_engine_at_construction(ca, tmp_path):
    from sniui.engine import Engine

    missing = (tmp_path / "missing.pem", tmp_path / "missing.key")
    text = terminating_config([{"name": "x", "sni": "x.test", "certificate": "x", "upstream": "127.0.0.1:9"}], {"x": missing})
    with pytest.raises(EngineError, match="does not exist"):
        Engine(config_from(text))


# -- backpressure ------------------------------------------------------------------------------------


async def test_a_client_that_stops_reading_pauses_the_upstream(ca, tmp_path, client_context):
    from sniui.engine.relay import HIGH_WATER

    total = 32 * 1024 * 1024


    upstream = await FloodingUpstream(total).start()
    text = terminating_config([{"name": "slow", "sni": "slow.test", "certificate": "slow",
                                "upstream": f"127.0.0.1:{upstream.port}"}],
                              {"slow": write_leaf(ca, tmp_path, "slow", "slow.test")})
    try:
        async with running(text) as engine:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port_of(engine)))
            reader, writer = await asyncio.open_connection(sock=sock, ssl=client_context, server_hostname="slow.test",
                                                           limit=1 << 20)
            await wait_until(lambda: engine.registry.live and next(iter(engine.registry.live.values())).bytes_down > 0,
                             what="bytes flowing")
            conn = next(iter(engine.registry.live.values()))
            writer.transport.pause_reading()   # the client stops reading entirely
            await wait_for_flow_to_stop(conn, "the relay kept encrypting towards a client that does not read")
            assert upstream.sent < total
            # One upstream read (256 KiB) of ciphertext past the mark at most, plus record overhead.
            assert conn.transport.get_write_buffer_size() <= HIGH_WATER + 300 * 1024
            writer.transport.resume_reading()
            assert await count_until_closed(reader) == total
            writer.close()
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                await writer.wait_closed()
            [record] = await closed_records(engine, 1)
            assert record.bytes_down == total and record.close_detail is None
    finally:
        upstream.close()


async def test_an_upstream_that_stops_reading_pauses_the_client(ca, tmp_path, client_context):
    from sniui.engine.relay import HIGH_WATER

    total = 32 * 1024 * 1024
    release = asyncio.Event()
    received = 0

    async def slow_reader(reader, writer):
        nonlocal received
        await release.wait()
        while chunk := await reader.read(1 << 20):
            received += len(chunk)
        writer.close()

    server = await asyncio.start_server(slow_reader, "127.0.0.1", 0)
    text = terminating_config([{"name": "slow", "sni": "slow.test", "certificate": "slow",
                                "upstream": f"127.0.0.1:{server.sockets[0].getsockname()[1]}"}],
                              {"slow": write_leaf(ca, tmp_path, "slow", "slow.test")})

    def flooding_client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE * 3) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
            pipe = TlsClientPipe(sock, client_context, "slow.test")
            pipe.handshake()
            for piece in pattern_stream(total, 3):
                pipe.send(piece)
            pipe.close_notify()
            return pipe.recv()

    try:
        async with running(text) as engine:
            client = ThreadResult(flooding_client, port_of(engine))
            await wait_until(lambda: engine.registry.live and next(iter(engine.registry.live.values())).bytes_up > 0,
                             what="bytes flowing")
            conn = next(iter(engine.registry.live.values()))
            previous, stable_rounds = -1, 0
            for _ in range(200):               # bounded: at most ~10 s
                await asyncio.sleep(0.05)
                stable_rounds = stable_rounds + 1 if conn.bytes_up == previous else 0
                previous = conn.bytes_up
                if stable_rounds >= 6:
                    break
            assert stable_rounds >= 6, "the relay kept decrypting towards an upstream that does not read"
            assert conn.bytes_up < total
            assert conn.upstream_transport.get_write_buffer_size() <= HIGH_WATER + 300 * 1024
            release.set()
            assert await client.result(DEADLINE * 3) == b""
            [record] = await closed_records(engine, 1)
            assert (record.bytes_up, record.close_reason, record.close_detail) == (total, CloseReason.CLIENT_CLOSED, None)
            assert received == total
    finally:
        server.close()


# -- the demo ------------------------------------------------------------------------------------


async def test_the_demos_terminating_route_answers_through_the_engine(tmp_path):
    from sniui.demo import build_demo
    from sniui.demo.traffic import fetch

    demo = await build_demo(0, tmp_path)
    try:
        async with running(demo.config) as engine:
            result = await fetch("127.0.0.1", port_of(engine), "web.demo.localhost", demo.pki.client_context())
            assert (result.outcome, result.upstream) == ("ok", "web"), result
            assert "plain HTTP after sniui terminated TLS" in result.body
            [record] = await closed_records(engine, 1)
            assert (record.route, record.mode, record.close_detail) == ("web", "terminate", None)
    finally:
        await demo.close()
