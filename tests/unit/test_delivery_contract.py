"""Delivery channels: a record reaches its own vendor only, never through producer headers.

Routing reads validated content and the office table, never Kafka headers; the
delivery stages send a record only to the channel of the queue it was read from,
and only if the record agrees with the office table.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import hashlib
import inspect
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.filedrop.outbound import FileDropOutbox, UnsafeName
from hub.config import PROJECT_ROOT
from hub.core import pipeline
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import AUDIT, delivery_queue, vendor_topic
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
from hub.stream.delivery import file_channel, kafka_channel

NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)
EXAMPLES = PROJECT_ROOT / "examples" / "submissions"
SOURCE = pipeline.SourceRef("sozialhub.deliveries.x", 0, 1)


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
                pipeline.forward(record, queue, hub_context.offices, NOW)
            assert caught.value.reason is Reason.DELIVERY
            return
        result = pipeline.forward(record, queue, hub_context.offices, NOW)
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
        forwarded, audit = result.emits
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
