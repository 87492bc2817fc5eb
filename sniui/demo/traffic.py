"""A bounded client that sends demo traffic through a running sniui.

The TUI and the screenshot script call this so a new user sees live
connections, some routed and some rejected, without typing anything. Each
request is a fresh TLS connection (each one is a row in the connections view)
verified against the demo CA, so a success also proves the right upstream
answered for the name.

Bounded three ways: a fixed number of requests, a per-request timeout, and an
overall deadline after which whatever is still running is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Sequence

Outcome = Literal["ok", "rejected", "error", "timeout"]
MAX_RESPONSE = 64 * 1024


@dataclass(frozen=True, slots=True)
class TrafficResult:
    name: str
    outcome: Outcome
    status: int | None = None
    upstream: str | None = None      # the X-Demo-Upstream header: which demo server answered
    body: str | None = None
    error: str | None = None


@dataclass(slots=True)
class TrafficReport:
    results: list[TrafficResult] = field(default_factory=list)
    cancelled: int = 0                # requests not finished by the overall deadline

    def count(self, outcome: Outcome) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)

    @property
    def summary(self) -> str:
        parts = [f"{self.count(o)} {o}" for o in ("ok", "rejected", "error", "timeout") if self.count(o)]
        if self.cancelled:
            parts.append(f"{self.cancelled} not run before the deadline")
        return ", ".join(parts) or "no requests"


def client_context(ca: Path | str | bytes) -> ssl.SSLContext:
    """Trust only the demo CA (a path or PEM bytes) and check host names."""
    if isinstance(ca, bytes):
        return ssl.create_default_context(cadata=ca.decode("ascii"))
    return ssl.create_default_context(cafile=str(ca))


async def fetch(host: str, port: int, name: str, context: ssl.SSLContext, *,
                path: str = "/", timeout: float = 5.0) -> TrafficResult:
    """One HTTPS GET for `name` through sniui at host:port, with the SNI and Host set to `name`."""
    try:
        return await asyncio.wait_for(_fetch(host, port, name, context, path), timeout)
    except asyncio.TimeoutError:
        return TrafficResult(name, "timeout", error=f"no answer within {timeout:g}s")


async def _fetch(host: str, port: int, name: str, context: ssl.SSLContext, path: str) -> TrafficResult:
    writer = None
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=context, server_hostname=name)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: sniui-demo-traffic\r\n"
                     f"Connection: close\r\n\r\n".encode("ascii"))
        await writer.drain()
        response = b""
        while len(response) < MAX_RESPONSE:  # Connection: close, so the upstream ends the body
            chunk = await reader.read(MAX_RESPONSE - len(response))
            if not chunk:
                break
            response += chunk
        return _parse_response(name, response)
    except ssl.SSLCertVerificationError as exc:
        # Not a routing decision: the server that answered cannot prove it is `name`.
        return TrafficResult(name, "error", error=f"certificate: {exc.verify_message or exc}")
    except ssl.SSLError as exc:
        # sniui answers an unroutable name with a TLS alert (unrecognized_name by default).
        return TrafficResult(name, "rejected", error=exc.reason or str(exc))
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        # `reject_with: close|reset` ends the connection without an alert.
        return TrafficResult(name, "rejected", error=type(exc).__name__)
    except OSError as exc:
        return TrafficResult(name, "error", error=exc.strerror or str(exc))
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _parse_response(name: str, data: bytes) -> TrafficResult:
    head, sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status_parts = lines[0].split(" ", 2)
    if not sep or len(status_parts) < 2 or not status_parts[1].isdigit():
        if not data:
            # The handshake completed, so this was not a routing reject: the far end hung up.
            return TrafficResult(name, "error", error="connection closed without a response")
        return TrafficResult(name, "error", error="not an HTTP response")
    upstream = None
    for line in lines[1:]:
        key, _, value = line.partition(":")
        if key.strip().lower() == "x-demo-upstream":
            upstream = value.strip()
    status = int(status_parts[1])
    return TrafficResult(name, "ok" if status < 400 else "error", status=status, upstream=upstream,
                         body=body.decode("utf-8", "replace"))


async def demo_traffic(address: tuple[str, int], ca: Path | str | bytes, *, names: Sequence[str],
                       count: int = 20, concurrency: int = 4, pace: float = 0.0,
                       timeout: float = 5.0, deadline: float = 60.0) -> TrafficReport:
    """Send `count` requests through sniui at `address`, cycling through `names`.

    `pace` waits that long between the starts of requests on each worker, so a
    UI shows traffic flowing rather than one burst. The whole run stops after
    `deadline` seconds whatever happens.
    """
    if count < 0 or concurrency < 1 or not names:
        raise ValueError("need count >= 0, concurrency >= 1 and at least one name")
    host, port = address
    context = client_context(ca)
    report = TrafficReport()
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            index = queue.pop(0)
            report.results.append(await fetch(host, port, names[index % len(names)], context, timeout=timeout))
            if pace and queue:
                await asyncio.sleep(pace)

    workers = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, count))]
    if workers:
        done, pending = await asyncio.wait(workers, timeout=deadline)
        for task in pending:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    report.cancelled = count - len(report.results)
    return report


def generate_traffic(address: tuple[str, int], ca: Path | str | bytes, *, names: Sequence[str],
                     count: int = 20, **options) -> TrafficReport:
    """`demo_traffic` for callers without an event loop (scripts, a worker thread)."""
    return asyncio.run(demo_traffic(address, ca, names=names, count=count, **options))
