"""Who wants to hear about which Rechtskreiswechsel, and what they need. Pure.

A subscription (``config/subscriptions.yml``, loaded by :mod:`hub.subscriptions`)
has a role:

- ``new-office``: the office the case moves to, determined by the event, needs
  these categories for these transitions in these areas (data minimisation:
  only what is declared is ever asked for);
- ``old-office``: the office the case leaves, determined by the event, gets a
  confirmation (no categories);
- ``affected``: a named office (an Ausländerbehörde, a Wohngeldstelle, a BuT
  office) needs these categories for its purpose.

A subscription matches an event when one of its triggers matches (every field a
trigger names equals the event's; no triggers: every event) and the person's
area starts with one of its AGS prefixes. :func:`problems` checks subscriptions
against the office table; :mod:`hub.core.fanout` uses them.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from hub.core.errors import Reason, Rejection
from hub.core.rechtskreiswechsel import REASONS
from hub.core.records import timestamp
from hub.core.route import OfficeTable
from hub.core.transfer import CATEGORIES, PURPOSES, RECHTSKREISE

HANDOVER_PURPOSE = "rechtskreiswechsel-handover"


class Role(enum.StrEnum):
    NEW_OFFICE = "new-office"
    OLD_OFFICE = "old-office"
    AFFECTED = "affected"


@dataclass(frozen=True, slots=True)
class Trigger:
    """A kind of transition; fields left ``None`` match anything."""

    from_rechtskreis: str | None = None
    to_rechtskreis: str | None = None
    reason: str | None = None

    def matches(self, from_rechtskreis: str, to_rechtskreis: str, reason: str) -> bool:
        return (
            self.from_rechtskreis in (None, from_rechtskreis)
            and self.to_rechtskreis in (None, to_rechtskreis)
            and self.reason in (None, reason)
        )


@dataclass(frozen=True, slots=True)
class Subscription:
    subscription_id: str
    role: Role
    purpose: str
    categories: frozenset[str]
    areas: tuple[str, ...]  # AGS prefixes (5 or 8 digits) of the person's area
    triggers: tuple[Trigger, ...] = ()  # none: every transition
    office: str | None = None  # the subscriber, for role affected

    def matches(self, from_rechtskreis: str, to_rechtskreis: str, reason: str, area: str) -> bool:
        if not any(area.startswith(prefix) for prefix in self.areas):
            return False
        return not self.triggers or any(
            t.matches(from_rechtskreis, to_rechtskreis, reason) for t in self.triggers
        )


@dataclass(frozen=True, slots=True)
class Subscriptions:
    entries: tuple[Subscription, ...] = ()

    def matching(
        self, from_rechtskreis: str, to_rechtskreis: str, reason: str, area: str
    ) -> tuple[Subscription, ...]:
        """The subscriptions an event matches, in configuration order."""
        return tuple(
            s for s in self.entries if s.matches(from_rechtskreis, to_rechtskreis, reason, area)
        )


def _overlaps(prefixes: tuple[str, ...], areas: tuple[str, ...]) -> bool:
    return any(p.startswith(a) or a.startswith(p) for p in prefixes for a in areas)


def _check_codes(s: Subscription) -> list[str]:
    found = []
    where = f"subscription {s.subscription_id}"
    if s.purpose not in PURPOSES:
        found.append(f"{where}: unknown purpose")
    if not s.categories <= CATEGORIES.keys():
        found.append(f"{where}: unknown data category")
    for t in s.triggers:
        if not {t.from_rechtskreis, t.to_rechtskreis} - {None} <= set(RECHTSKREISE):
            found.append(f"{where}: unknown Rechtskreis in a trigger")
        if t.reason is not None and t.reason not in REASONS:
            found.append(f"{where}: unknown reason in a trigger")
    if not s.areas:
        found.append(f"{where}: no area")
    return found


def _check_role(s: Subscription, table: OfficeTable) -> list[str]:
    where = f"subscription {s.subscription_id}"
    if s.role is Role.AFFECTED:
        office = table.find(s.office) if s.office else None
        if office is None:
            return [f"{where}: names no office of the office table"]
        if not _overlaps(s.areas, office.areas):
            return [f"{where}: no area overlaps the areas of office {office.office_id}"]
        return []
    found = []
    if s.office is not None:
        found.append(f"{where}: a {s.role} subscription names no office (the event does)")
    if s.purpose != HANDOVER_PURPOSE:
        found.append(f"{where}: a {s.role} subscription has purpose {HANDOVER_PURPOSE}")
    if s.role is Role.OLD_OFFICE and s.categories:
        found.append(f"{where}: the old office's confirmation carries no categories")
    return found


def problems(subscriptions: Subscriptions, table: OfficeTable) -> tuple[str, ...]:
    """What is wrong with the subscriptions, naming subscription and office ids only."""
    found: list[str] = []
    seen: set[str] = set()
    purposes: dict[str, str] = {}
    for s in subscriptions.entries:
        if s.subscription_id in seen:
            found.append(f"duplicate subscription id {s.subscription_id}")
        seen.add(s.subscription_id)
        found += _check_role(s, table)
        found += _check_codes(s)
        if s.role is Role.AFFECTED and s.office is not None:
            # One message per office and event: its subscriptions must agree on the purpose.
            first = purposes.setdefault(s.office, s.purpose)
            if first != s.purpose:
                found.append(
                    f"subscription {s.subscription_id}: office {s.office} is affected "
                    "under two purposes; one office has one purpose"
                )
    return tuple(found)


# --- subscriptions at run time (topic rechtskreiswechsel.subscriptions) ---------------------------

RECORD_TYPE = "sozialhub.subscription"


def with_runtime(
    base: Subscriptions, runtime: Iterable[Subscription], table: OfficeTable
) -> tuple[Subscriptions, tuple[str, ...]]:
    """The configuration's subscriptions, then the run-time ones in id order, each only if it
    adds no problem (:func:`problems`): a run-time subscription never replaces or contradicts
    a configured one. Returns the merged subscriptions and the ids that were refused."""
    entries = list(base.entries)
    refused: list[str] = []
    for subscription in sorted(runtime, key=lambda s: s.subscription_id):
        candidate = Subscriptions((*entries, subscription))
        if problems(candidate, table):
            refused.append(subscription.subscription_id)
            continue
        entries.append(subscription)
    return Subscriptions(tuple(entries)), tuple(refused)


def encode_record(entry: Mapping[str, Any], now: dt.datetime) -> bytes:
    """A run-time subscription as it travels: its configuration entry, as given, in an envelope."""
    return orjson.dumps(
        {"type": RECORD_TYPE, "v": 1, "at": timestamp(now), "subscription": dict(entry)},
        option=orjson.OPT_SORT_KEYS,
    )


def record_entry(value: bytes) -> dict[str, Any]:
    """The configuration entry of a run-time subscription record; ``ENVELOPE`` when it is none."""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise Rejection(Reason.ENVELOPE, "json") from None
    if not isinstance(document, dict) or document.get("type") != RECORD_TYPE:
        raise Rejection(Reason.ENVELOPE, "type")
    if document.get("v") != 1:
        raise Rejection(Reason.ENVELOPE, "v")
    entry = document.get("subscription")
    if not isinstance(entry, dict):
        raise Rejection(Reason.ENVELOPE, "subscription")
    return entry
