"""The per-person transparency report (hub.core.audit_report), from audit events the core emits.

The events are made by the real builders: consent changes by the consent registry
step (``consent_registry.audit_of``), Rechtskreiswechsel messages by the stages
with the real gate (``rkw_stages.plan``/``send``), deliveries by the delivery gate
and ``pipeline.delivered``. Only hostile values in the HTML test are hand-made.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import pytest

from hub import subscriptions
from hub.core import audit_report, consent, consent_registry, pipeline
from hub.core import rkw_stages as stages
from hub.core.gate import Policy
from hub.core.records import AuditEvent, Delivery, decode
from tests.rkw_support import example

EVENT = example("01-recognition-marl.json").read_bytes()
PERSON = json.loads(EVENT)["person"]  # psn-k2026-…
EARLIER_KEY = "psn-k2025-" + "5" * 32  # the same person under the key before a rotation
STRANGER = "psn-k2026-" + "e" * 32
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)
YEARS_2 = audit_report.DEFAULT_RETENTION


@pytest.fixture(scope="module")
def subscribed(settings, office_table):
    return subscriptions.load(
        subscriptions.default_path(settings), settings.schema_dir, office_table
    )


def audits(emits) -> list[AuditEvent]:
    return [decode(e.value, AuditEvent) for e in emits if e.topic == pipeline.AUDIT]


def grant(person: str = PERSON, at: dt.datetime = T0, **changes) -> consent.ConsentEvent:
    fields = {
        "person": person,
        "granting_office": "soa-marl",
        "recipients": ["jc-re-marl"],
        "purpose": "rechtskreiswechsel-handover",
        "categories": ["household", "income", "residence-status"],
        "text_version": "rkw-marl-2025-01",
        "channel": "paper",
        "scan_ref": "dms:soa-marl:2026/03/0412",
        "collected_at": at,
    }
    return consent.grant(**(fields | changes))


def revoke(given: consent.ConsentEvent, at: dt.datetime) -> consent.ConsentEvent:
    return consent.revoke(
        person=given.person,
        record_id=given.record_id,
        effective_at=at,
        channel="oral",
        note="desk 3",
    )


def logged(*events: consent.ConsentEvent) -> list[AuditEvent]:
    """The consent registry's audit events, each processed when it was recorded."""
    return audits(consent_registry.audit_of(e, e.recorded_at) for e in events)


def handover_sent(hub, subscribed, consent_events, at: dt.datetime) -> list[AuditEvent]:
    """Plan and send the example event at ``at`` with the person's consents as they are then."""
    folded = tuple(consent.fold(consent_events).values())

    def states(person: str):
        return folded if person == PERSON else ()

    planned, _ = stages.plan(PERSON.encode(), EVENT, hub, subscribed, states, at)
    emits = list(planned.emits)
    for emit in planned.emits:
        if emit.topic == stages.OUTBOX and json.loads(emit.value)["office"] == "jc-re-marl":
            emits += stages.send(emit.value, hub, subscribed, states, at).emits
    return audits(emits)


def delivery(person: str = PERSON, digit: str = "d") -> Delivery:
    return Delivery(
        delivery_id="dlv-" + digit * 32,
        submission_id="sub-" + "5" * 32,
        received_at="2026-11-02T09:14:00.000Z",
        office="jc-re-recklinghausen",
        vendor="akdn",
        format="fv-avro",
        mapping_version="fv-avro/1.0.0",
        media_type="application/octet-stream",
        file_suffix=".avro",
        body_b64="",
        categories=["identity-address", "documents"],
        portal="sozialplattform-nrw",
        person=person,
    )


def delivered(hub, at: dt.datetime, person: str = PERSON) -> list[AuditEvent]:
    record = delivery(person)
    allowed = pipeline.ask_gate(record, hub, at, channel="kafka")
    done = pipeline.delivered(
        record, at + dt.timedelta(seconds=1), duplicate=False, channel="kafka"
    )
    return audits([allowed, done])


def report(events, persons=(PERSON,), retention=YEARS_2) -> dict:
    return audit_report.build_report(events, frozenset(persons), NOW, retention)


class TestTransfers:
    def test_a_handover_lists_office_categories_purpose_basis_and_consents(
        self, hub_context, subscribed
    ):
        given = grant()
        at = NOW - 10 * DAY
        events = [*logged(given), *handover_sent(hub_context, subscribed, [given], at)]
        (transfer,) = report(events)["transfers"]
        assert transfer["to_office"] == "jc-re-marl"
        assert transfer["from_office"] == "soa-marl"
        assert transfer["purpose"] == "rechtskreiswechsel-handover"
        assert transfer["kind"] == "rechtskreiswechsel"
        assert transfer["at"] == "2026-11-21T12:00:00.000Z"
        assert set(transfer["categories"]) <= {"household", "income", "residence-status"}
        assert transfer["categories"]
        assert transfer["basis"] == {
            "kind": "consent",
            "id": given.record_id,
            "legal_reference": hub_context.policy.consent_legal_reference,
        }
        assert [(c["record_id"], c["covers_transfer"]) for c in transfer["consents"]] == [
            (given.record_id, True)
        ]
        assert transfer["consents_at_decision"] == [given.record_id]

    def test_a_delivery_takes_its_basis_from_the_gate_decision(self, hub_context):
        (transfer,) = report(delivered(hub_context, NOW - DAY))["transfers"]
        assert (transfer["kind"], transfer["reference"]) == ("delivery", "dlv-" + "d" * 32)
        assert (transfer["from_office"], transfer["to_office"]) == (
            "sozialplattform-nrw",
            "jc-re-recklinghausen",
        )
        assert transfer["categories"] == ["documents", "identity-address"]
        assert transfer["purpose"] == "application-delivery"
        assert transfer["basis"]["kind"] == "statute"
        assert transfer["basis"]["id"] == "application-delivery"
        assert transfer["at"] == "2026-11-30T12:00:01.000Z"  # delivered, not asked

    def test_a_repeated_event_and_a_duplicate_delivery_are_one_transfer(self, hub_context):
        events = delivered(hub_context, NOW - DAY)
        again = audits([pipeline.delivered(delivery(), NOW, duplicate=True, channel="kafka")])
        assert len(report([*events, *events, *again])["transfers"]) == 1

    def test_every_pseudonym_of_the_person_and_nobody_else(self, hub_context):
        mine = delivered(hub_context, NOW - DAY)
        before_rotation = audits(
            [pipeline.delivered(delivery(EARLIER_KEY, "a"), NOW - 300 * DAY, duplicate=False)]
        )
        theirs = audits(
            [
                pipeline.delivered(
                    delivery(STRANGER, "b"), NOW - 2 * DAY, duplicate=False, channel="kafka"
                )
            ]
        )
        events = [*mine, *before_rotation, *theirs]
        both = report(events, (PERSON, EARLIER_KEY))
        assert [t["at"][:10] for t in both["transfers"]] == ["2026-02-04", "2026-11-30"]
        assert len(report(events)["transfers"]) == 1
        assert both["persons"] == sorted((PERSON, EARLIER_KEY))


class TestRetention:
    def test_a_transfer_outside_the_window_is_not_listed(self, hub_context):
        old = delivered(hub_context, NOW - YEARS_2 - DAY)
        recent = audits(
            [
                pipeline.delivered(
                    dataclasses.replace(delivery(), delivery_id="dlv-" + "e" * 32),
                    NOW - DAY,
                    duplicate=False,
                )
            ]
        )
        found = report([*old, *recent])
        assert [t["reference"] for t in found["transfers"]] == ["dlv-" + "e" * 32]
        assert report(old)["transfers"] == []

    def test_the_report_states_its_window(self, hub_context):
        found = report(delivered(hub_context, NOW - DAY), retention=dt.timedelta(days=30))
        assert found["retention"]["days"] == 30
        assert found["retention"]["from"] == "2026-11-01T12:00:00.000Z"
        assert found["retention"]["until"] == "2026-12-01T12:00:00.000Z"
        assert audit_report.DEFAULT_RETENTION >= dt.timedelta(days=730)

    def test_a_shorter_window_drops_what_a_longer_one_lists(self, hub_context):
        events = delivered(hub_context, NOW - 40 * DAY)
        assert len(report(events, retention=dt.timedelta(days=60))["transfers"]) == 1
        assert report(events, retention=dt.timedelta(days=30))["transfers"] == []


class TestConsentsAtTheTime:
    def test_a_consent_revoked_before_the_transfer_is_not_listed(self, hub_context, subscribed):
        revoked_one = grant()
        still_valid = grant(at=T0 + DAY, categories=["income"])
        revocation = revoke(revoked_one, NOW - 20 * DAY)
        history = [revoked_one, still_valid, revocation]
        events = [*logged(*history), *handover_sent(hub_context, subscribed, history, NOW - DAY)]
        (transfer,) = report(events)["transfers"]
        assert [c["record_id"] for c in transfer["consents"]] == [still_valid.record_id]
        assert transfer["basis"]["id"] == still_valid.record_id

    def test_a_consent_revoked_after_the_transfer_is_listed(self, hub_context, subscribed):
        given = grant()
        at = NOW - 30 * DAY
        events = [
            *logged(given, revoke(given, NOW - 5 * DAY)),
            *handover_sent(hub_context, subscribed, [given], at),
        ]
        (transfer,) = report(events)["transfers"]
        assert [c["record_id"] for c in transfer["consents"]] == [given.record_id]
        (record,) = report(events)["consents"]
        assert record["status"] == "revoked"
        assert [h["kind"] for h in record["history"]] == ["granted", "revoked"]

    def test_a_notice_after_a_revocation_carries_no_data_and_names_the_refusal(
        self, hub_context, subscribed
    ):
        given = grant()
        history = [given, revoke(given, NOW - 3 * DAY)]
        events = [*logged(*history), *handover_sent(hub_context, subscribed, history, NOW - DAY)]
        (transfer,) = report(events)["transfers"]
        assert transfer["categories"] == []
        assert transfer["consents"] == []
        assert transfer["note"] == "CONSENT_REVOKED"
        assert transfer["basis"]["kind"] == "statute"
        page = audit_report.render_html(report(events))
        assert "Ihre Einwilligung war widerrufen <code>CONSENT_REVOKED</code>" in page

    def test_consents_not_yet_valid_or_superseded_are_not_in_force(self, hub_context, subscribed):
        old = grant()
        newer = grant(at=NOW - 40 * DAY, categories=["household", "income"])
        replaced = consent.supersede(old.record_id, newer)
        future = grant(at=NOW - 50 * DAY, valid_from=NOW + 10 * DAY, categories=["household"])
        history = [old, newer, replaced, future]
        events = [*logged(*history), *handover_sent(hub_context, subscribed, history, NOW - DAY)]
        (transfer,) = report(events)["transfers"]
        assert [c["record_id"] for c in transfer["consents"]] == [newer.record_id]
        statuses = {c["record_id"]: c["status"] for c in report(events)["consents"]}
        assert statuses == {
            old.record_id: "superseded",
            newer.record_id: "valid",
            future.record_id: "not-yet-valid",
        }


class TestDenied:
    def test_a_denied_delivery_is_listed_with_its_reason(self, hub_context):
        strict = dataclasses.replace(hub_context, policy=Policy())
        with pytest.raises(pipeline.TransferDenied) as refused:
            pipeline.ask_gate(delivery(), strict, NOW - DAY, channel="kafka")
        found = report(audits([refused.value.audit]))
        assert found["transfers"] == []
        (denied,) = found["denied"]
        assert (denied["to_office"], denied["reason"]) == ("jc-re-recklinghausen", "NO_BASIS")
        assert denied["categories"] == ["documents", "identity-address"]

    def test_a_withheld_rechtskreiswechsel_message_is_listed(self, hub_context, subscribed):
        strict = dataclasses.replace(hub_context, policy=Policy())
        events = handover_sent(strict, subscribed, [], NOW - DAY)
        found = report(events)
        assert found["transfers"] == []
        assert "jc-re-marl" in {d["to_office"] for d in found["denied"]}
        assert all(d["reason"] for d in found["denied"])


class TestHtml:
    HOSTILE = '<script>alert("x")</script>'

    def hostile_report(self) -> dict:
        at = "2026-11-30T12:00:00.000Z"
        events = [
            AuditEvent(
                event_id="aud-" + "1" * 32,
                submission_id="sub-" + "1" * 32,
                stage="deliver",
                decision="delivered",
                at=at,
                office=self.HOSTILE,
                delivery_id="dlv-" + "1" * 32,
                person=PERSON,
                purpose='"><img src=x onerror=alert(1)>',
                categories=["<b>income</b>"],
                from_office="javascript:alert(1)",
                basis_kind="statute",
                basis_id="</td></tr></table><iframe src=https://evil.example>",
                legal_reference="§ 69 & <style>@import url(https://evil.example/x.css)</style>",
            ),
            AuditEvent(
                event_id="aud-" + "2" * 32,
                submission_id="sub-unknown",
                stage="gate",
                decision="denied",
                at=at,
                office="jc-re-marl",
                message_id="rkm-" + "2" * 32,
                person=PERSON,
                reason="<svg onload=alert(1)>",
            ),
        ]
        return report(events)

    def test_every_value_is_escaped(self):
        found = self.hostile_report()
        assert found["transfers"][0]["to_office"] == self.HOSTILE  # the report keeps it as data
        page = audit_report.render_html(found, {"jc-re-marl": "Jobcenter <Marl>"})
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
        for raw in ("<script", "<img", "<iframe", "<svg", "<b>", "<style>@import"):
            assert raw not in page, raw
        assert "Jobcenter &lt;Marl&gt;" in page

    def test_no_external_resources_and_no_scripts(self, hub_context, subscribed):
        given = grant()
        events = [*logged(given), *handover_sent(hub_context, subscribed, [given], NOW - DAY)]
        page = audit_report.render_html(report([*events, *delivered(hub_context, NOW - DAY)]))
        assert page.startswith("<!DOCTYPE html>")
        assert "default-src 'none'" in page
        assert re.search(r"<(script|link|img|iframe|object|embed)\b", page) is None
        assert re.search(r"(src|href)\s*=", page) is None
        assert "url(" not in page
        assert "@import" not in page

    def test_the_page_shows_transfers_denials_and_consents_in_german(self, hub_context, subscribed):
        given = grant()
        events = [*logged(given), *handover_sent(hub_context, subscribed, [given], NOW - DAY)]
        page = audit_report.render_html(report(events), {"jc-re-marl": "Jobcenter Marl"})
        assert 'lang="de"' in page
        assert "Übermittlungen" in page
        assert "Jobcenter Marl <code>jc-re-marl</code>" in page
        assert "Einkommen <code>income</code>" in page
        assert "Ihre Einwilligung <code>consent</code>" in page
        assert given.record_id in page
        assert "731 Tage" in page
        assert "Abgelehnte Übermittlungen" in page
        only_delivered = audit_report.render_html(report(delivered(hub_context, NOW - DAY)))
        assert "Im Zeitraum wurde keine Übermittlung abgelehnt." in only_delivered

    def test_an_empty_report_says_so(self):
        page = audit_report.render_html(report([]))
        assert "Im Zeitraum wurden keine Daten übermittelt." in page
        assert "Im Zeitraum lagen keine Einwilligungen vor." in page


class TestArguments:
    def test_now_must_be_aware_and_the_window_positive(self):
        with pytest.raises(ValueError, match="aware"):
            audit_report.build_report([], frozenset({PERSON}), NOW.replace(tzinfo=None))
        with pytest.raises(ValueError, match="positive"):
            audit_report.build_report([], frozenset({PERSON}), NOW, dt.timedelta(0))


class TestCommand:
    """``sozialhub audit report`` argument handling, without a cluster (tests/integration has one)."""

    @pytest.fixture(autouse=True)
    def isolated(self):
        from tests.unit import test_cli

        patch = pytest.MonkeyPatch()
        test_cli._clean_environment(patch)
        with test_cli._logging_restored():
            yield
        patch.undo()

    def test_without_a_cluster_it_refuses(self, capsys):
        from tests.unit.test_cli import run

        assert run(["audit", "report", "--person", PERSON]) == 2
        assert "KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err

    @pytest.mark.parametrize(
        "argv",
        [
            ["--person", "Erika Mustermann"],
            ["--person", PERSON, "--retention-days", "0"],
            ["--person", PERSON, "--retention-days", "zwei Jahre"],
        ],
    )
    def test_malformed_arguments_are_usage_errors(self, argv, capsys):
        from tests.unit.test_cli import run

        assert run(["audit", "report", *argv]) == 2
        assert "Erika" not in capsys.readouterr().err
