"""The directly assembled JSON access-log line is the json.dumps of its record, byte for byte."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

from sniui.engine.model import CloseReason, ConnectionInfo, ConnState
from sniui.headless.accesslog import _iso, _json_ms, format_json, format_json_reference


def info(**changes) -> ConnectionInfo:
    fields = dict(id=7, client="[2001:db8::7]:40000", client_ip="2001:db8::7", listener="[::]:443",
                  state=ConnState.CLOSED, started=1000.0, last_activity=1001.0, sni="shop.example.com",
                  alpn=("h2", "http/1.1"), route="shop", upstream="web", upstream_address="10.0.0.1:443",
                  bytes_up=517, bytes_down=4096, closed=1001.5, close_reason=CloseReason.UPSTREAM_CLOSED)
    fields.update(changes)
    return ConnectionInfo(**fields)


def test_lines_match_json_dumps() -> None:
    cases = [
        info(),
        info(sni=None, alpn=(), route=None, upstream=None, upstream_address=None, closed=None, close_reason=None),
        info(hello_ms=0.04999, connect_ms=12.25, closed=1_764_000_000.9999996, started=1_764_000_000.0),
        info(route='we"ird\\route\n', close_detail="refused: \u00e9\u2192\x00\x1f \"quoted\"", alpn=("h\\2", '"x"', "\x7f")),
        info(mode="terminate", client_subject="CN=x", bytes_up=2**40, bytes_down=0, closed=999.0),
        info(mode="terminate", tls_version="TLSv1.3", tls_cipher="TLS_AES_256_GCM_SHA384", alpn_selected="h2"),
        info(mode="terminate", tls_version="TLSv1.2", tls_cipher="ECDHE-RSA-AES128-GCM-SHA256", alpn_selected='h"\\2\u00e9'),
    ]
    for case in cases:
        assert format_json(case) == format_json_reference(case)
        json.loads(format_json(case))


def test_milliseconds_and_times_match_the_library() -> None:
    rng = random.Random(6)
    for _ in range(20000):
        value = rng.choice([rng.uniform(0, 1e7), rng.randint(0, 10**6) / 20, rng.uniform(-5, 5)])
        assert _json_ms(value) == json.dumps(round(value, 1))
        ts = rng.choice([rng.uniform(0, 4e9), rng.randint(0, 2**31) + rng.choice([0.9995, 0.9999995, 0.0005, 0.0])])
        assert _iso(ts) == datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert _json_ms(float("inf")) == json.dumps(float("inf"))
