"""``sozialhub bench --stage audit``: how fast ``audit verify`` checks the chain, pure.

In-process, no Kafka. One block of chained entries is built once per run, as
the chainer writes them: audit events of a realistic mix (received, accepted,
routed, mapped, delivered, gate decisions with basis and categories), a signed
checkpoint after every 1,000 entries (ECDSA P-256, the hub's default).

One run measures, interleaved:

- **verify**: :func:`hub.core.audit_chain.verify_partition` on the whole block
  with its checkpoints: every entry hashed, decoded and linked, every
  checkpoint's signature verified and its Merkle root recomputed;
- **passthrough**: the least any verifier must do with the same block: hash
  each stored entry once (SHA-256) and decode it once (orjson).

The target of issue 6 is at least 100,000 entries per second; the **ratio**
(verify over passthrough, same run) is what compares across machines. Reading
the topic is not part of it: ``audit verify`` reports its own end-to-end rate
(``entries_per_second``) on a real log.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sys
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric import ec

from hub.benchtools import interleaved
from hub.config import Settings
from hub.core import audit_chain as chain
from hub.core.pipeline import audit
from hub.core.receipt import ReceiptSigner
from hub.core.records import SourceRef, submission_id_of_digest
from hub.keys import ephemeral_certificate

BLOCK = 20_000
EVERY = 1_000
NOW = dt.datetime(2026, 11, 22, 9, 0, tzinfo=dt.UTC)


def _events(count: int) -> list[bytes]:
    """A mix of audit events as the stages write them (values of audit.log)."""
    events: list[bytes] = []
    for n in range(count):
        sid = submission_id_of_digest(hashlib.sha256(str(n).encode()).hexdigest())
        kind = n % 5
        if kind == 0:
            emit = audit(sid, "ingest", "received", NOW, payload_sha256="ab" * 32)
        elif kind == 1:
            emit = audit(sid, "intake", "accepted", NOW, payload_sha256="cd" * 32)
        elif kind == 2:
            emit = audit(
                sid, "map", "mapped", NOW, office="wgs-herten", vendor="openprosoz",
                delivery_id="dlv-" + "e" * 32, mapping_version="fv-xml/1.1.0",
                output_sha256="9f" * 32,
            )  # fmt: skip
        elif kind == 3:
            emit = audit(
                sid, "gate", "allowed", NOW, office="jc-re-herten", delivery_id="dlv-" + "f" * 32,
                basis_kind="statute", basis_id="application-delivery",
                legal_reference="§ 16 SGB I", vendor="akdn",
            )  # fmt: skip
        else:
            emit = audit(
                sid, "deliver", "delivered", NOW, office="soa-herten", vendor="lammkom",
                delivery_id="dlv-" + "0" * 32, mapping_version="fv-fixed/1.0.0", channel="file",
                attempt=1,
            )  # fmt: skip
        events.append(emit.value)
    return events


def build_block(
    count: int = BLOCK,
) -> tuple[list[tuple[int, bytes | None]], list[tuple[int, bytes | None]], ReceiptSigner]:
    key = ec.generate_private_key(ec.SECP256R1())
    signer = ReceiptSigner(key, ephemeral_certificate(key, "sozialhub bench", now=NOW))
    head = chain.Head(0)
    entries: list[tuple[int, bytes | None]] = []
    checkpoints: list[tuple[int, bytes | None]] = []
    for offset, value in enumerate(_events(count)):
        stored, head = chain.append(head, value, SourceRef("audit.log", 0, offset), NOW)
        head = chain.placed(head, offset, offset)
        entries.append((offset, stored))
        if len(head.pending) >= EVERY:
            signed, head = chain.make_checkpoint(head, signer, NOW)
            checkpoints.append((len(checkpoints), signed))
    return entries, checkpoints, signer


def measure(seconds: float, count: int = BLOCK) -> dict[str, Any]:
    entries, checkpoints, signer = build_block(count)
    trusted = chain.trust_store([signer.certificate])
    report = chain.verify_partition(0, entries, checkpoints, trusted)
    if not report.ok or report.checkpoints != len(checkpoints):
        raise RuntimeError("the benchmark's own chain does not verify")
    values = [v for _, v in entries if v is not None]

    def verify() -> object:
        return chain.verify_partition(0, entries, checkpoints, trusted)

    def passthrough() -> object:
        sha256, loads = hashlib.sha256, orjson.loads
        last: object = None
        for value in values:
            sha256(value).digest()
            last = loads(value)
        return last

    tallies = interleaved(
        {"verify": verify, "passthrough": passthrough},
        seconds,
        slice_seconds=min(1.0, seconds),
        warmup_seconds=0.3,
    )
    rates = {name: t.count * count / t.seconds for name, t in tallies.items()}
    return {
        "stage": "audit",
        "entries_per_block": count,
        "checkpoints_per_block": len(checkpoints),
        "entry_bytes_mean": round(sum(map(len, values)) / len(values)),
        "verify_per_second": rates["verify"],
        "passthrough_per_second": rates["passthrough"],
        "ratio": rates["verify"] / rates["passthrough"],
        "target_per_second": 100_000,
        "meets_target": rates["verify"] >= 100_000,
        "blocks": {name: t.count for name, t in tallies.items()},
    }


def run(_settings: Settings, seconds: float, *, as_json: bool = False) -> int:
    if seconds <= 0:
        sys.stderr.write("sozialhub bench: --seconds must be positive\n")
        return 2
    result = measure(seconds)
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    sys.stdout.write(
        f"audit verify, pure, {result['entries_per_block']:,} entries "
        f"({result['entry_bytes_mean']} bytes each) and {result['checkpoints_per_block']} "
        "signed checkpoints per block\n"
        f"  verify       {result['verify_per_second']:>12,.0f} entries/s\n"
        f"  passthrough  {result['passthrough_per_second']:>12,.0f} entries/s "
        "(SHA-256 and one decode per entry)\n"
        f"  ratio        {result['ratio']:>12.2f}  "
        f"(target {result['target_per_second']:,}/s: "
        f"{'met' if result['meets_target'] else 'missed'})\n"
    )
    return 0
