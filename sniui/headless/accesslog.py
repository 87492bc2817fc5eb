"""The access log: one line per closed connection, JSON (default) or text.

Lines are collected as connections close and written once per event-loop
pass, so a burst of closes costs one write, not one per connection.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from sniui.engine.model import ConnectionInfo


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def as_record(info: ConnectionInfo) -> dict:
    """The fields of one access-log line. bytes_in: client → upstream; bytes_out: upstream → client.

    For a terminating route (mode "terminate") the byte counts are plaintext, as
    the upstream sees them, and the record has the fields only termination can
    fill: `client_subject`, the verified client certificate's subject on an
    mTLS route (RFC 4514, e.g. "CN=alice,O=Example"), else null.
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
    return record


def format_json(info: ConnectionInfo) -> str:
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
