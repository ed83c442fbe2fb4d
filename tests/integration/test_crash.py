"""Crash test: SIGKILL the worker twice in the middle of 1,000 submissions.

Files arrive in the inbox while the worker runs, so the kills land while files
are being taken as well as while records are processed and delivered. Proves
at-least-once plus idempotence end to end: every submission reaches exactly one
outcome downstream (delivered once after deduplication, or dead-lettered), no
delivery file is missing, extra or half-written, every dead letter is there
once, and the inbox is empty.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time

import pytest
import xmlschema

from hub import schemas
from hub.core import xmlsafe
from hub.core.records import submission_id
from hub.supervise import WorkerProcess
from hub.testing import PersonSpec, SubmissionSpec, make_submission

from .helpers import all_vendors_on_files, dead_letters, drop, outcomes

pytestmark = [pytest.mark.integration, pytest.mark.slow]

TOTAL = 1000


def _stream(seed: int) -> tuple[dict[str, bytes], set[str]]:
    """1,000 distinct submissions: ~10% invalid (bad date, unroutable town), ~15% for two offices."""
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
        elif kind > 0.85:  # a household with Wohngeld and BuT: two offices, two deliveries
            benefits = (("99107023017000", "Wohngeld"), ("99107032148000", "BuT"))
            person = PersonSpec(postcode=postcode, town=town, benefits=benefits)
            data = make_submission(SubmissionSpec(persons=(person,)))
        else:
            data = make_submission(
                SubmissionSpec(persons=(PersonSpec(postcode=postcode, town=town),))
            )
        name = f"s{index:04d}.xml"
        files[name] = data
        if kind < 0.10:
            invalid.add(submission_id(data))
    return files, invalid


def _feed(inbox, files: dict[str, bytes], per_second: float) -> threading.Thread:
    """Drop the files into the inbox at a steady pace, the way portals deliver them."""

    def run() -> None:
        for index, (name, data) in enumerate(files.items()):
            drop(inbox, name, data)
            if index % 10 == 9:
                time.sleep(10 / per_second)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_worker_killed_twice_mid_stream_loses_and_duplicates_nothing(hub_settings):
    """After two SIGKILLs and restarts every submission has exactly one outcome and one file per delivery."""
    # One checkable fv-xml file per delivery; the other channels' crash behaviour (a kill
    # during an endpoint outage) is covered by test_delivery_channels.py.
    hub_settings = all_vendors_on_files(hub_settings)
    files, invalid = _stream(seed=20221)
    ids = {submission_id(data): name for name, data in files.items()}
    assert TOTAL == len(ids)
    log = hub_settings.data_dir / "worker.log"

    worker = WorkerProcess(hub_settings, log_file=log).start()
    worker.wait_ready()
    feeder = _feed(hub_settings.inbox_dir, files, per_second=120)
    for at_least in (200, 550):  # kill while files still arrive, then again later
        partial = outcomes(hub_settings, set(ids), timeout=180, at_least=at_least)
        finished = sum(partial.get(s).final for s in ids)
        worker.kill()
        assert at_least <= finished < TOTAL, "each kill must land in the middle of the stream"
        worker = WorkerProcess(hub_settings, log_file=log).start()
    try:
        tracker = outcomes(hub_settings, set(ids), timeout=300)
    finally:
        worker.stop()
    feeder.join(timeout=60)

    # Exactly one outcome per submission, and the right one.
    pending = [ids[s] for s in ids if not tracker.get(s).final]
    assert [] == pending
    both = [s for s in ids if tracker.get(s).rejected is not None and tracker.get(s).delivered]
    assert [] == both
    assert invalid == {s for s in ids if tracker.get(s).outcome == "dead-lettered"}
    assert any(len(tracker.get(s).routed) == 2 for s in ids), (
        "the stream must contain two-office households"
    )

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

    # Every invalid submission has its dead letter; a redelivered rejection repeats the same
    # dead-letter id (deduplicable), it never creates a second, different one.
    letters = dead_letters(hub_settings, invalid, timeout=60)
    assert invalid == {d.submission_id for d in letters}
    ids_per_submission = {}
    for letter in letters:
        ids_per_submission.setdefault(letter.submission_id, set()).add(letter.dead_letter_id)
    assert dict.fromkeys(invalid, 1) == {s: len(v) for s, v in ids_per_submission.items()}

    # The inbox is empty and the archive holds every original, unchanged.
    assert [] == list(hub_settings.inbox_dir.iterdir())
    archived = {p.stem for p in hub_settings.archive_dir.iterdir()}
    assert set(ids) == archived
    for sid, name in list(ids.items())[:50]:
        assert (
            hashlib.sha256(files[name]).digest()
            == hashlib.sha256((hub_settings.archive_dir / f"{sid}.xml").read_bytes()).digest()
        )
