"""FIT-Connect: answering what the receiver refuses to fetch, and never answering twice.

The pure parts: which part of an oversized submission resource did not fit
(``unread_part``), the records of a refused submission (``hub.core.unfetched``),
SET ``jti`` values derived from the answer, reading a case's event log
(``answer_in_log``), the callback's case ids, the answer index the receiver
asks before fetching, and the bounded body read.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
import uuid

import aiohttp
import pytest

from connectors.fitconnect.receiver import read_prefix
from hub import portals
from hub.config import PROJECT_ROOT, Settings
from hub.core import unfetched
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import (
    ACCEPTED,
    AUDIT,
    DEAD_LETTER,
    RECEIPTS,
    SEEN,
    HubContext,
    intake,
)
from hub.core.records import (
    AuditEvent,
    DeadLetter,
    PortalReceipt,
    Received,
    Seen,
    decode,
    encode,
    seen_key,
    unb64,
)
from hub.core.transport import Envelope
from hub.core.transport import fitconnect as fc
from hub.core.transport.registry import TransportKeys
from hub.core.wohngeld import NAMESPACE as WOHNGELD_NAMESPACE
from hub.fitconnect import load_submission_schemas
from hub.sim import fitconnect as sim
from hub.stream.fitconnect_answers import AnswerIndex

NOW = dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=dt.UTC)
DESTINATION = "6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b"  # config/portals.yml: Serviceportal
SUBMISSION = "02bf1d9f-282d-4abf-810a-c4104baf0afe"
CASE = "452b5ee6-35df-441a-bd39-6141723cf914"
LEIKA = "urn:de:fim:leika:leistung:99107023017001"
WOHNGELD = PROJECT_ROOT / "examples" / "submissions" / "09-wohngeld-serviceportal-herten.xml"


@pytest.fixture(scope="session")
def keys() -> sim.DemoKeys:
    return sim.demo_keys()


@pytest.fixture(scope="module")
def fit_hub(hub_context: HubContext, settings: Settings, keys: sim.DemoKeys) -> HubContext:
    """The unit hub with FIT-Connect keys and the configured portals (the Serviceportal's destination)."""
    return dataclasses.replace(
        hub_context,
        portals=portals.load(settings.portals_file, settings.schema_dir),
        transport_keys=TransportKeys(
            fitconnect_decryption=fc.DecryptionKeys([keys.encryption]),
            fitconnect_signing=fc.SetSigner(keys.signing),
            fitconnect_schemas=load_submission_schemas(
                settings.schema_dir, [t.namespace for t in hub_context.payloads]
            ),
        ),
    )


def envelope(case_id: str | None = CASE, message_id: str = SUBMISSION) -> Envelope:
    return Envelope("fitconnect", b"", message_id=message_id, reader=DESTINATION, case_id=case_id)


def emitted(result, topic: str, cls):  # type: ignore[no-untyped-def]
    return [decode(e.value, cls) for e in result.emits if e.topic == topic]


# --------------------------------------------------------------------------- unread_part


def resource_text(**changes: object) -> str:
    document: dict[str, object] = {
        "submissionId": SUBMISSION,
        "caseId": CASE,
        "destinationId": DESTINATION,
        "serviceType": {"name": "Wohngeld", "identifier": LEIKA},
        "encryptedMetadata": "eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.a.b." + "M" * 500 + ".t",
        "encryptedData": "eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.a.b." + "D" * 5000 + ".t",
        "attachments": [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))],
    }
    document.update(changes)
    return json.dumps(document, indent=1)


class TestUnreadPart:
    @pytest.mark.parametrize(
        ("member", "part"),
        [
            ("encryptedMetadata", "metadata"),
            ("encryptedData", "data"),
            ("serviceType", "submission"),
            ("attachments", "submission"),
        ],
    )
    def test_the_member_the_bound_falls_into_is_the_part(self, member, part):
        text = resource_text()
        cut = text.index(f'"{member}"') + len(member) + 12  # inside the member's value
        unread = fc.unread_part(text[:cut].encode())
        assert part == unread.part
        assert {"submissionId": SUBMISSION, "caseId": CASE, "destinationId": DESTINATION} == dict(
            unread.ids
        )

    def test_ids_after_the_bound_are_not_known(self):
        text = json.dumps({"submissionId": SUBMISSION, "encryptedData": "x" * 100, "caseId": CASE})
        unread = fc.unread_part(text[:90].encode())
        assert ("data", {"submissionId": SUBMISSION}) == (unread.part, dict(unread.ids))

    @pytest.mark.parametrize(
        "prefix",
        [
            b"",
            b"[1, 2",
            b'{"submiss',
            b'{"submissionId"',
            b'{"caseId": "' + CASE.encode(),
            b"\xff\xfe{",
        ],
    )
    def test_a_cut_outside_any_part_is_the_submission(self, prefix):
        assert "submission" == fc.unread_part(prefix).part

    def test_only_uuids_are_kept_and_in_lower_case(self):
        text = json.dumps(
            {
                "submissionId": SUBMISSION.upper(),
                "caseId": "Erika Mustermann",
                "encryptedData": "x" * 50,
            }
        )
        unread = fc.unread_part(text[:-10].encode())
        assert {"submissionId": SUBMISSION} == dict(unread.ids)
        assert "Mustermann" not in repr(unread)

    def test_a_complete_resource_points_at_no_part(self):
        assert "submission" == fc.unread_part(resource_text().encode()).part


# --------------------------------------------------------------------------- event log


def token(keys: sim.DemoKeys, kind: str = "accept", *, reason: Reason = Reason.SIZE, **kw):  # type: ignore[no-untyped-def]
    return fc.SetSigner(keys.signing).sign(
        kind,  # type: ignore[arg-type]
        submission_id=kw.pop("submission_id", SUBMISSION),
        case_id=CASE,
        destination_id=DESTINATION,
        now=kw.pop("now", NOW),
        problems=[Rejection(reason)] if kind == "reject" else (),
        **kw,
    )


class TestAnswerInLog:
    def test_an_empty_or_unreadable_log_is_absent(self, keys):
        own = token(keys)
        assert fc.ANSWER_ABSENT == fc.answer_in_log(own, [])
        assert fc.ANSWER_ABSENT == fc.answer_in_log(own, None)
        assert fc.ANSWER_ABSENT == fc.answer_in_log(own, ["not a token", 7, "a.b.c"])

    def test_the_same_answer_signed_again_is_present(self, keys):
        logged = token(keys, "reject")
        again = token(keys, "reject", now=NOW + dt.timedelta(days=1))
        assert logged != again
        assert fc.ANSWER_PRESENT == fc.answer_in_log(again, [logged])

    def test_another_answer_with_the_same_event_is_answered(self, keys):
        logged = token(keys, "reject", reason=Reason.DECRYPT)
        assert fc.ANSWER_GIVEN == fc.answer_in_log(token(keys, "reject"), [logged])

    def test_the_other_event_is_a_conflict(self, keys):
        assert fc.ANSWER_CONFLICT == fc.answer_in_log(token(keys, "reject"), [token(keys)])
        assert fc.ANSWER_CONFLICT == fc.answer_in_log(token(keys), [token(keys, "reject")])

    def test_answers_about_other_submissions_do_not_count(self, keys):
        other = token(keys, "reject", submission_id=str(uuid.UUID(int=9)))
        assert fc.ANSWER_ABSENT == fc.answer_in_log(token(keys), [other])

    def test_present_wins_over_an_earlier_same_event_entry(self, keys):
        own = token(keys, "reject")
        log = [token(keys, "reject", reason=Reason.DECRYPT), own]
        assert fc.ANSWER_PRESENT == fc.answer_in_log(own, log)

    def test_a_token_that_is_no_answer_is_refused(self):
        with pytest.raises(ValueError, match="SET"):
            fc.answer_in_log("a.b.c", [])

    def test_jti_is_a_uuid_laid_out_as_version_4(self, keys):
        jti = fc.verify_set(token(keys), keys.signing_public)["jti"]
        assert 4 == uuid.UUID(jti).version


# --------------------------------------------------------------------------- callback


class TestCallbackAnnouncements:
    def test_case_ids_come_with_the_submissions(self):
        other = str(uuid.UUID(int=3))
        body = json.dumps(
            {
                "type": fc.CALLBACK_NEW_SUBMISSIONS,
                "submissions": [
                    {
                        "destinationId": DESTINATION,
                        "submissionId": SUBMISSION,
                        "caseId": CASE.upper(),
                    },
                    {"destinationId": str(uuid.UUID(int=4)), "submissionId": other, "caseId": CASE},
                    {"submissionId": str(uuid.UUID(int=5)), "caseId": "not-a-uuid"},
                ],
                "submissionIds": [str(uuid.UUID(int=6)), SUBMISSION],
            }
        ).encode()
        announced = fc.callback_announcements(body, DESTINATION)
        assert {
            SUBMISSION: CASE,
            str(uuid.UUID(int=5)): None,
            str(uuid.UUID(int=6)): None,
        } == announced
        assert tuple(announced) == fc.callback_submissions(body, DESTINATION)


# --------------------------------------------------------------------------- the refusal's records


class TestRefused:
    def test_dead_letter_audit_replay_key_and_signed_reject(self, fit_hub, keys):
        rejection = Rejection(Reason.SIZE, "attachments/1")
        result = unfetched.refused(envelope(), rejection, fit_hub, NOW)
        assert ("rejected", "SIZE") == (result.outcome, result.reason)
        sid = unfetched.submission_id_of_message("fitconnect", SUBMISSION)
        assert {sid} == {e.key for e in result.emits if e.topic != SEEN}

        (letter,) = emitted(result, DEAD_LETTER, DeadLetter)
        assert (sid, "ingest", "SIZE", "attachments/1") == (
            letter.submission_id,
            letter.stage,
            letter.reason,
            letter.path,
        )
        assert (None, None) == (letter.payload_sha256, letter.source)
        (event,) = emitted(result, AUDIT, AuditEvent)
        assert ("ingest", "rejected", letter.dead_letter_id) == (
            event.stage,
            event.decision,
            event.dead_letter_id,
        )
        (seen,) = emitted(result, SEEN, Seen)
        assert (seen_key("msg", "fitconnect", SUBMISSION), sid) == (seen.key, seen.submission_id)

        (receipt,) = emitted(result, RECEIPTS, PortalReceipt)
        assert ("fitconnect", "rejected", "SIZE", "application/jose") == (
            receipt.channel,
            receipt.outcome,
            receipt.reason,
            receipt.media_type,
        )
        assert ("serviceportal-emscher-lippe", SUBMISSION, CASE) == (
            receipt.portal,
            receipt.transport_message_id,
            receipt.case_id,
        )
        claims = fc.verify_set(unb64(receipt.body_b64 or "").decode(), keys.signing_public)
        assert (f"submission:{SUBMISSION}", f"case:{CASE}", DESTINATION) == (
            claims["sub"],
            claims["txn"],
            claims["iss"],
        )
        (problem,) = claims["events"][fc.EVENT_REJECT]["problems"]
        assert ("urn:sozialhub:reason:SIZE", "SIZE") == (problem["type"], problem["title"])

    def test_the_set_is_the_one_intake_would_send_for_the_same_rejection(self, fit_hub, keys):
        result = unfetched.refused(envelope(), Rejection(Reason.SIZE, "data"), fit_hub, NOW)
        (receipt,) = emitted(result, RECEIPTS, PortalReceipt)
        ours = fc.verify_set(unb64(receipt.body_b64 or "").decode(), keys.signing_public)
        # What intake's receipt builder (pipeline._portal_receipt -> portal_receipts) signs.
        pipeline_set = fit_hub.transport_keys.fitconnect_signing.event(
            envelope(), "rejected", "SIZE", NOW
        )
        assert fc.verify_set(pipeline_set, keys.signing_public) == ours

    def test_the_receipt_has_the_fields_of_an_intake_rejection_receipt(self, fit_hub, keys):
        bundle = sim.seal_submission(
            b"<x/>",
            [],
            keys.encryption_public,
            destination_id=DESTINATION,
            schema_uri=WOHNGELD_NAMESPACE,
            service_identifier=LEIKA,
        ).bundle()
        first = intake(Received.of(bundle, "fitconnect", "fitconnect", NOW), None, fit_hub, NOW)
        (by_intake,) = emitted(first, RECEIPTS, PortalReceipt)
        assert ("rejected", "UNKNOWN_PAYLOAD") == (by_intake.outcome, by_intake.reason)
        refused = unfetched.refused(envelope(), Rejection(Reason.SIZE, "data"), fit_hub, NOW)
        (by_refusal,) = emitted(refused, RECEIPTS, PortalReceipt)
        filled = lambda r: {k for k, v in dataclasses.asdict(r).items() if v is not None}  # noqa: E731
        assert filled(by_intake) == filled(by_refusal)
        assert (by_intake.channel, by_intake.portal, by_intake.media_type) == (
            by_refusal.channel,
            by_refusal.portal,
            by_refusal.media_type,
        )

    def test_refusing_again_repeats_every_id_and_the_jti(self, fit_hub, keys):
        rejection = Rejection(Reason.SIZE, "data")
        first = unfetched.refused(envelope(), rejection, fit_hub, NOW)
        later = unfetched.refused(envelope(), rejection, fit_hub, NOW + dt.timedelta(hours=2))
        assert [(e.topic, e.key) for e in first.emits] == [(e.topic, e.key) for e in later.emits]
        assert emitted(first, DEAD_LETTER, DeadLetter)[0].dead_letter_id == (
            emitted(later, DEAD_LETTER, DeadLetter)[0].dead_letter_id
        )
        assert emitted(first, AUDIT, AuditEvent)[0].event_id == (
            emitted(later, AUDIT, AuditEvent)[0].event_id
        )
        claims = [
            fc.verify_set(
                unb64(emitted(r, RECEIPTS, PortalReceipt)[0].body_b64 or "").decode(),
                keys.signing_public,
            )
            for r in (first, later)
        ]
        assert claims[0]["jti"] == claims[1]["jti"]
        assert claims[0]["iat"] != claims[1]["iat"]
        assert emitted(first, RECEIPTS, PortalReceipt)[0].receipt_id == (
            emitted(later, RECEIPTS, PortalReceipt)[0].receipt_id
        )

    def test_another_submission_gets_other_ids(self, fit_hub):
        one = unfetched.refused(envelope(), Rejection(Reason.SIZE, "data"), fit_hub, NOW)
        other = unfetched.refused(
            envelope(message_id=str(uuid.UUID(int=7))), Rejection(Reason.SIZE, "data"), fit_hub, NOW
        )
        assert not {e.key for e in one.emits} & {e.key for e in other.emits}

    def test_without_a_case_id_there_is_no_receipt_but_the_dead_letter(self, fit_hub):
        result = unfetched.refused(
            envelope(case_id=None), Rejection(Reason.SIZE, "data"), fit_hub, NOW
        )
        assert [DEAD_LETTER, AUDIT, SEEN] == [e.topic for e in result.emits]

    def test_a_destination_without_portal_is_answered_all_the_same(self, fit_hub):
        strange = dataclasses.replace(envelope(), reader=str(uuid.UUID(int=8)))
        result = unfetched.refused(strange, Rejection(Reason.SIZE, "data"), fit_hub, NOW)
        (receipt,) = emitted(result, RECEIPTS, PortalReceipt)
        assert (None, "fitconnect") == (receipt.portal, receipt.channel)

    def test_the_same_submission_fetched_later_in_full_is_never_delivered(self, fit_hub, keys):
        submission = sim.seal_submission(
            WOHNGELD.read_bytes(),
            [],
            keys.encryption_public,
            destination_id=DESTINATION,
            schema_uri=WOHNGELD_NAMESPACE,
            service_identifier=LEIKA,
        )
        received = Received.of(
            submission.bundle(), "fitconnect", "fitconnect", NOW, submission.submission_id
        )
        # Without the refusal, the bundle is accepted: the replay key is what stops it.
        assert "accepted" == intake(received, None, fit_hub, NOW).outcome
        refusal = unfetched.refused(
            envelope(message_id=submission.submission_id, case_id=submission.case_id),
            Rejection(Reason.SIZE, "attachments/0"),
            fit_hub,
            NOW,
        )
        seen = {s.key: s.submission_id for s in emitted(refusal, SEEN, Seen)}
        result = intake(received, None, fit_hub, NOW, seen=seen)
        assert ("rejected", "DUPLICATE") == (result.outcome, result.reason)
        assert not [e for e in result.emits if e.topic == ACCEPTED]
        (receipt,) = emitted(result, RECEIPTS, PortalReceipt)
        assert "rejected" == receipt.outcome  # the same event as the refusal's: no contradiction

    def test_a_refusal_needs_the_message_id(self, fit_hub):
        with pytest.raises(ValueError, match="message id"):
            unfetched.refused(
                dataclasses.replace(envelope(), message_id=None),
                Rejection(Reason.SIZE, "data"),
                fit_hub,
                NOW,
            )


# --------------------------------------------------------------------------- the answer index


def receipt_value(
    message_id: str = SUBMISSION,
    *,
    outcome: str = "accepted",
    body: bytes = b"header.claims.signature",
    channel: str = "fitconnect",
    at: str = "2026-11-02T10:00:00.000Z",
    case_id: str | None = CASE,
) -> bytes:
    return encode(
        PortalReceipt(
            receipt_id="rcp-" + "0" * 32,
            submission_id="sub-" + "1" * 32,
            transport="fitconnect",
            channel=channel,
            outcome=outcome,
            at=at,
            transport_message_id=message_id,
            body_b64=base64.b64encode(body).decode(),
            case_id=case_id,
        )
    )


class TestAnswerIndex:
    def index(self, **kwargs) -> AnswerIndex:  # type: ignore[no-untyped-def]
        return AnswerIndex(clock=lambda: NOW, **kwargs)

    def test_a_fitconnect_receipt_is_the_answer(self):
        index = self.index()
        index.take(receipt_value(message_id=SUBMISSION.upper()))
        assert (CASE, "header.claims.signature") == index.get(SUBMISSION)

    def test_the_first_answer_stays_the_answer(self):
        index = self.index()
        index.take(receipt_value(body=b"first"))
        index.take(receipt_value(outcome="rejected", body=b"second"))
        assert (CASE, "first") == index.get(SUBMISSION)

    @pytest.mark.parametrize(
        "value",
        [
            receipt_value(channel="xta2"),
            receipt_value(channel="none", body=b""),
            receipt_value(case_id=None),
            receipt_value(at="2026-10-01T10:00:00.000Z"),  # the service has rejected it itself
            b'{"type": "something else"}',
            b"\xff",
            None,
        ],
    )
    def test_anything_else_is_no_answer(self, value):
        index = self.index()
        index.take(value)
        assert index.get(SUBMISSION) is None
        assert 0 == len(index)

    def test_the_oldest_answers_make_room(self):
        index = self.index(max_answers=2)
        ids = [str(uuid.UUID(int=n)) for n in range(1, 4)]
        for message_id in ids:
            index.take(receipt_value(message_id=message_id))
        assert [None, CASE, CASE] == [
            None if index.get(m) is None else index.get(m)[0]  # type: ignore[index]
            for m in ids
        ]


# --------------------------------------------------------------------------- bounded reading


class CountingStream:
    """An aiohttp.StreamReader stand-in serving ``size`` bytes; counts what was asked for."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.given = 0

    async def read(self, n: int) -> bytes:
        chunk = b"A" * min(n, self.left, 1000)
        self.left -= len(chunk)
        self.given += len(chunk)
        return chunk


class TestReadPrefix:
    def test_a_body_at_the_bound_is_complete(self):
        stream = CountingStream(5000)
        body, complete = asyncio.run(read_prefix(stream, 5000))  # type: ignore[arg-type]
        assert (5000, True) == (len(body), complete)

    def test_a_broken_off_body_is_kept_only_when_asked(self):
        class Breaking(CountingStream):
            async def read(self, n: int) -> bytes:
                if self.given >= 3000:
                    raise aiohttp.ClientPayloadError("connection closed")
                return await super().read(n)

        body, complete = asyncio.run(read_prefix(Breaking(10_000), 5000, keep_on_break=True))  # type: ignore[arg-type]
        assert (3000, False) == (len(body), complete)
        with pytest.raises(aiohttp.ClientPayloadError):
            asyncio.run(read_prefix(Breaking(10_000), 5000))  # type: ignore[arg-type]

    def test_reading_stops_one_byte_past_the_bound(self):
        stream = CountingStream(10_000_000)
        body, complete = asyncio.run(read_prefix(stream, 5000))  # type: ignore[arg-type]
        assert (5000, False, 5001) == (len(body), complete, stream.given)
