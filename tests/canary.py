"""A loopback canary for tests: counts every connection attempt (bad-inputs: "canary = 0")."""

from __future__ import annotations

import socket
import threading
import time


class Canary:
    """A loopback TCP listener counting every connection that is not its own probe."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port = self._server.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.address}"
        self.connections = 0
        self._probes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.5)
                try:
                    first = conn.recv(1)
                except OSError:
                    first = b""
                if first == b"\x00":
                    self._probes += 1
                else:
                    self.connections += 1

    def settle(self) -> int:
        """Connections so far, after every earlier connection was accepted (FIFO backlog)."""
        probes = self._probes
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            s.sendall(b"\x00")
            deadline = time.monotonic() + 5
            while self._probes == probes and time.monotonic() < deadline:
                time.sleep(0.01)
        return self.connections

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._server.close()
