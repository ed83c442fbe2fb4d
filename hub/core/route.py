"""Routing: which office is responsible for which requested benefit. Pure.

Rules, in order, per requested benefit (LeiKa key):

1. the transport names the reader (an XTA/OSCI reader DVDV key, or a FIT-Connect
   destination): if it belongs to an office that handles the benefit, that
   office;
2. otherwise the applicant's area: the region key in the address (ARS or AGS),
   or, failing that, the postcode or the town name looked up in the area table;
   the office with the most specific area (municipality before Kreis) that
   handles the benefit.

No benefit resolvable, an applicant area that cannot be determined, or two
equally specific offices are rejections (``ROUTE_UNRESOLVED`` /
``ROUTE_AMBIGUOUS``) that carry an operator-facing explanation built from the
office table only (office ids, LeiKa keys, AGS): never names, streets or
postcodes. A submission is routed whole or not at all. Producer-supplied Kafka
headers are never an input here: the function sees only the canonical
submission and the office table.

:func:`explain` runs the same decision and records every step, for
``sozialhub route FILE``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hub.core.errors import Reason, Rejection
from hub.core.model import LEIKA_LIST_URI, Party, Submission

ARS_LIST_URIS = frozenset(
    {
        "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs",
        "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags",
    }
)
FITCONNECT_DIRECTORY = "FIT-Connect"  # Party.directory of a FIT-Connect destination reader
CHANNELS = ("file", "http", "kafka")


@dataclass(frozen=True, slots=True)
class HttpChannel:
    """Where and how an ``http`` vendor is called (secrets come from the settings, never here)."""

    url: str  # may contain "{office}"
    timeout_s: float = 10.0
    max_attempts: int = 5
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 30.0
    probe_interval_s: float = 15.0
    outage_max_s: float = 86_400.0  # a longer outage dead-letters the waiting delivery


@dataclass(frozen=True, slots=True)
class Office:
    office_id: str
    name: str
    dvdv: str | None
    areas: tuple[str, ...]  # AGS prefixes: 5 digits (Kreis) or 8 digits (municipality)
    leika: frozenset[str]
    vendor: str
    rechtskreise: tuple[str, ...] = ()
    fitconnect_destinations: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Vendor:
    vendor_id: str
    name: str
    format: str  # a mapping name, e.g. "fv-xml"
    channel: str = "file"  # one of CHANNELS
    http: HttpChannel | None = None


@dataclass(frozen=True, slots=True)
class Area:
    name: str
    ars: str
    postcodes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OfficeTable:
    offices: tuple[Office, ...]
    vendors: dict[str, Vendor]
    areas: tuple[Area, ...] = ()
    _by_dvdv: dict[str, Office] = field(init=False, repr=False, compare=False)
    _by_destination: dict[str, Office] = field(init=False, repr=False, compare=False)
    _by_id: dict[str, Office] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {o.office_id: o for o in self.offices})
        object.__setattr__(self, "_by_dvdv", {o.dvdv: o for o in self.offices if o.dvdv})
        destinations = {d: o for o in self.offices for d in o.fitconnect_destinations}
        object.__setattr__(self, "_by_destination", destinations)

    def office_by_dvdv(self, key: str) -> Office | None:
        return self._by_dvdv.get(key)

    def office_by_reader(self, reader: Party) -> Office | None:
        """The office a transport reader names: a FIT-Connect destination or a DVDV key."""
        if reader.directory == FITCONNECT_DIRECTORY:
            return self._by_destination.get(reader.key)
        return self._by_dvdv.get(reader.key)

    def office(self, office_id: str) -> Office:
        return self._by_id[office_id]

    def find(self, office_id: str) -> Office | None:
        return self._by_id.get(office_id)

    def endpoint(self, office: Office) -> str | None:
        """The URL an ``http`` vendor is called at for ``office``, ``{office}`` filled in."""
        vendor = self.vendors[office.vendor]
        template = vendor.http.url if vendor.http else None
        return None if template is None else template.replace("{office}", office.office_id)


@dataclass(frozen=True, slots=True)
class Route:
    leika: str
    office: Office
    vendor: Vendor
    rule: str  # "reader" or "area"


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a routing decision; ``facts`` hold office-table data only."""

    step: str
    outcome: str
    facts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "outcome": self.outcome, **self.facts}


class RouteRejection(Rejection):
    """A routing rejection with the operator-facing explanation that goes into the dead letter."""

    def __init__(self, reason: Reason, path: str, explanation: str) -> None:
        super().__init__(reason, path)
        self.explanation = explanation


@dataclass(frozen=True, slots=True)
class Explanation:
    steps: tuple[Step, ...]
    routes: tuple[Route, ...]
    rejection: RouteRejection | None


def ars_to_ags(ars: str) -> str:
    """ARS (12 digits) to AGS (8 digits); an AGS or Kreis key is returned unchanged."""
    return ars[:5] + ars[9:12] if len(ars) == 12 else ars


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold().strip()


def _applicant_area(submission: Submission, table: OfficeTable) -> tuple[str | None, str]:
    """The applicant's regional key and where it came from."""
    applicant = submission.applicant
    address = applicant.address if applicant else None
    if address is None:
        return None, "no applicant address"
    key = address.region_key
    if key is not None and key.list_uri in ARS_LIST_URIS and key.code.isdigit():
        return key.code, "region key in the address"
    if address.postcode:
        hits = {a.ars for a in table.areas if address.postcode in a.postcodes}
        if len(hits) == 1:
            return hits.pop(), "postcode in the area table"
    if address.town:
        town = _fold(address.town)
        hits = {a.ars for a in table.areas if _fold(a.name) == town}
        if len(hits) == 1:
            return hits.pop(), "town name in the area table"
    return None, "no region key, and neither postcode nor town name matches one area"


def applicant_ars(submission: Submission, table: OfficeTable) -> str | None:
    """The applicant's regional key: explicit key first, then postcode, then town name."""
    return _applicant_area(submission, table)[0]


def _most_specific(candidates: Iterable[Office], ags: str) -> tuple[Office | None, list[Office]]:
    """The office with the longest matching area, or None and the tied best ones."""
    scored = sorted(
        ((max(len(a) for a in o.areas if ags.startswith(a)), o) for o in candidates),
        key=lambda pair: -pair[0],
    )
    if not scored:
        return None, []
    best = [o for score, o in scored if score == scored[0][0]]
    return (best[0], best) if len(best) == 1 else (None, best)


class _Decision:
    """The routing decision, step by step; ``steps`` is kept only when explaining."""

    def __init__(self, submission: Submission, table: OfficeTable, *, trace: bool) -> None:
        self.submission = submission
        self.table = table
        self.steps: list[Step] | None = [] if trace else None

    def note(self, step: str, outcome: str, **facts: Any) -> None:
        if self.steps is not None:
            self.steps.append(Step(step, outcome, facts))

    def fail(self, reason: Reason, path: str, explanation: str, **facts: Any) -> RouteRejection:
        self.note("decision", reason.value, path=path, explanation=explanation, **facts)
        return RouteRejection(reason, path, explanation)

    def run(self) -> tuple[Route, ...]:
        submission, table = self.submission, self.table
        benefits = submission.benefits
        if not benefits:
            raise self.fail(
                Reason.ROUTE_UNRESOLVED,
                "beantragteLeistung",
                "the submission requests no benefit",
            )
        foreign = sorted({b.list_uri for b in benefits if b.list_uri != LEIKA_LIST_URI})
        if foreign:
            raise self.fail(
                Reason.ROUTE_UNRESOLVED,
                "leistungArt/@listURI",
                "a requested benefit is not coded as LeiKa; routing uses LeiKa keys only",
                lists=foreign,
            )
        leika = [b.code for b in benefits]
        self.note("benefits", "found", leika=leika)
        reader = submission.reader
        named = table.office_by_reader(reader) if reader is not None else None
        if reader is None:
            self.note("reader", "none named")
        elif named is None:
            self.note("reader", "no office", directory=reader.directory, key=reader.key)
        else:
            self.note("reader", "office", directory=reader.directory, office=named.office_id)
        ags: str | None = None
        routes: list[Route] = []
        for key in leika:
            if named is not None and key in named.leika:
                office, rule = named, "reader"
            else:
                if named is not None:
                    self.note("reader", "does not handle", leika=key, office=named.office_id)
                ags = ags or self._area()
                office, rule = self._by_area(key, ags), "area"
            vendor = table.vendors[office.vendor]
            self.note("route", rule, leika=key, office=office.office_id, vendor=vendor.vendor_id)
            routes.append(Route(key, office, vendor, rule))
        return tuple(routes)

    def _area(self) -> str:
        ars, source = _applicant_area(self.submission, self.table)
        if ars is None:
            raise self.fail(
                Reason.ROUTE_UNRESOLVED,
                "anschrift",
                f"the applicant's area cannot be determined: {source}",
            )
        ags = ars_to_ags(ars)
        self.note("area", "found", source=source, ags=ags)
        return ags

    def _by_area(self, key: str, ags: str) -> Office:
        handling = [o for o in self.table.offices if key in o.leika]
        candidates = [o for o in handling if any(ags.startswith(a) for a in o.areas)]
        office, tied = _most_specific(candidates, ags)
        if office is not None:
            return office
        if tied:
            raise self.fail(
                Reason.ROUTE_AMBIGUOUS,
                "area",
                f"offices {', '.join(o.office_id for o in tied)} all handle LeiKa {key} "
                f"in area {ags} equally specifically; give one of them a more specific area",
                leika=key,
                ags=ags,
                offices=[o.office_id for o in tied],
            )
        if not handling:
            explanation = f"no office in the office table handles LeiKa {key}"
        else:
            explanation = (
                f"no office handling LeiKa {key} covers area {ags} "
                f"(offices handling it: {', '.join(o.office_id for o in handling[:5])}"
                f"{', …' if len(handling) > 5 else ''})"
            )
        raise self.fail(Reason.ROUTE_UNRESOLVED, "area", explanation, leika=key, ags=ags)


def route(submission: Submission, table: OfficeTable) -> tuple[Route, ...]:
    """Resolve every requested benefit to exactly one office, or raise :class:`RouteRejection`."""
    return _Decision(submission, table, trace=False).run()


def explain(submission: Submission, table: OfficeTable) -> Explanation:
    """The same decision as :func:`route`, with every step it took."""
    decision = _Decision(submission, table, trace=True)
    try:
        routes = decision.run()
    except RouteRejection as rejection:
        return Explanation(tuple(decision.steps or ()), (), rejection)
    return Explanation(tuple(decision.steps or ()), routes, None)
