"""The ukraine-2022 demo scenario's pure parts: its people, its events, its revocation timing."""

from __future__ import annotations

import datetime as dt
import json
import logging

import pytest
import structlog

from hub import cli, demo_rkw, offices, subscriptions
from hub.config import load
from hub.core import consent
from hub.core.fanout import fan_out, offline_gate
from hub.core.rechtskreiswechsel import check_event, encode_event
from hub.core.records import AuditEvent, encode


@pytest.fixture(scope="module")
def crowd() -> list[demo_rkw.Person]:
    return demo_rkw.people(100)


def test_groups_are_fixed_and_disjoint(crowd):
    groups = {g: [p.number for p in crowd if p.group == g] for g in ("without", "revokes")}
    assert groups == {"without": list(range(3, 100, 10)), "revokes": [7, 32, 57, 82]}
    assert all((p.grant is None) == (p.group == "without") for p in crowd)
    assert [p.number for p in crowd if demo_rkw.revokes_with_event(p)] == [7, 57]


def test_people_are_deterministic_development_pseudonyms(crowd):
    again = demo_rkw.people(100)
    assert [p.pseudonym for p in crowd] == [p.pseudonym for p in again]
    assert len({p.pseudonym for p in crowd}) == 100
    assert all(p.pseudonym.startswith("psn-dev-") for p in crowd)


def test_events_pass_the_hubs_check_and_reach_five_offices(crowd):
    settings = load({})
    table = offices.load(settings.offices_file, settings.schema_dir)
    subscribed = subscriptions.load(
        subscriptions.default_path(settings), settings.schema_dir, table
    )
    now = dt.datetime(2026, 11, 22, tzinfo=dt.UTC)
    for person in crowd[:10]:
        event = check_event(encode_event(person.event), table)
        assert (event.from_.office, event.to.office) == ("soa-herten", "jc-re-herten")
        assert event.reason.code == "ukraine-2022"
        planned = fan_out(event, subscribed, table, offline_gate, now)
        roles = sorted(m.role.value for m in planned.messages)
        assert roles == ["affected"] * 3 + ["new-office", "old-office"]


def test_consents_name_the_jobcenter_for_the_handover(crowd):
    for person in crowd:
        if person.grant is None:
            continue
        consent.validate(person.grant)
        record = person.grant.record
        assert record is not None
        assert record.recipients == frozenset({"jc-re-herten"})
        assert record.purpose == "rechtskreiswechsel-handover"
        assert "health" not in record.categories


def _plan(decision: str) -> AuditEvent:
    return AuditEvent(
        event_id="aud-x",
        submission_id="sub-unknown",
        stage="rechtskreiswechsel",
        decision=decision,
        at="2026-01-01T10:00:00.000Z",
    )


@pytest.mark.parametrize(
    ("planned", "decided", "folded", "timing"),
    [
        ("notice", "2026-01-01T10:00:00.500Z", "2026-01-01T10:00:00.100Z", "folded-before-plan"),
        (
            "handover",
            "2026-01-01T10:00:00.500Z",
            "2026-01-01T10:00:00.100Z",
            "folded-between-plan-and-send",
        ),
        (
            "handover",
            "2026-01-01T10:00:00.100Z",
            "2026-01-01T10:00:00.100Z",
            "same-millisecond-as-send",
        ),
        ("handover", "2026-01-01T10:00:00.100Z", "2026-01-01T10:00:00.500Z", "folded-after-send"),
        ("handover", None, "2026-01-01T10:00:00.500Z", "not-sent-or-not-folded"),
    ],
)
def test_revocation_timing(planned, decided, folded, timing):
    assert demo_rkw._revocation_timing(_plan(planned), decided, folded) == timing


@pytest.mark.parametrize(
    "argv",
    [
        ["demo", "--count", "5"],
        ["demo", "--scenario", "ukraine-2022", "--count", "0"],
    ],
)
def test_count_usage_errors(capsys, argv):
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        assert cli.main(argv) == 2
    finally:  # main() configures logging for the captured stderr; undo that
        structlog.reset_defaults()
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)
    assert "--count" in capsys.readouterr().err


def _audit(stage: str, decision: str, office: str, mid: str) -> bytes:
    return encode(
        AuditEvent(
            event_id="aud-" + "0" * 32,
            submission_id="sub-unknown",
            stage=stage,
            decision=decision,
            at="2026-01-01T10:00:00.000Z",
            office=office,
            path=f"rkw-{'e' * 32}/{mid}",
            message_id=mid,
        )
    )


def test_a_message_for_a_file_or_http_vendor_is_settled_once_forwarded(office_table):
    """Sent is not enough for soa-herten (OPEN/PROSOZ, file): the forwarding must be audited."""
    forwarding = frozenset({"soa-herten"})
    progress = demo_rkw.Progress(forward_offices=forwarding)
    mids = {"soa-herten": "rkm-" + "1" * 32, "jc-re-herten": "rkm-" + "2" * 32}
    for office, mid in mids.items():
        progress.add("t.audit.log", _audit("rechtskreiswechsel", "notice", office, mid))
        progress.add("t.audit.log", _audit("handover", "sent", office, mid))
        record = json.dumps({"message_id": mid, "office": office, "kind": "notice"}).encode()
        progress.add(f"t.handovers.{office_table.office(office).vendor}", record)
    assert (False, True) == tuple(progress.settled(m) for m in mids.values())
    rows = demo_rkw.by_vendor(office_table, progress)
    assert {"channel": "kafka", "sent": 1} == rows["akdn"]
    assert {"channel": "file", "sent": 1, "forwarded": 0} == rows["openprosoz"]
    assert ["openprosoz: 1 message(s) not forwarded"] == demo_rkw._vendor_problems(rows)
    progress.add("t.audit.log", _audit("handover", "forwarded", "soa-herten", mids["soa-herten"]))
    assert progress.settled(mids["soa-herten"])
    rows = demo_rkw.by_vendor(office_table, progress)
    assert 1 == rows["openprosoz"]["forwarded"]
    assert [] == demo_rkw._vendor_problems(rows)
