"""The transfer gate: may personal data cross from one office to another, now? Pure.

:func:`decide` answers a :class:`~hub.core.transfer.TransferRequest` from the
person's consent states (:mod:`hub.core.consent`) and the data protection
officer's :class:`Policy` (statutory bases and the categories each purpose may
ever carry; loaded by ``hub.policy``). Strict by default: without a basis
nothing crosses. docs/consent.md#the-transfer-gate describes the rules; in
order:

1. The request must be well-formed (known purpose and category codes, a
   pseudonym, two different parties, aware times), else deny ``TRANSFER_INVALID``.
2. Data minimisation: categories the policy never lets the purpose carry are
   dropped (``PURPOSE_LIMIT``).
3. Candidate bases, each with the asked-for categories it covers:
   a consent of the person, valid at ``now``, given to the sending office,
   naming the recipient and the purpose (covers the categories it names,
   never a special one); a statutory basis of the policy for the purpose whose
   sender and recipient sides match (covers the categories it lists, special
   ones included: only a statute can carry them).
4. The basis covering the most categories wins; on a tie a consent before a
   statute, then the smaller id. A decision carries exactly one basis, the one
   the audit log records. Categories it does not cover are dropped, each with
   its reason.
5. Outcome: ``allow`` when everything asked for is covered; ``allow-minimised``
   when some of it is; ``deny`` when nothing is and data was asked for. A
   request for no categories is a data-free notice (a case is coming): allowed
   by any candidate basis, since a statute with no categories covers it.

The decision's ``reason`` (for ``deny`` and ``allow-minimised``) is the first of
the dropped categories' reasons in :data:`REASON_PRECEDENCE`: news about the
person's consent first, then missing bases, then the rules that always drop
(special categories, another basis, the purpose's limit).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.core import transfer
from hub.core.consent import ConsentState, Status, valid_at
from hub.core.errors import Reason
from hub.core.model import Submission
from hub.core.pseudonym import PSEUDONYM
from hub.core.transfer import (
    CATEGORIES,
    PURPOSES,
    SPECIAL_CATEGORIES,
    Basis,
    Decision,
    Outcome,
    TransferRequest,
)

ANY = "*"
# The office table's list: AufenthG is an Ausländerbehörde (a recipient, never a case's Rechtskreis).
RECHTSKREISE = (*transfer.RECHTSKREISE, "AufenthG")
CONSENT_LEGAL_REFERENCE = "§ 67b SGB X, Art. 6 (1) a, Art. 7 GDPR"

# Without a policy file: every purpose may carry every category except the special ones.
DEFAULT_PURPOSE_CATEGORIES: Mapping[str, frozenset[str]] = {
    purpose: frozenset(CATEGORIES) - SPECIAL_CATEGORIES for purpose in PURPOSES
}

REASON_PRECEDENCE: tuple[Reason, ...] = (
    Reason.CONSENT_REVOKED,
    Reason.CONSENT_SUPERSEDED,
    Reason.CONSENT_EXPIRED,
    Reason.CONSENT_NOT_YET_VALID,
    Reason.CONSENT_SCOPE,
    Reason.CONSENT_MISSING,
    Reason.NO_BASIS,
    Reason.SPECIAL_CATEGORY,
    Reason.OTHER_BASIS,
    Reason.PURPOSE_LIMIT,
)
_STATUS_REASON = {
    Status.REVOKED: Reason.CONSENT_REVOKED,
    Status.SUPERSEDED: Reason.CONSENT_SUPERSEDED,
    Status.EXPIRED: Reason.CONSENT_EXPIRED,
    Status.NOT_YET_VALID: Reason.CONSENT_NOT_YET_VALID,
}


@dataclass(frozen=True, slots=True)
class Parties:
    """One side (senders or recipients) of a statutory basis.

    A party matches when it is named in ``offices`` or ``portals``; ``"*"``
    there means every office of the office table or every portal of the portal
    table the policy was loaded with. ``rechtskreise`` matches an office of the
    office table by the Rechtskreis the request names for that side (the office
    must decide in it), or, when the request names none, when every Rechtskreis
    the office decides in is listed.
    """

    offices: frozenset[str] = frozenset()
    portals: frozenset[str] = frozenset()
    rechtskreise: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class StatutoryBasis:
    """A statutory power to transfer, as the data protection officer wrote it down.

    ``categories`` may be empty: then the basis carries a data-free notice only.
    """

    basis_id: str
    legal_reference: str
    purposes: frozenset[str]
    senders: Parties
    recipients: Parties
    categories: frozenset[str] = frozenset()
    description: str = ""


@dataclass(frozen=True, slots=True)
class Policy:
    """The gate's rules beyond consent. ``Policy()`` is the strict default: no statutory bases."""

    purpose_categories: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: dict(DEFAULT_PURPOSE_CATEGORIES)
    )
    bases: tuple[StatutoryBasis, ...] = ()
    offices: Mapping[str, frozenset[str]] = field(default_factory=dict)  # id -> Rechtskreise
    portals: frozenset[str] = frozenset()
    consent_legal_reference: str = CONSENT_LEGAL_REFERENCE


def _party_matches(parties: Parties, party: str, rechtskreis: str | None, policy: Policy) -> bool:
    if party in parties.offices or (ANY in parties.offices and party in policy.offices):
        return True
    if party in parties.portals or (ANY in parties.portals and party in policy.portals):
        return True
    decides = policy.offices.get(party)
    if not parties.rechtskreise or not decides:
        return False
    if rechtskreis is not None:
        return rechtskreis in decides and rechtskreis in parties.rechtskreise
    return decides <= parties.rechtskreise


def applies(basis: StatutoryBasis, request: TransferRequest, policy: Policy) -> bool:
    """Whether ``basis`` covers the request's purpose, sender and recipient (categories aside)."""
    return (
        request.purpose in basis.purposes
        and _party_matches(basis.senders, request.from_office, request.from_rechtskreis, policy)
        and _party_matches(basis.recipients, request.to_office, request.to_rechtskreis, policy)
    )


def _aware(moment: dt.datetime) -> bool:
    return moment.tzinfo is not None and moment.utcoffset() is not None


def _well_formed(request: TransferRequest) -> bool:
    return (
        PSEUDONYM.fullmatch(request.person) is not None
        and request.purpose in PURPOSES
        and request.categories.issubset(CATEGORIES)
        and bool(request.from_office)
        and bool(request.to_office)
        and request.from_office != request.to_office
        and _aware(request.at)
        and request.from_rechtskreis in (None, *RECHTSKREISE)
        and request.to_rechtskreis in (None, *RECHTSKREISE)
    )


@dataclass(frozen=True, slots=True)
class _Candidate:
    covers: frozenset[str]
    rank: int  # 0 consent, 1 statute
    ident: str
    basis: Basis

    def key(self) -> tuple[int, int, str]:
        return (-len(self.covers), self.rank, self.ident)


def _consent_reason(relevant: Iterable[ConsentState], now: dt.datetime) -> Reason | None:
    """Why the consents naming sender, recipient and purpose (and the category) do not serve."""
    statuses = {s.status(now) for s in relevant}
    for status in (Status.REVOKED, Status.SUPERSEDED, Status.EXPIRED, Status.NOT_YET_VALID):
        if status in statuses:
            return _STATUS_REASON[status]
    return None


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the gate found for one request: the person's consents, the candidates, the limit."""

    limit: frozenset[str]
    mine: tuple[ConsentState, ...]  # the person's usable records, any status
    relevant: tuple[ConsentState, ...]  # of those: this sender, recipient and purpose
    statutes: tuple[StatutoryBasis, ...]  # the policy's bases for this route and purpose
    candidates: tuple[_Candidate, ...]

    def reason(self, category: str | None, now: dt.datetime) -> Reason:
        """Why ``category`` (``None``: a data-free notice) is not allowed by the chosen basis."""
        if category is not None and category not in self.limit:
            return Reason.PURPOSE_LIMIT
        if category is not None and any(category in c.covers for c in self.candidates):
            return Reason.OTHER_BASIS
        if category in SPECIAL_CATEGORIES:
            return Reason.SPECIAL_CATEGORY
        naming = (
            s
            for s in self.relevant
            if category is None or (s.record is not None and category in s.record.categories)
        )
        found = _consent_reason(naming, now)
        if found is not None:
            return found
        if self.mine:
            return Reason.CONSENT_SCOPE
        return Reason.CONSENT_MISSING if self.statutes else Reason.NO_BASIS


def _naming(request: TransferRequest, mine: Iterable[ConsentState]) -> tuple[ConsentState, ...]:
    """The records that name the request's sender (granting office), recipient and purpose."""
    return tuple(
        s
        for s in mine
        if s.record is not None
        and s.record.granting_office == request.from_office
        and request.to_office in s.record.recipients
        and s.record.purpose == request.purpose
    )


def valid_consents(
    request: TransferRequest, consents: Iterable[ConsentState], now: dt.datetime
) -> tuple[str, ...]:
    """The record ids, sorted, of the person's consents the gate could rest ``request`` on at ``now``.

    Those that name the sender, the recipient and the purpose and are valid at ``now``
    (whatever categories they cover): what the audit log records as the consents
    valid for the decision (``consents``), beside the one basis the gate chose.
    """
    mine = (s for s in consents if s.person == request.person and not s.conflict)
    return tuple(sorted(s.record_id for s in _naming(request, mine) if valid_at(s, now)))


def _facts(
    request: TransferRequest, consents: Iterable[ConsentState], policy: Policy, now: dt.datetime
) -> _Facts:
    limit = policy.purpose_categories.get(request.purpose, frozenset())
    wanted = request.categories & limit
    mine = tuple(s for s in consents if s.person == request.person and not s.conflict)
    relevant = _naming(request, mine)
    candidates = [
        _Candidate(
            covers=wanted & (s.record.categories - SPECIAL_CATEGORIES),
            rank=0,
            ident=s.record_id,
            basis=Basis(
                kind="consent",
                legal_reference=policy.consent_legal_reference,
                consent_record=s.record_id,
            ),
        )
        for s in relevant
        if s.record is not None and s.status(now) is Status.VALID
    ]
    statutes = tuple(b for b in policy.bases if applies(b, request, policy))
    candidates += [
        _Candidate(
            covers=wanted & b.categories,
            rank=1,
            ident=b.basis_id,
            basis=Basis(kind="statute", legal_reference=b.legal_reference, basis_id=b.basis_id),
        )
        for b in statutes
    ]
    return _Facts(limit, mine, relevant, statutes, tuple(sorted(candidates, key=_Candidate.key)))


def decide(
    request: TransferRequest,
    consents: Iterable[ConsentState],
    policy: Policy,
    now: dt.datetime,
) -> Decision:
    """The gate's decision on ``request`` at ``now`` (see the module docstring for the rules)."""
    if not _aware(now):
        raise ValueError("now must be timezone-aware")
    rid = request.request_id
    if not _well_formed(request):
        return Decision(rid, Outcome.DENY, reason=Reason.TRANSFER_INVALID.value, decided_at=now)
    facts = _facts(request, consents, policy, now)
    best = facts.candidates[0] if facts.candidates else None
    asked = request.categories
    if not asked:  # a data-free notice
        if best is not None:
            return Decision(rid, Outcome.ALLOW, basis=best.basis, decided_at=now)
        return Decision(rid, Outcome.DENY, reason=facts.reason(None, now).value, decided_at=now)
    covered = best.covers if best is not None else frozenset()
    dropped = tuple(sorted((c, facts.reason(c, now).value) for c in asked - covered))
    if best is None or not covered:
        return Decision(
            rid, Outcome.DENY, reason=_overall(dropped), decided_at=now, dropped=dropped
        )
    return Decision(
        rid,
        Outcome.ALLOW if covered == asked else Outcome.ALLOW_MINIMISED,
        categories=covered,
        basis=best.basis,
        reason=_overall(dropped) if dropped else None,
        decided_at=now,
        dropped=dropped,
    )


def _overall(dropped: tuple[tuple[str, str], ...]) -> str:
    reasons = {reason for _, reason in dropped}
    return next(r.value for r in REASON_PRECEDENCE if r.value in reasons)


# --- helpers for callers ---------------------------------------------------------------------


# What a delivered application can carry: the canonical submission's persons, household and
# evidence documents. Amounts (income, rent) are not in the canonical model or the vendor formats.
APPLICATION_CATEGORIES = frozenset({"identity-address", "household", "documents"})


def application_categories(submission: Submission) -> frozenset[str]:
    """The categories the canonical submission carries, for an ``application-delivery`` request.

    Persons and third parties are identity and address; more than one person is
    a household; documents are documents, whatever they show (a payload type
    that marks medical evidence could report ``health``). Always a subset of
    :data:`APPLICATION_CATEGORIES`.
    """
    categories = {"identity-address"} if submission.persons or submission.third_parties else set()
    if len(submission.persons) > 1:
        categories.add("household")
    if submission.documents:
        categories.add("documents")
    return frozenset(categories)


def decision_to_json(decision: Decision) -> dict[str, Any]:
    """The decision as the audit log and ``sozialhub gate decide`` show it: codes and ids only."""
    basis = decision.basis
    return {
        "request_id": decision.request_id,
        "outcome": decision.outcome.value,
        "categories": sorted(decision.categories),
        "basis": None
        if basis is None
        else {
            "kind": basis.kind,
            "legal_reference": basis.legal_reference,
            "basis_id": basis.basis_id,
            "consent_record": basis.consent_record,
        },
        "reason": decision.reason,
        "dropped": dict(decision.dropped),
        "decided_at": None
        if decision.decided_at is None
        else decision.decided_at.astimezone(dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
    }
