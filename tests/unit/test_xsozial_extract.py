"""XSozial-basis 2.4.0 extraction: third parties, documents (allow-list, magic bytes, size, count)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.payloads import PayloadRegistry, validate
from hub.testing import DocumentSpec, SubmissionSpec, ThirdPartySpec, make_submission


def _extract(payloads: PayloadRegistry, spec: SubmissionSpec):  # type: ignore[no-untyped-def]
    root = xmlsafe.parse(make_submission(spec))
    payload_type = payloads.identify(root)
    validate(root, payload_type)
    return payload_type.extract(root)


def test_third_parties_keep_role_code_list_and_contact(payloads: PayloadRegistry) -> None:
    submission = _extract(payloads, SubmissionSpec(third_parties=(ThirdPartySpec(),)))
    (school,) = submission.third_parties
    assert school.role.code == "schule"
    assert school.role.list_uri == "urn:xoev-de:xsozial:codeliste:drittenrolle"
    assert school.role.list_version == "1.0"
    assert school.name == "Grundschule am Stadtgarten"
    assert school.address is not None
    assert school.address.town == "Marl"
    assert school.email == "sekretariat@schule.example"


def test_document_digest_and_size_are_of_the_decoded_bytes(payloads: PayloadRegistry) -> None:
    content = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    spec = SubmissionSpec(
        documents=(DocumentSpec(mime_type="image/png", content=content, file_name="a.png"),)
    )
    (document,) = _extract(payloads, spec).documents
    assert document.size == len(content)
    assert document.sha256 == hashlib.sha256(content).hexdigest()
    assert document.mime_type == "image/png"
    assert base64.b64decode(document.content_b64) == content


@pytest.mark.parametrize(
    ("mime", "content", "path"),
    [
        ("text/html", b"<html>Erika</html>", "xsozial/dokument[1]/mimeType"),
        ("image/svg+xml", b"<svg/>", "xsozial/dokument[1]/mimeType"),
        ("application/pdf", b"MZ\x90\x00 not a pdf", "xsozial/dokument[1]/content"),
        ("image/jpeg", b"%PDF-1.7 pretending", "xsozial/dokument[1]/content"),
        ("application/pdf", b"", "xsozial/dokument[1]/size"),
        ("application/pdf", b"%PDF-" + b"x" * (2 * 1024 * 1024), "xsozial/dokument[1]/size"),
    ],
)
def test_documents_outside_the_policy_are_rejected_by_position(
    payloads: PayloadRegistry, mime: str, content: bytes, path: str
) -> None:
    spec = SubmissionSpec(documents=(DocumentSpec(mime_type=mime, content=content),))
    with pytest.raises(Rejection) as caught:
        _extract(payloads, spec)
    assert caught.value.reason is Reason.ATTACHMENT
    assert caught.value.path == path
    assert "Erika" not in str(caught.value)
