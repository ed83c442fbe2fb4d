"""The audit chainer: ``audit.log`` -> ``audit.chain`` entries and ``audit.checkpoints``.

A thin adapter around :mod:`hub.core.audit_chain`. One consumer group
(``<prefix>audit-chain``) shares the partitions of ``audit.log`` among the
workers; whoever holds partition *p* is its chain's single writer and writes
``audit.chain`` and ``audit.checkpoints`` partition *p*.

Per batch: append an entry per event, produce, wait for every acknowledgement,
sign a checkpoint when one is due, wait again, and only then commit the
``audit.log`` offsets. A crash between the writes and the commit re-reads the
events; on every assignment the chainer resumes each partition's head from its
last checkpoint and the entries after it, which also names the last
``audit.log`` offset chained, so a re-read event is skipped instead of chained
twice. Any failure to write ends the process without committing.

Confluent-kafka runs rebalance callbacks inside ``poll``/``consume``, between
batches, so a batch is always finished (written and committed) before its
partitions can be revoked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from hub import dlq
from hub.config import Settings
from hub.core import audit_chain as chain
from hub.core.receipt import ReceiptSigner
from hub.core.records import SourceRef
from hub.stream import metrics
from hub.stream.exits import exit_without_commit

log = structlog.get_logger(__name__)

LOG = "audit.log"
CHAIN = "audit.chain"
CHECKPOINTS = "audit.checkpoints"
ACK_TIMEOUT = 30.0
LOOKBACK = 50  # how many records from the end of a checkpoint partition to search


@dataclass(frozen=True)
class ChainOptions:
    """Checkpoint cadence: after ``every`` entries, or when the oldest unsigned entry is
    ``interval`` old (settings ``audit_checkpoint_every`` and ``audit_checkpoint_interval_s``)."""

    every: int = 1000
    interval: dt.timedelta = dt.timedelta(seconds=60)
    batch: int = 500


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Chainer:
    """Runs in its own thread (:func:`start`); never raises, ends the process instead."""

    def __init__(
        self,
        settings: Settings,
        signer_at: Callable[[dt.datetime], ReceiptSigner],
        options: ChainOptions = ChainOptions(),
        now: Callable[[], dt.datetime] = _now,
    ) -> None:
        self.settings = settings
        self.signer_at = signer_at
        self.options = options
        self.now = now
        self.heads: dict[int, chain.Head] = {}
        self.ready = threading.Event()  # set once the first assignment is resumed

    # -- resuming a partition -------------------------------------------------------------

    def _last_checkpoint(self, reader: Any, partition: int) -> bytes | None:
        """The newest checkpoint of ``partition`` (a valid one, searched from the end)."""
        topic = self.settings.topic(CHECKPOINTS)
        low, high = dlq.watermarks_of(reader, topic, partition)
        found: bytes | None = None
        for offset, value in dlq.read_partition(
            reader, topic, partition, max(low, high - LOOKBACK), high
        ):
            checkpoint = chain.read_checkpoint(offset, value)
            if checkpoint.body is not None and checkpoint.body["partition"] == partition:
                found = value
        return found

    def resume(self, partition: int) -> chain.Head:
        reader = dlq.open_reader(self.settings)
        try:
            last = self._last_checkpoint(reader, partition)
            topic = self.settings.topic(CHAIN)
            low, high = dlq.watermarks_of(reader, topic, partition)
            body = None if last is None else chain.read_checkpoint(0, last).body
            start = low if body is None else max(low, int(body["last_offset"]) + 1)
            entries = dlq.read_partition(reader, topic, partition, start, high)
            head = chain.resume(partition, entries, last)
        finally:
            reader.close()
        log.info(
            "audit_chain.resumed",
            partition=partition,
            seq=head.seq,
            pending=len(head.pending),
            source_offset=head.source_offset,
        )
        return head

    # -- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        except BaseException as exc:  # noqa: BLE001 - nothing may escape a half-written batch
            exit_without_commit("audit_chain.failed", exc)

    def _run(self, stop: threading.Event) -> None:
        from hub import kafka  # noqa: PLC0415

        self._check_partitions()
        consumer = kafka.consumer(
            self.settings,
            f"{self.settings.topic_prefix}audit-chain",
            **{"max.poll.interval.ms": 300000},
        )
        # One request in flight keeps a retried batch in order: the chain's order is its content.
        # (No idempotent producer: the test broker acknowledges some idempotent batches it does
        # not append, and resuming skips re-read events anyway.)
        producer = kafka.producer(
            self.settings, **{"max.in.flight.requests.per.connection": 1, "linger.ms": 2}
        )

        def assigned(_consumer: Any, partitions: list[Any]) -> None:
            for tp in partitions:
                self.heads[tp.partition] = self.resume(tp.partition)
            self.ready.set()

        def revoked(_consumer: Any, partitions: list[Any]) -> None:
            for tp in partitions:
                self.heads.pop(tp.partition, None)

        consumer.subscribe([self.settings.topic(LOG)], on_assign=assigned, on_revoke=revoked)
        try:
            while not stop.is_set():
                messages = consumer.consume(self.options.batch, 0.5)
                batch = [m for m in messages if not m.error()]
                for m in messages:
                    if m.error():
                        log.warning("audit_chain.consumer_error", error=m.error().name())
                if batch:
                    self._chain(batch, producer)
                self._checkpoint(producer)
                if batch:  # only what was consumed: committing nothing new is an error
                    consumer.commit(asynchronous=False)
        finally:
            with contextlib.suppress(Exception):
                consumer.close()

    def _check_partitions(self) -> None:
        reader = dlq.open_reader(self.settings)
        try:
            counts = {
                name: len(dlq.topic_partitions(reader, self.settings.topic(name)))
                for name in (LOG, CHAIN, CHECKPOINTS)
            }
        finally:
            reader.close()
        if counts[CHAIN] < counts[LOG] or counts[CHECKPOINTS] < counts[LOG]:
            raise LookupError("audit.chain and audit.checkpoints need audit.log's partitions")

    def _chain(self, batch: list[Any], producer: Any) -> None:
        """Append and write one entry per new event, and wait for the acknowledgements."""
        now = self.now()
        offsets: dict[int, list[int]] = {}
        failed: list[str] = []

        def acknowledged(error: Any, message: Any) -> None:
            if error is not None:
                failed.append(error.name())
            else:
                offsets.setdefault(message.partition(), []).append(message.offset())

        topic = self.settings.topic(CHAIN)
        written = 0
        for message in batch:
            partition = message.partition()
            head = self.heads.get(partition)
            if head is None:
                raise RuntimeError("an event of a partition that is not assigned")
            if message.offset() <= head.source_offset:
                continue  # chained before a restart: its entry is already in the log
            source = SourceRef(LOG, partition, message.offset())
            value, self.heads[partition] = chain.append(head, message.value() or b"", source, now)
            producer.produce(
                topic, key=message.key(), value=value, partition=partition, on_delivery=acknowledged
            )
            written += 1
        if not written:
            return
        if producer.flush(ACK_TIMEOUT) or failed or sum(map(len, offsets.values())) != written:
            raise RuntimeError("audit.chain did not acknowledge every entry")
        for partition, placed in offsets.items():
            self.heads[partition] = chain.placed(self.heads[partition], min(placed), max(placed))
        metrics.AUDIT_CHAINED.inc(written)

    def _checkpoint(self, producer: Any) -> None:
        """Sign and write the checkpoints that are due, and wait for the acknowledgements."""
        now = self.now()
        failed: list[str] = []

        def acknowledged(error: Any, _message: Any) -> None:
            if error is not None:
                failed.append(error.name())

        topic = self.settings.topic(CHECKPOINTS)
        written = 0
        for partition, head in list(self.heads.items()):
            if not chain.checkpoint_due(
                head, now, every=self.options.every, interval=self.options.interval
            ):
                continue
            value, self.heads[partition] = chain.make_checkpoint(head, self.signer_at(now), now)
            producer.produce(
                topic,
                key=f"ckp-{partition}".encode("ascii"),
                value=value,
                partition=partition,
                on_delivery=acknowledged,
            )
            written += 1
        if written and (producer.flush(ACK_TIMEOUT) or failed):
            raise RuntimeError("audit.checkpoints did not acknowledge")
        if written:
            metrics.AUDIT_CHECKPOINTS.inc(written)


def start(
    settings: Settings,
    signer_at: Callable[[dt.datetime], ReceiptSigner],
    options: ChainOptions = ChainOptions(),
) -> tuple[Chainer, threading.Event]:
    """A running chainer thread and the event that stops it."""
    chainer = Chainer(settings, signer_at, options)
    stop = threading.Event()
    thread = threading.Thread(target=chainer.run, args=(stop,), name="audit-chain", daemon=True)
    thread.start()
    return chainer, stop
