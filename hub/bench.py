"""``sozialhub bench``: throughput and end-to-end latency through the running pipeline.

In one run, on one broker:

1. **hub**: a worker process (intake -> dispatch -> deliver, outbound file drop
   on) is started and warmed up; N distinct valid submissions are produced to
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
from hub.supervise import WorkerProcess
from hub.testing import SubmissionSpec, make_submission


def _payloads(n: int) -> list[bytes]:
    """N distinct valid submissions (fresh UUIDs make distinct content-addressed ids)."""
    return [make_submission(SubmissionSpec()) for _ in range(n)]


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
    for record in records:
        outcome = tracker.get(record.submission_id)
        if not outcome.final or outcome.outcome != "delivered":
            raise RuntimeError("benchmark submission not delivered in time")
        sent = dt.datetime.fromisoformat(record.received_at)
        done = max(dt.datetime.fromisoformat(e.at) for e in outcome.delivered.values())
        latencies.append((done - sent).total_seconds() * 1000)
    return {"seconds": finished - started, "latencies_ms": latencies}


def measure_passthrough(settings: Settings, payloads: list[bytes]) -> float:
    """Seconds for a plain consume -> produce of the records (from first record read to last ack)."""
    source, sink = settings.topic("bench.passthrough.in"), settings.topic("bench.passthrough.out")
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
        passthrough_specs = tuple(
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
            for name in ("bench.passthrough.in", "bench.passthrough.out")
        )
        topics.apply(settings, specs + passthrough_specs)
        hub = measure_hub(settings, n, timeout)
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
    }
    if as_json:
        print(json.dumps(result))
    else:
        print(f"submissions        {n} ({result['broker']})")
        print(
            f"hub                {result['hub_per_s']:>10} submissions/s  (intake, sign, route, map, file delivery)"
        )
        print(
            f"passthrough        {result['passthrough_per_s']:>10} records/s      (confluent-kafka consume -> produce)"
        )
        print(f"ratio hub/pass     {result['ratio']:>10}")
        print(f"end-to-end latency p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    return 0
