"""The whole pipeline through a real broker: file drop in, vendor files out.

Every vendor delivers fv-xml files here, so each delivery can be checked as a
file; the other formats and channels go through the broker in
test_delivery_channels.py and test_demo.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import xmlschema
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hub import schemas, topics
from hub.config import PROJECT_ROOT
from hub.core import receipt, xmlsafe
from hub.core.records import submission_id
from hub.keys import ephemeral_certificate
from hub.supervise import WorkerProcess

from .helpers import all_vendors_on_files, dead_letters, drop, get, outcomes

pytestmark = pytest.mark.integration

EXAMPLES = sorted((PROJECT_ROOT / "examples" / "submissions").glob("*.xml"))
EXPECTED = {
    row["file"]: row
    for row in json.loads((PROJECT_ROOT / "examples" / "expected.json").read_text("utf-8"))
}
PERSONAL = (
    b"Mustermann",
    b"Demir",
    b"Kowalski",
    b"1985-04-12",
    b"Kurf\xc3\xbcrstenwall",
    b"Bergstra",
)


@pytest.fixture
def hub_settings(hub_settings):
    return all_vendors_on_files(hub_settings)


@pytest.fixture
def worker(hub_settings):
    process = WorkerProcess(hub_settings, log_file=hub_settings.data_dir / "worker.log").start()
    process.wait_ready()
    yield process
    process.stop()


class TestExamplesThroughTheBroker:
    def test_every_example_reaches_its_expected_outcome(self, hub_settings, worker):
        """Each example file ends delivered to the expected offices or dead-lettered with the expected reason."""
        ids = {}
        for path in EXAMPLES:
            data = path.read_bytes()
            ids[submission_id(data)] = path.name
            drop(hub_settings.inbox_dir, path.name, data)
        tracker = outcomes(hub_settings, set(ids), timeout=120)
        actual = {
            name: (tracker.get(sid).outcome, tracker.get(sid).reason, tracker.get(sid).offices)
            for sid, name in ids.items()
        }
        expected = {
            name: (
                "delivered" if row["verdict"] == "accepted" else "dead-lettered",
                row["reason"],
                sorted(row["offices"]),
            )
            for name, row in EXPECTED.items()
        }
        assert expected == actual
        # The inbox is empty: every file was taken only after Kafka acknowledged it.
        assert [] == sorted(p.name for p in hub_settings.inbox_dir.iterdir())
        assert sorted(f"{sid}.xml" for sid in ids) == sorted(
            p.name for p in hub_settings.archive_dir.iterdir()
        )

    def test_outputs_validate_and_carry_a_receipt_signed_by_the_configured_key(
        self, hub_settings, tmp_path
    ):
        """Delivered files validate against the vendor XSD; the receipt verifies with the pinned hub certificate."""
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = ephemeral_certificate(key, "sozialhub-test", days=10)
        key_file, cert_file = tmp_path / "hub.key", tmp_path / "hub.crt"
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        settings = hub_settings.with_overrides(
            signing_key_file=key_file, signing_cert_file=cert_file
        )
        data = EXAMPLES[1].read_bytes()  # household with a document, two offices
        sid = submission_id(data)
        process = WorkerProcess(settings, log_file=tmp_path / "signed-worker.log").start()
        try:
            process.wait_ready()
            drop(settings.inbox_dir, EXAMPLES[1].name, data)
            tracker = outcomes(settings, {sid}, timeout=90)
            _, metrics_text = get(settings.web_port, "/metrics")
        finally:
            process.stop()
        assert "delivered" == tracker.get(sid).outcome
        files = sorted(settings.outbox_dir.glob("*/*/*.xml"))
        assert 2 == len(files)
        vendor_schema = schemas.load_vendor_schema(settings.schema_dir, "fv-xml")
        for path in files:
            tree = xmlsafe.parse(path.read_bytes())
            vendor_schema.validate(xmlschema.XMLResource(tree, allow="none"))
            signed = base64.b64decode(tree.findtext("{urn:sozialhub:vendor:fv-xml:1}hubQuittung"))
            attested = receipt.verify(signed, certificate)
            assert (sid, hashlib.sha256(data).hexdigest()) == (
                attested["submissionId"],
                attested["payloadDigest"],
            )
        # The certificate gauge reports the configured certificate (10 days), not an ephemeral one.
        gauge = next(
            line
            for line in metrics_text.decode().splitlines()
            if line.startswith('sozialhub_signing_certificate_days_left{which="current"} ')
        )
        assert 9.0 < float(gauge.split()[1]) <= 10.0

    def test_dead_letters_carry_reason_and_reference_but_no_payload(self, hub_settings, worker):
        """A rejected submission's dead letter names reason and source record and holds no personal data."""
        data = EXAMPLES[5].read_bytes()  # invalid birth date
        sid = submission_id(data)
        drop(hub_settings.inbox_dir, "bad.xml", data)
        outcomes(hub_settings, {sid}, timeout=90)
        letters = [d for d in dead_letters(hub_settings, {sid}) if d.submission_id == sid]
        assert 1 == len(letters)
        letter = letters[0]
        assert ("XSD", "intake") == (letter.reason, letter.stage)
        assert letter.source is not None
        assert hub_settings.topic("submissions.received") == letter.source.topic
        from hub.core.records import encode

        raw = encode(letter)
        assert not any(fragment in raw for fragment in PERSONAL)

    def test_audit_log_holds_no_personal_data(self, hub_settings, worker):
        """Audit events carry ids, digests and codes only."""
        from hub.core.pipeline import AUDIT
        from hub.kafka import follow

        ids = set()
        for path in EXAMPLES:
            data = path.read_bytes()
            ids.add(submission_id(data))
            drop(hub_settings.inbox_dir, path.name, data)
        outcomes(hub_settings, ids, timeout=120)
        seen = 0
        for message in follow(hub_settings, AUDIT, lambda: False, timeout=5):
            seen += 1
            assert not any(fragment in message.value() for fragment in PERSONAL)
            assert message.key().startswith(b"sub-")
            assert not message.headers()
        assert seen >= 5 * len(ids) - 10

    def test_health_readiness_and_metrics(self, hub_settings, worker):
        """The worker's web port answers health and readiness and exports the documented metrics."""
        data = EXAMPLES[0].read_bytes()
        drop(hub_settings.inbox_dir, EXAMPLES[0].name, data)
        outcomes(hub_settings, {submission_id(data)}, timeout=90)
        assert 200 == get(hub_settings.web_port, "/healthz")[0]
        assert (200, {"ready": True}) == (lambda r: (r[0], json.loads(r[1])))(
            get(hub_settings.web_port, "/readyz")
        )
        status, body = get(hub_settings.web_port, "/metrics")
        assert 200 == status
        text = body.decode()
        for name in (
            'sozialhub_stage_records_total{outcome="accepted",stage="intake"} 1.0',
            'sozialhub_stage_records_total{outcome="delivered",stage="deliver"} 1.0',
            "sozialhub_stage_seconds_bucket",
            "sozialhub_end_to_end_seconds_count 1.0",
            "sozialhub_signing_certificate_days_left",
        ):
            assert name in text

    def test_no_topic_is_created_implicitly(self, hub_settings, worker):
        """After a run, every topic under the prefix is one topics.yml declares."""
        data = EXAMPLES[0].read_bytes()
        drop(hub_settings.inbox_dir, EXAMPLES[0].name, data)
        outcomes(hub_settings, {submission_id(data)}, timeout=90)
        specs = topics.load(hub_settings)
        plan = topics.plan(specs, topics.observe(hub_settings, specs), hub_settings.topic_prefix)
        assert ((), ()) == (plan.create, plan.unknown)


class TestOversize:
    def test_oversize_file_is_dead_lettered_and_kept_aside(self, hub_settings, tmp_path):
        """A file above the byte limit never reaches Kafka as a payload: SIZE dead letter, file set aside."""
        settings = hub_settings.with_overrides(max_submission_bytes=10_000)
        process = WorkerProcess(settings, log_file=tmp_path / "worker.log").start()
        try:
            process.wait_ready()
            import hashlib

            big = b"<a>" + b"x" * 50_000 + b"</a>"
            sid = "sub-" + hashlib.sha256(big).hexdigest()[:32]
            drop(settings.inbox_dir, "big.xml", big)
            tracker = outcomes(settings, {sid}, timeout=60)
        finally:
            process.stop()
        assert ("dead-lettered", "SIZE") == (tracker.get(sid).outcome, tracker.get(sid).reason)
        kept = list(Path(settings.archive_dir / "oversize").iterdir())
        assert [big] == [p.read_bytes() for p in kept]
