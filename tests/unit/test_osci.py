"""OSCI-Transport 1.2 content packages: payload rule, references, bounds, signatures, encryption."""

from __future__ import annotations

import base64
import dataclasses
import re
import time

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from signxml import XMLVerifier

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.transport import AttachmentPolicy, Envelope
from hub.core.transport.osci import (
    PAYLOAD_PATH,
    OsciLimits,
    OsciUnpacked,
    osci_limits,
    unpack,
    unwrap,
)
from tests import osci_builders as b
from tests.osci_builders import PAYLOAD, PDF, PNG, MimePart

C1 = "ContentPackage/ContentContainer[1]"
MARKER = "Mustermann"  # personal data planted in the input: never in a rejection


def rejected(data: bytes, **options) -> Rejection:
    with pytest.raises(Rejection) as caught:
        unpack(data, **options)
    return caught.value


def assert_rejected(data: bytes, reason: Reason, path: str | None, **options) -> Rejection:
    rejection = rejected(data, **options)
    expected = (reason, path)
    assert expected == (rejection.reason, rejection.path)
    return rejection


def doc(*contents, ident: str | None = "cc1") -> bytes:
    return b.xml(b.package(b.container(*contents, ident=ident)))


def mime_with(contents, parts, **options) -> bytes:
    document = doc(*contents)
    return b.mime([b.root_part(document), *parts], **options)


@pytest.fixture(scope="module")
def author() -> b.Author:
    return b.make_author()


@pytest.fixture(scope="module")
def reader():
    return b.reader_key()


@pytest.fixture(scope="module")
def other_reader():
    return b.reader_key()


# --- happy paths ---------------------------------------------------------------------------------


class TestInline:
    def test_payload_and_inline_attachment(self):
        """The XML Content is the payload; the PDF beside it is a checked attachment."""
        envelope = unwrap(b.inline_package(), author="sop:050000100099", reader="wgb010540880000")
        expected = (
            "osci",
            PAYLOAD,
            "application/xml",
            "sop:050000100099",
            "wgb010540880000",
            [("att1.pdf", "application/pdf", len(PDF), "att1")],
        )
        actual = (
            envelope.transport,
            envelope.payload,
            envelope.payload_content_type,
            envelope.author,
            envelope.reader,
            [(a.filename, a.content_type, a.size, a.attachment_id) for a in envelope.attachments],
        )
        assert expected == actual

    def test_unwrap_is_the_envelope_of_unpack(self):
        """unwrap() returns exactly the envelope unpack() builds."""
        expected = unpack(b.inline_package(), message_id="m-1").envelope
        assert expected == unwrap(b.inline_package(), message_id="m-1")

    def test_unpacked_reports_payload_location(self):
        """The payload's Content Id and the containers around it are reported for the policy."""
        unpacked = unpack(b.inline_package())
        expected = ("payload", ("cc1",), ["cc1"], (), ())
        actual = (
            unpacked.payload_content_id,
            unpacked.payload_container_ids,
            list(unpacked.containers),
            unpacked.signatures,
            unpacked.signed_container_ids,
        )
        assert expected == actual

    def test_soap_envelope_around_the_package(self):
        """A SOAP 1.1 envelope whose Body holds the ContentPackage is accepted as well."""
        root = b.soap(b.package(b.container(b.inline(PAYLOAD, "payload"))))
        expected = PAYLOAD
        assert expected == unwrap(b.xml(root)).payload

    def test_id_on_base64content(self):
        """The OSCI library writes the Id on Base64Content; it names the attachment."""
        data = doc(b.inline(PAYLOAD), b.inline(PNG, "foto", id_on_base64=True))
        expected = [("foto.png", "image/png", "foto")]
        actual = [(a.filename, a.content_type, a.attachment_id) for a in unwrap(data).attachments]
        assert expected == actual

    def test_attachment_without_id_gets_a_positional_name(self):
        """A Content without Id is named content-<n> with the sniffed type's extension."""
        data = doc(b.inline(PAYLOAD), b.inline(PDF))
        expected = ["content-1.pdf"]
        assert expected == [a.filename for a in unwrap(data).attachments]

    def test_base64_with_line_breaks(self):
        """base64 wrapped at 76 characters (whitespace between characters) is accepted."""
        encoded = base64.encodebytes(PDF * 4).decode("ascii")
        data = doc(b.inline(PAYLOAD), b.inline(b"", "att", text=encoded))
        expected = PDF * 4
        assert expected == unwrap(data).attachments[0].data

    def test_plain_xml_limits_bound_the_whole_message(self):
        """xmlsafe.Limits may be passed; they bound the whole input too."""
        limits = xmlsafe.Limits(max_bytes=256)
        expected = (256, 256, limits)
        converted = osci_limits(limits)
        actual = (converted.max_message_bytes, converted.max_payload_bytes, converted.xml)
        assert expected == actual
        assert_rejected(b.inline_package(), Reason.SIZE, None, limits=limits)


class TestMime:
    def test_cid_attachments(self):
        """Payload and attachments as MIME parts referenced by cid; names from Content-Disposition."""
        unpacked = unpack(b.mime_package())
        expected = (
            PAYLOAD,
            "text/xml",
            [
                ("antrag.pdf", "application/pdf", "antrag.pdf@test", PDF),
                ("foto.png", "image/png", "foto@test", PNG),
            ],
            "c-payload",
            {"payload@test", "antrag.pdf@test", "foto@test"},
        )
        envelope = unpacked.envelope
        actual = (
            envelope.payload,
            envelope.payload_content_type,
            [(a.filename, a.content_type, a.attachment_id, a.data) for a in envelope.attachments],
            unpacked.payload_content_id,
            set(unpacked.parts),
        )
        assert expected == actual

    def test_start_parameter_selects_the_root(self):
        """The root part is the one the start parameter names, wherever it is."""
        document = doc(b.reference("p", "c1"))
        data = b.mime(
            [MimePart("p", PAYLOAD, "text/xml"), b.root_part(document, "root@x")], start="<root@x>"
        )
        expected = PAYLOAD
        assert expected == unwrap(data).payload

    def test_first_part_is_the_root_without_start(self):
        """Without a start parameter the first part is the root document."""
        data = mime_with([b.reference("p", "c1")], [MimePart("p", PAYLOAD, "text/xml")], start=None)
        expected = PAYLOAD
        assert expected == unwrap(data).payload

    def test_library_spellings(self):
        """A leading line break, unquoted type=text/xml and the '8-bit' transfer encoding."""
        parts = [MimePart("a", PDF, "application/pdf", "8-bit")]
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], parts, leading_newline=True)
        expected = PDF
        assert expected == unwrap(data).attachments[0].data

    def test_base64_part(self):
        """A base64 transfer-encoded part is decoded strictly."""
        parts = [MimePart("a", PDF * 30, "application/pdf", "base64")]
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], parts)
        expected = PDF * 30
        assert expected == unwrap(data).attachments[0].data

    def test_percent_encoded_cid_url(self):
        """cid: URLs are percent-decoded before they are compared with Content-IDs (RFC 2392)."""
        content = b.reference("x", "c2")
        content.set("href", "cid:anh%C3%A4nge%40amt")  # not visible ASCII once decoded: refused
        parts = [MimePart("anh@amt", PDF, "application/pdf")]
        data = mime_with([b.inline(PAYLOAD), content], parts)
        assert_rejected(data, Reason.CONTAINER, f"{C1}/Content[2]/@href")
        content.set("href", "cid:anh%40amt")
        data = mime_with([b.inline(PAYLOAD), content], parts)
        expected = "anh@amt"
        assert expected == unwrap(data).attachments[0].attachment_id

    def test_binary_part_bytes_survive(self):
        """Bytes of a binary part, line breaks of every kind included, arrive unchanged."""
        blob = b"%PDF-1.4\r\n\x00\xff\r\r\n\n" + bytes(range(256))
        parts = [MimePart("a", blob, "application/pdf", "binary")]
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], parts)
        expected = blob
        assert expected == unwrap(data).attachments[0].data


class TestNested:
    def test_payload_in_the_innermost_container(self):
        """Nested containers (serial signatures): data sits in the inner one."""
        unpacked = unpack(b.nested_package(3))
        expected = (PAYLOAD, ("cc3", "cc2", "cc1"), ["att1.pdf"])
        actual = (
            unpacked.envelope.payload,
            unpacked.payload_container_ids,
            [a.filename for a in unpacked.envelope.attachments],
        )
        assert expected == actual

    def test_max_depth_is_allowed(self):
        """Exactly max_depth levels of containers are accepted."""
        expected = PAYLOAD
        assert expected == unwrap(b.nested_package(4), max_depth=4).payload

    def test_deeper_is_container(self):
        """One level more than max_depth is CONTAINER at the too-deep container."""
        inner = f"{C1}/Content[1]/ContentContainer/Content[1]/ContentContainer"
        path = f"{inner}/Content[1]/ContentContainer/Content[1]/ContentContainer"
        assert_rejected(b.nested_package(5), Reason.CONTAINER, path, max_depth=4)

    def test_max_depth_must_be_positive(self):
        """A max_depth below 1 is a programming error, not a rejection."""
        with pytest.raises(ValueError, match="max_depth"):
            unpack(b.inline_package(), max_depth=0)


# --- the payload rule ----------------------------------------------------------------------------


class TestPayloadRule:
    def test_two_xml_contents_are_ambiguous(self):
        """Two XML Contents at the same (outermost) level: CONTAINER at the second one."""
        data = doc(b.inline(PAYLOAD, "a"), b.inline(PAYLOAD, "b"))
        assert_rejected(data, Reason.CONTAINER, f"{C1}/Content[2]")

    def test_two_top_level_containers_are_ambiguous(self):
        """An XML Content in each of two top-level containers is ambiguous as well."""
        root = b.package(
            b.container(b.inline(PAYLOAD, "a")), b.container(b.inline(PAYLOAD, "b"), ident="cc2")
        )
        assert_rejected(
            b.xml(root), Reason.CONTAINER, "ContentPackage/ContentContainer[2]/Content[1]"
        )

    def test_deeper_xml_is_an_attachment(self):
        """XML in a deeper container than the payload is an ordinary (XML) attachment."""
        inner = b.container(b.inline(b"<beilage/>", "beilage"), ident="inner")
        data = doc(b.inline(PAYLOAD, "p"), b.nested(inner, "n"))
        envelope = unwrap(data)
        expected = (PAYLOAD, [("beilage.xml", "application/xml")])
        actual = (envelope.payload, [(a.filename, a.content_type) for a in envelope.attachments])
        assert expected == actual

    def test_no_xml_content(self):
        """Without any XML Content there is no payload: CONTAINER at ContentPackage/payload."""
        assert_rejected(doc(b.inline(PDF, "a")), Reason.CONTAINER, PAYLOAD_PATH)

    def test_designated_payload_resolves_ambiguity(self):
        """payload_id designates the payload among several XML Contents."""
        data = doc(b.inline(b"<other/>", "a"), b.inline(PAYLOAD, "b"))
        envelope = unwrap(data, payload_id="b")
        expected = (PAYLOAD, ["a.xml"])
        assert expected == (envelope.payload, [a.filename for a in envelope.attachments])

    def test_designated_payload_missing_or_not_xml(self):
        """A designated Id that names nothing, or names non-XML data, is CONTAINER."""
        data = doc(b.inline(PAYLOAD, "a"), b.inline(PDF, "b"))
        assert_rejected(data, Reason.CONTAINER, PAYLOAD_PATH, payload_id="zz")
        assert_rejected(data, Reason.CONTAINER, PAYLOAD_PATH, payload_id="b")

    def test_payload_larger_than_the_limit(self):
        """A payload above max_payload_bytes is SIZE at its Content."""
        limits = OsciLimits(max_payload_bytes=len(PAYLOAD) - 1)
        assert_rejected(b.inline_package(), Reason.SIZE, f"{C1}/Content[1]", limits=limits)

    def test_payload_part_with_a_non_xml_type(self):
        """A payload part declared as something other than XML is CONTAINER at its Content-Type."""
        data = mime_with([b.reference("p", "c1")], [MimePart("p", PAYLOAD, "image/png")])
        assert_rejected(data, Reason.CONTAINER, "mime/part[2]/Content-Type")


# --- references between package and parts -------------------------------------------------------


class TestReferences:
    def test_dangling_cid(self):
        """A cid: reference to a part that does not exist is CONTAINER at the href."""
        data = mime_with([b.inline(PAYLOAD), b.reference("missing", "c2")], [])
        assert_rejected(data, Reason.CONTAINER, f"{C1}/Content[2]/@href")

    def test_cid_in_a_plain_xml_package(self):
        """Without MIME parts every cid: reference dangles."""
        assert_rejected(
            doc(b.inline(PAYLOAD), b.reference("a")), Reason.CONTAINER, f"{C1}/Content[2]/@href"
        )

    def test_unreferenced_part(self):
        """A part no Content references is CONTAINER at that part."""
        parts = [MimePart("a", PDF, "application/pdf"), MimePart("b", PNG, "image/png")]
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], parts)
        assert_rejected(data, Reason.CONTAINER, "mime/part[3]")

    def test_part_referenced_twice(self):
        """Two Contents referencing one part is CONTAINER at the second reference."""
        parts = [MimePart("a", PDF, "application/pdf")]
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2"), b.reference("a", "c3")], parts)
        assert_rejected(data, Reason.CONTAINER, f"{C1}/Content[3]/@href")

    def test_duplicate_content_id(self):
        """Two parts with the same Content-ID are CONTAINER at the second one."""
        parts = [MimePart("a", PDF, "application/pdf"), MimePart("a", PNG, "image/png")]
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], parts)
        assert_rejected(data, Reason.CONTAINER, "mime/part[3]/Content-ID")

    @pytest.mark.parametrize(
        "href",
        ["http://127.0.0.1/x", "file:///etc/passwd", "#c1", "cid:", "cid:a%zz", "cid:a b"],
        ids=["http", "file", "fragment", "empty", "bad-percent", "space"],
    )
    def test_href_that_is_not_a_cid_url(self, href):
        """Only cid: URLs are references; anything else is CONTAINER and never fetched."""
        content = b.reference("a", "c2")
        content.set("href", href)
        data = mime_with([b.inline(PAYLOAD), content], [MimePart("a", PDF, "application/pdf")])
        assert_rejected(data, Reason.CONTAINER, f"{C1}/Content[2]/@href")

    def test_href_and_inline_data(self):
        """A Content with both an href and a child is CONTAINER."""
        content = b.inline(PDF, "c2")
        content.set("href", "cid:a")
        data = mime_with([b.inline(PAYLOAD), content], [MimePart("a", PDF, "application/pdf")])
        assert_rejected(data, Reason.CONTAINER, f"{C1}/Content[2]")

    def test_part_without_content_id(self):
        """Every part besides the root needs a Content-ID."""
        data = mime_with([b.inline(PAYLOAD)], [MimePart(None, PDF, "application/pdf")])
        assert_rejected(data, Reason.CONTAINER, "mime/part[2]/Content-ID")


# --- package structure ---------------------------------------------------------------------------


class TestStructure:
    @pytest.mark.parametrize(
        "text",
        ["JVBERi0x!", "JVBERi0", "JVBERi0xLg=x", "QR==", "=", "JVBE Ri0 x\u00e4"],
        ids=["alphabet", "padding", "inner-pad", "pad-bits", "only-pad", "non-ascii"],
    )
    def test_bad_base64(self, text):
        """Base64Content must be canonical base64: CONTAINER at the Base64Content otherwise."""
        data = doc(b.inline(PAYLOAD), b.inline(b"", "a", text=text))
        assert_rejected(data, Reason.CONTAINER, f"{C1}/Content[2]/Base64Content")

    def test_comment_inside_base64content(self):
        """A comment would split the text node: CONTAINER."""
        data = doc(b.inline(PAYLOAD), b.inline(PDF, "a")).replace(b"JVBE", b"JV<!-- x -->BE", 1)
        assert_rejected(data, Reason.CONTAINER, f"{C1}/Content[2]/Base64Content")

    def test_unknown_element_in_container(self):
        """An element the structure does not know is CONTAINER; its name is not in the path."""
        data = doc(b.inline(PAYLOAD)).replace(
            b"</osci:ContentContainer>", b"<Mustermann/></osci:ContentContainer>"
        )
        rejection = assert_rejected(data, Reason.CONTAINER, f"{C1}/*[2]")
        assert MARKER not in str(rejection)

    def test_signature_in_an_unexpected_place(self):
        """A ds:Signature inside a Content is SIG_LOCATION."""
        signature = b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>'
        data = doc(b.inline(PAYLOAD, "p"), b.reference("x", "c2"))
        data = data.replace(b'href="cid:x"/>', b'href="cid:x">' + signature + b"</osci:Content>")
        assert_rejected(data, Reason.SIG_LOCATION, f"{C1}/Content[2]/*[1]")

    def test_text_between_elements(self):
        """Character data between structural elements is CONTAINER."""
        data = doc(b.inline(PAYLOAD)).replace(b"<osci:Content>", b"Mustermann<osci:Content>")
        assert_rejected(data, Reason.CONTAINER, C1)

    def test_duplicate_id(self):
        """The same Id twice anywhere in the package is CONTAINER (signature references)."""
        data = doc(b.inline(PAYLOAD, "x"), b.inline(PDF, "x"))
        assert_rejected(data, Reason.CONTAINER, "ContentPackage//@Id")

    @pytest.mark.parametrize("ident", ["1abc", "a b", "a/b", "x" * 129, "\u00e4"])
    def test_id_format(self, ident):
        """Ids must be ASCII NCNames of bounded length."""
        data = doc(b.inline(PAYLOAD), b.inline(PDF, ident))
        assert_rejected(data, Reason.CONTAINER, f"{C1}/Content[2]/@Id")

    def test_id_shared_with_the_soap_header(self):
        """An Id in the SOAP header equal to a container's is CONTAINER (signature wrapping)."""
        root = b.soap(b.package(b.container(b.inline(PAYLOAD, "payload"))))
        root[0].set("Id", "cc1")
        assert_rejected(b.xml(root), Reason.CONTAINER, "Envelope//@Id")

    def test_unknown_attribute(self):
        """Attributes other than Id/href on a Content are CONTAINER."""
        content = b.inline(PDF, "a")
        content.set("Mustermann", "1")
        assert_rejected(doc(b.inline(PAYLOAD), content), Reason.CONTAINER, f"{C1}/Content[2]/@*")

    def test_empty_content_and_container(self):
        """A Content without data and a container without Contents are CONTAINER."""
        empty = b.reference("a", "c2")
        del empty.attrib["href"]
        assert_rejected(doc(b.inline(PAYLOAD), empty), Reason.CONTAINER, f"{C1}/Content[2]")
        assert_rejected(doc(), Reason.CONTAINER, C1)

    def test_wrong_root(self):
        """A document that is neither a ContentPackage nor a SOAP envelope is CONTAINER at /."""
        assert_rejected(PAYLOAD, Reason.CONTAINER, "/")

    def test_package_without_containers(self):
        """A ContentPackage with no container is CONTAINER."""
        assert_rejected(b.xml(b.package()), Reason.CONTAINER, "ContentPackage")

    def test_soap_body_with_more_than_the_package(self):
        """The SOAP Body must hold the ContentPackage and nothing else."""
        root = b.soap(b.package(b.container(b.inline(PAYLOAD))))
        root[1].append(b.package(b.container(b.inline(PAYLOAD), ident="cc2")))
        assert_rejected(b.xml(root), Reason.CONTAINER, "Envelope/Body")

    def test_too_many_contents(self):
        """More Content elements than max_contents is CONTAINER at the first one too many."""
        data = doc(b.inline(PAYLOAD), *(b.inline(PDF, f"a{i}") for i in range(3)))
        assert_rejected(
            data, Reason.CONTAINER, f"{C1}/Content[3]", limits=OsciLimits(max_contents=2)
        )

    def test_hardened_parse_applies(self):
        """The package document goes through xmlsafe: a DOCTYPE is DOCTYPE."""
        data = (
            b'<!DOCTYPE x [<!ENTITY e "Mustermann">]>' + doc(b.inline(PAYLOAD)).split(b"?>", 1)[1]
        )
        assert_rejected(data, Reason.DOCTYPE, None)

    def test_input_gate(self):
        """str input, gzip and oversize input are refused before any parsing."""
        assert_rejected("<x/>", Reason.WELLFORMED, None)  # type: ignore[arg-type]
        assert_rejected(b"\x1f\x8b\x08\x00rest", Reason.COMPRESSED, None)
        assert_rejected(
            b.inline_package(), Reason.SIZE, None, limits=OsciLimits(max_message_bytes=100)
        )


# --- MIME bounds ---------------------------------------------------------------------------------


def nested_multipart(levels: int) -> bytes:
    inner = b"Content-Type: text/plain\r\n\r\nx"
    for level in range(levels):
        boundary = b"n%d" % level
        inner = (
            b"Content-Type: multipart/mixed; boundary="
            + boundary
            + b"\r\n\r\n--"
            + boundary
            + b"\r\n"
            + inner
            + b"\r\n--"
            + boundary
            + b"--"
        )
    return inner


class TestMimeBounds:
    def test_too_many_parts(self):
        """More delimiter lines than max_parts is CONTAINER before the parser runs."""
        parts = [MimePart(f"a{i}", PDF, "application/pdf") for i in range(4)]
        data = mime_with([b.inline(PAYLOAD)], parts)
        assert_rejected(data, Reason.CONTAINER, "mime/parts", limits=OsciLimits(max_parts=4))

    def test_fifty_thousand_parts_are_refused_quickly(self):
        """A flood of parts is refused by counting, in bounded time (the parser took seconds)."""
        data = b.mime(
            [b.root_part(doc(b.inline(PAYLOAD)))]
            + [MimePart(f"a{i}", b"x", None, None) for i in range(50_000)]
        )
        started = time.perf_counter()
        assert_rejected(data, Reason.CONTAINER, "mime/parts")
        assert time.perf_counter() - started < 1.0

    def test_too_many_line_breaks(self):
        """A body of line breaks (the parser works line by line) is refused by counting them."""
        part = MimePart("a", b"%PDF-" + b"\n" * 600_000, "application/pdf")
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        started = time.perf_counter()
        assert_rejected(data, Reason.CONTAINER, "mime/lines")
        assert time.perf_counter() - started < 1.0

    def test_nested_multipart_part(self):
        """A part that is itself multipart is CONTAINER at its Content-Type."""
        part = MimePart(
            "a",
            b"--n0\r\nContent-Type: text/plain\r\n\r\nx\r\n--n0--",
            "multipart/mixed; boundary=n0",
        )
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        assert_rejected(data, Reason.CONTAINER, "mime/part[2]/Content-Type")

    def test_deeply_nested_multipart_is_refused_quickly(self):
        """A thousand nested multiparts (RecursionError in the parser) never reach the parser."""
        data = mime_with([b.inline(PAYLOAD)], []).replace(
            b"--MIME_boundary--",
            b"--MIME_boundary\r\n" + nested_multipart(1000) + b"\r\n--MIME_boundary--",
        )
        started = time.perf_counter()
        assert_rejected(data, Reason.CONTAINER, "mime/part[2]/Content-Type")
        assert time.perf_counter() - started < 1.0

    def test_message_part(self):
        """An encapsulated message/rfc822 part is CONTAINER as well."""
        part = MimePart("a", b"Subject: x\r\n\r\nbody", "message/rfc822")
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        assert_rejected(data, Reason.CONTAINER, "mime/part[2]/Content-Type")

    @pytest.mark.parametrize(
        "content_type",
        ["text/xml", "multipart/mixed; boundary=MIME_boundary", "application/octet-stream"],
    )
    def test_not_multipart_related(self, content_type):
        """A MIME message that is not multipart/related is CONTAINER at its Content-Type."""
        data = mime_with([b.inline(PAYLOAD)], [], content_type=content_type)
        assert_rejected(data, Reason.CONTAINER, "mime/Content-Type")

    @pytest.mark.parametrize(
        "content_type",
        [
            "multipart/related",
            'multipart/related; boundary=""',
            "multipart/related; boundary=" + "b" * 71,
        ],
        ids=["missing", "empty", "too-long"],
    )
    def test_bad_boundary(self, content_type):
        """A missing or invalid boundary parameter is CONTAINER."""
        data = mime_with([b.inline(PAYLOAD)], [], content_type=content_type)
        assert_rejected(data, Reason.CONTAINER, "mime/Content-Type/boundary")

    def test_start_names_no_part(self):
        """A start parameter that names no part is CONTAINER."""
        data = mime_with([b.inline(PAYLOAD)], [], start="<nowhere>")
        assert_rejected(data, Reason.CONTAINER, "mime/Content-Type/start")

    def test_missing_close_delimiter(self):
        """A truncated message without its close delimiter is CONTAINER."""
        data = mime_with([b.inline(PAYLOAD)], [], close=False)
        assert_rejected(data, Reason.CONTAINER, "mime/parts")

    def test_no_header_block(self):
        """Garbage without a header block, or headers longer than the limit, is CONTAINER."""
        assert_rejected(b"just some bytes", Reason.CONTAINER, "mime/headers")
        data = (
            b"X-Filler: "
            + b"a" * 20_000
            + b"\r\n"
            + mime_with([b.inline(PAYLOAD)], [], leading_newline=False)
        )
        assert_rejected(data, Reason.CONTAINER, "mime/headers")

    def test_two_content_ids_in_one_part(self):
        """A structural header twice in one part is CONTAINER at that header."""
        part = MimePart("a", PDF, "application/pdf", headers=(("Content-ID", "<b>"),))
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        assert_rejected(data, Reason.CONTAINER, "mime/part[2]/Content-ID")

    @pytest.mark.parametrize("encoding", ["quoted-printable", "x-uuencode", "gzip"])
    def test_unsupported_transfer_encoding(self, encoding):
        """Only 7bit, 8bit, 8-bit, binary and base64 are accepted."""
        part = MimePart("a", PDF, "application/pdf", encoding)
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        assert_rejected(data, Reason.CONTAINER, "mime/part[2]/Content-Transfer-Encoding")

    def test_bad_base64_part(self):
        """A base64 part that is not canonical base64 is CONTAINER."""
        part = MimePart("a", PDF, "application/pdf", "7bit", headers=())
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        data = data.replace(
            b"Content-Transfer-Encoding: 7bit", b"Content-Transfer-Encoding: base64"
        )
        assert_rejected(data, Reason.CONTAINER, "mime/part[2]/base64")

    def test_root_part_must_be_xml(self):
        """The root part must be typed as XML and UTF-8."""
        document = doc(b.inline(PAYLOAD))
        root = dataclasses.replace(b.root_part(document), content_type="text/plain")
        assert_rejected(b.mime([root]), Reason.CONTAINER, "mime/part[1]/Content-Type")
        root = dataclasses.replace(
            b.root_part(document), content_type="text/xml; charset=ISO-8859-1"
        )
        assert_rejected(b.mime([root]), Reason.ENCODING, "mime/part[1]/Content-Type")

    def test_root_part_parse_errors_name_the_part(self):
        """A root part the hardened parser refuses keeps the parser's reason, with the part's path."""
        root = b.root_part(b"<osci:ContentPackage")
        assert_rejected(b.mime([root]), Reason.WELLFORMED, "mime/part[1]")


# --- attachments ---------------------------------------------------------------------------------


class TestAttachments:
    def test_type_not_allowed(self):
        """A declared media type outside the policy is ATTACHMENT at contentType."""
        part = MimePart("a", b"PK\x03\x04zip", "application/zip", filename="x.zip")
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        assert_rejected(data, Reason.ATTACHMENT, f"{C1}/Content[2]/contentType")

    def test_unknown_inline_binary(self):
        """Inline bytes of no known type are application/octet-stream: refused by default."""
        data = doc(b.inline(PAYLOAD), b.inline(b"\x00\x01binary", "blob"))
        assert_rejected(data, Reason.ATTACHMENT, f"{C1}/Content[2]/contentType")

    def test_unknown_binary_allowed_by_policy(self):
        """A policy that allows application/octet-stream accepts unknown binaries."""
        policy = AttachmentPolicy(media_types=frozenset({"application/octet-stream"}))
        data = doc(b.inline(PAYLOAD), b.inline(b"\x00\x01binary", "blob"))
        expected = [("blob.bin", "application/octet-stream")]
        attachments = unwrap(data, attachments=policy).attachments
        assert expected == [(a.filename, a.content_type) for a in attachments]

    def test_declared_type_contradicted_by_bytes(self):
        """A part declared image/png whose bytes are a PDF is ATTACHMENT at contentType."""
        part = MimePart("a", PDF, "image/png", filename="bild.png")
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        assert_rejected(data, Reason.ATTACHMENT, f"{C1}/Content[2]/contentType")

    def test_generic_declared_type_is_sniffed(self):
        """application/octet-stream (the OSCI library's default) is refined from the bytes."""
        part = MimePart("a", PDF, "application/octet-stream")
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        expected = [("c2.pdf", "application/pdf")]
        assert expected == [(a.filename, a.content_type) for a in unwrap(data).attachments]

    @pytest.mark.parametrize(
        "filename",
        [
            "../../etc/passwd",
            "..\\..\\boot.ini",
            ".htaccess",
            "a:b.pdf",
            "a|b.pdf",
            "rechnung\u202efdp.exe",
        ],
        ids=["traversal", "backslash", "dotfile", "colon", "pipe", "bidi"],
    )
    def test_bad_filename(self, filename):
        """File names must be names, not paths, and carry no bidi or control characters."""
        part = MimePart("a", PDF, "application/pdf", filename=filename)
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        rejection = assert_rejected(data, Reason.ATTACHMENT, f"{C1}/Content[2]/filename")
        assert filename not in str(rejection)

    def test_oversize_part(self):
        """A part above the policy's max_bytes is ATTACHMENT at size."""
        part = MimePart("a", PDF * 100, "application/pdf")
        data = mime_with([b.inline(PAYLOAD), b.reference("a", "c2")], [part])
        policy = AttachmentPolicy(max_bytes=len(PDF) * 10)
        assert_rejected(data, Reason.ATTACHMENT, f"{C1}/Content[2]/size", attachments=policy)

    def test_too_many_attachments(self):
        """More attachments than the policy's max_count is ATTACHMENT at count."""
        data = doc(b.inline(PAYLOAD), *(b.inline(PDF, f"a{i}") for i in range(3)))
        assert_rejected(data, Reason.ATTACHMENT, "count", attachments=AttachmentPolicy(max_count=2))

    def test_payload_filename(self):
        """The payload part's file name is kept when it is a safe name, refused otherwise."""
        parts = [MimePart("p", PAYLOAD, "application/xml", filename="antrag.xml")]
        data = mime_with([b.reference("p", "c1")], parts)
        expected = "antrag.xml"
        assert expected == unwrap(data).payload_filename
        parts = [MimePart("p", PAYLOAD, "application/xml", filename="../antrag.xml")]
        data = mime_with([b.reference("p", "c1")], parts)
        assert_rejected(data, Reason.CONTAINER, "mime/part[2]/Content-Disposition")


# --- signatures ----------------------------------------------------------------------------------


def signed_tree(author, placement: str):
    root = b.package(b.container(b.inline(PAYLOAD, "payload"), b.inline(PDF, "att1")))
    if placement == "package":
        return b.sign_package(root, "cc1", author)
    return b.sign_container(root, root[0], author)


class TestSignatures:
    @pytest.mark.parametrize("placement", ["package", "container"])
    def test_signed_container_is_reported(self, author, placement):
        """A signature in the package (naming #cc1) or in the container reports cc1 as signed."""
        unpacked = unpack(b.xml(signed_tree(author, placement)))
        expected = (("cc1",), 1, ("cc1",))
        actual = (
            unpacked.signed_container_ids,
            len(unpacked.signatures),
            unpacked.payload_container_ids,
        )
        assert expected == actual

    @pytest.mark.parametrize(("placement", "references"), [("package", 1), ("container", 2)])
    def test_reported_signature_verifies(self, author, placement, references):
        """The reported ds:Signature is the real one: signxml verifies it in the returned package."""
        unpacked = unpack(b.xml(signed_tree(author, placement)))
        results = XMLVerifier().verify(
            unpacked.package, x509_cert=author.certificate, expect_references=references
        )
        signed = results if isinstance(results, list) else [results]
        expected = [True] * references
        assert expected == [r.signed_xml is not None for r in signed]

    def test_signature_references_are_reported(self, author):
        """Each site names its location, container and reference URIs."""
        site = unpack(b.xml(signed_tree(author, "container"))).signature_sites[0]
        expected = (f"{C1}/Signature[1]", "cc1", ("#payload", "#att1"))
        assert expected == (site.path, site.container_id, site.references)

    def test_unsigned(self):
        """Without signatures nothing is reported as signed."""
        unpacked = unpack(b.inline_package())
        expected = ((), ())
        assert expected == (unpacked.signatures, unpacked.signed_container_ids)

    def test_package_signature_naming_no_container(self, author):
        """A package-level signature over a Content (not a container) signs no container."""
        root = b.package(b.container(b.inline(PAYLOAD, "payload")))
        root.insert(0, b.detached_signature(root, ["#payload"], author))
        expected = ((), 1)
        unpacked = unpack(b.xml(root))
        assert expected == (unpacked.signed_container_ids, len(unpacked.signatures))

    def test_signed_container_needs_an_id(self, author):
        """A signature inside a container without Id cannot be attributed: CONTAINER at its @Id."""
        tree = signed_tree(author, "container")
        del tree[0].attrib["Id"]
        assert_rejected(b.xml(tree), Reason.CONTAINER, f"{C1}/@Id")

    def test_too_many_signatures(self, author):
        """More signatures than max_signatures is CONTAINER."""
        tree = signed_tree(author, "package")
        limits = OsciLimits(max_signatures=0)
        assert_rejected(b.xml(tree), Reason.CONTAINER, "ContentPackage/Signature[1]", limits=limits)


# --- encryption ----------------------------------------------------------------------------------


def secret_container(ident: str = "secret"):
    return b.container(b.inline(PAYLOAD, "payload"), b.inline(PDF, "att1"), ident=ident)


class TestEncrypted:
    def test_without_key(self, reader):
        """An encrypted container and no configured key: ENCRYPTED at the EncryptedData."""
        data = b.xml(b.package(b.encrypt(secret_container(), reader.public_key())))
        assert_rejected(data, Reason.ENCRYPTED, "ContentPackage/EncryptedData[1]")

    @pytest.mark.parametrize(
        ("algorithm", "transport", "iv_length"),
        [
            ("aes256-gcm", "rsa-oaep", 12),
            ("aes128-gcm", "rsa-oaep-mgf1p", 12),
            ("aes256-gcm", "rsa-oaep", 16),
            ("aes256-cbc", "rsa-oaep", 16),
            ("aes192-cbc", "rsa-oaep-mgf1p", 16),
        ],
    )
    def test_decrypts_with_the_key(self, reader, algorithm, transport, iv_length):
        """With the Reader's key the container is decrypted and unpacked like a plain one."""
        encrypted = b.encrypt(
            secret_container(),
            reader.public_key(),
            algorithm=algorithm,
            transport=transport,
            iv_length=iv_length,
        )
        unpacked = unpack(b.xml(b.package(encrypted)), decryption_keys={"reader": reader})
        expected = (PAYLOAD, ["att1.pdf"], ("secret",), ["secret"])
        actual = (
            unpacked.envelope.payload,
            [a.filename for a in unpacked.envelope.attachments],
            unpacked.payload_container_ids,
            list(unpacked.containers),
        )
        assert expected == actual

    def test_named_key_among_several(self, reader, other_reader):
        """The key named by ds:KeyName is used; unnamed keys are tried when no name matches."""
        encrypted = b.encrypt(secret_container(), reader.public_key(), key_name="amt-b")
        data = b.xml(b.package(encrypted))
        keys = {"amt-a": other_reader, "amt-b": reader}
        expected = PAYLOAD
        assert expected == unwrap(data, decryption_keys=keys).payload
        unnamed = b.xml(
            b.package(b.encrypt(secret_container(), reader.public_key(), key_name=None))
        )
        assert expected == unwrap(unnamed, decryption_keys=keys).payload

    def test_wrong_key(self, reader, other_reader):
        """A configured key that does not open the content key is DECRYPT."""
        data = b.xml(b.package(b.encrypt(secret_container(), reader.public_key())))
        path = "ContentPackage/EncryptedData[1]/KeyInfo/EncryptedKey"
        assert_rejected(data, Reason.DECRYPT, path, decryption_keys={"reader": other_reader})

    @pytest.mark.parametrize("where", ["first", "last"])
    def test_tampered_gcm(self, reader, where):
        """AES-GCM authenticates: any changed byte, IV or tag, is DECRYPT."""
        encrypted = b.encrypt(secret_container(), reader.public_key(), tamper=where)
        path = "ContentPackage/EncryptedData[1]/CipherData"
        data = b.xml(b.package(encrypted))
        assert_rejected(data, Reason.DECRYPT, path, decryption_keys={"reader": reader})

    def test_tampered_cbc_is_caught_by_the_parse_only(self, reader):
        """AES-CBC does not authenticate: a flipped IV bit turns '<' into '=', which xmlsafe refuses.

        It is DECRYPT like bad padding, so the answer never tells a sender which of the two
        its tampering caused (no oracle on the plaintext).
        """
        encrypted = b.encrypt(
            secret_container(), reader.public_key(), algorithm="aes256-cbc", tamper="first"
        )
        data = b.xml(b.package(encrypted))
        path = "ContentPackage/EncryptedData[1]"
        assert_rejected(data, Reason.DECRYPT, path, decryption_keys={"reader": reader})

    @pytest.mark.parametrize(
        ("algorithm", "transport"), [("tripledes-cbc", "rsa-oaep"), ("aes256-gcm", "rsa-1_5")]
    )
    def test_unsupported_algorithms(self, reader, algorithm, transport):
        """Triple-DES and RSA PKCS#1 v1.5 are not supported: DECRYPT."""
        encrypted = b.encrypt(
            secret_container(), reader.public_key(), algorithm=algorithm, transport=transport
        )
        rejection = rejected(b.xml(b.package(encrypted)), decryption_keys={"reader": reader})
        expected = Reason.DECRYPT
        assert expected == rejection.reason

    def test_encrypted_content_beside_plain_ones(self, reader):
        """An EncryptedData in a container may hold one Content; it joins that container."""
        encrypted = b.encrypt(b.inline(PDF, "att1"), reader.public_key())
        unpacked = unpack(
            doc(b.inline(PAYLOAD, "payload"), encrypted), decryption_keys={"reader": reader}
        )
        expected = (PAYLOAD, ["att1.pdf"], ("cc1",))
        actual = (
            unpacked.envelope.payload,
            [a.filename for a in unpacked.envelope.attachments],
            unpacked.payload_container_ids,
        )
        assert expected == actual

    def test_encrypted_content_at_max_depth(self, reader):
        """An encrypted Content in a container at max_depth stays at that depth: accepted."""
        encrypted = b.encrypt(b.inline(PDF, "att1"), reader.public_key())
        data = doc(b.inline(PAYLOAD, "payload"), encrypted)
        expected = ["att1.pdf"]
        attachments = unwrap(data, max_depth=1, decryption_keys={"reader": reader}).attachments
        assert expected == [a.filename for a in attachments]

    def test_encrypted_nested_container(self, reader):
        """An EncryptedData inside a Content is a nested container, one level deeper."""
        encrypted = b.encrypt(secret_container(), reader.public_key())
        unpacked = unpack(doc(b.nested(encrypted, "n1")), decryption_keys={"reader": reader})
        expected = (PAYLOAD, ("secret", "cc1"))
        assert expected == (unpacked.envelope.payload, unpacked.payload_container_ids)

    def test_attachment_reference_inside_encrypted_container(self, reader):
        """cid: references from inside an encrypted container (encrypted attachments): DECRYPT."""
        inner = b.container(b.inline(PAYLOAD, "payload"), b.reference("a", "c2"), ident="secret")
        document = b.xml(b.package(b.encrypt(inner, reader.public_key())))
        data = b.mime([b.root_part(document), MimePart("a", PDF, "application/pdf")])
        path = "ContentPackage/EncryptedData[1]/ContentContainer/Content[2]/@href"
        assert_rejected(data, Reason.DECRYPT, path, decryption_keys={"reader": reader})

    def test_signature_inside_encrypted_container(self, reader, author):
        """A container signed and then encrypted reports its signature after decryption."""
        root = signed_tree(author, "container")
        signed = root[0]
        root.remove(signed)
        data = b.xml(b.package(b.encrypt(signed, reader.public_key())))
        unpacked = unpack(data, decryption_keys={"reader": reader})
        expected = (("cc1",), 1)
        assert expected == (unpacked.signed_container_ids, len(unpacked.signatures))

    @pytest.mark.parametrize(
        ("plaintext", "reason"),
        [
            (b'<!DOCTYPE x [<!ENTITY e "Mustermann">]><x>&e;</x>', Reason.DECRYPT),
            (b"<x>Mustermann</x>", Reason.DECRYPT),
            (b"Mustermann", Reason.DECRYPT),
        ],
        ids=["doctype", "not-a-container", "not-xml"],
    )
    def test_decrypted_bytes_are_parsed_safely(self, reader, plaintext, reason):
        """Decrypted bytes go through xmlsafe and must be a ContentContainer, else DECRYPT (one
        code, whatever is wrong with the plaintext); no value leaks."""
        encrypted = b.encrypt(plaintext, reader.public_key())
        data = b.xml(b.package(encrypted))
        path = "ContentPackage/EncryptedData[1]"
        rejection = assert_rejected(data, reason, path, decryption_keys={"reader": reader})
        assert MARKER not in str(rejection)

    def test_too_many_encrypted(self, reader):
        """More EncryptedData than max_encrypted is CONTAINER, before any RSA operation."""
        encrypted = b.encrypt(secret_container(), reader.public_key())
        limits = OsciLimits(max_encrypted=0)
        path = "ContentPackage/EncryptedData[1]"
        assert_rejected(
            b.xml(b.package(encrypted)),
            Reason.CONTAINER,
            path,
            limits=limits,
            decryption_keys={"reader": reader},
        )


# --- no values in rejections, and nothing but rejections ----------------------------------------

_SEGMENT = re.compile(
    r"(ContentPackage|ContentContainer|Content|Base64Content|Signature|EncryptedData|KeyInfo|EncryptedKey"
    r"|EncryptionMethod|CipherData|CipherValue|CipherReference|payload|mime|part|parts|lines|headers|Content-Type"
    r"|Content-ID|Content-Transfer-Encoding|Content-Disposition|base64|boundary|start|filename"
    r"|contentType|size|count|Envelope|Body|\*|@Id|@RefID|@href|@\*|@Algorithm)?(\[\d+\])?"
)


def assert_safe(rejection: Rejection) -> None:
    """A rejection's path is made of fixed names and positions only."""
    if rejection.path is not None:
        segments = rejection.path.split("/")
        assert all(_SEGMENT.fullmatch(segment) for segment in segments), rejection.path
    assert MARKER not in str(rejection)
    assert MARKER not in repr(rejection)


class TestNoValues:
    @pytest.mark.parametrize(
        "data",
        [
            doc(b.inline(PAYLOAD, "Mustermann"), b.inline(PAYLOAD, "MustermannZwei")),
            doc(b.inline(PAYLOAD), b.inline(b"", "Mustermann", text="Mustermann!")),
            doc(b.inline(PAYLOAD), b.reference("Mustermann", "Mustermann")),
            mime_with(
                [b.inline(PAYLOAD)],
                [MimePart("Mustermann", PDF, "application/pdf", filename="Mustermann.pdf")],
            ),
            mime_with(
                [b.inline(PAYLOAD), b.reference("a", "c2")],
                [MimePart("a", PDF, "application/pdf", filename="../Mustermann.pdf")],
            ),
            b"Content-Type: text/Mustermann\r\n\r\nMustermann",
        ],
        ids=["ambiguous", "base64", "dangling", "unreferenced", "filename", "not-multipart"],
    )
    def test_rejection_names_no_value(self, data):
        """Ids, Content-IDs, file names and payload text never appear in a rejection."""
        assert_safe(rejected(data))


def _mutate(data: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    for position, length, insert in edits:
        at = position % (len(data) + 1)
        data = data[:at] + insert + data[at + length % 8 :]
    return data


def _samples() -> list[bytes]:
    encrypted_key = b.reader_key()
    return [
        b.inline_package(),
        b.mime_package(),
        b.nested_package(3),
        b.xml(b.package(b.encrypt(secret_container(), encrypted_key.public_key()))),
    ]


SAMPLES = _samples()
SAMPLE_KEY = {"reader": b.reader_key()}  # opens none of them: DECRYPT paths get exercised
CHUNKS = st.sampled_from(
    [
        b"",
        b"<",
        b">",
        b"--MIME_boundary",
        b"--MIME_boundary--",
        b"\r\n",
        b"\r\n\r\n",
        b"cid:",
        b'href="cid:a"',
        b"Content-Type: multipart/mixed; boundary=x\r\n",
        b"Content-ID: <a>\r\n",
        b"<osci:Content>",
        b"</osci:Content>",
        b"=",
        b"\x00",
        b"\xff",
        b"&amp;",
        b"<!--",
        b'Id="cc1"',
    ]
)


class TestProperties:
    @hypothesis.settings(max_examples=150, deadline=None)
    @given(data=st.binary(max_size=2048))
    def test_random_bytes(self, data):
        """Random bytes end in a Rejection (or, improbably, an envelope), never another exception."""
        try:
            result = unpack(data)
        except Rejection as rejection:
            assert_safe(rejection)
        else:
            assert isinstance(result, OsciUnpacked)

    @hypothesis.settings(
        max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        sample=st.sampled_from(range(len(SAMPLES))),
        edits=st.lists(
            st.tuples(
                st.integers(0, 10**6), st.integers(0, 16), st.one_of(CHUNKS, st.binary(max_size=8))
            ),
            min_size=1,
            max_size=4,
        ),
        keyed=st.booleans(),
    )
    def test_mutated_packages(self, sample, edits, keyed):
        """Mutated XML and MIME packages end in a Rejection with a value-free path, or unpack."""
        data = _mutate(SAMPLES[sample], edits)
        try:
            result = unpack(data, decryption_keys=SAMPLE_KEY if keyed else None)
        except Rejection as rejection:
            assert_safe(rejection)
        else:
            assert isinstance(result.envelope, Envelope)

    @hypothesis.settings(
        max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )
    @given(
        parts=st.lists(
            st.builds(
                MimePart,
                content_id=st.one_of(st.none(), st.text(max_size=12)),
                data=st.one_of(st.binary(max_size=64), st.sampled_from([PAYLOAD, PDF, PNG])),
                content_type=st.one_of(
                    st.none(),
                    st.sampled_from(["text/xml", "application/pdf", "multipart/mixed"]),
                    st.text(max_size=20),
                ),
                transfer_encoding=st.one_of(
                    st.none(), st.sampled_from(["base64", "binary", "7bit"]), st.text(max_size=8)
                ),
                filename=st.one_of(st.none(), st.text(max_size=12)),
            ),
            max_size=5,
        ),
        references=st.lists(st.text(max_size=12), max_size=4),
    )
    def test_generated_mime(self, parts, references):
        """MIME messages with arbitrary part headers and references end in a Rejection or unpack."""
        contents = [b.inline(PAYLOAD)] + [
            b.reference(cid) for cid in references if cid.isprintable()
        ]
        try:
            data = mime_with(contents, parts)
        except ValueError:  # lxml refuses some generated attribute values; nothing to test then
            return
        try:
            unpack(data)
        except Rejection as rejection:
            assert_safe(rejection)
