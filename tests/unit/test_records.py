"""Internal topic records: JSON envelopes that round-trip, and deterministic opaque ids."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import itertools
import json
import re

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core.errors import Reason, Rejection
from hub.core.records import (
    Accepted,
    AuditEvent,
    DeadLetter,
    Delivery,
    PortalReceipt,
    Received,
    Seen,
    SourceRef,
    audit_event_id,
    b64,
    dead_letter_id,
    decode,
    delivery_id,
    encode,
    submission_id,
    timestamp,
    unb64,
)

RECORD_TYPES = [Received, Accepted, Delivery, DeadLetter, AuditEvent, Seen, PortalReceipt]
ID = re.compile(r"[a-z]{3}-[0-9a-f]{32}")  # the fv-xml Id pattern, also used as Kafka keys

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
SOURCE_REFS = st.builds(
    SourceRef,
    topic=st.text(max_size=40),
    partition=st.integers(0, 2**31),
    offset=st.integers(0, 2**62),
)


def strategy_for(type_text: str) -> st.SearchStrategy:
    """A value strategy from a field's annotation text (the module uses postponed annotations)."""
    optional = type_text.endswith(" | None")
    base = type_text.removesuffix(" | None")
    strategies = {
        "str": st.text(),
        "int": st.integers(),
        "float": st.floats(allow_nan=False, allow_infinity=False),
        "bool": st.booleans(),
        "dict[str, Any]": st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=6),
        "SourceRef": SOURCE_REFS,
        "list[str]": st.lists(st.text(), max_size=4),
        "list[dict[str, Any]]": st.lists(
            st.dictionaries(st.text(max_size=12), JSON_VALUES, max_size=4), max_size=3
        ),
    }
    strategy = strategies[base]
    return st.none() | strategy if optional else strategy


HEX32 = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32)
ID_STRATEGIES = {
    "submission_id": HEX32.map(lambda h: "sub-" + h),
    "delivery_id": HEX32.map(lambda h: "dlv-" + h),
}


def records(cls: type) -> st.SearchStrategy:
    """Any instance of a record class, driven by its declared fields (new fields included).

    Id fields get well-formed ids: decode() refuses anything else (see TestIdValidation).
    """
    fields = dataclasses.fields(cls)
    strategies = {f.name: strategy_for(str(f.type)) for f in fields}
    for f in fields:
        if f.name in ID_STRATEGIES:
            optional = str(f.type).endswith(" | None")
            strategies[f.name] = (
                st.none() | ID_STRATEGIES[f.name] if optional else ID_STRATEGIES[f.name]
            )
    return st.builds(cls, **strategies)


def assert_envelope_rejected(data: bytes, cls: type) -> None:
    with pytest.raises(Rejection) as caught:
        decode(data, cls)
    expected = Reason.ENVELOPE
    assert expected == caught.value.reason


class TestRoundTrip:
    @pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
    @hypothesis.settings(max_examples=40, deadline=None)
    @given(data=st.data())
    def test_encode_then_decode_is_identity(self, cls, data):
        """Every record type decodes to an equal record after encoding."""
        record = data.draw(records(cls))
        assert record == decode(encode(record), cls)

    @pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
    def test_envelope_carries_type_and_major_version(self, cls):
        """The JSON body names the record type and major version 1."""
        record = _sample(cls)
        body = json.loads(encode(record))
        expected = (cls.TYPE, 1)
        assert expected == (body["type"], body["v"])

    @pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
    def test_encoding_is_deterministic_and_compact(self, cls):
        """The same record always encodes to the same bytes: sorted keys, no spaces."""
        record = _sample(cls)
        expected = json.dumps(
            json.loads(encode(record)), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
        assert expected == encode(record)

    def test_dead_letter_without_source(self):
        """A dead letter whose source is unknown round-trips with source None."""
        letter = _sample(DeadLetter, source=None)
        assert letter == decode(encode(letter), DeadLetter)

    def test_non_ascii_text_is_kept_verbatim(self):
        """Umlauts and emoji travel as UTF-8, not as escapes, and come back unchanged."""
        record = _sample(AuditEvent, path="/person/Straße/😀")
        assert "Straße/😀".encode() in encode(record)
        assert record == decode(encode(record), AuditEvent)


def _sample(cls: type, **changes):
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in ("submission_id", "delivery_id"):
            values[f.name] = (
                f.name[:3].replace("sub", "sub").replace("del", "dlv") + "-" + "ab" * 16
            )
            continue
        base = str(f.type).removesuffix(" | None")
        values[f.name] = {
            "str": f"{f.name}-value",
            "int": 7,
            "dict[str, Any]": {"k": ["v", 1, None]},
            "list[str]": [f"{f.name}-1", f"{f.name}-2"],
            "list[dict[str, Any]]": [{"filename": "a.pdf", "size": 3}],
            "SourceRef": SourceRef("sozialhub.submissions.received", 3, 42),
        }[base]
    return cls(**{**values, **changes})


class TestDecodeRejects:
    @pytest.mark.parametrize(
        "data",
        [b"", b"{", b"not json", b"\xff\xfe", b"[]", b"null", b'"text"', b"42"],
        ids=["empty", "truncated", "text", "not-utf8", "list", "null", "string", "number"],
    )
    @pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
    def test_bad_json(self, cls, data):
        """Bytes that are not a JSON object are ENVELOPE."""
        assert_envelope_rejected(data, cls)

    @pytest.mark.parametrize(
        ("cls", "other"),
        list(itertools.permutations(RECORD_TYPES, 2)),
        ids=lambda c: c.__name__,
    )
    def test_wrong_type(self, cls, other):
        """A record of one type decoded as another is ENVELOPE."""
        assert_envelope_rejected(encode(_sample(other)), cls)

    @pytest.mark.parametrize("version", [None, 0, 2, "1"])
    def test_wrong_or_missing_version(self, version):
        """A major version other than 1, or none, is ENVELOPE."""
        body = json.loads(encode(_sample(Received)))
        body["v"] = version
        if version is None:
            del body["v"]
        assert_envelope_rejected(json.dumps(body).encode(), Received)

    def test_missing_type(self):
        """A body without a type is ENVELOPE."""
        body = json.loads(encode(_sample(Received)))
        del body["type"]
        assert_envelope_rejected(json.dumps(body).encode(), Received)

    @pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
    def test_missing_field(self, cls):
        """Dropping any single field of any record type is ENVELOPE."""
        encoded = json.loads(encode(_sample(cls)))
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                continue
            body = {k: v for k, v in encoded.items() if k != f.name}
            assert_envelope_rejected(json.dumps(body).encode(), cls)

    @pytest.mark.parametrize("cls", RECORD_TYPES, ids=lambda c: c.__name__)
    def test_unknown_field_is_ignored(self, cls):
        """A field added by a newer producer (same major version) is ignored, not an error."""
        record = _sample(cls)
        body = json.loads(encode(record))
        body["surprise"] = "x"
        assert record == decode(json.dumps(body).encode(), cls)

    @pytest.mark.parametrize(
        "source",
        [
            {"topic": "t"},
            {"topic": "t", "partition": 0, "offset": 1, "x": 2},
            "t:0:1",
            5,
            ["t", 0, 1],
        ],
        ids=["missing-fields", "extra-field", "string", "number", "list"],
    )
    def test_malformed_dead_letter_source(self, source):
        """A dead letter whose source reference is malformed is ENVELOPE, not a crash."""
        body = json.loads(encode(_sample(DeadLetter)))
        body["source"] = source
        assert_envelope_rejected(json.dumps(body).encode(), DeadLetter)

    @pytest.mark.parametrize("text", ["not base64!", "YQ", "YQ==\n", 5, None])
    def test_unb64_rejects_bad_base64(self, text):
        """Payload bytes that are not strict base64 are ENVELOPE."""
        with pytest.raises(Rejection) as caught:
            unb64(text)
        expected = Reason.ENVELOPE
        assert expected == caught.value.reason

    @given(st.binary(max_size=512))
    def test_b64_round_trip(self, data):
        """b64 and unb64 are inverse on any bytes."""
        assert data == unb64(b64(data))


class TestIds:
    @given(st.binary(max_size=256))
    def test_submission_id_is_content_addressed(self, original):
        """The submission id is 'sub-' plus the first 32 hex digits of the SHA-256 of the bytes."""
        expected = "sub-" + hashlib.sha256(original).hexdigest()[:32]
        assert expected == submission_id(original)

    @given(st.binary(max_size=64), st.binary(max_size=64))
    def test_different_bytes_different_submission_id(self, a, b):
        """Different original bytes get different submission ids."""
        hypothesis.assume(a != b)
        assert submission_id(a) != submission_id(b)

    def test_one_byte_changes_the_submission_id(self):
        """Even a trailing newline makes a different submission."""
        assert submission_id(b"<x/>") != submission_id(b"<x/>\n")

    def test_delivery_id_is_deterministic(self):
        """The same submission, office and mapping version always give the same delivery id."""
        sid = submission_id(b"<x/>")
        expected = delivery_id(sid, "wgs-marl", "fv-xml/1.0.0")
        assert expected == delivery_id(sid, "wgs-marl", "fv-xml/1.0.0")

    def test_delivery_id_differs_per_office_version_and_submission(self):
        """Changing the office, the mapping version or the submission changes the delivery id."""
        sid, other = submission_id(b"<x/>"), submission_id(b"<y/>")
        ids = {
            delivery_id(sid, "wgs-marl", "fv-xml/1.0.0"),
            delivery_id(sid, "soa-marl", "fv-xml/1.0.0"),
            delivery_id(sid, "wgs-marl", "fv-xml/1.1.0"),
            delivery_id(other, "wgs-marl", "fv-xml/1.0.0"),
        }
        expected = 4
        assert expected == len(ids)

    def test_field_separator_prevents_concatenation_collisions(self):
        """('ab', 'c') and ('a', 'bc') are different inputs and get different ids."""
        assert delivery_id("sub-ab", "c", "v") != delivery_id("sub-a", "bc", "v")

    def test_dead_letter_and_audit_ids_are_deterministic_and_distinct(self):
        """Dead-letter and audit ids depend only on inputs and differ per stage/decision/target."""
        sid = submission_id(b"<x/>")
        assert dead_letter_id(sid, "intake") == dead_letter_id(sid, "intake")
        assert dead_letter_id(sid, "intake") != dead_letter_id(sid, "route")
        events = {
            audit_event_id(sid, "intake", "accepted"),
            audit_event_id(sid, "intake", "rejected"),
            audit_event_id(sid, "route", "routed", "dlv-1"),
            audit_event_id(sid, "route", "routed", "dlv-2"),
        }
        expected = 4
        assert expected == len(events)

    @given(st.binary(max_size=64), st.text(max_size=20), st.text(max_size=20))
    def test_every_id_has_the_opaque_key_shape(self, original, office, stage):
        """Every id is a 3-letter prefix and 32 lower-case hex digits: no input leaks into keys."""
        sid = submission_id(original)
        for value in (
            sid,
            delivery_id(sid, office, "fv-xml/1.0.0"),
            dead_letter_id(sid, stage),
            audit_event_id(sid, stage, "rejected", office),
        ):
            assert ID.fullmatch(value), value


class TestReceivedOf:
    def test_received_of_records_the_bytes_and_their_digest(self):
        """Received.of keeps the bytes (base64), their SHA-256, content id and a UTC timestamp."""
        original = "<ä/>".encode()
        now = dt.datetime(2026, 11, 2, 11, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=1)))
        record = Received.of(original, "filedrop-1", "file", now)
        expected = Received(
            submission_id=submission_id(original),
            source="filedrop-1",
            transport="file",
            received_at="2026-11-02T10:00:00.123Z",
            payload_b64=base64.b64encode(original).decode("ascii"),
            payload_sha256=hashlib.sha256(original).hexdigest(),
        )
        assert expected == record

    def test_timestamp_is_utc_with_milliseconds(self):
        """timestamp() renders any aware datetime as UTC, millisecond precision, 'Z' suffix."""
        zone = dt.timezone(dt.timedelta(hours=2))
        moment = dt.datetime(2026, 3, 29, 3, 30, 0, 999999, tzinfo=zone)
        expected = "2026-03-29T01:30:00.999Z"
        assert expected == timestamp(moment)


class TestIdValidation:
    @pytest.mark.parametrize(
        "bad",
        [
            "sub-" + "ä" * 32,
            "sub-" + "A" * 32,
            "sub-123",
            "dlv-" + "0" * 32,  # a delivery id where a submission id belongs
            "dlv-" + "0" * 31 + "g",
            "../../etc/passwd",
            5,
            "",
        ],
    )
    def test_malformed_submission_id_is_envelope(self, bad):
        """An id that is not what the hub makes (non-ASCII, wrong length, path) is refused, never used as a key."""
        body = json.loads(encode(_sample(Received)))
        body["submission_id"] = bad
        assert_envelope_rejected(json.dumps(body).encode(), Received)

    def test_unattributed_dead_letter_decodes(self):
        """A dead letter for a record the hub could not attribute carries sub-unknown and decodes."""
        letter = _sample(DeadLetter, submission_id="sub-unknown")
        assert letter == decode(encode(letter), DeadLetter)
