"""``sozialhub bench --stage mapping``: the structure of one short run, never its timings.

Nothing here asserts a rate or a target being met, only that every figure is
there, positive, and derived from the others as documented.
"""

from __future__ import annotations

import json

import pytest

from hub import bench_mapping, context
from hub.core.mapping import MAPPINGS
from tests.unit.test_bench import _cli

SECONDS = 0.05


@pytest.fixture(scope="module")
def hub(settings):
    return context.build(settings)


@pytest.fixture(scope="module")
def result(hub):
    return bench_mapping.measure(hub, SECONDS, slice_seconds=0.02)


class TestInputs:
    def test_inputs_are_the_ingest_benchmark_submissions_after_intake(self, hub):
        """Each input is the ~10 KB household of five with one PDF, a receipt and a route."""
        pool = bench_mapping.inputs(hub, 2)
        expected = [(5, 1, True, True)] * 2
        actual = [
            (
                len(i.submission.persons),
                len(i.submission.documents),
                abs(i.payload_bytes - 10 * 1024) <= 1024,
                bool(i.receipt) and i.route.leika in i.submission.leika_keys,
            )
            for i in pool
        ]
        assert expected == actual


class TestMeasure:
    def test_every_format_and_the_passthrough_are_measured(self, result):
        """One measurement per registered format plus the passthrough, each ran its share."""
        expected = sorted([*MAPPINGS, bench_mapping.PASSTHROUGH])
        assert expected == sorted(result["measured"])
        for name, measured in result["measured"].items():
            assert measured["count"] > 0, name
            assert measured["seconds"] >= SECONDS, name
            assert measured["per_s"] == pytest.approx(measured["count"] / measured["seconds"])

    def test_ratios_are_rates_over_the_passthrough_of_the_same_run(self, result):
        """ratio = format rate / passthrough rate, from this run's figures."""
        baseline = result["measured"][bench_mapping.PASSTHROUGH]["per_s"]
        assert result["passthrough_per_s"] == pytest.approx(baseline)
        for name, figures in result["formats"].items():
            assert figures["per_s"] == pytest.approx(result["measured"][name]["per_s"])
            assert figures["ratio"] == pytest.approx(figures["per_s"] / baseline)

    def test_formats_name_version_document_policy_and_output(self, result):
        """Each format reports its mapping version, document policy and output size."""
        for name, figures in result["formats"].items():
            mapping = MAPPINGS[name]
            expected = (mapping.version, mapping.documents, True)
            actual = (figures["version"], figures["documents"], figures["output_bytes"] > 0)
            assert expected == actual

    def test_target_verdicts_follow_the_figures(self, result):
        """fv-xml and fv-avro carry the 10,000/s target; "met" says whether the rate reaches it."""
        verdicts = {name: (f["target_per_s"], f["met"]) for name, f in result["formats"].items()}
        expected = {
            name: (
                bench_mapping.TARGETS_PER_S.get(name),
                None
                if name not in bench_mapping.TARGETS_PER_S
                else result["formats"][name]["per_s"] >= bench_mapping.TARGETS_PER_S[name],
            )
            for name in MAPPINGS
        }
        assert expected == verdicts
        assert {"fv-xml", "fv-avro"} == set(bench_mapping.TARGETS_PER_S)

    def test_reports_the_input(self, result):
        """The run names the submission size, household, document and receipt sizes."""
        expected = (True, 5, True, True)
        actual = (
            abs(result["submission_bytes"] - 10 * 1024) <= 1024,
            result["persons"],
            result["document_bytes"] > 0,
            result["receipt_bytes"] > 0,
        )
        assert expected == actual


class TestCommand:
    def test_json_is_one_object_with_every_format(self):
        """`bench --stage mapping --json` prints one object naming every format."""
        status, out = _cli(["bench", "--stage", "mapping", "--seconds", "0.05", "--json"])
        body = json.loads(out)
        expected = (0, sorted(MAPPINGS))
        assert expected == (status, sorted(body["formats"]))

    def test_text_has_a_line_per_format(self):
        """Without --json: the input, the passthrough and one line per format."""
        status, out = _cli(["bench", "--stage", "mapping", "--seconds", "0.05"])
        labels = [line.split(" ")[0] for line in out.splitlines()]
        expected = (0, ["submission", "passthrough", *MAPPINGS])
        assert expected == (status, labels)

    def test_seconds_must_be_positive(self):
        """A zero duration is a usage error (2)."""
        status, _ = _cli(["bench", "--stage", "mapping", "--seconds", "0"])
        assert status == 2
