"""Receipt senders against the broker: one consumer group per portal channel.

Each sender runs as in the worker: a thread with its own consumer in
``<prefix>receipts-<channel>``, the sends on an event loop in another thread, the
audit events produced and acknowledged before the offset is committed. The
portals are recording channel functions; everything Kafka is real.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from confluent_kafka import TopicPartition

from hub import dlq, kafka
from hub.config import Settings
from hub.core import pipeline
from hub.core.records import AuditEvent, PortalReceipt, b64, decode, encode
from hub.stream import receipts

PARTITIONS = 3


def until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def receipt(number: int, channel: str) -> PortalReceipt:
    return PortalReceipt(
        receipt_id=f"rcp-{number:032x}",
        submission_id=f"sub-{number:032x}",
        transport=channel if channel != "none" else "file",
        channel=channel,
        outcome="accepted",
        at="2026-11-22T10:00:00.000Z",
        portal="sozialplattform-nrw",
        transport_message_id=f"urn:de:xta:messageid:sop:{number}",
        body_b64=b64(b"<receipt/>"),
        case_id="7d6c3b4e-2f1a-4c5d-9e8f-0a1b2c3d4e5f" if channel == "fitconnect" else None,
    )


def produce(settings: Settings, records: list[tuple[int, bytes]]) -> None:
    """``(partition, value)`` pairs onto ``submissions.receipts``, acknowledged."""
    producer = kafka.producer(settings)
    topic = settings.topic(pipeline.RECEIPTS)
    for partition, value in records:
        producer.produce(topic, key=b"k", value=value, partition=partition)
    assert 0 == producer.flush(30)


class KafkaAudits:
    """The worker's Sender for audit events: produced and acknowledged before returning."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.producer = kafka.producer(settings)

    async def send_all(self, emits: Any) -> None:
        for emit in emits:
            topic = self.settings.topic(emit.topic)
            self.producer.produce(topic, key=emit.key.encode(), value=emit.value)
        left = await asyncio.get_running_loop().run_in_executor(None, self.producer.flush, 30)
        assert left == 0


class Portal:
    """A channel function that records what it was sent; ``hold`` delays or blocks a send."""

    def __init__(self, hold: Callable[[PortalReceipt], float | None] = lambda _: 0.0) -> None:
        self.sent: list[str] = []
        self.started: list[str] = []
        self.hold = hold
        self.lock = threading.Lock()

    async def __call__(self, receipt: PortalReceipt) -> str:
        with self.lock:
            self.started.append(receipt.submission_id)
        delay = self.hold(receipt)
        if delay is None:
            await asyncio.Event().wait()  # a portal that never answers
        elif delay:
            await asyncio.sleep(delay)
        with self.lock:
            self.sent.append(receipt.submission_id)
        return "sent"


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The worker's event loop, running in a thread of its own."""
    running = asyncio.new_event_loop()
    thread = threading.Thread(target=running.run_forever, daemon=True)
    thread.start()
    yield running
    running.call_soon_threadsafe(running.stop)
    thread.join(10)


def committed(settings: Settings, channel: str) -> list[int]:
    reader = kafka.consumer(settings, receipts.group(settings, channel))
    try:
        topic = settings.topic(pipeline.RECEIPTS)
        found = reader.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], 30)
        return [tp.offset for tp in sorted(found, key=lambda tp: tp.partition)]
    finally:
        reader.close()


def audit_events(settings: Settings) -> list[AuditEvent]:
    return [
        decode(m.value(), AuditEvent)
        for m in dlq.read_topic(settings, settings.topic(pipeline.AUDIT))
    ]


def ends(settings: Settings) -> list[int]:
    """The offset after each partition's last record, read (the test broker's high watermark
    is the last batch's base offset + 1)."""
    counts = [0] * PARTITIONS
    for message in dlq.read_topic(settings, settings.topic(pipeline.RECEIPTS)):
        counts[message.partition()] = message.offset() + 1
    return counts


def all_committed(settings: Settings, channel: str) -> bool:
    """Whether ``channel``'s group has committed past every record (of every partition that has one)."""
    end = ends(settings)
    return [offset if end[p] else 0 for p, offset in enumerate(committed(settings, channel))] == end


def audited(settings: Settings) -> list[str]:
    events = audit_events(settings)
    return [e.submission_id for e in events if e.stage == "receipt" and e.decision == "sent"]


class Senders:
    """Receipt senders started in a test, all stopped at its end."""

    def __init__(self, settings: Settings, loop: asyncio.AbstractEventLoop) -> None:
        self.settings, self.loop = settings, loop
        self.audits = KafkaAudits(settings)
        self.running: list[tuple[receipts.ReceiptSender, threading.Thread, threading.Event]] = []

    def start(self, channel: str, portal: Portal, **options: Any) -> receipts.ReceiptSender:
        started = receipts.start(self.settings, channel, portal, self.audits, self.loop, **options)
        self.running.append(started)
        return started[0]

    def stop_all(self) -> None:
        for _, thread, stop in self.running:
            stop.set()
            thread.join(30)


@pytest.fixture
def senders(hub_settings: Settings, loop: asyncio.AbstractEventLoop) -> Iterator[Senders]:
    started = Senders(hub_settings, loop)
    yield started
    started.stop_all()


def test_each_channel_sends_its_own_receipts_once(hub_settings, senders):
    """An XTA worker and a FIT-Connect worker: each channel's group reads every record and
    sends exactly its own receipts, once each; records of channel ``none`` and a record that
    is not a receipt are passed over. Every offset ends committed, in both groups."""
    xta, fitconnect = Portal(), Portal()
    records = [(n % PARTITIONS, receipt(n, "xta2")) for n in range(1, 7)]
    records += [(n % PARTITIONS, receipt(n, "fitconnect")) for n in range(7, 13)]
    records += [(n % PARTITIONS, receipt(n, "none")) for n in range(13, 15)]
    produce(hub_settings, [(p, encode(r)) for p, r in records] + [(0, b"not a receipt")])
    senders.start("xta2", xta)
    senders.start("fitconnect", fitconnect)
    until(lambda: len(xta.sent) == 6 and len(fitconnect.sent) == 6)
    until(lambda: all_committed(hub_settings, "xta2"))
    until(lambda: all_committed(hub_settings, "fitconnect"))
    time.sleep(1.0)  # nothing more is sent
    assert sorted(xta.sent) == sorted(r.submission_id for _, r in records if r.channel == "xta2")
    assert sorted(fitconnect.sent) == sorted(
        r.submission_id for _, r in records if r.channel == "fitconnect"
    )
    assert sorted(audited(hub_settings)) == sorted(xta.sent + fitconnect.sent)


def test_workers_running_one_channel_share_its_group(hub_settings, senders):
    """Two XTA workers split the partitions of the xta2 group: each receipt is sent once."""
    first, second = Portal(), Portal()
    one = senders.start("xta2", first)
    until(one.ready.is_set)
    two = senders.start("xta2", second)
    until(lambda: two.ready.is_set() and len(one.owned) + len(two.owned) == PARTITIONS)
    until(lambda: bool(one.owned) and bool(two.owned))
    records = [(n % PARTITIONS, receipt(n, "xta2")) for n in range(1, 13)]
    produce(hub_settings, [(p, encode(r)) for p, r in records])
    until(lambda: len(first.sent) + len(second.sent) >= len(records))
    time.sleep(1.0)
    assert sorted(first.sent + second.sent) == sorted(r.submission_id for _, r in records)
    assert first.sent
    assert second.sent


def test_a_portal_that_takes_long_does_not_cost_the_partitions(hub_settings, senders):
    """A send that outlasts max.poll.interval.ms: the sender polls with its partitions paused
    meanwhile, so the group keeps them; later receipts follow, each sent once."""
    slow_id = receipt(1, "xta2").submission_id
    portal = Portal(hold=lambda r: 9.0 if r.submission_id == slow_id else 0.0)
    member = senders.start("xta2", portal, max_poll_interval_ms=6000)
    until(member.ready.is_set)
    records = [(0, receipt(1, "xta2"))] + [(n % PARTITIONS, receipt(n, "xta2")) for n in (2, 3)]
    produce(hub_settings, [(p, encode(r)) for p, r in records])
    until(lambda: len(portal.sent) == 3, timeout=60)
    until(lambda: all_committed(hub_settings, "xta2"))
    time.sleep(2.0)
    # Never taken away (the group would revoke a member that stopped polling) nor given back.
    assert (member.assignments, member.revocations) == (1, 0)
    assert sorted(portal.sent) == sorted(r.submission_id for _, r in records)
    assert sorted(portal.started) == sorted(portal.sent)  # no send was begun twice


def test_a_sender_stopped_during_a_send_commits_nothing(hub_settings, senders):
    """The worker stops while the portal has not answered: nothing is committed or audited,
    and the next sender of the group sends the receipt again."""
    hung = Portal(hold=lambda _: None)
    member = senders.start("xta2", hung)
    produce(hub_settings, [(0, encode(receipt(1, "xta2")))])
    until(lambda: bool(hung.started))
    _, thread, stop = senders.running[-1]
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    assert ([-1001] * PARTITIONS, [], []) == (
        committed(hub_settings, "xta2"),
        hung.sent,
        audited(hub_settings),
    )
    assert member.assignments == 1
    again = Portal()
    senders.start("xta2", again)
    until(lambda: again.sent == [receipt(1, "xta2").submission_id])
    until(lambda: committed(hub_settings, "xta2")[0] == 1)
    assert audited(hub_settings) == again.sent


def test_a_new_group_starts_where_the_receipts_agent_stopped(hub_settings, senders):
    """Upgrading from the worker's single receipts agent (Faust group ``<prefix>hub``): the
    channel groups start at its committed offsets, so receipts it sent are not sent again;
    a partition it never committed is read from the beginning."""
    records = [(0, receipt(n, "xta2")) for n in range(1, 5)] + [(1, receipt(5, "xta2"))]
    produce(hub_settings, [(p, encode(r)) for p, r in records])
    legacy = kafka.consumer(hub_settings, f"{hub_settings.topic_prefix}hub")
    topic = hub_settings.topic(pipeline.RECEIPTS)
    legacy.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    legacy.close()
    portal = Portal()
    senders.start("xta2", portal)
    until(lambda: len(portal.sent) == 3)
    time.sleep(1.0)
    assert sorted(portal.sent) == sorted(
        r.submission_id for r in (receipt(n, "xta2") for n in (3, 4, 5))
    )


def test_a_refused_receipt_is_audited_refused_and_committed(hub_settings, senders):
    """A portal that refuses a receipt for good: audited ``refused``, committed, not retried."""

    class Refused(Exception):  # noqa: N818
        retriable = False

    tried: list[str] = []

    async def refusing(r: PortalReceipt) -> str:
        tried.append(r.submission_id)
        raise Refused

    produce(hub_settings, [(0, encode(replace(receipt(1, "xta2"), body_b64=None)))])
    senders.start("xta2", refusing)  # type: ignore[arg-type]
    until(lambda: committed(hub_settings, "xta2")[0] == 1)
    events = audit_events(hub_settings)
    assert [(e.stage, e.decision) for e in events] == [("receipt", "refused")]
    assert tried == [receipt(1, "xta2").submission_id]


def sending_slowly(
    settings: Settings, senders: Senders, seconds: float
) -> tuple[receipts.ReceiptSender, Portal]:
    """An XTA sender whose portal takes ``seconds`` for receipt 1, once it has begun sending it."""
    first_id = receipt(1, "xta2").submission_id
    portal = Portal(hold=lambda r: seconds if r.submission_id == first_id else 0.0)
    member = senders.start("xta2", portal)
    until(member.ready.is_set)
    produce(settings, [(0, encode(receipt(1, "xta2")))])
    until(lambda: bool(portal.started))
    return member, portal


def test_a_member_joining_and_leaving_during_a_send_loses_nothing(hub_settings, senders):
    """A rolling restart while the portal is slow: a second XTA worker joins while the first
    waits for its portal (a rebalance mid-send, its partitions paused), takes partitions, hangs
    on its own portal and stops without committing (another rebalance). The first worker ends
    up sending every receipt, those the second one began included, and commits past all of
    them: nothing is skipped, and no partition stays paused after it came back."""
    first_id = receipt(1, "xta2").submission_id
    member, portal = sending_slowly(hub_settings, senders, 12.0)
    hung = Portal(hold=lambda _: None)
    other = senders.start("xta2", hung)
    until(lambda: bool(other.owned) and member.revocations >= 1)
    assert first_id not in portal.sent  # the rebalance came while the first send waited
    produce(hub_settings, [(n % PARTITIONS, encode(receipt(n, "xta2"))) for n in range(2, 8)])
    until(lambda: first_id in portal.sent, timeout=30)
    time.sleep(2.0)
    _, thread, stop = senders.running[-1]
    stop.set()  # the second worker stops: whatever it began is not committed
    thread.join(30)
    until(lambda: member.assignments >= 3)  # the partitions came back
    produce(hub_settings, [(n % PARTITIONS, encode(receipt(n, "xta2"))) for n in range(8, 11)])
    wanted = {receipt(n, "xta2").submission_id for n in range(1, 11)}
    until(lambda: wanted <= set(portal.sent), timeout=90)
    until(lambda: all_committed(hub_settings, "xta2"), timeout=30)
    assert hung.sent == []


def test_a_stop_while_the_outcome_is_audited_lets_the_audit_finish(hub_settings, loop):
    """The worker stops after the portal answered, while the audit event is being written:
    the audit is not cut off (which would end the worker with exit 75), it is written, the
    offset committed, and the sender ends."""
    audits = KafkaAudits(hub_settings)
    writing = threading.Event()

    class SlowAudits:
        async def send_all(self, emits: Any) -> None:
            writing.set()
            await asyncio.sleep(2.0)
            await audits.send_all(emits)

    portal = Portal()
    member, thread, stop = receipts.start(hub_settings, "xta2", portal, SlowAudits(), loop)
    until(member.ready.is_set)
    produce(hub_settings, [(0, encode(receipt(1, "xta2")))])
    until(writing.is_set)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    assert [receipt(1, "xta2").submission_id] == portal.sent == audited(hub_settings)
    assert committed(hub_settings, "xta2")[0] == 1


def test_partitions_paused_for_a_send_fetch_again_when_they_come_back(hub_settings, senders):
    """A second worker joins while the first waits for its portal (the first's partitions are
    paused), takes some partitions, and leaves again. A pause outlives a rebalance in the
    client, so the partitions coming back to the first worker must be resumed explicitly:
    every later receipt is sent and committed."""
    member, portal = sending_slowly(hub_settings, senders, 2.0)
    time.sleep(0.2)
    other = senders.start("xta2", Portal())
    until(lambda: bool(other.owned))
    time.sleep(3.0)
    _, thread, stop = senders.running[-1]
    stop.set()
    thread.join(30)
    until(lambda: member.owned == frozenset(range(PARTITIONS)), timeout=30)
    produce(hub_settings, [(n % PARTITIONS, encode(receipt(n, "xta2"))) for n in range(2, 8)])
    wanted = {receipt(n, "xta2").submission_id for n in range(2, 8)}
    until(lambda: wanted <= set(portal.sent), timeout=60)
    until(lambda: all_committed(hub_settings, "xta2"), timeout=30)


def test_a_refused_receipt_is_resent_after_the_fix(hub_settings, senders, monkeypatch, capsys):
    """The portal refuses a receipt for good (a misconfigured mailbox): audited refused and
    committed past. Once fixed, `sozialhub receipts resend` puts the same record on the topic
    again, in its partition, audited `resent`, and the sender sends it: audited `sent`."""
    from hub import cli

    from .helpers import cli_environment

    class Denied(Exception):  # noqa: N818
        retriable = False

    fixed = threading.Event()
    tried: list[str] = []

    async def portal(r: PortalReceipt) -> str:
        tried.append(r.submission_id)
        if not fixed.is_set():
            raise Denied
        return "sent"

    original = encode(receipt(1, "xta2"))
    producer = kafka.producer(hub_settings)  # keyed by submission id, as intake writes it
    key = receipt(1, "xta2").submission_id.encode()
    producer.produce(hub_settings.topic(pipeline.RECEIPTS), key=key, value=original, partition=1)
    assert producer.flush(30) == 0
    senders.start("xta2", portal)  # type: ignore[arg-type]
    until(lambda: [e.decision for e in audit_events(hub_settings)] == ["refused"])
    until(lambda: all_committed(hub_settings, "xta2"))
    fixed.set()
    with cli_environment(hub_settings, monkeypatch):
        status = cli.main(["receipts", "resend", receipt(1, "xta2").submission_id, "--yes"])
    # The report is the JSON line; the other lines are the senders' own logs (structlog).
    out = capsys.readouterr().out.splitlines()
    report = json.loads(next(line for line in out if line.startswith("{")))
    assert (0, ["refused"], 1) == (status, report["audited_before"], report["resent"]["partition"])
    # The test's audit producer partitions by another hash than the command: compare unordered.
    until(
        lambda: (
            sorted(e.decision for e in audit_events(hub_settings)) == ["refused", "resent", "sent"]
        )
    )
    assert tried == [receipt(1, "xta2").submission_id] * 2
    records = [
        (m.partition(), m.value())
        for m in dlq.read_topic(hub_settings, hub_settings.topic(pipeline.RECEIPTS))
    ]
    assert records == [(1, original), (1, original)]


def test_every_submission_still_refused_is_resent_with_refused(hub_settings, monkeypatch, capsys):
    """`receipts resend --refused` reads the audit log: a refusal answered since (`sent`) or
    with a resend on its way (`resent`) is left, every other one's newest receipt goes on the
    topic again in its partition, audited `resent`; `--channel` and `--since` narrow it; a
    refused submission whose receipt record is gone is reported (exit 1), never guessed."""
    from hub import cli
    from hub.core.receipt_resend import Found, resent_event

    from .helpers import cli_environment

    def at(minute: int) -> dt.datetime:
        return dt.datetime(2026, 11, 22, 10, minute, tzinfo=dt.UTC)

    r1, r2, r3, r4, r5 = (
        receipt(n, c) for n, c in enumerate(["xta2", "xta2", "fitconnect", "xta2", "xta2"], start=1)
    )
    topic = hub_settings.topic(pipeline.RECEIPTS)
    producer = kafka.producer(hub_settings)
    for number, r in enumerate((r1, r2, r3, r4), start=1):  # r5's record is gone (retention)
        producer.produce(
            topic, key=r.submission_id.encode(), value=encode(r), partition=number % PARTITIONS
        )
    assert 0 == producer.flush(30)
    earlier = Found(r4, b"", b"", pipeline.SourceRef(topic, 1, 0))
    emits = [
        pipeline.receipt_sent(r1, at(1), sent=False),
        pipeline.receipt_sent(r2, at(2), sent=False),
        pipeline.receipt_sent(r2, at(3)),  # answered since
        pipeline.receipt_sent(r3, at(4), sent=False),
        pipeline.receipt_sent(r4, at(5), sent=False),
        resent_event(earlier, pipeline.SourceRef(topic, 1, 9), at(6)),  # on its way
        pipeline.receipt_sent(r5, at(7), sent=False),
    ]
    for emit in emits:
        producer.produce(hub_settings.topic(emit.topic), key=emit.key.encode(), value=emit.value)
    assert 0 == producer.flush(30)

    def resend(*argv: str) -> tuple[int, dict[str, Any]]:
        with cli_environment(hub_settings, monkeypatch):
            status = cli.main(["receipts", "resend", "--refused", *argv, "--yes"])
        out = capsys.readouterr().out.splitlines()
        return status, json.loads(next(line for line in out if line.startswith("{")))

    status, report = resend("--channel", "xta2")
    assert (1, [r1.submission_id], [r5.submission_id]) == (
        status,
        [row["submission_id"] for row in report["resent"]],
        report["without_receipt"],
    )
    assert report["resent"][0]["resent"]["partition"] == 1 % PARTITIONS  # where it was
    status, report = resend()  # r1 now has its resend on the way: only r3 is left
    assert (1, [r3.submission_id]) == (status, [row["submission_id"] for row in report["resent"]])
    status, report = resend("--since", "2026-11-22T10:08Z")
    assert (0, 0, []) == (status, report["count"], report["without_receipt"])

    records = [
        (m.partition(), m.value())
        for m in dlq.read_topic(hub_settings, topic)
        if m.key() in (r1.submission_id.encode(), r3.submission_id.encode())
    ]
    assert sorted(records) == sorted(
        [(1, encode(r1)), (1, encode(r1)), (0, encode(r3)), (0, encode(r3))]
    )
    resent = sorted(e.submission_id for e in audit_events(hub_settings) if e.decision == "resent")
    assert resent == sorted([r1.submission_id, r3.submission_id, r4.submission_id])
