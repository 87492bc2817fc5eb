"""The access log: one line per closed connection, JSON (default) or text.

Lines are collected as connections close and written once per event-loop
pass, so a burst of closes costs one write, not one per connection. A JSON
line is assembled directly (strings through json's own C escaper), which is
several times cheaper than building a dict for `json.dumps`, and gives the
same text: a test holds the two together.
"""

from __future__ import annotations

import asyncio
import json
import math
import sys
from datetime import datetime, timezone
from json.encoder import encode_basestring   # what json.dumps(ensure_ascii=False) uses for str
from pathlib import Path
from typing import TextIO

from sniui.engine.model import ConnectionInfo

_second_text: list = [None, ""]   # the last whole second formatted, and its text


def _iso(ts: float | None) -> str | None:
    """`datetime.fromtimestamp(ts, utc).isoformat(timespec="milliseconds")` with a Z,
    formatting the date and time only when the second changes."""
    if ts is None:
        return None
    fraction, whole = math.modf(ts)
    if fraction < 0 or not math.isfinite(ts):
        return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    micros = round(fraction * 1e6)   # half-even, as datetime rounds
    if micros >= 1_000_000:
        whole += 1.0
        micros -= 1_000_000
    second = int(whole)
    cached = _second_text
    if cached[0] != second:
        cached[1] = datetime.fromtimestamp(second, timezone.utc).replace(tzinfo=None).isoformat()
        cached[0] = second
    return f"{cached[1]}.{micros // 1000:03d}Z"


def as_record(info: ConnectionInfo) -> dict:
    """The fields of one access-log line. bytes_in: client → upstream; bytes_out: upstream → client.

    For a terminating route (mode "terminate") the byte counts are plaintext, as
    the upstream sees them, and the record has the fields only termination can
    fill: `client_subject`, the verified client certificate's subject on an
    mTLS route (RFC 4514, e.g. "CN=alice,O=Example"), else null; and what the
    handshake with the client agreed on: `tls_version` ("TLSv1.3"),
    `tls_cipher` ("TLS_AES_256_GCM_SHA384") and `alpn_selected` (null when the
    route offers no ALPN or the client asked for none of it). All three are
    null when the handshake did not complete.
    """
    record = {
        "time": _iso(info.closed),
        "id": info.id,
        "client": info.client,
        "listener": info.listener,
        "sni": info.sni,
        "alpn": list(info.alpn),
        "route": info.route,
        "mode": info.mode,
        "upstream": info.upstream,
        "upstream_address": info.upstream_address,
        "bytes_in": info.bytes_up,
        "bytes_out": info.bytes_down,
        "duration_ms": round((info.duration or 0.0) * 1000.0, 1),
        "hello_ms": None if info.hello_ms is None else round(info.hello_ms, 1),
        "connect_ms": None if info.connect_ms is None else round(info.connect_ms, 1),
        "close_reason": info.close_reason.value if info.close_reason else None,
        "detail": info.close_detail,
    }
    if info.mode == "terminate":
        record["client_subject"] = info.client_subject
        record["tls_version"] = info.tls_version
        record["tls_cipher"] = info.tls_cipher
        record["alpn_selected"] = info.alpn_selected
    return record


def _json_str(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _json_ms(value: float | None) -> str:
    """json.dumps(round(value, 1)): both round the exact binary value half-even, so below
    1e15 (where repr switches to exponents) the fixed-point text is the same."""
    if value is None:
        return "null"
    if -1e15 < value < 1e15:
        return f"{value:.1f}"
    return json.dumps(round(value, 1))


def format_json(info: ConnectionInfo) -> str:
    """`json.dumps(as_record(info), separators=(",", ":"), ensure_ascii=False)`, assembled directly."""
    reason = info.close_reason
    return (
        f'{{"time":{_json_str(_iso(info.closed))},"id":{int.__repr__(info.id)},'
        f'"client":{_json_str(info.client)},"listener":{_json_str(info.listener)},"sni":{_json_str(info.sni)},'
        f'"alpn":[{",".join(map(encode_basestring, info.alpn))}],"route":{_json_str(info.route)},'
        f'"mode":{_json_str(info.mode)},"upstream":{_json_str(info.upstream)},'
        f'"upstream_address":{_json_str(info.upstream_address)},'
        f'"bytes_in":{int.__repr__(info.bytes_up)},"bytes_out":{int.__repr__(info.bytes_down)},'
        f'"duration_ms":{_json_ms((info.duration or 0.0) * 1000.0)},'
        f'"hello_ms":{_json_ms(info.hello_ms)},"connect_ms":{_json_ms(info.connect_ms)},'
        f'"close_reason":{_json_str(reason.value if reason else None)},"detail":{_json_str(info.close_detail)}'
        + (_terminate_json(info) if info.mode == "terminate" else "}")
    )


def _terminate_json(info: ConnectionInfo) -> str:
    """The closing fields only a terminating route's record has (see as_record), and the brace."""
    return (f',"client_subject":{_json_str(info.client_subject)},"tls_version":{_json_str(info.tls_version)},'
            f'"tls_cipher":{_json_str(info.tls_cipher)},"alpn_selected":{_json_str(info.alpn_selected)}}}')


def format_json_reference(info: ConnectionInfo) -> str:
    """The definition `format_json` must match (kept for the test that holds them together)."""
    return json.dumps(as_record(info), separators=(",", ":"), ensure_ascii=False)


def format_text(info: ConnectionInfo) -> str:
    r = as_record(info)
    target = r["upstream_address"] or r["upstream"] or "-"
    line = (f'{r["time"]} {r["client"]} "{r["sni"] or "-"}" route={r["route"] or "-"} → {target} '
            f'in={r["bytes_in"]} out={r["bytes_out"]} {r["duration_ms"]}ms {r["close_reason"]}')
    if r["detail"]:
        line += f" ({r['detail']})"
    if r.get("client_subject"):
        line += f' subject="{r["client_subject"]}"'
    if r.get("tls_version"):
        line += f' tls={r["tls_version"]} cipher={r["tls_cipher"] or "-"} alpn={r["alpn_selected"] or "-"}'
    return line


FORMATS = {"json": format_json, "text": format_text}


class AccessLog:
    """A close hook for the engine. `path` None writes to stdout; `reopen()` after log rotation."""

    def __init__(self, fmt: str = "json", path: str | Path | None = None, stream: TextIO | None = None) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"log format {fmt!r}: expected one of {', '.join(FORMATS)}")
        self.format = FORMATS[fmt]
        self.path = Path(path) if path else None
        self._stream = stream
        self._file: TextIO | None = None
        self._pending: list[str] = []
        self._scheduled = False
        self.lost = 0   # lines that could not be written
        self.reopen()

    @property
    def stream(self) -> TextIO:
        return self._file or self._stream or sys.stdout

    def reopen(self) -> None:
        """Open (again) the log file, e.g. after logrotate moved it; raises OSError when it cannot."""
        if self.path is None:
            return
        new = open(self.path, "a", encoding="utf-8", buffering=1024 * 64)
        self.flush()
        if self._file is not None:
            self._file.close()
        self._file = new

    def __call__(self, info: ConnectionInfo) -> None:
        self._pending.append(self.format(info))
        if not self._scheduled:
            self._scheduled = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:
                self.flush()

    def flush(self) -> None:
        self._scheduled = False
        if not self._pending:
            return
        lines, self._pending = self._pending, []
        stream = self.stream
        try:
            stream.write("\n".join(lines) + "\n")
            stream.flush()
        except (BrokenPipeError, ValueError):
            # stdout's reader went away (or the file was closed): keep routing, count the loss.
            self.lost += len(lines)

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
