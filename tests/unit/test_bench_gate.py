"""``sozialhub bench --stage gate``: the structure of one short run, never its timings.

Nothing here asserts a rate, only that every figure is there, positive, derived
from the others as documented, and that the mix holds what the docstring says.
"""

from __future__ import annotations

import json

import pytest

from hub import bench_gate
from tests.unit.test_bench import _cli

SECONDS = 0.05
NAMES = sorted(
    [
        bench_gate.GATE,
        bench_gate.GATE_PASSTHROUGH,
        bench_gate.FANOUT,
        bench_gate.FANOUT_PASSTHROUGH,
    ]
)


@pytest.fixture(scope="module")
def result(settings):
    return bench_gate.measure(settings, SECONDS, slice_seconds=0.02, persons=120, events=40)


class TestMix:
    def test_persons_have_zero_to_five_records_in_every_status(self, result):
        """0-5 records per person; valid, revoked, expired, superseded and not yet valid all occur."""
        mix = result["mix"]
        counts = {int(k) for k in mix["consent_records_per_person"]}
        expected = (True, ["expired", "not-yet-valid", "revoked", "superseded", "valid"])
        assert expected == (counts <= set(range(6)), sorted(mix["consent_status"]))

    def test_requests_are_allowed_minimised_and_denied(self, result):
        """Every outcome occurs in the request pool, one decision per request."""
        outcomes = result["mix"]["outcomes"]
        expected = (["allow", "allow-minimised", "deny"], 120)
        assert expected == (sorted(outcomes), sum(outcomes.values()))

    def test_events_fan_out_to_several_offices(self, result):
        """Every event is planned; each addresses at least the new office."""
        mix = result["mix"]
        expected = (40, True, True)
        actual = (
            mix["events"],
            mix["messages_per_event"] >= 1,
            sum(mix["message_kinds"].values()) == round(mix["messages_per_event"] * 40),
        )
        assert expected == actual

    def test_the_mix_is_the_same_in_every_run(self, settings, result):
        """A fixed seed and time: the pools, hence the ratios, describe the same work."""
        again = bench_gate.measure(settings, 0.01, slice_seconds=0.01, persons=120, events=40)
        assert result["mix"] == again["mix"]


class TestMeasure:
    def test_all_four_are_measured_for_their_share(self, result):
        """Gate, fan-out and both passthroughs ran at least the given seconds."""
        assert sorted(result["measured"]) == NAMES
        for name, measured in result["measured"].items():
            assert measured["count"] > 0, name
            assert measured["seconds"] >= SECONDS, name
            assert measured["per_s"] == pytest.approx(measured["count"] / measured["seconds"])

    def test_ratios_are_rates_over_the_passthrough_of_the_same_run(self, result):
        """ratio = rate / passthrough rate of this run; messages/s = plans/s x messages per event."""
        per_s = {name: m["per_s"] for name, m in result["measured"].items()}
        gate, fan = result["gate"], result["fanout"]
        expected = (
            per_s[bench_gate.GATE] / per_s[bench_gate.GATE_PASSTHROUGH],
            per_s[bench_gate.FANOUT] / per_s[bench_gate.FANOUT_PASSTHROUGH],
            per_s[bench_gate.FANOUT] * result["mix"]["messages_per_event"],
        )
        assert expected == pytest.approx((gate["ratio"], fan["ratio"], fan["messages_per_s"]))

    def test_the_broker_part_says_why_it_is_not_measured(self, result):
        """Until the worker fans out, the result says so instead of a figure."""
        assert result["broker"] == {"measured": False, "why": bench_gate.BROKER_NOT_MEASURED}


class TestCommand:
    def test_json_is_one_object(self):
        """`bench --stage gate --json` prints one object with both parts and their ratios."""
        status, out = _cli(["bench", "--stage", "gate", "--seconds", "0.02", "--json"])
        body = json.loads(out)
        actual = (status, sorted(body["measured"]), body["gate"]["ratio"] > 0)
        assert (0, NAMES, True) == actual

    def test_text_has_a_line_per_part(self):
        """Without --json: the mix, the duration, gate, fan-out and broker lines."""
        status, out = _cli(["bench", "--stage", "gate", "--seconds", "0.02"])
        labels = [line.split(" ")[0] for line in out.splitlines() if not line.startswith(" ")]
        expected = (0, ["mix", "seconds", "gate", "fan-out", "broker"])
        assert expected == (status, labels)

    def test_seconds_must_be_positive(self):
        """A zero duration is a usage error (2)."""
        status, _ = _cli(["bench", "--stage", "gate", "--seconds", "0"])
        assert status == 2
