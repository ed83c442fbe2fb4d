"""The replay index: ``submissions.seen`` (compacted) folded into a dictionary.

Intake asks it whether a transport message id or a payload digest was already
used by another submission (:func:`hub.core.pipeline.intake`, argument
``seen``). The index is loaded from the topic before intake's first batch and
then followed in a background thread, so keys written by other workers arrive
too; keys this worker emits are remembered at once, so a duplicate inside the
same batch is caught. Nothing here decides anything: the decision is the core's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import structlog

from hub.config import Settings
from hub.core.errors import Rejection
from hub.core.pipeline import SEEN, Emit
from hub.core.records import Seen, decode

log = structlog.get_logger(__name__)


class SeenIndex(Mapping[str, str]):
    """Replay key -> first submission id. Thread-safe reads and writes."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()
        self.loaded = threading.Event()
        self.failed = False

    def __getitem__(self, key: str) -> str:
        with self._lock:
            return self._data[key]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def add(self, key: str, submission_id: str) -> None:
        """First writer wins: a later record for the same key never replaces the first id."""
        with self._lock:
            self._data.setdefault(key, submission_id)

    def remember(self, emits: Iterable[Emit]) -> None:
        for emit in emits:
            if emit.topic == SEEN:
                self.add(emit.key, decode(emit.value, Seen).submission_id)

    def follow(self, settings: Settings, stop: threading.Event) -> None:
        """Read the topic from the beginning; set ``loaded`` at the end; keep following."""
        from confluent_kafka import Consumer  # noqa: PLC0415

        reader = Consumer(
            {
                **settings.kafka_config(),
                "group.id": f"{settings.topic_prefix}seen-index",  # never commits: assign only
                "enable.auto.commit": False,
                "enable.partition.eof": True,
            }
        )
        topic = settings.topic(SEEN)
        try:
            self._follow(reader, topic, stop)
        except Exception as exc:  # noqa: BLE001 - reported; intake then refuses to start
            log.error("seen.follower_failed", error=type(exc).__name__)  # noqa: TRY400
            self.failed = True
        finally:
            reader.close()

    def _follow(self, reader: Any, topic: str, stop: threading.Event) -> None:
        from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition  # noqa: PLC0415

        metadata = reader.list_topics(topic, timeout=10)
        partitions = sorted(metadata.topics[topic].partitions)
        if not partitions or metadata.topics[topic].error is not None:
            raise LookupError("replay topic missing: run `sozialhub topics apply`")
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        at_end: set[int] = set()
        while not stop.is_set():
            message = reader.poll(0.2)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    at_end.add(message.partition())
                    if at_end >= set(partitions) and not self.loaded.is_set():
                        self.loaded.set()
                        log.info("seen.loaded", keys=len(self))
                    continue
                log.warning("seen.consumer_error", error=message.error().name())
                time.sleep(1.0)
                continue
            self._add_record(message.value())

    def _add_record(self, value: Any) -> None:
        try:
            record = decode(value, Seen)
        except Rejection:
            log.warning("seen.foreign_record")  # not ours: ignored, never trusted
            return
        self.add(record.key, record.submission_id)


def start(settings: Settings) -> tuple[SeenIndex, threading.Event]:
    """A loading index and the event that stops its follower thread."""
    index = SeenIndex()
    stop = threading.Event()
    thread = threading.Thread(
        target=index.follow, args=(settings, stop), name="seen-index", daemon=True
    )
    thread.start()
    return index, stop
