"""``sozialhub audit replay``: re-run recorded submissions and compare with what was delivered.

The Kafka side of :mod:`hub.core.audit_replay` (docs/audit-replay.md):

1. read the audit chain (:func:`hub.audit.chain_events`, ``audit.chain``, not
   ``audit.log``) once, keeping the submissions dispatch handled within
   ``[--from, --to)`` with all their events (:class:`hub.core.audit_replay.Window`);
2. open their recorded inputs from the audit vault with the KEK
   (:func:`hub.audit_vault_cli.recorded_all`: ``audit.vault`` and ``audit.keys``
   read once);
3. replay each with today's code and configuration (payload schemas, office
   table, mappings) and print a summary: counts per result, every difference,
   the replay's rate next to the live pipeline's.

Exit status: 0 every replayed submission is the same; 1 any difference; 2 usage,
configuration or cluster errors. Readers never join a group and never commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from hub import audit, audit_kek, audit_vault_cli, dlq, offices, portals, schemas
from hub.config import ConfigError, Settings
from hub.core import audit_replay as core
from hub.core.audit_vault import KekRing
from hub.core.pipeline import HubContext
from hub.core.receipt import ReceiptSigner
from hub.core.records import AuditEvent, timestamp
from hub.core.xmlsafe import Limits
from hub.keys import ephemeral_certificate

EXIT_SAME, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2
NAME = "sozialhub audit replay"
CHAIN_BATCH = 10_000  # progress steps while reading the chain

RATES_EXPLAINED = {
    "replayed_per_second": (
        "submissions replayed per second of the pure replay in this one process: opening "
        "nothing, validating the payload, dispatching (routing and mapping) and comparing; "
        "reading audit.chain and opening the vault are in seconds.read_chain and "
        "seconds.open_inputs, the whole command in overall_per_second"
    ),
    "live_per_second": (
        "what the live pipeline achieved for the same submissions, from their recorded times: "
        "the submissions whose every mapped delivery was delivered, over the seconds from the "
        "earliest 'ingest'/'received' event of them (else 'intake'/'accepted') to the latest "
        "first 'deliver'/'delivered' or 'duplicate' event of their deliveries; it includes "
        "waiting in topics and delivery channels and the gaps between submissions, so it is "
        "a throughput, not the pipeline's capacity"
    ),
}


class ReplayUsageError(ValueError):
    """A usage or configuration error of ``audit replay``."""


def replay_context(settings: Settings) -> HubContext:
    """The hub context dispatch needs, from the configuration as it is today.

    Like :func:`hub.context.build` for what dispatch and the payload schemas read
    (payload types, office table, limits, record size, portals), but without the
    secrets replay does not need: receipts are not signed again (the recorded
    receipt travels in the recorded input; the signer here is a throw-away key
    that signs nothing) and no person pseudonym is made (no mapping holds one).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    return HubContext(
        payloads=schemas.load_payloads(settings.schema_dir),
        offices=offices.load(settings.offices_file, settings.schema_dir),
        signer=ReceiptSigner(key, ephemeral_certificate(key, "sozialhub audit replay", days=1)),
        identity=settings.hub_identity,
        limits=Limits(max_bytes=settings.max_submission_bytes),
        max_record_bytes=settings.max_record_bytes,
        portals=portals.load(settings.portals_file, settings.schema_dir),
        pseudonyms=None,
    )


def _chain_size(settings: Settings) -> int:
    """How many entries audit.chain holds now (watermarks), for the progress line."""
    topic = settings.topic(audit.CHAIN)
    reader = dlq.open_reader(settings)
    try:
        return sum(
            high - low
            for low, high in (
                dlq.watermarks_of(reader, topic, p) for p in dlq.topic_partitions(reader, topic)
            )
        )
    finally:
        reader.close()


def read_window(
    settings: Settings, start: dt.datetime, end: dt.datetime, *, progress: bool | None = None
) -> tuple[dict[str, list[AuditEvent]], int]:
    """(submission id -> its chained events, for those dispatched in the window; entries read)."""
    window = core.Window(start, end)
    meter = audit.Progress(
        "audit replay: reading audit.chain", _chain_size(settings), enabled=progress
    )
    read = 0
    for _partition, _offset, event in audit.chain_events(settings):
        window.add(event)
        read += 1
        if read % CHAIN_BATCH == 0:
            meter.advance(CHAIN_BATCH)
    meter.advance(read % CHAIN_BATCH)
    return window.submissions(), read


def replay_window(
    settings: Settings,
    hub: HubContext,
    keks: KekRing,
    start: dt.datetime,
    end: dt.datetime,
    *,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Replay every submission dispatched in ``[start, end)``; the JSON-ready summary."""
    began = time.perf_counter()
    groups, entries = read_window(settings, start, end, progress=progress)
    read_seconds = time.perf_counter() - began

    began = time.perf_counter()
    inputs = audit_vault_cli.recorded_all(settings, groups, keks=keks) if groups else {}
    open_seconds = time.perf_counter() - began

    meter = audit.Progress("audit replay", len(groups), enabled=progress)
    results: list[core.Replayed] = []
    replay_seconds = 0.0
    for sid, events in groups.items():
        found = inputs[sid]
        given = core.RecordedInput(found.value, found.reason, found.ciphertext_sha256)
        began = time.perf_counter()
        results.append(core.replay(sid, events, given, hub))
        replay_seconds += time.perf_counter() - began
        meter.advance(1)
    live = core.live_rate(groups)
    return summary(
        results,
        live,
        start,
        end,
        entries=entries,
        seconds={"read_chain": read_seconds, "open_inputs": open_seconds, "replay": replay_seconds},
    )


def _rate(count: int, seconds: float) -> float | None:
    return round(count / seconds, 1) if count and seconds > 0 else None


def summary(
    results: Sequence[core.Replayed],
    live: core.LiveRate,
    start: dt.datetime,
    end: dt.datetime,
    *,
    entries: int,
    seconds: dict[str, float],
) -> dict[str, Any]:
    """The command's JSON: counts per result kind, every difference, the two rates."""
    counts: Counter[str] = Counter()
    for result in results:
        if result.same:
            counts[core.SAME] += 1
        counts.update(result.kinds)
    differences = [
        {"submission_id": r.submission_id, **d.as_dict()} for r in results for d in r.differences
    ]
    total = sum(seconds.values())
    return {
        "type": "sozialhub.audit-replay",
        "v": 1,
        "window": {"from": timestamp(start), "to": timestamp(end)},
        "chain_entries": entries,
        "submissions": len(results),
        "same": counts[core.SAME],
        "different": sum(not r.same for r in results),
        "counts": {kind: counts[kind] for kind in (core.SAME, *core.KINDS) if counts[kind]},
        "deliveries_compared": sum(r.deliveries for r in results),
        "differences": differences,
        "replayed_per_second": _rate(len(results), seconds["replay"]),
        "overall_per_second": _rate(len(results), total),
        "live_per_second": None if live.per_second is None else round(live.per_second, 3),
        "live": {
            "submissions": live.submissions,
            "seconds": live.seconds,
            "median_latency_seconds": live.median_latency_seconds,
        },
        "seconds": {name: round(value, 3) for name, value in seconds.items()},
        "rates_explained": RATES_EXPLAINED,
    }


def describe(report: dict[str, Any]) -> str:
    """The summary for a terminal: totals, rates, then one line per difference."""
    window = report["window"]
    totals = (
        f"audit replay {window['from']} .. {window['to']}: {report['submissions']} submission(s), "
        f"{report['same']} same, {report['different']} different "
        f"({report['deliveries_compared']} mapped document(s) compared)"
    )
    rates = (
        f"rates: replayed {_per_second(report['replayed_per_second'])}, "
        f"live {_per_second(report['live_per_second'])} "
        f"({report['live']['submissions']} delivered submission(s))"
    )
    lines = [totals, rates]
    for d in report["differences"]:
        where = "".join(
            f" {name} {d[name]}" for name in ("office", "delivery_id") if d[name] is not None
        )
        values = ""
        if d["recorded"] or d["replayed"]:
            values = f": recorded {','.join(d['recorded']) or '-'}"
            values += f", replayed {','.join(d['replayed']) or '-'}"
        lines.append(f"  {d['kind']}: {d['submission_id']}{where}{values}")
    return "\n".join(lines)


def _per_second(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:,.1f}/s"


def _err(line: str) -> None:
    sys.stderr.write(f"{NAME}: {line}\n")


def _keks(settings: Settings, *, development: bool) -> KekRing:
    try:
        ring = audit_kek.from_settings(settings, development=development)
    except ConfigError as exc:
        raise ReplayUsageError(str(exc)) from None
    if ring is None:
        raise ReplayUsageError(
            "no KEK to open recorded inputs: set SOZIALHUB_AUDIT_KEK_FILE "
            "(--development-kek: the public development KEK, tests only)"
        )
    return ring


def run(settings: Settings, args: argparse.Namespace) -> int:
    """``sozialhub audit replay``: exit 0 (all same), 1 (any difference), 2 (usage, no cluster,
    missing topic), 75 (the cluster failed)."""
    if settings.embedded:
        _err("KAFKA_BOOTSTRAP_SERVERS is not set; the audit chain lives on a cluster")
        return EXIT_USAGE
    start, end = args.from_time, args.to_time
    if end <= start:
        _err("--to must be after --from")
        return EXIT_USAGE
    try:
        keks = _keks(settings, development=args.development_kek)
        hub = replay_context(settings)
        report = replay_window(settings, hub, keks, start, end)
    except (ReplayUsageError, ConfigError) as exc:
        _err(str(exc))
        return EXIT_USAGE
    except dlq.DlqError as exc:
        message, status = dlq.command_error(exc)
        _err(message)
        return status
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(describe(report) + "\n")
    if not report["submissions"]:
        _err("no submission was dispatched in the window")
    return EXIT_SAME if report["different"] == 0 else EXIT_DIFFERENT
