"""Crash test: SIGKILL the worker in the middle of 1,000 submissions, restart it.

Proves at-least-once plus idempotence end to end: every submission reaches
exactly one outcome downstream (delivered once after deduplication, or
dead-lettered), no delivery file is missing, extra or half-written, and the
inbox is empty.
"""

from __future__ import annotations

import hashlib
import random

import pytest
import xmlschema

from hub import schemas
from hub.core import xmlsafe
from hub.core.records import submission_id
from hub.supervise import WorkerProcess
from hub.testing import PersonSpec, SubmissionSpec, make_submission

from .helpers import dead_letters, drop, outcomes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL = 1000


def _stream(seed: int) -> tuple[dict[str, bytes], set[str]]:
    """1,000 distinct submissions, about one in ten invalid (bad date or unroutable town)."""
    rng = random.Random(seed)
    towns = [
        ("45657", "Recklinghausen"),
        ("45768", "Marl"),
        ("46282", "Dorsten"),
        ("45964", "Gladbeck"),
    ]
    files: dict[str, bytes] = {}
    invalid: set[str] = set()
    for index in range(TOTAL):
        postcode, town = rng.choice(towns)
        kind = rng.random()
        if kind < 0.05:
            data = make_submission(
                SubmissionSpec(persons=(PersonSpec(postcode="44787", town="Bochum"),))
            )
        elif kind < 0.10:
            data = make_submission(SubmissionSpec()).replace(b"1985-04-12", b"1985-13-45")
        else:
            data = make_submission(
                SubmissionSpec(persons=(PersonSpec(postcode=postcode, town=town),))
            )
        name = f"s{index:04d}.xml"
        files[name] = data
        if kind < 0.10:
            invalid.add(submission_id(data))
    return files, invalid


def test_worker_killed_mid_stream_loses_and_duplicates_nothing(hub_settings):
    """After SIGKILL and restart every submission has exactly one outcome and one file per delivery."""
    files, invalid = _stream(seed=20221)
    ids = {submission_id(data): name for name, data in files.items()}
    assert TOTAL == len(ids)
    log = hub_settings.data_dir / "worker.log"

    first = WorkerProcess(hub_settings, log_file=log).start()
    first.wait_ready()
    for name, data in files.items():
        drop(hub_settings.inbox_dir, name, data)
    # Kill once a good part, but not all, has an outcome.
    partial = outcomes(hub_settings, set(ids), timeout=180, at_least=250)
    finished_before = sum(partial.get(s).final for s in ids)
    first.kill()
    assert 250 <= finished_before < TOTAL, "the kill must land in the middle of the stream"

    second = WorkerProcess(hub_settings, log_file=log).start()
    try:
        tracker = outcomes(hub_settings, set(ids), timeout=300)
    finally:
        second.stop()

    # Exactly one outcome per submission, and the right one.
    pending = [ids[s] for s in ids if not tracker.get(s).final]
    assert [] == pending
    both = [s for s in ids if tracker.get(s).rejected is not None and tracker.get(s).delivered]
    assert [] == both
    assert invalid == {s for s in ids if tracker.get(s).outcome == "dead-lettered"}

    # One file per routed delivery: nothing missing, nothing extra, nothing half-written.
    expected_files = {did for s in ids for did in tracker.get(s).routed}
    written = sorted(
        p for p in hub_settings.outbox_dir.glob("*/*/*") if not p.parts[-3].startswith(".")
    )
    assert [] == [p for p in written if p.name.startswith(".")]
    delivered_files = {p.stem for p in written if p.is_file()}
    assert expected_files == delivered_files
    ledger = {p.name for p in (hub_settings.outbox_dir / ".delivered").glob("*/*")}
    assert expected_files == ledger

    vendor_schema = schemas.load_vendor_schema(hub_settings.schema_dir, "fv-xml")
    for path in (p for p in written if p.is_file()):
        vendor_schema.validate(
            xmlschema.XMLResource(xmlsafe.parse(path.read_bytes()), allow="none")
        )

    # Every invalid submission has a dead letter; the inbox is empty and the archive complete.
    letters = dead_letters(hub_settings, invalid, timeout=60)
    assert invalid == {d.submission_id for d in letters}
    assert [] == list(hub_settings.inbox_dir.iterdir())
    archived = {p.stem for p in hub_settings.archive_dir.iterdir()}
    assert set(ids) == archived
    # The archive holds the original bytes, unchanged.
    sample = next(iter(ids))
    original = files[ids[sample]]
    assert (
        hashlib.sha256(original).hexdigest()
        == hashlib.sha256((hub_settings.archive_dir / f"{sample}.xml").read_bytes()).hexdigest()
    )
