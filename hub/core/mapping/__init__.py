"""Mappings from the canonical submission to vendor formats: pure and versioned.

Each mapping is a function ``(submission, route, delivery) -> bytes`` registered
under a format name; its version string travels with every output and into the
audit log. The formats and their exact rules are described in docs/formats.md.

A mapping also states where the submission's documents travel
(:attr:`Mapping.documents`):

- ``"embedded"``: inside the body (fv-xml, fv-json, fv-avro);
- ``"beside"``: the body only references each document (file name, MIME type,
  size, SHA-256); the file-drop connector writes each document as its own file
  next to the record, named by :func:`hub.core.documents.beside_file_name`
  (fv-fixed).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from hub.core.errors import Reason, Rejection
from hub.core.model import Submission
from hub.core.route import Route


@dataclass(frozen=True, slots=True)
class DeliveryContext:
    delivery_id: str
    submission_id: str
    receipt: bytes
    benefits: tuple[str, ...]  # LeiKa keys this office handles, in request order


MapFunction = Callable[[Submission, Route, DeliveryContext], bytes]
DocumentPolicy = Literal["embedded", "beside"]


@dataclass(frozen=True, slots=True)
class Mapping:
    format: str
    version: str
    media_type: str
    file_suffix: str
    render: MapFunction
    documents: DocumentPolicy = "embedded"


_PLAIN_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def plain_date(value: str, path: str) -> str:
    """A calendar date ``YYYY-MM-DD`` as it is, else ``FIELD_FORMAT`` at ``path``.

    ``xs:date`` also allows a time zone and years beyond four digits; the vendor
    formats carry plain dates only, and dropping a time zone would change the value.
    """
    if _PLAIN_DATE.fullmatch(value) is None:
        raise Rejection(Reason.FIELD_FORMAT, path)
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise Rejection(Reason.FIELD_FORMAT, path) from None
    return value


def _registry() -> dict[str, Mapping]:
    # Imported here: the format modules import this module (keeps it import-cycle free).
    from hub.core.mapping import fvavro, fvfixed, fvjson, fvxml  # noqa: PLC0415

    return {m.format: m for m in (fvxml.MAPPING, fvfixed.MAPPING, fvjson.MAPPING, fvavro.MAPPING)}


MAPPINGS: dict[str, Mapping] = _registry()


def mapping_for(format_name: str) -> Mapping:
    try:
        return MAPPINGS[format_name]
    except KeyError:
        raise Rejection(Reason.MAPPING_ERROR, "format") from None
