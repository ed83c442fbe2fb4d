"""An XTA message too large to fetch: the records that refuse it unread, and what the list says.

:func:`hub.core.xta_oversize.reject` makes, from a status list entry alone, a
``SIZE`` dead letter naming the message id and the declared size (no payload,
no digest, no source), its audit event, the message id's replay key and the
portal's rejection receipt. The poller's side (reject, then close; keep) runs
against the simulator in tests/integration/test_xta_poller.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl

import pytest

from connectors.xta import XtaSettings
from hub.config import ConfigError, load
from hub.core import xta_oversize
from hub.core.pipeline import AUDIT, DEAD_LETTER, RECEIPTS, SEEN, HubContext, intake
from hub.core.portals import Portal, PortalTable
from hub.core.records import (
    AuditEvent,
    DeadLetter,
    PortalReceipt,
    Received,
    Seen,
    decode,
    unb64,
)
from hub.core.transport import xta
from hub.core.xta_oversize import Oversize
from hub.sim.xta import DEFAULT_BUSINESS_SCENARIO, DEFAULT_MESSAGE_TYPE
from hub.testing import make_submission

PORTAL = "sop:050000100099"
OFFICE = "wgb010540880000"
MESSAGE_ID = "urn:de:xta:messageid:sop:big-1"
XSOZIAL = "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0"
LIMIT = 4 * 1024 * 1024


def outbound(message_id: str = MESSAGE_ID, **changes) -> xta.OutboundMetadata:  # type: ignore[no-untyped-def]
    values = {
        "message_id": message_id,
        "author": PORTAL,
        "reader": OFFICE,
        "service": "urn:xoev-de:xsozial:basis:2.4.0",
        "message_type": DEFAULT_MESSAGE_TYPE,
        "payload_schema": XSOZIAL,
        "business_scenario": DEFAULT_BUSINESS_SCENARIO,
    }
    return xta.OutboundMetadata(**{**values, **changes})


def status_list(*entries: str) -> bytes:
    return (
        '<s12:Envelope xmlns:s12="http://www.w3.org/2003/05/soap-envelope" '
        'xmlns:osci="http://www.osci.eu/ws/2008/05/transport" '
        'xmlns:oscimeta="http://www.osci.eu/ws/2014/10/transport" '
        'xmlns:wsa="http://www.w3.org/2005/08/addressing">'
        "<s12:Body><osci:MsgStatusList>" + "".join(entries) + "</osci:MsgStatusList></s12:Body>"
        "</s12:Envelope>"
    ).encode()


def metadata_entry(message_id: str = MESSAGE_ID, **changes) -> str:  # type: ignore[no-untyped-def]
    from lxml import etree

    return etree.tostring(xta.message_metadata(outbound(message_id, **changes))).decode()


def attributes_entry(message_id: str, size: str) -> str:
    return (
        f"<osci:MsgAttributes><wsa:MessageID>{message_id}</wsa:MessageID>"
        "<osci:TypeOfBusinessScenario>urn:x</osci:TypeOfBusinessScenario>"
        f"<osci:MsgSize>{size}</osci:MsgSize>"
        "<osci:DeliveryTime>2026-11-02T09:00:00Z</osci:DeliveryTime></osci:MsgAttributes>"
    )


def metadata(message_id: str = MESSAGE_ID) -> xta.XtaMetadata:
    listing = xta.status_list(status_list(metadata_entry(message_id)))
    (entry,) = listing.entries
    assert entry.metadata is not None
    return entry.metadata


@pytest.fixture(scope="module")
def platform_hub(hub_context: HubContext) -> HubContext:
    portal = Portal(
        "sozialplattform-nrw",
        "Sozialplattform NRW",
        frozenset({"xta2"}),
        frozenset({"xsozial-basis-2.4.0"}),
        frozenset({PORTAL}),
    )
    return dataclasses.replace(hub_context, portals=PortalTable([portal]))


def only(result, topic: str, cls):  # type: ignore[no-untyped-def]
    (record,) = [decode(e.value, cls) for e in result.emits if e.topic == topic]
    return record


class TestStatusListEntries:
    def test_metadata_and_declared_size(self):
        """A MessageMetaData entry carries its checked metadata and its MsgSize."""
        listing = xta.status_list(status_list(metadata_entry(msg_size=9_000_000)))
        (entry,) = listing.entries
        assert (entry.message_id, entry.size) == (MESSAGE_ID, 9_000_000)
        assert entry.metadata is not None
        assert (entry.metadata.author, entry.metadata.reader) == (PORTAL, OFFICE)

    def test_msg_attributes_form_has_a_size_but_no_metadata(self):
        listing = xta.status_list(status_list(attributes_entry(MESSAGE_ID, "123")))
        assert listing.entries == (xta.StatusEntry(MESSAGE_ID, None, 123),)

    @pytest.mark.parametrize("size", ["0", "-5", "12a", "1" * 13, ""])
    def test_invalid_size_is_unknown(self, size):
        """A MsgSize that is not a positive integer (of at most 12 digits) is no size at all."""
        listing = xta.status_list(status_list(attributes_entry(MESSAGE_ID, size)))
        assert listing.entries[0].size is None

    def test_entry_with_invalid_metadata_is_listed_without_it(self):
        """Metadata that unwrap would refuse does not fail the list: the entry has none."""
        entry = metadata_entry().replace(f">{PORTAL}<", "> bad id <")
        listing = xta.status_list(status_list(entry))
        assert listing.entries == (xta.StatusEntry(MESSAGE_ID, None, None),)

    def test_first_entry_of_a_repeated_id_wins(self):
        listing = xta.status_list(
            status_list(attributes_entry(MESSAGE_ID, "5"), metadata_entry(msg_size=7))
        )
        assert (listing.message_ids, listing.entries[0].size) == ((MESSAGE_ID,), 5)

    def test_msg_size_must_be_positive(self):
        with pytest.raises(ValueError, match="msg_size"):
            xta.message_metadata(outbound(msg_size=0))


class TestReject:
    def test_records(self, platform_hub, now):
        """Dead letter (id and size, no payload), audit event, replay key, rejection receipt."""
        oversize = Oversize(metadata(), LIMIT, 9_000_000, xta.DECLARED_SIZE)
        result = xta_oversize.reject(oversize, platform_hub, now)
        sid = xta_oversize.submission_id(MESSAGE_ID)
        letter = only(result, DEAD_LETTER, DeadLetter)
        event = only(result, AUDIT, AuditEvent)
        seen = only(result, SEEN, Seen)
        receipt = only(result, RECEIPTS, PortalReceipt)
        assert (result.outcome, result.reason) == ("rejected", "SIZE")
        assert (
            letter.submission_id,
            letter.stage,
            letter.reason,
            letter.path,
            letter.payload_sha256,
            letter.source,
            letter.transport_message_id,
            letter.declared_size,
        ) == (sid, "ingest", "SIZE", "MessageMetaData/MsgSize", None, None, MESSAGE_ID, 9_000_000)
        assert (event.stage, event.decision, event.reason, event.dead_letter_id) == (
            "ingest",
            "rejected",
            "SIZE",
            letter.dead_letter_id,
        )
        assert (seen.key, seen.submission_id) == (xta_seen_key(MESSAGE_ID), sid)
        assert (
            receipt.channel,
            receipt.outcome,
            receipt.reason,
            receipt.portal,
            receipt.transport_message_id,
        ) == ("xta2", "rejected", "SIZE", "sozialplattform-nrw", MESSAGE_ID)
        body = unb64(receipt.body_b64 or "")
        assert xta.receipt_outcome(body) == (MESSAGE_ID, "rejected")
        assert b"<r:reason>SIZE</r:reason>" in xta.unwrap(body).payload
        assert xta.unwrap(body).reader == PORTAL  # back to the author

    def test_response_path_and_no_declared_size(self, platform_hub, now):
        oversize = Oversize(metadata(), LIMIT, None, xta.RESPONSE_SIZE)
        letter = only(xta_oversize.reject(oversize, platform_hub, now), DEAD_LETTER, DeadLetter)
        assert (letter.path, letter.declared_size) == ("getMessage/response", None)

    def test_unknown_author_is_answered_all_the_same(self, hub_context, now):
        """As intake does for an author no portal is configured for: receipt, portal None."""
        oversize = Oversize(metadata(), LIMIT, 9_000_000)
        receipt = only(xta_oversize.reject(oversize, hub_context, now), RECEIPTS, PortalReceipt)
        assert (receipt.channel, receipt.portal) == ("xta2", None)

    def test_ids_repeat(self, platform_hub, now):
        """Refusing the same message again (after a crash before close) repeats every id."""
        oversize = Oversize(metadata(), LIMIT, 9_000_000)
        first = xta_oversize.reject(oversize, platform_hub, now)
        later = xta_oversize.reject(oversize, platform_hub, now + dt.timedelta(hours=1))
        assert [(e.topic, e.key) for e in first.emits] == [(e.topic, e.key) for e in later.emits]
        ids = [
            (
                only(r, DEAD_LETTER, DeadLetter).dead_letter_id,
                only(r, AUDIT, AuditEvent).event_id,
                only(r, RECEIPTS, PortalReceipt).receipt_id,
                xta.receipt_outcome(unb64(only(r, RECEIPTS, PortalReceipt).body_b64 or "")),
                xta.unwrap(unb64(only(r, RECEIPTS, PortalReceipt).body_b64 or "")).message_id,
            )
            for r in (first, later)
        ]
        assert ids[0] == ids[1]

    def test_other_messages_get_other_ids(self):
        assert xta_oversize.submission_id(MESSAGE_ID) != xta_oversize.submission_id(
            MESSAGE_ID + "x"
        )

    def test_the_message_fetched_after_all_is_a_duplicate(self, platform_hub, now):
        """Should the message be fetched after all (close failed, limit raised), it is never
        delivered after the portal was told it was rejected: DUPLICATE at transport/messageId."""
        oversize = Oversize(metadata(), LIMIT, 9_000_000)
        seen_record = only(xta_oversize.reject(oversize, platform_hub, now), SEEN, Seen)
        original = xta.soap_message(
            xta.message_metadata(outbound()),
            xta.content_container(xta.Content(make_submission(), "application/xml")),
            action=xta.ACTION_GET_MESSAGE,
        )
        seen = {seen_record.key: seen_record.submission_id}
        result = intake(Received.of(original, "xta", "xta2", now), None, platform_hub, now, seen)
        letter = only(result, DEAD_LETTER, DeadLetter)
        assert (letter.reason, letter.path) == ("DUPLICATE", "transport/messageId")

    def test_no_payload_anywhere(self, platform_hub, now):
        """Nothing was read, so nothing of a payload can be in the records; ids and codes only."""
        oversize = Oversize(metadata(), LIMIT, 9_000_000)
        for emit in xta_oversize.reject(oversize, platform_hub, now).emits:
            if emit.topic != RECEIPTS:
                assert b"Mustermann" not in emit.value
                assert PORTAL.encode() not in emit.value  # the dead letter names no party

    @pytest.mark.parametrize(
        ("declared", "path"), [(0, xta.DECLARED_SIZE), (5, "MessageMetaData"), (-1, None)]
    )
    def test_refuses_invalid_input(self, declared, path):
        with pytest.raises(ValueError):
            Oversize(metadata(), LIMIT, declared, path or xta.DECLARED_SIZE)


def xta_seen_key(message_id: str) -> str:
    from hub.core.records import seen_key

    return seen_key("msg", "xta2", message_id)


class TestSettings:
    def test_oversize_defaults_to_reject(self):
        assert load({}).xta_oversize == "reject"
        assert load({"SOZIALHUB_XTA_OVERSIZE": "keep"}).xta_oversize == "keep"

    def test_oversize_must_be_reject_or_keep(self):
        with pytest.raises(ConfigError, match="xta_oversize"):
            load({"SOZIALHUB_XTA_OVERSIZE": "delete"})

    def test_poller_settings_refuse_other_actions(self):
        context = ssl.create_default_context()
        with pytest.raises(ValueError, match="oversize"):
            XtaSettings(
                msgbox_url="https://xta.example/a",
                send_url="https://xta.example/b",
                mailbox=OFFICE,
                ssl_context=context,
                oversize="drop",  # type: ignore[arg-type]
            )

    def test_size_path_constants(self):
        assert {xta.DECLARED_SIZE, xta.RESPONSE_SIZE} == xta_oversize.PATHS
