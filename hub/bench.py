"""``sozialhub bench``: throughput and end-to-end latency through the running pipeline.

In one run, on one broker:

1. **hub**: a worker process (intake -> dispatch -> deliver through every channel:
   files, the Avro vendor topic, JSON over HTTP to a vendor endpoint simulator on
   loopback) is started and warmed up; N distinct valid submissions, the four
   kinds of :data:`KINDS` in turn, are produced to
   ``submissions.received`` as fast as the producer allows; the clock stops when
   the audit log shows every one delivered. Latency per submission is
   ``delivered.at - received_at`` (both stamped on this machine).
2. **passthrough**: the same N records are consumed from one topic and produced
   to another with plain confluent-kafka, no processing: the ceiling the broker
   and client set on this machine.

The ratio hub/passthrough is the figure to compare across machines; bare
rates depend on the machine.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from hub import topics
from hub.broker import cluster, free_port
from hub.config import Settings
from hub.core.outcomes import OutcomeTracker
from hub.core.pipeline import RECEIVED
from hub.core.records import Received, encode
from hub.kafka import consumer, follow_outcomes, producer
from hub.sim.vendor import VendorSimulator, VendorSimulatorThread
from hub.supervise import WorkerProcess
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec, make_submission

# One submission kind per delivery channel of the example office table, in turn:
# SGB II -> Jobcenter (Avro on the vendor topic), Grundsicherung -> Sozialamt (vendor XML
# file), Wohngeld with a document -> Wohngeldstelle (fixed-width file, document beside),
# BuT -> BuT office (JSON over HTTP to the vendor endpoint simulator).
KINDS: tuple[tuple[tuple[tuple[str, str], ...], tuple[DocumentSpec, ...]], ...] = (
    ((("99107002017000", "Bürgergeld, Bewilligung"),), ()),
    ((("99107009017000", "Grundsicherung, Bewilligung"),), ()),
    ((("99107023017001", "Wohngeld, Bewilligung erstmalig"),), (DocumentSpec(),)),
    ((("99107032148000", "Bildung und Teilhabe, Erbringung"),), ()),
)


def _payloads(n: int) -> list[bytes]:
    """N distinct valid submissions, the kinds in turn (fresh UUIDs make distinct ids)."""
    return [
        make_submission(
            SubmissionSpec(
                persons=(PersonSpec(benefits=KINDS[i % 4][0]),), documents=KINDS[i % 4][1]
            )
        )
        for i in range(n)
    ]


def _produce(settings: Settings, topic: str, payloads: list[bytes]) -> list[Received]:
    """Produce records stamped at the moment each is handed to the producer."""
    out = producer(settings)
    records = []
    for payload in payloads:
        record = Received.of(payload, "bench", "file", dt.datetime.now(dt.UTC))
        out.produce(topic, key=record.submission_id.encode(), value=encode(record))
        out.poll(0)
        records.append(record)
    out.flush(60)
    return records


def _deliver_all(
    settings: Settings, records: list[Received], timeout: float
) -> tuple[float, OutcomeTracker]:
    tracker = follow_outcomes(settings, {r.submission_id for r in records}, timeout)
    return time.perf_counter(), tracker


def measure_hub(settings: Settings, n: int, timeout: float) -> dict[str, Any]:
    worker = WorkerProcess(
        settings, args=("--no-inbound",), log_file=settings.data_dir / "worker.log"
    ).start()
    try:
        worker.wait_ready()
        warmup = _produce(settings, settings.topic(RECEIVED), _payloads(1))
        _deliver_all(settings, warmup, timeout)
        payloads = _payloads(n)
        started = time.perf_counter()
        records = _produce(settings, settings.topic(RECEIVED), payloads)
        finished, tracker = _deliver_all(settings, records, timeout)
    finally:
        worker.stop()
    latencies = []
    channels: dict[str, int] = {}
    for record in records:
        outcome = tracker.get(record.submission_id)
        if not outcome.final or outcome.outcome != "delivered":
            raise RuntimeError("benchmark submission not delivered in time")
        sent = dt.datetime.fromisoformat(record.received_at)
        done = max(dt.datetime.fromisoformat(e.at) for e in outcome.delivered.values())
        latencies.append((done - sent).total_seconds() * 1000)
        for event in outcome.delivered.values():
            channels[event.channel or "?"] = channels.get(event.channel or "?", 0) + 1
    return {"seconds": finished - started, "latencies_ms": latencies, "channels": channels}


def _http_vendor_urls(settings: Settings, simulator: VendorSimulator) -> str:
    from hub import offices  # noqa: PLC0415

    table = offices.load(settings.offices_file, settings.schema_dir)
    return ",".join(
        f"{v.vendor_id}={simulator.url_template}"
        for v in table.vendors.values()
        if v.channel == "http"
    )


def measure_passthrough(settings: Settings, payloads: list[bytes]) -> float:
    """Seconds for a plain consume -> produce of the records (from first record read to last ack)."""
    source, sink = (settings.topic(name) for name in PASSTHROUGH_TOPICS)
    records = _produce(settings, source, payloads)
    reader = consumer(settings)
    writer = producer(settings)
    reader.subscribe([source])
    copied = 0
    started: float | None = None
    deadline = time.monotonic() + 120
    try:
        while copied < len(records) and time.monotonic() < deadline:
            batch = reader.consume(num_messages=500, timeout=0.5)
            for message in batch:
                if message.error():
                    continue
                if started is None:
                    started = time.perf_counter()
                writer.produce(sink, key=message.key(), value=message.value())
                copied += 1
            writer.poll(0)
        writer.flush(60)
        finished = time.perf_counter()
    finally:
        reader.close()
    if copied < len(records) or started is None:
        raise RuntimeError("passthrough did not copy every record")
    return finished - started


PASSTHROUGH_TOPICS = ("bench.passthrough.in", "bench.passthrough.out")


def passthrough_specs(settings: Settings) -> tuple[topics.TopicSpec, ...]:
    """The two short-lived topics :func:`measure_passthrough` copies between."""
    return tuple(
        topics.TopicSpec(
            name,
            3,
            settings.replication_factor or 1,
            {"retention.ms": "3600000", "cleanup.policy": "delete"},
            "benchmark passthrough topic",
            {},
            {},
            "bench",
            ("bench",),
        )
        for name in PASSTHROUGH_TOPICS
    )


def _keep_log_on_failure(scratch: Path) -> None:
    log = scratch / "worker.log"
    if log.exists() and sys.exc_info()[0] is not None:
        kept = Path(tempfile.gettempdir()) / f"sozialhub-bench-worker-{uuid.uuid4().hex[:6]}.log"
        kept.write_bytes(log.read_bytes())
        print(f"worker log kept at {kept}", file=sys.stderr)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(settings: Settings, n: int, *, as_json: bool = False, timeout: float = 600.0) -> int:
    if n < 1:
        print("--n must be positive")
        return 2
    broker_kind = "embedded Tansu (memory)" if settings.embedded else "external"
    with cluster(settings) as active, contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sozialhub-bench-")))
        stack.callback(_keep_log_on_failure, scratch)
        settings = active.in_workspace(scratch).with_overrides(
            topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.", web_port=free_port()
        )
        if broker_kind == "external":
            stack.callback(topics.delete_prefixed, settings)
        specs = topics.load(settings)
        topics.apply(settings, specs + passthrough_specs(settings))
        # The http vendor's endpoint: a simulator on loopback (plain HTTP, always up).
        vendor = VendorSimulatorThread(VendorSimulator(max_request_bytes=16 * 1024 * 1024))
        vendor.start()
        stack.callback(vendor.stop)
        settings = settings.with_overrides(vendor_urls=_http_vendor_urls(settings, vendor.sim))
        hub = measure_hub(settings, n, timeout)
        booked = vendor.snapshot()
        passthrough_seconds = measure_passthrough(settings, _payloads(n))
    latencies = hub["latencies_ms"]
    result = {
        "n": n,
        "broker": broker_kind,
        "hub_per_s": round(n / hub["seconds"], 1),
        "passthrough_per_s": round(n / passthrough_seconds, 1),
        "ratio": round(passthrough_seconds / hub["seconds"], 4),
        "p50_ms": round(_percentile(latencies, 0.50), 1),
        "p99_ms": round(_percentile(latencies, 0.99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "channels": hub["channels"],
        "http_bookings": booked["bookings"],
    }
    if as_json:
        print(json.dumps(result))
    else:
        print(f"submissions        {n} ({result['broker']})")
        print(
            f"hub                {result['hub_per_s']:>10} submissions/s  (intake, sign, route, map, deliver)"
        )
        print(
            "deliveries         "
            + ", ".join(f"{channel} {count}" for channel, count in sorted(hub["channels"].items()))
        )
        print(
            f"passthrough        {result['passthrough_per_s']:>10} records/s      (confluent-kafka consume -> produce)"
        )
        print(f"ratio hub/pass     {result['ratio']:>10}")
        print(f"end-to-end latency p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    return 0
