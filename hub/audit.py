"""Kafka side of ``sozialhub audit verify``: read ``audit.chain`` and ``audit.checkpoints``
partition by partition and hand them to :func:`hub.core.audit_chain.verify_partition`.

Readers use ``assign()``, never join a group and never commit; they stop at the
high watermarks taken when they start, so the command ends while workers keep
writing (entries written meanwhile are checked next time).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from cryptography import x509

from hub.config import Settings
from hub.core import audit_chain as chain
from hub.core.errors import Rejection
from hub.core.records import AuditEvent, decode
from hub.dlq import (
    DlqError,
    MissingTopicError,
    command_error,
    open_reader,
    read_partition,
    topic_partitions,
    watermarks_of,
)

CHAIN = "audit.chain"
CHECKPOINTS = "audit.checkpoints"
BATCH = 10_000


class TrustError(ValueError):
    """No certificate to verify checkpoints against."""


def trusted_certificates(settings: Settings, files: Sequence[Path]) -> list[x509.Certificate]:
    """The certificates checkpoints may be signed with: ``--trust`` files, else the hub's own
    (current and next, from the signing settings). An ephemeral development key cannot be
    trusted afterwards, so without either this is an error."""
    paths = list(files) or [
        p for p in (settings.signing_cert_file, settings.signing_next_cert_file) if p is not None
    ]
    if not paths:
        raise TrustError(
            "no certificate to trust: pass --trust CERT.pem or set SOZIALHUB_SIGNING_CERT_FILE"
        )
    certificates: list[x509.Certificate] = []
    for path in paths:
        try:
            certificates.extend(chain.load_certificates(path.read_bytes()))
        except (OSError, ValueError):
            raise TrustError(f"cannot read certificates from {path.name}") from None
    return certificates


@dataclass(frozen=True)
class Range:
    """What to verify: every partition, or one; offsets of audit.chain (end exclusive)."""

    partition: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None


class Progress:
    """A one-line progress report on stderr, for long runs on a terminal."""

    def __init__(self, label: str, total: int, *, enabled: bool | None = None) -> None:
        self.label, self.total, self.done = label, total, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.started = self.last = time.monotonic()

    def advance(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.5 or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.started, 1e-9)
            share = 100.0 * self.done / self.total if self.total else 100.0
            sys.stderr.write(
                f"\r{self.label}: {self.done:,}/{self.total:,} ({share:5.1f} %), {rate:,.0f}/s"
            )
            if self.done >= self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def verify(
    settings: Settings,
    certificates: Sequence[x509.Certificate],
    where: Range = Range(),
    *,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Verify the chain; a JSON-ready report with every partition's findings."""
    trusted = chain.trust_store(certificates)
    chain_topic, checkpoint_topic = settings.topic(CHAIN), settings.topic(CHECKPOINTS)
    reader = open_reader(settings)
    started = time.perf_counter()
    reports: list[chain.PartitionReport] = []
    try:
        partitions = topic_partitions(reader, chain_topic)
        checkpoint_partitions = set(topic_partitions(reader, checkpoint_topic))
        if where.partition is not None:
            if where.partition not in partitions:
                raise MissingTopicError(f"{chain_topic} has no partition {where.partition}")
            partitions = [where.partition]
        # Checkpoints first: one read now signs only entries below the chain's end read next.
        signed_bounds = {
            p: watermarks_of(reader, checkpoint_topic, p)
            for p in partitions
            if p in checkpoint_partitions
        }
        bounds = {p: watermarks_of(reader, chain_topic, p) for p in partitions}
        total = sum(_span(low, high, where) for low, high in bounds.values())
        meter = Progress("audit verify", total, enabled=progress)
        for partition in partitions:
            low, high = bounds[partition]
            start = max(low, where.from_offset or 0)
            checkpoints: list[tuple[int, bytes | None]] = []
            if partition in signed_bounds:
                c_low, c_high = signed_bounds[partition]
                checkpoints = list(
                    read_partition(reader, checkpoint_topic, partition, c_low, c_high)
                )
            entries: list[tuple[int, bytes | None]] = []
            limit = where.to_offset
            for record in read_partition(reader, chain_topic, partition, start, high, limit):
                entries.append(record)
                if len(entries) % BATCH == 0:
                    meter.advance(BATCH)
            meter.advance(len(entries) % BATCH)
            reports.append(
                chain.verify_partition(
                    partition,
                    entries,
                    checkpoints,
                    trusted,
                    anchored=start > 0,
                    to_end=limit is None,
                    end_offset=entries[-1][0] + 1 if entries else start,
                )
            )
    finally:
        reader.close()
    seconds = time.perf_counter() - started
    return summary(reports, seconds)


def _span(low: int, high: int, where: Range) -> int:
    start = max(low, where.from_offset or 0)
    end = high if where.to_offset is None else min(high, where.to_offset)
    return max(0, end - start)


def summary(reports: Sequence[chain.PartitionReport], seconds: float) -> dict[str, Any]:
    """The command's JSON: ok, the first finding of the whole log, every partition."""
    findings = [f for r in reports for f in r.findings]
    first = min(findings, key=lambda f: (f.topic != CHAIN, f.offset, f.partition), default=None)
    entries = sum(r.entries for r in reports)
    return {
        "ok": not findings,
        "entries": entries,
        "checkpoints": sum(r.checkpoints for r in reports),
        "unsigned": sum(r.unsigned for r in reports),
        "findings": len(findings),
        "first_finding": None if first is None else first.as_dict(),
        "entries_per_second": round(entries / seconds) if seconds > 0 else None,
        "partitions": [r.as_dict() for r in reports],
    }


EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


def run_verify(settings: Settings, args: Any) -> int:
    """``sozialhub audit verify``: 0 when the log is intact, 1 on any finding, 2 otherwise."""
    try:
        certificates = trusted_certificates(settings, args.trust)
    except TrustError as exc:
        sys.stderr.write(f"sozialhub audit verify: {exc}\n")
        return EXIT_USAGE
    where = Range(args.partition, args.from_offset, args.to_offset)
    try:
        report = verify(settings, certificates, where)
    except DlqError as exc:
        message, status = command_error(exc)
        sys.stderr.write(f"sozialhub audit verify: {message}\n")
        return status
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    else:
        sys.stdout.write(describe(report) + "\n")
    return EXIT_OK if report["ok"] else EXIT_FINDINGS


def describe(report: dict[str, Any]) -> str:
    """The report for a terminal: one line of totals, then one line per finding."""
    status = "intact" if report["ok"] else f"{report['findings']} finding(s)"
    totals = (
        f"audit.chain {status}: {report['entries']:,} entries in "
        f"{len(report['partitions'])} partition(s), {report['checkpoints']} signed checkpoint(s), "
        f"{report['unsigned']} entries not yet signed"
    )
    lines = [totals]
    for partition in report["partitions"]:
        for finding in partition["findings"]:
            seq = "" if finding["seq"] is None else f" seq {finding['seq']}"
            lines.append(
                f"  {finding['kind']}: {finding['topic']} partition {finding['partition']} "
                f"offset {finding['offset']}{seq}: {finding['detail']}"
            )
    first = report["first_finding"]
    if first is not None:
        lines.append(
            f"first finding: {first['kind']} at {first['topic']} partition "
            f"{first['partition']} offset {first['offset']}"
        )
    return "\n".join(lines)


def chain_events(settings: Settings) -> Iterator[tuple[int, int, AuditEvent]]:
    """Every audit event on ``audit.chain`` as (partition, offset, event), partition by partition
    in chain order; entries that wrap a refused record (``event`` null) or are not entries are
    skipped (``audit verify`` reports those)."""
    topic = settings.topic(CHAIN)
    reader = open_reader(settings)
    try:
        for partition in topic_partitions(reader, topic):
            low, high = watermarks_of(reader, topic, partition)
            for offset, value in read_partition(reader, topic, partition, low, high):
                entry = chain.read_entry(offset, value, with_event=True)
                if entry.event is None:
                    continue
                try:
                    event = decode(orjson.dumps(entry.event), AuditEvent)
                except Rejection:
                    continue
                yield partition, offset, event
    finally:
        reader.close()
