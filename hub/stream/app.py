"""The Faust worker: agents and tasks that move records between the pure stages.

Delivery guarantee: at-least-once with idempotent outputs. For every batch the
agent computes the outputs with the pure core, sends them, and waits until
Kafka acknowledged every one; only then are the batch's events acknowledged to
Faust, which flushes the producer before it commits offsets. If a send fails
the process exits at once without committing, so the batch is processed again
after a restart and deduplicated downstream by its deterministic ids.

Agents:

- ``intake``   submissions.received  -> submissions.accepted | submissions.deadletter
- ``dispatch`` submissions.accepted  -> fachverfahren.<vendor> | submissions.deadletter
- ``deliver``  fachverfahren.<vendor> -> outbox file (outbound file-drop connector)
- ``file_drop`` task: inbox directory -> submissions.received (inbound connector)

Every stage also writes its audit events to ``audit.log``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import faust
import structlog
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.filedrop.inbound import FileDropInbox
from connectors.filedrop.outbound import FileDropOutbox, UnsafeName
from hub import keys
from hub.config import Settings
from hub.core import pipeline
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import Emit, HubContext, StageResult
from hub.core.records import Accepted, Delivery, Received, SourceRef, decode, unb64
from hub.stream import metrics

log = structlog.get_logger(__name__)

RECEIVED = "submissions.received"
BATCH_SIZE = 100
BATCH_WITHIN = 0.05
EXIT_SEND_FAILED = 75  # EX_TEMPFAIL: a supervisor should restart the worker


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _credentials(settings: Settings) -> Any:
    if settings.security_protocol == "PLAINTEXT":
        return None
    context = None
    if settings.security_protocol.endswith("SSL"):
        context = ssl.create_default_context(
            cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None
        )
        if settings.ssl_certfile:
            context.load_cert_chain(
                str(settings.ssl_certfile),
                str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
                settings.ssl_key_password.reveal() if settings.ssl_key_password else None,
            )
    if settings.security_protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_password.reveal() if settings.sasl_password else None,
            mechanism=settings.sasl_mechanism or "SCRAM-SHA-512",
            ssl_context=context,
        )
    return faust.SSLCredentials(context)


@dataclass(frozen=True)
class WorkerOptions:
    inbound: bool = True
    outbound: bool = True


def run_stage(
    stage: str, event: Any, compute: Callable[[SourceRef], StageResult]
) -> tuple[Emit, ...]:
    """Run one pure stage on one event with bound log context; never raises."""
    message = event.message
    source = SourceRef(message.topic, message.partition, message.offset)
    key = (message.key or b"").decode("ascii", "replace")[:40]
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(stage=stage, submission_id=key):
        try:
            result = compute(source)
        except Rejection as rejection:  # the record itself is not a valid envelope
            result = pipeline.reject_record(message.key, stage, rejection, source, utcnow())
        except Exception as exc:  # noqa: BLE001 - a bug must dead-letter, not stall the partition
            # Only the type: messages of library errors can quote payload data.
            log.error("stage.internal_error", error=type(exc).__name__)
            result = pipeline.reject_record(message.key, stage, Rejection(Reason.INTERNAL), source, utcnow())
        metrics.STAGE_SECONDS.labels(stage).observe(time.perf_counter() - started)
        metrics.RECORDS.labels(stage, result.outcome).inc()
        if result.outcome == "rejected":
            metrics.DEAD_LETTERS.labels(stage, result.reason or "").inc()
            log.warning("stage.rejected", outcome=result.outcome, reason=result.reason)
        else:
            log.info("stage.done", outcome=result.outcome)
    return result.emits


def create_app(
    settings: Settings,
    hub: HubContext,
    vendor_topics: Sequence[str],
    options: WorkerOptions = WorkerOptions(),  # noqa: B008 - immutable default
) -> faust.App:
    if not settings.bootstrap_servers:
        raise ValueError("bootstrap servers are required")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.group_id,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        topic_allow_declare=False,  # topics come from topics.yml, never from the worker
        topic_disable_leader=True,
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=max(6.0, settings.rebalance_timeout),
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=9 * 1024 * 1024,
        consumer_max_fetch_size=16 * 1024 * 1024,
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
    )
    names = [pipeline.ACCEPTED, pipeline.DEAD_LETTER, pipeline.AUDIT, RECEIVED, *vendor_topics]
    topics = {name: app.topic(settings.topic(name), internal=False) for name in names}

    async def send_all(emits: Iterable[Emit]) -> None:
        """Send and wait for every acknowledgement; on failure exit without committing."""
        try:
            pending: list[Awaitable[Any]] = [
                await topics[e.topic].send(key=e.key.encode("ascii"), value=e.value) for e in emits
            ]
            await asyncio.gather(*pending)
        except Exception as exc:  # noqa: BLE001
            log.critical("kafka.send_failed", error=type(exc).__name__, action="exit without commit")
            os._exit(EXIT_SEND_FAILED)

    @app.agent(topics[RECEIVED], name="intake")
    async def intake(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
            emits: list[Emit] = []
            for event in events:
                emits.extend(
                    run_stage(
                        "intake",
                        event,
                        lambda source, e=event: pipeline.intake(decode(e.value, Received), source, hub, utcnow()),
                    )
                )
            await send_all(emits)

    @app.agent(topics[pipeline.ACCEPTED], name="dispatch")
    async def dispatch(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
            emits: list[Emit] = []
            for event in events:
                emits.extend(
                    run_stage(
                        "dispatch",
                        event,
                        lambda source, e=event: pipeline.dispatch(decode(e.value, Accepted), source, hub, utcnow()),
                    )
                )
            await send_all(emits)

    if options.outbound and vendor_topics:
        outbox = FileDropOutbox(settings.outbox_dir)
        swept = outbox.sweep()
        if swept:
            log.warning("filedrop.swept_temporaries", count=swept)
        vendor_channel = app.topic(*[settings.topic(name) for name in vendor_topics], internal=False)

        def deliver_one(event: Any, source: SourceRef) -> StageResult:
            delivery = decode(event.value, Delivery)
            try:
                target = outbox.target(delivery.vendor, delivery.office, delivery.delivery_id, delivery.file_suffix)
            except UnsafeName:
                return pipeline.reject_record(event.message.key, "deliver", Rejection(Reason.DELIVERY, "target"), source, utcnow())
            fresh = outbox.write(target, unb64(delivery.body_b64))
            received = dt.datetime.fromisoformat(delivery.received_at)
            metrics.END_TO_END_SECONDS.observe((utcnow() - received).total_seconds())
            return StageResult((pipeline.delivered(delivery, utcnow(), duplicate=not fresh),), "delivered" if fresh else "duplicate")

        @app.agent(vendor_channel, name="deliver")
        async def deliver(stream: Any) -> None:
            async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
                emits: list[Emit] = []
                for event in events:
                    emits.extend(run_stage("deliver", event, lambda source, e=event: deliver_one(e, source)))
                await send_all(emits)

    if options.inbound:
        inbox = FileDropInbox(settings.inbox_dir, settings.archive_dir, settings.max_submission_bytes)

        @app.task
        async def file_drop() -> None:
            while True:
                files = inbox.pending()
                metrics.INBOX_FILES.set(len(files))
                if not files:
                    await asyncio.sleep(settings.inbox_poll_seconds)
                    continue
                emits: list[Emit] = []
                taken: list[tuple[Any, str]] = []
                oversize: list[tuple[Any, str]] = []
                for path in files[:BATCH_SIZE]:
                    item = inbox.read(path)
                    if item is None:
                        continue
                    if item.data is None:
                        emits.extend(pipeline.reject_unread(item.sha256, Reason.SIZE, utcnow()).emits)
                        oversize.append((path, item.sha256))
                        continue
                    record = Received.of(item.data, "filedrop", "filedrop", utcnow())
                    emits.append(Emit.of(RECEIVED, record.submission_id, record))
                    emits.extend(pipeline.received(record).emits)
                    taken.append((path, record.submission_id))
                await send_all(emits)  # the files stay in the inbox until Kafka has them
                for path, sid in taken:
                    inbox.release(path, sid)
                for path, digest in oversize:
                    inbox.set_aside(path, digest)
                log.info("filedrop.taken", files=len(taken), oversize=len(oversize))

    @app.timer(interval=10.0)
    async def certificate_check() -> None:
        left = keys.days_left(hub.signer)
        metrics.CERT_DAYS_LEFT.set(left)
        if left < settings.cert_warn_days:
            log.warning("signing.certificate_expires_soon", days_left=round(left, 1))

    @app.timer(interval=5.0)
    async def consumer_lag() -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            if position is not None and highwater is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, highwater - position))

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        consumer = app.consumer
        ready = bool(consumer.assignment()) and not app.rebalancing
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/metrics")
    async def prometheus(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; Prometheus text is ASCII anyway.
        return web.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4")

    return app
