"""The canonical submission: what the hub knows about an application after intake.

Every coded value keeps its code list URI and list version (XÖV ``Code``
convention); a code is never reduced to a bare string. The model is plain,
frozen data and round-trips through JSON (:func:`to_json` / :func:`from_json`)
so it can travel on internal topics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

LEIKA_LIST_URI = "urn:de:fim:leika:leistung"
T = TypeVar("T")


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


def positional(cls: type[T]) -> Callable[..., T]:
    """``cls(*values)`` for a frozen, slotted model class, every field given in order, sooner.

    A frozen dataclass's ``__init__`` sets each field with ``object.__setattr__``, which
    looks the field's slot up and sets it; extraction makes some twenty model objects
    per submission. The maker sets the slots through their descriptors directly: the
    same object (no class here has ``__post_init__``), in about 60% of the time.
    ``tests/unit/test_hot_path_equivalence.py`` compares the two.
    """
    names = tuple(f.name for f in fields(cls))  # type: ignore[arg-type] # a dataclass, checked below
    params = getattr(cls, "__dataclass_params__", None)
    if (
        params is None
        or not params.frozen
        or getattr(cls, "__slots__", None) != names
        or hasattr(cls, "__post_init__")
    ):
        raise TypeError(f"{cls.__name__} is not a frozen, slotted model class")
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    for index, name in enumerate(names):
        namespace[f"set{index}"] = cls.__dict__[name].__set__
    arguments = ", ".join(f"v{index}" for index in range(len(names)))
    body = "".join(f"    set{index}(self, v{index})\n" for index in range(len(names)))
    exec(f"def make({arguments}):\n    self = new(cls)\n{body}    return self\n", namespace)  # noqa: S102 - built from field positions only, as dataclasses builds __init__
    make: Callable[..., T] = namespace["make"]
    make.__qualname__ = make.__name__ = f"positional_{cls.__name__}"
    return make


def to_json(submission: Submission) -> dict[str, Any]:
    """The submission as plain data: equal to ``dataclasses.asdict(submission)``.

    Written out per class rather than walking the fields generically: intake converts
    every submission it accepts, and a generic walk cost a type test and a look-up per
    value. The same dicts and tuples as ``asdict`` (leaves are immutable, so they are
    shared, not copied); ``tests/unit/test_hot_path_equivalence.py`` compares the two.
    Each dict has its keys in sorted order, as records are written: orjson sorts keys
    that are in order already in about half the time.
    """
    s = submission
    return {
        "application_date": s.application_date,
        "author": _party_json(s.author),
        "case_id": s.case_id,
        "case_type": _code_json(s.case_type),
        "created": s.created,
        # tuple([...]) rather than tuple(generator): sooner, and the same tuple.
        "documents": tuple([_document_json(d) for d in s.documents]),
        "message_id": s.message_id,
        "payload_namespace": s.payload_namespace,
        "payload_version": s.payload_version,
        "persons": tuple([_person_json(p) for p in s.persons]),
        "reader": None if s.reader is None else _party_json(s.reader),
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
        "house_number": address.house_number,
        "postcode": address.postcode,
        "region_key": _code_json(address.region_key),
        "street": address.street,
        "town": address.town,
    }


def _person_json(person: Person) -> dict[str, Any]:
    # The codes written out (_code_json): a person has most of a submission's codes.
    role, sex = person.role, person.sex
    return {
        "address": _address_json(person.address),
        "applicant": person.applicant,
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
        "birth_date": person.birth_date,
        "family_name": person.family_name,
        "given_name": person.given_name,
        "person_id": person.person_id,
        "role": {
            "code": role.code,
            "list_uri": role.list_uri,
            "list_version": role.list_version,
            "name": role.name,
        },
        "sex": None
        if sex is None
        else {
            "code": sex.code,
            "list_uri": sex.list_uri,
            "list_version": sex.list_version,
            "name": sex.name,
        },
    }


def _document_json(document: Document) -> dict[str, Any]:
    return {
        "content_b64": document.content_b64,
        "document_id": document.document_id,
        "file_name": document.file_name,
        "kind": _code_json(document.kind),
        "mime_type": document.mime_type,
        "name": document.name,
        "sha256": document.sha256,
        "size": document.size,
    }


def _third_party_json(third_party: ThirdParty) -> dict[str, Any]:
    return {
        "address": _address_json(third_party.address),
        "email": third_party.email,
        "name": third_party.name,
        "phone": third_party.phone,
        "role": _code_json(third_party.role),
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
