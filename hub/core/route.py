"""Routing: which office is responsible for which requested benefit. Pure.

Rules, in order, per requested benefit (LeiKa key):

1. the transport names the reader: if its DVDV key belongs to an office that
   handles the benefit, that office;
2. otherwise the applicant's area: the region key in the address (ARS or AGS),
   or, failing that, the town name looked up in the area table; the office with
   the most specific area (municipality before Kreis) that handles the benefit.

No benefit resolvable, an applicant area that cannot be determined, or two
equally specific offices are rejections (``ROUTE_UNRESOLVED`` /
``ROUTE_AMBIGUOUS``). A submission is routed whole or not at all.
Producer-supplied Kafka headers are never an input here.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.core.errors import Reason, Rejection
from hub.core.model import LEIKA_LIST_URI, Submission

ARS_LIST_URIS = frozenset(
    {
        "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs",
        "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags",
    }
)


@dataclass(frozen=True, slots=True)
class Office:
    office_id: str
    name: str
    dvdv: str | None
    areas: tuple[str, ...]  # AGS prefixes: 5 digits (Kreis) or 8 digits (municipality)
    leika: frozenset[str]
    vendor: str


@dataclass(frozen=True, slots=True)
class Vendor:
    vendor_id: str
    name: str
    format: str  # a mapping name, e.g. "fv-xml"


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_dvdv", {o.dvdv: o for o in self.offices if o.dvdv})

    def office_by_dvdv(self, key: str) -> Office | None:
        return self._by_dvdv.get(key)

    def office(self, office_id: str) -> Office:
        return next(o for o in self.offices if o.office_id == office_id)


@dataclass(frozen=True, slots=True)
class Route:
    leika: str
    office: Office
    vendor: Vendor
    rule: str  # "reader" or "area"


def ars_to_ags(ars: str) -> str:
    """ARS (12 digits) to AGS (8 digits); an AGS or Kreis key is returned unchanged."""
    return ars[:5] + ars[9:12] if len(ars) == 12 else ars


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold().strip()


def applicant_ars(submission: Submission, table: OfficeTable) -> str | None:
    """The applicant's regional key: explicit key first, then postcode, then town name."""
    applicant = submission.applicant
    address = applicant.address if applicant else None
    if address is None:
        return None
    key = address.region_key
    if key is not None and key.list_uri in ARS_LIST_URIS and key.code.isdigit():
        return key.code
    if address.postcode:
        hits = {a.ars for a in table.areas if address.postcode in a.postcodes}
        if len(hits) == 1:
            return hits.pop()
    if address.town:
        town = _fold(address.town)
        hits = {a.ars for a in table.areas if _fold(a.name) == town}
        if len(hits) == 1:
            return hits.pop()
    return None


def _most_specific(candidates: Iterable[Office], ags: str) -> Office:
    scored = sorted(
        ((max(len(a) for a in o.areas if ags.startswith(a)), o) for o in candidates),
        key=lambda pair: -pair[0],
    )
    if not scored:
        raise Rejection(Reason.ROUTE_UNRESOLVED, "area")
    if len(scored) > 1 and scored[0][0] == scored[1][0]:
        raise Rejection(Reason.ROUTE_AMBIGUOUS, "area")
    return scored[0][1]


def route(submission: Submission, table: OfficeTable) -> tuple[Route, ...]:
    """Resolve every requested benefit to exactly one office."""
    benefits = submission.benefits
    if not benefits:
        raise Rejection(Reason.ROUTE_UNRESOLVED, "beantragteLeistung")
    if any(b.list_uri != LEIKA_LIST_URI for b in benefits):
        raise Rejection(Reason.ROUTE_UNRESOLVED, "leistungArt/@listURI")
    reader = submission.reader
    named = table.office_by_dvdv(reader.key) if reader is not None else None
    ars = None
    routes: list[Route] = []
    for benefit in benefits:
        if named is not None and benefit.code in named.leika:
            office, rule = named, "reader"
        else:
            ars = ars or applicant_ars(submission, table)
            if ars is None:
                raise Rejection(Reason.ROUTE_UNRESOLVED, "anschrift")
            ags = ars_to_ags(ars)
            candidates = [
                o
                for o in table.offices
                if benefit.code in o.leika and any(ags.startswith(a) for a in o.areas)
            ]
            office, rule = _most_specific(candidates, ags), "area"
        routes.append(Route(benefit.code, office, table.vendors[office.vendor], rule))
    return tuple(routes)
