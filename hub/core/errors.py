"""One error tree for every rejection the hub makes.

::

    HubError
    ├── Rejection            input is refused; goes to a dead-letter topic
    │   (reason: Reason, path: str | None, retriable: bool = False)
    └── UnsendableReceipt    a portal receipt that can never be sent; audited refused

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
    # Consent records and pseudonyms (docs/consent.md)
    CONSENT_INVALID = "CONSENT_INVALID"  # a consent event breaks the record rules (blanket, window)
    IDENTIFIER = "IDENTIFIER"  # an identifier to pseudonymise is malformed (IdNr check digit)
    # Transfer gate decisions (docs/consent.md#the-transfer-gate): denials and minimised categories
    TRANSFER_INVALID = "TRANSFER_INVALID"  # the request itself is malformed (unknown code, time)
    NO_BASIS = "NO_BASIS"  # neither a consent nor a statutory basis applies to route and purpose
    CONSENT_MISSING = "CONSENT_MISSING"  # no consent for recipient and purpose; a statute applies
    CONSENT_REVOKED = "CONSENT_REVOKED"  # the consent that would cover it was revoked before now
    CONSENT_EXPIRED = "CONSENT_EXPIRED"  # the consent that would cover it ended (time, event)
    CONSENT_NOT_YET_VALID = "CONSENT_NOT_YET_VALID"  # the consent's validity starts after now
    CONSENT_SUPERSEDED = "CONSENT_SUPERSEDED"  # the consent was replaced by a newer record
    CONSENT_SCOPE = "CONSENT_SCOPE"  # the person consented, but not to this transfer or category
    SPECIAL_CATEGORY = "SPECIAL_CATEGORY"  # health/youth-welfare data without a statute listing it
    PURPOSE_LIMIT = "PURPOSE_LIMIT"  # the policy never lets this purpose carry the category
    OTHER_BASIS = "OTHER_BASIS"  # another basis covers it; a decision has one basis: ask again
    # The delivery stage asked the gate at send time and was not allowed everything (path: the
    # gate's reason code); the delivery is not sent (docs/delivery.md#transfer-gate-at-send-time)
    TRANSFER_DENIED = "TRANSFER_DENIED"
    # Rechtskreiswechsel events and warm handovers (docs/rechtskreiswechsel.md)
    RKW_EVENT = "RKW_EVENT"  # not a well-formed change event (shape, pseudonym, date, event id)
    RKW_RECHTSKREIS = "RKW_RECHTSKREIS"  # unknown Rechtskreis, or from and to are the same
    RKW_OFFICE = "RKW_OFFICE"  # office not in the office table, or not deciding in that Rechtskreis
    RKW_REASON = "RKW_REASON"  # reason not in the code list, or it does not fit the transition
    RKW_AREA = "RKW_AREA"  # the person's area is not covered by the new office
    RKW_HANDOVER = "RKW_HANDOVER"  # a handover update out of order, from the wrong office, unknown
    RKW_GATE = "RKW_GATE"  # the gate answered another request, or allowed without a basis: denied


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


class UnsendableReceipt(HubError):  # noqa: N818 - reads as the condition it reports
    """A portal receipt that can never be sent (no body, no case id, not an accept or reject
    SET): refused at once, never retried. ``str()`` names what is missing, never content."""

    retriable = False
