"""The person-key index: ``audit.keys`` (compacted) folded into pseudonym -> live person keys.

Dispatch asks it for the key to seal a submission's recorded input under
(:func:`hub.core.pipeline.dispatch`, argument ``vault``; docs/audit-vault.md).
Like the replay index (:mod:`hub.stream.seen`) it is loaded from the topic
before dispatch's first batch and then followed in a background thread, so keys
made by other workers arrive too, and a tombstone (``sozialhub audit erase``)
removes a key; keys this worker makes are remembered at once, so the person's
next submission in the same batch uses the same key. The index holds wrapped
keys only; unwrapping is the core's, with the KEK.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator, Mapping

import structlog

from hub.config import Settings
from hub.core.audit_vault import (
    KEYS,
    PERSON_KEY_ID,
    VAULT,
    KekRing,
    PersonKey,
    Vault,
    decode_person_key,
)
from hub.core.errors import Rejection
from hub.core.pipeline import Emit
from hub.stream import follow
from hub.stream.follow import follow_compacted, in_background

log = structlog.get_logger(__name__)

TOPICS = (KEYS, VAULT)  # what dispatch writes besides its deliveries when it records inputs
LOAD_SECONDS = 60.0  # dispatch waits this long for the index, then the worker exits


def _preference(record: PersonKey) -> tuple[str, str]:
    # The oldest key first: when two workers made a key for one person at once, every
    # worker settles on the same one as soon as it knows both.
    return record.created_at, record.key_id


class PersonKeyIndex(Mapping[str, tuple[PersonKey, ...]]):
    """Pseudonym -> the person's live keys, the preferred (oldest) first. Thread-safe."""

    def __init__(self) -> None:
        self._by_id: dict[str, PersonKey] = {}
        self._by_person: dict[str, dict[str, PersonKey]] = {}
        self._lock = threading.Lock()
        self.loaded = threading.Event()
        self.failed = False

    def __getitem__(self, person: str) -> tuple[PersonKey, ...]:
        with self._lock:
            return tuple(sorted(self._by_person[person].values(), key=_preference))

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._by_person))

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_person)

    @property
    def key_count(self) -> int:
        with self._lock:
            return len(self._by_id)

    def _drop(self, record: PersonKey) -> None:
        keys = self._by_person.get(record.person, {})
        keys.pop(record.key_id, None)
        if not keys:
            self._by_person.pop(record.person, None)

    def put(self, record: PersonKey) -> None:
        with self._lock:
            old = self._by_id.get(record.key_id)
            if old is not None:
                self._drop(old)
            self._by_id[record.key_id] = record
            self._by_person.setdefault(record.person, {})[record.key_id] = record

    def erase(self, key_id: str) -> None:
        """A tombstone: the key is gone."""
        with self._lock:
            old = self._by_id.pop(key_id, None)
            if old is not None:
                self._drop(old)

    def remember(self, emits: Iterable[Emit]) -> None:
        """Keys this worker is about to write: the person's next submission uses the same key."""
        for emit in emits:
            if emit.topic == KEYS:
                self.put(decode_person_key(emit.value))

    def take(self, key: bytes | None, value: bytes | None) -> None:
        """A record of ``audit.keys``; one that is not a person key is logged and ignored."""
        key_id = (key or b"").decode("ascii", "replace")
        if PERSON_KEY_ID.fullmatch(key_id) is None:
            log.warning("person_keys.foreign_record")  # never the key: it could be anything
            return
        if value is None:
            self.erase(key_id)
            return
        try:
            record = decode_person_key(value)
        except Rejection as rejection:
            log.warning("person_keys.foreign_record", reason=rejection.reason.value)
            return
        if record.key_id != key_id:
            log.warning("person_keys.foreign_record", reason="key_id")
            return
        self.put(record)

    def follow(self, settings: Settings, stop: threading.Event) -> None:
        """Read ``audit.keys`` from the beginning; set ``loaded`` at its end; keep following."""
        if not follow_compacted(
            settings,
            KEYS,
            stop,
            group="person-key-index",
            name="person_keys",
            missing="person key topic missing: run `sozialhub topics apply`",
            take=self.take,
            loaded=self.loaded,
            on_loaded=lambda: log.info("person_keys.loaded", keys=self.key_count),
        ):
            self.failed = True


def start(settings: Settings) -> tuple[PersonKeyIndex, threading.Event]:
    """A loading index and the event that stops its follower thread."""
    index = PersonKeyIndex()
    return index, in_background(index, settings, "person-key-index")


def vault(settings: Settings, keks: KekRing) -> tuple[Vault, PersonKeyIndex]:
    """Dispatch's vault: the KEKs, a loading index of ``audit.keys`` and the system's randomness."""
    index, _stop = start(settings)
    return Vault(keks=keks, keys=index, random=os.urandom), index


async def wait_loaded(index: PersonKeyIndex, seconds: float = LOAD_SECONDS) -> None:
    """Return once the index has read ``audit.keys`` to its end; TimeoutError if it cannot."""
    await follow.wait_loaded(index, seconds, "person key index")
