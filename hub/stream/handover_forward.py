"""Handover forwarding agents: ``handovers.<vendor>`` for vendors without a Kafka principal.

A vendor on the ``kafka`` channel reads its ``handovers.<vendor>`` topic itself
(deploy/kubernetes/kafka-users.yaml). For a vendor on the ``file`` or ``http``
channel, which never touches the cluster, the worker runs one agent
``handover-forward-<vendor>`` that consumes that vendor's topic, and only it:

- ``file``  the record, exactly as read, goes atomically into the outbox at
  ``<outbox>/<vendor>/<office>/handovers/<message id>.<kind>.json`` (temporary file,
  ``fsync``, hard link, ledger marker: :class:`connectors.filedrop.outbound.FileDropOutbox`);
  a message id and kind written before is a ``duplicate``.
- ``http``  the record is POSTed as ``application/json`` with
  ``Idempotency-Key: "<message id>.<kind>"`` to the vendor's handover endpoint, with the
  delivery endpoint's credentials, retries, backoff, pause-and-probe and outage
  maximum (:func:`hub.stream.delivery.http_agent`, :class:`connectors.http.sender.HttpDeliverer`).

Before anything leaves, :func:`hub.core.handover_forward.check_message` checks that
the record is a deliverable Rechtskreiswechsel message for one of the vendor's
offices; otherwise a ``DELIVERY`` dead letter. The forwarders do not ask the
transfer gate: :func:`hub.core.rkw_stages.send`, the one choke point, asked it
when it wrote the record to this topic, as it does for a ``kafka`` vendor that
reads the topic later. As in every agent, the outcome (audit event, dead letter)
is sent and acknowledged before the record is, so no offset is committed before
the file is durable or the endpoint answered.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog

from connectors.filedrop.outbound import FileDropOutbox, UnsafeName
from connectors.http.sender import HandoverParcel, RetryEvent
from hub.config import ConfigError, Settings
from hub.core import handover_forward as forwarding
from hub.core.errors import Reason, Rejection
from hub.core.handover_forward import STAGE, Forward
from hub.core.pipeline import HubContext, StageResult
from hub.core.records import SourceRef
from hub.core.rkw_stages import MESSAGE_ID, handover_topic
from hub.stream import metrics
from hub.stream.delivery import HttpAgent, http_agent, wait_for_endpoint
from hub.stream.exits import exit_without_commit

if TYPE_CHECKING:
    import faust

    from hub.stream.app import Sender

log = structlog.get_logger(__name__)

StageFunction = Callable[[Any, SourceRef], StageResult]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def file_forwarder(outbox: FileDropOutbox, vendor_id: str, hub: HubContext) -> StageFunction:
    """The ``file`` channel for ``handovers.<vendor_id>``: the record into the vendor's outbox."""

    def forward(event: Any, source: SourceRef) -> StageResult:
        try:
            message = forwarding.check_message(
                event.message.key, event.value, vendor_id, hub.offices
            )
        except Rejection as refused:
            return forwarding.rejected(
                refused, source, utcnow(), vendor_id=vendor_id, channel="file"
            )
        try:
            target = outbox.handover_target(
                vendor_id, message.office, message.message_id, message.kind
            )
        except UnsafeName:
            unsafe = Rejection(Reason.DELIVERY, "target")
            return forwarding.rejected(
                unsafe, source, utcnow(), vendor_id=vendor_id, channel="file", message=message
            )
        try:
            fresh = outbox.write(target, message.record)
        except OSError as exc:
            # Outbox not writable or full: transient for the operator, never a dead letter.
            # Exit without committing; after a restart the message is forwarded again.
            exit_without_commit("filedrop.write_failed", exc)
        emit = forwarding.forwarded(message, utcnow(), channel="file", duplicate=not fresh)
        return StageResult((emit,), "forwarded" if fresh else "duplicate")

    return forward


class HttpForwarder(HttpAgent):
    """The ``http`` channel for ``handovers.<vendor>``: POST, retry, pause and probe, or dead-letter."""

    stage = STAGE
    up_gauge = metrics.HANDOVER_ENDPOINT_UP

    def _bound(self, key: str) -> dict[str, str]:
        return {"message_id": key} if MESSAGE_ID.fullmatch(key) else {"key": "unrecognised"}

    async def _retried(self, message: Forward, event: RetryEvent) -> None:
        metrics.HANDOVER_RETRIES.labels(self.vendor_id).inc()
        emit = forwarding.retried(message, utcnow(), attempt=event.attempt, status=event.status)
        await self.sender.send_all((emit,))

    def _answered(self) -> None:
        """Any outcome but ``unavailable`` ends an outage."""
        self.state.since = None
        metrics.HANDOVER_ENDPOINT_UP.labels(self.vendor_id).set(1)

    def _rejected(self, path: str, source: SourceRef, message: Forward) -> StageResult:
        return forwarding.rejected(
            Rejection(Reason.DELIVERY, path),
            source,
            utcnow(),
            vendor_id=self.vendor_id,
            channel="http",
            message=message,
        )

    async def _result(self, event: Any, source: SourceRef) -> StageResult:
        try:
            message = forwarding.check_message(
                event.message.key, event.value, self.vendor_id, self.hub.offices
            )
        except Rejection as refused:
            return forwarding.rejected(
                refused, source, utcnow(), vendor_id=self.vendor_id, channel="http"
            )
        parcel = HandoverParcel(
            message.message_id, message.kind, message.office, self.vendor_id, message.record
        )
        while True:
            outcome = await self.deliverer.deliver(parcel, on_retry=partial(self._retried, message))
            if outcome.kind in ("delivered", "replayed"):
                self._answered()
                emit = forwarding.forwarded(
                    message,
                    utcnow(),
                    channel="http",
                    duplicate=outcome.kind == "replayed",
                    attempt=outcome.attempts,
                    status=outcome.status,
                )
                return StageResult(
                    (emit,), "forwarded" if outcome.kind == "delivered" else "duplicate"
                )
            if outcome.kind == "refused":
                self._answered()
                return self._rejected(outcome.path, source, message)
            # Unavailable: stop fetching this partition and wait for the endpoint.
            metrics.HANDOVER_ENDPOINT_UP.labels(self.vendor_id).set(0)
            up = await wait_for_endpoint(
                self.app,
                self.deliverer,
                self.outage,
                self.state,
                event.message.tp,
                outcome,
                stage=STAGE,
            )
            if not up:
                return self._rejected("http/unavailable", source, message)


def forward_agents(
    app: faust.App,
    settings: Settings,
    hub: HubContext,
    sender: Sender,
    stage_agent: Callable[..., None],
    exit_without_commit: Callable[[str, BaseException], Any],
) -> None:
    """One ``handover-forward-<vendor>`` agent per ``file`` and ``http`` vendor of the office table.

    Each consumes its own vendor's ``handovers.<vendor>`` and nothing else; a
    ``kafka`` vendor gets no agent (it reads its topic itself).
    """
    outbox: FileDropOutbox | None = None
    for vendor in sorted(hub.offices.vendors.values(), key=lambda v: v.vendor_id):
        if vendor.channel not in forwarding.FORWARD_CHANNELS:
            continue
        topic = sender.channel(handover_topic(vendor.vendor_id))
        name = f"{STAGE}-{vendor.vendor_id}"
        if vendor.channel == "file":
            if outbox is None:  # the delivery agents swept its temporaries at start
                outbox = FileDropOutbox(settings.outbox_dir)
            stage = file_forwarder(outbox, vendor.vendor_id, hub)
            stage_agent(app, topic, STAGE, stage, sender, name=name)
        elif vendor.channel == "http":
            http_agent(
                app,
                topic,
                name,
                vendor,
                settings,
                hub,
                sender,
                exit_without_commit,
                handovers=True,
                channel_of=HttpForwarder,
            )
        else:  # pragma: no cover - FORWARD_CHANNELS holds the two
            raise ConfigError(f"vendor {vendor.vendor_id} has no forwarding channel")
