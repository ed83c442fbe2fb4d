"""XTA 2 v3 (schema 2.1.1): unwrapping a getMessage response, parsing status lists, the builders.

The fixture message is written by hand (not with the module's own builders) and
is checked against the official XSDs, so unwrap is tested against what the
standard allows, not against what the hub happens to produce.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
import xmlschema
from lxml import etree
from xmlschema import XMLResource

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.model import Code
from hub.core.transport import AttachmentPolicy, xta
from tests.shared_dir import XTA_WSDL, shared_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


SHARED = shared_dir(XTA_WSDL)  # the official XTA XSDs
needs_xsd = pytest.mark.skipif(
    SHARED is None,
    reason="official XTA 2.1.1 XSDs not found: set SOZIALHUB_SHARED_DIR to the shared/ directory",
)

PERSONAL = b"Mustermann"
PAYLOAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<v:vorgang xmlns:v="urn:test:payload"><v:name>Erika Mustermann</v:name>'
    b"<v:geburtsdatum>1985-04-12</v:geburtsdatum></v:vorgang>\n"
)
PDF = b"%PDF-1.4\n% Nachweis fuer Erika Mustermann\n" + bytes(range(256))
MESSAGE_ID = "urn:de:xta:messageid:sop_xta_1:3f2504e0-4f89-11d3-9a0c-0305e82c3301"
PORTAL = "sop:050000100099"
OFFICE = "wgb010540880000"
XSOZIAL = "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0"

GOOD = f"""<?xml version="1.0" encoding="UTF-8"?>
<s12:Envelope xmlns:s12="http://www.w3.org/2003/05/soap-envelope"
    xmlns:wsa="http://www.w3.org/2005/08/addressing"
    xmlns:oscimeta="http://www.osci.eu/ws/2014/10/transport"
    xmlns:osci="http://www.osci.eu/ws/2008/05/transport"
    xmlns:xta="http://xoev.de/transport/xta/211">
  <s12:Header>
    <wsa:Action>http://www.osci.eu/ws/2008/05/transport/urn/messageTypes/MsgBoxFetchRequest</wsa:Action>
    <wsa:MessageID>urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e</wsa:MessageID>
    <oscimeta:MessageMetaData>
      <oscimeta:DeliveryAttributes>
        <oscimeta:Origin>2026-11-02T09:00:00Z</oscimeta:Origin>
        <oscimeta:Delivery>2026-11-02T09:00:05Z</oscimeta:Delivery>
      </oscimeta:DeliveryAttributes>
      <oscimeta:Originators>
        <oscimeta:Author>
          <oscimeta:Identifier type="xoev" category="DVDV" name="Sozialplattform">{PORTAL}</oscimeta:Identifier>
        </oscimeta:Author>
      </oscimeta:Originators>
      <oscimeta:Destinations>
        <oscimeta:Reader>
          <oscimeta:Identifier type="xoev">{OFFICE}</oscimeta:Identifier>
        </oscimeta:Reader>
      </oscimeta:Destinations>
      <oscimeta:MsgIdentification>
        <wsa:MessageID>{MESSAGE_ID}</wsa:MessageID>
      </oscimeta:MsgIdentification>
      <oscimeta:Qualifier>
        <oscimeta:Service>urn:xoev-de:xsozial:basis:2.4.0</oscimeta:Service>
        <oscimeta:BusinessScenario>
          <oscimeta:Defined listURI="urn:de:test:business-scenario" listVersionID="1">
            <code>XSOZIAL_DATA</code>
          </oscimeta:Defined>
        </oscimeta:BusinessScenario>
        <oscimeta:MessageType listURI="urn:de:payloadSchema:elementName" listVersionID="1.0"
            payloadSchema="{XSOZIAL}">
          <code>vorgang.transportieren.1000001</code>
        </oscimeta:MessageType>
      </oscimeta:Qualifier>
      <oscimeta:MsgSize>2048</oscimeta:MsgSize>
    </oscimeta:MessageMetaData>
    <osci:MsgBoxResponse MsgBoxRequestID="urn:uuid:7d444840-9dc0-11d1-b245-5ffdce74fad2">
      <osci:ItemsPending>0</osci:ItemsPending>
    </osci:MsgBoxResponse>
  </s12:Header>
  <s12:Body>
    <xta:GenericContentContainer>
      <xta:ContentContainer>
        <xta:Message contentType="application/xml" filename="antrag.xml" size="{len(PAYLOAD)}">
{base64.encodebytes(PAYLOAD).decode()}</xta:Message>
        <xta:Attachment contentType="application/pdf" filename="nachweis.pdf" size="{len(PDF)}" id="att-1">{base64.b64encode(PDF).decode()}</xta:Attachment>
      </xta:ContentContainer>
    </xta:GenericContentContainer>
  </s12:Body>
</s12:Envelope>
"""

ENCRYPTED = """<xta:GenericContentContainer>
      <xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#">
        <xenc:CipherData><xenc:CipherValue>AAAA</xenc:CipherValue></xenc:CipherData>
      </xenc:EncryptedData>
    </xta:GenericContentContainer>"""


def variant(*replacements: tuple[str, str]) -> bytes:
    """GOOD with each (old, new) replaced once; every ``old`` must occur (guards the fixture)."""
    text = GOOD
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text.encode("utf-8")


def body(inner: str) -> bytes:
    """GOOD with the whole SOAP body content replaced."""
    start = GOOD.index("<s12:Body>") + len("<s12:Body>")
    end = GOOD.index("</s12:Body>")
    return (GOOD[:start] + inner + GOOD[end:]).encode("utf-8")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


PAYLOAD_B64 = base64.encodebytes(PAYLOAD).decode()
PDF_B64 = b64(PDF)
MMD = "MessageMetaData"
MSG = "GenericContentContainer/ContentContainer/Message"
ATT = "GenericContentContainer/ContentContainer/Attachment[1]"
CONTENT_CONTAINER = "GenericContentContainer/ContentContainer"
MID = f"{MMD}/MsgIdentification/MessageID"

# (case id, document, reason, path)
MALFORMED = [
    # SOAP envelope
    (
        "soap11-envelope",
        variant(
            ("http://www.w3.org/2003/05/soap-envelope", "http://schemas.xmlsoap.org/soap/envelope/")
        ),
        Reason.CONTAINER,
        "Envelope",
    ),
    (
        "no-header",
        variant(("<s12:Header>", "<!--"), ("</s12:Header>", "-->")),
        Reason.CONTAINER,
        MMD,
    ),
    (
        "text-in-envelope",
        variant(("<s12:Body>", "Mustermann<s12:Body>")),
        Reason.CONTAINER,
        "Envelope",
    ),
    (
        "extra-envelope-child",
        variant(("</s12:Body>", "</s12:Body><s12:Body/>")),
        Reason.CONTAINER,
        "Envelope",
    ),
    (
        "must-understand",
        variant(
            (
                "<osci:MsgBoxResponse",
                '<x:Mustermann xmlns:x="urn:x" s12:mustUnderstand="true"/><osci:MsgBoxResponse',
            )
        ),
        Reason.CONTAINER,
        "Envelope/Header/mustUnderstand",
    ),
    (
        "fault-body",
        body(
            '<s12:Fault><s12:Code><s12:Value>s12:Receiver</s12:Value></s12:Code><s12:Reason><s12:Text xml:lang="de">Mustermann</s12:Text></s12:Reason></s12:Fault>'
        ),
        Reason.CONTAINER,
        "Envelope/Body/Fault",
    ),
    (
        "two-body-elements",
        body("<xta:GenericContentContainer/><xta:GenericContentContainer/>"),
        Reason.CONTAINER,
        "Envelope/Body",
    ),
    ("empty-body", body(""), Reason.CONTAINER, "Envelope/Body"),
    (
        "wrong-body-element",
        body("<xta:ContentContainer/>"),
        Reason.CONTAINER,
        "GenericContentContainer",
    ),
    # MessageMetaData
    (
        "no-metadata",
        variant(
            ("<oscimeta:MessageMetaData>", "<oscimeta:Other>"),
            ("</oscimeta:MessageMetaData>", "</oscimeta:Other>"),
        ),
        Reason.CONTAINER,
        MMD,
    ),
    (
        "two-metadata",
        variant(("<osci:MsgBoxResponse", "<oscimeta:MessageMetaData/><osci:MsgBoxResponse")),
        Reason.CONTAINER,
        MMD,
    ),
    (
        "no-delivery-attributes",
        variant(
            ("<oscimeta:DeliveryAttributes>", "<oscimeta:Ignored>"),
            ("</oscimeta:DeliveryAttributes>", "</oscimeta:Ignored>"),
        ),
        Reason.CONTAINER,
        f"{MMD}/DeliveryAttributes",
    ),
    (
        "test-msg-not-boolean",
        variant(("<oscimeta:MessageMetaData>", '<oscimeta:MessageMetaData TestMsg="Mustermann">')),
        Reason.CONTAINER,
        f"{MMD}/TestMsg",
    ),
    (
        "no-author",
        variant(
            ("<oscimeta:Author>", "<oscimeta:Sender>"), ("</oscimeta:Author>", "</oscimeta:Sender>")
        ),
        Reason.CONTAINER,
        f"{MMD}/Originators/Author",
    ),
    (
        "author-not-a-key",
        variant((f">{PORTAL}<", ">Erika Mustermann<")),
        Reason.CONTAINER,
        f"{MMD}/Originators/Author/Identifier",
    ),
    (
        "author-padded",
        variant((f">{PORTAL}<", f"> {PORTAL}<")),
        Reason.CONTAINER,
        f"{MMD}/Originators/Author/Identifier",
    ),
    (
        "author-no-type",
        variant(('<oscimeta:Identifier type="xoev" category', "<oscimeta:Identifier category")),
        Reason.CONTAINER,
        f"{MMD}/Originators/Author/Identifier/type",
    ),
    (
        "two-readers",
        variant(("</oscimeta:Reader>", "</oscimeta:Reader><oscimeta:Reader/>")),
        Reason.CONTAINER,
        f"{MMD}/Destinations/Reader",
    ),
    (
        "reader-with-child",
        variant((f">{OFFICE}<", f">{OFFICE}<b>Mustermann</b><")),
        Reason.CONTAINER,
        f"{MMD}/Destinations/Reader/Identifier",
    ),
    (
        "no-message-id",
        variant((f"<wsa:MessageID>{MESSAGE_ID}</wsa:MessageID>", "")),
        Reason.CONTAINER,
        MID,
    ),
    (
        "two-message-ids",
        variant(
            (
                f"<wsa:MessageID>{MESSAGE_ID}</wsa:MessageID>",
                f"<wsa:MessageID>{MESSAGE_ID}</wsa:MessageID><wsa:MessageID>{MESSAGE_ID}</wsa:MessageID>",
            )
        ),
        Reason.CONTAINER,
        MID,
    ),
    (
        "message-id-uuid-urn",
        variant((MESSAGE_ID, "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301")),
        Reason.CONTAINER,
        MID,
    ),
    (
        "message-id-no-prefix",
        variant((MESSAGE_ID, "urn:de:xta:messageid:3f2504e0")),
        Reason.CONTAINER,
        MID,
    ),
    (
        "message-id-extra-colon",
        variant((MESSAGE_ID, "urn:de:xta:messageid:sop:Mustermann:1")),
        Reason.CONTAINER,
        MID,
    ),
    (
        "message-id-upper-nid",
        variant((MESSAGE_ID, "URN:DE:XTA:MESSAGEID:sop:1")),
        Reason.CONTAINER,
        MID,
    ),
    (
        "message-id-inner-space",
        variant((MESSAGE_ID, "urn:de:xta:messageid:sop:Erika Mustermann")),
        Reason.CONTAINER,
        MID,
    ),
    (
        "message-id-non-ascii",
        variant((MESSAGE_ID, "urn:de:xta:messageid:sop:Mustermänn")),
        Reason.CONTAINER,
        MID,
    ),
    (
        "message-id-too-long",
        variant((MESSAGE_ID, "urn:de:xta:messageid:sop:" + "a" * 129)),
        Reason.CONTAINER,
        MID,
    ),
    (
        "message-id-comment-split",
        variant((MESSAGE_ID, "urn:de:xta:messageid:sop<!---->:Mustermann")),
        Reason.CONTAINER,
        MID,
    ),
    (
        "no-service",
        variant(("<oscimeta:Service>urn:xoev-de:xsozial:basis:2.4.0</oscimeta:Service>", "")),
        Reason.CONTAINER,
        f"{MMD}/Qualifier/Service",
    ),
    (
        "service-not-a-uri",
        variant(("urn:xoev-de:xsozial:basis:2.4.0", "Erika Mustermann")),
        Reason.CONTAINER,
        f"{MMD}/Qualifier/Service",
    ),
    (
        "scenario-both",
        variant(
            (
                "</oscimeta:Defined>",
                "</oscimeta:Defined><oscimeta:Undefined>Mustermann</oscimeta:Undefined>",
            )
        ),
        Reason.CONTAINER,
        f"{MMD}/Qualifier/BusinessScenario",
    ),
    (
        "scenario-code-missing",
        variant(("<code>XSOZIAL_DATA</code>", "")),
        Reason.CONTAINER,
        f"{MMD}/Qualifier/BusinessScenario/Defined/code",
    ),
    (
        "scenario-list-missing",
        variant(('listURI="urn:de:test:business-scenario" ', "")),
        Reason.CONTAINER,
        f"{MMD}/Qualifier/BusinessScenario/Defined/listURI",
    ),
    (
        "no-payload-schema",
        variant((f'payloadSchema="{XSOZIAL}"', "")),
        Reason.CONTAINER,
        f"{MMD}/Qualifier/MessageType/payloadSchema",
    ),
    (
        "message-type-no-code",
        variant(("<code>vorgang.transportieren.1000001</code>", "")),
        Reason.CONTAINER,
        f"{MMD}/Qualifier/MessageType/code",
    ),
    (
        "no-message-type",
        variant(
            ("<oscimeta:MessageType ", "<oscimeta:Other "),
            ("</oscimeta:MessageType>", "</oscimeta:Other>"),
        ),
        Reason.CONTAINER,
        f"{MMD}/Qualifier/MessageType",
    ),
    # GenericContentContainer
    (
        "container-and-encrypted",
        variant(
            (
                "</xta:ContentContainer>",
                '</xta:ContentContainer><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#"/>',
            )
        ),
        Reason.CONTAINER,
        "GenericContentContainer",
    ),
    (
        "empty-container",
        body("<xta:GenericContentContainer/>"),
        Reason.CONTAINER,
        "GenericContentContainer",
    ),
    (
        "smuggled-element",
        variant(("</xta:ContentContainer>", "<extra>PGV2aWwvPg==</extra></xta:ContentContainer>")),
        Reason.CONTAINER,
        CONTENT_CONTAINER,
    ),
    (
        "text-in-container",
        variant(("<xta:ContentContainer>", "<xta:ContentContainer>Mustermann")),
        Reason.CONTAINER,
        CONTENT_CONTAINER,
    ),
    (
        "two-messages",
        variant(
            (
                "<xta:Attachment ",
                f'<xta:Message contentType="application/xml">{PAYLOAD_B64}</xta:Message><xta:Attachment ',
            )
        ),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "message-after-attachment",
        variant(
            (
                "</xta:ContentContainer>",
                f'<xta:Message contentType="application/xml">{b64(b"<a/>")}</xta:Message></xta:ContentContainer>',
            )
        ),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "no-message",
        variant(("<xta:Message ", "<xta:Attachment "), ("</xta:Message>", "</xta:Attachment>")),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "xop-include",
        variant(
            (
                PAYLOAD_B64,
                '<xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" href="cid:payload@portal"/>',
            )
        ),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "base64-bad-character",
        variant((PAYLOAD_B64, PAYLOAD_B64.replace("P", "*", 1))),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "base64-bad-padding",
        variant((PAYLOAD_B64, b64(b"<a/>x").rstrip("="))),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "base64-non-canonical",
        variant((PAYLOAD_B64, "PGEvPh=="), (f'size="{len(PAYLOAD)}"', 'size="4"')),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "base64-non-ascii",
        variant((PAYLOAD_B64, "PGEvPg==\u00e4\u00e4\u00e4\u00e4")),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "empty-message",
        variant((PAYLOAD_B64, ""), (f' size="{len(PAYLOAD)}"', "")),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "message-size-mismatch",
        variant((f'size="{len(PAYLOAD)}"', f'size="{len(PAYLOAD) + 1}"')),
        Reason.CONTAINER,
        f"{MSG}/size",
    ),
    (
        "message-size-not-a-number",
        variant((f'size="{len(PAYLOAD)}"', 'size="-1"')),
        Reason.CONTAINER,
        f"{MSG}/size",
    ),
    (
        "message-not-xml",
        variant(
            (
                'contentType="application/xml" filename="antrag.xml"',
                'contentType="application/pdf" filename="antrag.xml"',
            )
        ),
        Reason.CONTAINER,
        f"{MSG}/contentType",
    ),
    (
        "message-no-content-type",
        variant(('contentType="application/xml" filename="antrag.xml"', 'filename="antrag.xml"')),
        Reason.CONTAINER,
        f"{MSG}/contentType",
    ),
    (
        "message-path-filename",
        variant(('filename="antrag.xml"', 'filename="../../etc/Mustermann.xml"')),
        Reason.CONTAINER,
        f"{MSG}/filename",
    ),
    (
        "message-hidden-filename",
        variant(('filename="antrag.xml"', 'filename=".antrag.xml"')),
        Reason.CONTAINER,
        f"{MSG}/filename",
    ),
    # Attachments
    (
        "attachment-size-mismatch",
        variant((f'size="{len(PDF)}"', f'size="{len(PDF) - 1}"')),
        Reason.ATTACHMENT,
        f"{ATT}/size",
    ),
    (
        "attachment-bad-type",
        variant(('contentType="application/pdf"', 'contentType="application/x-msdownload"')),
        Reason.ATTACHMENT,
        f"{ATT}/contentType",
    ),
    (
        "attachment-no-type",
        variant(('contentType="application/pdf" ', "")),
        Reason.ATTACHMENT,
        f"{ATT}/contentType",
    ),
    (
        "attachment-path-filename",
        variant(('filename="nachweis.pdf"', 'filename="..\\Mustermann.pdf"')),
        Reason.ATTACHMENT,
        f"{ATT}/filename",
    ),
    (
        "attachment-no-filename",
        variant(('filename="nachweis.pdf" ', "")),
        Reason.ATTACHMENT,
        f"{ATT}/filename",
    ),
    (
        "attachment-bad-id",
        variant(('id="att-1"', 'id="Erika Mustermann"')),
        Reason.ATTACHMENT,
        f"{ATT}/id",
    ),
    ("attachment-base64", variant((PDF_B64, PDF_B64[:-4] + "====")), Reason.CONTAINER, ATT),
    (
        "second-attachment-bad",
        variant(
            (
                "</xta:ContentContainer>",
                f'<xta:Attachment contentType="image/png" filename="x.png" size="9">{b64(b"Mustermann")}</xta:Attachment></xta:ContentContainer>',
            )
        ),
        Reason.ATTACHMENT,
        "GenericContentContainer/ContentContainer/Attachment[2]/size",
    ),
]

IDS = [case[0] for case in MALFORMED]


class TestUnwrapGood:
    def test_reads_the_metadata(self):
        """Author, reader, message id, service and business scenario come from MessageMetaData."""
        envelope = xta.unwrap(GOOD.encode())
        expected = (
            "xta2",
            MESSAGE_ID,
            PORTAL,
            OFFICE,
            "urn:xoev-de:xsozial:basis:2.4.0",
            "XSOZIAL_DATA",
        )
        actual = (
            envelope.transport,
            envelope.message_id,
            envelope.author,
            envelope.reader,
            envelope.service,
            envelope.business_scenario,
        )
        assert expected == actual

    def test_decodes_the_payload(self):
        """The payload is the Message's base64 content (line breaks allowed), with its type and name."""
        envelope = xta.unwrap(GOOD.encode())
        expected = (PAYLOAD, "application/xml", "antrag.xml")
        assert expected == (
            envelope.payload,
            envelope.payload_content_type,
            envelope.payload_filename,
        )

    def test_checks_the_attachment(self):
        """The attachment is decoded and checked: name, type, size, digest, transport id."""
        (attachment,) = xta.unwrap(GOOD.encode()).attachments
        expected = ("nachweis.pdf", "application/pdf", len(PDF), "att-1", PDF)
        actual = (
            attachment.filename,
            attachment.content_type,
            attachment.size,
            attachment.attachment_id,
            attachment.data,
        )
        assert expected == actual

    def test_metadata_keeps_codes_with_their_lists(self):
        """Message type and a Defined business scenario keep code, list URI and version together."""
        metadata = xta.unwrap_message(GOOD.encode()).metadata
        expected = (
            Code("vorgang.transportieren.1000001", "urn:de:payloadSchema:elementName", "1.0"),
            XSOZIAL,
            Code("XSOZIAL_DATA", "urn:de:test:business-scenario", "1"),
            None,
            False,
        )
        actual = (
            metadata.message_type,
            metadata.payload_schema,
            metadata.business_scenario,
            metadata.business_scenario_text,
            metadata.test_message,
        )
        assert expected == actual

    def test_undefined_business_scenario(self):
        """An Undefined business scenario is read as text, and is the envelope's business_scenario."""
        document = variant(
            (
                '<oscimeta:Defined listURI="urn:de:test:business-scenario" listVersionID="1">',
                "<oscimeta:Undefined>",
            ),
            ("<code>XSOZIAL_DATA</code>", "Antrag Grundsicherung"),
            ("</oscimeta:Defined>", "</oscimeta:Undefined>"),
        )
        result = xta.unwrap_message(document)
        expected = (None, "Antrag Grundsicherung", "Antrag Grundsicherung")
        actual = (
            result.metadata.business_scenario,
            result.metadata.business_scenario_text,
            result.envelope.business_scenario,
        )
        assert expected == actual

    def test_test_message_flag(self):
        """TestMsg="true" on MessageMetaData is reported, so the hub can keep test traffic apart."""
        document = variant(
            ("<oscimeta:MessageMetaData>", '<oscimeta:MessageMetaData TestMsg="true">')
        )
        assert xta.unwrap_message(document).metadata.test_message is True

    def test_tolerates_unknown_optional_elements(self):
        """Foreign header blocks and metadata extensions the hub does not read are ignored."""
        document = variant(
            (
                "<osci:MsgBoxResponse",
                '<x:Trace xmlns:x="urn:vendor:trace">abc</x:Trace><osci:MsgBoxResponse',
            ),
            (
                "<oscimeta:MsgSize>",
                '<oscimeta:MessageProperties><x:any xmlns:x="urn:x"/></oscimeta:MessageProperties><oscimeta:MsgSize>',
            ),
            (
                "</oscimeta:DeliveryAttributes>",
                "<oscimeta:ServiceQuality>fast</oscimeta:ServiceQuality></oscimeta:DeliveryAttributes>",
            ),
        )
        assert MESSAGE_ID == xta.unwrap(document).message_id

    def test_message_id_whitespace_is_collapsed(self):
        """wsa:MessageID is an anyURI: surrounding XML whitespace is not part of the id."""
        document = variant(
            (
                f"<wsa:MessageID>{MESSAGE_ID}</wsa:MessageID>",
                f"<wsa:MessageID>\n  {MESSAGE_ID}\n</wsa:MessageID>",
            )
        )
        assert MESSAGE_ID == xta.unwrap(document).message_id

    def test_content_without_size_attribute(self):
        """size is optional in ContentType: without it, the decoded length is taken as is."""
        document = variant((f' size="{len(PAYLOAD)}"', ""), (f' size="{len(PDF)}"', ""))
        envelope = xta.unwrap(document)
        assert (PAYLOAD, len(PDF)) == (envelope.payload, envelope.attachments[0].size)

    def test_no_attachments(self):
        """A ContentContainer with only the Message gives an envelope without attachments."""
        start = GOOD.index("<xta:Attachment ")
        end = GOOD.index("</xta:Attachment>") + len("</xta:Attachment>")
        envelope = xta.unwrap((GOOD[:start] + GOOD[end:]).encode())
        assert () == envelope.attachments

    def test_envelope_repr_has_no_payload(self):
        """repr() of the envelope never shows payload or attachment bytes."""
        envelope = xta.unwrap(GOOD.encode())
        assert PERSONAL.decode() not in repr(envelope)


class TestUnwrapRejects:
    @pytest.mark.parametrize(("name", "document", "reason", "path"), MALFORMED, ids=IDS)
    def test_reason_and_path(self, name, document, reason, path):
        """Each malformed container is rejected with a fixed reason code and a location."""
        with pytest.raises(Rejection) as caught:
            xta.unwrap(document)
        assert (reason, path) == (caught.value.reason, caught.value.path)

    @pytest.mark.parametrize(("name", "document", "reason", "path"), MALFORMED, ids=IDS)
    def test_no_value_in_the_rejection(self, name, document, reason, path):
        """str() and repr() of a rejection never carry a value of the input (only code and path)."""
        with pytest.raises(Rejection) as caught:
            xta.unwrap(document)
        text = str(caught.value) + repr(caught.value) + str(caught.value.__cause__ or "")
        assert "Mustermann" not in text
        assert "Erika" not in text

    def test_fixture_is_accepted(self):
        """The unmodified fixture unwraps (so each case above fails only for its change)."""
        assert xta.unwrap(GOOD.encode()).message_id == MESSAGE_ID

    def test_encrypted_container(self):
        """xenc:EncryptedData instead of a ContentContainer: ENCRYPTED, nothing decrypted here."""
        with pytest.raises(Rejection) as caught:
            xta.unwrap(body(ENCRYPTED))
        assert (Reason.ENCRYPTED, "GenericContentContainer/EncryptedData") == (
            caught.value.reason,
            caught.value.path,
        )

    def test_too_many_attachments(self):
        """More attachments than the policy allows: ATTACHMENT, before any is decoded."""
        policy = AttachmentPolicy(max_count=0)
        with pytest.raises(Rejection) as caught:
            xta.unwrap(GOOD.encode(), attachments=policy)
        expected = (Reason.ATTACHMENT, "GenericContentContainer/ContentContainer/Attachment")
        assert expected == (caught.value.reason, caught.value.path)

    def test_attachment_larger_than_policy(self):
        """An attachment above the policy's byte cap is refused on its length, before decoding."""
        policy = AttachmentPolicy(max_bytes=len(PDF) - 1)
        with pytest.raises(Rejection) as caught:
            xta.unwrap(GOOD.encode(), attachments=policy)
        assert (Reason.ATTACHMENT, f"{ATT}/size") == (caught.value.reason, caught.value.path)

    def test_attachment_larger_than_policy_without_declared_size(self):
        """Without a size attribute the base64 length alone bounds the attachment."""
        policy = AttachmentPolicy(max_bytes=len(PDF) - 1)
        with pytest.raises(Rejection) as caught:
            xta.unwrap(variant((f' size="{len(PDF)}"', "")), attachments=policy)
        assert (Reason.ATTACHMENT, f"{ATT}/size") == (caught.value.reason, caught.value.path)

    def test_declared_payload_size_above_the_limit(self):
        """A Message declaring more bytes than limits.max_bytes is SIZE, before decoding."""
        document = variant((f'size="{len(PAYLOAD)}"', 'size="999999999999"'))
        with pytest.raises(Rejection) as caught:
            xta.unwrap(document)
        assert (Reason.SIZE, MSG) == (caught.value.reason, caught.value.path)

    def test_envelope_above_the_byte_limit(self):
        """The whole envelope is bounded by limits.max_bytes before it is parsed."""
        limits = xmlsafe.Limits(max_bytes=len(GOOD.encode()) - 1)
        with pytest.raises(Rejection) as caught:
            xta.unwrap(GOOD.encode(), limits)
        assert (Reason.SIZE, None) == (caught.value.reason, caught.value.path)

    def test_doctype_in_the_envelope(self):
        """The envelope goes through the hardened parse: an internal entity is DOCTYPE."""
        document = GOOD.replace(
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY n "Mustermann">]>',
        )
        with pytest.raises(Rejection) as caught:
            xta.unwrap(document.encode())
        assert Reason.DOCTYPE == caught.value.reason

    def test_text_body_is_not_a_path(self):
        """A str is refused outright (never treated as a URL or file name)."""
        with pytest.raises(Rejection) as caught:
            xta.unwrap(GOOD)  # type: ignore[arg-type]
        assert Reason.WELLFORMED == caught.value.reason


STATUS_LIST = f"""<?xml version="1.0" encoding="UTF-8"?>
<s12:Envelope xmlns:s12="http://www.w3.org/2003/05/soap-envelope"
    xmlns:wsa="http://www.w3.org/2005/08/addressing"
    xmlns:oscimeta="http://www.osci.eu/ws/2014/10/transport"
    xmlns:osci="http://www.osci.eu/ws/2008/05/transport">
  <s12:Header>
    <osci:MsgBoxResponse MsgBoxRequestID="urn:uuid:7d444840-9dc0-11d1-b245-5ffdce74fad2">
      <osci:ItemsPending>7</osci:ItemsPending>
    </osci:MsgBoxResponse>
  </s12:Header>
  <s12:Body>
    <osci:MsgStatusList>
      <osci:MsgAttributes>
        <wsa:MessageID>urn:de:xta:messageid:sop:a1</wsa:MessageID>
        <osci:TypeOfBusinessScenario>urn:x</osci:TypeOfBusinessScenario>
        <osci:MsgSize>10</osci:MsgSize>
        <osci:DeliveryTime>2026-11-02T09:00:00Z</osci:DeliveryTime>
      </osci:MsgAttributes>
      <oscimeta:MessageMetaData>
        <oscimeta:MsgIdentification><wsa:MessageID> {MESSAGE_ID} </wsa:MessageID></oscimeta:MsgIdentification>
      </oscimeta:MessageMetaData>
      <oscimeta:MessageMetaData>
        <oscimeta:MsgIdentification><wsa:MessageID>urn:uuid:not-an-xta-id</wsa:MessageID></oscimeta:MsgIdentification>
      </oscimeta:MessageMetaData>
      <oscimeta:MessageMetaData>
        <oscimeta:MsgIdentification><wsa:MessageID>urn:de:xta:messageid:sop:a1</wsa:MessageID></oscimeta:MsgIdentification>
      </oscimeta:MessageMetaData>
    </osci:MsgStatusList>
  </s12:Body>
</s12:Envelope>
"""

EMPTY_STATUS_LIST = b"""<s12:Envelope xmlns:s12="http://www.w3.org/2003/05/soap-envelope" xmlns:osci="http://www.osci.eu/ws/2008/05/transport">
<s12:Header><osci:MsgBoxResponse MsgBoxRequestID="urn:uuid:1"><osci:NoMessageAvailable reason="http://www.osci.eu/ws/2008/05/transport/MsgBox/reasons/NoMatch"/></osci:MsgBoxResponse></s12:Header>
<s12:Body><osci:MsgStatusList/></s12:Body></s12:Envelope>"""


class TestStatusList:
    def test_ids_in_order_without_repeats(self):
        """Both list forms are read; a repeated id is listed once; order is kept."""
        expected = ["urn:de:xta:messageid:sop:a1", MESSAGE_ID]
        assert expected == xta.parse_status_list(STATUS_LIST.encode())

    def test_malformed_ids_are_counted_not_returned(self):
        """An id that is not an XTA message id is skipped and counted, with pending and request id."""
        listing = xta.status_list(STATUS_LIST.encode())
        expected = (1, 7, "urn:uuid:7d444840-9dc0-11d1-b245-5ffdce74fad2")
        assert expected == (listing.skipped, listing.pending, listing.request_id)

    def test_empty_mailbox(self):
        """NoMessageAvailable and an empty MsgStatusList: no ids, nothing pending."""
        listing = xta.status_list(EMPTY_STATUS_LIST)
        assert ((), 0) == (listing.message_ids, listing.pending)

    def test_not_a_status_list(self):
        """A getMessage response is not a status list: CONTAINER at MsgStatusList."""
        with pytest.raises(Rejection) as caught:
            xta.status_list(GOOD.encode())
        assert (Reason.CONTAINER, "MsgStatusList") == (caught.value.reason, caught.value.path)


FAULT = b"""<s12:Envelope xmlns:s12="http://www.w3.org/2003/05/soap-envelope" xmlns:xta="http://xoev.de/transport/xta/211">
<s12:Body><s12:Fault><s12:Code><s12:Value>s12:Sender</s12:Value></s12:Code>
<s12:Reason><s12:Text xml:lang="de">Nachricht von Erika Mustermann unbekannt</s12:Text></s12:Reason>
<s12:Detail><xta:InvalidMessageIDException><errorCode><code>1</code><name>x</name></errorCode></xta:InvalidMessageIDException></s12:Detail>
</s12:Fault></s12:Body></s12:Envelope>"""


class TestFault:
    def test_reads_code_and_exception(self):
        """A SOAP 1.2 fault yields its code and the XTA exception name, no reason text."""
        assert xta.Fault("Sender", "InvalidMessageIDException") == xta.parse_fault(FAULT)

    def test_unknown_exception_is_not_echoed(self):
        """An exception name the WSDL does not declare is not passed on."""
        fault = FAULT.replace(b"InvalidMessageIDException", b"MustermannException")
        assert xta.Fault("Sender", None) == xta.parse_fault(fault)

    def test_no_fault(self):
        """A regular response is not a fault."""
        assert xta.parse_fault(GOOD.encode()) is None


def _xpath(document: bytes, path: str) -> list[str]:
    namespaces = {
        "s12": xta.SOAP12,
        "wsa": xta.WSA,
        "osci": xta.OSCI,
        "oscimeta": xta.OSCIMETA,
        "xta": xta.XTA,
    }
    return [str(value) for value in xmlsafe.parse(document).xpath(path, namespaces=namespaces)]


class TestRequests:
    def test_status_list_request(self):
        """getStatusList: the mailbox as oscimeta:Author, maxListItems, the WSDL's action."""
        document = xta.get_status_list_request(OFFICE, 25)
        expected = ([OFFICE], ["25"], [xta.ACTION_GET_STATUS_LIST])
        actual = (
            _xpath(document, "/s12:Envelope/s12:Header/oscimeta:Author/oscimeta:Identifier/text()"),
            _xpath(document, "/s12:Envelope/s12:Body/osci:MsgBoxStatusListRequest/@maxListItems"),
            _xpath(document, "/s12:Envelope/s12:Header/wsa:Action/text()"),
        )
        assert expected == actual

    def test_get_message_request(self):
        """getMessage selects the message by its id in MsgSelector."""
        document = xta.get_message_request(OFFICE, MESSAGE_ID)
        path = (
            "/s12:Envelope/s12:Body/osci:MsgBoxFetchRequest/osci:MsgSelector/wsa:MessageID/text()"
        )
        assert [MESSAGE_ID] == _xpath(document, path)

    def test_close_request(self):
        """close names the message in LastMsgReceived, with the status list's request id."""
        document = xta.close_request(OFFICE, MESSAGE_ID, box_request_id="urn:uuid:1")
        expected = ([MESSAGE_ID], ["urn:uuid:1"])
        actual = (
            _xpath(
                document,
                "/s12:Envelope/s12:Body/osci:MsgBoxCloseRequest/osci:LastMsgReceived/text()",
            ),
            _xpath(document, "/s12:Envelope/s12:Body/osci:MsgBoxCloseRequest/@MsgBoxRequestID"),
        )
        assert expected == actual

    @pytest.mark.parametrize(
        "message_id",
        [
            f"{MESSAGE_ID}</wsa:MessageID><x/>",
            "urn:uuid:3f2504e0-4f89-11d3-9a0c-0305e82c3301",
            "",
        ],
    )
    def test_builders_refuse_invalid_message_ids(self, message_id):
        """Request builders take only valid XTA message ids (nothing is spliced into markup)."""
        with pytest.raises(ValueError, match="XTA message id"):
            xta.get_message_request(OFFICE, message_id)

    def test_builders_refuse_invalid_mailbox(self):
        """The mailbox must be a party identifier."""
        with pytest.raises(ValueError, match="identifier"):
            xta.get_status_list_request("<Author/>", 10)

    @pytest.mark.parametrize("max_items", [0, xta.MAX_STATUS_ITEMS + 1])
    def test_max_items_bounded(self, max_items):
        """maxListItems stays within 1..MAX_STATUS_ITEMS, so a status list fits the element limit."""
        with pytest.raises(ValueError, match="max_items"):
            xta.get_status_list_request(OFFICE, max_items)


SUBMISSION_ID = "sub-" + "3e" * 16


def receipt(**changes) -> bytes:
    values = {
        "original_message_id": MESSAGE_ID,
        "portal": PORTAL,
        "hub": OFFICE,
        "outcome": "rejected",
        "submission_id": SUBMISSION_ID,
        "reason": Reason.XSD,
        "now": dt.datetime(2026, 11, 2, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    }
    return xta.receipt_message(**{**values, **changes})


def receipt_fields(document: bytes) -> tuple[str | None, ...]:
    root = xmlsafe.parse(xta.unwrap(document).payload)
    r = {"r": xta.RECEIPT_NAMESPACE}
    names = ("messageId", "status", "reason", "submissionId")
    return tuple(root.findtext(f"r:{name}", namespaces=r) for name in names)


class TestReceipt:
    def test_round_trip(self):
        """The receipt is an XTA message the hub itself can unwrap: hub is author, portal is reader."""
        envelope = xta.unwrap(receipt())
        expected = (
            OFFICE,
            PORTAL,
            xta.receipt_message_id(MESSAGE_ID, SUBMISSION_ID, answer="rejected XSD"),
            "receipt.xml",
        )
        actual = (envelope.author, envelope.reader, envelope.message_id, envelope.payload_filename)
        assert expected == actual

    def test_payload_states_status_reason_and_submission(self):
        """The receipt document names the original message, the outcome, the reason and the submission."""
        expected = (MESSAGE_ID, "rejected", "XSD", SUBMISSION_ID)
        assert expected == receipt_fields(receipt())

    def test_reason_may_be_given_as_its_code(self):
        """The pipeline's reason strings are accepted when they are Reason codes."""
        assert receipt() == receipt(reason="XSD")

    @pytest.mark.parametrize("outcome", ["accepted", "routed"])
    def test_positive_outcomes_have_no_reason(self, outcome):
        """accepted and routed receipts state the outcome and carry no reason element."""
        expected = (MESSAGE_ID, outcome, None, SUBMISSION_ID)
        assert expected == receipt_fields(receipt(outcome=outcome, reason=None))

    def test_deterministic(self):
        """The same inputs give the same bytes, so a re-sent receipt is recognisably the same."""
        assert receipt() == receipt()

    def test_origin_is_now_in_utc(self):
        """now becomes DeliveryAttributes/Origin, in UTC."""
        path = "//oscimeta:DeliveryAttributes/oscimeta:Origin/text()"
        assert ["2026-11-02T10:00:00+00:00"] == _xpath(receipt(), path)

    def test_message_id_derived_from_the_original(self):
        """Different originals give different receipt ids; the receipt refers back with In-Reply-To."""
        other = "urn:de:xta:messageid:sop_xta_1:other"
        expected = ([MESSAGE_ID], True)
        actual = (
            _xpath(receipt(), "//oscimeta:MsgIdentification/oscimeta:In-Reply-To/text()"),
            xta.receipt_message_id(MESSAGE_ID) != xta.receipt_message_id(other),
        )
        assert expected == actual

    def test_another_submission_under_the_same_message_id_gets_its_own_receipt_id(self):
        """A replay rejected as DUPLICATE is answered with a receipt the server has not seen."""
        first = xta.receipt_message_id(MESSAGE_ID, SUBMISSION_ID, answer="rejected XSD")
        assert first == xta.receipt_message_id(MESSAGE_ID, SUBMISSION_ID, answer="rejected XSD")
        assert first != xta.receipt_message_id(MESSAGE_ID, "sub-" + "0" * 32, answer="rejected XSD")
        assert xta.unwrap(receipt()).message_id == first

    def test_another_answer_for_the_same_submission_gets_its_own_receipt_id(self):
        """Rejected, then accepted after a dlq retry: the second receipt is not taken for the first."""
        rejected = xta.unwrap(receipt()).message_id
        accepted = xta.unwrap(receipt(outcome="accepted", reason=None)).message_id
        other_reason = xta.unwrap(receipt(reason="SIZE")).message_id
        assert len({rejected, accepted, other_reason}) == 3

    @pytest.mark.parametrize(
        "changes",
        [
            {"reason": None},
            {"outcome": "accepted"},
            {"outcome": "maybe", "reason": None},
            {"reason": "NOT_A_CODE"},
            {"submission_id": "Erika Mustermann"},
            {"hub": ""},
            {"portal": "<evil/>"},
            {"now": dt.datetime(2026, 11, 2, 10, 0)},  # noqa: DTZ001 - naive on purpose
        ],
        ids=[
            "rejected-no-reason",
            "accepted-with-reason",
            "unknown-outcome",
            "unknown-reason",
            "submission-id",
            "empty-hub",
            "portal-markup",
            "naive-now",
        ],
    )
    def test_refuses_invalid_input(self, changes):
        """Invalid arguments are a ValueError, never a malformed or misleading receipt."""
        with pytest.raises(ValueError):
            receipt(**changes)


class TestPeek:
    def test_reads_the_outer_identifiers(self):
        """peek reads message id, author, reader and service without opening the content."""
        envelope = xta.peek(body(ENCRYPTED))
        expected = (MESSAGE_ID, PORTAL, OFFICE, "urn:xoev-de:xsozial:basis:2.4.0", b"")
        actual = (
            envelope.message_id,
            envelope.author,
            envelope.reader,
            envelope.service,
            envelope.payload,
        )
        assert expected == actual

    def test_malformed_metadata_is_still_rejected(self):
        """peek applies the same metadata checks: an invalid message id is CONTAINER."""
        with pytest.raises(Rejection) as caught:
            xta.peek(variant((MESSAGE_ID, "urn:uuid:1")))
        assert (Reason.CONTAINER, MID) == (caught.value.reason, caught.value.path)


# --- against the official XSDs ---------------------------------------------------------------


@pytest.fixture(scope="module")
def official_schema():
    assert SHARED is not None
    directory = SHARED / "schemas" / "xta-2.1.1"
    imports = [
        (xta.XTA, "XTA-Webservice-Globale-Elemente.xsd"),
        (xta.OSCI, "OSCI2_02.xsd"),
    ]
    wrapper = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:sozialhub:test:xta">'
        + "".join(
            f'<xs:import namespace="{ns}" schemaLocation="{(directory / name).as_uri()}"/>'
            for ns, name in imports
        )
        + "</xs:schema>"
    )
    return xmlschema.XMLSchema(wrapper, base_url=str(directory), allow="local", defuse="always")


def _children(document: bytes, *tags: str) -> list[etree._Element]:
    root = xmlsafe.parse(document)
    return [element for part in root for element in part if element.tag in tags]


@needs_xsd
class TestOfficialSchema:
    def test_fixture_is_valid(self, official_schema):
        """The hand-written fixture's MessageMetaData and GenericContentContainer are schema-valid."""
        elements = _children(
            GOOD.encode(),
            f"{{{xta.OSCIMETA}}}MessageMetaData",
            f"{{{xta.XTA}}}GenericContentContainer",
            f"{{{xta.OSCI}}}MsgBoxResponse",
        )
        assert 3 == len(elements)
        for element in elements:
            official_schema.validate(XMLResource(element, allow="none"))

    def test_schema_catches_an_invalid_element(self, official_schema):
        """Guard: the loaded schema does reject a MessageMetaData without DeliveryAttributes."""
        document = variant(
            ("<oscimeta:DeliveryAttributes>", "<!--"), ("</oscimeta:DeliveryAttributes>", "-->")
        )
        (element,) = _children(document, f"{{{xta.OSCIMETA}}}MessageMetaData")
        assert not official_schema.is_valid(XMLResource(element, allow="none"))

    def test_receipt_is_valid(self, official_schema):
        """The receipt's MessageMetaData and GenericContentContainer validate against XTA 2.1.1."""
        elements = _children(
            receipt(),
            f"{{{xta.OSCIMETA}}}MessageMetaData",
            f"{{{xta.XTA}}}GenericContentContainer",
        )
        assert 2 == len(elements)
        for element in elements:
            official_schema.validate(XMLResource(element, allow="none"))

    def test_requests_are_valid(self, official_schema):
        """The getStatusList, getMessage and close bodies and the Author header are schema-valid."""
        documents = [
            xta.get_status_list_request(OFFICE, 10),
            xta.get_message_request(OFFICE, MESSAGE_ID),
            xta.close_request(OFFICE, MESSAGE_ID),
        ]
        tags = (
            f"{{{xta.OSCI}}}MsgBoxStatusListRequest",
            f"{{{xta.OSCI}}}MsgBoxFetchRequest",
            f"{{{xta.OSCI}}}MsgBoxCloseRequest",
            f"{{{xta.OSCIMETA}}}Author",
        )
        elements = [element for document in documents for element in _children(document, *tags)]
        assert 6 == len(elements)
        for element in elements:
            official_schema.validate(XMLResource(element, allow="none"))

    def test_outbound_metadata_with_every_option_is_valid(self, official_schema):
        """MessageMetaData with Origin, In-Reply-To, TestMsg and a named code is schema-valid."""
        meta = xta.OutboundMetadata(
            message_id=MESSAGE_ID,
            author=PORTAL,
            reader=OFFICE,
            service="urn:x:service",
            message_type=Code("t", "urn:x:types", "1", name="Typ"),
            payload_schema=XSOZIAL,
            business_scenario=Code("s", "urn:x:scenarios", "2"),
            in_reply_to="urn:de:xta:messageid:x:y",
            origin=dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC),
            test_message=True,
        )
        official_schema.validate(XMLResource(xta.message_metadata(meta), allow="none"))


@pytest.mark.parametrize(
    "name",
    [
        "rechnung\u202efdp.exe",
        "a\x85b.pdf",
        "a\u2028b.pdf",
        "a\u200db.pdf",
        "../../etc/passwd",
        ".hidden.pdf",
        " x.pdf",
        "a/b.pdf",
    ],
)
def test_unsafe_attachment_file_names_are_refused(name: str) -> None:
    from hub.core.transport import check_attachment

    with pytest.raises(Rejection) as caught:
        check_attachment(
            b"%PDF-1.7", filename=name, content_type="application/pdf", declared_size=None
        )
    assert (caught.value.reason, caught.value.path) == (Reason.ATTACHMENT, "attachment/filename")
