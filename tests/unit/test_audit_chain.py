"""The audit chain (hub.core.audit_chain): entries, RFC 9162 Merkle roots, signed checkpoints,
and verification that reports every kind of tampering at the offset where it happened.

Each forgery test builds a clean chain of real entries with a real checkpoint
signature (keys and certificates made here), changes the stored log the way an
attacker with write access to the topic could, and checks the finding's kind
and offset.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from dataclasses import dataclass, replace

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.core import audit_chain as chain
from hub.core.pipeline import audit
from hub.core.receipt import ReceiptSigner
from hub.core.records import SourceRef
from tests.sigtools import NOW, issue

SUB = "sub-" + "a" * 32


@dataclass(frozen=True)
class Log:
    entries: list[tuple[int, bytes | None]]
    checkpoints: list[tuple[int, bytes | None]]


def signer(
    kind: str = "ec", *, not_after: dt.datetime | None = None, usage: str = "sign"
) -> ReceiptSigner:
    if kind == "ec":
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey = ec.generate_private_key(
            ec.SECP256R1()
        )
        algorithm = "ecdsa-sha256"
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        algorithm = "rsa-pss-sha256"
    certificate = issue(
        key.public_key(),
        "sozialhub audit",
        self_key=key,
        usage=usage,
        not_after=not_after or NOW + dt.timedelta(days=365),
    )
    return ReceiptSigner(key, certificate, algorithm)


HUB = signer()
TRUSTED = chain.trust_store([HUB.certificate])


def event(n: int) -> bytes:
    return audit(SUB, "deliver", "delivered", NOW, office=f"office-{n}").value


def build(count: int = 12, every: int = 4, who: ReceiptSigner = HUB, partition: int = 0) -> Log:
    """``count`` entries at offsets 0.., a checkpoint after every ``every`` entries."""
    head = chain.Head(partition)
    entries: list[tuple[int, bytes | None]] = []
    checkpoints: list[tuple[int, bytes | None]] = []
    for n in range(count):
        moment = NOW + dt.timedelta(seconds=n)
        value, head = chain.append(
            head, event(n), SourceRef("audit.log", partition, 100 + n), moment
        )
        head = chain.placed(head, n, n)
        entries.append((n, value))
        if chain.checkpoint_due(head, moment, every=every, interval=dt.timedelta(hours=1)):
            stored, head = chain.make_checkpoint(head, who, moment)
            checkpoints.append((len(checkpoints), stored))
    return Log(entries, checkpoints)


def verify(log: Log, **options: object) -> chain.PartitionReport:
    return chain.verify_partition(0, log.entries, log.checkpoints, TRUSTED, **options)  # type: ignore[arg-type]


def kinds(report: chain.PartitionReport) -> list[tuple[str, int]]:
    return [(f.kind, f.offset) for f in report.findings]


def body_of(value: bytes) -> dict[str, object]:
    parsed = orjson.loads(value)
    assert isinstance(parsed, dict)
    del parsed["_hash"]
    return parsed


def rehash(body: dict[str, object]) -> bytes:
    return chain.seal_entry(body)[0]


def reoffset(values: list[bytes | None]) -> list[tuple[int, bytes | None]]:
    return list(enumerate(values))


def values(log: Log) -> list[bytes | None]:
    return [v for _, v in log.entries]


# --- the clean chain -----------------------------------------------------------------------------


def test_a_clean_chain_verifies_with_its_checkpoints() -> None:
    log = build(13, every=4)
    report = verify(log)
    assert report.ok, report.findings
    assert (report.entries, report.checkpoints, report.first_seq, report.last_seq) == (13, 3, 0, 12)
    assert report.unsigned == 1  # the 13th entry waits for the next checkpoint


def test_entry_layout_hash_covers_everything_but_itself() -> None:
    value = build(1).entries[0][1]
    assert value is not None
    parsed = orjson.loads(value)
    assert list(parsed) == sorted(parsed)  # sorted keys, `_hash` first
    assert parsed["seq"] == 0
    assert parsed["prev"] == chain.GENESIS
    assert parsed["source"] == {"topic": "audit.log", "partition": 0, "offset": 100}
    without = {k: v for k, v in parsed.items() if k != "_hash"}
    assert hashlib.sha256(chain.canonical(without)).hexdigest() == parsed["_hash"]
    assert parsed["event"]["stage"] == "deliver"


def test_a_foreign_audit_log_record_is_chained_as_a_fact_without_its_bytes() -> None:
    secret = b'{"name":"Erika Mustermann","street":"Musterweg 1"}'
    value, _ = chain.append(chain.Head(0), secret, SourceRef("audit.log", 0, 7), NOW)
    parsed = orjson.loads(value)
    assert parsed["event"] is None
    assert parsed["rejected"] == "ENVELOPE"
    assert parsed["event_sha256"] == hashlib.sha256(secret).hexdigest()
    assert b"Mustermann" not in value
    assert b"Musterweg" not in value


# --- Merkle tree hash against the RFC 9162 definition ----------------------------------------------


def reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 literally: split at the largest power of two smaller than n."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + reference_mth(leaves[:k]) + reference_mth(leaves[k:])).digest()


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=70))
def test_merkle_root_is_the_rfc_9162_tree_hash(leaves: list[bytes]) -> None:
    assert chain.merkle_root(leaves) == reference_mth(leaves)


def test_merkle_root_of_rfc_9162_style_vectors() -> None:
    # The empty tree is SHA-256 of the empty string (RFC 9162 2.1.1).
    assert chain.merkle_root([]).hex() == hashlib.sha256(b"").hexdigest()
    one = b"\x11" * 32
    assert chain.merkle_root([one]) == hashlib.sha256(b"\x00" + one).digest()
    assert chain.merkle_root([one, one]) != chain.merkle_root([one])


# --- each kind of tampering ------------------------------------------------------------------------


def test_altered_content_is_found_at_its_offset() -> None:
    log = build()
    stored = values(log)
    assert stored[5] is not None
    stored[5] = stored[5].replace(b"office-5", b"office-X")
    report = verify(replace(log, entries=reoffset(stored)))
    assert kinds(report)[0] == (chain.ALTERED, 5)
    assert not report.ok


def test_altered_entry_with_a_recomputed_hash_is_found_at_its_offset() -> None:
    log = build()
    stored = values(log)
    assert stored[6] is not None
    body = body_of(stored[6])
    body["event"] = {**body["event"], "office": "forged"}  # type: ignore[dict-item]
    stored[6] = rehash(body)
    report = verify(replace(log, entries=reoffset(stored)))
    assert kinds(report) == [(chain.ALTERED, 6)]


def test_a_removed_entry_is_found_where_the_gap_is() -> None:
    log = build()
    stored = values(log)
    del stored[4]
    report = verify(replace(log, entries=reoffset(stored)))
    assert kinds(report)[0] == (chain.REMOVED, 4)
    assert report.findings[0].detail == "seq 4 is missing"


def test_removed_first_entries_are_found() -> None:
    log = build()
    report = verify(replace(log, entries=reoffset(values(log)[2:])))
    assert kinds(report)[0] == (chain.REMOVED, 0)


def test_a_cut_off_tail_is_found_by_the_checkpoint_that_signed_it() -> None:
    log = build(12, every=4)
    report = verify(replace(log, entries=reoffset(values(log)[:10])))
    assert kinds(report) == [(chain.REMOVED, 10)]
    assert "10..11" in report.findings[0].detail


def test_reordered_entries_are_found_at_the_first_misplaced_one() -> None:
    log = build()
    stored = values(log)
    stored[3], stored[4] = stored[4], stored[3]
    report = verify(replace(log, entries=reoffset(stored)))
    assert kinds(report)[0] == (chain.REORDERED, 3)
    assert {f.kind for f in report.findings} == {chain.REORDERED}


def test_an_entry_moved_far_back_is_reordered() -> None:
    log = build()
    stored = values(log)
    moved = stored.pop(2)
    stored.insert(8, moved)
    report = verify(replace(log, entries=reoffset(stored)))
    assert kinds(report)[0] == (chain.REORDERED, 2)


def test_an_inserted_copy_is_found() -> None:
    log = build()
    stored = values(log)
    stored.insert(7, stored[3])
    report = verify(replace(log, entries=reoffset(stored)))
    assert kinds(report)[0] == (chain.INSERTED, 7)


def test_an_inserted_entry_that_links_correctly_is_found_as_a_twin() -> None:
    """A forger who knows the chain can build an entry with the right seq and prev and a
    valid hash; the genuine successor still links to the genuine entry, not to the forgery."""
    log = build()
    stored = values(log)
    assert stored[5] is not None
    body = body_of(stored[5])
    body["event"] = {**body["event"], "office": "forged"}  # type: ignore[dict-item]
    stored.insert(5, rehash(body))
    report = verify(replace(log, entries=reoffset(stored)))
    assert kinds(report) == [(chain.INSERTED, 5)]


def test_an_inserted_twin_after_the_genuine_entry_is_found() -> None:
    log = build()
    stored = values(log)
    assert stored[5] is not None
    body = body_of(stored[5])
    body["event"] = {**body["event"], "office": "forged"}  # type: ignore[dict-item]
    stored.insert(6, rehash(body))
    report = verify(replace(log, entries=reoffset(stored)))
    assert kinds(report) == [(chain.INSERTED, 6)]


@pytest.mark.parametrize("foreign", [b"", b"garbage", b'{"_hash":"x"}', None, b'{"seq":1}'])
def test_a_foreign_record_in_the_chain_is_inserted(foreign: bytes | None) -> None:
    log = build()
    stored = values(log)
    stored.insert(3, foreign)
    report = verify(replace(log, entries=reoffset(stored)))
    assert kinds(report) == [(chain.INSERTED, 3)]


def test_a_consistently_rewritten_suffix_is_caught_by_the_signed_root() -> None:
    """Rewriting an entry and re-chaining everything after it leaves a valid-looking chain;
    only the signed checkpoint shows it."""
    log = build(12, every=4)
    stored = values(log)
    prev = None
    for index in range(5, 12):
        value = stored[index]
        assert value is not None
        body = body_of(value)
        if index == 5:
            body["event"] = {**body["event"], "office": "forged"}  # type: ignore[dict-item]
        if prev is not None:
            body["prev"] = prev
        stored[index], prev = chain.seal_entry(body)
    report = verify(replace(log, entries=reoffset(stored)))
    assert [f.kind for f in report.findings] == [chain.CHECKPOINT_MISMATCH] * 2
    assert report.findings[0].offset == 4  # the first entry of the checkpoint that covers seq 5


# --- forged and removed checkpoints -----------------------------------------------------------


def test_a_checkpoint_signed_by_an_untrusted_key_is_forged() -> None:
    log = build(8, every=4, who=signer())
    report = verify(log)
    assert [(f.kind, f.topic, f.offset) for f in report.findings] == [
        (chain.CHECKPOINT_FORGED, chain.CHECKPOINTS, 0),
        (chain.CHECKPOINT_FORGED, chain.CHECKPOINTS, 1),
    ]
    assert report.findings[0].detail == "certificate not trusted"


def test_a_checkpoint_with_a_changed_root_is_forged() -> None:
    log = build(8, every=4)
    stored = log.checkpoints[1][1]
    assert stored is not None
    parsed = orjson.loads(stored)
    forged = stored.replace(parsed["root"].encode(), b"0" * 64)
    report = verify(replace(log, checkpoints=[log.checkpoints[0], (1, forged)]))
    assert [(f.kind, f.offset) for f in report.findings] == [(chain.CHECKPOINT_FORGED, 1)]
    assert report.findings[0].detail == "signature does not verify"


def test_a_checkpoint_with_a_flipped_signature_bit_is_forged() -> None:
    log = build(4, every=4)
    stored = log.checkpoints[0][1]
    assert stored is not None
    parsed = orjson.loads(stored)
    signature = bytearray(base64.b64decode(parsed["_signature"]))
    signature[-1] ^= 1
    forged = stored.replace(parsed["_signature"].encode(), base64.b64encode(bytes(signature)))
    report = verify(replace(log, checkpoints=[(0, forged)]))
    assert [f.kind for f in report.findings] == [chain.CHECKPOINT_FORGED]


def test_an_algorithm_downgrade_is_refused() -> None:
    log = build(4, every=4)
    stored = log.checkpoints[0][1]
    assert stored is not None
    forged = stored.replace(b'"alg":"ecdsa-sha256"', b'"alg":"rsa-sha1"')
    report = verify(replace(log, checkpoints=[(0, forged)]))
    assert report.findings[0].detail == "algorithm not allowed"


def test_a_checkpoint_signed_after_the_certificate_expired_is_forged() -> None:
    expired = signer(not_after=NOW - dt.timedelta(days=1))
    log = build(4, every=4, who=expired)
    report = chain.verify_partition(
        0, log.entries, log.checkpoints, chain.trust_store([expired.certificate])
    )
    assert report.findings[0].detail == "certificate not valid at the checkpoint's time"


def test_a_certificate_without_digital_signature_usage_may_not_sign_checkpoints() -> None:
    encipher = signer(usage="encipher")
    log = build(4, every=4, who=encipher)
    report = chain.verify_partition(
        0, log.entries, log.checkpoints, chain.trust_store([encipher.certificate])
    )
    assert report.findings[0].detail == "certificate may not sign"


def test_rsa_pss_checkpoints_verify() -> None:
    rsa_signer = signer("rsa")
    log = build(8, every=4, who=rsa_signer)
    report = chain.verify_partition(
        0, log.entries, log.checkpoints, chain.trust_store([rsa_signer.certificate])
    )
    assert report.ok
    assert report.checkpoints == 2
    assert b'"alg":"rsa-pss-sha256"' in (log.checkpoints[0][1] or b"")


def test_a_removed_checkpoint_is_found() -> None:
    log = build(12, every=4)
    report = verify(replace(log, checkpoints=[log.checkpoints[0], log.checkpoints[2]]))
    assert [(f.kind, f.offset) for f in report.findings] == [(chain.CHECKPOINT_REMOVED, 2)]


def test_rotation_trusts_current_and_next_certificate() -> None:
    current, following = signer(), signer()
    first = build(4, every=4, who=current)
    trusted = chain.trust_store([current.certificate, following.certificate])
    assert chain.verify_partition(0, first.entries, first.checkpoints, trusted).ok
    assert not chain.verify_partition(
        0, first.entries, first.checkpoints, chain.trust_store([following.certificate])
    ).ok


# --- ranges and resuming ---------------------------------------------------------------------------


def test_a_range_after_the_genesis_is_anchored() -> None:
    log = build(12, every=4)
    report = verify(replace(log, entries=log.entries[4:]), anchored=True)
    assert report.ok
    assert report.first_seq == 4
    assert report.checkpoints == 3
    unanchored = verify(replace(log, entries=log.entries[4:]))
    assert not unanchored.ok


def test_resume_continues_the_chain_exactly() -> None:
    """A restarted chainer recovers its head from the last checkpoint and the entries after it,
    and the next entry links as if it had never stopped."""
    log = build(10, every=4)  # checkpoints after seq 3 and 7; seq 8, 9 pending
    last_checkpoint = log.checkpoints[-1][1]
    head = chain.resume(0, log.entries[8:], last_checkpoint)
    assert (head.seq, head.last_offset, head.source_offset) == (10, 9, 109)
    value, head = chain.append(head, event(10), SourceRef("audit.log", 0, 110), NOW)
    head = chain.placed(head, 10, 10)
    stored, head = chain.make_checkpoint(head, HUB, NOW)
    extended = Log([*log.entries, (10, value)], [*log.checkpoints, (2, stored)])
    report = verify(extended)
    assert report.ok, report.findings
    assert report.unsigned == 0


def test_resume_without_checkpoint_reads_the_whole_partition() -> None:
    log = build(3, every=100)
    head = chain.resume(0, log.entries, None)
    assert (head.seq, len(head.pending), head.pending_first_offset) == (3, 3, 0)


# --- property: any single tampering is found -------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["alter", "remove", "swap", "copy", "foreign"]),
    position=st.integers(min_value=0, max_value=10),
)
def test_any_single_tampering_is_found(kind: str, position: int) -> None:
    log = build(12, every=4)
    stored = values(log)
    if kind == "alter":
        value = stored[position]
        assert value is not None
        stored[position] = value.replace(f"office-{position}".encode(), b"office-Z")
    elif kind == "remove":
        del stored[position]
    elif kind == "swap":
        stored[position], stored[position + 1] = stored[position + 1], stored[position]
    elif kind == "copy":
        stored.insert(position + 1, stored[position])
    else:
        stored.insert(position, b"{}")
    report = verify(replace(log, entries=reoffset(stored)))
    assert not report.ok
    assert report.findings[0].offset <= position + 1


# --- the published contracts -----------------------------------------------------------------------


def test_entries_and_checkpoints_follow_their_published_schemas() -> None:
    import json
    from pathlib import Path

    import jsonschema
    from referencing import Registry, Resource

    folder = Path(__file__).resolve().parents[2] / "schemas" / "hub"
    loaded = {
        name: json.loads((folder / name).read_text("utf-8"))
        for name in (
            "audit-event-1.schema.json",
            "audit-entry-1.schema.json",
            "audit-checkpoint-1.schema.json",
        )
    }
    registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in loaded.values()
    )
    entry = jsonschema.Draft202012Validator(loaded["audit-entry-1.schema.json"], registry=registry)
    checkpoint = jsonschema.Draft202012Validator(loaded["audit-checkpoint-1.schema.json"])
    log = build(8, every=4)
    foreign, _ = chain.append(chain.Head(0), b"not an event", SourceRef("audit.log", 0, 1), NOW)
    for _, value in [*log.entries, (8, foreign)]:
        assert value is not None
        entry.validate(orjson.loads(value))
    for _, value in log.checkpoints:
        assert value is not None
        checkpoint.validate(orjson.loads(value))
    broken = orjson.loads(log.entries[0][1] or b"")
    broken["seq"] = -1
    assert not entry.is_valid(broken)
