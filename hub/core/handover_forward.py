"""Forwarding ``handovers.<vendor>`` to vendors without a Kafka principal: checks and audit. Pure.

::

    rkw_stages.send (the gate allowed it now) ──► handovers.<vendor> (key: message id)
        kafka vendor: reads its topic itself (its principal may read nothing else)
        file vendor:  agent handover-forward-<vendor> ──► <outbox>/<vendor>/<office>/handovers/<message id>.<kind>.json
        http vendor:  agent handover-forward-<vendor> ──► POST to the vendor's handover endpoint

The forwarding agents (``hub.stream.handover_forward``) are the vendor's side of
the topic, run by the hub for vendors that never touch the cluster: they carry a
record that :func:`hub.core.rkw_stages.send` wrote after the transfer gate allowed
it at that moment, unchanged, to the vendor the topic belongs to. They decide
nothing about the transfer; they make sure the record is what the topic promises
before it leaves (:func:`check_message`): a deliverable Rechtskreiswechsel message
(``handover``, ``notice``, ``confirmation``, ``information``) whose id binds its
event and office, for an office of this vendor, keyed by its message id. Anything
else is a ``DELIVERY`` dead letter at the field that failed, never an echo of
the record (docs/reason-codes.md#delivery).

The topic's contract (docs/rechtskreiswechsel.md#the-message-record) says: take
each pair of message id and ``kind`` once; the same id with another kind
supersedes the earlier message (a notice, then a handover once the consent
exists and the event is re-sent), and a message sent again need not be the same
bytes (the gate decided again). The forwarders therefore carry each pair once:
:attr:`Forward.idempotency_key` (``<message id>.<kind>``) names the outbox file
and its ledger entry and is the HTTP ``Idempotency-Key``.

Audit (no personal data: ids and codes only): ``handover``/``forwarded`` when the
file is durable or the endpoint booked the message, ``handover``/``duplicate`` when
it was there before (the outbox ledger, the endpoint's replayed answer),
``handover``/``retried`` per failed HTTP attempt that is tried again, and
``handover-forward``/``rejected`` with each dead letter. Event ids are
deterministic per message and kind (and attempt), so a redelivered record
repeats them and a superseding kind gets its own.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from hub.core.errors import Reason, Rejection
from hub.core.fanout import MESSAGE_TYPE, Kind, message_id
from hub.core.pipeline import UNKNOWN, Emit, StageResult, audit, reject
from hub.core.rechtskreiswechsel import EVENT_ID, OFFICE_ID
from hub.core.records import SourceRef
from hub.core.rkw_stages import MESSAGE_ID
from hub.core.route import OfficeTable

STAGE = "handover-forward"  # agents, metrics, logs and dead letters
AUDIT_STAGE = "handover"  # forwarded / duplicate / retried, beside handover/sent
FORWARDED = "forwarded"
DUPLICATE = "duplicate"
RETRIED = "retried"
# What handovers.<vendor> carries; a withheld message is never written there.
DELIVERABLE = frozenset(k.value for k in Kind if k is not Kind.WITHHELD)
FORWARD_CHANNELS = frozenset({"file", "http"})  # a kafka vendor reads its topic itself


@dataclass(frozen=True, slots=True)
class Forward:
    """A checked record of ``handovers.<vendor>``: what the forwarder may carry, and to whom."""

    message_id: str
    event_id: str
    office: str
    vendor: str
    kind: str
    record: bytes = field(repr=False)  # the record's bytes exactly as read: what the vendor gets

    @property
    def path(self) -> str:
        """``<event id>/<message id>``, as every audit event of a Rechtskreiswechsel message."""
        return f"{self.event_id}/{self.message_id}"

    @property
    def idempotency_key(self) -> str:
        """``<message id>.<kind>``: what the vendor takes once (file name, ``Idempotency-Key``)."""
        return f"{self.message_id}.{self.kind}"


def _refused(path: str) -> Rejection:
    return Rejection(Reason.DELIVERY, path)


def _keyed_message(key: bytes | None, value: bytes) -> tuple[dict[str, Any], str]:
    """The record as a message object and its message id, which must be the record's key."""
    try:
        body = json.loads(value)
    except (ValueError, TypeError):
        raise _refused("json") from None
    if not isinstance(body, dict) or body.get("type") != MESSAGE_TYPE or body.get("v") != 1:
        raise _refused("type")
    mid = body.get("message_id")
    if not (isinstance(mid, str) and MESSAGE_ID.fullmatch(mid)):
        raise _refused("message_id")
    if key != mid.encode("ascii"):
        raise _refused("key")
    return body, mid


def check_message(key: bytes | None, value: bytes, vendor_id: str, offices: OfficeTable) -> Forward:
    """A record read from ``handovers.<vendor_id>`` is a message for one of ``vendor_id``'s offices.

    Checks, in order, each a ``DELIVERY`` rejection at the path named: the value is
    JSON (``json``), a ``sozialhub.rechtskreiswechsel-message`` version 1 (``type``);
    its ``message_id`` is a message id (``message_id``) and the record's key
    (``key``); ``event_id`` and ``office`` are ids (``event_id``, ``office``) and the
    message id is the one the fan-out makes for that event and office
    (``message_id``: a record cannot borrow another office's id); the office is in
    the office table and one of ``vendor_id``'s (``office``); the kind is
    deliverable (``kind``) and the body an object (``body``). Never quotes a value.
    """
    body, mid = _keyed_message(key, value)
    event_id, office = body.get("event_id"), body.get("office")
    if not (isinstance(event_id, str) and EVENT_ID.fullmatch(event_id)):
        raise _refused("event_id")
    if not (isinstance(office, str) and OFFICE_ID.fullmatch(office)):
        raise _refused("office")
    if message_id(event_id, office) != mid:
        raise _refused("message_id")
    known = offices.find(office)
    if known is None or known.vendor != vendor_id:
        raise _refused("office")
    kind = body.get("kind")
    if not (isinstance(kind, str) and kind in DELIVERABLE):
        raise _refused("kind")
    if not isinstance(body.get("body"), dict):
        raise _refused("body")
    return Forward(mid, event_id, office, vendor_id, kind, value)


def _fields(message: Forward, channel: str) -> dict[str, Any]:
    return {
        "path": message.path,
        "office": message.office,
        "vendor": message.vendor,
        "channel": channel,
        "message_id": message.message_id,
    }


def forwarded(
    message: Forward,
    now: dt.datetime,
    *,
    channel: str,
    duplicate: bool,
    attempt: int | None = None,
    status: int | None = None,
) -> Emit:
    """``handover``/``forwarded`` (or ``duplicate``): the vendor has the message now (or had it)."""
    return audit(
        UNKNOWN,
        AUDIT_STAGE,
        DUPLICATE if duplicate else FORWARDED,
        now,
        target=message.idempotency_key,
        attempt=attempt,
        status=status,
        **_fields(message, channel),
    )


def retried(message: Forward, now: dt.datetime, *, attempt: int, status: int | None) -> Emit:
    """``handover``/``retried``: an HTTP attempt failed and another follows (one per attempt)."""
    return audit(
        UNKNOWN,
        AUDIT_STAGE,
        RETRIED,
        now,
        target=f"{message.idempotency_key}#{attempt}",
        attempt=attempt,
        status=status,
        **_fields(message, "http"),
    )


def rejected(
    rejection: Rejection,
    source: SourceRef,
    now: dt.datetime,
    *,
    vendor_id: str,
    channel: str,
    message: Forward | None = None,
) -> StageResult:
    """A dead letter for a record the forwarder must not or cannot carry (``handover-forward``).

    Filed under ``sub-unknown`` and told apart by its source record, like every
    record the hub cannot attribute to a submission. The audit event names the
    vendor and channel, and the message's office and id only once
    :func:`check_message` has vouched for them.
    """
    named: dict[str, Any] = {"vendor": vendor_id, "channel": channel}
    if message is not None:
        named |= {"office": message.office, "message_id": message.message_id}
    return reject(UNKNOWN, STAGE, rejection, None, source, now, **named)
