"""Transport containers around a submission: the shape every inbound transport unwraps to.

A portal's submission arrives inside a transport container: an XTA 2 message
(``MessageMetaData`` + ``GenericContentContainer``), an OSCI 1.2 content
package, a FIT-Connect submission (JWE metadata, data and attachments), or a
bare payload file. Each transport module turns the bytes the connector
received into one :class:`Envelope`: who sent it to whom (transport
metadata, never read from the payload), the one business document (the
payload) and its checked attachments. Unwrapping is pure: keys and limits
are passed in, nothing is fetched or read.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.core.errors import Reason, Rejection

TRANSPORTS = ("xta2", "osci", "fitconnect", "file")


@dataclass(frozen=True, slots=True)
class Attachment:
    """One attachment after its checks: declared name, type and size agree with the bytes."""

    filename: str
    content_type: str
    size: int
    sha256: str
    data: bytes = field(repr=False)
    attachment_id: str | None = None  # transport-level id (XTA/OSCI content id, FIT-Connect UUID)


@dataclass(frozen=True, slots=True)
class Envelope:
    """The transport's view of a submission: metadata, the payload, attachments.

    ``author``/``reader`` are the transport's authenticated sender and
    addressee (DVDV keys for XTA/OSCI, the FIT-Connect destination id as
    reader); ``message_id`` is the transport message id used for replay
    detection (``urn:de:xta:messageid:…``, the FIT-Connect submission id).
    """

    transport: str
    payload: bytes = field(repr=False)
    payload_content_type: str = "application/xml"
    message_id: str | None = None
    author: str | None = None
    reader: str | None = None
    service: str | None = None
    business_scenario: str | None = None
    payload_filename: str | None = None
    attachments: tuple[Attachment, ...] = ()
    signer: str | None = None  # subject of a verified author signature on the container
    case_id: str | None = None  # FIT-Connect case id
    # The schema the transport says the payload follows (XTA payloadSchema, FIT-Connect
    # submissionSchema.schemaUri); the pipeline checks it against the payload it reads.
    payload_schema: str | None = None
    # What the transport unpacked around the payload, for the checks the pipeline makes by the
    # portal's policy: an OSCI package's containers and signatures (osci.OsciUnpacked, set by
    # hub.core.transport.registry); None for the other transports.
    unpacked: Any = field(default=None, repr=False, compare=False)

    @property
    def payload_sha256(self) -> str:
        return hashlib.sha256(self.payload).hexdigest()


@dataclass(frozen=True, slots=True)
class AttachmentPolicy:
    """What an attachment may be: allow-listed media types, a size cap, a count cap, safe names."""

    media_types: frozenset[str] = frozenset(
        {"application/pdf", "image/jpeg", "image/png", "image/tiff", "application/xml", "text/xml"}
    )
    max_bytes: int = 2 * 1024 * 1024
    max_count: int = 20

    def check_count(self, count: int) -> None:
        if count > self.max_count:
            raise Rejection(Reason.ATTACHMENT, "count")


DEFAULT_ATTACHMENTS = AttachmentPolicy()

# A file name, not a path: no separators, no leading dot, no control characters.
_FILENAME = re.compile(r"[^\x00-\x1f\x7f/\\:*?\"<>|]{1,200}")


# Control (C0 and C1), format, private-use, surrogate, line and paragraph separator characters.
_FORBIDDEN_IN_NAMES = frozenset({"Cc", "Cf", "Co", "Cs", "Zl", "Zp"})


def is_safe_filename(name: str) -> bool:
    """A plain file name: no path, no leading dot or space, no control or format characters.

    Format characters (Unicode category Cf: bidi overrides such as U+202E, zero-width
    joiners) are refused because they make ``rechnung\u202efdp.exe`` display as a PDF.
    """
    return (
        _FILENAME.fullmatch(name) is not None
        and not name.startswith(".")
        and name.strip() == name
        and not any(unicodedata.category(c) in _FORBIDDEN_IN_NAMES for c in name)
    )


def check_attachment(
    data: bytes,
    *,
    filename: str | None,
    content_type: str | None,
    declared_size: int | None,
    policy: AttachmentPolicy = DEFAULT_ATTACHMENTS,
    attachment_id: str | None = None,
    where: str = "attachment",
) -> Attachment:
    """Check one attachment against the policy; the path names the check that failed."""
    if len(data) > policy.max_bytes:
        raise Rejection(Reason.ATTACHMENT, f"{where}/size")
    if declared_size is not None and declared_size != len(data):
        raise Rejection(Reason.ATTACHMENT, f"{where}/size")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in policy.media_types:
        raise Rejection(Reason.ATTACHMENT, f"{where}/contentType")
    name = filename or ""
    if not is_safe_filename(name):
        raise Rejection(Reason.ATTACHMENT, f"{where}/filename")
    return Attachment(
        filename=name,
        content_type=media,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        data=data,
        attachment_id=attachment_id,
    )


def check_all(
    attachments: Iterable[Attachment], policy: AttachmentPolicy
) -> tuple[Attachment, ...]:
    result = tuple(attachments)
    policy.check_count(len(result))
    return result
