"""A worker process stopped (SIGTERM) while its XTA portal still takes a receipt.

The receipt sender runs in the worker beside Faust (``hub/stream/receipts.py``);
its stop is tied to Faust's ``on_before_shutdown``. Here a real worker process
polls the XTA simulator, accepts a submission and sends its receipt to a
portal that holds the request, and gets SIGTERM meanwhile: once with a hold the
stop can wait out, once with one it cannot. Either way the worker exits 0
within its deadline (not 75, which would mean an outcome not written), and
after a restart the portal has the receipt exactly once and the channel's group
has committed past it.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.demo import HUB_MAILBOX, SOZIALPLATTFORM
from hub.sim import fitconnect as sim_fitconnect
from hub.sim.portals import PortalSimulators
from hub.supervise import WorkerProcess
from tests.integration.test_receipt_groups import all_committed, until

EXAMPLE = (
    Path(__file__).parents[2] / "examples" / "submissions" / "01-buergergeld-recklinghausen.xml"
)
DEADLINE = 20.0  # seconds from SIGTERM to exit: the worker's own is 15 s


@pytest.fixture
def sims(tmp_path: Path) -> Iterator[PortalSimulators]:
    """The portal simulators; only the XTA server is used."""
    simulators = PortalSimulators(
        tmp_path / "pki",
        destination_id="00000000-0000-4000-8000-000000000000",
        token=secrets.token_urlsafe(16),
        callback_secret=secrets.token_bytes(32),
        receiver_signing_key=sim_fitconnect.demo_keys().signing,
        callback_url="http://127.0.0.1:9/fitconnect/callback",
    )
    simulators.start()
    try:
        yield simulators
    finally:
        simulators.stop()


def stopped(worker: WorkerProcess) -> int:
    """SIGTERM, then the exit status; within :data:`DEADLINE` or the test fails."""
    assert worker.process is not None
    worker.process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    status = worker.process.wait(timeout=60)
    assert time.monotonic() - started < DEADLINE
    return status


@pytest.mark.parametrize(
    "hold",
    [
        # The portal takes the request and records it while the worker stops: the restart's
        # send finds the message id taken (a duplicate), which counts as the receipt being there.
        pytest.param(4.0, id="the-portal-records-it-after-the-worker-left"),
        # The portal holds it beyond the test: the restart's send is the one recorded.
        pytest.param(600.0, id="the-portal-still-holds-it"),
    ],
)
def test_sigterm_during_a_receipt_send_exits_0_and_the_receipt_arrives_once(
    hub_settings, sims, tmp_path, hold
):
    settings = hub_settings.with_overrides(**sims.xta_settings(HUB_MAILBOX))
    sims.hold_xta_sends(hold)
    message_id = sims.add_xta_message(
        EXAMPLE.read_bytes(), author=SOZIALPLATTFORM, reader=HUB_MAILBOX
    )
    first = WorkerProcess(settings, log_file=tmp_path / "worker-1.log").start()
    try:
        until(lambda: "sendMessage" in sims.xta_requests(), timeout=120)
        assert 0 == stopped(first)
    finally:
        first.kill()
    closed, received = sims.xta_state()
    assert [message_id] == closed  # closed once Kafka had the submission, before the receipt
    # The portal had not answered when the stop came: the receipt's record stays uncommitted.
    assert not all_committed(settings, "xta2")
    if hold < 10:
        until(lambda: len(sims.xta_state()[1]) == 1, timeout=30)
    else:
        assert [] == received

    second = WorkerProcess(settings, log_file=tmp_path / "worker-2.log").start()
    try:
        second.wait_ready()
        until(lambda: all_committed(settings, "xta2"), timeout=120)
        assert 0 == stopped(second)
    finally:
        second.kill()
    closed, received = sims.xta_state()
    assert [message_id] == closed
    assert 1 == len(received)  # recorded once: by the first request or by the restart's
    assert 2 == sims.xta_requests().count("sendMessage")  # the restart sent it again
