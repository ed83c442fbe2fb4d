"""``sozialhub bench --stage ingest``: the structure of one short run, never its timings.

Performance is measured by the benchmark, not by timed tests: nothing here
asserts a rate, a ratio or a target being met, only that the figures are there,
positive, and derived from each other as documented.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from hub import bench_ingest, cli, context
from hub.core import pipeline
from hub.core.portals import PortalTable
from hub.core.receipt import ReceiptSigner
from hub.core.records import Received, decode
from hub.keys import ephemeral_certificate
from tests import clitools

SECONDS = 0.3
NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
NAMES = ("intake", "parse_validate", "sign", "bare_parse_validate")


@pytest.fixture(scope="module")
def hub(settings):
    return context.build(settings)


@pytest.fixture(scope="module")
def result(hub):
    return bench_ingest.measure(hub, SECONDS, slice_seconds=0.1)


class TestSubmissions:
    def test_size_is_ten_kilobytes_give_or_take_one(self):
        """The benchmark submission is 10 KB ± 1 KB, and all of the pool have that same size."""
        pool = bench_ingest.submissions(8)
        sizes = {len(p) for p in pool}
        assert len(sizes) == 1
        assert abs(sizes.pop() - bench_ingest.TARGET_BYTES) <= bench_ingest.TOLERANCE_BYTES

    def test_pool_is_distinct(self):
        """Every submission of the pool has its own bytes (and so its own submission id)."""
        pool = bench_ingest.submissions(8)
        assert len(set(pool)) == len(pool)

    def test_every_submission_is_accepted(self, hub):
        """Intake accepts each one as an XSozial-basis submission with a household and a document."""
        now = dt.datetime.now(dt.UTC)  # the hub's ephemeral certificate is valid from now on
        for payload in bench_ingest.submissions(4):
            ingested = pipeline.ingest(payload, "bench", "file", hub, now)
            record = next(e for e in ingested.emits if e.topic == pipeline.RECEIVED)
            outcome = pipeline.intake(decode(record.value, Received), None, hub, now)
            submission = outcome.submission
            actual = (
                outcome.outcome,
                len(submission.persons) if submission else 0,
                len(submission.documents) if submission else 0,
            )
            assert ("accepted", 5, 1) == actual


class TestMeasure:
    def test_reports_the_submission_and_the_signature_algorithm(self, result, hub):
        """The run names the exact submission size and the hub signer's algorithm."""
        assert abs(result["submission_bytes"] - 10 * 1024) <= 1024
        assert hub.signer.algorithm == result["signature_algorithm"]

    def test_each_measurement_ran_its_share(self, result):
        """Intake, parse + validate and sign each ran at least the requested seconds, some times."""
        for name in NAMES:
            measured = result["measured"][name]
            assert measured["count"] > 0, name
            assert measured["seconds"] >= SECONDS, name

    def test_rates_are_counts_over_seconds(self, result):
        """Each rate is its measurement's count divided by its seconds, and positive."""
        for name in NAMES:
            measured = result["measured"][name]
            rate = measured["count"] / measured["seconds"]
            assert rate > 0
            assert measured["per_s"] == pytest.approx(rate)
            assert result[f"{name}_per_s"] == pytest.approx(rate)

    def test_raw_stage_rate_combines_parse_validate_and_sign(self, result):
        """raw = 1 / (1/parse_validate + 1/sign): slower than either of the two alone."""
        pv, sign = result["parse_validate_per_s"], result["sign_per_s"]
        assert result["raw_stage_per_s"] == pytest.approx(1 / (1 / pv + 1 / sign))
        assert result["raw_stage_per_s"] < min(pv, sign)

    def test_ratio_is_intake_over_raw_stage_rate(self, result):
        """The ratio is computed from the figures of the same run."""
        expected = result["intake_per_s"] / result["raw_stage_per_s"]
        assert result["ratio"] == pytest.approx(expected)

    def test_strict_ratio_takes_the_bare_parse(self, result):
        """The strict raw stage takes lxml's parse alone; the hardened parse costs more than
        it (the byte gate and the bounding walk), so the strict ratio is the lower one."""
        bare, sign = result["bare_parse_validate_per_s"], result["sign_per_s"]
        strict = 1 / (1 / bare + 1 / sign)
        assert result["strict_raw_stage_per_s"] == pytest.approx(strict)
        assert result["strict_ratio"] == pytest.approx(result["intake_per_s"] / strict)
        assert bare > result["parse_validate_per_s"]
        assert result["strict_ratio"] < result["ratio"]

    def test_target_verdicts_follow_the_figures(self, result):
        """The "met" flags say whether the measured figure reaches the documented target, nothing else."""
        targets = result["targets"]
        expected = {
            "intake_per_s": {
                "target": bench_ingest.TARGET_PER_S,
                "met": result["intake_per_s"] >= bench_ingest.TARGET_PER_S,
            },
            "ratio": {
                "target": bench_ingest.TARGET_RATIO,
                "met": result["ratio"] >= bench_ingest.TARGET_RATIO,
            },
        }
        assert expected == targets

    def test_a_submission_intake_rejects_stops_the_run(self, hub):
        """Without a file-drop portal every submission is rejected: the bench fails, loudly."""
        no_portals = dataclasses.replace(hub, portals=PortalTable([]))
        with pytest.raises(RuntimeError, match="not accepted: SENDER_MISMATCH"):
            bench_ingest.measure(no_portals, 0.05, slice_seconds=0.05)


def _key(algorithm: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if algorithm.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(
        ec.SECP384R1() if algorithm == "ecdsa-sha384" else ec.SECP256R1()
    )


class TestRawSignature:
    @pytest.mark.parametrize(
        "algorithm", ["ecdsa-sha256", "ecdsa-sha384", "rsa-pss-sha256", "rsa-sha256"]
    )
    def test_signs_with_the_signers_key_and_algorithm(self, algorithm):
        """The raw signature verifies with the signer's public key under the signer's algorithm."""
        key = _key(algorithm)
        signer = ReceiptSigner(key, ephemeral_certificate(key, "bench", now=NOW), algorithm)
        data = b"signed info" * 80
        signature = bench_ingest.raw_signature(signer)(data)
        public = key.public_key()
        digest = hashes.SHA384() if algorithm == "ecdsa-sha384" else hashes.SHA256()
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, data, ec.ECDSA(digest))
        elif algorithm == "rsa-pss-sha256":
            pss = padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            public.verify(signature, data, pss, digest)
        else:
            public.verify(signature, data, padding.PKCS1v15(), digest)


@contextlib.contextmanager
def _cli_isolated():
    """No SOZIALHUB_*/KAFKA_* variables; structlog and the root logger restored after main()."""
    with pytest.MonkeyPatch.context() as patch, clitools.isolated(patch):
        yield


def _cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with _cli_isolated(), contextlib.redirect_stdout(out):
        status = cli.main(argv)
    return status, out.getvalue()


class TestCommand:
    def test_json_is_one_object_with_consistent_figures(self):
        """`bench --stage ingest --json` prints one object; its ratio follows its own figures."""
        status, out = _cli(["bench", "--stage", "ingest", "--seconds", "0.2", "--json"])
        body = json.loads(out)
        rates = {n: m["count"] / m["seconds"] for n, m in body["measured"].items()}
        raw = 1 / (1 / rates["parse_validate"] + 1 / rates["sign"])
        actual = (status, sorted(body["measured"]), body["submission_bytes"] > 0)
        assert (0, sorted(NAMES), True) == actual
        assert body["ratio"] == pytest.approx(rates["intake"] / raw, rel=1e-3)

    def test_text_names_every_figure(self):
        """Without --json: one line per figure, the ratio and both targets."""
        status, out = _cli(["bench", "--stage", "ingest", "--seconds", "0.1"])
        labels = [line.split("  ")[0] for line in out.splitlines()]
        expected = (
            0,
            [
                "submission",
                "intake",
                "parse + validate",
                "sign",
                "raw stage",
                "ratio intake/raw",
                "intake target",
                "bare parse + val.",
                "strict raw stage",
                "ratio, strict",
            ],
        )
        assert expected == (status, labels)

    def test_seconds_must_be_positive(self):
        """A zero or negative duration is a usage error (2), before anything is measured."""
        status, _ = _cli(["bench", "--stage", "ingest", "--seconds", "0"])
        assert status == cli.EXIT_USAGE
