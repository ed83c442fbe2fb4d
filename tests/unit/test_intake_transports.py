"""Intake end to end per transport and per portal policy: containers, receipts, signatures.

The same pure stage the worker runs: bytes as a connector received them go in;
accepted or rejected records, the portal receipt and the replay keys come out.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from hub.core import portalsig
from hub.core.errors import Reason
from hub.core.pipeline import ACCEPTED, DEAD_LETTER, RECEIPTS, HubContext, check, intake
from hub.core.portals import Portal, PortalTable
from hub.core.records import Accepted, DeadLetter, PortalReceipt, Received, decode, unb64
from hub.core.transport import xta
from hub.sim.xta import DEFAULT_BUSINESS_SCENARIO, DEFAULT_MESSAGE_TYPE, DEFAULT_SERVICE
from hub.testing import SubmissionSpec, make_submission
from tests import sigtools

PLATFORM = "sop:050000100099"
MAILBOX = "hub:055620000000"
MESSAGE_ID = "urn:de:xta:messageid:sim:1b6f0c52-8d7e-4a3b-9c1d-2e3f4a5b6c7d"


def xta_message(payload: bytes, author: str = PLATFORM, message_id: str = MESSAGE_ID) -> bytes:
    """A getMessage response as the XTA server sends it."""
    metadata = xta.OutboundMetadata(
        message_id=message_id,
        author=author,
        reader=MAILBOX,
        service=DEFAULT_SERVICE,
        message_type=DEFAULT_MESSAGE_TYPE,
        payload_schema="https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0",
        business_scenario=DEFAULT_BUSINESS_SCENARIO,
    )
    return xta.soap_message(
        xta.message_metadata(metadata),
        xta.content_container(
            xta.Content(data=payload, content_type="application/xml", filename="antrag.xml")
        ),
        action=xta.ACTION_GET_MESSAGE,
    )


def only(result, topic: str, cls):  # type: ignore[no-untyped-def]
    (record,) = [decode(e.value, cls) for e in result.emits if e.topic == topic]
    return record


@pytest.fixture(scope="module")
def platform_hub(hub_context: HubContext) -> HubContext:
    portals = PortalTable(
        [
            Portal(
                "sozialplattform-nrw",
                "Sozialplattform NRW",
                frozenset({"xta2"}),
                frozenset({"xsozial-basis-2.4.0"}),
                frozenset({PLATFORM}),
            )
        ]
    )
    return dataclasses.replace(hub_context, portals=portals)


class TestXta:
    def test_an_xta_message_is_accepted_and_answered(self, platform_hub, now):
        original = xta_message(make_submission())
        result = intake(Received.of(original, "xta", "xta2", now), None, platform_hub, now)
        assert result.outcome == "accepted"
        accepted = only(result, ACCEPTED, Accepted)
        assert (accepted.portal, accepted.author, accepted.reader) == (
            "sozialplattform-nrw",
            PLATFORM,
            MAILBOX,
        )
        assert accepted.transport_message_id == MESSAGE_ID
        assert accepted.original_sha256 != accepted.payload_sha256  # container vs. payload
        receipt = only(result, RECEIPTS, PortalReceipt)
        assert (receipt.channel, receipt.outcome) == ("xta2", "accepted")
        body = receipt.body_b64
        assert body is not None
        assert xta.receipt_outcome(unb64(body)) == (MESSAGE_ID, "accepted")

    def test_an_invalid_payload_gets_a_rejection_receipt_with_the_code_only(
        self, platform_hub, now
    ):
        payload = make_submission().replace(b"1985-04-12", b"12.04.1985")
        result = intake(
            Received.of(xta_message(payload), "xta", "xta2", now), None, platform_hub, now
        )
        assert (result.outcome, result.reason) == ("rejected", "XSD")
        receipt = only(result, RECEIPTS, PortalReceipt)
        assert (receipt.outcome, receipt.reason) == ("rejected", "XSD")
        assert b"12.04.1985" not in (receipt.body_b64 or "").encode()

    def test_an_unknown_sender_is_refused_but_still_answered(self, platform_hub, now):
        original = xta_message(make_submission(), author="sop:099999999999")
        result = intake(Received.of(original, "xta", "xta2", now), None, platform_hub, now)
        assert (result.outcome, result.reason) == ("rejected", "SENDER_MISMATCH")
        assert only(result, RECEIPTS, PortalReceipt).outcome == "rejected"

    def test_a_payload_naming_another_author_is_sender_mismatch(self, platform_hub, now):
        spoofed = make_submission(SubmissionSpec(author_key="sop:055620000001"))
        result = intake(
            Received.of(xta_message(spoofed), "xta", "xta2", now), None, platform_hub, now
        )
        letter = only(result, DEAD_LETTER, DeadLetter)
        assert (letter.reason, letter.path) == ("SENDER_MISMATCH", "author")

    def test_check_reports_transport_portal_author_and_reader(self, platform_hub, now):
        report = check(xta_message(make_submission()), platform_hub, now, transport="xta2")
        assert report["verdict"] == "accepted"
        assert (report["transport"], report["portal"], report["author"]) == (
            "xta2",
            "sozialplattform-nrw",
            PLATFORM,
        )
        assert report["transport_message_id"] == MESSAGE_ID
        assert report["receipt"] == {"channel": "xta2", "outcome": "accepted"}


@pytest.fixture(scope="module")
def portal_signer() -> sigtools.Party:
    key = rsa.generate_private_key(65537, 2048)
    return sigtools.Party(key, sigtools.issue(key.public_key(), "Sozialplattform NRW", AUTHORITY))


AUTHORITY = sigtools.ca("Sozialplattform Test CA")


@pytest.fixture(scope="module")
def signing_hub(hub_context: HubContext) -> HubContext:
    policy = portalsig.SignaturePolicy(mode="required", ca_bundle=(AUTHORITY.cert,))
    portal = Portal(
        "filedrop",
        "Signed file drop",
        frozenset({"file"}),
        frozenset({"xsozial-basis-2.4.0"}),
        signature=policy,
    )
    return dataclasses.replace(hub_context, portals=PortalTable([portal]))


class TestPortalSignaturePolicy:
    NOW = sigtools.NOW

    def test_a_signed_submission_is_accepted_and_the_signer_recorded(
        self, signing_hub, portal_signer
    ):
        data = sigtools.sign(make_submission(), portal_signer.key, [portal_signer.cert])
        result = intake(
            Received.of(data, "filedrop", "file", self.NOW), None, signing_hub, self.NOW
        )
        assert result.outcome == "accepted", result.reason
        accepted = only(result, ACCEPTED, Accepted)
        assert accepted.signer is not None
        assert "Sozialplattform NRW" in accepted.signer
        # The payload travels as it was signed, signature included.
        assert unb64(accepted.payload_b64) == data

    @pytest.mark.parametrize(
        ("mutate", "reason"),
        [
            (lambda data: make_submission(), "SIG_MISSING"),
            (lambda data: data.replace(b"Mustermann", b"Musterfrau"), "SIG_DIGEST"),
        ],
        ids=["unsigned", "tampered"],
    )
    def test_policy_violations_are_dead_lettered(self, signing_hub, portal_signer, mutate, reason):
        data = mutate(sigtools.sign(make_submission(), portal_signer.key, [portal_signer.cert]))
        result = intake(
            Received.of(data, "filedrop", "file", self.NOW), None, signing_hub, self.NOW
        )
        assert (result.outcome, result.reason) == ("rejected", reason)

    def test_intake_extracts_from_the_signed_tree_only(self, signing_hub, portal_signer):
        """bad-inputs E36: a comment split in a value; the canonical model has the signed value."""
        split = make_submission().replace(
            b"Mustermann</familienname>", b"Muster<!---->mann</familienname>"
        )
        data = sigtools.sign(split, portal_signer.key, [portal_signer.cert])
        result = intake(
            Received.of(data, "filedrop", "file", self.NOW), None, signing_hub, self.NOW
        )
        assert result.outcome == "accepted"
        assert result.submission is not None
        assert result.submission.persons[0].family_name == "Mustermann"

    def test_an_expired_signer_is_cert_validity(self, signing_hub, portal_signer):
        later = self.NOW + dt.timedelta(days=800)
        data = sigtools.sign(make_submission(), portal_signer.key, [portal_signer.cert])
        result = intake(Received.of(data, "filedrop", "file", later), None, signing_hub, later)
        assert (result.outcome, result.reason) == ("rejected", "CERT_VALIDITY")


def test_reason_codes_used_here_exist() -> None:
    for code in ("SENDER_MISMATCH", "SIG_MISSING", "SIG_DIGEST", "CERT_VALIDITY", "XSD"):
        assert Reason(code).value == code


@pytest.mark.parametrize(
    ("data", "transport"),
    [
        (b"<?xml version='1.0'?><a/>", "file"),
        (b'{"submissionId": "x", "encryptedMetadata": "e.y.j"}', "fitconnect"),
        (b"MIME-Version: 1.0\r\nContent-Type: multipart/related\r\n\r\n", "osci"),
        (b'<osci:ContentPackage xmlns:osci="http://www.osci.de/2002/04/osci"/>', "osci"),
        (b"", "file"),
    ],
)
def test_sniff_recognises_transport_containers(data: bytes, transport: str) -> None:
    from hub.core.transport.registry import sniff

    assert sniff(data) == transport


def test_sniff_recognises_an_xta_message() -> None:
    from hub.core.transport.registry import sniff

    assert sniff(xta_message(make_submission())) == "xta2"


def test_an_osci_package_without_an_authenticated_author_is_refused(hub_context, now):
    """The author of an OSCI package comes from the OSCI client, never from the content.

    A record without the client's author cannot be attributed to a portal: intake
    refuses it, although it unpacks. ``check`` without the metadata sidecar refuses
    it as the file drop does (docs/transports/osci.md#handover-through-the-file-drop).
    """
    from tests import osci_builders

    original = osci_builders.inline_package()
    result = intake(Received.of(original, "filedrop", "osci", now), None, hub_context, now)
    letter = only(result, DEAD_LETTER, DeadLetter)
    assert (letter.reason, letter.path) == ("SENDER_MISMATCH", "transport/author")
    report = check(original, hub_context, now, transport="osci")
    assert (report["verdict"], report["reason"], report["path"]) == (
        "rejected",
        "METADATA",
        "osci/metadata",
    )
