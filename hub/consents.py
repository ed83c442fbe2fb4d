"""``sozialhub consent grant|revoke|show``: the consent registry for offices without a portal.

The identifier given on the command line (or on standard input with ``-``) is
turned into the person's pseudonym with the configured key ring and then
forgotten: it is never printed or logged. ``grant`` and ``revoke`` send one
event to ``consent.events``; the worker's consent agent folds it into the
person's ledger on ``consent.ledger`` (:mod:`hub.stream.consents`). ``show`` and
``revoke`` read both topics to their ends and fold the person's events (under
every key of the ring, for records made before a key rotation), so an event
sent a moment ago counts even before the agent has folded it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Iterable
from typing import Any

from hub import dlq, pseudonyms
from hub.config import Settings
from hub.core import consent
from hub.core.consent import ConsentEvent, ConsentState
from hub.core.consent_registry import EVENTS, LEDGER
from hub.core.errors import Rejection
from hub.core.pseudonym import KeyRing, identifier

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


class ConsentUsageError(ValueError):
    """A usage error; the message names options and fields, never a value."""


def parse_list(text: str) -> list[str]:
    """``a,b, c`` -> ``["a", "b", "c"]``; empty items are refused."""
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError("a comma-separated list without empty items")
    return items


def read_identifier(value: str) -> str:
    """The identifier as given, or the first line of standard input for ``-`` (keeps it out of ``ps``)."""
    if value != "-":
        return value
    return sys.stdin.readline().strip()


def pseudonyms_of(ring: KeyRing, kind: str, value: str) -> tuple[str, ...]:
    """The person's pseudonym under every key, the current one first. ``IDENTIFIER`` if invalid."""
    return ring.candidates(identifier(kind, value))


def grant_event(args: argparse.Namespace, person: str, now: dt.datetime) -> ConsentEvent:
    return consent.grant(
        person=person,
        granting_office=args.from_office,
        recipients=args.to,
        purpose=args.purpose,
        categories=args.categories,
        text_version=args.text_version,
        channel=args.channel,
        collected_at=args.collected_at or now,
        valid_from=args.valid_from,
        valid_until=args.valid_until,
        scan_ref=args.scan_ref,
        note=args.note,
        sensitive=args.sensitive,
        recorded_at=max(now, args.collected_at or now),
    )


def revoke_event(args: argparse.Namespace, person: str, now: dt.datetime) -> ConsentEvent:
    effective = args.effective_at or now
    return consent.revoke(
        person=person,
        record_id=args.record,
        effective_at=effective,
        channel=args.channel,
        scan_ref=args.scan_ref,
        note=args.note,
        recorded_at=max(now, effective),
    )


def _stamp(moment: dt.datetime | None) -> str | None:
    return None if moment is None else timestamp(moment)


def timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def state_json(state: ConsentState, now: dt.datetime) -> dict[str, Any]:
    """One record and its status at ``now``: no scan reference, no note (they may say more)."""
    r = state.record
    return {
        "record_id": state.record_id,
        "status": state.status(now).value,
        "granting_office": None if r is None else r.granting_office,
        "recipients": None if r is None else sorted(r.recipients),
        "purpose": None if r is None else r.purpose,
        "categories": None if r is None else sorted(r.categories),
        "sensitive": None if r is None else r.sensitive,
        "text_version": None if r is None else r.text_version,
        "channel": None if r is None else r.collection.channel,
        "collected_at": None if r is None else timestamp(r.collected_at),
        "valid_from": None if r is None else timestamp(r.valid_from),
        "valid_until": None if r is None else _stamp(r.valid_until),
        "revoked_at": _stamp(state.revoked_at),
        "expired_at": _stamp(state.expired_at),
        "superseded_at": _stamp(state.superseded_at),
        "superseded_by": state.superseded_by,
        "conflict": state.conflict,
    }


def report(
    person: str, ledger: Iterable[ConsentEvent], pending: Iterable[ConsentEvent], now: dt.datetime
) -> dict[str, Any]:
    """What ``show`` prints: the person's records and their status at ``now``.

    ``pending`` counts events on ``consent.events`` the ledger does not hold yet.
    """
    folded = {e.event_id: e for e in ledger}
    waiting = {e.event_id: e for e in pending if e.event_id not in folded}
    states = consent.fold([*folded.values(), *waiting.values()])
    return {
        "person": person,
        "at": timestamp(now),
        "records": [state_json(s, now) for s in states.values()],
        "pending": len(waiting),
    }


def history(
    settings: Settings, persons: Iterable[str]
) -> dict[str, tuple[list[ConsentEvent], list[ConsentEvent]]]:
    """Per pseudonym: the events in its ledger, and the events sent but perhaps not folded yet.

    Both topics are read from the beginning to their ends (assign, no group, no commit).
    Records that are not valid events or ledgers are skipped.
    """
    wanted = {p.encode("ascii"): p for p in persons}
    found: dict[str, tuple[list[ConsentEvent], list[ConsentEvent]]] = {
        p: ([], []) for p in wanted.values()
    }
    for message in dlq.read_topic(settings, settings.topic(LEDGER)):
        person = wanted.get(message.key())
        if person is None:
            continue
        ledger = found[person][0]
        ledger.clear()  # the latest ledger of the key counts (compaction keeps only that one)
        if message.value() is not None:
            try:
                ledger.extend(consent.decode_ledger(message.value())[1])
            except Rejection:
                continue
    for message in dlq.read_topic(settings, settings.topic(EVENTS)):
        person = wanted.get(message.key())
        if person is None:
            continue
        try:
            event = consent.decode_event(message.value() or b"")
        except Rejection:
            continue
        if event.person == person:
            found[person][1].append(event)
    return found


def send(settings: Settings, event: ConsentEvent) -> dict[str, Any]:
    """Send one event to ``consent.events`` under its pseudonym; what the command prints."""
    where = dlq.produce(
        settings,
        settings.topic(EVENTS),
        event.person.encode("ascii"),
        consent.encode_event(event),
    )
    return {
        "event_id": event.event_id,
        "kind": event.kind.value,
        "record_id": event.record_id,
        "person": event.person,
        "effective_at": timestamp(event.effective_at),
        "topic": where.topic,
        "partition": where.partition,
        "offset": where.offset,
    }


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def run(settings: Settings, args: argparse.Namespace, now: dt.datetime | None = None) -> int:
    """The three commands; exit 0, 1 (no such record), 2 (usage), 75 (the cluster failed)."""
    name = f"sozialhub consent {args.consent_command}"
    if settings.embedded:
        _err(f"{name}: KAFKA_BOOTSTRAP_SERVERS is not set; the consent registry lives on a cluster")
        return EXIT_USAGE
    ring = pseudonyms.from_settings(settings, development=args.development_key)
    try:
        candidates = pseudonyms_of(ring, args.person_id_kind, read_identifier(args.person_id))
        return _command(settings, args, candidates, now or dt.datetime.now(dt.UTC))
    except Rejection as rejection:
        where = f" at {rejection.path}" if rejection.path else ""
        _err(f"{name}: {rejection.reason.value}{where}")
        return EXIT_USAGE
    except dlq.DlqError as exc:
        message, status = dlq.command_error(exc)
        _err(f"{name}: {message}")
        return status


def _command(
    settings: Settings, args: argparse.Namespace, candidates: tuple[str, ...], now: dt.datetime
) -> int:
    if args.consent_command == "grant":
        _out(json.dumps(send(settings, grant_event(args, candidates[0], now)), sort_keys=True))
        return EXIT_OK
    found = history(settings, candidates)
    if args.consent_command == "show":
        # One object per pseudonym holding records (more than one only across a key rotation).
        holding = [p for p in candidates if any(found[p])] or [candidates[0]]
        for person in holding:
            _out(json.dumps(report(person, *found[person], now), sort_keys=True))
        return EXIT_OK
    holders = [p for p in candidates if args.record in consent.fold([*found[p][0], *found[p][1]])]
    if not holders:
        _err(f"sozialhub consent revoke: the person has no record {args.record}")
        return EXIT_REJECTED
    _out(json.dumps(send(settings, revoke_event(args, holders[0], now)), sort_keys=True))
    return EXIT_OK
