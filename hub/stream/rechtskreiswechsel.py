"""Rechtskreiswechsel agents: thin wiring around :mod:`hub.core.rkw_stages`.

The plan, send (the choke point) and updates agents, the handover state index
that follows the compacted ``rechtskreiswechsel.handovers`` topic, and the
reminder timer. Every decision is made by the pure stages.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from hub.config import Settings
from hub.core.errors import Rejection
from hub.core.handover import Handover, decode_handover
from hub.core.pipeline import Emit, HubContext, StageResult
from hub.core.rechtskreiswechsel import EVENT_ID
from hub.core.rkw_stages import (
    EVENTS,
    HANDOVERS,
    OUTBOX,
    STAGE,
    UPDATES,
    due_reminders,
    plan,
    send,
    update,
)
from hub.stream.follow import follow_compacted, in_background
from hub.stream.subscriptions import SubscriptionIndex

log = structlog.get_logger(__name__)


class HandoverIndex:
    """Event id -> handover state, loaded from the compacted topic and then followed."""

    def __init__(self) -> None:
        self._states: dict[str, Handover] = {}
        self._lock = threading.Lock()
        self.loaded = threading.Event()
        self.failed = False

    def get(self, event_id: str) -> Handover | None:
        with self._lock:
            return self._states.get(event_id)

    def states(self) -> tuple[Handover, ...]:
        with self._lock:
            return tuple(self._states.values())

    def remember(self, emits: Iterable[Emit]) -> None:
        for emit in emits:
            if emit.topic == HANDOVERS:
                self.take(emit.key.encode("ascii"), emit.value)

    def take(self, key: bytes | None, value: bytes | None) -> None:
        event_id = (key or b"").decode("ascii", "replace")
        if EVENT_ID.fullmatch(event_id) is None:
            log.warning("handover.foreign_record")
            return
        if value is None:
            with self._lock:
                self._states.pop(event_id, None)
            return
        try:
            handover = decode_handover(value)
        except Rejection as rejection:
            log.warning("handover.foreign_record", reason=rejection.reason.value)
            return
        if handover.event_id == event_id:
            with self._lock:
                self._states[event_id] = handover

    def follow(self, settings: Settings, stop: threading.Event) -> None:
        """Read the state topic from the beginning; set ``loaded`` at its end; keep following."""
        if not follow_compacted(
            settings,
            HANDOVERS,
            stop,
            group="handover-index",
            name="handover",
            missing="handover topic missing: run `sozialhub topics apply`",
            take=self.take,
            loaded=self.loaded,
            warn_consumer_errors=False,
        ):
            self.failed = True


# --- wiring ---------------------------------------------------------------------------------


def register(
    app: Any,
    settings: Settings,
    hub: HubContext,
    subscriptions: SubscriptionIndex,
    consents: Any,
    sender: Any,
    stage_agent: Any,
) -> HandoverIndex:
    """The plan, send and updates agents and the reminder timer. ``consents``: the ConsentIndex;
    ``subscriptions``: the configured and run-time subscriptions, asked per event."""
    index = HandoverIndex()
    in_background(index, settings, "handover-index")

    def utcnow() -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def consents_loaded() -> None:
        await _wait(consents.loaded, lambda: bool(consents.failed), "consent index")
        await _wait(subscriptions.loaded, lambda: subscriptions.failed, "subscriptions")

    async def handovers_loaded() -> None:
        await _wait(index.loaded, lambda: index.failed, "handover index")

    def planning(event: Any, _source: Any) -> StageResult:
        result, _ = plan(
            event.message.key,
            event.value,
            hub,
            subscriptions.current(),
            consents.states_for,
            utcnow(),
            existing=index.get,
        )
        index.remember(result.emits)
        return result

    def sending(event: Any, _source: Any) -> StageResult:
        return send(event.value, hub, subscriptions.current(), consents.states_for, utcnow())

    def updating(event: Any, _source: Any) -> StageResult:
        result = update(event.value, index.get, utcnow())
        index.remember(result.emits)
        return result

    stage_agent(app, sender.channel(EVENTS), STAGE, planning, sender, before=consents_loaded)
    stage_agent(
        app, sender.channel(OUTBOX), "handover-send", sending, sender, before=consents_loaded
    )
    stage_agent(app, sender.channel(UPDATES), "handover", updating, sender, before=handovers_loaded)

    async def remind() -> None:
        if index.loaded.is_set():
            await sender.send_all(
                due_reminders(index.states(), utcnow(), settings.handover_reminder_days)
            )

    app.timer(interval=settings.handover_reminder_interval_s)(remind)
    return index


async def _wait(loaded: threading.Event, failed: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 60.0
    while not loaded.is_set():
        if failed() or time.monotonic() > deadline:
            raise TimeoutError(f"{what} not loaded")
        await asyncio.sleep(0.05)
