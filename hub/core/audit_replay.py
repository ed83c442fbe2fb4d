"""Audit replay: re-run a recorded submission through the pure pipeline and compare. Pure.

``sozialhub audit replay`` (hub.audit_replay_cli) reads the audit chain and the
audit vault; this module decides. For one submission it takes the submission's
recorded audit events (from ``audit.chain``) and its recorded input (the
``submissions.accepted`` value sealed on ``audit.vault``, opened with the KEK),
and

1. checks the input against the chain: the SHA-256 of the vault record's
   ciphertext is the ``input_sha256`` of a ``vault``/``sealed`` event, the
   opened record is a ``submissions.accepted`` record of this submission, and its
   payload digest is that of ``intake``/``accepted``;
2. re-runs the payload schema validation with the payload type and version the
   record names (the version must still be one the hub reads);
3. re-runs :func:`hub.core.pipeline.dispatch` with the hub context, at the time of
   the recorded ``map``/``mapped`` event, and compares: the outcome (routed, or
   rejected with which reason), the set of offices, each office's vendor, the
   mapping version and the SHA-256 of the mapped bytes (``output_sha256``);
4. checks that every mapped delivery was delivered (``deliver``/``delivered`` or
   ``duplicate``).

The result holds ids, versions, digests and codes only, never anything of the
input's content (docs/audit-replay.md).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lxml import etree

from hub.core import audit_vault, pipeline, xmlsafe
from hub.core.errors import Rejection
from hub.core.mapping import MAPPINGS, DeliveryContext
from hub.core.payloads import PayloadType, validate
from hub.core.portalsig import DS
from hub.core.records import Accepted, AuditEvent, decode, delivery_id, unb64

SAME = "same"
DIFFERENT = "different"

# Difference kinds (docs/audit-replay.md#what-is-compared).
INPUT_MISSING = "input-missing"  # no recorded input: not sealed, skipped (SIZE), or past retention
INPUT_ERASED = "input-erased"  # the person's key was erased (audit erase)
INPUT_UNREADABLE = "input-unreadable"  # the record matches the chain but does not open
INPUT_DIGEST = "input-digest"  # the vault record or the opened record is not what the chain says
INPUT_INVALID = "input-invalid"  # the opened value is no accepted record of this submission
SCHEMA_VERSION_UNAVAILABLE = "schema-version-unavailable"  # the hub no longer reads the version
SCHEMA_INVALID = "schema-invalid"  # the payload does not validate against today's schema
OUTCOME = "outcome"  # dispatch decides otherwise: routed vs rejected, or another reason
OFFICE_SET = "office-set"  # routed to other offices now
VENDOR = "vendor"  # an office's delivery goes to another vendor now
MAPPING_VERSION_UNAVAILABLE = "mapping-version-unavailable"  # the code has not the recorded one
MAPPING_CHANGED = "mapping-changed"  # dispatch maps with another version now (another format)
MAPPED_DIGEST = "mapped-digest"  # the recorded mapping version gives other bytes now
MAPPED_DIGEST_UNRECORDED = "mapped-digest-unrecorded"  # a `mapped` event without output_sha256
NOT_DELIVERED = "not-delivered"  # mapped, but no delivered/duplicate event

KINDS = (
    INPUT_MISSING,
    INPUT_ERASED,
    INPUT_UNREADABLE,
    INPUT_DIGEST,
    INPUT_INVALID,
    SCHEMA_VERSION_UNAVAILABLE,
    SCHEMA_INVALID,
    OUTCOME,
    OFFICE_SET,
    VENDOR,
    MAPPING_VERSION_UNAVAILABLE,
    MAPPING_CHANGED,
    MAPPED_DIGEST,
    MAPPED_DIGEST_UNRECORDED,
    NOT_DELIVERED,
)

# The stages dispatch writes: a submission is replayed when one of them falls into the window.
DISPATCH_STAGES = frozenset({audit_vault.STAGE, "route", "map"})
# Vault reasons (hub.audit_vault_cli.Recorded.reason) and what they mean for replay.
_UNOPENED = {
    "absent": INPUT_MISSING,
    audit_vault.ErasedError.code: INPUT_ERASED,
    audit_vault.TamperedError.code: INPUT_UNREADABLE,
    audit_vault.WrongKeyError.code: INPUT_UNREADABLE,
}
_DELIVERED = frozenset({"delivered", "duplicate"})
_REFUSED = frozenset({"rejected", "denied"})  # a delivery the channel or the gate refused
_SIGNATURE = f"{{{DS}}}Signature"


@dataclass(frozen=True, slots=True)
class RecordedInput:
    """A submission's input as the vault gave it.

    ``value``: the opened ``submissions.accepted`` value, or None; ``reason``: why it
    did not open (``absent``, ``erased``, ``tampered``, ``wrong-key``), None when it
    did; ``ciphertext_sha256``: SHA-256 of the ciphertext bytes of the vault record
    it came from (or that did not open), None without a record.
    """

    value: bytes | None
    reason: str | None = None
    ciphertext_sha256: str | None = None


@dataclass(frozen=True, slots=True)
class Difference:
    """One difference; ``recorded`` and ``replayed`` hold ids, versions, digests or codes."""

    kind: str
    office: str | None = None
    delivery_id: str | None = None
    recorded: tuple[str, ...] = ()
    replayed: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "office": self.office,
            "delivery_id": self.delivery_id,
            "recorded": list(self.recorded),
            "replayed": list(self.replayed),
        }


@dataclass(frozen=True, slots=True)
class Replayed:
    """The replay of one submission: ``same``, or its differences."""

    submission_id: str
    differences: tuple[Difference, ...]
    deliveries: int = 0  # deliveries whose mapped bytes were compared

    @property
    def same(self) -> bool:
        return not self.differences

    @property
    def result(self) -> str:
        return SAME if self.same else DIFFERENT

    @property
    def kinds(self) -> tuple[str, ...]:
        """The kinds of its differences, each once, in the order of :data:`KINDS`."""
        found = {d.kind for d in self.differences}
        return tuple(k for k in KINDS if k in found)

    def as_dict(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "result": self.result,
            "deliveries": self.deliveries,
            "differences": [d.as_dict() for d in self.differences],
        }


# --- what the chain recorded ------------------------------------------------------------------


@dataclass
class _Chain:
    """The recorded events of one submission that replay compares with (first of each id)."""

    sealed: set[str]
    skipped: list[str]
    payload_sha256: str | None
    rejected: AuditEvent | None
    routed: dict[str, AuditEvent]  # office -> routed
    mapped: dict[str, AuditEvent]  # office -> mapped
    delivered: set[str]  # delivery ids delivered (or found already delivered)
    refused: dict[str, list[str]]  # delivery id -> reason codes of deliver/gate refusals

    @classmethod
    def of(cls, events: Iterable[AuditEvent]) -> _Chain:
        chain = cls(set(), [], None, None, {}, {}, set(), {})
        seen: set[str] = set()
        for e in events:
            if e.stage == audit_vault.STAGE and e.decision == audit_vault.SEALED:
                # Not deduplicated: a submission sealed twice (two keys made at once, a re-run
                # after a crash) has one event id but two records, with two digests.
                if e.input_sha256:
                    chain.sealed.add(e.input_sha256)
                continue
            if e.event_id in seen:
                continue  # at-least-once: the same decision twice
            seen.add(e.event_id)
            chain._add(e)
        return chain

    def _add(self, e: AuditEvent) -> None:
        if e.stage == audit_vault.STAGE and e.decision == audit_vault.SKIPPED:
            self.skipped.append(e.reason or "")
        elif e.stage == "intake" and e.decision == "accepted":
            self.payload_sha256 = self.payload_sha256 or e.payload_sha256
        elif e.stage in ("route", "map") and e.decision == "rejected":
            if self.rejected is None or e.at >= self.rejected.at:
                self.rejected = e  # the latest: a dead letter retried may be rejected again
        elif e.stage == "route" and e.decision == "routed" and e.office:
            self.routed.setdefault(e.office, e)
        elif e.stage == "map" and e.decision == "mapped" and e.office:
            self.mapped.setdefault(e.office, e)
        elif e.stage == "deliver" and e.decision in _DELIVERED and e.delivery_id:
            self.delivered.add(e.delivery_id)
        elif e.delivery_id and e.reason and e.decision in _REFUSED:
            self.refused.setdefault(e.delivery_id, []).append(e.reason)

    def outcome(self) -> str | None:
        """What dispatch decided last: ``routed``, ``rejected/<stage>/<reason>``, or None.

        A dead letter retried (``sozialhub dlq retry``) and routed later counts as routed.
        Audit times are fixed-width UTC, so they compare as text.
        """
        routed_at = max((e.at for e in self.routed.values()), default=None)
        if self.rejected is not None and (routed_at is None or self.rejected.at > routed_at):
            return _rejected(self.rejected)
        return "routed" if routed_at is not None else None

    def dispatched_at(self, accepted: Accepted) -> dt.datetime:
        """When dispatch ran: the recorded ``mapped`` time (what replay passes as ``now``)."""
        candidates = [e.at for e in self.mapped.values()] or [e.at for e in self.routed.values()]
        if not candidates and self.rejected is not None:
            candidates = [self.rejected.at]
        return parse_time(min(candidates) if candidates else accepted.accepted_at)


def _rejected(event: AuditEvent) -> str:
    return f"rejected/{event.stage}/{event.reason}"


def parse_time(text: str) -> dt.datetime:
    """An audit timestamp (``2026-11-02T10:00:00.000Z``) as an aware datetime."""
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


# --- replay -----------------------------------------------------------------------------------


def replay(
    submission_id: str,
    events: Sequence[AuditEvent],
    recorded: RecordedInput,
    hub: pipeline.HubContext,
) -> Replayed:
    """Replay one submission: its recorded events, its recorded input, today's hub context."""
    chain = _Chain.of(e for e in events if e.submission_id == submission_id)
    differences = _input(chain, recorded)
    if recorded.value is None or differences:
        # Nothing to replay, or not the input the chain recorded: its replay would prove nothing.
        return Replayed(submission_id, tuple(differences))
    accepted = _accepted(submission_id, recorded.value, chain, differences)
    if accepted is None:
        return Replayed(submission_id, tuple(differences))
    differences += _schema(accepted, hub)
    compared, found = _dispatch(accepted, chain, hub)
    differences += found
    differences += _deliveries(chain)
    return Replayed(submission_id, tuple(differences), compared)


def _input(chain: _Chain, recorded: RecordedInput) -> list[Difference]:
    """The vault record against the chain, and why it did not open."""
    found: list[Difference] = []
    digest = recorded.ciphertext_sha256
    if digest is not None and digest not in chain.sealed:
        # A record the chain never named (or one altered): not the recorded input.
        found.append(
            Difference(INPUT_DIGEST, recorded=tuple(sorted(chain.sealed)), replayed=(digest,))
        )
    if recorded.value is None:
        kind = _UNOPENED.get(recorded.reason or "absent", INPUT_UNREADABLE)
        if kind == INPUT_UNREADABLE and found:
            return found  # it does not open because it is not the recorded one
        if kind == INPUT_MISSING:
            codes = tuple(sorted(set(chain.skipped))) or tuple(sorted(chain.sealed))
            found.append(Difference(kind, recorded=codes))
        else:
            found.append(Difference(kind, replayed=(recorded.reason or "",)))
    return found


def _accepted(
    submission_id: str, value: bytes, chain: _Chain, differences: list[Difference]
) -> Accepted | None:
    """The opened record, if it is an accepted record of this submission whose digests hold."""
    try:
        accepted = decode(value, Accepted)
        payload = unb64(accepted.payload_b64)
    except (Rejection, ValueError, TypeError):
        differences.append(Difference(INPUT_INVALID, replayed=("ENVELOPE",)))
        return None
    if accepted.submission_id != submission_id:
        differences.append(Difference(INPUT_INVALID, replayed=("submission_id",)))
        return None
    actual = hashlib.sha256(payload).hexdigest()
    if actual != accepted.payload_sha256:
        differences.append(
            Difference(INPUT_DIGEST, recorded=(accepted.payload_sha256,), replayed=(actual,))
        )
        return None
    if chain.payload_sha256 is not None and chain.payload_sha256 != actual:
        differences.append(
            Difference(INPUT_DIGEST, recorded=(chain.payload_sha256,), replayed=(actual,))
        )
        return None
    return accepted


def payload_type_of(accepted: Accepted, hub: pipeline.HubContext) -> PayloadType | None:
    """The payload type the record names, if the hub still reads its namespace and version."""
    version = accepted.submission.get("payload_version")
    namespace = accepted.submission.get("payload_namespace")
    types: Iterable[PayloadType] = hub.payloads
    for payload_type in types:
        if payload_type.name != accepted.payload_type:
            continue
        if payload_type.namespace == namespace and version in payload_type.versions:
            return payload_type
    return None


def _schema(accepted: Accepted, hub: pipeline.HubContext) -> list[Difference]:
    """Validate the recorded payload again, with the recorded payload type and version."""
    version = str(accepted.submission.get("payload_version"))
    named = (f"{accepted.payload_type}/{version}",)
    payload_type = payload_type_of(accepted, hub)
    if payload_type is None:
        return [Difference(SCHEMA_VERSION_UNAVAILABLE, recorded=named)]
    try:
        root = xmlsafe.parse(unb64(accepted.payload_b64), hub.limits)
        if root.tag != payload_type.qname or root.get("version") != version:
            return [Difference(INPUT_INVALID, recorded=named, replayed=("payload",))]
        if accepted.signer is not None:
            root = without_signature(root)
        validate(root, payload_type)
    except Rejection as rejection:
        return [Difference(SCHEMA_INVALID, recorded=named, replayed=(rejection.reason.value,))]
    return []


def without_signature(root: etree._Element) -> etree._Element:
    """The signed data of a signed payload: intake validated the root without its signature."""
    for signature in root.findall(_SIGNATURE):
        tail = signature.tail
        previous = signature.getprevious()
        root.remove(signature)  # lxml drops the tail with the element: keep the text around it
        if tail:
            if previous is not None:
                previous.tail = (previous.tail or "") + tail
            else:
                root.text = (root.text or "") + tail
    return root


def _dispatch(
    accepted: Accepted, chain: _Chain, hub: pipeline.HubContext
) -> tuple[int, list[Difference]]:
    """Dispatch again at the recorded time; (deliveries compared, differences)."""
    now = chain.dispatched_at(accepted)
    result = pipeline.dispatch(accepted, None, hub, now)
    events = [decode(e.value, AuditEvent) for e in result.emits if e.topic == pipeline.AUDIT]
    rejected = next((e for e in events if e.decision == "rejected"), None)
    outcome = "routed" if rejected is None else _rejected(rejected)
    recorded = chain.outcome()
    if outcome != recorded:
        return 0, [
            Difference(
                OUTCOME, recorded=() if recorded is None else (recorded,), replayed=(outcome,)
            )
        ]
    if rejected is not None:
        return 0, []  # rejected then and now, for the same reason
    routed = {e.office: e for e in events if e.decision == "routed" and e.office}
    mapped = {e.office: e for e in events if e.decision == "mapped" and e.office}
    found: list[Difference] = []
    if set(routed) != set(chain.routed):
        found.append(
            Difference(
                OFFICE_SET, recorded=tuple(sorted(chain.routed)), replayed=tuple(sorted(routed))
            )
        )
    compared = 0
    for office in sorted(set(chain.mapped) & set(mapped)):
        digested, differences = _mapping(
            accepted, chain.mapped[office], mapped[office], result, routed[office]
        )
        compared += digested
        found += differences
    return compared, found


def _mapping(
    accepted: Accepted,
    then: AuditEvent,
    now: AuditEvent,
    result: pipeline.StageResult,
    routed: AuditEvent,
) -> tuple[bool, list[Difference]]:
    """One office's delivery: vendor, mapping version and the mapped bytes' digest; whether
    the digests were compared, and the differences."""
    office, did = then.office, then.delivery_id
    found: list[Difference] = []
    if then.vendor != now.vendor:
        found.append(Difference(VENDOR, office, did, (then.vendor or "",), (now.vendor or "",)))
    version = then.mapping_version or ""
    mapping = MAPPINGS.get(version.partition("/")[0])
    if mapping is None or mapping.version != version:
        current = () if mapping is None else (mapping.version,)
        found.append(Difference(MAPPING_VERSION_UNAVAILABLE, office, did, (version,), current))
        return False, found
    digest = now.output_sha256
    if now.mapping_version != version:
        # The office's vendor takes another format now; the bytes are compared with the
        # mapping version that was used, which the code still has.
        found.append(
            Difference(MAPPING_CHANGED, office, did, (version,), (now.mapping_version or "",))
        )
        digest = _render(accepted, office or "", version, result, routed)
    if then.output_sha256 is None:
        found.append(Difference(MAPPED_DIGEST_UNRECORDED, office, did, (), (digest or "",)))
        return False, found
    if then.output_sha256 != digest:
        found.append(Difference(MAPPED_DIGEST, office, did, (then.output_sha256,), (digest or "",)))
    return True, found


def _render(
    accepted: Accepted,
    office: str,
    version: str,
    result: pipeline.StageResult,
    routed: AuditEvent,
) -> str | None:
    """The digest of ``office``'s document mapped with ``version``, as dispatch would map it."""
    routes = [r for r, _ in result.routes if r.office.office_id == office]
    if not routes or result.submission is None:
        return None
    mapping = MAPPINGS[version.partition("/")[0]]
    did = delivery_id(accepted.submission_id, office, version)
    benefits = tuple(routed.benefits or (r.leika for r in routes))
    context = DeliveryContext(did, accepted.submission_id, unb64(accepted.receipt_b64), benefits)
    try:
        body = mapping.render(result.submission, routes[0], context)
    except Rejection as rejection:
        return rejection.reason.value
    return hashlib.sha256(body).hexdigest()


def _deliveries(chain: _Chain) -> list[Difference]:
    """Every delivery mapped then was delivered (or found already there)."""
    return [
        Difference(
            NOT_DELIVERED,
            office,
            event.delivery_id,
            tuple(chain.refused.get(event.delivery_id or "", ())),
        )
        for office, event in sorted(chain.mapped.items())
        if event.delivery_id not in chain.delivered
    ]


# --- the window and the live rate -------------------------------------------------------------


LEAD = dt.timedelta(days=1)  # how long before the window a replayed submission's events are read


class Window:
    """Collect, from events in chain order, the submissions dispatched in ``[start, end)``.

    A submission is replayed when dispatch wrote one of its events (``vault``,
    ``route``, ``map``) within the window. All its events are kept from the first
    one at or after ``start - LEAD`` (received and accepted shortly before the
    window) on, including events after ``end`` (deliveries that came later).
    Memory holds the submissions active in ``[start - LEAD, end)`` only.
    """

    def __init__(self, start: dt.datetime, end: dt.datetime, lead: dt.timedelta = LEAD) -> None:
        if end <= start:
            raise ValueError("the window's end must be after its start")
        self.start, self.end, self.lead = start, end, lead
        self._kept: dict[str, list[AuditEvent]] = {}

    def add(self, event: AuditEvent) -> None:
        sid = event.submission_id
        if sid == pipeline.UNKNOWN:
            return
        kept = self._kept.get(sid)
        if kept is not None:
            kept.append(event)
            return
        try:
            at = parse_time(event.at)
        except ValueError:
            return
        if self.start - self.lead <= at < self.end:
            self._kept[sid] = [event]

    def submissions(self) -> dict[str, list[AuditEvent]]:
        """Submission id -> its events, for every submission dispatched within the window."""
        return {
            sid: events
            for sid, events in sorted(self._kept.items())
            if any(self._dispatched(e) for e in events)
        }

    def _dispatched(self, event: AuditEvent) -> bool:
        if event.stage not in DISPATCH_STAGES:
            return False
        try:
            return self.start <= parse_time(event.at) < self.end
        except ValueError:
            return False


@dataclass(frozen=True, slots=True)
class LiveRate:
    """How fast the live pipeline took the same submissions from received to delivered."""

    submissions: int
    seconds: float | None
    per_second: float | None
    median_latency_seconds: float | None


def live_rate(groups: Mapping[str, Sequence[AuditEvent]]) -> LiveRate:
    """The live pipeline's rate for these submissions, from their recorded times.

    Counted: every submission with a ``received`` (else ``accepted``) event whose
    every mapped delivery has a ``delivered``/``duplicate`` event. ``seconds`` runs
    from the earliest such received time to the latest time a delivery of them
    completed (its first ``delivered``/``duplicate`` event); ``per_second`` is
    their number over it. The median latency is per submission, from received to
    its last delivery.
    """
    starts: list[dt.datetime] = []
    ends: list[dt.datetime] = []
    latencies: list[float] = []
    for events in groups.values():
        span = _span(events)
        if span is not None:
            starts.append(span[0])
            ends.append(span[1])
            latencies.append((span[1] - span[0]).total_seconds())
    if not starts:
        return LiveRate(0, None, None, None)
    seconds = (max(ends) - min(starts)).total_seconds()
    rate = len(starts) / seconds if seconds > 0 else None
    return LiveRate(len(starts), seconds, rate, statistics.median(latencies))


def _span(events: Sequence[AuditEvent]) -> tuple[dt.datetime, dt.datetime] | None:
    """(received, last delivered) of one delivered submission; None when not delivered."""
    received = [e.at for e in events if e.stage == "ingest" and e.decision == "received"]
    received = received or [
        e.at for e in events if e.stage == "intake" and e.decision == "accepted"
    ]
    mapped = {
        e.delivery_id
        for e in events
        if e.stage == "map" and e.decision == "mapped" and e.delivery_id
    }
    first: dict[str, str] = {}
    for e in events:
        if e.stage == "deliver" and e.decision in _DELIVERED and e.delivery_id in mapped:
            did = e.delivery_id or ""
            first[did] = min(first.get(did, e.at), e.at)
    if not received or not mapped or mapped != first.keys():
        return None
    try:
        return parse_time(min(received)), parse_time(max(first.values()))
    except ValueError:
        return None
