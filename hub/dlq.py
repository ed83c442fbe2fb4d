"""Kafka side of ``sozialhub dlq``: read topics to their end, fetch one record, re-produce it.

Readers use ``assign()`` from the beginning, never join a consumer group and
never commit; they stop at the first end of each partition at or beyond the high
watermark taken when they start, so every command terminates while workers keep
writing. The decisions (filters, digest
check, the retry's audit event) are in :mod:`hub.core.dlq`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hub import kafka
from hub.config import Settings
from hub.core.dlq import (
    BEYOND_END,
    EXPIRED,
    NO_RECORD,
    NO_SOURCE,
    NO_TOPIC,
    PRESENT,
    SourceState,
)
from hub.core.errors import Rejection
from hub.core.pipeline import AUDIT, DEAD_LETTER, Emit
from hub.core.records import AuditEvent, DeadLetter, SourceRef, decode

METADATA_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0  # no record and no end-of-partition for this long: give up
ACK_TIMEOUT = 30.0


# The exit status of a command whose cluster did not answer or failed: try again later
# (EX_TEMPFAIL, as the worker's). A missing topic is a configuration error (2) instead.
EXIT_CLUSTER_FAILED = 75


class DlqError(RuntimeError):
    """The cluster did not answer as needed. The message names topics, never record content."""


class MissingTopicError(DlqError):
    """A topic the command reads does not exist (wrong prefix, or ``topics apply`` not run)."""


def command_error(exc: DlqError) -> tuple[str, int]:
    """What a command says about a cluster error, and its exit status: one rule for all.

    A missing topic is a configuration error (2); anything else the cluster did
    (no answer, a failed send) is :data:`EXIT_CLUSTER_FAILED`: try again.
    """
    if isinstance(exc, MissingTopicError):
        return f"{exc} (check SOZIALHUB_TOPIC_PREFIX; `sozialhub topics apply`)", 2
    return str(exc), EXIT_CLUSTER_FAILED


def open_reader(settings: Settings) -> Any:
    # A throw-away group id that is never joined (assign, not subscribe) and never committed.
    extra: dict[str, Any] = {"enable.partition.eof": True}
    return kafka.consumer(settings, None, **extra)


def topic_partitions(reader: Any, topic: str) -> list[int]:
    from confluent_kafka import KafkaException  # noqa: PLC0415

    try:
        metadata = reader.list_topics(topic, timeout=METADATA_TIMEOUT)
    except KafkaException:
        raise DlqError(f"the cluster did not answer within {METADATA_TIMEOUT:.0f} s") from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise MissingTopicError(f"topic {topic} does not exist")
    return sorted(found.partitions)


def watermarks_of(reader: Any, topic: str, partition: int) -> tuple[int, int]:
    from confluent_kafka import KafkaException, TopicPartition  # noqa: PLC0415

    try:
        low, high = reader.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=METADATA_TIMEOUT, cached=False
        )
    except KafkaException:
        raise DlqError(f"no offsets for {topic} partition {partition}") from None
    return int(low), int(high)


def read_topic(settings: Settings, topic: str) -> Iterator[Any]:
    """Every record of ``topic`` (full name) from the beginning to the end of each partition.

    A partition ends at the first end-of-partition event at or beyond the high
    watermark taken at the start, so records written meanwhile may be included.
    """
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition  # noqa: PLC0415

    reader = open_reader(settings)
    try:
        ends = {p: watermarks_of(reader, topic, p) for p in topic_partitions(reader, topic)}
        pending = {p for p, (low, high) in ends.items() if high > low}
        if pending:
            reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        deadline = time.monotonic() + IDLE_TIMEOUT
        while pending:
            message = reader.poll(0.2)
            if message is None:
                if time.monotonic() > deadline:
                    raise DlqError(f"{topic}: no progress for {IDLE_TIMEOUT:.0f} s")
                continue
            deadline = time.monotonic() + IDLE_TIMEOUT
            partition = message.partition()
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    # The broker's end, not the watermark read at the start: the bundled test
                    # broker reports the last batch's base offset + 1 as its high watermark,
                    # which would cut off the rest of a batch of several records.
                    if message.offset() >= ends[partition][1]:
                        pending.discard(partition)
                    continue
                raise DlqError(f"consumer error on {topic}: {message.error().name()}")
            if partition not in pending:
                continue  # its end was reached already
            yield message
    finally:
        reader.close()


def read_partition(
    reader: Any, topic: str, partition: int, start: int, end: int, stop: int | None = None
) -> Iterator[tuple[int, bytes | None]]:
    """(offset, value) of one partition from ``start`` to its end (at least ``end``), or up
    to ``stop`` (exclusive).

    The end is where the broker reports the end of the partition: the bundled test
    broker's high watermark is the last batch's base offset + 1, which would leave
    out the rest of a batch of several records.
    """
    from confluent_kafka import KafkaError, TopicPartition  # noqa: PLC0415

    if start >= end or (stop is not None and start >= stop):
        return
    reader.assign([TopicPartition(topic, partition, start)])
    deadline = time.monotonic() + IDLE_TIMEOUT
    while True:
        messages = reader.consume(10_000, 0.2)
        if not messages:
            if time.monotonic() > deadline:
                raise DlqError(f"{topic}: no progress for {IDLE_TIMEOUT:.0f} s")
            continue
        deadline = time.monotonic() + IDLE_TIMEOUT
        for message in messages:
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    if message.offset() >= end:
                        return
                    continue
                raise DlqError(f"consumer error on {topic}: {message.error().name()}")
            offset = message.offset()
            if stop is not None and offset >= stop:
                return
            yield offset, message.value()


def dead_letters(settings: Settings) -> tuple[list[DeadLetter], int]:
    """Every dead letter on the topic, and how many records were not dead letters (skipped)."""
    letters: list[DeadLetter] = []
    foreign = 0
    for message in read_topic(settings, settings.topic(DEAD_LETTER)):
        try:
            letters.append(decode(message.value(), DeadLetter))
        except Rejection:
            foreign += 1
    return letters, foreign


def audit_events(
    settings: Settings, submission_id: str | None = None, *, stage: str | None = None
) -> list[AuditEvent]:
    """The audit events keyed by ``submission_id`` and of ``stage`` (each if given), in log order.

    The whole log is read; only records that can match are decoded (a record whose
    bytes do not contain the stage name cannot be of that stage).
    """
    wanted = None if submission_id is None else submission_id.encode("ascii")
    named = None if stage is None else stage.encode("ascii")
    events: list[AuditEvent] = []
    for message in read_topic(settings, settings.topic(AUDIT)):
        value = message.value()
        if not value or (wanted is not None and message.key() != wanted):
            continue
        if named is not None and named not in value:
            continue
        try:
            event = decode(value, AuditEvent)
        except Rejection:
            continue
        if stage is None or event.stage == stage:
            events.append(event)
    return events


def fetch(settings: Settings, ref: SourceRef | None) -> SourceState:
    """The record at ``ref``, or why it is not there (retention, missing topic)."""
    if ref is None:
        return SourceState(NO_SOURCE)
    reader = open_reader(settings)
    try:
        try:
            partitions = topic_partitions(reader, ref.topic)
        except MissingTopicError:
            return SourceState(NO_TOPIC)
        if ref.partition not in partitions:
            return SourceState(NO_TOPIC)
        low, high = watermarks_of(reader, ref.topic, ref.partition)
        if ref.offset < low:
            return SourceState(EXPIRED, low, high)
        if ref.offset >= high:
            return SourceState(BEYOND_END, low, high)
        return _read_at(reader, ref, low, high)
    finally:
        reader.close()


def _read_at(reader: Any, ref: SourceRef, low: int, high: int) -> SourceState:
    """The record at an offset inside the partition's range (there may be none: compaction, markers)."""
    from confluent_kafka import KafkaError, TopicPartition  # noqa: PLC0415

    reader.assign([TopicPartition(ref.topic, ref.partition, ref.offset)])
    deadline = time.monotonic() + IDLE_TIMEOUT
    while time.monotonic() < deadline:
        message = reader.poll(0.2)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                return SourceState(NO_RECORD, low, high)
            raise DlqError(f"consumer error on {ref.topic}: {message.error().name()}")
        if message.offset() == ref.offset:
            return SourceState(PRESENT, low, high, message.key(), message.value())
        if message.offset() > ref.offset:
            return SourceState(NO_RECORD, low, high)
    raise DlqError(f"{ref.topic}: no answer for offset {ref.offset} in {IDLE_TIMEOUT:.0f} s")


def produce(
    settings: Settings,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    partition: int | None = None,
) -> SourceRef:
    """Send one record and wait for its acknowledgement; where it landed.

    Without ``partition`` the key decides with the Java-compatible murmur2
    partitioner, which the workers' producer (aiokafka) also uses, so a
    submission's audit events stay in one partition.
    """
    (where,) = produce_all(settings, [(topic, key, value, partition)])
    return where


def produce_all(
    settings: Settings, records: Sequence[tuple[str, bytes | None, bytes | None, int | None]]
) -> list[SourceRef]:
    """Send ``(topic, key, value, partition)`` records with one producer, in order, and wait
    until every one is acknowledged; where each landed, in the same order.

    :class:`DlqError` when any send fails or is not acknowledged in time: records
    acknowledged before stay written. One request in flight keeps the order within a
    partition (a tombstone after the record it removes).
    """
    sender = kafka.producer(
        settings, partitioner="murmur2_random", **{"max.in.flight.requests.per.connection": 1}
    )
    landed: dict[int, SourceRef] = {}
    failed: list[str] = []

    def acknowledged(number: int) -> Callable[[Any, Any], None]:
        def done(error: Any, message: Any) -> None:
            if error is not None:
                failed.append(error.name())
            else:
                landed[number] = SourceRef(message.topic(), message.partition(), message.offset())

        return done

    for number, (topic, key, value, partition) in enumerate(records):
        where = {} if partition is None else {"partition": partition}
        while True:
            try:
                sender.produce(
                    topic, key=key, value=value, on_delivery=acknowledged(number), **where
                )
                break
            except BufferError:  # the local queue is full: let acknowledgements drain it
                sender.poll(0.5)
        sender.poll(0)
    sender.flush(ACK_TIMEOUT)
    if failed:
        raise DlqError(f"sending to {records[0][0]} failed: {failed[0]}")
    if len(landed) != len(records):
        raise DlqError(
            f"sending to {records[0][0]} was not acknowledged within {ACK_TIMEOUT:.0f} s"
        )
    return [landed[number] for number in range(len(records))]


def reproduce(settings: Settings, ref: SourceRef, state: SourceState) -> SourceRef:
    """The source record again, unchanged (key and value bytes), into its topic and partition."""
    return produce(settings, ref.topic, state.key, state.value, ref.partition)


def send_audit(settings: Settings, emit: Emit, *, done: str | None = None) -> SourceRef:
    """Write an audit event; where it landed. ``done`` names what the command already did, so
    the :class:`DlqError` of a failed write says that it is done, only not audited."""
    (where,) = send_audits(settings, [emit], done=done)
    return where


def send_audits(
    settings: Settings, emits: Sequence[Emit], *, done: str | None = None
) -> list[SourceRef]:
    """Write audit events with one producer, in order; where each landed (:func:`send_audit`)."""
    records = [(settings.topic(e.topic), e.key.encode("ascii"), e.value, None) for e in emits]
    try:
        return produce_all(settings, records)
    except DlqError as exc:
        if done is None:
            raise
        what = "the audit event was" if len(emits) == 1 else "their audit events were"
        raise DlqError(f"{done}, but {what} not written: {exc}") from None
