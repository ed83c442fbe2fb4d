"""The Rechtskreiswechsel event: record convention, deterministic id, shape and meaning checks, schema."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import hashlib
import json
import re

import jsonschema
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hub import offices
from hub.config import PROJECT_ROOT, ConfigError, load
from hub.core import rechtskreiswechsel as rkw
from hub.core.errors import Reason, Rejection
from hub.core.route import OfficeTable
from hub.core.transfer import CATEGORIES
from tests.rkw_support import EXAMPLES, VALID_EXAMPLES, events, example, example_body, pseudonym

CANARY = "Erika Mustermann"
MARL_PERSON = example_body("01-recognition-marl.json")["person"]


@pytest.fixture(scope="module")
def schema(settings) -> dict:
    path = settings.schema_dir / "rechtskreiswechsel" / "change-event-1.schema.json"
    return json.loads(path.read_text("utf-8"))


@pytest.fixture(scope="module")
def offices_schema(settings) -> dict:
    return json.loads((settings.schema_dir / "hub" / "offices.schema.json").read_text("utf-8"))


def rejected(body: object) -> Rejection:
    with pytest.raises(Rejection) as caught:
        rkw.event_from_json(body)
    return caught.value


def mutated(path: tuple, value: object, name: str = "01-recognition-marl.json") -> dict:
    body = copy.deepcopy(example_body(name))
    target = body
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return body


DELETE = object()


class TestRecord:
    @pytest.mark.parametrize("path", VALID_EXAMPLES, ids=lambda p: p.name)
    def test_examples_round_trip(self, path):
        """Each example decodes, and encoding the event gives back an equal event."""
        event = rkw.decode_event(path.read_bytes())
        expected = event
        assert expected == rkw.decode_event(rkw.encode_event(event))

    def test_encoding_follows_the_records_convention(self):
        """Compact, sorted keys, UTF-8, with ``type`` and ``v``, like every hub record."""
        event = rkw.decode_event(example("01-recognition-marl.json").read_bytes())
        data = rkw.encode_event(event)
        body = json.loads(data)
        expected = (data, "sozialhub.rechtskreiswechsel", 1)
        actual = (
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
            body["type"],
            body["v"],
        )
        assert expected == actual

    @settings(max_examples=150, deadline=None)
    @given(events())
    def test_any_event_round_trips(self, event):
        """Encode then decode is the identity for any event the model can hold."""
        assert event == rkw.decode_event(rkw.encode_event(event))

    def test_unknown_fields_are_dropped(self):
        """A field this version does not know is ignored, so it is never passed on."""
        body = example_body("01-recognition-marl.json")
        body["religion"] = "canary"
        body["case"]["household"][0]["nationality"] = "canary"
        event = rkw.event_from_json(body)
        assert b"canary" not in rkw.encode_event(event)

    def test_repr_shows_no_case_data(self):
        """The event's repr names the pseudonym and offices, never amounts, references, digests."""
        event = rkw.decode_event(example("01-recognition-marl.json").read_bytes())
        text = repr(event) + repr(event.case.open_claims)
        expected: list[str] = []
        assert expected == [v for v in ("82400", "AZ-50-2026-0173", "80b2c7c6") if v in text]


class TestEventId:
    def test_deterministic(self):
        """The example's id is the documented digest of person, sides and effective date."""
        body = example_body("01-recognition-marl.json")
        parts = [
            body["person"],
            body["from"]["rechtskreis"],
            body["from"]["office"],
            body["to"]["rechtskreis"],
            body["to"]["office"],
            body["effective_date"],
        ]
        expected = "rkw-" + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
        assert expected == body["event_id"]

    @given(events(), st.sampled_from(["recognition", "other"]))
    def test_reason_and_case_data_do_not_change_it(self, event, reason):
        """A re-sent event with another reason or case data is the same handover."""
        again = rkw.RechtskreisChange.create(
            event.person, event.from_, event.to, event.area, event.effective_date, reason
        )
        assert event.event_id == again.event_id

    @pytest.mark.parametrize(
        "change",
        ["person", "from_rechtskreis", "from_office", "to_rechtskreis", "to_office", "date"],
    )
    def test_each_identity_field_changes_it(self, change):
        """Person, either side and the effective date each make another event."""
        base = (pseudonym(1), rkw.Side("AsylbLG", "soa-marl"), rkw.Side("SGB II", "jc-re-marl"))
        day = dt.date(2026, 12, 1)
        person, old, new = base
        other = {
            "person": (pseudonym(2), old, new, day),
            "from_rechtskreis": (person, rkw.Side("SGB XII", "soa-marl"), new, day),
            "from_office": (person, rkw.Side("AsylbLG", "soa-herten"), new, day),
            "to_rechtskreis": (person, old, rkw.Side("SGB XII", "jc-re-marl"), day),
            "to_office": (person, old, rkw.Side("SGB II", "jc-re-herten"), day),
            "date": (person, old, new, dt.date(2026, 12, 2)),
        }[change]
        assert rkw.event_id(*base, day) != rkw.event_id(*other)


SHAPE_CASES = [
    # (where, value, path, the JSON schema refuses it too)
    (("type",), "sozialhub.delivery", "type", True),
    (("v",), 2, "v", True),
    (("v",), True, "v", True),
    (("person",), CANARY, "person", True),
    (("person",), "psn-" + "a" * 32, "person", True),
    (("event_id",), "rkw-" + "0" * 32, "event_id", False),
    (("event_id",), DELETE, "event_id", True),
    (("effective_date",), "2026-13-01", "effective_date", False),
    (("effective_date",), "20261201", "effective_date", True),
    (("area",), "0556202", "area", True),
    (("from", "office"), CANARY, "from/office", True),
    (("to",), "jc-re-marl", "to", True),
    (("reason",), "recognition", "reason", True),
    (("case", "household", 0, "role"), "boss", "case/household/0/role", True),
    (("case", "household", 1, "person"), MARL_PERSON, "case/household/1/person", False),
    (("case", "household", 0, "role"), "partner", "case/household/0/role", False),
    (("case", "household", 2, "person"), "psn-k2026-" + "0" * 31, "case/household/2/person", True),
    (("case", "household", 0, "category"), "religion", "case/household/0/category", True),
    (
        ("case", "benefit_periods", 0, "benefit", "list_uri"),
        "urn:other",
        "case/benefit_periods/0/benefit",
        True,
    ),
    (("case", "benefit_periods", 0, "end"), "2020-01-01", "case/benefit_periods/0/end", False),
    (
        ("case", "benefit_periods", 0, "monthly_amount_cents"),
        -1,
        "case/benefit_periods/0/monthly_amount_cents",
        True,
    ),
    (
        ("case", "benefit_periods", 0, "monthly_amount_cents"),
        824.5,
        "case/benefit_periods/0/monthly_amount_cents",
        True,
    ),
    (  # JSON schema counts 824.0 as an integer; records carry no floats at all
        ("case", "benefit_periods", 0, "monthly_amount_cents"),
        824.0,
        "case/benefit_periods/0/monthly_amount_cents",
        False,
    ),
    (("case", "open_claims", 0, "reference"), CANARY, "case/open_claims/0/reference", True),
    (("case", "open_claims", 0, "kind"), "debt", "case/open_claims/0/kind", True),
    (("case", "documents", 0, "media_type"), "text/html", "case/documents/0/media_type", True),
    (("case", "documents", 0, "sha256"), "AB" * 32, "case/documents/0/sha256", True),
    (("case", "documents", 0, "size"), 0, "case/documents/0/size", True),
    (("case", "documents"), [{}] * 101, "case/documents", True),
    (("case",), [], "case", True),
]


class TestShape:
    def test_not_json(self):
        """Bytes that are not JSON are RKW_EVENT at ``json``."""
        with pytest.raises(Rejection) as caught:
            rkw.decode_event(b"\xff{")
        assert (Reason.RKW_EVENT, "json") == (caught.value.reason, caught.value.path)

    def test_not_an_object(self):
        """A JSON list is RKW_EVENT at ``/``."""
        assert "/" == rejected([]).path

    @pytest.mark.parametrize(
        ("where", "value", "path", "schema_refuses"),
        SHAPE_CASES,
        ids=[c[2] + ":" + str(i) for i, c in enumerate(SHAPE_CASES)],
    )
    def test_refused_at_its_path(self, where, value, path, schema_refuses):
        """Each malformed part is RKW_EVENT with the path of the part, never its value."""
        caught = rejected(mutated(where, value))
        expected = (Reason.RKW_EVENT, path, False)
        assert expected == (caught.reason, caught.path, CANARY in str(caught) + repr(caught))

    def test_duplicate_document(self):
        """The same document digest twice is refused at the second one."""
        body = example_body("01-recognition-marl.json")
        body["case"]["documents"][1]["sha256"] = body["case"]["documents"][0]["sha256"]
        assert "case/documents/1/sha256" == rejected(body).path

    @pytest.mark.parametrize(
        ("where", "value", "path", "schema_refuses"),
        [c for c in SHAPE_CASES if c[3]],
        ids=[c[2] + ":" + str(i) for i, c in enumerate(c for c in SHAPE_CASES if c[3])],
    )
    def test_schema_refuses_it_too(self, schema, where, value, path, schema_refuses):
        """What the decoder refuses for its shape, the published JSON schema refuses as well."""
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(mutated(where, value), schema)


class TestMeaning:
    @pytest.mark.parametrize("path", VALID_EXAMPLES, ids=lambda p: p.name)
    def test_examples_are_valid(self, office_table, path):
        """The planned examples make sense against the shipped office table."""
        rkw.check_event(path.read_bytes(), office_table)

    @pytest.mark.parametrize(
        ("where", "value", "reason", "path"),
        [
            (("from", "rechtskreis"), "SGB III", Reason.RKW_RECHTSKREIS, "from/rechtskreis"),
            (("to", "rechtskreis"), "AufenthG", Reason.RKW_RECHTSKREIS, "to/rechtskreis"),
            (("from", "office"), "soa-bochum", Reason.RKW_OFFICE, "from/office"),
            (("to", "office"), "jc-re-bochum", Reason.RKW_OFFICE, "to/office"),
            (("to", "office"), "wgs-marl", Reason.RKW_OFFICE, "to"),
            (("from", "office"), "jc-re-marl", Reason.RKW_OFFICE, "from"),
            (("reason", "code"), "marriage", Reason.RKW_REASON, "reason/code"),
            (("reason", "list_uri"), "urn:other", Reason.RKW_REASON, "reason/list_uri"),
            (("reason", "list_version"), "2", Reason.RKW_REASON, "reason/list_version"),
            (("reason", "code"), "retirement-age", Reason.RKW_REASON, "reason"),
            (("area",), "05562020", Reason.RKW_AREA, "area"),
            (("area",), "05911000", Reason.RKW_AREA, "area"),
        ],
    )
    def test_refused(self, office_table, where, value, reason, path):
        """Rechtskreise, offices, reason and area are checked against the office table."""
        body = mutated(where, value)
        from_, to = body["from"], body["to"]
        body["event_id"] = rkw.event_id(
            body["person"],
            rkw.Side(from_["rechtskreis"], from_["office"]),
            rkw.Side(to["rechtskreis"], to["office"]),
            dt.date.fromisoformat(body["effective_date"]),
        )
        with pytest.raises(Rejection) as caught:
            rkw.validate(rkw.event_from_json(body), office_table)
        assert (reason, path) == (caught.value.reason, caught.value.path)

    def test_same_rechtskreis(self, office_table):
        """From and to in the same Rechtskreis is no Rechtskreiswechsel."""
        event = rkw.RechtskreisChange.create(
            pseudonym(1),
            rkw.Side("SGB XII", "soa-marl"),
            rkw.Side("SGB XII", "soa-herten"),
            "05562020",
            dt.date(2026, 12, 1),
            "other",
        )
        with pytest.raises(Rejection) as caught:
            rkw.validate(event, office_table)
        assert (Reason.RKW_RECHTSKREIS, "to/rechtskreis") == (
            caught.value.reason,
            caught.value.path,
        )

    @given(events())
    def test_generated_events_are_valid(self, event):
        """The test strategy makes only valid events (the fan-out properties rely on it)."""
        rkw.validate(event, shipped_table())

    def test_the_invalid_example(self, office_table):
        """09: retirement age does not explain AsylbLG to SGB II."""
        with pytest.raises(Rejection) as caught:
            rkw.check_event(
                (EXAMPLES / "09-invalid-reason-waltrop.json").read_bytes(), office_table
            )
        assert (Reason.RKW_REASON, "reason") == (caught.value.reason, caught.value.path)


class TestCodeLists:
    def test_reason_tables_agree(self):
        """Every reason has a category entry; all but ``other`` name the transitions they explain."""
        expected = (set(rkw.REASONS), set(rkw.REASONS) - {"other"})
        assert expected == (set(rkw.REASON_CATEGORIES), set(rkw.REASON_TRANSITIONS))

    def test_reason_categories_are_data_categories(self):
        """What a reason reveals is a data category; incapacity is health data."""
        used = {c for c in rkw.REASON_CATEGORIES.values() if c is not None}
        assert (True, "health") == (
            used <= set(CATEGORIES),
            rkw.REASON_CATEGORIES["permanent-incapacity"],
        )

    def test_transitions_use_known_rechtskreise(self):
        """Every transition a reason explains is between two different known Rechtskreise."""
        pairs = {p for pairs in rkw.REASON_TRANSITIONS.values() for p in pairs}
        expected: list[tuple[str, str]] = []
        assert expected == [p for p in pairs if p[0] == p[1] or not set(p) <= set(rkw.RECHTSKREISE)]

    def test_schema_enums_follow_the_code_lists(self, schema):
        """The published schema lists exactly the module's codes."""
        props = schema["properties"]
        case = props["case"]["properties"]
        expected = (
            list(rkw.REASONS),
            list(rkw.RECHTSKREISE),
            list(CATEGORIES),
            list(rkw.HOUSEHOLD_ROLES),
            list(rkw.CLAIM_KINDS),
            sorted(rkw.MEDIA_TYPES),
            "^" + rkw.PSEUDONYM.pattern + "$",
        )
        actual = (
            props["reason"]["properties"]["code"]["enum"],
            props["from"]["properties"]["rechtskreis"]["enum"],
            case["documents"]["items"]["properties"]["category"]["enum"],
            case["household"]["items"]["properties"]["role"]["enum"],
            case["open_claims"]["items"]["properties"]["kind"]["enum"],
            case["documents"]["items"]["properties"]["media_type"]["enum"],
            props["person"]["pattern"],
        )
        assert expected == actual

    def test_rechtskreise_are_the_office_tables_but_aufenthg(self, offices_schema):
        """The event's Rechtskreise are the office table's, without the Ausländerbehörde's AufenthG."""
        table = offices_schema["properties"]["offices"]["items"]["properties"]["rechtskreise"]
        assert set(table["items"]["enum"]) - {"AufenthG"} == set(rkw.RECHTSKREISE)

    @pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*-*.json")), ids=lambda p: p.name)
    def test_examples_are_schema_valid(self, schema, path):
        """Every example event, the invalid one too (its fault is meaning, not shape), fits the schema."""
        jsonschema.validate(json.loads(path.read_text("utf-8")), schema)

    @settings(max_examples=60, deadline=None)
    @given(events())
    def test_generated_events_fit_the_schema(self, schema, event):
        """Whatever the model encodes, the published schema accepts."""
        jsonschema.validate(json.loads(rkw.encode_event(event)), schema)


def test_reason_codes_are_documented():
    """Every RKW_ code has its section and summary row in docs/reason-codes.md."""
    text = (PROJECT_ROOT / "docs" / "reason-codes.md").read_text("utf-8")
    codes = [r.value for r in Reason if r.value.startswith("RKW_")]
    expected: list[str] = []
    missing = [c for c in codes if f"### `{c}`" not in text or f"| `{c}` |" not in text]
    assert (expected, 7) == (missing, len(codes))


class TestPseudonymShape:
    def test_same_shape_as_the_pseudonym_module(self):
        """Event pseudonyms have the shape hub.core.pseudonym makes, no more, no less."""
        pseudonyms = pytest.importorskip("hub.core.pseudonym")
        samples = [
            pseudonym(1),
            "psn-a-" + "0" * 32,
            "psn-" + "0" * 32,
            "psn-K2026-" + "0" * 32,
            "psn-k2026-" + "0" * 31,
            "psn-abcdefghijklm-" + "0" * 32,
            CANARY,
        ]
        theirs = re.compile(pseudonyms.PSEUDONYM.pattern)
        expected = [bool(theirs.fullmatch(s)) for s in samples]
        assert expected == [bool(rkw.PSEUDONYM.fullmatch(s)) for s in samples]


class TestOfficeTable:
    """The office table allows an Ausländerbehörde (AufenthG) without LeiKa keys, nothing else."""

    def test_shipped_auslaenderbehoerde(self, office_table):
        """The Kreis's Ausländerbehörde decides under AufenthG and handles no benefit."""
        office = office_table.office("kreis-re-abh")
        assert (("AufenthG",), frozenset(), ("05562",)) == (
            office.rechtskreise,
            office.leika,
            office.areas,
        )

    def test_benefit_office_needs_leika_keys(self, offices_schema, settings):
        """An office deciding in a benefit Rechtskreis without LeiKa keys is refused at its keys."""
        document = yaml.safe_load(settings.offices_file.read_text("utf-8"))
        document["offices"][0]["leika"] = []
        with pytest.raises(ConfigError) as caught:
            offices.parse(document, offices_schema)
        assert "offices/0/leika" in str(caught.value)

    def test_aufenthg_with_a_benefit_rechtskreis_needs_keys(self, offices_schema, settings):
        """AufenthG beside a benefit Rechtskreis does not lift the rule."""
        document = yaml.safe_load(settings.offices_file.read_text("utf-8"))
        document["offices"][0]["leika"] = []
        document["offices"][0]["rechtskreise"] = ["SGB II", "AufenthG"]
        with pytest.raises(ConfigError):
            offices.parse(document, offices_schema)


@functools.cache
def shipped_table() -> OfficeTable:
    """The shipped office table, for hypothesis tests (they take no function-scoped fixtures)."""
    settings = load({})
    return offices.load(settings.offices_file, settings.schema_dir)
