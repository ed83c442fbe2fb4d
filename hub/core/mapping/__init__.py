"""Mappings from the canonical submission to vendor formats: pure and versioned.

Each mapping is a function ``(submission, route, delivery) -> bytes`` registered
under a format name; its version string travels with every output and into the
audit log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Mapping:
    format: str
    version: str
    media_type: str
    file_suffix: str
    render: MapFunction


def _registry() -> dict[str, Mapping]:
    from hub.core.mapping import fvxml  # noqa: PLC0415 - keeps this module import-cycle free

    return {m.format: m for m in (fvxml.MAPPING,)}


MAPPINGS: dict[str, Mapping] = _registry()


def mapping_for(format_name: str) -> Mapping:
    try:
        return MAPPINGS[format_name]
    except KeyError:
        raise Rejection(Reason.MAPPING_ERROR, "format") from None
