"""Delivery agents: one per vendor, consuming ``deliveries.<vendor>``, one channel each.

- ``file``  the outbound file drop writes the record (and documents beside it)
  atomically; a redelivery is recognised by the ledger.
- ``kafka`` the mapped record goes to ``fachverfahren.<vendor>``, keyed by the
  delivery id, the topic taken from the queue's vendor (never from the record).
- ``http``  the connector POSTs the record with the delivery id as
  ``Idempotency-Key``, retrying transient failures with backoff. When the
  retries run out the endpoint counts as down: the agent pauses the partition
  (no fetching, no spinning) and probes with growing pauses until the endpoint
  answers, then tries the same delivery again. Only an outage longer than the
  vendor's ``outage_max_s`` dead-letters the waiting delivery.

Each vendor has its own agent, so one vendor that is down delays nobody else.
Every channel first checks that the record belongs to the queue's vendor and
one of its offices (:func:`hub.core.pipeline.check_delivery`), then asks the
transfer gate right before it sends (:func:`hub.core.pipeline.ask_gate`): only
``allow`` sends; otherwise a ``TRANSFER_DENIED`` dead letter. Outcomes are
audited per delivery: ``gate``/``allowed`` or ``denied``, ``delivered``/``duplicate``,
``retried`` per failed attempt, ``rejected`` with a dead letter. As in every agent, the
outcome is sent and acknowledged before the event is, so nothing is committed
before its outcome is written.

The handover forwarding agents (:mod:`hub.stream.handover_forward`) carry
``handovers.<vendor>`` over the same ``file`` and ``http`` channels and reuse
:func:`http_agent` and :func:`wait_for_endpoint`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from faust.types import TP

from connectors.filedrop.outbound import FileDropOutbox, UnsafeName
from connectors.http.sender import HttpDeliverer, HttpEndpoint, Outcome, RetryEvent
from hub.config import ConfigError, Secret, Settings
from hub.core import pipeline
from hub.core.delivery import OutagePolicy, RetryPolicy
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import Emit, HubContext, StageResult
from hub.core.records import Delivery, SourceRef, decode, is_id, unb64
from hub.core.route import Vendor
from hub.stream import metrics
from hub.stream.exits import exit_without_commit

if TYPE_CHECKING:
    import faust

    from hub.stream.app import Sender

log = structlog.get_logger(__name__)

BATCH_SIZE = 100
BATCH_WITHIN = 0.05
PAUSE_EVENTS = {
    "deliver": ("deliver.paused", "deliver.resumed"),
    "handover-forward": ("handover-forward.paused", "handover-forward.resumed"),
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _refused(delivery: Delivery, path: str, source: SourceRef) -> StageResult:
    rejection = Rejection(Reason.DELIVERY, path)
    return pipeline.reject_delivery(delivery, rejection, source, utcnow(), channel="file")


def _after(allowed: Emit, result: StageResult) -> StageResult:
    """``result`` with the gate's ``allowed`` event first (the gate was asked before it)."""
    return replace(result, emits=(allowed, *result.emits))


def file_channel(outbox: FileDropOutbox, vendor_id: str, hub: HubContext) -> StageFunction:
    """The outbound file drop as a stage: write the files, report delivered or duplicate."""

    def deliver(event: Any, source: SourceRef) -> StageResult:
        delivery = decode(event.value, Delivery)
        try:
            pipeline.check_delivery(delivery, vendor_id, hub.offices)
            target = outbox.target(
                delivery.vendor, delivery.office, delivery.delivery_id, delivery.file_suffix
            )
            beside = [(d["file_name"], unb64(d["content_b64"])) for d in delivery.documents or ()]
            allowed = pipeline.ask_gate(delivery, hub, utcnow(), channel="file")
        except UnsafeName:
            return _refused(delivery, "target", source)
        except (KeyError, TypeError):
            return _refused(delivery, "documents", source)
        except Rejection as refused:
            return pipeline.reject_delivery(delivery, refused, source, utcnow(), channel="file")
        # Everything that can fail on bad record content happens before the write, never after.
        received = dt.datetime.fromisoformat(delivery.received_at)
        body = unb64(delivery.body_b64)
        try:
            fresh = outbox.write(target, body, beside)
        except UnsafeName:
            return _after(allowed, _refused(delivery, "documents/file_name", source))
        except OSError as exc:
            # Outbox not writable or full: transient for the operator, never a dead letter.
            # Exit without committing; after a restart the delivery is tried again.
            exit_without_commit("filedrop.write_failed", exc)
        metrics.END_TO_END_SECONDS.observe((utcnow() - received).total_seconds())
        emit = pipeline.delivered(delivery, utcnow(), duplicate=not fresh, channel="file")
        return StageResult((allowed, emit), "delivered" if fresh else "duplicate")

    return deliver


def kafka_channel(vendor_id: str, hub: HubContext) -> StageFunction:
    """The vendor topic as a stage: the mapped record onto ``fachverfahren.<vendor>``."""

    def deliver(event: Any, source: SourceRef) -> StageResult:
        delivery = decode(event.value, Delivery)
        try:
            result = pipeline.forward(delivery, vendor_id, hub, utcnow())
        except Rejection as rejection:
            return pipeline.reject_delivery(delivery, rejection, source, utcnow(), channel="kafka")
        received = dt.datetime.fromisoformat(delivery.received_at)
        metrics.END_TO_END_SECONDS.observe((utcnow() - received).total_seconds())
        return result

    return deliver


def _read_secret(path: Path) -> Secret | None:
    try:
        text = path.read_text("utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError:
        raise ConfigError(f"vendor credential {path.name} cannot be read") from None
    return Secret(text) if text else None


def http_endpoint(vendor: Vendor, settings: Settings) -> tuple[HttpEndpoint, OutagePolicy]:
    """The connector's endpoint and outage policy for an ``http`` vendor."""
    channel = vendor.http
    if channel is None:
        raise ConfigError(f"vendor {vendor.vendor_id} has no http channel")
    credentials = (
        settings.vendor_credentials_dir / vendor.vendor_id
        if settings.vendor_credentials_dir is not None
        else None
    )

    def present(name: str) -> Path | None:
        if credentials is None:
            return None
        path = credentials / name
        return path if path.is_file() else None

    try:
        endpoint = HttpEndpoint(
            vendor=vendor.vendor_id,
            url=settings.vendor_url(vendor.vendor_id) or channel.url,
            timeout=channel.timeout_s,
            retry=RetryPolicy(
                max_attempts=channel.max_attempts,
                initial_s=channel.initial_backoff_s,
                max_s=channel.max_backoff_s,
            ),
            client_cert=present("client.crt"),
            client_key=present("client.key"),
            ca_file=present("ca.crt"),
            token=_read_secret(credentials / "token") if credentials is not None else None,
        )
        outage = OutagePolicy(
            probe_initial_s=min(1.0, channel.probe_interval_s),
            probe_max_s=channel.probe_interval_s,
            max_outage_s=channel.outage_max_s,
        )
    except ValueError as exc:
        raise ConfigError(f"vendor {vendor.vendor_id}: {exc}") from None
    return endpoint, outage


@dataclass
class OutageState:
    since: float | None = None  # the deliverer's clock when the endpoint was last found down


async def wait_for_endpoint(
    app: faust.App,
    deliverer: HttpDeliverer,
    outage: OutagePolicy,
    state: OutageState,
    tp: Any,
    outcome: Outcome,
    *,
    stage: str = "deliver",
) -> bool:
    """Pause ``tp`` (no fetching, no busy loop) and probe until the endpoint answers.

    ``False`` when the outage lasted longer than ``outage.max_outage_s``. Shared by
    the delivery and the handover forwarding agents; ``stage`` names the log events
    (``deliver.paused``/``deliver.resumed``, ``handover-forward.paused``/``…resumed``).
    """
    paused, resumed = PAUSE_EVENTS[stage]
    if state.since is None:
        state.since = deliverer.clock()
    log.warning(
        paused,
        partition=tp.partition,
        status=outcome.status,
        verdict=outcome.verdict.value,
        error=outcome.error,
    )
    # Faust's resume_partitions() adds what it is given to its active partitions, which
    # must be its own TP: the message's tp is the Kafka client's TopicPartition.
    partition = TP(tp.topic, tp.partition)
    app.consumer.pause_partitions([partition])
    try:
        up = await deliverer.wait_until_available(outage, since=state.since)
    finally:
        app.consumer.resume_partitions([partition])
    log.info(resumed, partition=tp.partition, endpoint_up=up)
    return up


class HttpAgent:
    """What the http agents share (deliveries here, handover forwarding in
    :mod:`hub.stream.handover_forward`): one vendor's endpoint and outage state, and per
    record the log context, metrics and outcome log around :meth:`_result`."""

    stage = "deliver"
    up_gauge: Any = metrics.VENDOR_UP  # 1 while the endpoint takes records, 0 while paused

    def __init__(
        self,
        app: faust.App,
        vendor: Vendor,
        hub: HubContext,
        sender: Sender,
        deliverer: HttpDeliverer,
        outage: OutagePolicy,
    ) -> None:
        self.app = app
        self.vendor_id = vendor.vendor_id
        self.hub = hub
        self.sender = sender
        self.deliverer = deliverer
        self.outage = outage
        self.state = OutageState()
        self.up_gauge.labels(self.vendor_id).set(1)

    def _bound(self, key: str) -> dict[str, str]:
        """The record's key for the log context, only when it has the shape of the hub's ids."""
        return {"delivery_id": key} if is_id(key) else {"key": "unrecognised"}

    async def handle(self, event: Any) -> tuple[Emit, ...]:
        message = event.message
        source = SourceRef(message.topic, message.partition, message.offset)
        key = (message.key or b"").decode("ascii", "replace")
        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(
            stage=self.stage, vendor=self.vendor_id, **self._bound(key)
        ):
            result = await self._result(event, source)
            metrics.STAGE_SECONDS.labels(self.stage).observe(time.perf_counter() - started)
            metrics.RECORDS.labels(self.stage, result.outcome).inc()
            if result.outcome == "rejected":
                metrics.DEAD_LETTERS.labels(self.stage, result.reason or "").inc()
                log.warning("stage.rejected", outcome=result.outcome, reason=result.reason)
            else:
                log.info("stage.done", outcome=result.outcome)
        return result.emits

    async def _result(self, event: Any, source: SourceRef) -> StageResult:
        raise NotImplementedError


class HttpChannel(HttpAgent):
    """The ``http`` channel for one vendor: deliver, retry, pause and probe, or dead-letter."""

    async def _result(self, event: Any, source: SourceRef) -> StageResult:
        try:
            delivery = decode(event.value, Delivery)
        except Rejection as rejection:  # not a delivery record at all
            return pipeline.reject_record(event.message.key, "deliver", rejection, source, utcnow())
        try:
            pipeline.check_delivery(delivery, self.vendor_id, self.hub.offices)
        except Rejection as rejection:
            return pipeline.reject_delivery(delivery, rejection, source, utcnow(), channel="http")
        return await self._deliver(delivery, event.message.tp, source)

    async def _retried(self, delivery: Delivery, event: RetryEvent) -> None:
        metrics.DELIVERY_RETRIES.labels(self.vendor_id).inc()
        emit = pipeline.delivery_retried(
            delivery, utcnow(), channel="http", attempt=event.attempt, status=event.status
        )
        await self.sender.send_all((emit,))

    async def _deliver(self, delivery: Delivery, tp: Any, source: SourceRef) -> StageResult:
        while True:
            # At send time: again after every outage, which may have lasted hours.
            try:
                allowed = pipeline.ask_gate(delivery, self.hub, utcnow(), channel="http")
            except Rejection as denied:
                return pipeline.reject_delivery(delivery, denied, source, utcnow(), channel="http")
            outcome = await self.deliverer.deliver(
                delivery, on_retry=partial(self._retried, delivery)
            )
            if outcome.kind in ("delivered", "replayed"):
                self.state.since = None
                metrics.VENDOR_UP.labels(self.vendor_id).set(1)
                received = dt.datetime.fromisoformat(delivery.received_at)
                metrics.END_TO_END_SECONDS.observe((utcnow() - received).total_seconds())
                emit = pipeline.delivered(
                    delivery,
                    utcnow(),
                    duplicate=outcome.kind == "replayed",
                    channel="http",
                    attempt=outcome.attempts,
                    status=outcome.status,
                )
                return StageResult((allowed, emit), "delivered")
            if outcome.kind == "refused":
                self.state.since = None  # any outcome but "unavailable" ends an outage
                metrics.VENDOR_UP.labels(self.vendor_id).set(1)  # it answered: not paused
                rejection = Rejection(Reason.DELIVERY, outcome.path)
                return _after(
                    allowed,
                    pipeline.reject_delivery(delivery, rejection, source, utcnow(), channel="http"),
                )
            # Unavailable: stop fetching this partition and wait for the endpoint.
            metrics.VENDOR_UP.labels(self.vendor_id).set(0)
            up = await wait_for_endpoint(
                self.app, self.deliverer, self.outage, self.state, tp, outcome
            )
            if not up:
                rejection = Rejection(Reason.DELIVERY, "http/unavailable")
                return _after(
                    allowed,
                    pipeline.reject_delivery(delivery, rejection, source, utcnow(), channel="http"),
                )


StageFunction = Callable[[Any, SourceRef], StageResult]


def delivery_agents(
    app: faust.App,
    settings: Settings,
    hub: HubContext,
    sender: Sender,
    stage_agent: Callable[..., None],
    exit_without_commit: Callable[[str, BaseException], Any],
) -> None:
    """Register one delivery agent per vendor of the office table, by its channel."""
    outbox: FileDropOutbox | None = None
    for vendor in sorted(hub.offices.vendors.values(), key=lambda v: v.vendor_id):
        queue = sender.channel(pipeline.delivery_queue(vendor.vendor_id))
        name = f"deliver-{vendor.vendor_id}"
        if vendor.channel == "file":
            if outbox is None:
                outbox = FileDropOutbox(settings.outbox_dir)
                swept = outbox.sweep()
                if swept:
                    log.warning("filedrop.swept_temporaries", count=swept)
            stage = file_channel(outbox, vendor.vendor_id, hub)
            stage_agent(app, queue, "deliver", stage, sender, name=name)
        elif vendor.channel == "kafka":
            stage = kafka_channel(vendor.vendor_id, hub)
            stage_agent(app, queue, "deliver", stage, sender, name=name)
        elif vendor.channel == "http":
            http_agent(app, queue, name, vendor, settings, hub, sender, exit_without_commit)
        else:  # pragma: no cover - the office table schema allows only the three
            raise ConfigError(f"vendor {vendor.vendor_id} has an unknown channel")


class HttpAgentChannel(Protocol):
    """What :func:`http_agent` runs per event: :class:`HttpChannel`, or the handover forwarder."""

    async def handle(self, event: Any) -> tuple[Emit, ...]: ...


ChannelFactory = Callable[
    ["faust.App", Vendor, HubContext, "Sender", HttpDeliverer, OutagePolicy], HttpAgentChannel
]


def http_agent(
    app: faust.App,
    queue: Any,
    name: str,
    vendor: Vendor,
    settings: Settings,
    hub: HubContext,
    sender: Sender,
    exit_without_commit: Callable[[str, BaseException], Any],
    *,
    handovers: bool = False,
    channel_of: ChannelFactory = HttpChannel,
) -> None:
    """One agent on ``queue`` for an ``http`` vendor, with its own connection pool.

    ``handovers``: the endpoint is the vendor's handover endpoint
    (:meth:`connectors.http.sender.HttpEndpoint.for_handovers`) and ``channel_of``
    the forwarder (``hub.stream.handover_forward``); same credentials and timings.
    """
    endpoint, outage = http_endpoint(vendor, settings)
    if handovers:
        endpoint = endpoint.for_handovers()
    try:  # reads the certificate files now: a bad one stops the worker at start (exit 2)
        deliverer = HttpDeliverer(endpoint)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"vendor {vendor.vendor_id}: TLS credentials cannot be used") from exc

    async def agent(stream: Any) -> None:
        channel = channel_of(app, vendor, hub, sender, deliverer, outage)
        try:
            async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
                # As in stage_agent: nothing may escape, or take_events' finally would ack
                # events whose outcome was never written.
                try:
                    for event in events:
                        await sender.send_all(await channel.handle(event))
                except BaseException as exc:  # noqa: BLE001
                    exit_without_commit("worker.batch_failed", exc)
        finally:
            await deliverer.aclose()

    agent.__name__ = agent.__qualname__ = name.replace("-", "_")
    app.agent(queue, name=name)(agent)
