"""Transfers of personal data between offices: the shared vocabulary. Pure.

A *transfer request* asks whether one office may send a person's data of
certain categories to another office for a purpose, now. The transfer gate
(``hub.core.gate``) answers with a *decision*: allow (the legal basis and the
categories allowed), allow-minimised (fewer categories than asked), or deny
(a reason code). Consent records (``hub.core.consent``) and the statutory bases
of the data protection officer's policy are the gate's inputs; the
Rechtskreiswechsel fan-out (``hub.core.rechtskreiswechsel``) is its main
caller, and the delivery stage asks it again at send time.

Code lists (version 1), used in schemas, records and the policy file:

- purposes ``urn:sozialhub:codeliste:transfer-purpose`` (:data:`PURPOSES`);
- data categories ``urn:sozialhub:codeliste:data-category`` (:data:`CATEGORIES`);
  :data:`SPECIAL_CATEGORIES` never leave an office on consent alone (Art. 9
  GDPR health data, § 65 SGB VIII youth-welfare data).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field

PURPOSE_LIST_URI = "urn:sozialhub:codeliste:transfer-purpose"
CATEGORY_LIST_URI = "urn:sozialhub:codeliste:data-category"
LIST_VERSION = "1"

PURPOSES: dict[str, str] = {
    "rechtskreiswechsel-handover": "Handover of a case to the office of the new Rechtskreis",
    "joint-case-management": "Joint case management across Rechtskreise",
    "evidence-reuse": "Reuse of evidence the person already submitted (once only)",
    "portal-postbox-delivery": "Delivery of decisions to the person's portal postbox",
    "application-delivery": "Delivery of the person's own application to the responsible office",
}

CATEGORIES: dict[str, str] = {
    "identity-address": "Identity and address",
    "household": "Household / Bedarfsgemeinschaft",
    "income": "Income",
    "assets": "Assets",
    "housing-costs": "Housing costs",
    "residence-status": "Residence status",
    "documents": "Documents (evidence)",
    "health": "Health data (Art. 9 GDPR)",
    "youth-welfare": "Youth-welfare data (§ 65 SGB VIII)",
}

SPECIAL_CATEGORIES = frozenset({"health", "youth-welfare"})

# The Rechtskreise a case can be in (the office table's list, without AufenthG: the
# Ausländerbehörde decides on residence, it pays no benefit a case could move to or from).
RECHTSKREISE: tuple[str, ...] = (
    "SGB II",
    "SGB VIII",
    "SGB IX",
    "SGB XII",
    "AsylbLG",
    "WoGG",
    "BEEG",
    "UVG",
    "BKGG",
)


class Outcome(enum.StrEnum):
    ALLOW = "allow"
    ALLOW_MINIMISED = "allow-minimised"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """May ``from_office`` send ``person``'s ``categories`` to ``to_office`` for ``purpose`` at ``at``?

    ``person`` is a pseudonym (``hub.core.pseudonym``), never an identifier in
    clear. ``request_id`` is deterministic for the thing being transferred (a
    handover id, a delivery id), so a repeated request is recognisable.
    """

    request_id: str
    person: str
    from_office: str
    to_office: str
    purpose: str
    categories: frozenset[str]
    at: dt.datetime
    # The Rechtskreise the transfer leaves and enters, when the caller knows them (a
    # Rechtskreiswechsel does); policy bases bound to Rechtskreise match on them (docs/consent.md).
    from_rechtskreis: str | None = None
    to_rechtskreis: str | None = None


@dataclass(frozen=True, slots=True)
class Basis:
    """The legal basis of an allowed transfer, as it goes into the audit log.

    ``kind`` is ``consent`` (then ``consent_record`` names the record) or
    ``statute`` (then ``basis_id`` names the policy entry); ``legal_reference``
    is the norm, e.g. ``§ 67b SGB X, Art. 6 (1) a GDPR`` or ``§ 69 (1) Nr. 1 SGB X``.
    """

    kind: str  # "consent" | "statute"
    legal_reference: str
    basis_id: str | None = None
    consent_record: str | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """The gate's answer. ``categories`` is what may be sent (empty on deny, or for a data-free notice)."""

    request_id: str
    outcome: Outcome
    categories: frozenset[str] = field(default_factory=frozenset)
    basis: Basis | None = None
    reason: str | None = None  # a reason code (docs/reason-codes.md) when denied or minimised
    decided_at: dt.datetime | None = None
    # Each asked-for category that was not allowed, with its reason code, sorted by category.
    dropped: tuple[tuple[str, str], ...] = ()

    @property
    def allowed(self) -> bool:
        return self.outcome is not Outcome.DENY
