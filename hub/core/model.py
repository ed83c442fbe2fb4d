"""The canonical submission: what the hub knows about an application after intake.

Every coded value keeps its code list URI and list version (XÖV ``Code``
convention); a code is never reduced to a bare string. The model is plain,
frozen data and round-trips through JSON (:func:`to_json` / :func:`from_json`)
so it can travel on internal topics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    """The submission as plain data: equal to ``dataclasses.asdict(submission)``.

    Written out per class rather than walking the fields generically: intake converts
    every submission it accepts, and a generic walk cost a type test and a look-up per
    value. The same dicts and tuples as ``asdict`` (leaves are immutable, so they are
    shared, not copied); ``tests/unit/test_hot_path_equivalence.py`` compares the two.
    """
    s = submission
    return {
        "payload_namespace": s.payload_namespace,
        "payload_version": s.payload_version,
        "message_id": s.message_id,
        "created": s.created,
        "author": _party_json(s.author),
        "reader": None if s.reader is None else _party_json(s.reader),
        "case_id": s.case_id,
        "case_type": _code_json(s.case_type),
        "application_date": s.application_date,
        # tuple([...]) rather than tuple(generator): sooner, and the same tuple.
        "persons": tuple([_person_json(p) for p in s.persons]),
        "documents": tuple([_document_json(d) for d in s.documents]),
        "third_parties": tuple([_third_party_json(t) for t in s.third_parties]),
    }


def _code_json(code: Code | None) -> dict[str, Any] | None:
    if code is None:
        return None
    return {
        "code": code.code,
        "list_uri": code.list_uri,
        "list_version": code.list_version,
        "name": code.name,
    }


def _party_json(party: Party) -> dict[str, Any]:
    return {"directory": party.directory, "key": party.key, "name": party.name}


def _address_json(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {
        "street": address.street,
        "house_number": address.house_number,
        "postcode": address.postcode,
        "town": address.town,
        "region_key": _code_json(address.region_key),
    }


def _person_json(person: Person) -> dict[str, Any]:
    # The codes written out (_code_json): a person has most of a submission's codes.
    role, sex = person.role, person.sex
    return {
        "person_id": person.person_id,
        "role": {
            "code": role.code,
            "list_uri": role.list_uri,
            "list_version": role.list_version,
            "name": role.name,
        },
        "applicant": person.applicant,
        "given_name": person.given_name,
        "family_name": person.family_name,
        "birth_date": person.birth_date,
        "sex": None
        if sex is None
        else {
            "code": sex.code,
            "list_uri": sex.list_uri,
            "list_version": sex.list_version,
            "name": sex.name,
        },
        "address": _address_json(person.address),
        "benefits": tuple(
            [
                {
                    "code": b.code,
                    "list_uri": b.list_uri,
                    "list_version": b.list_version,
                    "name": b.name,
                }
                for b in person.benefits
            ]
        ),
    }


def _document_json(document: Document) -> dict[str, Any]:
    return {
        "document_id": document.document_id,
        "name": document.name,
        "mime_type": document.mime_type,
        "file_name": document.file_name,
        "size": document.size,
        "sha256": document.sha256,
        "kind": _code_json(document.kind),
        "content_b64": document.content_b64,
    }


def _third_party_json(third_party: ThirdParty) -> dict[str, Any]:
    return {
        "role": _code_json(third_party.role),
        "name": third_party.name,
        "address": _address_json(third_party.address),
        "phone": third_party.phone,
        "email": third_party.email,
    }


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
