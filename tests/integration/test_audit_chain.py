"""The audit chainer through a real broker: every audit.log event chained once, checkpoints
signed, a killed worker resumes without losing or doubling an entry, and `sozialhub audit
verify` finds what an attacker with write access to the topics forges there."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub import audit as audit_log
from hub import dlq
from hub.config import Settings
from hub.core import audit_chain as chain
from hub.core.pipeline import AUDIT, audit
from hub.core.receipt import ReceiptSigner
from hub.core.records import SourceRef, submission_id_of_digest
from hub.keys import ephemeral_certificate
from hub.supervise import WorkerProcess, worker_environment

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


def signing_settings(settings: Settings, directory: Path) -> tuple[Settings, Path]:
    """The worker signs with a key made here; its certificate is what verify trusts."""
    key = ec.generate_private_key(ec.SECP256R1())
    certificate = ephemeral_certificate(key, "sozialhub audit test")
    key_file, cert_file = directory / "hub.key", directory / "hub.crt"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    configured = settings.with_overrides(
        signing_key_file=key_file,
        signing_cert_file=cert_file,
        audit_checkpoint_every=50,
        audit_checkpoint_interval_s=1.0,
    )
    return configured, cert_file


def produce_events(settings: Settings, first: int, count: int) -> None:
    """``count`` audit events for distinct submissions, spread over the partitions by key."""
    from hub import kafka

    producer = kafka.producer(settings, partitioner="murmur2_random")
    for n in range(first, first + count):
        sid = submission_id_of_digest(hashlib.sha256(str(n).encode()).hexdigest())
        emit = audit(sid, "deliver", "delivered", NOW, office="wgs-herten")
        producer.produce(settings.topic(AUDIT), key=emit.key.encode(), value=emit.value)
        if n % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0


def chained(settings: Settings, certificates: list) -> dict:
    return audit_log.verify(settings, certificates, progress=False)


def wait_for(settings: Settings, certificates: list, total: int, timeout: float = 120.0) -> dict:
    """Verify until every event is chained and signed (or time runs out); the last report."""
    deadline = time.monotonic() + timeout
    report = chained(settings, certificates)
    while time.monotonic() < deadline:
        if report["entries"] >= total and report["unsigned"] == 0:
            return report
        time.sleep(1.0)
        report = chained(settings, certificates)
    return report


def verify_command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "audit", "verify", *args],
        env=worker_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def chain_size(settings: Settings) -> int:
    """About how many entries audit.chain holds (watermarks; may lag by a batch)."""
    reader = dlq.open_reader(settings)
    try:
        topic = settings.topic("audit.chain")
        return sum(
            dlq.watermarks_of(reader, topic, p)[1] for p in dlq.topic_partitions(reader, topic)
        )
    finally:
        reader.close()


TOTAL = 8000


def test_killed_chainer_resumes_without_losing_or_doubling_an_entry(hub_settings, tmp_path):
    settings, cert_file = signing_settings(hub_settings, tmp_path)
    certificates = chain.load_certificates(cert_file.read_bytes())
    log = settings.data_dir / "worker.log"
    args = ("--no-inbound", "--no-outbound")
    worker = WorkerProcess(settings, log_file=log, args=args).start()
    worker.wait_ready()

    def feed() -> None:  # events keep arriving while the chainer works and is killed
        for first in range(0, TOTAL, 100):
            produce_events(settings, first, 100)
            time.sleep(0.03)

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        deadline = time.monotonic() + 120
        while chain_size(settings) < 1000 and time.monotonic() < deadline:
            time.sleep(0.05)
        worker.kill()  # mid-stream: entries written whose audit.log offsets may not be committed
        partial = chain_size(settings)
    finally:
        feeder.join()
    assert 1000 <= partial < TOTAL, "the kill must land mid-stream"
    worker = WorkerProcess(settings, log_file=log, args=args).start()
    try:
        report = wait_for(settings, certificates, TOTAL)
    finally:
        worker.stop()
    assert report["ok"], json.dumps(report["first_finding"])
    assert report["entries"] == TOTAL  # each event exactly once: none lost, none chained twice
    assert report["unsigned"] == 0
    assert report["checkpoints"] >= 6  # a checkpoint per batch of at least 50 entries
    # Every audit.log record is the source of exactly one entry, in its own partition.
    sources = set()
    for message in dlq.read_topic(settings, settings.topic("audit.chain")):
        entry = json.loads(message.value())
        source = entry["source"]
        assert source["partition"] == message.partition() == entry["partition"]
        sources.add((source["partition"], source["offset"]))
    assert len(sources) == TOTAL


def test_verify_command_finds_forgeries_written_to_the_topics(hub_settings, tmp_path):
    settings, cert_file = signing_settings(hub_settings, tmp_path)
    certificates = chain.load_certificates(cert_file.read_bytes())
    produce_events(settings, 0, 120)
    worker = WorkerProcess(settings, args=("--no-inbound", "--no-outbound")).start()
    try:
        report = wait_for(settings, certificates, 120)
    finally:
        worker.stop()
    assert report["ok"]
    assert report["entries"] == 120
    clean = verify_command(settings, "--trust", str(cert_file))
    assert clean.returncode == 0, clean.stderr
    assert "audit.chain intact: 120 entries" in clean.stdout
    untrusted = verify_command(settings)  # the hub's certificate from the settings
    assert untrusted.returncode == 0, untrusted.stderr

    # An attacker appends a record of their own to partition 0 of the chain ...
    at = dlq.produce(settings, settings.topic("audit.chain"), b"x", b'{"seq":1}', partition=0)
    forged = verify_command(settings, "--trust", str(cert_file), "--json")
    assert forged.returncode == 1
    found = json.loads(forged.stdout)
    assert found["first_finding"]["kind"] == chain.INSERTED
    assert (found["first_finding"]["partition"], found["first_finding"]["offset"]) == (0, at.offset)

    # ... and a checkpoint signed with a key of their own.
    other = ec.generate_private_key(ec.SECP256R1())
    intruder = ReceiptSigner(other, ephemeral_certificate(other, "intruder"))
    head = chain.Head(1)
    _value, head = chain.append(head, b"{}", SourceRef("audit.log", 1, 0), NOW)
    head = chain.placed(head, 0, 0)
    checkpoint, _ = chain.make_checkpoint(head, intruder, NOW)
    landed = dlq.produce(settings, settings.topic("audit.checkpoints"), b"ckp-1", checkpoint, 1)
    both = json.loads(verify_command(settings, "--trust", str(cert_file), "--json").stdout)
    kinds = {
        (f["kind"], f["topic"], f["partition"], f["offset"])
        for p in both["partitions"]
        for f in p["findings"]
    }
    assert (chain.CHECKPOINT_FORGED, "audit.checkpoints", 1, landed.offset) in kinds
    assert (chain.INSERTED, "audit.chain", 0, at.offset) in kinds

    # A range that starts after the forgery in partition 0 is clean there.
    ranged = verify_command(
        settings, "--trust", str(cert_file), "--partition", "0", "--to-offset", str(at.offset)
    )
    assert ranged.returncode == 0, ranged.stdout
