"""Small confluent-kafka helpers: the command line (demo, bench, tools) and the worker's own
consumer threads (the audit chainer, the receipt senders). Faust agents do not use them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hub.config import Settings
from hub.core.outcomes import OutcomeTracker
from hub.core.pipeline import AUDIT
from hub.core.records import AuditEvent, decode


def producer(settings: Settings, **extra: Any) -> Any:
    from confluent_kafka import Producer  # noqa: PLC0415

    return Producer(
        {
            **settings.kafka_config(),
            "acks": "all",
            "linger.ms": 5,
            "message.max.bytes": 9_000_000,
            **extra,
        }
    )


def consumer(settings: Settings, group: str | None = None, **extra: Any) -> Any:
    from confluent_kafka import Consumer  # noqa: PLC0415

    return Consumer(
        {
            **settings.kafka_config(),
            "group.id": group or f"{settings.topic_prefix}tool-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            # As the worker's Faust consumer (hub.stream.app): raised with rebalance_timeout.
            "session.timeout.ms": int(max(6.0, settings.rebalance_timeout) * 1000),
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 60000,
            **extra,
        }
    )


def follow(
    settings: Settings, topic: str | Sequence[str], stop: Callable[[], bool], timeout: float
) -> Iterator[Any]:
    """Yield records of ``topic`` (one logical name or several) from the beginning until
    ``stop()`` is true or time runs out."""
    from confluent_kafka import KafkaError  # noqa: PLC0415

    names = [topic] if isinstance(topic, str) else list(topic)
    reader = consumer(settings)
    reader.subscribe([settings.topic(name) for name in names])
    deadline = time.monotonic() + timeout
    try:
        while not stop() and time.monotonic() < deadline:
            message = reader.poll(0.2)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    continue
                raise RuntimeError(f"consumer error on {names}: {message.error().name()}")
            yield message
    finally:
        reader.close()


def follow_outcomes(
    settings: Settings,
    expected: set[str],
    timeout: float,
    done: Callable[[OutcomeTracker], bool] | None = None,
) -> OutcomeTracker:
    """Fold the audit log into outcomes until ``done`` (default: every expected one final) or timeout."""
    tracker = OutcomeTracker()
    finished = done or (lambda t: t.all_final(expected))
    for message in follow(settings, AUDIT, lambda: finished(tracker), timeout):
        tracker.add(decode(message.value(), AuditEvent))
    return tracker
