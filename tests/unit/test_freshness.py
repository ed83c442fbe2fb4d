"""The freshness window per portal (bad-inputs G47): old payloads are replays, future ones bad."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
import yaml

from hub import portals
from hub.config import PROJECT_ROOT, ConfigError
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import ACCEPTED, DEAD_LETTER, SEEN, intake
from hub.core.portals import Portal, PortalTable, creation_time
from hub.core.records import DeadLetter, Received, SourceRef, decode
from hub.testing import SubmissionSpec, make_submission

SCHEMA = json.loads((PROJECT_ROOT / "schemas" / "hub" / "portals.schema.json").read_text())
SOURCE = SourceRef("sozialhub.submissions.received", 0, 7)
RECEIVED_AT = dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=dt.UTC)
PAYLOADS = frozenset({"xsozial-basis-2.4.0", "wohngeld-antrag-1"})


def file_portal(max_age_days: int | None, skew_minutes: int = 15) -> Portal:
    return Portal(
        "filedrop",
        "Local file drop",
        frozenset({"file"}),
        PAYLOADS,
        max_age=None if max_age_days is None else dt.timedelta(days=max_age_days),
        max_clock_skew=dt.timedelta(minutes=skew_minutes),
    )


def run(
    hub_context,
    created: str,
    *,
    max_age_days: int | None = 30,
    later: dt.timedelta = dt.timedelta(),
):
    """Intake of a submission created at ``created``, received at RECEIVED_AT, processed ``later``."""
    hub = dataclasses.replace(hub_context, portals=PortalTable([file_portal(max_age_days)]))
    original = make_submission(SubmissionSpec(created=created))
    received = Received.of(original, "test-inbox", "file", RECEIVED_AT)
    return intake(received, SOURCE, hub, RECEIVED_AT + later)


def letter(result) -> DeadLetter:
    (only,) = [decode(e.value, DeadLetter) for e in result.emits if e.topic == DEAD_LETTER]
    return only


@pytest.mark.parametrize(
    "created",
    [
        "2026-11-02T09:14:00Z",  # an hour before receipt
        "2026-10-03T10:00:01Z",  # just inside 30 days
        "2026-11-02T10:14:59Z",  # within the clock skew
        "2026-11-02T11:10:00+01:00",  # 10:10 UTC, written with an offset
    ],
)
def test_inside_the_window_is_accepted(hub_context, created: str) -> None:
    assert run(hub_context, created).outcome == "accepted"


def test_older_than_the_window_is_a_duplicate_without_seen_keys(hub_context) -> None:
    result = run(hub_context, "2026-10-03T09:59:59Z")
    assert (result.outcome, result.reason) == ("rejected", "DUPLICATE")
    assert letter(result).path == "submission/created"
    assert not [e for e in result.emits if e.topic in (ACCEPTED, SEEN)]


def test_a_creation_time_beyond_the_clock_skew_is_refused(hub_context) -> None:
    result = run(hub_context, "2026-11-02T10:15:01Z")
    assert (result.outcome, result.reason) == ("rejected", "FIELD_FORMAT")
    assert letter(result).path == "submission/created"


def test_without_a_window_any_age_is_accepted(hub_context) -> None:
    assert run(hub_context, "2019-01-01T00:00:00Z", max_age_days=None).outcome == "accepted"


def test_the_window_is_judged_at_receipt_not_at_processing(hub_context) -> None:
    """A dead letter retried weeks later keeps its received_at and is judged as it was then."""
    result = run(hub_context, "2026-11-02T09:14:00Z", later=dt.timedelta(days=90))
    assert result.outcome == "accepted"


def test_a_local_time_is_read_as_german_legal_time() -> None:
    # 2 November: CET, UTC+1. 10:30 local is 09:30 UTC.
    assert creation_time("2026-11-02T10:30:00") == dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)
    # 2 July: CEST, UTC+2.
    assert creation_time("2026-07-02T10:30:00") == dt.datetime(2026, 7, 2, 8, 30, tzinfo=dt.UTC)


def test_local_time_counts_against_the_skew(hub_context) -> None:
    # 11:10 in Berlin is 10:10 UTC: ten minutes after receipt, inside the 15 minutes.
    assert run(hub_context, "2026-11-02T11:10:00").outcome == "accepted"
    # 11:20 in Berlin is 10:20 UTC: beyond the skew.
    assert run(hub_context, "2026-11-02T11:20:00").reason == "FIELD_FORMAT"


@pytest.mark.parametrize("text", ["", "gestern", "2026-13-02T10:00:00Z", "-0001-01-01T00:00:00Z"])
def test_an_unreadable_creation_time_is_field_format(text: str) -> None:
    assert creation_time(text) is None
    with pytest.raises(Rejection) as caught:
        PortalTable.check_fresh(file_portal(30), text, RECEIVED_AT.isoformat())
    assert (caught.value.reason, caught.value.path) == (Reason.FIELD_FORMAT, "submission/created")


def test_the_portal_table_reads_the_window() -> None:
    document = yaml.safe_load((PROJECT_ROOT / "config" / "portals.yml").read_text("utf-8"))
    document["portals"][0]["freshness"] = {"max_age_days": 14, "max_clock_skew_minutes": 5}
    table = portals.parse(document, SCHEMA, PROJECT_ROOT / "config")
    platform = next(p for p in table if p.portal_id == document["portals"][0]["id"])
    assert platform.max_age == dt.timedelta(days=14)
    assert platform.max_clock_skew == dt.timedelta(minutes=5)
    others = [p for p in table if p.portal_id != platform.portal_id]
    assert all(p.max_age is None for p in others)


@pytest.mark.parametrize(
    "window", [{"max_age_days": 0}, {"max_clock_skew_minutes": 5}, {"max_age_days": 7, "x": 1}]
)
def test_a_bad_window_is_refused(window: dict) -> None:
    document = yaml.safe_load((PROJECT_ROOT / "config" / "portals.yml").read_text("utf-8"))
    document["portals"][0]["freshness"] = window
    with pytest.raises(ConfigError, match="portals/0/freshness"):
        portals.parse(document, SCHEMA, PROJECT_ROOT / "config")
