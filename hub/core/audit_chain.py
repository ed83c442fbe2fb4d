"""The tamper-evident audit log: hash-chained entries and signed Merkle checkpoints. Pure.

Every ``audit.log`` event is wrapped once in an **entry** on ``audit.chain``
(partition *p* of the chain holds the events of ``audit.log`` partition *p*)::

    {"_hash":"<sha256 hex>","at":"…","event":{…},"partition":p,"prev":"<sha256 hex>",
     "seq":n,"source":{"offset":o,"partition":p,"topic":"audit.log"},
     "type":"sozialhub.audit-entry","v":1}

The value is compact JSON with sorted keys. ``_hash`` is the SHA-256 of the
same JSON object without its ``_hash`` member, i.e. of ``{`` followed by the
bytes after ``"_hash":"<64 hex>",``: a verifier hashes the stored bytes and
never re-serialises. ``prev`` is the previous entry's ``_hash`` (64 zeros for
``seq`` 0), ``seq`` counts entries of the partition from 0. An event that is
not a valid audit event is chained as ``{"event":null,"rejected":"ENVELOPE",
"event_sha256":…}``: the log keeps the fact, never foreign bytes.

A **checkpoint** on ``audit.checkpoints`` (same partition) covers the entries
``first_seq``..``last_seq`` written since the previous checkpoint: ``root`` is
their Merkle tree hash as RFC 9162 section 2.1.1 defines it (leaf input: the
entry's 32-byte hash), ``head`` the last entry's hash, ``prev_checkpoint`` the
SHA-256 of the previous checkpoint's signed bytes. ``_signature`` (base64) signs
the checkpoint without its ``_signature`` member with the hub's key; the
certificate is named by ``cert_sha256`` and must be among the verifier's
trusted certificates.

:func:`verify_partition` checks one partition and reports each finding with
its kind (:data:`KINDS`) and offset.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hub.core.errors import Rejection
from hub.core.receipt import ReceiptSigner
from hub.core.records import AuditEvent, SourceRef, decode, timestamp

ENTRY_TYPE = "sozialhub.audit-entry"
CHECKPOINT_TYPE = "sozialhub.audit-checkpoint"
GENESIS = "0" * 64
_OPTIONS = orjson.OPT_SORT_KEYS
_HASH_PREFIX = b'{"_hash":"'
_SIGNATURE_PREFIX = b'{"_signature":"'
_LEAF, _NODE = b"\x00", b"\x01"
_BRACE = hashlib.sha256(b"{")  # copied per entry: the start every entry hash shares

# Finding kinds, in the order docs/audit.md explains them.
ALTERED = "altered"  # an entry's content or hash differs from what was chained
REMOVED = "removed"  # entries are missing (a gap in seq, or the tail is cut off)
REORDERED = "reordered"  # entries are out of order
INSERTED = "inserted"  # an entry that was never chained (foreign record, copy, forged seq)
CHECKPOINT_FORGED = "checkpoint-forged"  # bad signature, untrusted or unfit certificate
CHECKPOINT_MISMATCH = "checkpoint-mismatch"  # the signed root does not match the entries
CHECKPOINT_REMOVED = "checkpoint-removed"  # the checkpoint chain has a gap
KINDS = (
    ALTERED,
    REMOVED,
    REORDERED,
    INSERTED,
    CHECKPOINT_FORGED,
    CHECKPOINT_MISMATCH,
    CHECKPOINT_REMOVED,
)

# Algorithms a checkpoint may be signed with, by key type (no SHA-1, no PKCS#1 v1.5).
CHECKPOINT_ALGORITHMS: dict[str, tuple[type[Any], type[hashes.SHA256 | hashes.SHA384]]] = {
    "ecdsa-sha256": (ec.EllipticCurvePublicKey, hashes.SHA256),
    "ecdsa-sha384": (ec.EllipticCurvePublicKey, hashes.SHA384),
    "rsa-pss-sha256": (rsa.RSAPublicKey, hashes.SHA256),
}


def canonical(obj: Mapping[str, Any]) -> bytes:
    """Compact JSON with sorted keys (orjson); what the chain stores and hashes."""
    return orjson.dumps(obj, option=_OPTIONS)


# ---------------------------------------------------------------------------------------------
# Merkle tree hash (RFC 9162 section 2.1.1)


def leaf_hash(entry_hash: bytes) -> bytes:
    return hashlib.sha256(_LEAF + entry_hash).digest()


def merkle_root(entry_hashes: Sequence[bytes]) -> bytes:
    """MTH over the leaves ``entry_hashes`` (raw 32-byte entry hashes), RFC 9162 2.1.1.

    The tree splits at the largest power of two below n; built bottom-up, this is
    the same as pairing left to right and carrying an odd last node up unchanged.
    """
    if not entry_hashes:
        return hashlib.sha256(b"").digest()
    sha256 = hashlib.sha256
    level = [sha256(_LEAF + h).digest() for h in entry_hashes]
    while len(level) > 1:
        paired = [
            sha256(_NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


# ---------------------------------------------------------------------------------------------
# Entries


@dataclass(frozen=True, slots=True)
class Head:
    """The chainer's state for one partition: where the next entry goes and what it links to.

    ``pending`` holds the hashes of the entries since the last checkpoint (for its
    root), ``pending_first`` the seq and offset of the first of them.
    """

    partition: int
    seq: int = 0
    prev: str = GENESIS
    source_offset: int = -1  # the last audit.log offset chained; lower ones are replays
    pending: tuple[bytes, ...] = ()
    pending_first_offset: int | None = None
    last_offset: int | None = None  # audit.chain offset of the last entry, once known
    prev_checkpoint: str = GENESIS
    pending_since: dt.datetime | None = None  # when the first pending entry was chained


def _event_object(value: bytes) -> dict[str, Any]:
    """The event as the entry carries it: the decoded audit event, or the fact of a foreign one."""
    try:
        decode(value, AuditEvent)
        parsed = orjson.loads(value)
    except (Rejection, orjson.JSONDecodeError):
        parsed = None
    if isinstance(parsed, dict):
        # Members that are null are left out: a reader takes a missing field as null
        # (docs/audit-events.md), and the chain stays half the size.
        return {"event": {k: v for k, v in parsed.items() if v is not None}}
    return {
        "event": None,
        "rejected": "ENVELOPE",
        "event_sha256": hashlib.sha256(value).hexdigest(),
    }


def seal_entry(body: Mapping[str, Any]) -> tuple[bytes, str]:
    """An entry's stored bytes and its hash, from its members without ``_hash``."""
    encoded = canonical(body)
    digest = hashlib.sha256(encoded).hexdigest()
    return _HASH_PREFIX + digest.encode("ascii") + b'",' + encoded[1:], digest


def append(head: Head, value: bytes, source: SourceRef, now: dt.datetime) -> tuple[bytes, Head]:
    """The entry for the ``audit.log`` record ``value`` at ``source``, and the head after it."""
    body = {
        "type": ENTRY_TYPE,
        "v": 1,
        "at": timestamp(now),
        "partition": head.partition,
        "seq": head.seq,
        "prev": head.prev,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset},
        **_event_object(value),
    }
    stored, digest = seal_entry(body)
    return stored, replace(
        head,
        seq=head.seq + 1,
        prev=digest,
        source_offset=source.offset,
        pending=(*head.pending, bytes.fromhex(digest)),
        pending_since=head.pending_since if head.pending else now,
    )


def placed(head: Head, first_offset: int, last_offset: int) -> Head:
    """The head once the broker acknowledged the entries appended since the last call,
    the first of them at ``first_offset`` and the last at ``last_offset`` of audit.chain."""
    first = head.pending_first_offset if head.pending_first_offset is not None else first_offset
    return replace(head, last_offset=last_offset, pending_first_offset=first)


class Entry(NamedTuple):
    """One stored entry, as far as its bytes could be read (a tuple: verify makes millions)."""

    offset: int
    seq: int | None
    prev: str | None
    stored_hash: str | None
    actual_hash: str | None
    source_offset: int | None = None
    event: dict[str, Any] | None = None

    @property
    def well_formed(self) -> bool:
        return self.seq is not None and self.prev is not None and self.stored_hash is not None

    @property
    def intact(self) -> bool:
        return self.well_formed and self.stored_hash == self.actual_hash


def read_entry(offset: int, value: bytes | None, *, with_event: bool = False) -> Entry:
    """Split a stored entry into what verification needs; never raises."""
    if not value or not value.startswith(_HASH_PREFIX) or value[74:76] != b'",':
        return Entry(offset, None, None, None, None)
    body = b"{" + value[76:]
    actual = hashlib.sha256(body).hexdigest()
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return Entry(offset, None, None, None, actual)
    if not isinstance(parsed, dict):
        return Entry(offset, None, None, None, actual)
    seq, prev, source = parsed.get("seq"), parsed.get("prev"), parsed.get("source")
    if (
        type(seq) is not int
        or not isinstance(prev, str)
        or len(prev) != 64
        or parsed.get("type") != ENTRY_TYPE
    ):
        return Entry(offset, None, None, None, actual)
    source_offset = source.get("offset") if isinstance(source, dict) else None
    event = parsed.get("event") if with_event else None
    return Entry(
        offset,
        seq,
        prev,
        value[10:74].decode("ascii", "replace"),
        actual,
        source_offset if type(source_offset) is int else None,
        event if isinstance(event, dict) else None,
    )


def resume(
    partition: int,
    entries: Iterable[tuple[int, bytes | None]],
    last_checkpoint: bytes | None,
) -> Head:
    """The head of a partition from its last checkpoint and the entries after it (or all).

    ``entries`` are the stored entries after the checkpoint's ``last_offset`` (or
    the whole partition without a checkpoint). The chainer trusts its own log
    here; ``audit verify`` is what checks it.
    """
    head = Head(partition)
    if last_checkpoint is not None:
        checkpoint = read_checkpoint(0, last_checkpoint)
        if checkpoint.body is not None:
            body = checkpoint.body
            head = Head(
                partition,
                seq=int(body["last_seq"]) + 1,
                prev=str(body["head"]),
                source_offset=int(body.get("last_source_offset", -1)),
                last_offset=int(body["last_offset"]),
                prev_checkpoint=checkpoint.digest,
            )
    for offset, value in entries:
        entry = read_entry(offset, value)
        if not entry.well_formed or entry.seq is None or entry.seq < head.seq:
            continue  # a foreign record or an older entry: not this chainer's to link to
        first = head.pending_first_offset if head.pending else offset
        head = replace(
            head,
            seq=entry.seq + 1,
            prev=entry.stored_hash or GENESIS,
            source_offset=max(head.source_offset, entry.source_offset or -1),
            pending=(*head.pending, bytes.fromhex(entry.stored_hash or GENESIS)),
            pending_first_offset=first,
            last_offset=offset,
        )
    return head


# ---------------------------------------------------------------------------------------------
# Checkpoints


def _fingerprint(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def _algorithm(signer: ReceiptSigner) -> str:
    """The checkpoint algorithm for the signer's key: its ECDSA hash, RSA always PSS."""
    if isinstance(signer.key, ec.EllipticCurvePrivateKey):
        return "ecdsa-sha384" if signer.algorithm == "ecdsa-sha384" else "ecdsa-sha256"
    if isinstance(signer.key, rsa.RSAPrivateKey):
        return "rsa-pss-sha256"
    raise ValueError("unsupported checkpoint key")


def _sign(signer: ReceiptSigner, data: bytes) -> bytes:
    key, algorithm = signer.key, _algorithm(signer)
    chosen = hashes.SHA384() if algorithm == "ecdsa-sha384" else hashes.SHA256()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(chosen))
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    return key.sign(data, pss, chosen)


def checkpoint_due(head: Head, now: dt.datetime, *, every: int, interval: dt.timedelta) -> bool:
    """Time for a checkpoint: ``every`` entries pending, or any pending for ``interval``."""
    if not head.pending or head.last_offset is None:
        return False
    if len(head.pending) >= every:
        return True
    # Entries found pending when a chainer resumed are of unknown age: sign them soon.
    return head.pending_since is None or now - head.pending_since >= interval


def make_checkpoint(head: Head, signer: ReceiptSigner, now: dt.datetime) -> tuple[bytes, Head]:
    """The signed checkpoint over the pending entries, and the head after it.

    Only for placed entries (:func:`placed`): the checkpoint names their offsets.
    """
    if not head.pending or head.last_offset is None or head.pending_first_offset is None:
        raise ValueError("no placed entries to checkpoint")
    size = len(head.pending)
    body = {
        "type": CHECKPOINT_TYPE,
        "v": 1,
        "at": timestamp(now),
        "partition": head.partition,
        "first_seq": head.seq - size,
        "last_seq": head.seq - 1,
        "first_offset": head.pending_first_offset,
        "last_offset": head.last_offset,
        "last_source_offset": head.source_offset,
        "size": size,
        "root": merkle_root(head.pending).hex(),
        "head": head.prev,
        "prev_checkpoint": head.prev_checkpoint,
        "cert_sha256": _fingerprint(signer.certificate),
    }
    body["alg"] = _algorithm(signer)
    signed = canonical(body)
    signature = _sign(signer, signed)
    stored = _SIGNATURE_PREFIX + base64.b64encode(signature) + b'",' + signed[1:]
    after = replace(
        head,
        pending=(),
        pending_first_offset=None,
        prev_checkpoint=hashlib.sha256(signed).hexdigest(),
        pending_since=None,
    )
    return stored, after


@dataclass(frozen=True, slots=True)
class Checkpoint:
    offset: int
    body: dict[str, Any] | None  # None: not a checkpoint at all
    signed: bytes = b""
    signature: bytes = b""
    digest: str = ""


_CHECKPOINT_FIELDS = {
    "partition": int,
    "first_seq": int,
    "last_seq": int,
    "first_offset": int,
    "last_offset": int,
    "size": int,
    "root": str,
    "head": str,
    "prev_checkpoint": str,
    "cert_sha256": str,
    "alg": str,
    "at": str,
}


def read_checkpoint(offset: int, value: bytes | None) -> Checkpoint:
    """Split a stored checkpoint into its signed bytes, signature and members; never raises."""
    if not value or not value.startswith(_SIGNATURE_PREFIX):
        return Checkpoint(offset, None)
    end = value.find(b'",', len(_SIGNATURE_PREFIX))
    if end < 0:
        return Checkpoint(offset, None)
    signed = b"{" + value[end + 2 :]
    try:
        signature = base64.b64decode(value[len(_SIGNATURE_PREFIX) : end], validate=True)
        body = orjson.loads(signed)
    except (ValueError, orjson.JSONDecodeError):
        return Checkpoint(offset, None)
    if not isinstance(body, dict) or body.get("type") != CHECKPOINT_TYPE:
        return Checkpoint(offset, None)
    for name, kind in _CHECKPOINT_FIELDS.items():
        if type(body.get(name)) is not kind:
            return Checkpoint(offset, None)
    return Checkpoint(offset, body, signed, signature, hashlib.sha256(signed).hexdigest())


def _parse_time(text: str) -> dt.datetime | None:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def signature_problem(  # noqa: C901, PLR0911 - one check per line, in order
    checkpoint: Checkpoint, trusted: Mapping[str, x509.Certificate]
) -> str | None:
    """Why the checkpoint's signature cannot be trusted, or None when it verifies.

    The certificate must be trusted (by SHA-256 fingerprint), valid at the
    checkpoint's time, allowed to sign (KeyUsage digitalSignature) and fit the
    algorithm, which must be on the allow-list.
    """
    body = checkpoint.body
    if body is None:
        return "not a checkpoint"
    certificate = trusted.get(str(body["cert_sha256"]))
    if certificate is None:
        return "certificate not trusted"
    allowed = CHECKPOINT_ALGORITHMS.get(str(body["alg"]))
    if allowed is None:
        return "algorithm not allowed"
    key_type, hash_type = allowed
    key = certificate.public_key()
    if not isinstance(key, key_type):
        return "algorithm does not fit the key"
    moment = _parse_time(str(body["at"]))
    if moment is None:
        return "time unreadable"
    if not certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc:
        return "certificate not valid at the checkpoint's time"
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        return "certificate may not sign"
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(checkpoint.signature, checkpoint.signed, ec.ECDSA(hash_type()))
        elif isinstance(key, rsa.RSAPublicKey):
            pss = padding.PSS(mgf=padding.MGF1(hash_type()), salt_length=32)
            key.verify(checkpoint.signature, checkpoint.signed, pss, hash_type())
    except InvalidSignature:
        return "signature does not verify"
    return None


def trust_store(certificates: Iterable[x509.Certificate]) -> dict[str, x509.Certificate]:
    """Trusted hub certificates by SHA-256 fingerprint (current and next during a rotation)."""
    return {_fingerprint(c): c for c in certificates}


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle."""
    return x509.load_pem_x509_certificates(data)


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong, where it is: the topic (``audit.chain`` or ``audit.checkpoints``),
    partition and offset; ``seq`` where known; ``detail`` a short explanation."""

    kind: str
    topic: str
    partition: int
    offset: int
    seq: int | None = None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "seq": self.seq,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class PartitionReport:
    partition: int
    entries: int
    checkpoints: int
    findings: tuple[Finding, ...]
    first_seq: int | None = None
    last_seq: int | None = None
    head: str | None = None
    unsigned: int = 0  # entries after the last checkpoint (not yet covered by a signature)
    anchored: bool = False  # the range did not start at the genesis entry

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "entries": self.entries,
            "checkpoints": self.checkpoints,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "head": self.head,
            "unsigned": self.unsigned,
            "anchored": self.anchored,
            "ok": self.ok,
            "first_finding": self.findings[0].as_dict() if self.findings else None,
            "findings": [f.as_dict() for f in self.findings],
        }


CHAIN = "audit.chain"
CHECKPOINTS = "audit.checkpoints"


@dataclass
class _Walk:
    """Walks the entries of one partition in offset order and classifies what breaks.

    ``accepted`` maps each seq to the entry the chain continues from; a twin
    (a second entry with a seq already taken), a copy, or an entry that appears
    in a gap that was reported as reordering is not accepted.
    """

    partition: int
    entries: list[Entry]
    anchored: bool
    findings: list[Finding] = field(default_factory=list)
    accepted: dict[int, Entry] = field(default_factory=dict)

    def add(self, kind: str, entry: Entry, detail: str) -> None:
        self.findings.append(Finding(kind, CHAIN, self.partition, entry.offset, entry.seq, detail))

    def run(self) -> None:  # noqa: C901, PLR0912 - the classification table, top to bottom
        entries = self.entries
        linked = {e.prev for e in entries if e.well_formed}  # hashes that some entry links to
        positions: dict[int, list[int]] = {}
        for index, e in enumerate(entries):
            if e.seq is not None:
                positions.setdefault(e.seq, []).append(index)
        expected: int | None = None
        prev: str | None = None
        reordered: set[int] = set()
        for index, entry in enumerate(entries):
            seq = entry.seq
            if seq is None or not entry.well_formed:
                self.add(INSERTED, entry, "not a chain entry")
                continue
            if not entry.intact:
                self.add(ALTERED, entry, "the entry does not match its hash")
            places = positions[seq]
            twins = [entries[i] for i in places if i > index] if len(places) > 1 else []
            if expected is None:
                self._first(entry)
            elif seq == expected:
                if twins and self._is_twin(entry, prev, twins, linked):
                    self.add(INSERTED, entry, f"a second entry claims seq {seq}")
                    continue
                if entry.prev != prev and entry.intact:
                    before = self.accepted.get(seq - 1)
                    if before is not None and before.intact:
                        detail = "the next entry does not link to this entry's hash"
                        self.findings.append(
                            Finding(
                                ALTERED, CHAIN, self.partition, before.offset, before.seq, detail
                            )
                        )
            elif seq < expected:
                if seq in self.accepted:
                    self.add(INSERTED, entry, f"seq {seq} is already in the log")
                elif seq not in reordered:
                    self.add(REORDERED, entry, f"seq {seq} comes after seq {expected - 1}")
                continue
            else:  # a gap: entries of the gap later in the log mean reordering
                later = [
                    s for s in range(expected, seq) if any(i > index for i in positions.get(s, ()))
                ]
                if later:
                    self.add(REORDERED, entry, f"seq {seq} comes before seq {later[0]}")
                    reordered.update(later)
                else:
                    self.add(REMOVED, entry, _missing(expected, seq - 1))
            expected, prev = seq + 1, entry.stored_hash
            self.accepted[seq] = entry

    def _first(self, entry: Entry) -> None:
        if self.anchored:
            return  # a range after the genesis: its first link is taken as given
        if entry.seq != 0:
            self.add(REMOVED, entry, _missing(0, (entry.seq or 1) - 1))
        elif entry.prev != GENESIS and entry.intact:
            self.add(ALTERED, entry, "the first entry does not start the chain")

    @staticmethod
    def _is_twin(
        entry: Entry, prev: str | None, twins: list[Entry], linked: set[str | None]
    ) -> bool:
        """Whether ``entry`` is the forged one of several entries claiming its seq.

        The genuine entry links to the chain so far and is linked to by its
        successor; a forger can copy the first but not the second.
        """
        if entry.prev != prev:
            return any(t.prev == prev for t in twins)
        if entry.stored_hash in linked:
            return False
        return any(t.prev == prev and t.stored_hash in linked for t in twins)


def _missing(first: int, last: int) -> str:
    return f"seq {first} is missing" if first == last else f"seq {first}..{last} are missing"


@dataclass(frozen=True, slots=True)
class _Accepted:
    """The entries the chain continues through, by seq: a contiguous run (the fast path) or a
    mapping (after the classifier); each as (offset, hash)."""

    first: int | None
    offsets: Sequence[int] = ()
    hashes: Sequence[str] = ()
    by_seq: Mapping[int, tuple[int, str]] | None = None

    @property
    def last(self) -> int:
        if self.by_seq is not None:
            return max(self.by_seq, default=-1)
        return -1 if self.first is None else self.first + len(self.hashes) - 1

    def hashes_of(self, first: int, last: int) -> list[str] | None:
        """The hashes of seq ``first``..``last``, or None when one of them is not accepted."""
        if self.by_seq is None:
            if self.first is None or first < self.first or last > self.last:
                return None
            return list(self.hashes[first - self.first : last - self.first + 1])
        found = [self.by_seq.get(seq) for seq in range(first, last + 1)]
        return [leaf[1] for leaf in found if leaf is not None] if all(found) else None

    def get(self, seq: int) -> tuple[int, str] | None:
        if self.by_seq is not None:
            return self.by_seq.get(seq)
        if self.first is None or not self.first <= seq <= self.last:
            return None
        index = seq - self.first
        return self.offsets[index], self.hashes[index]


def _fast_run(  # noqa: PLR0911 - one way out per thing that is not the common case
    entries: Sequence[tuple[int, bytes | None]], *, anchored: bool
) -> _Accepted | None:
    """The common case in one tight loop: every entry intact and linked to the one before.

    None at the first thing that is not so; the classifier then reads the partition again.
    """
    brace, loads = _BRACE, orjson.loads
    offsets: list[int] = []
    hashes: list[str] = []
    expected: int | None = None
    prev = GENESIS
    for offset, value in entries:
        if not value or value[:10] != _HASH_PREFIX or value[74:76] != b'",':
            return None
        hasher = brace.copy()  # SHA-256 of "{" + the bytes after `"_hash":"…",`, no copy made
        hasher.update(memoryview(value)[76:])
        digest = hasher.hexdigest()
        try:
            parsed = loads(value)
            seq, link, kind = parsed["seq"], parsed["prev"], parsed["type"]
            stored = parsed["_hash"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None
        if stored != digest:
            return None
        if kind != ENTRY_TYPE or type(seq) is not int:
            return None
        if expected is None:
            if not anchored and (seq != 0 or link != GENESIS):
                return None
        elif seq != expected or link != prev:
            return None
        offsets.append(offset)
        hashes.append(digest)
        prev, expected = digest, seq + 1
    first = None if expected is None else expected - len(hashes)
    return _Accepted(first, offsets, hashes)


def _classified(
    partition: int, entries: Sequence[tuple[int, bytes | None]], *, anchored: bool
) -> tuple[_Accepted, list[Finding], int]:
    """The slow path: every entry read and classified; accepted entries, findings, count."""
    read = [read_entry(offset, value) for offset, value in entries]
    walk = _Walk(partition, read, anchored)
    walk.run()
    by_seq = {
        seq: (entry.offset, entry.stored_hash or GENESIS) for seq, entry in walk.accepted.items()
    }
    return _Accepted(min(by_seq, default=None), by_seq=by_seq), walk.findings, len(read)


def verify_partition(  # noqa: C901 - entries, then each checkpoint in turn
    partition: int,
    entries: Iterable[tuple[int, bytes | None]],
    checkpoints: Iterable[tuple[int, bytes | None]],
    trusted: Mapping[str, x509.Certificate],
    *,
    anchored: bool = False,
    to_end: bool = True,
    end_offset: int | None = None,
) -> PartitionReport:
    """Check one partition of ``audit.chain`` against its ``audit.checkpoints``.

    ``entries`` and ``checkpoints`` are (offset, value) in offset order.
    ``anchored``: the range starts after the genesis entry (a retention limit or
    an explicit ``--from-offset``), so its first entry's ``prev`` is taken as
    given and the checkpoint chain may start anywhere. ``to_end``: the entries
    run to the end of the partition, so a checkpoint that signs entries beyond
    them proves a cut-off tail (reported at ``end_offset``).
    """
    stored = entries if isinstance(entries, list) else list(entries)
    accepted = _fast_run(stored, anchored=anchored)
    entry_findings: list[Finding] = []
    if accepted is None:
        accepted, entry_findings, _ = _classified(partition, stored, anchored=anchored)
    findings = list(entry_findings)
    first_read, last_read = accepted.first, accepted.last
    after_end = end_offset if end_offset is not None else (stored[-1][0] + 1 if stored else 0)
    checked = 0
    covered_to: int | None = None  # last seq of the previous trusted checkpoint
    prev_digest = GENESIS
    for offset, value in checkpoints:
        checkpoint = read_checkpoint(offset, value)
        body = checkpoint.body
        if body is None or body["partition"] != partition:
            findings.append(
                Finding(CHECKPOINT_FORGED, CHECKPOINTS, partition, offset, None, "not a checkpoint")
            )
            continue
        first, last = int(body["first_seq"]), int(body["last_seq"])
        problem = signature_problem(checkpoint, trusted)
        if problem is not None:
            findings.append(
                Finding(CHECKPOINT_FORGED, CHECKPOINTS, partition, offset, first, problem)
            )
            continue
        checked += 1
        if covered_to is None and anchored:
            pass  # the checkpoint chain of an anchored range starts where it starts
        elif first != (0 if covered_to is None else covered_to + 1) or (
            body["prev_checkpoint"] != prev_digest
        ):
            detail = f"expected a checkpoint from seq {0 if covered_to is None else covered_to + 1}"
            findings.append(
                Finding(CHECKPOINT_REMOVED, CHECKPOINTS, partition, offset, first, detail)
            )
        covered_to, prev_digest = last, checkpoint.digest
        if first_read is None or first < first_read:
            continue  # starts before the entries read (anchored range): not recomputable here
        if last > last_read:
            if to_end and not any(f.kind == REMOVED for f in findings):
                detail = f"signed seq {last_read + 1}..{last} are not in the log"
                findings.append(
                    Finding(REMOVED, CHAIN, partition, after_end, last_read + 1, detail)
                )
            continue
        if any(f.seq is not None and first <= f.seq <= last for f in entry_findings):
            continue  # an entry finding inside the range already says what changed
        leaves = accepted.hashes_of(first, last)
        if leaves is None:
            continue  # a gap inside the range: reported as removed or reordered already
        root = merkle_root([bytes.fromhex(leaf) for leaf in leaves])
        if root.hex() != body["root"] or leaves[-1] != body["head"]:
            detail = f"entries seq {first}..{last} do not match the root signed at offset {offset}"
            located = accepted.get(first)
            start = located[0] if located is not None else after_end
            findings.append(Finding(CHECKPOINT_MISMATCH, CHAIN, partition, start, first, detail))
    findings.sort(key=lambda f: (f.topic != CHAIN, f.offset))
    last_entry = accepted.get(last_read)
    signed_to = -1 if covered_to is None else covered_to
    return PartitionReport(
        partition=partition,
        entries=len(stored),
        checkpoints=checked,
        findings=tuple(findings),
        first_seq=first_read,
        last_seq=None if first_read is None else last_read,
        head=None if last_entry is None else last_entry[1],
        unsigned=0 if first_read is None else max(0, last_read - signed_to),
        anchored=anchored,
    )
