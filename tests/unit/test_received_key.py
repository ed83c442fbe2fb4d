"""Replays of one transport message meet in one partition of submissions.received."""

from __future__ import annotations

from hub.core.pipeline import RECEIVED, SEEN, ingest, intake
from hub.core.records import Received, Seen, SourceRef, decode, received_key
from hub.testing import make_submission

MESSAGE_ID = "urn:de:xta:messageid:sop:7d1c0e52-5a3b-4f0e-9d41-3c2b1a0f9e88"
SOURCE = SourceRef("sozialhub.submissions.received", 3, 17)


def received(result) -> tuple[str, Received]:
    (emit,) = [e for e in result.emits if e.topic == RECEIVED]
    return emit.key, decode(emit.value, Received)


def test_one_message_id_is_one_key_whatever_the_bytes(hub_context, now) -> None:
    first_key, first = received(
        ingest(make_submission(), "xta", "xta2", hub_context, now, MESSAGE_ID)
    )
    again_key, again = received(
        ingest(make_submission(), "xta", "xta2", hub_context, now, MESSAGE_ID)
    )
    assert first.submission_id != again.submission_id  # other bytes, other submission
    assert first_key == again_key == received_key(first.submission_id, MESSAGE_ID)
    assert first_key.startswith("mid-")
    assert len(first_key) == 36
    assert MESSAGE_ID not in first_key


def test_other_message_ids_are_other_keys(hub_context, now) -> None:
    payload = make_submission()
    one, _ = received(ingest(payload, "xta", "xta2", hub_context, now, MESSAGE_ID))
    other, _ = received(ingest(payload, "xta", "xta2", hub_context, now, MESSAGE_ID + "0"))
    assert one != other


def test_without_a_message_id_the_key_is_the_submission_id(hub_context, now) -> None:
    key, record = received(ingest(make_submission(), "filedrop", "file", hub_context, now))
    assert key == record.submission_id


def test_taken_in_order_the_second_of_one_message_id_is_a_duplicate(hub_context, now) -> None:
    """What one partition guarantees: the second record meets the first one's replay keys."""
    payload = make_submission()
    _, first = received(ingest(payload, "filedrop", "file", hub_context, now, MESSAGE_ID))
    accepted = intake(first, SOURCE, hub_context, now)
    seen = {e.key: decode(e.value, Seen).submission_id for e in accepted.emits if e.topic == SEEN}
    _, second = received(
        ingest(make_submission(), "filedrop", "file", hub_context, now, MESSAGE_ID)
    )
    result = intake(second, SOURCE, hub_context, now, seen=seen)
    assert (result.outcome, result.reason) == ("rejected", "DUPLICATE")


def test_a_record_a_stage_fails_on_is_filed_under_its_submission_id(hub_context, now) -> None:
    """With a mid-… key, the dead letter takes the submission id from the record's value."""
    from hub.core.errors import Reason, Rejection
    from hub.core.pipeline import DEAD_LETTER, reject_record
    from hub.core.records import DeadLetter

    key, record = received(ingest(make_submission(), "xta", "xta2", hub_context, now, MESSAGE_ID))
    (emit,) = [
        e
        for e in ingest(make_submission(), "xta", "xta2", hub_context, now, MESSAGE_ID).emits
        if e.topic == RECEIVED
    ]
    result = reject_record(
        key.encode(), "intake", Rejection(Reason.INTERNAL), SOURCE, now, emit.value
    )
    (letter,) = [decode(e.value, DeadLetter) for e in result.emits if e.topic == DEAD_LETTER]
    assert letter.submission_id == decode(emit.value, Received).submission_id
    assert record.submission_id.startswith("sub-")
    for foreign in (None, b"", b"[1]", b'{"submission_id": "mid-x"}', b"\xff"):
        unknown = reject_record(
            key.encode(), "intake", Rejection(Reason.INTERNAL), SOURCE, now, foreign
        )
        (letter,) = [decode(e.value, DeadLetter) for e in unknown.emits if e.topic == DEAD_LETTER]
        assert letter.submission_id == "sub-unknown"
