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
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Protocol

import structlog

from hub.config import Settings
from hub.core import pipeline
from hub.core.errors import Rejection
from hub.core.pipeline import Emit
from hub.core.records import PortalReceipt, decode
from hub.stream import metrics
from hub.stream.exits import exit_without_commit

log = structlog.get_logger(__name__)

RETRY_MAX = 60.0  # seconds between two attempts at most
BATCH = 100
WAIT_SLICE = 0.5  # seconds between two polls while a receipt is being sent
LEGACY_GROUP = "hub"  # the Faust group whose receipts agent sent receipts before
STOP_TIMEOUT = 10.0  # seconds a stopping worker waits for all its senders (its deadline: 15)

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


def receipt_of(value: bytes | None, channel: str) -> PortalReceipt | None:
    """The receipt a ``submissions.receipts`` record holds if it is ``channel``'s, else None.

    A record of another channel (``none`` included: the record is the receipt) and a
    record that is not a receipt (logged) are passed over.
    """
    try:
        receipt = decode(value or b"", PortalReceipt)
    except Rejection:
        log.warning("receipt.foreign_record", channel=channel)
        return None
    return receipt if receipt.channel == channel else None


async def answer(
    receipt: PortalReceipt,
    send: ReceiptChannel,
    sender: AuditSender,
    now: Callable[[], dt.datetime] = _now,
    auditing: threading.Event | None = None,
) -> str:
    """Send one receipt (:func:`send_receipt`) and audit its outcome.

    Returns ``"sent"`` or ``"refused"`` once the audit event is acknowledged by Kafka.
    ``auditing`` is set once the portal has answered and the audit event is being
    written: from then on the receipt is finished, not interrupted, by a stop.
    """
    sent = await send_receipt(send, receipt)
    if auditing is not None:
        auditing.set()
    # Shielded: a stop that cancels this task now (it decided before the portal answered)
    # must not cut the audit event off half-sent; it is written, the offset stays uncommitted.
    await asyncio.shield(sender.send_all([pipeline.receipt_sent(receipt, now(), sent=sent)]))
    outcome = "sent" if sent else "refused"
    metrics.RECEIPTS.labels(receipt.channel, outcome).inc()
    return outcome


class Interrupted(Exception):  # noqa: N818 - an outcome: the receipt was not finished
    """The sender was stopped (or the loop went away) while a portal had not yet answered."""


class ReceiptSender:
    """One channel's member of its receipts group; runs in its own thread (:func:`start`).

    Records are answered in offset order per partition. Offsets are committed only for
    records answered in the current assignment: a rebalance (a member joins or leaves)
    ends the batch in hand without committing it, and the partitions come back at
    their committed offsets, so nothing is skipped and no commit goes backwards; a
    record answered before the rebalance is passed over when it comes again. Never
    raises: a broken consumer or an unexpected error ends the process without
    committing (exit 75); a stop while a portal has not answered leaves the receipt
    uncommitted, a stop while its outcome is being audited lets the audit finish.
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
        self.topic = settings.topic(pipeline.RECEIPTS)
        self.done: dict[int, int] = {}  # partition -> the last offset answered or passed over
        self.busy = False  # a receipt is being answered: partitions stay paused
        self.generation = 0  # counts rebalances: a batch is only good for its own
        self.ready = threading.Event()  # set at the first assignment
        self.owned: frozenset[int] = frozenset()  # the partitions assigned now
        self.assignments = 0
        self.revocations = 0

    def run(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        except Interrupted:
            log.warning("receipts.interrupted", channel=self.channel, action="not committed")
        except BaseException as exc:  # noqa: BLE001 - nothing may be committed unrecorded
            exit_without_commit("receipts.failed", exc)

    def _run(self, stop: threading.Event) -> None:
        from hub import kafka  # noqa: PLC0415

        consumer = kafka.consumer(
            self.settings,
            group(self.settings, self.channel),
            **{"max.poll.interval.ms": self.max_poll_interval_ms},
        )
        consumer.subscribe([self.topic], on_assign=self._assigned, on_revoke=self._revoked)
        try:
            while not stop.is_set():
                self._batch(consumer, consumer.consume(BATCH, WAIT_SLICE), stop)
        finally:
            with contextlib.suppress(Exception):
                consumer.close()

    def _batch(self, consumer: Any, messages: list[Any], stop: threading.Event) -> None:
        """Answer one consumed batch in order; commit what was answered in this assignment."""
        generation = self.generation
        handled: dict[int, int] = {}  # partition -> last offset answered, not yet committed
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise RuntimeError(f"consumer error {error.name()}")
                log.warning("receipts.consumer_error", error=error.name())
                continue
            partition, offset = message.partition(), message.offset()
            if stop.is_set() or self.generation != generation or partition not in self.owned:
                return  # a stop, or a rebalance: the rest comes again from the committed offsets
            receipt = receipt_of(message.value(), self.channel)
            if receipt is None:
                handled[partition] = offset  # another channel's, or not a receipt
            elif offset > self.done.get(partition, -1):
                self._answer(consumer, receipt, stop)
                self.done[partition] = offset
                if self.generation != generation:
                    return  # answered, but the partition may be another member's by now
                handled.pop(partition, None)
                self._commit(consumer, {partition: offset})
            else:
                handled[partition] = offset  # answered before its partition came back
        if handled and self.generation == generation:
            self._commit(consumer, handled)

    def _answer(self, consumer: Any, receipt: PortalReceipt, stop: threading.Event) -> str:
        """Answer one receipt on the loop; keep the group membership alive meanwhile."""
        auditing = threading.Event()
        try:
            future = asyncio.run_coroutine_threadsafe(
                answer(receipt, self.send, self.sender, auditing=auditing), self.loop
            )
        except RuntimeError:
            raise Interrupted from None  # the loop is closed: the worker stops
        self.busy = True
        consumer.pause(consumer.assignment())
        try:
            while True:
                if stop.is_set() and not auditing.is_set():
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
        """Poll with every partition paused: nothing is fetched, the group sees a live member.

        Rebalance callbacks run in this poll; a partition assigned now is paused there.
        """
        from confluent_kafka import TopicPartition  # noqa: PLC0415

        stray = consumer.poll(0)
        if stray is None or stray.error() is not None:
            return
        # Not expected (every partition is paused): put it back to be read again.
        where = TopicPartition(stray.topic(), stray.partition(), stray.offset())
        consumer.seek(where)
        consumer.pause([where])

    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        fresh = [tp for tp in committed if tp.offset < 0]
        legacy = self._legacy_offsets(fresh) if fresh else {}
        for tp in partitions:
            if tp.partition in legacy:
                tp.offset = legacy[tp.partition]
        consumer.assign(partitions)
        # A pause is kept across a rebalance: set each partition's state explicitly.
        if self.busy:
            consumer.pause(partitions)
        else:
            consumer.resume(partitions)
        self.generation += 1
        self.owned = self.owned | {tp.partition for tp in partitions}
        self.assignments += 1
        self.ready.set()
        log.info(
            "receipts.assigned",
            channel=self.channel,
            partitions=sorted(tp.partition for tp in partitions),
            started_from_legacy=sorted(legacy),
        )

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        with contextlib.suppress(Exception):  # they may come back: not paused by then
            consumer.resume(partitions)
        self.generation += 1
        self.owned = self.owned - {tp.partition for tp in partitions}
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
        """Commit past ``last`` (partition -> offset), answered in the current assignment."""
        from confluent_kafka import KafkaException, TopicPartition  # noqa: PLC0415

        offsets = [
            TopicPartition(self.topic, partition, offset + 1) for partition, offset in last.items()
        ]
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # The group moved on meanwhile: the partition's owner answers the record again,
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


class ReceiptSenders:
    """The worker's receipt senders, one per channel: :meth:`run` as a task, :meth:`stop`
    before the worker's producer stops (Faust's ``on_before_shutdown``), so an outcome
    being audited is written, not cut off."""

    def __init__(
        self, settings: Settings, channels: dict[str, ReceiptChannel], sender: AuditSender
    ) -> None:
        self.settings = settings
        self.channels = channels
        self.sender = sender
        self.running: list[tuple[ReceiptSender, threading.Thread, threading.Event]] = []
        self.stopping = False

    async def run(self) -> None:
        """Start a sender per channel; a sender that ends while the worker runs on ends the
        process without committing: the worker must not run on without answering a portal."""
        loop = asyncio.get_running_loop()
        one_ended = asyncio.Event()

        def ended() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the worker stops
                loop.call_soon_threadsafe(one_ended.set)

        self.running = [
            start(self.settings, channel, send, self.sender, loop, ended=ended)
            for channel, send in self.channels.items()
        ]
        try:
            await one_ended.wait()
            if not self.stopping:
                exit_without_commit("receipts.stopped", RuntimeError("a receipt sender ended"))
        finally:
            for _, _, stop in self.running:
                stop.set()

    async def stop(self, within: float = STOP_TIMEOUT) -> None:
        """Stop every sender and wait, ``within`` seconds in all, until each has ended (its
        consumer left the group); the worker's own shutdown deadline comes after that."""
        self.stopping = True
        for _, _, stop in self.running:
            stop.set()
        deadline = time.monotonic() + within
        for _, thread, _ in self.running:
            await asyncio.to_thread(thread.join, max(0.0, deadline - time.monotonic()))
