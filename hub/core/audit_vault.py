"""The audit vault: recorded inputs sealed with a per-person key, erased by deleting the key. Pure.

Audit replay re-runs a submission through dispatch and mapping, so it needs the
input: the ``submissions.accepted`` record value, which holds personal data and
must not be kept for ever. The vault keeps it encrypted with a key of its own
per person, so that erasing one key (a tombstone on the compacted
``audit.keys``) makes every input of that person unreadable, while the audit
log, its hash chain and its checkpoints stay verifiable: audit events carry only
the sealed record's digest (docs/audit-vault.md).

- A **data key** (:class:`DataKey`) is 256 random bits, made once per person
  (pseudonym) and stored on ``audit.keys`` as a :class:`PersonKey`, wrapped
  with the hub's key-encryption key (:class:`Kek`, AES-256-GCM; the associated
  data binds the person key id, the pseudonym and the KEK id, so a wrapped key
  cannot be moved to another person or key id).
- A **sealed input** (:class:`SealedInput`, on ``audit.vault``, keyed by the
  submission id) is the accepted record value encrypted with AES-256-GCM under
  the person's data key; the associated data binds the submission id, the person
  key id and the contract of the sealed value. The nonce is derived from the key,
  the submission id and the value's digest (a synthetic IV): sealing the same
  value again under the same key gives the very same record, so a re-processed
  submission does not get a second, different vault record; two different
  values never share a nonce except by a 96-bit collision.

Randomness (key ids, data keys, wrapping nonces) comes from a callable the
caller passes in, so the functions here stay deterministic in tests. Errors
(:class:`WrongKeyError`, :class:`TamperedError`, :class:`ErasedError`) name ids, never key
material or plaintext; no object here shows key bytes in its ``repr``/``str``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hub.core.errors import Reason, Rejection
from hub.core.pseudonym import PSEUDONYM
from hub.core.records import b64, b64decode_validated, decode, is_id, timestamp

KEYS = "audit.keys"  # compacted: person key id -> wrapped data key; a tombstone erases
VAULT = "audit.vault"  # submission id -> sealed accepted record value
STAGE = "vault"  # audit events of dispatch: "sealed", or "skipped" (too large to record)
SEALED = "sealed"
SKIPPED = "skipped"
ERASE_STAGE = "audit"  # the audit event of `sozialhub audit erase`
ERASED = "erased"
REWRAPPED = "rewrapped"  # the audit event of `sozialhub audit rewrap`
SEALED_CONTRACT = "sozialhub.accepted/1"  # what a sealed input holds: the accepted record value

KEY_BYTES = 32  # AES-256: data keys and the KEK
NONCE_BYTES = 12
KEY_ID_BYTES = 16
PERSON_KEY_ID = re.compile(r"pk-[0-9a-f]{32}")
KEK_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,31}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WRAP_DOMAIN = b"sozialhub.audit-person-key/1"
_SEAL_DOMAIN = b"sozialhub.audit-sealed/1"
_NONCE_DOMAIN = b"sozialhub.audit-sealed/1 nonce"

Random = Callable[[int], bytes]  # n -> n random bytes (os.urandom in the worker)
T = TypeVar("T")


class VaultError(Exception):
    """A sealed input or a person key cannot be opened. ``code`` names why; the message names ids."""

    code: ClassVar[str] = "vault"


class WrongKeyError(VaultError):
    """The key at hand is not the one the record names (another key id, person or KEK)."""

    code = "wrong-key"


class TamperedError(VaultError):
    """The record does not authenticate: altered ciphertext, nonce or bound ids, or foreign key bytes."""

    code = "tampered"


class ErasedError(VaultError):
    """The person key the record was sealed under is gone: erased (or never recorded)."""

    code = "erased"


# --- keys -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Kek:
    """The hub's key-encryption key: an id and 256 bits. Its ``repr`` shows the id only."""

    kid: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if KEK_ID.fullmatch(self.kid) is None:
            raise ValueError("a KEK id is 1 to 32 lower-case letters, digits, '.', '_' or '-'")
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"KEK {self.kid} is not {KEY_BYTES} bytes")

    def __repr__(self) -> str:
        return f"Kek(kid={self.kid!r}, key='***')"

    __str__ = __repr__


class KekRing:
    """The current KEK (wraps new person keys) and previous ones (still unwrap older keys)."""

    __slots__ = ("_by_id", "_current")

    def __init__(self, current: Kek, previous: Iterable[Kek] = ()) -> None:
        by_id = {current.kid: current}
        for kek in previous:
            if kek.kid in by_id:
                raise ValueError(f"KEK {kek.kid} is in the ring twice")
            by_id[kek.kid] = kek
        if len({k.key for k in by_id.values()}) != len(by_id):
            raise ValueError("two KEKs of the ring share their key")
        self._by_id: Mapping[str, Kek] = by_id
        self._current = current

    @property
    def current(self) -> Kek:
        return self._current

    @property
    def kids(self) -> tuple[str, ...]:
        """Every KEK id, the current one first."""
        return (self._current.kid, *sorted(k for k in self._by_id if k != self._current.kid))

    def get(self, kid: str) -> Kek | None:
        return self._by_id.get(kid)

    def __repr__(self) -> str:
        return f"KekRing(current={self._current.kid!r}, kids={list(self.kids)!r})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class DataKey:
    """A person's unwrapped data key. Its ``repr`` shows the ids only."""

    key_id: str
    person: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_BYTES:
            raise ValueError(f"data key {self.key_id} is not {KEY_BYTES} bytes")

    def __repr__(self) -> str:
        return f"DataKey(key_id={self.key_id!r}, person={self.person!r}, key='***')"

    __str__ = __repr__


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PersonKey:
    """``audit.keys`` (compacted, key ``key_id``): one data key of one person, wrapped with a KEK.

    ``wrapped_b64`` is the 12-byte nonce followed by the AES-256-GCM ciphertext and
    tag of the 32-byte data key. A tombstone under ``key_id`` erases it.
    """

    key_id: str  # pk-<32 hex>, random
    person: str  # the pseudonym psn-<key id>-<32 hex>
    kek_id: str
    wrapped_b64: str
    created_at: str
    TYPE = "sozialhub.audit-person-key"


@dataclass(frozen=True, slots=True)
class SealedInput:
    """``audit.vault`` (key ``submission_id``): a recorded input, sealed under a person key.

    ``ciphertext_b64`` is the AES-256-GCM ciphertext with its tag; its SHA-256 is
    ``ciphertext_sha256``, the ``input_sha256`` the ``vault``/``sealed`` audit event
    carries, so the audit chain covers the record without holding anything of it.
    """

    submission_id: str
    person: str
    person_key: str
    contract: str  # what the plaintext is: sozialhub.accepted/1
    nonce_b64: str
    ciphertext_b64: str
    ciphertext_sha256: str
    sealed_at: str
    TYPE = "sozialhub.audit-sealed"


VaultRecord = PersonKey | SealedInput


def encode_record(record: VaultRecord) -> bytes:
    """The record's value: compact JSON, sorted keys, ``type`` and ``v`` (as hub.core.records)."""
    body: dict[str, Any] = {"type": record.TYPE, "v": 1}
    for f in fields(record):
        body[f.name] = getattr(record, f.name)
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _checked(record: T, checks: Iterable[tuple[str, bool]]) -> T:
    for name, ok in checks:
        if not ok:
            raise Rejection(Reason.ENVELOPE, name)
    return record


def _text(value: object, pattern: re.Pattern[str]) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


def decode_person_key(data: bytes) -> PersonKey:
    """A ``sozialhub.audit-person-key/1`` value; ``ENVELOPE`` (path: the field) if it is not one."""
    record = decode(data, PersonKey)
    return _checked(
        record,
        (
            ("key_id", _text(record.key_id, PERSON_KEY_ID)),
            ("person", _text(record.person, PSEUDONYM)),
            ("kek_id", _text(record.kek_id, KEK_ID)),
            ("wrapped_b64", isinstance(record.wrapped_b64, str)),
            ("created_at", isinstance(record.created_at, str)),
        ),
    )


def decode_sealed(data: bytes) -> SealedInput:
    """A ``sozialhub.audit-sealed/1`` value; ``ENVELOPE`` (path: the field) if it is not one."""
    record = decode(data, SealedInput)
    return _checked(
        record,
        (
            ("submission_id", is_id(record.submission_id)),
            ("person", _text(record.person, PSEUDONYM)),
            ("person_key", _text(record.person_key, PERSON_KEY_ID)),
            ("contract", isinstance(record.contract, str)),
            ("nonce_b64", isinstance(record.nonce_b64, str)),
            ("ciphertext_b64", isinstance(record.ciphertext_b64, str)),
            ("ciphertext_sha256", _text(record.ciphertext_sha256, _SHA256)),
            ("sealed_at", isinstance(record.sealed_at, str)),
        ),
    )


# --- wrapping -------------------------------------------------------------------------------


def _wrap_aad(key_id: str, person: str, kek_id: str) -> bytes:
    return b"\x1f".join((_WRAP_DOMAIN, key_id.encode(), person.encode(), kek_id.encode()))


def _random(random: Random, n: int) -> bytes:
    data = random(n)
    if not isinstance(data, bytes) or len(data) != n:
        raise ValueError(f"the random source gave no {n} bytes")
    return data


def new_person_key(
    person: str, kek: Kek, random: Random, now: dt.datetime
) -> tuple[PersonKey, DataKey]:
    """A fresh data key for ``person``: its record for ``audit.keys`` and the key itself.

    ``now`` is ``created_at``. Takes 16 random bytes for the key id,
    32 for the key and 12 for the wrapping nonce.
    """
    if PSEUDONYM.fullmatch(person) is None:
        raise ValueError("a person key belongs to a pseudonym")
    key_id = "pk-" + _random(random, KEY_ID_BYTES).hex()
    key = DataKey(key_id, person, _random(random, KEY_BYTES))
    return _wrapped(key, kek, random, timestamp(now)), key


def _wrapped(key: DataKey, kek: Kek, random: Random, created_at: str) -> PersonKey:
    """The ``audit.keys`` record of ``key`` wrapped with ``kek`` (12 random bytes: the nonce)."""
    nonce = _random(random, NONCE_BYTES)
    aad = _wrap_aad(key.key_id, key.person, kek.kid)
    wrapped = nonce + AESGCM(kek.key).encrypt(nonce, key.key, aad)
    return PersonKey(
        key_id=key.key_id,
        person=key.person,
        kek_id=kek.kid,
        wrapped_b64=b64(wrapped),
        created_at=created_at,
    )


def unwrap(record: PersonKey, keks: KekRing) -> DataKey:
    """The data key of a ``audit.keys`` record: :class:`WrongKeyError` if its KEK is not in the ring,
    :class:`TamperedError` if it does not authenticate (altered, moved to another id or person, or a
    different key under the same KEK id)."""
    kek = keks.get(record.kek_id)
    if kek is None:
        raise WrongKeyError(
            f"person key {record.key_id} is wrapped with KEK {record.kek_id}, not configured"
        )
    try:
        wrapped = b64decode_validated(record.wrapped_b64)
    except (ValueError, TypeError):
        raise TamperedError(f"person key {record.key_id}: wrapped key is not base64") from None
    nonce, sealed = wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:]
    if len(nonce) != NONCE_BYTES or len(sealed) != KEY_BYTES + 16:
        raise TamperedError(f"person key {record.key_id}: wrapped key has the wrong length")
    try:
        key = AESGCM(kek.key).decrypt(
            nonce, sealed, _wrap_aad(record.key_id, record.person, kek.kid)
        )
    except InvalidTag:
        raise TamperedError(
            f"person key {record.key_id} does not authenticate under KEK {record.kek_id}"
        ) from None
    return DataKey(record.key_id, record.person, key)


def rewrap(record: PersonKey, keks: KekRing, random: Random) -> PersonKey:
    """``record`` wrapped with the ring's current KEK (KEK rotation: docs/audit-vault.md).

    The same data key, key id, person and ``created_at`` under a fresh nonce, so every
    input sealed under the key opens as before, and the KEK it was wrapped with can be
    dropped from the ring. :class:`WrongKeyError` or :class:`TamperedError` as
    :func:`unwrap`; a record under the current KEK is wrapped again all the same.
    """
    return _wrapped(unwrap(record, keks), keks.current, random, record.created_at)


def erased_meanwhile(history: Iterable[tuple[int, bool]], read_at: int, written_at: int) -> bool:
    """Whether a key was erased between a read of its record and a write of it again.

    ``history`` holds ``(offset, tombstone)`` of the key's records in its partition;
    the record was read at offset ``read_at`` and written again at ``written_at``. A
    tombstone in between was overwritten: the key is live again and must be erased again.
    """
    return any(tombstone and read_at < offset < written_at for offset, tombstone in history)


# --- sealing --------------------------------------------------------------------------------


def _seal_aad(submission_id: str, key_id: str, contract: str) -> bytes:
    return b"\x1f".join((_SEAL_DOMAIN, submission_id.encode(), key_id.encode(), contract.encode()))


def seal(
    value: bytes,
    submission_id: str,
    key: DataKey,
    now: dt.datetime,
    contract: str = SEALED_CONTRACT,
) -> SealedInput:
    """``value`` sealed under ``key`` for ``submission_id``. Deterministic for the same inputs
    (apart from ``sealed_at``, which is ``now``)."""
    digest = hashlib.sha256(value).digest()
    nonce_input = b"\x1f".join((_NONCE_DOMAIN, submission_id.encode(), digest))
    nonce = hmac.new(key.key, nonce_input, hashlib.sha256).digest()[:NONCE_BYTES]
    ciphertext = AESGCM(key.key).encrypt(
        nonce, value, _seal_aad(submission_id, key.key_id, contract)
    )
    return SealedInput(
        submission_id=submission_id,
        person=key.person,
        person_key=key.key_id,
        contract=contract,
        nonce_b64=b64(nonce),
        ciphertext_b64=b64(ciphertext),
        ciphertext_sha256=hashlib.sha256(ciphertext).hexdigest(),
        sealed_at=timestamp(now),
    )


def open_with(record: SealedInput, key: DataKey) -> bytes:
    """The sealed value. :class:`WrongKeyError` if ``key`` is not the key (or person) the record names,
    :class:`TamperedError` if the record was altered (ciphertext, its digest, nonce, submission id,
    key id or contract) or ``key`` holds other bytes under the right id."""
    if key.key_id != record.person_key or key.person != record.person:
        raise WrongKeyError(
            f"{record.submission_id} is sealed under {record.person_key}, not {key.key_id}"
        )
    try:
        nonce = b64decode_validated(record.nonce_b64)
        ciphertext = b64decode_validated(record.ciphertext_b64)
    except (ValueError, TypeError):
        raise TamperedError(f"{record.submission_id}: sealed record is not base64") from None
    if hashlib.sha256(ciphertext).hexdigest() != record.ciphertext_sha256:
        raise TamperedError(f"{record.submission_id}: ciphertext does not match its digest")
    if len(nonce) != NONCE_BYTES:
        raise TamperedError(f"{record.submission_id}: nonce has the wrong length")
    aad = _seal_aad(record.submission_id, record.person_key, record.contract)
    try:
        return AESGCM(key.key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise TamperedError(
            f"{record.submission_id} does not authenticate under {record.person_key}"
        ) from None


def open_sealed(record: SealedInput, keys: Mapping[str, PersonKey], keks: KekRing) -> bytes:
    """The sealed value, with the person key the record names looked up in ``keys`` (key id ->
    the live record on ``audit.keys``): :class:`ErasedError` when it is not there."""
    person_key = keys.get(record.person_key)
    if person_key is None:
        raise ErasedError(f"{record.submission_id}: person key {record.person_key} is erased")
    return open_with(record, unwrap(person_key, keks))


# --- dispatch -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Vault:
    """What dispatch needs to record inputs: KEKs, the person keys known, randomness.

    ``keys`` maps a pseudonym to the person's live keys, the preferred first (the
    worker's :class:`hub.stream.person_keys.PersonKeyIndex`, a dict in tests).
    """

    keks: KekRing
    keys: Mapping[str, Sequence[PersonKey]]
    random: Random = field(repr=False)


@dataclass(frozen=True, slots=True)
class Sealing:
    """A recorded input: the sealed record, and the person key made for it (None: an existing one)."""

    sealed: SealedInput
    new_key: PersonKey | None


def person_key_for(person: str, vault: Vault, now: dt.datetime) -> tuple[DataKey, PersonKey | None]:
    """The person's data key: the first known key that unwraps, else a new one (and its record).

    A key that does not unwrap (its KEK is no longer configured, or the record is
    foreign) is passed over; the person gets a new key wrapped with the current KEK.
    """
    for record in vault.keys.get(person, ()):
        if record.person != person:
            continue
        try:
            return unwrap(record, vault.keks), None
        except VaultError:
            continue
    record, key = new_person_key(person, vault.keks.current, vault.random, now)
    return key, record


def seal_input(
    value: bytes, submission_id: str, person: str, vault: Vault, now: dt.datetime
) -> Sealing:
    """Seal an accepted record value for audit replay under ``person``'s key (made if missing)."""
    key, new_key = person_key_for(person, vault, now)
    return Sealing(seal(value, submission_id, key, now), new_key)


# --- erasure --------------------------------------------------------------------------------


def keys_of(persons: Iterable[str], live: Mapping[str, PersonKey]) -> dict[str, tuple[str, ...]]:
    """Per pseudonym of ``persons``: the ids of its live keys (sorted), for persons holding any."""
    wanted = set(persons)
    found: dict[str, list[str]] = {}
    for key_id, record in live.items():
        if record.person in wanted:
            found.setdefault(record.person, []).append(key_id)
    return {person: tuple(sorted(ids)) for person, ids in sorted(found.items())}


def erasure_target(person: str, key_ids: Sequence[str]) -> str:
    """What the ``audit``/``erased`` event id is made of besides the pseudonym: the erased key ids.

    Erasing the same keys again gives the same event id (deduplicated); a later
    erasure of keys made since is a new event. The ids are hashed into the event
    id only; the event itself names the pseudonym and the count.
    """
    return "\x1f".join((person, *sorted(key_ids)))
