"""``sozialhub receipts resend``: put a portal receipt on ``submissions.receipts`` again.

A receipt the portal refused for good (an XTA ``PermissionDeniedException`` while
the hub's mailbox was misconfigured, a FIT-Connect 4xx) is audited
``receipt``/``refused`` and committed past: its portal was never answered. After
the cause is fixed, this command re-produces the submission's newest XTA or
FIT-Connect receipt record unchanged (same key and value) into the partition it was
in; the channel's receipt sender then sends it like any other (docs/operations.md).
The resend is audited ``receipt``/``resent``. A receipt the portal has already
counts as sent there, so resending is safe.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any

from hub import dlq
from hub.config import Settings
from hub.core import pipeline
from hub.core.errors import Rejection
from hub.core.receipt_resend import RESEND_STAGE, Found, resendable, resent_event
from hub.core.records import AuditEvent, PortalReceipt, SourceRef, decode, is_id

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
NAME = "sozialhub receipts resend"


def receipts_of(settings: Settings, submission_id: str) -> list[Found]:
    """The submission's receipt records on ``submissions.receipts``, oldest first."""
    topic = settings.topic(pipeline.RECEIPTS)
    wanted = submission_id.encode("ascii")
    found: list[Found] = []
    for message in dlq.read_topic(settings, topic):
        if message.key() != wanted or not message.value():
            continue
        try:
            receipt = decode(message.value(), PortalReceipt)
        except Rejection:
            continue
        if receipt.submission_id == submission_id:
            where = SourceRef(topic, message.partition(), message.offset())
            found.append(Found(receipt, message.key(), message.value(), where))
    return found


def _decisions(settings: Settings, submission_id: str) -> list[str]:
    events = dlq.audit_events(settings, submission_id)
    return [e.decision for e in events if e.stage == RESEND_STAGE]


def _confirmed(item: Found, decisions: list[str]) -> bool:
    sys.stderr.write(
        f"resend receipt {item.receipt.receipt_id} ({item.receipt.channel}, "
        f"{item.receipt.outcome}; audited so far: {', '.join(decisions) or 'nothing'})? [y/N] "
    )
    sys.stderr.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _err(line: str) -> None:
    sys.stderr.write(f"{NAME}: {line}\n")


def run_resend(settings: Settings, args: argparse.Namespace, now: dt.datetime | None = None) -> int:
    """Exit 0 (re-produced and audited), 1 (no receipt to resend, not confirmed), 2 (usage,
    no cluster, missing topic), 75 (the cluster failed)."""
    submission_id: str = args.submission_id
    if settings.embedded:
        _err("KAFKA_BOOTSTRAP_SERVERS is not set; receipts live on a cluster")
        return EXIT_USAGE
    if not submission_id.startswith("sub-") or not is_id(submission_id):
        _err("a submission id is 'sub-' and 32 lowercase hex digits")
        return EXIT_USAGE
    if not args.yes and not sys.stdin.isatty():
        _err("not a terminal; pass --yes to resend without asking")
        return EXIT_USAGE
    try:
        return _resend(settings, submission_id, now or dt.datetime.now(dt.UTC), yes=args.yes)
    except dlq.DlqError as exc:
        message, status = dlq.command_error(exc)
        _err(message)
        return status


def _resend(settings: Settings, submission_id: str, now: dt.datetime, *, yes: bool) -> int:
    item = resendable(receipts_of(settings, submission_id))
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
