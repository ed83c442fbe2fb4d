"""The OSCI client's metadata sidecar (hub.core.transport.osci_handover): strict, bounded, hostile input.

Every refusal is ``METADATA`` with a path made of fixed names; no value of the
input (identifiers, member names) ever appears in it.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core.errors import Reason, Rejection
from hub.core.transport.osci_handover import (
    MAX_METADATA_BYTES,
    OsciMetadata,
    check_fields,
    parse_metadata,
    render,
)

AUTHOR = "sop:050000100099"
READER = "jbc:055620000000"
MESSAGE_ID = "b3NjaS1tZXNzYWdlLTQ3MTE="
VALID = {
    "type": "sozialhub.osci-handover",
    "v": 1,
    "author": AUTHOR,
    "reader": READER,
    "message_id": MESSAGE_ID,
}


def sidecar(**changes) -> bytes:
    document = {**VALID, **changes}
    return json.dumps({k: v for k, v in document.items() if v is not ...}).encode()


def refused(data: bytes | None) -> Rejection:
    with pytest.raises(Rejection) as caught:
        parse_metadata(data)
    rejection = caught.value
    assert rejection.reason is Reason.METADATA
    assert "evil" not in str(rejection)
    assert "evil" not in (rejection.path or "")
    return rejection


class TestValid:
    def test_the_documented_sidecar(self):
        """The three values come back exactly."""
        expected = OsciMetadata(AUTHOR, READER, MESSAGE_ID)
        assert expected == parse_metadata(sidecar())

    def test_render_round_trip(self):
        """What render writes (as an OSCI client would) parses back to the same values."""
        metadata = OsciMetadata(AUTHOR, READER, "urn:osci:msg:4711")
        assert metadata == parse_metadata(render(metadata))

    def test_member_order_and_whitespace_do_not_matter(self):
        data = b'\n{ "message_id": "m-1",\t"reader": "r:1", "author": "a:1", "v": 1,\r\n"type": "sozialhub.osci-handover" }\n'
        assert OsciMetadata("a:1", "r:1", "m-1") == parse_metadata(data)

    @given(
        st.from_regex(r"[A-Za-z0-9:._@-]{1,128}", fullmatch=True),
        st.from_regex(r"[A-Za-z0-9+/=:._@-]{1,256}", fullmatch=True),
    )
    def test_every_well_formed_identifier_is_taken(self, party, message_id):
        """Any identifier of the documented shape round-trips unchanged."""
        metadata = OsciMetadata(party, party, message_id)
        assert metadata == parse_metadata(render(metadata))


class TestHostile:
    def test_no_sidecar(self):
        assert "osci/metadata" == refused(None).path

    def test_oversized(self):
        """Above the limit it is refused before it is parsed, whatever it holds."""
        padded = sidecar()[:-1] + b" " * MAX_METADATA_BYTES + b"}"
        assert "osci/metadata" == refused(padded).path

    def test_limit_is_inclusive(self):
        """A sidecar of exactly the limit is read."""
        data = sidecar()
        padded = data[:-1] + b" " * (MAX_METADATA_BYTES - len(data)) + b"}"
        assert len(padded) == MAX_METADATA_BYTES
        assert OsciMetadata(AUTHOR, READER, MESSAGE_ID) == parse_metadata(padded)

    @pytest.mark.parametrize(
        "data",
        [
            '{"author": "caf\u00e9"}'.encode("latin-1"),  # not UTF-8
            b"\xef\xbb\xbf" + json.dumps(VALID).encode(),  # BOM
            json.dumps(VALID).encode("utf-16"),
            b"",
            b"not json",
            b"[]",
            b'"sozialhub.osci-handover"',
            b"null",
            json.dumps(VALID).encode() + b" {}",  # trailing data
            b"[" * 3000 + b"]" * 3000,  # deep nesting
            b'{"type": "sozialhub.osci-handover", "v": NaN}',
            b'{"type": "sozialhub.osci-handover", "v": Infinity}',
        ],
        ids=[
            "latin-1",
            "bom",
            "utf-16",
            "empty",
            "text",
            "array",
            "string",
            "null",
            "trailing",
            "nesting",
            "nan",
            "infinity",
        ],
    )
    def test_not_the_strict_json_object(self, data):
        assert "osci/metadata" == refused(data).path

    def test_duplicate_member(self):
        """A member twice (the second would silently win in plain json) is refused."""
        data = sidecar()[:-1] + b', "author": "sop:999999999999"}'
        assert "osci/metadata" == refused(data).path

    def test_extra_member_is_refused_without_its_name(self):
        """Nothing but the five members: no personal data can ride along; the name is not echoed."""
        assert "osci/metadata/*" == refused(sidecar(evil="Erika Mustermann")).path

    @pytest.mark.parametrize(
        ("member", "value"),
        [
            ("type", ...),
            ("type", "sozialhub.received"),
            ("v", ...),
            ("v", "1"),
            ("v", True),
            ("v", 1.0),
            ("v", 2),
            ("author", ...),
            ("author", 50000100099),
            ("author", ["sop:050000100099"]),
            ("author", None),
            ("author", ""),
            ("author", "sop: 050000100099"),
            ("author", "sop:evil\n"),
            ("author", "a" * 129),
            ("author", "s\u00f6p:1"),
            ("reader", {"id": READER}),
            ("reader", ...),
            ("message_id", ...),
            ("message_id", 4711),
            ("message_id", "m" * 257),
            ("message_id", "evil<script>"),
        ],
    )
    def test_wrong_type_or_shape(self, member, value):
        """Each member is checked for presence, exact type and shape; the path names it."""
        assert f"osci/metadata/{member}" == refused(sidecar(**{member: value})).path


class TestRecordFields:
    def test_shaped_values_and_none_pass(self):
        check_fields(AUTHOR, READER, MESSAGE_ID)
        check_fields(None, None, None)

    @pytest.mark.parametrize(
        ("author", "reader", "message_id", "path"),
        [
            (["x"], None, None, "transport/author"),
            ("a b", None, None, "transport/author"),
            (AUTHOR, 7, None, "transport/reader"),
            (AUTHOR, READER, "evil\u202e", "transport/messageId"),
        ],
    )
    def test_a_foreign_record_cannot_smuggle_values(self, author, reader, message_id, path):
        """What a record carries in its transport fields has the sidecar's shapes (METADATA)."""
        with pytest.raises(Rejection) as caught:
            check_fields(author, reader, message_id)
        assert (Reason.METADATA, path) == (caught.value.reason, caught.value.path)
