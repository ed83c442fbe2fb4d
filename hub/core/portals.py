"""Portals the hub accepts submissions from, and the rules each one is held to.

A portal is identified by its transport, never by what its payload claims:
XTA 2 and OSCI by the authenticated author's DVDV key, FIT-Connect by the
destination the submission was addressed to, the file drop by being the one
portal configured for it. The portal's entry then decides which payload types
are allowed, which author keys its payloads may name (``SENDER_MISMATCH``
otherwise), its signature policy (:mod:`hub.core.portalsig`) and its freshness
window (:meth:`PortalTable.check_fresh`, bad-inputs G47).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hub.core.errors import Reason, Rejection
from hub.core.transport import Envelope


@dataclass(frozen=True, slots=True)
class Portal:
    portal_id: str
    name: str
    transports: frozenset[str]
    payloads: frozenset[str]  # payload type names this portal may send
    authors: frozenset[str] = frozenset()  # DVDV keys; empty = any (file drop only)
    destinations: frozenset[str] = frozenset()  # FIT-Connect destination ids
    signature: Any = field(default=None, repr=False)  # hub.core.portalsig.SignaturePolicy | None
    # Freshness window (G47): a payload created more than ``max_age`` before the hub received
    # it, or more than ``max_clock_skew`` after, is refused. None: no window.
    max_age: dt.timedelta | None = None
    max_clock_skew: dt.timedelta = dt.timedelta(minutes=15)
    # OSCI: the Id of the Content that is the payload, as agreed with this sender (the OSCI
    # payload rule, hub.core.transport.osci). None: the rule finds the one XML Content.
    osci_payload_id: str | None = None


class PortalTable:
    """Looks up the portal responsible for an envelope."""

    def __init__(self, portals: Iterable[Portal]) -> None:
        self._portals = tuple(portals)
        file_portals = [p for p in self._portals if "file" in p.transports]
        if len(file_portals) > 1:
            raise ValueError("at most one portal may use the file drop")
        self._file = file_portals[0] if file_portals else None
        self._by_author: dict[tuple[str, str], Portal] = {}
        self._by_destination: dict[str, Portal] = {}
        for portal in self._portals:
            for transport in portal.transports & {"xta2", "osci"}:
                for author in portal.authors:
                    if self._by_author.setdefault((transport, author), portal) is not portal:
                        raise ValueError("an author key belongs to two portals")
            if "fitconnect" in portal.transports:
                for destination in portal.destinations:
                    if self._by_destination.setdefault(destination, portal) is not portal:
                        raise ValueError("a FIT-Connect destination belongs to two portals")

    def __iter__(self) -> Iterator[Portal]:
        return iter(self._portals)

    def for_envelope(self, envelope: Envelope) -> Portal:
        """The portal that sent this envelope, from transport metadata only."""
        portal: Portal | None
        if envelope.transport == "file":
            portal = self._file
        elif envelope.transport == "fitconnect":
            portal = self._by_destination.get(envelope.reader or "")
        else:
            portal = self._by_author.get((envelope.transport, envelope.author or ""))
        if portal is None:
            raise Rejection(Reason.SENDER_MISMATCH, "transport/author")
        return portal

    def osci_payload_id(self, author: str | None) -> str | None:
        """The payload Content Id agreed with the OSCI sender ``author``, if any (unknown: None,
        the sender is refused later by :meth:`for_envelope`)."""
        portal = self._by_author.get(("osci", author or ""))
        return None if portal is None else portal.osci_payload_id

    def check_payload(self, portal: Portal, payload_type: str, author_key: str) -> None:
        """The payload type and the author the payload names must be the portal's own."""
        if payload_type not in portal.payloads:
            raise Rejection(Reason.UNKNOWN_PAYLOAD, "/")
        if portal.authors and author_key not in portal.authors:
            raise Rejection(Reason.SENDER_MISMATCH, "author")

    @staticmethod
    def check_fresh(portal: Portal, created: str, received_at: str) -> None:
        """The payload's creation time lies in the portal's freshness window around its receipt.

        The window is judged against ``received_at``, the moment the hub first received the
        original (kept by ``dlq retry``), so a retried dead letter is judged as it was then.
        Older than ``max_age`` is ``DUPLICATE`` (a replay the index may no longer hold, or a
        message captured elsewhere); later than ``max_clock_skew`` after receipt, or no time
        at all, is ``FIELD_FORMAT``. A creation time without a zone offset is read as
        German legal time (Europe/Berlin), as XÖV messages write local times.
        """
        if portal.max_age is None:
            return
        moment = creation_time(created)
        if moment is None:
            raise Rejection(Reason.FIELD_FORMAT, FRESHNESS_PATH)
        received = dt.datetime.fromisoformat(received_at)
        if moment < received - portal.max_age:
            raise Rejection(Reason.DUPLICATE, FRESHNESS_PATH)
        if moment > received + portal.max_clock_skew:
            raise Rejection(Reason.FIELD_FORMAT, FRESHNESS_PATH)


FRESHNESS_PATH = "submission/created"
_BERLIN: dt.tzinfo | None = None


def creation_time(text: str) -> dt.datetime | None:
    """An ``xs:dateTime`` as an aware datetime, or None if Python cannot represent it."""
    global _BERLIN  # noqa: PLW0603 - loaded on first use, only for times without an offset
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        if _BERLIN is None:
            from zoneinfo import ZoneInfo  # noqa: PLC0415

            _BERLIN = ZoneInfo("Europe/Berlin")
        moment = moment.replace(tzinfo=_BERLIN)
    return moment


def open_table() -> PortalTable:
    """A table for tools that accept any file-drop payload without a configured portal list."""
    return PortalTable(
        [
            Portal(
                "filedrop",
                "Local file drop",
                frozenset({"file"}),
                frozenset({"xsozial-basis-2.4.0", "wohngeld-antrag-1"}),
            )
        ]
    )
