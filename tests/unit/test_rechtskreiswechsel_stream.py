"""The Rechtskreiswechsel stages: plan with the real gate, send at the gate again, handover state.

No broker: the stage functions are called as the agents call them
(tests/integration/test_rechtskreiswechsel.py runs them through the broker).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json

import pytest

from hub import subscriptions
from hub.core import consent
from hub.core import rkw_stages as stages
from hub.core.errors import Reason, Rejection
from hub.core.gate import Policy
from hub.core.handover import Update as HandoverUpdate
from hub.core.handover import UpdateKind, decode_handover, encode_update
from hub.core.pipeline import AUDIT, HubContext
from hub.core.records import AuditEvent, decode
from hub.core.subscriptions import Subscriptions
from hub.stream import rechtskreiswechsel as stream
from tests.rkw_support import example

EVENT = example("01-recognition-marl.json").read_bytes()
PERSON = json.loads(EVENT)["person"]
EVENT_ID = json.loads(EVENT)["event_id"]
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def subscribed(settings, office_table) -> Subscriptions:
    return subscriptions.load(
        subscriptions.default_path(settings), settings.schema_dir, office_table
    )


def grant() -> consent.ConsentEvent:
    return consent.grant(
        person=PERSON,
        granting_office="soa-marl",
        recipients=["jc-re-marl"],
        purpose="rechtskreiswechsel-handover",
        categories=["household", "income", "residence-status"],
        text_version="rkw-marl-2025-01",
        channel="paper",
        scan_ref="dms:soa-marl:2026/03/0412",
        collected_at=T0,
    )


def states(*events: consent.ConsentEvent):
    folded = tuple(consent.fold(events).values())
    return functools.partial(lambda person, found: found if person == PERSON else (), found=folded)


def audits(emits) -> list[AuditEvent]:
    return [decode(e.value, AuditEvent) for e in emits if e.topic == AUDIT]


def planned(hub, subscribed, consents):
    result, fan = stages.plan(PERSON.encode(), EVENT, hub, subscribed, consents, NOW)
    return result, fan


def queued_for(result, office: str) -> bytes:
    return next(
        e.value
        for e in result.emits
        if e.topic == stages.OUTBOX and json.loads(e.value)["office"] == office
    )


def sent_message(result) -> dict:
    (record,) = [e for e in result.emits if e.topic.startswith("handovers.")]
    return json.loads(record.value)


class TestPlan:
    def test_with_consent_the_new_office_gets_the_consented_data(self, hub_context, subscribed):
        _, fan = planned(hub_context, subscribed, states(grant()))
        new = fan.for_office("jc-re-marl")
        assert new.kind.value == "handover"
        assert new.decision.basis.kind == "consent"
        assert new.categories <= {"household", "income", "residence-status"}
        assert new.body["case"]["household"]

    def test_without_consent_a_data_free_notice(self, hub_context, subscribed):
        _, fan = planned(hub_context, subscribed, states())
        new = fan.for_office("jc-re-marl")
        assert new.kind.value == "notice"
        assert new.categories == frozenset()
        assert "case" not in new.body
        assert new.body["refusal"] == "CONSENT_MISSING"

    def test_every_message_is_audited_and_only_deliverables_queued(self, hub_context, subscribed):
        result, fan = planned(hub_context, subscribed, states())
        audited = [a for a in audits(result.emits) if a.stage == stages.STAGE]
        assert sorted(a.office for a in audited) == sorted(m.office for m in fan.messages)
        assert all(
            a.path == f"{EVENT_ID}/{m.message_id}"
            for a, m in zip(
                sorted(audited, key=lambda a: a.office),
                sorted(fan.messages, key=lambda m: m.office),
                strict=True,
            )
        )
        queued = {e.key for e in result.emits if e.topic == stages.OUTBOX}
        assert queued == {m.message_id for m in fan.deliverable}

    def test_withheld_messages_are_audited_and_never_queued(self, hub_context, subscribed):
        strict = dataclasses.replace(hub_context, policy=Policy())
        result, fan = planned(strict, subscribed, states())
        withheld = [m for m in fan.messages if not m.deliverable]
        assert withheld, "a strict policy allows nothing to another office"
        decisions = {a.office: a.decision for a in audits(result.emits)}
        assert all(decisions[m.office] == "withheld" for m in withheld)
        queued = {json.loads(e.value)["office"] for e in result.emits if e.topic == stages.OUTBOX}
        assert not queued & {m.office for m in withheld}
        # the new office was not reached: no handover is announced
        assert not [e for e in result.emits if e.topic == stages.HANDOVERS]

    def test_the_handover_is_announced_once(self, hub_context, subscribed):
        result, _ = planned(hub_context, subscribed, states())
        (state,) = [e for e in result.emits if e.topic == stages.HANDOVERS]
        assert decode_handover(state.value).state.value == "announced"
        again, _ = stages.plan(
            PERSON.encode(),
            EVENT,
            hub_context,
            subscribed,
            states(),
            NOW,
            existing=lambda _e: decode_handover(state.value),
        )
        assert not [e for e in again.emits if e.topic == stages.HANDOVERS]

    def test_an_invalid_event_is_refused_with_its_code(self, hub_context, subscribed):
        body = json.loads(EVENT)
        body["to"]["office"] = "jc-re-nowhere"
        with pytest.raises(Rejection) as refused:
            stages.plan(
                PERSON.encode(), json.dumps(body).encode(), hub_context, subscribed, states(), NOW
            )
        assert refused.value.reason is Reason.RKW_EVENT  # the event id no longer fits

    def test_an_event_under_another_key_is_refused(self, hub_context, subscribed):
        with pytest.raises(Rejection) as refused:
            stages.plan(b"psn-k2026-" + b"0" * 32, EVENT, hub_context, subscribed, states(), NOW)
        assert (refused.value.reason, refused.value.path) == (Reason.RKW_EVENT, "person")


class TestSendAtTheGate:
    def test_a_handover_goes_to_the_offices_vendor_topic(self, hub_context, subscribed):
        consents = states(grant())
        result, _ = planned(hub_context, subscribed, consents)
        sent = stages.send(queued_for(result, "jc-re-marl"), hub_context, subscribed, consents, NOW)
        assert sent.outcome == "handover"
        (record,) = [e for e in sent.emits if e.topic.startswith("handovers.")]
        assert record.topic == stages.handover_topic(
            hub_context.offices.office("jc-re-marl").vendor
        )
        assert json.loads(record.value)["body"]["case"]["household"]
        gate = [a for a in audits(sent.emits) if a.stage == "gate"]
        assert [(a.decision, a.basis_kind) for a in gate] == [("allowed", "consent")]

    def test_a_revocation_folded_before_the_send_stops_the_data(self, hub_context, subscribed):
        given = grant()
        result, fan = planned(hub_context, subscribed, states(given))
        assert fan.for_office("jc-re-marl").kind.value == "handover"
        revoked = consent.revoke(
            person=PERSON,
            record_id=given.record_id,
            effective_at=NOW - dt.timedelta(minutes=1),
            channel="oral",
            note="phone",
        )
        sent = stages.send(
            queued_for(result, "jc-re-marl"), hub_context, subscribed, states(given, revoked), NOW
        )
        message = sent_message(sent)
        assert message["kind"] == "notice"
        assert message["categories"] == []
        assert "case" not in message["body"]
        (gate,) = [a for a in audits(sent.emits) if a.stage == "gate"]
        assert (gate.decision, gate.reason) == ("allowed", "CONSENT_REVOKED")

    def test_nothing_is_sent_when_the_gate_allows_nothing_now(self, hub_context, subscribed):
        result, _ = planned(hub_context, subscribed, states())
        strict = dataclasses.replace(hub_context, policy=Policy())
        sent = stages.send(queued_for(result, "jc-re-marl"), strict, subscribed, states(), NOW)
        assert sent.outcome == "denied"
        assert [e.topic for e in sent.emits] == [AUDIT]
        assert audits(sent.emits)[0].decision == "denied"

    def test_a_queued_record_for_an_office_the_event_does_not_address_is_refused(
        self, hub_context, subscribed
    ):
        result, _ = planned(hub_context, subscribed, states())
        body = json.loads(queued_for(result, "jc-re-marl"))
        body["office"] = "jc-re-herten"
        with pytest.raises(Rejection):
            stages.send(json.dumps(body).encode(), hub_context, subscribed, states(), NOW)


class TestHandoverUpdates:
    def index_after_plan(self, hub: HubContext, subscribed) -> stream.HandoverIndex:
        result, _ = planned(hub, subscribed, states())
        index = stream.HandoverIndex()
        index.remember(result.emits)
        return index

    def report(self, kind: UpdateKind, office: str) -> bytes:
        return encode_update(HandoverUpdate(EVENT_ID, kind, office, NOW + dt.timedelta(days=1)))

    def test_accepted_then_payments_stopped_completes(self, hub_context, subscribed):
        index = self.index_after_plan(hub_context, subscribed)
        first = stages.update(self.report(UpdateKind.ACCEPTED, "jc-re-marl"), index.get, NOW)
        index.remember(first.emits)
        assert first.outcome == "accepted"
        second = stages.update(self.report(UpdateKind.PAYMENTS_STOPPED, "soa-marl"), index.get, NOW)
        assert second.outcome == "completed"
        assert [a.decision for a in audits(second.emits)] == ["payments-stopped"]

    def test_payments_stopped_before_accepted_is_refused(self, hub_context, subscribed):
        index = self.index_after_plan(hub_context, subscribed)
        with pytest.raises(Rejection) as refused:
            stages.update(self.report(UpdateKind.PAYMENTS_STOPPED, "soa-marl"), index.get, NOW)
        assert (refused.value.reason, refused.value.path) == (Reason.RKW_HANDOVER, "order")

    def test_an_update_for_an_unknown_handover_is_refused(self):
        with pytest.raises(Rejection) as refused:
            stages.update(
                self.report(UpdateKind.ACCEPTED, "jc-re-marl"), stream.HandoverIndex().get, NOW
            )
        assert refused.value.reason is Reason.RKW_HANDOVER

    def test_reminders_for_handovers_not_accepted_in_time(self, hub_context, subscribed):
        index = self.index_after_plan(hub_context, subscribed)
        assert stages.due_reminders(index.states(), NOW + dt.timedelta(days=13), 14) == ()
        (reminder,) = stages.due_reminders(index.states(), NOW + dt.timedelta(days=16), 14)
        body = json.loads(reminder.value)
        assert (reminder.topic, body["new_office"], body["overdue_days"]) == (
            stages.REMINDERS,
            "jc-re-marl",
            2,
        )
