"""``sozialhub receipts resend``: put portal receipts on ``submissions.receipts`` again.

A receipt the portal refused for good (an XTA ``PermissionDeniedException`` while
the hub's mailbox was misconfigured, a FIT-Connect 4xx) is audited
``receipt``/``refused`` and committed past: its portal was never answered. After
the cause is fixed, this command re-produces the submission's newest XTA or
FIT-Connect receipt record unchanged (same key and value) into the partition it was
in; the channel's receipt sender then sends it like any other (docs/operations.md).
``SUBMISSION_ID`` resends one submission's; ``--refused`` every submission's whose
last receipt decision in the audit log is a refusal (optionally since a time, of
one channel). Each resend is audited ``receipt``/``resent``. A receipt the portal
has already counts as sent there, so resending is safe.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import Counter
from typing import Any

from hub import dlq
from hub.config import Settings
from hub.core import pipeline
from hub.core.errors import Rejection
from hub.core.receipt_resend import (
    RESEND_STAGE,
    SENDABLE,
    Found,
    resendable,
    resent_event,
    still_refused,
)
from hub.core.records import AuditEvent, PortalReceipt, SourceRef, decode, is_id

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
NAME = "sozialhub receipts resend"


def receipts_of(settings: Settings, submission_ids: set[str]) -> dict[str, list[Found]]:
    """The receipt records of these submissions on ``submissions.receipts``, oldest first."""
    topic = settings.topic(pipeline.RECEIPTS)
    wanted = {sid.encode("ascii") for sid in submission_ids}
    found: dict[str, list[Found]] = {}
    for message in dlq.read_topic(settings, topic):
        if message.key() not in wanted or not message.value():
            continue
        try:
            receipt = decode(message.value(), PortalReceipt)
        except Rejection:
            continue
        if receipt.submission_id in submission_ids:
            where = SourceRef(topic, message.partition(), message.offset())
            item = Found(receipt, message.key(), message.value(), where)
            found.setdefault(receipt.submission_id, []).append(item)
    return found


def _decisions(settings: Settings, submission_id: str) -> list[str]:
    return [e.decision for e in dlq.audit_events(settings, submission_id, stage=RESEND_STAGE)]


def _confirmed(item: Found, decisions: list[str]) -> bool:
    sys.stderr.write(
        f"resend receipt {item.receipt.receipt_id} ({item.receipt.channel}, "
        f"{item.receipt.outcome}; audited so far: {', '.join(decisions) or 'nothing'})? [y/N] "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _err(line: str) -> None:
    sys.stderr.write(f"{NAME}: {line}\n")


def _usage(settings: Settings, args: argparse.Namespace) -> str | None:
    """What is wrong with the command line, if anything."""
    submission_id: str | None = args.submission_id
    if settings.embedded:
        return "KAFKA_BOOTSTRAP_SERVERS is not set; receipts live on a cluster"
    if (submission_id is None) == (not args.refused):
        return "name one SUBMISSION_ID, or --refused"
    if submission_id is not None and (args.since is not None or args.channel is not None):
        return "--since and --channel go with --refused"
    if submission_id is not None and (
        not submission_id.startswith("sub-") or not is_id(submission_id)
    ):
        return "a submission id is 'sub-' and 32 lowercase hex digits"
    if not args.yes and not sys.stdin.isatty():
        return "not a terminal; pass --yes to resend without asking"
    return None


def run_resend(settings: Settings, args: argparse.Namespace, now: dt.datetime | None = None) -> int:
    """Exit 0 (re-produced and audited; with ``--refused`` also: none left to resend),
    1 (no receipt to resend, not confirmed), 2 (usage, no cluster, missing topic), 75
    (the cluster failed)."""
    problem = _usage(settings, args)
    if problem is not None:
        _err(problem)
        return EXIT_USAGE
    when = now or dt.datetime.now(dt.UTC)
    try:
        if args.refused:
            return _resend_refused(settings, when, args.since, args.channel, yes=args.yes)
        return _resend(settings, args.submission_id, when, yes=args.yes)
    except dlq.DlqError as exc:
        message, status = dlq.command_error(exc)
        _err(message)
        return status


def _resend(settings: Settings, submission_id: str, now: dt.datetime, *, yes: bool) -> int:
    item = resendable(receipts_of(settings, {submission_id}).get(submission_id, []))
    if item is None:
        _err(f"no XTA or FIT-Connect receipt of {submission_id} on {pipeline.RECEIPTS}")
        return EXIT_REJECTED
    decisions = _decisions(settings, submission_id)
    if not yes and not _confirmed(item, decisions):
        _err("not confirmed; nothing was sent")
        return EXIT_REJECTED
    produced = dlq.produce(settings, item.where.topic, item.key, item.value, item.where.partition)
    emit = resent_event(item, produced, now)
    logged = dlq.send_audit(settings, emit, done="the receipt is resent")
    sys.stdout.write(json.dumps(_report(item, produced, decisions, emit, logged), sort_keys=True))
    sys.stdout.write("\n")
    return EXIT_OK


def _report(
    item: Found, produced: SourceRef, decisions: list[str], emit: pipeline.Emit, logged: SourceRef
) -> dict[str, Any]:
    return {
        "submission_id": item.receipt.submission_id,
        "receipt_id": item.receipt.receipt_id,
        "channel": item.receipt.channel,
        "outcome": item.receipt.outcome,
        "audited_before": decisions,
        "resent": {"partition": produced.partition, "offset": produced.offset},
        "audit_event": decode(emit.value, AuditEvent).event_id,
        "audit": {"topic": logged.topic, "partition": logged.partition, "offset": logged.offset},
    }


def _resend_refused(
    settings: Settings,
    now: dt.datetime,
    since: dt.datetime | None,
    channel: str | None,
    *,
    yes: bool,
) -> int:
    """Every submission still refused (:func:`still_refused`): its newest receipt again."""
    refusals = still_refused(dlq.audit_events(settings, stage=RESEND_STAGE), since)
    newest = {
        sid: item
        for sid, found in receipts_of(settings, {e.submission_id for e in refusals}).items()
        if (item := resendable(found)) is not None
    }
    without = [e.submission_id for e in refusals if e.submission_id not in newest]
    chosen = [
        (refusal, newest[refusal.submission_id])
        for refusal in refusals
        if refusal.submission_id in newest
        and channel in (None, newest[refusal.submission_id].receipt.channel)
    ]
    if chosen and not yes and not _confirmed_all([item for _, item in chosen]):
        _err("not confirmed; nothing was sent")
        return EXIT_REJECTED
    rows: list[dict[str, Any]] = []
    if chosen:
        produced = dlq.produce_all(
            settings, [(i.where.topic, i.key, i.value, i.where.partition) for _, i in chosen]
        )
        emits = [
            resent_event(item, at, now) for (_, item), at in zip(chosen, produced, strict=True)
        ]
        dlq.send_audits(settings, emits, done=f"{len(chosen)} receipt(s) are resent")
        rows = [
            {
                "submission_id": item.receipt.submission_id,
                "receipt_id": item.receipt.receipt_id,
                "channel": item.receipt.channel,
                "refused_at": refusal.at,
                "resent": {"partition": at.partition, "offset": at.offset},
                "audit_event": decode(emit.value, AuditEvent).event_id,
            }
            for (refusal, item), at, emit in zip(chosen, produced, emits, strict=True)
        ]
    report = {
        "since": None if since is None else since.isoformat(),
        "channel": channel,
        "count": len(rows),
        "resent": rows,
        "without_receipt": without,  # refused, but no XTA or FIT-Connect receipt record is left
    }
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    return EXIT_REJECTED if without else EXIT_OK


def _confirmed_all(items: list[Found]) -> bool:
    channels = Counter(item.receipt.channel for item in items)
    counts = ", ".join(f"{name}: {channels[name]}" for name in SENDABLE if channels[name])
    sys.stderr.write(f"resend {len(items)} refused receipt(s) ({counts})? [y/N] ")
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")
