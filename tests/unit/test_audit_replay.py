"""Audit replay (hub.core.audit_replay): re-run recorded submissions, find every difference.

Each test runs the example submissions through the live stages as a worker would
(ingest, intake, dispatch with the audit vault, delivery), then replays them from
the recorded events and the sealed input. Differences are provoked for real: a
changed office table, a mapping the code no longer has, a sealed record altered
on the topic, an erased person key. No Kafka; the command line's pure parts too.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from hub import cli, context
from hub.audit_replay_cli import describe, replay_context, summary
from hub.config import PROJECT_ROOT
from hub.core import audit_replay as ar
from hub.core import audit_vault as av
from hub.core import pipeline, portalsig, xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.mapping import MAPPINGS
from hub.core.payloads import PayloadRegistry
from hub.core.portals import Portal, PortalTable
from hub.core.records import (
    Accepted,
    AuditEvent,
    Delivery,
    Received,
    SourceRef,
    audit_event_id,
    b64,
    decode,
    encode,
    unb64,
)
from hub.testing import make_submission
from tests import clitools, sigtools
from tests.unit.test_audit_vault import CountingRandom
from tests.unit.test_pipeline import PERSONAL

T0 = dt.datetime(2026, 11, 2, 9, 0, 0, tzinfo=dt.UTC)
KEK = av.Kek("replay-kek", bytes(range(32)))
RING = av.KekRing(KEK)
EXAMPLES = Path(PROJECT_ROOT) / "examples" / "submissions"
ROUTED = [
    "01-buergergeld-recklinghausen.xml",
    "02-wohngeld-but-marl.xml",
    "03-grundsicherung-gladbeck-ars.xml",
    "04-elterngeld-dorsten.xml",
    "05-asylblg-herten-reader.xml",
    "09-wohngeld-serviceportal-herten.xml",
]
MARL = "02-wohngeld-but-marl.xml"  # two offices: wgs-marl (lammkom, fv-fixed), but-marl (fv-json)
SOURCE = SourceRef("sozialhub.deliveries.x", 0, 1)


@dataclasses.dataclass
class Live:
    """What a worker left behind for one submission: the chain's events and the vault."""

    value: bytes  # the submissions.accepted value dispatch sealed
    events: list[AuditEvent]
    sealed: list[av.SealedInput]
    keys: dict[str, av.PersonKey]  # live person keys on audit.keys, by key id
    deliveries: list[Delivery]

    @property
    def sid(self) -> str:
        return decode(self.value, Accepted).submission_id

    def recorded(
        self, keks: av.KekRing = RING, keys: dict[str, av.PersonKey] | None = None
    ) -> ar.RecordedInput:
        """The input as hub.audit_vault_cli.recorded opens it: the latest record that opens."""
        if not self.sealed:
            return ar.RecordedInput(None, "absent")
        reason = None
        for record in reversed(self.sealed):
            digest = hashlib.sha256(base64.b64decode(record.ciphertext_b64)).hexdigest()
            try:
                value = av.open_sealed(record, self.keys if keys is None else keys, keks)
            except av.VaultError as exc:
                reason = reason or exc.code
                continue
            return ar.RecordedInput(value, None, digest)
        latest = self.sealed[-1]
        digest = hashlib.sha256(base64.b64decode(latest.ciphertext_b64)).hexdigest()
        return ar.RecordedInput(None, reason, digest)

    def replay(self, hub: pipeline.HubContext, recorded: ar.RecordedInput | None = None):
        return ar.replay(self.sid, self.events, recorded or self.recorded(), hub)


def audit_events(result: pipeline.StageResult) -> list[AuditEvent]:
    return [decode(e.value, AuditEvent) for e in result.emits if e.topic == pipeline.AUDIT]


def live(
    original: bytes,
    hub: pipeline.HubContext,
    *,
    vault: bool = True,
    altered: Callable[[bytes], bytes] | None = None,
) -> Live:
    """Ingest, intake, dispatch (sealing the input) and deliver, at the times a worker would."""
    ingested = pipeline.ingest(original, "test-inbox", "file", hub, T0)
    received = decode(ingested.emits[0].value, Received)
    events = audit_events(ingested)
    at_intake = T0 + dt.timedelta(seconds=1)
    accepted = pipeline.intake(received, SOURCE, hub, at_intake)
    assert accepted.outcome == "accepted", accepted.reason
    events += audit_events(accepted)
    value = accepted.emits[0].value
    if altered is not None:
        value = altered(value)  # the record on submissions.accepted changed before dispatch
    at_dispatch = T0 + dt.timedelta(seconds=2)
    keys = av.Vault(RING, {}, CountingRandom()) if vault else None
    dispatched = pipeline.dispatch(decode(value, Accepted), SOURCE, hub, at_dispatch, keys, value)
    events += audit_events(dispatched)
    sealed = [av.decode_sealed(e.value) for e in dispatched.emits if e.topic == av.VAULT]
    person_keys = [av.decode_person_key(e.value) for e in dispatched.emits if e.topic == av.KEYS]
    deliveries = [
        decode(e.value, Delivery) for e in dispatched.emits if e.topic.startswith("deliveries.")
    ]
    at_delivery = T0 + dt.timedelta(seconds=5)
    events += [
        decode(pipeline.delivered(d, at_delivery, duplicate=False).value, AuditEvent)
        for d in deliveries
    ]
    return Live(value, events, sealed, {k.key_id: k for k in person_keys}, deliveries)


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def kinds(result: ar.Replayed) -> list[str]:
    return [d.kind for d in result.differences]


def with_offices(hub: pipeline.HubContext, change: Callable[[list], list], **vendors) -> object:
    table = hub.offices
    offices = change(list(table.offices))
    return dataclasses.replace(
        hub,
        offices=dataclasses.replace(
            table, offices=tuple(offices), vendors={**table.vendors, **vendors}
        ),
    )


@pytest.fixture(scope="module")
def marl(hub_context) -> Live:
    return live(example(MARL), hub_context)


# --- the digest in the mapped event --------------------------------------------------------------


class TestMappedDigest:
    def test_the_mapped_event_names_the_digest_of_the_delivered_body(self, marl):
        """output_sha256 is SHA-256 of the delivery's body; the event id is still the delivery's."""
        mapped = {e.delivery_id: e for e in marl.events if e.decision == "mapped"}
        assert len(marl.deliveries) == len(mapped) == 2
        for delivery in marl.deliveries:
            event = mapped[delivery.delivery_id]
            body = unb64(delivery.body_b64)
            assert hashlib.sha256(body).hexdigest() == event.output_sha256
            expected_id = audit_event_id(marl.sid, "map", "mapped", delivery.delivery_id)
            assert expected_id == event.event_id

    @pytest.mark.parametrize("fmt", sorted(MAPPINGS))
    def test_mapped_bytes_depend_on_the_record_not_on_the_time(self, hub_context, fmt):
        """Every format maps the same accepted record to the same bytes at any time: the only
        time- and randomness-dependent part, the signed hub receipt, is in the record."""
        table = hub_context.offices
        vendors = {k: dataclasses.replace(v, format=fmt) for k, v in table.vendors.items()}
        hub = dataclasses.replace(hub_context, offices=dataclasses.replace(table, vendors=vendors))
        for name in ROUTED:
            accepted = decode(live(example(name), hub, vault=False).value, Accepted)
            digests = []
            for moment in (T0, T0 + dt.timedelta(days=400, seconds=7)):
                result = pipeline.dispatch(accepted, None, hub, moment)
                digests.append(
                    sorted(
                        (e.office, e.output_sha256)
                        for e in audit_events(result)
                        if e.decision == "mapped"
                    )
                )
            assert digests[0] == digests[1]
            assert all(digest for _, digest in digests[0])


# --- same ------------------------------------------------------------------------------------------


class TestSame:
    @pytest.mark.parametrize("name", [*ROUTED, "08-unroutable-bochum.xml"])
    def test_an_unchanged_run_is_the_same(self, hub_context, name):
        """Today's code and configuration, the recorded input: same, every delivery compared."""
        run = live(example(name), hub_context)
        result = run.replay(hub_context)
        assert (ar.SAME, ()) == (result.result, result.differences)
        assert len(run.deliveries) == result.deliveries

    def test_the_unroutable_example_is_compared_by_its_rejection(self, hub_context):
        """Rejected by routing then and now, for the same reason: same, nothing mapped."""
        run = live(example("08-unroutable-bochum.xml"), hub_context)
        assert [] == run.deliveries
        assert any(e.stage == "route" and e.decision == "rejected" for e in run.events)
        assert run.sealed  # recorded before routing decided
        assert ar.SAME == run.replay(hub_context).result

    def test_a_dead_letter_retried_and_routed_later_counts_as_routed(self, hub_context):
        """Routing rejected it (Marl missing from the table); after the fix the dead letter was
        retried and delivered. The last decision counts: same."""
        unroutable = with_offices(
            hub_context, lambda os: [o for o in os if "05562024" not in o.areas]
        )
        run = live(example(MARL), unroutable)
        assert [] == run.deliveries
        later = T0 + dt.timedelta(minutes=10)
        retried = pipeline.dispatch(decode(run.value, Accepted), SOURCE, hub_context, later)
        run.events += audit_events(retried)
        deliveries = [
            decode(e.value, Delivery) for e in retried.emits if e.topic.startswith("deliveries.")
        ]
        run.events += [
            decode(pipeline.delivered(d, later, duplicate=False).value, AuditEvent)
            for d in deliveries
        ]
        assert ["route"] == [e.stage for e in run.events if e.decision == "rejected"]
        result = run.replay(hub_context)
        assert (ar.SAME, 2) == (result.result, result.deliveries)
        # Replayed with the table of the first attempt, the rejection is what it finds.
        assert [ar.OUTCOME] == kinds(run.replay(unroutable))

    def test_a_submission_sealed_twice_replays_from_the_record_that_opens(self, hub_context):
        """Two keys made at once: two records, one event id with two digests. The latest opens."""
        run = live(example(MARL), hub_context)
        other, data_key = av.new_person_key(run.sealed[0].person, KEK, CountingRandom(b"2"), T0)
        again = av.seal(run.value, run.sid, data_key, T0)
        (sealed,) = [e for e in run.events if e.stage == av.STAGE]
        twice = dataclasses.replace(sealed, input_sha256=again.ciphertext_sha256)
        run.events.append(twice)
        run.sealed.append(again)
        run.keys[other.key_id] = other
        assert sealed.event_id == twice.event_id
        assert ar.SAME == run.replay(hub_context).result

    def test_a_signed_payload_is_validated_without_its_signature(self, hub_context):
        """Intake validated the signed data (the root without its signature); so does replay."""
        authority = sigtools.ca("Replay Test CA")
        key = sigtools.rsa.generate_private_key(65537, 2048)
        signer = sigtools.Party(key, sigtools.issue(key.public_key(), "Portal", authority))
        policy = portalsig.SignaturePolicy(mode="required", ca_bundle=(authority.cert,))
        portal = Portal(
            "filedrop",
            "Signed file drop",
            frozenset({"file"}),
            frozenset({"xsozial-basis-2.4.0"}),
            signature=policy,
        )
        hub = dataclasses.replace(hub_context, portals=PortalTable([portal]))
        data = sigtools.sign(make_submission(), signer.key, [signer.cert])
        run = live(data, hub)
        assert decode(run.value, Accepted).signer is not None
        result = run.replay(hub)
        assert (ar.SAME, 1) == (result.result, result.deliveries)
        # What replay validates is the signed data: the document without its signature.
        root = ar.without_signature(xmlsafe.parse(data))
        assert root.find(f"{{{sigtools.DS}}}Signature") is None
        expected = sigtools.canonical_without_signature(xmlsafe.parse(data))
        assert expected == etree.tostring(root, method="c14n", exclusive=True)


# --- differences in dispatch -------------------------------------------------------------------------


class TestDispatchDifferences:
    def test_a_changed_office_table_gives_office_set(self, hub_context, marl):
        """BuT moved to the Wohngeldstelle: one office now, and its document differs."""

        def merged(offices: list) -> list:
            but = next(o for o in offices if o.office_id == "but-marl")
            return [
                dataclasses.replace(o, leika=o.leika | but.leika)
                if o.office_id == "wgs-marl"
                else o
                for o in offices
                if o.office_id != "but-marl"
            ]

        result = marl.replay(with_offices(hub_context, merged))
        found = {d.kind: d for d in result.differences}
        office_set = found[ar.OFFICE_SET]
        assert (("but-marl", "wgs-marl"), ("wgs-marl",)) == (
            office_set.recorded,
            office_set.replayed,
        )
        # The Wohngeldstelle's delivery now carries both benefits: other bytes.
        assert "wgs-marl" == found[ar.MAPPED_DIGEST].office
        assert ar.DIFFERENT == result.result

    def test_an_office_table_that_cannot_route_gives_outcome(self, hub_context, marl):
        """Marl gone from the table: dispatch rejects what it routed then."""
        result = marl.replay(
            with_offices(hub_context, lambda os: [o for o in os if "05562024" not in o.areas])
        )
        (difference,) = result.differences
        assert ar.OUTCOME == difference.kind
        assert ("routed",) == difference.recorded
        assert difference.replayed[0].startswith("rejected/route/ROUTE_")

    def test_another_vendor_gives_vendor(self, hub_context, marl):
        """The Wohngeldstelle changed to another vendor of the same format: same bytes, new vendor."""
        lammkom = hub_context.offices.vendors["lammkom"]
        successor = dataclasses.replace(lammkom, vendor_id="lammkom-neu", name="LÄMMkom neu")

        def moved(offices: list) -> list:
            return [
                dataclasses.replace(o, vendor="lammkom-neu") if o.office_id == "wgs-marl" else o
                for o in offices
            ]

        result = marl.replay(with_offices(hub_context, moved, **{"lammkom-neu": successor}))
        (difference,) = result.differences
        assert (ar.VENDOR, "wgs-marl", ("lammkom",), ("lammkom-neu",)) == (
            difference.kind,
            difference.office,
            difference.recorded,
            difference.replayed,
        )
        assert 2 == result.deliveries

    def test_another_format_is_compared_with_the_recorded_mapping(self, hub_context, marl):
        """The vendor takes fv-xml now: reported, and the recorded fv-fixed mapping still gives
        the recorded bytes (no mapped-digest difference)."""
        table = hub_context.offices
        xml = dataclasses.replace(table.vendors["lammkom"], format="fv-xml")
        result = marl.replay(with_offices(hub_context, list, lammkom=xml))
        (difference,) = result.differences
        assert (ar.MAPPING_CHANGED, ("fv-fixed/1.0.0",), (MAPPINGS["fv-xml"].version,)) == (
            difference.kind,
            difference.recorded,
            difference.replayed,
        )
        assert 2 == result.deliveries

    def test_a_mapping_version_the_code_does_not_have(self, hub_context, monkeypatch):
        """Delivered with fv-fixed/0.9.0, which the code no longer has: cannot be compared."""
        old = dataclasses.replace(MAPPINGS["fv-fixed"], version="fv-fixed/0.9.0")
        with monkeypatch.context() as patched:
            patched.setitem(MAPPINGS, "fv-fixed", old)
            run = live(example(MARL), hub_context)
        result = run.replay(hub_context)
        (difference,) = result.differences
        assert (
            ar.MAPPING_VERSION_UNAVAILABLE,
            "wgs-marl",
            ("fv-fixed/0.9.0",),
            ("fv-fixed/1.0.0",),
        ) == (difference.kind, difference.office, difference.recorded, difference.replayed)
        assert 1 == result.deliveries  # only but-marl's fv-json document was compared

    def test_a_mapping_changed_without_a_new_version_gives_mapped_digest(
        self, hub_context, monkeypatch
    ):
        """The live run's fv-json mapping wrote other bytes under the same version."""
        current = MAPPINGS["fv-json"]

        def render(*args) -> bytes:
            return current.render(*args) + b"\n"

        with monkeypatch.context() as patched:
            patched.setitem(MAPPINGS, "fv-json", dataclasses.replace(current, render=render))
            run = live(example(MARL), hub_context)
        (difference,) = run.replay(hub_context).differences
        (delivery,) = [d for d in run.deliveries if d.office == "but-marl"]
        assert (ar.MAPPED_DIGEST, "but-marl", delivery.delivery_id) == (
            difference.kind,
            difference.office,
            difference.delivery_id,
        )
        assert (hashlib.sha256(unb64(delivery.body_b64)).hexdigest(),) == difference.recorded
        assert difference.recorded != difference.replayed

    def test_an_event_written_before_the_digest_existed(self, hub_context):
        """A mapped event without output_sha256 cannot show the bytes were the same."""
        run = live(example(MARL), hub_context)
        run.events = [
            dataclasses.replace(e, output_sha256=None) if e.decision == "mapped" else e
            for e in run.events
        ]
        result = run.replay(hub_context)
        assert [ar.MAPPED_DIGEST_UNRECORDED] * 2 == kinds(result)
        assert 0 == result.deliveries

    def test_a_delivery_never_delivered(self, hub_context):
        """One of two deliveries has no delivered event, but a refusal: not-delivered, with why."""
        run = live(example(MARL), hub_context)
        missing = run.deliveries[0]
        run.events = [
            e
            for e in run.events
            if not (e.decision == "delivered" and e.delivery_id == missing.delivery_id)
        ]
        refused = pipeline.reject_delivery(
            missing, Rejection(Reason.DELIVERY, "outbox"), SOURCE, T0, channel="file"
        )
        run.events += audit_events(refused)
        (difference,) = run.replay(hub_context).differences
        assert (ar.NOT_DELIVERED, missing.office, missing.delivery_id, ("DELIVERY",)) == (
            difference.kind,
            difference.office,
            difference.delivery_id,
            difference.recorded,
        )


# --- differences of the input and the schema ----------------------------------------------------------


class TestInputDifferences:
    def test_an_erased_key(self, hub_context, marl):
        """audit erase tombstoned the key: input-erased, nothing else replayed."""
        result = marl.replay(hub_context, marl.recorded(keys={}))
        assert ([ar.INPUT_ERASED], 0) == (kinds(result), result.deliveries)

    def test_no_recorded_input(self, hub_context):
        """The worker had no KEK: nothing on audit.vault, no vault event: input-missing."""
        run = live(example(MARL), hub_context, vault=False)
        assert [] == run.sealed
        difference = run.replay(hub_context).differences
        assert [(ar.INPUT_MISSING, ())] == [(d.kind, d.recorded) for d in difference]

    def test_an_input_too_large_to_record(self, hub_context):
        """Dispatch skipped the vault (SIZE): input-missing names the reason."""
        run = live(example(MARL), hub_context)
        vault_record = len(av.encode_record(run.sealed[0]))
        largest = max(len(encode(d)) for d in run.deliveries)
        assert largest < vault_record
        small = dataclasses.replace(hub_context, max_record_bytes=vault_record - 1)
        skipped = live(example(MARL), small)
        assert [] == skipped.sealed
        assert any(e.decision == av.SKIPPED for e in skipped.events)
        (difference,) = skipped.replay(hub_context).differences
        assert (ar.INPUT_MISSING, ("SIZE",)) == (difference.kind, difference.recorded)

    def test_a_tampered_vault_record_gives_input_digest(self, hub_context):
        """A byte of the ciphertext flipped on audit.vault: not the digest the chain recorded."""
        run = live(example(MARL), hub_context)
        raw = bytearray(base64.b64decode(run.sealed[0].ciphertext_b64))
        raw[10] ^= 0x01
        run.sealed[0] = dataclasses.replace(run.sealed[0], ciphertext_b64=b64(bytes(raw)))
        recorded = run.recorded()
        assert (None, "tampered") == (recorded.value, recorded.reason)
        (difference,) = run.replay(hub_context, recorded).differences
        (chained,) = [e.input_sha256 for e in run.events if e.stage == av.STAGE]
        assert (ar.INPUT_DIGEST, (chained,), (hashlib.sha256(raw).hexdigest(),)) == (
            difference.kind,
            difference.recorded,
            difference.replayed,
        )

    def test_a_record_the_chain_never_named_gives_input_digest(self, hub_context):
        """The same value sealed under a key of an intruder's making opens, but is not recorded."""
        run = live(example(MARL), hub_context)
        record, data_key = av.new_person_key(run.sealed[0].person, KEK, CountingRandom(b"x"), T0)
        run.sealed = [av.seal(run.value, run.sid, data_key, T0)]
        run.keys[record.key_id] = record
        recorded = run.recorded()
        assert recorded.value == run.value
        result = run.replay(hub_context, recorded)
        assert ([ar.INPUT_DIGEST], 0) == (kinds(result), result.deliveries)

    def test_an_accepted_record_altered_before_dispatch_gives_input_digest(self, hub_context):
        """submissions.accepted altered between intake and dispatch: the sealed record is what
        dispatch saw, but its payload is not the one intake accepted."""

        def altered(value: bytes) -> bytes:
            accepted = decode(value, Accepted)
            payload = unb64(accepted.payload_b64).replace(b"Wohngeld", b"Wohngelt")
            digest = hashlib.sha256(payload).hexdigest()
            return encode(
                dataclasses.replace(accepted, payload_b64=b64(payload), payload_sha256=digest)
            )

        run = live(example(MARL), hub_context, altered=altered)
        (difference,) = run.replay(hub_context).differences
        (intake,) = [e.payload_sha256 for e in run.events if e.decision == "accepted"]
        assert (ar.INPUT_DIGEST, (intake,)) == (difference.kind, difference.recorded)

    def test_a_key_wrapped_with_another_kek(self, hub_context, marl):
        """The replay runs with a KEK that is not the one that wrapped the key."""
        other = av.KekRing(av.Kek("other-kek", bytes(32)))
        (difference,) = marl.replay(hub_context, marl.recorded(keks=other)).differences
        assert (ar.INPUT_UNREADABLE, ("wrong-key",)) == (difference.kind, difference.replayed)


class TestSchemaDifferences:
    def test_a_payload_version_the_hub_no_longer_reads(self, hub_context, marl):
        """The XSozial version was retired: reported; dispatch is still compared."""
        payloads = PayloadRegistry(
            dataclasses.replace(t, versions=frozenset({"9.9"})) for t in hub_context.payloads
        )
        result = marl.replay(dataclasses.replace(hub_context, payloads=payloads))
        (difference,) = result.differences
        accepted = decode(marl.value, Accepted)
        version = accepted.submission["payload_version"]
        assert (ar.SCHEMA_VERSION_UNAVAILABLE, (f"{accepted.payload_type}/{version}",)) == (
            difference.kind,
            difference.recorded,
        )
        assert 2 == result.deliveries

    def test_a_payload_todays_schema_refuses(self, hub_context, marl):
        """Today's schema for the version does not accept the recorded payload: schema-invalid."""
        stricter = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"
            targetNamespace="%s" elementFormDefault="qualified">
          <xs:element name="nothingElse"/>
        </xs:schema>"""
        payload_type = next(
            t for t in hub_context.payloads if t.name == decode(marl.value, Accepted).payload_type
        )
        xsd = stricter % payload_type.namespace.encode()
        changed = dataclasses.replace(
            payload_type,
            schema=xmlschema.XMLSchema(xsd.decode()),
            fast_schema=etree.XMLSchema(xmlsafe.parse(xsd)),
        )
        payloads = PayloadRegistry(
            changed if t.name == payload_type.name else t for t in hub_context.payloads
        )
        result = marl.replay(dataclasses.replace(hub_context, payloads=payloads))
        (difference,) = result.differences
        assert (ar.SCHEMA_INVALID, ("XSD",)) == (difference.kind, difference.replayed)


# --- what a result may hold ------------------------------------------------------------------------


SAFE_VALUES = (
    r"(sub|dlv|pk)-[0-9a-f]{32}",  # ids
    r"[0-9a-f]{64}",  # digests
    r"[a-z][a-z0-9.-]*/[0-9]+(\.[0-9]+)*",  # mapping versions, payload type/version
    r"[A-Z][A-Z0-9_]*",  # reason codes
    r"[a-z][a-z0-9-]*",  # office and vendor ids, vault reasons, "routed"
    r"rejected/[a-z]+/[A-Z][A-Z0-9_]*",  # a dispatch outcome
)
SAFE_VALUE = re.compile("|".join(f"(?:{p})" for p in SAFE_VALUES))


class TestNoPersonalData:
    def test_results_hold_ids_versions_digests_and_codes_only(self, hub_context, marl):
        """Every difference kind provoked above, as JSON: no personal string, only safe values."""
        results = [
            marl.replay(hub_context),
            marl.replay(hub_context, marl.recorded(keys={})),
            marl.replay(
                with_offices(hub_context, lambda os: [o for o in os if o.office_id != "but-marl"])
            ),
            marl.replay(
                dataclasses.replace(
                    hub_context,
                    payloads=PayloadRegistry(
                        dataclasses.replace(t, versions=frozenset()) for t in hub_context.payloads
                    ),
                )
            ),
        ]
        text = json.dumps([r.as_dict() for r in results], ensure_ascii=False)
        assert [] == [s for s in [*PERSONAL, "Erika", "Mustermann", "Marl"] if s in text]
        values = [v for r in results for d in r.differences for v in (*d.recorded, *d.replayed)]
        assert values
        assert [] == [v for v in values if SAFE_VALUE.fullmatch(v) is None]


# --- the window and the rates ------------------------------------------------------------------------


def event(sid: str, stage: str, decision: str, at: dt.datetime, **fields) -> AuditEvent:
    return decode(pipeline.audit(sid, stage, decision, at, **fields).value, AuditEvent)


def sub(n: int) -> str:
    return f"sub-{n:032x}"


class TestWindow:
    START = T0
    END = T0 + dt.timedelta(hours=1)

    def test_submissions_dispatched_in_the_window_with_all_their_events(self):
        """Selected by dispatch time; received before the window and delivered after it count."""
        window = ar.Window(self.START, self.END)
        early = self.START - dt.timedelta(hours=2)
        late = self.END + dt.timedelta(hours=3)
        did = "dlv-" + "1" * 32
        stream = [
            event(sub(1), "ingest", "received", early),  # within the lead
            event(sub(2), "map", "mapped", self.START - dt.timedelta(seconds=1), delivery_id=did),
            event(sub(1), "map", "mapped", self.START, delivery_id=did, office="wgs-marl"),
            event(sub(3), "ingest", "received", self.END - dt.timedelta(seconds=1)),
            event(sub(3), "route", "routed", self.END, office="wgs-marl"),  # after the window
            event(sub(4), "deliver", "delivered", late, delivery_id=did),  # never dispatched in it
            event(pipeline.UNKNOWN, "audit", "erased", self.START),
            event(sub(1), "deliver", "delivered", late, delivery_id=did, office="wgs-marl"),
        ]
        for e in stream:
            window.add(e)
        selected = window.submissions()
        assert [sub(1)] == list(selected)
        assert ["received", "mapped", "delivered"] == [e.decision for e in selected[sub(1)]]

    def test_events_long_before_the_window_are_not_kept(self):
        """Before ``start - LEAD`` a submission is not followed (memory holds the window only)."""
        window = ar.Window(self.START, self.END)
        window.add(event(sub(1), "intake", "accepted", self.START - ar.LEAD * 2))
        window.add(event(sub(1), "map", "mapped", self.START))
        assert ["mapped"] == [e.decision for e in window.submissions()[sub(1)]]

    def test_an_empty_window_is_refused(self):
        with pytest.raises(ValueError, match="after its start"):
            ar.Window(self.END, self.START)


class TestLiveRate:
    def test_received_to_delivered_of_the_delivered_submissions(self):
        """Two delivered submissions in 9 s (2/9 per second); a pending one is not counted."""
        did = ["dlv-" + c * 32 for c in "abc"]

        def at(seconds: float) -> dt.datetime:
            return T0 + dt.timedelta(seconds=seconds)

        groups = {
            sub(1): [
                event(sub(1), "ingest", "received", at(0)),
                event(sub(1), "map", "mapped", at(1), delivery_id=did[0]),
                event(sub(1), "deliver", "delivered", at(4), delivery_id=did[0]),
                event(sub(1), "deliver", "duplicate", at(30), delivery_id=did[0]),  # later copy
            ],
            sub(2): [
                event(sub(2), "ingest", "received", at(1)),
                event(sub(2), "map", "mapped", at(2), delivery_id=did[1]),
                event(sub(2), "map", "mapped", at(2), delivery_id=did[2]),
                event(sub(2), "deliver", "delivered", at(5), delivery_id=did[1]),
                event(sub(2), "deliver", "delivered", at(9), delivery_id=did[2]),
            ],
            sub(3): [
                event(sub(3), "ingest", "received", at(0)),
                event(sub(3), "map", "mapped", at(1), delivery_id="dlv-" + "d" * 32),
            ],
        }
        rate = ar.live_rate(groups)
        assert (2, 9.0, 6.0) == (rate.submissions, rate.seconds, rate.median_latency_seconds)
        assert rate.per_second == pytest.approx(2 / 9)

    def test_nothing_delivered_has_no_rate(self):
        assert ar.LiveRate(0, None, None, None) == ar.live_rate({})


# --- the command's pure parts ----------------------------------------------------------------------


class TestReplayContext:
    def test_dispatch_maps_as_with_the_workers_context(self, settings, hub_context):
        """The replay's context (no signing key, no pseudonym key) maps to the worker's bytes."""
        worker, replaying = context.build(settings), replay_context(settings)
        for name in ROUTED:
            accepted = decode(live(example(name), hub_context, vault=False).value, Accepted)
            first = pipeline.dispatch(accepted, None, worker, T0)
            second = pipeline.dispatch(accepted, None, replaying, T0)
            mapped = [
                sorted((e.office, e.output_sha256) for e in audit_events(r) if e.stage == "map")
                for r in (first, second)
            ]
            assert mapped[0] == mapped[1]
            assert mapped[0]


class TestSummary:
    def test_counts_differences_and_rates(self):
        same = ar.Replayed(sub(1), (), 2)
        erased = ar.Replayed(sub(2), (ar.Difference(ar.INPUT_ERASED, replayed=("erased",)),))
        digest = ar.Difference(
            ar.MAPPED_DIGEST, "wgs-marl", "dlv-" + "e" * 32, ("a" * 64,), ("b" * 64,)
        )
        changed = ar.Replayed(sub(3), (digest, dataclasses.replace(digest, office="but-marl")), 2)
        live_rate = ar.LiveRate(2, 8.0, 0.25, 3.0)
        report = summary(
            [same, erased, changed],
            live_rate,
            T0,
            T0 + dt.timedelta(hours=1),
            entries=40,
            seconds={"read_chain": 1.0, "open_inputs": 0.5, "replay": 0.5},
        )
        assert (3, 1, 2) == (report["submissions"], report["same"], report["different"])
        assert {"same": 1, "input-erased": 1, "mapped-digest": 1} == report["counts"]
        assert [sub(2), sub(3), sub(3)] == [d["submission_id"] for d in report["differences"]]
        assert (6.0, 1.5, 0.25) == (
            report["replayed_per_second"],
            report["overall_per_second"],
            report["live_per_second"],
        )
        assert {"replayed_per_second", "live_per_second"} == set(report["rates_explained"])
        text = describe(report)
        assert "3 submission(s), 1 same, 2 different" in text
        assert f"mapped-digest: {sub(3)} office but-marl delivery_id dlv-" in text
        assert "replayed 6.0/s, live 0.2/s" in text


class TestCommandLine:
    @pytest.fixture(autouse=True)
    def isolated(self, monkeypatch):
        """A clean environment; main() configures logging for this stderr: undo that after."""
        with clitools.isolated(monkeypatch):
            yield

    def run(self, capsys, *argv: str) -> tuple[int, str, str]:
        status = cli.main(["audit", "replay", *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    WINDOW = ("--from", "2026-11-02", "--to", "2026-11-03T00:00Z")

    def test_the_window_is_required(self, capsys):
        with pytest.raises(SystemExit) as caught:
            self.run(capsys, "--from", "2026-11-02")
        assert 2 == caught.value.code

    def test_without_a_cluster_it_refuses(self, capsys):
        status, out, err = self.run(capsys, *self.WINDOW, "--development-kek")
        assert (2, "") == (status, out)
        assert "KAFKA_BOOTSTRAP_SERVERS" in err

    def test_an_empty_window_is_a_usage_error(self, capsys, monkeypatch):
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        status, _, err = self.run(
            capsys, "--from", "2026-11-03", "--to", "2026-11-02", "--development-kek"
        )
        assert 2 == status
        assert "--to must be after --from" in err

    def test_without_a_kek_it_refuses_before_reading(self, capsys, monkeypatch):
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        status, _, err = self.run(capsys, *self.WINDOW)
        assert 2 == status
        assert "SOZIALHUB_AUDIT_KEK_FILE" in err
