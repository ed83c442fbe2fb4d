"""The consent registry: ``consent.events`` folded by one writer into ``consent.ledger`` (compacted).

Portals, offices and ``sozialhub consent`` send single events
(``sozialhub.consent-event/1``) keyed by the person's pseudonym. The consent
agent owns the partitions of ``consent.events``, and so every person whose
pseudonym hashes there: it is the only writer of that person's ledger
(``sozialhub.consent-ledger/1`` under the same key on ``consent.ledger``).
:func:`hub.core.consent_registry.record` is the pure step: the current ledger and one event in, the new
ledger and an audit event out. Producers never read-modify-write the ledger,
so two offices recording at once cannot lose each other's event.

:class:`ConsentIndex` holds every ledger in memory: loaded from the compacted
topic before the consent agent's first batch (like the replay index,
:mod:`hub.stream.seen`) and then followed, so ledgers written by other workers
arrive too; ledgers this worker writes are remembered at once. Its lookup
:meth:`ConsentIndex.states_for` is what the transfer gate gets. Every worker
holds a full replica for now; see docs/consent.md for how co-partitioning makes
it local.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable
from typing import Any

import structlog

from hub.config import Settings
from hub.core import consent
from hub.core.consent import ConsentState
from hub.core.consent_registry import EVENTS, LEDGER, STAGE, record
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import Emit
from hub.core.pseudonym import PSEUDONYM
from hub.stream.follow import follow_compacted, in_background, wait_loaded

log = structlog.get_logger(__name__)

# --- the index ------------------------------------------------------------------------------


class ConsentIndex:
    """Pseudonym -> ledger and folded states. Thread-safe."""

    def __init__(self) -> None:
        self._ledgers: dict[str, bytes] = {}
        self._states: dict[str, tuple[ConsentState, ...]] = {}
        self._lock = threading.Lock()
        self.loaded = threading.Event()
        self.failed = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._ledgers)

    def ledger(self, person: str) -> bytes | None:
        with self._lock:
            return self._ledgers.get(person)

    def states_for(self, person: str) -> tuple[ConsentState, ...]:
        """The person's records, folded (ordered by record id); ``()`` for a person without any.

        A pure lookup for the transfer gate: ``gate.decide(request, states_for(request.person), ...)``.
        """
        with self._lock:
            return self._states.get(person, ())

    def put(self, person: str, ledger: bytes | None) -> None:
        """Take a ledger record (``None``: a tombstone, the person's consents erased).

        Raises :class:`Rejection` when it is not a valid ledger of ``person``.
        """
        if ledger is None:
            with self._lock:
                self._ledgers.pop(person, None)
                self._states.pop(person, None)
            return
        owner, events = consent.decode_ledger(ledger)
        if owner != person:
            raise Rejection(Reason.CONSENT_INVALID, "person")
        states = tuple(consent.fold(events).values())
        with self._lock:
            self._ledgers[person] = ledger
            self._states[person] = states

    def remember(self, emits: Iterable[Emit]) -> None:
        """Ledgers this worker is about to write: the next event of the person folds onto them."""
        for emit in emits:
            if emit.topic == LEDGER:
                self.put(emit.key, emit.value)

    def take(self, key: bytes | None, value: bytes | None) -> None:
        """A record of the ledger topic; one that is not a ledger is logged and ignored."""
        person = (key or b"").decode("ascii", "replace")
        if PSEUDONYM.fullmatch(person) is None:
            log.warning("consent.foreign_record")  # never the key: it could be anything
            return
        try:
            self.put(person, value)
        except Rejection as rejection:
            log.warning("consent.foreign_record", reason=rejection.reason.value)

    def follow(self, settings: Settings, stop: threading.Event) -> None:
        """Read the ledger topic from the beginning; set ``loaded`` at its end; keep following."""
        if not follow_compacted(
            settings,
            LEDGER,
            stop,
            group="consent-index",
            name="consent",
            missing="consent ledger topic missing: run `sozialhub topics apply`",
            take=self.take,
            loaded=self.loaded,
            on_loaded=lambda: log.info("consent.loaded", persons=len(self)),
        ):
            self.failed = True


def start(settings: Settings) -> tuple[ConsentIndex, threading.Event]:
    """A loading index and the event that stops its follower thread."""
    index = ConsentIndex()
    return index, in_background(index, settings, "consent-index")


LOAD_SECONDS = 60.0  # the consent agent waits this long for the index, then the worker exits


def register(app: Any, settings: Settings, sender: Any, stage_agent: Any) -> ConsentIndex:
    """Start the index and register the consent agent on ``consent.events``; the index, for the gate.

    ``stage_agent`` is :func:`hub.stream.app.stage_agent` (passed in: this module
    must not import the app). The agent's batches wait until the index is loaded.
    """
    from hub.core.pipeline import StageResult  # noqa: PLC0415

    index, _stop = start(settings)

    def compute(event: Any, _source: Any) -> StageResult:
        key: bytes | None = event.message.key
        person = (key or b"").decode("ascii", "replace")
        emits = record(key, event.value, index.ledger(person), dt.datetime.now(dt.UTC))
        index.remember(emits)  # the person's next event in this batch folds onto this ledger
        return StageResult(emits, "recorded")

    async def loaded() -> None:
        await wait_loaded(index, LOAD_SECONDS, "consent index")

    stage_agent(app, sender.channel(EVENTS), STAGE, compute, sender, before=loaded)
    return index
