"""Load the Rechtskreiswechsel subscriptions (config/subscriptions.yml) into the core's model.

Checked against ``schemas/hub/subscriptions.schema.json`` and then against the
office table (:func:`hub.core.subscriptions.problems`). Errors are
:class:`~hub.config.ConfigError` naming the location or the subscription id,
never a value.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from hub.config import ConfigError, Settings
from hub.core.route import OfficeTable
from hub.core.subscriptions import (
    Role,
    Subscription,
    Subscriptions,
    Trigger,
    problems,
    with_runtime,
)

SCHEMA = Path("hub") / "subscriptions.schema.json"


def default_path(settings: Settings) -> Path:
    """``subscriptions.yml`` beside the configured office table."""
    return settings.offices_file.parent / "subscriptions.yml"


def _subscription(entry: dict[str, Any], table: OfficeTable) -> Subscription:
    role = Role(entry["role"])
    office = entry.get("office")
    areas = tuple(entry.get("areas", ()))
    if not areas and role is Role.AFFECTED and office is not None:
        known = table.find(office)
        areas = known.areas if known is not None else ()
    return Subscription(
        subscription_id=entry["id"],
        role=role,
        purpose=entry["purpose"],
        categories=frozenset(entry.get("categories", ())),
        areas=areas,
        triggers=tuple(
            Trigger(t.get("from"), t.get("to"), t.get("reason")) for t in entry.get("when", ())
        ),
        office=office,
    )


def parse(document: Any, schema: dict[str, Any], table: OfficeTable) -> Subscriptions:
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as exc:
        location = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise ConfigError(f"subscriptions invalid at {location}") from None
    subscriptions = Subscriptions(tuple(_subscription(e, table) for e in document["subscriptions"]))
    found = problems(subscriptions, table)
    if found:
        raise ConfigError(f"subscriptions: {found[0]}")
    return subscriptions


def load(path: Path, schema_dir: Path, table: OfficeTable) -> Subscriptions:
    schema = json.loads((schema_dir / SCHEMA).read_text("utf-8"))
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        raise ConfigError(f"subscriptions {path} cannot be read") from None
    return parse(document, schema, table)


def entry_schema(schema_dir: Path) -> dict[str, Any]:
    """The schema of one subscription: an item of the configuration file's ``subscriptions``."""
    schema = json.loads((schema_dir / SCHEMA).read_text("utf-8"))
    item: dict[str, Any] = schema["properties"]["subscriptions"]["items"]
    return item


def parse_entry(
    entry: Any, schema: dict[str, Any], table: OfficeTable, base: Subscriptions
) -> Subscription:
    """One run-time subscription, checked like a configured one and against the configuration:
    ``ConfigError`` naming the location or the problem, never a value."""
    try:
        jsonschema.validate(entry, schema)
    except jsonschema.ValidationError as exc:
        location = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise ConfigError(f"subscription invalid at {location}") from None
    subscription = _subscription(entry, table)
    if any(s.subscription_id == subscription.subscription_id for s in base.entries):
        raise ConfigError(f"subscription {subscription.subscription_id} is in the configuration")
    found = problems(Subscriptions((*base.entries, subscription)), table)
    if found:
        raise ConfigError(f"subscriptions: {found[0]}")
    return subscription


def fold_runtime(
    records: Mapping[str, Any], schema: dict[str, Any], table: OfficeTable, base: Subscriptions
) -> tuple[Subscriptions, tuple[str, ...]]:
    """The configured subscriptions plus the run-time entries of the topic (by record key).

    Each entry is checked like a configured one (:func:`parse_entry`) and must carry its key
    as its id; :func:`hub.core.subscriptions.with_runtime` then adds those that contradict
    nothing. Returns the subscriptions in use and the keys refused.
    """
    parsed: list[Subscription] = []
    refused: set[str] = set()
    for key, entry in sorted(records.items()):
        try:
            subscription = parse_entry(entry, schema, table, base)
        except ConfigError:
            refused.add(key)
            continue
        if subscription.subscription_id != key:
            refused.add(key)
            continue
        parsed.append(subscription)
    merged, clashing = with_runtime(base, parsed, table)
    return merged, tuple(sorted(refused.union(clashing)))
