"""``sozialhub audit report``: one person's transparency report from the audit log.

The person is named by pseudonym (``--person``, repeatable) or by identifier
(``--identifier KIND:VALUE``, ``-`` reads it from standard input), which the
configured key ring turns into the person's pseudonym under every key, so
transfers logged before a key rotation count too. The identifier is never
printed or logged. The events come from :func:`audit_events_for_report` (the
hash-chained ``audit.chain``); the report itself is the pure
:func:`hub.core.audit_report.build_report`, printed as one JSON object, and with
``--html FILE`` also written as the citizen's page (docs/transparency-report.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from hub import audit as audit_log
from hub import dlq, offices, portals, pseudonyms
from hub.config import Settings
from hub.core import audit_report
from hub.core.errors import Rejection
from hub.core.pseudonym import identifier
from hub.core.records import AuditEvent

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
NAME = "sozialhub audit report"


class ReportUsageError(ValueError):
    """A usage error of ``audit report``; the message names options, never an identifier."""


def audit_events_for_report(settings: Settings) -> Iterator[AuditEvent]:
    """Every audit event the report is built from, in chain order.

    The events of the hash-chained ``audit.chain`` (:func:`hub.audit.chain_events`),
    the lasting record (``audit.log`` keeps 30 days), read partition by partition
    from the beginning to the end at the start (no consumer group, no commit).
    Entries that wrap a record that is not an audit event are skipped; ``sozialhub
    audit verify`` checks the chain itself. Events not chained yet (the chainer runs
    milliseconds to seconds behind ``audit.log``) are not in the report.
    """
    for _partition, _offset, event in audit_log.chain_events(settings):
        yield event


def persons(settings: Settings, args: argparse.Namespace) -> frozenset[str]:
    """The person's pseudonyms: those of ``--person``, or the identifier's under every key.

    With both, every ``--person`` must be a pseudonym of the identifier: a report
    never mixes two people.
    """
    named = frozenset(args.person or ())
    if args.identifier is None:
        if not named:
            raise ReportUsageError("name the person: --person PSEUDONYM or --identifier KIND:VALUE")
        return named
    text = sys.stdin.readline().strip() if args.identifier == "-" else args.identifier
    kind, separator, value = text.rpartition(":")
    if not separator or not kind:
        raise ReportUsageError("--identifier is KIND:VALUE, e.g. idnr:<IdNr>")
    ring = pseudonyms.from_settings(settings, development=args.development_key)
    try:
        candidates = frozenset(ring.candidates(identifier(kind, value)))
    except Rejection as rejection:
        raise ReportUsageError(
            f"--identifier: {rejection.reason.value} at {rejection.path}"
        ) from None
    if not named <= candidates:
        raise ReportUsageError("--person is not a pseudonym of --identifier under the key ring")
    return candidates


def names(settings: Settings) -> dict[str, str]:
    """Office and portal ids -> their names from the configured tables, for the HTML page."""
    table = offices.load(settings.offices_file, settings.schema_dir)
    found = {o.office_id: o.name for o in table.offices}
    found |= {p.portal_id: p.name for p in portals.load(settings.portals_file, settings.schema_dir)}
    return found


def _err(line: str) -> None:
    sys.stderr.write(f"{NAME}: {line}\n")


def report_command(
    settings: Settings, args: argparse.Namespace, now: dt.datetime | None = None
) -> int:
    """Exit 0 (the report was printed), 2 (usage, no cluster, no topic), 75 (the cluster failed)."""
    if settings.embedded:
        _err("KAFKA_BOOTSTRAP_SERVERS is not set; the audit log lives on a cluster")
        return EXIT_USAGE
    try:
        wanted = persons(settings, args)
        moment = now or dt.datetime.now(dt.UTC)
        retention = (
            audit_report.DEFAULT_RETENTION
            if args.retention_days is None
            else dt.timedelta(days=args.retention_days)
        )
        found = audit_report.build_report(
            audit_events_for_report(settings), wanted, moment, retention
        )
    except ReportUsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except dlq.DlqError as exc:
        message, status = dlq.command_error(exc)
        _err(message)
        return status
    if args.html is not None:
        page = audit_report.render_html(found, names(settings))
        try:
            Path(args.html).write_text(page, encoding="utf-8")
        except OSError:
            _err(f"--html {args.html} cannot be written")
            return EXIT_USAGE
    sys.stdout.write(json.dumps(found, sort_keys=True, ensure_ascii=False) + "\n")
    return EXIT_OK
