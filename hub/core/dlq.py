"""Dead letters for operators (``sozialhub dlq``): select, check the original, the retry event. Pure.

The adapter (``hub.dlq``) reads the dead-letter topic, the referenced source
record and ``audit.log``, and produces what this module decides. Nothing here
ever returns payload content: a source record's bytes are only hashed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from hub.core.errors import Rejection
from hub.core.pipeline import ACCEPTED, AUDIT, RECEIVED, UNKNOWN, Emit
from hub.core.records import (
    AuditEvent,
    DeadLetter,
    SourceRef,
    audit_event_id,
    dead_letter_id,
    received_key,
    timestamp,
    unb64,
)

STAGE = "dlq"
RETRIED = "retried"
_DEAD_LETTER_ID = re.compile(r"dlq-[0-9a-f]{32}")
# The field of a source record that holds the bytes a dead letter's payload_sha256 covers.
_BYTES_FIELD = {
    "sozialhub.received": "payload_b64",
    "sozialhub.accepted": "payload_b64",
    "sozialhub.delivery": "body_b64",
}


def is_dead_letter_id(text: str) -> bool:
    return _DEAD_LETTER_ID.fullmatch(text) is not None


def iso_time(text: str) -> dt.datetime:
    """An ISO 8601 date or time (``2026-11-05``, ``2026-11-05T12:00Z``); without an offset, UTC."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _at(letter: DeadLetter) -> dt.datetime | None:
    try:
        return iso_time(letter.at)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class Filter:
    """``dlq list`` options: every set criterion must hold."""

    stage: str | None = None
    reason: str | None = None
    since: dt.datetime | None = None

    def matches(self, letter: DeadLetter) -> bool:
        if self.stage is not None and letter.stage != self.stage:
            return False
        if self.reason is not None and letter.reason != self.reason:
            return False
        if self.since is not None:
            at = _at(letter)
            return at is not None and at >= self.since
        return True


@dataclass(frozen=True, slots=True)
class Listed:
    """One dead-letter id: its latest record and how many records on the topic carry it."""

    letter: DeadLetter
    records: int = 1


def collect(letters: Iterable[DeadLetter]) -> list[Listed]:
    """One entry per dead-letter id, oldest first.

    Ids are deterministic, so a re-sent or re-processed rejection repeats its id
    (at-least-once delivery, or the same submission rejected again from another
    source record). The latest record wins: its source is the most recent one.
    """
    by_id: dict[str, Listed] = {}
    for letter in letters:
        known = by_id.get(letter.dead_letter_id)
        if known is None:
            by_id[letter.dead_letter_id] = Listed(letter)
            continue
        latest = letter if letter.at >= known.letter.at else known.letter
        by_id[letter.dead_letter_id] = Listed(latest, known.records + 1)
    return sorted(by_id.values(), key=lambda item: (item.letter.at, item.letter.dead_letter_id))


def select(listed: Iterable[Listed], selection: Filter, limit: int | None = None) -> list[Listed]:
    """The entries matching ``selection``; with ``limit``, only the most recent ones (still oldest first)."""
    chosen = [item for item in listed if selection.matches(item.letter)]
    return chosen[-limit:] if limit is not None else chosen


def summary(item: Listed) -> dict[str, Any]:
    """What ``dlq list`` shows of a dead letter: ids, stage, reason code, path, time."""
    letter = item.letter
    return {
        "dead_letter_id": letter.dead_letter_id,
        "submission_id": letter.submission_id,
        "stage": letter.stage,
        "reason": letter.reason,
        "path": letter.path,
        "at": letter.at,
        "records": item.records,
    }


def summary_line(item: Listed) -> str:
    letter = item.letter
    line = (
        f"{letter.at}  {letter.dead_letter_id}  {letter.submission_id}  "
        f"{letter.stage:<8}  {letter.reason}  {letter.path or '-'}"
    )
    return line + (f"  ({item.records} records)" if item.records > 1 else "")


# Where the adapter found (or did not find) the record a dead letter refers to.
PRESENT = "present"
NO_TOPIC = "no-topic"  # the topic or partition does not exist (any more)
EXPIRED = "expired"  # offset below the partition's first offset: deleted by retention
BEYOND_END = "beyond-end"  # offset at or after the partition's end: the topic was recreated?
NO_RECORD = "no-record"  # inside the range, but no record at that offset (compaction, markers)
NO_SOURCE = "no-source"  # the dead letter references no record (ingest)

_STATE_TEXT = {
    PRESENT: "present",
    NO_TOPIC: "gone: the topic or partition does not exist",
    EXPIRED: "gone: deleted by retention",
    BEYOND_END: "gone: the offset is past the partition's end (was the topic recreated?)",
    NO_RECORD: "gone: no record at that offset",
    NO_SOURCE: "none referenced",
}


@dataclass(frozen=True, slots=True)
class SourceState:
    """The referenced record as the adapter found it; ``low``/``high`` are the partition's watermarks."""

    status: str
    low: int | None = None
    high: int | None = None
    key: bytes | None = None
    value: bytes | None = None


# Digest verdicts.
MATCH = "match"
MISMATCH = "mismatch"
UNREADABLE = "unreadable"  # the record has no decodable payload_b64/body_b64
NOT_RECORDED = "not-recorded"  # the dead letter carries no payload_sha256
NOT_CHECKED = "not-checked"  # no record to check


@dataclass(frozen=True, slots=True)
class SourceCheck:
    """Is the referenced record the original of this dead letter, and may it be re-produced?"""

    digest: str
    attributed: bool  # the record's key (or delivery) ties it to the dead letter
    refusal: str | None  # why ``retry`` refuses; None: it may re-produce the record

    @property
    def retryable(self) -> bool:
        return self.refusal is None


def _bytes_digest(value: bytes) -> str:
    """SHA-256 of the bytes a hub record carries (``payload_b64`` or ``body_b64``), or UNREADABLE."""
    try:
        body = json.loads(value)
    except (ValueError, TypeError):
        return UNREADABLE
    kind = body.get("type") if isinstance(body, dict) else None
    field = _BYTES_FIELD.get(kind) if isinstance(kind, str) else None
    encoded = body.get(field) if field is not None else None
    if not isinstance(encoded, str):
        return UNREADABLE
    try:
        return hashlib.sha256(unb64(encoded)).hexdigest()
    except Rejection:
        return UNREADABLE


def _attributed(letter: DeadLetter, key: bytes | None, value: bytes) -> bool:
    """The record belongs to the dead letter: keyed by its submission (or, received, by its
    transport message id), or (deliver) the same delivery."""
    if letter.submission_id == UNKNOWN:
        return False  # filed under sub-unknown because the record could not be attributed
    if key == letter.submission_id.encode("ascii"):
        return True
    try:
        body = json.loads(value)
    except (ValueError, TypeError):
        return False
    if not isinstance(body, dict) or body.get("submission_id") != letter.submission_id:
        return False
    message_id, delivery = body.get("transport_message_id"), body.get("delivery_id")
    if isinstance(message_id, str) and key == received_key(letter.submission_id, message_id).encode(
        "ascii"
    ):
        return True  # a submissions.received record keyed by its transport message id
    place = (
        dead_letter_id(letter.submission_id, letter.stage, delivery)
        if isinstance(delivery, str)
        else None
    )
    return place == letter.dead_letter_id


def check_source(letter: DeadLetter, state: SourceState) -> SourceCheck:
    """Compare the referenced record with the dead letter (digest over its bytes, key); never read values."""
    if letter.source is None or state.status == NO_SOURCE:
        return SourceCheck(
            NOT_CHECKED,
            attributed=False,
            refusal="the dead letter references no record; re-submit the original file through the inbox",
        )
    if state.status != PRESENT or state.value is None:
        return SourceCheck(
            NOT_CHECKED,
            attributed=False,
            refusal=f"the source record is {_STATE_TEXT.get(state.status, state.status)}",
        )
    attributed = _attributed(letter, state.key, state.value)
    if letter.payload_sha256 is None:
        refusal = (
            None
            if attributed
            else "the dead letter records no digest and the source record cannot be tied to it"
        )
        return SourceCheck(NOT_RECORDED, attributed, refusal)
    actual = _bytes_digest(state.value)
    if actual == UNREADABLE:
        return SourceCheck(UNREADABLE, attributed, "the source record's bytes cannot be read")
    if actual != letter.payload_sha256:
        return SourceCheck(
            MISMATCH, attributed, "the source record's SHA-256 differs from the dead letter's"
        )
    return SourceCheck(MATCH, attributed, None)


def _place(letter: DeadLetter) -> str:
    """The place a ``sub-unknown`` rejection was told apart by (see ``pipeline._reject``)."""
    source = letter.source
    return "" if source is None else f"{source.topic}:{source.partition}:{source.offset}"


def trail(letter: DeadLetter, events: Iterable[AuditEvent]) -> list[AuditEvent]:
    """The audit events of the dead letter's submission, each once, in time order.

    ``sub-unknown`` collects every unattributable record, so there only this dead
    letter's own ``rejected`` event and retries of it belong to the trail.
    """
    unknown = letter.submission_id == UNKNOWN
    own = audit_event_id(UNKNOWN, letter.stage, "rejected", _place(letter))
    seen: dict[str, AuditEvent] = {}
    for event in events:
        if event.submission_id != letter.submission_id or event.event_id in seen:
            continue
        if unknown and event.event_id != own and event.dead_letter_id != letter.dead_letter_id:
            continue
        seen[event.event_id] = event
    return sorted(seen.values(), key=lambda e: e.at)


def retried(letter: DeadLetter, produced: SourceRef, now: dt.datetime) -> Emit:
    """The audit event of a retry: stage ``dlq``, decision ``retried``.

    ``path`` is where the record was re-produced (``<topic>:<partition>:<offset>``);
    the event id covers the dead letter and that place, so each retry is its own
    event while a re-sent event still deduplicates.
    """
    where = f"{produced.topic}:{produced.partition}:{produced.offset}"
    event = AuditEvent(
        event_id=audit_event_id(
            letter.submission_id, STAGE, RETRIED, f"{letter.dead_letter_id}@{where}"
        ),
        submission_id=letter.submission_id,
        stage=STAGE,
        decision=RETRIED,
        at=timestamp(now),
        reason=letter.reason,
        path=where,
        payload_sha256=letter.payload_sha256,
        dead_letter_id=letter.dead_letter_id,
    )
    return Emit.of(AUDIT, letter.submission_id, event)


def _original_hint(letter: DeadLetter, archive: str) -> str | None:
    if letter.stage == "ingest" and letter.payload_sha256:
        return f"{archive}/oversize/sha256-{letter.payload_sha256}"
    if letter.stage == "deliver" and letter.submission_id != UNKNOWN:
        return f"{archive}/{letter.submission_id}.xml"
    return None


def report(
    item: Listed,
    state: SourceState,
    checked: SourceCheck,
    events: Iterable[AuditEvent],
    archive: str,
) -> dict[str, Any]:
    """``dlq show --json``: the dead letter, its source record, the digest check and the audit trail."""
    letter = item.letter
    source = None
    if letter.source is not None:
        source = {
            **asdict(letter.source),
            "state": state.status,
            "present": state.status == PRESENT,
            "first_offset": state.low,
            "end_offset": state.high,
            "key_matches": checked.attributed,
        }
    return {
        "dead_letter": {"type": DeadLetter.TYPE, **asdict(letter)},
        "records": item.records,
        "source": source,
        "original_file": _original_hint(letter, archive),
        "digest": checked.digest,
        "retryable": checked.retryable,
        "refusal": checked.refusal,
        "audit": [
            {
                "at": e.at,
                "stage": e.stage,
                "decision": e.decision,
                "reason": e.reason,
                "path": e.path,
                "office": e.office,
                "delivery_id": e.delivery_id,
            }
            for e in events
        ],
    }


def report_lines(body: dict[str, Any]) -> list[str]:
    """``dlq show`` for a terminal; the same facts as :func:`report`."""
    letter = body["dead_letter"]
    lines = [
        f"dead letter   {letter['dead_letter_id']}"
        + (f"  ({body['records']} records)" if body["records"] > 1 else ""),
        f"submission    {letter['submission_id']}",
        f"stage         {letter['stage']}",
        f"reason        {letter['reason']}",
        f"path          {letter['path'] or '-'}",
        *([f"why           {letter['explanation']}"] if letter.get("explanation") else []),
        f"at            {letter['at']}",
        f"sha256        {letter['payload_sha256'] or '-'}",
    ]
    source = body["source"]
    if source is None:
        lines.append("source        none")
    else:
        lines.append(
            f"source        {source['topic']} partition {source['partition']} offset {source['offset']}"
        )
        bounds = (
            f" (partition holds offsets {source['first_offset']}..{source['end_offset'] - 1})"
            if source["first_offset"] is not None and source["end_offset"] is not None
            else ""
        )
        lines.append(f"  record      {_STATE_TEXT.get(source['state'], source['state'])}{bounds}")
        lines.append(f"  digest      {body['digest']}")
        lines.append(f"  key         {'matches' if source['key_matches'] else 'does not match'}")
    if body["original_file"]:
        lines.append(f"original file {body['original_file']} (on the inbox host)")
    lines.append(
        f"retry         {'possible' if body['retryable'] else 'refused: ' + str(body['refusal'])}"
    )
    lines.append("audit trail")
    lines.extend(
        "  "
        + "  ".join(
            str(part)
            for part in (e["at"], e["stage"], e["decision"], e["reason"], e["path"])
            if part
        )
        for e in body["audit"]
    )
    if not body["audit"]:
        lines.append("  (no events)")
    return lines


def next_stage(topic: str, prefix: str) -> str | None:
    """The stage that consumes a source topic (full name): who processes a retried record."""
    logical = topic.removeprefix(prefix) if topic.startswith(prefix) else None
    if logical == RECEIVED:
        return "intake"
    if logical == ACCEPTED:
        return "dispatch"
    if logical is not None and logical.startswith("deliveries."):
        return "deliver"
    return None
