"""Rechtskreiswechsel subscriptions at run time: ``rechtskreiswechsel.subscriptions`` (compacted)
folded over the configuration's.

Offices subscribe without a restart: ``sozialhub rechtskreiswechsel subscribe`` writes a
subscription keyed by its id, ``unsubscribe`` a tombstone. Every worker follows the topic
and the agents ask :meth:`SubscriptionIndex.current` per event, so a subscription counts
for every event planned (and every message sent) after the worker folded it. A record that
is not a valid subscription, or that would clash with the configuration, is ignored and
logged by id; the checks are :func:`hub.subscriptions.fold_runtime`'s.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import structlog

from hub.config import Settings
from hub.core.errors import Rejection
from hub.core.route import OfficeTable
from hub.core.subscriptions import Subscriptions, record_entry
from hub.stream.follow import follow_compacted, in_background
from hub.subscriptions import entry_schema, fold_runtime

log = structlog.get_logger(__name__)

TOPIC = "rechtskreiswechsel.subscriptions"
_KEY = re.compile(r"[a-z][a-z0-9-]{1,62}")


def is_key(name: str) -> bool:
    """Whether a record key has the shape of a subscription id (only such keys are logged)."""
    return _KEY.fullmatch(name) is not None


class SubscriptionIndex:
    """The configured subscriptions plus those on the topic. Thread-safe."""

    def __init__(self, base: Subscriptions, table: OfficeTable, schema: dict[str, Any]) -> None:
        self._base = base
        self._table = table
        self._schema = schema
        self._records: dict[str, dict[str, Any]] = {}  # run-time entries by record key
        self._current = base
        self._lock = threading.Lock()
        self.loaded = threading.Event()
        self.failed = False

    def current(self) -> Subscriptions:
        with self._lock:
            return self._current

    def take(self, key: bytes | None, value: bytes | None) -> None:
        name = (key or b"").decode("ascii", "replace")
        with self._lock:
            if value is None:
                self._records.pop(name, None)
            else:
                try:
                    self._records[name] = record_entry(value)
                except Rejection:
                    log.warning("subscriptions.record_ignored", error="envelope")
                    return
            self._current, refused = fold_runtime(
                self._records, self._schema, self._table, self._base
            )
        if value is not None and name in refused:
            log.warning("subscriptions.refused", subscription=name if is_key(name) else "?")

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
                runtime=len(self._records),
                total=len(self.current().entries),
            ),
        ):
            self.failed = True


def start(
    settings: Settings, base: Subscriptions, table: OfficeTable
) -> tuple[SubscriptionIndex, threading.Event]:
    """A loading index and the event that stops its follower thread."""
    index = SubscriptionIndex(base, table, entry_schema(settings.schema_dir))
    return index, in_background(index, settings, "subscriptions-index")
