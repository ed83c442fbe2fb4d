"""Pipeline stages as pure functions: intake, dispatch, delivered and the offline check()."""

from __future__ import annotations

import base64
import dataclasses
import json
import re

import pytest

from hub.core.mapping import fvfixed, fvjson
from hub.core.model import from_json
from hub.core.pipeline import (
    ACCEPTED,
    AUDIT,
    DEAD_LETTER,
    RECEIPTS,
    SEEN,
    check,
    delivered,
    delivery_queue,
    dispatch,
    intake,
    transport_message_id_of_name,
)
from hub.core.receipt import verify
from hub.core.records import (
    Accepted,
    AuditEvent,
    DeadLetter,
    Delivery,
    Received,
    Seen,
    SourceRef,
    decode,
    delivery_id,
    submission_id,
    unb64,
)
from hub.core.xsozial import NAMESPACE
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec, make_submission

# Personal data that must never reach the audit log or a dead letter.
GIVEN, FAMILY, BORN, STREET = "Zyprian", "Quastenhoff", "1971-03-09", "Vogelsangweg"
CHILD = "Winnifred"
PERSONAL = [GIVEN, FAMILY, BORN, STREET, CHILD]

SGB2 = (("99107002017000", "Bürgergeld, Bewilligung"),)
SOURCE = SourceRef("sozialhub.submissions.received", 2, 1234)


def person(**changes) -> PersonSpec:
    values = {
        "given_name": GIVEN,
        "family_name": FAMILY,
        "birth_date": BORN,
        "street": STREET,
        "house_number": "4",
        "postcode": "45657",
        "town": "Recklinghausen",
    }
    return PersonSpec(**{**values, **changes})


def submission_bytes(*persons: PersonSpec, documents=()) -> bytes:
    spec = SubmissionSpec(
        persons=persons or (person(),),
        documents=documents,
        message_uuid="6f1c2a8e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        case_uuid="0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    )
    return make_submission(spec)


HOUSEHOLD = (
    person(benefits=(("99107023017000", "Wohngeld"),)),
    person(given_name=CHILD, applicant=False, role="kind", benefits=(("99107032148000", "BuT"),)),
)
# Invalid: a diagnosis where the birth date belongs (fails the payload schema).
DIAGNOSIS = "F32.1 Depressive Episode"


def received_of(original: bytes, now) -> Received:
    return Received.of(original, "test-inbox", "file", now)


def accepted_of(original: bytes, hub, now) -> Accepted:
    result = intake(received_of(original, now), SOURCE, hub, now)
    assert result.outcome == "accepted", result.reason
    return decode(result.emits[0].value, Accepted)


def audits(result) -> list[AuditEvent]:
    return [decode(e.value, AuditEvent) for e in result.emits if e.topic == AUDIT]


def topics(result) -> list[str]:
    return [e.topic for e in result.emits]


def deliveries_of(result) -> list[Delivery]:
    return [decode(e.value, Delivery) for e in result.emits if e.topic.startswith("deliveries.")]


def letter_of(result) -> DeadLetter:
    (letter,) = [decode(e.value, DeadLetter) for e in result.emits if e.topic == DEAD_LETTER]
    return letter


class TestIntake:
    def test_valid_submission_is_accepted_and_signed(self, hub_context, now):
        """A valid submission yields an accepted record plus accepted and signed audit events."""
        original = submission_bytes()
        result = intake(received_of(original, now), SOURCE, hub_context, now)
        expected = ("accepted", [ACCEPTED, SEEN, AUDIT, AUDIT, RECEIPTS], None)
        assert expected == (result.outcome, topics(result), result.reason)
        expected_decisions = [("intake", "accepted"), ("sign", "signed")]
        assert expected_decisions == [(a.stage, a.decision) for a in audits(result)]

    def test_every_record_is_keyed_by_the_submission_id(self, hub_context, now):
        """Intake records use the content-addressed submission id as key; replay keys are opaque."""
        original = submission_bytes()
        result = intake(received_of(original, now), SOURCE, hub_context, now)
        expected = {submission_id(original)}
        assert expected == {e.key for e in result.emits if e.topic != SEEN}
        (seen_key,) = [e.key for e in result.emits if e.topic == SEEN]
        assert re.fullmatch(r"pay-[0-9a-f]{32}", seen_key)

    def test_accepted_record_carries_original_submission_and_receipt(self, hub_context, now):
        """The accepted record keeps the original bytes, the submission and a valid receipt."""
        original = submission_bytes()
        result = intake(received_of(original, now), SOURCE, hub_context, now)
        accepted = decode(result.emits[0].value, Accepted)
        expected = (original, "xsozial-basis-2.4.0", result.submission)
        actual = (
            unb64(accepted.payload_b64),
            accepted.payload_type,
            from_json(accepted.submission),
        )
        assert expected == actual
        attested = verify(unb64(accepted.receipt_b64), hub_context.signer.certificate)
        expected_attested = (accepted.submission_id, accepted.payload_sha256, "sozialhub-test")
        actual_attested = (attested["submissionId"], attested["payloadDigest"], attested["hub"])
        assert expected_attested == actual_attested

    def test_audit_events_carry_the_payload_digest(self, hub_context, now):
        """Intake audit events identify the payload by its SHA-256, never by content."""
        original = submission_bytes()
        received = received_of(original, now)
        result = intake(received, SOURCE, hub_context, now)
        expected = [received.payload_sha256] * 2
        assert expected == [a.payload_sha256 for a in audits(result)]

    @pytest.mark.parametrize(
        ("original", "reason"),
        [
            (b"<x>Zyprian Quastenhoff, 1971-03-09", "WELLFORMED"),
            (b"<x>Zyprian Quastenhoff</x>", "UNKNOWN_PAYLOAD"),
            (submission_bytes().replace(BORN.encode(), DIAGNOSIS.encode()), "XSD"),
            (submission_bytes().replace(b'version="2.4.0"', b'version="9.9.9"'), "SCHEMA_VERSION"),
        ],
        ids=["not-xml", "unknown-root", "xsd", "version"],
    )
    def test_invalid_submission_is_dead_lettered_with_reason(
        self, hub_context, now, original, reason
    ):
        """An invalid submission yields a dead letter and a rejected audit event with the reason."""
        received = received_of(original, now)
        result = intake(received, SOURCE, hub_context, now)
        # A bare file has no way back to its portal: the receipt is recorded (channel "none").
        expected = ("rejected", [DEAD_LETTER, AUDIT, RECEIPTS], reason)
        assert expected == (result.outcome, topics(result), result.reason)
        letter = letter_of(result)
        expected_letter = (
            received.submission_id,
            "intake",
            reason,
            received.payload_sha256,
            SOURCE,
        )
        actual = (
            letter.submission_id,
            letter.stage,
            letter.reason,
            letter.payload_sha256,
            letter.source,
        )
        assert expected_letter == actual
        (audit,) = audits(result)
        expected_audit = ("intake", "rejected", reason, letter.path)
        assert expected_audit == (audit.stage, audit.decision, audit.reason, audit.path)

    def test_xsd_rejection_names_the_element_path(self, hub_context, now):
        """A schema violation's dead letter points at the offending element, not its value."""
        original = submission_bytes().replace(BORN.encode(), DIAGNOSIS.encode())
        letter = letter_of(intake(received_of(original, now), SOURCE, hub_context, now))
        assert letter.path.endswith("/person/allgemein/geburtsdatum")

    def test_bad_base64_in_received_record_is_an_envelope_rejection(self, hub_context, now):
        """A received record whose payload is not base64 is dead-lettered as ENVELOPE."""
        received = dataclasses.replace(received_of(submission_bytes(), now), payload_b64="%%%")
        result = intake(received, SOURCE, hub_context, now)
        expected = ("rejected", "ENVELOPE")
        assert expected == (result.outcome, result.reason)

    def test_dead_letter_holds_no_payload_bytes(self, hub_context, now):
        """The dead letter references the payload (source, digest) but never copies it."""
        original = submission_bytes().replace(BORN.encode(), DIAGNOSIS.encode())
        received = received_of(original, now)
        result = intake(received, SOURCE, hub_context, now)
        (value,) = [e.value for e in result.emits if e.topic == DEAD_LETTER]
        expected_keys = {"type", "v"} | {f.name for f in dataclasses.fields(DeadLetter)}
        assert expected_keys == set(json.loads(value))
        encoded = received.payload_b64
        fragments = {encoded[i : i + 16] for i in range(0, len(encoded) - 16, 8)}
        expected_fragments: set[str] = set()
        assert expected_fragments == {f for f in fragments if f.encode() in value}
        assert original not in value


class TestNoPersonalData:
    """Audit events and dead letters hold ids, digests, codes and paths: no personal data."""

    def scenarios(self, hub, now):
        """(name, stage results) for accepted, rejected at intake, at routing and at mapping."""
        valid = submission_bytes(*HOUSEHOLD, documents=(DocumentSpec(name=f"Ausweis {FAMILY}"),))
        accepted = accepted_of(valid, hub, now)
        yield (
            "accepted",
            [
                intake(received_of(valid, now), SOURCE, hub, now),
                dispatch(accepted, SOURCE, hub, now),
            ],
        )
        for label, broken in (
            ("xsd", valid.replace(BORN.encode(), DIAGNOSIS.encode())),
            ("wellformed", valid[: len(valid) // 2]),
        ):
            yield label, [intake(received_of(broken, now), SOURCE, hub, now)]
        nowhere = submission_bytes(person(postcode=None, town="Bottrop"))
        yield "route", [dispatch(accepted_of(nowhere, hub, now), SOURCE, hub, now)]
        # A canonical submission with a value the mapping refuses (control character).
        data = dict(accepted.submission)
        data["persons"] = [{**data["persons"][0], "family_name": FAMILY + "\x01"}]
        unmappable = dataclasses.replace(accepted, submission=data)
        yield "map", [dispatch(unmappable, SOURCE, hub, now)]

    def test_scenarios_reach_the_intended_outcomes(self, hub_context, now):
        """The scenarios below really cover acceptance and each kind of rejection."""
        outcomes = {
            name: [(r.outcome, r.reason) for r in results]
            for name, results in self.scenarios(hub_context, now)
        }
        expected = {
            "accepted": [("accepted", None), ("routed", None)],
            "xsd": [("rejected", "XSD")],
            "wellformed": [("rejected", "WELLFORMED")],
            "route": [("rejected", "ROUTE_UNRESOLVED")],
            "map": [("rejected", "FIELD_FORMAT")],
        }
        assert expected == outcomes

    def test_no_names_birth_dates_or_streets_in_audit_or_dead_letters(self, hub_context, now):
        """No name, birth date, street or diagnosis of the input is in any audit/dead letter."""
        leaks = []
        for name, results in self.scenarios(hub_context, now):
            for result in results:
                for emit in result.emits:
                    if emit.topic not in (AUDIT, DEAD_LETTER):
                        continue
                    data = emit.value + emit.key.encode()
                    leaks += [
                        (name, emit.topic, word)
                        for word in [*PERSONAL, "F32.1", "Depressive"]
                        if word.encode() in data
                    ]
        expected: list[tuple[str, str, str]] = []
        assert expected == leaks

    def test_personal_data_does_reach_the_vendor(self, hub_context, now):
        """Sanity check of the test above: the same words do appear in the vendor deliveries."""
        accepted = accepted_of(submission_bytes(), hub_context, now)
        result = dispatch(accepted, SOURCE, hub_context, now)
        (delivery,) = deliveries_of(result)
        body = unb64(delivery.body_b64)
        # The birth date is not among the words: Avro carries it as a date, not as text.
        expected = [True] * 3
        assert expected == [w.encode() in body for w in (GIVEN, FAMILY, STREET)]


class TestDispatch:
    def test_one_delivery_per_office(self, hub_context, now):
        """Wohngeld and BuT in one household produce one delivery each, to two offices."""
        accepted = accepted_of(submission_bytes(*HOUSEHOLD), hub_context, now)
        result = dispatch(accepted, SOURCE, hub_context, now)
        deliveries = deliveries_of(result)
        expected = [("wgs-recklinghausen", "lammkom"), ("but-recklinghausen", "oksozius")]
        assert expected == [(d.office, d.vendor) for d in deliveries]
        assert result.outcome == "routed"

    def test_two_benefits_of_one_office_make_one_delivery(self, hub_context, now):
        """Two benefits handled by the same office travel in a single delivery."""
        both = (("99107002000000", "Bürgergeld"), ("99107002017000", "Bürgergeld, Bewilligung"))
        accepted = accepted_of(submission_bytes(person(benefits=both)), hub_context, now)
        result = dispatch(accepted, SOURCE, hub_context, now)
        expected = ["deliveries.akdn", AUDIT, AUDIT]
        assert expected == topics(result)

    def test_delivery_records_are_keyed_and_addressed(self, hub_context, now):
        """Each delivery goes to its vendor topic, keyed by its deterministic delivery id."""
        accepted = accepted_of(submission_bytes(*HOUSEHOLD), hub_context, now)
        result = dispatch(accepted, SOURCE, hub_context, now)
        for emit in result.emits:
            if emit.topic == AUDIT:
                continue
            delivery = decode(emit.value, Delivery)
            expected = (
                delivery_queue(delivery.vendor),
                delivery_id(accepted.submission_id, delivery.office, delivery.mapping_version),
                accepted.submission_id,
                hub_context.offices.vendors[delivery.vendor].format,
            )
            actual = (emit.topic, emit.key, delivery.submission_id, delivery.format)
            assert expected == actual
            assert delivery.delivery_id == emit.key

    def test_routed_and_mapped_audit_events_per_delivery(self, hub_context, now):
        """Every delivery has a routed and a mapped audit event naming office, vendor and id."""
        accepted = accepted_of(submission_bytes(*HOUSEHOLD), hub_context, now)
        result = dispatch(accepted, SOURCE, hub_context, now)
        deliveries = {
            decode(e.value, Delivery).delivery_id: decode(e.value, Delivery)
            for e in result.emits
            if e.topic != AUDIT
        }
        expected = sorted(
            (stage, decision, d.office, d.vendor, did)
            for did, d in deliveries.items()
            for stage, decision in (("route", "routed"), ("map", "mapped"))
        )
        actual = sorted(
            (a.stage, a.decision, a.office, a.vendor, a.delivery_id) for a in audits(result)
        )
        assert expected == actual
        events = audits(result)
        assert len(events) == len({a.event_id for a in events})

    def test_dispatch_is_deterministic(self, hub_context, now):
        """Dispatching the same accepted record twice emits identical records (replay-safe)."""
        accepted = accepted_of(submission_bytes(*HOUSEHOLD), hub_context, now)
        first = dispatch(accepted, SOURCE, hub_context, now)
        assert first.emits == dispatch(accepted, SOURCE, hub_context, now).emits

    def test_unroutable_submission_is_dead_lettered_whole(self, hub_context, now):
        """When any benefit cannot be routed, no delivery is emitted, only a dead letter."""
        spec = person(postcode=None, town="Bottrop")
        accepted = accepted_of(submission_bytes(spec), hub_context, now)
        result = dispatch(accepted, SOURCE, hub_context, now)
        expected = ("rejected", [DEAD_LETTER, AUDIT], "ROUTE_UNRESOLVED", "route")
        assert expected == (result.outcome, topics(result), result.reason, letter_of(result).stage)

    def test_mapping_failure_emits_no_partial_deliveries(self, hub_context, now):
        """A mapping rejection for one office drops every delivery of the submission."""
        accepted = accepted_of(submission_bytes(*HOUSEHOLD), hub_context, now)
        data = dict(accepted.submission)
        child = {**data["persons"][1], "given_name": "Win\x0bnifred"}
        data["persons"] = [data["persons"][0], child]
        result = dispatch(dataclasses.replace(accepted, submission=data), SOURCE, hub_context, now)
        expected = ("rejected", [DEAD_LETTER, AUDIT], "FIELD_FORMAT", "map")
        assert expected == (result.outcome, topics(result), result.reason, letter_of(result).stage)

    def test_broken_canonical_submission_is_an_envelope_rejection(self, hub_context, now):
        """An accepted record whose submission dict is incomplete is dead-lettered as ENVELOPE."""
        accepted = accepted_of(submission_bytes(), hub_context, now)
        broken = dataclasses.replace(accepted, submission={"persons": []})
        result = dispatch(broken, SOURCE, hub_context, now)
        expected = ("rejected", "ENVELOPE")
        assert expected == (result.outcome, result.reason)


class TestDelivered:
    @pytest.mark.parametrize(("duplicate", "decision"), [(False, "delivered"), (True, "duplicate")])
    def test_delivered_audit_event(self, hub_context, now, duplicate, decision):
        """After a durable delivery the connector's audit event says delivered or duplicate."""
        accepted = accepted_of(submission_bytes(), hub_context, now)
        result = dispatch(accepted, SOURCE, hub_context, now)
        delivery = decode(result.emits[0].value, Delivery)
        emit = delivered(delivery, now, duplicate=duplicate)
        event = decode(emit.value, AuditEvent)
        expected = (AUDIT, delivery.submission_id, "deliver", decision, delivery.delivery_id)
        assert expected == (emit.topic, emit.key, event.stage, event.decision, event.delivery_id)


REPORT_KEYS = {
    "submission_id",
    "verdict",
    "reason",
    "transport",
    "payload",
    "author",
    "reader",
    "leika",
    "ars",
    "office",
    "vendor",
}


class TestCheck:
    def test_accepted_report(self, hub_context, now):
        """check() of a valid SGB II application reports the whole route, independent of files."""
        original = submission_bytes()
        report = check(original, hub_context, now)
        expected = {
            "submission_id": submission_id(original),
            "verdict": "accepted",
            "reason": None,
            "transport": "file",
            "payload": NAMESPACE,
            "author": "sop:050000100099",
            "reader": "jbc:055620000000",
            "leika": ["99107002017000"],
            "ars": "055620032032",
            "office": "jc-re-recklinghausen",
            "vendor": "akdn",
        }
        assert expected == {k: report[k] for k in REPORT_KEYS}

    def test_report_lists_every_route(self, hub_context, now):
        """A household with two offices gets two route entries with their delivery ids."""
        original = submission_bytes(*HOUSEHOLD)
        report = check(original, hub_context, now)
        sid = submission_id(original)
        expected = [
            {
                "leika": "99107023017000",
                "office": "wgs-recklinghausen",
                "vendor": "lammkom",
                "format": "fv-fixed",
                "channel": "file",
                "rule": "area",
                "delivery_id": delivery_id(sid, "wgs-recklinghausen", fvfixed.VERSION),
            },
            {
                "leika": "99107032148000",
                "office": "but-recklinghausen",
                "vendor": "oksozius",
                "format": "fv-json",
                "channel": "http",
                "rule": "area",
                "delivery_id": delivery_id(sid, "but-recklinghausen", fvjson.VERSION),
            },
        ]
        assert expected == report["routes"]

    @pytest.mark.parametrize(
        ("original", "expected"),
        [
            (b"\x1f\x8b\x08\x00", {"reason": "COMPRESSED", "payload": None}),
            (b"<x/>", {"reason": "UNKNOWN_PAYLOAD", "payload": None}),
            (
                submission_bytes().replace(BORN.encode(), b"kein Datum"),
                {"reason": "XSD", "payload": NAMESPACE},
            ),
        ],
        ids=["compressed", "unknown-root", "xsd"],
    )
    def test_rejected_at_intake(self, hub_context, now, original, expected):
        """A submission refused at intake reports the reason and nothing about routing."""
        report = check(original, hub_context, now)
        expected = {
            **expected,
            "verdict": "rejected",
            "author": None,
            "reader": None,
            "leika": [],
            "ars": None,
            "office": None,
            "vendor": None,
        }
        assert expected == {k: report[k] for k in expected}

    def test_rejected_at_routing(self, hub_context, now):
        """A submission that cannot be routed reports what was read and why it stopped."""
        report = check(submission_bytes(person(postcode=None, town="Bottrop")), hub_context, now)
        expected = {
            "verdict": "rejected",
            "reason": "ROUTE_UNRESOLVED",
            "path": "anschrift",
            "author": "sop:050000100099",
            "leika": ["99107002017000"],
            "ars": None,
            "office": None,
            "vendor": None,
        }
        assert expected == {k: report[k] for k in expected}

    @pytest.mark.parametrize(
        "original",
        [submission_bytes(), b"<x/>", b"garbage"],
        ids=["accepted", "unknown", "garbage"],
    )
    def test_report_has_the_documented_keys_and_is_json(self, hub_context, now, original):
        """Every report, accepted or not, has the documented keys and serialises to JSON."""
        report = check(original, hub_context, now)
        assert set(report) >= REPORT_KEYS
        assert report == json.loads(json.dumps(report))

    def test_transport_decides_how_the_bytes_are_read(self, hub_context, now):
        """A bare payload is not an XTA message: checked as ``xta2`` it is a container rejection."""
        report = check(submission_bytes(), hub_context, now, transport="xta2")
        expected = ("xta2", "rejected", "CONTAINER")
        assert expected == (report["transport"], report["verdict"], report["reason"])

    def test_check_is_deterministic(self, hub_context, now):
        """The same bytes and clock give the same report (the receipt is not part of it)."""
        original = submission_bytes(*HOUSEHOLD)
        assert check(original, hub_context, now) == check(original, hub_context, now)

    def test_report_holds_no_personal_data(self, hub_context, now):
        """The check report names codes and ids, not the applicant."""
        invalid = submission_bytes().replace(BORN.encode(), b"x")
        for original in (submission_bytes(*HOUSEHOLD), invalid):
            text = json.dumps(check(original, hub_context, now), ensure_ascii=False)
            expected: list[str] = []
            assert expected == [w for w in PERSONAL if w in text]


class TestIngest:
    def test_ingest_emits_the_record_and_one_audit_event(self, hub_context, now):
        """The inbound connector's record plus a received event that carries the digest, not the payload."""
        from hub.core.pipeline import ingest

        original = submission_bytes()
        result = ingest(original, "test", "file", hub_context, now)
        record = decode(result.emits[0].value, Received)
        (event,) = audits(result)
        expected = ("ingest", "received", record.payload_sha256, record.submission_id)
        assert expected == (event.stage, event.decision, event.payload_sha256, event.submission_id)
        assert original == base64.b64decode(record.payload_b64)
        assert original[:40] not in result.emits[1].value

    def test_ingest_above_the_limit_is_a_size_dead_letter(self, hub_context, now):
        """Bytes over the limit never become a received record: a SIZE dead letter with the digest."""
        import dataclasses

        from hub.core import xmlsafe
        from hub.core.pipeline import DEAD_LETTER, ingest

        small = dataclasses.replace(hub_context, limits=xmlsafe.Limits(max_bytes=100))
        result = ingest(submission_bytes(), "test", "file", small, now)
        assert ("rejected", "SIZE") == (result.outcome, result.reason)
        assert [DEAD_LETTER, "audit.log"] == [e.topic for e in result.emits]

    def test_accepted_record_above_the_record_limit_is_refused_not_produced(self, hub_context, now):
        """An accepted record too large for the topic becomes a SIZE dead letter instead of a crash loop."""
        import dataclasses

        small = dataclasses.replace(hub_context, max_record_bytes=2_000)
        result = intake(received_of(submission_bytes(), now), SOURCE, small, now)
        assert ("rejected", "SIZE") == (result.outcome, result.reason)


class TestOneOfficeSeveralBenefits:
    def test_every_benefit_for_one_office_travels_in_its_one_delivery(self, hub_context, now):
        """Grundsicherung and AsylbLG both go to the Sozialamt: one delivery naming both, audited with both."""
        from lxml import etree

        from hub.testing import PersonSpec, SubmissionSpec, make_submission

        both = (("99107009017000", "Grundsicherung"), ("99107029017000", "Asylbewerberleistungen"))
        original = make_submission(
            SubmissionSpec(persons=(PersonSpec(postcode="45768", town="Marl", benefits=both),))
        )
        first = intake(received_of(original, now), SOURCE, hub_context, now)
        result = dispatch(decode(first.emits[0].value, Accepted), SOURCE, hub_context, now)
        deliveries = [
            decode(e.value, Delivery) for e in result.emits if e.topic.startswith("deliveries.")
        ]
        assert ["soa-marl"] == [d.office for d in deliveries]
        tree = etree.fromstring(base64.b64decode(deliveries[0].body_b64))  # noqa: TID251 - hub output
        codes = [e.get("code") for e in tree.iter("{urn:sozialhub:vendor:fv-xml:1}leistung")]
        assert ["99107009017000", "99107029017000"] == codes
        routed = [a for a in audits(result) if a.decision == "routed"]
        assert [["99107009017000", "99107029017000"]] == [a.benefits for a in routed]
        assert ["99107009017000", "99107029017000"] == [r.leika for r, _ in result.routes]


class TestIntakeChecksWhatItAttests:
    def test_digest_not_matching_the_bytes_is_refused(self, hub_context, now):
        """A received record whose digest is not that of its bytes is ENVELOPE: the hub never signs an unchecked digest."""
        import dataclasses

        record = dataclasses.replace(received_of(submission_bytes(), now), payload_sha256="0" * 64)
        result = intake(record, SOURCE, hub_context, now)
        assert ("rejected", "ENVELOPE") == (result.outcome, result.reason)

    def test_id_not_matching_the_bytes_is_refused(self, hub_context, now):
        """A received record claiming another submission's id is ENVELOPE."""
        import dataclasses

        record = dataclasses.replace(
            received_of(submission_bytes(), now), submission_id="sub-" + "0" * 32
        )
        result = intake(record, SOURCE, hub_context, now)
        assert ("rejected", "ENVELOPE") == (result.outcome, result.reason)


class TestDeadLetterIds:
    def test_distinct_records_get_distinct_dead_letter_and_audit_ids(self, now):
        """Two different foreign records rejected at one stage never share ids; the same record always does."""
        from hub.core.errors import Reason, Rejection
        from hub.core.pipeline import reject_record

        def ids(offset):
            result = reject_record(
                b"garbage", "intake", Rejection(Reason.ENVELOPE), SourceRef("t", 0, offset), now
            )
            letter = decode(result.emits[0].value, DeadLetter)
            return letter.submission_id, letter.dead_letter_id, audits(result)[0].event_id

        first, second, again = ids(1), ids(2), ids(1)
        assert "sub-unknown" == first[0] == second[0]
        assert first[1:] != second[1:]
        assert first == again

    def test_resent_submission_rejected_again_keeps_its_dead_letter_id(self, hub_context, now):
        """The same submission re-sent (new offset) and rejected again yields the same, deduplicable ids."""
        invalid = submission_bytes().replace(b"<antragsDatum>", b"<antragsDatum>x")
        first = intake(received_of(invalid, now), SourceRef("t", 0, 1), hub_context, now)
        again = intake(received_of(invalid, now), SourceRef("t", 0, 99), hub_context, now)
        assert (
            decode(first.emits[0].value, DeadLetter).dead_letter_id
            == decode(again.emits[0].value, DeadLetter).dead_letter_id
        )
        assert audits(first)[0].event_id == audits(again)[0].event_id


class TestReceiptNamesTheEngine:
    @pytest.mark.parametrize(("fast", "engine"), [(True, "libxml2"), (False, "xmlschema")])
    def test_receipt_names_the_validator_that_accepted(
        self, hub_context, settings, now, fast, engine
    ):
        """validatedWith is the engine whose verdict accepted the payload, derived, never configured."""
        import dataclasses

        from hub import schemas

        hub = dataclasses.replace(
            hub_context, payloads=schemas.load_payloads(settings.schema_dir, fast=fast)
        )
        result = intake(received_of(submission_bytes(), now), SOURCE, hub, now)
        receipt = unb64(decode(result.emits[0].value, Accepted).receipt_b64)
        assert engine == verify(receipt, hub.signer.certificate)["validatedWith"]


class TestReplays:
    """A replay is recognised by transport message id or payload digest (bad-inputs G47)."""

    MESSAGE_ID = "urn:de:xta:messageid:sop:0b9c2a1e-7f3d-4c55-9e61-2d8f4a7b3c10"

    def _seen_after(self, result) -> dict[str, str]:
        return {e.key: decode(e.value, Seen).submission_id for e in result.emits if e.topic == SEEN}

    def test_file_named_by_xta_message_id_keeps_it(self):
        assert transport_message_id_of_name(self.MESSAGE_ID + ".xml") == self.MESSAGE_ID
        assert transport_message_id_of_name("antrag-0001.xml") is None
        assert transport_message_id_of_name("urn:de:xta:messageid:../etc.xml") is None

    def test_same_message_id_with_other_bytes_is_a_duplicate(self, hub_context, now):
        first = Received.of(submission_bytes(), "filedrop", "file", now, self.MESSAGE_ID)
        seen = self._seen_after(intake(first, SOURCE, hub_context, now))
        assert len(seen) == 2  # the message id and the payload digest
        other_bytes = make_submission()  # fresh UUIDs: other bytes, other payload digest
        other = Received.of(other_bytes, "filedrop", "file", now, self.MESSAGE_ID)
        result = intake(other, SOURCE, hub_context, now, seen=seen)
        assert (result.outcome, result.reason) == ("rejected", "DUPLICATE")
        assert letter_of(result).path == "transport/messageId"
        assert not [e for e in result.emits if e.topic in (ACCEPTED, SEEN)]

    def test_the_same_record_processed_again_is_not_its_own_duplicate(self, hub_context, now):
        """After a crash the record is re-processed: same id, same outputs, no DUPLICATE."""
        received = Received.of(submission_bytes(), "filedrop", "file", now, self.MESSAGE_ID)
        first = intake(received, SOURCE, hub_context, now)
        again = intake(received, SOURCE, hub_context, now, seen=self._seen_after(first))
        assert again.outcome == "accepted"
        assert [(e.topic, e.key) for e in again.emits] == [(e.topic, e.key) for e in first.emits]

    def test_a_new_message_id_does_not_hide_a_replayed_payload(self, hub_context, now):
        payload = submission_bytes()
        first = Received.of(payload, "filedrop", "file", now, self.MESSAGE_ID)
        seen = dict.fromkeys(
            self._seen_after(intake(first, SOURCE, hub_context, now)), "sub-" + "f" * 32
        )
        # Same payload under another message id: a replay of the payload.
        replay = Received.of(payload, "filedrop", "file", now, self.MESSAGE_ID[:-2] + "99")
        result = intake(replay, SOURCE, hub_context, now, seen=seen)
        assert (result.outcome, letter_of(result).path) == ("rejected", "transport/payload")

    def test_the_same_message_fetched_again_is_a_redelivery_not_a_rejection(self, hub_context, now):
        """Same message id and payload under another record (XTA re-fetch): audited, no answer."""
        payload = submission_bytes()
        first = intake(
            Received.of(payload, "filedrop", "file", now, self.MESSAGE_ID), SOURCE, hub_context, now
        )
        seen = dict.fromkeys(self._seen_after(first), "sub-" + "e" * 32)
        again = Received.of(payload, "filedrop", "file", now, self.MESSAGE_ID)
        result = intake(again, SOURCE, hub_context, now, seen=seen)
        assert result.outcome == "duplicate"
        assert topics(result) == [AUDIT]
        assert [(a.stage, a.decision) for a in audits(result)] == [("intake", "duplicate")]


class TestTransportReader:
    def test_fitconnect_destination_becomes_the_reader(self):
        """A FIT-Connect destination fills a missing payload reader, in the FIT-Connect directory."""
        from hub.core.model import Code, Party
        from hub.core.model import Submission as Canonical
        from hub.core.pipeline import _with_transport
        from hub.core.route import FITCONNECT_DIRECTORY
        from hub.core.transport import Envelope

        bare = Canonical(
            payload_namespace="urn:test",
            payload_version="1",
            message_id="m",
            created="2026-11-22T09:00:00Z",
            author=Party("DVDV", "sop:055620000001"),
            reader=None,
            case_id="c",
            case_type=Code("antrag", "urn:test", "1"),
            application_date=None,
            persons=(),
        )
        destination = "6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b"
        envelope = Envelope("fitconnect", b"", reader=destination)
        expected = Party(FITCONNECT_DIRECTORY, destination, None)
        assert expected == _with_transport(bare, envelope).reader
        named = Party("DVDV", "wgb:055620200000")
        kept = _with_transport(dataclasses.replace(bare, reader=named), envelope).reader
        assert named == kept
