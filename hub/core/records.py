"""Records on the hub's internal topics: deterministic ids and JSON envelopes.

Keys are opaque ids (never personal data); values are compact, sorted JSON with
a ``type`` and a major version ``v``. The contracts are published in
``topics.yml`` and docs/topics.md. Decoding a record that is not what it claims
is a :class:`Rejection` with reason ``ENVELOPE``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import json
import re
from dataclasses import MISSING, dataclass, fields, is_dataclass
from typing import Any, TypeVar

import orjson
import pybase64

from hub.core.errors import Reason, Rejection

T = TypeVar("T")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def submission_id(original: bytes) -> str:
    """Content-addressed: the same bytes always get the same id, so re-sends deduplicate."""
    return submission_id_of_digest(hashlib.sha256(original).hexdigest())


def submission_id_of_digest(sha256_hex: str) -> str:
    """The submission id of bytes known only by their SHA-256 (e.g. an oversize file)."""
    return "sub-" + sha256_hex[:32]


def received_submission_id(
    sha256_hex: str,
    transport: str,
    transport_message_id: str | None = None,
    transport_author: str | None = None,
    transport_reader: str | None = None,
) -> str:
    """The submission id of a received record: its original's digest, for OSCI also the
    client's metadata.

    An OSCI package's portal and office follow from the metadata the OSCI client
    wrote beside it, not from the bytes: the same package handed over again with
    other metadata is another submission, which intake then refuses as a replay of
    the payload (``DUPLICATE``), instead of the same submission routed elsewhere.
    """
    if transport != "osci":
        return submission_id_of_digest(sha256_hex)
    parts = (sha256_hex, transport_message_id or "", transport_author or "", transport_reader or "")
    return "sub-" + _digest("osci", *parts)


def delivery_id(submission: str, office_id: str, mapping_version: str) -> str:
    return "dlv-" + _digest(submission, office_id, mapping_version)


def dead_letter_id(submission: str, stage: str, where: str = "") -> str:
    """Deterministic per submission, stage and ``where`` (the delivery, or the source record when unattributable)."""
    return "dlq-" + _digest(submission, stage, where)


def receipt_id(submission: str, transport_message_id: str | None) -> str:
    return "rcp-" + _digest(submission, transport_message_id or "")


def received_key(submission: str, transport_message_id: str | None) -> str:
    """The key of a ``submissions.received`` record: where replays of one message meet.

    With a transport message id, its digest ``mid-<32 hex>``: every fetch of one XTA
    message or FIT-Connect submission, and an XTA client's file named after it, lands
    in one partition, so intake takes them one after the other and recognises the
    second even when two workers run. Without one, the submission id.
    """
    return "mid-" + _digest(transport_message_id) if transport_message_id else submission


def seen_key(kind: str, *parts: str) -> str:
    """A replay-detection key: ``msg-…`` for a transport message id, ``pay-…`` for a payload digest."""
    return f"{kind}-" + _digest(*parts)


def audit_event_id(submission: str, stage: str, decision: str, target: str = "") -> str:
    return "aud-" + _digest(submission, stage, decision, target)


@functools.lru_cache(maxsize=16)
def timestamp(moment: dt.datetime) -> str:
    # Cached: a stage stamps all the records it makes for one input with the same moment.
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def b64(data: bytes) -> str:
    """``base64.b64encode(data).decode("ascii")``, twenty times sooner on a payload."""
    return pybase64.b64encode_as_string(data)


def b64decode_validated(text: str | bytes) -> bytes:
    """``base64.b64decode(text, validate=True)``: the same bytes, or the same error, sooner.

    pybase64 decodes a payload twenty times sooner than the standard library. With
    ``validate=True`` it accepts a subset of what ``base64`` accepts (it also refuses
    padding past a complete group), with the same bytes; whatever it refuses is left
    to ``base64`` to decide.
    """
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return base64.b64decode(text, validate=True)


def unb64(text: str) -> bytes:
    try:
        return b64decode_validated(text)
    except (binascii.Error, ValueError, TypeError):
        raise Rejection(Reason.ENVELOPE, "base64") from None


@dataclass(frozen=True, slots=True)
class Received:
    """``submissions.received``: the original bytes as an inbound connector got them."""

    submission_id: str
    source: str  # connector instance, e.g. "filedrop"
    transport: str  # how it arrived: "file" (file drop); later "xta2", "osci", "fitconnect"
    received_at: str
    payload_b64: str
    payload_sha256: str
    # The transport's message id when the connector knows it before unwrapping (e.g. an XTA
    # client's file named by its message id); containers name their own id inside.
    transport_message_id: str | None = None
    # The transport's authenticated author and reader when the container does not name them and
    # the connector got them beside it: an OSCI client's metadata (Author, Reader roles).
    transport_author: str | None = None
    transport_reader: str | None = None
    TYPE = "sozialhub.received"

    @classmethod
    def of(
        cls,
        original: bytes,
        source: str,
        transport: str,
        now: dt.datetime,
        transport_message_id: str | None = None,
        *,
        transport_author: str | None = None,
        transport_reader: str | None = None,
    ) -> Received:
        digest = hashlib.sha256(original).hexdigest()
        sid = received_submission_id(
            digest, transport, transport_message_id, transport_author, transport_reader
        )
        return cls(
            submission_id=sid,
            source=source,
            transport=transport,
            received_at=timestamp(now),
            payload_b64=b64(original),
            payload_sha256=digest,
            transport_message_id=transport_message_id,
            transport_author=transport_author,
            transport_reader=transport_reader,
        )


@dataclass(frozen=True, slots=True)
class Accepted:
    """``submissions.accepted``: the payload bytes, canonical submission, signed hub receipt.

    ``payload_*`` is the business document as the portal wrote it (unwrapped from
    its transport container, signature intact); ``original_sha256`` is the digest
    of the bytes the connector received (the container), which the
    ``submissions.received`` record holds.
    """

    submission_id: str
    transport: str
    received_at: str
    accepted_at: str
    payload_type: str
    payload_sha256: str
    payload_b64: str
    receipt_b64: str
    submission: dict[str, Any]
    original_sha256: str | None = None
    transport_message_id: str | None = None
    portal: str | None = None
    author: str | None = None  # transport author (DVDV key), or the payload's for a bare file
    reader: str | None = None  # transport reader (DVDV key, FIT-Connect destination)
    signer: str | None = None  # subject of the verified portal signature, if any
    # transport attachments: file name, content type, size, sha256 (the bytes travel as documents)
    attachments: list[dict[str, Any]] | None = None
    TYPE = "sozialhub.accepted"


@dataclass(frozen=True, slots=True)
class Delivery:
    """``deliveries.<vendor>``: one mapped document for one office, waiting for its channel."""

    delivery_id: str
    submission_id: str
    received_at: str
    office: str
    vendor: str
    format: str
    mapping_version: str
    media_type: str
    file_suffix: str
    body_b64: str
    # Documents that travel beside the record (formats whose mapping says "beside"): each
    # {"file_name", "media_type", "size", "sha256", "content_b64"}; the record references them.
    documents: list[dict[str, Any]] | None = None
    # What the transfer gate asks at send time (docs/delivery.md#transfer-gate-at-send-time): the
    # data categories the mapped document carries, the sending portal and the person's pseudonym
    # (never an identifier in clear). A record without them is never sent.
    categories: list[str] | None = None
    portal: str | None = None
    person: str | None = None
    TYPE = "sozialhub.delivery"


@dataclass(frozen=True, slots=True)
class SourceRef:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """``submissions.deadletter``: why, where, and a reference to the original bytes.

    The payload itself is not copied: ``source`` points at the record that holds
    it and ``payload_sha256`` identifies it.
    """

    dead_letter_id: str
    submission_id: str
    stage: str
    reason: str
    path: str | None
    payload_sha256: str | None
    source: SourceRef | None
    at: str
    # What an operator can do about it, built from configuration only (ids, keys, AGS), never
    # from payload values; set for routing rejections.
    explanation: str | None = None
    # An XTA message refused unread (too large, hub.core.xta_oversize): its message id and the
    # size the server declared (None if it declared none). There is no source record then.
    transport_message_id: str | None = None
    declared_size: int | None = None
    TYPE = "sozialhub.deadletter"


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """``audit.log``: one decision of one stage. Digests and ids only, no personal data."""

    event_id: str
    submission_id: str
    stage: str
    decision: str
    at: str
    reason: str | None = None
    path: str | None = None
    office: str | None = None
    vendor: str | None = None
    delivery_id: str | None = None
    mapping_version: str | None = None
    payload_sha256: str | None = None
    benefits: list[str] | None = None  # LeiKa keys a routed delivery carries
    dead_letter_id: str | None = None  # the dead letter a `dlq retry` re-produced the source of
    channel: str | None = None  # delivery channel: "file", "http" or "kafka"
    attempt: int | None = None  # a delivery attempt's number (retried, delivered, failed)
    status: int | None = None  # the vendor endpoint's HTTP status, when it answered
    # A transfer-gate decision's legal basis (stage "gate"): "consent" or "statute", the policy
    # entry's id, the norm.
    basis_kind: str | None = None
    basis_id: str | None = None
    legal_reference: str | None = None
    # What the per-person transparency report needs (hub.core.audit_report), pseudonyms and codes
    # only (schemas/hub/audit-event-1.schema.json, docs/audit-events.md). Transfers (gate,
    # delivery, Rechtskreiswechsel): the person's pseudonym, the transfer purpose, the data
    # categories concerned (carried when allowed, asked for when denied), the sending office or
    # portal, the consent records valid for the decision; the message id of a Rechtskreiswechsel.
    person: str | None = None
    purpose: str | None = None
    categories: list[str] | None = None
    from_office: str | None = None
    consents: list[str] | None = None
    message_id: str | None = None
    # Consent changes (stage "consent"): the record, its scope and window (a grant), when the
    # change takes effect, and the successor of a superseded record.
    record_id: str | None = None
    recipients: list[str] | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    effective_at: str | None = None
    superseded_by: str | None = None
    # The audit vault (docs/audit-vault.md), with ``person`` above: stage "vault"/"sealed" names
    # the person key the recorded input is sealed under and the SHA-256 of the sealed ciphertext
    # on audit.vault; stage "audit"/"erased" how many person keys of the person were erased.
    person_key: str | None = None
    input_sha256: str | None = None
    key_count: int | None = None
    # Audit replay (docs/audit-replay.md): stage "map"/"mapped" names the SHA-256 of the mapped
    # document's bytes (the delivery body), which a re-run mapping must reproduce.
    output_sha256: str | None = None
    TYPE = "sozialhub.audit"


@dataclass(frozen=True, slots=True)
class Seen:
    """``submissions.seen`` (compacted): a replay-detection key and the first submission that used it.

    Keys are ``msg-<32 hex>`` (transport and transport message id) or
    ``pay-<32 hex>`` (payload digest); values name the submission id, so a
    re-processed record (same id) is not its own duplicate.
    """

    key: str
    submission_id: str
    at: str
    TYPE = "sozialhub.seen"


@dataclass(frozen=True, slots=True)
class PortalReceipt:
    """``submissions.receipts``: the answer a portal gets for one submission.

    ``channel`` says how it travels: ``xta2`` (a receipt message via the XTA
    send port), ``fitconnect`` (an accept/reject Security Event Token) or
    ``none`` (a bare file drop has no way back; the record is the receipt).
    ``body_b64`` is the message or token, already signed; ``reason`` is the
    hub's reason code for a rejection, never payload text.
    """

    receipt_id: str
    submission_id: str
    transport: str
    channel: str
    outcome: str  # "accepted" | "rejected"
    at: str
    portal: str | None = None
    transport_message_id: str | None = None
    reason: str | None = None
    media_type: str | None = None
    body_b64: str | None = None
    case_id: str | None = None  # FIT-Connect case the event belongs to
    TYPE = "sozialhub.receipt"


RecordT = Received | Accepted | Delivery | DeadLetter | AuditEvent | Seen | PortalReceipt


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    """A record type's field names, looked up once per type."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


def _nested(value: Any) -> dict[str, Any]:
    """The JSON encoder's fallback: a nested dataclass (e.g. :class:`SourceRef`) as its fields."""
    if is_dataclass(value) and not isinstance(value, type):
        return {name: getattr(value, name) for name in _field_names(type(value))}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# Sorted keys, compact separators, UTF-8: the bytes dataclasses.asdict + json.dumps gave, without
# asdict's deep copy of every value (a 10 KB submission's canonical model is hundreds of them).
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_nested
)
# orjson writes the same bytes for the values records hold (strings, integers, booleans, null,
# lists, tuples, string-keyed dicts; no floats) about ten times sooner. Nested dataclasses go
# through _nested, so their keys are sorted too; datetimes are refused, as json refuses them.
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS
_ORJSON_OPTIONS |= orjson.OPT_PASSTHROUGH_DATETIME


def _dumps(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body, default=_nested, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        # What orjson refuses (integers beyond 64 bits, keys that are not strings), json decides.
        return _ENCODER.encode(body).encode()


def encode(record: RecordT) -> bytes:
    body: dict[str, Any] = {"type": record.TYPE, "v": 1}
    for name in _field_names(type(record)):
        body[name] = getattr(record, name)
    return _dumps(body)


_TEMPLATES: dict[type, tuple[dict[str, Any], frozenset[str], frozenset[str]]] = {}


def _template(cls: type[RecordT]) -> tuple[dict[str, Any], frozenset[str], frozenset[str]]:
    """A record type's envelope with every field at its default, its field names, its required ones."""
    template = _TEMPLATES.get(cls)
    if template is not None:
        return template
    body: dict[str, Any] = {"type": cls.TYPE, "v": 1}
    required = set()
    for f in fields(cls):
        if f.default_factory is not MISSING or hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__} builds values the template cannot")  # pragma: no cover
        if f.default is MISSING:
            required.add(f.name)
        body[f.name] = None if f.default is MISSING else f.default
    # In the order of the keys: the copies keep it (update only sets values), and orjson sorts
    # keys that are in order already in half the time. The bytes are the same either way.
    body = dict(sorted(body.items()))
    template = _TEMPLATES[cls] = (body, frozenset(_field_names(cls)), frozenset(required))
    return template


def encode_fields(cls: type[RecordT], values: dict[str, Any]) -> bytes:
    """``encode(cls(**values))``, the same bytes, without building the record first.

    The stages build most records only to encode them at once; intake makes six per
    submission. Fields left out take their defaults, as in the constructor; a
    missing required field or an unknown name raises the constructor's ``TypeError``.
    """
    template, names, required = _template(cls)
    keys = values.keys()
    if not required <= keys <= names:
        cls(**values)  # the constructor's own TypeError
        raise TypeError(f"{cls.__name__}: fields {sorted(keys)}")  # pragma: no cover
    body = template.copy()
    body.update(values)
    return _dumps(body)


_FIELD_SETS: dict[type, frozenset[str]] = {}
_ID = re.compile(r"(sub|dlv)-[0-9a-f]{32}")
_ID_FIELDS = {"submission_id": "sub-", "delivery_id": "dlv-"}


def is_id(text: str) -> bool:
    """A submission or delivery id as the hub makes them (safe as a Kafka key and a file name)."""
    return _ID.fullmatch(text) is not None


def _has_float(value: Any) -> bool:
    """Whether a decoded value holds a float anywhere (strings and ``None`` are skipped at once)."""
    kind = type(value)
    if kind is float:
        return True
    if kind is dict:
        values = value.values()
    elif kind is list:
        values = value
    else:
        return False
    for v in values:  # noqa: SIM110 - a loop: sooner than any() over a generator, on every record
        if type(v) is not str and v is not None and _has_float(v):
            return True
    return False


def _loads(data: bytes) -> Any:
    """``json.loads(data)``: the same value, or the same error, about three times sooner.

    orjson reads the hub's records (strings, integers of up to 64 bits, booleans,
    null, arrays, objects; no floats) as json does. Where the two can differ it
    leaves the decision to json: whatever orjson refuses (a BOM, UTF-16, NaN, lone
    surrogates, input that is not ``bytes``), and any value with a float in it,
    since orjson reads an integer beyond 64 bits as a float where json reads an int.
    """
    if type(data) is bytes:
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
        else:
            if not _has_float(body):
                return body
    return json.loads(data)


def decode(data: bytes, cls: type[T]) -> T:
    """Decode an envelope into ``cls``; anything else is ``ENVELOPE``.

    Fields this version does not know are ignored (a newer producer may add
    fields within a major version); missing or mistyped required fields are not.
    """
    try:
        body = _loads(data)
    except (ValueError, TypeError):
        raise Rejection(Reason.ENVELOPE, "json") from None
    expected = getattr(cls, "TYPE", None)
    if not isinstance(body, dict) or body.pop("type", None) != expected or body.pop("v", None) != 1:
        raise Rejection(Reason.ENVELOPE, "type")
    known = _FIELD_SETS.get(cls)
    if known is None:
        known = _FIELD_SETS[cls] = frozenset(_field_names(cls))
    if not body.keys() <= known:
        body = {k: v for k, v in body.items() if k in known}
    for name, prefix in _ID_FIELDS.items():
        value = body.get(name)
        if value is None or value == "sub-unknown":
            continue  # optional (audit events) or a record the hub could not attribute
        if not (isinstance(value, str) and is_id(value) and value.startswith(prefix)):
            raise Rejection(Reason.ENVELOPE, name)
    try:
        if cls is DeadLetter and body.get("source") is not None:
            body["source"] = SourceRef(**body["source"])
        return cls(**body)
    except TypeError:
        raise Rejection(Reason.ENVELOPE, "fields") from None
