"""``sozialhub rechtskreiswechsel subscribe|unsubscribe|subscriptions``: run-time subscriptions on
``rechtskreiswechsel.subscriptions`` (docs/rechtskreiswechsel.md#subscriptions-at-run-time).

The checks are the ones the workers apply (:func:`hub.subscriptions.parse_entry`): the
subscription schema, the office table and the configuration, whose ids and rules a run-time
subscription can neither replace nor contradict. Output names subscription and office ids only.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from hub import dlq, offices
from hub import subscriptions as configured
from hub.config import ConfigError, Settings
from hub.core.errors import Rejection
from hub.core.route import OfficeTable
from hub.core.subscriptions import (
    Subscription,
    Subscriptions,
    encode_record,
    record_entry,
)
from hub.stream.subscriptions import TOPIC

EXIT_OK, EXIT_REFUSED, EXIT_USAGE = 0, 1, 2


def _out(document: Any) -> None:
    sys.stdout.write(json.dumps(document) + "\n")


def _err(command: str, text: str) -> None:
    sys.stderr.write(f"sozialhub rechtskreiswechsel {command}: {text}\n")


def _configuration(settings: Settings) -> tuple[OfficeTable, Subscriptions]:
    table = offices.load(settings.offices_file, settings.schema_dir)
    return table, configured.load(configured.default_path(settings), settings.schema_dir, table)


def runtime_entries(settings: Settings) -> dict[str, dict[str, Any]]:
    """The subscriptions on the topic now (the latest record per id; tombstones remove)."""
    entries: dict[str, dict[str, Any]] = {}
    for message in dlq.read_topic(settings, settings.topic(TOPIC)):
        key = (message.key() or b"").decode("ascii", "replace")
        value = message.value()
        if value is None:
            entries.pop(key, None)
            continue
        try:
            entries[key] = record_entry(value)
        except Rejection:
            continue  # not a subscription record: the workers ignore it too
    return entries


def subscribe(settings: Settings, path: Path) -> int:
    try:
        entry = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        _err("subscribe", f"{path.name} cannot be read as YAML or JSON")
        return EXIT_USAGE
    try:
        table, base = _configuration(settings)
        subscription = configured.parse_entry(
            entry, configured.entry_schema(settings.schema_dir), table, base
        )
    except ConfigError as exc:
        _out({"file": path.name, "verdict": "refused", "problem": str(exc)})
        return EXIT_REFUSED
    now = dt.datetime.now(dt.UTC)
    try:
        where = dlq.produce(
            settings,
            settings.topic(TOPIC),
            subscription.subscription_id.encode("ascii"),
            encode_record(entry, now),
        )
    except dlq.DlqError as exc:
        _err("subscribe", str(exc))
        return dlq.EXIT_CLUSTER_FAILED
    _out(
        {
            "file": path.name,
            "verdict": "subscribed",
            "subscription": subscription.subscription_id,
            "topic": where.topic,
            "partition": where.partition,
            "offset": where.offset,
        }
    )
    return EXIT_OK


def unsubscribe(settings: Settings, subscription_id: str) -> int:
    try:
        _, base = _configuration(settings)
        present = runtime_entries(settings)
    except ConfigError as exc:
        _err("unsubscribe", str(exc))
        return EXIT_USAGE
    except dlq.DlqError as exc:
        _err("unsubscribe", str(exc))
        return dlq.EXIT_CLUSTER_FAILED
    if any(s.subscription_id == subscription_id for s in base.entries):
        _out(
            {
                "subscription": subscription_id,
                "verdict": "refused",
                "problem": "configured in subscriptions.yml: change the configuration instead",
            }
        )
        return EXIT_REFUSED
    if subscription_id not in present:
        _out({"subscription": subscription_id, "verdict": "absent"})
        return EXIT_OK
    try:
        dlq.produce(settings, settings.topic(TOPIC), subscription_id.encode("ascii"), None)
    except dlq.DlqError as exc:
        _err("unsubscribe", str(exc))
        return dlq.EXIT_CLUSTER_FAILED
    _out({"subscription": subscription_id, "verdict": "unsubscribed"})
    return EXIT_OK


def _row(subscription: Subscription, source: str) -> dict[str, Any]:
    return {
        "id": subscription.subscription_id,
        "source": source,
        "role": subscription.role.value,
        "office": subscription.office,
        "purpose": subscription.purpose,
        "categories": sorted(subscription.categories),
        "areas": list(subscription.areas),
        "when": [
            {"from": t.from_rechtskreis, "to": t.to_rechtskreis, "reason": t.reason}
            for t in subscription.triggers
        ],
    }


def listing(settings: Settings) -> int:
    """Every subscription the workers use now (configuration, then run time), and refused ones."""
    try:
        table, base = _configuration(settings)
        present = runtime_entries(settings)
    except (ConfigError, dlq.DlqError) as exc:
        _err("subscriptions", str(exc))
        return EXIT_USAGE
    schema = configured.entry_schema(settings.schema_dir)
    merged, refused = configured.fold_runtime(present, schema, table, base)
    configured_ids = {s.subscription_id for s in base.entries}
    _out(
        {
            "subscriptions": [
                _row(s, "configuration" if s.subscription_id in configured_ids else "topic")
                for s in merged.entries
            ],
            "refused": list(refused),
        }
    )
    return EXIT_OK
