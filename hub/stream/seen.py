"""The replay index: ``submissions.seen`` (compacted) folded into a dictionary.

Intake asks it whether a transport message id or a payload digest was already
used by another submission (:func:`hub.core.pipeline.intake`, argument
``seen``). The index is loaded from the topic before intake's first batch and
then followed in a background thread, so keys written by other workers arrive
too; keys this worker emits are remembered at once, so a duplicate inside the
same batch is caught. Nothing here decides anything: the decision is the core's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import structlog

from hub.config import Settings
from hub.core.errors import Rejection
from hub.core.pipeline import SEEN, Emit
from hub.core.records import Seen, decode
from hub.stream.follow import follow_compacted, in_background

log = structlog.get_logger(__name__)


class SeenIndex(Mapping[str, str]):
    """Replay key -> first submission id. Thread-safe reads and writes."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()
        self.loaded = threading.Event()
        self.failed = False

    def __getitem__(self, key: str) -> str:
        with self._lock:
            return self._data[key]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._data))

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)

    def add(self, key: str, submission_id: str) -> None:
        """First writer wins: a later record for the same key never replaces the first id."""
        with self._lock:
            self._data.setdefault(key, submission_id)

    def remember(self, emits: Iterable[Emit]) -> None:
        for emit in emits:
            if emit.topic == SEEN:
                self.add(emit.key, decode(emit.value, Seen).submission_id)

    def follow(self, settings: Settings, stop: threading.Event) -> None:
        """Read the topic from the beginning; set ``loaded`` at the end; keep following."""
        if not follow_compacted(
            settings,
            SEEN,
            stop,
            group="seen-index",
            name="seen",
            missing="replay topic missing: run `sozialhub topics apply`",
            take=lambda _key, value: self._add_record(value),
            loaded=self.loaded,
            on_loaded=lambda: log.info("seen.loaded", keys=len(self)),
        ):
            self.failed = True

    def _add_record(self, value: Any) -> None:
        try:
            record = decode(value, Seen)
        except Rejection:
            log.warning("seen.foreign_record")  # not ours: ignored, never trusted
            return
        self.add(record.key, record.submission_id)


def start(settings: Settings) -> tuple[SeenIndex, threading.Event]:
    """A loading index and the event that stops its follower thread."""
    index = SeenIndex()
    return index, in_background(index, settings, "seen-index")
