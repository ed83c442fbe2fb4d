"""Consent records: building and validating events, folding a life cycle, JSON and the schemas."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import random

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from referencing import Registry, Resource

from hub.config import PROJECT_ROOT
from hub.core import consent
from hub.core.consent import EventKind, Status
from hub.core.errors import Reason, Rejection
from hub.core.transfer import CATEGORIES, PURPOSES, SPECIAL_CATEGORIES
from tests.consent_support import ALICE, BOB, DAY, T0, granted

SCHEMAS = PROJECT_ROOT / "schemas" / "consent"
EVENT_SCHEMA = json.loads((SCHEMAS / "consent-event-1.schema.json").read_text("utf-8"))
LEDGER_SCHEMA = json.loads((SCHEMAS / "consent-ledger-1.schema.json").read_text("utf-8"))
REGISTRY = Registry().with_resource(EVENT_SCHEMA["$id"], Resource.from_contents(EVENT_SCHEMA))
EVENT_VALIDATOR = jsonschema.Draft202012Validator(EVENT_SCHEMA)
LEDGER_VALIDATOR = jsonschema.Draft202012Validator(LEDGER_SCHEMA, registry=REGISTRY)


def invalid_path(build) -> str | None:
    """The path of the CONSENT_INVALID rejection ``build()`` raises."""
    with pytest.raises(Rejection) as info:
        build()
    assert Reason.CONSENT_INVALID == info.value.reason
    return info.value.path


class TestGrant:
    def test_ids_are_deterministic(self):
        """The same grant built twice has the same record and event ids, shaped cns-/cev-."""
        one, other = granted(), granted()
        expected = (one.record_id, one.event_id, True, True)
        actual = (
            other.record_id,
            other.event_id,
            consent.RECORD_ID.fullmatch(one.record_id) is not None,
            consent.EVENT_ID.fullmatch(one.event_id) is not None,
        )
        assert expected == actual

    def test_every_field_is_in_the_record_id(self):
        """Any difference in what was granted gives another record id."""
        base = granted()
        variants = [
            granted(person=BOB),
            granted(recipients=["wgs-marl"]),
            granted(purpose="joint-case-management"),
            granted(categories=["income"]),
            granted(text_version="rkw-2026-02"),
            granted(channel="oral", note="by telephone"),
            granted(collected_at=T0 + DAY),
            granted(valid_from=T0 + DAY),
            granted(valid_until=T0 + 30 * DAY),
        ]
        ids = {v.record_id for v in variants} | {base.record_id}
        assert len(variants) + 1 == len(ids)

    def test_times_are_utc_milliseconds(self):
        """Local times become UTC, cut to the millisecond; valid_from defaults to collection time."""
        local = dt.datetime(2026, 3, 2, 11, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        event = granted(collected_at=local)
        expected = (T0.replace(microsecond=123000),) * 3
        assert event.record is not None
        assert expected == (event.record.collected_at, event.record.valid_from, event.effective_at)

    def test_repr_hides_scan_reference_and_note(self):
        """Free text and document references never show in a repr."""
        paper = granted(channel="paper", scan_ref="dms:4711-secret", note="note-secret")
        assert "secret" not in repr(paper)


class TestBlanketConsentIsInvalid:
    @pytest.mark.parametrize(
        ("changes", "path"),
        [
            ({"recipients": []}, "record/recipients"),
            ({"recipients": [f"office-{i}" for i in range(11)]}, "record/recipients"),
            ({"recipients": ["soa-marl"]}, "record/recipients"),
            ({"recipients": ["*"]}, "record/recipients"),
            ({"purpose": "all"}, "record/purpose"),
            ({"purpose": ""}, "record/purpose"),
            ({"categories": []}, "record/categories"),
            ({"categories": ["everything"]}, "record/categories"),
            ({"granting_office": "Soa Marl"}, "record/granting_office"),
            ({"text_version": ""}, "record/text_version"),
        ],
    )
    def test_scope_rules(self, changes, path):
        """Named recipients (1 to 10, not the sender), one known purpose, known categories."""
        assert path == invalid_path(lambda: granted(**changes))

    def test_ten_recipients_are_allowed(self):
        """The limit is ten named offices."""
        assert 10 == len(granted(recipients=[f"office-{i}" for i in range(10)]).record.recipients)


class TestSpecialCategories:
    def test_special_category_needs_the_sensitive_flag(self):
        """Health or youth-welfare data in a consent needs sensitive=True (explicit consent)."""
        for category in sorted(SPECIAL_CATEGORIES):
            assert "record/sensitive" == invalid_path(
                lambda c=category: granted(categories=["income", c])
            )
            assert granted(categories=["income", category], sensitive=True).record.sensitive

    def test_flag_without_special_category_is_invalid(self):
        """The flag means exactly: a special category is named."""
        assert "record/sensitive" == invalid_path(lambda: granted(sensitive=True))


class TestCollection:
    @pytest.mark.parametrize(
        ("changes", "path"),
        [
            ({"channel": "email"}, "record/collection/channel"),
            ({"channel": "paper"}, "record/collection/scan_ref"),
            ({"channel": "portal", "scan_ref": "dms:1"}, "record/collection/scan_ref"),
            ({"channel": "paper", "scan_ref": "../etc/passwd"}, "record/collection/scan_ref"),
            ({"channel": "oral"}, "record/collection/note"),
            ({"channel": "oral", "note": "   "}, "record/collection/note"),
            ({"channel": "oral", "note": "line\nbreak"}, "record/collection/note"),
            ({"channel": "oral", "note": "x" * 501}, "record/collection/note"),
        ],
    )
    def test_channel_rules(self, changes, path):
        """Paper needs a scan reference (and only paper has one); oral needs a note."""
        assert path == invalid_path(lambda: granted(**changes))

    def test_valid_channels(self):
        """Portal alone, paper with scan reference, oral with note are all valid."""
        built = [
            granted(channel="portal"),
            granted(channel="paper", scan_ref="dms:soa-marl:2026/0412"),
            granted(channel="oral", note="Given by telephone; text rkw-2026-01 read out"),
        ]
        assert ["portal", "paper", "oral"] == [e.record.collection.channel for e in built]


class TestValidityWindow:
    @pytest.mark.parametrize(
        ("changes", "path"),
        [
            ({"valid_from": T0 - DAY}, "record/valid_from"),
            ({"valid_from": T0 + 367 * DAY}, "record/valid_from"),
            ({"valid_until": T0}, "record/valid_until"),
            ({"valid_until": T0 - DAY}, "record/valid_until"),
            ({"valid_until": T0 + 3654 * DAY}, "record/valid_until"),
            ({"recorded_at": T0 - DAY}, "recorded_at"),
            ({"collected_at": T0.replace(tzinfo=None)}, "collected_at"),
        ],
    )
    def test_window_rules(self, changes, path):
        """Never retroactive, at most a year ahead, ends after it starts, within ten years."""
        assert path == invalid_path(lambda: granted(**changes))


class TestOtherEvents:
    def test_revoke_needs_a_documented_channel(self):
        """A revocation says how it was declared, with the same channel rules as a grant."""
        g = granted()
        assert "collection/note" == invalid_path(
            lambda: consent.revoke(
                person=ALICE, record_id=g.record_id, effective_at=T0 + DAY, channel="oral"
            )
        )

    def test_supersede_needs_a_grant_and_another_record(self):
        """A successor is a grant of another record."""
        g = granted()
        revocation = consent.revoke(
            person=ALICE, record_id=g.record_id, effective_at=T0, channel="portal"
        )
        expected = ["superseded_by", "superseded_by"]
        actual = [
            invalid_path(lambda: consent.supersede(g.record_id, revocation)),
            invalid_path(lambda: consent.supersede(g.record_id, g)),
        ]
        assert expected == actual

    def test_supersede_takes_effect_when_the_new_grant_does(self):
        """The old record ends at the new record's valid_from."""
        new = granted(categories=["income"], valid_from=T0 + 5 * DAY)
        event = consent.supersede(granted().record_id, new)
        expected = (EventKind.SUPERSEDED, T0 + 5 * DAY, new.record_id)
        assert expected == (event.kind, event.effective_at, event.superseded_by)

    def test_hand_made_event_with_wrong_id_is_invalid(self):
        """validate() recomputes the event id."""
        forged = dataclasses.replace(granted(), event_id="cev-" + "0" * 32)
        assert "event_id" == invalid_path(lambda: consent.validate(forged))

    def test_grant_for_another_person_is_invalid(self):
        """The event's person and its record's person are the same."""
        g = granted()
        forged = dataclasses.replace(g, person=BOB)
        assert "record" == invalid_path(lambda: consent.validate(forged))


def _life_cycle() -> tuple[consent.ConsentEvent, ...]:
    """Two grants (the second supersedes the first at T0+10d) and a revocation of the second."""
    first = granted()
    second = granted(categories=["income"], valid_from=T0 + 10 * DAY)
    return (
        first,
        second,
        consent.supersede(first.record_id, second),
        consent.revoke(
            person=ALICE,
            record_id=second.record_id,
            effective_at=T0 + 20 * DAY,
            channel="paper",
            scan_ref="dms:widerruf-1",
        ),
    )


class TestFold:
    def test_life_cycle(self):
        """Each record's status over time: valid, then superseded; pending, valid, then revoked."""
        first, second, *_ = _life_cycle()
        states = consent.fold(_life_cycle())
        expected = [
            (Status.VALID, Status.NOT_YET_VALID),
            (Status.SUPERSEDED, Status.VALID),
            (Status.SUPERSEDED, Status.REVOKED),
        ]
        actual = [
            (states[first.record_id].status(t), states[second.record_id].status(t))
            for t in (T0 + DAY, T0 + 10 * DAY, T0 + 20 * DAY)
        ]
        assert expected == actual

    def test_order_and_duplicates_do_not_matter(self):
        """Every permutation, with duplicates, folds to the same states."""
        events = _life_cycle()
        expected = consent.fold(events)
        for order in itertools.permutations(events):
            assert expected == consent.fold((*order, order[0], order[-1]))

    def test_revocation_before_grant_applies_when_the_grant_arrives(self):
        """A revocation that arrives first is kept; the late grant is revoked from its time on."""
        g = granted()
        revocation = consent.revoke(
            person=ALICE, record_id=g.record_id, effective_at=T0 + 3 * DAY, channel="portal"
        )
        alone = consent.fold([revocation])[g.record_id]
        both = consent.fold([revocation, g])[g.record_id]
        expected = (Status.UNKNOWN, Status.VALID, Status.REVOKED)
        assert expected == (
            alone.status(T0 + DAY),
            both.status(T0 + DAY),
            both.status(T0 + 3 * DAY),
        )

    def test_revocation_is_final_and_the_earliest_counts(self):
        """A later revocation does not move the end; a grant re-sent after it does not revive it."""
        g = granted()
        late = consent.revoke(
            person=ALICE, record_id=g.record_id, effective_at=T0 + 9 * DAY, channel="portal"
        )
        early = consent.revoke(
            person=ALICE, record_id=g.record_id, effective_at=T0 + 2 * DAY, channel="portal"
        )
        state = consent.fold([g, late, early, g])[g.record_id]
        expected = (T0 + 2 * DAY, Status.REVOKED)
        assert expected == (state.revoked_at, state.status(T0 + 5 * DAY))

    def test_validity_is_half_open(self):
        """Valid from valid_from inclusive to valid_until exclusive; expiry events end it earlier."""
        g = granted(valid_until=T0 + 10 * DAY)
        ended = consent.expire(person=ALICE, record_id=g.record_id, effective_at=T0 + 4 * DAY)
        plain = consent.fold([g])[g.record_id]
        early = consent.fold([g, ended])[g.record_id]
        expected = [True, True, False, True, False]
        actual = [
            consent.valid_at(plain, T0),
            consent.valid_at(plain, T0 + 10 * DAY - dt.timedelta(milliseconds=1)),
            consent.valid_at(plain, T0 + 10 * DAY),
            consent.valid_at(early, T0 + 4 * DAY - dt.timedelta(milliseconds=1)),
            consent.valid_at(early, T0 + 4 * DAY),
        ]
        assert expected == actual
        assert Status.EXPIRED == early.status(T0 + 5 * DAY)

    def test_conflicting_grants_are_never_valid(self):
        """Two different grants under one record id make the record unusable (fail closed)."""
        g = granted()
        assert g.record is not None
        other_record = dataclasses.replace(g.record, text_version="forged")
        other = dataclasses.replace(g, record=other_record)
        state = consent.fold([g, other])[g.record_id]
        expected = (True, Status.UNKNOWN)
        assert expected == (state.conflict, state.status(T0 + DAY))

    def test_successor_is_deterministic(self):
        """Two supersessions: the earliest effective one wins, whatever the order."""
        old = granted()
        a = granted(categories=["income"], valid_from=T0 + 5 * DAY)
        b = granted(categories=["identity-address"], valid_from=T0 + 3 * DAY)
        events = [
            old,
            a,
            b,
            consent.supersede(old.record_id, a),
            consent.supersede(old.record_id, b),
        ]
        states = {
            consent.fold(random.Random(seed).sample(events, len(events)))[old.record_id]
            for seed in range(5)
        }
        expected = {(T0 + 3 * DAY, b.record_id)}
        assert expected == {(s.superseded_at, s.superseded_by) for s in states}

    def test_fold_validates(self):
        """A hand-made invalid event stops the fold with CONSENT_INVALID."""
        forged = dataclasses.replace(granted(), person="86095742719")
        assert "person" == invalid_path(lambda: consent.fold([forged]))

    def test_naive_time_is_a_programming_error(self):
        """status() needs an aware time."""
        state = consent.fold([granted()])[granted().record_id]
        with pytest.raises(ValueError, match="timezone"):
            state.status(dt.datetime(2026, 3, 3))  # noqa: DTZ001 - the point of the test


class TestJson:
    def test_round_trip(self):
        """Every event of a life cycle decodes to itself."""
        events = _life_cycle()
        expected = list(events)
        assert expected == [consent.decode_event(consent.encode_event(e)) for e in events]

    def test_compact_sorted_json(self):
        """Values are compact, sorted JSON with type and v, like every hub record."""
        data = consent.encode_event(granted())
        body = json.loads(data)
        expected = (data, "sozialhub.consent-event", 1)
        actual = (
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
            body["type"],
            body["v"],
        )
        assert expected == actual

    def test_unknown_fields_are_ignored(self):
        """A newer producer may add fields within a major version."""
        body = consent.event_to_json(granted())
        body["future"] = {"x": 1}
        assert granted() == consent.event_from_json(body)

    @pytest.mark.parametrize(
        ("data", "reason", "path"),
        [
            (b"not json", Reason.ENVELOPE, "json"),
            (b"NaN", Reason.ENVELOPE, "json"),
            (b'{"type": "sozialhub.audit", "v": 1}', Reason.ENVELOPE, "type"),
            (b'{"type": "sozialhub.consent-event", "v": 2}', Reason.ENVELOPE, "type"),
        ],
    )
    def test_not_an_event(self, data, reason, path):
        """Bytes that are not a v1 consent event are ENVELOPE."""
        with pytest.raises(Rejection) as info:
            consent.decode_event(data)
        assert (reason, path) == (info.value.reason, info.value.path)

    @pytest.mark.parametrize(
        ("change", "path"),
        [
            (("kind", "withdrawn"), "kind"),
            (("recorded_at", "2026-03-02T10:00:00Z"), "recorded_at"),
            (("person", "86095742719"), "person"),
            (("record", "yes"), "record"),
            (("event_id", 7), "event_id"),
        ],
    )
    def test_invalid_event(self, change, path):
        """Shape errors inside an event are CONSENT_INVALID at the field, never echoing the value."""
        body = consent.event_to_json(granted())
        body[change[0]] = change[1]
        with pytest.raises(Rejection) as info:
            consent.event_from_json(body)
        assert (Reason.CONSENT_INVALID, path) == (info.value.reason, info.value.path)
        assert "86095742719" not in str(info.value)

    def test_record_fields_are_checked_on_decode(self):
        """A decoded record keeps every rule: here a blanket recipient list."""
        body = consent.event_to_json(granted())
        body["record"]["recipients"] = []
        assert "record/recipients" == invalid_path(lambda: consent.event_from_json(body))


class TestLedger:
    def test_append_is_idempotent_and_order_free(self):
        """Appending in any order, with repeats, gives the same ledger bytes."""
        events = _life_cycle()
        ledgers = set()
        for order in itertools.permutations(events):
            ledger = None
            for event in (*order, order[0]):
                ledger = consent.append(ledger, event)
            ledgers.add(ledger)
        assert 1 == len(ledgers)

    def test_round_trip(self):
        """A ledger decodes to its person and its events (in event id order)."""
        events = _life_cycle()
        data = consent.encode_ledger(ALICE, events)
        expected = (ALICE, sorted(events, key=lambda e: e.event_id))
        person, decoded = consent.decode_ledger(data)
        assert expected == (person, list(decoded))

    def test_decode_any(self):
        """An export line may be one event or a whole ledger."""
        events = _life_cycle()
        expected = ((events[0],), tuple(sorted(events, key=lambda e: e.event_id)))
        actual = (
            consent.decode_any(consent.encode_event(events[0])),
            consent.decode_any(consent.encode_ledger(ALICE, events)),
        )
        assert expected == actual

    def test_one_person_per_ledger(self):
        """Another person's event does not enter a ledger."""
        ledger = consent.encode_ledger(ALICE, [granted()])
        with pytest.raises(Rejection):
            consent.append(ledger, granted(person=BOB))
        with pytest.raises(Rejection):
            consent.encode_ledger(BOB, [granted()])

    def test_rekey_keeps_ids(self):
        """After key rotation the events move to the new pseudonym with the same ids and states."""
        events = _life_cycle()
        new = "psn-k2-" + "c" * 32
        moved = consent.rekey(events, new)
        before, after = consent.fold(events), consent.fold(moved)
        expected = (sorted(before), True)
        actual = (
            sorted(after),
            all(
                after[r].person == new and after[r].revoked_at == before[r].revoked_at
                for r in after
            ),
        )
        assert expected == actual
        assert consent.decode_ledger(consent.encode_ledger(new, moved))[0] == new


# --- schemas ------------------------------------------------------------------------------------

_times = st.datetimes(
    min_value=dt.datetime(2020, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=dt.datetime(2030, 1, 1),  # noqa: DTZ001
    timezones=st.just(dt.UTC),
)
_offices = st.sampled_from(["soa-marl", "jc-re-marl", "wgs-marl", "kreis-re-fd59", "but-marl"])


@st.composite
def grants(draw: st.DrawFn) -> consent.ConsentEvent:
    office = draw(_offices)
    recipients = draw(st.sets(_offices.filter(lambda o: o != office), min_size=1))
    categories = draw(st.sets(st.sampled_from(sorted(CATEGORIES)), min_size=1))
    channel = draw(st.sampled_from(sorted(consent.CHANNELS)))
    collected = draw(_times)
    lead = draw(st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=300)))
    length = draw(
        st.none()
        | st.timedeltas(min_value=dt.timedelta(seconds=1), max_value=dt.timedelta(days=3000))
    )
    return consent.grant(
        person=draw(st.sampled_from([ALICE, BOB])),
        granting_office=office,
        recipients=recipients,
        purpose=draw(st.sampled_from(sorted(PURPOSES))),
        categories=categories,
        text_version=draw(st.from_regex(r"[a-z0-9][a-z0-9.-]{0,10}", fullmatch=True)),
        channel=channel,
        scan_ref="dms:" + draw(st.from_regex(r"[0-9]{1,6}", fullmatch=True))
        if channel == "paper"
        else None,
        note=draw(
            st.text(st.characters(categories=["L", "N", "Zs"]), min_size=1, max_size=40).filter(
                str.strip
            )
        )
        if channel == "oral"
        else None,
        sensitive=bool(categories & SPECIAL_CATEGORIES),
        collected_at=collected,
        valid_from=collected + lead,
        valid_until=None if length is None else collected + lead + length,
    )


@st.composite
def events(draw: st.DrawFn) -> consent.ConsentEvent:
    g = draw(grants())
    kind = draw(st.sampled_from(list(EventKind)))
    when = draw(_times)
    if kind is EventKind.REVOKED:
        return consent.revoke(
            person=g.person, record_id=g.record_id, effective_at=when, channel="portal"
        )
    if kind is EventKind.EXPIRED:
        return consent.expire(person=g.person, record_id=g.record_id, effective_at=when)
    if kind is EventKind.SUPERSEDED:
        newer = draw(grants().filter(lambda n: n.record_id != g.record_id))
        return consent.supersede(g.record_id, dataclasses.replace(newer))
    return g


class TestSchema:
    @settings(max_examples=150, deadline=None)
    @given(events())
    def test_every_built_event_validates(self, event):
        """Every event the builders make validates against the published schema and round-trips."""
        body = json.loads(consent.encode_event(event))
        EVENT_VALIDATOR.validate(body)
        assert event == consent.decode_event(consent.encode_event(event))

    def test_ledger_validates(self):
        """A ledger validates against its schema, which references the event schema."""
        LEDGER_VALIDATOR.validate(json.loads(consent.encode_ledger(ALICE, _life_cycle())))

    def test_code_lists_agree(self):
        """Purposes, categories, channels, kinds and special categories: the schema's are the code's."""
        defs = EVENT_SCHEMA["$defs"]
        special = defs["record"]["if"]["properties"]["categories"]["contains"]["enum"]
        assert sorted(SPECIAL_CATEGORIES) == sorted(special)
        expected = (
            sorted(PURPOSES),
            sorted(CATEGORIES),
            sorted(consent.CHANNELS),
            sorted(EventKind),
        )
        actual = (
            sorted(defs["purpose"]["enum"]),
            sorted(defs["category"]["enum"]),
            sorted(defs["collection"]["properties"]["channel"]["enum"]),
            sorted(EVENT_SCHEMA["properties"]["kind"]["enum"]),
        )
        assert expected == actual

    def test_limits_agree(self):
        """The schema's recipient and note limits are the code's."""
        record = EVENT_SCHEMA["$defs"]["record"]["properties"]
        note = EVENT_SCHEMA["$defs"]["collection"]["properties"]["note"]
        expected = (consent.MAX_RECIPIENTS, consent.MAX_NOTE)
        assert expected == (record["recipients"]["maxItems"], note["maxLength"])

    @pytest.mark.parametrize(
        "mutate",
        [
            lambda b: b["record"].update(recipients=[]),
            lambda b: b["record"].update(purpose="all"),
            lambda b: b["record"].update(categories=[]),
            lambda b: b.update(collection={"channel": "portal", "scan_ref": None, "note": None}),
            lambda b: b["record"]["collection"].update(channel="paper"),
            lambda b: b.update(person="86095742719"),
            lambda b: b["record"].update(categories=["health"]),  # without the sensitive flag
            lambda b: b["record"].update(sensitive=True),  # the flag without a special category
        ],
    )
    def test_schema_refuses_what_the_code_refuses(self, mutate):
        """Blanket consents, a revocation's fields on a grant, paper without scan, raw ids: both refuse."""
        body = consent.event_to_json(granted())
        mutate(body)
        assert not EVENT_VALIDATOR.is_valid(body)
        with pytest.raises(Rejection):
            consent.event_from_json(body)
