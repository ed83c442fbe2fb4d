"""Submissions an inbound connector refused to fetch: dead letter, replay key, portal receipt. Pure.

The FIT-Connect receiver does not read a part larger than its bound (the
submission resource with metadata and data, or an attachment), and the XTA
poller does not fetch a message larger than its bound
(:mod:`hub.core.xta_oversize`). There are no bytes, so no
``submissions.received`` record and no digest to name the submission by;
:func:`refused` records the refusal instead, exactly as intake records a
rejection:

- the dead letter on ``submissions.deadletter`` (stage ``ingest``, the reason
  and the path of the part, the transport message id and the size the sender
  declared if any, no payload digest, no source record) and its ``rejected``
  audit event;
- the replay key of the transport message on ``submissions.seen``, so that the
  same submission, should it ever be fetched in full, is a ``DUPLICATE`` and is
  never delivered after it was rejected;
- the portal receipt on ``submissions.receipts`` (for FIT-Connect the signed
  ``reject-submission`` SET, for XTA the rejection message, built by
  :func:`hub.core.pipeline.portal_receipt` like every other), which the
  channel's receipt sender (:mod:`hub.stream.receipts`) sends.

Every id is derived from the transport and its message id
(:func:`submission_id_of_message`), and the SET's ``jti`` from its content, so
refusing the same submission again (after a crash, or because the delivery
service lists it again) repeats every record instead of adding one.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from hub.core.errors import Rejection
from hub.core.pipeline import (
    SEEN,
    Emit,
    HubContext,
    StageResult,
    portal_receipt,
    reject,
)
from hub.core.records import (
    Seen,
    encode_fields,
    seen_key,
    submission_id_of_digest,
    timestamp,
)
from hub.core.transport import Envelope

STAGE = "ingest"


def submission_id_of_message(transport: str, message_id: str) -> str:
    """The hub's submission id of a transport message whose bytes it never had.

    ``sub-`` and 32 hex digits like every submission id, from SHA-256 over the
    transport, a fixed label and the message id, not over bytes. FIT-Connect ids are
    UUIDs, compared in lower case; XTA message ids are compared as written.
    """
    message_id = message_id.lower() if transport == "fitconnect" else message_id
    text = f"{transport}\x1funread\x1f{message_id}"
    return submission_id_of_digest(hashlib.sha256(text.encode("utf-8")).hexdigest())


def refused(
    envelope: Envelope,
    rejection: Rejection,
    hub: HubContext,
    now: dt.datetime,
    *,
    declared_size: int | None = None,
) -> StageResult:
    """The records of a submission the connector did not fetch; see the module docstring.

    ``envelope`` names what the connector knows, with its ids as intake would read
    them: the transport, ``message_id`` (the XTA message id, the FIT-Connect
    submission id), the author and reader, and for FIT-Connect the ``case_id``,
    which the SET needs; the payload is empty. A FIT-Connect submission without a
    case id cannot be answered: dead letter and replay key only.
    ``declared_size`` is the size the sender declared, if any.
    """
    if not envelope.message_id:
        raise ValueError("a refused submission needs its transport message id")
    sid = submission_id_of_message(envelope.transport, envelope.message_id)
    result = reject(
        sid,
        STAGE,
        rejection,
        None,
        None,
        now,
        transport_message_id=envelope.message_id,
        declared_size=declared_size,
    )
    emits = list(result.emits)
    key = seen_key("msg", envelope.transport, envelope.message_id)  # intake's key for the message
    emits.append(
        Emit(
            SEEN, key, encode_fields(Seen, {"key": key, "submission_id": sid, "at": timestamp(now)})
        )
    )
    if envelope.transport != "fitconnect" or envelope.case_id:
        try:
            portal: str | None = hub.portals.for_envelope(envelope).portal_id
        except Rejection:
            portal = None  # answered all the same, as intake answers an unknown sender
        reason = rejection.reason.value
        emits.append(portal_receipt(sid, envelope, portal, "rejected", reason, hub, now))
    return StageResult(tuple(emits), "rejected", result.reason)
