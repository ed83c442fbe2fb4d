"""``sozialhub bench --stage mapping``: each vendor mapping alone, against a passthrough, in one run.

In-process, no Kafka. The hub context is built as the worker builds it
(:func:`hub.context.build`), and the input is what dispatch gets: the benchmark
submissions of ``--stage ingest`` (an XSozial-basis household of five with a
third party and one PDF, about 10 KB), each taken through intake once, so every
mapping gets the canonical submission, its signed hub receipt and the route of
its first benefit.

One run measures, on the same inputs:

- each registered format: ``mapping.render(submission, route, context)``,
  the route's vendor set to that format;
- **passthrough**: the same submission and receipt written as JSON by the
  standard library (``json.dumps`` of ``model.to_json`` and the receipt in
  base64, encoded as UTF-8). That is the least any mapping has to do: visit
  every value once and write bytes, with no vendor rules. Its C encoder makes it
  a demanding baseline.

A format's **ratio** is its rate over the passthrough rate of the same run:
compare ratios across machines, not bare rates. The measurements run in
interleaved slices, in rotated order, until each has had its share of the
time, so a change in machine load affects all alike.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import cycle
from typing import Any

from hub import bench_ingest, context
from hub.benchtools import interleaved
from hub.config import Settings
from hub.core import pipeline
from hub.core.mapping import MAPPINGS, DeliveryContext
from hub.core.model import Submission, from_json, to_json
from hub.core.pipeline import HubContext
from hub.core.records import Accepted, Received, decode, delivery_id, unb64
from hub.core.route import Route, Vendor, route

PASSTHROUGH = "passthrough"
TARGETS_PER_S = {"fv-xml": 10_000.0, "fv-avro": 10_000.0}  # mappings per second per process
POOL = 16  # distinct submissions, cycled
SLICE_SECONDS = 0.25
WARMUP_SECONDS = 0.3


@dataclass(frozen=True, slots=True)
class Input:
    submission: Submission
    route: Route
    receipt: bytes
    submission_id: str
    payload_bytes: int


def inputs(
    hub: HubContext, count: int = POOL, target_bytes: int = bench_ingest.TARGET_BYTES
) -> list[Input]:
    """The benchmark submissions as dispatch gets them: canonical model, receipt, first route.

    ``target_bytes`` sets the submission size (the PDF grows with it), e.g. to see
    what embedding a large document costs each format.
    """
    now = dt.datetime.now(dt.UTC)
    out: list[Input] = []
    for payload in bench_ingest.submissions(count, target_bytes):
        ingested = pipeline.ingest(payload, "bench", "file", hub, now)
        record = next(e for e in ingested.emits if e.topic == pipeline.RECEIVED)
        result = pipeline.intake(decode(record.value, Received), None, hub, now)
        if result.outcome != "accepted":
            raise RuntimeError(f"benchmark submission not accepted: {result.reason}")
        accepted = decode(
            next(e.value for e in result.emits if e.topic == pipeline.ACCEPTED), Accepted
        )
        submission = from_json(accepted.submission)
        first = route(submission, hub.offices)[0]
        receipt = unb64(accepted.receipt_b64)
        out.append(Input(submission, first, receipt, accepted.submission_id, len(payload)))
    return out


def _mapping(name: str, pool: list[Input]) -> tuple[Callable[[], None], Callable[[], bytes]]:
    """(one mapping of the next input, one output for its size)."""
    mapping = MAPPINGS[name]
    prepared = []
    for item in pool:
        routed = dataclasses.replace(item.route, vendor=Vendor("bench", "bench", name))
        did = delivery_id(item.submission_id, routed.office.office_id, mapping.version)
        delivery = DeliveryContext(did, item.submission_id, item.receipt, (routed.leika,))
        prepared.append((item.submission, routed, delivery))
    render = mapping.render
    items: Iterator[tuple[Submission, Route, DeliveryContext]] = cycle(prepared)

    def once() -> None:
        render(*next(items))

    return once, lambda: render(*prepared[0])


def _passthrough(pool: list[Input]) -> tuple[Callable[[], None], Callable[[], bytes]]:
    items = cycle(pool)

    def write(item: Input) -> bytes:
        data = {
            "submission": to_json(item.submission),
            "receipt": base64.b64encode(item.receipt).decode("ascii"),
        }
        return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def once() -> None:
        write(next(items))

    return once, lambda: write(pool[0])


def measure(
    hub: HubContext,
    seconds: float,
    *,
    slice_seconds: float = SLICE_SECONDS,
    target_bytes: int = bench_ingest.TARGET_BYTES,
) -> dict[str, Any]:
    """One run: about ``seconds`` for each format and for the passthrough, interleaved."""
    pool = inputs(hub, target_bytes=target_bytes)
    operations = {name: _mapping(name, pool) for name in MAPPINGS}
    operations[PASSTHROUGH] = _passthrough(pool)
    tallies = interleaved(
        {name: once for name, (once, _) in operations.items()},
        seconds,
        slice_seconds=slice_seconds,
        warmup_seconds=WARMUP_SECONDS,
    )
    rates = {name: t.count / t.seconds for name, t in tallies.items()}
    baseline = rates[PASSTHROUGH]
    first = pool[0].submission
    formats = {}
    for name, mapping in MAPPINGS.items():
        target = TARGETS_PER_S.get(name)
        formats[name] = {
            "version": mapping.version,
            "documents": mapping.documents,
            "per_s": rates[name],
            "ratio": rates[name] / baseline,
            "output_bytes": len(operations[name][1]()),
            "target_per_s": target,
            "met": None if target is None else rates[name] >= target,
        }
    return {
        "submission_bytes": pool[0].payload_bytes,
        "persons": len(first.persons),
        "document_bytes": sum(d.size for d in first.documents),
        "receipt_bytes": len(pool[0].receipt),
        "seconds_each": seconds,
        "baseline": "passthrough: json.dumps of model.to_json and the receipt (base64), UTF-8",
        "measured": {
            name: {"count": t.count, "seconds": t.seconds, "per_s": rates[name]}
            for name, t in tallies.items()
        },
        "passthrough_per_s": baseline,
        "passthrough_bytes": len(operations[PASSTHROUGH][1]()),
        "formats": formats,
    }


def _rounded(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    out["passthrough_per_s"] = round(result["passthrough_per_s"], 1)
    out["measured"] = {
        name: {
            "count": m["count"],
            "seconds": round(m["seconds"], 4),
            "per_s": round(m["per_s"], 1),
        }
        for name, m in result["measured"].items()
    }
    out["formats"] = {
        name: {**f, "per_s": round(f["per_s"], 1), "ratio": round(f["ratio"], 4)}
        for name, f in result["formats"].items()
    }
    return out


def _table(result: dict[str, Any]) -> str:
    lines = [
        (
            f"submission       {result['submission_bytes']} bytes XSozial-basis, "
            f"{result['persons']} persons, one {result['document_bytes']}-byte PDF, "
            f"{result['receipt_bytes']}-byte receipt, {result['seconds_each']:g} s per measurement"
        ),
        (
            f"passthrough      {result['passthrough_per_s']:>10.1f} /s  "
            f"{result['passthrough_bytes']:>6} bytes  (json.dumps of the model and receipt)"
        ),
    ]
    for name, figures in result["formats"].items():
        target = figures["target_per_s"]
        verdict = "" if target is None else f"  target >= {target:g}: "
        verdict += "" if target is None else ("met" if figures["met"] else "MISSED")
        lines.append(
            f"{name:<16} {figures['per_s']:>10.1f} /s  {figures['output_bytes']:>6} bytes  "
            f"ratio {figures['ratio']:.4f}  documents {figures['documents']}{verdict}"
        )
    return "\n".join(lines) + "\n"


def run(settings: Settings, seconds: float, *, as_json: bool = False) -> int:
    if seconds <= 0:
        sys.stderr.write("sozialhub bench: --seconds must be positive\n")
        return 2
    hub = context.build(settings)
    result = measure(hub, seconds)
    sys.stdout.write(json.dumps(_rounded(result)) + "\n" if as_json else _table(result))
    return 0
