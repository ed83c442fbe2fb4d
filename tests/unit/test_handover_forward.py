"""Forwarding handovers.<vendor> to vendors on the file and http channels (docs/delivery.md).

The pure parts (the record check, the audit events, the handover endpoint's URL,
the outbox path and ledger) and both forwarders on real records of the examples:
the file forwarder into a temporary outbox, the http forwarder through the real
connector to the vendor simulator on loopback. The broker and a worker process
are in tests/integration/test_handover_forwarding.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest

from connectors.filedrop.outbound import FileDropOutbox, UnsafeName
from connectors.http import HandoverParcel, HttpDeliverer, HttpEndpoint, RetryPolicy, handover_url
from hub import subscriptions
from hub.config import PROJECT_ROOT
from hub.core import handover_forward as forwarding
from hub.core import rkw_stages as stages
from hub.core.delivery import OutagePolicy
from hub.core.errors import Reason, Rejection
from hub.core.fanout import MESSAGE_TYPE, message_id
from hub.core.pipeline import AUDIT, DEAD_LETTER, StageResult
from hub.core.records import AuditEvent, DeadLetter, SourceRef, decode
from hub.sim.vendor import VendorSimulator
from hub.stream.handover_forward import HttpForwarder, file_forwarder
from tests.rkw_support import example, message_record

pytestmark = pytest.mark.timeout(60)

NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
SOURCE = SourceRef("sozialhub.handovers.openprosoz", 0, 7)
SCHEMA = PROJECT_ROOT / "schemas" / "hub" / "audit-event-1.schema.json"
PERSONAL = "Erika Mustermann"


@pytest.fixture(scope="module")
def subscribed(settings, office_table):
    return subscriptions.load(
        subscriptions.default_path(settings), settings.schema_dir, office_table
    )


@pytest.fixture(scope="module")
def sent_records(hub_context, subscribed) -> dict[str, tuple[str, bytes, bytes]]:
    """Office -> (vendor topic, key, value) of every message the Dorsten example sends.

    SGB II (jc-re-dorsten, akdn) to SGB XII (soa-dorsten, openprosoz), no consent:
    a notice for the new office, a confirmation for the old one, an information for
    the Wohngeldstelle (lammkom); the BuT office (oksozius) is withheld.
    """
    value = example("03-retirement-dorsten.json").read_bytes()
    person = json.loads(value)["person"]
    planned, _ = stages.plan(person.encode(), value, hub_context, subscribed, lambda _p: (), NOW)
    found = {}
    for queued in (e for e in planned.emits if e.topic == stages.OUTBOX):
        result = stages.send(queued.value, hub_context, subscribed, lambda _p: (), NOW)
        for emit in result.emits:
            if emit.topic.startswith("handovers."):
                office = json.loads(emit.value)["office"]
                found[office] = (emit.topic, emit.key.encode("ascii"), emit.value)
    assert {"soa-dorsten", "jc-re-dorsten", "wgs-dorsten"} == set(found)
    return found


def _event(key: bytes | None, value: bytes) -> SimpleNamespace:
    message = SimpleNamespace(topic=SOURCE.topic, partition=0, offset=7, key=key)
    message.tp = SimpleNamespace(topic=SOURCE.topic, partition=0)
    return SimpleNamespace(value=value, message=message)


def _audits(result: StageResult) -> list[AuditEvent]:
    return [decode(e.value, AuditEvent) for e in result.emits if e.topic == AUDIT]


# --- the record check ------------------------------------------------------------------------------


class TestCheckMessage:
    def test_a_sent_record_for_an_own_office_passes_unchanged(self, office_table, sent_records):
        """The record rkw_stages.send wrote, in its vendor's forwarder: checked, bytes kept."""
        topic, key, value = sent_records["soa-dorsten"]
        assert "handovers.openprosoz" == topic
        checked = forwarding.check_message(key, value, "openprosoz", office_table)
        body = json.loads(value)
        assert (body["message_id"], body["event_id"], "soa-dorsten", "openprosoz", "notice") == (
            checked.message_id,
            checked.event_id,
            checked.office,
            checked.vendor,
            checked.kind,
        )
        assert value == checked.record
        assert f"{body['event_id']}/{body['message_id']}" == checked.path

    @pytest.mark.parametrize("kind", ["handover", "notice", "confirmation", "information"])
    def test_every_deliverable_kind_passes(self, office_table, kind):
        key, value = message_record("soa-marl", kind=kind)
        assert kind == forwarding.check_message(key, value, "openprosoz", office_table).kind

    @pytest.mark.parametrize(
        ("record", "path"),
        [
            pytest.param((b"rkm-x", b"not json"), "json", id="not-json"),
            pytest.param((b"rkm-x", b"[1]"), "type", id="not-an-object"),
            pytest.param(message_record("soa-marl", type="sozialhub.delivery"), "type", id="type"),
            pytest.param(message_record("soa-marl", v=2), "type", id="version"),
            pytest.param(message_record("soa-marl", message_id="dlv-" + "a" * 32), "message_id"),
            pytest.param(message_record("soa-marl", message_id=7), "message_id", id="id-type"),
            pytest.param(message_record("soa-marl", event_id="rkw-1"), "event_id", id="event-id"),
            pytest.param(message_record("soa-marl", office=PERSONAL), "office", id="office-shape"),
            pytest.param(message_record("soa-marl", kind="withheld"), "kind", id="withheld"),
            pytest.param(message_record("soa-marl", kind=PERSONAL), "kind", id="kind"),
            pytest.param(message_record("soa-marl", body=None), "body", id="no-body"),
            pytest.param(message_record("soa-marl", body=[PERSONAL]), "body", id="body-list"),
        ],
    )
    def test_a_malformed_record_is_refused_at_its_field(self, office_table, record, path):
        with pytest.raises(Rejection) as caught:
            forwarding.check_message(*record, "openprosoz", office_table)
        assert (Reason.DELIVERY, path) == (caught.value.reason, caught.value.path)

    def test_the_key_must_be_the_message_id(self, office_table):
        _, value = message_record("soa-marl")
        for key in (None, b"", b"rkm-" + b"0" * 32):
            with pytest.raises(Rejection) as caught:
                forwarding.check_message(key, value, "openprosoz", office_table)
            assert "key" == caught.value.path

    @pytest.mark.parametrize(
        ("office", "vendor"),
        [
            ("wgs-marl", "openprosoz"),  # lammkom's office in openprosoz's topic
            ("but-marl", "openprosoz"),  # oksozius's office
            ("jc-re-marl", "lammkom"),  # akdn's office
            ("soa-marl", "oksozius"),  # openprosoz's office in the http vendor's topic
            ("amt-unbekannt", "openprosoz"),  # not in the office table
        ],
    )
    def test_another_vendors_or_an_unknown_office_is_refused(self, office_table, office, vendor):
        key, value = message_record(office)
        with pytest.raises(Rejection) as caught:
            forwarding.check_message(key, value, vendor, office_table)
        assert (Reason.DELIVERY, "office") == (caught.value.reason, caught.value.path)

    def test_a_message_id_cannot_be_borrowed_from_another_office(self, office_table):
        """The id binds event and office: an own office with another office's id is refused."""
        others = message_id("rkw-" + "e" * 32, "jc-re-marl")
        key, value = message_record("soa-marl", message_id=others)
        with pytest.raises(Rejection) as caught:
            forwarding.check_message(key, value, "openprosoz", office_table)
        assert "message_id" == caught.value.path


class TestRejectedRecords:
    def test_the_dead_letter_never_echoes_the_record(self, hub_context, tmp_path):
        """A foreign record with personal text: DELIVERY dead letter and audit, no value quoted."""
        key, value = message_record("wgs-marl", note=PERSONAL)
        forward = file_forwarder(FileDropOutbox(tmp_path), "openprosoz", hub_context)
        result = forward(_event(key, value), SOURCE)
        assert "rejected" == result.outcome
        assert [DEAD_LETTER, AUDIT] == [e.topic for e in result.emits]
        letter = decode(result.emits[0].value, DeadLetter)
        assert ("handover-forward", "DELIVERY", "office", SOURCE) == (
            letter.stage,
            letter.reason,
            letter.path,
            letter.source,
        )
        (event,) = _audits(result)
        assert ("handover-forward", "rejected", "openprosoz", "file", None, None) == (
            event.stage,
            event.decision,
            event.vendor,
            event.channel,
            event.office,  # not vouched for: left out
            event.message_id,
        )
        assert all(PERSONAL.encode() not in e.value for e in result.emits)
        assert [] == list(tmp_path.rglob("*.json"))

    def test_rejected_names_a_checked_message(self, office_table):
        key, value = message_record("soa-marl")
        checked = forwarding.check_message(key, value, "openprosoz", office_table)
        result = forwarding.rejected(
            Rejection(Reason.DELIVERY, "http/422"),
            SOURCE,
            NOW,
            vendor_id="openprosoz",
            channel="http",
            message=checked,
        )
        (event,) = _audits(result)
        assert ("soa-marl", checked.message_id, "http/422") == (
            event.office,
            event.message_id,
            event.path,
        )


# --- the handover endpoint -----------------------------------------------------------------------


class TestHandoverUrl:
    @pytest.mark.parametrize(
        ("template", "expected"),
        [
            (
                "https://fv.oksozius.example/api/v1/offices/{office}/cases",
                "https://fv.oksozius.example/api/v1/offices/{office}/handovers",
            ),
            ("https://fv.example/intake/{office}", "https://fv.example/intake/{office}/handovers"),
            ("https://fv.example/intake/{office}/", "https://fv.example/intake/{office}/handovers"),
            (
                "https://fv.example:8443/cases?amt={office}",
                "https://fv.example:8443/handovers?amt={office}",
            ),
            (
                "http://127.0.0.1:8080/offices/{office}/cases",
                "http://127.0.0.1:8080/offices/{office}/handovers",
            ),
            ("/offices/{office}/cases", "/offices/{office}/handovers"),
            ("https://fv.example", "https://fv.example/handovers"),
        ],
    )
    def test_beside_the_case_path(self, template, expected):
        assert expected == handover_url(template)

    def test_the_endpoint_keeps_credentials_and_timings(self, tmp_path):
        cert = tmp_path / "client.crt"
        endpoint = HttpEndpoint(
            vendor="oksozius",
            url="https://fv.example/api/offices/{office}/cases",
            timeout=3.0,
            retry=RetryPolicy(max_attempts=2),
            client_cert=cert,
            health_url="https://fv.example/health",
        )
        handovers = endpoint.for_handovers()
        assert "https://fv.example/api/offices/soa-marl/handovers" == handovers.url_for("soa-marl")
        assert (3.0, endpoint.retry, cert, endpoint.health_url) == (
            handovers.timeout,
            handovers.retry,
            handovers.client_cert,
            handovers.health_url,
        )


# --- the outbox ------------------------------------------------------------------------------------


class TestOutboxPath:
    def test_path_naming(self, tmp_path):
        outbox = FileDropOutbox(tmp_path)
        mid = "rkm-" + "0" * 32
        target = outbox.handover_target("openprosoz", "soa-marl", mid, "notice")
        folder = tmp_path / "openprosoz" / "soa-marl" / "handovers"
        assert folder / f"{mid}.notice.json" == target

    @pytest.mark.parametrize(
        ("vendor", "office", "mid", "kind"),
        [
            ("openprosoz", "../soa-marl", "rkm-" + "0" * 32, "notice"),
            ("Openprosoz", "soa-marl", "rkm-" + "0" * 32, "notice"),
            ("openprosoz", "soa-marl", "../../etc/passwd", "notice"),
            ("openprosoz", "soa-marl", "", "notice"),
            ("openprosoz", "soa-marl", "rkm-" + "0" * 32, "../x"),
        ],
    )
    def test_unsafe_components_are_refused(self, tmp_path, vendor, office, mid, kind):
        with pytest.raises(UnsafeName):
            FileDropOutbox(tmp_path).handover_target(vendor, office, mid, kind)

    def test_a_symlinked_office_directory_is_refused(self, tmp_path):
        outside = tmp_path / "elsewhere"
        outside.mkdir()
        root = tmp_path / "outbox"
        (root / "openprosoz").mkdir(parents=True)
        (root / "openprosoz" / "soa-marl").symlink_to(outside)
        with pytest.raises(UnsafeName):
            FileDropOutbox(root).handover_target(
                "openprosoz", "soa-marl", "rkm-" + "0" * 32, "notice"
            )

    def test_written_once_and_remembered_in_the_vendors_ledger(self, tmp_path):
        """A second write is a duplicate, also after the import job took the file away."""
        outbox = FileDropOutbox(tmp_path)
        mid = "rkm-" + "1" * 32
        target = outbox.handover_target("lammkom", "wgs-marl", mid, "information")
        assert outbox.write(target, b"{}")
        assert (tmp_path / ".delivered" / "lammkom" / f"{mid}.information").is_file()
        assert not outbox.write(target, b"{}")
        target.unlink()
        assert not outbox.write(target, b"{}")
        assert not target.exists()
        # A delivery's marker stays where it always was.
        did = "dlv-" + "2" * 32
        assert outbox.write(outbox.target("lammkom", "wgs-marl", did, ".dat"), b"x")
        assert (tmp_path / ".delivered" / "lammkom" / did).is_file()

    def test_the_sweep_removes_temporaries_in_the_handover_folder(self, tmp_path):
        folder = tmp_path / "openprosoz" / "soa-marl" / "handovers"
        folder.mkdir(parents=True)
        stale = folder / ".otherhost-1-abc.part"
        stale.write_bytes(b"half")
        old = 1_000_000.0
        os.utime(stale, (old, old))
        assert 1 == FileDropOutbox(tmp_path).sweep(now=old + 7200)
        assert not stale.exists()


# --- the file forwarder ----------------------------------------------------------------------------


class TestFileForwarder:
    @pytest.mark.parametrize(
        ("office", "vendor"), [("soa-dorsten", "openprosoz"), ("wgs-dorsten", "lammkom")]
    )
    def test_the_exact_record_lands_once_in_the_vendors_outbox(
        self, hub_context, sent_records, tmp_path, office, vendor
    ):
        topic, key, value = sent_records[office]
        assert f"handovers.{vendor}" == topic
        forward = file_forwarder(FileDropOutbox(tmp_path), vendor, hub_context)
        first = forward(_event(key, value), SOURCE)
        mid = key.decode()
        kind = json.loads(value)["kind"]
        written = tmp_path / vendor / office / "handovers" / f"{mid}.{kind}.json"
        assert "forwarded" == first.outcome
        assert value == written.read_bytes()
        again = forward(_event(key, value), SOURCE)
        assert "duplicate" == again.outcome
        assert [written] == sorted(tmp_path.glob("*/*/handovers/*"))
        assert [] == list(tmp_path.rglob(".*.part"))
        (forwarded,) = _audits(first)
        (duplicate,) = _audits(again)
        body = json.loads(value)
        assert ("handover", "forwarded", "duplicate") == (
            forwarded.stage,
            forwarded.decision,
            duplicate.decision,
        )
        for event in (forwarded, duplicate):
            assert (office, vendor, "file", mid, f"{body['event_id']}/{mid}") == (
                event.office,
                event.vendor,
                event.channel,
                event.message_id,
                event.path,
            )
            assert (None, None, None) == (event.person, event.categories, event.delivery_id)
        # Deterministic: the same decision on the same message repeats its event id.
        replay = file_forwarder(FileDropOutbox(tmp_path / "other"), vendor, hub_context)
        assert forwarded.event_id == _audits(replay(_event(key, value), SOURCE))[0].event_id

    def test_each_message_id_and_kind_once_another_kind_supersedes(self, hub_context, tmp_path):
        """The topic's contract: sent again with other bytes, a duplicate; another kind, a new file."""
        key, notice = message_record("soa-marl")
        _, again = message_record("soa-marl", decision={"decided_at": "a later decision"})
        _, handover = message_record("soa-marl", kind="handover", categories=["household"])
        forward = file_forwarder(FileDropOutbox(tmp_path), "openprosoz", hub_context)
        results = [forward(_event(key, v), SOURCE) for v in (notice, again, handover)]
        assert ["forwarded", "duplicate", "forwarded"] == [r.outcome for r in results]
        folder = tmp_path / "openprosoz" / "soa-marl" / "handovers"
        mid = key.decode()
        assert [f"{mid}.handover.json", f"{mid}.notice.json"] == sorted(
            p.name for p in folder.iterdir()
        )
        assert (notice, handover) == (
            (folder / f"{mid}.notice.json").read_bytes(),
            (folder / f"{mid}.handover.json").read_bytes(),
        )
        first, _, superseding = (_audits(r)[0] for r in results)
        assert first.event_id != superseding.event_id  # not deduplicated away on the audit log

    def test_another_vendors_message_is_not_written(self, hub_context, sent_records, tmp_path):
        """lammkom's forwarder refuses openprosoz's notice: DELIVERY office, nothing on disk."""
        _, key, value = sent_records["soa-dorsten"]
        result = file_forwarder(FileDropOutbox(tmp_path), "lammkom", hub_context)(
            _event(key, value), SOURCE
        )
        assert ("rejected", "DELIVERY") == (result.outcome, result.reason)
        assert "office" == decode(result.emits[0].value, DeadLetter).path
        assert [] == list(tmp_path.rglob("*.json"))

    def test_the_audit_events_follow_the_schema(self, hub_context, sent_records, tmp_path):
        validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text("utf-8")))
        _, key, value = sent_records["wgs-dorsten"]
        forward = file_forwarder(FileDropOutbox(tmp_path), "lammkom", hub_context)
        results = [forward(_event(key, value), SOURCE) for _ in range(2)]
        results.append(forward(_event(key, b"{}"), SOURCE))
        for result in results:
            for emit in result.emits:
                if emit.topic == AUDIT:
                    assert [] == list(validator.iter_errors(json.loads(emit.value)))


# --- the http forwarder through the connector to the simulator ----------------------------------


class _Consumer:
    def __init__(self) -> None:
        self.paused: list[Any] = []
        self.resumed: list[Any] = []

    def pause_partitions(self, partitions: list[Any]) -> None:
        self.paused.extend(partitions)

    def resume_partitions(self, partitions: list[Any]) -> None:
        self.resumed.extend(partitions)


class _Sender:
    def __init__(self) -> None:
        self.emits: list[Any] = []

    async def send_all(self, emits: Any) -> None:
        self.emits.extend(emits)


QUICK = RetryPolicy(max_attempts=3, initial_s=0.01, max_s=0.02)
QUICK_OUTAGE = OutagePolicy(probe_initial_s=0.02, probe_max_s=0.05, max_outage_s=0.5)


async def _forward_http(
    hub: Any,
    sim: VendorSimulator,
    records: list[tuple[bytes, bytes]],
    outage: OutagePolicy = QUICK_OUTAGE,
) -> tuple[list[StageResult], _Sender, _Consumer]:
    endpoint = HttpEndpoint(
        vendor="oksozius", url=sim.url_template, retry=QUICK, health_url=sim.health_url
    ).for_handovers()
    consumer, sender = _Consumer(), _Sender()
    app = SimpleNamespace(consumer=consumer)
    async with HttpDeliverer(endpoint) as deliverer:
        forwarder = HttpForwarder(
            app,
            hub.offices.vendors["oksozius"],
            hub,
            sender,
            deliverer,
            outage,  # type: ignore[arg-type]
        )
        results = [await forwarder._result(_event(k, v), SOURCE) for k, v in records]
    return results, sender, consumer


class TestHttpForwarder:
    def test_booked_once_although_the_endpoint_failed_first(self, hub_context):
        """503, then an answer lost after booking: retried, replayed, one booking; again: duplicate."""
        key, value = message_record("but-marl", kind="information")

        async def scenario() -> Any:
            async with VendorSimulator() as sim:
                sim.fail_next(status=503)
                sim.fail_next(mode="lose_answer")
                results, sender, _ = await _forward_http(
                    hub_context, sim, [(key, value), (key, value)]
                )
                return results, sender, dict(sim.handovers), dict(sim.bookings), sim.statuses

        results, sender, handovers, cases, statuses = asyncio.run(scenario())
        mid = key.decode()
        assert {} == cases
        assert [f"{mid}.information"] == list(handovers)
        booking = handovers[f"{mid}.information"]
        assert ("but-marl", 1, hashlib.sha256(value).hexdigest()) == (
            booking.office,
            booking.booked,
            booking.body_sha256,
        )
        assert ["duplicate", "duplicate"] == [r.outcome for r in results]
        first, second = (_audits(r)[0] for r in results)
        assert ("handover", "duplicate", "http", 3, 201) == (
            first.stage,
            first.decision,
            first.channel,
            first.attempt,
            first.status,
        )
        assert (1, 201) == (second.attempt, second.status)
        retried = [decode(e.value, AuditEvent) for e in sender.emits]
        assert [("retried", 1, 503), ("retried", 2, None)] == [
            (e.decision, e.attempt, e.status) for e in retried
        ]
        assert all(
            (e.message_id, e.office, e.vendor) == (mid, "but-marl", "oksozius") for e in retried
        )
        assert (f"{mid}.information", 503) == statuses[0]

    def test_another_kind_is_booked_the_same_kind_replayed(self, hub_context):
        """Notice, the notice decided again (other bytes), then a handover: two bookings."""
        key, notice = message_record("but-marl")
        _, again = message_record("but-marl", decision={"decided_at": "a later decision"})
        _, handover = message_record("but-marl", kind="handover", categories=["household"])

        async def scenario() -> Any:
            async with VendorSimulator() as sim:
                records = [(key, notice), (key, again), (key, handover)]
                results, _, _ = await _forward_http(hub_context, sim, records)
                return results, dict(sim.handovers)

        results, handovers = asyncio.run(scenario())
        mid = key.decode()
        assert ["forwarded", "duplicate", "forwarded"] == [r.outcome for r in results]
        assert [f"{mid}.handover", f"{mid}.notice"] == sorted(handovers)
        assert hashlib.sha256(notice).hexdigest() == handovers[f"{mid}.notice"].body_sha256

    def test_a_first_booking_is_forwarded(self, hub_context):
        key, value = message_record("kreis-re-elterngeld", kind="information")

        async def scenario() -> Any:
            async with VendorSimulator() as sim:
                results, _, _ = await _forward_http(hub_context, sim, [(key, value)])
                return results, sim.handover_snapshot()

        (result,), snapshot = asyncio.run(scenario())
        assert "forwarded" == result.outcome
        assert ("forwarded", 1, 201) == (
            _audits(result)[0].decision,
            _audits(result)[0].attempt,
            _audits(result)[0].status,
        )
        assert {"requests": 1, "handovers": 1, "replays": 0, "booked_twice": []} == snapshot

    def test_a_permanent_refusal_is_a_dead_letter(self, hub_context):
        key, value = message_record("but-marl")

        async def scenario() -> Any:
            async with VendorSimulator() as sim:
                sim.fail_next(status=404)
                results, _, _ = await _forward_http(hub_context, sim, [(key, value)])
                return results, dict(sim.handovers)

        (result,), handovers = asyncio.run(scenario())
        assert ({}, "rejected") == (handovers, result.outcome)
        letter = decode(result.emits[0].value, DeadLetter)
        assert ("handover-forward", "DELIVERY", "http/404") == (
            letter.stage,
            letter.reason,
            letter.path,
        )

    def test_paused_while_down_then_forwarded(self, hub_context):
        """Down: the partition is paused and probed; back up: the same message is booked."""
        key, value = message_record("but-marl")

        async def scenario() -> Any:
            async with VendorSimulator() as sim:
                sim.outage(0.2)
                results, _, consumer = await _forward_http(
                    hub_context, sim, [(key, value)], OutagePolicy(0.02, 0.05, 30.0)
                )
                return results, consumer, dict(sim.handovers)

        (result,), consumer, handovers = asyncio.run(scenario())
        assert "forwarded" == result.outcome
        assert [f"{key.decode()}.notice"] == list(handovers)
        assert len(consumer.paused) == len(consumer.resumed) >= 1

    def test_an_outage_longer_than_the_maximum_is_a_dead_letter(self, hub_context):
        key, value = message_record("but-marl")

        async def scenario() -> Any:
            async with VendorSimulator() as sim:
                sim.down()
                results, _, _ = await _forward_http(hub_context, sim, [(key, value)])
                return results, dict(sim.handovers)

        (result,), handovers = asyncio.run(scenario())
        assert ({}, "rejected") == (handovers, result.outcome)
        assert "http/unavailable" == decode(result.emits[0].value, DeadLetter).path

    def test_another_vendors_message_is_never_posted(self, hub_context):
        key, value = message_record("soa-marl")

        async def scenario() -> Any:
            async with VendorSimulator() as sim:
                results, _, _ = await _forward_http(hub_context, sim, [(key, value)])
                return results, sim.handover_requests

        (result,), requests = asyncio.run(scenario())
        assert (0, "rejected") == (requests, result.outcome)

    def test_the_request_carries_the_record_and_the_message_id(self):
        """The connector POSTs the bytes as they are, application/json, keyed by the message id."""
        key, value = message_record("but-marl")
        seen: dict[str, Any] = {}

        async def scenario() -> Any:
            from aiohttp import web

            async def handler(request: web.Request) -> web.Response:
                seen.update(
                    path=request.path,
                    headers=dict(request.headers),
                    body=await request.read(),
                )
                return web.json_response({"bookingId": "H-1"}, status=201)

            app = web.Application()
            app.router.add_post("/api/offices/{office}/handovers", handler)
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            endpoint = HttpEndpoint(
                vendor="oksozius", url=f"http://127.0.0.1:{port}/api/offices/{{office}}/cases"
            ).for_handovers()
            try:
                async with HttpDeliverer(endpoint) as deliverer:
                    return await deliverer.deliver(
                        HandoverParcel(key.decode(), "notice", "but-marl", "oksozius", value)
                    )
            finally:
                await runner.cleanup()

        outcome = asyncio.run(scenario())
        assert ("delivered", "H-1") == (outcome.kind, outcome.vendor_reference)
        assert "/api/offices/but-marl/handovers" == seen["path"]
        assert value == seen["body"]
        assert "application/json" == seen["headers"]["Content-Type"]
        assert f'"{key.decode()}.notice"' == seen["headers"]["Idempotency-Key"]
        assert "X-Sozialhub-Mapping-Version" not in seen["headers"]

    def test_a_parcel_for_another_vendor_is_refused_without_a_request(self):
        key, value = message_record("but-marl")
        endpoint = HttpEndpoint(vendor="oksozius", url="https://fv.example/{office}/cases")

        def parcel(**changes: str) -> HandoverParcel:
            fields = {"message_id": key.decode(), "kind": "notice", "office": "but-marl"}
            fields |= {"vendor": "oksozius"} | changes
            return HandoverParcel(body=value, **fields)

        async def scenario() -> Any:
            async with HttpDeliverer(endpoint.for_handovers()) as deliverer:
                return [
                    await deliverer.attempt(parcel(vendor="akdn")),
                    await deliverer.attempt(parcel(message_id="dlv-" + "0" * 32)),
                    await deliverer.attempt(parcel(kind="Notice!")),
                    await deliverer.attempt(parcel(office="../x")),
                ]

        refused = asyncio.run(scenario())
        assert ["vendor", "message_id", "kind", "office"] == [r.error for r in refused]


# --- the vendor simulator's handover endpoint ------------------------------------------------------


class TestSimulatorHandovers:
    def test_books_each_message_id_and_kind_once_and_answers_replays(self):
        """Same key: a replay, also with other bytes (a new decision time); another kind: booked."""
        key, value = message_record("but-marl")
        _, later = message_record("but-marl", decision={"decided_at": "later"})
        _, handover = message_record("but-marl", kind="handover")

        async def scenario() -> Any:
            import aiohttp

            async with VendorSimulator() as sim, aiohttp.ClientSession() as session:
                url = sim.handover_url_template.replace("{office}", "but-marl")
                notice = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": f'"{key.decode()}.notice"',
                }
                superseding = {**notice, "Idempotency-Key": f'"{key.decode()}.handover"'}
                answers = []
                for body, head in (
                    (value, notice),
                    (value, notice),
                    (later, notice),
                    (handover, superseding),
                ):
                    async with session.post(url, data=body, headers=head) as response:
                        answers.append(
                            (response.status, response.headers.get("Idempotent-Replayed"))
                        )
                wrong_office = sim.handover_url_template.replace("{office}", "but-dorsten")
                async with session.post(wrong_office, data=value, headers=notice) as response:
                    answers.append((response.status, None))
                for other in (
                    '"rkm-' + "9" * 32 + '.notice"',
                    f'"{key.decode()}"',
                    f'"{key.decode()}.handover"',
                ):
                    async with session.post(
                        url, data=value, headers={**notice, "Idempotency-Key": other}
                    ) as response:
                        answers.append((response.status, None))
                return answers, sim.handover_snapshot(), sim.snapshot()

        answers, handovers, cases = asyncio.run(scenario())
        assert [
            (201, None),
            (201, "true"),
            (201, "true"),
            (201, None),
            (422, None),
            (422, None),
            (422, None),
            (422, None),
        ] == answers
        assert {"requests": 8, "handovers": 2, "replays": 2, "booked_twice": []} == handovers
        assert (0, 0) == (cases["requests"], cases["bookings"])

    def test_the_handover_path_sits_beside_the_case_path(self):
        assert "/offices/{office}/handovers" == VendorSimulator().handover_path
        custom = VendorSimulator(path="/api/{office}/cases", handover_path="/api/{office}/rkw")
        assert "/api/{office}/rkw" == custom.handover_path
        with pytest.raises(ValueError):
            VendorSimulator(handover_path="/handovers")

    def test_a_body_that_is_no_message_is_refused(self):
        async def scenario() -> Any:
            import aiohttp

            async with VendorSimulator() as sim, aiohttp.ClientSession() as session:
                url = sim.handover_url_template.replace("{office}", "but-marl")
                head = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": '"rkm-' + "1" * 32 + '.notice"',
                }
                body = json.dumps({"type": MESSAGE_TYPE + "x"}).encode()
                async with session.post(url, data=body, headers=head) as response:
                    return response.status, dict(sim.handovers)

        assert (422, {}) == asyncio.run(scenario())


def test_forwarding_writes_only_where_its_vendor_reads(sent_records):
    """The kafka vendor's message (jc-re-dorsten, akdn) has no forwarder: it reads the topic itself."""
    assert "handovers.akdn" == sent_records["jc-re-dorsten"][0]
    assert "kafka" not in forwarding.FORWARD_CHANNELS
