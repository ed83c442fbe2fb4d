"""Follow a topic into an in-memory index: from the beginning (or a time), then for good.

The replay index (:mod:`hub.stream.seen`), the consent index
(:mod:`hub.stream.consents`), the handover index
(:mod:`hub.stream.rechtskreiswechsel`), the subscription, person key and
FIT-Connect answer indexes each run this in a background thread
(:func:`in_background`); the agents that need one wait for it with
:func:`wait_loaded`.
The reader is assigned every partition from the beginning, or from the first
record at or after ``since`` (no consumer group membership, no commits);
``loaded`` is set once every partition has reached its end, and the records after
that keep arriving until ``stop`` is set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import structlog

from hub.config import Settings

log = structlog.get_logger(__name__)

Take = Callable[[bytes | None, bytes | None], None]


class Loading(Protocol):
    """An index filled by :func:`follow_compacted` in a background thread."""

    loaded: threading.Event
    failed: bool


class Follower(Protocol):
    """An index that follows its topic until ``stop`` is set (its ``follow`` runs a thread)."""

    def follow(self, settings: Settings, stop: threading.Event) -> None: ...


def in_background(index: Follower, settings: Settings, name: str) -> threading.Event:
    """Run ``index.follow`` in a daemon thread named ``name``; the event that stops it."""
    stop = threading.Event()
    threading.Thread(target=index.follow, args=(settings, stop), name=name, daemon=True).start()
    return stop


async def wait_loaded(index: Loading, seconds: float, what: str) -> None:
    """Return once ``index`` has read its topic to the end; ``TimeoutError`` naming ``what``
    if its follower failed or ``seconds`` passed first. Polls without blocking the loop."""
    deadline = time.monotonic() + seconds
    while not index.loaded.is_set():
        if index.failed or time.monotonic() > deadline:
            raise TimeoutError(f"{what} not loaded")
        await asyncio.sleep(0.05)


def follow_compacted(
    settings: Settings,
    topic: str,
    stop: threading.Event,
    *,
    group: str,
    name: str,
    missing: str,
    take: Take,
    loaded: threading.Event,
    on_loaded: Callable[[], None] | None = None,
    warn_consumer_errors: bool = True,
    since: dt.datetime | None = None,
) -> bool:
    """Follow ``topic`` (logical name), passing each record's key and value to ``take``.

    ``group`` names the reader (after the topic prefix); ``name`` prefixes the log
    events (``<name>.follower_failed``, ``<name>.consumer_error``); ``missing`` is
    the error when the topic does not exist. ``on_loaded`` runs once, when ``loaded``
    is set. ``since`` (aware) starts each partition at its first record with a
    timestamp at or after it instead of at its beginning (a partition with none is
    read from its end). False when the follower failed (logged), True when it was
    stopped.
    """
    from confluent_kafka import Consumer  # noqa: PLC0415

    reader = Consumer(
        {
            **settings.kafka_config(),
            "group.id": f"{settings.topic_prefix}{group}",  # never commits: assign only
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        _follow(
            reader,
            settings.topic(topic),
            stop,
            name=name,
            missing=missing,
            take=take,
            loaded=loaded,
            on_loaded=on_loaded,
            warn_consumer_errors=warn_consumer_errors,
            since=since,
        )
    except Exception as exc:  # noqa: BLE001 - reported; the index's user then refuses to start
        failed = f"{name}.follower_failed"
        log.error(failed, error=type(exc).__name__)  # noqa: TRY400
        return False
    finally:
        reader.close()
    return True


def _follow(
    reader: Any,
    topic: str,
    stop: threading.Event,
    *,
    name: str,
    missing: str,
    take: Take,
    loaded: threading.Event,
    on_loaded: Callable[[], None] | None,
    warn_consumer_errors: bool,
    since: dt.datetime | None,
) -> None:
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition  # noqa: PLC0415

    found = reader.list_topics(topic, timeout=10).topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise LookupError(missing)
    partitions = sorted(found.partitions)
    if since is None:
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    else:
        reader.assign(_starts_since(reader, topic, partitions, since))
    at_end: set[int] = set()
    while not stop.is_set():
        message = reader.poll(0.2)
        if message is None:
            continue
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                at_end.add(message.partition())
                if at_end >= set(partitions) and not loaded.is_set():
                    loaded.set()
                    if on_loaded is not None:
                        on_loaded()
                continue
            if warn_consumer_errors:
                consumer_error = f"{name}.consumer_error"
                log.warning(consumer_error, error=message.error().name())
            time.sleep(1.0)
            continue
        take(message.key(), message.value())


def _starts_since(reader: Any, topic: str, partitions: list[int], since: dt.datetime) -> list[Any]:
    """Each partition's first offset with a record timestamp at or after ``since``; its end
    where it has none (``offsets_for_times`` answers -1 there)."""
    from confluent_kafka import OFFSET_END, TopicPartition  # noqa: PLC0415

    stamp = int(since.timestamp() * 1000)
    found = reader.offsets_for_times([TopicPartition(topic, p, stamp) for p in partitions], 10)
    for tp in found:
        if tp.error is not None:
            raise RuntimeError(f"offsets_for_times on {topic}: {tp.error}")
    return [
        TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_END)
        for tp in found
    ]
