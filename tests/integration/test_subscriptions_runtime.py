"""Run-time Rechtskreiswechsel subscriptions through the broker: `sozialhub rechtskreiswechsel
subscribe|unsubscribe|subscriptions` write and read the compacted topic, and a worker's index
following it changes the fan-out of the next event."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest
import yaml

from hub import offices
from hub import subscriptions as configured
from hub.core import fanout
from hub.core import rechtskreiswechsel as rkw
from hub.core.transfer import Decision, Outcome
from hub.stream import subscriptions as stream_subscriptions
from hub.supervise import worker_environment
from tests.rkw_support import example_body

pytestmark = pytest.mark.integration

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


def command(settings, *args: str) -> tuple[int, dict]:
    done = subprocess.run(
        [sys.executable, "-m", "hub", "rechtskreiswechsel", *args],
        env=worker_environment(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, json.loads(lines[-1]) if lines else {}


def addressed(subscriptions, table) -> set[str]:
    event = rkw.event_from_json(example_body("01-recognition-marl.json"))

    def deny(request):
        return Decision(request.request_id, Outcome.DENY, reason="NO_BASIS", decided_at=NOW)

    return {m.office for m in fanout.fan_out(event, subscriptions, table, deny, NOW).messages}


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_subscribe_and_unsubscribe_change_the_next_fan_out(hub_settings, tmp_path):
    table = offices.load(hub_settings.offices_file, hub_settings.schema_dir)
    base = configured.load(configured.default_path(hub_settings), hub_settings.schema_dir, table)
    index, stop = stream_subscriptions.start(hub_settings, base, table)
    try:
        assert index.loaded.wait(30)
        assert "kreis-re-fd59" not in addressed(index.current(), table)

        path = tmp_path / "fd59.yml"
        path.write_text(yaml.safe_dump(FD59), encoding="utf-8")
        status, out = command(hub_settings, "subscribe", str(path))
        assert (status, out["verdict"], out["subscription"]) == (0, "subscribed", "fd59-joint-case")
        assert wait_until(lambda: "kreis-re-fd59" in addressed(index.current(), table))

        status, listed = command(hub_settings, "subscriptions")
        rows = {row["id"]: row for row in listed["subscriptions"]}
        assert status == 0
        assert rows["fd59-joint-case"]["source"] == "topic"
        assert rows["new-office-sgb2"]["source"] == "configuration"

        # A configured subscription cannot be replaced or ended at run time.
        clash = tmp_path / "clash.yml"
        clash.write_text(yaml.safe_dump({**FD59, "id": "new-office-sgb2"}), encoding="utf-8")
        status, out = command(hub_settings, "subscribe", str(clash))
        assert (status, out["verdict"]) == (1, "refused")
        status, out = command(hub_settings, "unsubscribe", "new-office-sgb2")
        assert (status, out["verdict"]) == (1, "refused")

        status, out = command(hub_settings, "unsubscribe", "fd59-joint-case")
        assert (status, out["verdict"]) == (0, "unsubscribed")
        assert wait_until(lambda: "kreis-re-fd59" not in addressed(index.current(), table))
        status, out = command(hub_settings, "unsubscribe", "fd59-joint-case")
        assert (status, out["verdict"]) == (0, "absent")
    finally:
        stop.set()


def test_a_foreign_record_on_the_topic_changes_nothing(hub_settings):
    from hub import dlq

    table = offices.load(hub_settings.offices_file, hub_settings.schema_dir)
    base = configured.load(configured.default_path(hub_settings), hub_settings.schema_dir, table)
    topic = hub_settings.topic(stream_subscriptions.TOPIC)
    dlq.produce(hub_settings, topic, b"fd59-joint-case", json.dumps(FD59).encode())  # no envelope
    index, stop = stream_subscriptions.start(hub_settings, base, table)
    try:
        assert index.loaded.wait(30)
        assert index.current() == base
    finally:
        stop.set()
