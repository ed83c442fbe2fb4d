"""``sozialhub bench --stage fanout``: Rechtskreiswechsel fan-out through the broker.

In one run, on one broker (the embedded one, or the configured cluster under a
topic prefix of its own, removed afterwards):

1. **hub**: a worker process (``--no-inbound --no-outbound``) is started; the
   consents of the Ukraine-2022 scenario's N people (:func:`hub.demo_rkw.people`:
   nine in ten have one for the Jobcenter) are produced to ``consent.events`` and
   the worker's grants awaited, then one warm-up event is carried through. Not
   timed. Then the N Rechtskreiswechsel events are produced to
   ``rechtskreiswechsel.events`` as fast as the producer allows; the clock stops
   when the audit log and the ``handovers.<vendor>`` topics show every planned
   message sent, denied or withheld (:class:`hub.demo_rkw.Progress`). Nobody
   revokes here; the demo covers revocations.
2. **passthrough**: the same N event records, consumed from one topic and
   produced to another with plain confluent-kafka (:func:`hub.bench.measure_passthrough`,
   which carries each in the benchmark's ``Received`` envelope): the ceiling the
   broker and client set on this machine.

The ratio hub/passthrough (events/s over records/s) is the figure to compare
across machines; bare rates depend on the machine.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from hub import bench, offices, topics
from hub import demo_rkw as scenario
from hub.broker import cluster, free_port
from hub.config import Settings
from hub.core import consent, consent_registry
from hub.core import rechtskreiswechsel as rkw
from hub.core import rkw_stages as stages
from hub.core.pipeline import AUDIT
from hub.kafka import follow, producer
from hub.supervise import WorkerProcess

TIMEOUT = 600.0


def split(n: int) -> tuple[list[scenario.Person], scenario.Person]:
    """The N measured people and one more for the warm-up (deterministic pseudonyms)."""
    crowd = scenario.people(n + 1)
    return crowd[:n], crowd[n]


def _produce_grants(settings: Settings, crowd: list[scenario.Person]) -> int:
    out = producer(settings)
    grants = [p for p in crowd if p.grant is not None]
    for person in grants:
        assert person.grant is not None  # noqa: S101 - filtered above, for the type checker
        out.produce(
            settings.topic(consent_registry.EVENTS),
            key=person.pseudonym.encode("ascii"),
            value=consent.encode_event(person.grant),
        )
    out.flush(60)
    return len(grants)


def _produce_events(settings: Settings, crowd: list[scenario.Person]) -> None:
    out = producer(settings)
    for person in crowd:
        out.produce(
            settings.topic(stages.EVENTS),
            key=person.pseudonym.encode("ascii"),
            value=rkw.encode_event(person.event),
        )
        out.poll(0)
    out.flush(60)


def _settle(
    settings: Settings,
    expected: dict[str, tuple[scenario.Person, str]],
    worker: WorkerProcess,
    timeout: float,
) -> scenario.Progress:
    """Follow the audit log and the handover topics until every expected message is settled."""
    vendors = sorted(offices.load(settings.offices_file, settings.schema_dir).vendors)
    progress = scenario.Progress()
    pending = set(expected)

    def done() -> bool:
        pending.difference_update([m for m in pending if progress.settled(m)])
        return not pending or not worker.alive()

    for message in follow(settings, (AUDIT, *map(stages.handover_topic, vendors)), done, timeout):
        progress.add(message.topic(), message.value())
    if pending:
        raise RuntimeError(f"{len(pending)} fan-out message(s) not settled in time")
    return progress


def _wait_for_grants(settings: Settings, count: int, worker: WorkerProcess, timeout: float) -> None:
    progress = scenario.Progress()
    for message in follow(
        settings, AUDIT, lambda: progress.granted >= count or not worker.alive(), timeout
    ):
        progress.add(message.topic(), message.value())
    if progress.granted < count:
        raise RuntimeError("the worker did not audit every consent in time")


def measure_hub(settings: Settings, n: int, timeout: float) -> dict[str, Any]:
    crowd, warm = split(n)
    expected = scenario.expected_messages(settings, crowd)
    warm_expected = scenario.expected_messages(settings, [warm])
    worker = WorkerProcess(
        settings,
        args=("--no-inbound", "--no-outbound"),
        log_file=settings.data_dir / "worker.log",
    ).start()
    try:
        worker.wait_ready()
        grants = _produce_grants(settings, [*crowd, warm])
        _wait_for_grants(settings, grants, worker, timeout)
        _produce_events(settings, [warm])
        _settle(settings, warm_expected, worker, timeout)
        started = time.perf_counter()
        _produce_events(settings, crowd)
        progress = _settle(settings, expected, worker, timeout)
        finished = time.perf_counter()
    finally:
        worker.stop()
    kinds = Counter(scenario.outcome(m, progress)[0] for m in expected)
    return {
        "seconds": finished - started,
        "messages": len(expected),
        "sent": sum(m in progress.sent for m in expected),
        "kinds": dict(sorted(kinds.items())),
        "with_consent": sum(p.grant is not None for p in crowd),
    }


def result_of(
    n: int, broker: str, hub: dict[str, Any], passthrough_seconds: float
) -> dict[str, Any]:
    """The reported figures from the two measurements (rates rounded, ratio to 4 places)."""
    seconds = hub["seconds"]
    return {
        "n": n,
        "broker": broker,
        "with_consent": hub["with_consent"],
        "messages": hub["messages"],
        "messages_sent": hub["sent"],
        "message_kinds": hub["kinds"],
        "seconds": round(seconds, 3),
        "events_per_s": round(n / seconds, 1),
        "messages_per_s": round(hub["messages"] / seconds, 1),
        "sent_per_s": round(hub["sent"] / seconds, 1),
        "passthrough_per_s": round(n / passthrough_seconds, 1),
        "ratio": round(passthrough_seconds / seconds, 4),
    }


def _table(result: dict[str, Any]) -> str:
    lines = [
        (
            f"events             {result['n']} ({result['broker']}), "
            f"{result['with_consent']} with consent"
        ),
        (
            f"messages           {result['messages']} planned, {result['messages_sent']} sent: "
            f"{result['message_kinds']}"
        ),
        (
            f"hub                {result['events_per_s']:>10} events/s    "
            "(check, gate, fan-out, audit, send)"
        ),
        (
            f"                   {result['messages_per_s']:>10} messages/s  "
            f"({result['sent_per_s']} sent/s)"
        ),
        (
            f"passthrough        {result['passthrough_per_s']:>10} records/s   "
            "(confluent-kafka consume -> produce)"
        ),
        f"ratio hub/pass     {result['ratio']:>10}",
    ]
    return "\n".join(lines)


def run(settings: Settings, n: int, *, as_json: bool = False, timeout: float = TIMEOUT) -> int:
    if n < 1:
        sys.stderr.write("sozialhub bench: --n must be positive\n")
        return 2
    broker_kind = "embedded Tansu (memory)" if settings.embedded else "external"
    with cluster(settings) as active, contextlib.ExitStack() as stack:
        scratch = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="sozialhub-bench-fanout-"))
        )
        stack.callback(bench._keep_log_on_failure, scratch)  # noqa: SLF001 - same module family
        settings = active.in_workspace(scratch).with_overrides(
            topic_prefix=f"bench-{uuid.uuid4().hex[:8]}.", web_port=free_port()
        )
        if broker_kind == "external":
            stack.callback(topics.delete_prefixed, settings)
        topics.apply(settings, topics.load(settings) + bench.passthrough_specs(settings))
        hub = measure_hub(settings, n, timeout)
        crowd, _ = split(n)
        passthrough_seconds = bench.measure_passthrough(
            settings, [rkw.encode_event(p.event) for p in crowd]
        )
    result = result_of(n, broker_kind, hub, passthrough_seconds)
    sys.stdout.write(json.dumps(result) + "\n" if as_json else _table(result) + "\n")
    return 0
