"""Rechtskreiswechsel messages reach vendors on the file and http channels, through a worker.

A real worker process (outbound on) plans a Rechtskreiswechsel event, sends each
office its message on ``handovers.<vendor>`` and forwards what a vendor without
a Kafka principal cannot read itself:

- ``file``: Dorsten, SGB II (Jobcenter, AKDN-sozial, kafka) to SGB XII (Sozialamt,
  OPEN/PROSOZ, file). The Sozialamt's notice lands in
  ``<outbox>/openprosoz/soa-dorsten/handovers/<message id>.notice.json`` with
  exactly the bytes of the record, the Wohngeldstelle's information in LÄMMkom's
  folder; the same record produced again is a duplicate, not a second file. Once
  the person consents and the old office re-sends the event, the same message id
  comes as a handover, which supersedes the notice: a second file beside it.
- ``http``: the BuT office (OK.SOZIUS) gets an information on the person's consent,
  POSTed over HTTPS with a client certificate and a token to the simulator's
  handover endpoint (derived from the configured case URL), which fails twice and
  then loses its answer after booking: retried, paused and probed, replayed,
  booked once; produced again, replayed again.

The http timings come from a copy of the example office table with short retries
and probes (``SOZIALHUB_OFFICES_FILE``), as in test_delivery_channels.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from hub import dlq
from hub.config import PROJECT_ROOT, Settings
from hub.core import consent, consent_registry
from hub.core import rechtskreiswechsel as rkw
from hub.core import rkw_stages as stages
from hub.core.fanout import message_id
from hub.core.pipeline import AUDIT, DEAD_LETTER
from hub.core.records import AuditEvent, decode
from hub.kafka import follow
from hub.sim import pki
from hub.sim.vendor import VendorSimulator, VendorSimulatorThread
from hub.supervise import WorkerProcess
from tests.rkw_support import example_body, pseudonym

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HTTP_VENDOR = "oksozius"
FAST_HTTP = {
    "timeout_s": 10,
    "max_attempts": 3,
    "initial_backoff_s": 0.2,
    "max_backoff_s": 1,
    "probe_interval_s": 1,
    "outage_max_s": 86400,
}
NOW = dt.datetime.now(dt.UTC)


@dataclass
class Hub:
    settings: Settings
    sim: VendorSimulator
    worker: WorkerProcess
    log: Path


@pytest.fixture
def hub(hub_settings: Settings, tmp_path: Path) -> Iterator[Hub]:
    """The http vendor's simulator (HTTPS, client certificate, token) and a worker, outbound on."""
    document = yaml.safe_load((PROJECT_ROOT / "config" / "offices.yml").read_text("utf-8"))
    document["vendors"][HTTP_VENDOR]["delivery"].update(FAST_HTTP)
    offices_file = tmp_path / "offices.yml"
    offices_file.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    # The subscriptions are read beside the office table: without them no Rechtskreiswechsel.
    shutil.copyfile(PROJECT_ROOT / "config" / "subscriptions.yml", tmp_path / "subscriptions.yml")
    tls = pki.create(tmp_path / "vendor-pki")
    token = secrets.token_urlsafe(24)
    sim = VendorSimulator(ssl_context=tls.server_context(), token=token)
    runner = VendorSimulatorThread(sim)
    runner.start()
    credentials = tmp_path / "vendors" / HTTP_VENDOR
    credentials.mkdir(parents=True)
    shutil.copyfile(tls.client_cert, credentials / "client.crt")
    shutil.copyfile(tls.client_key, credentials / "client.key")
    shutil.copyfile(tls.ca, credentials / "ca.crt")
    (credentials / "token").write_text(token, "utf-8")
    settings = hub_settings.with_overrides(
        offices_file=offices_file,
        vendor_credentials_dir=tmp_path / "vendors",
        # Only the case endpoint is configured: the hub derives the handover endpoint beside it.
        vendor_urls=f"{HTTP_VENDOR}={sim.url_template}",
    )
    worker = WorkerProcess(settings, log_file=tmp_path / "worker.log", args=("--no-inbound",))
    worker.start()
    try:
        worker.wait_ready()
        yield Hub(settings, sim, worker, tmp_path / "worker.log")
    finally:
        worker.stop()
        runner.stop()


def dorsten_event(person: str) -> rkw.RechtskreisChange:
    """The Dorsten example (SGB II to SGB XII) for another person."""
    body = example_body("03-retirement-dorsten.json")
    old = body["person"]
    body["person"] = person
    for member in (body.get("case") or {}).get("household") or ():
        if member["person"] == old:
            member["person"] = person
    body["event_id"] = rkw.event_id(
        person,
        rkw.Side(**body["from"]),
        rkw.Side(**body["to"]),
        dt.date.fromisoformat(body["effective_date"]),
    )
    return rkw.event_from_json(body)


def consent_to(settings: Settings, person: str, granting: str, recipient: str) -> None:
    """The person's consent for the Rechtskreiswechsel handover, produced and folded."""
    grant = consent.grant(
        person=person,
        granting_office=granting,
        recipients=[recipient],
        purpose="rechtskreiswechsel-handover",
        categories=["household", "income", "residence-status"],
        text_version="rkw-dorsten-2026-01",
        channel="paper",
        scan_ref="dms:jc-re-dorsten:2026/0011",
        collected_at=NOW - dt.timedelta(days=3),
    )
    key = person.encode("ascii")
    dlq.produce(settings, settings.topic(consent_registry.EVENTS), key, consent.encode_event(grant))
    audit_until(settings, lambda log: any(e.stage == "consent" and e.person == person for e in log))


def submit(settings: Settings, event: rkw.RechtskreisChange) -> None:
    key = event.person.encode("ascii")
    dlq.produce(settings, settings.topic(stages.EVENTS), key, rkw.encode_event(event))


def audit_until(
    settings: Settings, done: Callable[[list[AuditEvent]], bool], timeout: float = 120.0
) -> list[AuditEvent]:
    """Every audit record from the beginning (repeats included) until ``done`` holds."""
    events: list[AuditEvent] = []
    for message in follow(settings, AUDIT, lambda: done(events), timeout):
        events.append(decode(message.value(), AuditEvent))  # noqa: PERF401 - done() reads it
    assert done(events), "timed out waiting for the audit log"
    return events


def outcomes(events: list[AuditEvent], mid: str) -> list[str]:
    """The forwarding outcomes of one message, one per processing (repeated ids counted)."""
    return [
        e.decision
        for e in events
        if e.stage == "handover"
        and e.decision in ("forwarded", "duplicate")
        and e.message_id == mid
    ]


def record_of(settings: Settings, vendor: str, mid: str) -> bytes:
    """The value of the message's record on handovers.<vendor>."""
    topic = settings.topic(stages.handover_topic(vendor))
    values = {m.value() for m in dlq.read_topic(settings, topic) if m.key() == mid.encode()}
    assert len(values) == 1, values
    return values.pop()


def test_a_file_vendors_new_office_gets_the_record_in_its_outbox_once(hub: Hub) -> None:
    settings = hub.settings
    event = dorsten_event(pseudonym(4101))
    submit(settings, event)
    notice = message_id(event.event_id, "soa-dorsten")  # new office, OPEN/PROSOZ (file)
    information = message_id(event.event_id, "wgs-dorsten")  # affected, LÄMMkom (file)
    confirmation = message_id(event.event_id, "jc-re-dorsten")  # old office, AKDN-sozial (kafka)
    events = audit_until(settings, lambda log: all(outcomes(log, m) for m in (notice, information)))
    assert ["forwarded"] == outcomes(events, notice)
    assert ["forwarded"] == outcomes(events, information)
    forwarded = next(e for e in events if e.message_id == notice and e.decision == "forwarded")
    assert ("soa-dorsten", "openprosoz", "file", f"{event.event_id}/{notice}") == (
        forwarded.office,
        forwarded.vendor,
        forwarded.channel,
        forwarded.path,
    )
    assert forwarded.person is None  # the handover/sent event of the same message names it

    outbox = settings.outbox_dir
    record = record_of(settings, "openprosoz", notice)
    written = outbox / "openprosoz" / "soa-dorsten" / "handovers" / f"{notice}.notice.json"
    assert record == written.read_bytes()
    assert "notice" == json.loads(record)["kind"]
    beside = outbox / "lammkom" / "wgs-dorsten" / "handovers" / f"{information}.information.json"
    assert record_of(settings, "lammkom", information) == beside.read_bytes()
    # The kafka vendor reads handovers.akdn itself: nothing forwarded, nothing in an outbox.
    record_of(settings, "akdn", confirmation)
    assert [] == outcomes(events, confirmation)
    assert [] == list(outbox.glob("akdn/**/*.json"))

    # The same record again (a redelivery): a duplicate, no second file.
    topic = settings.topic(stages.handover_topic("openprosoz"))
    dlq.produce(settings, topic, notice.encode(), record)
    events = audit_until(settings, lambda log: len(outcomes(log, notice)) >= 2)
    assert ["forwarded", "duplicate"] == outcomes(events, notice)
    assert [written] == sorted(outbox.glob("openprosoz/*/handovers/*"))
    assert (outbox / ".delivered" / "openprosoz" / f"{notice}.notice").is_file()

    # The person consents, the old office re-sends the event: the same message id as a
    # handover with data, which supersedes the notice (another kind: another file).
    consent_to(settings, event.person, "jc-re-dorsten", "soa-dorsten")
    submit(settings, event)
    events = audit_until(
        settings,
        lambda log: len(outcomes(log, notice)) >= 3 and len(outcomes(log, information)) >= 2,
    )
    assert ["forwarded", "duplicate", "forwarded"] == outcomes(events, notice)
    superseding = written.with_name(f"{notice}.handover.json")
    handover = json.loads(superseding.read_bytes())
    assert ("handover", notice) == (handover["kind"], handover["message_id"])
    assert {"household", "income"} <= set(handover["categories"])
    assert [superseding, written] == sorted(outbox.glob("openprosoz/*/handovers/*"))
    assert record == written.read_bytes()  # the notice stays as it was
    # The re-sent event's information for the Wohngeldstelle is the same kind: a duplicate.
    assert ["forwarded", "duplicate"] == outcomes(events, information)
    assert [] == [e for e in events if e.stage == "handover-forward"]
    assert [] == list(dlq.read_topic(settings, settings.topic(DEAD_LETTER)))
    assert hub.worker.alive()


def test_an_http_vendor_books_the_message_once_although_its_endpoint_fails_first(
    hub: Hub,
) -> None:
    settings, sim = hub.settings, hub.sim
    person = pseudonym(4102)
    grant = consent.grant(
        person=person,
        granting_office="jc-re-dorsten",
        recipients=["but-dorsten"],
        purpose="joint-case-management",
        categories=["household"],
        text_version="but-dorsten-2026-01",
        channel="paper",
        scan_ref="dms:jc-re-dorsten:2026/0007",
        collected_at=NOW - dt.timedelta(days=3),
    )
    dlq.produce(
        settings,
        settings.topic(consent_registry.EVENTS),
        person.encode("ascii"),
        consent.encode_event(grant),
    )
    audit_until(settings, lambda log: any(e.stage == "consent" for e in log))
    # Two 503s, then the booking's answer is lost: the retries run out, the agent pauses,
    # probes the health endpoint, and the next attempt is answered as a replay.
    sim.fail_next(2, status=503)
    sim.fail_next(mode="lose_answer")
    event = dorsten_event(person)
    submit(settings, event)
    mid = message_id(event.event_id, "but-dorsten")
    events = audit_until(settings, lambda log: bool(outcomes(log, mid)))
    record = record_of(settings, HTTP_VENDOR, mid)
    assert "information" == json.loads(record)["kind"]
    assert ["household"] == json.loads(record)["categories"]
    key = f"{mid}.information"
    assert [key] == list(sim.handovers)
    booking = sim.handovers[key]
    assert ("but-dorsten", 1, hashlib.sha256(record).hexdigest()) == (
        booking.office,
        booking.booked,
        booking.body_sha256,
    )
    assert ["duplicate"] == outcomes(events, mid)  # the endpoint had booked it: a replay
    retried = [
        e for e in events if (e.stage, e.decision, e.message_id) == ("handover", "retried", mid)
    ]
    assert [(1, 503), (2, 503)] == [(e.attempt, e.status) for e in retried][:2]
    assert {} == sim.bookings  # no case endpoint was called
    replays = booking.replays

    # Produced again: replayed by the endpoint, still one booking.
    dlq.produce(settings, settings.topic(stages.handover_topic(HTTP_VENDOR)), mid.encode(), record)
    events = audit_until(settings, lambda log: len(outcomes(log, mid)) >= 2)
    assert ["duplicate", "duplicate"] == outcomes(events, mid)
    assert [key] == list(sim.handovers)
    assert (1, replays + 1) == (sim.handovers[key].booked, sim.handovers[key].replays)
    assert [] == sim.booked_twice()
    assert [] == [e for e in events if e.stage == "handover-forward"]
    assert hub.worker.alive()
    log_lines = hub.log.read_text("utf-8", "replace")
    assert "handover-forward.paused" in log_lines
    assert "handover-forward.resumed" in log_lines
