"""The three answers the ClientHello reader gives: need more, a hello, or a refusal.

They live in a module of their own, importing nothing, so that the reader
(`clienthello`) and the body parser (`hello_parse`, which words refusals) can
both build them without importing each other. Import them from
`sniui.tls.clienthello`, their public home.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["NEED_MORE", "ClientHello", "NeedMore", "Reject", "Result"]


@dataclass(frozen=True, slots=True)
class NeedMore:
    """The bytes so far are a valid beginning; feed more."""


NEED_MORE = NeedMore()


@dataclass(frozen=True, slots=True)
class ClientHello:
    sni: str | None
    alpn: tuple[str, ...]
    legacy_version: int
    supported_versions: tuple[int, ...]
    cipher_suites: tuple[int, ...]
    extensions: tuple[int, ...]
    ech: bool
    record_version: int
    hello_length: int
    consumed: int


@dataclass(frozen=True, slots=True)
class Reject:
    """Why the stream cannot be routed.

    ``reason`` is a stable code for counters and filters; ``detail`` is for
    people. ``alert`` is the TLS alert description to send before closing,
    or None when the peer does not speak TLS and should just be closed.
    """

    reason: str
    detail: str
    alert: int | None


Result = NeedMore | ClientHello | Reject
