"""Fuzzing the ClientHello reader: any bytes get NeedMore, a hello or a Reject.

The fast profile runs by default; ``SNIUI_FUZZ=deep`` runs many more
examples for a soak before a release.
"""

from __future__ import annotations

import os
import ssl

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sniui.tls.clienthello import (
    NEED_MORE,
    ClientHello,
    ClientHelloReader,
    NeedMore,
    Reject,
    parse_client_hello,
)
from tests.hello_samples import frame, frame_evenly, handshake_message, length_fields, python_hello

DEEP = os.environ.get("SNIUI_FUZZ") == "deep"
fuzz_settings = settings(
    max_examples=5000 if DEEP else 200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

ANSWERS = (NeedMore, ClientHello, Reject)

SAMPLES = {
    "tls13-sni-alpn": python_hello("shop.example.com", ["h2", "http/1.1"])[0],
    "tls12-sni": python_hello("legacy.example.net", None, ssl.TLSVersion.TLSv1_2)[0],
    "no-sni": python_hello(None, ["http/1.1"])[0],
}
SAMPLES["tls13-three-records"] = frame_evenly(handshake_message(SAMPLES["tls13-sni-alpn"]), 3)

samples = st.sampled_from(sorted(SAMPLES)).map(SAMPLES.__getitem__)


def feed_in_chunks(stream: bytes, cut_points: list[int], max_size: int = 16384) -> object:
    reader = ClientHelloReader(max_size)
    answer = NEED_MORE
    previous = 0
    for cut in [*sorted(cut_points), len(stream)]:
        answer = reader.feed(stream[previous:cut])
        previous = cut
    return answer


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_truncation_needs_more(name: str) -> None:
    stream = SAMPLES[name]
    for end in range(len(stream)):
        assert parse_client_hello(stream[:end]) is NEED_MORE, f"decided at {end} of {len(stream)} bytes"
    assert isinstance(parse_client_hello(stream), ClientHello)


@fuzz_settings
@given(stream=samples, data=st.data())
def test_chunking_never_changes_the_answer(stream: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=40))
    assert feed_in_chunks(stream, cuts) == parse_client_hello(stream)


@fuzz_settings
@given(stream=samples, data=st.data())
def test_random_byte_changes_never_raise(stream: bytes, data: st.DataObject) -> None:
    mutated = bytearray(stream)
    positions = data.draw(st.lists(st.integers(0, len(stream) - 1), min_size=1, max_size=8))
    for position in positions:
        mutated[position] = data.draw(st.integers(0, 255))
    answer = parse_client_hello(bytes(mutated))
    assert isinstance(answer, ANSWERS)
    cuts = data.draw(st.lists(st.integers(0, len(mutated)), max_size=10))
    assert feed_in_chunks(bytes(mutated), cuts) == answer


@fuzz_settings
@given(data=st.data())
def test_lying_length_fields_never_raise(data: st.DataObject) -> None:
    stream = data.draw(st.sampled_from(["tls13-sni-alpn", "tls12-sni", "no-sni"]).map(SAMPLES.__getitem__))
    offset, size = data.draw(st.sampled_from(length_fields(stream)))
    original = int.from_bytes(stream[offset : offset + size], "big")
    lie = data.draw(
        st.one_of(
            st.integers(0, 2 ** (8 * size) - 1),
            st.integers(max(0, original - 3), min(2 ** (8 * size) - 1, original + 3)),
        )
    )
    mutated = stream[:offset] + lie.to_bytes(size, "big") + stream[offset + size :]
    answer = parse_client_hello(mutated)
    assert isinstance(answer, ANSWERS)
    if lie != original:
        # Every length is cross-checked by another, so no lie goes unnoticed.
        assert answer != parse_client_hello(stream)


@fuzz_settings
@given(stream=samples, junk=st.binary(min_size=1, max_size=2000))
def test_junk_after_the_hello_is_ignored(stream: bytes, junk: bytes) -> None:
    clean = parse_client_hello(stream)
    reader = ClientHelloReader()
    assert reader.feed(stream + junk) == clean
    assert reader.buffered == stream + junk


@fuzz_settings
@given(stream=samples, data=st.data())
def test_any_record_framing_reads_the_same_hello(stream: bytes, data: st.DataObject) -> None:
    message = handshake_message(stream)
    sizes = data.draw(st.lists(st.integers(1, len(message)), max_size=30))
    reframed = frame(message, sizes, version=data.draw(st.sampled_from([0x0301, 0x0303])))
    answer = parse_client_hello(reframed)
    assert isinstance(answer, ClientHello), answer
    expected = parse_client_hello(stream)
    assert (answer.sni, answer.alpn, answer.extensions, answer.cipher_suites) == (
        expected.sni,
        expected.alpn,
        expected.extensions,
        expected.cipher_suites,
    )
    assert answer.consumed == len(reframed)


@fuzz_settings
@given(
    header=st.sampled_from([b"", b"\x16", b"\x16\x03\x01", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", b"GE"]),
    tail=st.binary(max_size=600),
    data=st.data(),
)
def test_arbitrary_bytes_never_raise(header: bytes, tail: bytes, data: st.DataObject) -> None:
    stream = header + tail
    answer = parse_client_hello(stream, max_size=512)
    assert isinstance(answer, ANSWERS)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    assert feed_in_chunks(stream, cuts, max_size=512) == answer
