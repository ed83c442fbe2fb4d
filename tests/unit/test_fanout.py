"""Rechtskreiswechsel fan-out: who gets what, always through the gate, never more than it allowed.

The gate is a fake here (tests/rkw_support.py): the fan-out knows it only as a
``Callable[[TransferRequest], Decision]``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub import offices, subscriptions
from hub.config import load
from hub.core import fanout
from hub.core import rechtskreiswechsel as rkw
from hub.core.errors import Reason, Rejection
from hub.core.fanout import Kind, fan_out
from hub.core.route import OfficeTable
from hub.core.subscriptions import Role, Subscription, Subscriptions, Trigger
from hub.core.transfer import (
    CATEGORIES,
    PURPOSES,
    SPECIAL_CATEGORIES,
    Basis,
    Decision,
    Outcome,
    TransferRequest,
)
from tests.rkw_support import (
    AT,
    CONSENT,
    STATUTE,
    Recording,
    allow_all,
    data_free_only,
    deny_all,
    events,
    example,
    minimised_to,
    pseudonym,
)


@functools.cache
def shipped() -> tuple[OfficeTable, Subscriptions]:
    config = load({})
    table = offices.load(config.offices_file, config.schema_dir)
    return table, subscriptions.load(subscriptions.default_path(config), config.schema_dir, table)


def marl() -> rkw.RechtskreisChange:
    return rkw.decode_event(example("01-recognition-marl.json").read_bytes())


def plan(event: rkw.RechtskreisChange, gate: Any) -> fanout.FanOut:
    table, subs = shipped()
    return fan_out(event, subs, table, gate, AT)


def by_office(result: fanout.FanOut) -> dict[str, fanout.Message]:
    return {m.office: m for m in result.messages}


def incapacity(**case: Any) -> rkw.RechtskreisChange:
    person = pseudonym(7)
    return rkw.RechtskreisChange.create(
        person,
        rkw.Side("SGB II", "jc-re-dorsten"),
        rkw.Side("SGB XII", "soa-dorsten"),
        "05562012",
        dt.date(2027, 1, 1),
        "permanent-incapacity",
        rkw.CaseData(
            household=(rkw.HouseholdMember(person, "self"),),
            documents=(
                rkw.DocumentRef("a" * 64, "application/pdf", "health"),
                rkw.DocumentRef("b" * 64, "application/pdf", "income"),
            ),
            **case,
        ),
    )


def body_categories(body: dict[str, Any] | None) -> frozenset[str]:
    """The categories a message body carries, read from the body alone."""
    if body is None:
        return frozenset()
    found: set[str] = set()
    case = body.get("case", {})
    for part in ("household", "benefit_periods", "open_claims"):
        found |= {item["category"] for item in case.get(part, [])}
    for document in case.get("documents", []):
        found |= {"documents", document["category"]}
    if "reason" in body:
        revealed = rkw.REASON_CATEGORIES[body["reason"]["code"]]
        found |= {revealed} if revealed else set()
    return frozenset(found)


class TestNewOffice:
    def test_handover_when_allowed(self):
        """Allowed: the Jobcenter gets the declared case data; the health document stays behind."""
        message = by_office(plan(marl(), allow_all()))["jc-re-marl"]
        documents = [d["category"] for d in message.body["case"]["documents"]]
        expected = (
            Kind.HANDOVER,
            frozenset({"household", "income", "housing-costs", "residence-status", "documents"}),
            ["residence-status", "housing-costs"],
            "recognition",
        )
        actual = (message.kind, message.categories, documents, message.body["reason"]["code"])
        assert expected == actual

    def test_notice_when_refused(self):
        """Refused: a data-free notice asked for separately, with the refusal's reason code."""
        message = by_office(plan(marl(), data_free_only))["jc-re-marl"]
        expected = (
            Kind.NOTICE,
            frozenset(),
            {"event_id", "person", "effective_date", "from", "to", "case_data", "refusal"},
            ("refused", "CONSENT_MISSING"),
            Outcome.DENY,
        )
        actual = (
            message.kind,
            message.categories,
            set(message.body),
            (message.body["case_data"], message.body["refusal"]),
            message.refused.outcome,
        )
        assert expected == actual

    def test_withheld_when_even_the_notice_is_refused(self):
        """Nothing allowed: nothing delivered; both refusals stay for the audit log."""
        message = by_office(plan(marl(), deny_all))["jc-re-marl"]
        expected = (Kind.WITHHELD, None, False, Outcome.DENY, Outcome.DENY)
        actual = (
            message.kind,
            message.body,
            message.deliverable,
            message.decision.outcome,
            message.refused.outcome,
        )
        assert expected == actual

    def test_minimised(self):
        """Allowed only the household: no documents, no claims, and no reason (residence status)."""
        message = by_office(plan(marl(), minimised_to(frozenset({"household"}))))["jc-re-marl"]
        case = message.body["case"]
        expected = (Kind.HANDOVER, frozenset({"household"}), 3, [], [], [], False)
        actual = (
            message.kind,
            message.categories,
            len(case["household"]),
            case["documents"],
            case["open_claims"],
            case["benefit_periods"],
            "reason" in message.body,
        )
        assert expected == actual

    def test_documents_need_their_own_category_too(self):
        """Documents allowed but housing costs not: the rent contract does not travel."""
        gate = minimised_to(frozenset({"documents", "residence-status"}))
        message = by_office(plan(marl(), gate))["jc-re-marl"]
        expected = ["residence-status"]
        assert expected == [d["category"] for d in message.body["case"]["documents"]]

    def test_special_categories_never_on_consent(self):
        """A gate allowing health data on consent is overruled: no health document, no reason."""
        message = by_office(plan(incapacity(), allow_all(CONSENT)))["soa-dorsten"]
        documents = [d["category"] for d in message.body["case"]["documents"]]
        expected = (["income"], False, True)
        actual = (
            documents,
            "reason" in message.body,
            "health" in message.requested,
        )
        assert expected == actual

    def test_special_categories_on_statute(self):
        """On a statute the declared health data travels: the finding and the reason."""
        message = by_office(plan(incapacity(), allow_all(STATUTE)))["soa-dorsten"]
        documents = sorted(d["category"] for d in message.body["case"]["documents"])
        assert (["health", "income"], "permanent-incapacity") == (
            documents,
            message.body["reason"]["code"],
        )

    def test_undeclared_categories_are_never_asked_for(self):
        """Retirement: the health document exists, but no subscription declares health."""
        event = incapacity()
        event = rkw.RechtskreisChange.create(
            event.person,
            event.from_,
            event.to,
            event.area,
            event.effective_date,
            "retirement-age",
            event.case,
        )
        gate = Recording(allow_all())
        plan(event, gate)
        asked = set().union(*(r.categories for r in gate.requests))
        assert "health" not in asked

    def test_nothing_declared_means_notice_only(self):
        """Without a new-office subscription the gate is asked data-free only, once."""
        table, _ = shipped()
        gate = Recording(allow_all())
        result = fan_out(marl(), Subscriptions(), table, gate, AT)
        message = result.messages[0]
        expected = ("jc-re-marl", Kind.NOTICE, "not-requested", [(message.message_id, frozenset())])
        actual = (
            message.office,
            message.kind,
            message.body["case_data"],
            [(r.request_id, r.categories) for r in gate.requests],
        )
        assert expected == actual

    def test_same_office_gets_a_held_notice_without_asking(self):
        """AsylbLG to SGB XII at the same Sozialamt: no transfer, no gate, one notice."""
        gate = Recording(allow_all())
        event = rkw.decode_event(example("02-ukraine-2022-herten.json").read_bytes())
        message = by_office(plan(event, gate))["soa-herten"]
        expected = (Kind.NOTICE, "held", "no-transfer", [])
        actual = (
            message.kind,
            message.body["case_data"],
            message.decision.basis.kind,
            [r for r in gate.requests if r.to_office == "soa-herten"],
        )
        assert expected == actual


class TestOtherOffices:
    def test_old_office_confirmation_without_the_gate(self):
        """The old office gets event id, pseudonym and date back; the gate is not asked for it."""
        gate = Recording(deny_all)
        event = marl()
        message = by_office(plan(event, gate))["soa-marl"]
        expected = (
            Kind.CONFIRMATION,
            {"event_id": event.event_id, "person": event.person, "effective_date": "2026-12-01"},
            frozenset(),
            [],
        )
        actual = (
            message.kind,
            message.body,
            message.categories,
            [r for r in gate.requests if r.to_office == "soa-marl"],
        )
        assert expected == actual

    def test_affected_get_what_the_gate_allows_for_their_purpose(self):
        """Wohngeldstelle and BuT office ask for the household for joint case management."""
        gate = Recording(allow_all())
        result = by_office(plan(marl(), gate))
        asked = {r.to_office: (r.purpose, r.categories) for r in gate.requests}
        expected = {
            "wgs-marl": ("joint-case-management", frozenset({"household"})),
            "but-marl": ("joint-case-management", frozenset({"household"})),
        }
        assert expected == {k: asked[k] for k in expected}
        assert frozenset({"household"}) == result["wgs-marl"].categories

    def test_requests_name_the_rechtskreise(self):
        """Policy bases bound to Rechtskreise match on the request: the new office's names both
        sides, an affected office's only the one the data leaves (it receives in its own).
        """
        gate = Recording(allow_all())
        plan(marl(), gate)
        sides = {r.to_office: (r.from_rechtskreis, r.to_rechtskreis) for r in gate.requests}
        expected = {"jc-re-marl": ("AsylbLG", "SGB II"), "wgs-marl": ("AsylbLG", None)}
        assert expected == {k: sides[k] for k in expected}

    def test_auslaenderbehoerde_is_data_free(self):
        """The Ausländerbehörde declares no categories: one data-free request, an information."""
        gate = Recording(allow_all())
        message = by_office(plan(marl(), gate))["kreis-re-abh"]
        asked = [r.categories for r in gate.requests if r.to_office == "kreis-re-abh"]
        assert ([frozenset()], Kind.INFORMATION, "not-requested") == (
            asked,
            message.kind,
            message.body["case_data"],
        )

    def test_affected_data_free_after_a_refusal(self):
        """Refused the household, the Wohngeldstelle still learns of the change, data-free."""
        message = by_office(plan(marl(), data_free_only))["wgs-marl"]
        assert (Kind.INFORMATION, frozenset(), "refused") == (
            message.kind,
            message.categories,
            message.body["case_data"],
        )

    def test_order(self):
        """New office, old office, then affected offices by id."""
        offices_in_order = [m.office for m in plan(marl(), allow_all()).messages]
        assert [
            "jc-re-marl",
            "soa-marl",
            "but-marl",
            "kreis-re-abh",
            "wgs-marl",
        ] == offices_in_order

    def test_one_message_per_office_whatever_roles_match(self):
        """An office subscribed as affected that is also the new office gets one message."""
        table, subs = shipped()
        extra = Subscription(
            "jc-also-affected",
            Role.AFFECTED,
            "joint-case-management",
            frozenset(),
            ("05562",),
            office="jc-re-marl",
        )
        result = fan_out(marl(), Subscriptions((*subs.entries, extra)), table, allow_all(), AT)
        roles = [m.role for m in result.messages if m.office == "jc-re-marl"]
        assert [Role.NEW_OFFICE] == roles


class TestGateMisbehaving:
    def test_answer_to_another_request_is_a_denial(self):
        """A decision for another request id counts as a denial (RKW_GATE): fail closed."""

        def confused(request: TransferRequest) -> Decision:
            return Decision("rkm-" + "0" * 32, Outcome.ALLOW, request.categories, STATUTE)

        message = by_office(plan(marl(), confused))["jc-re-marl"]
        expected = (Kind.WITHHELD, Reason.RKW_GATE.value, Reason.RKW_GATE.value)
        assert expected == (message.kind, message.decision.reason, message.refused.reason)

    def test_allow_without_basis_is_a_denial(self):
        """An allow with no legal basis is not trusted."""

        def careless(request: TransferRequest) -> Decision:
            return Decision(request.request_id, Outcome.ALLOW, request.categories, None)

        message = by_office(plan(marl(), careless))["jc-re-marl"]
        assert (Kind.WITHHELD, None) == (message.kind, message.body)

    def test_categories_nobody_asked_for_are_not_sent(self):
        """The gate allowing more than asked changes nothing: only requested categories travel."""

        def generous(request: TransferRequest) -> Decision:
            return Decision(request.request_id, Outcome.ALLOW, frozenset(CATEGORIES), STATUTE)

        message = by_office(plan(marl(), generous))["wgs-marl"]
        assert frozenset({"household"}) == message.categories

    def test_invalid_event_is_refused_before_the_gate(self):
        """fan_out validates the event itself; the gate is never asked for an invalid one."""
        gate = Recording(allow_all())
        event = rkw.decode_event(example("09-invalid-reason-waltrop.json").read_bytes())
        with pytest.raises(Rejection):
            plan(event, gate)
        assert [] == gate.requests


class TestRecords:
    def test_ids_are_deterministic(self):
        """The same event fanned out twice gives the same message ids and the same bytes."""
        first, second = plan(marl(), allow_all()), plan(marl(), allow_all())
        assert [fanout.encode_message(m) for m in first.messages] == [
            fanout.encode_message(m) for m in second.messages
        ]

    def test_message_id_is_event_and_office(self):
        """Each message id is derived from the event id and the office, and unique per event."""
        result = plan(marl(), allow_all())
        expected = [fanout.message_id(result.event_id, m.office) for m in result.messages]
        assert (expected, len(expected)) == (
            [m.message_id for m in result.messages],
            len(set(expected)),
        )

    def test_record_carries_decision_and_basis(self):
        """The record has type, version, the decision with its basis, categories, the body."""
        message = by_office(plan(marl(), allow_all()))["jc-re-marl"]
        body = json.loads(fanout.encode_message(message))
        expected = (
            "sozialhub.rechtskreiswechsel-message",
            1,
            "statute",
            "allow",
            sorted(message.categories),
        )
        actual = (
            body["type"],
            body["v"],
            body["decision"]["basis"]["kind"],
            body["decision"]["outcome"],
            body["categories"],
        )
        assert expected == actual

    def test_plan_line_has_no_personal_data(self):
        """The plan line names offices, kinds, categories and bases, never the person."""
        event = marl()
        lines = [json.dumps(fanout.plan_line(m)) for m in plan(event, allow_all()).messages]
        expected: list[str] = []
        assert expected == [line for line in lines if event.person in line or "AZ-50" in line]

    def test_offline_gate(self):
        """The offline gate allows data-free requests only, on a basis marked offline."""
        base = TransferRequest(
            "rkm-" + "1" * 32,
            pseudonym(1),
            "soa-marl",
            "jc-re-marl",
            "rechtskreiswechsel-handover",
            frozenset(),
            AT,
        )
        free = fanout.offline_gate(base)
        full = fanout.offline_gate(dataclasses.replace(base, categories=frozenset({"income"})))
        assert (Outcome.ALLOW, "offline", Outcome.DENY) == (
            free.outcome,
            free.basis.kind,
            full.outcome,
        )


# --- property -----------------------------------------------------------------------------

CITY_AREAS = ["05562", "05562004", "05562012", "05562020", "05562024", "05562032"]
AFFECTED_OFFICES = [
    "kreis-re-abh",
    "wgs-marl",
    "but-marl",
    "wgs-herten",
    "jc-re-marl",
    "soa-dorsten",
    "kreis-re-elterngeld",
]
RECHTSKREISE = ["AsylbLG", "SGB II", "SGB XII", None]


@st.composite
def triggers(draw: st.DrawFn) -> tuple[Trigger, ...]:
    return tuple(
        Trigger(
            draw(st.sampled_from(RECHTSKREISE)),
            draw(st.sampled_from(RECHTSKREISE)),
            draw(st.sampled_from([None, "recognition", "retirement-age", "other"])),
        )
        for _ in range(draw(st.integers(0, 2)))
    )


@st.composite
def subscription_sets(draw: st.DrawFn) -> Subscriptions:
    entries = []
    for index in range(draw(st.integers(0, 8))):
        role = draw(st.sampled_from(list(Role)))
        office = draw(st.sampled_from(AFFECTED_OFFICES)) if role is Role.AFFECTED else None
        purpose = (
            draw(st.sampled_from(sorted(PURPOSES)))
            if role is Role.AFFECTED
            else "rechtskreiswechsel-handover"
        )
        categories = (
            frozenset()
            if role is Role.OLD_OFFICE
            else frozenset(draw(st.sets(st.sampled_from(sorted(CATEGORIES)))))
        )
        areas = tuple(draw(st.lists(st.sampled_from(CITY_AREAS), min_size=1, max_size=2)))
        entries.append(
            Subscription(f"s{index}", role, purpose, categories, areas, draw(triggers()), office)
        )
    return Subscriptions(tuple(entries))


@st.composite
def gates(draw: st.DrawFn) -> Any:
    """A gate whose answers are drawn: per request, allow / minimise / deny, statute or consent."""
    answers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(list(Outcome)),
                st.sets(st.sampled_from(sorted(CATEGORIES))),
                st.sampled_from([STATUTE, CONSENT, None]),
            ),
            min_size=1,
            max_size=12,
        )
    )
    calls = iter(range(10**6))

    def gate(request: TransferRequest) -> Decision:
        outcome, extra, basis = answers[next(calls) % len(answers)]
        if outcome is Outcome.DENY:
            return Decision(request.request_id, outcome, reason="NO_BASIS")
        granted = frozenset(extra) if outcome is Outcome.ALLOW_MINIMISED else request.categories
        return Decision(request.request_id, outcome, granted, basis)

    return gate


def _matches(s: Subscription, event: rkw.RechtskreisChange) -> bool:
    """Matching written out again, independently of Subscription.matches."""
    if not [a for a in s.areas if event.area[: len(a)] == a]:
        return False
    if not s.triggers:
        return True
    for t in s.triggers:
        if t.from_rechtskreis not in (None, event.from_.rechtskreis):
            continue
        if t.to_rechtskreis not in (None, event.to.rechtskreis):
            continue
        if t.reason not in (None, event.reason.code):
            continue
        return True
    return False


def addressed(event: rkw.RechtskreisChange, subs: Subscriptions) -> list[str]:
    matched = [s for s in subs.entries if _matches(s, event)]
    found = {event.to.office}
    if any(s.role is Role.OLD_OFFICE for s in matched):
        found.add(event.from_.office)
    found |= {
        s.office
        for s in matched
        if s.role is Role.AFFECTED and s.office not in (event.from_.office, event.to.office)
    }
    return sorted(found)


class TestProperty:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events(), subscription_sets(), gates())
    def test_never_more_than_allowed_and_one_message_per_office(self, event, subs, gate):
        """For any event, subscriptions and gate answers: every addressed office gets exactly one
        message, and no message carries a category its decision did not allow (nor, on consent, a
        special one); a withheld message carries nothing.
        """
        table, _ = shipped()
        result = fan_out(event, subs, table, gate, AT)
        assert addressed(event, subs) == sorted(m.office for m in result.messages)
        assert len(result.messages) == len({m.office for m in result.messages})
        for m in result.messages:
            carried = body_categories(m.body)
            assert carried == m.categories
            if m.kind is Kind.WITHHELD:
                assert (m.body, m.decision.allowed) == (None, False)
                continue
            assert m.decision.allowed
            assert carried <= m.decision.categories
            assert carried <= m.requested
            if m.decision.basis is not None and m.decision.basis.kind == "consent":
                assert not carried & SPECIAL_CATEGORIES

    @settings(max_examples=100, deadline=None)
    @given(events(), subscription_sets())
    def test_gate_is_asked_only_for_declared_categories(self, event, subs):
        """Every request asks for no more than the office's matching subscriptions declare."""
        table, _ = shipped()
        gate = Recording(allow_all())
        fan_out(event, subs, table, gate, AT)
        matched = [s for s in subs.entries if _matches(s, event)]
        for request in gate.requests:
            declared = set().union(
                *(
                    s.categories
                    for s in matched
                    if (s.role is Role.NEW_OFFICE and request.to_office == event.to.office)
                    or (s.role is Role.AFFECTED and s.office == request.to_office)
                )
            )
            assert request.categories <= declared
            assert request.from_office != request.to_office


def test_basis_type_is_the_shared_one():
    """The fan-out's own bases are the shared Basis type (the audit log reads one shape)."""
    assert isinstance(fanout.NO_TRANSFER_BASIS, Basis)
    assert isinstance(fanout.OFFLINE_BASIS, Basis)
