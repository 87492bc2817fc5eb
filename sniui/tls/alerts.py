"""TLS alert records the router sends before closing a connection it refuses.

The router never completes a handshake on a passthrough route, so these are
plaintext records (RFC 8446 §6): a client still in its first flight can read
them and report a meaningful error instead of "connection reset".
"""

from __future__ import annotations

__all__ = [
    "ACCESS_DENIED",
    "DECODE_ERROR",
    "HANDSHAKE_FAILURE",
    "ILLEGAL_PARAMETER",
    "INTERNAL_ERROR",
    "PROTOCOL_VERSION",
    "RECORD_OVERFLOW",
    "UNEXPECTED_MESSAGE",
    "UNRECOGNIZED_NAME",
    "fatal_alert",
]

# Alert descriptions (RFC 8446 §6, RFC 6066 §3 for unrecognized_name).
UNEXPECTED_MESSAGE = 10
RECORD_OVERFLOW = 22
HANDSHAKE_FAILURE = 40
ILLEGAL_PARAMETER = 47
ACCESS_DENIED = 49
DECODE_ERROR = 50
PROTOCOL_VERSION = 70
INTERNAL_ERROR = 80
UNRECOGNIZED_NAME = 112

_CONTENT_TYPE_ALERT = 21
_LEVEL_FATAL = 2
_ALERT_BODY_LENGTH = 2


def fatal_alert(description: int, record_version: int = 0x0303) -> bytes:
    """A 7-byte plaintext record carrying one fatal alert.

    ``record_version`` should echo the client's first record header: some
    old stacks drop a record whose version they did not send.
    """
    if not 0 <= description <= 0xFF:
        raise ValueError(f"alert description must fit in one byte, got {description}")
    if not 0 <= record_version <= 0xFFFF:
        raise ValueError(f"record version must fit in two bytes, got {record_version:#x}")
    return bytes(
        (
            _CONTENT_TYPE_ALERT,
            record_version >> 8,
            record_version & 0xFF,
            0,
            _ALERT_BODY_LENGTH,
            _LEVEL_FATAL,
            description,
        )
    )
