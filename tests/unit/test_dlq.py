"""``sozialhub dlq``: the pure parts (hub.core.dlq) on dead letters the real pipeline makes, and the CLI guards.

The Kafka side (reading to the end, re-producing) is in tests/integration/test_dlq.py.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json

import pytest

from hub import cli
from hub.config import PROJECT_ROOT
from hub.core import dlq
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import (
    ACCEPTED,
    AUDIT,
    DEAD_LETTER,
    UNKNOWN,
    dispatch,
    intake,
    reject_delivery,
    reject_record,
    reject_unread,
)
from hub.core.records import (
    Accepted,
    AuditEvent,
    DeadLetter,
    Delivery,
    Received,
    SourceRef,
    b64,
    decode,
    encode,
    received_key,
)
from hub.testing import PersonSpec, SubmissionSpec, make_submission
from tests import clitools

FAMILY, STREET = "Quastenhoff", "Vogelsangweg"
RECEIVED_AT = SourceRef("sozialhub.submissions.received", 1, 41)
ACCEPTED_AT = SourceRef("sozialhub.submissions.accepted", 2, 17)
VENDOR_AT = SourceRef("sozialhub.deliveries.akdn", 0, 5)
UNROUTABLE = PROJECT_ROOT / "examples" / "submissions" / "08-unroutable-bochum.xml"
ROUTABLE = PROJECT_ROOT / "examples" / "submissions" / "01-buergergeld-recklinghausen.xml"


def _invalid_submission() -> bytes:
    """Fails the payload schema at intake: a diagnosis where the birth date belongs."""
    person = PersonSpec(
        given_name="Zyprian",
        family_name=FAMILY,
        birth_date="F32.1 Depressive Episode",
        street=STREET,
        house_number="4",
        postcode="45657",
        town="Recklinghausen",
    )
    return make_submission(SubmissionSpec(persons=(person,)))


def _letter(result) -> DeadLetter:
    return decode(next(e.value for e in result.emits if e.topic == DEAD_LETTER), DeadLetter)


@dataclasses.dataclass(frozen=True)
class Case:
    letter: DeadLetter
    key: bytes
    value: bytes  # the source record as it is on the topic


@pytest.fixture(scope="module")
def xsd_case(hub_context, now) -> Case:
    received = Received.of(_invalid_submission(), "filedrop", "file", now)
    result = intake(received, RECEIVED_AT, hub_context, now)
    return Case(_letter(result), received.submission_id.encode(), encode(received))


@pytest.fixture(scope="module")
def route_case(hub_context, now) -> Case:
    received = Received.of(UNROUTABLE.read_bytes(), "filedrop", "file", now)
    first = intake(received, RECEIVED_AT, hub_context, now)
    value = next(e.value for e in first.emits if e.topic == ACCEPTED)
    result = dispatch(decode(value, Accepted), ACCEPTED_AT, hub_context, now)
    return Case(_letter(result), received.submission_id.encode(), value)


@pytest.fixture(scope="module")
def delivery_case(hub_context, now) -> Case:
    received = Received.of(ROUTABLE.read_bytes(), "filedrop", "file", now)
    first = intake(received, RECEIVED_AT, hub_context, now)
    accepted = decode(next(e.value for e in first.emits if e.topic == ACCEPTED), Accepted)
    emit = dispatch(accepted, ACCEPTED_AT, hub_context, now).emits[0]
    delivery = decode(emit.value, Delivery)
    result = reject_delivery(delivery, Rejection(Reason.DELIVERY, "target"), VENDOR_AT, now)
    return Case(_letter(result), emit.key.encode(), emit.value)


def present(case: Case, value: bytes | None = None) -> dlq.SourceState:
    return dlq.SourceState(dlq.PRESENT, 0, 100, case.key, case.value if value is None else value)


def letter_at(at: str, **changes) -> DeadLetter:
    base = DeadLetter(
        dead_letter_id="dlq-" + "a" * 32,
        submission_id="sub-" + "b" * 32,
        stage="intake",
        reason="XSD",
        path="/x",
        payload_sha256="c" * 64,
        source=RECEIVED_AT,
        at=at,
    )
    return dataclasses.replace(base, **changes)


class TestSelect:
    def test_filters_by_stage_reason_and_time(self):
        """--stage, --reason and --since each narrow the list; a naive --since is UTC."""
        early = letter_at("2026-11-01T08:00:00.000Z", dead_letter_id="dlq-" + "1" * 32)
        routed = letter_at(
            "2026-11-03T08:00:00.000Z",
            dead_letter_id="dlq-" + "2" * 32,
            stage="route",
            reason="ROUTE_UNRESOLVED",
        )
        late = letter_at("2026-11-05T08:00:00.000Z", dead_letter_id="dlq-" + "3" * 32)
        listed = dlq.collect([late, early, routed])

        def ids(selection: dlq.Filter) -> list[str]:
            return [i.letter.dead_letter_id[4] for i in dlq.select(listed, selection)]

        expected = (["1", "2", "3"], ["2"], ["1", "3"], ["2", "3"], ["3"])
        actual = (
            ids(dlq.Filter()),
            ids(dlq.Filter(stage="route")),
            ids(dlq.Filter(reason="XSD")),
            ids(dlq.Filter(since=dlq.iso_time("2026-11-03T08:00"))),
            ids(dlq.Filter(stage="intake", since=dlq.iso_time("2026-11-02"))),
        )
        assert expected == actual

    def test_one_entry_per_id_latest_record_wins(self):
        """A repeated dead-letter id is one entry with the latest record and the count of records."""
        first = letter_at("2026-11-01T08:00:00.000Z")
        again = letter_at("2026-11-04T08:00:00.000Z", source=SourceRef(RECEIVED_AT.topic, 1, 99))
        listed = dlq.collect([again, first])
        expected = [(again, 2)]
        assert expected == [(i.letter, i.records) for i in listed]

    def test_limit_keeps_the_most_recent_in_time_order(self):
        """--limit N shows the N most recent dead letters, oldest of them first."""
        letters = [
            letter_at(f"2026-11-0{d}T08:00:00.000Z", dead_letter_id=f"dlq-{d:032x}")
            for d in (3, 1, 2, 4)
        ]
        chosen = dlq.select(dlq.collect(letters), dlq.Filter(), limit=2)
        expected = ["2026-11-03T08:00:00.000Z", "2026-11-04T08:00:00.000Z"]
        assert expected == [i.letter.at for i in chosen]

    def test_unparsable_time_does_not_match_since(self):
        """A dead letter whose time cannot be read is not 'since' anything."""
        selection = dlq.Filter(since=dlq.iso_time("2000-01-01"))
        assert (False, True) == (
            selection.matches(letter_at("yesterday")),
            dlq.Filter().matches(letter_at("yesterday")),
        )

    def test_iso_time_accepts_dates_zulu_and_offsets(self):
        """Dates, Z and offsets parse; anything else is a ValueError (exit 2 in the CLI)."""
        utc = dt.UTC
        expected = [
            dt.datetime(2026, 11, 5, tzinfo=utc),
            dt.datetime(2026, 11, 5, 12, tzinfo=utc),
            dt.datetime(2026, 11, 5, 11, tzinfo=utc),
        ]
        actual = [
            dlq.iso_time("2026-11-05"),
            dlq.iso_time("2026-11-05T12:00:00.000Z"),
            dlq.iso_time("2026-11-05T12:00+01:00"),
        ]
        assert expected == actual
        with pytest.raises(ValueError):
            dlq.iso_time("last tuesday")


class TestSummary:
    def test_list_line_has_ids_stage_reason_path_time(self, xsd_case):
        """A list entry names id, submission, stage, reason, path and time, nothing else."""
        item = dlq.collect([xsd_case.letter])[0]
        letter = xsd_case.letter
        expected = {
            "dead_letter_id": letter.dead_letter_id,
            "submission_id": letter.submission_id,
            "stage": "intake",
            "reason": "XSD",
            "path": letter.path,
            "at": letter.at,
            "records": 1,
        }
        assert expected == dlq.summary(item)
        line = dlq.summary_line(item)
        assert [letter.at, letter.dead_letter_id, letter.submission_id, "intake", "XSD"] == [
            part for part in line.split() if part != letter.path
        ]

    def test_is_dead_letter_id(self):
        assert [True, False, False] == [
            dlq.is_dead_letter_id("dlq-" + "0f" * 16),
            dlq.is_dead_letter_id("dlq-" + "0F" * 16),
            dlq.is_dead_letter_id("sub-" + "0f" * 16),
        ]


class TestCheckSource:
    def test_intake_rejection_matches_its_received_record(self, xsd_case):
        """The SHA-256 over the received record's payload_b64 equals the dead letter's digest."""
        checked = dlq.check_source(xsd_case.letter, present(xsd_case))
        assert (dlq.MATCH, True, None) == (checked.digest, checked.attributed, checked.refusal)

    def test_route_rejection_matches_its_accepted_record(self, route_case):
        """A route dead letter points at submissions.accepted; its payload_b64 matches too."""
        checked = dlq.check_source(route_case.letter, present(route_case))
        expected = ("route", "ROUTE_UNRESOLVED", ACCEPTED_AT, dlq.MATCH, True)
        actual = (
            route_case.letter.stage,
            route_case.letter.reason,
            route_case.letter.source,
            checked.digest,
            checked.retryable,
        )
        assert expected == actual

    def test_other_bytes_at_the_offset_are_a_mismatch(self, xsd_case):
        """A record at the offset with other bytes (e.g. a recreated topic) is refused."""
        body = json.loads(xsd_case.value)
        body["payload_b64"] = b64(base64.b64decode(body["payload_b64"]) + b" ")
        checked = dlq.check_source(xsd_case.letter, present(xsd_case, json.dumps(body).encode()))
        assert (dlq.MISMATCH, False) == (checked.digest, checked.retryable)

    def test_a_received_record_keyed_by_its_message_id_is_its_letters(self, hub_context, now):
        """Connectors that know a transport message id key the record mid-…: still tied to its
        dead letter, and the same record under another message id's key is not."""
        message_id = "urn:de:xta:messageid:sop:7d1c0e52-5a3b-4f0e-9d41-3c2b1a0f9e88"
        received = Received.of(_invalid_submission(), "filedrop", "file", now, message_id)
        letter = _letter(intake(received, RECEIVED_AT, hub_context, now))
        key = received_key(received.submission_id, message_id).encode()
        state = dlq.SourceState(dlq.PRESENT, 0, 100, key, encode(received))
        checked = dlq.check_source(letter, state)
        assert (checked.attributed, checked.retryable) == (True, True)
        other = received_key(received.submission_id, message_id + "0").encode()
        wrong = dlq.SourceState(dlq.PRESENT, 0, 100, other, encode(received))
        assert not dlq.check_source(letter, wrong).attributed

    @pytest.mark.parametrize(
        "value", [b"not json", b"[]", b'{"type":"sozialhub.received","payload_b64":"***"}']
    )
    def test_unreadable_record_is_refused(self, xsd_case, value):
        checked = dlq.check_source(xsd_case.letter, present(xsd_case, value))
        assert (dlq.UNREADABLE, False) == (checked.digest, checked.retryable)

    @pytest.mark.parametrize("status", [dlq.EXPIRED, dlq.NO_TOPIC, dlq.BEYOND_END, dlq.NO_RECORD])
    def test_gone_record_is_refused(self, xsd_case, status):
        """A record deleted by retention (or otherwise gone) cannot be retried."""
        checked = dlq.check_source(xsd_case.letter, dlq.SourceState(status, 50, 100))
        assert (dlq.NOT_CHECKED, False) == (checked.digest, checked.retryable)
        assert "gone" in str(checked.refusal)

    def test_claimed_digest_that_does_not_fit_the_bytes_is_a_mismatch(self, hub_context, now):
        """ENVELOPE/payload_sha256: the record lies about its digest; show says so, retry refuses."""
        honest = Received.of(_invalid_submission(), "filedrop", "file", now)
        lying = dataclasses.replace(honest, payload_sha256="0" * 64)
        letter = _letter(intake(lying, RECEIVED_AT, hub_context, now))
        state = dlq.SourceState(dlq.PRESENT, 0, 100, lying.submission_id.encode(), encode(lying))
        checked = dlq.check_source(letter, state)
        assert ("ENVELOPE", "payload_sha256", dlq.MISMATCH, False) == (
            letter.reason,
            letter.path,
            checked.digest,
            checked.retryable,
        )

    def test_ingest_rejection_has_no_source_record(self, now):
        """SIZE at the inbox: the original is a file in the archive; retry refuses."""
        letter = _letter(reject_unread("d" * 64, Reason.SIZE, now))
        checked = dlq.check_source(letter, dlq.SourceState(dlq.NO_SOURCE))
        assert (None, False) == (letter.source, checked.retryable)

    def test_delivery_rejection_is_tied_by_its_delivery(self, delivery_case):
        """DELIVERY carries no digest; the delivery id in the record reproduces the dead-letter id."""
        checked = dlq.check_source(delivery_case.letter, present(delivery_case))
        assert (dlq.NOT_RECORDED, True, True) == (
            checked.digest,
            checked.attributed,
            checked.retryable,
        )

    def test_other_delivery_at_the_offset_is_refused(self, delivery_case):
        body = json.loads(delivery_case.value)
        body["delivery_id"] = "dlv-" + "e" * 32
        state = dlq.SourceState(dlq.PRESENT, 0, 9, body["delivery_id"].encode(), encode_json(body))
        checked = dlq.check_source(delivery_case.letter, state)
        assert (dlq.NOT_RECORDED, False, False) == (
            checked.digest,
            checked.attributed,
            checked.retryable,
        )

    def test_unattributable_record_is_refused(self, now):
        """A foreign record filed under sub-unknown has no digest and no owner: no retry."""
        letter = _letter(
            reject_record(b"whatever", "intake", Rejection(Reason.ENVELOPE, "json"), VENDOR_AT, now)
        )
        state = dlq.SourceState(dlq.PRESENT, 0, 9, b"whatever", b"{")
        checked = dlq.check_source(letter, state)
        assert (UNKNOWN, dlq.NOT_RECORDED, False) == (
            letter.submission_id,
            checked.digest,
            checked.retryable,
        )


def encode_json(body: dict) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def event(sid: str, event_id: str, at: str, **fields) -> AuditEvent:
    return AuditEvent(event_id, sid, fields.pop("stage", "intake"), "accepted", at, **fields)


class TestTrailAndRetry:
    def test_trail_is_the_submissions_events_once_in_time_order(self, xsd_case):
        sid = xsd_case.letter.submission_id
        later = event(sid, "aud-2", "2026-11-02T10:00:02.000Z")
        earlier = event(sid, "aud-1", "2026-11-02T10:00:01.000Z")
        other = event("sub-" + "f" * 32, "aud-3", "2026-11-02T10:00:00.000Z")
        trail = dlq.trail(xsd_case.letter, [later, other, earlier, later])
        assert ["aud-1", "aud-2"] == [e.event_id for e in trail]

    def test_unknown_trail_is_only_this_dead_letters_own_events(self, now):
        """sub-unknown gathers every unattributable record: only the own rejection and retries count."""
        own = reject_record(b"x", "intake", Rejection(Reason.ENVELOPE, "json"), VENDOR_AT, now)
        elsewhere = SourceRef(VENDOR_AT.topic, 0, 6)
        foreign = reject_record(b"x", "intake", Rejection(Reason.ENVELOPE, "json"), elsewhere, now)
        letter = _letter(own)
        audits = [
            decode(e.value, AuditEvent) for r in (own, foreign) for e in r.emits if e.topic == AUDIT
        ]
        retry = decode(dlq.retried(letter, SourceRef(VENDOR_AT.topic, 0, 7), now).value, AuditEvent)
        trail = dlq.trail(letter, [*audits, retry])
        assert [("intake", "rejected"), ("dlq", "retried")] == [
            (e.stage, e.decision) for e in trail
        ]

    def test_retried_event(self, xsd_case, now):
        """dlq/retried names the dead letter, the reason, the digest and where the record went."""
        produced = SourceRef(RECEIVED_AT.topic, 1, 57)
        emit = dlq.retried(xsd_case.letter, produced, now)
        got = decode(emit.value, AuditEvent)
        letter = xsd_case.letter
        expected = (
            AUDIT,
            letter.submission_id,
            "dlq",
            "retried",
            letter.dead_letter_id,
            "XSD",
            letter.payload_sha256,
            f"{RECEIVED_AT.topic}:1:57",
        )
        actual = (
            emit.topic,
            emit.key,
            got.stage,
            got.decision,
            got.dead_letter_id,
            got.reason,
            got.payload_sha256,
            got.path,
        )
        assert expected == actual

    def test_retried_event_id_is_per_retry(self, xsd_case, now):
        """The same retry re-sent has the same id; a second retry (new offset) has its own."""
        first = SourceRef(RECEIVED_AT.topic, 1, 57)
        second = SourceRef(RECEIVED_AT.topic, 1, 58)

        def event_id(ref: SourceRef, moment: dt.datetime) -> str:
            return decode(dlq.retried(xsd_case.letter, ref, moment).value, AuditEvent).event_id

        later = now + dt.timedelta(seconds=5)
        assert (True, False) == (
            event_id(first, now) == event_id(first, later),
            event_id(first, now) == event_id(second, now),
        )

    @pytest.mark.parametrize(
        ("topic", "stage"),
        [
            ("sozialhub.submissions.received", "intake"),
            ("sozialhub.submissions.accepted", "dispatch"),
            ("sozialhub.deliveries.akdn", "deliver"),
            ("sozialhub.fachverfahren.akdn", None),
            ("other.submissions.received", None),
        ],
    )
    def test_next_stage(self, topic, stage):
        assert stage == dlq.next_stage(topic, "sozialhub.")


class TestReport:
    def test_report_never_contains_payload(self, route_case):
        """show (JSON and text) reports digest, place and trail; no byte of the original."""
        item = dlq.collect([route_case.letter])[0]
        state = present(route_case)
        checked = dlq.check_source(route_case.letter, state)
        body = dlq.report(item, state, checked, [], "/var/archive")
        text = json.dumps(body) + "\n".join(dlq.report_lines(body))
        accepted = json.loads(route_case.value)
        fragments = ["Nowak", "Kortumstra", accepted["payload_b64"][40:80]]
        assert [] == [f for f in fragments if f in text]
        expected = (ACCEPTED_AT.topic, True, dlq.MATCH, True)
        assert expected == (
            body["source"]["topic"],
            body["source"]["present"],
            body["digest"],
            body["retryable"],
        )

    def test_ingest_report_points_at_the_oversize_archive(self, now):
        letter = _letter(reject_unread("d" * 64, Reason.SIZE, now))
        item = dlq.collect([letter])[0]
        state = dlq.SourceState(dlq.NO_SOURCE)
        body = dlq.report(item, state, dlq.check_source(letter, state), [], "/srv/archive")
        assert (None, "/srv/archive/oversize/sha256-" + "d" * 64, False) == (
            body["source"],
            body["original_file"],
            body["retryable"],
        )
        assert "source        none" in dlq.report_lines(body)


@pytest.fixture
def clean_cli(monkeypatch):
    """No machine SOZIALHUB_*/KAFKA_* settings; main()'s logging configuration undone."""
    with clitools.isolated(monkeypatch):
        yield monkeypatch


class TestCommandGuards:
    def test_without_a_cluster_says_so(self, clean_cli, capsys):
        """No KAFKA_BOOTSTRAP_SERVERS: nothing to inspect (the embedded broker is in memory), exit 2."""
        status = cli.main(["dlq", "list"])
        err = capsys.readouterr().err
        assert (2, True) == (status, "KAFKA_BOOTSTRAP_SERVERS is not set" in err)

    def test_malformed_id_is_a_usage_error(self, clean_cli, capsys):
        clean_cli.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        assert 2 == cli.main(["dlq", "show", "dlq-XYZ"])

    def test_retry_without_terminal_needs_yes(self, clean_cli, capsys):
        """Not a TTY and no --yes: refused before any Kafka call (the bootstrap server is unreachable)."""
        clean_cli.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        clean_cli.setattr("sys.stdin.isatty", lambda: False)
        status = cli.main(["dlq", "retry", "dlq-" + "0" * 32])
        assert (2, True) == (status, "--yes" in capsys.readouterr().err)

    @pytest.mark.parametrize("argv", [["--since", "soon"], ["--limit", "0"]])
    def test_bad_list_options_are_usage_errors(self, clean_cli, argv):
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["dlq", "list", *argv])
        assert 2 == exit_info.value.code
