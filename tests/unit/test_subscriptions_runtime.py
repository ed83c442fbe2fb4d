"""Rechtskreiswechsel subscriptions at run time: checked like configured ones, never replacing or
contradicting the configuration, folded by an index that follows the compacted topic."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson
import pytest

from hub import offices
from hub import subscriptions as configured
from hub.config import PROJECT_ROOT, ConfigError
from hub.core import fanout
from hub.core import rechtskreiswechsel as rkw
from hub.core.errors import Rejection
from hub.core.subscriptions import encode_record, record_entry, with_runtime
from hub.stream.subscriptions import SubscriptionIndex
from tests.rkw_support import example_body

SCHEMAS = PROJECT_ROOT / "schemas"
TABLE = offices.load(PROJECT_ROOT / "config" / "offices.yml", SCHEMAS)
BASE = configured.load(PROJECT_ROOT / "config" / "subscriptions.yml", SCHEMAS, TABLE)
SCHEMA = configured.entry_schema(SCHEMAS)
NOW = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)

FD59 = {
    "id": "fd59-joint-case",
    "role": "affected",
    "office": "kreis-re-fd59",
    "when": [{"to": "SGB II"}],
    "areas": ["05562"],
    "purpose": "joint-case-management",
    "categories": ["identity-address"],
}


def offices_of(subscriptions) -> set[str]:
    event = rkw.event_from_json(example_body("01-recognition-marl.json"))
    planned = fanout.fan_out(event, subscriptions, TABLE, fanout_deny, NOW)
    return {m.office for m in planned.messages}


def fanout_deny(request):
    from hub.core.transfer import Decision, Outcome

    return Decision(request.request_id, Outcome.DENY, reason="NO_BASIS", decided_at=NOW)


def test_a_valid_run_time_subscription_is_added_after_the_configured_ones() -> None:
    added = configured.parse_entry(FD59, SCHEMA, TABLE, BASE)
    merged, refused = with_runtime(BASE, [added], TABLE)
    assert refused == ()
    assert merged.entries[: len(BASE.entries)] == BASE.entries
    assert merged.entries[-1].subscription_id == "fd59-joint-case"
    assert "kreis-re-fd59" not in offices_of(BASE)
    assert "kreis-re-fd59" in offices_of(merged)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"id": "new-office-sgb2"}, "is in the configuration"),
        ({"office": "no-such-office"}, "names no office"),
        ({"categories": ["horoscope"]}, "invalid at categories/0"),
        ({"areas": ["09162"]}, "no area overlaps"),
        ({"role": "old-office", "office": None}, "invalid at /"),
        ({"purpose": "marketing"}, "invalid at purpose"),
    ],
)
def test_a_run_time_subscription_is_checked_like_a_configured_one(change, problem) -> None:
    entry = {**FD59, **change}
    with pytest.raises(ConfigError, match=problem):
        configured.parse_entry(entry, SCHEMA, TABLE, BASE)


def test_a_run_time_subscription_may_not_contradict_the_configuration() -> None:
    """An office the configuration lets hear under one purpose cannot add a second one."""
    configured_affected = next(s for s in BASE.entries if s.office == "wgs-herten")
    assert configured_affected.purpose == "joint-case-management"
    entry = {**FD59, "id": "wgs-herten-more", "office": "wgs-herten", "purpose": "evidence-reuse"}
    with pytest.raises(ConfigError, match="two purposes"):
        configured.parse_entry(entry, SCHEMA, TABLE, BASE)


def test_records_round_trip_and_foreign_ones_are_refused() -> None:
    value = encode_record(FD59, NOW)
    assert record_entry(value) == FD59
    assert orjson.loads(value)["type"] == "sozialhub.subscription"
    for foreign in (
        b"[]",
        b"{}",
        b"not json",
        b'{"type":"sozialhub.subscription","v":2,"subscription":{}}',
    ):
        with pytest.raises(Rejection):
            record_entry(foreign)


def test_the_index_folds_records_and_tombstones() -> None:
    index = SubscriptionIndex(BASE, TABLE, SCHEMA)
    assert index.current() == BASE
    index.take(b"fd59-joint-case", encode_record(FD59, NOW))
    assert index.current().entries[-1].subscription_id == "fd59-joint-case"
    index.take(b"other-key", encode_record({**FD59, "id": "fd59-second"}, NOW))  # key != id
    index.take(b"new-office-sgb2", encode_record({**FD59, "id": "new-office-sgb2"}, NOW))
    index.take(b"garbage", b"garbage")
    assert [s.subscription_id for s in index.current().entries[len(BASE.entries) :]] == [
        "fd59-joint-case"
    ]
    assert index.current().entries[: len(BASE.entries)] == BASE.entries
    index.take(b"fd59-joint-case", None)
    assert index.current() == BASE


def test_the_entry_schema_is_the_configuration_files_item(tmp_path: Path) -> None:
    document = {"schema": "sozialhub.subscriptions/1", "subscriptions": [FD59]}
    path = tmp_path / "subscriptions.yml"
    path.write_text(orjson.dumps(document).decode(), encoding="utf-8")
    loaded = configured.load(path, SCHEMAS, TABLE)
    assert loaded.entries == (configured.parse_entry(FD59, SCHEMA, TABLE, BASE),)
