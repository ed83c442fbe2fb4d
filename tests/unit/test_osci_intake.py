"""OSCI packages through intake, check, route and the command line, with the OSCI client's metadata.

The record is what the osci sub-inbox writes (hub.stream.osci_inbox): the
package bytes plus the sidecar's author, reader and OSCI message id. Intake
recognises the portal from that author, applies its signature policy to the
container signatures, and answers every submission it can attribute.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from hub import cli, portals
from hub.config import ConfigError
from hub.core import portalsig
from hub.core.pipeline import (
    ACCEPTED,
    DEAD_LETTER,
    RECEIPTS,
    SEEN,
    HubContext,
    check,
    intake,
    route_report,
)
from hub.core.portals import Portal, PortalTable
from hub.core.records import (
    Accepted,
    DeadLetter,
    PortalReceipt,
    Received,
    Seen,
    decode,
    unb64,
)
from hub.core.transport.osci_handover import OsciMetadata, render
from hub.core.xsozial import NAMESPACE
from hub.testing import SubmissionSpec, make_submission
from tests import clitools, sigtools
from tests import osci_builders as b

PLATFORM = "sop:050000100099"
READER = "jbc:055620000000"
MESSAGE_ID = "b3NjaS1tZXNzYWdlLTQ3MTE="
NOW = sigtools.NOW
SUBMISSION = make_submission(
    SubmissionSpec(
        message_uuid="5b0c7d1e-2f3a-4b5c-8d6e-7f8091a2b3c4",
        case_uuid="9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    )
)
METADATA = render(OsciMetadata(PLATFORM, READER, MESSAGE_ID))


def package(payload: bytes = SUBMISSION) -> bytes:
    """The payload and a PDF inline in container cc1, as the OSCI client hands it over."""
    return b.xml(b.package(b.container(b.inline(payload, "payload"), b.inline(b.PDF, "att1"))))


def received(original: bytes, author: str | None = PLATFORM, message_id: str = MESSAGE_ID):
    return Received.of(
        original,
        "filedrop",
        "osci",
        NOW,
        message_id,
        transport_author=author,
        transport_reader=READER,
    )


def only(result, topic: str, cls):
    (record,) = [decode(e.value, cls) for e in result.emits if e.topic == topic]
    return record


def osci_portal(signature: portalsig.SignaturePolicy | None = None) -> Portal:
    return Portal(
        "sozialplattform-nrw",
        "Sozialplattform NRW",
        frozenset({"osci"}),
        frozenset({"xsozial-basis-2.4.0"}),
        frozenset({PLATFORM}),
        signature=signature,
    )


@pytest.fixture(scope="module")
def osci_hub(hub_context: HubContext) -> HubContext:
    return dataclasses.replace(hub_context, portals=PortalTable([osci_portal()]))


AUTHORITY = sigtools.ca("Sozialplattform OSCI Test CA")


@pytest.fixture(scope="module")
def author() -> sigtools.Party:
    key = rsa.generate_private_key(65537, 2048)
    return sigtools.Party(key, sigtools.issue(key.public_key(), "Sozialplattform Autor", AUTHORITY))


@pytest.fixture(scope="module")
def signing_hub(hub_context: HubContext) -> HubContext:
    policy = portalsig.SignaturePolicy(mode="required", ca_bundle=(AUTHORITY.cert,))
    return dataclasses.replace(hub_context, portals=PortalTable([osci_portal(policy)]))


def signed_package(author: sigtools.Party, uris: tuple[str, ...] = ("#payload", "#att1")) -> bytes:
    tree = b.package(b.container(b.inline(SUBMISSION, "payload"), b.inline(b.PDF, "att1")))
    tree[0].insert(0, b.signature_over(tree, list(uris), author.key, [author.cert]))
    return b.xml(tree)


class TestIntake:
    def test_accepted_with_the_clients_metadata_and_answered(self, osci_hub):
        """The portal comes from the OSCI author; author, reader and message id are the client's."""
        original = package()
        result = intake(received(original), None, osci_hub, NOW)
        assert result.outcome == "accepted", result.reason
        accepted = only(result, ACCEPTED, Accepted)
        expected = ("osci", "sozialplattform-nrw", PLATFORM, READER, MESSAGE_ID, SUBMISSION, None)
        assert expected == (
            accepted.transport,
            accepted.portal,
            accepted.author,
            accepted.reader,
            accepted.transport_message_id,
            unb64(accepted.payload_b64),
            accepted.signer,
        )
        assert ["att1.pdf"] == [a["filename"] for a in accepted.attachments or []]
        receipt = only(result, RECEIPTS, PortalReceipt)
        assert ("none", "accepted", "sozialplattform-nrw", MESSAGE_ID) == (
            receipt.channel,
            receipt.outcome,
            receipt.portal,
            receipt.transport_message_id,
        )

    def test_an_unknown_author_is_refused_and_answered(self, osci_hub):
        result = intake(received(package(), author="sop:099999999999"), None, osci_hub, NOW)
        letter = only(result, DEAD_LETTER, DeadLetter)
        assert ("SENDER_MISMATCH", "transport/author") == (letter.reason, letter.path)
        assert "rejected" == only(result, RECEIPTS, PortalReceipt).outcome

    def test_an_encrypted_container_without_key_is_encrypted_and_answered(self, osci_hub):
        """No OSCI decryption key: ENCRYPTED at the EncryptedData, and a rejection receipt
        from the client's metadata (the container itself names no parties)."""
        secret = b.container(b.inline(SUBMISSION, "payload"), ident="secret")
        original = b.xml(b.package(b.encrypt(secret, b.reader_key().public_key())))
        result = intake(received(original), None, osci_hub, NOW)
        letter = only(result, DEAD_LETTER, DeadLetter)
        receipt = only(result, RECEIPTS, PortalReceipt)
        expected = (
            ("ENCRYPTED", "ContentPackage/EncryptedData[1]"),
            ("osci", "none", "rejected", "ENCRYPTED", MESSAGE_ID),
        )
        assert expected == (
            (letter.reason, letter.path),
            (
                receipt.transport,
                receipt.channel,
                receipt.outcome,
                receipt.reason,
                receipt.transport_message_id,
            ),
        )

    def test_the_osci_message_id_is_a_replay_key(self, osci_hub):
        """The same OSCI message id again with another package is DUPLICATE."""
        first = intake(received(package()), None, osci_hub, NOW)
        seen = {
            s.key: s.submission_id
            for s in (decode(e.value, Seen) for e in first.emits if e.topic == SEEN)
        }
        other = package(make_submission())
        again = intake(received(other), None, osci_hub, NOW, seen)
        letter = only(again, DEAD_LETTER, DeadLetter)
        assert ("DUPLICATE", "transport/messageId") == (letter.reason, letter.path)

    def test_a_foreign_record_with_a_malformed_author_is_metadata(self, osci_hub):
        """Values in the record's transport fields must have the sidecar's shapes."""
        record = received(package(), author="sop 0500 ")
        letter = only(intake(record, None, osci_hub, NOW), DEAD_LETTER, DeadLetter)
        assert ("METADATA", "transport/author") == (letter.reason, letter.path)


class TestSameMetadataOrAnotherSubmission:
    """The client's metadata decides the portal and office, so it is part of the submission id."""

    def test_the_same_package_and_metadata_is_one_submission(self):
        assert received(package()).submission_id == received(package()).submission_id

    def test_the_same_package_under_another_message_id_is_a_duplicate(self, osci_hub):
        first = intake(received(package()), None, osci_hub, NOW)
        assert first.outcome == "accepted", first.reason
        seen = {e.key: decode(e.value, Seen).submission_id for e in first.emits if e.topic == SEEN}
        again = received(package(), message_id="b3RoZXI=")
        assert again.submission_id != received(package()).submission_id
        result = intake(again, None, osci_hub, NOW, seen=seen)
        assert (result.outcome, result.reason) == ("rejected", "DUPLICATE")
        assert only(result, DEAD_LETTER, DeadLetter).path == "transport/payload"

    def test_a_record_whose_metadata_was_changed_is_refused(self, osci_hub):
        """The id binds the metadata: a record edited after ingest does not open."""
        record = dataclasses.replace(received(package()), transport_reader="sop:999999999999")
        letter = only(intake(record, None, osci_hub, NOW), DEAD_LETTER, DeadLetter)
        assert (letter.reason, letter.path) == ("ENVELOPE", "payload_sha256")


class TestSignaturePolicy:
    def test_a_signed_container_is_accepted_and_the_signer_recorded(self, signing_hub, author):
        result = intake(received(signed_package(author)), None, signing_hub, NOW)
        assert result.outcome == "accepted", result.reason
        accepted = only(result, ACCEPTED, Accepted)
        assert author.cert.subject.rfc4514_string() == accepted.signer
        assert SUBMISSION == unb64(accepted.payload_b64)

    @pytest.mark.parametrize(
        ("original", "reason"),
        [
            (lambda author: package(), "SIG_MISSING"),
            (lambda author: signed_package(author, ("#att1",)), "SIG_WRAPPING"),
            (
                lambda author: signed_package(author).replace(
                    base64.b64encode(SUBMISSION),
                    base64.b64encode(SUBMISSION.replace(b"Erika", b"Ericka")),
                ),
                "SIG_DIGEST",
            ),
        ],
        ids=["unsigned", "signature-over-the-attachment", "tampered"],
    )
    def test_policy_violations_are_dead_lettered_and_answered(
        self, signing_hub, author, original, reason
    ):
        result = intake(received(original(author)), None, signing_hub, NOW)
        receipt = only(result, RECEIPTS, PortalReceipt)
        assert (reason, reason) == (result.reason, receipt.reason)

    def test_an_enveloped_signature_in_the_payload_does_not_count(self, signing_hub, author):
        """For OSCI the policy asks for a container signature; one inside the payload is not it."""
        signed_payload = sigtools.sign(SUBMISSION, author.key, [author.cert])
        result = intake(received(package(signed_payload)), None, signing_hub, NOW)
        assert "SIG_MISSING" == result.reason


class TestOffline:
    def test_check_reports_transport_portal_payload_author_and_reader(self, osci_hub):
        report = check(package(), osci_hub, NOW, transport="osci", osci_metadata=METADATA)
        expected = ("accepted", "osci", "sozialplattform-nrw", NAMESPACE, PLATFORM, READER)
        assert expected == (
            report["verdict"],
            report["transport"],
            report["portal"],
            report["payload"],
            report["author"],
            report["reader"],
        )
        assert (MESSAGE_ID, {"channel": "none", "outcome": "accepted"}) == (
            report["transport_message_id"],
            report["receipt"],
        )

    def test_check_with_a_broken_sidecar_is_metadata(self, osci_hub):
        bad = METADATA.replace(b'"v": 1', b'"v": "1"')
        report = check(package(), osci_hub, NOW, transport="osci", osci_metadata=bad)
        assert ("rejected", "METADATA", "osci/metadata/v") == (
            report["verdict"],
            report["reason"],
            report["path"],
        )

    def test_route_uses_the_sidecar_too(self, osci_hub):
        routed = route_report(package(), osci_hub, NOW, transport="osci", osci_metadata=METADATA)
        missing = route_report(package(), osci_hub, NOW, transport="osci")
        assert ("routed", ("rejected", "ingest", "METADATA")) == (
            routed["verdict"],
            (missing["verdict"], missing["stage"], missing["reason"]),
        )


class TestCommandLine:
    @pytest.fixture(autouse=True)
    def clean_environment(self, monkeypatch):
        """No machine settings leak in; main()'s logging configuration is undone afterwards."""
        with clitools.isolated(monkeypatch):
            yield

    def run(self, capsys, argv: list[str]) -> tuple[int, list[dict]]:
        try:
            status = cli.main(argv)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr().out
        return status, [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def test_auto_with_the_sidecar_beside_the_package(self, capsys, tmp_path):
        """`check FILE` recognises an OSCI package and reads FILE.json beside it, as the inbox does."""
        path = tmp_path / "paket.mime"
        path.write_bytes(b.mime([b.root_part(package())]))
        Path(f"{path}.json").write_bytes(METADATA)
        status, (report,) = self.run(capsys, ["check", "--json", str(path)])
        expected = (0, "accepted", "osci", "sozialplattform-nrw", PLATFORM, READER, NAMESPACE)
        assert expected == (
            status,
            report["verdict"],
            report["transport"],
            report["portal"],
            report["author"],
            report["reader"],
            report["payload"],
        )

    def test_osci_meta_names_the_sidecar(self, capsys, tmp_path):
        path, meta = tmp_path / "paket.xml", tmp_path / "elsewhere.json"
        path.write_bytes(package())
        meta.write_bytes(METADATA)
        argv = ["check", "--json", "--transport", "osci", "--osci-meta", str(meta), str(path)]
        status, (report,) = self.run(capsys, argv)
        assert (0, "accepted", MESSAGE_ID) == (
            status,
            report["verdict"],
            report["transport_message_id"],
        )

    def test_without_a_sidecar_it_is_metadata(self, capsys, tmp_path):
        path = tmp_path / "paket.xml"
        path.write_bytes(package())
        status, (report,) = self.run(capsys, ["check", "--json", str(path)])
        assert (1, "osci", "METADATA", "osci/metadata") == (
            status,
            report["transport"],
            report["reason"],
            report["path"],
        )

    def test_osci_meta_with_two_files_or_a_missing_one_is_usage(self, capsys, tmp_path):
        path = tmp_path / "paket.xml"
        path.write_bytes(package())
        two = ["check", "--osci-meta", str(path), str(path), str(path)]
        missing = ["check", "--osci-meta", str(tmp_path / "none.json"), str(path)]
        assert (2, 2) == (self.run(capsys, two)[0], self.run(capsys, missing)[0])


class TestPayloadAgreedPerSender:
    """A sender that puts XML attachments beside the payload agrees on the payload's Content
    Id (``osci: {payload_id}`` in config/portals.yml); without it the payload rule refuses
    two XML Contents rather than guess."""

    BEILAGE = b'<?xml version="1.0" encoding="UTF-8"?><beilage xmlns="urn:beispiel"/>'

    def package(self) -> bytes:
        return b.xml(
            b.package(
                b.container(b.inline(self.BEILAGE, "beilage"), b.inline(SUBMISSION, "antrag"))
            )
        )

    def hub(self, hub_context: HubContext, payload_id: str | None) -> HubContext:
        portal = dataclasses.replace(osci_portal(), osci_payload_id=payload_id)
        return dataclasses.replace(hub_context, portals=PortalTable([portal]))

    def test_without_an_agreed_id_two_xml_contents_are_refused(self, hub_context):
        result = intake(received(self.package()), None, self.hub(hub_context, None), NOW)
        letter = only(result, DEAD_LETTER, DeadLetter)
        assert ("CONTAINER", "ContentPackage/ContentContainer[1]/Content[2]") == (
            letter.reason,
            letter.path,
        )

    def test_the_agreed_id_names_the_payload_and_the_other_xml_is_an_attachment(self, hub_context):
        result = intake(received(self.package()), None, self.hub(hub_context, "antrag"), NOW)
        assert result.outcome == "accepted", result.reason
        accepted = only(result, ACCEPTED, Accepted)
        assert (SUBMISSION, ["beilage.xml"]) == (
            unb64(accepted.payload_b64),
            [a["filename"] for a in accepted.attachments or []],
        )

    def test_an_agreed_id_that_names_no_xml_content_is_refused(self, hub_context):
        result = intake(received(self.package()), None, self.hub(hub_context, "anlage"), NOW)
        assert ("CONTAINER", "ContentPackage/payload") == (
            only(result, DEAD_LETTER, DeadLetter).reason,
            only(result, DEAD_LETTER, DeadLetter).path,
        )

    def test_another_senders_agreement_does_not_apply(self, hub_context):
        """The Id is the author's portal's: a package from another portal's author is read by
        the payload rule (and refused as that portal's author, not the agreement's)."""
        other = dataclasses.replace(
            osci_portal(), portal_id="anderes-portal", authors=frozenset({"sop:050000100077"})
        )
        agreed = dataclasses.replace(osci_portal(), osci_payload_id="antrag")
        hub = dataclasses.replace(hub_context, portals=PortalTable([agreed, other]))
        original = self.package()
        result = intake(received(original, author="sop:050000100077"), None, hub, NOW)
        assert "CONTAINER" == only(result, DEAD_LETTER, DeadLetter).reason


class TestPortalTableOsci:
    SCHEMA = json.loads(
        (Path(__file__).parents[2] / "schemas" / "hub" / "portals.schema.json").read_text("utf-8")
    )
    CONFIG = Path(__file__).parents[2] / "config"

    def document(self, **osci: str) -> dict:
        document = yaml.safe_load((self.CONFIG / "portals.yml").read_text("utf-8"))
        platform = next(p for p in document["portals"] if "osci" in p["transports"])
        platform["osci"] = osci
        return document

    def test_the_payload_id_is_read(self):
        table = portals.parse(self.document(payload_id="antrag"), self.SCHEMA, self.CONFIG)
        assert "antrag" == table.osci_payload_id(PLATFORM)
        assert table.osci_payload_id("sop:099999999999") is None

    @pytest.mark.parametrize("value", ["", "1antrag", "an trag", "a" * 65, "antrag\u00e4"])
    def test_an_id_that_is_no_ascii_ncname_is_refused(self, value):
        with pytest.raises(ConfigError, match="/osci/payload_id"):
            portals.parse(self.document(payload_id=value), self.SCHEMA, self.CONFIG)

    def test_osci_settings_without_the_osci_transport_are_refused(self):
        document = self.document(payload_id="antrag")
        for entry in document["portals"]:
            if "osci" in entry:
                entry["transports"] = [t for t in entry["transports"] if t != "osci"]
        with pytest.raises(ConfigError, match="not transport osci"):
            portals.parse(document, self.SCHEMA, self.CONFIG)
