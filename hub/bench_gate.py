"""``sozialhub bench --stage gate``: the transfer gate and the Rechtskreiswechsel fan-out, pure.

In-process, no Kafka. The configuration is the deployment's own: the office
table, the transfer policy (``config/transfer-policy.yml``) and the
subscriptions (``config/subscriptions.yml``) the settings name. The inputs are
generated once per run from a fixed seed, for the ten cities of the office
table that have a Jobcenter, a Sozialamt, a Wohngeldstelle and a BuT office:

- **persons**: each with 0 to 5 consent records (:func:`hub.core.consent.grant`),
  given by the Jobcenter or the Sozialamt to named offices of the same city for
  one purpose; some revoked, expired (by event or by time), superseded by a
  newer grant, or not valid yet. Their states are folded once, as the worker's
  consent table holds them (``states_for(person)``);
- **requests**: a Rechtskreiswechsel handover (consent only, or the data-free
  statute), joint case management with the Wohngeldstelle, evidence reuse,
  applications delivered from a portal (statute, health only for SGB IX) and
  transfers nobody allows. The pool's outcomes (allow, allow-minimised, deny)
  are part of the result, so the mix is visible;
- **events**: Rechtskreiswechsel events (recognition and Ukraine 2022 from
  AsylbLG to SGB II or SGB XII, retirement and incapacity from SGB II to
  SGB XII) of those persons, with household, benefit periods, claims and
  document references.

One run measures, interleaved:

- **gate**: :func:`hub.core.gate.decide` on the next request with the person's
  consent states and the policy;
- **gate passthrough**: the same request written as JSON by the standard
  library (``json.dumps`` of its fields). The gate reads every field of the
  request and the audit log writes it down once anyway; what the gate costs
  beyond that is its own work (consent lookup, statutory bases, minimisation);
- **fan-out**: :func:`hub.core.fanout.fan_out` of the next event with the real
  gate bound to the person's consent states (what the worker passes), giving
  the plan: one message per addressed office, bodies included, not encoded;
- **fan-out passthrough**: the same event written as it travels on
  ``rechtskreiswechsel.events`` (:func:`hub.core.rechtskreiswechsel.encode_event`,
  ``json.dumps`` of its fields). That is what an agent that only forwarded each
  event would do; the fan-out validates the event, finds its subscriptions,
  asks the gate once or twice per office and builds a body per office.

A **ratio** is a rate over the passthrough rate of the same run: compare
ratios across machines, not bare rates. Measurements run in interleaved
slices, in rotated order, until each has had its share of the time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import cycle
from typing import Any

from hub import offices as office_file
from hub import policy as policy_file
from hub import subscriptions as subscription_file
from hub.benchtools import interleaved
from hub.config import Settings
from hub.core import consent
from hub.core.consent import ConsentState
from hub.core.fanout import FanOut, fan_out
from hub.core.gate import Policy, decide
from hub.core.model import LEIKA_LIST_URI, Code
from hub.core.rechtskreiswechsel import (
    BenefitPeriod,
    CaseData,
    DocumentRef,
    HouseholdMember,
    OpenClaim,
    RechtskreisChange,
    Side,
    encode_event,
    validate,
)
from hub.core.route import OfficeTable
from hub.core.subscriptions import Subscriptions
from hub.core.transfer import Decision, TransferRequest

GATE, GATE_PASSTHROUGH = "gate", "gate-passthrough"
FANOUT, FANOUT_PASSTHROUGH = "fanout", "fanout-passthrough"
PERSONS = 400  # distinct persons (and requests), cycled
EVENTS = 200  # distinct events, cycled
SEED = 2026
AT = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)  # fixed: the same mix in every run
SLICE_SECONDS = 0.25
WARMUP_SECONDS = 0.3
BROKER_NOT_MEASURED = (
    "not measured by this stage: `sozialhub bench --stage fanout` measures fan-out events "
    "through the broker next to a passthrough in the same run"
)
_PLAIN = ("identity-address", "household", "income", "assets", "housing-costs", "residence-status")
_CASE = (*_PLAIN, "documents")


@dataclass(frozen=True, slots=True)
class City:
    jobcenter: str
    sozialamt: str
    wohngeld: str
    but: str
    area: str  # AGS of the municipality


@dataclass(frozen=True, slots=True)
class Inputs:
    states: dict[str, tuple[ConsentState, ...]]  # person -> folded consent states
    requests: tuple[TransferRequest, ...]
    events: tuple[RechtskreisChange, ...]


def cities(table: OfficeTable) -> tuple[City, ...]:
    """The municipalities with all four offices (by Rechtskreis and 8-digit area)."""

    def office(area: str, prefix: str) -> str | None:
        found = [o.office_id for o in table.offices if area in o.areas]
        return next((o for o in found if o.startswith(prefix)), None)

    found = []
    areas = sorted({a for o in table.offices for a in o.areas if len(a) == 8})
    for area in areas:
        ids = [office(area, p) for p in ("jc-", "soa-", "wgs-", "but-")]
        if all(ids):
            jc, soa, wgs, but = (str(i) for i in ids)
            found.append(City(jc, soa, wgs, but, area))
    if not found:
        raise RuntimeError("bench: the office table has no city with all four offices")
    return tuple(found)


def _pseudonym(n: int) -> str:
    return "psn-bench-" + hashlib.sha256(f"bench person {n}".encode()).hexdigest()[:32]


def grant(
    person: str,
    granting: str,
    recipients: list[str],
    purpose: str,
    collected: dt.datetime,
    valid_from: dt.datetime,
    until: dt.datetime | None,
    categories: set[str],
) -> consent.ConsentEvent:
    return consent.grant(
        person=person,
        granting_office=granting,
        recipients=recipients,
        purpose=purpose,
        categories=categories,
        text_version="rkw-2026.1",
        channel="portal",
        collected_at=collected,
        valid_from=valid_from,
        valid_until=until,
        sensitive="health" in categories,
    )


def _consents(
    rng: random.Random, person: str, city: City, offices: tuple[str, ...]
) -> list[consent.ConsentEvent]:
    """0 to 5 records of one person: valid, revoked, expired, superseded or not valid yet."""
    events: list[consent.ConsentEvent] = []
    wanted = rng.choice((0, 1, 1, 2, 2, 3, 3, 4, 5))
    records = 0
    while records < wanted:
        records += 1
        granting = rng.choice((city.jobcenter, city.sozialamt))
        purpose = rng.choice(
            ("rechtskreiswechsel-handover",) * 3 + ("joint-case-management", "evidence-reuse")
        )
        others = [o for o in (*offices, city.wohngeld, city.but) if o != granting]
        recipients = rng.sample(others, rng.randint(1, 2))
        categories = set(rng.sample(_CASE, rng.randint(1, 5)))
        sensitive = rng.random() < 0.1
        if sensitive:
            categories.add("health")  # explicit consent: still never a basis for health
        collected = AT - dt.timedelta(days=rng.randint(30, 700), seconds=rng.randint(0, 86399))
        fate = rng.choices(
            ("valid", "revoked", "expired", "lapsed", "superseded", "future"),
            (50, 15, 8, 7, 12, 8),
        )[0]
        valid_from = collected
        until = None
        if fate == "future":
            collected = AT - dt.timedelta(days=rng.randint(1, 20))
            valid_from = AT + dt.timedelta(days=rng.randint(1, 60))
        elif fate == "lapsed":
            until = AT - dt.timedelta(days=rng.randint(1, 25))

        first = grant(
            person, granting, recipients, purpose, collected, valid_from, until, categories
        )
        events.append(first)
        end = AT - dt.timedelta(days=rng.randint(1, 25))
        if fate == "revoked":
            events.append(
                consent.revoke(
                    person=person, record_id=first.record_id, effective_at=end, channel="portal"
                )
            )
        elif fate == "expired":
            events.append(
                consent.expire(person=person, record_id=first.record_id, effective_at=end)
            )
        elif fate == "superseded" and records < wanted:
            records += 1  # the successor is a record of its own
            narrower = set(rng.sample(sorted(categories), max(1, len(categories) - 1)))
            newer = grant(person, granting, recipients, purpose, end, end, until, narrower)
            events += [newer, consent.supersede(first.record_id, newer)]
    return events


def _request(
    rng: random.Random,
    n: int,
    person: str,
    city: City,
    portals: tuple[str, ...],
    records: list[consent.ConsentRecord],
) -> TransferRequest:
    """One request of the mix; its outcome follows from the policy and the person's consents.

    Half the time (when the person has records) it is about one of the person's
    records, whatever its status, asking for some of its categories and maybe one more.
    """
    if records and rng.random() < 0.5:
        record = rng.choice(records)
        asked = set(rng.sample(sorted(record.categories), rng.randint(1, len(record.categories))))
        if rng.random() < 0.3:
            asked.add(rng.choice(_CASE))
        rechtskreis = {city.jobcenter: "SGB II", city.sozialamt: "SGB XII", city.wohngeld: "WoGG"}
        recipient = rng.choice(sorted(record.recipients))
        return TransferRequest(
            request_id=f"bench-{n}",
            person=person,
            from_office=record.granting_office,
            to_office=recipient,
            purpose=record.purpose,
            categories=frozenset(asked),
            at=AT,
            from_rechtskreis=rechtskreis.get(record.granting_office),
            to_rechtskreis=rechtskreis.get(recipient),
        )
    kind = rng.choices(
        ("handover", "notice", "joint", "evidence", "application", "unrelated"),
        (35, 10, 20, 10, 15, 10),
    )[0]
    sgb2: tuple[str, str | None] = (city.jobcenter, "SGB II")
    sgb12: tuple[str, str | None] = (city.sozialamt, "SGB XII")
    frm, to = rng.sample((sgb2, sgb12), 2)
    purpose = "rechtskreiswechsel-handover"
    categories = frozenset(rng.sample(_CASE, rng.randint(1, 5)))
    if kind == "notice":
        categories = frozenset()
    elif kind == "joint":
        purpose, to = "joint-case-management", (city.wohngeld, "WoGG")
    elif kind == "evidence":
        purpose, to = "evidence-reuse", rng.choice((sgb2, sgb12))
        categories = frozenset(rng.sample(("identity-address", "documents", "income"), 2))
    elif kind == "application":
        purpose, frm = "application-delivery", (rng.choice(portals), None)
        to = rng.choice((sgb2, sgb12))
        categories = frozenset({"identity-address", "household", "documents"})
    elif kind == "unrelated":
        purpose, to = "portal-postbox-delivery", (city.but, None)
    if rng.random() < 0.1 and kind != "notice":
        categories |= {"health"}  # special: only a statute could carry it
    return TransferRequest(
        request_id=f"bench-{n}",
        person=person,
        from_office=frm[0],
        to_office=to[0],
        purpose=purpose,
        categories=categories,
        at=AT,
        from_rechtskreis=frm[1],
        to_rechtskreis=to[1],
    )


_TRANSITIONS = (
    ("AsylbLG", "SGB II", "recognition"),
    ("AsylbLG", "SGB II", "ukraine-2022"),
    ("AsylbLG", "SGB XII", "recognition"),
    ("SGB II", "SGB XII", "retirement-age"),
    ("SGB II", "SGB XII", "permanent-incapacity"),
)


def _event(rng: random.Random, person: str, city: City) -> RechtskreisChange:
    frm, to, reason = rng.choice(_TRANSITIONS)
    office = {"SGB II": city.jobcenter, "SGB XII": city.sozialamt, "AsylbLG": city.sozialamt}
    others = [_pseudonym(10_000 + rng.randint(0, 10**6)) for _ in range(rng.randint(0, 3))]
    household = (
        HouseholdMember(person, "self"),
        *(HouseholdMember(p, rng.choice(("partner", "child"))) for p in others),
    )
    periods = tuple(
        BenefitPeriod(
            Code(f"99107{rng.randint(0, 10**9 - 1):09d}", LEIKA_LIST_URI),
            dt.date(2025, rng.randint(1, 12), 1),
            dt.date(2026, 11, 30),
            "income",
            rng.randint(30_000, 120_000),
        )
        for _ in range(rng.randint(1, 2))
    )
    claims = tuple(
        OpenClaim("pending-application", f"AZ-{rng.randint(1, 9999)}", "housing-costs", 35_000)
        for _ in range(rng.randint(0, 2))
    )
    documents = tuple(
        DocumentRef(
            hashlib.sha256(rng.randbytes(8)).hexdigest(),
            "application/pdf",
            rng.choice(("residence-status", "housing-costs", "income", "health")),
            rng.randint(10_000, 500_000),
        )
        for _ in range(rng.randint(0, 3))
    )
    return RechtskreisChange.create(
        person,
        Side(frm, office[frm]),
        Side(to, office[to]),
        city.area,
        dt.date(2026, 12, 1),
        reason,
        CaseData(household, periods, claims, documents),
    )


def inputs(
    table: OfficeTable, policy: Policy, persons: int = PERSONS, events: int = EVENTS
) -> Inputs:
    """The run's persons with their consent states, requests and events (fixed seed)."""
    rng = random.Random(SEED)  # noqa: S311 - a fixed benchmark mix, no secret
    towns = cities(table)
    portals = tuple(sorted(policy.portals)) or ("portal",)
    states: dict[str, tuple[ConsentState, ...]] = {}
    requests = []
    homes = []
    for n in range(persons):
        person, city = _pseudonym(n), towns[n % len(towns)]
        offices = (city.jobcenter, city.sozialamt, "kreis-re-abh")
        folded = consent.fold(_consents(rng, person, city, offices)).values()
        if folded:
            states[person] = tuple(folded)
        records = [s.record for s in folded if s.record is not None]
        requests.append(_request(rng, n, person, city, portals, records))
        homes.append((person, city))
    made = []
    for _ in range(events):
        person, city = rng.choice(homes)
        event = _event(rng, person, city)
        validate(event, table)
        made.append(event)
    return Inputs(states, tuple(requests), tuple(made))


def real_gate(
    states: dict[str, tuple[ConsentState, ...]], policy: Policy
) -> Callable[[TransferRequest], Decision]:
    """The transfer gate as the worker binds it: the person's consent states and the policy."""

    def gate(request: TransferRequest) -> Decision:
        return decide(request, states.get(request.person, ()), policy, request.at)

    return gate


def _request_json(request: TransferRequest) -> bytes:
    body = {
        "request_id": request.request_id,
        "person": request.person,
        "from_office": request.from_office,
        "to_office": request.to_office,
        "purpose": request.purpose,
        "categories": sorted(request.categories),
        "at": request.at.isoformat(),
        "from_rechtskreis": request.from_rechtskreis,
        "to_rechtskreis": request.to_rechtskreis,
    }
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _next(items: Iterator[Any], work: Callable[[Any], object]) -> Callable[[], object]:
    return lambda: work(next(items))


def _mix(data: Inputs, policy: Policy, offices: OfficeTable, subs: Subscriptions) -> dict[str, Any]:
    """What the pools hold: consent statuses, request outcomes, messages per event."""
    gate = real_gate(data.states, policy)
    statuses = Counter(s.status(AT).value for ss in data.states.values() for s in ss)
    per_person = Counter(len(data.states.get(r.person, ())) for r in data.requests)
    outcomes = Counter(gate(r).outcome.value for r in data.requests)
    plans: list[FanOut] = [fan_out(e, subs, offices, gate, AT) for e in data.events]
    kinds = Counter(m.kind.value for p in plans for m in p.messages)
    messages = sum(len(p.messages) for p in plans)
    return {
        "persons": len(data.requests),
        "consent_records_per_person": {str(k): per_person[k] for k in sorted(per_person)},
        "consent_status": dict(sorted(statuses.items())),
        "requests": len(data.requests),
        "outcomes": dict(sorted(outcomes.items())),
        "events": len(data.events),
        "messages_per_event": messages / len(plans),
        "message_kinds": dict(sorted(kinds.items())),
        "event_bytes": sum(len(encode_event(e)) for e in data.events) // len(data.events),
    }


def measure(
    settings: Settings,
    seconds: float,
    *,
    slice_seconds: float = SLICE_SECONDS,
    persons: int = PERSONS,
    events: int = EVENTS,
) -> dict[str, Any]:
    """One run: about ``seconds`` for each of the four measurements, interleaved."""
    offices = office_file.load(settings.offices_file, settings.schema_dir)
    policy = policy_file.from_settings(settings)
    subs = subscription_file.load(
        subscription_file.default_path(settings), settings.schema_dir, offices
    )
    data = inputs(offices, policy, persons, events)
    gate = real_gate(data.states, policy)
    states = data.states
    operations: dict[str, Callable[[], object]] = {
        GATE: _next(
            cycle(data.requests), lambda r: decide(r, states.get(r.person, ()), policy, AT)
        ),
        GATE_PASSTHROUGH: _next(cycle(data.requests), _request_json),
        FANOUT: _next(cycle(data.events), lambda e: fan_out(e, subs, offices, gate, AT)),
        FANOUT_PASSTHROUGH: _next(cycle(data.events), encode_event),
    }
    tallies = interleaved(
        operations,
        seconds,
        slice_seconds=slice_seconds,
        warmup_seconds=WARMUP_SECONDS,
    )
    rates = {name: t.count / t.seconds for name, t in tallies.items()}
    mix = _mix(data, policy, offices, subs)
    return {
        "at": AT.isoformat().replace("+00:00", "Z"),
        "seconds_each": seconds,
        "mix": mix,
        "baselines": {
            GATE_PASSTHROUGH: "json.dumps of the request's fields, UTF-8",
            FANOUT_PASSTHROUGH: "rechtskreiswechsel.encode_event: json.dumps of the event",
        },
        "measured": {
            name: {"count": t.count, "seconds": t.seconds, "per_s": rates[name]}
            for name, t in tallies.items()
        },
        "gate": {
            "decisions_per_s": rates[GATE],
            "passthrough_per_s": rates[GATE_PASSTHROUGH],
            "ratio": rates[GATE] / rates[GATE_PASSTHROUGH],
        },
        "fanout": {
            "plans_per_s": rates[FANOUT],
            "messages_per_s": rates[FANOUT] * mix["messages_per_event"],
            "passthrough_per_s": rates[FANOUT_PASSTHROUGH],
            "ratio": rates[FANOUT] / rates[FANOUT_PASSTHROUGH],
        },
        "broker": {"measured": False, "why": BROKER_NOT_MEASURED},
    }


def _rounded(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    out["mix"] = {
        **result["mix"],
        "messages_per_event": round(result["mix"]["messages_per_event"], 2),
    }
    out["measured"] = {
        name: {
            "count": m["count"],
            "seconds": round(m["seconds"], 4),
            "per_s": round(m["per_s"], 1),
        }
        for name, m in result["measured"].items()
    }
    for part in ("gate", "fanout"):
        out[part] = {
            k: round(v, 4) if k == "ratio" else round(v, 1) for k, v in result[part].items()
        }
    return out


def _table(result: dict[str, Any]) -> str:
    mix, gate, fan = result["mix"], result["gate"], result["fanout"]
    return (
        "\n".join(
            [
                (
                    f"mix              {mix['persons']} persons, consent records per person "
                    f"{mix['consent_records_per_person']}, states {mix['consent_status']}"
                ),
                f"                 requests {mix['requests']}: {mix['outcomes']}",
                (
                    f"                 events {mix['events']} (~{mix['event_bytes']} bytes), "
                    f"{mix['messages_per_event']:.2f} messages each: {mix['message_kinds']}"
                ),
                f"seconds          {result['seconds_each']:g} per measurement, interleaved",
                (
                    f"gate             {gate['decisions_per_s']:>10.1f} decisions/s  passthrough "
                    f"{gate['passthrough_per_s']:>10.1f} /s  ratio {gate['ratio']:.4f}"
                ),
                (
                    f"fan-out          {fan['plans_per_s']:>10.1f} plans/s      passthrough "
                    f"{fan['passthrough_per_s']:>10.1f} /s  ratio {fan['ratio']:.4f}  "
                    f"({fan['messages_per_s']:.1f} messages/s)"
                ),
                f"broker           {result['broker']['why']}",
            ]
        )
        + "\n"
    )


def run(settings: Settings, seconds: float, *, as_json: bool = False) -> int:
    if seconds <= 0:
        sys.stderr.write("sozialhub bench: --seconds must be positive\n")
        return 2
    result = measure(settings, seconds)
    sys.stdout.write(json.dumps(_rounded(result)) + "\n" if as_json else _table(result))
    return 0
