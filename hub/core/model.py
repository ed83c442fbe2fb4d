"""The canonical submission: what the hub knows about an application after intake.

Every coded value keeps its code list URI and list version (XÖV ``Code``
convention); a code is never reduced to a bare string. The model is plain,
frozen data and round-trips through JSON (:func:`to_json` / :func:`from_json`)
so it can travel on internal topics.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

LEIKA_LIST_URI = "urn:de:fim:leika:leistung"


@dataclass(frozen=True, slots=True)
class Code:
    """An XÖV code: value plus the list it comes from."""

    code: str
    list_uri: str
    list_version: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Party:
    """A message author or reader, identified in a directory service (DVDV)."""

    directory: str
    key: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Address:
    street: str | None = None
    house_number: str | None = None
    postcode: str | None = None
    town: str | None = None
    region_key: Code | None = None  # AGS/ARS when the portal supplies it


@dataclass(frozen=True, slots=True)
class Person:
    person_id: str
    role: Code
    applicant: bool
    given_name: str
    family_name: str
    birth_date: str | None
    sex: Code | None
    address: Address | None
    benefits: tuple[Code, ...] = ()


@dataclass(frozen=True, slots=True)
class Document:
    document_id: str
    name: str | None
    mime_type: str
    file_name: str | None
    size: int
    sha256: str
    kind: Code | None
    content_b64: str = field(repr=False, default="")


@dataclass(frozen=True, slots=True)
class ThirdParty:
    """A third party named in the application (school, landlord, employer, care service)."""

    role: Code
    name: str
    address: Address | None = None
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated application in transit, independent of transport and payload standard."""

    payload_namespace: str
    payload_version: str
    message_id: str
    created: str
    author: Party
    reader: Party | None
    case_id: str
    case_type: Code
    application_date: str | None
    persons: tuple[Person, ...]
    documents: tuple[Document, ...] = ()
    third_parties: tuple[ThirdParty, ...] = ()

    @property
    def applicant(self) -> Person | None:
        return next((p for p in self.persons if p.applicant), None)

    @property
    def benefits(self) -> tuple[Code, ...]:
        """Every requested benefit, applicant's first, without repeats."""
        seen: dict[tuple[str, str], Code] = {}
        ordered = sorted(self.persons, key=lambda p: not p.applicant)
        for person in ordered:
            for benefit in person.benefits:
                seen.setdefault((benefit.list_uri, benefit.code), benefit)
        return tuple(seen.values())

    @property
    def leika_keys(self) -> tuple[str, ...]:
        return tuple(b.code for b in self.benefits if b.list_uri == LEIKA_LIST_URI)


def to_json(submission: Submission) -> dict[str, Any]:
    """The submission as plain data: equal to ``dataclasses.asdict(submission)``."""
    result: dict[str, Any] = _plain(submission)
    return result


# Immutable leaves: asdict's deep copy returns them unchanged, so they are taken as they are.
_ATOMIC = frozenset({str, int, float, bool, type(None)})


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(kind: type) -> tuple[str, ...] | None:
    """The field names of a dataclass type, None for any other type; looked up once per type."""
    if kind not in _FIELD_NAMES:
        _FIELD_NAMES[kind] = tuple(f.name for f in fields(kind)) if is_dataclass(kind) else None
    return _FIELD_NAMES[kind]


def _plain(value: Any) -> Any:
    """``dataclasses.asdict``'s conversion without copying every string (intake's hot path)."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    names = _field_names(kind)
    if names is not None:
        result = {}
        for name in names:
            item = getattr(value, name)
            result[name] = item if type(item) in _ATOMIC else _plain(item)
        return result
    if kind is tuple or kind is list:
        return kind(_plain(item) for item in value)
    if kind is dict:
        return {_plain(k): _plain(v) for k, v in value.items()}
    return copy.deepcopy(value)


def _code(data: dict[str, Any] | None) -> Code | None:
    return None if data is None else Code(**data)


def _address(data: dict[str, Any] | None) -> Address | None:
    if data is None:
        return None
    return Address(**{**data, "region_key": _code(data.get("region_key"))})


def from_json(data: dict[str, Any]) -> Submission:
    persons = tuple(
        Person(
            person_id=p["person_id"],
            role=Code(**p["role"]),
            applicant=p["applicant"],
            given_name=p["given_name"],
            family_name=p["family_name"],
            birth_date=p["birth_date"],
            sex=_code(p["sex"]),
            address=_address(p["address"]),
            benefits=tuple(Code(**b) for b in p["benefits"]),
        )
        for p in data["persons"]
    )
    documents = tuple(Document(**{**d, "kind": _code(d["kind"])}) for d in data["documents"])
    third_parties = tuple(
        ThirdParty(
            **{**t, "role": Code(**t["role"]), "address": _address(t.get("address"))},
        )
        for t in data.get("third_parties", ())
    )
    return Submission(
        payload_namespace=data["payload_namespace"],
        payload_version=data["payload_version"],
        message_id=data["message_id"],
        created=data["created"],
        author=Party(**data["author"]),
        reader=None if data["reader"] is None else Party(**data["reader"]),
        case_id=data["case_id"],
        case_type=Code(**data["case_type"]),
        application_date=data["application_date"],
        persons=persons,
        documents=documents,
        third_parties=third_parties,
    )
