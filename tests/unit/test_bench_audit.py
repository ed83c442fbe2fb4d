"""`sozialhub bench --stage audit`: the block it builds verifies, and its figures come from one run.
Never its timings."""

from __future__ import annotations

import json

import pytest

from hub import bench_audit
from hub.config import Settings
from hub.core import audit_chain as chain


def test_the_block_is_a_real_chain_with_signed_checkpoints() -> None:
    entries, checkpoints, signer = bench_audit.build_block(2_500)
    report = chain.verify_partition(
        0, entries, checkpoints, chain.trust_store([signer.certificate])
    )
    assert report.ok
    assert (report.entries, report.checkpoints, report.unsigned) == (2_500, 2, 500)
    stages = {json.loads(v or b"{}")["event"]["stage"] for _, v in entries}
    assert stages == {"ingest", "intake", "map", "gate", "deliver"}


def test_figures_and_ratio_are_from_the_same_run() -> None:
    result = bench_audit.measure(0.05, count=1_000)
    assert result["ratio"] == pytest.approx(
        result["verify_per_second"] / result["passthrough_per_second"]
    )
    assert result["meets_target"] == (result["verify_per_second"] >= 100_000)
    assert result["checkpoints_per_block"] == 1
    assert all(count >= 1 for count in result["blocks"].values())


def test_non_positive_seconds_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert bench_audit.run(Settings(), 0) == 2
    assert "--seconds must be positive" in capsys.readouterr().err
