"""What the engine shows the outside world: plain, immutable values.

The UI, the headless logger and the control surfaces read these and nothing
else; they never reach into the engine's live objects. Snapshots are pulled at
the consumer's own rate; events are pushed into bounded, lossy queues.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, Mapping


class ConnState(str, enum.Enum):
    READING_HELLO = "reading hello"
    CONNECTING = "connecting"
    HANDSHAKING = "handshaking"      # terminating routes: our TLS handshake with the client
    ESTABLISHED = "established"
    CLOSING = "closing"
    CLOSED = "closed"


class CloseReason(str, enum.Enum):
    CLIENT_CLOSED = "client closed"
    UPSTREAM_CLOSED = "upstream closed"
    IDLE_TIMEOUT = "idle timeout"
    HELLO_TIMEOUT = "client hello timeout"
    BAD_HELLO = "malformed client hello"
    NOT_TLS = "not TLS"
    BAD_PROXY_HEADER = "malformed PROXY header"
    NO_SNI = "rejected: no SNI"
    NO_ROUTE = "rejected: no route"
    BAD_UPSTREAM = "rejected: invalid rendered upstream"
    LIMIT = "rejected: connection limit"
    CLIENT_LIMIT = "rejected: per-client limit"
    ACL = "rejected: client not allowed"
    RESOLVE_FAILED = "resolve failed"
    CONNECT_FAILED = "connect failed"
    CONNECT_TIMEOUT = "connect timeout"
    TLS_HANDSHAKE_FAILED = "TLS handshake failed"
    RELOAD_DRAIN = "reload drain"
    SHUTDOWN = "shutdown"
    KILLED = "killed by admin"
    ERROR = "error"

    @property
    def is_error(self) -> bool:
        return self not in (CloseReason.CLIENT_CLOSED, CloseReason.UPSTREAM_CLOSED)


_EMPTY: Mapping[str, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    id: int
    client: str                     # "ip:port" of the original client (PROXY header applied)
    client_ip: str
    listener: str                   # the listener's configured address
    state: ConnState
    started: float                  # wall-clock seconds (time.time())
    last_activity: float
    sni: str | None = None
    alpn: tuple[str, ...] = ()
    tls_versions: tuple[int, ...] = ()   # supported_versions offered, else (legacy_version,)
    ech: bool = False
    cipher_count: int = 0
    route: str | None = None
    mode: Literal["passthrough", "terminate"] = "passthrough"
    upstream: str | None = None          # rendered upstream: group name or host:port
    upstream_address: str | None = None  # "ip:port" actually connected
    bytes_up: int = 0                    # client → upstream
    bytes_down: int = 0                  # upstream → client
    hello_ms: float | None = None        # accept → complete ClientHello
    connect_ms: float | None = None      # decision → upstream connected
    closed: float | None = None
    close_reason: CloseReason | None = None
    close_detail: str | None = None
    client_subject: str | None = None    # verified mTLS client certificate subject
    # What our TLS handshake with the client agreed on; terminating routes only, None for passthrough.
    tls_version: str | None = None       # "TLSv1.3"
    tls_cipher: str | None = None        # "TLS_AES_256_GCM_SHA384"
    alpn_selected: str | None = None     # the protocol chosen from `alpn`, None when none was

    @property
    def duration(self) -> float | None:
        return None if self.closed is None else self.closed - self.started


@dataclass(frozen=True, slots=True)
class Counters:
    accepted: int = 0
    active: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    closed: int = 0
    errors: Mapping[str, int] = field(default_factory=lambda: _EMPTY)   # CloseReason.value → count

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True, slots=True)
class ListenerInfo:
    address: str               # as configured
    bound: tuple[str, ...]     # "ip:port" actually bound (port 0 resolved)
    accept_proxy_protocol: bool
    counters: Counters


@dataclass(frozen=True, slots=True)
class ServerHealth:
    group: str | None          # upstream group, None for a route's direct host:port
    address: str               # "host:port" as configured
    up: bool
    fails: int
    down_until: float | None   # wall-clock
    last_error: str | None
    active: int
    total: int


@dataclass(frozen=True, slots=True)
class RateSample:
    """One second of traffic, for sparklines."""

    at: float                  # wall-clock second this sample ends
    connections: int           # new connections accepted in that second
    bytes: int                 # bytes relayed both ways in that second
    errors: int


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    taken_at: float
    started_at: float
    config_source: str | None
    config_generation: int              # increments on every successful apply
    listeners: tuple[ListenerInfo, ...]
    connections: tuple[ConnectionInfo, ...]    # live
    recent: tuple[ConnectionInfo, ...]         # recently closed, newest first
    totals: Counters
    per_route: Mapping[str, Counters]
    per_upstream: Mapping[str, Counters]       # key: upstream address actually connected
    servers: tuple[ServerHealth, ...]
    rates: tuple[RateSample, ...]              # oldest first, one per second
    events_dropped: int = 0


EventKind = Literal[
    "connection_opened", "connection_closed", "rejected",
    "config_applied", "config_refused", "server_down", "server_up",
    "listener_started", "listener_stopped", "listener_error", "draining",
]


@dataclass(frozen=True, slots=True)
class Event:
    at: float                        # wall-clock
    kind: EventKind
    level: Literal["debug", "info", "warning", "error"]
    message: str                     # one human line, never key material
    connection: ConnectionInfo | None = None
    route: str | None = None
    sni: str | None = None
