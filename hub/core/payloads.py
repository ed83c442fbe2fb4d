"""Payload types the hub understands, and schema validation of a parsed tree.

A :class:`PayloadType` pairs a root element (namespace + local name) with the
versions the hub accepts, a prebuilt schema and an extractor into the canonical
:class:`~hub.core.model.Submission`. Schemas are built once by an adapter
(:mod:`hub.schemas`); this module only uses them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import xmlschema
from lxml import etree

from hub.core.errors import Reason, Rejection
from hub.core.model import Submission

Extractor = Callable[[etree._Element], Submission]  # noqa: SLF001 - lxml types its element class privately


@dataclass(frozen=True, slots=True)
class PayloadType:
    name: str
    namespace: str
    root: str
    versions: frozenset[str]
    schema: Any  # xmlschema.XMLSchema, built from local files only
    extract: Extractor
    # The same XSD compiled by libxml2 (lxml.etree.XMLSchema): the fast path. None = xmlschema only.
    fast_schema: etree.XMLSchema | None = None

    @property
    def engine(self) -> str:
        """The validator whose verdict accepts a document of this type (named in receipts)."""
        return "xmlschema" if self.fast_schema is None else "libxml2"

    @property
    def qname(self) -> str:
        return f"{{{self.namespace}}}{self.root}"


class PayloadRegistry:
    """Looks up the payload type of a tree by its root element."""

    def __init__(self, types: Iterable[PayloadType]) -> None:
        self._by_qname: Mapping[str, PayloadType] = {t.qname: t for t in types}

    def __iter__(self) -> Any:
        return iter(self._by_qname.values())

    def identify(self, root: etree._Element) -> PayloadType:
        payload_type = self._by_qname.get(root.tag if isinstance(root.tag, str) else "")
        if payload_type is None:
            raise Rejection(Reason.UNKNOWN_PAYLOAD, "/")
        version = root.get("version")
        if version not in payload_type.versions:
            raise Rejection(Reason.SCHEMA_VERSION, "/@version")
        return payload_type


def _safe_path(path: str | None) -> str | None:
    """An element path from a validation error, stripped to names and positions."""
    if not path:
        return None
    # xmlschema paths are built from element names and positions only; keep them
    # bounded so a hostile 40 kB tag name cannot make the path itself a payload.
    return path[:256]


def validate(root: etree._Element, payload_type: PayloadType) -> None:
    """Validate the already-parsed tree against the payload type's schema.

    Hot path: libxml2 (XSD 1.0, about 30x faster here; docs/adr/0004). Only when it
    rejects, xmlschema validates again to name a precise element path; its error
    texts, like libxml2's error log, quote values and are never surfaced. If the two
    disagree (libxml2 rejects, xmlschema accepts), the document is rejected without
    a path: the stricter verdict wins.

    xmlschema uses ``XMLResource(tree, allow='none')``, so ``xsi:schemaLocation``
    hints are never followed; libxml2 does not load them either.
    """
    fast = payload_type.fast_schema
    if fast is not None and fast.validate(root):
        return
    resource = xmlschema.XMLResource(root, allow="none")
    error = next(iter(payload_type.schema.iter_errors(resource)), None)
    if error is not None:
        # Never str(error) or error.reason: both quote the offending value.
        raise Rejection(Reason.XSD, _safe_path(getattr(error, "path", None)))
    if fast is not None:
        raise Rejection(Reason.XSD)
