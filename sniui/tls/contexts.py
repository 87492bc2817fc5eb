"""Server-side `ssl.SSLContext`s for terminating routes.

The engine reads the ClientHello itself, asks the route table for a decision,
and only then starts TLS, so the context is chosen per route before the
handshake begins (no SNI callback is needed). Intended use:

    contexts = ServerContexts()
    contexts.update(config)                  # at apply time, before the swap;
                                             # raises ContextError, old contexts stay
    ctx = contexts.select_context(decision)  # per terminating connection
    tls = ctx.wrap_bio(incoming, outgoing, server_side=True)
    incoming.write(bytes_already_read)       # replay the ClientHello we peeked at
    tls.do_handshake()                       # ... pump the BIOs as usual

`ctx` is shared by every connection of that route; do not mutate it. After
the handshake, `tls.getpeercert()` holds the verified client certificate on
an mTLS route, `tls.selected_alpn_protocol()` the negotiated protocol.
Session tickets belong to a context, and routes share a context only when
certificate, key, min_version, alpn and client_ca are all equal, so resuming
a session on another route never skips a check that route requires; the
engine still routes each resumed connection by its ClientHello's SNI.

Per route the context carries: the certificate chain and key (`certificates:`),
`min_version` ("1.2" or "1.3"), the ALPN protocols to select from, and with
`client_ca` a required, verified client certificate.

ALPN: a route without `alpn:` negotiates no protocol at all (DEFAULT_ALPN is
empty). The upstream behind a terminating route is plain TCP whose protocol
sniui cannot know; selecting `h2` would make a browser speak cleartext HTTP/2
to an upstream that may only speak HTTP/1.1, and an HTTP/2 connection invites
connection coalescing (a browser reuses it for every name the certificate
covers, whichever route those names belong to). Without ALPN, HTTP clients
speak HTTP/1.1, as with nginx's stream module without `ssl_alpn`. List
`alpn: [h2, http/1.1]` only when the upstream speaks HTTP/2 without TLS
(prior knowledge) and the certificate covers no other route's names.

Contexts are cached by (cert, key, min_version, alpn, client_ca) and by the
contents of those files. `update()` with an unchanged config reuses the same
context objects, so TLS session resumption keeps working across reloads;
a renewed certificate file (replaced in place, or a symlink moved) is picked
up by the next `update()`. Files are compared by content rather than mtime:
mtimes are coarse and renewals that copy with `cp -p` keep them.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sniui.config.models import Config, Route

if TYPE_CHECKING:
    from sniui.routing.table import Decision

# See the module docstring for why this is empty rather than ("h2", "http/1.1").
DEFAULT_ALPN: tuple[str, ...] = ()

TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def offered_alpn(route: Route) -> tuple[str, ...]:
    """The ALPN protocols a terminating route selects from, in preference order."""
    return tuple(route.alpn) if route.alpn is not None else DEFAULT_ALPN


class ContextError(Exception):
    """One or more terminating routes could not get a context; `problems` says which and why."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True, slots=True)
class ContextSpec:
    """Everything a server context depends on, apart from the files' contents."""

    cert: Path
    key: Path
    min_version: str = "1.2"
    alpn: tuple[str, ...] = DEFAULT_ALPN
    client_ca: Path | None = None

    @classmethod
    def for_route(cls, route: Route, config: Config) -> "ContextSpec":
        if route.mode != "terminate" or not route.certificate:
            raise ValueError("only terminating routes with a certificate have a server context")
        entry = config.certificates.get(route.certificate)
        if entry is None:
            raise ValueError(f"unknown certificate {route.certificate!r}")
        return cls(
            cert=config.path_of(entry.cert),
            key=config.path_of(entry.key),
            min_version=route.min_version,
            alpn=offered_alpn(route),
            client_ca=config.path_of(route.client_ca) if route.client_ca else None,
        )

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())


def _refuse_passphrase() -> bytes:
    # Without a password callback OpenSSL prompts on the terminal for an encrypted
    # key, which would hang a daemon (or the TUI). sniui has no passphrase source.
    raise ContextError(["the private key is encrypted and sniui has no passphrase source; decrypt it with `openssl pkey`"])


def build_server_context(spec: ContextSpec) -> ssl.SSLContext:
    """A fresh server context for `spec`; raises ssl.SSLError, OSError or ContextError."""
    # Not ssl.create_default_context(Purpose.CLIENT_AUTH): that loads the system's
    # public CAs as client-certificate anchors, which would admit any client
    # holding a certificate from any public CA on an mTLS route.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[spec.min_version]
    # Renegotiation gives a client a way to change the session under a route
    # decision already taken; nothing needs it.
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.load_cert_chain(str(spec.cert), str(spec.key), password=_refuse_passphrase)
    if spec.alpn:
        context.set_alpn_protocols(list(spec.alpn))
    if spec.client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(cafile=str(spec.client_ca))
    return context


def _files_digest(spec: ContextSpec) -> bytes:
    digest = hashlib.sha256()
    for path in spec.files:
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.digest()


def describe_ssl_error(exc: BaseException) -> str:
    """OpenSSL's reason without the file/line noise; never contains file contents."""
    if isinstance(exc, ContextError):
        return str(exc)
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None)
        text = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], str) else str(exc)
        text = text.split(" (_ssl.c")[0]
        return f"{reason}: {text}" if reason and reason not in text else text
    if isinstance(exc, OSError):
        return f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": ")
    return str(exc)


class ServerContexts:
    """The server contexts of the applied config's terminating routes."""

    def __init__(self) -> None:
        self._contexts: dict[ContextSpec, tuple[bytes, ssl.SSLContext]] = {}
        self._config: Config | None = None

    def update(self, config: Config) -> None:
        """Build (or reuse) a context for every terminating route of `config`.

        All or nothing: on any failure raise ContextError naming each route that
        failed, and keep the previous contexts serving.
        """
        fresh: dict[ContextSpec, tuple[bytes, ssl.SSLContext]] = {}
        problems: list[str] = []
        for label, route in zip(config.route_labels(), config.routes):
            if route.mode != "terminate" or not route.certificate:
                continue
            try:
                spec = ContextSpec.for_route(route, config)
                if spec in fresh:
                    continue
                digest = _files_digest(spec)
                previous = self._contexts.get(spec)
                if previous is not None and previous[0] == digest:
                    fresh[spec] = previous
                else:
                    fresh[spec] = (digest, build_server_context(spec))
            except (OSError, ssl.SSLError, ValueError, ContextError) as exc:
                problems.append(f"route {label!r}: {describe_ssl_error(exc)}")
        if problems:
            raise ContextError(problems)
        self._contexts = fresh
        self._config = config

    def context_for(self, route: Route) -> ssl.SSLContext:
        """The context for a terminating route of the applied config; raises ContextError."""
        if self._config is None:
            raise ContextError(["no config has been applied to the TLS contexts yet"])
        try:
            spec = ContextSpec.for_route(route, self._config)
            cached = self._contexts.get(spec)
            if cached is None:
                # A route of a config this cache was not updated with (the caller
                # swapped the route table first): build it now rather than fail the client.
                cached = (_files_digest(spec), build_server_context(spec))
                self._contexts[spec] = cached
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise ContextError([describe_ssl_error(exc)]) from exc
        return cached[1]

    def select_context(self, decision: "Decision") -> ssl.SSLContext:
        """The context for a routing decision whose mode is `terminate`.

        Raises ValueError for a decision that does not terminate, ContextError
        when the route's files cannot be loaded.
        """
        target: Any = decision.target
        if decision.mode != "terminate" or target is None:
            raise ValueError(f"decision for {decision.sni!r} does not terminate TLS")
        return self.context_for(target.config)

    def __len__(self) -> int:
        return len(self._contexts)
