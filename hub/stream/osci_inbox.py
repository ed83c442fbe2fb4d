"""The ``osci`` sub-inbox of the file drop: OSCI packages and their metadata become records.

An OSCI client hands over each content package with a metadata sidecar
(:mod:`connectors.filedrop.osci`, docs/transports/osci.md#handover-through-the-file-drop).
For each pair the worker claims it (renames it out of the client's reach, into the
sub-inbox's claim directory), reads it from there, produces what :func:`records_for`
says and waits until Kafka acknowledged it; only then does the pair leave its claim:

- a valid pair: a ``submissions.received`` record (transport ``osci``, the client's
  author, reader and OSCI message id) and its ``ingest``/``received`` audit event;
  intake then unpacks the package, recognises the portal and applies its policy;
- a package above ``max_submission_bytes`` (or whose record would not fit): a ``SIZE``
  dead letter at stage ``ingest``;
- a package without a valid sidecar (none in time, too large, not the documented
  JSON): a ``METADATA`` dead letter at stage ``ingest``, path ``osci/metadata…``.

Pairs an earlier process left claimed are taken first after a start.

Logs carry counts, error numbers, reason codes and digests only: never a file name
(chosen by the sender) and never content.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog

from connectors.filedrop.inbound import CannotClaim, Unreadable
from connectors.filedrop.osci import OsciFiles, OsciHandover, OsciInbox
from hub.core import pipeline
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import Emit, HubContext, StageResult
from hub.core.records import Received, decode, submission_id_of_digest
from hub.core.transport.osci_handover import METADATA_PATH, OsciMetadata, parse_metadata
from hub.stream import metrics

if TYPE_CHECKING:
    import faust

    from hub.config import Settings
    from hub.stream.app import Sender

log = structlog.get_logger(__name__)

SOURCE = "filedrop"  # the connector instance, as for every inbox file
TRANSPORT = "osci"
BATCH_SIZE = 100


def records_for(files: OsciFiles, hub: HubContext, now: dt.datetime) -> StageResult:
    """What the sub-inbox produces for one pair: the received record, or an ``ingest`` dead letter."""
    package = files.package
    if package.data is None:
        return pipeline.reject_unread(package.sha256, Reason.SIZE, now)
    try:
        metadata = _metadata(files)
    except Rejection as rejection:
        sid = submission_id_of_digest(package.sha256)
        return pipeline.reject(sid, "ingest", rejection, package.sha256, None, now)
    return pipeline.ingest(
        package.data,
        SOURCE,
        TRANSPORT,
        hub,
        now,
        metadata.message_id,
        transport_author=metadata.author,
        transport_reader=metadata.reader,
    )


def _metadata(files: OsciFiles) -> OsciMetadata:
    if files.metadata_too_large:
        raise Rejection(Reason.METADATA, METADATA_PATH)  # never buffered, never parsed
    return parse_metadata(files.metadata)


def osci_batch(
    inbox: OsciInbox,
    handovers: list[OsciHandover],
    hub: HubContext,
    clock: Callable[[], dt.datetime],
) -> tuple[list[Emit], list[tuple[OsciHandover, str]], list[tuple[OsciHandover, str, str]]]:
    """Records for up to one batch of pairs: (emits, taken pairs, pairs to set aside).

    Each pair is claimed first (renamed out of the client's reach); taken pairs and
    pairs to set aside are claimed handovers. Taken pairs carry their submission id;
    pairs to set aside their package digest and the reason code (``SIZE`` or
    ``METADATA``). Unreadable pairs are quarantined at once: nothing goes to Kafka for them.
    """
    emits: list[Emit] = []
    taken: list[tuple[OsciHandover, str]] = []
    aside: list[tuple[OsciHandover, str, str]] = []
    for listed in handovers[:BATCH_SIZE]:
        try:
            handover = inbox.claim(listed)
        except CannotClaim as exc:
            log.error("filedrop.cannot_claim", inbox=TRANSPORT, errno=exc.errno)  # noqa: TRY400 - no traceback
            continue
        if handover is None:
            continue  # another worker claimed it, or the client took it back
        try:
            files = inbox.read(handover)
        except Unreadable as exc:
            kept = inbox.quarantine(handover)
            log.error("filedrop.unreadable", inbox=TRANSPORT, errno=exc.errno, quarantined=kept)  # noqa: TRY400 - no traceback
            continue
        if files is None:
            continue  # taken by another worker meanwhile
        result = records_for(files, hub, clock())
        emits.extend(result.emits)
        digest = files.package.sha256
        if result.outcome == "rejected":
            metrics.DEAD_LETTERS.labels("ingest", result.reason or "").inc()
            log.warning(
                "stage.rejected",
                stage="ingest",
                transport=TRANSPORT,
                reason=result.reason,
                payload_sha256=digest,
            )
            aside.append((handover, digest, result.reason or ""))
        else:
            (record,) = [e for e in result.emits if e.topic == pipeline.RECEIVED]
            taken.append((handover, decode(record.value, Received).submission_id))
    return emits, taken, aside


def osci_drop_task(
    app: faust.App,
    settings: Settings,
    hub: HubContext,
    sender: Sender,
    exit_without_commit: Callable[[str, BaseException], Any],
    clock: Callable[[], dt.datetime],
) -> None:
    """The ``osci`` sub-inbox poller: pairs become records; they leave only after Kafka has them."""
    inbox = OsciInbox(
        settings.inbox_dir,
        settings.archive_dir,
        settings.max_submission_bytes,
        pair_seconds=settings.osci_pair_seconds,
    )

    async def osci_drop() -> None:
        try:
            await poll_forever()
        except Exception as exc:  # noqa: BLE001 - a dead poller would silently stop OSCI ingest
            exit_without_commit("filedrop.osci_failed", exc)

    async def poll_forever() -> None:
        while True:
            listing = inbox.scan()
            if listing.error is not None:
                log.error("filedrop.osci_unlistable", errno=listing.error)
            metrics.OSCI_INBOX_PACKAGES.set(len(listing.ready) + listing.waiting)
            for orphan in listing.orphans:
                log.warning("filedrop.osci_orphan", moved=inbox.set_orphan_aside(orphan))
            if not listing.ready:
                await asyncio.sleep(settings.inbox_poll_seconds)
                continue
            emits, taken, aside = osci_batch(inbox, listing.ready, hub, clock)
            if emits:
                await sender.send_all(emits)  # the pairs stay claimed until Kafka has them
            # Kafka has the records now; a pair that cannot leave its claim is only skipped by
            # this process (and re-taken, re-sent and deduplicated after a restart).
            stuck = [h for h, sid in taken if not inbox.release(h, sid)]
            stuck += [h for h, digest, reason in aside if not inbox.set_aside(h, digest, reason)]
            if stuck:
                log.error("filedrop.cannot_move", inbox=TRANSPORT, files=len(stuck))
            log.info("filedrop.taken", inbox=TRANSPORT, files=len(taken), refused=len(aside))

    app.task(osci_drop)
