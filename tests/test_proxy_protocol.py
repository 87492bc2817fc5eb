"""PROXY protocol encoders and reader, checked against headers written by hand from the spec."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sniui.engine.proxy_protocol import (
    NEED_MORE,
    NeedMore,
    ProxyHeader,
    ProxyHeaderReader,
    Reject,
    encode_v1,
    encode_v2,
)

SIG = b"\r\n\r\n\x00\r\nQUIT\n"
FUZZ = settings(max_examples=int(os.environ.get("SNIUI_FUZZ_EXAMPLES", "300")), deadline=None)

# Written byte by byte from proxy-protocol.txt section 2.2, not produced by the encoder.
V2_TCP4 = (
    SIG
    + b"\x21"  # version 2, PROXY
    + b"\x11"  # AF_INET, STREAM
    + b"\x00\x0c"  # 12 address bytes follow
    + bytes([192, 0, 2, 1])
    + bytes([198, 51, 100, 2])
    + b"\xdc\x04"  # 56324
    + b"\x01\xbb"  # 443
)
V2_TCP6 = (
    SIG
    + b"\x21"
    + b"\x21"  # AF_INET6, STREAM
    + b"\x00\x24"  # 36 address bytes follow
    + bytes.fromhex("20010db8000000000000000000000001")
    + bytes.fromhex("20010db8000000000000000000000002")
    + b"\xdc\x04"
    + b"\x01\xbb"
)
V1_TCP4 = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"
V1_TCP6 = b"PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n"


def reason_of(result: object) -> object:
    """The reject code, or the result itself when it is not a Reject."""
    return result.reason if isinstance(result, Reject) else result


def read_all(data: bytes, chunk: int | None = None) -> tuple[object, ProxyHeaderReader]:
    reader = ProxyHeaderReader()
    if chunk is None:
        return reader.feed(data), reader
    result: object = NEED_MORE
    for start in range(0, len(data), chunk):
        result = reader.feed(data[start : start + chunk])
        if result is not NEED_MORE:
            break
    return result, reader


# --- encoders -------------------------------------------------------------------------


def test_encode_v1_tcp4_matches_spec_text():
    assert encode_v1(("192.0.2.1", 56324), ("198.51.100.2", 443)) == V1_TCP4


def test_encode_v1_tcp6_matches_spec_text():
    assert encode_v1(("2001:db8::1", 56324), ("2001:db8::2", 443)) == V1_TCP6


def test_encode_v2_tcp4_matches_hand_built_bytes():
    assert encode_v2(("192.0.2.1", 56324), ("198.51.100.2", 443)) == V2_TCP4


def test_encode_v2_tcp6_matches_hand_built_bytes():
    assert encode_v2(("2001:db8::1", 56324), ("2001:db8::2", 443)) == V2_TCP6


def test_ipv4_mapped_addresses_from_a_dual_stack_listener_are_sent_as_tcp4():
    src, dst = ("::ffff:192.0.2.1", 56324), ("::ffff:198.51.100.2", 443)
    assert encode_v1(src, dst) == V1_TCP4
    assert encode_v2(src, dst) == V2_TCP4


def test_mixed_families_are_sent_as_tcp6_with_the_ipv4_end_mapped():
    header = encode_v1(("192.0.2.1", 56324), ("2001:db8::2", 443))
    assert header == b"PROXY TCP6 ::ffff:c000:201 2001:db8::2 56324 443\r\n"
    result, _ = read_all(encode_v2(("192.0.2.1", 56324), ("2001:db8::2", 443)))
    assert isinstance(result, ProxyHeader)
    assert result.source == ("::ffff:c000:201", 56324)


def test_bracketed_ipv6_is_accepted_by_the_encoders():
    assert encode_v1(("[2001:db8::1]", 56324), ("[2001:db8::2]", 443)) == V1_TCP6


@pytest.mark.parametrize(
    "source, destination",
    [
        (("example.com", 1), ("192.0.2.1", 2)),
        (("192.0.2.1", 70000), ("192.0.2.2", 2)),
        (("192.0.2.1", -1), ("192.0.2.2", 2)),
    ],
)
def test_encoders_refuse_what_the_wire_format_cannot_carry(source, destination):
    with pytest.raises(ValueError):
        encode_v1(source, destination)
    with pytest.raises(ValueError):
        encode_v2(source, destination)


# --- reader: valid headers ------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, source, destination",
    [
        (V1_TCP4, ("192.0.2.1", 56324), ("198.51.100.2", 443)),
        (V1_TCP6, ("2001:db8::1", 56324), ("2001:db8::2", 443)),
        (V2_TCP4, ("192.0.2.1", 56324), ("198.51.100.2", 443)),
        (V2_TCP6, ("2001:db8::1", 56324), ("2001:db8::2", 443)),
    ],
)
@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_reader_decodes_spec_headers_whole_and_in_chunks(raw, source, destination, chunk):
    hello_start = b"\x16\x03\x01\x02\x00\x01"
    result, reader = read_all(raw + hello_start, chunk)
    assert result == ProxyHeader(source, destination, consumed=len(raw))
    # Chunked feeding stops at the header, so only what was fed shows up.
    fed = len(raw) + len(hello_start) if chunk is None else -(-len(raw) // chunk) * chunk
    assert reader.remainder == (raw + hello_start)[len(raw) : fed]


def test_one_byte_chunks_answer_need_more_until_the_last_byte():
    reader = ProxyHeaderReader()
    answers = [reader.feed(V2_TCP6[i : i + 1]) for i in range(len(V2_TCP6))]
    assert all(answer is NEED_MORE for answer in answers[:-1])
    assert isinstance(answers[-1], ProxyHeader)


@pytest.mark.parametrize("encode", [encode_v1, encode_v2])
@pytest.mark.parametrize(
    "source, destination",
    [
        (("10.1.2.3", 40000), ("10.9.8.7", 8443)),
        (("0.0.0.0", 0), ("255.255.255.255", 65535)),
        (("fe80::1", 1), ("2001:db8:ffff::abcd", 65535)),
        (("::", 0), ("::1", 443)),
    ],
)
def test_round_trip(encode, source, destination):
    raw = encode(source, destination)
    result, reader = read_all(raw + b"rest")
    assert result == ProxyHeader(source, destination, len(raw))
    assert reader.remainder == b"rest"


def test_bytes_fed_after_the_header_accumulate_in_remainder():
    reader = ProxyHeaderReader()
    first = reader.feed(V1_TCP4 + b"ab")
    assert reader.feed(b"cd") == first
    assert reader.remainder == b"abcd"


@pytest.mark.parametrize(
    "raw", [b"PROXY UNKNOWN\r\n", b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"]
)
def test_v1_unknown_short_and_long_form_carry_no_addresses(raw):
    result, _ = read_all(raw)
    assert result == ProxyHeader(None, None, len(raw))


def test_v2_local_command_ignores_the_addresses():
    raw = SIG + b"\x20\x11\x00\x0c" + bytes(12)
    result, _ = read_all(raw + b"x")
    assert result == ProxyHeader(None, None, len(raw))


def test_v2_unspec_family_is_accepted_without_addresses():
    raw = SIG + b"\x21\x00\x00\x00"
    assert read_all(raw)[0] == ProxyHeader(None, None, 16)


def test_v2_unix_family_is_accepted_without_addresses():
    raw = SIG + b"\x21\x31\x00\xd8" + bytes(216)
    assert read_all(raw)[0] == ProxyHeader(None, None, len(raw))


def test_v2_tlvs_are_skipped_but_consumed():
    # PP2_TYPE_ALPN (0x01) "h2" and PP2_TYPE_AUTHORITY (0x02) "example.com".
    tlvs = b"\x01\x00\x02h2" + b"\x02\x00\x0bexample.com"
    raw = SIG + b"\x21\x11" + (12 + len(tlvs)).to_bytes(2, "big") + V2_TCP4[16:] + tlvs
    result, reader = read_all(raw + b"\x16\x03")
    assert result == ProxyHeader(("192.0.2.1", 56324), ("198.51.100.2", 443), len(raw))
    assert reader.remainder == b"\x16\x03"


# --- reader: rejections ---------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"\x16\x03\x01\x00\xa5\x01",  # a ClientHello without a header
        b"GET / HTTP/1.1\r\n",
        b"proxy TCP4 ",  # the signature is case sensitive
        b"\r\n\r\n\x00\r\nQUIX",
    ],
)
def test_missing_header_is_rejected_as_soon_as_it_cannot_be_one(raw):
    assert reason_of(read_all(raw, chunk=1)[0]) == "proxy_missing"


@pytest.mark.parametrize(
    "line",
    [
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 9\r\n",
        b"PROXY TCP4 192.0.2.1  198.51.100.2 56324 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 65536\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 +1 443\r\n",
        b"PROXY TCP4 192.000.2.1 198.51.100.2 56324 443\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.2 56324 443\r\n",
        b"PROXY TCP6 192.0.2.1 2001:db8::2 56324 443\r\n",
        b"PROXY TCP6 fe80::1%eth0 2001:db8::2 56324 443\r\n",
        b"PROXY UDP4 192.0.2.1 198.51.100.2 56324 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 4\xc3\xa9\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n",
        b"PROXY TCP4 192.0.2.1\r198.51.100.2 56324 443\r\n",
        b"PROXY " + b"A" * 120,
    ],
)
def test_malformed_v1_is_rejected(line):
    result = read_all(line)[0]
    assert reason_of(result) == "proxy_malformed"
    assert result.detail and result.alert is None  # a load balancer gets no TLS alert
    assert reason_of(read_all(line, chunk=1)[0]) == "proxy_malformed"


@pytest.mark.parametrize(
    "raw, reason",
    [
        (SIG + b"\x31\x11\x00\x0c" + bytes(12), "proxy_unsupported_version"),
        (SIG + b"\x22\x11\x00\x0c" + bytes(12), "proxy_malformed"),  # command 2
        (SIG + b"\x21\x11\x00\x08" + bytes(8), "proxy_malformed"),  # short IPv4 block
        (SIG + b"\x21\x21\x00\x0c" + bytes(12), "proxy_malformed"),  # short IPv6 block
        (SIG + b"\x21\x11\xff\xff", "proxy_too_large"),
    ],
)
def test_bad_v2_is_rejected_with_a_reason(raw, reason):
    assert reason_of(read_all(raw)[0]) == reason


def test_v2_larger_than_max_size_is_rejected_before_the_body_arrives():
    reader = ProxyHeaderReader(max_size=64)
    assert reason_of(reader.feed(SIG + b"\x21\x11\x00\x40")) == "proxy_too_large"


def test_v2_exactly_max_size_is_accepted():
    tlv = b"\x04" + (21).to_bytes(2, "big") + bytes(21)  # PP2_TYPE_NOOP padding
    body = V2_TCP4[16:] + tlv
    raw = SIG + b"\x21\x11\x00\x24" + body
    assert len(raw) == 52
    assert isinstance(ProxyHeaderReader(max_size=52).feed(raw), ProxyHeader)


def test_reject_is_sticky():
    reader = ProxyHeaderReader()
    first = reader.feed(b"\x16\x03\x01")
    assert reader.feed(V1_TCP4) == first
    assert reader.remainder == b""


# --- fuzz -----------------------------------------------------------------------------

VALID = [V1_TCP4, V1_TCP6, V2_TCP4, V2_TCP6, b"PROXY UNKNOWN\r\n"]


def chunks_of(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:])]


@FUZZ
@given(st.binary(max_size=700), st.lists(st.integers(0, 700), max_size=8))
def test_garbage_never_raises(data, cuts):
    reader = ProxyHeaderReader()
    for piece in chunks_of(data, cuts):
        result = reader.feed(piece)
        assert isinstance(result, (NeedMore, ProxyHeader, Reject))
        if isinstance(result, ProxyHeader):
            assert 0 < result.consumed <= len(data)


@FUZZ
@given(st.sampled_from(VALID), st.data())
def test_every_truncation_of_a_valid_header_needs_more(raw, data):
    cut = data.draw(st.integers(0, len(raw) - 1))
    assert ProxyHeaderReader().feed(raw[:cut]) is NEED_MORE


@FUZZ
@given(st.sampled_from(VALID), st.binary(max_size=64), st.lists(st.integers(0, 200), max_size=6))
def test_valid_header_then_anything_splits_exactly(raw, tail, cuts):
    reader = ProxyHeaderReader()
    results = [reader.feed(piece) for piece in chunks_of(raw + tail, cuts)]
    final = results[-1]
    assert isinstance(final, ProxyHeader) and final.consumed == len(raw)
    assert reader.remainder == tail


@FUZZ
@given(st.sampled_from(VALID), st.integers(0, 200), st.integers(0, 255))
def test_single_byte_corruption_never_raises(raw, position, value):
    corrupt = bytearray(raw)
    corrupt[position % len(raw)] = value
    result = ProxyHeaderReader().feed(bytes(corrupt))
    assert isinstance(result, (NeedMore, ProxyHeader, Reject))
