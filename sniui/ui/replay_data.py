"""A fixed, realistic dataset for the replay view: snapshot tests, screenshots, measurements.

Everything derives from a seeded RNG and a fixed clock, so an SVG made today
matches one made next year. The shape follows a small production edge: two
listeners, a web pool with one server down, an API that terminates TLS, a
wildcard for apps, a Kubernetes regex route, and some rejected scanners.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import MappingProxyType

from sniui.config import Config, load_text
from sniui.engine.model import (
    CloseReason, ConnectionInfo, ConnState, Counters, EngineSnapshot, Event, ListenerInfo, RateSample, ServerHealth,
)
from sniui.ui.view import ReplayEngineView

# 2026-03-14 09:26:40 UTC: any fixed instant will do; ages are measured from it.
NOW = 1773480400.0
STARTED = NOW - (3 * 86400 + 4 * 3600 + 12 * 60)

REPLAY_CONFIG = """\
listen:
  - address: "0.0.0.0:443"
  - address: "[::]:443"
    accept_proxy_protocol: false
timeouts: {client_hello: 5s, connect: 1s, idle: 10m}
upstreams:
  web:
    servers: ["10.0.1.11:443", "10.0.1.12:443", "10.0.1.13:443"]
    balance: least_conn
    max_fails: 2
    fail_timeout: 10s
  api:
    servers: ["10.0.2.21:8080", "10.0.2.22:8080"]
routes:
  - name: shop
    sni: [shop.example.com, www.shop.example.com]
    upstream: web
  - name: api
    sni: api.example.com
    mode: terminate
    certificate: example
    alpn: [h2, http/1.1]
    upstream: api
    proxy_protocol: v2
  - name: apps
    sni: "*.apps.example.com"
    upstream: "apps.internal:443"
  - name: org
    sni: ".example.org"
    upstream: "org.internal:443"
  - name: k8s
    sni: "~^(?<app>[a-z0-9]+)-(?<ns>[a-z0-9]+)-(?<port>\\\\d+)\\\\.k8s\\\\.example\\\\.com$"
    upstream: "$app-public.$ns.svc.cluster.local:$port"
    allow: ["*.svc.cluster.local:443", "*.svc.cluster.local:8000-8999"]
certificates:
  example: {cert: certs/example.pem, key: certs/example.key}
default: {action: reject, reject_with: alert}
tests:
  - {sni: shop.example.com, expect: web}
  - {sni: shop-staging-8443.k8s.example.com, expect: shop-public.staging.svc.cluster.local:8443}
  - {sni: unknown.example.net, expect: reject}
"""

# (sni, route, rendered upstream, connected addresses, mode, alpn, weight)
_TRAFFIC = (
    ("shop.example.com", "shop", "web", ("10.0.1.11:443", "10.0.1.12:443"), "passthrough", ("h2", "http/1.1"), 12),
    ("www.shop.example.com", "shop", "web", ("10.0.1.11:443", "10.0.1.12:443"), "passthrough", ("h2", "http/1.1"), 4),
    ("api.example.com", "api", "api", ("10.0.2.21:8080", "10.0.2.22:8080"), "terminate", ("h2",), 8),
    ("grafana.apps.example.com", "apps", "apps.internal:443", ("10.0.3.5:443",), "passthrough", ("h2",), 3),
    ("ci.apps.example.com", "apps", "apps.internal:443", ("10.0.3.5:443",), "passthrough", ("http/1.1",), 3),
    ("example.org", "org", "org.internal:443", ("10.0.4.9:443",), "passthrough", ("h2", "http/1.1"), 2),
    ("docs.example.org", "org", "org.internal:443", ("10.0.4.9:443",), "passthrough", ("h2",), 2),
    ("shop-staging-8443.k8s.example.com", "k8s", "shop-public.staging.svc.cluster.local:8443",
     ("10.96.14.2:8443",), "passthrough", ("h2",), 3),
    ("billing-prod-443.k8s.example.com", "k8s", "billing-public.prod.svc.cluster.local:443",
     ("10.96.3.77:443",), "passthrough", ("h2", "http/1.1"), 3),
)

# What the api route's handshakes agree on (no RNG draw, so the other fields stay as they were).
_NEGOTIATED = dict(tls_version="TLSv1.3", tls_cipher="TLS_AES_256_GCM_SHA384", alpn_selected="h2")

_CLIENTS = ("203.0.113.7", "198.51.100.23", "192.0.2.144", "203.0.113.58", "2001:db8:4::1a",
            "198.51.100.201", "192.0.2.9", "203.0.113.199")


CONFIG_DIR = Path("/etc/sniui")


def replay_config(base_dir: Path | None = None) -> Config:
    """The replay's config; `base_dir` lets a caller supply real certificate files under certs/."""
    base = base_dir or CONFIG_DIR
    return load_text(REPLAY_CONFIG, file="sniui.yaml", base_dir=base).config.anchored(base, str(CONFIG_DIR / "sniui.yaml"))


def _client(rng: random.Random) -> tuple[str, str]:
    ip = rng.choice(_CLIENTS)
    port = rng.randint(32768, 60999)
    return (f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"), ip


def make_connections(count: int, *, seed: int = 7, now: float = NOW, first_id: int = 1000) -> list[ConnectionInfo]:
    rng = random.Random(seed)
    weights = [t[6] for t in _TRAFFIC]
    out = []
    for i in range(count):
        sni, route, upstream, addresses, mode, alpn, _ = rng.choices(_TRAFFIC, weights)[0]
        client, ip = _client(rng)
        age = rng.choice((rng.uniform(0.2, 20), rng.uniform(20, 600), rng.uniform(600, 7200)))
        roll = rng.random()
        state = (ConnState.ESTABLISHED if roll > 0.08 else
                 ConnState.CONNECTING if roll > 0.04 else
                 ConnState.HANDSHAKING if mode == "terminate" else ConnState.READING_HELLO)
        connected = state is ConnState.ESTABLISHED
        heavy = rng.random() < 0.15
        up = int(rng.uniform(600, 40_000) * (30 if heavy else 1)) if connected else 0
        down = int(up * rng.uniform(3, 60)) if connected else 0
        out.append(ConnectionInfo(
            id=first_id + i, client=client, client_ip=ip, listener="[::]:443" if ":" in ip else "0.0.0.0:443",
            state=state, started=now - age, last_activity=now - rng.uniform(0, min(age, 30)),
            sni=None if state is ConnState.READING_HELLO else sni,
            alpn=() if state is ConnState.READING_HELLO else alpn,
            tls_versions=(0x0304, 0x0303), ech=rng.random() < 0.1, cipher_count=rng.choice((15, 17, 31)),
            route=None if state is ConnState.READING_HELLO else route, mode=mode,
            upstream=None if state is ConnState.READING_HELLO else upstream,
            upstream_address=rng.choice(addresses) if connected else None,
            bytes_up=up, bytes_down=down,
            hello_ms=round(rng.uniform(0.3, 40), 2) if state is not ConnState.READING_HELLO else None,
            connect_ms=round(rng.uniform(0.4, 12), 2) if connected else None,
            client_subject="CN=billing-batch,O=Example" if mode == "terminate" and i % 5 == 0 else None,
            **(_NEGOTIATED if mode == "terminate" and state is not ConnState.HANDSHAKING else {}),
        ))
    return out


_CLOSES = (
    ("shop.example.com", "shop", "web", "10.0.1.12:443", CloseReason.CLIENT_CLOSED, None),
    ("api.example.com", "api", "api", "10.0.2.21:8080", CloseReason.UPSTREAM_CLOSED, None),
    ("wp-login.example.net", "default", None, None, CloseReason.NO_ROUTE, "no route matched"),
    ("shop.example.com", "shop", "web", "10.0.1.13:443", CloseReason.CONNECT_FAILED,
     "10.0.1.13:443: [Errno 111] Connection refused"),
    (None, "no_sni", None, None, CloseReason.NO_SNI, "the client sent no server name"),
    ("grafana.apps.example.com", "apps", "apps.internal:443", "10.0.3.5:443", CloseReason.IDLE_TIMEOUT,
     "no bytes for 10m"),
    ("evil-x-99999.k8s.example.com", "k8s", "evil-public.x.svc.cluster.local:99999", None, CloseReason.BAD_UPSTREAM,
     "rendered upstream is invalid: port 99999 out of range"),
    ("api.example.com", "api", "api", None, CloseReason.TLS_HANDSHAKE_FAILED, "client sent alert: unknown_ca"),
    ("docs.example.org", "org", "org.internal:443", "10.0.4.9:443", CloseReason.CLIENT_CLOSED, None),
    (None, None, None, None, CloseReason.NOT_TLS, "first bytes look like HTTP: 'GET / HT'"),
    ("shop.example.com", "shop", "web", "10.0.1.11:443", CloseReason.CLIENT_CLOSED, None),
    ("billing-prod-443.k8s.example.com", "k8s", "billing-public.prod.svc.cluster.local:443", "10.96.3.77:443",
     CloseReason.UPSTREAM_CLOSED, None),
)


def make_recent(*, now: float = NOW, seed: int = 11) -> list[ConnectionInfo]:
    rng = random.Random(seed)
    out = []
    for i, (sni, route, upstream, address, reason, detail) in enumerate(_CLOSES):
        client, ip = _client(rng)
        closed = now - 4 - i * rng.uniform(5, 25)
        started = closed - rng.uniform(0.01, 300)
        moved = address is not None and reason in (CloseReason.CLIENT_CLOSED, CloseReason.UPSTREAM_CLOSED,
                                                   CloseReason.IDLE_TIMEOUT)
        up = int(rng.uniform(500, 90_000)) if moved else 0
        out.append(ConnectionInfo(
            id=900 - i, client=client, client_ip=ip, listener="0.0.0.0:443", state=ConnState.CLOSED,
            started=started, last_activity=closed, sni=sni, alpn=("h2",) if sni else (), tls_versions=(0x0304, 0x0303),
            cipher_count=17, route=route, upstream=upstream, upstream_address=address if moved else None,
            mode="terminate" if route == "api" else "passthrough",
            bytes_up=up, bytes_down=up * 9, hello_ms=round(rng.uniform(0.3, 20), 2) if sni else None,
            connect_ms=round(rng.uniform(0.5, 9), 2) if moved else None,
            closed=closed, close_reason=reason, close_detail=detail,
            **(_NEGOTIATED if route == "api" and reason is not CloseReason.TLS_HANDSHAKE_FAILED else {}),
        ))
    return out


def make_servers() -> tuple[ServerHealth, ...]:
    return (
        ServerHealth("web", "10.0.1.11:443", True, 0, None, None, 9, 18_204),
        ServerHealth("web", "10.0.1.12:443", True, 0, None, None, 8, 17_990),
        ServerHealth("web", "10.0.1.13:443", False, 2, NOW + 6, "connect failed: [Errno 111] Connection refused", 0, 9_112),
        ServerHealth("api", "10.0.2.21:8080", True, 0, None, None, 5, 40_311),
        ServerHealth("api", "10.0.2.22:8080", True, 1, None, "connect timeout after 1.0s", 3, 40_107),
        ServerHealth(None, "apps.internal:443", True, 0, None, None, 6, 5_530),
        ServerHealth(None, "org.internal:443", True, 0, None, None, 4, 2_204),
    )


def make_rates(seconds: int = 300, *, now: float = NOW, seed: int = 3) -> tuple[RateSample, ...]:
    rng = random.Random(seed)
    out = []
    for i in range(seconds):
        # A daily-looking swell plus noise, and a burst of errors when web-3 went down.
        swell = 1 + 0.5 * ((i % 120) / 120)
        conns = max(0, int(rng.gauss(14 * swell, 4)))
        errs = rng.choice((0, 0, 0, 1)) + (4 if 200 < i < 215 else 0)
        out.append(RateSample(now - seconds + i + 1, conns, int(conns * rng.uniform(30_000, 90_000)), errs))
    return tuple(out)


def _errors() -> dict[str, int]:
    return {CloseReason.NO_ROUTE.value: 412, CloseReason.NO_SNI.value: 37, CloseReason.CONNECT_FAILED.value: 58,
            CloseReason.IDLE_TIMEOUT.value: 121, CloseReason.NOT_TLS.value: 9, CloseReason.BAD_UPSTREAM.value: 3,
            CloseReason.TLS_HANDSHAKE_FAILED.value: 6}


def make_snapshot(connection_count: int = 40, *, now: float = NOW) -> EngineSnapshot:
    conns = make_connections(connection_count, now=now)
    recent = make_recent(now=now)
    errors = MappingProxyType(_errors())
    totals = Counters(accepted=133_120 + connection_count, active=connection_count,
                      bytes_up=sum(c.bytes_up for c in conns) + 9_812_331_004,
                      bytes_down=sum(c.bytes_down for c in conns) + 181_203_441_998,
                      closed=133_120, errors=errors)
    per_route: dict[str, Counters] = {}
    per_upstream: dict[str, Counters] = {}
    for table, key_of in ((per_route, lambda c: c.route), (per_upstream, lambda c: c.upstream_address)):
        for c in conns + recent:
            key = key_of(c)
            if not key:
                continue
            old = table.get(key, Counters())
            err = dict(old.errors)
            if c.close_reason is not None and c.close_reason.is_error:
                err[c.close_reason.value] = err.get(c.close_reason.value, 0) + 1
            table[key] = Counters(old.accepted + 1, old.active + (c.closed is None), old.bytes_up + c.bytes_up,
                                  old.bytes_down + c.bytes_down, old.closed + (c.closed is not None),
                                  MappingProxyType(err))
    per_upstream["10.0.1.13:443"] = Counters(9_112, 0, 0, 0, 9_112, MappingProxyType({CloseReason.CONNECT_FAILED.value: 58}))
    v4 = Counters(accepted=118_002, active=sum(1 for c in conns if "." in c.client_ip))
    v6 = Counters(accepted=15_118 + connection_count, active=sum(1 for c in conns if ":" in c.client_ip))
    return EngineSnapshot(
        taken_at=now, started_at=STARTED, config_source="/etc/sniui/sniui.yaml", config_generation=4,
        listeners=(ListenerInfo("0.0.0.0:443", ("0.0.0.0:443",), False, v4),
                   ListenerInfo("[::]:443", ("[::]:443",), False, v6)),
        connections=tuple(conns), recent=tuple(recent), totals=totals,
        per_route=MappingProxyType(per_route), per_upstream=MappingProxyType(per_upstream),
        servers=make_servers(), rates=make_rates(now=now), events_dropped=0,
    )


def make_events(*, now: float = NOW) -> list[Event]:
    conns = make_connections(12, now=now, seed=5)
    recent = make_recent(now=now)
    events: list[Event] = [
        Event(now - 3600, "listener_started", "info", "listening on 0.0.0.0:443"),
        Event(now - 3600, "listener_started", "info", "listening on [::]:443"),
        Event(now - 1800, "config_applied", "info", "config generation 4 applied from /etc/sniui/sniui.yaml: "
              "1 route added (k8s), 0 removed"),
        Event(now - 1500, "config_refused", "error",
              "config refused: sniui.yaml:31 routes[4].upstream: template names $svc, which the regex does not capture"),
        Event(now - 300, "server_down", "warning", "web 10.0.1.13:443 marked down after 2 fails: connection refused"),
        Event(now - 240, "server_up", "info", "api 10.0.2.22:8080 back up"),
    ]
    for c in sorted(conns, key=lambda c: c.started):
        events.append(Event(c.started, "connection_opened", "info",
                            f"{c.client} → {c.sni or '-'} via {c.route or '-'} → {c.upstream or '-'}",
                            connection=c, route=c.route, sni=c.sni))
    for c in recent:
        reason = c.close_reason
        assert reason is not None
        kind = "rejected" if reason.value.startswith("rejected") or reason in (CloseReason.NOT_TLS,) else "connection_closed"
        level = "warning" if reason.is_error else "info"
        detail = f" ({c.close_detail})" if c.close_detail else ""
        events.append(Event(c.closed or now, kind, level,
                            f"{c.client} {c.sni or '(no SNI)'} closed: {reason.value}{detail}",
                            connection=c, route=c.route, sni=c.sni))
    events.sort(key=lambda e: e.at)
    return events


def replay_view(connection_count: int = 40, *, read_only: bool = False, base_dir: Path | None = None) -> ReplayEngineView:
    """The view the snapshot tests and screenshots use."""
    return ReplayEngineView(replay_config(base_dir), [make_snapshot(connection_count)], make_events(), now=NOW,
                            config_path=CONFIG_DIR / "sniui.yaml", read_only=read_only)
