"""Small byte-level helpers shared by the transport unwrappers. Pure."""

from __future__ import annotations

import base64
import binascii
import re

_WHITESPACE = re.compile(rb"[ \t\r\n]+")
_UTF8_BOM = b"\xef\xbb\xbf"
_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
XML_MEDIA_TYPES = frozenset({"application/xml", "text/xml"})


def b64decode_strict(text: str | bytes) -> bytes | None:
    """Decode base64 as XML Schema and MIME write it, or ``None`` if it is not exactly that.

    Whitespace (space, tab, CR, LF) between characters is allowed; anything outside
    the base64 alphabet, wrong padding and non-zero padding bits are not, so every
    input has exactly one accepted spelling per decoded value.
    """
    if isinstance(text, str):
        if not text.isascii():
            return None
        text = text.encode("ascii")
    compact = _WHITESPACE.sub(b"", text)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(data) != compact:
        return None  # non-canonical: padding bits set
    return data


def looks_like_xml(data: bytes) -> bool:
    """True when the bytes start like an XML document: optional UTF-8 BOM, whitespace, ``<``."""
    return data.removeprefix(_UTF8_BOM).lstrip(b" \t\r\n").startswith(b"<")


def sniff_media_type(data: bytes) -> str | None:
    """The media type the first bytes prove (PDF, JPEG, PNG, TIFF, XML), or ``None``."""
    for magic, media in _MAGIC:
        if data.startswith(magic):
            return media
    if looks_like_xml(data):
        return "application/xml"
    return None


def is_xml_media_type(media: str) -> bool:
    return media in XML_MEDIA_TYPES or media.endswith("+xml")
