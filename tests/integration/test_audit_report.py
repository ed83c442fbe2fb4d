"""``sozialhub audit report`` against a real broker: the report of a person from the audit chain.

The pure stages run in the test process and their audit events are produced to the
test's ``audit.log`` as the stages' workers would: a consent grant and its
revocation (the consent registry step), a Rechtskreiswechsel event planned and sent
through the real gate with that consent, an application delivered after the
delivery gate allowed it, and a delivery the gate denied, for the person and for
somebody else. A worker process (no inbound, no outbound connectors) runs the audit
chainer, which chains them onto ``audit.chain``; once every event is there, the
command reads the chain and must report the person's transfers and nothing of the
other person's.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time

import pytest

from hub import audit as audit_log
from hub import cli, context, dlq, subscriptions
from hub.core import consent, consent_registry, pipeline, rechtskreiswechsel
from hub.core import rkw_stages as stages
from hub.core.gate import Policy
from hub.core.pseudonym import identifier
from hub.core.rechtskreiswechsel import HouseholdMember
from hub.core.records import AuditEvent, Delivery, decode
from hub.pseudonyms import development_ring
from hub.supervise import WorkerProcess
from tests.rkw_support import example

from .helpers import cli_environment

pytestmark = pytest.mark.integration

IDNR = "86095742719"
PERSON = development_ring().pseudonym(identifier("idnr", IDNR))
OTHER = "psn-dev-" + "0" * 32
AT = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)


@pytest.fixture
def report_cli(hub_settings, monkeypatch, capsys):
    """cli.main(["audit", "report", ...]) against the test's cluster and prefix."""

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()  # what the test printed before (logs of the stages it ran)
        status = cli.main(["audit", "report", *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    with cli_environment(hub_settings, monkeypatch):
        yield run


def _event_for(person: str) -> bytes:
    """The Marl recognition example, for ``person`` (event id and household made anew)."""
    event = rechtskreiswechsel.decode_event(example("01-recognition-marl.json").read_bytes())
    household = tuple(
        HouseholdMember(person, m.role, m.category) if m.role == "self" else m
        for m in event.case.household
    )
    return rechtskreiswechsel.encode_event(
        dataclasses.replace(
            event,
            person=person,
            event_id=rechtskreiswechsel.event_id(
                person, event.from_, event.to, event.effective_date
            ),
            case=dataclasses.replace(event.case, household=household),
        )
    )


def _delivery(person: str, digit: str) -> Delivery:
    return Delivery(
        delivery_id="dlv-" + digit * 32,
        submission_id="sub-" + digit * 32,
        received_at="2026-11-02T09:14:00.000Z",
        office="jc-re-recklinghausen",
        vendor="akdn",
        format="fv-avro",
        mapping_version="fv-avro/1.0.0",
        media_type="application/octet-stream",
        file_suffix=".avro",
        body_b64="",
        categories=["documents", "identity-address"],
        portal="sozialplattform-nrw",
        person=person,
    )


def _audit_emits(settings) -> tuple[list, consent.ConsentEvent]:
    hub = context.build(settings)
    table = hub.offices
    subscribed = subscriptions.load(
        subscriptions.default_path(settings), settings.schema_dir, table
    )
    given = consent.grant(
        person=PERSON,
        granting_office="soa-marl",
        recipients=["jc-re-marl"],
        purpose="rechtskreiswechsel-handover",
        categories=["household", "income", "residence-status"],
        text_version="rkw-marl-2025-01",
        channel="paper",
        scan_ref="dms:soa-marl:2026/03/0412",
        collected_at=AT - dt.timedelta(days=30),
    )
    revoked = consent.revoke(
        person=PERSON,
        record_id=given.record_id,
        effective_at=AT + dt.timedelta(days=1),
        channel="oral",
        note="by telephone, desk 3",
    )
    emits = [consent_registry.audit_of(e, e.recorded_at) for e in (given, revoked)]
    folded = tuple(consent.fold([given]).values())

    def states(person: str):
        return folded if person == PERSON else ()

    event = _event_for(PERSON)
    planned, _ = stages.plan(PERSON.encode(), event, hub, subscribed, states, AT)
    emits += [e for e in planned.emits if e.topic == pipeline.AUDIT]
    for emit in planned.emits:
        if emit.topic == stages.OUTBOX and json.loads(emit.value)["office"] == "jc-re-marl":
            sent = stages.send(emit.value, hub, subscribed, states, AT)
            emits += [e for e in sent.emits if e.topic == pipeline.AUDIT]
    for person, digit in ((PERSON, "a"), (OTHER, "b")):
        record = _delivery(person, digit)
        emits.append(pipeline.ask_gate(record, hub, AT, channel="kafka"))
        emits.append(pipeline.delivered(record, AT, duplicate=False, channel="kafka"))
    strict = dataclasses.replace(hub, policy=Policy())
    with pytest.raises(pipeline.TransferDenied) as denied:
        pipeline.ask_gate(_delivery(PERSON, "c"), strict, AT, channel="kafka")
    emits.append(denied.value.audit)
    return emits, given


def wait_until_chained(settings, event_ids: set[str], timeout: float = 120.0) -> None:
    """Read audit.chain until every one of ``event_ids`` is chained (the chainer runs behind)."""
    deadline = time.monotonic() + timeout
    while True:
        chained = {event.event_id for _, _, event in audit_log.chain_events(settings)}
        missing = event_ids - chained
        if not missing:
            return
        assert time.monotonic() < deadline, f"{len(missing)} audit events not chained"
        time.sleep(0.5)


def test_the_report_lists_the_persons_transfers_from_the_audit_chain(
    hub_settings, report_cli, tmp_path
):
    emits, given = _audit_emits(hub_settings)
    topic = hub_settings.topic(pipeline.AUDIT)
    for emit in emits:
        dlq.produce(hub_settings, topic, emit.key.encode("ascii"), emit.value)
    dlq.produce(hub_settings, topic, b"sub-unknown", b"not an audit event")  # skipped

    # Not chained yet: the report reads audit.chain, so it finds nothing of the person.
    status, out, err = report_cli("--person", PERSON)
    assert status == 0, err
    assert (json.loads(out)["transfers"], json.loads(out)["consents"]) == ([], [])

    worker = WorkerProcess(
        hub_settings,
        log_file=hub_settings.data_dir / "worker.log",
        args=("--no-inbound", "--no-outbound"),
    ).start()
    try:
        wait_until_chained(hub_settings, {decode(e.value, AuditEvent).event_id for e in emits})
    finally:
        worker.stop()

    page = tmp_path / "bericht.html"
    status, out, err = report_cli(
        "--identifier", f"idnr:{IDNR}", "--development-key", "--html", str(page)
    )
    assert status == 0, err
    found = json.loads(out)
    assert found["persons"] == [PERSON]
    by_office = {t["to_office"]: t for t in found["transfers"]}
    assert set(by_office) == {"jc-re-marl", "jc-re-recklinghausen"}  # not the other person's

    handover = by_office["jc-re-marl"]
    assert handover["kind"] == "rechtskreiswechsel"
    assert handover["from_office"] == "soa-marl"
    assert handover["purpose"] == "rechtskreiswechsel-handover"
    assert handover["categories"]
    assert set(handover["categories"]) <= {
        "household",
        "income",
        "residence-status",
    }
    assert (handover["basis"]["kind"], handover["basis"]["id"]) == ("consent", given.record_id)
    assert [(c["record_id"], c["covers_transfer"]) for c in handover["consents"]] == [
        (given.record_id, True)
    ]

    application = by_office["jc-re-recklinghausen"]
    assert (application["reference"], application["basis"]["id"]) == (
        "dlv-" + "a" * 32,
        "application-delivery",
    )
    assert application["categories"] == ["documents", "identity-address"]

    denied = {d["reference"]: d["reason"] for d in found["denied"]}
    assert denied["dlv-" + "c" * 32] == "NO_BASIS"
    (record,) = found["consents"]
    assert (record["record_id"], record["status"]) == (given.record_id, "revoked")

    html = page.read_text("utf-8")
    assert "Jobcenter" in html
    assert given.record_id in html
    assert IDNR not in out + err + html
    assert "desk 3" not in out + html
    assert "dms:soa-marl" not in out + html

    status, out, _ = report_cli("--person", PERSON, "--retention-days", "1")
    assert status == 0
    assert json.loads(out)["transfers"] == []  # two days ago is outside a one-day window


def test_usage_errors_name_the_option_never_the_identifier(hub_settings, report_cli):
    status, out, err = report_cli()
    assert (status, out) == (2, "")
    assert "--person" in err
    status, _, err = report_cli("--identifier", "idnr:12345", "--development-key")
    assert status == 2
    assert "IDENTIFIER" in err
    assert "12345" not in err
    status, _, err = report_cli(
        "--identifier", f"idnr:{IDNR}", "--person", OTHER, "--development-key"
    )
    assert status == 2
    assert "not a pseudonym" in err
