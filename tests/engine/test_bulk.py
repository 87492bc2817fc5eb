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


@pytest.mark.slow
@pytest.mark.parametrize("first", ["client", "upstream"])
async def test_100_mb_each_way_byte_identical_with_half_close(first):
    hello = make_client_hello("bulk.example.com")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(60)

    def upstream_side():
        conn, _ = listener.accept()
        conn.settimeout(60)
        with conn:
            head = b""
            while len(head) < len(hello):
                head += conn.recv(len(hello) - len(head))
            assert head == hello
            if first == "client":
                got = receive_all(conn)
                send_all(conn, SIZE, 2)
            else:
                send_all(conn, SIZE, 2)
                got = receive_all(conn)
            return got

    def client_side(port: int):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(hello)
            if first == "client":
                send_all(sock, SIZE, 1)
                got = receive_all(sock)
            else:
                got = receive_all(sock)
                send_all(sock, SIZE, 1)
            # Keep reading until the router closes its side, so both EOFs are seen.
            return got

    text = f"""
listen:
  - address: "127.0.0.1:0"
routes:
  - sni: bulk.example.com
    upstream: "127.0.0.1:{listener.getsockname()[1]}"
"""
    try:
        async with running(text) as engine:
            started = time.monotonic()
            upstream = ThreadResult(upstream_side)
            client = ThreadResult(client_side, port_of(engine))
            client_got = await client.result(120)
            upstream_got = await upstream.result(120)
            elapsed = time.monotonic() - started
            assert upstream_got == (expected_digest(SIZE, 1), SIZE)
            assert client_got == (expected_digest(SIZE, 2), SIZE)
            await wait_until(lambda: engine.snapshot().recent, what="closed record")
            info = engine.snapshot().recent[0]
            assert info.bytes_up == SIZE + len(hello) and info.bytes_down == SIZE
            expected_reason = CloseReason.CLIENT_CLOSED if first == "client" else CloseReason.UPSTREAM_CLOSED
            assert info.close_reason is expected_reason
            print(f"\n{first} first: {2 * SIZE / elapsed / 1e6:.0f} MB/s through the router ({elapsed:.2f}s)")
    finally:
        listener.close()
