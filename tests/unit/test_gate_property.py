"""Property: the gate never lets a category cross without a basis valid at the time of decision.

Hypothesis generates people, consent grants, revocations, expiries and
supersessions at random times (some for records never granted), a random
policy (statutory bases by office, portal, Rechtskreis or wildcard, with or
without special categories; random purpose limits) and a request at a random
time. An oracle written from the raw events, independent of ``consent.fold``
and of the gate's matching, checks every decision:

- every allowed category was asked for and is within the purpose's limit;
- it is covered by the decision's one basis: a consent of the person, valid
  at ``now`` (granted, within its window, no revocation, expiry or supersession
  effective at or before ``now``), given to the sending office, naming the
  recipient, the purpose and the category, which is not special; or a statute
  of the policy for the purpose and route that lists it;
- a revocation effective at or before ``now`` always removes its consent;
- when one basis covers everything asked for, the gate allows it all;
- the decision does not depend on the order of the events.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import event, given, settings
from hypothesis import strategies as st

from hub.core import consent
from hub.core.consent import ConsentEvent, EventKind
from hub.core.gate import ANY, Parties, Policy, StatutoryBasis, decide
from hub.core.transfer import CATEGORIES, PURPOSES, SPECIAL_CATEGORIES, Outcome, TransferRequest
from tests.consent_support import ALICE, BOB, OFFICES, PORTALS, T0

PEOPLE = [ALICE, BOB]
OFFICE_IDS = sorted(OFFICES)
PARTIES = [*OFFICE_IDS, *sorted(PORTALS)]
CATEGORY_CODES = sorted(CATEGORIES)
RECHTSKREISE = sorted(set().union(*OFFICES.values()))
HORIZON = 200  # days

minutes = st.integers(min_value=0, max_value=HORIZON * 24 * 60)


def at(minute: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute)


@st.composite
def grants(draw: st.DrawFn) -> ConsentEvent:
    sender = draw(st.sampled_from(OFFICE_IDS))
    recipients = draw(st.sets(st.sampled_from([o for o in OFFICE_IDS if o != sender]), min_size=1))
    categories = draw(st.sets(st.sampled_from(CATEGORY_CODES), min_size=1, max_size=4))
    collected = draw(minutes)
    start = collected + draw(st.integers(min_value=0, max_value=20 * 24 * 60))
    length = draw(st.none() | st.integers(min_value=1, max_value=120 * 24 * 60))
    return consent.grant(
        person=draw(st.sampled_from(PEOPLE)),
        granting_office=sender,
        recipients=recipients,
        purpose=draw(st.sampled_from(sorted(PURPOSES))),
        categories=categories,
        text_version="t" + str(draw(st.integers(0, 3))),
        channel="portal",
        collected_at=at(collected),
        valid_from=at(start),
        valid_until=None if length is None else at(start + length),
        sensitive=bool(categories & SPECIAL_CATEGORIES),
    )


@st.composite
def histories(draw: st.DrawFn) -> list[ConsentEvent]:
    """Grants and events about them (and about records never granted)."""
    granted = draw(st.lists(grants(), min_size=0, max_size=5))
    phantom = draw(st.lists(grants(), max_size=1))  # events may name records never granted
    known = granted + phantom
    events: list[ConsentEvent] = list(granted)
    if not known:
        return events
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        target = draw(st.sampled_from(known))
        kind = draw(st.sampled_from([EventKind.REVOKED, EventKind.EXPIRED, EventKind.SUPERSEDED]))
        when = at(draw(minutes))
        if kind is EventKind.REVOKED:
            events.append(
                consent.revoke(
                    person=target.person,
                    record_id=target.record_id,
                    effective_at=when,
                    channel="portal",
                )
            )
        elif kind is EventKind.EXPIRED:
            events.append(
                consent.expire(person=target.person, record_id=target.record_id, effective_at=when)
            )
        else:
            successor = draw(st.sampled_from(known))
            if successor.record_id != target.record_id:
                events.append(consent.supersede(target.record_id, successor))
    return events


@st.composite
def sides(draw: st.DrawFn) -> Parties:
    choice = draw(
        st.sampled_from(["offices", "portals", "rechtskreise", "any-office", "any-portal"])
    )
    if choice == "offices":
        return Parties(offices=frozenset(draw(st.sets(st.sampled_from(OFFICE_IDS), min_size=1))))
    if choice == "portals":
        return Parties(portals=PORTALS)
    if choice == "rechtskreise":
        return Parties(
            rechtskreise=frozenset(draw(st.sets(st.sampled_from(RECHTSKREISE), min_size=1)))
        )
    if choice == "any-office":
        return Parties(offices=frozenset({ANY}))
    return Parties(portals=frozenset({ANY}))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    bases = tuple(
        StatutoryBasis(
            basis_id=f"basis-{index}",
            legal_reference="§ 69 SGB X",
            purposes=frozenset(draw(st.sets(st.sampled_from(sorted(PURPOSES)), min_size=1))),
            senders=draw(sides()),
            recipients=draw(sides()),
            categories=frozenset(draw(st.sets(st.sampled_from(CATEGORY_CODES), max_size=4))),
        )
        for index in range(draw(st.integers(min_value=0, max_value=3)))
    )
    limits = {
        p: frozenset(CATEGORY_CODES) - draw(st.sets(st.sampled_from(CATEGORY_CODES), max_size=3))
        for p in sorted(PURPOSES)
    }
    return Policy(purpose_categories=limits, bases=bases, offices=OFFICES, portals=PORTALS)


@st.composite
def requests(draw: st.DrawFn) -> TransferRequest:
    sender = draw(st.sampled_from(PARTIES))
    recipient = draw(st.sampled_from([p for p in OFFICE_IDS if p != sender]))

    def rechtskreis(party: str) -> str | None:
        if party not in OFFICES or not draw(st.booleans()):
            return None
        return draw(st.sampled_from(sorted(OFFICES[party])))

    return TransferRequest(
        request_id="req",
        person=draw(st.sampled_from(PEOPLE)),
        from_office=sender,
        to_office=recipient,
        purpose=draw(st.sampled_from(sorted(PURPOSES))),
        categories=frozenset(draw(st.sets(st.sampled_from(CATEGORY_CODES), max_size=5))),
        at=at(0),
        from_rechtskreis=rechtskreis(sender),
        to_rechtskreis=rechtskreis(recipient),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[list[ConsentEvent], Policy, TransferRequest, dt.datetime]:
    """Events, a policy, a request and a time; half of the requests aim at a granted consent.

    Aimed requests come from a grant's person, sender, a recipient and its purpose, with some
    of its categories and maybe others, at a time near its start: without them almost every
    random request would be denied and the allow paths would go untested.
    """
    events = draw(histories())
    ask = draw(requests())
    now = at(draw(minutes))
    granted = [e.record for e in events if e.record is not None]
    if granted and draw(st.booleans()):
        record = draw(st.sampled_from(granted))
        extra = draw(st.sets(st.sampled_from(CATEGORY_CODES), max_size=2))
        ask = dataclasses.replace(
            ask,
            person=record.person,
            from_office=record.granting_office,
            to_office=draw(st.sampled_from(sorted(record.recipients))),
            purpose=record.purpose,
            categories=frozenset(
                draw(st.sets(st.sampled_from(sorted(record.categories)), min_size=1)) | extra
            ),
            from_rechtskreis=None,
            to_rechtskreis=None,
        )
        start = int((record.valid_from - T0).total_seconds() // 60)
        now = at(start + draw(st.integers(min_value=-2 * 24 * 60, max_value=30 * 24 * 60)))
    return events, draw(policies()), ask, now


# --- the oracle: written from the raw events and the policy, not from the code under test ------


def consent_valid(
    record: consent.ConsentRecord, events: list[ConsentEvent], now: dt.datetime
) -> bool:
    if not record.valid_from <= now:
        return False
    if record.valid_until is not None and not now < record.valid_until:
        return False
    ended = [
        e
        for e in events
        if e.record_id == record.record_id
        and e.kind is not EventKind.GRANTED
        and e.effective_at <= now
    ]
    return not ended


def side_matches(parties: Parties, party: str, rechtskreis: str | None) -> bool:
    if party in parties.offices or party in parties.portals:
        return True
    if ANY in parties.offices and party in OFFICES:
        return True
    if ANY in parties.portals and party in PORTALS:
        return True
    if parties.rechtskreise and party in OFFICES:
        if rechtskreis is not None:
            return rechtskreis in OFFICES[party] and rechtskreis in parties.rechtskreise
        return OFFICES[party] <= parties.rechtskreise
    return False


def statute_applies(basis: StatutoryBasis, ask: TransferRequest) -> bool:
    return (
        ask.purpose in basis.purposes
        and side_matches(basis.senders, ask.from_office, ask.from_rechtskreis)
        and side_matches(basis.recipients, ask.to_office, ask.to_rechtskreis)
    )


def consent_covers(record: consent.ConsentRecord, ask: TransferRequest) -> frozenset[str]:
    if (
        record.person != ask.person
        or record.granting_office != ask.from_office
        or ask.to_office not in record.recipients
        or record.purpose != ask.purpose
    ):
        return frozenset()
    return frozenset(record.categories) - SPECIAL_CATEGORIES


@settings(max_examples=500, deadline=None)
@given(scenarios(), st.randoms(use_true_random=False))
def test_no_category_without_a_basis_valid_now(scenario, shuffle):
    """Every allowed category has one basis valid at now; revoked consents never count."""
    events, policy, ask, now = scenario
    records = {e.record_id: e.record for e in events if e.record is not None}
    decision = decide(ask, consent.fold(events).values(), policy, now)
    limit = policy.purpose_categories[ask.purpose]
    event(f"{decision.outcome.value} by {decision.basis.kind if decision.basis else None}")

    assert decision.categories <= ask.categories & limit
    assert decision.reason is None or type(decision.reason) is str  # a code, as JSON shows it
    assert {c for c, _ in decision.dropped} == set(ask.categories - decision.categories)
    if decision.outcome is Outcome.DENY:
        assert (frozenset(), None) == (decision.categories, decision.basis)
    else:
        basis = decision.basis
        assert basis is not None
        if basis.kind == "consent":
            record = records[basis.consent_record]
            assert consent_valid(record, events, now)
            assert decision.categories <= consent_covers(record, ask)
            revoked = [
                e
                for e in events
                if e.kind is EventKind.REVOKED
                and e.record_id == record.record_id
                and e.effective_at <= now
            ]
            assert not revoked
        else:
            (statute,) = [b for b in policy.bases if b.basis_id == basis.basis_id]
            assert statute_applies(statute, ask)
            assert decision.categories <= statute.categories
        assert decision.categories or not ask.categories

    # Liveness: one basis covering everything asked (within the limit) means everything is allowed.
    wanted = ask.categories & limit
    full = [
        r
        for r in records.values()
        if consent_valid(r, events, now) and wanted <= consent_covers(r, ask)
    ] + [b for b in policy.bases if statute_applies(b, ask) and wanted <= b.categories]
    if full and wanted:
        assert wanted == decision.categories

    # Order independence.
    reordered = list(events)
    shuffle.shuffle(reordered)
    again = decide(ask, consent.fold(reordered).values(), policy, now)
    assert decision == again


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.integers(min_value=0, max_value=10_000))
def test_revocation_removes_coverage(scenario, before):
    """Adding a revocation effective before now of the deciding consent takes that basis away."""
    events, _, ask, now = scenario
    policy = Policy(offices=OFFICES, portals=PORTALS)  # consent only
    event(
        f"{'consent' if decide(ask, consent.fold(events).values(), policy, now).basis else 'none'}"
    )
    decision = decide(ask, consent.fold(events).values(), policy, now)
    if decision.basis is None or decision.basis.consent_record is None:
        return
    record_id = decision.basis.consent_record
    revocation = consent.revoke(
        person=ask.person,
        record_id=record_id,
        effective_at=now - dt.timedelta(minutes=before),
        channel="portal",
    )
    after = decide(ask, consent.fold([*events, revocation]).values(), policy, now)
    assert after.basis is None or after.basis.consent_record != record_id
