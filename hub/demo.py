"""``sozialhub demo``: the whole hub on a laptop, end to end.

Starts the embedded broker (unless ``KAFKA_BOOTSTRAP_SERVERS`` is set), applies
``topics.yml``, starts the portal simulators (an XTA server with a development
PKI, a FIT-Connect Submission API) and a worker process configured for them,
then sends each example the way its portal would (:data:`TRANSPORTS`): through
the XTA mailbox (inline base64, or as MTOM/XOP for the examples in
:data:`MTOM`), as an encrypted FIT-Connect submission, as an OSCI content
package with its metadata sidecar in the file drop's ``osci`` sub-inbox (as an
office's OSCI client hands it over), or into the file-drop inbox. The summary
says how the hub received each one (transport, source, MIME or not, from
``submissions.received``), and the demo fails when that is not how it was
sent. Deliveries leave through every channel of the example office table:
files in the outbox (vendor XML, fixed-width records with documents beside),
Avro records on the vendor topic, and JSON over HTTPS to a vendor endpoint
simulator with a client certificate. That endpoint is down when the first
case arrives and comes back :data:`OUTAGE_SECONDS` later, then fails every
second request for a while: the worker retries, pauses the partition, probes,
and delivers every case exactly once. The demo follows the received and
receipts topics, the audit log and the vendor topic until every submission is
delivered or dead-lettered and has its receipt (every XTA and FIT-Connect
portal has it; for OSCI, with no way back, the receipt record is the answer),
prints a summary and stops everything again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric import ec

from hub import dlq, topics
from hub.broker import cluster, free_port
from hub.config import PROJECT_ROOT, Secret, Settings, variable
from hub.core.outcomes import OutcomeTracker
from hub.core.pipeline import AUDIT, RECEIPTS, RECEIVED, vendor_topic
from hub.core.records import (
    AuditEvent,
    PortalReceipt,
    Received,
    decode,
    received_submission_id,
    submission_id,
    unb64,
)
from hub.core.transport import xta
from hub.core.wohngeld import NAMESPACE as WOHNGELD_NAMESPACE
from hub.kafka import follow
from hub.keys import ephemeral_certificate
from hub.sim import fitconnect as sim_fitconnect
from hub.sim import osci as sim_osci
from hub.sim import pki
from hub.sim.portals import PortalSimulators
from hub.sim.vendor import VendorSimulator, VendorSimulatorThread
from hub.supervise import WorkerProcess, worker_environment

log = structlog.get_logger(__name__)

EXAMPLES = PROJECT_ROOT / "examples" / "submissions"

# How each example reaches the hub; anything not listed goes through the file drop.
TRANSPORTS = {
    "01-buergergeld-recklinghausen.xml": "xta2",
    "03-grundsicherung-gladbeck-ars.xml": "xta2",
    "04-elterngeld-dorsten.xml": "osci",
    "05-asylblg-herten-reader.xml": "xta2",
    "06-invalid-birthdate.xml": "xta2",
    "09-wohngeld-serviceportal-herten.xml": "fitconnect",
}
# XTA examples the simulator serves as MTOM/XOP (content in binary MIME parts); the others inline.
MTOM = frozenset({"03-grundsicherung-gladbeck-ars.xml"})
# Transports with a way back to the portal: the portal itself must have the receipt.
ANSWERED_REMOTELY = frozenset({"xta2", "fitconnect"})
HUB_MAILBOX = "hub:055620000000"  # the hub's XTA mailbox (an example key)
SOZIALPLATTFORM = "sop:050000100099"  # config/portals.yml: sozialplattform-nrw (xta2, osci)
FITCONNECT_DESTINATION = "6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b"  # config/portals.yml
OUTAGE_SECONDS = 8.0  # how long the http vendor stays down after its first failed attempt
FLAKY_SECONDS = 10.0  # then every second request fails for this long


def drop(files: list[Path], inbox: Path) -> None:
    """Put files into the inbox the way a writer should: temporary name, then rename."""
    inbox.mkdir(parents=True, exist_ok=True)
    for source in files:
        temporary = inbox / f".{source.name}.part"
        shutil.copyfile(source, temporary)
        temporary.replace(inbox / source.name)


@dataclass
class Progress:
    """What the demo has seen: outcomes from the audit log, receipts by transport message id."""

    tracker: OutcomeTracker = field(default_factory=OutcomeTracker)
    receipts: dict[str, PortalReceipt] = field(default_factory=dict)  # message id -> receipt
    vendor_records: dict[str, int] = field(default_factory=dict)  # delivery id -> bytes on topic
    vendor_topics: tuple[str, ...] = ()
    received: dict[str, dict[str, Any]] = field(default_factory=dict)  # submission id -> how

    def add(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if topic.endswith(AUDIT):
            self.tracker.add(decode(value, AuditEvent))
        elif topic.endswith(self.vendor_topics) and key is not None:
            self.vendor_records[key.decode("ascii", "replace")] = len(value)
        elif topic.endswith(RECEIPTS):
            receipt = decode(value, PortalReceipt)
            if receipt.transport_message_id:
                self.receipts.setdefault(receipt.transport_message_id, receipt)
        elif topic.endswith(RECEIVED):
            record = decode(value, Received)
            self.received.setdefault(record.submission_id, received_as(record))


def received_as(record: Received) -> dict[str, Any]:
    """How the hub received a submission: transport, connector, and whether the original is a
    MIME entity (an XTA message as MTOM/XOP, an OSCI package as multipart/related)."""
    return {
        "transport": record.transport,
        "source": record.source,
        "mime": xta.is_mime(unb64(record.payload_b64)),
    }


@dataclass
class Example:
    path: Path
    transport: str
    mtom: bool = False  # XTA: served as MTOM/XOP
    submission_id: str | None = None  # known up front for the file drop and OSCI
    message_id: str | None = None  # XTA message id, FIT-Connect submission id, OSCI message id

    def resolve(self, progress: Progress) -> str | None:
        if self.submission_id is None and self.message_id in progress.receipts:
            self.submission_id = progress.receipts[self.message_id].submission_id
        return self.submission_id

    @property
    def sent_as(self) -> dict[str, Any]:
        """How the demo sent it, in the shape of :func:`received_as`."""
        source = {"xta2": "xta", "fitconnect": "fitconnect"}.get(self.transport, "filedrop")
        return {"transport": self.transport, "source": source, "mime": self.mtom or self.osci}

    @property
    def osci(self) -> bool:
        return self.transport == "osci"


def finished(
    examples: list[Example], progress: Progress, portals_answered: Callable[[], bool]
) -> bool:
    for example in examples:
        sid = example.resolve(progress)
        if sid is None:
            return False
        outcome = progress.tracker.get(sid)
        if not outcome.final:
            return False
        refused_unread = outcome.rejected is not None and outcome.rejected.stage == "ingest"
        if sid not in progress.received and not refused_unread:
            return False  # its received record is still on its way
        if example.message_id is not None and example.message_id not in progress.receipts:
            return False  # e.g. an OSCI receipt record not seen yet
    return portals_answered()


def _output(
    did: str, channel: str | None, outbox: Path, progress: Progress, vendor: VendorSimulator | None
) -> str | None:
    """Where a delivery ended up: the file(s), the vendor topic record, or the booking."""
    if channel == "file":
        written = sorted(outbox.glob(f"*/*/{did}.*"))
        if not written:
            return None
        record = next((w for w in written if w.name.count(".") == 1), written[0])
        return str(record.relative_to(outbox.parent))
    if channel == "kafka" and did in progress.vendor_records:
        return (
            f"topic {progress.vendor_topics[0]} key {did} ({progress.vendor_records[did]} B Avro)"
        )
    if channel == "http" and vendor is not None:
        booking = vendor.booking(did)
        return f"booking {booking.booking_id} at {booking.location}" if booking else None
    return None


def summary_rows(
    examples: list[Example],
    progress: Progress,
    outbox: Path,
    answered: dict[str, str],
    vendor: VendorSimulator | None = None,
) -> list[dict[str, Any]]:
    rows = []
    for example in examples:
        sid = example.resolve(progress)
        outcome = progress.tracker.get(sid or "sub-unknown")
        deliveries = []
        for did, routed in sorted(outcome.routed.items(), key=lambda item: item[1].office or ""):
            done = outcome.delivered.get(did)
            channel = done.channel if done else None
            output = _output(did, channel, outbox, progress, vendor) if done else None
            deliveries.append(
                {
                    "office": routed.office,
                    "vendor": routed.vendor,
                    "channel": channel,
                    "attempts": done.attempt if done else None,
                    "output": output,
                }
            )
        receipt = progress.receipts.get(example.message_id or "")
        rows.append(
            {
                "file": example.path.name,
                "transport": example.transport,
                "mtom": example.mtom,
                "received": progress.received.get(sid or ""),
                "submission_id": sid,
                "outcome": outcome.outcome if sid else "pending",
                "reason": outcome.reason,
                "stage": outcome.rejected.stage if outcome.rejected else None,
                "offices": [d["office"] for d in deliveries],
                "outputs": [
                    d["output"] for d in deliveries if d["output"] and d["channel"] == "file"
                ],
                "channels": {d["office"]: d["channel"] for d in deliveries},
                "deliveries": deliveries,
                "retries": outcome.retries,
                "receipt": None
                if receipt is None
                else {
                    "channel": receipt.channel,
                    "outcome": receipt.outcome,
                    "reason": receipt.reason,
                    # No way back (channel "none", OSCI): the receipt record is the answer.
                    "portal_has_it": None
                    if receipt.channel == "none"
                    else answered.get(example.message_id or "") == receipt.outcome,
                },
            }
        )
    return rows


def _via(row: dict[str, Any]) -> str:
    """The summary's "via" column: the transport, and MTOM/XOP for an XTA message sent so."""
    return f"{row['transport']}/MTOM" if row["mtom"] else row["transport"]


def incomplete(rows: list[dict[str, Any]], planned: list[Example], elapsed: float) -> str | None:
    """What keeps the demo from succeeding, or None: a submission without an outcome, a portal
    without its receipt (for OSCI: no receipt record), or one not received the way it was sent
    (transport, connector, MIME or not)."""
    pending = [r["file"] for r in rows if r["outcome"] == "pending"]
    unanswered = [
        r["file"]
        for r in rows
        if (r["transport"] in ANSWERED_REMOTELY and not (r["receipt"] or {}).get("portal_has_it"))
        or (r["transport"] == "osci" and r["receipt"] is None)
    ]
    if pending or unanswered:
        return (
            f"{len(pending)} submission(s) without an outcome, {len(unanswered)} portal(s) "
            f"without a receipt after {elapsed:.0f} s: {', '.join(pending + unanswered)}"
        )
    sent = {e.path.name: e.sent_as for e in planned}
    # A submission refused at the inbox (stage ingest) has no received record.
    mismatched = [
        r["file"] for r in rows if r["stage"] != "ingest" and r["received"] != sent[r["file"]]
    ]
    if mismatched:
        return f"Not received the way they were sent: {', '.join(mismatched)}"
    return None


def transports_line(rows: list[dict[str, Any]]) -> str:
    """How many examples came in by each inbound path, e.g. for the closing summary."""
    names = {
        "xta2": "XTA inline",
        "xta2/MTOM": "XTA MTOM/XOP",
        "fitconnect": "FIT-Connect",
        "osci": "OSCI package with metadata sidecar (osci sub-inbox)",
        "file": "file drop",
    }
    counts: dict[str, int] = {}
    for row in rows:
        counts[_via(row)] = counts.get(_via(row), 0) + 1
    return ", ".join(f"{counts[v]} {names.get(v, v)}" for v in names if v in counts)


def print_summary(rows: list[dict[str, Any]], *, as_json: bool) -> None:
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return
    print()
    print(
        f"{'submission':38} {'via':10} {'outcome':14} {'reason':18} {'receipt':10} "
        f"{'office':22} {'channel':8} output"
    )
    print("-" * 160)
    for row in rows:
        lines = row["deliveries"] or [{"office": "-", "channel": "-", "output": "-"}]
        receipt = row["receipt"]["outcome"] if row["receipt"] else "-"
        for index, delivery in enumerate(lines):
            head = (
                (row["file"], _via(row), row["outcome"], row["reason"] or "-", receipt)
                if index == 0
                else ("", "", "", "", "")
            )
            print(
                f"{head[0]:38} {head[1]:10} {head[2]:14} {head[3]:18} {head[4]:10} "
                f"{delivery['office']:22} {delivery['channel'] or '-':8} {delivery['output'] or '-'}"
            )


def _write_json(path: Path, document: Any) -> Path:
    path.touch(mode=0o600)
    path.write_text(json.dumps(document), "utf-8")
    return path


def run(
    settings: Settings,
    examples: Path = EXAMPLES,
    workdir: Path | None = None,
    timeout: float = 240.0,
    *,
    as_json: bool = False,
) -> int:
    started = time.monotonic()
    files = sorted(p for p in examples.iterdir() if p.is_file() and p.suffix == ".xml")
    if not files:
        print(f"no example submissions in {examples}")
        return 2
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    root = (workdir or Path("var") / f"demo-{stamp}").resolve()
    embedded = settings.embedded
    with cluster(settings) as active, contextlib.ExitStack() as stack:
        settings = active.in_workspace(root).with_overrides(web_port=free_port())
        if not embedded:
            # Never feed the examples into a real pipeline: own topics, own group, removed afterwards.
            settings = settings.with_overrides(topic_prefix=f"sozialhub-demo-{stamp.lower()}.")
            stack.callback(topics.delete_prefixed, settings)
        specs = topics.load(settings)
        plan = topics.apply(settings, specs)
        log.info("demo.topics_applied", created=len(plan.create), drift=len(plan.drift))
        settings, sims, portal_secrets = _start_portals(settings, root, stack)
        settings, vendor = _start_vendor(settings, root, stack)
        settings, hub_certificate = _hub_signing_key(settings, root)
        worker = WorkerProcess(
            settings,
            log_file=root / "worker.log",
            # The audit vault records every input; the demo's KEK is the public development one.
            args=() if settings.audit_kek_file else ("--development-audit-kek",),
            secrets=portal_secrets,
        ).start()
        stack.callback(worker.stop)
        log.info(
            "demo.worker_started", pid=worker.pid, web_port=settings.web_port, workdir=str(root)
        )
        worker.wait_ready()
        planned = [Example(p, TRANSPORTS.get(p.name, "file"), mtom=p.name in MTOM) for p in files]
        _send(planned, sims, settings.inbox_dir)
        progress = Progress(vendor_topics=tuple(_kafka_vendor_topics(settings)))
        answered: dict[str, str] = {}
        recovery = _Recovery(vendor)

        def portals_answered() -> bool:
            answered.update(_portal_answers(sims))
            remote = [e for e in planned if e.transport in ANSWERED_REMOTELY]
            return all(e.message_id in answered for e in remote)

        for message in follow(
            settings,
            (RECEIVED, AUDIT, RECEIPTS, *progress.vendor_topics),
            lambda: finished(planned, progress, portals_answered) or not worker.alive(),
            timeout,
        ):
            progress.add(message.topic(), message.value(), message.key())
            recovery.observe(progress)
        recovery.cancel()
        rows = summary_rows(planned, progress, settings.outbox_dir, answered, vendor)
        print_summary(rows, as_json=as_json)
        booked = vendor.snapshot()
        print(
            f"\nVendor endpoint (OK.SOZIUS, JSON over HTTPS): down for {OUTAGE_SECONDS:.0f} s after "
            f"the first attempt, then failing every second request; "
            f"{sum(r['retries'] for r in rows)} retried attempt(s), {booked['requests']} requests, "
            f"{booked['bookings']} cases booked, {booked['replays']} replays answered, "
            f"{len(booked['booked_twice'])} booked twice."
        )
        if booked["booked_twice"]:
            print("A case was booked twice: the idempotency contract is broken.")
            return 1
        elapsed = time.monotonic() - started
        problem = incomplete(rows, planned, elapsed)
        if problem is not None:
            print(f"\n{problem}\nworker log: {root / 'worker.log'}")
            return 1
        if not (
            audit_summary(settings, hub_certificate)
            and audit_round(settings, hub_certificate, root)
        ):
            return 1
        delivered = sum(r["outcome"] == "delivered" for r in rows)
        print(
            f"\n{len(rows)} submissions: {delivered} delivered, {len(rows) - delivered} dead-lettered "
            f"in {elapsed:.1f} s; every XTA and FIT-Connect sender got its receipt, every OSCI "
            f"submission its receipt record. Received: {transports_line(rows)}. "
            f"Output under {root}."
        )
        if embedded:
            print("The embedded broker kept everything in memory; it is gone when the demo ends.")
    return 0


def _hub_signing_key(settings: Settings, root: Path) -> tuple[Settings, Path]:
    """The hub's signing key and certificate for this demo, made here so that the audit
    checkpoints it signs can be verified afterwards against a certificate on disk; a
    configured key is used as it is. Checkpoints every two seconds, so the demo sees them."""
    settings = settings.with_overrides(audit_checkpoint_interval_s=2.0)
    if settings.signing_key_file is not None and settings.signing_cert_file is not None:
        return settings, settings.signing_cert_file
    key = ec.generate_private_key(ec.SECP256R1())
    folder = root / "pki"
    folder.mkdir(parents=True, exist_ok=True)
    key_file = pki.write_key(folder / "hub-signing.key", key)
    certificate = ephemeral_certificate(key, "sozialhub demo hub", days=7)
    cert_file = pki.write_cert(folder / "hub-signing.crt", certificate)
    return settings.with_overrides(
        signing_key_file=key_file, signing_cert_file=cert_file
    ), cert_file


AUDIT_SETTLE_SECONDS = 60.0


def audit_summary(settings: Settings, certificate: Path) -> bool:
    """Wait until the chainer has chained and signed every audit event, verify the chain as
    ``sozialhub audit verify`` does, and print the result; False when it is not intact."""
    from hub import audit as audit_log  # noqa: PLC0415
    from hub.core import audit_chain  # noqa: PLC0415

    trusted = audit_chain.load_certificates(certificate.read_bytes())
    deadline = time.monotonic() + AUDIT_SETTLE_SECONDS
    report = audit_log.verify(settings, trusted, progress=False)
    while time.monotonic() < deadline:
        events = sum(1 for _ in dlq.read_topic(settings, settings.topic(AUDIT)))
        if report["entries"] >= events and report["unsigned"] == 0:
            break
        time.sleep(1.0)
        report = audit_log.verify(settings, trusted, progress=False)
    print(
        f"\nAudit log: {report['entries']} events chained in {len(report['partitions'])} "
        f"partitions, {report['checkpoints']} signed checkpoint(s), {report['unsigned']} not yet "
        f"signed; `sozialhub audit verify`: {'intact' if report['ok'] else 'FINDINGS'}."
    )
    if not report["ok"]:
        print(json.dumps(report["first_finding"]))
    return bool(report["ok"])


def _audit_command(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    """``sozialhub audit …`` as an operator runs it, against this demo's cluster; its JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "hub", "audit", *args],
        # Only the cluster and the files matter here; the portal connectors' settings would need
        # their secrets, which only the worker gets.
        env=worker_environment(
            settings.with_overrides(fitconnect_api_url=None, xta_msgbox_url=None)
        ),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if done.returncode not in (0, 1):
        log.error("demo.audit_command_failed", command=args[0], status=done.returncode)
        sys.stderr.write(done.stderr[-2000:])
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        return done.returncode, json.loads(lines[-1]) if lines else {}


def _a_delivered_person(settings: Settings) -> str | None:
    """The pseudonym of a person whose submission was delivered (from the chain)."""
    from hub import audit as audit_log  # noqa: PLC0415

    for _, _, event in audit_log.chain_events(settings):
        if event.stage == "deliver" and event.decision == "delivered" and event.person:
            return event.person
    return None


def audit_round(settings: Settings, certificate: Path, root: Path) -> bool:
    """The audit commands on what the demo did: a transparency report for one person, a
    replay of every recorded input, that person's erasure, the replay again (their input is
    gone, the others are the same) and the chain verified again (the erasure is in it)."""
    person = _a_delivered_person(settings)
    if person is None:
        print("Audit: no delivered submission names a person; report and erasure skipped.")
        return False
    # The demo's topics are its own (a fresh broker, or its own prefix): the last hour is all.
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    window = ("--from", since.strftime("%Y-%m-%dT%H:%M:%SZ"), "--to", _later())
    status, report = _audit_command(
        settings, "report", "--person", person, "--html", str(root / "transparency-report.html")
    )
    transfers = len(report.get("transfers", ())) if status == 0 else None
    status, replay = _audit_command(settings, "replay", *window, "--development-kek", "--json")
    same, total = replay.get("same"), replay.get("submissions")
    print(
        f"Audit report for one person ({person}): {transfers} transfer(s), page "
        f"{root / 'transparency-report.html'}.\n"
        f"Audit replay: {same} of {total} recorded submissions the same today (exit {status}); "
        f"replay {replay.get('replayed_per_second')} submissions/s, live pipeline "
        f"{replay.get('live_per_second')} submissions/s."
    )
    if status != 0 or not transfers:
        return False
    status, erased = _audit_command(settings, "erase", "--person", person, "--yes")
    if status != 0:
        return False
    status, again = _audit_command(settings, "replay", *window, "--development-kek", "--json")
    gone = again.get("counts", {}).get("input-erased", 0)
    print(
        f"Audit erase of that person: {erased.get('key_count')} key(s) tombstoned; replay now "
        f"finds {gone} input(s) erased and {again.get('same')} the same (exit {status})."
    )
    if status != 1 or gone < 1:
        return False
    return audit_summary(settings, certificate)


def _later() -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _start_portals(
    settings: Settings, root: Path, stack: contextlib.ExitStack
) -> tuple[Settings, PortalSimulators, dict[str, str]]:
    """Start both simulators; return worker settings for them and the secrets it needs."""
    keys = sim_fitconnect.demo_keys()
    token, secret = secrets.token_urlsafe(24), secrets.token_hex(32)
    callback_port = free_port()
    sims = PortalSimulators(
        root / "pki",
        destination_id=FITCONNECT_DESTINATION,
        token=token,
        callback_secret=secret.encode("ascii"),
        receiver_signing_key=keys.signing,
        callback_url=f"http://127.0.0.1:{callback_port}/fitconnect/callback",
    )
    sims.start()
    stack.callback(sims.stop)
    configured = settings.with_overrides(
        **sims.xta_settings(HUB_MAILBOX, poll_seconds=0.5),
        fitconnect_api_url=sims.fitconnect.url,
        fitconnect_destination=FITCONNECT_DESTINATION,
        fitconnect_token=Secret(token),
        fitconnect_callback_secret=Secret(secret),
        fitconnect_decryption_keys=_write_json(
            root / "pki" / "fitconnect-decryption.jwks",
            {"keys": [keys.encryption.as_dict(private=True)]},
        ),
        fitconnect_signing_key=_write_json(
            root / "pki" / "fitconnect-signing.jwk", keys.signing.as_dict(private=True)
        ),
        fitconnect_callback_port=callback_port,
        fitconnect_poll_seconds=2.0,
    )
    worker_secrets = {
        variable("fitconnect_token"): token,
        variable("fitconnect_callback_secret"): secret,
    }
    return configured, sims, worker_secrets


def _kafka_vendor_topics(settings: Settings) -> list[str]:
    from hub import offices  # noqa: PLC0415

    table = offices.load(settings.offices_file, settings.schema_dir)
    return [vendor_topic(v.vendor_id) for v in table.vendors.values() if v.channel == "kafka"]


def _start_vendor(
    settings: Settings, root: Path, stack: contextlib.ExitStack
) -> tuple[Settings, VendorSimulator]:
    """The http vendor's endpoint: HTTPS with a client certificate, down until it has been tried.

    Its credentials go where the worker reads them, one directory per vendor
    (``vendor_credentials_dir``); its URL overrides the example's (``vendor_urls``).
    """
    from hub import offices  # noqa: PLC0415

    table = offices.load(settings.offices_file, settings.schema_dir)
    vendor_id = next(v.vendor_id for v in table.vendors.values() if v.channel == "http")
    tls = pki.create(root / "vendor-pki")
    token = secrets.token_urlsafe(24)
    simulator = VendorSimulator(
        ssl_context=tls.server_context(), token=token, max_request_bytes=16 * 1024 * 1024
    )
    simulator.down(retry_after=1)
    runner = VendorSimulatorThread(simulator)
    runner.start()
    stack.callback(runner.stop)
    credentials = root / "vendors" / vendor_id
    credentials.mkdir(parents=True)
    shutil.copyfile(tls.client_cert, credentials / "client.crt")
    shutil.copyfile(tls.client_key, credentials / "client.key")
    shutil.copyfile(tls.ca, credentials / "ca.crt")
    (credentials / "token").touch(mode=0o600)
    (credentials / "token").write_text(token, "utf-8")
    configured = settings.with_overrides(
        vendor_credentials_dir=root / "vendors",
        vendor_urls=f"{vendor_id}={simulator.url_template}",
    )
    return configured, simulator


class _Recovery:
    """Brings the vendor endpoint back :data:`OUTAGE_SECONDS` after the first failed attempt."""

    def __init__(self, vendor: VendorSimulator) -> None:
        self.vendor = vendor
        self.timers: list[threading.Timer] = []

    def observe(self, progress: Progress) -> None:
        if self.timers or not any(o.retries for o in progress.tracker.by_submission.values()):
            return
        log.info("demo.vendor_down", recovers_in_s=OUTAGE_SECONDS)

        def flaky() -> None:
            self.vendor.up()
            self.vendor.flaky(every_nth=2)

        self.timers = [
            threading.Timer(OUTAGE_SECONDS, flaky),
            threading.Timer(OUTAGE_SECONDS + FLAKY_SECONDS, self.vendor.heal),
        ]
        for timer in self.timers:
            timer.daemon = True
            timer.start()

    def cancel(self) -> None:
        for timer in self.timers:
            timer.cancel()


def _send(planned: list[Example], sims: PortalSimulators, inbox: Path) -> None:
    """Each example the way its portal sends it."""
    keys = sim_fitconnect.demo_keys()
    for example in planned:
        data = example.path.read_bytes()
        if example.transport == "xta2":
            example.message_id = sims.add_xta_message(
                data, author=SOZIALPLATTFORM, reader=HUB_MAILBOX, mtom=example.mtom
            )
        elif example.transport == "osci":
            # The office's OSCI client fetched it from the intermediary and hands it over.
            package = sim_osci.content_package(data, filename=example.path.name)
            example.message_id = sim_osci.new_message_id()
            sidecar = sim_osci.metadata(
                author=SOZIALPLATTFORM, reader=HUB_MAILBOX, message_id=example.message_id
            )
            sim_osci.hand_over(inbox, f"{example.path.stem}.mime", package, sidecar)
            # The id covers the package and the sidecar's values (records.received_submission_id).
            example.submission_id = received_submission_id(
                hashlib.sha256(package).hexdigest(),
                "osci",
                example.message_id,
                SOZIALPLATTFORM,
                HUB_MAILBOX,
            )
        elif example.transport == "fitconnect":
            example.message_id = sims.submit_fitconnect(
                data,
                [],
                keys.encryption_public,
                schema_uri=WOHNGELD_NAMESPACE,
                service_identifier="urn:de:fim:leika:leistung:99107023017001",
            )
        else:
            example.submission_id = submission_id(data)
    drop([e.path for e in planned if e.transport == "file"], inbox)


def _portal_answers(sims: PortalSimulators) -> dict[str, str]:
    """Transport message id -> the outcome the portal was told (from the simulators' records)."""
    answers: dict[str, str] = {}
    _, receipts = sims.xta_state()
    for body in receipts:
        message_id, outcome = xta.receipt_outcome(body)
        answers[message_id] = outcome
    answers.update(
        {
            submission: status
            for submission, status in sims.fitconnect_status().items()
            if status in ("accepted", "rejected")
        }
    )
    return answers
