"""The Faust worker: agents and tasks that move records between the pure stages.

Delivery guarantee: at-least-once with idempotent outputs. For every batch the
agent computes the outputs with the pure core, sends them, and waits until
Kafka acknowledged every one; only then are the batch's events acknowledged to
Faust, which flushes the producer before it commits offsets. If a send fails
the process exits at once without committing, so the batch is processed again
after a restart and deduplicated downstream by its deterministic ids.

Agents:

- ``intake``   submissions.received  -> submissions.accepted | submissions.deadletter
- ``dispatch`` submissions.accepted  -> deliveries.<vendor> | submissions.deadletter
  (with a KEK also the recorded input: audit.vault, a new person key on audit.keys)
- ``deliver-<vendor>`` deliveries.<vendor> -> the vendor's channel: outbox file,
  ``fachverfahren.<vendor>`` (Avro) or the vendor's HTTPS endpoint (hub.stream.delivery)
- ``handover-forward-<vendor>`` handovers.<vendor> -> the outbox or the vendor's HTTPS
  endpoint, for vendors on the ``file`` and ``http`` channels (hub.stream.handover_forward)
- ``file_drop`` task: inbox directory -> submissions.received (inbound connector)
- ``osci_drop`` task: the inbox's ``osci`` sub-inbox (OSCI packages and their metadata)
  -> submissions.received (hub.stream.osci_inbox)
- receipt senders, one thread per portal channel this worker runs (``xta2``, ``fitconnect``),
  each in its own consumer group: submissions.receipts -> the portal (hub.stream.receipts)
- ``consent``, ``rechtskreiswechsel``, ``handover-send``, ``handover``: the consent
  registry and the Rechtskreiswechsel (hub.stream.consents, hub.stream.rechtskreiswechsel)

Every stage also writes its audit events to ``audit.log``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import faust
import structlog
from aiohttp import web as aiohttp_web
from prometheus_client import generate_latest

from connectors.filedrop.inbound import CannotClaim, FileDropInbox, Unreadable
from connectors.fitconnect.receiver import FitConnectReceiver, ReceiverConfig
from connectors.xta.poller import XtaPoller, XtaSettings, client_ssl_context
from hub import audit_kek, keys, subscriptions
from hub.config import ConfigError, Settings
from hub.core import consent_registry, pipeline, rkw_stages, unfetched, xta_oversize
from hub.core.audit_vault import KekRing
from hub.core.errors import Reason, Rejection, UnsendableReceipt
from hub.core.pipeline import Emit, HubContext, StageResult
from hub.core.records import (
    Accepted,
    PortalReceipt,
    Received,
    SourceRef,
    decode,
    is_id,
    submission_id_of_digest,
    unb64,
)
from hub.core.rotation import RotationError, SignerSet
from hub.core.transport import Envelope
from hub.stream import (
    audit,
    consents,
    delivery,
    fitconnect_answers,
    handover_forward,
    metrics,
    osci_inbox,
    person_keys,
    receipts,
    seen,
)
from hub.stream import rechtskreiswechsel as rkw
from hub.stream import subscriptions as stream_subscriptions
from hub.stream.exits import exit_without_commit
from hub.stream.follow import wait_loaded
from hub.stream.receipts import ReceiptChannel

log = structlog.get_logger(__name__)

RECEIVED = pipeline.RECEIVED
BATCH_SIZE = 100
BATCH_WITHIN = 0.05
SEEN_LOAD_SECONDS = 60.0  # intake waits this long for the replay index, then exits
SIGNING_STOP_MARGIN = 60.0  # seconds before the last signing certificate expires: exit


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
    audit_chain: bool = True  # run the audit chainer (hub.stream.audit) in this worker
    # Without SOZIALHUB_AUDIT_KEK_FILE: seal recorded inputs with the public development KEK.
    development_audit_kek: bool = False


def run_stage(
    stage: str, event: Any, compute: Callable[[SourceRef], StageResult]
) -> tuple[Emit, ...]:
    """Run one pure stage on one event with bound log context; never raises."""
    message = event.message
    source = SourceRef(message.topic, message.partition, message.offset)
    key = (message.key or b"").decode("ascii", "replace")
    # Only the hub's own ids go into logs: a foreign producer's key could be anything.
    field = {"sub-": "submission_id", "mid-": "message_key"}.get(key[:4], "delivery_id")
    # A received record's key may be the digest of its transport message id (mid-…).
    ours = is_id(key) or (key.startswith("mid-") and is_id(f"sub-{key[4:]}"))
    bound = {field: key} if ours else {"key": "unrecognised"}
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(stage=stage, **bound):
        try:
            result = compute(source)
        except Rejection as rejection:  # the record itself is not a valid envelope
            result = pipeline.reject_record(
                message.key, stage, rejection, source, utcnow(), message.value
            )
        except Exception as exc:  # noqa: BLE001 - a bug must dead-letter, not stall the partition
            # Only the type: messages of library errors can quote payload data.
            log.error("stage.internal_error", error=type(exc).__name__)  # noqa: TRY400 - no traceback: it may quote payload
            result = pipeline.reject_record(
                message.key, stage, Rejection(Reason.INTERNAL), source, utcnow(), message.value
            )
        metrics.STAGE_SECONDS.labels(stage).observe(time.perf_counter() - started)
        metrics.RECORDS.labels(stage, result.outcome).inc()
        if result.outcome == "rejected":
            metrics.DEAD_LETTERS.labels(stage, result.reason or "").inc()
            log.warning("stage.rejected", outcome=result.outcome, reason=result.reason)
        else:
            log.info("stage.done", outcome=result.outcome)
    return result.emits


StageFunction = Callable[[Any, SourceRef], StageResult]


def _faust_app(settings: Settings) -> faust.App:
    if not settings.bootstrap_servers:
        raise ValueError("bootstrap servers are required")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return faust.App(
        settings.group_id,
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        broker_credentials=_credentials(settings),
        key_serializer="raw",
        value_serializer="raw",
        topic_allow_declare=False,  # topics come from topics.yml, never from the worker
        topic_disable_leader=True,
        # Tansu holds the first group join for the session timeout; keep both short.
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


class Sender:
    """Sends emits to their topics and waits for every acknowledgement."""

    def __init__(self, app: faust.App, settings: Settings, logical_names: Iterable[str]) -> None:
        self._topics = {
            name: app.topic(settings.topic(name), internal=False) for name in logical_names
        }

    def channel(self, name: str) -> Any:
        return self._topics[name]

    async def send_all(self, emits: Iterable[Emit]) -> None:
        """On any failure exit at once: nothing of this batch gets committed."""
        try:
            pending: list[Awaitable[Any]] = [
                await self._topics[e.topic].send(key=e.key.encode("ascii"), value=e.value)
                for e in emits
            ]
            await asyncio.gather(*pending)
        except asyncio.CancelledError as exc:
            # Cancelled mid-batch (shutdown or rebalance): Faust acks the batch in take_events'
            # finally and may commit it although some outputs were never sent.
            exit_without_commit("worker.cancelled_mid_send", exc)
        except Exception as exc:  # noqa: BLE001
            exit_without_commit("kafka.send_failed", exc)


def stage_agent(
    app: faust.App,
    channel: Any,
    stage: str,
    compute: StageFunction,
    sender: Sender,
    before: Callable[[], Awaitable[None]] | None = None,
    name: str | None = None,
) -> None:
    """Register an agent: per batch, run the pure stage per event, send, await acks, then ack.

    ``before`` runs once before the first batch (e.g. wait until an index is loaded).
    ``name`` is the agent's name when several agents run one stage (default: the stage).
    """

    async def agent(stream: Any) -> None:
        if before is not None:
            try:
                await before()
            except BaseException as exc:  # noqa: BLE001
                exit_without_commit(f"{stage}.not_ready", exc)
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WITHIN):
            # take_events acks the whole batch in a finally block, and Faust restarts a
            # crashed agent: any exception escaping here would commit a batch whose outputs
            # were never sent. So nothing may escape; anything unexpected ends the process.
            try:
                emits: list[Emit] = []
                for event in events:
                    emits.extend(run_stage(stage, event, partial(compute, event)))
                await sender.send_all(emits)
            except BaseException as exc:  # noqa: BLE001
                exit_without_commit("worker.batch_failed", exc)

    agent.__name__ = agent.__qualname__ = (name or stage).replace("-", "_")
    app.agent(channel, name=name or stage)(agent)


def _inbox_batch(
    inbox: FileDropInbox, files: list[Path], hub: HubContext
) -> tuple[list[Emit], list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Records for up to one batch of inbox files: (emits, taken files, oversize files).

    Each file is claimed first (renamed out of the writers' reach); the taken and
    oversize files are claimed paths, to release or set aside once Kafka has the records.
    """
    emits: list[Emit] = []
    taken: list[tuple[Path, str]] = []
    oversize: list[tuple[Path, str]] = []
    for listed in files[:BATCH_SIZE]:
        try:
            path = inbox.claim(listed)
        except CannotClaim as exc:
            log.error("filedrop.cannot_claim", errno=exc.errno)  # noqa: TRY400 - no traceback
            continue
        if path is None:
            continue  # another worker claimed it, or its writer took it back
        try:
            item = inbox.read(path)
        except Unreadable as exc:
            kept = inbox.quarantine(path)
            log.error("filedrop.unreadable", errno=exc.errno, quarantined=kept)  # noqa: TRY400 - no traceback
            continue
        if item is None:
            continue
        if item.data is None:
            result = pipeline.reject_unread(item.sha256, Reason.SIZE, utcnow())
        else:
            # An XTA client names the payload file by its message id: keep it for replay checks.
            message_id = pipeline.transport_message_id_of_name(path.name)
            result = pipeline.ingest(item.data, "filedrop", "file", hub, utcnow(), message_id)
        emits.extend(result.emits)
        if result.outcome == "rejected":
            metrics.DEAD_LETTERS.labels("ingest", result.reason or "").inc()
            log.warning(
                "stage.rejected", stage="ingest", reason=result.reason, payload_sha256=item.sha256
            )
            oversize.append((path, item.sha256))
        else:
            taken.append((path, submission_id_of_digest(item.sha256)))
    return emits, taken, oversize


def file_drop_task(app: faust.App, settings: Settings, hub: HubContext, sender: Sender) -> None:
    """The inbound file-drop connector: inbox files become ``submissions.received`` records."""
    inbox = FileDropInbox(settings.inbox_dir, settings.archive_dir, settings.max_submission_bytes)

    async def file_drop() -> None:
        try:
            await poll_forever()
        except Exception as exc:  # noqa: BLE001 - a dead poller would silently stop all ingest
            exit_without_commit("filedrop.failed", exc)

    async def poll_forever() -> None:
        while True:
            files = inbox.pending()
            metrics.INBOX_FILES.set(len(files))
            if not files:
                await asyncio.sleep(settings.inbox_poll_seconds)
                continue
            emits, taken, oversize = _inbox_batch(inbox, files, hub)
            if emits:
                await sender.send_all(emits)  # the files stay claimed until Kafka has them
            # Kafka has the records now; a file that cannot leave its claim is only skipped
            # by this process (and re-taken, re-sent and deduplicated after a restart).
            stuck = [p for p, sid in taken if not inbox.release(p, sid)]
            stuck += [p for p, digest in oversize if not inbox.set_aside(p, digest)]
            if stuck:
                log.error("filedrop.cannot_move", files=len(stuck))
            log.info("filedrop.taken", files=len(taken), oversize=len(oversize))

    app.task(file_drop)


def handover_to(
    hub: HubContext, sender: Sender, source: str, transport: str
) -> Callable[[bytes, str], Awaitable[None]]:
    """A connector's handover: the received record is produced and acknowledged when it returns.

    The connector confirms to its server (XTA ``close``) only after this returns; a
    failed send ends the process first (:meth:`Sender.send_all`).
    """

    async def handover(original: bytes, message_id: str) -> None:
        result = pipeline.ingest(original, source, transport, hub, utcnow(), message_id)
        if result.outcome == "rejected":
            metrics.DEAD_LETTERS.labels("ingest", result.reason or "").inc()
        await sender.send_all(result.emits)
        log.info("connector.taken", source=source, outcome=result.outcome, message_id=message_id)

    return handover


async def _answers_loaded(answers: fitconnect_answers.AnswerIndex) -> None:
    """Wait (bounded) until the answer index has read the receipts topic to its end.

    Until then the receiver would fetch again what the hub has answered already;
    harmless (the same answer follows), but wasted. If the index does not load,
    the receiver starts all the same.
    """
    try:
        await wait_loaded(answers, SEEN_LOAD_SECONDS, "answer index")
    except TimeoutError:
        log.warning("fitconnect_answers.not_loaded")


async def _send_refusal(sender: Sender, result: StageResult, **fields: str) -> None:
    """Produce (and await the acknowledgement of) what a connector refused unread: its ``SIZE``
    dead letter at stage ``ingest``, replay key and rejection receipt."""
    metrics.DEAD_LETTERS.labels(unfetched.STAGE, result.reason or "").inc()
    await sender.send_all(result.emits)
    log.info("connector.refused", reason=result.reason, **fields)


def refuse_to(
    hub: HubContext, sender: Sender, destination_id: str
) -> Callable[[str, str | None, Rejection], Awaitable[None]]:
    """The FIT-Connect receiver's ``refuse``: a submission it did not fetch, recorded like a rejection.

    The dead letter, replay key and ``reject-submission`` receipt
    (:func:`hub.core.unfetched.refused`) are produced and acknowledged when this
    returns; the FIT-Connect receipt sender sends the SET. A failed send ends the process
    first (:meth:`Sender.send_all`), so the receiver re-does it after a restart.
    """

    async def refuse(submission_id: str, case_id: str | None, rejection: Rejection) -> None:
        envelope = Envelope(
            "fitconnect", b"", message_id=submission_id, reader=destination_id, case_id=case_id
        )
        result = unfetched.refused(envelope, rejection, hub, utcnow())
        await _send_refusal(sender, result, source="fitconnect")

    return refuse


def xta_options(settings: Settings) -> XtaSettings:
    """The poller's settings; TLS material is read here, once."""
    msgbox, send, mailbox = settings.xta_msgbox_url, settings.xta_send_url, settings.xta_mailbox
    cert, key, ca = settings.xta_client_cert, settings.xta_client_key, settings.xta_ca_file
    if not (msgbox and send and mailbox and cert and key and ca):
        raise ConfigError("XTA needs msgbox and send URLs, mailbox, client certificate, key and CA")
    password = settings.xta_client_key_password
    try:
        context = client_ssl_context(
            ca_file=ca,
            cert_file=cert,
            key_file=key,
            key_password=password.reveal() if password else None,
        )
        return XtaSettings(
            msgbox_url=msgbox,
            send_url=send,
            mailbox=mailbox,
            ssl_context=context,
            poll_interval=settings.xta_poll_seconds,
            max_message_bytes=settings.max_submission_bytes,
            oversize="keep" if settings.xta_oversize == "keep" else "reject",
        )
    except (OSError, ssl.SSLError, ValueError):
        raise ConfigError("XTA connector settings or TLS files are not usable") from None


def reject_oversize_to(
    hub: HubContext, sender: Sender
) -> Callable[[xta_oversize.Oversize], Awaitable[None]]:
    """The XTA poller's ``reject_oversize``: a message too large to fetch, refused unread.

    Its ``SIZE`` dead letter, replay key and rejection receipt
    (:func:`hub.core.xta_oversize.reject`) are produced and acknowledged when this
    returns; only then does the poller close the message. A failed send ends the
    process first (:meth:`Sender.send_all`).
    """

    async def reject(oversize: xta_oversize.Oversize) -> None:
        result = xta_oversize.reject(oversize, hub, utcnow())
        await _send_refusal(sender, result, source="xta", message_id=oversize.message_id)

    return reject


def xta_task(app: faust.App, settings: Settings, hub: HubContext, sender: Sender) -> XtaPoller:
    """The inbound XTA 2 connector: mailbox messages become ``submissions.received`` records.

    ``close`` follows only after Kafka acknowledged the record (the poller awaits the
    handover); a message fetched again after a failed ``close`` is a redelivery. A
    message above ``max_submission_bytes`` is refused unread (:func:`reject_oversize_to`)
    unless ``xta_oversize`` is ``keep``.
    """

    poller = XtaPoller(
        xta_options(settings),
        handover_to(hub, sender, "xta", "xta2"),
        reject_oversize=reject_oversize_to(hub, sender),
    )

    async def xta_inbound() -> None:
        try:
            async with poller:
                await poller.run()
        except Exception as exc:  # noqa: BLE001 - a dead poller would silently stop XTA ingest
            exit_without_commit("xta.failed", exc)

    app.task(xta_inbound)
    return poller


def fitconnect_task(
    app: faust.App, settings: Settings, hub: HubContext, sender: Sender
) -> FitConnectReceiver:
    """The FIT-Connect receiver: callback endpoint plus polling; bundles become received records.

    A bundle is handed over (produced and acknowledged) before the receiver counts it
    as taken; the accept or reject event goes out later through the FIT-Connect receipt sender.
    A submission with a part over the receiver's bound is not fetched: its ``SIZE``
    dead letter and ``reject-submission`` receipt are produced and acknowledged
    instead (:func:`refuse_to`). A submission the hub has answered already is not
    fetched again: the receiver sends its SET again (:mod:`hub.stream.fitconnect_answers`).
    """
    api, destination = settings.fitconnect_api_url, settings.fitconnect_destination
    token, secret = settings.fitconnect_token, settings.fitconnect_callback_secret
    if not (api and destination and token and secret):
        raise ConfigError("FIT-Connect needs API URL, destination, token and callback secret")
    try:
        config = ReceiverConfig(
            api_url=api,
            destination_id=destination,
            token=token,
            callback_secret=secret,
            poll_interval=settings.fitconnect_poll_seconds,
            ca_file=settings.fitconnect_ca_file,
            # What intake accepts (the bundle is the original it reads): a larger bundle is
            # refused and answered by the receiver, never handed over to a SIZE nobody answers.
            max_bundle_bytes=settings.max_submission_bytes,
        )
    except ValueError:
        raise ConfigError("FIT-Connect receiver settings are not usable") from None

    answers, _stop_answers = fitconnect_answers.start(settings)
    receiver = FitConnectReceiver(
        config,
        handover_to(hub, sender, "fitconnect", "fitconnect"),
        refuse=refuse_to(hub, sender, destination),
        answered=answers.get,
    )

    async def fitconnect_inbound() -> None:
        web_app = aiohttp_web.Application(client_max_size=config.max_callback_bytes)
        receiver.add_routes(web_app)
        runner = aiohttp_web.AppRunner(web_app, access_log=None)
        try:
            await _answers_loaded(answers)
            await runner.setup()
            site = aiohttp_web.TCPSite(runner, settings.web_host, settings.fitconnect_callback_port)
            await site.start()
            await receiver.start(poll=True)
            log.info("fitconnect.listening", port=settings.fitconnect_callback_port)
            await asyncio.Event().wait()  # until the worker stops (the task is cancelled)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a dead receiver would silently stop ingest
            exit_without_commit("fitconnect.failed", exc)
        finally:
            await receiver.stop()
            await runner.cleanup()

    app.task(fitconnect_inbound)
    return receiver


def check_certificates(signers: SignerSet, warn_days: float, now: dt.datetime) -> None:
    """Set the days-left gauge per certificate; warn for each expiring within ``warn_days``."""
    for which, signer in (("current", signers.current), ("next", signers.next)):
        if signer is not None:
            metrics.CERT_DAYS_LEFT.labels(which).set(keys.days_left(signer, now))
    switch = signers.switch_at
    for which, left in signers.expiry_warnings(now, warn_days):
        # The current certificate's expiry is expected when the next one takes over before it.
        extra = {"next_signs_from": switch.isoformat()} if which == "current" and switch else {}
        log.warning(
            "signing.certificate_expires_soon", which=which, days_left=round(left, 1), **extra
        )


async def stop_when_signing_ends(signers: SignerSet) -> None:
    """Exit without commit shortly before the last certificate expires: nothing could sign.

    Intake would otherwise dead-letter every valid submission (``INTERNAL``); this
    way they stay on ``submissions.received`` until a valid key is configured.
    """
    while True:  # re-read the wall clock at least hourly: a long sleep can drift from it
        left = (signers.signing_until - utcnow()).total_seconds() - SIGNING_STOP_MARGIN
        if left <= 0:
            exit_without_commit(
                "signing.no_valid_certificate", RotationError("no certificate can sign")
            )
        await asyncio.sleep(min(left, 3600.0))


def observability(app: faust.App, settings: Settings, hub: HubContext) -> None:
    """Timers for certificate and lag gauges; /healthz, /readyz and /metrics on the web port.

    When no configured certificate can sign any more, the worker exits without
    committing (:func:`stop_when_signing_ends`); a restart refuses to start until
    a valid key is configured (``hub.keys.load_signers``).
    """
    signers = hub.signers or SignerSet(hub.signer)

    def check_certificate() -> None:
        check_certificates(signers, settings.cert_warn_days, utcnow())

    async def certificate_check() -> None:
        check_certificate()

    async def signing_deadline() -> None:
        await stop_when_signing_ends(signers)

    async def consumer_lag() -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            position = await consumer.position(tp)
            highwater = consumer.highwater(tp)
            if position is not None and highwater is not None:
                lag = max(0, highwater - position)
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)

    async def healthz(web: Any, _request: Any) -> Any:
        return web.json({"status": "ok"})

    async def readyz(web: Any, _request: Any) -> Any:
        ready = bool(app.consumer.assignment()) and not app.rebalancing
        return web.json({"ready": ready}, status=200 if ready else 503)

    async def prometheus(web: Any, _request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is ASCII.
        return web.bytes(
            generate_latest(metrics.REGISTRY), content_type="text/plain; version=0.0.4"
        )

    check_certificate()  # at start too: Faust's first timer tick comes only after an interval
    app.timer(interval=3600.0)(certificate_check)
    app.task(signing_deadline)
    app.timer(interval=5.0)(consumer_lag)
    app.page("/healthz")(healthz)
    app.page("/readyz")(readyz)
    app.page("/metrics")(prometheus)


def audit_chain_task(app: faust.App, settings: Settings, hub: HubContext) -> None:
    """Start the audit chainer's thread with the worker (not when the app is built)."""
    options = audit.ChainOptions(
        every=settings.audit_checkpoint_every,
        interval=dt.timedelta(seconds=settings.audit_checkpoint_interval_s),
    )

    async def audit_chain() -> None:
        audit.start(settings, hub.signer_at, options)

    app.task(audit_chain)


def vault_keks(settings: Settings, options: WorkerOptions) -> KekRing | None:
    """The audit vault's KEKs; without any, one warning: no inputs are recorded."""
    keks = audit_kek.from_settings(settings, development=options.development_audit_kek)
    if keks is None:
        log.warning(
            "vault.disabled",
            detail="no audit KEK configured (SOZIALHUB_AUDIT_KEK_FILE): "
            "dispatch records no inputs for audit replay",
        )
    return keks


def dispatch_agent(
    app: faust.App, settings: Settings, hub: HubContext, sender: Sender, keks: KekRing | None
) -> None:
    """The dispatch agent; with KEKs it records each input in the audit vault.

    The vault (docs/audit-vault.md) seals each input under its person's key, found
    in (or added to) the index of ``audit.keys``, which is loaded before the first batch.
    """
    vault, key_index = person_keys.vault(settings, keks) if keks else (None, None)

    def dispatch(event: Any, source: SourceRef) -> StageResult:
        accepted = decode(event.value, Accepted)
        result = pipeline.dispatch(accepted, source, hub, utcnow(), vault, event.value)
        if key_index is not None:
            key_index.remember(result.emits)  # the person's next submission uses this key
        return result

    async def keys_loaded() -> None:
        if key_index is not None:
            await person_keys.wait_loaded(key_index)

    channel = sender.channel(pipeline.ACCEPTED)
    stage_agent(app, channel, "dispatch", dispatch, sender, before=keys_loaded)


def create_app(
    settings: Settings,
    hub: HubContext,
    vendor_topics: Sequence[str],
    options: WorkerOptions = WorkerOptions(),
) -> faust.App:
    app = _faust_app(settings)
    keks = vault_keks(settings, options)
    sender = Sender(
        app,
        settings,
        [
            RECEIVED,
            pipeline.ACCEPTED,
            pipeline.DEAD_LETTER,
            pipeline.AUDIT,
            pipeline.SEEN,
            pipeline.RECEIPTS,
            consent_registry.EVENTS,
            consent_registry.LEDGER,
            *rkw_stages.topics(hub),
            *vendor_topics,
            *(person_keys.TOPICS if keks else ()),
        ],
    )

    index, _stop_following = seen.start(settings)
    if options.audit_chain:
        audit_chain_task(app, settings, hub)

    def intake(event: Any, source: SourceRef) -> StageResult:
        received = decode(event.value, Received)
        result = pipeline.intake(received, source, hub, utcnow(), seen=index)
        index.remember(result.emits)  # a duplicate later in this batch is caught too
        return result

    async def index_loaded() -> None:
        await wait_loaded(index, SEEN_LOAD_SECONDS, "replay index")

    stage_agent(app, sender.channel(RECEIVED), "intake", intake, sender, before=index_loaded)
    dispatch_agent(app, settings, hub, sender, keks)
    # The consent registry; the Rechtskreiswechsel gate reads consent_index.states_for.
    consent_index = consents.register(app, settings, sender, stage_agent)
    # Rechtskreiswechsel needs subscriptions.yml beside the office table; without it (an
    # office table of its own, no subscriptions) the worker runs without those agents.
    subscribed = subscriptions.default_path(settings)
    handovers = subscribed.is_file()
    if handovers:
        table = subscriptions.load(subscribed, settings.schema_dir, hub.offices)
        # The configured subscriptions plus those offices add at run time (compacted topic).
        subscribed_now, _stop_subscriptions = stream_subscriptions.start(
            settings, table, hub.offices
        )
        rkw.register(app, settings, hub, subscribed_now, consent_index, sender, stage_agent)
    else:
        log.warning("rechtskreiswechsel.disabled", detail="no subscriptions.yml")
    if options.outbound and vendor_topics:
        delivery.delivery_agents(app, settings, hub, sender, stage_agent, exit_without_commit)
        if handovers:  # handovers.<vendor> of the vendors without a Kafka principal
            handover_forward.forward_agents(
                app, settings, hub, sender, stage_agent, exit_without_commit
            )
    if options.inbound:
        file_drop_task(app, settings, hub, sender)
        osci_inbox.osci_drop_task(app, settings, hub, sender, exit_without_commit, utcnow)
        inbound_connectors(app, settings, hub, sender)
    observability(app, settings, hub)
    return app


def inbound_connectors(app: faust.App, settings: Settings, hub: HubContext, sender: Sender) -> None:
    """The configured portal connectors, and a receipt sender per channel to answer their portals
    (:mod:`hub.stream.receipts`: consumer group ``<prefix>receipts-<channel>``)."""
    channels: dict[str, ReceiptChannel] = {}
    if settings.xta_msgbox_url:
        poller = xta_task(app, settings, hub, sender)

        async def send_xta(receipt: PortalReceipt) -> str:
            return await poller.send_receipt(_receipt_body(receipt))

        channels["xta2"] = send_xta
    if settings.fitconnect_api_url:
        receiver = fitconnect_task(app, settings, hub, sender)

        async def send_fitconnect(receipt: PortalReceipt) -> str:
            if receipt.case_id is None:
                raise UnsendableReceipt("a FIT-Connect receipt needs its case id")
            try:
                token = _receipt_body(receipt).decode("ascii")
            except UnicodeDecodeError:
                raise UnsendableReceipt("not a token") from None
            return await receiver.send_event(receipt.case_id, token)

        channels["fitconnect"] = send_fitconnect
    if channels:
        senders = receipts.ReceiptSenders(settings, channels, sender)

        async def receipt_senders() -> None:
            await senders.run()

        async def stop_receipt_senders(
            _app: Any,
            /,
            *_: Any,
            signal: Any,  # noqa: ARG001 - the signal passes it
            **__: Any,
        ) -> None:
            # Before the producer stops: an outcome being audited is written, not cut off.
            await senders.stop()

        app.task(receipt_senders)
        app.on_before_shutdown.connect(stop_receipt_senders)


def _receipt_body(receipt: PortalReceipt) -> bytes:
    """The message or token a receipt record carries; :class:`UnsendableReceipt` without one."""
    try:
        body = unb64(receipt.body_b64 or "")
    except Rejection:
        raise UnsendableReceipt("the receipt body is not base64") from None
    if not body:
        raise UnsendableReceipt("the receipt has no body")
    return body
