"""Rechtskreiswechsel subscriptions at run time: ``rechtskreiswechsel.subscriptions`` (compacted)
folded over the configuration's.

Offices subscribe without a restart: ``sozialhub rechtskreiswechsel subscribe`` writes a
subscription keyed by its id, ``unsubscribe`` a tombstone. Every worker follows the topic
and the agents ask :meth:`SubscriptionIndex.current` per event, so a subscription counts
for every event planned (and every message sent) after the worker folded it. A record that
is not a valid subscription, or that would clash with the configuration, is ignored and
logged by id; the decision is the core's (:func:`hub.core.subscriptions.with_runtime`).
"""

from __future__ import annotations

import threading
from typing import Any

import structlog

from hub.config import ConfigError, Settings
from hub.core.errors import Rejection
from hub.core.route import OfficeTable
from hub.core.subscriptions import Subscription, Subscriptions, record_entry, with_runtime
from hub.stream.follow import follow_compacted
from hub.subscriptions import entry_schema, parse_entry

log = structlog.get_logger(__name__)

TOPIC = "rechtskreiswechsel.subscriptions"


class SubscriptionIndex:
    """The configured subscriptions plus those on the topic. Thread-safe."""

    def __init__(self, base: Subscriptions, table: OfficeTable, schema: dict[str, Any]) -> None:
        self._base = base
        self._table = table
        self._schema = schema
        self._runtime: dict[str, Subscription] = {}
        self._current = base
        self._lock = threading.Lock()
        self.loaded = threading.Event()
        self.failed = False

    def current(self) -> Subscriptions:
        with self._lock:
            return self._current

    def take(self, key: bytes | None, value: bytes | None) -> None:
        name = (key or b"").decode("ascii", "replace")
        if value is None:
            with self._lock:
                self._runtime.pop(name, None)
                self._fold()
            return
        try:
            subscription = parse_entry(record_entry(value), self._schema, self._table, self._base)
        except (Rejection, ConfigError) as exc:
            log.warning("subscriptions.record_ignored", error=type(exc).__name__)
            return
        if subscription.subscription_id != name:
            log.warning("subscriptions.record_ignored", error="key")
            return
        with self._lock:
            self._runtime[name] = subscription
            self._fold()

    def _fold(self) -> None:
        self._current, refused = with_runtime(self._base, self._runtime.values(), self._table)
        for subscription_id in refused:
            log.warning("subscriptions.refused", subscription=subscription_id)

    def follow(self, settings: Settings, stop: threading.Event) -> None:
        if not follow_compacted(
            settings,
            TOPIC,
            stop,
            group="subscriptions-index",
            name="subscriptions",
            missing="subscriptions topic missing: run `sozialhub topics apply`",
            take=self.take,
            loaded=self.loaded,
            on_loaded=lambda: log.info(
                "subscriptions.loaded",
                runtime=len(self._runtime),
                total=len(self.current().entries),
            ),
        ):
            self.failed = True


def start(
    settings: Settings, base: Subscriptions, table: OfficeTable
) -> tuple[SubscriptionIndex, threading.Event]:
    """A loading index and the event that stops its follower thread."""
    index = SubscriptionIndex(base, table, entry_schema(settings.schema_dir))
    stop = threading.Event()
    threading.Thread(
        target=index.follow, args=(settings, stop), name="subscriptions-index", daemon=True
    ).start()
    return index, stop
