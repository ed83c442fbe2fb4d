"""End-to-end encrypted XTA content: ``xenc:EncryptedData`` in ``GenericContentContainer``.

With the office's reader keys (the keys OSCI content is decrypted with) the
encrypted ``ContentContainer`` is decrypted and then checked like an inline
one; without keys it stays ``ENCRYPTED``. The encryption is made with the OSCI
test builders (RSA-OAEP key transport, AES-GCM/CBC content), inline or as an
MTOM part.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt

import pytest
from lxml import etree

from hub.core.errors import Reason, Rejection
from hub.core.pipeline import RECEIPTS, HubContext, intake
from hub.core.portals import Portal, PortalTable
from hub.core.records import PortalReceipt, Received, decode
from hub.core.transport import xta
from hub.core.transport.registry import TransportKeys
from hub.sim.xta import DEFAULT_BUSINESS_SCENARIO, DEFAULT_MESSAGE_TYPE
from hub.testing import make_submission
from tests import osci_builders

PORTAL = "sop:050000100099"
OFFICE = "wgb010540880000"
MESSAGE_ID = "urn:de:xta:messageid:sop:enc-1"
PAYLOAD = b'<v:vorgang xmlns:v="urn:test:payload"><v:name>Erika Mustermann</v:name></v:vorgang>'
PDF = b"%PDF-1.4\n% Mustermann\n" + bytes(range(256))
WHERE = "GenericContentContainer/EncryptedData"


@pytest.fixture(scope="module")
def reader() -> object:
    return osci_builders.reader_key()


def metadata() -> etree._Element:
    return xta.message_metadata(
        xta.OutboundMetadata(
            message_id=MESSAGE_ID,
            author=PORTAL,
            reader=OFFICE,
            service="urn:x:service",
            message_type=DEFAULT_MESSAGE_TYPE,
            payload_schema="https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0",
            business_scenario=DEFAULT_BUSINESS_SCENARIO,
        )
    )


def content(payload: bytes = PAYLOAD) -> etree._Element:
    """The plain ContentContainer (a payload and one PDF), as the author builds it."""
    container = xta.content_container(
        xta.Content(payload, "application/xml", "antrag.xml"),
        [xta.Content(PDF, "application/pdf", "nachweis.pdf")],
    )
    (inner,) = container
    return inner


def message(encrypted: etree._Element) -> bytes:
    container = etree.Element(f"{{{xta.XTA}}}GenericContentContainer", nsmap={"xta": xta.XTA})
    container.append(encrypted)
    return xta.soap_message(metadata(), container, action=xta.ACTION_GET_MESSAGE)


def refused(document: bytes, keys: dict[str, object] | None) -> tuple[Reason, str | None]:
    with pytest.raises(Rejection) as caught:
        xta.unwrap(document, decryption_keys=keys)  # type: ignore[arg-type]
    assert "Mustermann" not in str(caught.value) + repr(caught.value)
    return caught.value.reason, caught.value.path


class TestDecrypt:
    @pytest.mark.parametrize("algorithm", ["aes256-gcm", "aes128-cbc"])
    def test_decrypts_and_checks_the_container(self, reader, algorithm):
        """With the reader key the container opens: payload and attachment as inline."""
        encrypted = osci_builders.encrypt(content(), reader.public_key(), algorithm=algorithm)
        envelope = xta.unwrap(message(encrypted), decryption_keys={"reader": reader})
        assert (envelope.payload, envelope.attachments[0].data, envelope.message_id) == (
            PAYLOAD,
            PDF,
            MESSAGE_ID,
        )

    def test_without_keys_it_stays_encrypted(self, reader):
        encrypted = osci_builders.encrypt(content(), reader.public_key())
        assert (Reason.ENCRYPTED, WHERE) == refused(message(encrypted), None)

    def test_another_key_does_not_open_it(self, reader):
        encrypted = osci_builders.encrypt(content(), reader.public_key(), key_name=None)
        other = {"other": osci_builders.reader_key()}
        assert (Reason.DECRYPT, f"{WHERE}/KeyInfo/EncryptedKey") == refused(
            message(encrypted), other
        )

    def test_tampered_ciphertext(self, reader):
        encrypted = osci_builders.encrypt(content(), reader.public_key(), tamper="last")
        assert (Reason.DECRYPT, f"{WHERE}/CipherData") == refused(
            message(encrypted), {"reader": reader}
        )

    def test_unsupported_algorithm(self, reader):
        encrypted = osci_builders.encrypt(content(), reader.public_key(), algorithm="tripledes-cbc")
        assert (Reason.DECRYPT, f"{WHERE}/EncryptionMethod") == refused(
            message(encrypted), {"reader": reader}
        )

    @pytest.mark.parametrize(
        ("plaintext", "reason"),
        [
            (b'<xta:Message xmlns:xta="http://xoev.de/transport/xta/211">QUJD</xta:Message>', "C"),
            (b"<a/>", "C"),
            (b"not xml at all", "W"),
            (b'<!DOCTYPE x [<!ENTITY n "Mustermann">]><x>&n;</x>', "D"),
        ],
        ids=["message-not-container", "foreign-root", "not-xml", "doctype"],
    )
    def test_decrypted_content_must_be_a_content_container(self, reader, plaintext, reason):
        """The plaintext goes through the hardened parser and must be one ContentContainer; what
        is wrong with it is not told apart (DECRYPT, as bad padding: no oracle on the plaintext)."""
        encrypted = osci_builders.encrypt(plaintext, reader.public_key())
        assert reason in "CWD"
        assert (Reason.DECRYPT, WHERE) == refused(message(encrypted), {"reader": reader})

    def test_decrypted_content_gets_every_check(self, reader):
        """A decrypted container with bad base64 is refused as an inline one would be."""
        inner = content()
        inner[0].text = "not base64!"
        encrypted = osci_builders.encrypt(inner, reader.public_key())
        assert (Reason.CONTAINER, "GenericContentContainer/ContentContainer/Message") == refused(
            message(encrypted), {"reader": reader}
        )

    def test_encrypted_content_as_an_mtom_part(self, reader):
        """MTOM may carry the CipherValue as a binary part: resolved, then decrypted."""
        encrypted = osci_builders.encrypt(content(), reader.public_key())
        cipher_values = list(encrypted.iter(f"{{{osci_builders.XENC}}}CipherValue"))
        cipher_value = cipher_values[-1]  # the data's, after the EncryptedKey's
        data = base64.b64decode(cipher_value.text or "")
        cipher_value.text = None
        include = etree.SubElement(cipher_value, f"{{{xta.XOP}}}Include", nsmap={"xop": xta.XOP})
        include.set("href", "cid:cipher@portal.example")
        root = message(encrypted)
        boundary = "uuid:enc"
        package = (
            (
                f'Content-Type: multipart/related; type="application/xop+xml"; '
                f'boundary="{boundary}"; start-info="application/soap+xml"\r\n\r\n'
                f"--{boundary}\r\n"
                'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
                "Content-ID: <root@portal.example>\r\n\r\n"
            ).encode()
            + root
            + f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n".encode()
            + b"Content-ID: <cipher@portal.example>\r\n\r\n"
            + data
            + f"\r\n--{boundary}--\r\n".encode()
        )
        envelope = xta.unwrap(package, decryption_keys={"reader": reader})
        assert envelope.payload == PAYLOAD


class TestThroughIntake:
    def test_the_office_keys_open_xta_content(self, hub_context: HubContext, reader):
        """Intake passes the office's reader keys (transport_keys.osci_decryption) to XTA."""
        portal = Portal(
            "sozialplattform-nrw",
            "Sozialplattform NRW",
            frozenset({"xta2"}),
            frozenset({"xsozial-basis-2.4.0"}),
            frozenset({PORTAL}),
        )
        hub = dataclasses.replace(
            hub_context,
            portals=PortalTable([portal]),
            transport_keys=TransportKeys(osci_decryption={"reader": reader}),
        )
        now = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
        encrypted = osci_builders.encrypt(content(make_submission()), reader.public_key())
        result = intake(Received.of(message(encrypted), "xta", "xta2", now), None, hub, now)
        (receipt,) = [decode(e.value, PortalReceipt) for e in result.emits if e.topic == RECEIPTS]
        assert (result.outcome, receipt.outcome) == ("accepted", "accepted")
        without = dataclasses.replace(hub, transport_keys=TransportKeys())
        result = intake(Received.of(message(encrypted), "xta", "xta2", now), None, without, now)
        assert (result.outcome, result.reason) == ("rejected", "ENCRYPTED")
