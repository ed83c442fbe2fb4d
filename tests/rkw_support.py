"""Test support for Rechtskreiswechsel: example events, hypothesis strategies, fake gates.

The fake gates stand in for the transfer gate (``hub.core.gate``), which the
fan-out only knows as ``Callable[[TransferRequest], Decision]``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from hub.config import PROJECT_ROOT
from hub.core.model import LEIKA_LIST_URI, Code
from hub.core.rechtskreiswechsel import (
    CLAIM_KINDS,
    HOUSEHOLD_ROLES,
    MEDIA_TYPES,
    REASON_CATEGORIES,
    BenefitPeriod,
    CaseData,
    DocumentRef,
    HouseholdMember,
    OpenClaim,
    RechtskreisChange,
    Side,
)
from hub.core.transfer import CATEGORIES, Basis, Decision, Outcome, TransferRequest

EXAMPLES = PROJECT_ROOT / "examples" / "rechtskreiswechsel"
EXPECTED = json.loads((EXAMPLES / "expected.json").read_text("utf-8"))
VALID_EXAMPLES = [EXAMPLES / e["file"] for e in EXPECTED if e["verdict"] == "planned"]
AT = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
STATUTE = Basis(kind="statute", legal_reference="§ 69 (1) Nr. 1 SGB X", basis_id="test-statute")
CONSENT = Basis(
    kind="consent",
    legal_reference="§ 67b SGB X, Art. 6 (1) a GDPR",
    consent_record="cns-" + "0" * 32,
)

Gate = Callable[[TransferRequest], Decision]


def pseudonym(n: int) -> str:
    return "psn-k2026-" + hashlib.sha256(f"test person {n}".encode()).hexdigest()[:32]


def example(name: str) -> Path:
    return EXAMPLES / name


def example_body(name: str) -> dict[str, Any]:
    return json.loads(example(name).read_text("utf-8"))


# --- fake gates ---------------------------------------------------------------------------


def allow_all(basis: Basis = STATUTE) -> Gate:
    def gate(request: TransferRequest) -> Decision:
        return Decision(
            request.request_id, Outcome.ALLOW, request.categories, basis, None, request.at
        )

    return gate


def deny_all(request: TransferRequest) -> Decision:
    return Decision(request.request_id, Outcome.DENY, reason="NO_BASIS", decided_at=request.at)


def data_free_only(request: TransferRequest) -> Decision:
    if request.categories:
        return Decision(request.request_id, Outcome.DENY, reason="CONSENT_MISSING")
    return Decision(request.request_id, Outcome.ALLOW, basis=STATUTE)


def minimised_to(allowed: frozenset[str], basis: Basis = STATUTE) -> Gate:
    def gate(request: TransferRequest) -> Decision:
        granted = request.categories & allowed
        outcome = Outcome.ALLOW if granted == request.categories else Outcome.ALLOW_MINIMISED
        return Decision(request.request_id, outcome, granted, basis, "CONSENT_SCOPE")

    return gate


class Recording:
    """Wraps a gate and keeps every request it was asked."""

    def __init__(self, gate: Gate) -> None:
        self.gate = gate
        self.requests: list[TransferRequest] = []

    def __call__(self, request: TransferRequest) -> Decision:
        self.requests.append(request)
        return self.gate(request)


# --- strategies ---------------------------------------------------------------------------

category = st.sampled_from(sorted(CATEGORIES))
dates = st.dates(min_value=dt.date(2015, 1, 1), max_value=dt.date(2035, 12, 31))
amounts = st.none() | st.integers(min_value=0, max_value=10**9)


@st.composite
def case_data(draw: st.DrawFn, person: str) -> CaseData:
    others = draw(st.lists(st.integers(0, 10**6), max_size=4, unique=True))
    roles = st.sampled_from(sorted(set(HOUSEHOLD_ROLES) - {"self"}))
    household = [
        HouseholdMember(pseudonym(n), draw(roles), draw(category))
        for n in others
        if pseudonym(n) != person
    ]
    if draw(st.booleans()):
        household.insert(0, HouseholdMember(person, "self", draw(category)))
    periods = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(dates)
        end = draw(st.none() | st.dates(min_value=start, max_value=dt.date(2036, 12, 31)))
        leika = draw(st.from_regex(r"[0-9]{14}", fullmatch=True))
        periods.append(
            BenefitPeriod(Code(leika, LEIKA_LIST_URI), start, end, draw(category), draw(amounts))
        )
    claims = [
        OpenClaim(
            draw(st.sampled_from(sorted(CLAIM_KINDS))),
            draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,20}", fullmatch=True)),
            draw(category),
            draw(amounts),
            draw(st.none() | dates),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    digests = draw(st.lists(st.binary(min_size=1, max_size=8), max_size=4, unique=True))
    documents = [
        DocumentRef(
            hashlib.sha256(d).hexdigest(),
            draw(st.sampled_from(sorted(MEDIA_TYPES))),
            draw(category),
            draw(st.none() | st.integers(1, 2**31)),
        )
        for d in digests
    ]
    return CaseData(tuple(household), tuple(periods), tuple(claims), tuple(documents))


# Transitions the shipped office table has offices for, with the reasons that explain them,
# and a municipality: (from Rechtskreis, from office pattern, to Rechtskreis, to office pattern).
TRANSITIONS = [
    ("AsylbLG", "soa-{city}", "SGB II", "jc-re-{city}", ("recognition", "ukraine-2022", "other")),
    ("AsylbLG", "soa-{city}", "SGB XII", "soa-{city}", ("recognition", "ukraine-2022", "other")),
    (
        "SGB II",
        "jc-re-{city}",
        "SGB XII",
        "soa-{city}",
        ("retirement-age", "permanent-incapacity", "other"),
    ),
    ("SGB XII", "soa-{city}", "SGB II", "jc-re-{city}", ("other",)),
    ("SGB II", "jc-re-{city}", "AsylbLG", "soa-{city}", ("other",)),
]
CITIES = {
    "castrop-rauxel": "05562004",
    "datteln": "05562008",
    "dorsten": "05562012",
    "gladbeck": "05562014",
    "haltern": "05562016",
    "herten": "05562020",
    "marl": "05562024",
    "oer-erkenschwick": "05562028",
    "recklinghausen": "05562032",
    "waltrop": "05562036",
}


@st.composite
def events(draw: st.DrawFn) -> RechtskreisChange:
    """Valid events against the shipped office table."""
    from_rk, from_office, to_rk, to_office, reasons = draw(st.sampled_from(TRANSITIONS))
    from_city, to_city = (
        draw(st.sampled_from(sorted(CITIES))),
        draw(st.sampled_from(sorted(CITIES))),
    )
    person = pseudonym(draw(st.integers(0, 10**6)))
    return RechtskreisChange.create(
        person=person,
        from_=Side(from_rk, from_office.format(city=from_city)),
        to=Side(to_rk, to_office.format(city=to_city)),
        area=CITIES[to_city],
        effective_date=draw(dates),
        reason=draw(st.sampled_from(reasons)),
        case=draw(case_data(person)),
    )


def reason_category(code: str) -> str | None:
    return REASON_CATEGORIES[code]


def message_record(
    office: str, /, *, event_id: str = "rkw-" + "e" * 32, kind: str = "notice", **changes: Any
) -> tuple[bytes, bytes]:
    """A ``handovers.<vendor>`` record (key, value) for ``office``, shaped as rkw_stages.send writes
    one (data-free); ``changes`` replace top-level members, e.g. ``message_id``."""
    from hub.core.fanout import MESSAGE_TYPE, message_id
    from hub.core.rechtskreiswechsel import dumps

    mid = message_id(event_id, office)
    head = {
        "event_id": event_id,
        "person": pseudonym(1),
        "effective_date": "2026-12-01",
        "from": {"rechtskreis": "SGB II", "office": "jc-re-dorsten"},
        "to": {"rechtskreis": "SGB XII", "office": office},
    }
    body: dict[str, Any] = {
        "type": MESSAGE_TYPE,
        "v": 1,
        "message_id": mid,
        "event_id": event_id,
        "office": office,
        "role": "new-office",
        "kind": kind,
        "purpose": "rechtskreiswechsel-handover",
        "categories": [],
        "requested": ["household"],
        "decision": {"request_id": mid, "outcome": "allow", "categories": []},
        "refused": None,
        "subscriptions": ["new-office-sgb12"],
        "body": head,
    }
    body.update(changes)
    key = body["message_id"] if isinstance(body["message_id"], str) else mid
    return key.encode("ascii"), dumps(body)
