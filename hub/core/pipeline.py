"""The stages of the hub as pure functions: record in, records out.

Each stage returns the records to emit, each addressed to a *logical* topic
name from ``topics.yml``; the stream adapter only prefixes names and sends.
Every decision produces an audit event. The same functions back the offline
``sozialhub check`` command, so what ``check`` says is what the workers do.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from lxml import etree

from hub.core import audit_vault, gate, portal_receipts, portalsig, xmlsafe
from hub.core.documents import beside_file_name
from hub.core.errors import Reason, Rejection
from hub.core.mapping import DeliveryContext, mapping_for
from hub.core.model import Code, Document, Party, Submission, from_json, positional, to_json
from hub.core.payloads import PayloadRegistry, PayloadType, validate
from hub.core.portals import Portal, PortalTable, open_table
from hub.core.pseudonym import PSEUDONYM, KeyRing, identifier
from hub.core.receipt import Attestation, ReceiptSigner
from hub.core.records import (
    Accepted,
    AuditEvent,
    DeadLetter,
    Delivery,
    PortalReceipt,
    Received,
    RecordT,
    Seen,
    SourceRef,
    audit_event_id,
    b64,
    dead_letter_id,
    decode,
    delivery_id,
    encode,
    encode_fields,
    is_id,
    receipt_id,
    received_key,
    received_submission_id,
    seen_key,
    submission_id_of_digest,
    timestamp,
    unb64,
)
from hub.core.rotation import SignerSet
from hub.core.route import (
    FITCONNECT_DIRECTORY,
    OfficeTable,
    Route,
    RouteRejection,
    applicant_ars,
    explain,
    route,
)
from hub.core.transfer import CATEGORIES, Decision, Outcome, TransferRequest
from hub.core.transport import DEFAULT_ATTACHMENTS, AttachmentPolicy, Envelope, registry
from hub.core.transport.registry import TransportKeys

UNKNOWN = "sub-unknown"  # submission id of a record the hub cannot attribute
RECEIVED = "submissions.received"
ACCEPTED = "submissions.accepted"
DEAD_LETTER = "submissions.deadletter"
AUDIT = "audit.log"
SEEN = "submissions.seen"
RECEIPTS = "submissions.receipts"
NOTHING_SEEN: Mapping[str, str] = {}
ATTACHMENT_KIND = "urn:sozialhub:codeliste:dokumentherkunft"


def delivery_queue(vendor_id: str) -> str:
    """The hub-internal topic where a vendor's deliveries wait for its delivery channel."""
    return f"deliveries.{vendor_id}"


def vendor_topic(vendor_id: str) -> str:
    """The vendor-facing topic of a ``kafka``-channel vendor: its mapped records, nothing else."""
    return f"fachverfahren.{vendor_id}"


@dataclass(frozen=True, slots=True)
class Emit:
    """One record to produce: logical topic, key (an opaque id), encoded value."""

    topic: str
    key: str
    value: bytes

    @classmethod
    def of(cls, topic: str, key: str, record: RecordT) -> Emit:
        return cls(topic, key, encode(record))


# Emit(topic, key, value), sooner (model.positional): intake makes some eight per submission.
_emit = positional(Emit)


@dataclass(frozen=True)
class HubContext:
    """Everything the stages need, loaded once by an adapter."""

    payloads: PayloadRegistry
    offices: OfficeTable
    signer: ReceiptSigner
    identity: str
    limits: xmlsafe.Limits = xmlsafe.DEFAULT_LIMITS
    # Largest record the hub produces; must stay below the topics' max.message.bytes.
    max_record_bytes: int = 8_000_000
    portals: PortalTable = field(default_factory=open_table)
    attachments: AttachmentPolicy = DEFAULT_ATTACHMENTS
    transport_keys: TransportKeys = field(default_factory=TransportKeys)
    # Signers by time during a key rotation (hub.core.rotation); None: ``signer`` always signs.
    signers: SignerSet | None = None
    # The transfer gate's policy, asked at send time by every delivery channel (gate_delivery);
    # the default is strict: no statutory basis, so no application is delivered.
    policy: gate.Policy = field(default_factory=gate.Policy)
    # Makes the person pseudonym each delivery carries; None: deliveries carry none, and the
    # gate denies them (TRANSFER_INVALID).
    pseudonyms: KeyRing | None = None

    def signer_at(self, moment: dt.datetime) -> ReceiptSigner:
        """The signer for a receipt made at ``moment``; RotationError if no certificate is valid."""
        return self.signer if self.signers is None else self.signers.signer_at(moment)


@dataclass(frozen=True, slots=True)
class StageResult:
    emits: tuple[Emit, ...]
    outcome: str  # "accepted" | "routed" | "rejected"
    reason: str | None = None
    submission: Submission | None = None
    routes: tuple[tuple[Route, str], ...] = ()  # (route, delivery id)


_AUDIT_OWN = frozenset({"event_id", "submission_id", "stage", "decision", "at"})


def _audit(
    submission: str,
    stage: str,
    decision: str,
    now: dt.datetime,
    *,
    target: str | None = None,
    **fields: Any,
) -> Emit:
    """One audit event; its id is deterministic per submission, stage, decision and target."""
    if target is None:
        target = str(fields.get("delivery_id") or fields.get("office") or "")
    if not _AUDIT_OWN.isdisjoint(fields):
        raise TypeError("an audit event's id, submission, stage, decision and time are _audit's")
    # The AuditEvent's fields, encoded as the record would be (records.encode_fields).
    fields["event_id"] = audit_event_id(submission, stage, decision, target)
    fields["submission_id"] = submission
    fields["stage"] = stage
    fields["decision"] = decision
    fields["at"] = timestamp(now)
    return _emit(AUDIT, submission, encode_fields(AuditEvent, fields))


# The audit-event builder under a public name, for the other core stages.
audit = _audit


def _reject(
    submission: str,
    stage: str,
    rejection: Rejection,
    payload_sha256: str | None,
    source: SourceRef | None,
    now: dt.datetime,
    target: str = "",
    *,
    transport_message_id: str | None = None,
    declared_size: int | None = None,
    **where_fields: Any,
) -> StageResult:
    # transport_message_id and declared_size name a message refused unread (hub.core.unfetched).
    # Ids are deterministic per submission and stage (plus the delivery at the deliver stage),
    # so a re-sent submission's rejection deduplicates. Records the hub cannot attribute
    # ("sub-unknown") are told apart by their source record instead.
    where = target
    if submission == UNKNOWN and source is not None:
        where = f"{source.topic}:{source.partition}:{source.offset}"
    letter = DeadLetter(
        dead_letter_id=dead_letter_id(submission, stage, where),
        submission_id=submission,
        stage=stage,
        reason=rejection.reason.value,
        path=rejection.path,
        payload_sha256=payload_sha256,
        source=source,
        at=timestamp(now),
        explanation=rejection.explanation if isinstance(rejection, RouteRejection) else None,
        transport_message_id=transport_message_id,
        declared_size=declared_size,
    )
    audit = _audit(
        submission,
        stage,
        "rejected",
        now,
        target=where,
        reason=rejection.reason.value,
        path=rejection.path,
        payload_sha256=payload_sha256,
        dead_letter_id=letter.dead_letter_id,  # every dead letter has its audit event
        **where_fields,
    )
    return StageResult(
        (Emit.of(DEAD_LETTER, submission, letter), audit), "rejected", rejection.reason.value
    )


# The dead-letter builder under a public name, for the other core stages.
reject = _reject


def accept(original: bytes, hub: HubContext) -> tuple[PayloadType, Submission]:
    """Parse once, identify, validate, extract a bare payload. Returns (payload type, submission)."""
    root = xmlsafe.parse(original, hub.limits)
    payload_type = hub.payloads.identify(root)
    validate(root, payload_type)
    return payload_type, payload_type.extract(root)


def _checked_original(received: Received) -> bytes:
    """The original bytes, if digest and id in the record are really theirs (the hub attests them)."""
    original = unb64(received.payload_b64)
    digest = hashlib.sha256(original).hexdigest()
    if (
        digest != received.payload_sha256
        or received_submission_id(
            digest,
            received.transport,
            received.transport_message_id,
            received.transport_author,
            received.transport_reader,
        )
        != received.submission_id
    ):
        raise Rejection(Reason.ENVELOPE, "payload_sha256")
    return original


def unwrap(received: Received, original: bytes, hub: HubContext, now: dt.datetime) -> Envelope:
    """The transport container of a received record, opened with the configured keys."""
    if received.transport == "file":
        return Envelope("file", original, message_id=received.transport_message_id)
    keys = hub.transport_keys
    return registry.unwrap(
        received.transport,
        original,
        limits=hub.limits,
        attachments=hub.attachments,
        osci_keys=keys.osci_decryption,
        fitconnect_keys=keys.fitconnect_decryption,
        fitconnect_schemas=keys.fitconnect_schemas,
        now=now,
        author=received.transport_author,
        reader=received.transport_reader,
        message_id=received.transport_message_id,
        osci_payload_id=(
            hub.portals.osci_payload_id(received.transport_author)
            if received.transport == "osci"
            else None
        ),
    )


def _peek(received: Received) -> Envelope | None:
    """The outer identifiers of a container that did not open (OSCI: the client's metadata)."""
    original = unb64(received.payload_b64)
    if received.transport != "osci":
        return registry.peek(received.transport, original)
    author, reader = received.transport_author, received.transport_reader
    return registry.peek("osci", original, author, reader, received.transport_message_id)


def _portal_signature(
    envelope: Envelope, root: etree._Element, policy: portalsig.SignaturePolicy, now: dt.datetime
) -> portalsig.Verified:
    """The portal's signature policy on what this transport carries.

    OSCI: the detached author signatures on the containers around the payload
    (:func:`hub.core.portalsig.verify_osci`); every other transport: one enveloped
    signature on the payload root.
    """
    if envelope.transport == "osci" and envelope.unpacked is not None:
        return portalsig.verify_osci(envelope.unpacked, envelope.payload, root, policy, now)
    return portalsig.verify(root, policy, now)


@dataclass(frozen=True, slots=True)
class Intake:
    """What intake learned before it accepted or rejected: enough to answer the portal."""

    envelope: Envelope | None = None
    portal: Portal | None = None


def _replay_keys(envelope: Envelope, payload_sha256: str) -> list[tuple[str, str]]:
    """(key, path) pairs that identify a replay: the transport message id and the payload digest."""
    keys = [(seen_key("pay", payload_sha256), "payload")]
    if envelope.message_id:
        keys.insert(0, (seen_key("msg", envelope.transport, envelope.message_id), "messageId"))
    return keys


class Redelivery(Exception):  # noqa: N818 - an outcome, like Rejection
    """The very same transport message again (same message id, same payload): not an error."""

    def __init__(self, first: str) -> None:
        super().__init__(first)
        self.first = first


def _check_claimed_schema(envelope: Envelope, payload_type: PayloadType) -> None:
    """A FIT-Connect submission's data must be of the schema its metadata names."""
    if envelope.transport == "fitconnect" and envelope.payload_schema != payload_type.namespace:
        raise Rejection(Reason.UNKNOWN_PAYLOAD, "metadata/submissionSchema")


def _not_a_replay(
    envelope: Envelope, payload_sha256: str, sid: str, seen: Mapping[str, str]
) -> list[tuple[str, str]]:
    """The replay keys of a submission nobody sent before (or this very record, re-processed).

    The same message id with the same payload under another record is a redelivery
    (an XTA message fetched again because ``close`` failed, a FIT-Connect submission
    polled twice): :class:`Redelivery`. Anything else already seen is a replay:
    ``DUPLICATE``.
    """
    keys = _replay_keys(envelope, payload_sha256)
    firsts = {where: seen.get(key) for key, where in keys}
    by_message, by_payload = firsts.get("messageId"), firsts.get("payload")
    if by_message is not None and by_message != sid and by_payload == by_message:
        raise Redelivery(by_message)
    for where, first in firsts.items():
        if first is not None and first != sid:
            raise Rejection(Reason.DUPLICATE, f"transport/{where}")
    return keys


def _with_transport(submission: Submission, envelope: Envelope) -> Submission:
    """Transport attachments travel as documents; the transport's reader fills a missing one.

    A payload that names its reader (XSozial ``leser``) keeps it: the hub's XTA
    mailbox is often one for several offices, so the transport reader may be the
    hub itself. A FIT-Connect destination becomes a reader in the ``FIT-Connect``
    directory, which routing maps to the office that owns the destination. The
    transport reader is in the accepted record either way.
    """
    changes: dict[str, Any] = {}
    if envelope.reader and submission.reader is None:
        if envelope.transport in ("xta2", "osci"):
            changes["reader"] = Party("DVDV", envelope.reader, None)
        elif envelope.transport == "fitconnect":
            changes["reader"] = Party(FITCONNECT_DIRECTORY, envelope.reader, None)
    if envelope.attachments:
        changes["documents"] = submission.documents + tuple(
            Document(
                document_id=a.attachment_id or f"anlage-{i}",
                name=a.filename,
                mime_type=a.content_type,
                file_name=a.filename,
                size=a.size,
                sha256=a.sha256,
                kind=Code("transport-anlage", ATTACHMENT_KIND, "1"),
                content_b64=b64(a.data),
            )
            for i, a in enumerate(envelope.attachments, start=1)
        )
    return replace(submission, **changes) if changes else submission


def intake(
    received: Received,
    source: SourceRef | None,
    hub: HubContext,
    now: dt.datetime,
    seen: Mapping[str, str] = NOTHING_SEEN,
) -> StageResult:
    """``submissions.received`` -> ``submissions.accepted`` or the dead-letter topic.

    Opens the transport container, identifies the portal from transport metadata,
    verifies its signature policy, continues only with the signed tree, validates,
    extracts, checks the payload against the portal (types, author, freshness
    window), and recognises replays via
    ``seen`` (replay key -> first submission id, from ``submissions.seen``). Every
    submission whose portal is known gets a portal receipt.
    """
    sid = received.submission_id
    # What is known when a rejection comes: the Intake to answer from, made only then.
    envelope: Envelope | None = None
    portal: Portal | None = None
    try:
        original = _checked_original(received)
        envelope = unwrap(received, original, hub, now)
        # A bare file is its own payload, whose digest the record holds and was just checked.
        digest = (
            received.payload_sha256 if envelope.payload is original else envelope.payload_sha256
        )
        portal = hub.portals.for_envelope(envelope)
        root = xmlsafe.parse(envelope.payload, hub.limits)
        signer: str | None = None
        if portal.signature is not None:
            verified = _portal_signature(envelope, root, portal.signature, now)
            root, signer = verified.signed_root, verified.signer_subject
        payload_type = hub.payloads.identify(root)
        _check_claimed_schema(envelope, payload_type)
        validate(root, payload_type)
        submission = payload_type.extract(root)
        hub.portals.check_payload(portal, payload_type.name, submission.author.key)
        if portal.max_age is not None:
            hub.portals.check_fresh(portal, submission.created, received.received_at)
        replay_keys = _not_a_replay(envelope, digest, sid, seen)
        submission = _with_transport(submission, envelope)
    except Redelivery as again:
        # Already accepted (and answered) under the first record: only the audit log notes it.
        event = _audit(sid, "intake", "duplicate", now, payload_sha256=received.payload_sha256)
        return StageResult((event,), "duplicate", reason=again.first)
    except Rejection as rejection:
        known = Intake(envelope, portal)
        if envelope is None and received.transport != "file":
            # The container did not open: answer from its outer identifiers, if readable.
            known = Intake(_peek(received))
        result = _reject(sid, "intake", rejection, received.payload_sha256, source, now)
        return _answered(result, received, known, "rejected", rejection.reason.value, hub, now)
    receipt = hub.signer_at(now).sign(
        Attestation(
            submission_id=sid,
            payload_sha256=digest,
            payload_namespace=submission.payload_namespace,
            payload_version=submission.payload_version,
            validated_with=payload_type.engine,
            signed_at=now,
            hub_identity=hub.identity,
        )
    )
    at = timestamp(now)
    # The Accepted record's fields, encoded as the record would be (records.encode_fields).
    accepted = {
        "submission_id": sid,
        "transport": received.transport,
        "received_at": received.received_at,
        "accepted_at": at,
        "payload_type": payload_type.name,
        "payload_sha256": digest,
        "payload_b64": b64(envelope.payload),
        "receipt_b64": b64(receipt),
        "submission": to_json(submission),
        "original_sha256": received.payload_sha256,
        "transport_message_id": envelope.message_id,
        "portal": portal.portal_id,
        "author": envelope.author or submission.author.key,
        "reader": envelope.reader,
        "signer": signer,
        "attachments": [
            {
                "filename": a.filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
            }
            for a in envelope.attachments
        ]
        or None,
    }
    accepted_emit = _emit(ACCEPTED, sid, encode_fields(Accepted, accepted))
    if len(accepted_emit.value) > hub.max_record_bytes:
        # Attachments travel twice (original and canonical model): refuse rather than crash-loop.
        too_large = Rejection(Reason.SIZE, "accepted")
        result = _reject(sid, "intake", too_large, received.payload_sha256, source, now)
        known = Intake(envelope, portal)
        return _answered(result, received, known, "rejected", too_large.reason.value, hub, now)
    emits = (
        accepted_emit,
        *(
            _emit(SEEN, key, encode_fields(Seen, {"key": key, "submission_id": sid, "at": at}))
            for key, _ in replay_keys
        ),
        _audit(sid, "intake", "accepted", now, payload_sha256=digest),
        _audit(sid, "sign", "signed", now, payload_sha256=digest),
    )
    answer = _portal_receipt(received, envelope, portal, "accepted", None, hub, now)
    return StageResult(
        emits if answer is None else (*emits, answer), "accepted", submission=submission
    )


def _answered(
    result: StageResult,
    received: Received,
    known: Intake,
    outcome: str,
    reason: str | None,
    hub: HubContext,
    now: dt.datetime,
) -> StageResult:
    """``result`` plus the portal receipt, when the hub knows who to answer."""
    emit = _portal_receipt(received, known.envelope, known.portal, outcome, reason, hub, now)
    return result if emit is None else replace(result, emits=(*result.emits, emit))


def _portal_receipt(
    received: Received,
    envelope: Envelope | None,
    portal: Portal | None,
    outcome: str,
    reason: str | None,
    hub: HubContext,
    now: dt.datetime,
) -> Emit | None:
    """The portal receipt's record, or None when the hub does not know who to answer."""
    if envelope is None:
        return None
    return portal_receipt(
        received.submission_id,
        envelope,
        portal.portal_id if portal else None,
        outcome,
        reason,
        hub,
        now,
        # Only a FIT-Connect accept SET uses the original bytes: decode them only for it.
        unb64(received.payload_b64) if envelope.transport == "fitconnect" else None,
    )


def portal_receipt(
    submission: str,
    envelope: Envelope,
    portal: str | None,
    outcome: str,
    reason: str | None,
    hub: HubContext,
    now: dt.datetime,
    original: bytes | None = None,
) -> Emit:
    """The ``submissions.receipts`` record answering ``envelope``'s sender (intake, refusals)."""
    channel, media_type, body = portal_receipts.build(
        envelope, submission, outcome, reason, hub.transport_keys, now, original
    )
    # The PortalReceipt's fields, encoded as the record would be (records.encode_fields).
    record = {
        "receipt_id": receipt_id(submission, envelope.message_id),
        "submission_id": submission,
        "transport": envelope.transport,
        "channel": channel,
        "outcome": outcome,
        "at": timestamp(now),
        "portal": portal,
        "transport_message_id": envelope.message_id,
        "reason": reason,
        "media_type": media_type,
        "body_b64": None if body is None else b64(body),
        "case_id": envelope.case_id,
    }
    return _emit(RECEIPTS, submission, encode_fields(PortalReceipt, record))


def dispatch(
    accepted: Accepted,
    source: SourceRef | None,
    hub: HubContext,
    now: dt.datetime,
    vault: audit_vault.Vault | None = None,
    accepted_value: bytes | None = None,
) -> StageResult:
    """``submissions.accepted`` -> one delivery per responsible office, or a dead letter.

    With a ``vault`` (the worker has a KEK) the input is recorded for audit replay
    first, whatever routing decides: :func:`record_input` seals ``accepted_value``
    (the record value as consumed; re-encoded from ``accepted`` when not given)
    under the person's key, if the submission has a person pseudonym.
    """
    sid = accepted.submission_id
    try:
        submission = from_json(accepted.submission)
    except (KeyError, TypeError):
        return _reject(
            sid,
            "route",
            Rejection(Reason.ENVELOPE, "submission"),
            accepted.payload_sha256,
            source,
            now,
        )
    person = person_pseudonym(submission, accepted.portal, hub.pseudonyms)
    result = _deliveries(accepted, submission, person, source, hub, now)
    if vault is None or person is None:
        return result
    value = encode(accepted) if accepted_value is None else accepted_value
    recorded = record_input(value, sid, person, vault, hub, now)
    return replace(result, emits=(*recorded, *result.emits))


def record_input(
    value: bytes,
    sid: str,
    person: str,
    vault: audit_vault.Vault,
    hub: HubContext,
    now: dt.datetime,
) -> tuple[Emit, ...]:
    """The recorded input of one submission for audit replay (docs/audit-vault.md).

    ``value`` (the ``submissions.accepted`` record value) sealed under ``person``'s
    key onto ``audit.vault``, preceded by the key's record on ``audit.keys`` when
    the person had none, and the ``vault``/``sealed`` audit event naming the
    pseudonym, the person key and the digest of the sealed ciphertext, so the
    audit chain covers the record. A sealed record larger than the hub's records
    may be is not written: ``vault``/``skipped`` with reason ``SIZE`` instead.
    Re-sealing the same value under the same key gives the same record.
    """
    sealing = audit_vault.seal_input(value, sid, person, vault, now)
    sealed = sealing.sealed
    record = Emit(audit_vault.VAULT, sid, audit_vault.encode_record(sealed))
    stage = audit_vault.STAGE
    if len(record.value) > hub.max_record_bytes:
        skipped = _audit(sid, stage, audit_vault.SKIPPED, now, reason="SIZE", person=person)
        return (skipped,)
    event = _audit(
        sid,
        stage,
        audit_vault.SEALED,
        now,
        person=person,
        person_key=sealed.person_key,
        input_sha256=sealed.ciphertext_sha256,
    )
    if sealing.new_key is None:
        return (record, event)
    key = sealing.new_key
    return (Emit(audit_vault.KEYS, key.key_id, audit_vault.encode_record(key)), record, event)


def _deliveries(
    accepted: Accepted,
    submission: Submission,
    person: str | None,
    source: SourceRef | None,
    hub: HubContext,
    now: dt.datetime,
) -> StageResult:
    """Route, then map once per responsible office: the deliveries and their audit events."""
    sid = accepted.submission_id
    try:
        routes = route(submission, hub.offices)
    except Rejection as rejection:
        return _reject(sid, "route", rejection, accepted.payload_sha256, source, now)
    receipt = unb64(accepted.receipt_b64)
    by_office: dict[str, list[Route]] = {}
    for r in routes:
        by_office.setdefault(r.office.office_id, []).append(r)
    deliveries: list[Emit] = []
    audits: list[Emit] = []
    planned: list[tuple[Route, str]] = []
    # What the transfer gate asks at send time; the same for every office of this submission.
    categories = sorted(gate.application_categories(submission))
    for office_routes in by_office.values():
        # Every benefit one office handles travels in one delivery to that office.
        first = office_routes[0]
        benefits = tuple(r.leika for r in office_routes)
        try:
            mapping = mapping_for(first.vendor.format)
            did = delivery_id(sid, first.office.office_id, mapping.version)
            body = mapping.render(submission, first, DeliveryContext(did, sid, receipt, benefits))
        except Rejection as rejection:
            return _reject(sid, "map", rejection, accepted.payload_sha256, source, now)
        delivery = Delivery(
            delivery_id=did,
            submission_id=sid,
            received_at=accepted.received_at,
            office=first.office.office_id,
            vendor=first.vendor.vendor_id,
            format=mapping.format,
            mapping_version=mapping.version,
            media_type=mapping.media_type,
            file_suffix=mapping.file_suffix,
            body_b64=b64(body),
            documents=_beside(submission, did) if mapping.documents == "beside" else None,
            categories=categories,
            portal=accepted.portal,
            person=person,
        )
        emit = Emit.of(delivery_queue(first.vendor.vendor_id), did, delivery)
        if len(emit.value) > hub.max_record_bytes:
            return _reject(
                sid, "map", Rejection(Reason.SIZE, "delivery"), accepted.payload_sha256, source, now
            )
        deliveries.append(emit)
        planned.extend((r, did) for r in office_routes)
        where = {
            "office": first.office.office_id,
            "vendor": first.vendor.vendor_id,
            "delivery_id": did,
        }
        audits.append(_audit(sid, "route", "routed", now, benefits=list(benefits), **where))
        # The mapped bytes' digest: audit replay re-runs the mapping and compares (the id stays
        # the delivery's, so a re-run dispatch repeats this event).
        output = hashlib.sha256(body).hexdigest()
        audits.append(
            _audit(
                sid,
                "map",
                "mapped",
                now,
                mapping_version=mapping.version,
                output_sha256=output,
                **where,
            )
        )
    return StageResult(
        (*deliveries, *audits), "routed", submission=submission, routes=tuple(planned)
    )


def person_pseudonym(
    submission: Submission, portal: str | None, pseudonyms: KeyRing | None
) -> str | None:
    """The pseudonym of the person a submission is about, or None without key ring or portal.

    Made from the best stable identifier the canonical submission has. It carries
    no IdNr or Versicherungsnummer yet, so that is the portal's case id, as a
    ``local:<portal>`` identifier (hub.core.pseudonym); a case id that is not
    shaped like a local person number is used by its SHA-256. Deterministic: a
    re-run dispatch gives every delivery the same pseudonym. Never the identifier
    in clear.
    """
    if pseudonyms is None or not portal:
        return None
    kind = f"local:{portal}"
    digest = hashlib.sha256(submission.case_id.encode("utf-8")).hexdigest()
    for value in (submission.case_id, digest):
        try:
            return pseudonyms.pseudonym(identifier(kind, value))
        except Rejection:
            continue
    return None  # a portal id that cannot name an identifier kind


def _beside(submission: Submission, did: str) -> list[dict[str, Any]]:
    """The documents a "beside" format's record references, as files next to it."""
    return [
        {
            "file_name": beside_file_name(did, index, document.mime_type),
            "media_type": document.mime_type,
            "size": document.size,
            "sha256": document.sha256,
            "content_b64": document.content_b64,
        }
        for index, document in enumerate(submission.documents, start=1)
    ]


def delivered(
    delivery: Delivery,
    now: dt.datetime,
    *,
    duplicate: bool,
    channel: str = "file",
    attempt: int | None = None,
    status: int | None = None,
) -> Emit:
    """The audit event a delivery connector emits once the delivery is durable at the vendor.

    It names the transfer for the transparency report (:func:`transfer_fields`): the
    person's pseudonym, the purpose, the categories the document carries, the portal.
    """
    return _audit(
        delivery.submission_id,
        "deliver",
        "duplicate" if duplicate else "delivered",
        now,
        office=delivery.office,
        vendor=delivery.vendor,
        delivery_id=delivery.delivery_id,
        mapping_version=delivery.mapping_version,
        channel=channel,
        attempt=attempt,
        status=status,
        **transfer_fields(delivery),
    )


def delivery_retried(
    delivery: Delivery, now: dt.datetime, *, channel: str, attempt: int, status: int | None
) -> Emit:
    """The audit event for a failed attempt that will be tried again (one per attempt)."""
    return _audit(
        delivery.submission_id,
        "deliver",
        "retried",
        now,
        target=f"{delivery.delivery_id}#{attempt}",
        office=delivery.office,
        vendor=delivery.vendor,
        delivery_id=delivery.delivery_id,
        mapping_version=delivery.mapping_version,
        channel=channel,
        attempt=attempt,
        status=status,
    )


def check_delivery(delivery: Delivery, vendor_id: str, offices: OfficeTable) -> None:
    """A delivery taken from ``vendor_id``'s queue is for that vendor and one of its offices.

    Every delivery channel calls this before it sends anything, so a record in the
    wrong queue (a bug, a foreign producer, a changed office table) becomes a
    ``DELIVERY`` dead letter instead of reaching another vendor.
    """
    if delivery.vendor != vendor_id:
        raise Rejection(Reason.DELIVERY, "vendor")
    office = offices.find(delivery.office)
    if office is None or office.vendor != vendor_id:
        raise Rejection(Reason.DELIVERY, "office")
    if delivery.format != offices.vendors[vendor_id].format:
        raise Rejection(Reason.DELIVERY, "format")


APPLICATION_DELIVERY = "application-delivery"  # the transfer purpose of every delivery


def gate_delivery(delivery: Delivery, hub: HubContext, now: dt.datetime) -> Decision:
    """The transfer gate's decision on sending ``delivery`` to its office at ``now``. Pure.

    The request: purpose ``application-delivery``, from the delivery's portal to
    its office, for its person and categories, request id = delivery id. The
    person's consents are not asked (the application itself is the basis, if the
    policy says so): only ``hub.policy``'s statutory bases can allow it. A record
    without categories, portal or person (written before the gate was asked, or by
    a foreign producer) is denied ``TRANSFER_INVALID``.
    """
    categories = delivery.categories
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        invalid = Reason.TRANSFER_INVALID.value
        return Decision(delivery.delivery_id, Outcome.DENY, reason=invalid, decided_at=now)
    request = TransferRequest(
        request_id=delivery.delivery_id,
        person=delivery.person if isinstance(delivery.person, str) else "",
        from_office=delivery.portal if isinstance(delivery.portal, str) else "",
        to_office=delivery.office if isinstance(delivery.office, str) else "",
        purpose=APPLICATION_DELIVERY,
        categories=frozenset(categories),
        at=now,
    )
    return gate.decide(request, (), hub.policy, now)


def gate_audit(delivery: Delivery, decision: Decision, now: dt.datetime, channel: str) -> Emit:
    """The audit event of a send-time gate decision: ``gate``/``allowed`` or ``gate``/``denied``.

    ``allowed`` only for ``allow``: an ``allow-minimised`` delivery is not sent (its
    document is mapped already and cannot lose categories), so it is ``denied``
    with the gate's reason, and names the basis that would have carried less.
    """
    basis = decision.basis
    return _audit(
        delivery.submission_id,
        "gate",
        "allowed" if decision.outcome is Outcome.ALLOW else "denied",
        now,
        target=delivery.delivery_id,
        reason=decision.reason,
        basis_kind=None if basis is None else basis.kind,
        basis_id=None if basis is None else (basis.basis_id or basis.consent_record),
        legal_reference=None if basis is None else basis.legal_reference,
        # The delivery gate asks no consents (the application is the basis): none were valid for it.
        consents=[],
        **_delivery_fields(delivery, channel),
        **transfer_fields(delivery),
    )


def transfer_fields(delivery: Delivery) -> dict[str, Any]:
    """What a delivery's audit events say about the transfer, where it has the shape of codes.

    The purpose (always ``application-delivery``), the person's pseudonym, the sending
    portal and the data categories the document carries (sorted). Like
    :func:`_delivery_fields`, a value a foreign record could fill with any text is left
    out unless it is a pseudonym, an id or a known category code.
    """
    fields: dict[str, Any] = {"purpose": APPLICATION_DELIVERY}
    person, portal, categories = delivery.person, delivery.portal, delivery.categories
    if isinstance(person, str) and PSEUDONYM.fullmatch(person):
        fields["person"] = person
    if isinstance(portal, str) and _SAFE_ID.fullmatch(portal):
        fields["from_office"] = portal
    if isinstance(categories, list) and all(
        isinstance(c, str) and c in CATEGORIES for c in categories
    ):
        fields["categories"] = sorted(set(categories))
    return fields


class TransferDenied(Rejection):
    """The gate did not allow a delivery at send time: ``TRANSFER_DENIED`` at the gate's reason.

    Carries the ``gate``/``denied`` audit event, which :func:`reject_delivery`
    adds to the dead letter and its ``deliver``/``rejected`` event.
    """

    def __init__(self, decision: Decision, audit: Emit) -> None:
        super().__init__(Reason.TRANSFER_DENIED, decision.reason or decision.outcome.value)
        self.decision = decision
        self.audit = audit


def ask_gate(delivery: Delivery, hub: HubContext, now: dt.datetime, *, channel: str) -> Emit:
    """Ask the gate right before sending: the ``gate``/``allowed`` event, or :class:`TransferDenied`.

    Every delivery channel calls this after :func:`check_delivery` and sends
    only when it returns (tests/unit/test_delivery_contract.py checks that no
    other code writes where offices read).
    """
    decision = gate_delivery(delivery, hub, now)
    audit = gate_audit(delivery, decision, now, channel)
    if decision.outcome is not Outcome.ALLOW:
        raise TransferDenied(decision, audit)
    return audit


def forward(delivery: Delivery, vendor_id: str, hub: HubContext, now: dt.datetime) -> StageResult:
    """The ``kafka`` channel: the mapped record onto ``vendor_id``'s topic, keyed by delivery id.

    The topic comes from the queue's vendor, never from the record, and the record
    must agree (:func:`check_delivery`); then the transfer gate must allow it now
    (:func:`ask_gate`, else :class:`TransferDenied`). The value is the mapped bytes
    exactly (an Avro single-object encoding); no headers. A re-run produces the
    same key and value, so the vendor's consumer recognises a redelivery by the
    delivery id.
    """
    check_delivery(delivery, vendor_id, hub.offices)
    allowed = ask_gate(delivery, hub, now, channel="kafka")
    body = unb64(delivery.body_b64)
    record = Emit(vendor_topic(vendor_id), delivery.delivery_id, body)
    audit = delivered(delivery, now, duplicate=False, channel="kafka")
    return StageResult((allowed, record, audit), "delivered")


def receipt_sent(receipt: PortalReceipt, now: dt.datetime, *, sent: bool = True) -> Emit:
    """The audit event a receipt connector emits: the portal has it (``sent``) or ``refused`` it."""
    return _audit(
        receipt.submission_id,
        "receipt",
        "sent" if sent else "refused",
        now,
        target=receipt.receipt_id,
        reason=receipt.reason,
    )


def check(
    original: bytes,
    hub: HubContext,
    now: dt.datetime,
    *,
    transport: str = "file",
    transport_message_id: str | None = None,
    osci_metadata: bytes | None = None,
) -> dict[str, Any]:
    """The whole pipeline offline on one document: the ``sozialhub check`` report.

    An OSCI package needs its metadata sidecar (``osci_metadata``, the bytes the OSCI
    client writes beside it); without a valid one it is rejected ``METADATA`` as the
    file drop would.
    """
    received, refused = _offline_received(
        original, "check", transport, now, transport_message_id, osci_metadata
    )
    report: dict[str, Any] = {
        "submission_id": received.submission_id,
        "verdict": "rejected",
        "reason": None,
        "path": None,
        "transport": transport,
        "transport_message_id": received.transport_message_id,
        "portal": None,
        "payload": None,
        "author": None,
        "reader": None,
        "signer": None,
        "leika": [],
        "ars": None,
        "office": None,
        "vendor": None,
        "routes": [],
        "receipt": None,
    }
    if refused is not None:
        report["reason"], report["path"] = refused.reason.value, refused.path
        return report
    first = intake(received, None, hub, now)
    receipt = next((e for e in first.emits if e.topic == RECEIPTS), None)
    if receipt is not None:
        answer = decode(receipt.value, PortalReceipt)
        report["receipt"] = {"channel": answer.channel, "outcome": answer.outcome}
        report["transport_message_id"] = answer.transport_message_id
        report["portal"] = answer.portal
    if first.outcome == "rejected":
        report["payload"] = _known_namespace(original, hub) if transport == "file" else None
        return _with_reason(report, first)
    submission = first.submission
    assert submission is not None  # noqa: S101 - set on every accepted result
    accepted = decode(next(e for e in first.emits if e.topic == ACCEPTED).value, Accepted)
    report["payload"] = submission.payload_namespace
    report["portal"] = accepted.portal
    report["author"] = accepted.author
    report["reader"] = submission.reader.key if submission.reader else accepted.reader
    report["signer"] = accepted.signer
    report["leika"] = list(submission.leika_keys)
    report["ars"] = applicant_ars(submission, hub.offices)
    second = dispatch(accepted, None, hub, now)
    if second.outcome == "rejected":
        return _with_reason(report, second)
    report["verdict"] = "accepted"
    report["routes"] = [{**_route_row(r), "delivery_id": did} for r, did in second.routes]
    report["office"] = second.routes[0][0].office.office_id
    report["vendor"] = second.routes[0][0].vendor.vendor_id
    return report


def route_report(
    original: bytes,
    hub: HubContext,
    now: dt.datetime,
    *,
    transport: str = "file",
    transport_message_id: str | None = None,
    osci_metadata: bytes | None = None,
) -> dict[str, Any]:
    """``sozialhub route``: intake offline, then the routing decision step by step."""
    received, refused = _offline_received(
        original, "route", transport, now, transport_message_id, osci_metadata
    )
    report: dict[str, Any] = {
        "submission_id": received.submission_id,
        "verdict": "rejected",
        "stage": "intake",
        "reason": None,
        "path": None,
        "explanation": None,
        "steps": [],
        "routes": [],
    }
    if refused is not None:
        report["stage"] = "ingest"
        report["reason"], report["path"] = refused.reason.value, refused.path
        return report
    first = intake(received, None, hub, now)
    if first.outcome == "rejected" or first.submission is None:
        return _with_reason(report, first)
    explanation = explain(first.submission, hub.offices)
    report["steps"] = [step.as_dict() for step in explanation.steps]
    report["stage"] = "route"
    if explanation.rejection is not None:
        report["reason"] = explanation.rejection.reason.value
        report["path"] = explanation.rejection.path
        report["explanation"] = explanation.rejection.explanation
        return report
    report["verdict"] = "routed"
    report["routes"] = [_route_row(r) for r in explanation.routes]
    return report


def _offline_received(
    original: bytes,
    source: str,
    transport: str,
    now: dt.datetime,
    transport_message_id: str | None,
    osci_metadata: bytes | None,
) -> tuple[Received, Rejection | None]:
    """The record a connector would write for ``check``/``route``, or why it would refuse.

    An OSCI package's author, reader and message id come from its metadata sidecar
    (hub.core.transport.osci_handover); a missing or invalid one is ``METADATA``.
    """
    if transport != "osci":
        return Received.of(original, source, transport, now, transport_message_id), None
    from hub.core.transport.osci_handover import parse_metadata  # noqa: PLC0415 - OSCI only

    try:
        metadata = parse_metadata(osci_metadata)
    except Rejection as rejection:
        return Received.of(original, source, transport, now, transport_message_id), rejection
    received = Received.of(
        original,
        source,
        transport,
        now,
        metadata.message_id,
        transport_author=metadata.author,
        transport_reader=metadata.reader,
    )
    return received, None


def _route_row(r: Route) -> dict[str, Any]:
    """A route as the ``check`` and ``route`` reports show it."""
    return {
        "leika": r.leika,
        "office": r.office.office_id,
        "vendor": r.vendor.vendor_id,
        "format": r.vendor.format,
        "channel": r.vendor.channel,
        "rule": r.rule,
    }


def _known_namespace(original: bytes, hub: HubContext) -> str | None:
    """The payload namespace of a rejected document, only if the hub knows it (never echo input)."""
    try:
        root = xmlsafe.parse(original, hub.limits)
    except Rejection:
        return None
    known = {t.namespace for t in hub.payloads}
    namespace = etree.QName(root).namespace
    return namespace if namespace in known else None


def _with_reason(report: dict[str, Any], result: StageResult) -> dict[str, Any]:
    report["reason"] = result.reason
    letter = next(e for e in result.emits if e.topic == DEAD_LETTER)
    report["path"] = decode(letter.value, DeadLetter).path
    return report


def transport_message_id_of_name(file_name: str) -> str | None:
    """The XTA message id an XTA client names its payload file by (``<id>`` or ``<id>.xml``)."""
    from hub.core.transport.xta import MESSAGE_ID  # noqa: PLC0415

    stem = file_name.removesuffix(".xml")
    return stem if MESSAGE_ID.fullmatch(stem) else None


def ingest(
    original: bytes,
    source: str,
    transport: str,
    hub: HubContext,
    now: dt.datetime,
    transport_message_id: str | None = None,
    *,
    transport_author: str | None = None,
    transport_reader: str | None = None,
) -> StageResult:
    """What an inbound connector produces for bytes it received: the record and its audit event.

    Bytes above the size limit, or whose record would not fit on the topic, are
    dead-lettered (``SIZE``) instead. ``transport_author``/``transport_reader`` are
    parties the connector got beside the bytes (an OSCI client's metadata).
    """
    digest = hashlib.sha256(original).hexdigest()
    if len(original) > hub.limits.max_bytes:
        return reject_unread(digest, Reason.SIZE, now)
    sid = received_submission_id(
        digest, transport, transport_message_id, transport_author, transport_reader
    )
    # Received.of's record, encoded from its fields (records.encode_fields): the same bytes.
    value = encode_fields(
        Received,
        {
            "submission_id": sid,
            "source": source,
            "transport": transport,
            "received_at": timestamp(now),
            "payload_b64": b64(original),
            "payload_sha256": digest,
            "transport_message_id": transport_message_id,
            "transport_author": transport_author,
            "transport_reader": transport_reader,
        },
    )
    if len(value) > hub.max_record_bytes:
        return reject_unread(digest, Reason.SIZE, now)
    audit = _audit(sid, "ingest", "received", now, payload_sha256=digest)
    key = received_key(sid, transport_message_id)
    return StageResult((_emit(RECEIVED, key, value), audit), "received")


def reject_unread(payload_sha256: str, reason: Reason, now: dt.datetime) -> StageResult:
    """A submission refused before its bytes were read in full (e.g. ``SIZE`` at the file drop)."""
    sid = submission_id_of_digest(payload_sha256)
    return _reject(sid, "ingest", Rejection(reason), payload_sha256, None, now)


_SAFE_ID = re.compile(r"[a-z][a-z0-9-]{1,62}")
_SAFE_VERSION = re.compile(r"[a-z][a-z0-9-]{0,30}/[0-9]+\.[0-9]+\.[0-9]+")
CHANNELS = frozenset({"file", "http", "kafka"})


def reject_delivery(
    delivery: Delivery,
    rejection: Rejection,
    source: SourceRef,
    now: dt.datetime,
    *,
    channel: str | None = None,
) -> StageResult:
    """A delivery a channel cannot or must not carry out (refused, unsafe, another vendor's).

    The audit event names the delivery (its id was checked when the record was
    decoded) and, where they have the shape of ids, its office, vendor and
    mapping version: a foreign record could carry any text there, which must not
    reach the audit log. A :class:`TransferDenied` adds the gate's ``denied`` event.
    """
    result = _reject(
        delivery.submission_id,
        "deliver",
        rejection,
        None,
        source,
        now,
        delivery.delivery_id,
        **_delivery_fields(delivery, channel),
    )
    if isinstance(rejection, TransferDenied):
        return replace(result, emits=(*result.emits, rejection.audit))
    return result


def _delivery_fields(delivery: Delivery, channel: str | None) -> dict[str, Any]:
    """The delivery's id and, where they have the shape of ids, office, vendor, version, channel."""
    candidates = (
        ("office", delivery.office, _SAFE_ID),
        ("vendor", delivery.vendor, _SAFE_ID),
        ("mapping_version", delivery.mapping_version, _SAFE_VERSION),
    )
    fields: dict[str, Any] = {"delivery_id": delivery.delivery_id} | {
        name: value
        for name, value, shape in candidates
        if isinstance(value, str) and shape.fullmatch(value)
    }
    if channel in CHANNELS:
        fields["channel"] = channel
    return fields


def reject_record(
    key: bytes | None,
    stage: str,
    rejection: Rejection,
    source: SourceRef,
    now: dt.datetime,
    value: bytes | None = None,
) -> StageResult:
    """A record on an internal topic that is not a valid envelope (e.g. written by a foreign
    producer), or one a stage failed on: filed under its submission id, from the key or,
    for keys that are not one (``mid-…`` on ``submissions.received``), from the value."""
    text = (key or b"").decode("ascii", "replace")
    sid = text if is_id(text) and text.startswith("sub-") else _submission_in(value)
    return _reject(sid, stage, rejection, None, source, now)


def _submission_in(value: bytes | None) -> str:
    """The well-formed ``submission_id`` of a JSON record value, else ``sub-unknown``."""
    try:
        found = orjson.loads(value or b"").get("submission_id")
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return UNKNOWN
    return (
        found if isinstance(found, str) and is_id(found) and found.startswith("sub-") else UNKNOWN
    )
