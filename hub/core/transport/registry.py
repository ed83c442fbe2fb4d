"""One entry point per transport: open a container, or peek at its outer identifiers.

The pipeline calls :func:`unwrap` with the received bytes and the keys the
adapter loaded; :func:`peek` reads only what is needed to answer the portal
when a container cannot be opened (the XTA message id and parties, the
FIT-Connect submission and case ids). Both are pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.transport import AttachmentPolicy, Envelope


@dataclass(frozen=True)
class TransportKeys:
    """Keys the transports need, loaded once by an adapter; never printed."""

    osci_decryption: Mapping[str, Any] = field(default_factory=dict, repr=False)
    fitconnect_decryption: Any = field(default=None, repr=False)  # fitconnect.DecryptionKeys
    fitconnect_signing: Any = field(default=None, repr=False)  # fitconnect.SetSigner
    fitconnect_schemas: Any = field(default=None, repr=False)  # fitconnect.SubmissionSchemas
    xta_identity: str | None = None  # the hub's own DVDV key, author of XTA receipt messages


def unwrap(
    transport: str,
    original: bytes,
    *,
    limits: xmlsafe.Limits,
    attachments: AttachmentPolicy,
    osci_keys: Mapping[str, Any],
    fitconnect_keys: Any,
    fitconnect_schemas: Any,
    now: dt.datetime,
    author: str | None = None,
    reader: str | None = None,
    message_id: str | None = None,
    osci_payload_id: str | None = None,
) -> Envelope:
    """The envelope of ``original``.

    ``author``, ``reader`` and ``message_id`` are what the connector was told beside
    the container (``submissions.received``): used by OSCI, whose content package
    names no parties (``METADATA`` if they are not shaped like the OSCI client's
    metadata); XTA and FIT-Connect read their own from the container.
    ``osci_payload_id`` is the payload Content Id agreed with the OSCI sender.
    """
    if transport == "xta2":
        from hub.core.transport import xta  # noqa: PLC0415 - each transport loads on first use

        # End-to-end encrypted XTA content is for the office's reader keys, as OSCI content is.
        keys = osci_keys or None
        return xta.unwrap(original, limits=limits, attachments=attachments, decryption_keys=keys)
    if transport == "osci":
        from hub.core.transport import osci, osci_handover  # noqa: PLC0415

        osci_handover.check_fields(author, reader, message_id)
        unpacked = osci.unpack(
            original,
            limits=limits,
            attachments=attachments,
            decryption_keys=osci_keys or None,
            author=author,
            reader=reader,
            message_id=message_id,
            payload_id=osci_payload_id,
        )
        # The containers and signatures travel with the envelope for the portal's signature
        # policy (hub.core.portalsig.verify_osci).
        return replace(unpacked.envelope, unpacked=unpacked)
    if transport == "fitconnect":
        from hub.core.transport import fitconnect  # noqa: PLC0415

        if fitconnect_keys is None or fitconnect_schemas is None:
            raise Rejection(Reason.ENCRYPTED, "fitconnect")
        return fitconnect.open_submission(
            original, fitconnect_keys, fitconnect_schemas, now, attachments=attachments
        )
    raise Rejection(Reason.CONTAINER, "transport")


def peek(
    transport: str,
    original: bytes,
    author: str | None = None,
    reader: str | None = None,
    message_id: str | None = None,
) -> Envelope | None:
    """The outer identifiers of a container that did not open, or None if they are unreadable.

    For OSCI they are the OSCI client's metadata the connector put beside the package
    (``author``, ``reader``, ``message_id``); None without an author or if they are
    not well-formed.
    """
    try:
        if transport == "osci":
            from hub.core.transport import osci_handover  # noqa: PLC0415

            osci_handover.check_fields(author, reader, message_id)
            if author is None:
                return None
            return Envelope("osci", b"", message_id=message_id, author=author, reader=reader)
        if transport == "xta2":
            from hub.core.transport import xta  # noqa: PLC0415

            return xta.peek(original)
        if transport == "fitconnect":
            from hub.core.transport import fitconnect  # noqa: PLC0415

            return fitconnect.peek(original)
    except Rejection:
        return None
    return None


_SOAP12 = b"http://www.w3.org/2003/05/soap-envelope"
_OSCI = b"http://www.osci.de/2002/04/osci"


def sniff(original: bytes) -> str:
    """The transport a file most likely came by (``sozialhub check --transport auto``).

    Looks only at the first bytes; never parses. A JSON object with
    ``encryptedMetadata`` is a FIT-Connect bundle, MIME headers naming
    ``application/xop+xml`` an XTA message as MTOM, other MIME headers or an OSCI
    namespace an OSCI content package, a SOAP 1.2 envelope an XTA message,
    anything else a bare payload file.
    """
    head = original[:4096]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{") and b'"encryptedMetadata"' in original[:65536]:
        return "fitconnect"
    lowered = stripped[:200].lower()
    mime = lowered.startswith((b"mime-version:", b"content-type:"))
    if mime and b"application/xop+xml" in head.lower() and _OSCI not in head:
        return "xta2"  # an MTOM/XOP package: an XTA getMessage response as the poller keeps it
    if mime or _OSCI in head:
        return "osci"
    if _SOAP12 in head:
        return "xta2"
    return "file"
