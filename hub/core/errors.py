"""One error tree for every rejection the hub makes.

::

    HubError
    └── Rejection            input is refused; goes to a dead-letter topic
        (reason: Reason, path: str | None, retriable: bool = False)

A rejection carries a stable reason code and, where known, a location (an
element path). It never carries the offending value: values may be health data,
and library error strings (lxml, xmlschema, signxml) echo payload fragments.
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    """Stable, documented reason codes (docs/reason-codes.md). Never rename one."""

    SIZE = "SIZE"
    COMPRESSED = "COMPRESSED"
    ENCODING = "ENCODING"
    WELLFORMED = "WELLFORMED"
    DOCTYPE = "DOCTYPE"
    ELEMENT_COUNT = "ELEMENT_COUNT"
    ATTR_LIMIT = "ATTR_LIMIT"
    NAME_LIMIT = "NAME_LIMIT"
    UNKNOWN_PAYLOAD = "UNKNOWN_PAYLOAD"
    SCHEMA_VERSION = "SCHEMA_VERSION"
    XSD = "XSD"
    FIELD_FORMAT = "FIELD_FORMAT"
    # Vendor formats with fixed widths or a narrow character set (docs/formats.md)
    FIELD_LENGTH = "FIELD_LENGTH"  # too long for a field that must not be truncated
    FIELD_CHARSET = "FIELD_CHARSET"  # a character the target encoding lacks, no transliteration
    ROUTE_UNRESOLVED = "ROUTE_UNRESOLVED"
    ROUTE_AMBIGUOUS = "ROUTE_AMBIGUOUS"
    MAPPING_ERROR = "MAPPING_ERROR"
    ENVELOPE = "ENVELOPE"
    DELIVERY = "DELIVERY"
    SIG_INVALID = "SIG_INVALID"
    INTERNAL = "INTERNAL"
    # Transport containers (XTA 2, OSCI 1.2, FIT-Connect)
    CONTAINER = "CONTAINER"  # the transport container is malformed or not the expected shape
    ATTACHMENT = "ATTACHMENT"  # attachment content type, file name, size or digest not acceptable
    ENCRYPTED = "ENCRYPTED"  # encrypted container and no decryption key configured for it
    DECRYPT = "DECRYPT"  # decryption with the configured key failed (wrong key, tampered JWE)
    HASH_MISMATCH = "HASH_MISMATCH"  # content does not match the hash its metadata lists
    METADATA = "METADATA"  # transport metadata invalid against its schema
    DUPLICATE = "DUPLICATE"  # replay: transport message id or payload digest already seen, or stale
    SENDER_MISMATCH = "SENDER_MISMATCH"  # payload author differs from the authenticated sender
    # Portal signatures (bad-inputs E)
    SIG_MISSING = "SIG_MISSING"
    SIG_DIGEST = "SIG_DIGEST"
    SIG_WRAPPING = "SIG_WRAPPING"
    SIG_AMBIGUOUS = "SIG_AMBIGUOUS"
    SIG_TRUST = "SIG_TRUST"
    SIG_KEYINFO = "SIG_KEYINFO"
    SIG_ALG = "SIG_ALG"
    SIG_LOCATION = "SIG_LOCATION"
    SIG_REF = "SIG_REF"
    # Signer certificates (bad-inputs F)
    CERT_VALIDITY = "CERT_VALIDITY"
    CERT_REVOKED = "CERT_REVOKED"
    CERT_STATUS_UNKNOWN = "CERT_STATUS_UNKNOWN"
    CERT_POLICY = "CERT_POLICY"


class HubError(Exception):
    """Base of every error the hub raises on purpose."""


class Rejection(HubError):  # noqa: N818 - a rejection is an outcome, not a failure of the hub
    """The input is refused with a reason code and an optional element path.

    ``str()`` shows only the code and the path, so logging it is safe.
    """

    retriable = False

    def __init__(self, reason: Reason, path: str | None = None) -> None:
        super().__init__(reason.value if path is None else f"{reason.value} at {path}")
        self.reason = reason
        self.path = path

    def __repr__(self) -> str:
        return f"Rejection({self.reason.value!r}, path={self.path!r})"
