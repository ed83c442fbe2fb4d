"""Submissions an inbound connector refused to fetch: dead letter, replay key, portal receipt. Pure.

The FIT-Connect receiver does not read a part larger than its bound (the
submission resource with metadata and data, or an attachment). There are no
bytes, so no ``submissions.received`` record and no digest to name the
submission by; :func:`refused` records the refusal instead, exactly as intake
records a rejection:

- the dead letter on ``submissions.deadletter`` (stage ``ingest``, the reason
  and the path of the part, no payload digest, no source record) and its
  ``rejected`` audit event;
- the replay key of the transport message on ``submissions.seen``, so that the
  same submission, should it ever be fetched in full, is a ``DUPLICATE`` and is
  never delivered after it was rejected;
- the portal receipt on ``submissions.receipts`` (for FIT-Connect the signed
  ``reject-submission`` SET, built by :mod:`hub.core.portal_receipts` like every
  other), which the receipts agent sends.

Every id is derived from the transport and its message id
(:func:`submission_id_of_message`), and the SET's ``jti`` from its content, so
refusing the same submission again (after a crash, or because the delivery
service lists it again) repeats every record instead of adding one.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from hub.core import portal_receipts
from hub.core.errors import Rejection
from hub.core.pipeline import RECEIPTS, SEEN, Emit, HubContext, StageResult, reject
from hub.core.records import (
    PortalReceipt,
    Seen,
    b64,
    encode_fields,
    receipt_id,
    seen_key,
    submission_id_of_digest,
    timestamp,
)
from hub.core.transport import Envelope

STAGE = "ingest"


def submission_id_of_message(transport: str, message_id: str) -> str:
    """The hub's submission id of a transport message whose bytes it never had.

    ``sub-`` and 32 hex digits like every submission id, from SHA-256 over the
    transport, a fixed label and the message id (lower case), not over bytes.
    """
    text = f"{transport}\x1funread\x1f{message_id.lower()}"
    return submission_id_of_digest(hashlib.sha256(text.encode("utf-8")).hexdigest())


def refused(
    envelope: Envelope, rejection: Rejection, hub: HubContext, now: dt.datetime
) -> StageResult:
    """The records of a submission the connector did not fetch; see the module docstring.

    ``envelope`` names what the connector knows: the transport, ``message_id``
    (the FIT-Connect submission id), ``reader`` (the destination) and
    ``case_id``, which the SET needs; the payload is empty. Without a case id
    the submission cannot be answered: dead letter and replay key only.
    """
    if not envelope.message_id:
        raise ValueError("a refused submission needs its transport message id")
    sid = submission_id_of_message(envelope.transport, envelope.message_id)
    result = reject(sid, STAGE, rejection, None, None, now)
    key = seen_key("msg", envelope.transport, envelope.message_id.lower())
    seen = Emit(
        SEEN, key, encode_fields(Seen, {"key": key, "submission_id": sid, "at": timestamp(now)})
    )
    emits = (*result.emits, seen)
    answer = _receipt(sid, envelope, rejection, hub, now) if envelope.case_id else None
    return StageResult(emits if answer is None else (*emits, answer), "rejected", result.reason)


def _receipt(
    sid: str, envelope: Envelope, rejection: Rejection, hub: HubContext, now: dt.datetime
) -> Emit:
    """The ``submissions.receipts`` record, as ``pipeline._portal_receipt`` writes it for intake."""
    reason = rejection.reason.value
    channel, media_type, body = portal_receipts.build(
        envelope, sid, "rejected", reason, hub.transport_keys, now
    )
    try:
        portal: str | None = hub.portals.for_envelope(envelope).portal_id
    except Rejection:
        portal = None  # a destination no portal is configured for: answered all the same
    record = {
        "receipt_id": receipt_id(sid, envelope.message_id),
        "submission_id": sid,
        "transport": envelope.transport,
        "channel": channel,
        "outcome": "rejected",
        "at": timestamp(now),
        "portal": portal,
        "transport_message_id": envelope.message_id,
        "reason": reason,
        "media_type": media_type,
        "body_b64": None if body is None else b64(body),
        "case_id": envelope.case_id,
    }
    return Emit(RECEIPTS, sid, encode_fields(PortalReceipt, record))
