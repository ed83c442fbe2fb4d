"""Portal receipts: one consumer group per channel sends the answers of ``submissions.receipts``.

Every worker that runs a portal connector answers that portal. For each channel it
runs (``xta2``, ``fitconnect``) it starts one :class:`ReceiptSender` thread in the
consumer group ``<prefix>receipts-<channel>``. Each group reads every record of
``submissions.receipts``, sends its own channel's receipts and passes over the
others; the workers running the same channel share that group's partitions. So
workers may run different portal connectors: each receipt is sent by a worker that
runs its channel (docs/operations.md#scaling).

Per record: the receipt is sent on the worker's event loop with retries until the
portal has it or refuses it for good (:func:`send_receipt`), its outcome is audited
and acknowledged by Kafka, and only then is its offset committed. While the loop
waits for a portal that is down, the thread keeps polling with its partitions
paused, so the group does not take the partitions away from a worker that is only
waiting. A worker that stops (or loses the partition) before the commit leaves the
receipt to be sent again; the portal then answers that it has it, which counts as
sent (at least once, idempotent at the portal).

A group without committed offsets starts where the worker's receipts agent of
earlier versions (the Faust group ``<prefix>hub``) stopped, else at the beginning
of the topic, so receipts written while no worker ran the channel are sent too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import os
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import structlog

from hub.config import Settings
from hub.core import pipeline
from hub.core.errors import Rejection
from hub.core.pipeline import Emit
from hub.core.records import PortalReceipt, decode
from hub.stream import metrics

log = structlog.get_logger(__name__)

RETRY_MAX = 60.0  # seconds between two attempts at most
EXIT_FAILED = 75  # like a failed send: nothing unrecorded was committed
BATCH = 100
WAIT_SLICE = 0.5  # seconds between two polls while a receipt is being sent
LEGACY_GROUP = "hub"  # the Faust group whose receipts agent sent receipts before

# Sends one receipt over its channel; returns how the portal has it ("sent", or e.g. "present"
# when it had it already), raises when it does not.
ReceiptChannel = Callable[[PortalReceipt], Awaitable[str | None]]


class AuditSender(Protocol):
    """What records a receipt's outcome: :class:`hub.stream.app.Sender`."""

    async def send_all(self, emits: Iterable[Emit]) -> None: ...


def group(settings: Settings, channel: str) -> str:
    """The consumer group of ``channel``'s receipt senders."""
    return f"{settings.topic_prefix}receipts-{channel}"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def send_receipt(send: ReceiptChannel, receipt: PortalReceipt) -> bool:
    """Send until the portal has it (True), or until it refuses for good (False).

    Transient failures (connection, timeout, 5xx or 429, an XTA technical fault) are
    retried with backoff without limit: the portal must get its answer. A permanent
    refusal (an error whose ``retriable`` is false: an XTA fault that refuses the
    request, a 4xx from the FIT-Connect delivery service, a SET the case's event log
    contradicts, a record that cannot be sent) is logged and audited as
    ``receipt``/``refused``, so one refused receipt cannot block every later one. A
    receipt the portal has already (an XTA message id the server holds from an
    earlier send, a SET in the case's event log) counts as sent; the channel's
    answer is logged as ``state``.
    """
    delay = 1.0
    while True:
        try:
            state = await send(receipt)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the portal is down or refuses
            permanent = getattr(exc, "retriable", True) is False
            log.warning(
                "receipt.send_failed",
                channel=receipt.channel,
                submission_id=receipt.submission_id,
                error=type(exc).__name__,
                permanent=permanent,
                retry_in=None if permanent else delay,
            )
            if permanent:
                return False
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        else:
            log.info(
                "receipt.sent",
                channel=receipt.channel,
                submission_id=receipt.submission_id,
                state=state or "sent",
            )
            return True


async def answer(
    value: bytes | None,
    channel: str,
    send: ReceiptChannel,
    sender: AuditSender,
    now: Callable[[], dt.datetime] = _now,
) -> str | None:
    """Send one ``submissions.receipts`` record if it is ``channel``'s; audit its outcome.

    Returns ``"sent"`` or ``"refused"`` once the outcome is acknowledged by Kafka, or
    None for a record of another channel (``none`` included: the record is the
    receipt) and for a record that is not a receipt, which are passed over.
    """
    try:
        receipt = decode(value or b"", PortalReceipt)
    except Rejection:
        log.warning("receipt.foreign_record", channel=channel)
        return None
    if receipt.channel != channel:
        return None
    sent = await send_receipt(send, receipt)
    await sender.send_all([pipeline.receipt_sent(receipt, now(), sent=sent)])
    outcome = "sent" if sent else "refused"
    metrics.RECEIPTS.labels(channel, outcome).inc()
    return outcome


def _fail(event: str, exc: BaseException) -> None:
    with contextlib.suppress(Exception):  # logging itself may fail (full disk, broken pipe)
        log.critical(event, error=type(exc).__name__, action="exit without commit")
    os._exit(EXIT_FAILED)


class Interrupted(Exception):  # noqa: N818 - an outcome: the receipt was not finished
    """The sender was stopped (or the loop went away) while a receipt was being sent."""


class ReceiptSender:
    """One channel's member of its receipts group; runs in its own thread (:func:`start`).

    Never raises: a broken consumer or an unexpected error ends the process without
    committing (exit 75), a stop leaves the receipt in hand uncommitted.
    """

    def __init__(
        self,
        settings: Settings,
        channel: str,
        send: ReceiptChannel,
        sender: AuditSender,
        loop: asyncio.AbstractEventLoop,
        *,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        self.settings = settings
        self.channel = channel
        self.send = send
        self.sender = sender
        self.loop = loop
        self.max_poll_interval_ms = max_poll_interval_ms
        self.assigned: set[int] = set()
        self.done: dict[int, int] = {}  # partition -> the last offset answered or passed over
        self.busy = False
        self.held: list[Any] = []  # records polled while a receipt was being sent
        self.ready = threading.Event()  # set at the first assignment
        self.assignments = 0
        self.revocations = 0

    def run(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        except Interrupted:
            log.warning("receipts.interrupted", channel=self.channel, action="not committed")
        except BaseException as exc:  # noqa: BLE001 - nothing may be committed unrecorded
            _fail("receipts.failed", exc)

    def _run(self, stop: threading.Event) -> None:
        from hub import kafka  # noqa: PLC0415

        consumer = kafka.consumer(
            self.settings,
            group(self.settings, self.channel),
            **{"max.poll.interval.ms": self.max_poll_interval_ms},
        )
        consumer.subscribe(
            [self.settings.topic(pipeline.RECEIPTS)],
            on_assign=self._assigned,
            on_revoke=self._revoked,
        )
        try:
            while not stop.is_set():
                messages, self.held = self.held, []
                messages += consumer.consume(BATCH, 0 if messages else WAIT_SLICE)
                passed: dict[int, int] = {}
                for message in messages:
                    if message.error():
                        log.warning("receipts.consumer_error", error=message.error().name())
                        continue
                    partition, offset = message.partition(), message.offset()
                    if partition not in self.assigned:
                        continue  # revoked while this batch was answered: its new owner reads it
                    if offset <= self.done.get(partition, -1):
                        passed[partition] = offset  # answered before the partition came back
                        continue
                    outcome = self._answer(consumer, message.value(), stop)
                    self.done[partition] = offset
                    if outcome is None:
                        passed[partition] = offset
                    else:
                        passed.pop(partition, None)
                        self._commit(consumer, {partition: offset})
                if passed:
                    self._commit(consumer, passed)
        finally:
            with contextlib.suppress(Exception):
                consumer.close()

    def _answer(self, consumer: Any, value: bytes | None, stop: threading.Event) -> str | None:
        """Answer one record on the loop; keep the group membership alive meanwhile."""
        future = asyncio.run_coroutine_threadsafe(
            answer(value, self.channel, self.send, self.sender), self.loop
        )
        self.busy = True
        consumer.pause(consumer.assignment())
        try:
            while True:
                if stop.is_set():
                    future.cancel()
                    raise Interrupted
                try:
                    return future.result(timeout=WAIT_SLICE)
                except concurrent.futures.TimeoutError:
                    pass
                except concurrent.futures.CancelledError:
                    raise Interrupted from None  # the loop is going away: the worker stops
                self._keep_membership(consumer)
        finally:
            self.busy = False
            consumer.resume(consumer.assignment())

    def _keep_membership(self, consumer: Any) -> None:
        """Poll with every partition paused: nothing is fetched, the group sees a live member."""
        stray = consumer.poll(0)
        if stray is not None and not stray.error():
            # From a partition assigned during the wait before it was paused: answered next.
            self.held.append(stray)
            consumer.pause(consumer.assignment())

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        fresh = [tp for tp in committed if tp.offset < 0]
        legacy = self._legacy_offsets(fresh) if fresh else {}
        for tp in partitions:
            if tp.partition in legacy:
                tp.offset = legacy[tp.partition]
        consumer.assign(partitions)
        if self.busy:
            consumer.pause(partitions)
        self.assigned.update(tp.partition for tp in partitions)
        self.assignments += 1
        self.ready.set()
        log.info(
            "receipts.assigned",
            channel=self.channel,
            partitions=sorted(tp.partition for tp in partitions),
            started_from_legacy=sorted(legacy),
        )

    def _revoked(self, _consumer: Any, partitions: list[Any]) -> None:
        for tp in partitions:
            self.assigned.discard(tp.partition)
        self.revocations += 1
        log.info(
            "receipts.revoked",
            channel=self.channel,
            partitions=sorted(tp.partition for tp in partitions),
        )

    def _legacy_offsets(self, partitions: list[Any]) -> dict[int, int]:
        """Where the receipts agent of earlier versions stopped, per partition it committed."""
        from hub import kafka  # noqa: PLC0415

        legacy = kafka.consumer(self.settings, f"{self.settings.topic_prefix}{LEGACY_GROUP}")
        try:
            found = legacy.committed(partitions, timeout=30)
        finally:
            legacy.close()
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

    def _commit(self, consumer: Any, last: dict[int, int]) -> None:
        """Commit past ``last`` (partition -> offset) for the partitions still assigned here."""
        from confluent_kafka import KafkaException, TopicPartition  # noqa: PLC0415

        topic = self.settings.topic(pipeline.RECEIPTS)
        offsets = [
            TopicPartition(topic, partition, offset + 1)
            for partition, offset in last.items()
            if partition in self.assigned
        ]
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The group moved the partition on during the send: its new owner sends it again,
            # and the portal answers that it has it.
            log.warning("receipts.commit_failed", channel=self.channel, error=exc.args[0].name())


def start(
    settings: Settings,
    channel: str,
    send: ReceiptChannel,
    sender: AuditSender,
    loop: asyncio.AbstractEventLoop,
    *,
    ended: Callable[[], None] = lambda: None,
    **options: Any,
) -> tuple[ReceiptSender, threading.Thread, threading.Event]:
    """A running receipt sender for ``channel``, its thread, and the event that stops it.

    ``ended`` is called in the thread when the sender has stopped, for whatever reason.
    """
    member = ReceiptSender(settings, channel, send, sender, loop, **options)
    stop = threading.Event()

    def run() -> None:
        try:
            member.run(stop)
        finally:
            ended()

    thread = threading.Thread(target=run, name=f"receipts-{channel}", daemon=True)
    thread.start()
    return member, thread, stop


async def run_senders(
    settings: Settings, channels: dict[str, ReceiptChannel], sender: AuditSender
) -> None:
    """Run a receipt sender per channel until cancelled (the worker stops), then stop them.

    A sender that ends on its own (interrupted while the worker runs on) ends the process
    without committing: the worker must not run on without answering a portal.
    """
    loop = asyncio.get_running_loop()
    one_ended = asyncio.Event()

    def ended() -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker stops anyway
            loop.call_soon_threadsafe(one_ended.set)

    running = [
        start(settings, channel, send, sender, loop, ended=ended)
        for channel, send in channels.items()
    ]
    try:
        await one_ended.wait()
        _fail("receipts.stopped", RuntimeError("a receipt sender ended"))
    finally:
        for _, _, stop in running:
            stop.set()
