"""``sozialhub rechtskreiswechsel plan``: the planned fan-out of the example events, offline.

Driven by examples/rechtskreiswechsel/expected.json: per example the verdict and,
for a planned one, the offices in order with their role and message kind under
the built-in offline gate (data-free messages only).
"""

from __future__ import annotations

import json

import pytest

from hub import cli
from tests import clitools
from tests.rkw_support import EXAMPLES, EXPECTED, example_body

PLANNED = [e for e in EXPECTED if e["verdict"] == "planned"]
REJECTED = [e for e in EXPECTED if e["verdict"] == "rejected"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch):
    """No SOZIALHUB_*/KAFKA_* variables of the machine; main()'s logging set-up undone after."""
    with clitools.isolated(monkeypatch):
        yield


def plan(capsys, *args: str) -> tuple[int, list[dict], str]:
    try:
        status = cli.main(["rechtskreiswechsel", "plan", "--offline", *args])
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return status, [json.loads(line) for line in captured.out.splitlines()], captured.err


@pytest.mark.parametrize("case", PLANNED, ids=[e["file"] for e in PLANNED])
def test_planned_examples(capsys, case):
    """Each planned example: exit 0, one line per office, in order, with role and kind."""
    status, lines, _ = plan(capsys, str(EXAMPLES / case["file"]), "--at", "2026-11-20T09:00Z")
    expected = (0, case["plan"])
    actual = (status, [{k: line[k] for k in ("office", "role", "kind")} for line in lines])
    assert expected == actual


@pytest.mark.parametrize("case", PLANNED, ids=[e["file"] for e in PLANNED])
def test_offline_plan_carries_no_data_and_never_quotes_the_case(capsys, case):
    """Offline nothing but data-free messages are planned; lines hold no pseudonym or case values."""
    _, lines, _ = plan(capsys, str(EXAMPLES / case["file"]))
    body = example_body(case["file"])
    values = [body["person"]] + [m["person"] for m in body.get("case", {}).get("household", [])]
    values += [c["reference"] for c in body.get("case", {}).get("open_claims", [])]
    text = "\n".join(json.dumps(line) for line in lines)
    expected = ([], [])
    actual = (
        [line["categories"] for line in lines if line["categories"]],
        [v for v in values if v in text],
    )
    assert expected == actual


@pytest.mark.parametrize("case", REJECTED, ids=[e["file"] for e in REJECTED])
def test_rejected_examples(capsys, case):
    """An invalid event: exit 1 and one line with the reason code and path."""
    status, lines, _ = plan(capsys, str(EXAMPLES / case["file"]))
    expected = (1, [("rejected", case["reason"], case["path"])])
    assert expected == (status, [(x["verdict"], x["reason"], x["path"]) for x in lines])


def test_basis_says_offline(capsys):
    """Every gate-decided line names the offline basis, so nobody mistakes it for a legal one."""
    _, lines, _ = plan(capsys, str(EXAMPLES / PLANNED[0]["file"]))
    kinds = {line["basis"]["kind"] for line in lines}
    assert {"offline", "no-transfer"} == kinds


def test_missing_file(capsys, tmp_path):
    """A missing event file is a usage error (exit 2)."""
    status, lines, err = plan(capsys, str(tmp_path / "none.json"))
    assert (2, [], True) == (status, lines, "no such file" in err)


def test_bad_time(capsys):
    """An --at that is not ISO 8601 is a usage error (exit 2)."""
    status, _, _ = plan(capsys, str(EXAMPLES / PLANNED[0]["file"]), "--at", "next tuesday")
    assert 2 == status


def test_missing_subscriptions_file(capsys, tmp_path):
    """A subscriptions file that cannot be read is a configuration error (exit 2)."""
    status, lines, _ = plan(
        capsys, str(EXAMPLES / PLANNED[0]["file"]), "--subscriptions", str(tmp_path / "x.yml")
    )
    assert (2, []) == (status, lines)


def test_not_an_event(capsys, tmp_path):
    """A file that is not an event is rejected with RKW_EVENT."""
    path = tmp_path / "event.json"
    path.write_text('{"type": "sozialhub.delivery", "v": 1}', encoding="utf-8")
    status, lines, _ = plan(capsys, str(path))
    assert (1, "RKW_EVENT", "type") == (status, lines[0]["reason"], lines[0]["path"])


def test_plan_with_the_gate_and_a_consent_file(capsys, tmp_path):
    """Without --offline the transfer gate decides: the policy, and the consents of the file."""
    from hub.core import consent
    from tests.unit.test_rechtskreiswechsel_stream import grant

    event = str(EXAMPLES / "01-recognition-marl.json")
    ledger = tmp_path / "consents.jsonl"
    ledger.write_bytes(consent.encode_event(grant()) + b"\n")
    at = ["--at", "2026-11-20T09:00Z"]
    for extra, kind, basis in (
        ([], "notice", "statute"),
        (["--consents", str(ledger)], "handover", "consent"),
    ):
        status = cli.main(["rechtskreiswechsel", "plan", event, *at, *extra])
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        new = next(line for line in lines if line["role"] == "new-office")
        assert (status, new["kind"], new["basis"]["kind"]) == (0, kind, basis)


def test_submit_checks_the_event_first(capsys, tmp_path):
    """An event the hub cannot use is refused before any cluster is asked (exit 1)."""
    body = example_body("01-recognition-marl.json")
    body["area"] = "0556"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(body), "utf-8")
    status = cli.main(["rechtskreiswechsel", "submit", str(bad)])
    line = json.loads(capsys.readouterr().out)
    assert (status, line["verdict"], line["reason"]) == (1, "rejected", "RKW_EVENT")
