"""XTA 2 getMessage responses as MTOM/XOP packages: resolution, limits and hostile packages.

The package is written by hand here (MIME text around a SOAP 1.2 envelope whose
``Message`` and ``Attachment`` hold ``xop:Include`` elements), so the resolver is
tested against XOP 1.0 and SOAP 1.2 MTOM, not against the simulator's builder;
the builder gets a round trip of its own. Every hostile case names its reason
code and path, and no rejection carries a value of the input.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import time
from pathlib import Path

import pytest
import xmlschema
from lxml import etree
from xmlschema import XMLResource

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import ACCEPTED, DEAD_LETTER, RECEIPTS, HubContext, intake
from hub.core.portals import Portal, PortalTable
from hub.core.records import DeadLetter, PortalReceipt, Received, decode, unb64
from hub.core.transport import AttachmentPolicy, xta
from hub.core.transport.registry import peek, sniff
from hub.sim.xta import DEFAULT_BUSINESS_SCENARIO, DEFAULT_MESSAGE_TYPE, mtom_message
from hub.testing import make_submission
from tests.shared_dir import XTA_WSDL, shared_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


SHARED = shared_dir(XTA_WSDL)  # the official XTA XSDs
needs_xsd = pytest.mark.skipif(
    SHARED is None,
    reason="official XTA 2.1.1 XSDs not found: set SOZIALHUB_SHARED_DIR to the shared/ directory",
)

PAYLOAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<v:vorgang xmlns:v="urn:test:payload"><v:name>Erika Mustermann</v:name></v:vorgang>\n'
)
# Every byte value, line breaks of every kind and a trailing CR: binary must survive MIME.
PDF = b"%PDF-1.4\n% Nachweis Mustermann\r\n" + bytes(range(256)) + b"\r\n\n\r--x\r"
MESSAGE_ID = "urn:de:xta:messageid:sop_xta_1:3f2504e0-4f89-11d3-9a0c-0305e82c3301"
PORTAL = "sop:050000100099"
OFFICE = "wgb010540880000"
XSOZIAL = "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0"
XOP_NS = "http://www.w3.org/2004/08/xop/include"
BOUNDARY = "uuid:7f8a2c1e-portal-boundary"
ROOT_ID = "root.message@portal.example"
MSG_ID = "payload-1@portal.example"
ATT_ID = "attachment-1@portal.example"

MSG = "GenericContentContainer/ContentContainer/Message"
ATT = "GenericContentContainer/ContentContainer/Attachment[1]"

ENVELOPE = f"""<?xml version="1.0" encoding="UTF-8"?>
<s12:Envelope xmlns:s12="http://www.w3.org/2003/05/soap-envelope"
    xmlns:wsa="http://www.w3.org/2005/08/addressing"
    xmlns:oscimeta="http://www.osci.eu/ws/2014/10/transport"
    xmlns:osci="http://www.osci.eu/ws/2008/05/transport"
    xmlns:xta="http://xoev.de/transport/xta/211"
    xmlns:xop="{XOP_NS}">
  <s12:Header>
    <wsa:Action>http://www.osci.eu/ws/2008/05/transport/urn/messageTypes/MsgBoxFetchRequest</wsa:Action>
    <wsa:MessageID>urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e</wsa:MessageID>
    <oscimeta:MessageMetaData>
      <oscimeta:DeliveryAttributes>
        <oscimeta:Origin>2026-11-02T09:00:00Z</oscimeta:Origin>
      </oscimeta:DeliveryAttributes>
      <oscimeta:Originators>
        <oscimeta:Author><oscimeta:Identifier type="xoev">{PORTAL}</oscimeta:Identifier></oscimeta:Author>
      </oscimeta:Originators>
      <oscimeta:Destinations>
        <oscimeta:Reader><oscimeta:Identifier type="xoev">{OFFICE}</oscimeta:Identifier></oscimeta:Reader>
      </oscimeta:Destinations>
      <oscimeta:MsgIdentification>
        <wsa:MessageID>{MESSAGE_ID}</wsa:MessageID>
      </oscimeta:MsgIdentification>
      <oscimeta:Qualifier>
        <oscimeta:Service>urn:xoev-de:xsozial:basis:2.4.0</oscimeta:Service>
        <oscimeta:BusinessScenario>
          <oscimeta:Defined listURI="urn:de:test:business-scenario" listVersionID="1"><code>XSOZIAL_DATA</code></oscimeta:Defined>
        </oscimeta:BusinessScenario>
        <oscimeta:MessageType listURI="urn:de:payloadSchema:elementName" listVersionID="1.0"
            payloadSchema="{XSOZIAL}"><code>vorgang.transportieren.1000001</code></oscimeta:MessageType>
      </oscimeta:Qualifier>
    </oscimeta:MessageMetaData>
  </s12:Header>
  <s12:Body>
    <xta:GenericContentContainer>
      <xta:ContentContainer>
        <xta:Message contentType="application/xml" filename="antrag.xml" size="{len(PAYLOAD)}"><xop:Include href="cid:{MSG_ID}"/></xta:Message>
        <xta:Attachment contentType="application/pdf" filename="nachweis.pdf" size="{len(PDF)}" id="att-1"><xop:Include href="cid:{ATT_ID}"/></xta:Attachment>
      </xta:ContentContainer>
    </xta:GenericContentContainer>
  </s12:Body>
</s12:Envelope>"""

CONTENT_TYPE = (
    f'multipart/related; type="application/xop+xml"; boundary="{BOUNDARY}"; '
    f'start="<{ROOT_ID}>"; start-info="application/soap+xml"'
)
ROOT_HEADERS = (
    'Content-Type: application/xop+xml; charset=UTF-8; type="application/soap+xml"\r\n'
    "Content-Transfer-Encoding: binary\r\n"
    f"Content-ID: <{ROOT_ID}>"
)


def part(content_id: str | None, data: bytes, headers: str = "") -> tuple[str, bytes]:
    lines = ["Content-Type: application/octet-stream", "Content-Transfer-Encoding: binary"]
    if content_id is not None:
        lines.append(f"Content-ID: <{content_id}>")
    if headers:
        lines = [headers]
    return "\r\n".join(lines), data


PARTS = [part(MSG_ID, PAYLOAD), part(ATT_ID, PDF)]


def package(
    envelope: str | bytes = ENVELOPE,
    parts: list[tuple[str, bytes]] | None = None,
    *,
    content_type: str = CONTENT_TYPE,
    root_headers: str = ROOT_HEADERS,
) -> bytes:
    """The MIME entity the poller keeps: the response's Content-Type line, a blank line, the body."""
    root = envelope.encode("utf-8") if isinstance(envelope, str) else envelope
    delimiter = f"--{BOUNDARY}".encode()
    body = delimiter + b"\r\n" + root_headers.encode() + b"\r\n\r\n" + root + b"\r\n"
    for headers, data in PARTS if parts is None else parts:
        body += delimiter + b"\r\n" + headers.encode() + b"\r\n\r\n" + data + b"\r\n"
    body += delimiter + b"--\r\n"
    return f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body


def envelope(*replacements: tuple[str, str]) -> str:
    """ENVELOPE with each (old, new) replaced once; every ``old`` must occur (guards the fixture)."""
    text = ENVELOPE
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def inline_equivalent() -> bytes:
    """The same message with inline base64: what XOP resolution must be equivalent to."""
    return envelope(
        (f'<xop:Include href="cid:{MSG_ID}"/>', base64.b64encode(PAYLOAD).decode()),
        (f'<xop:Include href="cid:{ATT_ID}"/>', base64.b64encode(PDF).decode()),
    ).encode()


def rejection(document: bytes, **kwargs) -> tuple[Reason, str | None]:  # type: ignore[no-untyped-def]
    with pytest.raises(Rejection) as caught:
        xta.unwrap(document, **kwargs)
    text = str(caught.value) + repr(caught.value)
    for value in ("Mustermann", MSG_ID, ATT_ID, ROOT_ID, BOUNDARY, "portal.example"):
        assert value not in text
    return caught.value.reason, caught.value.path


class TestGood:
    def test_resolves_to_the_inline_message(self):
        """An MTOM package unwraps to the envelope its inline-base64 equivalent unwraps to."""
        mtom, inline = xta.unwrap(package()), xta.unwrap(inline_equivalent())
        assert (mtom.payload, mtom.attachments[0].data) == (PAYLOAD, PDF)
        assert mtom == inline

    def test_unwrap_message_keeps_the_metadata(self):
        unwrapped = xta.unwrap_message(package())
        assert (unwrapped.metadata.message_id, unwrapped.envelope.author) == (MESSAGE_ID, PORTAL)

    def test_resolved_infoset_has_no_include_left(self):
        """After resolution the Message holds canonical base64 of its part, nothing else."""
        root = xta.resolved_envelope(package())
        message = root.find(f".//{{{xta.XTA}}}Message")
        assert message is not None
        assert (len(message), message.text) == (0, base64.b64encode(PAYLOAD).decode())
        assert not list(root.iter(f"{{{XOP_NS}}}Include"))

    def test_base64_transfer_encoding_of_a_part(self):
        """A binary part may travel base64-encoded in MIME; it is decoded strictly."""
        encoded = base64.encodebytes(PDF)
        headers = (
            "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            f"Content-ID: <{ATT_ID}>"
        )
        document = package(parts=[part(MSG_ID, PAYLOAD), part(None, encoded, headers)])
        assert xta.unwrap(document).attachments[0].data == PDF

    def test_root_without_charset_and_start(self):
        """No charset (UTF-8 is the only one the parser reads anyway) and no start: first part."""
        content_type = CONTENT_TYPE.replace(f'start="<{ROOT_ID}>"; ', "")
        headers = ROOT_HEADERS.replace("charset=UTF-8; ", "")
        document = package(content_type=content_type, root_headers=headers)
        assert xta.unwrap(document).payload == PAYLOAD

    def test_percent_encoded_cid(self):
        """A cid: URL is percent-encoded (RFC 2392): %40 is the '@' of the Content-ID."""
        document = package(envelope((f"cid:{MSG_ID}", "cid:" + MSG_ID.replace("@", "%40"))))
        assert xta.unwrap(document).payload == PAYLOAD

    def test_message_without_attachments(self):
        start = ENVELOPE.index("<xta:Attachment ")
        end = ENVELOPE.index("</xta:Attachment>") + len("</xta:Attachment>")
        document = package(envelope((ENVELOPE[start:end], "")), [part(MSG_ID, PAYLOAD)])
        assert (xta.unwrap(document).payload, xta.unwrap(document).attachments) == (PAYLOAD, ())

    def test_simulator_builder_round_trip(self):
        """The simulator's MTOM response unwraps to what it was built from, bytes intact."""
        metadata = xta.message_metadata(
            xta.OutboundMetadata(
                message_id=MESSAGE_ID,
                author=PORTAL,
                reader=OFFICE,
                service="urn:x:service",
                message_type=DEFAULT_MESSAGE_TYPE,
                payload_schema=XSOZIAL,
                business_scenario=DEFAULT_BUSINESS_SCENARIO,
            )
        )
        blob = bytes(range(256)) * 64 + b"\r"
        content_type, body = mtom_message(
            metadata,
            xta.Content(PAYLOAD, "application/xml", "antrag.xml"),
            [xta.Content(PDF, "application/pdf", "a.pdf"), xta.Content(blob, "image/png", "b.png")],
        )
        original = f"Content-Type: {content_type}\r\n\r\n".encode() + body
        unwrapped = xta.unwrap(original)
        assert (unwrapped.payload, [a.data for a in unwrapped.attachments]) == (
            PAYLOAD,
            [PDF, blob],
        )

    def test_peek_reads_the_metadata_of_a_broken_package(self):
        """A package whose content is refused still names its author and message id."""
        broken = package(parts=[part(MSG_ID, PAYLOAD)])  # the attachment's part is missing
        envelope_ = xta.peek(broken)
        assert (envelope_.message_id, envelope_.author, envelope_.payload) == (
            MESSAGE_ID,
            PORTAL,
            b"",
        )
        assert peek("xta2", broken) == envelope_

    def test_sniff_recognises_mtom_as_xta(self):
        assert sniff(package()) == "xta2"

    def test_sniff_still_recognises_osci_mime(self):
        osci = b"MIME-Version: 1.0\r\nContent-Type: multipart/related; type=text/xml\r\n\r\n"
        assert sniff(osci) == "osci"

    def test_an_mtom_status_list_and_fault(self):
        """Servers with MTOM on answer every operation as a package: lists and faults are read."""
        listing = xta.soap_message(
            xta.message_metadata(
                xta.OutboundMetadata(
                    message_id=MESSAGE_ID,
                    author=PORTAL,
                    reader=OFFICE,
                    service="urn:x:service",
                    message_type=DEFAULT_MESSAGE_TYPE,
                    payload_schema=XSOZIAL,
                    business_scenario=DEFAULT_BUSINESS_SCENARIO,
                    msg_size=4711,
                )
            ),
            xta.content_container(xta.Content(b"<a/>", "application/xml")),
            action=xta.ACTION_GET_STATUS_LIST,
        )
        # A status list body: MsgStatusList with the MessageMetaData entry of that message.
        entry = xmlsafe.parse(listing).find(f".//{{{xta.OSCIMETA}}}MessageMetaData")
        root = etree.Element(f"{{{xta.SOAP12}}}Envelope", nsmap={"s12": xta.SOAP12})
        body = etree.SubElement(root, f"{{{xta.SOAP12}}}Body")
        etree.SubElement(body, f"{{{xta.OSCI}}}MsgStatusList").append(entry)
        status = xta.status_list(package(etree.tostring(root), []))
        assert status.entries == (xta.StatusEntry(MESSAGE_ID, status.entries[0].metadata, 4711),)
        fault = (
            '<s12:Envelope xmlns:s12="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:xta="http://xoev.de/transport/xta/211"><s12:Body><s12:Fault>'
            "<s12:Code><s12:Value>s12:Sender</s12:Value></s12:Code>"
            "<s12:Detail><xta:InvalidMessageIDException/></s12:Detail>"
            "</s12:Fault></s12:Body></s12:Envelope>"
        )
        assert xta.parse_fault(package(fault, [])) == xta.Fault(
            "Sender", "InvalidMessageIDException"
        )


def _include(cid: str = MSG_ID) -> str:
    return f'<xop:Include href="cid:{cid}"/>'


# (case id, document, reason, path)
HOSTILE = [
    # references
    (
        "dangling-cid",
        package(envelope((f"cid:{MSG_ID}", "cid:nowhere@portal.example"))),
        Reason.CONTAINER,
        f"{MSG}/Include/@href",
    ),
    (
        "duplicate-reference",
        package(envelope((f"cid:{ATT_ID}", f"cid:{MSG_ID}")), [part(MSG_ID, PAYLOAD)]),
        Reason.CONTAINER,
        f"{ATT}/Include/@href",
    ),
    (
        "unreferenced-part",
        package(parts=[*PARTS, part("extra@portal.example", PDF)]),
        Reason.CONTAINER,
        "mime/part[4]",
    ),
    (
        "href-not-cid",
        package(envelope((f"cid:{MSG_ID}", "http://169.254.169.254/latest/meta-data"))),
        Reason.CONTAINER,
        f"{MSG}/Include/@href",
    ),
    (
        "href-missing",
        package(envelope((f'href="cid:{MSG_ID}"', f'ref="cid:{MSG_ID}"'))),
        Reason.CONTAINER,
        f"{MSG}/Include",
    ),
    # the include is not the only child of its element
    (
        "include-beside-base64",
        package(envelope((_include(), "QUJD" + _include()))),
        Reason.CONTAINER,
        f"{MSG}/Include",
    ),
    (
        "include-with-whitespace",
        package(envelope((_include(), "\n  " + _include() + "\n"))),
        Reason.CONTAINER,
        f"{MSG}/Include",
    ),
    (
        "include-beside-comment",
        package(envelope((_include(), "<!--x-->" + _include()))),
        Reason.CONTAINER,
        f"{MSG}/Include",
    ),
    (
        "two-includes",
        package(envelope((_include(), _include() + _include(ATT_ID)))),
        Reason.CONTAINER,
        f"{MSG}/Include",
    ),
    (
        "include-with-content",
        package(envelope((_include(), f'<xop:Include href="cid:{MSG_ID}">QUJD</xop:Include>'))),
        Reason.CONTAINER,
        f"{MSG}/Include",
    ),
    (
        "include-with-child",
        package(
            envelope((_include(), f'<xop:Include href="cid:{MSG_ID}"><xop:Include/></xop:Include>'))
        ),
        Reason.CONTAINER,
        f"{MSG}/Include",
    ),
    (
        "include-with-extra-attribute",
        package(envelope((_include(), f'<xop:Include href="cid:{MSG_ID}" role="x"/>'))),
        Reason.CONTAINER,
        f"{MSG}/Include",
    ),
    # an include where no base64Binary content is
    (
        "include-in-header",
        package(
            envelope(
                (
                    "<oscimeta:Service>urn:xoev-de:xsozial:basis:2.4.0",
                    "<oscimeta:Service>" + _include("x@y"),
                ),
                (f"cid:{ATT_ID}", "cid:x@y"),
            ),
            [part(MSG_ID, PAYLOAD), part("x@y", b"urn:x:y")],
        ),
        Reason.CONTAINER,
        "Envelope/Header/Include",
    ),
    (
        "include-in-content-container",
        package(
            envelope(("</xta:ContentContainer>", _include("x@y") + "</xta:ContentContainer>")),
            [*PARTS, part("x@y", PDF)],
        ),
        Reason.CONTAINER,
        "Envelope/Body/Include",
    ),
    (
        "include-in-message-outside-the-body",
        package(
            envelope(
                (
                    "</s12:Header>",
                    "<xta:ContentContainer><xta:Message>"
                    + _include("x@y")
                    + "</xta:Message></xta:ContentContainer></s12:Header>",
                )
            ),
            [*PARTS, part("x@y", PDF)],
        ),
        Reason.CONTAINER,
        "Envelope/Header/Include",
    ),
    (
        "include-as-attribute",
        package(
            envelope((_include(), ""), ('filename="antrag.xml"', f'xop:Include="cid:{MSG_ID}"')),
        ),
        Reason.CONTAINER,
        "Envelope/Body/@xop",
    ),
    (
        "other-xop-element",
        package(envelope((_include(), f'<xop:Reference href="cid:{MSG_ID}"/>'))),
        Reason.CONTAINER,
        "Envelope/Body/Include",
    ),
    (
        "include-as-root",
        package(
            f'<xop:Include xmlns:xop="{XOP_NS}" href="cid:{MSG_ID}"/>', [part(MSG_ID, PAYLOAD)]
        ),
        Reason.CONTAINER,
        "Envelope/Include",
    ),
    (
        "empty-part",
        package(parts=[part(MSG_ID, b""), part(ATT_ID, PDF)]),
        Reason.CONTAINER,
        MSG,
    ),
    (
        "wrong-declared-size",
        package(envelope((f'size="{len(PAYLOAD)}"', f'size="{len(PAYLOAD) + 1}"'))),
        Reason.CONTAINER,
        f"{MSG}/size",
    ),
    # MIME framing and media types
    (
        "nested-multipart",
        package(
            parts=[
                part(MSG_ID, PAYLOAD),
                part(
                    None,
                    b"--inner\r\nContent-Type: text/plain\r\n\r\nx\r\n--inner--\r\n",
                    f'Content-Type: multipart/mixed; boundary="inner"\r\nContent-ID: <{ATT_ID}>',
                ),
            ]
        ),
        Reason.CONTAINER,
        "mime/part[3]/Content-Type",
    ),
    (
        "message-rfc822-part",
        package(
            parts=[
                part(MSG_ID, PAYLOAD),
                part(
                    None,
                    b"Subject: x\r\n\r\nx",
                    f"Content-Type: message/rfc822\r\nContent-ID: <{ATT_ID}>",
                ),
            ]
        ),
        Reason.CONTAINER,
        "mime/part[3]/Content-Type",
    ),
    (
        "quoted-printable-part",
        package(
            parts=[
                part(MSG_ID, PAYLOAD),
                part(
                    None,
                    b"%PDF=3D",
                    "Content-Type: application/pdf\r\nContent-Transfer-Encoding: quoted-printable\r\n"
                    f"Content-ID: <{ATT_ID}>",
                ),
            ]
        ),
        Reason.CONTAINER,
        "mime/part[3]/Content-Transfer-Encoding",
    ),
    (
        "quoted-printable-root",
        package(root_headers=ROOT_HEADERS.replace("binary", "quoted-printable")),
        Reason.CONTAINER,
        "mime/part[1]/Content-Transfer-Encoding",
    ),
    (
        "part-without-content-id",
        package(parts=[part(MSG_ID, PAYLOAD), part(None, PDF)]),
        Reason.CONTAINER,
        "mime/part[3]/Content-ID",
    ),
    (
        "duplicate-content-id",
        package(parts=[part(MSG_ID, PAYLOAD), part(MSG_ID, PDF)]),
        Reason.CONTAINER,
        "mime/part[3]/Content-ID",
    ),
    (
        "start-names-no-part",
        package(content_type=CONTENT_TYPE.replace(ROOT_ID, "elsewhere@x")),
        Reason.CONTAINER,
        "mime/Content-Type/start",
    ),
    (
        "not-xop",
        package(content_type=CONTENT_TYPE.replace('type="application/xop+xml"', 'type="text/xml"')),
        Reason.CONTAINER,
        "mime/Content-Type/type",
    ),
    (
        "start-info-not-soap12",
        package(
            content_type=CONTENT_TYPE.replace(
                'start-info="application/soap+xml"', 'start-info="text/xml"'
            )
        ),
        Reason.CONTAINER,
        "mime/Content-Type/start-info",
    ),
    (
        "not-multipart-related",
        package(content_type=CONTENT_TYPE.replace("multipart/related", "multipart/mixed")),
        Reason.CONTAINER,
        "mime/Content-Type",
    ),
    (
        "root-not-xop",
        package(root_headers=ROOT_HEADERS.replace("application/xop+xml", "text/xml")),
        Reason.CONTAINER,
        "mime/part[1]/Content-Type",
    ),
    (
        "root-type-not-soap12",
        package(
            root_headers=ROOT_HEADERS.replace('type="application/soap+xml"', 'type="text/xml"')
        ),
        Reason.CONTAINER,
        "mime/part[1]/Content-Type/type",
    ),
    # the root document
    (
        "root-charset-latin1",
        package(root_headers=ROOT_HEADERS.replace("UTF-8", "ISO-8859-1")),
        Reason.ENCODING,
        "mime/part[1]/Content-Type",
    ),
    (
        "root-declared-latin1",
        package(ENVELOPE.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"', 1)),
        Reason.ENCODING,
        "mime/part[1]",
    ),
    (
        "root-utf16",
        package(ENVELOPE.replace('encoding="UTF-8"', 'encoding="UTF-16"', 1).encode("utf-16")),
        Reason.ENCODING,
        "mime/part[1]",
    ),
    (
        "root-doctype",
        package(
            ENVELOPE.replace(
                '<?xml version="1.0" encoding="UTF-8"?>',
                '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY n "Mustermann">]>',
            )
        ),
        Reason.DOCTYPE,
        "mime/part[1]",
    ),
    (
        "root-truncated",
        package(ENVELOPE[:-40]),
        Reason.WELLFORMED,
        "mime/part[1]",
    ),
    (
        "no-close-delimiter",
        package().removesuffix(f"--{BOUNDARY}--\r\n".encode()),
        Reason.CONTAINER,
        "mime/parts",
    ),
]
HOSTILE_IDS = [case[0] for case in HOSTILE]


class TestHostile:
    @pytest.mark.parametrize(("name", "document", "reason", "path"), HOSTILE, ids=HOSTILE_IDS)
    def test_reason_and_path(self, name, document, reason, path):
        """Each hostile package is refused with a fixed reason and a location, no value in it."""
        assert (reason, path) == rejection(document)

    def test_fixture_is_accepted(self):
        """The unmodified package unwraps (so each case above fails only for its change)."""
        assert xta.unwrap(package()).message_id == MESSAGE_ID

    def test_package_above_the_byte_limit(self):
        """The whole package is bounded by limits.max_bytes before any MIME parsing: SIZE."""
        document = package()
        limits = xmlsafe.Limits(max_bytes=len(document) - 1)
        assert (Reason.SIZE, None) == rejection(document, limits=limits)

    def test_huge_part_above_the_attachment_policy(self):
        """A part larger than the attachment policy is ATTACHMENT at its location, as inline."""
        policy = AttachmentPolicy(max_bytes=len(PDF) - 1)
        assert (Reason.ATTACHMENT, f"{ATT}/size") == rejection(package(), attachments=policy)

    def test_too_many_parts(self):
        """More parts than the message and max_count attachments need: refused before parsing."""
        policy = AttachmentPolicy(max_count=1)
        extra = [part(f"x{i}@portal.example", b"x") for i in range(3)]
        document = package(parts=[*PARTS, *extra])
        assert (Reason.CONTAINER, "mime/parts") == rejection(document, attachments=policy)

    def test_line_flood_is_refused_quickly(self):
        """A part of line breaks only (the parser's cost is per line) is bounded in time."""
        flood = b"\n" * 700_000
        document = package(parts=[part(MSG_ID, PAYLOAD), part(ATT_ID, flood)])
        started = time.monotonic()
        assert (Reason.CONTAINER, "mime/lines") == rejection(document)
        assert time.monotonic() - started < 2.0

    def test_include_in_an_inline_envelope_stays_refused(self):
        """Without MIME there is nothing to include: an xop:Include is CONTAINER as before."""
        assert (Reason.CONTAINER, MSG) == rejection(ENVELOPE.encode())


@pytest.fixture(scope="module")
def platform_hub(hub_context: HubContext) -> HubContext:
    """The hub with the Sozialplattform as the XTA portal of PORTAL."""
    portal = Portal(
        "sozialplattform-nrw",
        "Sozialplattform NRW",
        frozenset({"xta2"}),
        frozenset({"xsozial-basis-2.4.0"}),
        frozenset({PORTAL}),
    )
    return dataclasses.replace(hub_context, portals=PortalTable([portal]))


class TestThroughIntake:
    def test_an_mtom_message_is_accepted_and_answered(self, platform_hub, now):
        """Intake opens the package the poller kept; the portal gets an xta2 receipt."""
        document = package(
            parts=[part(MSG_ID, make_submission()), part(ATT_ID, PDF)],
            envelope=envelope((f'size="{len(PAYLOAD)}"', "")),
        )
        result = intake(Received.of(document, "xta", "xta2", now), None, platform_hub, now)
        (receipt,) = [decode(e.value, PortalReceipt) for e in result.emits if e.topic == RECEIPTS]
        assert (result.outcome, receipt.channel, receipt.outcome) == (
            "accepted",
            "xta2",
            "accepted",
        )
        assert xta.receipt_outcome(unb64(receipt.body_b64 or "")) == (MESSAGE_ID, "accepted")
        assert any(e.topic == ACCEPTED for e in result.emits)

    def test_a_hostile_package_is_dead_lettered_and_answered(self, platform_hub, now):
        """A dangling cid: CONTAINER dead letter with its path; the portal is told (peek)."""
        document = package(envelope((f"cid:{MSG_ID}", "cid:nowhere@portal.example")))
        result = intake(Received.of(document, "xta", "xta2", now), None, platform_hub, now)
        (letter,) = [decode(e.value, DeadLetter) for e in result.emits if e.topic == DEAD_LETTER]
        (receipt,) = [decode(e.value, PortalReceipt) for e in result.emits if e.topic == RECEIPTS]
        assert (letter.reason, letter.path) == ("CONTAINER", f"{MSG}/Include/@href")
        assert (receipt.outcome, receipt.reason, receipt.transport_message_id) == (
            "rejected",
            "CONTAINER",
            MESSAGE_ID,
        )


@pytest.fixture(scope="module")
def official_schema():
    assert SHARED is not None
    directory = SHARED / "schemas" / "xta-2.1.1"
    imports = [(xta.XTA, "XTA-Webservice-Globale-Elemente.xsd"), (xta.OSCI, "OSCI2_02.xsd")]
    wrapper = (
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="urn:sozialhub:test:xta">'
        + "".join(
            f'<xs:import namespace="{ns}" schemaLocation="{(directory / name).as_uri()}"/>'
            for ns, name in imports
        )
        + "</xs:schema>"
    )
    return xmlschema.XMLSchema(wrapper, base_url=str(directory), allow="local", defuse="always")


@needs_xsd
class TestOfficialSchema:
    def test_resolved_package_is_valid(self, official_schema):
        """After XOP resolution the hand-written package's metadata and body validate."""
        root = xta.resolved_envelope(package())
        elements = [e for part_ in root for e in part_ if isinstance(e.tag, str)]
        tags = {f"{{{xta.OSCIMETA}}}MessageMetaData", f"{{{xta.XTA}}}GenericContentContainer"}
        checked = [e for e in elements if e.tag in tags]
        assert 2 == len(checked)
        for element in checked:
            official_schema.validate(XMLResource(element, allow="none"))

    def test_unresolved_package_is_not_valid(self, official_schema):
        """Guard: with the xop:Include still in place the body is not schema-valid base64."""
        root = xmlsafe.parse(ENVELOPE.encode())
        body = root.find(f".//{{{xta.XTA}}}GenericContentContainer")
        assert not official_schema.is_valid(XMLResource(body, allow="none"))

    def test_metadata_with_msg_size_is_valid(self, official_schema):
        meta = xta.OutboundMetadata(
            message_id=MESSAGE_ID,
            author=PORTAL,
            reader=OFFICE,
            service="urn:x:service",
            message_type=DEFAULT_MESSAGE_TYPE,
            payload_schema=XSOZIAL,
            business_scenario=DEFAULT_BUSINESS_SCENARIO,
            origin=dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC),
            msg_size=123456,
        )
        official_schema.validate(XMLResource(xta.message_metadata(meta), allow="none"))
