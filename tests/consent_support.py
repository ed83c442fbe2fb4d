"""Builders for consent and gate tests: fixed people, offices, times and a default grant."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hub.core import consent
from hub.core.gate import Policy, StatutoryBasis
from hub.core.transfer import TransferRequest

ALICE = "psn-test-" + "a" * 32
BOB = "psn-test-" + "b" * 32
T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)

# A small office table for the gate: id -> Rechtskreise it decides in.
OFFICES = {
    "soa-marl": frozenset({"SGB XII", "AsylbLG"}),
    "jc-re-marl": frozenset({"SGB II"}),
    "wgs-marl": frozenset({"WoGG"}),
    "kreis-re-fd59": frozenset({"SGB IX"}),
    "jugendamt-marl": frozenset({"SGB VIII"}),
}
PORTALS = frozenset({"sozialplattform-nrw"})


def granted(**changes: Any) -> consent.ConsentEvent:
    """A valid grant: Alice, Sozialamt Marl to Jobcenter Marl, handover, identity and income."""
    fields: dict[str, Any] = {
        "person": ALICE,
        "granting_office": "soa-marl",
        "recipients": ["jc-re-marl"],
        "purpose": "rechtskreiswechsel-handover",
        "categories": ["identity-address", "income"],
        "text_version": "rkw-2026-01",
        "channel": "portal",
        "collected_at": T0,
    }
    fields.update(changes)
    return consent.grant(**fields)


def request(**changes: Any) -> TransferRequest:
    """Alice's handover request from the Sozialamt to the Jobcenter for identity and income."""
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "person": ALICE,
        "from_office": "soa-marl",
        "to_office": "jc-re-marl",
        "purpose": "rechtskreiswechsel-handover",
        "categories": frozenset({"identity-address", "income"}),
        "at": T0 + DAY,
    }
    fields.update(changes)
    return TransferRequest(**fields)


def policy(*bases: StatutoryBasis, **changes: Any) -> Policy:
    """The strict default with the test office and portal tables and the bases given."""
    fields: dict[str, Any] = {"bases": bases, "offices": OFFICES, "portals": PORTALS}
    fields.update(changes)
    return Policy(**fields)
