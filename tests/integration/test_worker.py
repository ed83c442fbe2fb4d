"""The worker process: shutdown behaviour around the consumer-group join."""

from __future__ import annotations

import signal
import time

import pytest

from hub.supervise import WorkerProcess

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("delay", [0.5, 3.0])
def test_sigterm_during_start_and_join_ends_the_worker_in_time(hub_settings, delay):
    """SIGTERM before the worker is ready never hangs it: it is gone within the grace period."""
    worker = WorkerProcess(hub_settings, log_file=hub_settings.data_dir / "worker.log").start()
    time.sleep(delay)
    assert worker.process is not None
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    worker.process.wait(timeout=40)
    assert time.monotonic() - started < 20


def test_sigterm_when_ready_is_a_clean_exit(hub_settings):
    """A ready worker stops on SIGTERM promptly with exit status 0."""
    worker = WorkerProcess(hub_settings, log_file=hub_settings.data_dir / "worker.log").start()
    worker.wait_ready()
    assert worker.process is not None
    started = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    assert 0 == worker.process.wait(timeout=40)
    assert time.monotonic() - started < 15
