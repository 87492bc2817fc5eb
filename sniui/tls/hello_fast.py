"""The one-pass parser of a ClientHello body, for the hellos real clients send.

Why it exists: nearly every connection opens with a well-formed hello, and
reading it through the reference parser in `hello_parse` (a bounds-checked
object and a memoryview slice per field) costs several times more than the
routing decision that follows. This parser walks the caller's bytes once with
plain offsets and `struct`, copying nothing but the values it returns.

It never words a refusal. At the first thing it does not like (a bad length,
an odd server_name list, a name outside the safe alphabet, a repeated
extension) it answers None, and the reader hands the same bytes to the
reference, which finds and words the problem. So the contract is one-sided:
it must accept exactly what the reference accepts, with the same fields, and
the tests in tests/test_clienthello_fast.py hold it to that.
"""

from __future__ import annotations

import struct

from .hello_parse import (
    EXT_ALPN,
    EXT_ENCRYPTED_CLIENT_HELLO,
    EXT_SERVER_NAME,
    EXT_SUPPORTED_VERSIONS,
    GREASE_VALUES,
    HOST_NAME_ALPHABET,
    MAX_HOST_NAME,
    MAX_LABEL,
    MAX_SESSION_ID,
    SNI_NAME_TYPE_HOST_NAME,
)

__all__ = ["parse_body_fast"]

_U16_PAIR = struct.Struct(">HH")
_U16_VECTORS = [struct.Struct(f">{count}H") for count in range(129)]   # the usual list sizes, compiled once


def _u16_list(buf: bytes, pos: int, count: int) -> tuple[int, ...]:
    layout = _U16_VECTORS[count] if count < len(_U16_VECTORS) else struct.Struct(f">{count}H")
    return layout.unpack_from(buf, pos)


def parse_body_fast(buf: bytes, pos: int, end: int) -> tuple | None:
    """The hello body in buf[pos:end], read with offsets and struct in one pass.

    Returns the first seven ClientHello fields (sni … ech) when the body is
    well formed, or None at the first thing that is not: the reference parser
    (`hello_parse.parse_client_hello_body`) then finds and words the problem.
    It must accept exactly what the reference accepts, with the same fields.
    """
    if pos + 35 > end:
        return None
    legacy_version = buf[pos] << 8 | buf[pos + 1]
    session_id_length = buf[pos + 34]
    if session_id_length > MAX_SESSION_ID:
        return None
    pos += 35 + session_id_length                 # legacy_version, random, legacy_session_id
    if pos + 2 > end:
        return None
    suites_length = buf[pos] << 8 | buf[pos + 1]
    pos += 2
    if suites_length < 2 or suites_length & 1 or pos + suites_length > end:
        return None
    cipher_suites = _u16_list(buf, pos, suites_length >> 1)
    pos += suites_length
    if pos >= end:
        return None
    compression_length = buf[pos]
    pos += 1 + compression_length
    if compression_length < 1 or pos > end:
        return None
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    versions: tuple[int, ...] = ()
    ech = False
    if pos == end:
        return sni, alpn, legacy_version, versions, cipher_suites, (), ech
    if pos + 2 > end or pos + 2 + (buf[pos] << 8 | buf[pos + 1]) != end:
        return None
    pos += 2
    types = []
    unpack_pair = _U16_PAIR.unpack_from
    while pos < end:
        if pos + 4 > end:
            return None
        extension_type, length = unpack_pair(buf, pos)
        pos += 4
        data_end = pos + length
        if data_end > end:
            return None
        types.append(extension_type)
        if extension_type == EXT_SERVER_NAME:
            # Exactly one host_name entry, filling the list, filling the extension.
            if (length < 6 or (buf[pos] << 8 | buf[pos + 1]) != length - 2 or buf[pos + 2] != SNI_NAME_TYPE_HOST_NAME
                    or (buf[pos + 3] << 8 | buf[pos + 4]) != length - 5):
                return None
            sni = _host_name_fast(buf[pos + 5:data_end])
            if sni is None:
                return None
        elif extension_type == EXT_ALPN:
            if length < 4 or (buf[pos] << 8 | buf[pos + 1]) != length - 2:
                return None
            protocols = []
            at = pos + 2
            while at < data_end:
                size = buf[at]
                at += 1
                if size == 0 or at + size > data_end:
                    return None
                protocols.append(buf[at:at + size].decode("ascii", "backslashreplace"))
                at += size
            alpn = tuple(protocols)
        elif extension_type == EXT_SUPPORTED_VERSIONS:
            if length < 3 or buf[pos] != length - 1 or length & 1 == 0:
                return None
            offered = _u16_list(buf, pos + 1, (length - 1) >> 1)
            versions = tuple(v for v in offered if v not in GREASE_VALUES)
        elif extension_type == EXT_ENCRYPTED_CLIENT_HELLO:
            ech = True
        pos = data_end
    if len(set(types)) != len(types):
        return None
    return sni, alpn, legacy_version, versions, cipher_suites, tuple(types), ech


def _host_name_fast(raw: bytes) -> str | None:
    """`hello_parse._normalise_host_name` for the names it accepts; None for any it would refuse."""
    if raw.translate(None, HOST_NAME_ALPHABET):
        return None
    name = raw.decode("ascii").lower()
    if name.endswith("."):
        name = name[:-1]
    if not name or len(name) > MAX_HOST_NAME:
        return None
    for label in name.split("."):
        if not label or len(label) > MAX_LABEL:
            return None
    return name
