"""OSCI packages through the file drop's osci sub-inbox, a real broker and a worker.

An OSCI client's handover, as docs/transports/osci.md describes it: the content
package and its metadata sidecar, each written atomically into
``<inbox>/osci/``. The portal (Sozialplattform NRW, recognised from the sidecar's
author) requires an author signature on the container, pinned to a certificate
made here. A signed package ends delivered; a package whose container is
encrypted while the worker has no reader key ends dead-lettered ``ENCRYPTED``;
a package whose sidecar never comes is refused ``METADATA``. A worker with the
office's reader key configured (``reader_decryption_keys``, encrypted PEM, the
password as a secret) delivers a signed container encrypted for that key and
refuses one encrypted for another key ``DECRYPT``. Each is answered on
``submissions.receipts`` as far as the hub can attribute it, and nothing stays
in the inbox.
"""

from __future__ import annotations

import copy
import hashlib

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.config import PROJECT_ROOT
from hub.core.pipeline import ACCEPTED, RECEIPTS
from hub.core.records import (
    Accepted,
    PortalReceipt,
    decode,
    received_submission_id,
    submission_id,
)
from hub.core.transport.osci_handover import OsciMetadata, render
from hub.kafka import follow
from hub.keys import ephemeral_certificate
from hub.supervise import WorkerProcess
from hub.testing import SubmissionSpec, make_submission
from tests import osci_builders as b
from tests.osci_builders import PDF, MimePart

from .helpers import all_vendors_on_files, dead_letters, drop, outcomes

pytestmark = pytest.mark.integration

PLATFORM = "sop:050000100099"
READER = "jbc:055620000000"
SIGNED_ID = "b3NjaS1zaWduZWQtNDcxMQ=="
ENCRYPTED_ID = "b3NjaS1lbmNyeXB0ZWQtNDcxMg=="
OURS_ID = "b3NjaS1vdXJzLTQ3MjE="
FOREIGN_ID = "b3NjaS1mb3JlaWduLTQ3MjI="
PASSWORD = "canary-Lesekennwort-4721"  # noqa: S105 - must never surface
PERSONAL = (b"Mustermann", b"Erika")


@pytest.fixture(scope="module")
def author():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return b.Author(key, ephemeral_certificate(key, "Sozialplattform OSCI Autor", days=30))


@pytest.fixture
def settings(hub_settings, author):
    """Vendors on files; the Sozialplattform requires container signatures pinned to ``author``."""
    settings = all_vendors_on_files(hub_settings)
    directory = settings.data_dir / "config"
    directory.mkdir(parents=True, exist_ok=True)
    pem = author.certificate.public_bytes(serialization.Encoding.PEM)
    (directory / "osci-author.pem").write_bytes(pem)
    table = yaml.safe_load((PROJECT_ROOT / "config" / "portals.yml").read_text("utf-8"))
    (platform,) = [p for p in table["portals"] if p["id"] == "sozialplattform-nrw"]
    assert "osci" in platform["transports"]
    assert PLATFORM in platform["authors"]
    platform["signature"] = {"mode": "required", "pinned": ["osci-author.pem"]}
    portals = directory / "portals.yml"
    portals.write_text(yaml.safe_dump(table, allow_unicode=True), "utf-8")
    return settings.with_overrides(portals_file=portals, osci_pair_seconds=5.0)


def signed_mime_package(author: b.Author, payload: bytes) -> bytes:
    """The OSCI library's shape: payload and a PDF as MIME parts, signed in the container by cid."""
    tree = b.package(
        b.container(b.reference("payload@osci", "c-payload"), b.reference("antrag@osci", "c-pdf"))
    )
    parts = {"payload@osci": payload, "antrag@osci": PDF}
    uris = ["cid:payload@osci", "cid:antrag@osci"]
    signature = b.signature_over(tree, uris, author.key, [author.certificate], parts=parts)
    tree[0].insert(0, signature)
    return b.mime(
        [
            b.root_part(b.xml(tree)),
            MimePart("payload@osci", payload, "text/xml"),
            MimePart("antrag@osci", PDF, "application/pdf", "base64", filename="antrag.pdf"),
        ]
    )


def encrypted_package(payload: bytes) -> bytes:
    secret = b.container(b.inline(payload, "payload"), ident="secret")
    return b.xml(b.package(b.encrypt(secret, b.reader_key().public_key())))


def signed_encrypted_package(author: b.Author, payload: bytes, reader: rsa.RSAPublicKey) -> bytes:
    """A container signed by ``author`` inside it, then encrypted for ``reader`` (no key name)."""
    secret = b.container(b.inline(payload, "payload"), b.inline(PDF, "att1"), ident="secret")
    scratch = b.package(copy.deepcopy(secret))
    secret.insert(
        0, b.signature_over(scratch, ["#payload", "#att1"], author.key, [author.certificate])
    )
    return b.xml(b.package(b.encrypt(secret, reader, key_name=None)))


def receipts(settings, expected: set[str], timeout: float = 60.0) -> dict[str, PortalReceipt]:
    found: dict[str, PortalReceipt] = {}
    for message in follow(settings, RECEIPTS, lambda: expected <= found.keys(), timeout):
        receipt = decode(message.value(), PortalReceipt)
        found.setdefault(receipt.submission_id, receipt)
    return found


def accepted_record(settings, sid: str, timeout: float = 30.0) -> Accepted | None:
    found: list[Accepted] = []
    for message in follow(settings, ACCEPTED, lambda: bool(found), timeout):
        record = decode(message.value(), Accepted)
        if record.submission_id == sid:
            found.append(record)
    return found[0] if found else None


def osci_submission_id(package: bytes, message_id: str) -> str:
    """The submission id of a package handed over with this test's metadata."""
    digest = hashlib.sha256(package).hexdigest()
    return received_submission_id(digest, "osci", message_id, PLATFORM, READER)


def names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_osci_handovers_end_delivered_encrypted_or_refused(settings, author):
    """Signed: delivered with the signer recorded. Encrypted: ENCRYPTED, answered. No sidecar: METADATA."""
    signed = signed_mime_package(author, make_submission(SubmissionSpec()))
    encrypted = encrypted_package(make_submission(SubmissionSpec()))
    lonely = b.inline_package()
    sids = {
        "signed": osci_submission_id(signed, SIGNED_ID),
        "encrypted": osci_submission_id(encrypted, ENCRYPTED_ID),
        "lonely": submission_id(lonely),  # no sidecar: refused at the inbox, by its bytes
    }
    inbox = settings.inbox_dir / "osci"
    worker = WorkerProcess(settings, log_file=settings.data_dir / "worker.log").start()
    try:
        worker.wait_ready()
        # The package first, the sidecar last: the worker takes the pair when both are there.
        drop(inbox, "4711.mime", signed)
        drop(inbox, "4711.mime.json", render(OsciMetadata(PLATFORM, READER, SIGNED_ID)))
        drop(inbox, "4712.xml.json", render(OsciMetadata(PLATFORM, READER, ENCRYPTED_ID)))
        drop(inbox, "4712.xml", encrypted)
        drop(inbox, "4713.xml", lonely)  # its sidecar never comes
        tracker = outcomes(settings, set(sids.values()), timeout=120)
        answers = receipts(settings, {sids["signed"], sids["encrypted"]})
        record = accepted_record(settings, sids["signed"])
        letters = {
            d.submission_id: d for d in dead_letters(settings, {sids["encrypted"], sids["lonely"]})
        }
    finally:
        worker.stop()

    actual = {
        name: (tracker.get(sid).outcome, tracker.get(sid).reason) for name, sid in sids.items()
    }
    assert {
        "signed": ("delivered", None),
        "encrypted": ("dead-lettered", "ENCRYPTED"),
        "lonely": ("dead-lettered", "METADATA"),
    } == actual

    assert record is not None
    assert ("osci", "sozialplattform-nrw", PLATFORM, READER, SIGNED_ID) == (
        record.transport,
        record.portal,
        record.author,
        record.reader,
        record.transport_message_id,
    )
    assert record.signer == author.certificate.subject.rfc4514_string()
    assert ["antrag.pdf"] == [a["filename"] for a in record.attachments or []]

    signed_answer, encrypted_answer = answers[sids["signed"]], answers[sids["encrypted"]]
    assert ("osci", "none", "accepted", None, "sozialplattform-nrw", SIGNED_ID) == (
        signed_answer.transport,
        signed_answer.channel,
        signed_answer.outcome,
        signed_answer.reason,
        signed_answer.portal,
        signed_answer.transport_message_id,
    )
    assert ("osci", "none", "rejected", "ENCRYPTED", ENCRYPTED_ID) == (
        encrypted_answer.transport,
        encrypted_answer.channel,
        encrypted_answer.outcome,
        encrypted_answer.reason,
        encrypted_answer.transport_message_id,
    )
    assert ("intake", "ContentPackage/EncryptedData[1]") == (
        letters[sids["encrypted"]].stage,
        letters[sids["encrypted"]].path,
    )
    assert ("ingest", "osci/metadata") == (
        letters[sids["lonely"]].stage,
        letters[sids["lonely"]].path,
    )

    # Nothing is left in the inbox; taken pairs are archived by submission id, the refused
    # package by its digest, beside nothing (it had no sidecar).
    archive = settings.archive_dir
    lonely_digest = hashlib.sha256(lonely).hexdigest()
    assert [] == names(inbox)
    assert {
        f"{sids['signed']}.osci",
        f"{sids['signed']}.osci.json",
        f"{sids['encrypted']}.osci",
        f"{sids['encrypted']}.osci.json",
    } <= set(names(archive))
    assert [f"sha256-{lonely_digest}"] == names(archive / "metadata")
    assert signed == (archive / f"{sids['signed']}.osci").read_bytes()

    # The worker's log names no person and no file.
    log = (settings.data_dir / "worker.log").read_bytes()
    assert [] == [p for p in (*PERSONAL, b"4711.mime", b"4713.xml") if p in log]


def test_a_worker_with_the_reader_key_opens_encrypted_containers(settings, author):
    """The reader key configured (encrypted PEM, password as a secret): a signed container
    encrypted for it is delivered with its signer; one encrypted for another key is DECRYPT."""
    reader = b.reader_key()
    key_file = settings.data_dir / "config" / "reader-2026.pem"
    key_file.write_bytes(
        reader.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    keyed = settings.with_overrides(reader_decryption_keys=str(key_file))
    ours = signed_encrypted_package(author, make_submission(SubmissionSpec()), reader.public_key())
    foreign = signed_encrypted_package(
        author, make_submission(SubmissionSpec()), b.reader_key().public_key()
    )
    sids = {
        "ours": osci_submission_id(ours, OURS_ID),
        "foreign": osci_submission_id(foreign, FOREIGN_ID),
    }
    inbox = keyed.inbox_dir / "osci"
    worker = WorkerProcess(
        keyed,
        log_file=keyed.data_dir / "worker.log",
        secrets={"SOZIALHUB_READER_DECRYPTION_KEY_PASSWORD": PASSWORD},
    ).start()
    try:
        worker.wait_ready()
        drop(inbox, "4721.xml", ours)
        drop(inbox, "4721.xml.json", render(OsciMetadata(PLATFORM, READER, OURS_ID)))
        drop(inbox, "4722.xml", foreign)
        drop(inbox, "4722.xml.json", render(OsciMetadata(PLATFORM, READER, FOREIGN_ID)))
        tracker = outcomes(keyed, set(sids.values()), timeout=120)
        answers = receipts(keyed, set(sids.values()))
        record = accepted_record(keyed, sids["ours"])
        (letter,) = dead_letters(keyed, {sids["foreign"]})
    finally:
        worker.stop()

    actual = {
        name: (tracker.get(sid).outcome, tracker.get(sid).reason) for name, sid in sids.items()
    }
    assert {"ours": ("delivered", None), "foreign": ("dead-lettered", "DECRYPT")} == actual
    assert record is not None
    assert (OURS_ID, author.certificate.subject.rfc4514_string()) == (
        record.transport_message_id,
        record.signer,
    )
    assert ["att1.pdf"] == [a["filename"] for a in record.attachments or []]
    assert ("intake", "ContentPackage/EncryptedData[1]/KeyInfo/EncryptedKey") == (
        letter.stage,
        letter.path,
    )
    assert {"ours": ("accepted", None), "foreign": ("rejected", "DECRYPT")} == {
        name: (answers[sid].outcome, answers[sid].reason) for name, sid in sids.items()
    }
    assert [] == names(inbox)
    # Neither the password nor a person's data reaches the worker's log.
    log = (keyed.data_dir / "worker.log").read_bytes()
    assert [] == [p for p in (*PERSONAL, PASSWORD.encode()) if p in log]
    assert b"transport.reader_keys_loaded" in log
