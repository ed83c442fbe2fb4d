"""The three delivery channels through the real broker, with a crash during an endpoint outage.

Submissions for every channel of the example office table go through one
worker: vendor XML and fixed-width files with documents beside (``file``),
Avro records on the vendor topic (``kafka``) and JSON over HTTPS with a client
certificate and a bearer token to a vendor endpoint simulator (``http``). The
endpoint is down when the first case arrives; while the worker retries, the
worker is SIGKILLed and a new one started, and only then does the endpoint
come back (failing every second request for a while). Every delivery still
arrives exactly once where its channel puts it. The other tests show that a
permanent refusal is dead-lettered at once while the vendor's other
deliveries go through, and that such a refusal ends an outage.

The http timings come from a copy of the example office table with shorter
retries, backoff and probes (``SOZIALHUB_OFFICES_FILE``).
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fastavro
import pytest
import xmlschema
import yaml

from hub import schemas
from hub.config import PROJECT_ROOT, Settings
from hub.core import xmlsafe
from hub.core.mapping import fvfixed
from hub.core.outcomes import OutcomeTracker
from hub.core.pipeline import AUDIT, DEAD_LETTER, vendor_topic
from hub.core.records import AuditEvent, DeadLetter, dead_letter_id, decode, submission_id
from hub.kafka import consumer, follow
from hub.sim import pki
from hub.sim.vendor import VendorSimulator, VendorSimulatorThread
from hub.supervise import WorkerProcess
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec, make_submission

from .helpers import drop, get

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HTTP_VENDOR = "oksozius"
KAFKA_VENDOR = "akdn"
AVRO_SCHEMA_FILE = PROJECT_ROOT / "schemas" / "vendor" / "fv-avro-1.avsc"
# The fingerprint docs/formats.md publishes for fv-avro v1 (CRC-64-AVRO, little-endian).
PUBLISHED_FINGERPRINT = bytes.fromhex("807cabe3371d573d")
AVRO_MARKER = b"\xc3\x01"
# Shorter http timings than the example table, so outage, pause and probe take seconds.
FAST_HTTP = {
    "timeout_s": 10,
    "max_attempts": 3,
    "initial_backoff_s": 0.2,
    "max_backoff_s": 1,
    "probe_interval_s": 1,
    "outage_max_s": 86400,
}

BUT = ("99107032148000", "Bildung und Teilhabe, Erbringung")
ELTERNGELD = ("99041006017000", "Elterngeld, Bewilligung")
BUERGERGELD = ("99107002017000", "Bürgergeld, Bewilligung")
GRUNDSICHERUNG = ("99107009017000", "Grundsicherung im Alter und bei Erwerbsminderung")
WOHNGELD = ("99107023017001", "Wohngeld, Bewilligung erstmalig")


@dataclass(frozen=True)
class Case:
    """One submission and where each of its deliveries must end: office -> channel."""

    name: str
    data: bytes
    channels: dict[str, str]
    documents: tuple[bytes, ...] = ()

    @property
    def sid(self) -> str:
        return submission_id(self.data)


def _case(
    name: str,
    postcode: str,
    town: str,
    benefits: tuple[tuple[str, str], ...],
    channels: dict[str, str],
    documents: tuple[bytes, ...] = (),
) -> Case:
    person = PersonSpec(postcode=postcode, town=town, benefits=benefits)
    specs = tuple(
        DocumentSpec(document_id=f"doc-{i}", content=content, file_name=f"nachweis-{i}.pdf")
        for i, content in enumerate(documents, start=1)
    )
    data = make_submission(SubmissionSpec(persons=(person,), documents=specs))
    return Case(name, data, channels, documents)


def _pdf(label: str) -> bytes:
    return b"%PDF-1.7\n% sozialhub delivery channel test: " + label.encode() + b"\n%%EOF\n"


def _all_channels() -> list[Case]:
    return [
        # http (OK.SOZIUS): BuT per city, Elterngeld at the Kreis
        _case("but-marl", "45768", "Marl", (BUT,), {"but-marl": "http"}),
        _case("but-dorsten", "46282", "Dorsten", (BUT,), {"but-dorsten": "http"}),
        _case("but-gladbeck", "45964", "Gladbeck", (BUT,), {"but-gladbeck": "http"}),
        _case("elterngeld", "46282", "Dorsten", (ELTERNGELD,), {"kreis-re-elterngeld": "http"}),
        # kafka (AKDN-sozial): Bürgergeld at the Jobcenter Bezirksstellen
        _case("sgb2-waltrop", "45731", "Waltrop", (BUERGERGELD,), {"jc-re-waltrop": "kafka"}),
        _case("sgb2-datteln", "45711", "Datteln", (BUERGERGELD,), {"jc-re-datteln": "kafka"}),
        _case(
            "sgb2-haltern", "45721", "Haltern am See", (BUERGERGELD,), {"jc-re-haltern": "kafka"}
        ),
        # file: Grundsicherung as vendor XML (OPEN/PROSOZ) ...
        _case("grusi-gladbeck", "45964", "Gladbeck", (GRUNDSICHERUNG,), {"soa-gladbeck": "file"}),
        _case(
            "grusi-castrop",
            "44575",
            "Castrop-Rauxel",
            (GRUNDSICHERUNG,),
            {"soa-castrop-rauxel": "file"},
        ),
        # ... and Wohngeld as fixed-width records with the documents beside (LÄMMkom)
        _case(
            "wohngeld-herten",
            "45699",
            "Herten",
            (WOHNGELD,),
            {"wgs-herten": "file"},
            (_pdf("herten 1"), _pdf("herten 2")),
        ),
        # a household for two offices on two channels: file (with document) and http
        _case(
            "wohngeld-but-recklinghausen",
            "45657",
            "Recklinghausen",
            (WOHNGELD, BUT),
            {"wgs-recklinghausen": "file", "but-recklinghausen": "http"},
            (_pdf("recklinghausen"),),
        ),
    ]


# --- set-up ------------------------------------------------------------------------------------


def _fast_office_table(directory: Path, **timings: float) -> Path:
    """The example office table with shorter http timings (SOZIALHUB_OFFICES_FILE)."""
    document = yaml.safe_load((PROJECT_ROOT / "config" / "offices.yml").read_text("utf-8"))
    delivery = document["vendors"][HTTP_VENDOR]["delivery"]
    assert "http" == delivery["channel"]
    delivery.update({**FAST_HTTP, **timings})
    path = directory / "offices.yml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), "utf-8")
    return path


@dataclass
class Vendor:
    sim: VendorSimulator
    settings: Settings


@pytest.fixture
def vendor_factory(hub_settings: Settings, tmp_path: Path) -> Iterator[Callable[..., Vendor]]:
    """Start the http vendor's endpoint (HTTPS, client certificate, token) and configure the hub for it."""
    runners: list[VendorSimulatorThread] = []

    def start(validate: Callable[[bytes], bool] | None = None, **timings: float) -> Vendor:
        tls = pki.create(tmp_path / "vendor-pki")
        token = secrets.token_urlsafe(24)
        sim = VendorSimulator(ssl_context=tls.server_context(), token=token, validate=validate)
        runner = VendorSimulatorThread(sim)
        runner.start()
        runners.append(runner)
        credentials = tmp_path / "vendors" / HTTP_VENDOR
        credentials.mkdir(parents=True)
        shutil.copyfile(tls.client_cert, credentials / "client.crt")
        shutil.copyfile(tls.client_key, credentials / "client.key")
        shutil.copyfile(tls.ca, credentials / "ca.crt")
        (credentials / "token").touch(mode=0o600)
        (credentials / "token").write_text(token, "utf-8")
        settings = hub_settings.with_overrides(
            offices_file=_fast_office_table(tmp_path, **timings),
            vendor_credentials_dir=tmp_path / "vendors",
            vendor_urls=f"{HTTP_VENDOR}={sim.url_template}",
        )
        return Vendor(sim, settings)

    yield start
    for runner in runners:
        runner.stop()


# --- reading the broker ------------------------------------------------------------------------


def _read_topic(settings: Settings, logical: str, timeout: float = 60.0) -> list[Any]:
    """Every record of a topic, from the beginning to the end of each partition."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    name = settings.topic(logical)
    reader = consumer(settings, **{"enable.partition.eof": True})
    try:
        partitions = sorted(reader.list_topics(name, timeout=10).topics[name].partitions)
        assert partitions, f"topic {name} has no partitions"
        reader.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in partitions])
        pending, records = set(partitions), []
        deadline = time.monotonic() + timeout
        while pending:
            assert time.monotonic() < deadline, f"{name}: end of partitions {pending} not reached"
            message = reader.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                    continue
                raise RuntimeError(f"consumer error on {name}: {message.error().name()}")
            records.append(message)
        return records
    finally:
        reader.close()


class AuditLog:
    """The audit log folded into outcomes, with every event kept in topic order."""

    def __init__(self) -> None:
        self.tracker = OutcomeTracker()
        self.events: list[AuditEvent] = []

    def add(self, value: bytes) -> None:
        event = decode(value, AuditEvent)
        self.events.append(event)
        self.tracker.add(event)

    def retried(self, vendor: str) -> list[AuditEvent]:
        return [e for e in self.events if e.decision == "retried" and e.vendor == vendor]


def _audit(settings: Settings, stop: Callable[[AuditLog], bool], timeout: float) -> AuditLog:
    """Read the audit log from the beginning until ``stop`` holds (or time runs out)."""
    log = AuditLog()
    for message in follow(settings, AUDIT, lambda: stop(log), timeout):
        log.add(message.value())
    return log


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


# --- checks per channel ------------------------------------------------------------------------


def _avro_schema() -> tuple[Any, bytes]:
    """The published fv-avro schema, parsed, and its fingerprint computed from the file."""
    document = json.loads(AVRO_SCHEMA_FILE.read_text("utf-8"))
    canonical = fastavro.schema.to_parsing_canonical_form(document)
    fingerprint = bytes.fromhex(fastavro.schema.fingerprint(canonical, "CRC-64-AVRO"))
    return fastavro.parse_schema(document), fingerprint


def _check_vendor_topic(settings: Settings, expected: dict[str, tuple[str, str]]) -> None:
    """``expected``: delivery id -> (submission id, office) of every kafka delivery."""
    schema, fingerprint = _avro_schema()
    assert PUBLISHED_FINGERPRINT == fingerprint
    header = AVRO_MARKER + PUBLISHED_FINGERPRINT
    records = _read_topic(settings, vendor_topic(KAFKA_VENDOR))
    # At least once: a record the killed worker sent may be sent again, always under its key.
    assert set(expected) == {m.key().decode("ascii") for m in records}
    for message in records:
        key = message.key().decode("ascii")
        value = message.value()
        assert not message.headers()
        assert header == value[: len(header)]
        datum = fastavro.schemaless_reader(io.BytesIO(value[len(header) :]), schema, schema)
        sid, office = expected[key]
        assert (key, sid, office) == (
            datum["deliveryId"],
            datum["submissionId"],
            datum["office"]["id"],
        )


def _check_outbox(
    outbox: Path, schema_dir: Path, expected: dict[str, tuple[str, str, Case]]
) -> None:
    """``expected``: delivery id -> (vendor, office, case) of every file delivery."""
    written = sorted(p for p in outbox.glob("*/*/*") if not p.parts[-3].startswith("."))
    assert [] == [p.name for p in written if p.name.startswith(".")]  # no temporaries
    records = {p.name.split(".")[0]: p for p in written if p.name.count(".") == 1}
    assert len(records) == sum(p.name.count(".") == 1 for p in written)  # once per delivery
    assert set(expected) == set(records)
    ledger = {p.name for p in (outbox / ".delivered").glob("*/*")}
    assert set(expected) == ledger
    beside = {p for p in written if p.name.count(".") != 1}
    xml_schema = schemas.load_vendor_schema(schema_dir, "fv-xml")
    expected_beside: set[Path] = set()
    for did, (vendor, office, case) in expected.items():
        record = records[did]
        assert (vendor, office) == (record.parent.parent.name, record.parent.name)
        if vendor == "openprosoz":
            assert ".xml" == record.suffix
            tree = xmlsafe.parse(record.read_bytes())
            xml_schema.validate(xmlschema.XMLResource(tree, allow="none"))
            assert (did, case.sid) == (tree.get("lieferungId"), tree.get("einreichungId"))
            continue
        assert ("lammkom", ".dat") == (vendor, record.suffix)
        parsed = fvfixed.parse(record.read_bytes())
        assert (did, office) == (parsed[0]["lieferungId"], parsed[0]["behoerde"])
        listed = [r for r in parsed if r["satzart"] == "D"]
        assert len(case.documents) == len(listed)
        for entry, content in zip(listed, case.documents, strict=True):
            document = record.parent / entry["datei"]
            assert document.name.startswith(f"{did}.d")
            assert ".pdf" == document.suffix
            data = document.read_bytes()
            assert entry["sha256"] == hashlib.sha256(data).hexdigest()
            assert (content, len(content)) == (data, entry["groesse"])
            expected_beside.add(document)
    assert expected_beside == beside


def _check_retries(retried: list[AuditEvent], max_attempts: int) -> None:
    """Per delivery, attempt numbers count up by one, from 1 again after a pause or a restart."""
    per_delivery: dict[str, list[int]] = {}
    for event in retried:
        assert event.delivery_id is not None
        assert event.attempt is not None
        per_delivery.setdefault(event.delivery_id, []).append(event.attempt)
    assert per_delivery
    for attempts in per_delivery.values():
        assert 1 == attempts[0]
        for before, after in itertools.pairwise(attempts):
            assert after in (before + 1, 1), attempts
        # A retried event announces another attempt: never after the last one of a round.
        assert max(attempts) < max_attempts
    assert max(max(a) for a in per_delivery.values()) >= 2


def _check_http(
    audit: AuditLog, sim: VendorSimulator, routed: dict[str, AuditEvent], flaky_from: int
) -> None:
    """``routed``: delivery id -> routed event of every http delivery; ``flaky_from``: the
    number of case requests the simulator had answered when it came back, failing every second."""
    # http: every delivery booked exactly once, under its delivery id, at its office.
    http_ids = set(routed)
    bookings = dict(sim.bookings)
    assert http_ids == set(bookings)
    assert [] == sim.booked_twice()
    assert {d: e.office for d, e in routed.items()} == {d: b.office for d, b in bookings.items()}
    assert all(b.booked == 1 for b in bookings.values())
    # Nothing was booked before the endpoint came back, so every outcome is a first booking.
    http_outcomes = [
        e
        for e in audit.events
        if e.delivery_id in http_ids and e.decision in ("delivered", "duplicate")
    ]
    assert {("delivered", 201, "http")} == {
        (e.decision, e.status, e.channel) for e in http_outcomes
    }
    assert http_ids == {e.delivery_id for e in http_outcomes}

    # The outage shows in the audit log: retried attempts, all answered 503 (the TLS handshake
    # with the client certificate succeeded; the bookings show the token was accepted),
    # counting up per delivery.
    retried = audit.retried(HTTP_VENDOR)
    assert {503} == {e.status for e in retried}
    assert {"http"} == {e.channel for e in retried}
    assert {e.delivery_id for e in retried} <= http_ids
    _check_retries(retried, FAST_HTTP["max_attempts"])
    assert sum(o.retries for o in audit.tracker.by_submission.values()) == len(retried)

    # Back up but flaky: a case request failed with 503 after the outage, and was tried again.
    after_outage = sim.statuses[flaky_from:]
    assert {201, 503} == {status for _, status in after_outage}


def _metric(settings: Settings, name: str) -> float | None:
    """One sample of the worker's /metrics for the http vendor, if exported."""
    status, body = get(settings.web_port, "/metrics")
    assert 200 == status
    prefix = f'{name}{{vendor="{HTTP_VENDOR}"}} '
    lines = [line for line in body.decode().splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else None


def _log_events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a worker log (Faust's own lines are plain text)."""
    lines = path.read_text("utf-8", "replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def _crash_during_outage(
    settings: Settings, sim: VendorSimulator, cases: list[Case], tmp_path: Path
) -> tuple[AuditLog, int, Path]:
    """Kill the worker while the endpoint is down, restart it, let it pause, bring the endpoint back.

    Returns the audit log once every case is final, the number of case requests
    the endpoint had answered when it came back, and the restarted worker's log.
    """
    ids = {c.sid for c in cases}
    first = WorkerProcess(settings, log_file=tmp_path / "worker-1.log").start()
    try:
        first.wait_ready()
        for case in cases:
            drop(settings.inbox_dir, f"{case.name}.xml", case.data)
        # The http agent has tried, failed and announced another attempt: kill it now.
        before = _audit(settings, lambda a: bool(a.retried(HTTP_VENDOR)), timeout=120)
        assert before.retried(HTTP_VENDOR), "the http vendor was never retried"
        first.kill()
    finally:
        first.stop()
    assert {} == sim.bookings  # down: nothing could be booked
    retried_before_kill = len(before.retried(HTTP_VENDOR))

    second_log = tmp_path / "worker-2.log"
    second = WorkerProcess(settings, log_file=second_log).start()
    try:
        # The new worker takes the waiting delivery up again and retries it against the outage
        # until the endpoint counts as down and the partition is paused.
        resumed = _audit(
            settings, lambda a: len(a.retried(HTTP_VENDOR)) > retried_before_kill, timeout=120
        )
        assert len(resumed.retried(HTTP_VENDOR)) > retried_before_kill
        metric = "sozialhub_vendor_endpoint_up"
        _wait(lambda: _metric(settings, metric) == 0.0, timeout=60, what="a paused partition")
        # Flaky before up: only requests past the outage count, so the second one fails.
        sim.flaky(every_nth=2)
        flaky_from = len(sim.statuses)
        sim.up()
        _wait(lambda: len(sim.bookings) >= 2, timeout=60, what="bookings while flaky")
        sim.heal()
        audit = _audit(
            settings, lambda a: a.tracker.all_final(ids) or not second.alive(), timeout=180
        )
        assert second.alive(), f"the worker died, see {second_log}"
        assert 1.0 == _metric(settings, metric)
        assert (_metric(settings, "sozialhub_delivery_retries_total") or 0.0) > 0
    finally:
        second.stop()
    return audit, flaky_from, second_log


# --- tests -------------------------------------------------------------------------------------


def test_every_channel_delivers_once_after_a_crash_during_an_endpoint_outage(
    vendor_factory: Callable[..., Vendor], tmp_path: Path
) -> None:
    """Files, vendor topic and http bookings are complete and single after SIGKILL while the endpoint is down."""
    vendor = vendor_factory()
    sim, settings = vendor.sim, vendor.settings
    sim.down()
    cases = _all_channels()
    ids = {c.sid for c in cases}
    assert len(cases) == len(ids)
    audit, flaky_from, second_log = _crash_during_outage(settings, sim, cases, tmp_path)

    # The restarted worker paused the partition while the endpoint was down and resumed it.
    logged = [e.get("event") for e in _log_events(second_log) if e.get("vendor") == HTTP_VENDOR]
    assert "deliver.paused" in logged
    assert "http.endpoint_available" in logged
    assert "deliver.resumed" in logged

    tracker = audit.tracker
    assert {} == {c.name: tracker.get(c.sid).outcome for c in cases if not tracker.get(c.sid).final}
    assert {c.name: "delivered" for c in cases} == {
        c.name: tracker.get(c.sid).outcome for c in cases
    }
    assert {c.name: c.channels for c in cases} == {
        c.name: tracker.get(c.sid).channels for c in cases
    }
    assert [] == [e for e in audit.events if e.decision == "rejected"]
    assert [] == _read_topic(settings, DEAD_LETTER)

    routed = [e for c in cases for e in tracker.get(c.sid).routed.values()]
    by_vendor: dict[str, dict[str, AuditEvent]] = {}
    for event in routed:
        assert event.vendor is not None
        assert event.delivery_id is not None
        by_vendor.setdefault(event.vendor, {})[event.delivery_id] = event
    assert {HTTP_VENDOR, KAFKA_VENDOR, "openprosoz", "lammkom"} == set(by_vendor)

    _check_http(audit, sim, by_vendor[HTTP_VENDOR], flaky_from)

    # kafka: every delivery on the vendor topic, keyed by its id, a valid fv-avro record.
    _check_vendor_topic(
        settings,
        {d: (e.submission_id, e.office or "") for d, e in by_vendor[KAFKA_VENDOR].items()},
    )

    # file: one record per delivery in the outbox, documents beside with the listed digests.
    case_of = {c.sid: c for c in cases}
    _check_outbox(
        settings.outbox_dir,
        settings.schema_dir,
        {
            d: (vendor_id, e.office or "", case_of[e.submission_id])
            for vendor_id in ("openprosoz", "lammkom")
            for d, e in by_vendor[vendor_id].items()
        },
    )


REFUSED_OFFICE = "but-dorsten"


def _not_for_refused_office(body: bytes) -> bool:
    """The vendor refuses (422) every case for :data:`REFUSED_OFFICE`."""
    return json.loads(body)["office"]["id"] != REFUSED_OFFICE


def test_a_permanent_refusal_is_dead_lettered_and_the_vendor_queue_goes_on(
    vendor_factory: Callable[..., Vendor], tmp_path: Path
) -> None:
    """A 422 ends in one DELIVERY dead letter at http/422 without retry or booking; later cases are booked."""
    vendor = vendor_factory(validate=_not_for_refused_office)
    sim, settings = vendor.sim, vendor.settings
    refused = _case("but-dorsten", "46282", "Dorsten", (BUT,), {REFUSED_OFFICE: "http"})
    later = [
        _case("but-marl", "45768", "Marl", (BUT,), {"but-marl": "http"}),
        _case(
            "elterngeld", "45657", "Recklinghausen", (ELTERNGELD,), {"kreis-re-elterngeld": "http"}
        ),
    ]
    ids = {c.sid for c in (refused, *later)}

    worker = WorkerProcess(settings, log_file=tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        drop(settings.inbox_dir, "refused.xml", refused.data)
        first = _audit(settings, lambda a: a.tracker.get(refused.sid).final, timeout=120)
        assert "dead-lettered" == first.tracker.get(refused.sid).outcome
        for case in later:  # after the refusal: the vendor's queue must not be stuck
            drop(settings.inbox_dir, f"{case.name}.xml", case.data)
        audit = _audit(settings, lambda a: a.tracker.all_final(ids), timeout=120)
    finally:
        worker.stop()

    tracker = audit.tracker
    outcome = tracker.get(refused.sid)
    assert ("dead-lettered", "DELIVERY") == (outcome.outcome, outcome.reason)
    assert outcome.rejected is not None
    assert ("deliver", "http/422") == (outcome.rejected.stage, outcome.rejected.path)
    [refused_id] = outcome.routed
    assert {c.name: "delivered" for c in later} == {
        c.name: tracker.get(c.sid).outcome for c in later
    }
    assert {c.name: c.channels for c in later} == {
        c.name: tracker.get(c.sid).channels for c in later
    }

    # One dead letter, for the refused delivery, and nothing else.
    letters = [decode(m.value(), DeadLetter) for m in _read_topic(settings, DEAD_LETTER)]
    assert [(refused.sid, "deliver", "DELIVERY", "http/422")] == [
        (d.submission_id, d.stage, d.reason, d.path) for d in letters
    ]
    assert dead_letter_id(refused.sid, "deliver", refused_id) == letters[0].dead_letter_id
    assert letters[0].source is not None
    assert settings.topic(f"deliveries.{HTTP_VENDOR}") == letters[0].source.topic

    # Refused once, never retried, never booked; the later cases booked once each.
    assert 1 == sim.requests_by_key[refused_id]
    assert [(refused_id, 422)] == [(k, s) for k, s in sim.statuses if k == refused_id]
    assert [] == [e for e in audit.events if e.decision == "retried"]
    later_ids = {d for c in later for d in tracker.get(c.sid).routed}
    assert later_ids == set(sim.bookings)
    assert refused_id not in sim.bookings
    assert [] == sim.booked_twice()


def test_a_refusal_after_an_outage_ends_that_outage(
    vendor_factory: Callable[..., Vendor], tmp_path: Path
) -> None:
    """An outage ends with the next outcome that is not ``unavailable``, a refusal too.

    The endpoint is down, comes back and refuses the waiting delivery (422).
    Longer than ``outage_max_s`` later it goes down again, briefly: the next
    delivery waits for it and is booked; its outage is not counted from the
    start of the first one (which would dead-letter it at ``http/unavailable``
    without a single probe).
    """
    outage_max_s = 6.0
    vendor = vendor_factory(validate=_not_for_refused_office, outage_max_s=outage_max_s)
    sim, settings = vendor.sim, vendor.settings
    refused = _case("but-dorsten", "46282", "Dorsten", (BUT,), {REFUSED_OFFICE: "http"})
    later = _case("but-marl", "45768", "Marl", (BUT,), {"but-marl": "http"})

    worker = WorkerProcess(settings, log_file=tmp_path / "worker.log").start()
    try:
        worker.wait_ready()
        attempts = FAST_HTTP["max_attempts"]
        sim.down()
        drop(settings.inbox_dir, "refused.xml", refused.data)
        _wait(lambda: sim.case_requests >= 1, 120, "the first attempt")
        first_outage = time.monotonic()
        # The retries run out, the endpoint counts as down and the partition pauses.
        _wait(lambda: _metric(settings, "sozialhub_vendor_endpoint_up") == 0.0, 30, "a pause")
        assert attempts == sim.case_requests
        sim.up()
        first = _audit(settings, lambda a: a.tracker.get(refused.sid).final, timeout=60)
        rejected = first.tracker.get(refused.sid).rejected
        assert rejected is not None
        assert ("DELIVERY", "http/422") == (rejected.reason, rejected.path)
        # Well past outage_max_s after the first outage began, the endpoint fails again.
        time.sleep(max(0.0, first_outage + outage_max_s + 2 - time.monotonic()))
        sim.down()
        requests_so_far = sim.case_requests
        drop(settings.inbox_dir, "later.xml", later.data)
        _wait(lambda: sim.case_requests >= requests_so_far + attempts, 60, "the retries")
        time.sleep(1.5)  # the partition pauses and probes: a short outage
        sim.up()
        audit = _audit(settings, lambda a: a.tracker.get(later.sid).final, timeout=60)
    finally:
        worker.stop()

    outcome = audit.tracker.get(later.sid)
    assert (None, "delivered") == (outcome.reason, outcome.outcome)
    assert set(outcome.routed) == set(sim.bookings)
    assert [(refused.sid, "http/422")] == [
        (d.submission_id, d.path)
        for d in (decode(m.value(), DeadLetter) for m in _read_topic(settings, DEAD_LETTER))
    ]
