"""The one-pass reader of the common case agrees with the field-by-field reference.

`_parse_body_fast` may only answer "the same fields as the reference" or
"ask the reference" (None); it must never accept a body the reference refuses.
"""

from __future__ import annotations

import ssl

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sniui.tls import clienthello
from sniui.tls.clienthello import ClientHello, ClientHelloReader, _parse_body_fast, _parse_client_hello_body, _Refused
from tests.hello_samples import HelloParts, frame, handshake_message, length_fields, python_hello, server_name_data

SAMPLES = [
    python_hello("shop.example.com", ["h2", "http/1.1"])[0],
    python_hello("legacy.example.net", None, ssl.TLSVersion.TLSv1_2)[0],
    python_hello(None, ["http/1.1"])[0],
]
FIELDS = ("sni", "alpn", "legacy_version", "supported_versions", "cipher_suites", "extensions", "ech")


def reference(body: bytes):
    try:
        fields = _parse_client_hello_body(memoryview(body))
    except _Refused as refused:
        return refused.reject
    return tuple(fields[name] for name in FIELDS)


def assert_agrees(body: bytes) -> None:
    fast = _parse_body_fast(body, 0, len(body))
    expected = reference(body)
    if fast is not None:
        assert fast == expected


def test_real_hellos_take_the_fast_path_and_agree() -> None:
    for stream in SAMPLES:
        body = handshake_message(stream)[4:]
        fast = _parse_body_fast(body, 0, len(body))
        assert fast is not None
        assert fast == reference(body)


def test_whole_hello_in_one_chunk_is_not_copied() -> None:
    stream = SAMPLES[0]
    reader = ClientHelloReader()
    assert isinstance(reader.feed(stream), ClientHello)
    assert reader.buffered is stream


def test_the_general_path_gives_the_same_hello(monkeypatch) -> None:
    stream = SAMPLES[0]
    fast = ClientHelloReader().feed(stream)
    monkeypatch.setattr(clienthello, "_parse_body_fast", lambda *args: None)
    monkeypatch.setattr(ClientHelloReader, "_read_whole", lambda self, data: None)
    assert ClientHelloReader().feed(stream) == fast
    assert ClientHelloReader().feed(frame(handshake_message(stream), [100, 7])) != fast   # consumed differs
    reframed = ClientHelloReader().feed(frame(handshake_message(stream), [100, 7]))
    assert (reframed.sni, reframed.extensions, reframed.cipher_suites) == (fast.sni, fast.extensions, fast.cipher_suites)


def test_names_the_reference_refuses_are_not_accepted() -> None:
    parts = HelloParts.parse(handshake_message(SAMPLES[0]))
    for name in (b"a..b", b".", b"x" * 64, b"a." * 127 + b"b", b"bad name", b"\xff", b"ok.", b"OK.Example", b"a_b"):
        assert_agrees(parts.replace(0, server_name_data(name)).message()[4:])
    assert_agrees(parts.replace(0, server_name_data(b"a", b"b")).message()[4:])
    assert_agrees(parts.replace(0, server_name_data(b"a", name_type=1)).message()[4:])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_bodies_agree_with_the_reference(data: st.DataObject) -> None:
    body = bytearray(handshake_message(data.draw(st.sampled_from(SAMPLES)))[4:])
    for position in data.draw(st.lists(st.integers(0, len(body) - 1), min_size=1, max_size=6)):
        body[position] = data.draw(st.integers(0, 255))
    assert_agrees(bytes(body[: data.draw(st.integers(0, len(body)))]))
    assert_agrees(bytes(body))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_lying_lengths_agree_with_the_reference(data: st.DataObject) -> None:
    stream = data.draw(st.sampled_from(SAMPLES))
    offset, size = data.draw(st.sampled_from(length_fields(stream)))
    lie = data.draw(st.integers(0, 2 ** (8 * size) - 1))
    mutated = stream[:offset] + lie.to_bytes(size, "big") + stream[offset + size:]
    if offset >= 9:
        assert_agrees(mutated[9:])


def test_count_not_grease_agrees_with_is_grease() -> None:
    from sniui.tls.clienthello import count_not_grease, is_grease

    values = tuple(range(0, 0x10000, 7)) + (0x0A0A, 0xFAFA, 0x1A1A, 0x0A0B)
    assert count_not_grease(values) == sum(1 for v in values if not is_grease(v))
