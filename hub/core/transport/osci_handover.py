"""What an OSCI client hands over beside a content package: its transport metadata.

The hub does not speak the OSCI dialog. The office's OSCI client authenticates
the Author and the Reader, fetches the delivery and hands the hub the content
package (:mod:`hub.core.transport.osci`) together with a small JSON document,
the *metadata sidecar* (docs/transports/osci.md#handover-through-the-file-drop)::

    {"type": "sozialhub.osci-handover", "v": 1,
     "author": "sop:050000100099", "reader": "jbc:055620000000",
     "message_id": "b3NjaS1tZXNzYWdlLTQ3MTE="}

``author`` and ``reader`` are the OSCI roles' identifiers (DVDV keys), and
``message_id`` is the OSCI message id; the hub uses them to recognise the
portal and to detect replays, never anything the content says. The sidecar
holds no personal data and nothing else: every member is required, no other
member is allowed.

:func:`parse_metadata` reads a sidecar strictly (bounded, UTF-8, strict JSON,
no duplicate members, exact types and shapes). :func:`check_fields` checks the
same values where they travel in a ``submissions.received`` record. Both raise
:class:`~hub.core.errors.Rejection` with reason ``METADATA`` and a path made of
fixed names (``osci/metadata/author``, ``transport/author``); a member name the
format does not define is shown as ``*``, never echoed. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from hub.core.errors import Reason, Rejection

TYPE = "sozialhub.osci-handover"
VERSION = 1
MAX_METADATA_BYTES = 4096  # the sidecar is a few hundred bytes; anything larger is refused
METADATA_PATH = "osci/metadata"

# Party identifiers as XTA and DVDV write them: letters, digits and ": . _ @ -".
PARTY = re.compile(r"[A-Za-z0-9:._@-]{1,128}")
# OSCI message ids: the OSCI library writes base64 text; URNs are allowed too.
MESSAGE_ID = re.compile(r"[A-Za-z0-9+/=:._@-]{1,256}")

_MEMBERS = ("type", "v", "author", "reader", "message_id")
# Where each value travels in a submissions.received record, for check_fields' paths.
_RECORD_PATHS = {
    "author": "transport/author",
    "reader": "transport/reader",
    "message_id": "transport/messageId",
}


@dataclass(frozen=True, slots=True)
class OsciMetadata:
    """The OSCI client's authenticated transport metadata for one content package."""

    author: str
    reader: str
    message_id: str


def _refuse_constant(_: str) -> Any:
    raise ValueError("not strict JSON")  # NaN, Infinity, -Infinity


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    members = dict(pairs)
    if len(members) != len(pairs):
        raise ValueError("a member appears twice")
    return members


def _document(data: bytes | None) -> dict[str, Any]:
    if data is None:
        raise Rejection(Reason.METADATA, METADATA_PATH)  # no sidecar at all
    if not isinstance(data, bytes) or len(data) > MAX_METADATA_BYTES:
        raise Rejection(Reason.METADATA, METADATA_PATH)
    try:
        # Strict: UTF-8 without BOM (json refuses a BOM in a str), no NaN, no duplicate members.
        document = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_unique_members,
            parse_constant=_refuse_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Rejection(Reason.METADATA, METADATA_PATH) from None
    if not isinstance(document, dict):
        raise Rejection(Reason.METADATA, METADATA_PATH)
    return document


def parse_metadata(data: bytes | None) -> OsciMetadata:
    """The metadata sidecar's values, or ``METADATA`` at the first member that is not right.

    ``None`` (no sidecar) is ``METADATA`` at ``osci/metadata``.
    """
    document = _document(data)
    if any(name not in _MEMBERS for name in document):
        raise Rejection(Reason.METADATA, f"{METADATA_PATH}/*")
    if document.get("type") != TYPE:
        raise Rejection(Reason.METADATA, f"{METADATA_PATH}/type")
    version = document.get("v")
    if type(version) is not int or version != VERSION:  # True is an int, and not a version
        raise Rejection(Reason.METADATA, f"{METADATA_PATH}/v")
    values = {}
    for name, shape in (("author", PARTY), ("reader", PARTY), ("message_id", MESSAGE_ID)):
        value = document.get(name)
        if not isinstance(value, str) or not shape.fullmatch(value):
            raise Rejection(Reason.METADATA, f"{METADATA_PATH}/{name}")
        values[name] = value
    return OsciMetadata(**values)


def check_fields(author: Any, reader: Any, message_id: Any) -> None:
    """The same shapes for the values a ``submissions.received`` record carries.

    ``None`` is allowed (the record has none: intake then cannot recognise the
    portal, ``SENDER_MISMATCH``); anything else must have the sidecar's shape.
    """
    for name, value, shape in (
        ("author", author, PARTY),
        ("reader", reader, PARTY),
        ("message_id", message_id, MESSAGE_ID),
    ):
        if value is not None and not (isinstance(value, str) and shape.fullmatch(value)):
            raise Rejection(Reason.METADATA, _RECORD_PATHS[name])


def render(metadata: OsciMetadata) -> bytes:
    """The sidecar for ``metadata`` as an OSCI client writes it (tests, examples, tools)."""
    document = {
        "type": TYPE,
        "v": VERSION,
        "author": metadata.author,
        "reader": metadata.reader,
        "message_id": metadata.message_id,
    }
    return json.dumps(document, indent=2).encode("utf-8") + b"\n"
