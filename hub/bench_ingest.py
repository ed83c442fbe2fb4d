"""``sozialhub bench --stage ingest``: the intake stage alone, against its raw costs, in one run.

In-process, no Kafka. The hub context is built as the worker builds it
(:func:`hub.context.build`: schemas, portal table, the hub's signing key), and
one run measures three things on the same ~10 KB XSozial-basis submission:

- **intake**: :func:`hub.core.pipeline.ingest` (what the file drop produces),
  decoding the ``submissions.received`` record as the worker does, and
  :func:`hub.core.pipeline.intake` (unwrap, portal, parse, validate, extract,
  replay keys, signed hub receipt, portal receipt, every record encoded); each
  outcome must be ``accepted``;
- **parse + validate**: one :func:`hub.core.xmlsafe.parse` and one libxml2
  validation (``payload_type.fast_schema.validate``) of the same bytes;
- **sign**: one raw signature with the hub signer's key and algorithm
  (``key.sign``, ECDSA P-256 with SHA-256 by default);
- **bare parse + validate**: lxml's parse alone (the same parser configuration,
  without the byte gate and the bounding walk of :func:`hub.core.xmlsafe.parse`)
  and the same libxml2 validation.

The **raw stage rate** is ``1 / (1/parse_validate + 1/sign)``: what intake could
reach if it did nothing but its two unavoidable costs. The figure to compare
across machines is the ratio intake / raw stage rate; bare rates depend on the
machine and on what else it runs. The **strict** raw stage and ratio take the
bare parse instead: they count the hub's own limits (bad-inputs A-C) as intake's
work rather than as part of the one parse (docs/performance.md).

The four are measured in interleaved slices (intake, parse + validate, sign,
then again in rotated order) until each has had its share of the time, so a
change in machine load during the run affects all three alike.
"""

from __future__ import annotations

import cProfile
import datetime as dt
import io
import json
import pstats
import sys
import uuid
from collections.abc import Callable, Iterator
from itertools import cycle
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from lxml import etree

from hub import context
from hub.benchtools import interleaved
from hub.config import Settings
from hub.core import pipeline, xmlsafe
from hub.core.pipeline import HubContext
from hub.core.receipt import ReceiptSigner
from hub.core.records import Received, decode
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec, ThirdPartySpec, make_submission

TARGET_BYTES = 10 * 1024
TOLERANCE_BYTES = 1024
TARGET_PER_S = 1500.0  # accepted submissions per second per process
TARGET_RATIO = 0.5  # intake rate / raw stage rate
POOL = 64  # distinct submissions (fresh UUIDs), cycled: no cache can hold on to one document
SLICE_SECONDS = 0.25
WARMUP_SECONDS = 0.5

_HOUSEHOLD = (
    PersonSpec(),
    PersonSpec(
        given_name="Jonas", birth_date="1983-09-03", sex="m", applicant=False, role="partner"
    ),
    PersonSpec(given_name="Lena", birth_date="2012-02-17", applicant=False, role="kind"),
    PersonSpec(given_name="Paul", birth_date="2015-07-08", sex="m", applicant=False, role="kind"),
    PersonSpec(given_name="Marie", birth_date="2019-11-30", applicant=False, role="kind"),
)


def _spec(document_bytes: int) -> SubmissionSpec:
    """A household of five, the children's school and one PDF of ``document_bytes`` bytes."""
    pdf = b"%PDF-1.7\n" + b"0" * max(0, document_bytes - 9)
    return SubmissionSpec(
        persons=_HOUSEHOLD,
        third_parties=(ThirdPartySpec(),),
        documents=(DocumentSpec(name="Mietvertrag", content=pdf),),
    )


def submissions(count: int = POOL, target: int = TARGET_BYTES) -> list[bytes]:
    """``count`` distinct valid submissions of the same size, as close to ``target`` as base64 allows."""
    base = len(make_submission(_spec(0)))
    # Base64 turns 3 document bytes into 4 characters of the submission.
    document_bytes = max(9, (target - base) * 3 // 4)
    pool = [make_submission(_spec(document_bytes)) for _ in range(count)]
    if len({len(p) for p in pool}) != 1:
        raise RuntimeError("benchmark submissions differ in size")
    if abs(len(pool[0]) - target) > TOLERANCE_BYTES:
        raise RuntimeError("benchmark submission is not within 1 KB of the target size")
    return pool


def raw_signature(signer: ReceiptSigner) -> Callable[[bytes], bytes]:
    """One signature with the signer's key and algorithm, nothing around it."""
    key = signer.key
    digest: hashes.HashAlgorithm = (
        hashes.SHA384() if signer.algorithm == "ecdsa-sha384" else hashes.SHA256()
    )
    if isinstance(key, ec.EllipticCurvePrivateKey):
        curve = ec.ECDSA(digest)
        return lambda data: key.sign(data, curve)
    if signer.algorithm == "rsa-pss-sha256":
        pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        return lambda data: key.sign(data, pss, digest)
    pkcs1 = padding.PKCS1v15()
    return lambda data: key.sign(data, pkcs1, digest)


def _intake(hub: HubContext, payloads: Iterator[bytes]) -> Callable[[], None]:
    def once() -> None:
        now = dt.datetime.now(dt.UTC)
        ingested = pipeline.ingest(next(payloads), "bench", "file", hub, now)
        record = next(e for e in ingested.emits if e.topic == pipeline.RECEIVED)
        result = pipeline.intake(decode(record.value, Received), None, hub, now)
        if result.outcome != "accepted":
            raise RuntimeError(f"benchmark submission not accepted: {result.reason}")

    return once


def _parse_validate(
    hub: HubContext, payloads: Iterator[bytes], parse: Callable[[bytes], etree._Element]
) -> Callable[[], None]:
    """One ``parse`` and one libxml2 validation of the next payload."""
    payload_type = hub.payloads.identify(xmlsafe.parse(next(payloads), hub.limits))
    schema = payload_type.fast_schema
    if schema is None:
        raise RuntimeError("the XSozial-basis payload type has no libxml2 schema")

    def once() -> None:
        if not schema.validate(parse(next(payloads))):
            raise RuntimeError("benchmark submission not valid")

    return once


def _hardened_parse(hub: HubContext) -> Callable[[bytes], etree._Element]:
    """The hub's one parse: byte gate, libxml2, bounding walk."""
    return lambda data: xmlsafe.parse(data, hub.limits)


def _bare_parse(data: bytes) -> etree._Element:
    """libxml2's parse alone: the same configured parser, no byte gate, no bounding walk."""
    parser = xmlsafe._PARSER  # noqa: SLF001 - the same configured parser, nothing around it
    return etree.fromstring(data, parser)  # noqa: TID251 - what a strict reader calls "one lxml parse"


def _sign(hub: HubContext) -> Callable[[], None]:
    sign = raw_signature(hub.signer)
    # About the size of a receipt's canonical SignedInfo; distinct per call.
    messages = cycle([uuid.uuid4().bytes * 56 for _ in range(POOL)])

    def once() -> None:
        sign(next(messages))

    return once


def measure(
    hub: HubContext, seconds: float, *, slice_seconds: float = SLICE_SECONDS
) -> dict[str, Any]:
    """One run: about ``seconds`` for each of intake, parse + validate and sign, interleaved."""
    pool = submissions()
    operations = {
        "intake": _intake(hub, cycle(pool)),
        "parse_validate": _parse_validate(hub, cycle(pool), _hardened_parse(hub)),
        "sign": _sign(hub),
        "bare_parse_validate": _parse_validate(hub, cycle(pool), _bare_parse),
    }
    tallies = interleaved(
        operations,
        seconds,
        slice_seconds=slice_seconds,
        warmup_seconds=WARMUP_SECONDS,
    )
    rates = {name: t.count / t.seconds for name, t in tallies.items()}
    raw = 1 / (1 / rates["parse_validate"] + 1 / rates["sign"])
    ratio = rates["intake"] / raw
    strict_raw = 1 / (1 / rates["bare_parse_validate"] + 1 / rates["sign"])
    return {
        "submission_bytes": len(pool[0]),
        "signature_algorithm": hub.signer.algorithm,
        "seconds_each": seconds,
        "measured": {
            name: {"count": t.count, "seconds": t.seconds, "per_s": rates[name]}
            for name, t in tallies.items()
        },
        "intake_per_s": rates["intake"],
        "parse_validate_per_s": rates["parse_validate"],
        "sign_per_s": rates["sign"],
        "raw_stage_per_s": raw,
        "ratio": ratio,
        "bare_parse_validate_per_s": rates["bare_parse_validate"],
        "strict_raw_stage_per_s": strict_raw,
        "strict_ratio": rates["intake"] / strict_raw,
        "targets": {
            "intake_per_s": {"target": TARGET_PER_S, "met": rates["intake"] >= TARGET_PER_S},
            "ratio": {"target": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
        },
    }


def profile(hub: HubContext, count: int = 2000, top: int = 30) -> str:
    """cProfile of ``count`` intakes (ingest + decode + intake), the top functions by own time."""
    once = _intake(hub, cycle(submissions()))
    for _ in range(50):
        once()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        once()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def _rounded(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    rates = ("intake_per_s", "parse_validate_per_s", "sign_per_s", "raw_stage_per_s")
    for key in (*rates, "bare_parse_validate_per_s", "strict_raw_stage_per_s"):
        out[key] = round(result[key], 1)
    out["ratio"] = round(result["ratio"], 4)
    out["strict_ratio"] = round(result["strict_ratio"], 4)
    out["measured"] = {
        name: {
            "count": m["count"],
            "seconds": round(m["seconds"], 4),
            "per_s": round(m["per_s"], 1),
        }
        for name, m in result["measured"].items()
    }
    return out


def _table(result: dict[str, Any]) -> str:
    seconds = result["seconds_each"]
    rate_ok = "met" if result["targets"]["intake_per_s"]["met"] else "MISSED"
    ratio_ok = "met" if result["targets"]["ratio"]["met"] else "MISSED"
    lines = [
        (
            f"submission         {result['submission_bytes']} bytes XSozial-basis, "
            f"{result['signature_algorithm']} hub receipt, {seconds:g} s per measurement"
        ),
        (
            f"intake             {result['intake_per_s']:>10.1f} /s  "
            "(ingest, decode, intake: accepted, receipts signed)"
        ),
        f"parse + validate   {result['parse_validate_per_s']:>10.1f} /s  (xmlsafe + libxml2)",
        f"sign               {result['sign_per_s']:>10.1f} /s  (raw, same key)",
        f"raw stage          {result['raw_stage_per_s']:>10.1f} /s  1/(1/parse + 1/sign)",
        f"ratio intake/raw   {result['ratio']:>10.4f}     target >= {TARGET_RATIO}: {ratio_ok}",
        f"intake target      {TARGET_PER_S:>10.1f} /s  {rate_ok}",
        (
            f"bare parse + val.  {result['bare_parse_validate_per_s']:>10.1f} /s  "
            "(lxml parse alone: no byte gate, no bounding walk)"
        ),
        f"strict raw stage   {result['strict_raw_stage_per_s']:>10.1f} /s  1/(1/bare + 1/sign)",
        (
            f"ratio, strict      {result['strict_ratio']:>10.4f}     "
            "the hub's limits counted as intake's work"
        ),
    ]
    return "\n".join(lines) + "\n"


def run(
    settings: Settings, seconds: float, *, as_json: bool = False, with_profile: bool = False
) -> int:
    if seconds <= 0:
        sys.stderr.write("sozialhub bench: --seconds must be positive\n")
        return 2
    hub = context.build(settings)
    result = measure(hub, seconds)
    sys.stdout.write(json.dumps(_rounded(result)) + "\n" if as_json else _table(result))
    if with_profile:
        sys.stdout.write(profile(hub))
    return 0
