"""The sans-IO ClientHello reader against hellos from real TLS clients."""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field

import pytest

from sniui.tls import alerts
from sniui.tls.clienthello import (
    NEED_MORE,
    ClientHello,
    ClientHelloReader,
    NeedMore,
    Reject,
    parse_client_hello,
)
from tests.hello_samples import (
    OPENSSL,
    HelloParts,
    alpn_data,
    frame,
    frame_evenly,
    handshake_message,
    openssl_hello,
    python_hello,
    record,
    server_name_data,
    split_records,
    sslv2_compatible_hello,
    supported_versions_data,
    u16_vector,
)

TLS_1_2 = 0x0303
TLS_1_3 = 0x0304
EXT_SERVER_NAME = 0
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43
EXT_ECH = 0xFE0D
SCSV_RENEGOTIATION = 0x00FF

realclient = pytest.mark.realclient
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl binary not installed")


@dataclass
class Sample:
    """A real hello and what its client was asked to offer."""

    stream: bytes
    sni: str | None
    alpn: tuple[str, ...]
    offers_tls13: bool
    cipher_suites: set[int] | None = field(default=None)


def _python_sample(server_hostname, alpn, maximum_version=None) -> Sample:
    stream, context = python_hello(server_hostname, alpn, maximum_version)
    # get_ciphers() ids carry the 2-byte IANA code in their low 16 bits; a
    # TLS 1.2-only client leaves the TLS 1.3 suites out of its offer.
    suites = {
        cipher["id"] & 0xFFFF
        for cipher in context.get_ciphers()
        if maximum_version is None or cipher["protocol"] != "TLSv1.3"
    }
    return Sample(
        stream,
        sni=server_hostname.lower().rstrip(".") if server_hostname else None,
        alpn=tuple(alpn or ()),
        offers_tls13=maximum_version is None,
        cipher_suites=suites,
    )


PYTHON_SAMPLES = {
    "python-tls13-sni-alpn": lambda: _python_sample("shop.example.com", ["h2", "http/1.1"]),
    "python-tls13-no-sni": lambda: _python_sample(None, None),
    "python-tls12-only": lambda: _python_sample(
        "api.example.org", ["http/1.1"], maximum_version=ssl.TLSVersion.TLSv1_2
    ),
}

@dataclass
class OpensslRun:
    s_client_args: list[str]
    sni: str | None
    alpn: tuple[str, ...]
    offers_tls13: bool


OPENSSL_SAMPLES = {
    # openssl sends the name as typed: the reader must lowercase it and
    # drop the trailing dot.
    "openssl-sni-alpn": OpensslRun(
        ["-servername", "Shop.Example.COM.", "-alpn", "h2,http/1.1"], "shop.example.com", ("h2", "http/1.1"), True
    ),
    "openssl-tls12": OpensslRun(["-servername", "legacy.example.net", "-tls1_2"], "legacy.example.net", (), False),
    "openssl-no-sni": OpensslRun(["-noservername", "-alpn", "http/1.1"], None, ("http/1.1",), True),
}

_sample_cache: dict[str, Sample] = {}


def sample(name: str) -> Sample:
    if name not in _sample_cache:
        if name in PYTHON_SAMPLES:
            _sample_cache[name] = PYTHON_SAMPLES[name]()
        else:
            run = OPENSSL_SAMPLES[name]
            _sample_cache[name] = Sample(openssl_hello(*run.s_client_args), run.sni, run.alpn, run.offers_tls13)
    return _sample_cache[name]


def feed_whole(stream: bytes) -> tuple[object, ClientHelloReader, bytes]:
    reader = ClientHelloReader()
    return reader.feed(stream), reader, stream


def feed_byte_by_byte(stream: bytes) -> tuple[object, ClientHelloReader, bytes]:
    reader = ClientHelloReader()
    for index in range(len(stream) - 1):
        assert reader.feed(stream[index : index + 1]) is NEED_MORE, f"decided early at byte {index}"
    return reader.feed(stream[-1:]), reader, stream


def feed_as_three_records(stream: bytes) -> tuple[object, ClientHelloReader, bytes]:
    reframed = frame_evenly(handshake_message(stream), 3)
    assert len(split_records(reframed)[0]) == 3
    reader = ClientHelloReader()
    return reader.feed(reframed), reader, reframed


FEEDERS = {"whole": feed_whole, "byte-by-byte": feed_byte_by_byte, "three-records": feed_as_three_records}

SAMPLE_PARAMS = [pytest.param(name, id=name) for name in PYTHON_SAMPLES] + [
    pytest.param(name, id=name, marks=[realclient, needs_openssl]) for name in OPENSSL_SAMPLES
]


@pytest.mark.parametrize("feeder", FEEDERS)
@pytest.mark.parametrize("sample_name", SAMPLE_PARAMS)
def test_real_hello_is_read(sample_name: str, feeder: str) -> None:
    hello_sample = sample(sample_name)
    result, reader, fed = FEEDERS[feeder](hello_sample.stream)

    assert isinstance(result, ClientHello), result
    assert result.sni == hello_sample.sni
    assert result.alpn == hello_sample.alpn
    assert result.legacy_version == TLS_1_2
    if hello_sample.offers_tls13:
        assert result.supported_versions[:2] == (TLS_1_3, TLS_1_2)
        assert EXT_SUPPORTED_VERSIONS in result.extensions
    else:
        assert result.supported_versions == ()
        assert TLS_1_3 not in result.supported_versions
    assert (EXT_SERVER_NAME in result.extensions) == (hello_sample.sni is not None)
    assert (EXT_ALPN in result.extensions) == bool(hello_sample.alpn)
    assert not result.ech
    if hello_sample.cipher_suites is not None:
        assert set(result.cipher_suites) - {SCSV_RENEGOTIATION} == hello_sample.cipher_suites

    message = handshake_message(hello_sample.stream)
    assert result.hello_length == len(message) - 4
    assert reader.buffered == fed
    assert result.consumed == len(fed)
    assert result.record_version == int.from_bytes(fed[1:3], "big")


@pytest.mark.parametrize("sample_name", SAMPLE_PARAMS)
def test_same_hello_whatever_the_framing(sample_name: str) -> None:
    stream = sample(sample_name).stream
    message = handshake_message(stream)
    expected = parse_client_hello(stream)
    for framed in (
        frame(message, [1] * len(message)),  # a record per byte
        frame(message, [7, 100, 1, 50]),
        frame_evenly(message, 2, version=0x0303),
    ):
        result = parse_client_hello(framed)
        assert isinstance(result, ClientHello), result
        assert result.sni == expected.sni
        assert result.extensions == expected.extensions
        assert result.cipher_suites == expected.cipher_suites
        assert result.consumed == len(framed)


def test_bytes_after_the_hello_are_kept_but_not_consumed() -> None:
    stream = sample("python-tls13-sni-alpn").stream
    change_cipher_spec = record(20, b"\x01")
    early_data = record(23, b"\x00" * 300)
    reader = ClientHelloReader()
    result = reader.feed(stream + change_cipher_spec + early_data)
    assert isinstance(result, ClientHello)
    assert result.consumed == len(stream)
    assert reader.buffered == stream + change_cipher_spec + early_data


def test_a_final_answer_is_sticky_and_stops_buffering() -> None:
    stream = sample("python-tls13-sni-alpn").stream
    reader = ClientHelloReader()
    first = reader.feed(stream)
    assert reader.feed(b"more bytes") is first
    assert reader.buffered == stream
    assert reader.result is first

    refusing = ClientHelloReader()
    refusal = refusing.feed(b"GET / HTTP/1.1\r\n")
    assert refusing.feed(stream) is refusal
    assert refusing.buffered == b"GET / HTTP/1.1\r\n"


def test_empty_feeds_wait() -> None:
    reader = ClientHelloReader()
    assert reader.feed(b"") is NEED_MORE
    assert isinstance(reader.feed(b""), NeedMore)
    assert reader.buffered == b""


def hello_parts(sample_name: str = "python-tls13-sni-alpn") -> HelloParts:
    return HelloParts.parse(handshake_message(sample(sample_name).stream))


def test_grease_versions_are_filtered_but_grease_extensions_listed() -> None:
    grease_extension = 0x2A2A
    parts = hello_parts().replace(EXT_SUPPORTED_VERSIONS, supported_versions_data(0x3A3A, TLS_1_3, TLS_1_2))
    parts = parts.replace(grease_extension, b"")
    result = parse_client_hello(parts.stream())
    assert isinstance(result, ClientHello), result
    assert result.supported_versions == (TLS_1_3, TLS_1_2)
    assert result.extensions[-1] == grease_extension


def test_encrypted_client_hello_is_noticed() -> None:
    result = parse_client_hello(hello_parts().replace(EXT_ECH, b"\x00" * 40).stream())
    assert isinstance(result, ClientHello), result
    assert result.ech
    assert result.sni == "shop.example.com"


def test_hello_without_extensions_is_accepted() -> None:
    parts = hello_parts()
    body = parts.prefix
    message = b"\x01" + len(body).to_bytes(3, "big") + body
    result = parse_client_hello(frame(message, []))
    assert isinstance(result, ClientHello), result
    assert (result.sni, result.alpn, result.extensions) == (None, (), ())


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (b"WWW.Example.COM", "www.example.com"),
        (b"example.com.", "example.com"),
        (b"my_service.internal", "my_service.internal"),
        (b"192.0.2.1", "192.0.2.1"),
    ],
)
def test_server_name_is_normalised(name: bytes, expected: str) -> None:
    result = parse_client_hello(hello_parts().replace(EXT_SERVER_NAME, server_name_data(name)).stream())
    assert isinstance(result, ClientHello), result
    assert result.sni == expected


def assert_rejected(stream: bytes, reason: str, alert: int | None, max_size: int = 16384) -> Reject:
    result = parse_client_hello(stream, max_size)
    assert isinstance(result, Reject), result
    assert (result.reason, result.alert) == (reason, alert), result
    assert result.detail
    # Chunking must not change the verdict.
    reader = ClientHelloReader(max_size)
    for index in range(len(stream)):
        chunked = reader.feed(stream[index : index + 1])
        if not isinstance(chunked, NeedMore):
            break
    assert chunked == result
    return result


@pytest.mark.parametrize(
    "stream",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /api HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"CONNECT example.com:443 HTTP/1.1\r\n",
        b"OPTIONS * HTTP/1.1\r\n",
    ],
    ids=lambda stream: stream.split(b" ")[0].decode(),
)
def test_plain_http_is_recognised(stream: bytes) -> None:
    assert_rejected(stream, "http", None)


@pytest.mark.parametrize(
    "stream",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"\x00\x00\x00\x00",
        b"GETX / HTTP/1.1",
        b"get / http/1.1",
        b"\x15\x03\x03\x00\x02\x02\x28",
    ],
    ids=["ssh", "zeros", "not-a-method", "lowercase", "alert-record"],
)
def test_other_protocols_are_not_tls(stream: bytes) -> None:
    assert_rejected(stream, "not_tls", None)


def test_sslv2_hello_is_refused_with_protocol_version() -> None:
    assert_rejected(sslv2_compatible_hello(), "sslv2", alerts.PROTOCOL_VERSION)


def test_too_large_is_decided_from_the_header() -> None:
    stream = sample("python-tls13-sni-alpn").stream
    hello_length = len(handshake_message(stream)) - 4
    reader = ClientHelloReader(max_size=hello_length - 1)
    result = reader.feed(stream[:9])  # record header + handshake header only
    assert isinstance(result, Reject)
    assert (result.reason, result.alert) == ("too_large", alerts.ILLEGAL_PARAMETER)
    assert str(hello_length) in result.detail

    # The boundary itself is allowed.
    assert isinstance(parse_client_hello(stream, max_size=hello_length), ClientHello)


def test_huge_claimed_length_is_refused_without_waiting() -> None:
    claims_40000 = b"\x16\x03\x01\x40\x00" + b"\x01" + (40000).to_bytes(3, "big")
    result = assert_rejected(claims_40000, "too_large", alerts.ILLEGAL_PARAMETER)
    assert "40000" in result.detail and "16384" in result.detail


def test_buffered_bytes_are_bounded_even_with_tiny_records() -> None:
    message = handshake_message(sample("python-tls13-sni-alpn").stream)
    one_byte_records = frame(message, [1] * len(message))
    max_size = len(message)  # the hello fits; its framing does not
    result = parse_client_hello(one_byte_records, max_size)
    assert isinstance(result, Reject), result
    assert result.reason == "too_large"
    reader = ClientHelloReader(max_size)
    for index in range(len(one_byte_records)):
        if not isinstance(reader.feed(one_byte_records[index : index + 1]), NeedMore):
            break
    assert len(reader.buffered) < max_size + 4 + 256 * 5


def _with_handshake_header(stream: bytes, message_type: int | None = None, length: int | None = None) -> bytes:
    patched = bytearray(stream)
    if message_type is not None:
        patched[5] = message_type
    if length is not None:
        patched[6:9] = length.to_bytes(3, "big")
    return bytes(patched)


def test_server_hello_first_is_not_a_client_hello() -> None:
    stream = sample("python-tls13-sni-alpn").stream
    server_hello_type = 2
    assert_rejected(
        _with_handshake_header(stream, message_type=server_hello_type), "not_client_hello", alerts.UNEXPECTED_MESSAGE
    )


def _malformed_cases() -> dict[str, bytes]:
    stream = sample("python-tls13-sni-alpn").stream
    parts = hello_parts()
    message = parts.message()
    hello_length = len(message) - 4

    truncated_extension = bytearray(message)
    # The last extension claims one byte more than the block holds.
    _, last_data = parts.extensions[-1]
    last_length_at = len(message) - len(last_data) - 2
    truncated_extension[last_length_at : last_length_at + 2] = (len(last_data) + 1).to_bytes(2, "big")

    duplicate = HelloParts(1, parts.prefix, [*parts.extensions, parts.extensions[0]])

    session_id_too_long = bytearray(message)
    session_id_length_at = 4 + 2 + 32
    session_id_too_long[session_id_length_at] = 33

    body_with_extra_byte = message[4:] + b"\x00"
    extra_after_extensions = b"\x01" + len(body_with_extra_byte).to_bytes(3, "big") + body_with_extra_byte

    return {
        "handshake-length-shorter-than-record": _with_handshake_header(stream, length=hello_length - 10),
        "record-longer-than-hello": frame(message + b"\x00" * 5, []),
        "truncated-extension": frame(bytes(truncated_extension), []),
        "duplicate-extension": duplicate.stream(),
        "session-id-too-long": frame(bytes(session_id_too_long), []),
        "bytes-after-extensions": frame(extra_after_extensions, []),
        "empty-alpn-protocol": parts.replace(EXT_ALPN, alpn_data(b"h2", b"")).stream(),
        "empty-server-name-list": parts.replace(EXT_SERVER_NAME, u16_vector(b"")).stream(),
        "odd-supported-versions": parts.replace(EXT_SUPPORTED_VERSIONS, b"\x03\x03\x04\x03").stream(),
        "hello-too-short": frame(b"\x01\x00\x00\x05" + b"\x03\x03\x00\x00\x00", []),
    }


@pytest.mark.parametrize(
    ("case", "detail_mentions"),
    [
        ("handshake-length-shorter-than-record", "10 bytes past the end"),
        ("record-longer-than-hello", "5 bytes past the end"),
        ("truncated-extension", "bytes, extensions has"),
        ("duplicate-extension", "extension 0 appears more than once"),
        ("session-id-too-long", "legacy_session_id is 33 bytes"),
        ("bytes-after-extensions", "1 unexpected bytes after ClientHello"),
        ("empty-alpn-protocol", "ALPN protocol name is 0 bytes"),
        ("empty-server-name-list", "server_name list is 0 bytes"),
        ("odd-supported-versions", "supported_versions has odd length"),
        ("hello-too-short", "random needs 32 bytes"),
    ],
)
def test_malformed_hello_is_a_decode_error(case: str, detail_mentions: str) -> None:
    result = assert_rejected(_malformed_cases()[case], "malformed", alerts.DECODE_ERROR)
    assert detail_mentions in result.detail


def _bad_record_cases() -> dict[str, tuple[bytes, int]]:
    message = handshake_message(sample("python-tls13-sni-alpn").stream)
    half = len(message) // 2
    first, second = frame(message[:half], []), message[half:]
    rest = record(22, second)
    return {
        "alert-interleaved": (first + record(21, b"\x01\x00") + rest, alerts.UNEXPECTED_MESSAGE),
        "change-cipher-spec-interleaved": (first + record(20, b"\x01") + rest, alerts.UNEXPECTED_MESSAGE),
        "empty-record": (first + record(22, b"") + rest, alerts.UNEXPECTED_MESSAGE),
        "record-version-2": (first + record(22, second, version=0x0200), alerts.PROTOCOL_VERSION),
        "record-over-16k": (b"\x16\x03\x01\x40\x01" + message, alerts.RECORD_OVERFLOW),
    }


@pytest.mark.parametrize(
    "case",
    ["alert-interleaved", "change-cipher-spec-interleaved", "empty-record", "record-version-2", "record-over-16k"],
)
def test_bad_records_are_refused(case: str) -> None:
    stream, alert = _bad_record_cases()[case]
    assert_rejected(stream, "bad_record", alert)


@pytest.mark.parametrize(
    ("server_name", "alert"),
    [
        (server_name_data(b"evil.com\x00.example.com"), alerts.UNRECOGNIZED_NAME),
        (server_name_data(b"evil.com example.com"), alerts.UNRECOGNIZED_NAME),
        (server_name_data(b"example.com/admin"), alerts.UNRECOGNIZED_NAME),
        (server_name_data(b"[2001:db8::1]"), alerts.UNRECOGNIZED_NAME),
        (server_name_data("bücher.example".encode()), alerts.UNRECOGNIZED_NAME),
        (server_name_data(b"a..example.com"), alerts.UNRECOGNIZED_NAME),
        (server_name_data(b"."), alerts.UNRECOGNIZED_NAME),
        (server_name_data(b"x" * 64 + b".example.com"), alerts.UNRECOGNIZED_NAME),
        (server_name_data(b"a." * 126 + b"com"), alerts.UNRECOGNIZED_NAME),
        (server_name_data(b"example.com", name_type=1), alerts.DECODE_ERROR),
        (server_name_data(b"a.example.com", b"b.example.com"), alerts.DECODE_ERROR),
    ],
    ids=[
        "nul",
        "space",
        "slash",
        "ipv6",
        "non-ascii",
        "empty-label",
        "only-dot",
        "long-label",
        "long-name",
        "name-type-1",
        "two-names",
    ],
)
def test_bad_server_names_are_refused(server_name: bytes, alert: int) -> None:
    assert_rejected(hello_parts().replace(EXT_SERVER_NAME, server_name).stream(), "bad_sni", alert)


def test_fatal_alert_layout() -> None:
    assert alerts.fatal_alert(alerts.UNRECOGNIZED_NAME) == bytes((21, 3, 3, 0, 2, 2, 112))
    assert alerts.fatal_alert(alerts.DECODE_ERROR, record_version=0x0301) == bytes((21, 3, 1, 0, 2, 2, 50))
    with pytest.raises(ValueError):
        alerts.fatal_alert(256)


@pytest.mark.parametrize(
    ("description", "library_reason"),
    [
        (alerts.UNRECOGNIZED_NAME, "UNRECOGNIZED_NAME"),
        (alerts.HANDSHAKE_FAILURE, "HANDSHAKE_FAILURE"),
        (alerts.PROTOCOL_VERSION, "PROTOCOL_VERSION"),
        (alerts.DECODE_ERROR, "DECODE_ERROR"),
    ],
)
def test_a_real_client_understands_our_alert(description: int, library_reason: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = context.wrap_bio(incoming, outgoing, server_hostname="shop.example.com")
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()
    hello = parse_client_hello(outgoing.read())
    assert isinstance(hello, ClientHello)

    incoming.write(alerts.fatal_alert(description, hello.record_version))
    with pytest.raises(ssl.SSLError) as raised:
        client.do_handshake()
    assert library_reason in (raised.value.reason or ""), raised.value
