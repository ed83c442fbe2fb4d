"""``sozialhub demo --scenario ukraine-2022``: the June 2022 transition of one city's AsylbLG cases.

On 1 June 2022 refugees from Ukraine moved from the Asylbewerberleistungsgesetz
to SGB II. This scenario plays that for ``--count`` (500) recipients of the
Sozialamt Herten (``soa-herten`` → ``jc-re-herten``, reason ``ukraine-2022``)
through the broker and a real worker process:

- most people gave the Sozialamt a consent for the Jobcenter (purpose
  ``rechtskreiswechsel-handover``); every :data:`WITHOUT_EVERY`-th has none;
- every :data:`REVOKE_EVERY`-th person revokes in the middle of the stream:
  the demo produces the revocation to ``consent.events`` right behind the
  person's event (half of them) or as soon as it sees the event planned on the
  audit log (the other half). The worker folds it before the plan, between plan
  and send, or after the send, whichever its pace makes it; the summary says
  which, and checks that nothing decided after the fold carried data.

The consents go first (the demo waits until the worker has audited every
grant), then the events. The demo follows the audit log and the
``handovers.<vendor>`` topics until every planned message is sent or denied,
and every message for a vendor on the ``file`` or ``http`` channel forwarded
(into the outbox, or to the vendor simulator's handover endpoint), and prints a
summary: handovers, data-free notices, denials and withheld messages by reason,
per addressed office role, the messages per vendor and how they reached it, the
time taken, and the check that no message decided after a revocation was folded
carried a data category.
Pseudonyms use the public development key ring, as the worker does without a
keys file (the demo's people are invented).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from hub import offices, pseudonyms, subscriptions, topics
from hub.broker import cluster, free_port
from hub.config import Settings
from hub.core import consent, consent_registry
from hub.core import rechtskreiswechsel as rkw
from hub.core import rkw_stages as stages
from hub.core.fanout import fan_out, offline_gate
from hub.core.handover_forward import FORWARD_CHANNELS
from hub.core.pipeline import AUDIT
from hub.core.pseudonym import identifier
from hub.core.records import AuditEvent, decode
from hub.core.route import OfficeTable
from hub.kafka import follow, producer
from hub.sim.vendor import VendorSimulator, VendorSimulatorThread
from hub.supervise import WorkerProcess

log = structlog.get_logger(__name__)

SCENARIOS = ("ukraine-2022",)
CITY = "Herten"
OLD_OFFICE = "soa-herten"
NEW_OFFICE = "jc-re-herten"
AREA = "05562020"  # AGS of Herten
EFFECTIVE = dt.date(2022, 6, 1)
REASON = "ukraine-2022"
PURPOSE = "rechtskreiswechsel-handover"
CONSENT_CATEGORIES = ("household", "income", "housing-costs", "residence-status", "documents")
ASYLBLG_LEIKA = "99107029080001"  # the benefit code of the shipped example event
WITHOUT_EVERY = 10  # person i has no consent when i % 10 == 3
REVOKE_EVERY = 25  # person i revokes when i % 25 == 7 (never one without consent)
DEFAULT_COUNT = 500
TIMEOUT = 600.0  # seconds for the whole scenario unless --timeout says otherwise


@dataclass(frozen=True, slots=True)
class Person:
    number: int
    pseudonym: str
    group: str  # "consent" | "without" | "revokes"
    event: rkw.RechtskreisChange
    grant: consent.ConsentEvent | None


def revokes_with_event(person: Person) -> bool:
    """Half the revocations go out right behind the event, half once it is seen planned."""
    return person.group == "revokes" and (person.number // REVOKE_EVERY) % 2 == 0


def group_of(number: int) -> str:
    if number % WITHOUT_EVERY == 3:
        return "without"
    if number % REVOKE_EVERY == 7:
        return "revokes"
    return "consent"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def people(count: int) -> list[Person]:
    """The scenario's recipients: pseudonyms of local file numbers under the development key."""
    ring = pseudonyms.development_ring()
    kind = f"local:{OLD_OFFICE}"
    result = []
    for number in range(count):
        file_number = f"ASYL-2022-{number:05d}"
        person = ring.pseudonym(identifier(kind, file_number))
        household = [{"person": person, "role": "self", "category": "household"}]
        if number % 3 == 0:
            child = ring.pseudonym(identifier(kind, f"{file_number}-K1"))
            household.append({"person": child, "role": "child", "category": "household"})
        from_ = rkw.Side("AsylbLG", OLD_OFFICE)
        to = rkw.Side("SGB II", NEW_OFFICE)
        body = {
            "type": rkw.EVENT_TYPE,
            "v": 1,
            "event_id": rkw.event_id(person, from_, to, EFFECTIVE),
            "person": person,
            "from": {"rechtskreis": from_.rechtskreis, "office": from_.office},
            "to": {"rechtskreis": to.rechtskreis, "office": to.office},
            "area": AREA,
            "effective_date": EFFECTIVE.isoformat(),
            "reason": {
                "code": REASON,
                "list_uri": rkw.REASON_LIST_URI,
                "list_version": rkw.REASON_LIST_VERSION,
            },
            "case": {
                "household": household,
                "benefit_periods": [
                    {
                        "benefit": {"code": ASYLBLG_LEIKA, "list_uri": "urn:de:fim:leika:leistung"},
                        "start": "2022-03-01",
                        "end": "2022-05-31",
                        "monthly_amount_cents": 36700 + 100 * (number % 50),
                        "category": "income",
                    }
                ],
                "documents": [
                    {
                        "sha256": _digest(f"fiktionsbescheinigung {file_number}"),
                        "media_type": "application/pdf",
                        "size": 120_000 + number,
                        "category": "residence-status",
                    }
                ],
            },
        }
        group = group_of(number)
        grant = None
        if group != "without":
            grant = consent.grant(
                person=person,
                granting_office=OLD_OFFICE,
                recipients=[NEW_OFFICE],
                purpose=PURPOSE,
                categories=CONSENT_CATEGORIES,
                text_version="rkw-herten-2022-05",
                channel="paper",
                scan_ref=f"dms:{OLD_OFFICE}:2022/05/{number:05d}",
                collected_at=dt.datetime(2022, 5, 2, 9, tzinfo=dt.UTC)
                + dt.timedelta(minutes=7 * number),
            )
        result.append(Person(number, person, group, rkw.event_from_json(body), grant))
    return result


def role_of(office: str) -> str:
    if office == NEW_OFFICE:
        return "new-office"
    if office == OLD_OFFICE:
        return "old-office"
    return "affected"


@dataclass
class Progress:
    """What the demo has seen on the audit log and the handover topics."""

    granted: int = 0
    planned: dict[str, AuditEvent] = field(default_factory=dict)  # message id -> plan audit
    planned_twice: Counter[str] = field(default_factory=Counter)
    sent: dict[str, AuditEvent] = field(default_factory=dict)
    denied: dict[str, AuditEvent] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # message id -> record
    record_copies: Counter[str] = field(default_factory=Counter)
    revoked_at: dict[str, str] = field(default_factory=dict)  # pseudonym -> folded at (audit)
    reached: set[str] = field(default_factory=set)  # event ids planned for the new office
    # Offices whose vendor is on the file or http channel: settled only once forwarded.
    forward_offices: frozenset[str] = frozenset()
    forwarded: dict[str, AuditEvent] = field(default_factory=dict)  # message id -> first outcome

    def add(self, topic: str, value: bytes) -> None:
        if topic.endswith(AUDIT):
            self._audit(decode(value, AuditEvent))
            return
        body = json.loads(value)
        self.records.setdefault(body["message_id"], body)
        self.record_copies[body["message_id"]] += 1

    def _audit(self, audit: AuditEvent) -> None:
        if audit.stage == consent_registry.STAGE:
            person = (audit.path or "").split("/", 1)[0]
            if audit.decision == "granted":
                self.granted += 1
            elif audit.decision == "revoked":
                self.revoked_at.setdefault(person, audit.at)
            return
        message_id = (audit.path or "").rpartition("/")[2]
        if audit.stage == stages.STAGE:
            if message_id in self.planned:
                self.planned_twice[message_id] += 1
            self.planned.setdefault(message_id, audit)
            if audit.office == NEW_OFFICE:
                self.reached.add((audit.path or "").partition("/")[0])
        elif (audit.stage, audit.decision) == ("handover", "sent"):
            self.sent.setdefault(message_id, audit)
        elif audit.stage == "handover" and audit.decision in ("forwarded", "duplicate"):
            self.forwarded.setdefault(message_id, audit)
        elif (audit.stage, audit.decision) == ("gate", "denied"):
            self.denied.setdefault(message_id, audit)

    def settled(self, message_id: str) -> bool:
        planned = self.planned.get(message_id)
        if planned is None:
            return False
        if planned.decision == "withheld" or message_id in self.denied:
            return True
        if message_id not in self.sent or message_id not in self.records:
            return False
        forwarding = planned.office in self.forward_offices
        return not forwarding or message_id in self.forwarded


def expected_messages(settings: Settings, crowd: list[Person]) -> dict[str, tuple[Person, str]]:
    """Message id -> (person, office) for every office the worker will address (ids are fixed)."""
    table = offices.load(settings.offices_file, settings.schema_dir)
    subscribed = subscriptions.load(
        subscriptions.default_path(settings), settings.schema_dir, table
    )
    now = dt.datetime.now(dt.UTC)
    expected = {}
    for person in crowd:
        for message in fan_out(person.event, subscribed, table, offline_gate, now).messages:
            expected[message.message_id] = (person, message.office)
    return expected


def _new_office_message(person: Person, expected: dict[str, tuple[Person, str]]) -> str:
    return next(m for m, (p, office) in expected.items() if p is person and office == NEW_OFFICE)


def outcome(message_id: str, progress: Progress) -> tuple[str, str | None, list[str]]:
    """(kind or denied/withheld, reason, categories carried) of one message."""
    planned = progress.planned[message_id]
    if planned.decision == "withheld":
        return "withheld", planned.reason, []
    if message_id in progress.denied:
        return "denied", progress.denied[message_id].reason, []
    record = progress.records[message_id]
    refused = record.get("refused") or {}
    reason = refused.get("reason") or (record.get("decision") or {}).get("reason")
    return str(record["kind"]), reason, list(record.get("categories") or [])


NewOffice = tuple[str, str | None, list[str], str | None]  # kind, reason, categories, decided


def _tally(
    expected: dict[str, tuple[Person, str]], progress: Progress, pending: set[str]
) -> tuple[dict[str, Counter[str]], dict[str, NewOffice]]:
    """Outcomes per office role, and the new office's message per pseudonym."""
    by_role: dict[str, Counter[str]] = defaultdict(Counter)
    new_office: dict[str, NewOffice] = {}
    for message_id, (person, office) in expected.items():
        if message_id in pending:
            continue
        kind, reason, categories = outcome(message_id, progress)
        label = kind if kind in ("handover", "confirmation") else f"{kind}:{reason or '-'}"
        if kind == "information":
            label = "information:" + ("with-data" if categories else "data-free")
        by_role[role_of(office)][label] += 1
        if office == NEW_OFFICE:
            decided = (progress.records.get(message_id) or {}).get("decision", {}).get("decided_at")
            new_office[person.pseudonym] = (kind, reason, categories, decided)
    return by_role, new_office


def _person_problem(person: Person, kind: str, reason: str | None, carried: list[str]) -> str:
    if person.group == "consent" and not (kind == "handover" and carried):
        return f"person {person.number}: consent, but {kind} {reason}"
    if person.group == "without" and (kind, reason, carried) != ("notice", "CONSENT_MISSING", []):
        return f"person {person.number}: no consent, but {kind} {reason}"
    return ""


def _revocation_timing(plan: AuditEvent | None, decided: str | None, folded: str | None) -> str:
    """When the worker folded the revocation, relative to the plan and the send."""
    if folded is None or decided is None or plan is None:
        return "not-sent-or-not-folded"
    if plan.decision == "notice":
        return "folded-before-plan"
    if decided > folded:
        return "folded-between-plan-and-send"
    if decided == folded:
        return "same-millisecond-as-send"
    return "folded-after-send"


def _data_after_revocation(
    person: Person, expected: dict[str, tuple[Person, str]], progress: Progress
) -> list[str]:
    """The person's messages decided after the revocation was folded that carry categories."""
    folded = progress.revoked_at.get(person.pseudonym)
    if folded is None:
        return []
    found = []
    for message_id, (owner, _office) in expected.items():
        record = progress.records.get(message_id)
        if owner is not person or record is None:
            continue
        if record["decision"]["decided_at"] > folded and record.get("categories"):
            found.append(message_id)
    return found


def by_vendor(
    table: OfficeTable,
    progress: Progress,
    outbox: Path | None = None,
    handover_endpoint: VendorSimulator | None = None,
) -> dict[str, dict[str, Any]]:
    """Per vendor: its channel, the messages sent to ``handovers.<vendor>`` and, for the file
    and http channels, how many the worker forwarded (files in the outbox, bookings at the
    simulator's handover endpoint)."""
    rows: dict[str, dict[str, Any]] = {}
    for vendor in sorted(table.vendors.values(), key=lambda v: v.vendor_id):
        own = {o.office_id for o in table.offices if o.vendor == vendor.vendor_id}
        sent = [m for m, record in progress.records.items() if record["office"] in own]
        row: dict[str, Any] = {"channel": vendor.channel, "sent": len(sent)}
        if vendor.channel in FORWARD_CHANNELS:
            row["forwarded"] = sum(m in progress.forwarded for m in sent)
            if vendor.channel == "file" and outbox is not None:
                row["files"] = len(list(outbox.glob(f"{vendor.vendor_id}/*/handovers/rkm-*.json")))
            if vendor.channel == "http" and handover_endpoint is not None:
                row["booked"] = handover_endpoint.handover_snapshot()["handovers"]
        rows[vendor.vendor_id] = row
    return rows


def _vendor_problems(rows: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for vendor, row in rows.items():
        if "forwarded" in row and row["forwarded"] != row["sent"]:
            problems.append(f"{vendor}: {row['sent'] - row['forwarded']} message(s) not forwarded")
        landed = row.get("files", row.get("booked"))
        if landed is not None and landed != row["sent"]:
            problems.append(f"{vendor}: {landed} message(s) arrived for {row['sent']} sent")
    return problems


def summarise(
    crowd: list[Person],
    expected: dict[str, tuple[Person, str]],
    progress: Progress,
    revocations_produced: dict[str, str],
    elapsed: float,
    vendors: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    pending = {mid for mid in expected if not progress.settled(mid)}
    by_role, new_office = _tally(expected, progress, pending)
    handled = Counter(
        person.pseudonym
        for mid, (person, office) in expected.items()
        if office == NEW_OFFICE and mid in progress.planned
    )
    problems: list[str] = []
    if pending:
        problems.append(f"{len(pending)} message(s) without an outcome")
    if any(handled[p.pseudonym] != 1 for p in crowd):
        problems.append("a person was not addressed to the new office exactly once")
    if progress.planned_twice:
        problems.append(f"{len(progress.planned_twice)} message(s) planned twice")
    timing = Counter[str]()
    violations: list[str] = []
    rows = []
    for person in crowd:
        if person.pseudonym not in new_office:
            continue
        kind, reason, carried, decided = new_office[person.pseudonym]
        plan = progress.planned.get(_new_office_message(person, expected))
        folded = progress.revoked_at.get(person.pseudonym)
        rows.append(
            {
                "number": person.number,
                "group": person.group,
                "planned": None if plan is None else plan.decision,
                "kind": kind,
                "reason": reason,
                "categories": carried,
                "decided_at": decided,
                "revocation_folded_at": folded,
                "handled": handled[person.pseudonym],
            }
        )
        problems.extend(filter(None, [_person_problem(person, kind, reason, carried)]))
        if person.group == "revokes":
            timing[_revocation_timing(plan, decided, folded)] += 1
            violations.extend(_data_after_revocation(person, expected, progress))
    if violations:
        problems.append(f"{len(violations)} message(s) after a revocation carried data categories")
    problems.extend(_vendor_problems(vendors or {}))
    folds = sum(p in progress.revoked_at for p in revocations_produced)
    if folds < len(revocations_produced):
        problems.append(f"{len(revocations_produced) - folds} revocation(s) never audited")
    sent = list(new_office.values())
    return {
        "scenario": "ukraine-2022",
        "city": CITY,
        "from": OLD_OFFICE,
        "to": NEW_OFFICE,
        "effective_date": EFFECTIVE.isoformat(),
        "people": len(crowd),
        "groups": dict(sorted(Counter(p.group for p in crowd).items())),
        "handled_once": sum(handled[p.pseudonym] == 1 for p in crowd),
        "messages": len(expected),
        "by_role": {role: dict(sorted(c.items())) for role, c in sorted(by_role.items())},
        "new_office": {
            "handover": sum(k == "handover" for k, *_ in sent),
            "notice": dict(Counter(r or "-" for k, r, *_ in sent if k == "notice")),
            "denied_or_withheld": dict(
                Counter(f"{k}:{r or '-'}" for k, r, *_ in sent if k in ("denied", "withheld"))
            ),
        },
        "revocations": {
            "produced": len(revocations_produced),
            "folded": folds,
            **dict(sorted(timing.items())),
            "data_after_revocation": len(violations),
        },
        "by_vendor": vendors or {},
        "duplicate_records": sum(n - 1 for n in progress.record_copies.values()),
        "pending": len(pending),
        "seconds": round(elapsed, 1),
        "problems": problems,
        "persons": rows,  # the new office's message per person (no pseudonyms)
    }


def print_summary(summary: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, ensure_ascii=False))
        return
    groups = summary["groups"]
    print(
        f"\nUkraine 2022: {summary['people']} AsylbLG recipients of {summary['city']}, "
        f"{summary['from']} -> {summary['to']}, effective {summary['effective_date']}"
    )
    print(
        f"  consent: {groups.get('consent', 0)}, no consent: {groups.get('without', 0)}, "
        f"revoking mid-stream: {groups.get('revokes', 0)}; {summary['messages']} messages planned"
    )
    print(f"\n{'role':12} {'outcome':36} {'count':>6}")
    print("-" * 56)
    for role, counts in summary["by_role"].items():
        for index, (label, count) in enumerate(counts.items()):
            print(f"{role if index == 0 else '':12} {label:36} {count:6}")
    new = summary["new_office"]
    print(
        f"\nNew office: {new['handover']} full handovers, notices {new['notice']}, "
        f"denied/withheld {new['denied_or_withheld'] or '{}'}"
    )
    rev = summary["revocations"]
    print(
        f"Revocations: {rev['produced']} produced, {rev['folded']} folded by the worker: "
        f"{rev.get('folded-before-plan', 0)} before the plan (a notice from the start), "
        f"{rev.get('folded-between-plan-and-send', 0)} between plan and send (planned a handover, "
        f"sent a notice), {rev.get('same-millisecond-as-send', 0)} in the send's millisecond, "
        f"{rev.get('folded-after-send', 0)} after the send (the data had left lawfully).\n"
        f"Check: {rev['data_after_revocation']} message(s) decided after a revocation was folded "
        f"carried data categories."
    )
    vendors = summary.get("by_vendor") or {}
    if vendors:
        print("\nMessages per vendor (handovers.<vendor>):")
        for vendor, row in vendors.items():
            if "forwarded" not in row:
                print(f"  {vendor:12} {row['channel']:6} {row['sent']:5} sent, read by the vendor")
                continue
            landed = ""
            if "files" in row:
                landed = f", {row['files']} file(s) in the outbox"
            elif "booked" in row:
                landed = f", {row['booked']} booked at the endpoint"
            print(
                f"  {vendor:12} {row['channel']:6} {row['sent']:5} sent, "
                f"{row['forwarded']} forwarded{landed}"
            )
    print(
        f"{summary['handled_once']} of {summary['people']} people handled exactly once "
        f"in {summary['seconds']} s."
    )


def run(
    settings: Settings,
    workdir: Path | None = None,
    timeout: float = TIMEOUT,
    *,
    count: int = DEFAULT_COUNT,
    as_json: bool = False,
) -> int:
    started = time.monotonic()
    crowd = people(count)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    root = (workdir or Path("var") / f"demo-ukraine-2022-{stamp}").resolve()
    embedded = settings.embedded
    with cluster(settings) as active, contextlib.ExitStack() as stack:
        settings = active.in_workspace(root).with_overrides(web_port=free_port())
        if not embedded:
            # Never feed invented people into a real pipeline: own topics, removed afterwards.
            settings = settings.with_overrides(topic_prefix=f"sozialhub-demo-{stamp.lower()}.")
            stack.callback(topics.delete_prefixed, settings)
        topics.apply(settings, topics.load(settings))
        expected = expected_messages(settings, crowd)
        table = offices.load(settings.offices_file, settings.schema_dir)
        # Outbound on: the handover forwarding agents of the file and http vendors run (the
        # delivery agents idle). The http vendor's handovers go to a simulator on loopback.
        settings, endpoint = _handover_endpoint(settings, table, stack)
        log_file = root / "worker.log"
        worker = WorkerProcess(settings, log_file=log_file, args=("--no-inbound",)).start()
        stack.callback(worker.stop)
        worker.wait_ready()
        log.info("demo.worker_started", pid=worker.pid, workdir=str(root), people=count)
        out = producer(settings)
        grants = [(p.pseudonym, p.grant) for p in crowd if p.grant is not None]
        for pseudonym, grant in grants:
            out.produce(
                settings.topic(consent_registry.EVENTS),
                key=pseudonym.encode("ascii"),
                value=consent.encode_event(grant),
            )
        out.flush(30)
        progress = Progress()
        deadline = time.monotonic() + timeout
        for message in follow(
            settings,
            AUDIT,
            lambda: progress.granted >= len(grants) or not worker.alive(),
            timeout,
        ):
            progress.add(message.topic(), message.value())
        revokers = {
            p.event.event_id: p for p in crowd if p.group == "revokes" and p.grant is not None
        }
        revocations: dict[str, str] = {}
        for person in crowd:
            out.produce(
                settings.topic(stages.EVENTS),
                key=person.pseudonym.encode("ascii"),
                value=rkw.encode_event(person.event),
            )
            if revokes_with_event(person):
                _revoke(settings, out, revokers.pop(person.event.event_id), revocations)
        out.flush(30)
        channels = {o.office_id: table.vendors[o.vendor].channel for o in table.offices}
        forwarding = frozenset(o for o, channel in channels.items() if channel in FORWARD_CHANNELS)
        progress = Progress(forward_offices=forwarding)
        vendors = sorted(table.vendors)
        for message in follow(
            settings,
            (AUDIT, *map(stages.handover_topic, vendors)),
            lambda: _done(expected, progress, revokers, revocations) or not worker.alive(),
            max(1.0, deadline - time.monotonic()),
        ):
            progress.add(message.topic(), message.value())
            _revoke_when_planned(settings, out, progress, revokers, revocations)
        out.flush(30)
        rows = by_vendor(table, progress, settings.outbox_dir, endpoint)
        summary = summarise(
            crowd, expected, progress, revocations, time.monotonic() - started, rows
        )
        print_summary(summary, as_json=as_json)
        if summary["problems"]:
            print("\n" + "\n".join(f"problem: {p}" for p in summary["problems"]))
            print(f"worker log: {root / 'worker.log'}")
            return 1
        if embedded and not as_json:
            print("The embedded broker kept everything in memory; it is gone when the demo ends.")
    return 0


def _handover_endpoint(
    settings: Settings, table: OfficeTable, stack: contextlib.ExitStack
) -> tuple[Settings, VendorSimulator | None]:
    """The http vendor's endpoint (the simulator on loopback); its URL overrides the example's."""
    vendor = next((v for v in table.vendors.values() if v.channel == "http"), None)
    if vendor is None:
        return settings, None
    simulator = VendorSimulator()
    runner = VendorSimulatorThread(simulator)
    runner.start()
    stack.callback(runner.stop)
    return settings.with_overrides(
        vendor_urls=f"{vendor.vendor_id}={simulator.url_template}"
    ), simulator


def _done(
    expected: dict[str, tuple[Person, str]],
    progress: Progress,
    revokers: dict[str, Person],
    revocations: dict[str, str],
) -> bool:
    """Every message sent or denied, every revocation produced and folded."""
    if revokers or any(p not in progress.revoked_at for p in revocations):
        return False
    return all(progress.settled(m) for m in expected)


def _revoke_when_planned(
    settings: Settings,
    out: Any,
    progress: Progress,
    revokers: dict[str, Person],
    revocations: dict[str, str],
) -> None:
    """A revoking person's revocation goes out as soon as their event is seen planned."""
    for event_id in progress.reached & revokers.keys():
        _revoke(settings, out, revokers.pop(event_id), revocations)


def _revoke(settings: Settings, out: Any, person: Person, revocations: dict[str, str]) -> None:
    if person.grant is not None:
        now = dt.datetime.now(dt.UTC)
        revocation = consent.revoke(
            person=person.pseudonym,
            record_id=person.grant.record_id,
            effective_at=now,
            channel="oral",
            note="by phone at the Sozialamt",
        )
        out.produce(
            settings.topic(consent_registry.EVENTS),
            key=person.pseudonym.encode("ascii"),
            value=consent.encode_event(revocation),
        )
        out.poll(0)
        revocations[person.pseudonym] = now.isoformat()
