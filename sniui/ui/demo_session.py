"""Demo traffic for the TUI: a burst of short requests plus a few connections that stay open.

The demo's own generator makes one request per connection, which finishes in
milliseconds; a new user looking at the Live table would see it empty. So the
TUI also holds a handful of keep-alive connections for a while, each sending
a request about once a second, so rows, byte counters and rates move on screen.
Loopback only, bounded in count and time.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sniui.demo import Demo

HELD_CONNECTIONS = 6
HOLD_SECONDS = (15.0, 45.0)
REQUEST_EVERY = (0.5, 2.0)   # under the demo upstream's 5 s idle timeout


async def _hold(host: str, port: int, name: str, context: ssl.SSLContext, seconds: float) -> None:
    writer = None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=context, server_hostname=name), 5)
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while loop.time() < end:
            writer.write(f"GET / HTTP/1.1\r\nHost: {name}\r\nUser-Agent: sniui-tui-demo\r\n\r\n".encode("ascii"))
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            await asyncio.wait_for(reader.readexactly(length), 5)
            await asyncio.sleep(random.uniform(*REQUEST_EVERY))
    except (OSError, ssl.SSLError, asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
            ValueError):
        return  # a rejected name or a closed connection (perhaps closed from the UI): that is the demo too
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)


async def demo_traffic(demo: "Demo", port: int) -> object:
    """One press of `t`: held connections across the routed names, and a paced burst including a reject."""
    from sniui.demo.traffic import client_context

    context = client_context(demo.pki.ca_pem)
    names = list(demo.names) or ["localhost"]
    holders = [asyncio.ensure_future(_hold("127.0.0.1", port, names[i % len(names)], context,
                                           random.uniform(*HOLD_SECONDS)))
               for i in range(HELD_CONNECTIONS)]
    try:
        report = await demo.traffic(port, count=24, concurrency=3, pace=0.4)
        await asyncio.gather(*holders, return_exceptions=True)
        return report
    finally:
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
