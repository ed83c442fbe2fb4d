"""Where a follower starts each partition when it reads only records since a time.

``hub.stream.follow._starts_since`` asks the broker (``offsets_for_times``) for
each partition's first offset whose record timestamp is at or after the time,
and starts a partition without one at its end. The broker's answers here come
from a stand-in reader: the test broker answers offset 0 for any time
(tests/integration/test_fitconnect_answers.py), so only the mapping from the
answers to start offsets is tested here.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from confluent_kafka import OFFSET_END, KafkaError, KafkaException

from hub.stream.follow import _starts_since

SINCE = dt.datetime(2026, 11, 7, 12, 0, tzinfo=dt.UTC)


class Reader:
    """Answers ``offsets_for_times`` from a table; records what it was asked."""

    def __init__(self, offsets: dict[int, int], error: KafkaError | None = None) -> None:
        self.offsets = offsets
        self.error = error
        self.asked: list[tuple[int, int]] = []

    def offsets_for_times(self, partitions, timeout):
        self.asked = [(tp.partition, tp.offset) for tp in partitions]
        # What the client returns: TopicPartitions whose offset is the answer (their `error`
        # is read-only, hence stand-ins with the same attributes).
        return [
            SimpleNamespace(
                topic=tp.topic,
                partition=tp.partition,
                offset=self.offsets[tp.partition],
                error=self.error if i == 0 else None,
            )
            for i, tp in enumerate(partitions)
        ]


def test_each_partition_starts_at_the_first_record_since_or_at_its_end():
    reader = Reader({0: 17, 1: -1, 2: 0})
    starts = _starts_since(reader, "t.submissions.receipts", [0, 1, 2], SINCE)
    stamp = int(SINCE.timestamp() * 1000)
    assert [(0, stamp), (1, stamp), (2, stamp)] == reader.asked
    assert [(0, 17), (1, OFFSET_END), (2, 0)] == [(tp.partition, tp.offset) for tp in starts]
    assert {"t.submissions.receipts"} == {tp.topic for tp in starts}


def test_a_partition_the_broker_cannot_answer_fails_the_follower():
    """The follower fails (and its index is not loaded) rather than start at a guess."""
    reader = Reader({0: 3}, error=KafkaError(KafkaError.LEADER_NOT_AVAILABLE))
    with pytest.raises(RuntimeError, match="offsets_for_times"):
        _starts_since(reader, "t", [0], SINCE)


def test_kafka_exception_is_not_swallowed():
    class Failing(Reader):
        def offsets_for_times(self, partitions, timeout):
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))

    with pytest.raises(KafkaException):
        _starts_since(Failing({}), "t", [0], SINCE)
