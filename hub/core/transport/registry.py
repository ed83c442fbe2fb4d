"""One entry point per transport: open a container, or peek at its outer identifiers.

The pipeline calls :func:`unwrap` with the received bytes and the keys the
adapter loaded; :func:`peek` reads only what is needed to answer the portal
when a container cannot be opened (the XTA message id and parties, the
FIT-Connect submission and case ids). Both are pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
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
) -> Envelope:
    if transport == "xta2":
        from hub.core.transport import xta  # noqa: PLC0415 - each transport loads on first use

        return xta.unwrap(original, limits=limits, attachments=attachments)
    if transport == "osci":
        from hub.core.transport import osci  # noqa: PLC0415

        return osci.unwrap(
            original, limits=limits, attachments=attachments, decryption_keys=osci_keys or None
        )
    if transport == "fitconnect":
        from hub.core.transport import fitconnect  # noqa: PLC0415

        if fitconnect_keys is None or fitconnect_schemas is None:
            raise Rejection(Reason.ENCRYPTED, "fitconnect")
        return fitconnect.open_submission(
            original, fitconnect_keys, fitconnect_schemas, now, attachments=attachments
        )
    raise Rejection(Reason.CONTAINER, "transport")


def peek(transport: str, original: bytes) -> Envelope | None:
    """The outer identifiers of a container that did not open, or None if they are unreadable."""
    try:
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
    ``encryptedMetadata`` is a FIT-Connect bundle, MIME headers or an OSCI
    namespace an OSCI content package, a SOAP 1.2 envelope an XTA message,
    anything else a bare payload file.
    """
    head = original[:4096]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"{") and b'"encryptedMetadata"' in original[:65536]:
        return "fitconnect"
    lowered = stripped[:200].lower()
    if lowered.startswith((b"mime-version:", b"content-type:")) or _OSCI in head:
        return "osci"
    if _SOAP12 in head:
        return "xta2"
    return "file"
