"""Delivery channels: a record reaches its own vendor only, never through producer headers.

Routing reads validated content and the office table, never Kafka headers; the
delivery stages send a record only to the channel of the queue it was read from,
only if the record agrees with the office table, and only if the transfer gate
allows it at that moment: the delivery stage is the one choke point for data
other offices read (docs/delivery.md#transfer-gate-at-send-time). The handover
forwarders carry what the Rechtskreiswechsel choke point sent, and only to the
vendor of the message's office (docs/delivery.md#handover-forwarding).
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import datetime as dt
import hashlib
import inspect
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.filedrop.outbound import FileDropOutbox, UnsafeName
from hub.config import PROJECT_ROOT, load
from hub.core import gate, pipeline
from hub.core.errors import Reason, Rejection
from hub.core.gate import Parties, Policy
from hub.core.pipeline import AUDIT, StageResult, delivery_queue, vendor_topic
from hub.core.pseudonym import KeyRing, PseudonymKey, identifier, is_pseudonym
from hub.core.records import (
    Accepted,
    AuditEvent,
    DeadLetter,
    Delivery,
    Received,
    b64,
    decode,
    encode,
)
from hub.core.route import route
from hub.core.transfer import CATEGORIES, Outcome
from hub.pseudonyms import development_ring
from hub.stream.delivery import HttpChannel, file_channel, kafka_channel
from hub.stream.handover_forward import HttpForwarder, file_forwarder, forward_agents
from tests.rkw_support import message_record

NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
EXAMPLES = PROJECT_ROOT / "examples" / "submissions"
SOURCE = pipeline.SourceRef("sozialhub.deliveries.x", 0, 1)


# A person pseudonym as dispatch makes one (development key, the portal's case id).
PERSON = development_ring().pseudonym(identifier("local:filedrop", "AZ-2026-1"))


def _delivery(office: str, vendor: str, fmt: str, **changes) -> Delivery:
    base = Delivery(
        delivery_id="dlv-" + "a" * 32,
        submission_id="sub-" + "b" * 32,
        received_at="2026-11-22T08:59:00.000Z",
        office=office,
        vendor=vendor,
        format=fmt,
        mapping_version=f"{fmt}/1.0.0",
        media_type="application/octet-stream",
        file_suffix=".dat",
        body_b64=b64(b"mapped bytes"),
        categories=["identity-address"],
        portal="filedrop",
        person=PERSON,
    )
    return dataclasses.replace(base, **changes)


def _event(record: Delivery | bytes) -> SimpleNamespace:
    value = record if isinstance(record, bytes) else encode(record)
    message = SimpleNamespace(topic="sozialhub.deliveries.x", partition=0, offset=1, key=None)
    return SimpleNamespace(value=value, message=message)


def _routed(hub_context, name: str):
    original = (EXAMPLES / name).read_bytes()
    received = Received.of(original, "test", "file", NOW)
    first = pipeline.intake(received, None, hub_context, NOW)
    accepted = decode(next(e for e in first.emits if e.topic == pipeline.ACCEPTED).value, Accepted)
    return pipeline.dispatch(accepted, None, hub_context, NOW)


ACCEPTED_EXAMPLES = [
    "01-buergergeld-recklinghausen.xml",
    "02-wohngeld-but-marl.xml",
    "03-grundsicherung-gladbeck-ars.xml",
    "04-elterngeld-dorsten.xml",
    "05-asylblg-herten-reader.xml",
]


class TestDispatchAddressesTheOfficesVendor:
    @pytest.mark.parametrize("name", ACCEPTED_EXAMPLES)
    def test_every_delivery_goes_to_its_offices_vendor_queue(self, hub_context, name):
        """Each delivery is produced to deliveries.<v> of the vendor the office table names for its office."""
        result = _routed(hub_context, name)
        deliveries = [e for e in result.emits if e.topic != AUDIT]
        assert deliveries
        for emit in deliveries:
            delivery = decode(emit.value, Delivery)
            vendor = hub_context.offices.office(delivery.office).vendor
            expected = (delivery_queue(vendor), vendor, hub_context.offices.vendors[vendor].format)
            assert expected == (emit.topic, delivery.vendor, delivery.format)


class TestCheckDelivery:
    def test_own_vendor_and_office(self, hub_context):
        """A record of the queue's vendor for one of its offices passes."""
        pipeline.check_delivery(
            _delivery("jc-re-marl", "akdn", "fv-avro"), "akdn", hub_context.offices
        )

    @pytest.mark.parametrize(
        ("record", "path"),
        [
            (_delivery("jc-re-marl", "lammkom", "fv-avro"), "vendor"),
            (_delivery("wgs-marl", "akdn", "fv-avro"), "office"),
            (_delivery("nowhere", "akdn", "fv-avro"), "office"),
            (_delivery("jc-re-marl", "akdn", "fv-xml"), "format"),
        ],
    )
    def test_foreign_record_is_refused(self, hub_context, record, path):
        """Another vendor's record, another vendor's office or format: DELIVERY at that field."""
        with pytest.raises(Rejection) as caught:
            pipeline.check_delivery(record, "akdn", hub_context.offices)
        assert (Reason.DELIVERY, path) == (caught.value.reason, caught.value.path)


VENDORS = ["akdn", "openprosoz", "lammkom", "oksozius", "evil"]
OFFICES = ["jc-re-marl", "soa-marl", "wgs-marl", "but-marl", "kreis-re-elterngeld", "nowhere"]
FORMATS = ["fv-avro", "fv-xml", "fv-fixed", "fv-json"]


class TestKafkaChannelNeverCrossesVendors:
    @settings(max_examples=300, deadline=None)
    @given(
        queue=st.sampled_from(VENDORS[:4]),
        vendor=st.sampled_from(VENDORS),
        office=st.sampled_from(OFFICES),
        fmt=st.sampled_from(FORMATS),
    )
    def test_forward_produces_only_to_the_queues_vendor_topic(
        self, hub_context, queue, vendor, office, fmt
    ):
        """For any record in any queue, forward() writes only fachverfahren.<queue vendor>, or refuses."""
        record = _delivery(office, vendor, fmt)
        owner = hub_context.offices.find(office)
        agrees = vendor == queue and owner is not None and owner.vendor == queue
        agrees = agrees and fmt == hub_context.offices.vendors[queue].format
        if not agrees:
            with pytest.raises(Rejection) as caught:
                pipeline.forward(record, queue, hub_context, NOW)
            assert caught.value.reason is Reason.DELIVERY
            return
        result = pipeline.forward(record, queue, hub_context, NOW)
        topics = [e.topic for e in result.emits if e.topic != AUDIT]
        assert [vendor_topic(queue)] == topics
        assert vendor == queue
        assert hub_context.offices.office(office).vendor == queue

    def test_kafka_stage_dead_letters_a_foreign_record(self, hub_context):
        """The kafka channel stage turns a lammkom record in akdn's queue into a DELIVERY dead letter."""
        deliver = kafka_channel("akdn", hub_context)
        result = deliver(_event(_delivery("wgs-marl", "lammkom", "fv-fixed")), SOURCE)
        assert [pipeline.DEAD_LETTER, AUDIT] == [e.topic for e in result.emits]
        letter = decode(result.emits[0].value, DeadLetter)
        assert ("deliver", "DELIVERY", "vendor") == (letter.stage, letter.reason, letter.path)

    def test_kafka_stage_forwards_the_mapped_bytes_unchanged(self, hub_context):
        """The vendor topic gets the mapped bytes as they are, keyed by the delivery id."""
        deliver = kafka_channel("akdn", hub_context)
        record = _delivery("jc-re-marl", "akdn", "fv-avro")
        result = deliver(_event(record), SOURCE)
        allowed, forwarded, audit = result.emits
        assert ("gate", "allowed") == (
            decode(allowed.value, AuditEvent).stage,
            decode(allowed.value, AuditEvent).decision,
        )
        assert (vendor_topic("akdn"), record.delivery_id, b"mapped bytes") == (
            forwarded.topic,
            forwarded.key,
            forwarded.value,
        )
        event = decode(audit.value, AuditEvent)
        assert ("deliver", "delivered", "kafka") == (event.stage, event.decision, event.channel)


class TestFileChannel:
    def test_documents_are_written_beside_the_record(self, hub_context, tmp_path):
        """A fixed-width delivery's documents land next to its record, with the digests it lists."""
        pdf = b"%PDF-1.7 test document"
        name = "dlv-" + "a" * 32 + ".d01.pdf"
        record = _delivery(
            "wgs-marl",
            "lammkom",
            "fv-fixed",
            file_suffix=".txt",
            documents=[
                {
                    "file_name": name,
                    "media_type": "application/pdf",
                    "size": len(pdf),
                    "sha256": hashlib.sha256(pdf).hexdigest(),
                    "content_b64": b64(pdf),
                }
            ],
        )
        outbox = FileDropOutbox(tmp_path)
        result = file_channel(outbox, "lammkom", hub_context)(_event(record), SOURCE)
        assert "delivered" == result.outcome
        folder = tmp_path / "lammkom" / "wgs-marl"
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            [name, "dlv-" + "a" * 32 + ".txt"]
        )
        assert pdf == (folder / name).read_bytes()
        again = file_channel(outbox, "lammkom", hub_context)(_event(record), SOURCE)
        assert "duplicate" == again.outcome

    def test_document_name_not_derived_from_the_delivery_is_refused(self, tmp_path):
        """A document file name that is not <delivery id>.dNN.<ext> never reaches the disk."""
        outbox = FileDropOutbox(tmp_path)
        target = outbox.target("lammkom", "wgs-marl", "dlv-" + "a" * 32, ".txt")
        for bad in ("../escape.pdf", "dlv-" + "b" * 32 + ".d01.pdf", "x.pdf"):
            with pytest.raises(UnsafeName):
                outbox.write(target, b"record", [(bad, b"%PDF-")])
        assert not target.exists()

    def test_file_stage_refuses_another_vendors_record(self, hub_context, tmp_path):
        """The file channel of lammkom does not write openprosoz's delivery."""
        outbox = FileDropOutbox(tmp_path)
        record = _delivery("soa-marl", "openprosoz", "fv-xml", file_suffix=".xml")
        result = file_channel(outbox, "lammkom", hub_context)(_event(record), SOURCE)
        assert "rejected" == result.outcome
        assert [] == list(tmp_path.glob("*/*/*"))


def _attribute_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


class TestNoProducerHeaders:
    @pytest.mark.parametrize(
        "path",
        [
            *sorted((PROJECT_ROOT / "hub" / "stream").glob("*.py")),
            PROJECT_ROOT / "hub" / "core" / "pipeline.py",
            PROJECT_ROOT / "hub" / "core" / "route.py",
        ],
        ids=lambda p: p.name,
    )
    def test_stream_and_routing_code_never_reads_headers(self, path):
        """No agent, stage or routing code touches a record's headers (``.headers``)."""
        assert "headers" not in _attribute_names(path)

    def test_routing_functions_take_no_headers(self):
        """route(), dispatch() and intake() have no parameter through which headers could enter."""
        for function in (route, pipeline.dispatch, pipeline.intake):
            names = set(inspect.signature(function).parameters)
            assert not {n for n in names if "header" in n}, function.__name__


class TestRejectedDeliveryAudit:
    def test_audit_names_the_delivery_office_vendor_and_channel(self, hub_context):
        """A refused delivery's audit event says which delivery, office, vendor and channel."""
        record = _delivery("wgs-marl", "lammkom", "fv-fixed")
        rejection = Rejection(Reason.DELIVERY, "http/422")
        result = pipeline.reject_delivery(record, rejection, SOURCE, NOW, channel="http")
        event = decode(result.emits[1].value, AuditEvent)
        expected = ("rejected", record.delivery_id, "wgs-marl", "lammkom", "fv-fixed/1.0.0", "http")
        actual = (
            event.decision,
            event.delivery_id,
            event.office,
            event.vendor,
            event.mapping_version,
            event.channel,
        )
        assert expected == actual

    def test_foreign_text_never_reaches_the_audit_event(self, hub_context):
        """Office, vendor or version that are not id-shaped are left out, not copied."""
        record = _delivery("Erika Mustermann", "lammkom\nx", "fv-fixed", mapping_version="<script>")
        rejection = Rejection(Reason.DELIVERY, "office")
        result = pipeline.reject_delivery(record, rejection, SOURCE, NOW, channel="bogus")
        event = decode(result.emits[1].value, AuditEvent)
        expected = (record.delivery_id, None, None, None, None)
        assert expected == (
            event.delivery_id,
            event.office,
            event.vendor,
            event.mapping_version,
            event.channel,
        )
        assert b"Mustermann" not in result.emits[1].value


# --- the transfer gate at send time -------------------------------------------------------------

STRICT = Policy()  # no statutory basis: nothing may leave
DECIDE = gate.decide  # the real gate, which the spies below call


def _gated(hub_context, policy: Policy) -> pipeline.HubContext:
    return dataclasses.replace(hub_context, policy=policy)


def _only_office(hub_context, office: str) -> Policy:
    """The example policy, but its application-delivery bases cover ``office`` only."""
    bases = tuple(
        dataclasses.replace(b, recipients=Parties(offices=frozenset({office})))
        for b in hub_context.policy.bases
        if "application-delivery" in b.purposes
    )
    return dataclasses.replace(hub_context.policy, bases=bases)


class _FakeDeliverer:
    """Stands in for HttpDeliverer: records what it was asked to send, answers "delivered"."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    async def deliver(self, delivery: Delivery, on_retry=None) -> SimpleNamespace:
        self.sent.append(delivery.delivery_id)
        return SimpleNamespace(kind="delivered", attempts=1, status=201)

    def clock(self) -> float:
        return 0.0


def _http_send(hub, record: Delivery) -> tuple[StageResult, list[str]]:
    deliverer = _FakeDeliverer()
    vendor = hub.offices.vendors["oksozius"]
    channel = HttpChannel(None, vendor, hub, None, deliverer, None)  # type: ignore[arg-type]
    event = _event(record)
    event.message.tp = SimpleNamespace(topic="sozialhub.deliveries.oksozius", partition=0)
    result = asyncio.run(channel._result(event, SOURCE))
    return result, deliverer.sent


def _send(channel: str, hub, record: Delivery, tmp_path: Path) -> tuple[StageResult, bool]:
    """Run one channel's stage on ``record``: its result and whether anything reached the vendor."""
    if channel == "kafka":
        result = kafka_channel(record.vendor, hub)(_event(record), SOURCE)
        return result, any(e.topic == vendor_topic(record.vendor) for e in result.emits)
    if channel == "file":
        outbox = FileDropOutbox(tmp_path)
        result = file_channel(outbox, record.vendor, hub)(_event(record), SOURCE)
        return result, any(tmp_path.rglob("dlv-*"))
    result, sent = _http_send(hub, record)
    return result, bool(sent)


# One office per channel: akdn (kafka, SGB II), openprosoz (file, SGB IX), oksozius (http, BEEG).
CHANNEL_RECORDS = {
    "kafka": _delivery("jc-re-marl", "akdn", "fv-avro"),
    "file": _delivery("kreis-re-fd59", "openprosoz", "fv-xml", file_suffix=".xml"),
    "http": _delivery("kreis-re-elterngeld", "oksozius", "fv-json"),
}


def _gate_events(result: StageResult) -> list[AuditEvent]:
    events = [decode(e.value, AuditEvent) for e in result.emits if e.topic == AUDIT]
    return [e for e in events if e.stage == "gate"]


class TestEveryChannelAsksTheGate:
    @pytest.mark.parametrize("channel", sorted(CHANNEL_RECORDS))
    def test_an_allowed_delivery_is_sent_with_its_basis_audited(
        self, hub_context, channel, tmp_path
    ):
        """The example policy's application-delivery basis allows it: sent, gate/allowed audited."""
        result, sent = _send(channel, hub_context, CHANNEL_RECORDS[channel], tmp_path)
        assert (True, "delivered") == (sent, result.outcome)
        (event,) = _gate_events(result)
        assert ("allowed", "statute", "application-delivery") == (
            event.decision,
            event.basis_kind,
            event.basis_id,
        )
        assert event.legal_reference == "Art. 6 Abs. 1 lit. e DSGVO, § 67a SGB X"

    @pytest.mark.parametrize("channel", sorted(CHANNEL_RECORDS))
    @pytest.mark.parametrize(
        ("case", "expected_reason"),
        [
            ("strict policy", "NO_BASIS"),
            ("office not covered", "NO_BASIS"),
            ("health without SGB IX", "SPECIAL_CATEGORY"),
            ("no person", "TRANSFER_INVALID"),
            ("no categories recorded", "TRANSFER_INVALID"),
        ],
    )
    def test_a_delivery_the_gate_does_not_allow_is_not_sent(
        self, hub_context, channel, case, expected_reason, tmp_path
    ):
        """Denied or minimised: nothing reaches the vendor; TRANSFER_DENIED at the gate's reason."""
        record = CHANNEL_RECORDS[channel]
        hub = hub_context
        if case == "strict policy":
            hub = _gated(hub_context, STRICT)
        elif case == "office not covered":
            hub = _gated(hub_context, _only_office(hub_context, "soa-marl"))
        elif case == "health without SGB IX":
            if channel == "file":  # kreis-re-fd59 decides in SGB IX: use a non-SGB-IX office
                record = dataclasses.replace(record, office="soa-marl")
            record = dataclasses.replace(record, categories=["health", "identity-address"])
        elif case == "no person":
            record = dataclasses.replace(record, person=None)
        else:
            record = dataclasses.replace(record, categories=None)
        result, sent = _send(channel, hub, record, tmp_path)
        assert (False, "rejected") == (sent, result.outcome)
        letter = decode(result.emits[0].value, DeadLetter)
        assert ("deliver", "TRANSFER_DENIED", expected_reason) == (
            letter.stage,
            letter.reason,
            letter.path,
        )
        (event,) = _gate_events(result)
        assert ("denied", expected_reason, record.delivery_id) == (
            event.decision,
            event.reason,
            event.delivery_id,
        )

    def test_health_data_goes_to_an_sgb_ix_office_on_its_basis(self, hub_context, tmp_path):
        """An SGB IX office gets health data on the policy's SGB IX basis, which the audit names."""
        record = dataclasses.replace(CHANNEL_RECORDS["file"], categories=["documents", "health"])
        result, sent = _send("file", hub_context, record, tmp_path)
        assert sent
        (event,) = _gate_events(result)
        assert ("allowed", "application-delivery-sgb9") == (event.decision, event.basis_id)

    def test_a_minimised_decision_names_the_basis_and_is_denied(self, hub_context):
        """allow-minimised is not sent: the mapped document cannot lose categories afterwards."""
        record = dataclasses.replace(
            CHANNEL_RECORDS["kafka"], categories=["health", "identity-address"]
        )
        decision = pipeline.gate_delivery(record, hub_context, NOW)
        assert Outcome.ALLOW_MINIMISED is decision.outcome
        with pytest.raises(pipeline.TransferDenied) as caught:
            pipeline.forward(record, "akdn", hub_context, NOW)
        event = decode(caught.value.audit.value, AuditEvent)
        assert ("denied", "statute", "application-delivery") == (
            event.decision,
            event.basis_kind,
            event.basis_id,
        )

    def test_the_request_is_the_deliverys(self, hub_context, monkeypatch):
        """Purpose application-delivery, from the portal to the office, request id = delivery id."""
        asked = []

        def spy(request, consents, policy, now):
            asked.append((request, tuple(consents), policy, now))
            return DECIDE(request, consents, policy, now)

        monkeypatch.setattr(gate, "decide", spy)
        record = CHANNEL_RECORDS["kafka"]
        pipeline.gate_delivery(record, hub_context, NOW)
        ((request, consents, policy, now),) = asked
        assert (
            record.delivery_id,
            "application-delivery",
            "filedrop",
            "jc-re-marl",
            PERSON,
            frozenset({"identity-address"}),
            NOW,
        ) == (
            request.request_id,
            request.purpose,
            request.from_office,
            request.to_office,
            request.person,
            request.categories,
            request.at,
        )
        assert ((), hub_context.policy, NOW) == (consents, policy, now)


class TestDispatchRecordsWhatTheGateNeeds:
    @pytest.mark.parametrize("name", ACCEPTED_EXAMPLES)
    def test_categories_portal_and_pseudonym(self, hub_context, name):
        """Each delivery names the document's categories, the portal and a pseudonym, no identifier."""
        result = _routed(hub_context, name)
        assert result.submission is not None
        expected = sorted(gate.application_categories(result.submission))
        for emit in (e for e in result.emits if e.topic != AUDIT):
            delivery = decode(emit.value, Delivery)
            assert expected == delivery.categories
            assert "filedrop" == delivery.portal
            assert delivery.person is not None
            assert is_pseudonym(delivery.person)
            assert result.submission.case_id.encode() not in emit.value
            assert Outcome.ALLOW is pipeline.gate_delivery(delivery, hub_context, NOW).outcome

    def test_the_pseudonym_is_deterministic_and_keyed(self, hub_context):
        """The same submission gets the same pseudonym; another key ring gives another one."""

        def persons(result: StageResult) -> list[str | None]:
            return [decode(e.value, Delivery).person for e in result.emits if e.topic != AUDIT]

        first = persons(_routed(hub_context, ACCEPTED_EXAMPLES[0]))
        assert first == persons(_routed(hub_context, ACCEPTED_EXAMPLES[0]))
        other = KeyRing([PseudonymKey("k2027", b"\x01" * 32)], "k2027")
        keyed = persons(
            _routed(dataclasses.replace(hub_context, pseudonyms=other), ACCEPTED_EXAMPLES[0])
        )
        assert all(p is not None and p.startswith("psn-k2027-") for p in keyed)
        assert not set(first) & set(keyed)

    def test_without_a_key_ring_the_delivery_carries_no_pseudonym(self, hub_context):
        """No key ring: no person, and the gate denies the delivery at send time."""
        bare = dataclasses.replace(hub_context, pseudonyms=None)
        result = _routed(bare, ACCEPTED_EXAMPLES[0])
        delivery = decode(result.emits[0].value, Delivery)
        assert delivery.person is None
        assert Outcome.DENY is pipeline.gate_delivery(delivery, hub_context, NOW).outcome


# --- one choke point: a static scan ---------------------------------------------------------------

SENDERS = {
    # (file, function): the code that sends where another office reads; each asks the gate first
    ("hub/core/pipeline.py", "forward"),
    ("hub/stream/delivery.py", "file_channel.deliver"),
    ("hub/stream/delivery.py", "HttpChannel._deliver"),
    # Rechtskreiswechsel messages: handovers.<vendor>, after rkw_stages.ask_gate
    ("hub/core/rkw_stages.py", "send"),
}
FORWARDERS = {
    # The vendor's side of handovers.<vendor>, which the hub runs for vendors without a Kafka
    # principal (file, http channel): the record goes to that vendor's outbox folder or endpoint.
    # Not a second producer of cross-office data: rkw_stages.send (above), the one choke point,
    # wrote the record to handovers.<vendor> only after the transfer gate allowed it at that
    # moment, and the forwarder carries it unchanged to the vendor the topic belongs to, as a
    # kafka vendor's own consumer reads it from there. It decides nothing, so it asks no gate;
    # instead it checks (handover_forward.check_message) before it writes that the record is a
    # deliverable message for one of its own vendor's offices (tested below and in
    # TestForwardersNeverCrossVendors).
    ("hub/stream/handover_forward.py", "file_forwarder.forward"),
    ("hub/stream/handover_forward.py", "HttpForwarder._result"),
}
NAMING_ONLY = {
    # the hub-internal queue: dispatch writes it (its routing and mapping part), the delivery
    # stage (which gates) reads it
    ("hub/core/pipeline.py", "_deliveries"),
    ("hub/core/pipeline.py", "delivery_queue"),
    ("hub/core/pipeline.py", "vendor_topic"),
    # topic names for declaring and checking topics, reading progress, consuming queues
    ("hub/context.py", "check_vendor_topics"),
    ("hub/demo.py", "_kafka_vendor_topics"),
    ("hub/stream/delivery.py", "delivery_agents"),  # consumes the queues, opens the outbox
    ("hub/stream/delivery.py", "http_agent"),  # builds the HttpDeliverer the channel uses
    ("hub/asyncapi.py", "<module>"),  # the vendor topics' published contract
    ("hub/core/dlq.py", "next_stage"),  # which stage consumes a dead letter's source
    ("hub/core/rkw_stages.py", "handover_topic"),  # the name of handovers.<vendor>
    # consumes handovers.<vendor> of the file and http vendors (reads only), opens the outbox
    ("hub/stream/handover_forward.py", "forward_agents"),
}

# Topic name prefixes of what offices read (and the queue that feeds them).
OFFICE_READS = ("fachverfahren.", "deliveries.", "handovers.")


def _is_site(node: ast.AST) -> bool:
    """Producing to, naming, or opening a place another office reads."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith(OFFICE_READS)
    if isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        return isinstance(first, ast.Constant) and str(first.value).startswith(OFFICE_READS)
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    if name in (
        "vendor_topic",
        "delivery_queue",
        "handover_topic",
        "FileDropOutbox",
        "HttpDeliverer",
    ):
        return True
    if isinstance(func, ast.Attribute) and name in ("write", "deliver"):
        receiver = ast.unparse(func.value).lower()
        return "outbox" in receiver or "deliverer" in receiver
    return False


def _sites() -> dict[tuple[str, str], list[int]]:
    """(file, enclosing function) -> lines of every site in hub/ and connectors/ (docstrings aside)."""
    found: dict[tuple[str, str], list[int]] = {}
    for root in ("hub", "connectors"):
        for path in sorted((PROJECT_ROOT / root).rglob("*.py")):
            rel = path.relative_to(PROJECT_ROOT).as_posix()
            tree = ast.parse(path.read_text("utf-8"))

            def visit(node: ast.AST, scope: tuple[str, ...], rel: str = rel) -> None:
                # A docstring mentions topics, it does not send.
                body = getattr(node, "body", None)
                first = body[0] if isinstance(body, list) and body else None
                docstring = first.value if isinstance(first, ast.Expr) else None
                for child in ast.iter_child_nodes(node):
                    if isinstance(child, ast.Expr) and child.value is docstring:
                        continue
                    inner = scope
                    if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                        inner = (*scope, child.name)
                    if _is_site(child):
                        where = ".".join(inner) or "<module>"
                        found.setdefault((rel, where), []).append(child.lineno)
                    visit(child, inner)

            visit(tree, ())
    return found


def _gate_lines(rel: str, function: str, called: str = "ask_gate") -> list[int]:
    """Lines in ``function`` of ``rel`` that call ``called`` (by name or attribute)."""
    tree = ast.parse((PROJECT_ROOT / rel).read_text("utf-8"))
    parts = function.split(".")
    node: ast.AST = tree
    for part in parts:
        node = next(
            n
            for n in ast.walk(node)
            if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            and n.name == part
        )
    return [
        n.lineno
        for n in ast.walk(node)
        if isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", "")) == called
    ]


class TestOneChokePoint:
    def test_only_the_delivery_stage_writes_where_offices_read(self):
        """Vendor topics, delivery queues, the outbox and the http connector: only the known places."""
        found = set(_sites())
        known = SENDERS | FORWARDERS | NAMING_ONLY
        assert found == known, sorted(found ^ known)

    @pytest.mark.parametrize("sender", sorted(SENDERS), ids=lambda s: s[1])
    def test_every_sender_asks_the_gate_before_it_sends(self, sender):
        """In each sending function a call of ask_gate comes before the first send."""
        rel, function = sender
        sends = _sites()[sender]
        gates = _gate_lines(rel, function)
        assert gates, function
        assert min(gates) < min(sends), (gates, sends)

    @pytest.mark.parametrize("forwarder", sorted(FORWARDERS), ids=lambda s: s[1])
    def test_every_forwarder_checks_the_record_before_it_forwards(self, forwarder):
        """In each forwarding function check_message comes before the first write or POST."""
        rel, function = forwarder
        sends = _sites()[forwarder]
        checks = _gate_lines(rel, function, "check_message")
        assert checks, function
        assert min(checks) < min(sends), (checks, sends)

    def test_forwarders_only_read_their_own_vendors_handover_topic(self, hub_context, tmp_path):
        """One agent per file and http vendor, on handovers.<that vendor>; none for a kafka vendor."""
        consumed, agents = [], []
        sender = SimpleNamespace(channel=lambda name: consumed.append(name) or name)
        app = SimpleNamespace(agent=lambda topic, name: lambda fn: agents.append((topic, name)))

        def stage_agent(app, topic, stage, compute, sender, name):
            agents.append((topic, name))

        settings = load({}).in_workspace(tmp_path)
        forward_agents(app, settings, hub_context, sender, stage_agent, lambda *_: None)
        vendors = hub_context.offices.vendors.values()
        expected = sorted(
            f"handovers.{v.vendor_id}" for v in vendors if v.channel in ("file", "http")
        )
        assert expected == sorted(consumed)
        assert [(t, f"handover-forward-{t.split('.')[1]}") for t in expected] == sorted(agents)
        assert "handovers.akdn" not in consumed


# --- property: nothing is sent without an allowing decision at that moment ------------------------

CHANNEL_OFFICES = {
    "kafka": ("akdn", "fv-avro", ["jc-re-marl"]),
    "file": ("openprosoz", "fv-xml", ["soa-marl", "kreis-re-fd59"]),
    "http": ("oksozius", "fv-json", ["kreis-re-elterngeld"]),
}


@st.composite
def _policies(draw, example: Policy) -> Policy:
    kind = draw(st.sampled_from(["strict", "example", "subset"]))
    if kind == "strict":
        return STRICT
    if kind == "example":
        return example
    keep = draw(st.lists(st.sampled_from(example.bases), unique=True))
    return dataclasses.replace(example, bases=tuple(keep))


class TestNothingIsSentWithoutAllow:
    @settings(max_examples=150, deadline=None)
    @given(data=st.data())
    def test_sent_only_after_an_allow_for_that_delivery_at_that_moment(
        self, hub_context, tmp_path_factory, data
    ):
        """For generated deliveries, policies and times, a send is preceded by an allow for it then."""
        channel = data.draw(st.sampled_from(sorted(CHANNEL_OFFICES)))
        vendor, fmt, offices = CHANNEL_OFFICES[channel]
        record = _delivery(
            data.draw(st.sampled_from(offices)),
            vendor,
            fmt,
            file_suffix=".xml",
            categories=data.draw(
                st.none() | st.lists(st.sampled_from(sorted(CATEGORIES)), unique=True, max_size=4)
            ),
            portal=data.draw(st.sampled_from([None, "filedrop", "sozialplattform-nrw", "nowhere"])),
            person=data.draw(st.sampled_from([None, PERSON, "Erika Mustermann"])),
        )
        hub = _gated(hub_context, data.draw(_policies(hub_context.policy)))
        moment = data.draw(
            st.datetimes(
                min_value=dt.datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
                max_value=dt.datetime(2040, 1, 1),  # noqa: DTZ001
                timezones=st.just(dt.UTC),
            )
        )
        decisions = []

        def spy(request, consents, policy, now):
            decision = DECIDE(request, consents, policy, now)
            decisions.append((request, now, decision))
            return decision

        with (
            mock.patch.object(gate, "decide", spy),
            mock.patch("hub.stream.delivery.utcnow", return_value=moment),
        ):
            result, sent = _send(channel, hub, record, tmp_path_factory.mktemp("outbox"))
        # A record without a category list is denied before the gate is asked.
        assert len(decisions) == (0 if record.categories is None else 1)
        allows = [
            d
            for request, asked_at, d in decisions
            if d.outcome is Outcome.ALLOW
            and (request.request_id, request.to_office, asked_at)
            == (record.delivery_id, record.office, moment)
        ]
        assert sent == bool(allows)
        assert sent == (pipeline.gate_delivery(record, hub, moment).outcome is Outcome.ALLOW)
        assert sent == (result.outcome == "delivered")


# --- handover forwarding: a message reaches only the vendor of its office ------------------------

FORWARD_VENDORS = ["openprosoz", "lammkom", "oksozius"]  # file, file, http
FORWARD_OFFICES = [
    "jc-re-marl",  # akdn
    "soa-marl",  # openprosoz
    "kreis-re-abh",  # openprosoz
    "wgs-marl",  # lammkom
    "but-marl",  # oksozius
    "kreis-re-elterngeld",  # oksozius
    "nowhere",
]
HANDOVER_SOURCE = pipeline.SourceRef("sozialhub.handovers.x", 0, 1)


def _handover_event(key: bytes, value: bytes) -> SimpleNamespace:
    message = SimpleNamespace(topic="sozialhub.handovers.x", partition=0, offset=1, key=key)
    message.tp = SimpleNamespace(topic="sozialhub.handovers.x", partition=0)
    return SimpleNamespace(value=value, message=message)


class _FakeForwardDeliverer:
    """Stands in for HttpDeliverer in the forwarder: records each parcel, answers "delivered"."""

    def __init__(self) -> None:
        self.sent: list = []

    async def deliver(self, parcel, on_retry=None) -> SimpleNamespace:
        self.sent.append(parcel)
        return SimpleNamespace(kind="delivered", attempts=1, status=201)

    def clock(self) -> float:
        return 0.0


def _forward(vendor: str, hub, key: bytes, value: bytes, outbox: Path) -> tuple[StageResult, list]:
    """Run the vendor's forwarder on one record: its result and what reached the vendor."""
    event = _handover_event(key, value)
    if hub.offices.vendors[vendor].channel == "file":
        result = file_forwarder(FileDropOutbox(outbox), vendor, hub)(event, HANDOVER_SOURCE)
        return result, sorted(outbox.rglob("rkm-*.json"))
    deliverer = _FakeForwardDeliverer()
    forwarder = HttpForwarder(None, hub.offices.vendors[vendor], hub, None, deliverer, None)  # type: ignore[arg-type]
    return asyncio.run(forwarder._result(event, HANDOVER_SOURCE)), deliverer.sent


class TestForwardersNeverCrossVendors:
    @settings(max_examples=200, deadline=None)
    @given(data=st.data())
    def test_a_message_reaches_only_the_vendor_of_its_office(
        self, hub_context, tmp_path_factory, data
    ):
        """Any record in any forwarder: carried (unchanged) only to its own office's vendor."""
        vendor = data.draw(st.sampled_from(FORWARD_VENDORS))
        office = data.draw(st.sampled_from(FORWARD_OFFICES))
        # A message id made for another office: a record cannot borrow one to reach this vendor.
        made_for = data.draw(st.sampled_from(FORWARD_OFFICES))
        borrowed = message_record(made_for)[0].decode()
        key, value = message_record(office, message_id=borrowed)
        outbox = tmp_path_factory.mktemp("outbox")
        result, sent = _forward(vendor, hub_context, key, value, outbox)
        owner = hub_context.offices.find(office)
        agrees = owner is not None and owner.vendor == vendor and made_for == office
        assert (bool(sent), result.outcome) == (agrees, "forwarded" if agrees else "rejected")
        # The forwarder writes no Kafka record another office reads: audit and dead letters only.
        assert {e.topic for e in result.emits} <= {AUDIT, pipeline.DEAD_LETTER}
        if not agrees:
            letter = decode(result.emits[0].value, DeadLetter)
            assert ("handover-forward", "DELIVERY") == (letter.stage, letter.reason)
            assert letter.path in ("office", "message_id")
            return
        (only,) = sent
        if isinstance(only, Path):
            assert (vendor, office, "handovers") == only.parts[-4:-1]
            assert value == only.read_bytes()
        else:
            assert (vendor, office, value) == (only.vendor, only.office, only.body)
