"""The FIT-Connect answer index, loaded from ``submissions.receipts`` through the test broker.

The topic keeps 90 days of receipts; the index keeps answers of the last 15. It
starts each partition at the first record whose timestamp is inside the window
(with a day's margin, ``offsets_for_times``), so a worker's start does not read 90
days of receipts on a real Kafka. The test broker answers ``offsets_for_times``
with offset 0 for any time (its records keep their timestamps), so here the
index reads every record and its age check alone keeps the old answers out: what
is tested here is that the index loads (also a partition with only old records
and an empty topic), holds exactly the answers of its window, and follows new
ones. ``tests/unit/test_follow_since.py`` covers the start offsets it asks for.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import replace

from hub import kafka
from hub.core import pipeline
from hub.core.records import PortalReceipt, b64, encode, timestamp
from hub.stream import fitconnect_answers
from tests.integration.test_receipt_groups import PARTITIONS, receipt, until


def answer(number: int, at: dt.datetime) -> PortalReceipt:
    """A FIT-Connect answer given at ``at``: its submission id and SET are its own."""
    return replace(
        receipt(number, "fitconnect"),
        at=timestamp(at),
        transport_message_id=str(uuid.UUID(int=number)),
        body_b64=b64(f"set.token.{number}".encode("ascii")),
    )


def produce(settings, records: list[tuple[int, PortalReceipt, dt.datetime]]) -> None:
    """``(partition, receipt, record timestamp)`` onto ``submissions.receipts``, acknowledged."""
    producer = kafka.producer(settings)
    topic = settings.topic(pipeline.RECEIPTS)
    for partition, r, at in records:
        stamp = int(at.timestamp() * 1000)
        producer.produce(topic, key=b"k", value=encode(r), partition=partition, timestamp=stamp)
    assert 0 == producer.flush(30)


def test_only_the_window_is_read_and_new_answers_are_followed(hub_settings):
    now = dt.datetime.now(dt.UTC)
    old = now - dt.timedelta(days=40)
    recent = now - dt.timedelta(days=3)
    assert PARTITIONS == 3
    # Partition 0: old, then recent; partition 1: only old; partition 2: only recent.
    produce(
        hub_settings,
        [(0, answer(n, old), old) for n in range(1, 6)]
        + [(0, answer(n, recent), recent) for n in range(6, 8)]
        + [(1, answer(n, old), old) for n in range(8, 12)]
        + [(2, answer(n, recent), recent) for n in range(12, 14)],
    )
    index, stop = fitconnect_answers.start(hub_settings)
    try:
        assert index.loaded.wait(60)
        assert not index.failed
        assert 4 <= index.read <= 13  # 4 on a real Kafka; the test broker reads all 13
        assert [6, 7, 12, 13] == [n for n in range(1, 14) if index.get(str(uuid.UUID(int=n)))]
        late = answer(20, now)
        produce(hub_settings, [(1, late, now)])  # after the load, on the old-only partition
        until(lambda: index.get(str(uuid.UUID(int=20))) is not None, timeout=30)
        assert ("7d6c3b4e-2f1a-4c5d-9e8f-0a1b2c3d4e5f", "set.token.20") == index.get(
            str(uuid.UUID(int=20))
        )
    finally:
        stop.set()


def test_an_empty_topic_is_loaded(hub_settings):
    """No record in the window anywhere: every partition is read from its end, and loads."""
    index, stop = fitconnect_answers.start(hub_settings)
    try:
        assert index.loaded.wait(60)
        assert (0, False) == (index.read, index.failed)
    finally:
        stop.set()


def test_a_stopped_index_thread_ends(hub_settings):
    index, stop = fitconnect_answers.start(hub_settings)
    assert index.loaded.wait(60)
    stop.set()
    threads = [t for t in threading.enumerate() if t.name == "fitconnect-answers"]
    until(lambda: not any(t.is_alive() for t in threads), timeout=30)
