"""KEK rotation through a real broker: ``sozialhub audit rewrap``.

Person keys are written to ``audit.keys`` wrapped with an old KEK, and inputs sealed
under them to ``audit.vault``, as dispatch writes them. After the KEK file names a new
current KEK (the old one in ``previous``), ``audit rewrap`` wraps every such key with
the new one; the inputs then open with a ring that no longer holds the old KEK. Keys
already current are left alone, keys under a KEK the file lacks are reported, a key
that does not authenticate is reported and exits 1, and a dry run writes nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import os
from pathlib import Path

import pytest

from hub import cli, dlq
from hub.audit_vault_cli import live_keys, open_recorded, write_rewrapped
from hub.core import audit_vault as av
from hub.core.pipeline import UNKNOWN
from hub.core.records import AuditEvent

from .helpers import cli_environment

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
OLD = av.Kek("kek2026", os.urandom(32))
NEW = av.Kek("kek2027", os.urandom(32))
GONE = av.Kek("kek2025", os.urandom(32))


def person(n: int) -> str:
    return f"psn-k2026-{n:032x}"


def sid(n: int) -> str:
    return f"sub-{n:032x}"


def kek_file(directory: Path, current: av.Kek, *previous: av.Kek) -> Path:
    def entry(kek: av.Kek) -> dict[str, str]:
        return {"kid": kek.kid, "key": base64.b64encode(kek.key).decode("ascii")}

    path = directory / f"kek-{current.kid}.json"
    path.write_text(json.dumps({**entry(current), "previous": [entry(k) for k in previous]}))
    return path


def record(settings, n: int, kek: av.Kek) -> av.PersonKey:
    """A person key under ``kek`` on audit.keys and an input sealed under it on audit.vault."""
    key_record, key = av.new_person_key(person(n), kek, os.urandom, NOW)
    sealed = av.seal(f"input {n}".encode(), sid(n), key, NOW)
    dlq.produce(
        settings, settings.topic(av.KEYS), key_record.key_id.encode(), av.encode_record(key_record)
    )
    dlq.produce(settings, settings.topic(av.VAULT), sid(n).encode(), av.encode_record(sealed))
    return key_record


@pytest.fixture
def rewrap_cli(hub_settings, monkeypatch, capsys):
    """cli.main(["audit", "rewrap", ...]) with the KEK file of ``settings``."""

    def run(settings, *argv: str) -> tuple[int, dict | None, str]:
        with cli_environment(settings, monkeypatch):
            status = cli.main(["audit", "rewrap", *argv])
        captured = capsys.readouterr()
        # The report is the last line; earlier ones are the test's own logs (structlog's default).
        lines = captured.out.strip().splitlines()
        return status, json.loads(lines[-1]) if lines else None, captured.err

    return run


def test_rewrap_moves_every_key_to_the_current_kek(hub_settings, rewrap_cli, tmp_path):
    old_keys = [record(hub_settings, n, OLD) for n in (1, 2, 3)]
    current_key = record(hub_settings, 4, NEW)
    lost_key = record(hub_settings, 5, GONE)
    rotated = hub_settings.with_overrides(audit_kek_file=kek_file(tmp_path, NEW, OLD))

    # A dry run reports and writes nothing.
    before = {k: v.record for k, v in live_keys(hub_settings).items()}
    status, report, _ = rewrap_cli(rotated, "--dry-run")
    assert (0, 3, 1, {"kek2025": 1}, True) == (
        status,
        report["to_rewrap"],
        report["already_current"],
        report["unopenable"],
        report["dry_run"],
    )
    assert before == {k: v.record for k, v in live_keys(hub_settings).items()}

    status, report, err = rewrap_cli(rotated)
    assert (0, 3, []) == (status, report["rewrapped"], report["erased_again"])
    assert "1 key(s) are wrapped with KEK kek2025, which is not in the KEK file" in err
    live = live_keys(hub_settings)
    assert {k.key_id: "kek2027" for k in [*old_keys, current_key]} | {
        lost_key.key_id: "kek2025"
    } == {k: v.record.kek_id for k, v in live.items()}
    # Same key ids, persons and creation times; the current key's record is untouched.
    for old in old_keys:
        new = live[old.key_id].record
        assert (old.person, old.created_at) == (new.person, new.created_at)
        assert old.wrapped_b64 != new.wrapped_b64
    assert live[current_key.key_id].record == current_key

    # The old KEK can go: every input opens with the new KEK alone.
    only_new = av.KekRing(NEW)
    for n in (1, 2, 3, 4):
        assert f"input {n}".encode() == open_recorded(hub_settings, sid(n), keks=only_new)
    assert open_recorded(hub_settings, sid(5), keks=only_new) is None

    # One audit event: the count, nothing personal.
    (event,) = [e for e in dlq.audit_events(hub_settings, UNKNOWN) if e.stage == av.ERASE_STAGE]
    assert (av.REWRAPPED, 3, report["audit_event"]) == (
        event.decision,
        event.key_count,
        event.event_id,
    )
    assert {"event_id", "submission_id", "stage", "decision", "at", "key_count"} == {
        f.name for f in dataclasses.fields(AuditEvent) if getattr(event, f.name) is not None
    }

    # A second run finds nothing to do and writes no event.
    status, report, _ = rewrap_cli(rotated)
    assert (0, 0, 4) == (status, report["rewrapped"], report["already_current"])
    events = [e for e in dlq.audit_events(hub_settings, UNKNOWN) if e.stage == av.ERASE_STAGE]
    assert len(events) == 1


def test_a_key_that_does_not_authenticate_is_left_and_reported(hub_settings, rewrap_cli, tmp_path):
    good = record(hub_settings, 1, OLD)
    bad = record(hub_settings, 2, OLD)
    forged = dataclasses.replace(bad, person=person(99))  # moved to another person
    dlq.produce(
        hub_settings, hub_settings.topic(av.KEYS), bad.key_id.encode(), av.encode_record(forged)
    )
    rotated = hub_settings.with_overrides(audit_kek_file=kek_file(tmp_path, NEW, OLD))
    status, report, err = rewrap_cli(rotated)
    assert (1, [bad.key_id], 1) == (status, report["tampered"], report["rewrapped"])
    assert "do not authenticate" in err
    live = live_keys(hub_settings)
    assert (live[good.key_id].record.kek_id, live[bad.key_id].record) == ("kek2027", forged)


def test_a_key_erased_during_the_rewrap_stays_erased(hub_settings, tmp_path):
    """`audit erase` tombstones a key after rewrap read it and before it wrote it again: the
    re-wrapped record would bring the key back, so rewrap erases it again."""
    from hub.audit_vault_cli import rewrap_plan

    kept, erased = record(hub_settings, 1, OLD), record(hub_settings, 2, OLD)
    rotated = hub_settings.with_overrides(audit_kek_file=kek_file(tmp_path, NEW, OLD))
    planned = rewrap_plan(rotated, av.KekRing(NEW, [OLD]))
    (found,) = [f for f, _ in planned.stale if f.record.key_id == erased.key_id]
    dlq.produce(
        hub_settings, hub_settings.topic(av.KEYS), erased.key_id.encode(), None, found.partition
    )
    done = write_rewrapped(rotated, planned, NOW)
    assert ((kept.key_id,), (erased.key_id,)) == (done.key_ids, done.erased_again)
    assert [kept.key_id] == list(live_keys(hub_settings))


def test_without_a_kek_file_there_is_nothing_to_rewrap_with(hub_settings, rewrap_cli):
    status, report, err = rewrap_cli(hub_settings)
    assert (2, None) == (status, report)
    assert "no KEK configured" in err
