"""FIT-Connect receiver against the Submission API simulator on 127.0.0.1.

Most tests need no Kafka: they run the simulator (delivery service and sender)
and the receiver's callback endpoint as two aiohttp servers on the loopback
interface; the receiver's handover and refusal record what they would produce
to Kafka. The last test runs workers through the broker against the simulator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Self, TypeVar

import aiohttp
import pytest
from aiohttp import web

from connectors.fitconnect import (
    FitConnectApiError,
    FitConnectConflict,
    FitConnectReceiver,
    ReceiverConfig,
)
from hub.broker import free_port
from hub.config import PROJECT_ROOT, Secret, Settings, variable
from hub.core import unfetched
from hub.core.errors import Rejection
from hub.core.pipeline import ACCEPTED, AUDIT, DEAD_LETTER, RECEIPTS, RECEIVED
from hub.core.records import AuditEvent, DeadLetter, PortalReceipt, decode, unb64
from hub.core.transport import fitconnect as fc
from hub.dlq import read_topic
from hub.fitconnect import load_submission_schemas
from hub.sim import fitconnect as sim
from hub.supervise import WorkerProcess

DESTINATION = "d12caea8-f372-4eb1-b102-b0a228253a11"
TOKEN = "access-token-of-the-test-client"  # noqa: S105 - test credential
CALLBACK_SECRET = "callback-secret-of-the-test-destination"  # noqa: S105 - test credential
SCHEMA_URI = "urn:xoev-de:xsozial:basis:2.4.0"
LEIKA = "urn:de:fim:leika:leistung:99050012104000"
DATA = b"<antrag><name>Erika Mustermann</name></antrag>"
ATTACHMENTS = [("nachweis.pdf", "application/pdf", b"%PDF-1.7 Nachweis")]
WAIT = 10.0
T = TypeVar("T")


@pytest.fixture(scope="module")
def keys() -> sim.DemoKeys:
    return sim.demo_keys()


class Harness:
    """Simulator plus receiver (callback endpoint, optional polling) for one test."""

    def __init__(
        self,
        keys: sim.DemoKeys,
        *,
        poll: bool = False,
        poll_interval: float = 3600.0,
        handover: Callable[[bytes, str], Awaitable[None]] | None = None,
        refuse: Callable[[str, str | None, Rejection], Awaitable[None]] | None = None,
        answered: Callable[[str], tuple[str, str] | None] | None = None,
        **config: Any,
    ) -> None:
        self.keys = keys
        self.poll = poll
        self.poll_interval = poll_interval
        self.handed: list[tuple[bytes, str]] = []
        self.arrived = asyncio.Event()
        self._handover = handover
        self.refuse = refuse
        self.answered = answered
        self.config = config

    async def handover(self, bundle: bytes, submission_id: str) -> None:
        if self._handover is not None:
            await self._handover(bundle, submission_id)
        self.handed.append((bundle, submission_id))
        self.arrived.set()

    async def __aenter__(self) -> Self:
        self.sim = sim.SubmissionApiSimulator(
            DESTINATION,
            token=TOKEN,
            callback_secret=CALLBACK_SECRET.encode(),
            receiver_signing_key=self.keys.signing_public,
        )
        await self.sim.start()
        config = ReceiverConfig(
            api_url=self.sim.url,
            destination_id=DESTINATION,
            token=Secret(TOKEN),
            callback_secret=Secret(CALLBACK_SECRET),
            poll_interval=self.poll_interval,
            backoff_initial=0.05,
            request_timeout=5.0,
            **self.config,
        )
        self.receiver = FitConnectReceiver(
            config, self.handover, refuse=self.refuse, answered=self.answered
        )
        app = web.Application()
        self.receiver.add_routes(app)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        host, port = self.runner.addresses[0][:2]
        self.callback_url = f"http://{host}:{port}{FitConnectReceiver.CALLBACK_PATH}"
        self.sim.callback_url = self.callback_url
        await self.receiver.start(poll=self.poll)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.receiver.stop()
        await self.runner.cleanup()
        await self.sim.stop()

    def seal(self) -> sim.Submission:
        return sim.seal_submission(
            DATA,
            ATTACHMENTS,
            self.keys.encryption_public,
            destination_id=DESTINATION,
            schema_uri=SCHEMA_URI,
            service_identifier=LEIKA,
        )

    def fetches(self) -> list[str]:
        return [path for method, path in self.sim.requests if path.startswith("/v1/submissions/")]


def open_bundle(keys: sim.DemoKeys, bundle: bytes) -> fc.Envelope:
    schemas = load_submission_schemas(PROJECT_ROOT / "schemas", [SCHEMA_URI])
    return fc.open_submission(
        bundle, fc.DecryptionKeys([keys.encryption]), schemas, dt.datetime.now(dt.UTC)
    )


def test_valid_callback_triggers_fetch_and_handover(keys):
    async def scenario() -> None:
        async with Harness(keys) as h:
            submission = h.seal()
            await h.sim.deliver(submission, notify=False)
            assert 200 == await h.sim.notify([submission])
            await asyncio.wait_for(h.arrived.wait(), WAIT)
            ((bundle, submission_id),) = h.handed
            assert submission.submission_id == submission_id
            envelope = open_bundle(keys, bundle)
            assert (DATA, submission.case_id) == (envelope.payload, envelope.case_id)
            assert [b"%PDF-1.7 Nachweis"] == [a.data for a in envelope.attachments]
            attachment_id = next(iter(submission.attachments))
            expected = [
                f"/v1/submissions/{submission_id}",
                f"/v1/submissions/{submission_id}/attachments/{attachment_id}",
            ]
            assert expected == h.fetches()

    asyncio.run(scenario())


def test_bad_hmac_is_401_without_echo_and_without_fetch(keys):
    async def scenario() -> None:
        async with Harness(keys) as h:
            submission = h.seal()
            await h.sim.deliver(submission, notify=False)
            assert 401 == await h.sim.notify([submission], secret=b"not the destination's secret")
            body = b'{"type":"marker-Erika-Mustermann"}'
            async with (
                aiohttp.ClientSession() as session,
                session.post(
                    h.callback_url,
                    data=body,
                    headers={"callback-timestamp": "1", "callback-authentication": "0" * 128},
                ) as response,
            ):
                assert (401, b"") == (response.status, await response.read())
            await asyncio.sleep(0.2)
            await h.receiver.idle()
            assert ([], []) == (h.handed, h.fetches())

    asyncio.run(scenario())


def test_authentic_callback_of_another_type_is_acknowledged_and_left_alone(keys):
    """The delivery service also calls for new events or replies: 200, nothing fetched.

    An authentic body that is no FIT-Connect callback at all stays 400.
    """

    async def scenario() -> None:
        async with Harness(keys) as h:
            submission = h.seal()
            await h.sim.deliver(submission, notify=False)
            other = {
                "type": "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events",
                "submissions": [{"submissionId": submission.submission_id}],
            }
            assert 200 == await h.sim.callback(json.dumps(other).encode())
            assert 400 == await h.sim.callback(b'{"type":"urn:other","submissionIds":[]}')
            assert 400 == await h.sim.callback(b"[]")
            await asyncio.sleep(0.2)
            await h.receiver.idle()
            assert ([], []) == (h.handed, h.fetches())

    asyncio.run(scenario())


def test_polling_picks_up_a_submission_without_callback(keys):
    async def scenario() -> None:
        async with Harness(keys, poll=True, poll_interval=0.2) as h:
            submission = h.seal()
            await h.sim.deliver(submission, notify=False)
            await asyncio.wait_for(h.arrived.wait(), WAIT)
            assert [submission.submission_id] == [sid for _, sid in h.handed]
            assert ("GET", "/v1/submissions") in h.sim.requests
            # Later polls still list it (no SET yet) but it is not handed over twice.
            await asyncio.sleep(0.5)
            assert 1 == len(h.handed)

    asyncio.run(scenario())


def test_failed_handover_is_retried(keys):
    failures = [RuntimeError("kafka unavailable")]

    async def flaky(bundle: bytes, submission_id: str) -> None:
        if failures:
            raise failures.pop()

    async def scenario() -> None:
        async with Harness(keys, handover=flaky) as h:
            submission = h.seal()
            await h.sim.deliver(submission)
            await asyncio.wait_for(h.arrived.wait(), WAIT)
            assert [submission.submission_id] == [sid for _, sid in h.handed]
            assert 2 == h.fetches().count(f"/v1/submissions/{submission.submission_id}")

    asyncio.run(scenario())


def test_posted_set_is_recorded_and_verifies(keys):
    async def scenario() -> None:
        async with Harness(keys) as h:
            submission = h.seal()
            await h.sim.deliver(submission)
            await asyncio.wait_for(h.arrived.wait(), WAIT)
            ((bundle, _),) = h.handed
            envelope = open_bundle(keys, bundle)
            token = fc.SetSigner(keys.signing).event(
                envelope, "accepted", None, dt.datetime.now(dt.UTC), original=bundle
            )
            await h.receiver.send_event(submission.case_id, token)

            url = f"{h.sim.url}/v1/cases/{submission.case_id}/events"
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as r:
                (recorded,) = (await r.json())["eventLog"]
            claims = fc.verify_set(recorded, keys.signing_public)
            assert f"submission:{submission.submission_id}" == claims["sub"]
            assert fc.EVENT_ACCEPT in claims["events"]
            assert "accepted" == h.sim.status[submission.submission_id]
            assert 0 == await h.receiver.poll_once()  # no longer pending

    asyncio.run(scenario())


def test_set_signed_with_another_key_is_refused(keys):
    async def scenario() -> None:
        async with Harness(keys) as h:
            submission = h.seal()
            await h.sim.deliver(submission, notify=False)
            impostor = fc.SetSigner(
                {k: v for k, v in keys.encryption.as_dict(private=True).items() if k != "use"}
                | {"alg": "PS512"},
                key_id="impostor",
            )
            token = impostor.event(
                fc.peek(submission.bundle()), "rejected", "DECRYPT", dt.datetime.now(dt.UTC)
            )
            with pytest.raises(FitConnectApiError) as caught:
                await h.receiver.send_event(submission.case_id, token)
            assert 422 == caught.value.status
            assert ({}, "submitted") == (h.sim.events, h.sim.status[submission.submission_id])

    asyncio.run(scenario())


# --------------------------------------------------------------------------- parts over the bound

BOUNDS = {"max_submission_bytes": 64 * 1024, "max_attachment_bytes": 16 * 1024}


class Refusals:
    """The receiver's ``refuse``: records what it was asked to refuse, optionally failing first."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[tuple[str, str | None, str, str | None]] = []
        self.failures = failures
        self.arrived = asyncio.Event()

    async def __call__(self, submission_id: str, case_id: str | None, rejection: Rejection) -> None:
        self.calls.append((submission_id, case_id, rejection.reason.value, rejection.path))
        if self.failures:
            self.failures -= 1
            raise RuntimeError("kafka unavailable")
        self.arrived.set()


@pytest.mark.parametrize(
    ("part", "size", "announce"),
    [
        ("attachments/0", 1024 * 1024, True),  # Content-Length says it: nothing of it is read
        ("attachments/0", 1024 * 1024, False),  # chunked: only the stream tells, reading stops
        ("data", 1024 * 1024, False),
        ("metadata", 512 * 1024, True),
    ],
)
def test_a_part_over_the_bound_is_refused_and_not_handed_over(keys, part, size, announce):
    refusals = Refusals()

    async def scenario() -> None:
        async with Harness(keys, refuse=refusals, **BOUNDS) as h:
            submission = h.seal()
            h.sim.oversize(submission.submission_id, part, size, announce=announce)
            await h.sim.deliver(submission)
            await asyncio.wait_for(refusals.arrived.wait(), WAIT)
            await h.receiver.idle()
            expected = (submission.submission_id, submission.case_id, "SIZE", part)
            assert [expected] == refusals.calls
            assert [] == h.handed
            # Done: listed again (no answer yet), it is neither fetched nor refused again.
            fetched = len(h.fetches())
            assert 0 == await h.receiver.poll_once()
            await h.receiver.idle()
            assert (1, fetched) == (len(refusals.calls), len(h.fetches()))

    asyncio.run(scenario())


def test_an_announced_size_over_the_bound_is_refused_without_reading_the_body(keys):
    refusals = Refusals()

    async def scenario() -> None:
        async with Harness(keys, refuse=refusals, **BOUNDS) as h:
            submission = h.seal()
            # The server announces 1 MiB, then sends nothing and hangs up: a receiver that
            # read the body would see a broken transfer (retried), not a size.
            h.sim.oversize(submission.submission_id, "attachments/0", 1024 * 1024, sent=0)
            await h.sim.deliver(submission)
            await asyncio.wait_for(refusals.arrived.wait(), WAIT)
            expected = (submission.submission_id, submission.case_id, "SIZE", "attachments/0")
            assert [expected] == refusals.calls

    asyncio.run(scenario())


def test_a_resource_announced_too_large_and_broken_off_is_refused_by_what_came(keys):
    refusals = Refusals()

    async def scenario() -> None:
        async with Harness(keys, refuse=refusals, **BOUNDS) as h:
            submission = h.seal()
            # Announces 1 MiB of metadata, sends the members before it, then hangs up.
            h.sim.oversize(submission.submission_id, "metadata", 1024 * 1024, sent=0)
            await h.sim.deliver(submission)
            await asyncio.wait_for(refusals.arrived.wait(), WAIT)
            expected = (submission.submission_id, submission.case_id, "SIZE", "metadata")
            assert [expected] == refusals.calls

    asyncio.run(scenario())


def test_parts_within_the_bounds_are_handed_over_as_before(keys):
    refusals = Refusals()

    async def scenario() -> None:
        async with Harness(keys, refuse=refusals, **BOUNDS) as h:
            submission = h.seal()
            await h.sim.deliver(submission)
            await asyncio.wait_for(h.arrived.wait(), WAIT)
            ((bundle, _),) = h.handed
            assert DATA == open_bundle(keys, bundle).payload
            assert [] == refusals.calls

    asyncio.run(scenario())


@pytest.mark.parametrize("spare", [-1, 0])
def test_a_bundle_over_its_bound_is_refused_though_every_part_fits(keys, spare):
    """The parts are within their own bounds, but the bundle is one byte over max_bundle_bytes:
    refused as SIZE at path ``bundle`` (answered), not handed over; at the bound it is handed
    over."""
    refusals = Refusals()

    async def scenario() -> None:
        size = len(
            sim.seal_submission(
                DATA,
                ATTACHMENTS,
                keys.encryption_public,
                destination_id=DESTINATION,
                schema_uri=SCHEMA_URI,
                service_identifier=LEIKA,
            ).bundle()
        )
        async with Harness(keys, refuse=refusals, max_bundle_bytes=size + spare, **BOUNDS) as h:
            submission = h.seal()
            await h.sim.deliver(submission)
            if spare < 0:
                await asyncio.wait_for(refusals.arrived.wait(), WAIT)
                await h.receiver.idle()
                expected = [(submission.submission_id, submission.case_id, "SIZE", "bundle")]
                assert (expected, []) == (refusals.calls, h.handed)
            else:
                await asyncio.wait_for(h.arrived.wait(), WAIT)
                ((bundle, _),) = h.handed
                assert (size, []) == (len(bundle), refusals.calls)

    asyncio.run(scenario())


def test_an_attachment_is_not_read_beyond_what_is_left_of_the_bundle(keys):
    """An attachment announced larger than what is left of the bundle bound (but within its own
    bound) is refused as ``bundle`` without reading it."""
    refusals = Refusals()

    async def scenario() -> None:
        bounds = BOUNDS | {"max_attachment_bytes": 4 * 1024 * 1024}
        async with Harness(keys, refuse=refusals, max_bundle_bytes=256 * 1024, **bounds) as h:
            submission = h.seal()
            h.sim.oversize(submission.submission_id, "attachments/0", 1024 * 1024, sent=0)
            await h.sim.deliver(submission)
            await asyncio.wait_for(refusals.arrived.wait(), WAIT)
            expected = [(submission.submission_id, submission.case_id, "SIZE", "bundle")]
            assert (expected, []) == (refusals.calls, h.handed)

    asyncio.run(scenario())


def test_a_failed_refusal_is_retried(keys):
    refusals = Refusals(failures=1)

    async def scenario() -> None:
        async with Harness(keys, refuse=refusals, **BOUNDS) as h:
            submission = h.seal()
            h.sim.oversize(submission.submission_id, "data", 1024 * 1024)
            await h.sim.deliver(submission)
            await asyncio.wait_for(refusals.arrived.wait(), WAIT)
            assert 2 == len(refusals.calls)
            assert [] == h.handed

    asyncio.run(scenario())


def test_without_refuse_an_oversized_part_is_only_logged(keys):
    async def scenario() -> None:
        async with Harness(keys, **BOUNDS) as h:
            submission = h.seal()
            h.sim.oversize(submission.submission_id, "attachments/0", 1024 * 1024)
            await h.sim.deliver(submission)
            await asyncio.sleep(0.3)
            await h.receiver.idle()
            assert [] == h.handed
            assert f"/v1/submissions/{submission.submission_id}" in h.fetches()
            assert "submitted" == h.sim.status[submission.submission_id]

    asyncio.run(scenario())


# --------------------------------------------------------------------------- answers, once


def posts(h: Harness) -> list[str]:
    return [path for method, path in h.sim.requests if method == "POST" and "/events" in path]


def answer(keys: sim.DemoKeys, submission: sim.Submission, outcome: str, reason: str | None) -> str:
    return fc.SetSigner(keys.signing).event(
        fc.peek(submission.bundle()), outcome, reason, dt.datetime.now(dt.UTC)
    )


def test_a_lost_answer_is_sent_again_without_fetching_or_handing_over(keys):
    known: dict[str, tuple[str, str]] = {}

    async def scenario() -> None:
        async with Harness(keys, answered=known.get) as h:
            submission = h.seal()
            token = answer(keys, submission, "rejected", "SIZE")
            known[submission.submission_id] = (submission.case_id, token)
            await h.sim.deliver(submission, notify=False)
            h.sim.event_faults.append(sim.LOSE_EVENT)
            assert "sent" == await h.receiver.send_event(submission.case_id, token)
            assert ({}, "submitted") == (h.sim.events, h.sim.status[submission.submission_id])
            assert 1 == await h.receiver.poll_once()  # still listed: the answer was lost
            await h.receiver.idle()
            assert [token] == h.sim.events[submission.case_id]  # the same SET, byte for byte
            assert "rejected" == h.sim.status[submission.submission_id]
            assert ([], []) == (h.handed, h.fetches())

    asyncio.run(scenario())


def test_an_answer_in_the_log_is_not_posted_again_while_the_submission_is_still_listed(keys):
    known: dict[str, tuple[str, str]] = {}

    async def scenario() -> None:
        async with Harness(keys, answered=known.get, redeliver_after=0.0) as h:
            submission = h.seal()
            await h.sim.deliver(submission)  # callback: fetched and handed over
            await asyncio.wait_for(h.arrived.wait(), WAIT)
            ((bundle, _),) = h.handed
            token = fc.SetSigner(keys.signing).event(
                open_bundle(keys, bundle), "accepted", None, dt.datetime.now(dt.UTC), bundle
            )
            known[submission.submission_id] = (submission.case_id, token)
            h.sim.event_faults.append(sim.KEEP_PENDING)
            assert "sent" == await h.receiver.send_event(submission.case_id, token)
            # The delivery service lags: the callback repeats, polls still list it.
            assert 200 == await h.sim.notify([submission])
            await h.receiver.poll_once()
            await h.receiver.idle()
            assert [token] == h.sim.events[submission.case_id]
            assert (1, 1) == (len(posts(h)), len(h.handed))

    asyncio.run(scenario())


def test_a_lost_acknowledgement_is_not_posted_twice(keys):
    async def scenario() -> None:
        async with Harness(keys) as h:
            submission = h.seal()
            await h.sim.deliver(submission, notify=False)
            token = answer(keys, submission, "rejected", "DECRYPT")
            h.sim.event_faults.append(sim.LOSE_ACK)  # recorded, then 503
            assert "present" == await h.receiver.send_event(submission.case_id, token)
            assert [token] == h.sim.events[submission.case_id]
            assert 1 == len(posts(h))

    asyncio.run(scenario())


def test_an_answer_contradicting_the_log_is_never_posted(keys):
    async def scenario() -> None:
        async with Harness(keys) as h:
            submission = h.seal()
            await h.sim.deliver(submission, notify=False)
            first = answer(keys, submission, "accepted", None)
            await h.receiver.send_event(submission.case_id, first)
            with pytest.raises(FitConnectConflict) as caught:
                await h.receiver.send_event(
                    submission.case_id, answer(keys, submission, "rejected", "SIZE")
                )
            assert caught.value.retriable is False
            assert [first] == h.sim.events[submission.case_id]
            assert ("accepted", 1) == (h.sim.status[submission.submission_id], len(posts(h)))

    asyncio.run(scenario())


def test_the_same_event_with_another_reason_is_not_posted_again(keys):
    async def scenario() -> None:
        async with Harness(keys) as h:
            submission = h.seal()
            await h.sim.deliver(submission, notify=False)
            first = answer(keys, submission, "rejected", "SIZE")
            assert "sent" == await h.receiver.send_event(submission.case_id, first)
            again = answer(keys, submission, "rejected", "DUPLICATE")
            assert "answered" == await h.receiver.send_event(submission.case_id, again)
            assert [first] == h.sim.events[submission.case_id]

    asyncio.run(scenario())


# --------------------------------------------------------------------------- through the broker

PORTAL_DESTINATION = "6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b"  # config/portals.yml: Serviceportal


class SimulatorThread:
    """The Submission API simulator in a background event loop, for a worker in another process."""

    def __init__(self, keys: sim.DemoKeys) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.sim = sim.SubmissionApiSimulator(
            PORTAL_DESTINATION,
            token=TOKEN,
            callback_secret=CALLBACK_SECRET.encode(),
            receiver_signing_key=keys.signing_public,
        )

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(30)

    def read(self, read: Callable[[], T]) -> T:
        async def inside() -> T:
            return read()

        return self.run(inside())

    def __enter__(self) -> Self:
        self._thread.start()
        self.run(self.sim.start())
        return self

    def __exit__(self, *exc: object) -> None:
        self.run(self.sim.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def fitconnect_worker_settings(settings: Settings, keys: sim.DemoKeys, url: str) -> Settings:
    def write(name: str, document: object) -> Path:
        path = settings.data_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document), "utf-8")
        return path

    return settings.with_overrides(
        fitconnect_api_url=url,
        fitconnect_destination=PORTAL_DESTINATION,
        fitconnect_token=Secret(TOKEN),
        fitconnect_callback_secret=Secret(CALLBACK_SECRET),
        fitconnect_decryption_keys=write(
            "fitconnect-decryption.jwks", {"keys": [keys.encryption.as_dict(private=True)]}
        ),
        fitconnect_signing_key=write("fitconnect-signing.jwk", keys.signing.as_dict(private=True)),
        fitconnect_callback_port=free_port(),
        fitconnect_poll_seconds=0.5,
    )


def run_worker(settings: Settings, log_name: str) -> WorkerProcess:
    process = WorkerProcess(
        settings,
        log_file=settings.data_dir / log_name,
        secrets={
            variable("fitconnect_token"): TOKEN,
            variable("fitconnect_callback_secret"): CALLBACK_SECRET,
        },
    ).start()
    process.wait_ready()
    return process


def until(condition: Callable[[], bool], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.2)


def records(settings: Settings, topic: str) -> list[Any]:
    """Every record on ``topic`` (logical name; the topics are this test's own), to its end."""
    return [m.value() for m in read_topic(settings, settings.topic(topic))]


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_oversized_submissions_end_with_a_reject_set_a_size_dead_letter_and_a_receipt(
    hub_settings, keys
):
    """Through the worker and the broker: refused unfetched, answered once, even after a lost answer.

    One attachment announces more than the receiver's 4 MiB bound (never read), one
    data part streams past the 8 MiB bound (read up to it). The first SET the hub
    posts is lost by the delivery service; a restarted worker finds the answer in
    the receipts topic and sends the same SET, without fetching the submission again.
    """
    with SimulatorThread(keys) as background:
        api = background.sim
        settings = fitconnect_worker_settings(hub_settings, keys, api.url)
        sealed = [
            sim.seal_submission(
                DATA,
                ATTACHMENTS,
                keys.encryption_public,
                destination_id=PORTAL_DESTINATION,
                schema_uri=SCHEMA_URI,
                service_identifier=LEIKA,
            )
            for _ in range(2)
        ]
        parts = {
            sealed[0].submission_id: ("attachments/0", 5 * 1024 * 1024, True),
            sealed[1].submission_id: ("data", 9 * 1024 * 1024, False),
        }

        async def submit() -> None:
            api.event_faults.append(sim.LOSE_EVENT)  # the first answer posted gets lost
            for submission in sealed:
                part, size, announce = parts[submission.submission_id]
                api.oversize(submission.submission_id, part, size, announce=announce)
                await api.deliver(submission, notify=False)  # polling finds them

        sids = {
            s.submission_id: unfetched.submission_id_of_message("fitconnect", s.submission_id)
            for s in sealed
        }

        def receipts_sent() -> int:
            events = [decode(v, AuditEvent) for v in records(settings, AUDIT)]
            return len(
                {e.submission_id for e in events if (e.stage, e.decision) == ("receipt", "sent")}
            )

        first = run_worker(settings, "worker-1.log")
        try:
            background.run(submit())
            until(lambda: receipts_sent() == 2)  # both posted; the delivery service kept one
            statuses = background.read(lambda: dict(api.status))
            assert ["rejected", "submitted"] == sorted(statuses.values())
        finally:
            first.stop()

        resources = {f"/v1/submissions/{s.submission_id}" for s in sealed}
        fetched_before = background.read(lambda: sum(path in resources for _, path in api.requests))
        second = run_worker(settings, "worker-2.log")
        try:
            until(lambda: set(background.read(lambda: dict(api.status)).values()) == {"rejected"})
        finally:
            second.stop()
        fetched_after = background.read(lambda: sum(path in resources for _, path in api.requests))
        assert fetched_before == fetched_after  # answered from the receipts topic, not re-fetched

        receipts = [decode(v, PortalReceipt) for v in records(settings, RECEIPTS)]
        letters = [decode(v, DeadLetter) for v in records(settings, DEAD_LETTER)]
        for submission in sealed:
            part = parts[submission.submission_id][0]
            sid = sids[submission.submission_id]
            (claims,) = background.read(lambda s=submission: api.answers(s.case_id))
            (problem,) = claims["events"][fc.EVENT_REJECT]["problems"]
            assert ("SIZE", f"submission:{submission.submission_id}") == (
                problem["title"],
                claims["sub"],
            )
            mine = [r for r in receipts if r.submission_id == sid]
            assert {("fitconnect", "rejected", "SIZE", submission.submission_id)} == {
                (r.channel, r.outcome, r.reason, r.transport_message_id) for r in mine
            }
            jtis = {
                fc.verify_set(unb64(r.body_b64 or "").decode(), keys.signing_public)["jti"]
                for r in mine
            }
            assert {claims["jti"]} == jtis  # the SET in the event log is the hub's one answer
            assert {("ingest", "SIZE", part)} == {
                (d.stage, d.reason, d.path) for d in letters if d.submission_id == sid
            }
            assert 1 == len({d.dead_letter_id for d in letters if d.submission_id == sid})
        assert set(sids.values()) == {d.submission_id for d in letters}
        # Nothing was handed over: no received, accepted or delivered record exists.
        assert [] == records(settings, RECEIVED) + records(settings, ACCEPTED)
