"""``sozialhub bench --stage fanout``: arguments and the derived figures, never timings.

The run itself needs a broker and a worker (the benchmark, not a test, measures
it); here only the pure parts: the parser, the refusal of a non-positive N, the
people and the figures derived from the two measurements.
"""

from __future__ import annotations

from hub import bench, bench_fanout, cli


def test_the_parser_knows_the_stage():
    args = cli.build_parser().parse_args(["bench", "--stage", "fanout", "--n", "7", "--json"])
    assert (args.stage, args.n, args.json) == ("fanout", 7, True)


def test_a_non_positive_n_is_refused_before_any_broker(settings, capsys):
    assert bench_fanout.run(settings, 0) == 2
    assert "--n must be positive" in capsys.readouterr().err


def test_the_warm_up_person_is_not_one_of_the_measured():
    crowd, warm = bench_fanout.split(20)
    assert len(crowd) == 20
    assert warm.pseudonym not in {p.pseudonym for p in crowd}
    assert sum(p.grant is not None for p in crowd) == 18  # nine in ten with a consent


def test_the_figures_derive_from_the_two_measurements():
    hub = {
        "seconds": 2.0,
        "messages": 50,
        "sent": 30,
        "kinds": {"handover": 9},
        "with_consent": 9,
    }
    result = bench_fanout.result_of(10, "external", hub, 0.01)
    assert result["events_per_s"] == 5.0
    assert result["messages_per_s"] == 25.0
    assert result["sent_per_s"] == 15.0
    assert result["passthrough_per_s"] == 1000.0
    assert result["ratio"] == 0.005
    assert result["ratio"] == round(result["events_per_s"] / result["passthrough_per_s"], 4)


def test_the_passthrough_topics_are_the_ones_the_pipeline_bench_copies_between(settings):
    names = [spec.name for spec in bench.passthrough_specs(settings)]
    assert names == list(bench.PASSTHROUGH_TOPICS)
