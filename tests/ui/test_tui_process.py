"""`sniui -c FILE` as a person runs it: a real process on a pseudo-terminal, on each event loop.

The TUI runs the engine on uvloop by default (as headless does) and on asyncio's loop with
SNIUI_LOOP=asyncio. Either way the dashboard must draw, a real connection must be routed by
its SNI while the screen is up, and `q` must quit with status 0.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import subprocess
import sys
import termios
import threading
import time

import pytest

from tests.hello_samples import python_hello

DEADLINE = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Screen:
    """A pseudo-terminal running one command; what it drew is collected as it arrives."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.process = subprocess.Popen(command, stdin=slave, stdout=slave, stderr=slave, env=env,
                                        start_new_session=True)
        os.close(slave)
        self.output = bytearray()
        self.reader = threading.Thread(target=self._drain, daemon=True)
        self.reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def wait_for(self, text: bytes) -> None:
        deadline = time.monotonic() + DEADLINE
        while text not in self.output:
            assert self.process.poll() is None, f"sniui exited early:\n{self.output[-2000:].decode(errors='replace')}"
            assert time.monotonic() < deadline, f"{text!r} never drawn"
            time.sleep(0.05)

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=DEADLINE)
        os.close(self.master)


def connect(port: int) -> socket.socket:
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "the TUI's listener never came up"
            time.sleep(0.1)


def receive(client: socket.socket, size: int) -> bytes:
    received = b""
    while len(received) < size:
        chunk = client.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


@pytest.fixture
def echo_upstream():
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:   # echo until the client closes
                conn.settimeout(DEADLINE)
                while data := conn.recv(65536):
                    conn.sendall(data)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(timeout=DEADLINE)
    server.close()


@pytest.mark.parametrize("loop", ["default", "asyncio"])
def test_the_tui_routes_while_it_draws_and_quits_on_q(tmp_path, echo_upstream, loop):
    port = free_port()
    config = tmp_path / "sniui.yaml"
    config.write_text(f"""
listen: [{{address: "127.0.0.1:{port}"}}]
routes: [{{sni: app.test, upstream: "127.0.0.1:{echo_upstream}"}}]
""")
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="120", LINES="40")
    env.pop("SNIUI_LOOP", None)
    if loop != "default":
        env["SNIUI_LOOP"] = loop
    screen = Screen([sys.executable, "-m", "sniui", "-c", str(config)], env)
    try:
        screen.wait_for(b"Live")                 # the dashboard's first tab: the screen is up
        hello, _ = python_hello("app.test")
        with connect(port) as client:
            client.sendall(hello)
            assert receive(client, len(hello)) == hello   # routed by its SNI to the echo upstream
            screen.wait_for(b"app.test")         # and shown on the dashboard while it is open
        screen.press(b"q")
        assert screen.process.wait(timeout=DEADLINE) == 0
    finally:
        screen.close()
