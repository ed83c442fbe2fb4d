"""Rechtskreiswechsel through the broker: submit, plan with the real gate, send at the gate again.

No worker process (as tests/integration/test_consent_registry.py): the events go
to the cluster with `sozialhub rechtskreiswechsel submit` and `dlq.produce`, the
stages' pure steps run on what the topics hold, and their emits are produced as
a worker does; the consent index is a real one, loaded from the ledger topic.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from hub import cli, context, dlq, subscriptions
from hub.core import consent, consent_registry
from hub.core import rechtskreiswechsel as rkw
from hub.core import rkw_stages as stages
from hub.core.handover import decode_handover
from hub.core.pipeline import AUDIT
from hub.core.records import AuditEvent, decode
from hub.stream import consents
from tests.rkw_support import example_body, pseudonym

from .helpers import cli_environment

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


def event_for(person: str, tmp_path) -> tuple[rkw.RechtskreisChange, str]:
    """The Marl example for another person (its household's `self` renamed), as a file."""
    body = example_body("01-recognition-marl.json")
    old = body["person"]
    body["person"] = person
    for member in body["case"]["household"]:
        if member["person"] == old:
            member["person"] = person
    body["event_id"] = rkw.event_id(
        person,
        rkw.Side(**body["from"]),
        rkw.Side(**body["to"]),
        dt.date.fromisoformat(body["effective_date"]),
    )
    event = rkw.event_from_json(body)
    path = tmp_path / f"{person}.json"
    path.write_bytes(rkw.encode_event(event))
    return event, str(path)


def grant(person: str) -> consent.ConsentEvent:
    return consent.grant(
        person=person,
        granting_office="soa-marl",
        recipients=["jc-re-marl"],
        purpose="rechtskreiswechsel-handover",
        categories=["household", "income", "residence-status"],
        text_version="rkw-marl-2025-01",
        channel="paper",
        scan_ref="dms:soa-marl:2026/03/0412",
        collected_at=T0,
    )


@pytest.fixture
def cli_env(hub_settings, monkeypatch):
    with cli_environment(hub_settings, monkeypatch):
        yield


def produce(settings, emits) -> None:
    for emit in emits:
        dlq.produce(settings, settings.topic(emit.topic), emit.key.encode("ascii"), emit.value)


def fold(settings, index: consents.ConsentIndex, done: set[tuple[int, int]]) -> None:
    """What the consent agent does for the events on the topic it has not folded yet."""
    now = dt.datetime.now(dt.UTC)
    for message in dlq.read_topic(settings, settings.topic(consent_registry.EVENTS)):
        if (message.partition(), message.offset()) in done:
            continue
        done.add((message.partition(), message.offset()))
        key = message.key()
        emits = consent_registry.record(key, message.value(), index.ledger(key.decode()), now)
        produce(settings, emits)


def wait_for(condition, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def records(settings, topic: str) -> list:
    return list(dlq.read_topic(settings, settings.topic(topic)))


def test_handover_notice_and_revocation_through_the_broker(hub_settings, cli_env, capsys, tmp_path):
    settings = hub_settings
    hub = context.build(settings)
    subscribed = subscriptions.load(
        subscriptions.default_path(settings), settings.schema_dir, hub.offices
    )
    consenting, without, revoking = pseudonym(1), pseudonym(2), pseudonym(3)
    given = {p: grant(p) for p in (consenting, revoking)}
    for event in given.values():
        dlq.produce(
            settings,
            settings.topic(consent_registry.EVENTS),
            event.person.encode(),
            consent.encode_event(event),
        )
    folded: set[tuple[int, int]] = set()
    fold(settings, consents.ConsentIndex(), folded)
    index, stop = consents.start(settings)
    try:
        wait_for(lambda: index.loaded.is_set() and len(index) == 2)

        # Submit the three events with the command line, and plan them as the agent does.
        events = {}
        for person in (consenting, without, revoking):
            event, path = event_for(person, tmp_path)
            events[person] = event
            assert cli.main(["rechtskreiswechsel", "submit", path]) == 0
            last = capsys.readouterr().out.splitlines()[-1]  # before it: the worker's log lines
            assert json.loads(last)["verdict"] == "submitted"
        now = dt.datetime.now(dt.UTC)
        planned = {}
        for message in records(settings, stages.EVENTS):
            result, fan = stages.plan(
                message.key(), message.value(), hub, subscribed, index.states_for, now
            )
            planned[fan.event_id] = fan
            produce(settings, result.emits)

        # Between plan and send, the third person revokes; the consent agent folds it.
        revocation = consent.revoke(
            person=revoking,
            record_id=given[revoking].record_id,
            effective_at=now,
            channel="oral",
            note="phone",
        )
        dlq.produce(
            settings,
            settings.topic(consent_registry.EVENTS),
            revoking.encode(),
            consent.encode_event(revocation),
        )
        fold(settings, index, folded)
        wait_for(lambda: any(s.revoked_at for s in index.states_for(revoking)))

        later = dt.datetime.now(dt.UTC)
        for message in records(settings, stages.OUTBOX):
            produce(
                settings,
                stages.send(message.value(), hub, subscribed, index.states_for, later).emits,
            )
    finally:
        stop.set()

    akdn = [json.loads(m.value()) for m in records(settings, stages.handover_topic("akdn"))]
    to_jobcenter = {m["event_id"]: m for m in akdn if m["office"] == "jc-re-marl"}
    full = to_jobcenter[events[consenting].event_id]
    assert (full["kind"], full["decision"]["basis"]["kind"]) == ("handover", "consent")
    assert full["body"]["case"]["household"]
    notice = to_jobcenter[events[without].event_id]
    assert (notice["kind"], notice["body"]["refusal"]) == ("notice", "CONSENT_MISSING")
    assert "case" not in notice["body"]
    # Planned as a full handover, sent data-free: the revocation was folded before the send.
    assert planned[events[revoking].event_id].for_office("jc-re-marl").kind.value == "handover"
    stopped = to_jobcenter[events[revoking].event_id]
    assert (stopped["kind"], stopped["categories"]) == ("notice", [])
    assert "case" not in stopped["body"]
    # No message on any vendor topic carries case data of a person without a valid consent.
    for vendor in hub.offices.vendors:
        for m in records(settings, stages.handover_topic(vendor)):
            body = json.loads(m.value())
            if body["event_id"] != events[consenting].event_id:
                assert not body["categories"], body["office"]

    check_audited(settings, planned)
    states = [decode_handover(m.value()) for m in records(settings, stages.HANDOVERS)]
    assert {s.event_id for s in states} == {e.event_id for e in events.values()}


def check_audited(settings, planned) -> None:
    """Every message's decision is audited, withheld ones too; every send has its gate decision."""
    audited = [decode(m.value(), AuditEvent) for m in records(settings, AUDIT)]
    for fan in planned.values():
        for message in fan.messages:
            place = f"{fan.event_id}/{message.message_id}"
            decided = {(a.stage, a.decision) for a in audited if a.path == place}
            assert (stages.STAGE, message.kind.value) in decided
            if message.deliverable:
                assert ("gate", "allowed") in decided, place
