"""Kafka side of the audit vault: ``sozialhub audit erase`` and opening recorded inputs for replay.

Readers use :func:`hub.dlq.read_topic` (assign from the beginning, no group, no
commits, up to the high watermarks at the start). The decisions are in
:mod:`hub.core.audit_vault`; docs/audit-vault.md explains the whole.

- :func:`erase`: every live key of the person on ``audit.keys`` (under each of
  the person's pseudonyms) gets a tombstone in its own partition; once Kafka
  acknowledged them all, one ``audit``/``erased`` event per pseudonym goes to
  ``audit.log``, naming the pseudonym and the number of keys, nothing else.
  Erasure is logical at once (nobody can unwrap the key any more; workers drop
  it from their index) and physical once ``audit.keys`` is compacted.
- :func:`write_rewrapped`: every live key wrapped with an older KEK is wrapped again with
  the current one and written under its key id into its partition; a key erased
  between the read and the write is erased again; one ``audit``/``rewrapped``
  event names how many keys were re-wrapped. Afterwards the older KEKs can be
  dropped from the KEK file.
- :func:`open_recorded`: the ``submissions.accepted`` value a submission was
  sealed with, for audit replay, or None when its key is erased or nothing was
  recorded (:func:`recorded` says why).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from hub import audit_kek, dlq, pseudonyms
from hub.config import ConfigError, Settings
from hub.core import pipeline
from hub.core.audit_vault import (
    ERASE_STAGE,
    ERASED,
    KEYS,
    PERSON_KEY_ID,
    REWRAPPED,
    VAULT,
    KekRing,
    PersonKey,
    SealedInput,
    TamperedError,
    VaultError,
    WrongKeyError,
    decode_person_key,
    decode_sealed,
    encode_record,
    erased_meanwhile,
    erasure_target,
    keys_of,
    open_sealed,
)
from hub.core.audit_vault import rewrap as rewrap_key
from hub.core.errors import Rejection
from hub.core.pseudonym import identifier
from hub.core.records import AuditEvent, SourceRef, b64decode_validated, decode, is_id

log = structlog.get_logger(__name__)

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2
NAME = "sozialhub audit erase"
# Why a recorded input did not open (Recorded.reason).
ABSENT = "absent"  # nothing on audit.vault for the submission (not recorded, or expired)


class EraseUsageError(ValueError):
    """A usage error of ``audit erase``; the message names options, never an identifier."""


# --- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LiveKey:
    """A person key on ``audit.keys`` not tombstoned, and where its latest record is."""

    record: PersonKey
    partition: int
    offset: int = -1


def live_keys(settings: Settings) -> dict[str, LiveKey]:
    """Key id -> its latest record, for every person key on ``audit.keys`` without a tombstone.

    Records that are not person keys (or whose key is not their key id) are skipped.
    """
    live: dict[str, LiveKey] = {}
    for message in dlq.read_topic(settings, settings.topic(KEYS)):
        key_id = (message.key() or b"").decode("ascii", "replace")
        if PERSON_KEY_ID.fullmatch(key_id) is None:
            continue
        value = message.value()
        if value is None:
            live.pop(key_id, None)
            continue
        try:
            record = decode_person_key(value)
        except Rejection:
            continue
        if record.key_id == key_id:
            live[key_id] = LiveKey(record, message.partition(), message.offset())
    return live


def sealed_inputs(settings: Settings, submission_id: str) -> list[SealedInput]:
    """The records on ``audit.vault`` for ``submission_id``, oldest first (usually one)."""
    wanted = submission_id.encode("ascii")
    found: list[SealedInput] = []
    for message in dlq.read_topic(settings, settings.topic(VAULT)):
        if message.key() != wanted or message.value() is None:
            continue
        try:
            record = decode_sealed(message.value())
        except Rejection:
            continue
        if record.submission_id == submission_id:
            found.append(record)
    return found


# --- replay -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recorded:
    """A submission's recorded input, or why there is none.

    ``reason``: None (opened), ``absent`` (nothing on ``audit.vault``), ``erased``
    (the person key is gone), ``tampered`` (the record or the key does not
    authenticate), ``wrong-key`` (wrapped with a KEK that is not configured).
    ``ciphertext_sha256``: SHA-256 of the ciphertext bytes of the record that opened
    (else of the latest record), computed here, not taken from the record; what the
    ``input_sha256`` of the ``vault``/``sealed`` event must be (audit replay checks it).
    """

    submission_id: str
    value: bytes | None
    reason: str | None
    person_key: str | None = None
    ciphertext_sha256: str | None = None


def _ring(settings: Settings, keks: KekRing | None) -> KekRing:
    ring = keks if keks is not None else audit_kek.from_settings(settings)
    if ring is None:
        raise ConfigError("audit_kek_file is not set (SOZIALHUB_AUDIT_KEK_FILE)")
    return ring


def _ciphertext_sha256(record: SealedInput) -> str | None:
    try:
        return hashlib.sha256(b64decode_validated(record.ciphertext_b64)).hexdigest()
    except (ValueError, TypeError):
        return None


def _opened(
    submission_id: str,
    sealed: list[SealedInput],
    live: dict[str, PersonKey],
    ring: KekRing,
) -> Recorded:
    """The latest of ``sealed`` (oldest first) that opens, or why none does."""
    if not sealed:
        return Recorded(submission_id, None, ABSENT)
    latest = sealed[-1]
    reason: str | None = None
    for record in reversed(sealed):
        try:
            value = open_sealed(record, live, ring)
        except VaultError as exc:
            reason = reason or exc.code
            continue
        return Recorded(submission_id, value, None, record.person_key, _ciphertext_sha256(record))
    return Recorded(submission_id, None, reason, latest.person_key, _ciphertext_sha256(latest))


def recorded(settings: Settings, submission_id: str, *, keks: KekRing | None = None) -> Recorded:
    """Open the input recorded for ``submission_id`` with the configured KEK (or ``keks``).

    The latest record that opens wins (a submission sealed twice, e.g. under two
    keys made at once, has more than one). ConfigError without any KEK.
    """
    if not (is_id(submission_id) and submission_id.startswith("sub-")):
        raise ValueError("a submission id is 'sub-' and 32 lowercase hex digits")
    ring = _ring(settings, keks)
    sealed = sealed_inputs(settings, submission_id)
    if not sealed:
        return Recorded(submission_id, None, ABSENT)
    live = {key_id: found.record for key_id, found in live_keys(settings).items()}
    return _opened(submission_id, sealed, live, ring)


def recorded_all(
    settings: Settings, submission_ids: Iterable[str], *, keks: KekRing | None = None
) -> dict[str, Recorded]:
    """:func:`recorded` for many submissions, reading ``audit.vault`` and ``audit.keys`` once
    (audit replay: one read instead of one per submission). ConfigError without any KEK."""
    wanted = set(submission_ids)
    ring = _ring(settings, keks)
    by_submission: dict[str, list[SealedInput]] = {}
    for message in dlq.read_topic(settings, settings.topic(VAULT)):
        key = (message.key() or b"").decode("ascii", "replace")
        if key not in wanted or message.value() is None:
            continue
        try:
            record = decode_sealed(message.value())
        except Rejection:
            continue
        if record.submission_id == key:
            by_submission.setdefault(key, []).append(record)
    live: dict[str, PersonKey] = {}
    if by_submission:
        live = {key_id: found.record for key_id, found in live_keys(settings).items()}
    return {sid: _opened(sid, by_submission.get(sid, []), live, ring) for sid in sorted(wanted)}


def open_recorded(
    settings: Settings, submission_id: str, *, keks: KekRing | None = None
) -> bytes | None:
    """The ``submissions.accepted`` value recorded for ``submission_id``, for audit replay.

    None when it cannot be opened: the person's key was erased, nothing was
    recorded, or the record does not authenticate; the reason is logged
    (``vault.not_opened``) and :func:`recorded` returns it.
    """
    found = recorded(settings, submission_id, keks=keks)
    if found.value is None:
        log.info("vault.not_opened", submission_id=submission_id, reason=found.reason)
    return found.value


# --- erasure ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Erasure:
    """What one pseudonym lost: its key ids, and where the ``audit``/``erased`` event went."""

    person: str
    key_ids: tuple[str, ...]
    event_id: str
    audit: SourceRef


def plan(settings: Settings, persons: tuple[str, ...]) -> dict[str, tuple[LiveKey, ...]]:
    """Per pseudonym of ``persons`` holding keys: its live keys (sorted by key id)."""
    live = live_keys(settings)
    by_person = keys_of(persons, {key_id: found.record for key_id, found in live.items()})
    return {person: tuple(live[k] for k in ids) for person, ids in by_person.items()}


def erased_event(person: str, key_ids: tuple[str, ...], now: dt.datetime) -> pipeline.Emit:
    """The ``audit``/``erased`` event: the pseudonym and the number of keys, nothing else.

    Under ``sub-unknown``; its id is made of the pseudonym and the key ids
    (:func:`hub.core.audit_vault.erasure_target`), so the same erasure twice is one event.
    """
    return pipeline.audit(
        pipeline.UNKNOWN,
        ERASE_STAGE,
        ERASED,
        now,
        target=erasure_target(person, key_ids),
        person=person,
        key_count=len(key_ids),
    )


def erase(
    settings: Settings, planned: dict[str, tuple[LiveKey, ...]], now: dt.datetime
) -> list[Erasure]:
    """Tombstone every planned key (each acknowledged), then one audit event per pseudonym.

    A tombstone goes to the partition its key's record is in, so compaction
    removes the record. :class:`hub.dlq.DlqError` when the cluster fails; keys
    tombstoned before that stay erased.
    """
    topic = settings.topic(KEYS)
    tombstones = [
        (topic, found.record.key_id.encode("ascii"), None, found.partition)
        for keys in planned.values()
        for found in keys
    ]
    if tombstones:
        dlq.produce_all(settings, tombstones)
    done: list[Erasure] = []
    for person, keys in planned.items():
        key_ids = tuple(found.record.key_id for found in keys)
        emit = erased_event(person, key_ids, now)
        where = dlq.send_audit(settings, emit, done=f"the keys of {person} are erased")
        event_id = decode(emit.value, AuditEvent).event_id
        done.append(Erasure(person, key_ids, event_id, where))
    return done


def _persons(settings: Settings, args: argparse.Namespace) -> tuple[str, ...]:
    """The pseudonyms to erase: ``--person``, or the identifier's under every key of the ring."""
    person: str | None = args.person
    if args.identifier is None:
        if person is None:
            raise EraseUsageError("name the person: --person PSEUDONYM or --identifier KIND:VALUE")
        return (person,)
    text = sys.stdin.readline().strip() if args.identifier == "-" else args.identifier
    kind, separator, value = text.rpartition(":")
    if not separator or not kind:
        raise EraseUsageError("--identifier is KIND:VALUE, e.g. idnr:<IdNr>")
    ring = pseudonyms.from_settings(settings, development=args.development_key)
    try:
        candidates = ring.candidates(identifier(kind, value))
    except Rejection as rejection:
        raise EraseUsageError(
            f"--identifier: {rejection.reason.value} at {rejection.path}"
        ) from None
    if person is not None and person not in candidates:
        raise EraseUsageError("--person is not a pseudonym of --identifier under the key ring")
    return candidates


def _confirmed(planned: dict[str, tuple[LiveKey, ...]]) -> bool:
    count = sum(len(keys) for keys in planned.values())
    names = ", ".join(planned)
    sys.stderr.write(
        f"erase {count} person key(s) of {names}? "
        "Every input recorded under them can never be opened again. [y/N] "
    )
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _report(persons: tuple[str, ...], done: list[Erasure]) -> dict[str, Any]:
    return {
        "persons": list(persons),
        "key_count": sum(len(e.key_ids) for e in done),
        "erased": [
            {
                "person": e.person,
                "keys": list(e.key_ids),
                "key_count": len(e.key_ids),
                "audit_event": e.event_id,
                "audit": {
                    "topic": e.audit.topic,
                    "partition": e.audit.partition,
                    "offset": e.audit.offset,
                },
            }
            for e in done
        ],
    }


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _err(line: str, command: str = NAME) -> None:
    sys.stderr.write(f"{command}: {line}\n")


def run_erase(settings: Settings, args: argparse.Namespace, now: dt.datetime | None = None) -> int:
    """``sozialhub audit erase``: exit 0 (erased, or nothing to erase), 1 (not confirmed), 2
    (usage, no cluster, missing topic), 75 (the cluster failed)."""
    if settings.embedded:
        _err("KAFKA_BOOTSTRAP_SERVERS is not set; the vault lives on a cluster")
        return EXIT_USAGE
    try:
        return _erase_command(settings, args, now or dt.datetime.now(dt.UTC))
    except EraseUsageError as exc:
        _err(str(exc))
        return EXIT_USAGE
    except dlq.DlqError as exc:
        message, status = dlq.command_error(exc)
        _err(message)
        return status


def _erase_command(settings: Settings, args: argparse.Namespace, now: dt.datetime) -> int:
    persons = _persons(settings, args)
    planned = plan(settings, persons)
    if not planned:
        _out(json.dumps(_report(persons, []), sort_keys=True))
        _err(
            f"nothing to erase: no person key of {', '.join(persons)} on {KEYS} "
            "(already erased, or no input was recorded)"
        )
        return EXIT_OK
    if not args.yes and not _confirmed(planned):
        _err("not confirmed; nothing was erased")
        return EXIT_REJECTED
    done = erase(settings, planned, now)
    _out(json.dumps(_report(persons, done), sort_keys=True))
    return EXIT_OK


# --- re-wrapping (KEK rotation) ------------------------------------------------------------------

REWRAP_NAME = "sozialhub audit rewrap"


@dataclass(frozen=True, slots=True)
class RewrapPlan:
    """What ``audit rewrap`` finds on ``audit.keys``: the keys to re-wrap and those it cannot."""

    current: str  # the current KEK's id
    stale: tuple[tuple[LiveKey, PersonKey], ...]  # (the key as found, re-wrapped)
    already_current: int
    unopenable: dict[str, int]  # KEK id not in the ring -> how many keys it wraps
    tampered: tuple[str, ...]  # key ids that do not authenticate under their KEK


def rewrap_plan(
    settings: Settings, keks: KekRing, random: Callable[[int], bytes] = os.urandom
) -> RewrapPlan:
    """Every live person key not wrapped with the current KEK, re-wrapped (not yet written)."""
    stale: list[tuple[LiveKey, PersonKey]] = []
    unopenable: dict[str, int] = {}
    tampered: list[str] = []
    current = 0
    for key_id, found in sorted(live_keys(settings).items()):
        if found.record.kek_id == keks.current.kid:
            current += 1
            continue
        try:
            stale.append((found, rewrap_key(found.record, keks, random)))
        except WrongKeyError:
            unopenable[found.record.kek_id] = unopenable.get(found.record.kek_id, 0) + 1
        except TamperedError:
            tampered.append(key_id)
    return RewrapPlan(keks.current.kid, tuple(stale), current, unopenable, tuple(tampered))


def rewrapped_event(kek_id: str, key_ids: Iterable[str], now: dt.datetime) -> pipeline.Emit:
    """The ``audit``/``rewrapped`` event: how many keys now wrap under ``kek_id``, nothing else.

    Under ``sub-unknown``; its id is made of the KEK id and the key ids, so the same
    run repeated (after a failure to write the event) is one event.
    """
    keys = sorted(key_ids)
    digest = hashlib.sha256("\n".join(keys).encode("ascii")).hexdigest()[:32]
    return pipeline.audit(
        pipeline.UNKNOWN,
        ERASE_STAGE,
        REWRAPPED,
        now,
        target=f"{kek_id}:{digest}",
        key_count=len(keys),
    )


@dataclass(frozen=True, slots=True)
class Rewrapped:
    """What ``audit rewrap`` wrote: the keys re-wrapped, those erased again, the audit event."""

    key_ids: tuple[str, ...]
    erased_again: tuple[str, ...]
    event_id: str | None
    audit: SourceRef | None


def write_rewrapped(settings: Settings, planned: RewrapPlan, now: dt.datetime) -> Rewrapped:
    """Write the re-wrapped keys (each acknowledged), erase again any key erased meanwhile,
    then write one ``audit``/``rewrapped`` event. :class:`hub.dlq.DlqError` when the cluster
    fails; keys written before that stay re-wrapped, and a second run does the rest."""
    if not planned.stale:
        return Rewrapped((), (), None, None)
    topic = settings.topic(KEYS)
    written = dlq.produce_all(
        settings,
        [
            (topic, new.key_id.encode("ascii"), encode_record(new), found.partition)
            for found, new in planned.stale
        ],
    )
    at = {
        found.record.key_id: (found, where)
        for (found, _), where in zip(planned.stale, written, strict=True)
    }
    history: dict[str, list[tuple[int, bool]]] = {}
    for message in dlq.read_topic(settings, topic):
        key_id = (message.key() or b"").decode("ascii", "replace")
        if key_id in at and message.partition() == at[key_id][0].partition:
            history.setdefault(key_id, []).append((message.offset(), message.value() is None))
    again = tuple(
        key_id
        for key_id, (found, where) in sorted(at.items())
        if erased_meanwhile(history.get(key_id, ()), found.offset, where.offset)
    )
    if again:
        dlq.produce_all(
            settings,
            [(topic, key_id.encode("ascii"), None, at[key_id][0].partition) for key_id in again],
        )
    key_ids = tuple(sorted(set(at) - set(again)))
    emit = rewrapped_event(planned.current, key_ids, now)
    where = dlq.send_audit(settings, emit, done="the keys are re-wrapped")
    return Rewrapped(key_ids, again, decode(emit.value, AuditEvent).event_id, where)


def _rewrap_report(planned: RewrapPlan, done: Rewrapped | None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "kek": planned.current,
        "to_rewrap": len(planned.stale),
        "already_current": planned.already_current,
        "unopenable": dict(sorted(planned.unopenable.items())),
        "tampered": list(planned.tampered),
        "dry_run": done is None,
    }
    if done is not None:
        report["rewrapped"] = len(done.key_ids)
        report["erased_again"] = list(done.erased_again)
        report["audit_event"] = done.event_id
    return report


def run_rewrap(settings: Settings, args: argparse.Namespace, now: dt.datetime | None = None) -> int:
    """``sozialhub audit rewrap``: exit 0 (every key readable is under the current KEK), 1 (a key
    does not authenticate), 2 (usage: no cluster, no KEK, missing topic), 75 (the cluster failed)."""
    try:
        keks = _rewrap_keks(settings, args)
    except ConfigError as exc:
        _rewrap_err(str(exc))
        return EXIT_USAGE
    try:
        planned = rewrap_plan(settings, keks)
        done = (
            None
            if args.dry_run
            else write_rewrapped(settings, planned, now or dt.datetime.now(dt.UTC))
        )
    except dlq.DlqError as exc:
        message, status = dlq.command_error(exc)
        _rewrap_err(message)
        return status
    _out(json.dumps(_rewrap_report(planned, done), sort_keys=True))
    for kek_id, count in sorted(planned.unopenable.items()):
        _rewrap_err(f"{count} key(s) are wrapped with KEK {kek_id}, which is not in the KEK file")
    if planned.tampered:
        _rewrap_err(
            f"{len(planned.tampered)} key(s) do not authenticate under their KEK; left as they are"
        )
        return EXIT_REJECTED
    return EXIT_OK


def _rewrap_keks(settings: Settings, args: argparse.Namespace) -> KekRing:
    """The KEK ring to re-wrap with; :class:`ConfigError` naming what is missing."""
    if settings.embedded:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS is not set; the vault lives on a cluster")
    keks = audit_kek.from_settings(settings, development=args.development_kek)
    if keks is None:
        raise ConfigError("no KEK configured (SOZIALHUB_AUDIT_KEK_FILE)")
    return keks


def _rewrap_err(line: str) -> None:
    _err(line, REWRAP_NAME)
