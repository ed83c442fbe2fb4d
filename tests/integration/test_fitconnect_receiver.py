"""FIT-Connect receiver against the Submission API simulator on 127.0.0.1 (no Kafka needed).

Each test runs the simulator (delivery service and sender) and the receiver's
callback endpoint as two aiohttp servers on the loopback interface; the
receiver's handover records what it would produce to Kafka.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Self

import aiohttp
import pytest
from aiohttp import web

from connectors.fitconnect import FitConnectApiError, FitConnectReceiver, ReceiverConfig
from hub.config import PROJECT_ROOT, Secret
from hub.core.transport import fitconnect as fc
from hub.fitconnect import load_submission_schemas
from hub.sim import fitconnect as sim

DESTINATION = "d12caea8-f372-4eb1-b102-b0a228253a11"
TOKEN = "access-token-of-the-test-client"  # noqa: S105 - test credential
CALLBACK_SECRET = "callback-secret-of-the-test-destination"  # noqa: S105 - test credential
SCHEMA_URI = "urn:xoev-de:xsozial:basis:2.4.0"
LEIKA = "urn:de:fim:leika:leistung:99050012104000"
DATA = b"<antrag><name>Erika Mustermann</name></antrag>"
ATTACHMENTS = [("nachweis.pdf", "application/pdf", b"%PDF-1.7 Nachweis")]
WAIT = 10.0


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
    ) -> None:
        self.keys = keys
        self.poll = poll
        self.poll_interval = poll_interval
        self.handed: list[tuple[bytes, str]] = []
        self.arrived = asyncio.Event()
        self._handover = handover

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
        )
        self.receiver = FitConnectReceiver(config, self.handover)
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
