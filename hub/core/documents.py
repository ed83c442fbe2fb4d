"""Documents inside a payload (proofs, scans): allow-listed media types, bounded size, checked magic.

A declared MIME type is a claim; the first bytes must agree with it, so a
"PDF" that is really an HTML page or an executable never reaches a
Fachverfahren. Rejections name the document's position, never its content.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.core.errors import Reason, Rejection

# media type -> accepted leading bytes
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/tiff": (b"II*\x00", b"MM\x00*"),
}


@dataclass(frozen=True, slots=True)
class DocumentPolicy:
    media_types: frozenset[str] = frozenset(_MAGIC)
    max_bytes: int = 2 * 1024 * 1024
    max_count: int = 50  # XSozial-basis allows 50 documents per submission


DEFAULT_DOCUMENTS = DocumentPolicy()


def check_document(
    content: bytes, mime_type: str, where: str, policy: DocumentPolicy = DEFAULT_DOCUMENTS
) -> str:
    """The normalised media type of an acceptable document, else ``ATTACHMENT`` at ``where``."""
    media = mime_type.split(";", 1)[0].strip().lower()
    if media not in policy.media_types or media not in _MAGIC:
        raise Rejection(Reason.ATTACHMENT, f"{where}/mimeType")
    if not content or len(content) > policy.max_bytes:
        raise Rejection(Reason.ATTACHMENT, f"{where}/size")
    if not content.startswith(_MAGIC[media]):
        raise Rejection(Reason.ATTACHMENT, f"{where}/content")
    return media


_EXTENSIONS = {
    "application/pdf": "pdf",
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/tiff": "tif",
    "application/xml": "xml",
    "text/xml": "xml",
}


def beside_file_name(delivery_id: str, index: int, media_type: str) -> str:
    """The file a document travels in next to its delivery record: ``<delivery id>.d<nn>.<ext>``.

    Built from the delivery id, the document's position (1-based) and its media
    type only, never from a portal-supplied file name, so it is always a safe name.
    """
    extension = _EXTENSIONS.get(media_type.split(";", 1)[0].strip().lower(), "bin")
    return f"{delivery_id}.d{index:02d}.{extension}"
