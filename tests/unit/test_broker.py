"""The embedded broker's helpers, without starting a broker: ports, addresses, SIGTERM handling."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from typing import TYPE_CHECKING

import pytest

from hub.broker import EmbeddedBroker, Terminated, free_port, sigterm_unwinds

if TYPE_CHECKING:
    from collections.abc import Callable


def wait_for_signal_handler(seconds: float = 2.0) -> None:
    """Give the interpreter a chance to run a pending Python-level signal handler."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.fixture
def own_sigterm_handler():
    """A known SIGTERM handler installed for the test, and the original one restored after it."""
    received: list[int] = []

    def handler(signum, frame):
        received.append(signum)

    original = signal.signal(signal.SIGTERM, handler)
    try:
        yield handler, received
    finally:
        signal.signal(signal.SIGTERM, original)


class TestFreePort:
    def test_port_is_bindable(self):
        """free_port() returns a loopback port that can be bound right away."""
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
            expected = port
            assert expected == sock.getsockname()[1]

    def test_port_is_unprivileged(self):
        """The port is in the unprivileged range."""
        assert 1024 <= free_port() <= 65535


class TestEmbeddedBroker:
    def test_bootstrap_servers_for_a_given_port(self):
        """bootstrap_servers is 127.0.0.1:<port> for the port asked for."""
        expected = "127.0.0.1:19092"
        assert expected == EmbeddedBroker(port=19092).bootstrap_servers

    def test_default_port_is_a_free_one(self):
        """Without a port, the broker gets a free loopback port and reports it as host:port."""
        broker = EmbeddedBroker()
        host, _, port = broker.bootstrap_servers.partition(":")
        expected = ("127.0.0.1", str(broker.port), True)
        assert expected == (host, port, 1024 <= broker.port <= 65535)

    def test_constructing_starts_nothing(self):
        """Creating the object starts no process; stop() before start() is a no-op."""
        broker = EmbeddedBroker()
        broker.stop()
        assert broker._process is None


def send_sigterm() -> None:
    """SIGTERM to this very process, then time for the handler to run."""
    os.kill(os.getpid(), signal.SIGTERM)
    wait_for_signal_handler()


def probe_like_the_broker() -> bool:
    """send_sigterm() inside a broad `except Exception`, like the broker's start-up probe."""
    try:
        send_sigterm()
    except Exception:
        return False
    return True


def guarded(action: Callable[[], object], *inner: contextlib.AbstractContextManager) -> None:
    """Run ``action`` inside sigterm_unwinds() and the given context managers."""
    with sigterm_unwinds(), contextlib.ExitStack() as stack:
        for manager in inner:
            stack.enter_context(manager)
        action()


class TestSigtermUnwinds:
    def test_sigterm_becomes_terminated(self, own_sigterm_handler):
        """A SIGTERM sent to this process inside the block raises Terminated there."""
        with pytest.raises(Terminated):
            guarded(send_sigterm)

    def test_context_managers_unwind(self, own_sigterm_handler):
        """SIGTERM runs the __exit__ of the with-blocks it interrupts (that is the point)."""
        cleaned: list[str] = []

        @contextlib.contextmanager
        def resource():
            try:
                yield
            finally:
                cleaned.append("stopped")

        with pytest.raises(Terminated):
            guarded(send_sigterm, resource())
        expected = ["stopped"]
        assert expected == cleaned

    def test_except_exception_does_not_swallow_it(self, own_sigterm_handler):
        """SIGTERM inside a broad `except Exception` (the broker's start-up probe) still unwinds."""
        with pytest.raises(Terminated):
            guarded(probe_like_the_broker)

    def test_previous_handler_restored_after_signal(self, own_sigterm_handler):
        """After Terminated, the handler that was installed before is back and still works."""
        handler, received = own_sigterm_handler
        with pytest.raises(Terminated):
            guarded(send_sigterm)
        restored = signal.getsignal(signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        expected = (handler, [signal.SIGTERM])
        assert expected == (restored, received)

    def test_previous_handler_restored_after_normal_exit(self, own_sigterm_handler):
        """Leaving the block normally restores the previous handler too."""
        handler, _ = own_sigterm_handler
        with sigterm_unwinds():
            inside = signal.getsignal(signal.SIGTERM)
        expected = (True, handler)
        assert expected == (inside is not handler, signal.getsignal(signal.SIGTERM))

    def test_previous_handler_restored_after_other_exception(self, own_sigterm_handler):
        """An unrelated exception out of the block also restores the previous handler."""
        handler, _ = own_sigterm_handler

        def fail() -> None:
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            guarded(fail)
        expected = handler
        assert expected == signal.getsignal(signal.SIGTERM)

    def test_default_disposition_is_restored(self):
        """When SIGTERM had the default disposition before, it has it again afterwards."""
        original = signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            with sigterm_unwinds():
                pass
            expected = signal.SIG_DFL
            assert expected == signal.getsignal(signal.SIGTERM)
        finally:
            signal.signal(signal.SIGTERM, original)

    def test_terminated_is_like_keyboard_interrupt(self):
        """Terminated derives from BaseException, beside KeyboardInterrupt, not from Exception."""
        expected = (True, False)
        assert expected == (
            issubclass(Terminated, BaseException),
            issubclass(Terminated, Exception),
        )
