"""``sozialhub gate decide`` on the examples in examples/gate/, and its usage errors."""

from __future__ import annotations

import json

import pytest

from hub.config import PROJECT_ROOT
from tests.unit.test_cli import run

EXAMPLES = PROJECT_ROOT / "examples" / "gate"
EXPECTED = json.loads((EXAMPLES / "expected.json").read_text("utf-8"))
POLICY = PROJECT_ROOT / "config" / "transfer-policy.yml"
CONSENTS = EXAMPLES / "consents.jsonl"
PERSON = "psn-dev-7e53ec91058fbf852bfce819b055b5d7"


@pytest.fixture(autouse=True)
def isolated():
    """The environment and logging isolation of the CLI tests (tests/unit/test_cli.py)."""
    from tests.unit import test_cli

    patch = pytest.MonkeyPatch()
    test_cli._clean_environment(patch)
    with test_cli._logging_restored():
        yield
    patch.undo()


def decide(
    *extra: str, request: str = "request-handover.json", consents=CONSENTS, policy=POLICY
) -> list[str]:
    """The argument list of `gate decide` on an example request (a path replaces it)."""
    return [
        "gate",
        "decide",
        "--request",
        str(EXAMPLES / request),
        "--consents",
        str(consents),
        "--policy",
        str(policy),
        *extra,
    ]


@pytest.mark.parametrize("case", EXPECTED, ids=lambda c: f"{c['request']}@{c['at'][:10]}")
def test_examples(capsys, case):
    """Each example request gives the documented decision and exit status (0 allow, 1 deny)."""
    status = run(decide("--at", case["at"], request=case["request"]))
    out = capsys.readouterr().out
    (line,) = out.splitlines()
    report = json.loads(line)
    basis = report["basis"]
    expected = (
        1 if case["outcome"] == "deny" else 0,
        case["outcome"],
        case["reason"],
        case["categories"],
        case["basis"],
    )
    actual = (
        status,
        report["outcome"],
        report["reason"],
        report["categories"],
        None if basis is None else (basis["consent_record"] or basis["basis_id"]),
    )
    assert expected == actual


def test_report_fields(capsys):
    """One JSON object: request id, outcome, categories, basis with legal reference, reason, dropped, time."""
    run(decide("--at", "2026-07-01T09:00:00Z"))
    report = json.loads(capsys.readouterr().out)
    expected = {"request_id", "outcome", "categories", "basis", "reason", "dropped", "decided_at"}
    assert expected == set(report)
    assert report["basis"]["legal_reference"].startswith("§ 67b SGB X")
    assert {"housing-costs": "CONSENT_SCOPE"} == report["dropped"]
    assert "2026-07-01T09:00:00.000Z" == report["decided_at"]


def test_at_with_offset(capsys):
    """--at takes any ISO 8601 offset; the decision time is shown in UTC."""
    run(decide("--at", "2026-07-01T11:00:00+02:00"))
    assert "2026-07-01T09:00:00.000Z" == json.loads(capsys.readouterr().out)["decided_at"]


@pytest.mark.parametrize(
    "argv",
    [
        ["gate"],
        ["gate", "decide"],
        ["gate", "decide", "--request", "x.json"],
        decide("--at", "yesterday"),
        decide("--at", "2026-07-01T09:00:00"),  # no offset
    ],
)
def test_usage_errors_are_two(capsys, argv):
    """Missing arguments and times without an offset are usage errors (exit 2)."""
    assert 2 == run(argv)
    assert "" == capsys.readouterr().out


class TestBadFiles:
    def test_missing_request_file(self, capsys, tmp_path):
        """A request file that does not exist: exit 2, nothing on stdout."""
        status = run(decide(request=str(tmp_path / "nope.json")))
        assert (2, "") == (status, capsys.readouterr().out)

    def test_invalid_request_names_the_field_not_the_value(self, capsys, tmp_path):
        """A request with a raw identifier as person: exit 2; the message names 'person' only."""
        body = json.loads((EXAMPLES / "request-handover.json").read_text("utf-8"))
        body["person"] = "86095742719"
        path = tmp_path / "request.json"
        path.write_text(json.dumps(body))
        status = run(decide(request=str(path)))
        captured = capsys.readouterr()
        assert (2, "") == (status, captured.out)
        assert "invalid at person" in captured.err
        assert "86095742719" not in captured.err

    def test_invalid_consent_line_names_the_line(self, capsys, tmp_path):
        """A consent event that breaks a rule: exit 2, the line number and the reason code."""
        lines = CONSENTS.read_text("utf-8").splitlines()
        body = json.loads(lines[0])
        body["record"]["recipients"] = []
        path = tmp_path / "events.jsonl"
        path.write_text("\n".join([lines[1], "", json.dumps(body)]) + "\n")
        status = run(decide(consents=path))
        captured = capsys.readouterr()
        assert (2, "") == (status, captured.out)
        assert "line 3: CONSENT_INVALID at record/recipients" in captured.err
        assert PERSON not in captured.err

    def test_ledger_lines_are_read(self, capsys, tmp_path):
        """A ledger record (as on the consent topic) counts like its events."""
        from hub.core import consent

        events = [consent.decode_event(line) for line in CONSENTS.read_bytes().splitlines()]
        path = tmp_path / "ledger.jsonl"
        path.write_bytes(consent.encode_ledger(PERSON, events) + b"\n")
        status = run(decide("--at", "2026-07-01T09:00:00Z", consents=path))
        assert (0, "allow-minimised") == (status, json.loads(capsys.readouterr().out)["outcome"])

    def test_invalid_policy(self, capsys, tmp_path):
        """A policy naming an unknown office: exit 2 with the location."""
        path = tmp_path / "policy.yml"
        path.write_text(
            POLICY.read_text("utf-8").replace('to: {offices: "*"}', "to: {offices: [nowhere]}")
        )
        status = run(decide(policy=path))
        captured = capsys.readouterr()
        assert (2, "") == (status, captured.out)
        assert "bases/2/to/offices names an unknown office" in captured.err


def test_example_events_validate_against_the_schema():
    """Every line of examples/gate/consents.jsonl is a valid published consent event."""
    import jsonschema

    schema = json.loads(
        (PROJECT_ROOT / "schemas" / "consent" / "consent-event-1.schema.json").read_text("utf-8")
    )
    validator = jsonschema.Draft202012Validator(schema)
    lines = CONSENTS.read_text("utf-8").splitlines()
    assert [[] for _ in lines] == [list(validator.iter_errors(json.loads(x))) for x in lines]
