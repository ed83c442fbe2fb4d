"""An XTA message too large for the hub: refused unread, answered, dead-lettered. Pure.

When the status list declares a message larger than the poller's
``max_message_bytes`` (``MsgSize``), or its ``getMessage`` response turns out
larger while it is read, the hub never has the message's bytes. It still owes
the portal an answer and the operator a record, so :func:`reject` makes the
records an ``ingest`` rejection makes, from the status list's metadata alone:

- a ``SIZE`` dead letter (stage ``ingest``, path ``MessageMetaData/MsgSize`` or
  ``getMessage/response``) that names the XTA message id and the declared size
  and has no ``payload_sha256`` and no source record: nothing was read;
- its ``rejected`` audit event;
- the message id's replay key on ``submissions.seen`` (the key intake uses), so
  the same message, should it ever be fetched after all (its ``close`` failed
  and the limit was raised), is a ``DUPLICATE`` and never delivered after the
  portal was told it was rejected;
- the portal receipt (``submissions.receipts``, channel ``xta2``, outcome
  ``rejected``, reason ``SIZE``), sent like every other receipt.

There are no bytes to hash, so the submission id is derived from the message
id (:func:`hub.core.unfetched.submission_id_of_message`, as for a FIT-Connect
submission the receiver did not fetch); every id that follows from it (dead
letter, audit event, receipt, the receipt's XTA message id) is the same each
time, so records repeated after a crash between the broker's acknowledgement
and ``close`` deduplicate downstream.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hub.core import unfetched
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import HubContext, StageResult
from hub.core.transport import xta

STAGE = unfetched.STAGE  # "ingest": refused before any bytes were read
PATHS = frozenset({xta.DECLARED_SIZE, xta.RESPONSE_SIZE})


@dataclass(frozen=True, slots=True)
class Oversize:
    """A listed XTA message the hub will not fetch (or could not read to the end).

    ``metadata`` is the status list entry's (checked like unwrap checks it);
    ``declared_size`` the size the server declared (``MsgSize``, or the response's
    ``Content-Length``), ``None`` if it declared none; ``limit`` the poller's
    ``max_message_bytes``; ``path`` where the size showed (:data:`PATHS`).
    """

    metadata: xta.XtaMetadata
    limit: int
    declared_size: int | None
    path: str = xta.DECLARED_SIZE

    def __post_init__(self) -> None:
        if self.path not in PATHS:
            raise ValueError("path must be MessageMetaData/MsgSize or getMessage/response")
        if self.declared_size is not None and self.declared_size <= 0:
            raise ValueError("declared_size must be positive")

    @property
    def message_id(self) -> str:
        return self.metadata.message_id


def submission_id(message_id: str) -> str:
    """The submission id of an XTA message the hub never read: from its message id, not bytes."""
    if xta.MESSAGE_ID.fullmatch(message_id) is None:
        raise ValueError("not an XTA message id")
    return unfetched.submission_id_of_message(xta.TRANSPORT, message_id)


def reject(oversize: Oversize, hub: HubContext, now: dt.datetime) -> StageResult:
    """Dead letter, audit event, replay key and portal receipt of a message refused unread."""
    submission_id(oversize.message_id)  # an XTA message id, or ValueError
    return unfetched.refused(
        xta.envelope_of(oversize.metadata),
        Rejection(Reason.SIZE, oversize.path),
        hub,
        now,
        declared_size=oversize.declared_size,
    )
