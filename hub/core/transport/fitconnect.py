"""FIT-Connect, receiver side: callback check, opening a submission, Security Event Tokens.

The Serviceportal sends new services through FITKO's FIT-Connect Submission
API. The hub is the *subscriber* of one or more destinations:

1. The delivery service (Zustelldienst) announces new submissions with a
   callback whose ``callback-authentication`` header is the hex HMAC-SHA512 of
   ``callback-timestamp + "." + body`` under the destination's callback secret
   (:func:`verify_callback`), or the hub polls.
2. The connector (``connectors.fitconnect``) fetches the submission and its
   attachments and hands over one JSON *bundle* (:func:`bundle`):
   ``submissionId``, ``caseId``, ``destinationId``, optional ``serviceType``,
   ``encryptedMetadata``, ``encryptedData`` and ``attachments``
   (attachment id -> JWE compact serialisation).
3. :func:`open_submission` decrypts and checks the bundle and returns the
   :class:`~hub.core.transport.Envelope` the pipeline works on.
4. The hub answers with a PS512-signed Security Event Token
   (:func:`security_event_token`): ``accept-submission`` or
   ``reject-submission``.

Everything here is pure: keys, schemas, limits and the clock are passed in.
Every refusal is a :class:`~hub.core.errors.Rejection` whose path names a
location (``metadata``, ``data``, ``attachments/2``, ``callback-timestamp``),
never a value. Library error messages are never passed on.

Reason codes used here (docs/transports/fitconnect.md has the full table):

- callback: ``SIG_INVALID`` (MAC wrong or headers malformed, timestamp in
  the future), ``DUPLICATE`` (authentic but older than ``max_age``: a replay);
- bundle: ``SIZE``, ``CONTAINER`` (not the bundle shape, malformed JWE),
  ``COMPRESSED`` (a JWE with ``zip``), ``DECRYPT`` (algorithm other than
  RSA-OAEP-256/A256GCM, unknown header, wrong key, tampered ciphertext),
  ``METADATA``, ``UNKNOWN_PAYLOAD`` (data not ``application/xml`` or a
  ``schemaUri`` that is not allow-listed), ``HASH_MISMATCH``, ``ATTACHMENT``;
- SET verification: ``SIG_ALG`` (not PS512), ``SIG_INVALID``, ``CONTAINER``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from joserfc import jwe, jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator

from hub.core.errors import Reason, Rejection
from hub.core.transport import (
    DEFAULT_ATTACHMENTS,
    Attachment,
    AttachmentPolicy,
    Envelope,
    check_all,
    check_attachment,
)

TRANSPORT = "fitconnect"

# Cryptography FIT-Connect prescribes (BSI TR-02102-1); nothing else is accepted.
KEY_ALGORITHM = "RSA-OAEP-256"
CONTENT_ALGORITHM = "A256GCM"
SET_ALGORITHM = "PS512"
SET_TYPE = "secevent+jwt"
MIN_RSA_BITS = 4096
HASH_TYPE = "sha512"

EVENT_ACCEPT = "https://schema.fitko.de/fit-connect/events/accept-submission"
EVENT_REJECT = "https://schema.fitko.de/fit-connect/events/reject-submission"
SET_PAYLOAD_SCHEMA = "https://schema.fitko.de/fit-connect/set-payload/1.2.2/set-payload.schema.json"
CALLBACK_NEW_SUBMISSIONS = (
    "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions"
)
# Reject problems name hub reason codes, never FIT-Connect's problem catalogue (see module docs).
PROBLEM_TYPE_PREFIX = "urn:sozialhub:reason:"

# Every FIT-Connect callback type is a URI below this (the Submission API's callbacks and
# others); bounded and plain, so that it can be logged.
_CALLBACK_TYPE = re.compile(r"https://schema\.fitko\.de/fit-connect/[a-z0-9][a-z0-9/._-]{0,199}")
CALLBACK_MAX_AGE = dt.timedelta(minutes=5)
CALLBACK_MAX_SKEW = dt.timedelta(seconds=30)

# JWE protected-header members a FIT-Connect sender may set; anything else is refused.
_JWE_HEADER_MEMBERS = frozenset({"alg", "enc", "kid", "cty", "typ"})
_BUNDLE_REQUIRED = frozenset(
    {"submissionId", "caseId", "destinationId", "encryptedMetadata", "encryptedData", "attachments"}
)
_BUNDLE_OPTIONAL = frozenset({"serviceType"})
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_HEX128 = re.compile(r"[0-9a-fA-F]{128}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MAX_SERVICE_CHARS = 300


def _b64url_chars(size: int) -> int:
    """Length of the unpadded base64url form of ``size`` bytes."""
    return (size * 4 + 2) // 3


# --------------------------------------------------------------------------- limits, keys, schemas


@dataclass(frozen=True, slots=True)
class Limits:
    """Size bounds for a bundle; attachments are bounded by the :class:`AttachmentPolicy`."""

    max_bundle_bytes: int = 48 * 1024 * 1024
    max_metadata_bytes: int = 256 * 1024
    max_data_bytes: int = 4 * 1024 * 1024  # the hub's max_submission_bytes default


DEFAULT_LIMITS = Limits()


def _rsa_bits(key: RSAKey) -> int:
    return int(key.public_key.key_size)


class DecryptionKeys:
    """The destination's private RSA decryption keys: the current one and, while rotating, the next.

    Keys are JWKs (or joserfc ``RSAKey`` objects); each must be private, RSA, at
    least 4096 bits, and if it names an ``alg``/``use``, ``RSA-OAEP-256``/``enc``.
    A JWE whose ``kid`` names one of the keys is tried with that key only; one
    without a known ``kid`` is tried with each key in order. ``repr``/``str`` show
    the key ids, never key material; instances cannot be pickled.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[Mapping[str, Any] | RSAKey]) -> None:
        loaded: list[RSAKey] = []
        for item in keys:
            key = item if isinstance(item, RSAKey) else _import_rsa(item)
            if not key.is_private:
                raise ValueError("a FIT-Connect decryption key must be a private RSA key")
            if _rsa_bits(key) < MIN_RSA_BITS:
                raise ValueError(
                    f"a FIT-Connect decryption key must have at least {MIN_RSA_BITS} bits"
                )
            if key.alg not in (None, KEY_ALGORITHM) or key.get("use") not in (None, "enc"):
                raise ValueError("a FIT-Connect decryption key must be meant for RSA-OAEP-256")
            loaded.append(key)
        if not loaded:
            raise ValueError("at least one FIT-Connect decryption key is needed")
        kids = [k.kid for k in loaded if k.kid is not None]
        if len(kids) != len(set(kids)):
            raise ValueError("FIT-Connect decryption keys must have distinct key ids")
        self._keys = tuple(loaded)

    @property
    def kids(self) -> tuple[str | None, ...]:
        return tuple(k.kid for k in self._keys)

    def candidates(self, kid: str | None) -> tuple[RSAKey, ...]:
        named = tuple(k for k in self._keys if kid is not None and k.kid == kid)
        return named or self._keys

    def __repr__(self) -> str:
        return f"DecryptionKeys(kids={list(self.kids)!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("DecryptionKeys cannot be pickled")


def _import_rsa(jwk: Mapping[str, Any]) -> RSAKey:
    try:
        return RSAKey.import_key(dict(jwk))
    except (JoseError, ValueError, TypeError, KeyError):
        raise ValueError("not an RSA JSON Web Key") from None


def set_signing_key(jwk: Mapping[str, Any] | RSAKey) -> RSAKey:
    """The hub's SET signing key, checked: private RSA, at least 4096 bits, meant for PS512."""
    key = jwk if isinstance(jwk, RSAKey) else _import_rsa(jwk)
    if not key.is_private:
        raise ValueError("the SET signing key must be a private RSA key")
    if _rsa_bits(key) < MIN_RSA_BITS:
        raise ValueError(f"the SET signing key must have at least {MIN_RSA_BITS} bits")
    if key.alg not in (None, SET_ALGORITHM) or key.get("use") not in (None, "sig"):
        raise ValueError("the SET signing key must be meant for PS512")
    return key


@dataclass(frozen=True, slots=True)
class SubmissionSchemas:
    """What a submission's metadata and data may be.

    ``metadata`` is a validator built once by :func:`metadata_validator` from
    ``schemas/fitconnect/metadata.schema.json``; ``data_schema_uris`` allow-lists
    the ``contentStructure.data.submissionSchema.schemaUri`` values the
    destination accepts (it must not be empty).
    """

    metadata: Validator
    data_schema_uris: frozenset[str]

    def __post_init__(self) -> None:
        if not self.data_schema_uris:
            raise ValueError("allow-list at least one FIT-Connect submission schema URI")


def metadata_validator(schema: Mapping[str, Any]) -> Validator:
    """A Draft 2020-12 validator for the metadata schema document (already parsed, local only)."""
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


# --------------------------------------------------------------------------- callback


def callback_signature(body: bytes, timestamp: str, secret: bytes) -> str:
    """The ``callback-authentication`` value: hex HMAC-SHA512 over ``timestamp + "." + body``."""
    return hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha512).hexdigest()


def verify_callback(
    body: bytes,
    timestamp: str,
    signature_hex: str,
    secret: bytes,
    now: dt.datetime,
    max_age: dt.timedelta = CALLBACK_MAX_AGE,
) -> None:
    """Check a callback's ``callback-authentication`` and ``callback-timestamp`` headers.

    Returns nothing when the callback is authentic and fresh; raises a
    :class:`Rejection` otherwise: ``SIG_INVALID`` for malformed headers, a wrong
    MAC or a timestamp more than 30 s in the future; ``DUPLICATE`` for an
    authentic callback older than ``max_age`` (a replay). The MAC is compared
    in constant time (:func:`hmac.compare_digest`) before the clock is looked at.
    """
    if not secret:
        raise ValueError("the callback secret must not be empty")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise Rejection(Reason.SIG_INVALID, "callback-timestamp")
    if not _HEX128.fullmatch(signature_hex):
        raise Rejection(Reason.SIG_INVALID, "callback-authentication")
    expected = callback_signature(body, timestamp, secret)
    if not hmac.compare_digest(expected, signature_hex.lower()):
        raise Rejection(Reason.SIG_INVALID, "callback-authentication")
    sent = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    if sent - now > CALLBACK_MAX_SKEW:
        raise Rejection(Reason.SIG_INVALID, "callback-timestamp")
    if now - sent > max_age:
        raise Rejection(Reason.DUPLICATE, "callback-timestamp")


def callback_submissions(body: bytes, destination_id: str) -> tuple[str, ...]:
    """Submission ids a verified ``new-submissions`` callback announces for ``destination_id``.

    Reads ``submissions[].submissionId`` (and the deprecated ``submissionIds``);
    entries for other destinations are skipped. Raises ``CONTAINER`` for any
    other shape.
    """
    return tuple(callback_announcements(body, destination_id))


def callback_announcements(body: bytes, destination_id: str) -> dict[str, str | None]:
    """:func:`callback_submissions` with each submission's case id (``None`` where not announced).

    The receiver keeps the case id so that it can answer a submission it refuses to
    fetch (:func:`unread_part`) even when the oversized resource never names it.
    """
    kind, announced = read_callback(body, destination_id)
    if kind != CALLBACK_NEW_SUBMISSIONS:
        raise Rejection(Reason.CONTAINER, "callback/type")
    return announced


def read_callback(body: bytes, destination_id: str) -> tuple[str, dict[str, str | None]]:
    """A verified callback's ``type`` and, for ``new-submissions``, its announcements.

    The delivery service also calls a destination's callback for other things than
    new submissions (new events in a case, new replies); it expects a 2xx answer to
    each, so the receiver acknowledges them without acting (no announcements). Only a
    JSON object whose ``type`` is a URI below ``https://schema.fitko.de/fit-connect/``
    is a callback; anything else is ``CONTAINER``.
    """
    document = _strict_json(body, Reason.CONTAINER, "callback")
    kind = document.get("type") if isinstance(document, dict) else None
    if not isinstance(kind, str) or not _CALLBACK_TYPE.fullmatch(kind):
        raise Rejection(Reason.CONTAINER, "callback/type")
    if kind != CALLBACK_NEW_SUBMISSIONS:
        return kind, {}
    found: dict[str, str | None] = {}
    for entry in _list(document.get("submissions", []), "callback/submissions"):
        if not isinstance(entry, dict):
            raise Rejection(Reason.CONTAINER, "callback/submissions")
        target = entry.get("destinationId", destination_id)
        if isinstance(target, str) and target.lower() != destination_id.lower():
            continue
        submission = _uuid(entry.get("submissionId"), "callback/submissions/submissionId")
        case = entry.get("caseId")
        found.setdefault(
            submission, case.lower() if isinstance(case, str) and _UUID.fullmatch(case) else None
        )
    for entry in _list(document.get("submissionIds", []), "callback/submissionIds"):
        found.setdefault(_uuid(entry, "callback/submissionIds"), None)
    return kind, found


# --------------------------------------------------------------------------- strict JSON


def _no_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate member")
        result[key] = value
    return result


def _no_constant(_: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _strict_json(raw: bytes, reason: Reason, where: str) -> Any:
    """UTF-8 JSON without duplicate members, NaN/Infinity or lone surrogates."""
    try:
        document = json.loads(
            raw.decode("utf-8"),
            object_pairs_hook=_no_duplicate_members,
            parse_constant=_no_constant,
        )
        _check_strings(document)
    except (ValueError, RecursionError):
        raise Rejection(reason, where) from None
    return document


def parse_json(raw: bytes) -> Any:
    """Strict JSON (UTF-8, no duplicate members, no NaN, no lone surrogates) or ``CONTAINER``."""
    return _strict_json(raw, Reason.CONTAINER, "json")


def _check_strings(document: Any) -> None:
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            node.encode("utf-8")  # lone surrogates raise UnicodeEncodeError (a ValueError)
        elif isinstance(node, dict):
            for key, value in node.items():
                key.encode("utf-8")
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Rejection(Reason.CONTAINER, where)
    return value


def _uuid(value: Any, where: str, reason: Reason = Reason.CONTAINER) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise Rejection(reason, where)
    return value.lower()


# --------------------------------------------------------------------------- the bundle


@dataclass(frozen=True, slots=True)
class Bundle:
    """The parsed, shape-checked bundle; JWE parts still encrypted."""

    submission_id: str
    case_id: str
    destination_id: str
    service_identifier: str | None
    encrypted_metadata: str
    encrypted_data: str
    attachments: Mapping[str, str]  # attachment id (lower case) -> JWE compact


def bundle(
    *,
    submission_id: str,
    case_id: str,
    destination_id: str,
    encrypted_metadata: str,
    encrypted_data: str,
    attachments: Mapping[str, str],
    service_type: Mapping[str, str] | None = None,
) -> bytes:
    """Serialise the bundle the connector hands over (the input of :func:`open_submission`)."""
    document: dict[str, Any] = {
        "submissionId": submission_id,
        "caseId": case_id,
        "destinationId": destination_id,
        "encryptedMetadata": encrypted_metadata,
        "encryptedData": encrypted_data,
        "attachments": dict(attachments),
    }
    if service_type is not None:
        document["serviceType"] = dict(service_type)
    return json.dumps(document, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def parse_bundle(original: bytes, limits: Limits = DEFAULT_LIMITS) -> Bundle:
    """Parse the bundle strictly: size bound, exact members, ids as UUIDs, JWE parts well formed."""
    if len(original) > limits.max_bundle_bytes:
        raise Rejection(Reason.SIZE)
    document = _strict_json(original, Reason.CONTAINER, "bundle")
    if not isinstance(document, dict):
        raise Rejection(Reason.CONTAINER, "bundle")
    members = set(document)
    if not members >= _BUNDLE_REQUIRED or not members <= _BUNDLE_REQUIRED | _BUNDLE_OPTIONAL:
        raise Rejection(Reason.CONTAINER, "bundle")
    attachments = document["attachments"]
    if not isinstance(attachments, dict):
        raise Rejection(Reason.CONTAINER, "bundle/attachments")
    sealed: dict[str, str] = {}
    for attachment_id, token in attachments.items():
        key = _uuid(attachment_id, "bundle/attachments")
        if key in sealed:
            raise Rejection(Reason.CONTAINER, "bundle/attachments")
        sealed[key] = _compact(token, "bundle/attachments")
    return Bundle(
        submission_id=_uuid(document["submissionId"], "bundle/submissionId"),
        case_id=_uuid(document["caseId"], "bundle/caseId"),
        destination_id=_uuid(document["destinationId"], "bundle/destinationId"),
        service_identifier=_service_identifier(document.get("serviceType")),
        encrypted_metadata=_compact(document["encryptedMetadata"], "bundle/encryptedMetadata"),
        encrypted_data=_compact(document["encryptedData"], "bundle/encryptedData"),
        attachments=sealed,
    )


def bundle_ids(original: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[str, str, str] | None:
    """``(submission id, case id, destination id)`` of a bundle, or ``None`` if they cannot be read.

    Lenient on purpose: a bundle :func:`open_submission` refuses still needs a
    ``reject-submission`` SET, and that needs these three ids.
    """
    if len(original) > limits.max_bundle_bytes:
        return None
    try:
        document = _strict_json(original, Reason.CONTAINER, "bundle")
        if not isinstance(document, dict):
            return None
        return (
            _uuid(document.get("submissionId"), "bundle/submissionId"),
            _uuid(document.get("caseId"), "bundle/caseId"),
            _uuid(document.get("destinationId"), "bundle/destinationId"),
        )
    except Rejection:
        return None


# The members of the Submission API's submission resource whose value is a part of the
# submission, and the path a SIZE refusal names for each.
_RESOURCE_PARTS = {"encryptedMetadata": "metadata", "encryptedData": "data"}
_RESOURCE_IDS = ("submissionId", "caseId", "destinationId")


@dataclass(frozen=True, slots=True)
class UnreadResource:
    """What the receiver learned from a submission resource it stopped reading at its bound.

    ``part`` is the path of the member the bound fell into: ``metadata``
    (``encryptedMetadata``), ``data`` (``encryptedData``), or ``submission`` (any
    other member, or between members). ``ids`` holds those of ``submissionId``,
    ``caseId`` and ``destinationId`` that were read in full before it, lower case
    (UUIDs only).
    """

    part: str
    ids: Mapping[str, str]


def unread_part(prefix: bytes) -> UnreadResource:
    """Which part of a ``GET /v1/submissions/{id}`` body did not fit, from the bytes that did.

    ``prefix`` is the body up to the receiver's bound. The top-level members are
    decoded one after the other; the member whose value does not end within
    ``prefix`` is the oversized part. Nothing but the three ids is kept, and no
    value reaches the result's ``part``: it names a location only.
    """
    text = prefix.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    ids: dict[str, str] = {}

    def skip(at: int) -> int:
        while at < len(text) and text[at] in " \t\r\n":
            at += 1
        return at

    at = skip(0)
    if not text.startswith("{", at):
        return UnreadResource("submission", ids)
    at += 1
    while True:
        at = skip(at)
        try:
            name, at = decoder.raw_decode(text, at)
        except (ValueError, RecursionError):
            return UnreadResource("submission", ids)
        at = skip(at)
        if not isinstance(name, str) or not text.startswith(":", at):
            return UnreadResource("submission", ids)
        try:
            value, at = decoder.raw_decode(text, skip(at + 1))
        except (ValueError, RecursionError):
            return UnreadResource(_RESOURCE_PARTS.get(name, "submission"), ids)
        if name in _RESOURCE_IDS and isinstance(value, str) and _UUID.fullmatch(value):
            ids[name] = value.lower()
        at = skip(at)
        if not text.startswith(",", at):
            return UnreadResource("submission", ids)
        at += 1


def _service_identifier(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= {"name", "identifier"}:
        raise Rejection(Reason.CONTAINER, "bundle/serviceType")
    for member in value.values():
        if not isinstance(member, str) or len(member) > _MAX_SERVICE_CHARS:
            raise Rejection(Reason.CONTAINER, "bundle/serviceType")
    identifier = value.get("identifier")
    return identifier if isinstance(identifier, str) and identifier else None


def _compact(token: Any, where: str) -> str:
    """A JWE compact serialisation: five base64url segments, all but the ciphertext non-empty."""
    if not isinstance(token, str):
        raise Rejection(Reason.CONTAINER, where)
    parts = token.split(".")
    if len(parts) != 5 or not all(_B64URL.fullmatch(p) for p in parts):
        raise Rejection(Reason.CONTAINER, where)
    header, key, iv, _, tag = parts
    if not (header and key and iv and tag):
        raise Rejection(Reason.CONTAINER, where)
    return token


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _protected_header(token: str, where: str) -> dict[str, Any]:
    """The JWE protected header, held to FIT-Connect's algorithm policy before any crypto runs."""
    try:
        raw = _b64url_decode(token.split(".", 1)[0])
    except (binascii.Error, ValueError):
        raise Rejection(Reason.CONTAINER, where) from None
    header = _strict_json(raw, Reason.CONTAINER, where)
    if not isinstance(header, dict):
        raise Rejection(Reason.CONTAINER, where)
    if "zip" in header:
        raise Rejection(Reason.COMPRESSED, f"{where}/header/zip")
    if header.get("alg") != KEY_ALGORITHM:
        raise Rejection(Reason.DECRYPT, f"{where}/header/alg")
    if header.get("enc") != CONTENT_ALGORITHM:
        raise Rejection(Reason.DECRYPT, f"{where}/header/enc")
    if not set(header) <= _JWE_HEADER_MEMBERS:
        raise Rejection(Reason.DECRYPT, f"{where}/header")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise Rejection(Reason.DECRYPT, f"{where}/header/kid")
    return header


def _decrypt(
    token: str, keys: DecryptionKeys, where: str, max_plaintext: int, too_large: Rejection
) -> bytes:
    header = _protected_header(token, where)
    if len(token.split(".")[3]) > _b64url_chars(max_plaintext):
        raise too_large
    registry = jwe.JWERegistry(algorithms=[KEY_ALGORITHM, CONTENT_ALGORITHM])
    registry.max_ciphertext_length = _b64url_chars(max_plaintext)
    registry.max_encrypted_key_length = 1400  # room for RSA keys up to 8192 bits
    for key in keys.candidates(header.get("kid")):
        try:
            plaintext = jwe.decrypt_compact(token, key, registry=registry).plaintext
        except (JoseError, ValueError, TypeError, KeyError, IndexError):
            continue  # wrong key or tampered: try the next key, then refuse
        if plaintext is not None:
            return plaintext
    raise Rejection(Reason.DECRYPT, where)


# --------------------------------------------------------------------------- opening a submission


def _schema_names(schema: Any) -> frozenset[str]:
    """Every property name the schema defines: the only names a rejection path may show."""
    names: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                names.update(k for k in properties if isinstance(k, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return frozenset(names)


def _validate_metadata(document: Any, validator: Validator) -> None:
    try:
        error = best_match(validator.iter_errors(document))
    except RecursionError:
        raise Rejection(Reason.METADATA, "metadata") from None
    if error is None:
        return
    names = _schema_names(validator.schema)
    steps = [
        str(step) if isinstance(step, int) or step in names else "*" for step in error.absolute_path
    ]
    raise Rejection(Reason.METADATA, "/".join(["metadata", *steps]))


def _sha512_matches(content: bytes, declared: str) -> bool:
    return hmac.compare_digest(hashlib.sha512(content).hexdigest(), declared.lower())


def _check_application_date(metadata: Mapping[str, Any], now: dt.datetime) -> None:
    info = metadata.get("additionalReferenceInfo")
    value = info.get("applicationDate") if isinstance(info, dict) else None
    if value is None:
        return
    where = "metadata/additionalReferenceInfo/applicationDate"
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise Rejection(Reason.METADATA, where)
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise Rejection(Reason.METADATA, where) from None
    if day > now.astimezone(dt.UTC).date() + dt.timedelta(days=1):
        raise Rejection(Reason.METADATA, where)


def _check_metadata(
    metadata: Any, parsed: Bundle, schemas: SubmissionSchemas, now: dt.datetime
) -> list[str]:
    """Schema and cross checks of the decrypted metadata; returns the listed attachment ids."""
    _validate_metadata(metadata, schemas.metadata)
    structure = metadata["contentStructure"]
    submission_schema = structure["data"]["submissionSchema"]
    base = "metadata/contentStructure/data/submissionSchema"
    if submission_schema["mimeType"] != "application/xml":
        raise Rejection(Reason.UNKNOWN_PAYLOAD, f"{base}/mimeType")
    if submission_schema["schemaUri"] not in schemas.data_schema_uris:
        raise Rejection(Reason.UNKNOWN_PAYLOAD, f"{base}/schemaUri")
    declared_service = metadata.get("publicServiceType", {}).get("identifier")
    if parsed.service_identifier and declared_service not in (None, parsed.service_identifier):
        raise Rejection(Reason.METADATA, "metadata/publicServiceType/identifier")
    _check_application_date(metadata, now)
    ids: list[str] = [entry["attachmentId"].lower() for entry in structure["attachments"]]
    for index, attachment_id in enumerate(ids):
        if attachment_id in ids[:index]:
            raise Rejection(
                Reason.METADATA, f"metadata/contentStructure/attachments/{index}/attachmentId"
            )
        if attachment_id not in parsed.attachments:
            raise Rejection(Reason.ATTACHMENT, f"attachments/{index}")
    if set(parsed.attachments) - set(ids):
        raise Rejection(Reason.ATTACHMENT, "attachments/unlisted")
    return ids


def _open_attachments(
    parsed: Bundle,
    listed: Sequence[Mapping[str, Any]],
    ids: Sequence[str],
    keys: DecryptionKeys,
    policy: AttachmentPolicy,
) -> tuple[Attachment, ...]:
    checked: list[Attachment] = []
    for index, (entry, attachment_id) in enumerate(zip(listed, ids, strict=True)):
        where = f"attachments/{index}"
        content = _decrypt(
            parsed.attachments[attachment_id],
            keys,
            where,
            policy.max_bytes,
            Rejection(Reason.ATTACHMENT, f"{where}/size"),
        )
        if not _sha512_matches(content, entry["hash"]["content"]):
            raise Rejection(Reason.HASH_MISMATCH, where)
        checked.append(
            check_attachment(
                content,
                filename=entry.get("filename", attachment_id),
                content_type=entry["mimeType"],
                declared_size=None,
                policy=policy,
                attachment_id=attachment_id,
                where=where,
            )
        )
    return check_all(checked, policy)


def open_submission(
    original: bytes,
    keys: DecryptionKeys,
    schemas: SubmissionSchemas,
    now: dt.datetime,
    *,
    limits: Limits = DEFAULT_LIMITS,
    attachments: AttachmentPolicy = DEFAULT_ATTACHMENTS,
) -> Envelope:
    """Decrypt and check a FIT-Connect bundle; return its envelope or raise a :class:`Rejection`.

    Order of checks: bundle shape and size; attachment count; metadata
    (decrypt, strict JSON, schema, data media type and schema URI, service type,
    application date, attachment ids unique and equal to the bundle's); data
    (decrypt, SHA-512); each attachment in metadata order (decrypt, SHA-512,
    attachment policy). The envelope carries ``message_id`` = submission id,
    ``reader`` = destination id, ``case_id``, ``service`` = the service type
    identifier (LeiKa URN), and ``payload_schema`` = the data's
    ``submissionSchema.schemaUri``.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    parsed = parse_bundle(original, limits)
    attachments.check_count(len(parsed.attachments))

    raw_metadata = _decrypt(
        parsed.encrypted_metadata,
        keys,
        "metadata",
        limits.max_metadata_bytes,
        Rejection(Reason.SIZE, "metadata"),
    )
    metadata = _strict_json(raw_metadata, Reason.METADATA, "metadata")
    ids = _check_metadata(metadata, parsed, schemas, now)
    structure = metadata["contentStructure"]

    data = _decrypt(
        parsed.encrypted_data, keys, "data", limits.max_data_bytes, Rejection(Reason.SIZE, "data")
    )
    if not _sha512_matches(data, structure["data"]["hash"]["content"]):
        raise Rejection(Reason.HASH_MISMATCH, "data")
    opened = _open_attachments(parsed, structure["attachments"], ids, keys, attachments)

    service = parsed.service_identifier or metadata.get("publicServiceType", {}).get("identifier")
    return Envelope(
        transport=TRANSPORT,
        payload=data,
        payload_content_type="application/xml",
        message_id=parsed.submission_id,
        reader=parsed.destination_id,
        service=service,
        payload_schema=structure["data"]["submissionSchema"]["schemaUri"],
        attachments=opened,
        case_id=parsed.case_id,
    )


def peek(original: bytes, limits: Limits = DEFAULT_LIMITS) -> Envelope:
    """The outer identifiers of a bundle that did not open: enough for a ``reject-submission``.

    An envelope without payload: ``message_id`` = submission id, ``case_id``,
    ``reader`` = destination id. ``CONTAINER`` if even these cannot be read.
    """
    ids = bundle_ids(original, limits)
    if ids is None:
        raise Rejection(Reason.CONTAINER, "bundle")
    submission_id, case_id, destination_id = ids
    return Envelope(
        transport=TRANSPORT,
        payload=b"",
        message_id=submission_id,
        reader=destination_id,
        case_id=case_id,
    )


def authentication_tags(original: bytes, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """The JWE authentication tags of a bundle, as FIT-Connect SETs carry them.

    ``{"metadata": tag, "data": tag, "attachments": {attachment id: tag}}``; the
    tag is the last segment of each compact serialisation.
    """
    parsed = parse_bundle(original, limits)
    return {
        "metadata": parsed.encrypted_metadata.rsplit(".", 1)[1],
        "data": parsed.encrypted_data.rsplit(".", 1)[1],
        "attachments": {k: v.rsplit(".", 1)[1] for k, v in parsed.attachments.items()},
    }


# --------------------------------------------------------------------------- Security Event Tokens

_PROBLEM_DETAIL = {
    Reason.SIZE: "The submission or one of its parts is larger than the receiver accepts.",
    Reason.CONTAINER: "The submission is not in the expected FIT-Connect structure.",
    Reason.COMPRESSED: "Compressed (zip) JWE content is not accepted.",
    Reason.DECRYPT: "A part could not be decrypted with the destination's key and algorithms.",
    Reason.METADATA: "The metadata do not satisfy the metadata schema.",
    Reason.HASH_MISMATCH: "A part does not match the hash its metadata lists.",
    Reason.ATTACHMENT: "Attachments and metadata disagree, or an attachment is not acceptable.",
    Reason.UNKNOWN_PAYLOAD: "The data's media type or schema is not accepted by this destination.",
}
_GENERIC_DETAIL = "The submission was rejected by the receiving system."


def _problem(rejection: Rejection) -> dict[str, str]:
    head = (rejection.path or "").split("/", 1)[0]
    instance = head if head in ("metadata", "data", "attachments") else "submission"
    return {
        "type": PROBLEM_TYPE_PREFIX + rejection.reason.value,
        "title": rejection.reason.value,
        "detail": _PROBLEM_DETAIL.get(rejection.reason, _GENERIC_DETAIL),
        "instance": instance,
    }


def security_event_token(
    kind: Literal["accept", "reject"],
    *,
    submission_id: str,
    case_id: str,
    destination_id: str,
    signing_key: Mapping[str, Any] | RSAKey,
    key_id: str,
    now: dt.datetime,
    problems: Sequence[Rejection] = (),
    authentication_tags: Mapping[str, Any] | None = None,
    issuer: str | None = None,
    jti: str | None = None,
) -> str:
    """A PS512-signed ``accept-submission`` or ``reject-submission`` SET (``typ: secevent+jwt``).

    ``iss`` is the destination id unless ``issuer`` says otherwise (FIT-Connect
    uses the destination id); ``sub`` is ``submission:<id>``, ``txn`` is
    ``case:<id>``. ``jti`` is derived from the other claims but ``iat``
    (:func:`answer_jti`), so the same answer signed again (a crash before the
    outcome was recorded, the delivery service handing the submission over
    again) has the same ``jti`` and is recognised as a repetition, while another
    answer never shares it. A reject carries one problem per
    rejection, built from the reason code and the first path segment only, so
    no payload data can reach the delivery service's event log. Pass the
    bundle's :func:`authentication_tags` where the bundle is at hand; without
    them (and without problems) the event has no payload and, as FIT-Connect
    requires for such events, no ``$schema`` claim.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    for value in (submission_id, case_id, destination_id):
        if not _UUID.fullmatch(value):
            raise ValueError("submission, case and destination ids must be UUIDs")
    payload: dict[str, Any] = {}
    if authentication_tags is not None:
        payload["authenticationTags"] = dict(authentication_tags)
    if kind == "accept":
        if problems:
            raise ValueError("an accept-submission event carries no problems")
        event = EVENT_ACCEPT
    elif kind == "reject":
        if not problems:
            raise ValueError("a reject-submission event needs at least one problem")
        payload["problems"] = [_problem(p) for p in problems]
        event = EVENT_REJECT
    else:
        raise ValueError("kind must be accept or reject")
    key = set_signing_key(signing_key)
    claims: dict[str, Any] = {
        "iss": issuer or destination_id.lower(),
        "sub": f"submission:{submission_id.lower()}",
        "txn": f"case:{case_id.lower()}",
        "events": {event: payload},
    }
    if payload:
        # FIT-Connect: name the SET payload schema only when the event carries a payload.
        claims = {"$schema": SET_PAYLOAD_SCHEMA, **claims}
    claims = {"jti": jti or answer_jti(claims), "iat": int(now.timestamp()), **claims}
    header = {"alg": SET_ALGORITHM, "typ": SET_TYPE, "kid": key_id}
    return jwt.encode(header, claims, key, algorithms=[SET_ALGORITHM])


def answer_jti(claims: Mapping[str, Any]) -> str:
    """The ``jti`` of a SET: a UUID from SHA-256 over its claims except ``jti`` and ``iat``.

    Laid out as a version 4 UUID (the form FIT-Connect's examples use), but not
    random: the same answer to the same submission always gets the same ``jti``.
    """
    content = {k: v for k, v in claims.items() if k not in ("jti", "iat")}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


# How a case's event log stands to a SET the hub is about to send (:func:`answer_in_log`).
ANSWER_ABSENT = "absent"  # no accept or reject of this submission: send it
ANSWER_PRESENT = "present"  # this very SET (same jti) is there: sent before, do not repeat
ANSWER_GIVEN = "answered"  # another SET with the same event (accept or reject) is there
ANSWER_CONFLICT = "conflict"  # the other event is there: never contradict it


def unverified_claims(token: Any) -> dict[str, Any] | None:
    """The claims of a compact JWS, not verified; ``None`` if it is not one.

    Only for reading a case's event log, the delivery service's own record
    fetched over its authenticated API, and the hub's own SETs.
    """
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not all(_B64URL.fullmatch(p) for p in parts):
        return None
    try:
        claims = _strict_json(_b64url_decode(parts[1]), Reason.CONTAINER, "set")
    except (Rejection, binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def _answer(claims: Mapping[str, Any] | None) -> tuple[str, str, str] | None:
    """(submission subject, event, jti) of an accept or reject SET's claims, else ``None``."""
    if claims is None:
        return None
    events, sub, jti = claims.get("events"), claims.get("sub"), claims.get("jti")
    if not isinstance(events, dict) or not isinstance(sub, str) or not isinstance(jti, str):
        return None
    answers = [e for e in events if e in (EVENT_ACCEPT, EVENT_REJECT)]
    return (sub.lower(), answers[0], jti) if len(answers) == 1 else None


def answer_in_log(token: str, event_log: Any) -> str:
    """Whether the SET ``token`` is already answered in a case's ``eventLog``: an ``ANSWER_*`` value.

    ``present`` when a SET with the token's ``jti`` is there (the answer was
    delivered, only its acknowledgement got lost); ``answered`` when another SET
    with the same event for the same submission is there; ``conflict`` when the
    other event is (an accept where the hub would reject, or the reverse);
    ``absent`` otherwise. Entries that are not accept or reject SETs about the
    token's submission are skipped; an ``event_log`` that is not a list counts
    as empty. ``ValueError`` if ``token`` is not an accept or reject SET.
    """
    own = _answer(unverified_claims(token))
    if own is None:
        raise ValueError("not an accept-submission or reject-submission SET")
    subject, event, jti = own
    found = ANSWER_ABSENT
    for entry in event_log if isinstance(event_log, list) else ():
        logged = _answer(unverified_claims(entry))
        if logged is None or logged[0] != subject:
            continue
        if logged[1] != event:
            return ANSWER_CONFLICT
        found = ANSWER_PRESENT if logged[2] == jti or found == ANSWER_PRESENT else ANSWER_GIVEN
    return found


class SetSigner:
    """Signs the hub's SETs with its PS512 key; the key never prints and cannot be pickled.

    ``key_id`` is the ``kid`` under which the public key is registered with the
    delivery service (default: the JWK's own ``kid``); ``issuer`` overrides the
    default ``iss`` (the destination id).
    """

    __slots__ = ("_key", "issuer", "key_id")

    def __init__(
        self, key: Mapping[str, Any] | RSAKey, key_id: str | None = None, issuer: str | None = None
    ) -> None:
        self._key = set_signing_key(key)
        kid = key_id or self._key.kid
        if not kid:
            raise ValueError("the SET signing key needs a key id (kid)")
        self.key_id = kid
        self.issuer = issuer

    def __repr__(self) -> str:
        return f"SetSigner(key_id={self.key_id!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError("SetSigner cannot be pickled")

    def sign(
        self,
        kind: Literal["accept", "reject"],
        *,
        submission_id: str,
        case_id: str,
        destination_id: str,
        now: dt.datetime,
        problems: Sequence[Rejection] = (),
        authentication_tags: Mapping[str, Any] | None = None,
    ) -> str:
        return security_event_token(
            kind,
            submission_id=submission_id,
            case_id=case_id,
            destination_id=destination_id,
            signing_key=self._key,
            key_id=self.key_id,
            now=now,
            problems=problems,
            authentication_tags=authentication_tags,
            issuer=self.issuer,
        )

    def event(
        self,
        envelope: Envelope,
        outcome: str,
        reason: str | None,
        now: dt.datetime,
        original: bytes | None = None,
    ) -> str:
        """The SET answering one submission: ``accept`` unless ``outcome`` is ``"rejected"``.

        ``envelope`` comes from :func:`open_submission` or, for a bundle that
        did not open, :func:`peek`; ``reason`` is a :class:`Reason` value (an
        unknown value is sent as ``INTERNAL``); with ``original`` the SET carries
        the bundle's authentication tags.
        """
        if not (envelope.message_id and envelope.case_id and envelope.reader):
            raise ValueError(
                "the envelope lacks the FIT-Connect submission, case or destination id"
            )
        tags = None
        if original is not None:
            try:
                tags = authentication_tags(original)
            except Rejection:
                tags = None
        problems: tuple[Rejection, ...] = ()
        if outcome == "rejected":
            code = reason if reason is not None and reason in Reason.__members__ else "INTERNAL"
            problems = (Rejection(Reason(code)),)
        return self.sign(
            "reject" if problems else "accept",
            submission_id=envelope.message_id,
            case_id=envelope.case_id,
            destination_id=envelope.reader,
            now=now,
            problems=problems,
            authentication_tags=tags,
        )


def verify_set(token: str, public_key: Mapping[str, Any] | RSAKey) -> dict[str, Any]:
    """Verify a SET the way the delivery service does; return its claims.

    ``SIG_ALG`` unless the header says PS512; ``SIG_INVALID`` for a wrong
    ``typ``, a bad signature or a malformed token; ``CONTAINER`` when a validly
    signed token lacks the FIT-Connect claims or carries more than one event.
    """
    key = public_key if isinstance(public_key, RSAKey) else _import_rsa(public_key)
    if _rsa_bits(key) < MIN_RSA_BITS:
        raise ValueError(f"the SET verification key must have at least {MIN_RSA_BITS} bits")
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or not all(_B64URL.fullmatch(p) for p in parts):
        raise Rejection(Reason.SIG_INVALID, "set")
    try:
        raw_header = _b64url_decode(parts[0])
    except (binascii.Error, ValueError):
        raise Rejection(Reason.SIG_INVALID, "set/header") from None
    header = _strict_json(raw_header, Reason.SIG_INVALID, "set/header")
    if not isinstance(header, dict) or header.get("alg") != SET_ALGORITHM:
        raise Rejection(Reason.SIG_ALG, "set/header/alg")
    if header.get("typ") != SET_TYPE or "crit" in header:
        raise Rejection(Reason.SIG_INVALID, "set/header/typ")
    try:
        claims = jwt.decode(token, key, algorithms=[SET_ALGORITHM]).claims
    except (JoseError, ValueError, TypeError, KeyError):
        raise Rejection(Reason.SIG_INVALID, "set") from None
    _check_set_claims(claims)
    return claims


def _check_set_claims(claims: Mapping[str, Any]) -> None:
    for name in ("jti", "iss", "sub", "txn"):
        if not isinstance(claims.get(name), str):
            raise Rejection(Reason.CONTAINER, f"set/{name}")
    if not isinstance(claims.get("iat"), int):
        raise Rejection(Reason.CONTAINER, "set/iat")
    sub, txn = claims["sub"], claims["txn"]
    if not sub.startswith("submission:") or not _UUID.fullmatch(sub.removeprefix("submission:")):
        raise Rejection(Reason.CONTAINER, "set/sub")
    if not txn.startswith("case:") or not _UUID.fullmatch(txn.removeprefix("case:")):
        raise Rejection(Reason.CONTAINER, "set/txn")
    events = claims.get("events")
    if not isinstance(events, dict) or len(events) != 1:
        raise Rejection(Reason.CONTAINER, "set/events")
    ((event, payload),) = events.items()
    if event not in (EVENT_ACCEPT, EVENT_REJECT) or not isinstance(payload, dict):
        raise Rejection(Reason.CONTAINER, "set/events")
    if event == EVENT_REJECT and not payload.get("problems"):
        raise Rejection(Reason.CONTAINER, "set/events/problems")
