"""The published schema of handovers.<vendor>: every message the hub writes fits it, no other does.

``schemas/rechtskreiswechsel/message-1.schema.json`` is what Fachverfahren vendors
validate the Rechtskreiswechsel messages against (docs/rechtskreiswechsel.md#the-message-record).
The messages here come from the real code: the plan and send stages with the real
transfer gate (tests/unit/test_rechtskreiswechsel_stream.py), and the fan-out with
the fake gates of tests/rkw_support.py for generated events. Each encoded record is
validated under draft 2020-12, and under draft-07, the format the AsyncAPI document
declares for the schema (hub/asyncapi.py).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import offices, subscriptions
from hub.config import PROJECT_ROOT, load
from hub.core import consent, fanout
from hub.core import rechtskreiswechsel as rkw
from hub.core import rkw_stages as stages
from hub.core.pipeline import HubContext
from hub.core.route import OfficeTable
from hub.core.subscriptions import Role, Subscriptions
from hub.core.transfer import CATEGORIES, PURPOSES, RECHTSKREISE
from tests.rkw_support import (
    AT,
    CONSENT,
    STATUTE,
    allow_all,
    data_free_only,
    deny_all,
    events,
    example,
    minimised_to,
)

SCHEMA_PATH = PROJECT_ROOT / "schemas" / "rechtskreiswechsel" / "message-1.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text("utf-8"))
DRAFTS = [jsonschema.Draft202012Validator, jsonschema.Draft7Validator]
NOW = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
MARL = rkw.decode_event(example("01-recognition-marl.json").read_bytes())


def validators() -> list[jsonschema.protocols.Validator]:
    return [v(SCHEMA, format_checker=jsonschema.FormatChecker()) for v in DRAFTS]


def assert_fits(record: dict[str, Any]) -> None:
    for validator in validators():
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(record)]
        assert not errors, (type(validator).__name__, record["kind"], errors[:3])


def assert_refused(record: dict[str, Any]) -> None:
    for validator in validators():
        assert not validator.is_valid(record), type(validator).__name__


@functools.cache
def shipped() -> tuple[OfficeTable, Subscriptions]:
    config = load({})
    table = offices.load(config.offices_file, config.schema_dir)
    return table, subscriptions.load(subscriptions.default_path(config), config.schema_dir, table)


# --- messages as the send stage writes them -------------------------------------------------


def _grant(office: str, purpose: str, categories: list[str]) -> consent.ConsentEvent:
    return consent.grant(
        person=MARL.person,
        granting_office="soa-marl",
        recipients=[office],
        purpose=purpose,
        categories=categories,
        text_version="rkw-marl-2025-01",
        channel="paper",
        scan_ref="dms:soa-marl:2026/03/0412",
        collected_at=T0,
    )


def _states(*granted: consent.ConsentEvent) -> Callable[[str], tuple[consent.ConsentState, ...]]:
    folded = tuple(consent.fold(granted).values())
    return lambda person: folded if person == MARL.person else ()


def _case_stays() -> rkw.RechtskreisChange:
    """AsylbLG to SGB XII at the same Sozialamt: the new office holds the case already."""
    return rkw.RechtskreisChange.create(
        MARL.person,
        rkw.Side("AsylbLG", "soa-marl"),
        rkw.Side("SGB XII", "soa-marl"),
        MARL.area,
        MARL.effective_date,
        "recognition",
        MARL.case,
    )


def _nothing_to_ask() -> rkw.RechtskreisChange:
    """No case data, a reason revealing nothing: no subscription has a category to ask for."""
    return rkw.RechtskreisChange.create(
        MARL.person, MARL.from_, MARL.to, MARL.area, MARL.effective_date, "other"
    )


SCENARIOS: dict[
    str, tuple[Callable[[], rkw.RechtskreisChange], tuple[consent.ConsentEvent, ...]]
] = {
    "no-consent": (lambda: MARL, ()),
    "consents": (
        lambda: MARL,
        (
            _grant(
                "jc-re-marl",
                "rechtskreiswechsel-handover",
                ["household", "income", "residence-status", "documents"],
            ),
            _grant("wgs-marl", "joint-case-management", ["household"]),
        ),
    ),
    "case-stays": (_case_stays, ()),
    "nothing-to-ask": (_nothing_to_ask, ()),
}


def sent_records(hub: HubContext, scenario: str) -> list[dict[str, Any]]:
    """Plan the scenario's event, send every queued message: the handovers.<vendor> values."""
    table, subs = shipped()
    make, granted = SCENARIOS[scenario]
    event, consents = make(), _states(*granted)
    result, _ = stages.plan(
        event.person.encode(), rkw.encode_event(event), hub, subs, consents, NOW
    )
    records = []
    for queued in (e for e in result.emits if e.topic == stages.OUTBOX):
        sent = stages.send(queued.value, hub, subs, consents, NOW)
        vendor_topics = {stages.handover_topic(v) for v in table.vendors}
        records += [json.loads(e.value) for e in sent.emits if e.topic in vendor_topics]
    assert records
    return records


def shape(record: dict[str, Any]) -> str:
    """kind/what the body holds: data, or why it holds none."""
    body = record["body"]
    return f"{record['kind']}/{body.get('case_data', 'data' if 'case' in body else 'head')}"


@pytest.fixture(scope="module")
def sent(hub_context) -> dict[str, list[dict[str, Any]]]:
    return {name: sent_records(hub_context, name) for name in SCENARIOS}


class TestWhatTheHubWrites:
    @pytest.mark.parametrize("scenario", sorted(SCENARIOS))
    def test_every_sent_record_fits(self, sent, scenario):
        """Each value the send stage writes to handovers.<vendor> fits, under both drafts."""
        for record in sent[scenario]:
            assert_fits(record)

    def test_the_scenarios_write_every_kind(self, sent):
        """Between them the scenarios write every kind, each data-free reason included."""
        shapes = {shape(r) for records in sent.values() for r in records}
        assert {
            "handover/data",
            "notice/refused",
            "notice/not-requested",
            "notice/held",
            "confirmation/head",
            "information/data",
            "information/refused",
            "information/not-requested",
        } == shapes

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(
        event=events(),
        gate=st.sampled_from(["statute", "consent", "deny", "data-free", "minimised"]),
        allowed=st.frozensets(st.sampled_from(sorted(CATEGORIES))),
    )
    def test_generated_events_under_any_gate_fit(self, event, gate, allowed):
        """For generated events and gate answers, every deliverable message's record fits."""
        gates = {
            "statute": allow_all(STATUTE),
            "consent": allow_all(CONSENT),
            "deny": deny_all,
            "data-free": data_free_only,
            "minimised": minimised_to(allowed),
        }
        table, subs = shipped()
        for message in fanout.fan_out(event, subs, table, gates[gate], AT).deliverable:
            assert_fits(json.loads(fanout.encode_message(message)))


# --- what it refuses ------------------------------------------------------------------------


def _first(sent: dict[str, list[dict[str, Any]]], wanted: str) -> dict[str, Any]:
    return copy.deepcopy(
        next(r for records in sent.values() for r in records if shape(r) == wanted)
    )


def _set(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = record
    *steps, last = path.split("/")
    for step in steps:
        target = target[step]
    if value is DELETE:
        del target[last]
    else:
        target[last] = value
    return record


DELETE = object()
CASE = {"household": [], "benefit_periods": [], "open_claims": [], "documents": []}
REASON = {"code": "recognition", "list_uri": rkw.REASON_LIST_URI, "list_version": "1"}
FROM = {"rechtskreis": "AsylbLG", "office": "soa-marl"}

REFUSED = [
    # (the record it starts from, path, value)
    pytest.param("notice/refused", "categories", ["household"], id="notice-with-categories"),
    pytest.param("notice/refused", "body/case", CASE, id="notice-with-case-data"),
    pytest.param("notice/refused", "body/reason", REASON, id="notice-with-reason"),
    pytest.param(
        "notice/refused", "decision/categories", ["income"], id="notice-decision-allows-data"
    ),
    pytest.param("notice/refused", "refused", None, id="refused-notice-without-refusal"),
    pytest.param("notice/refused", "body/case_data", "held", id="held-notice-after-refusal"),
    pytest.param("notice/held", "categories", ["household"], id="held-notice-with-categories"),
    pytest.param("notice/held", "body/case", CASE, id="held-notice-with-case-data"),
    pytest.param("notice/not-requested", "requested", ["income"], id="not-requested-but-asked"),
    pytest.param("notice/refused", "role", "affected", id="notice-to-an-affected-office"),
    pytest.param("handover/data", "body/case", DELETE, id="handover-without-case"),
    pytest.param("handover/data", "body/case_data", "refused", id="handover-says-data-free"),
    pytest.param("handover/data", "role", "old-office", id="handover-to-the-old-office"),
    pytest.param("handover/data", "decision/outcome", "deny", id="denied-message"),
    pytest.param("handover/data", "decision/basis", None, id="allow-without-basis"),
    pytest.param("confirmation/head", "body/from", FROM, id="confirmation-with-head"),
    pytest.param(
        "confirmation/head", "categories", ["household"], id="confirmation-with-categories"
    ),
    pytest.param(
        "information/data", "body/case_data", "refused", id="information-case-and-data-free"
    ),
    pytest.param("information/refused", "body/case", CASE, id="data-free-information-with-case"),
    pytest.param(
        "information/refused",
        "categories",
        ["household"],
        id="data-free-information-with-categories",
    ),
    pytest.param("handover/data", "kind", "withheld", id="withheld-is-never-written"),
    pytest.param("handover/data", "extra", 1, id="unknown-field"),
    pytest.param("handover/data", "body/extra", 1, id="unknown-body-field"),
    pytest.param("handover/data", "message_id", "rkm-XYZ", id="message-id-pattern"),
    pytest.param("handover/data", "event_id", "rkw-" + "0" * 31, id="event-id-pattern"),
    pytest.param("handover/data", "body/person", "Erika Mustermann", id="person-in-clear"),
    pytest.param("handover/data", "office", "Jobcenter Marl", id="office-id-pattern"),
    pytest.param("handover/data", "categories", ["salary"], id="category-not-in-the-code-list"),
    pytest.param("handover/data", "purpose", "curiosity", id="purpose-not-in-the-code-list"),
    pytest.param("handover/data", "subscriptions", ["Not An Id"], id="subscription-id-pattern"),
    pytest.param("handover/data", "decision/request_id", "req-1", id="request-id-pattern"),
    pytest.param("handover/data", "decision/decided_at", "yesterday", id="timestamp-pattern"),
    pytest.param("handover/data", "v", 2, id="another-version"),
]


class TestWhatItRefuses:
    @pytest.mark.parametrize(("start", "path", "value"), REFUSED)
    def test_refused(self, sent, start, path, value):
        """A record the hub never writes is invalid under both drafts (the original is valid)."""
        record = _first(sent, start)
        assert_fits(record)
        assert_refused(_set(record, path, copy.deepcopy(value)))

    def test_a_notice_fits_only_without_case_data(self, sent):
        """The data-free notice: valid as written, invalid with any part of the case data."""
        notice = _first(sent, "notice/refused")
        handover = _first(sent, "handover/data")
        assert_fits(notice)
        for part, items in handover["body"]["case"].items():
            if items:
                case = {**CASE, part: items}
                assert_refused(_set(copy.deepcopy(notice), "body/case", case))
        assert_refused(_set(copy.deepcopy(notice), "categories", handover["categories"]))


# --- the schema itself ----------------------------------------------------------------------

BOTH_DRAFTS_ONLY = {
    # keywords whose meaning differs between draft-07 and 2020-12, or that one of them lacks
    "$ref",
    "$defs",
    "definitions",
    "$anchor",
    "$dynamicRef",
    "$dynamicAnchor",
    "$recursiveRef",
    "prefixItems",
    "additionalItems",
    "unevaluatedItems",
    "unevaluatedProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "minContains",
    "maxContains",
}


def _subschemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for key, value in node.items():
            if key in ("properties", "patternProperties"):
                for child in value.values():
                    yield from _subschemas(child)
            elif key not in ("const", "enum", "required", "description", "title"):
                yield from _subschemas(value)
    elif isinstance(node, list):
        for item in node:
            yield from _subschemas(item)


def _described(node: dict[str, Any], path: str) -> Iterator[str]:
    """Paths of fields (property definitions, array items) without a description."""
    for name, child in node.get("properties", {}).items():
        where = f"{path}/{name}"
        if "description" not in child:
            yield where
        yield from _described(child, where)
    items = node.get("items")
    if isinstance(items, dict):
        if "description" not in items:
            yield f"{path}/items"
        yield from _described(items, f"{path}/items")


class TestTheSchema:
    @pytest.mark.parametrize("draft", DRAFTS, ids=lambda d: d.__name__)
    def test_is_a_valid_schema(self, draft):
        """Well-formed under draft 2020-12 (its $schema) and draft-07 (the AsyncAPI format)."""
        draft.check_schema(SCHEMA)

    def test_identity(self):
        """Draft 2020-12 and an $id in the repository's URN style."""
        assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert SCHEMA["$id"] == "urn:sozialhub:schema:rechtskreiswechsel:message:1"

    def test_means_the_same_under_both_drafts(self):
        """No keyword the two drafts read differently, and no $ref for a tool to mis-resolve."""
        used = {key for node in _subschemas(SCHEMA) for key in node}
        assert not used & BOTH_DRAFTS_ONLY

    def test_every_field_is_described(self):
        """Every property and array item of the record has a description."""
        assert "description" in SCHEMA
        assert [] == list(_described(SCHEMA, ""))

    def test_record_type_kinds_and_roles_follow_the_code(self):
        """Type, version, kinds (withheld is never written) and roles as hub.core.fanout writes them."""
        props = SCHEMA["properties"]
        expected = (
            fanout.MESSAGE_TYPE,
            1,
            [k.value for k in fanout.Kind if k is not fanout.Kind.WITHHELD],
            [r.value for r in Role],
        )
        actual = (
            props["type"]["const"],
            props["v"]["const"],
            props["kind"]["enum"],
            props["role"]["enum"],
        )
        assert expected == actual

    def test_code_lists_follow_the_vocabulary(self):
        """Data categories and purposes from hub.core.transfer, the event's code lists."""
        props = SCHEMA["properties"]
        body = props["body"]["properties"]
        case = body["case"]["properties"]
        decision = props["decision"]["properties"]
        category_enums = [
            props["categories"]["items"]["enum"],
            props["requested"]["items"]["enum"],
            decision["categories"]["items"]["enum"],
            props["refused"]["properties"]["categories"]["items"]["enum"],
            *(case[part]["items"]["properties"]["category"]["enum"] for part in case),
        ]
        assert all(sorted(CATEGORIES) == e for e in category_enums)
        assert list(PURPOSES) == props["purpose"]["enum"]
        assert list(RECHTSKREISE) == body["from"]["properties"]["rechtskreis"]["enum"]
        assert list(RECHTSKREISE) == body["to"]["properties"]["rechtskreis"]["enum"]
        assert list(rkw.REASONS) == body["reason"]["properties"]["code"]["enum"]
        household = case["household"]["items"]["properties"]
        assert list(rkw.HOUSEHOLD_ROLES) == household["role"]["enum"]
        assert list(rkw.CLAIM_KINDS) == case["open_claims"]["items"]["properties"]["kind"]["enum"]
        media = case["documents"]["items"]["properties"]["media_type"]["enum"]
        assert sorted(rkw.MEDIA_TYPES) == media
        assert {p: rkw.MAX_ITEMS[p] for p in case} == {p: case[p]["maxItems"] for p in case}

    def test_ids_follow_the_codes_patterns(self):
        """Message, event, office, pseudonym, consent and timestamp patterns are the code's."""
        props = SCHEMA["properties"]
        body = props["body"]["properties"]
        decision = props["decision"]["properties"]
        basis = decision["basis"]["properties"]
        expected = {
            "message_id": stages.MESSAGE_ID.pattern,
            "event_id": rkw.EVENT_ID.pattern,
            "office": rkw.OFFICE_ID.pattern,
            "person": rkw.PSEUDONYM.pattern,
            "request_id": stages.MESSAGE_ID.pattern,
            "consent_record": consent.RECORD_ID.pattern,
            "decided_at": consent.TIMESTAMP.pattern,
        }
        actual = {
            "message_id": props["message_id"]["pattern"],
            "event_id": props["event_id"]["pattern"],
            "office": props["office"]["pattern"],
            "person": body["person"]["pattern"],
            "request_id": decision["request_id"]["pattern"],
            "consent_record": basis["consent_record"]["pattern"],
            "decided_at": decision["decided_at"]["pattern"],
        }
        assert {k: f"^{v}$" for k, v in expected.items()} == actual
        assert body["event_id"]["pattern"] == props["event_id"]["pattern"]
