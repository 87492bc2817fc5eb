"""Large transfers arrive byte-identical through the relay, with half-close in both orders.

The client and the upstream run in threads with blocking sockets (they release
the GIL in send/recv and sha256), so the event loop under test only relays.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import threading
import time

import pytest

from sniui.engine.model import CloseReason

from .conftest import make_client_hello, port_of, running, wait_until

SIZE = 100 * 1024 * 1024
CHUNK = 256 * 1024
BLOCK = os.urandom(CHUNK + 4093)  # odd length, so chunk boundaries never line up with the data


def pattern_stream(size: int, seed: int):
    """Yield `size` bytes of non-repeating-looking data cheaply (rotating views of one random block)."""
    view = memoryview(BLOCK)
    sent, offset = 0, seed % 4093
    while sent < size:
        n = min(CHUNK, size - sent)
        yield view[offset: offset + n]
        sent += n
        offset = (offset + 7919) % 4093


def expected_digest(size: int, seed: int) -> str:
    digest = hashlib.sha256()
    for piece in pattern_stream(size, seed):
        digest.update(piece)
    return digest.hexdigest()


def send_all(sock: socket.socket, size: int, seed: int) -> None:
    for piece in pattern_stream(size, seed):
        sock.sendall(piece)
    sock.shutdown(socket.SHUT_WR)


def receive_all(sock: socket.socket, skip: int = 0) -> tuple[str, int]:
    """Read to EOF; hash everything after the first `skip` bytes."""
    digest = hashlib.sha256()
    total = 0
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    while True:
        n = sock.recv_into(view)
        if not n:
            return digest.hexdigest(), total
        if skip:
            cut = min(skip, n)
            skip -= cut
            digest.update(view[cut:n])
        else:
            digest.update(view[:n])
        total += n


class ThreadResult:
    def __init__(self, target, *args) -> None:
        self.value = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, args=(target, *args), daemon=True)
        self.thread.start()

    def _run(self, target, *args) -> None:
        try:
            self.value = target(*args)
        except BaseException as exc:  # reported by the test
            self.error = exc

    async def result(self, timeout: float):
        deadline = time.monotonic() + timeout
        while self.thread.is_alive():
            if time.monotonic() > deadline:
                raise AssertionError("thread did not finish in time")
            await asyncio.sleep(0.02)
        if self.error:
            raise self.error
        return self.value


class HalfCloseExchange:
    """A client and an upstream (threads on blocking sockets) that each send `size` patterned
    bytes through the router. The `first` side sends everything and shuts its write side down
    before reading, so the router must pass the EOF on while the other direction keeps flowing."""

    def __init__(self, hello: bytes, size: int, first: str) -> None:
        self.hello, self.size, self.first = hello, size, first
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(60)

    @property
    def upstream_port(self) -> int:
        return self.listener.getsockname()[1]

    def _upstream_side(self) -> tuple[str, int]:
        conn, _ = self.listener.accept()
        conn.settimeout(60)
        with conn:
            head = b""
            while len(head) < len(self.hello):
                head += conn.recv(len(self.hello) - len(head))
            assert head == self.hello
            if self.first == "client":
                got = receive_all(conn)
                send_all(conn, self.size, 2)
                return got
            send_all(conn, self.size, 2)
            return receive_all(conn)

    def _client_side(self, port: int) -> tuple[str, int]:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(self.hello)
            if self.first == "client":
                send_all(sock, self.size, 1)
                return receive_all(sock)
            got = receive_all(sock)   # read until the router closes its side: both EOFs are seen
            send_all(sock, self.size, 1)
            return got

    async def run(self, router_port: int) -> None:
        upstream = ThreadResult(self._upstream_side)
        client = ThreadResult(self._client_side, router_port)
        client_got = await client.result(120)
        upstream_got = await upstream.result(120)
        assert upstream_got == (expected_digest(self.size, 1), self.size)
        assert client_got == (expected_digest(self.size, 2), self.size)

    def close(self) -> None:
        self.listener.close()


@pytest.mark.slow
@pytest.mark.parametrize("first", ["client", "upstream"])
async def test_100_mb_each_way_byte_identical_with_half_close(first):
    hello = make_client_hello("bulk.example.com")
    exchange = HalfCloseExchange(hello, SIZE, first)
    text = f"""
listen:
  - address: "127.0.0.1:0"
routes:
  - sni: bulk.example.com
    upstream: "127.0.0.1:{exchange.upstream_port}"
"""
    try:
        async with running(text) as engine:
            started = time.monotonic()
            await exchange.run(port_of(engine))
            elapsed = time.monotonic() - started
            await wait_until(lambda: engine.snapshot().recent, what="closed record")
            info = engine.snapshot().recent[0]
            assert info.bytes_up == SIZE + len(hello) and info.bytes_down == SIZE
            expected_reason = CloseReason.CLIENT_CLOSED if first == "client" else CloseReason.UPSTREAM_CLOSED
            assert info.close_reason is expected_reason
            print(f"\n{first} first: {2 * SIZE / elapsed / 1e6:.0f} MB/s through the router ({elapsed:.2f}s)")
    finally:
        exchange.close()
