"""The consent registry: the ledger step, the index, and `sozialhub consent` argument handling."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from hub import cli, consents
from hub.core import consent
from hub.core.consent import Status
from hub.core.consent_registry import LEDGER, record
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import AUDIT, UNKNOWN
from hub.core.pseudonym import identifier
from hub.core.records import AuditEvent, decode
from hub.pseudonyms import development_ring
from hub.stream.consents import ConsentIndex
from tests.unit.test_cli import run

IDNR = "86095742719"
PERSON = development_ring().pseudonym(identifier("idnr", IDNR))
T0 = dt.datetime(2026, 3, 2, 9, 15, tzinfo=dt.UTC)
LATER = T0 + dt.timedelta(days=30)


@pytest.fixture(autouse=True)
def isolated():
    """The environment and logging isolation of the CLI tests (tests/unit/test_cli.py)."""
    from tests.unit import test_cli

    patch = pytest.MonkeyPatch()
    test_cli._clean_environment(patch)
    with test_cli._logging_restored():
        yield
    patch.undo()


def granted(person: str = PERSON) -> consent.ConsentEvent:
    return consent.grant(
        person=person,
        granting_office="soa-marl",
        recipients=["jc-re-marl"],
        purpose="rechtskreiswechsel-handover",
        categories=["household", "identity-address"],
        text_version="rkw-marl-2025-01",
        channel="paper",
        scan_ref="dms:soa-marl:2026/03/0412",
        collected_at=T0,
    )


def revoked(record_id: str) -> consent.ConsentEvent:
    return consent.revoke(
        person=PERSON, record_id=record_id, effective_at=LATER, channel="oral", note="phone, desk 3"
    )


def audit(emit) -> AuditEvent:
    assert emit.topic == AUDIT
    return decode(emit.value, AuditEvent)


class TestLedgerStep:
    def test_grant_then_revoke_folds_into_one_ledger(self):
        """Each event extends the person's ledger; the index folds it to the record's status."""
        grant = granted()
        first = record(PERSON.encode(), consent.encode_event(grant), None, T0)
        index = ConsentIndex()
        index.remember(first)
        second = record(
            PERSON.encode(),
            consent.encode_event(revoked(grant.record_id)),
            index.ledger(PERSON),
            LATER,
        )
        index.remember(second)
        (state,) = index.states_for(PERSON)
        person, events = consent.decode_ledger(second[0].value)
        assert (
            [LEDGER, AUDIT],
            [LEDGER, AUDIT],
            PERSON,
            {"granted", "revoked"},
            (Status.VALID, Status.REVOKED, LATER),
        ) == (
            [e.topic for e in first],
            [e.topic for e in second],
            person,
            {e.kind.value for e in events},
            (state.status(LATER - dt.timedelta(seconds=1)), state.status(LATER), state.revoked_at),
        )

    def test_an_event_already_in_the_ledger_writes_only_its_audit_again(self):
        """Idempotent: no new ledger, the same audit event (same id) so a lost audit is repaired."""
        value = consent.encode_event(granted())
        (ledger, first_audit) = record(PERSON.encode(), value, None, T0)
        again = record(PERSON.encode(), value, ledger.value, LATER)
        assert ([AUDIT], audit(first_audit).event_id) == (
            [e.topic for e in again],
            audit(again[0]).event_id,
        )

    def test_audit_event_holds_ids_and_the_pseudonym_only(self):
        """consent/granted under sub-unknown; the place is pseudonym, record id and event id."""
        grant = granted()
        event = audit(record(PERSON.encode(), consent.encode_event(grant), None, T0)[1])
        assert (
            UNKNOWN,
            "consent",
            "granted",
            f"{PERSON}/{grant.record_id}/{grant.event_id}",
            "soa-marl",
        ) == (
            event.submission_id,
            event.stage,
            event.decision,
            event.path,
            event.office,
        )
        assert (
            IDNR
            not in record(PERSON.encode(), consent.encode_event(grant), None, T0)[1].value.decode()
        )

    def test_key_must_be_the_events_pseudonym(self):
        """An event under another key would reach another partition's writer: CONSENT_INVALID."""
        other = development_ring().pseudonym(identifier("idnr", "47036892816"))
        with pytest.raises(Rejection) as caught:
            record(other.encode(), consent.encode_event(granted()), None, T0)
        assert (Reason.CONSENT_INVALID, "person") == (caught.value.reason, caught.value.path)

    def test_not_an_event_is_rejected(self):
        with pytest.raises(Rejection) as caught:
            record(PERSON.encode(), b"{}", None, T0)
        assert Reason.ENVELOPE == caught.value.reason


class TestIndex:
    def test_tombstone_erases_and_foreign_records_are_ignored(self):
        """A tombstone removes the person; a record that is not a ledger of its key changes nothing."""
        index = ConsentIndex()
        ledger = consent.encode_ledger(PERSON, [granted()])
        index.take(PERSON.encode(), ledger)
        index.take(b"not-a-pseudonym", ledger)
        index.take(PERSON.encode(), b"{}")
        before = len(index.states_for(PERSON))
        index.take(PERSON.encode(), None)
        assert (1, (), 0) == (before, index.states_for(PERSON), len(index))

    def test_unknown_person_has_no_states(self):
        assert () == ConsentIndex().states_for(PERSON)


class TestReport:
    def test_pending_events_count_until_folded(self):
        """show folds the ledger and the events not in it yet; status is as of the given time."""
        grant = granted()
        revocation = revoked(grant.record_id)
        body = consents.report(PERSON, [grant], [grant, revocation], LATER)
        (entry,) = body["records"]
        assert (1, "revoked", "2026-04-01T09:15:00.000Z", "paper") == (
            body["pending"],
            entry["status"],
            entry["revoked_at"],
            entry["channel"],
        )
        assert "dms:" not in json.dumps(body)  # no scan reference, no note


GRANT = [
    "consent",
    "grant",
    "--development-key",
    "--person-id",
    IDNR,
    "--from",
    "soa-marl",
    "--to",
    "jc-re-marl",
    "--purpose",
    "rechtskreiswechsel-handover",
    "--categories",
    "household,identity-address",
    "--text-version",
    "rkw-marl-2025-01",
    "--channel",
    "paper",
]


class TestArguments:
    def test_grant_arguments(self):
        args = cli.build_parser().parse_args(
            [*GRANT, "--scan-ref", "dms:x", "--valid-until", "2027-03-01T23:00:00Z"]
        )
        assert (
            "idnr",
            IDNR,
            "soa-marl",
            ["jc-re-marl"],
            ["household", "identity-address"],
            dt.datetime(2027, 3, 1, 23, tzinfo=dt.UTC),
        ) == (
            args.person_id_kind,
            args.person_id,
            args.from_office,
            args.to,
            args.categories,
            args.valid_until,
        )

    def test_person_is_an_alias_of_person_id(self):
        args = cli.build_parser().parse_args(["consent", "show", "--person", IDNR])
        assert IDNR == args.person_id

    @pytest.mark.parametrize(
        "argv",
        [
            ["consent", "grant", "--person-id", IDNR],  # required options missing
            [*GRANT[:-1], "fax"],  # unknown channel
            [*GRANT[:10], "jc-re-marl,,soz-marl", *GRANT[11:]],  # empty list item
            ["consent", "revoke", "--person", IDNR, "--record", "cns-123", "--channel", "portal"],
            ["consent", "show"],
        ],
        ids=["missing", "channel", "list", "record-id", "no-person"],
    )
    def test_usage_errors_exit_2(self, capsys, argv):
        assert 2 == run(argv)
        assert IDNR not in capsys.readouterr().err

    def test_embedded_broker_is_a_usage_error(self, capsys):
        """Without KAFKA_BOOTSTRAP_SERVERS there is no registry to talk to."""
        assert 2 == run(["consent", "show", "--development-key", "--person-id", IDNR])
        assert "KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err

    def test_invalid_identifier_is_named_by_kind_never_by_value(self, capsys, monkeypatch):
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        status = run(["consent", "show", "--development-key", "--person-id", "86095742718"])
        err = capsys.readouterr().err
        assert (2, True, False) == (status, "IDENTIFIER at idnr" in err, "86095742718" in err)

    def test_invalid_grant_is_refused_before_sending(self, capsys, monkeypatch):
        """Paper without its scan reference: CONSENT_INVALID with the field, nothing sent."""
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        status = run(GRANT)
        err = capsys.readouterr().err
        assert (2, True) == (status, "CONSENT_INVALID at record/collection/scan_ref" in err)

    def test_no_key_ring_is_a_usage_error(self, monkeypatch):
        """Without a key file the development key is used only when asked for."""
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        assert 2 == run(["consent", "show", "--person-id", IDNR])

    def test_identifier_from_standard_input(self, monkeypatch):
        monkeypatch.setattr("sys.stdin", __import__("io").StringIO(IDNR + "\n"))
        assert IDNR == consents.read_identifier("-")
