"""The FIT-Connect receiver: callback endpoint, polling fallback, fetching, handover, events.

Flow for one submission:

1. The delivery service POSTs ``new-submissions`` to ``/fitconnect/callback``.
   The endpoint reads at most ``max_callback_bytes``, verifies
   ``callback-authentication``/``callback-timestamp`` (401, empty body, on
   any failure), answers 200 at once and schedules the fetch. Independently,
   a poll every ``poll_interval`` seconds lists the destination's pending
   submissions, so a lost callback only delays a submission.
2. Fetching reads ``GET /v1/submissions/{id}`` and each
   ``GET /v1/submissions/{id}/attachments/{attachmentId}`` (size-bounded) and
   assembles the bundle of :func:`hub.core.transport.fitconnect.bundle`.
3. The bundle goes to the injected ``handover(bundle, submission_id)``
   coroutine (normally: produce it to Kafka). Fetch and handover are retried
   ``max_attempts`` times with exponential backoff; a 4xx answer is not
   retried. A handed-over submission is not handed over again for
   ``redeliver_after`` seconds even if polls still list it (the hub has not
   answered yet); after that it is handed over again (at least once; the hub
   deduplicates on the submission id).
   A part larger than its bound (``max_submission_bytes`` for the resource with
   metadata and data, ``max_attachment_bytes`` per attachment), or a bundle
   larger than ``max_bundle_bytes`` (path ``bundle``), announced by
   ``Content-Length`` or found while streaming, is not read further: the
   injected ``refuse(submission_id, case_id, rejection)`` coroutine (normally:
   produce a ``SIZE`` dead letter and the ``reject-submission`` SET to Kafka)
   takes it instead of ``handover``, with the same retries.
4. The hub answers with :meth:`FitConnectReceiver.send_event` (a SET from
   :func:`hub.core.transport.fitconnect.security_event_token`). It reads the
   case's event log first and never posts a SET that is there already, nor
   one that contradicts the answer there.
5. A submission the hub has answered already (the injected ``answered``
   lookup knows its SET) is not fetched again when the delivery service still
   lists it: the receiver sends the same SET again (if the event log lacks it:
   the answer was lost) and leaves it at that.

Logs carry submission and case ids, HTTP statuses and reason codes, never
bodies, headers or secrets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp import web

from connectors.bodies import read_limited
from hub.config import Secret
from hub.core.errors import Reason, Rejection, UnsendableReceipt
from hub.core.transport import fitconnect as fc

log = structlog.get_logger(__name__)

Handover = Callable[[bytes, str], Awaitable[None]]
# refuse(submission id, case id or None, rejection): record a submission not fetched.
Refuse = Callable[[str, str | None, Rejection], Awaitable[None]]
# answered(submission id) -> (case id, SET) of the hub's answer, or None if it has none yet.
Answered = Callable[[str], tuple[str, str] | None]

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_MAX_ATTACHMENTS = 100
_REMEMBERED = 10_000  # handed-over submission ids kept for redeliver_after


@dataclass(frozen=True)
class ReceiverConfig:
    """Settings of one destination's receiver. Secrets are :class:`Secret` (masked in reprs)."""

    api_url: (
        str  # Submission API base URL, e.g. https://submission-api-testing.fit-connect.fitko.dev
    )
    destination_id: str
    token: Secret  # bearer access token for the Submission API
    callback_secret: Secret  # the destination's callback secret (HMAC-SHA512 key)
    poll_interval: float = 60.0
    redeliver_after: float = 900.0
    max_attempts: int = 4
    backoff_initial: float = 0.5
    backoff_max: float = 10.0
    request_timeout: float = 30.0
    max_concurrency: int = 4
    max_callback_bytes: int = 64 * 1024
    max_list_bytes: int = 1024 * 1024
    max_submission_bytes: int = 8 * 1024 * 1024  # metadata + data JWE in one JSON resource
    max_attachment_bytes: int = 4 * 1024 * 1024  # one attachment JWE (2 MiB content, base64url)
    # The whole bundle handed over: the hub's max_submission_bytes (a larger one is refused SIZE
    # at path "bundle", answered with a reject SET, instead of a dead letter nobody answers).
    max_bundle_bytes: int = 4 * 1024 * 1024
    page_size: int = 100
    max_pages: int = 50
    callback_max_age: dt.timedelta = fc.CALLBACK_MAX_AGE
    ca_file: Path | None = None  # CA bundle for the API's TLS certificate (default: system store)

    def __post_init__(self) -> None:
        url = urlsplit(self.api_url)
        if url.scheme != "https" and not (url.scheme == "http" and url.hostname in _LOOPBACK):
            raise ValueError("api_url must be https (plain http only on the loopback interface)")
        if not _UUID.fullmatch(self.destination_id):
            raise ValueError("destination_id must be a UUID")
        if not self.callback_secret.reveal():
            raise ValueError("callback_secret must not be empty")
        if self.max_attempts < 1 or self.max_concurrency < 1 or self.poll_interval <= 0:
            raise ValueError("max_attempts, max_concurrency and poll_interval must be positive")
        if min(self.max_submission_bytes, self.max_attachment_bytes, self.max_bundle_bytes) <= 0:
            raise ValueError("the size bounds must be positive")


class FitConnectApiError(Exception):
    """The Submission API answered with an error status; the message names operation and status."""

    def __init__(self, operation: str, status: int) -> None:
        super().__init__(f"{operation} answered HTTP {status}")
        self.operation = operation
        self.status = status

    @property
    def retriable(self) -> bool:
        return self.status >= 500 or self.status in (408, 429)


class FitConnectConflict(Exception):  # noqa: N818 - named like FitConnectApiError
    """The case's event log holds the other answer: the SET is not sent (never retried)."""

    retriable = False

    def __init__(self, case_id: str) -> None:
        super().__init__(f"case {case_id} already has the other answer")
        self.case_id = case_id


class _Malformed(Exception):  # noqa: N818 - internal signal, never leaves this module
    """A 2xx answer whose body is not the documented shape (not retried)."""


# The path of a bundle over max_bundle_bytes whose every part is within its own bound.
_BUNDLE = "bundle"


class _TooLarge(_Malformed):
    """A part larger than its bound; ``path`` names the part, ``case_id`` the case if known."""

    def __init__(self, path: str, case_id: str | None) -> None:
        super().__init__(path)
        self.path = path
        self.case_id = case_id


async def read_prefix(
    stream: aiohttp.StreamReader, limit: int, *, keep_on_break: bool = False
) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of a body and whether that was all of it; never reads past ``limit + 1``.

    With ``keep_on_break``, a body the server breaks off is returned as far as
    it came, as incomplete; otherwise the ``ClientPayloadError`` propagates.
    """
    buffer = bytearray()
    try:
        while chunk := await stream.read(min(1 << 16, limit + 1 - len(buffer))):
            buffer += chunk
            if len(buffer) > limit:
                return bytes(buffer[:limit]), False
    except aiohttp.ClientPayloadError:
        if not keep_on_break:
            raise
        return bytes(buffer), False
    return bytes(buffer), True


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FitConnectReceiver:
    """Receive one destination's submissions; see the module docstring for the flow."""

    CALLBACK_PATH = "/fitconnect/callback"

    def __init__(
        self,
        config: ReceiverConfig,
        handover: Handover,
        *,
        refuse: Refuse | None = None,
        answered: Answered | None = None,
        clock: Callable[[], dt.datetime] = _utc_now,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.config = config
        self._handover = handover
        self._refuse = refuse
        self._answered = answered
        self._clock = clock
        self._session = session
        self._own_session = session is None
        self._stopping = asyncio.Event()
        self._semaphore = asyncio.Semaphore(config.max_concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: set[str] = set()
        self._handed: OrderedDict[str, float] = OrderedDict()
        self._cases: OrderedDict[str, str] = OrderedDict()  # announced submission -> case id
        self._poller: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return (
            f"FitConnectReceiver(destination_id={self.config.destination_id!r}, "
            f"api_url={self.config.api_url!r})"
        )

    # ----------------------------------------------------------------- lifecycle

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self.CALLBACK_PATH, self.handle_callback)

    async def start(self, *, poll: bool = True) -> None:
        """Open the HTTP session and, unless ``poll`` is false, start the polling loop."""
        if self._session is None:
            context = ssl.create_default_context(
                cafile=str(self.config.ca_file) if self.config.ca_file else None
            )
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=context),
                timeout=aiohttp.ClientTimeout(total=self.config.request_timeout),
            )
        self._stopping.clear()
        if poll and self._poller is None:
            self._poller = asyncio.create_task(self._poll_loop())

    async def stop(self) -> None:
        """Stop polling, cancel fetches still running, close the session if this receiver opened it."""
        self._stopping.set()
        pending = [*self._tasks, *([self._poller] if self._poller else [])]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._poller = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def idle(self) -> None:
        """Wait until no fetch or handover is running (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ----------------------------------------------------------------- callback

    async def handle_callback(self, request: web.Request) -> web.Response:
        """``POST /fitconnect/callback``: 401 unless authentic and fresh, then 200 and fetch.

        An authentic callback of another FIT-Connect type is answered 200 and left alone;
        one that is no FIT-Connect callback at all is 400.
        """
        if (request.content_length or 0) > self.config.max_callback_bytes:
            return web.Response(status=413)
        body = await read_limited(request.content, self.config.max_callback_bytes)
        if body is None:
            return web.Response(status=413)
        try:
            fc.verify_callback(
                body,
                request.headers.get("callback-timestamp", ""),
                request.headers.get("callback-authentication", ""),
                self.config.callback_secret.reveal().encode("utf-8"),
                self._clock(),
                self.config.callback_max_age,
            )
        except Rejection as rejection:
            log.warning(
                "fitconnect.callback_refused", reason=rejection.reason.value, path=rejection.path
            )
            return web.Response(status=401)
        try:
            kind, announced = fc.read_callback(body, self.config.destination_id)
        except Rejection as rejection:
            log.warning("fitconnect.callback_malformed", reason=rejection.reason.value)
            return web.Response(status=400)
        if kind != fc.CALLBACK_NEW_SUBMISSIONS:
            # New events or replies: nothing for a subscriber to fetch; the delivery
            # service expects 2xx (polling reads what a submission needs).
            log.info("fitconnect.callback_other", type=kind)
            return web.Response(status=200)
        for submission_id, case_id in announced.items():
            self._schedule(submission_id, case_id)
        log.info("fitconnect.callback", submissions=len(announced))
        return web.Response(status=200)

    # ----------------------------------------------------------------- polling

    async def poll_once(self) -> int:
        """List the destination's pending submissions and schedule each; returns how many."""
        scheduled, offset = 0, 0
        for _ in range(self.config.max_pages):
            page = await self._get_json(
                "list submissions",
                "/v1/submissions",
                self.config.max_list_bytes,
                params={
                    "destinationId": self.config.destination_id,
                    "offset": str(offset),
                    "limit": str(self.config.page_size),
                },
            )
            entries = page.get("submissions")
            if not isinstance(entries, list):
                raise _Malformed
            for entry in entries:
                submission_id = entry.get("submissionId") if isinstance(entry, dict) else None
                case_id = entry.get("caseId") if isinstance(entry, dict) else None
                if isinstance(submission_id, str) and _UUID.fullmatch(submission_id):
                    scheduled += self._schedule(
                        submission_id.lower(),
                        case_id if isinstance(case_id, str) and _UUID.fullmatch(case_id) else None,
                    )
            offset += len(entries)
            total = page.get("totalCount")
            if not entries or not isinstance(total, int) or offset >= total:
                break
        return scheduled

    async def _poll_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.poll_once()
            except (aiohttp.ClientError, TimeoutError, FitConnectApiError, _Malformed) as exc:
                log.warning(
                    "fitconnect.poll_failed",
                    error=type(exc).__name__,
                    status=getattr(exc, "status", None),
                )
            if await self._stop_within(self.config.poll_interval):
                return

    async def _stop_within(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; true if the receiver is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True

    # ----------------------------------------------------------------- fetch and hand over

    def _schedule(self, submission_id: str, case_id: str | None = None) -> int:
        submission_id = submission_id.lower()
        if case_id is not None:
            self._cases[submission_id] = case_id.lower()
            self._cases.move_to_end(submission_id)
            while len(self._cases) > _REMEMBERED:
                self._cases.popitem(last=False)
        handed = self._handed.get(submission_id)
        if handed is not None and time.monotonic() - handed < self.config.redeliver_after:
            return 0
        if submission_id in self._inflight or self._stopping.is_set():
            return 0
        self._inflight.add(submission_id)
        task = asyncio.create_task(self._process(submission_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return 1

    async def _process(self, submission_id: str) -> None:
        try:
            async with self._semaphore:
                await self._fetch_and_hand_over(submission_id)
        finally:
            self._inflight.discard(submission_id)

    async def _fetch_and_hand_over(self, submission_id: str) -> None:
        if await self._answer_again(submission_id):
            return
        for attempt in range(1, self.config.max_attempts + 1):
            status: int | None = None
            path: str | None = None
            try:
                await self._fetch_and_pass_on(submission_id, attempt)
            except (FitConnectApiError, _Malformed) as exc:
                status = exc.status if isinstance(exc, FitConnectApiError) else None
                path = exc.path if isinstance(exc, _TooLarge) else None
                final = not (isinstance(exc, FitConnectApiError) and exc.retriable)
                error = type(exc).__name__
            except (aiohttp.ClientError, TimeoutError) as exc:
                final, error = False, type(exc).__name__
            except Exception as exc:  # noqa: BLE001 - the injected handover may fail in any way; retry it
                final, error = False, type(exc).__name__
            else:
                self._remember(submission_id)
                return
            if final:
                log.error(
                    "fitconnect.fetch_refused",
                    submission_id=submission_id,
                    status=status,
                    reason=Reason.SIZE.value if path else None,
                    path=path,
                )
                return
            log.warning(
                "fitconnect.fetch_retry",
                submission_id=submission_id,
                attempt=attempt,
                error=error,
                status=status,
            )
            if attempt == self.config.max_attempts or await self._stop_within(
                self._backoff(attempt)
            ):
                break
        log.error("fitconnect.fetch_gave_up", submission_id=submission_id)

    async def _fetch_and_pass_on(self, submission_id: str, attempt: int) -> None:
        """Fetch and hand over; a part over its bound goes to ``refuse`` instead (if injected)."""
        try:
            bundle = await self.fetch(submission_id)
        except _TooLarge as too_large:
            if self._refuse is None:
                raise
            case_id = too_large.case_id or self._cases.get(submission_id)
            await self._refuse(submission_id, case_id, Rejection(Reason.SIZE, too_large.path))
            log.warning(
                "fitconnect.size_refused",
                submission_id=submission_id,
                case_id=case_id,
                reason=Reason.SIZE.value,
                path=too_large.path,
                attempt=attempt,
            )
            return
        await self._handover(bundle, submission_id)
        log.info("fitconnect.handed_over", submission_id=submission_id, attempt=attempt)

    async def _answer_again(self, submission_id: str) -> bool:
        """True if the hub has answered this submission already: its SET is (re)sent, nothing fetched.

        The delivery service lists a submission until it has the answer, so a
        listed submission with a known answer lost that answer (or the service
        lags): the same SET goes again, through :meth:`send_event`, which posts
        nothing the event log already has. If the service refuses it for good,
        the submission is fetched and handed over as if unanswered.
        """
        known = self._answered(submission_id) if self._answered is not None else None
        if known is None:
            return False
        case_id, token = known
        try:
            state = await self.send_event(case_id, token)
        except FitConnectConflict:
            self._remember(submission_id)  # logged by send_event; an operator has to look
            return True
        except (FitConnectApiError, UnsendableReceipt) as exc:
            if exc.retriable:
                return True  # the service is unavailable: the next poll tries again
            # Refused for good, or a stored answer that cannot be posted: fetched as if unanswered.
            status = exc.status if isinstance(exc, FitConnectApiError) else None
            log.warning(
                "fitconnect.answer_again_refused", submission_id=submission_id, status=status
            )
            return False
        except (aiohttp.ClientError, TimeoutError):
            return True  # logged by send_event; the next poll tries again
        self._remember(submission_id)
        log.info(
            "fitconnect.answered_again", submission_id=submission_id, case_id=case_id, state=state
        )
        return True

    def _backoff(self, attempt: int) -> float:
        return float(min(self.config.backoff_max, self.config.backoff_initial * 2 ** (attempt - 1)))

    def _remember(self, submission_id: str) -> None:
        self._handed[submission_id] = time.monotonic()
        self._handed.move_to_end(submission_id)
        while len(self._handed) > _REMEMBERED:
            self._handed.popitem(last=False)

    async def fetch(self, submission_id: str) -> bytes:
        """Fetch a submission and its attachments; return the bundle for the hub."""
        if not _UUID.fullmatch(submission_id):
            raise ValueError("submission_id must be a UUID")
        raw, complete, _ = await self._get_part(
            "get submission",
            f"/v1/submissions/{submission_id}",
            self.config.max_submission_bytes,
            read_beyond_announcement=True,  # up to the bound: which part is too large, the case
        )
        if not complete:
            unread = fc.unread_part(raw)
            expected = {
                "submissionId": submission_id.lower(),
                "destinationId": self.config.destination_id.lower(),
            }
            if any(unread.ids.get(name, value) != value for name, value in expected.items()):
                raise _Malformed  # another submission's resource: nothing to refuse
            raise _TooLarge(unread.part, unread.ids.get("caseId"))
        try:
            resource = fc.parse_json(raw)
        except Rejection:
            raise _Malformed from None
        if not isinstance(resource, dict):
            raise _Malformed
        case_id = resource.get("caseId")
        attachment_ids = resource.get("attachments", [])
        if (
            str(resource.get("submissionId", "")).lower() != submission_id.lower()
            or str(resource.get("destinationId", "")).lower() != self.config.destination_id.lower()
            or not isinstance(case_id, str)
            or not isinstance(resource.get("encryptedMetadata"), str)
            or not isinstance(attachment_ids, list)
            or len(attachment_ids) > _MAX_ATTACHMENTS
            or not all(isinstance(a, str) and _UUID.fullmatch(a) for a in attachment_ids)
        ):
            raise _Malformed
        known_case = case_id.lower() if _UUID.fullmatch(case_id) else None
        service_type = resource.get("serviceType")
        encrypted_data = resource.get("encryptedData")

        def assembled(attachments: dict[str, str]) -> bytes:
            return fc.bundle(
                submission_id=submission_id,
                case_id=case_id,
                destination_id=self.config.destination_id,
                service_type=service_type if isinstance(service_type, dict) else None,
                encrypted_metadata=resource["encryptedMetadata"],
                # A submission without data is handed over as such; the hub rejects it (CONTAINER).
                encrypted_data=encrypted_data if isinstance(encrypted_data, str) else "",
                attachments=attachments,
            )

        # The bundle bound: what is assembled so far must fit, and no attachment is read further
        # than what is left of it (parts within their own bounds can still overflow the bundle).
        budget = self.config.max_bundle_bytes - len(assembled({}))
        if budget < 0:
            raise _TooLarge(_BUNDLE, known_case)
        attachments = await self._attachments(submission_id, attachment_ids, budget, known_case)
        bundle = assembled(attachments)
        if len(bundle) > self.config.max_bundle_bytes:  # every part fit, the bundle does not
            raise _TooLarge(_BUNDLE, known_case)
        return bundle

    async def _attachments(
        self, submission_id: str, attachment_ids: list[str], budget: int, case_id: str | None
    ) -> dict[str, str]:
        """The attachment JWEs by id, each within its bound and all within ``budget`` bytes."""
        own_bound = self.config.max_attachment_bytes
        attachments: dict[str, str] = {}
        for index, attachment_id in enumerate(attachment_ids):
            budget -= len(attachment_id) + 4  # "id":"..." and a comma, besides the token itself
            bound = max(0, min(own_bound, budget))
            raw, complete, announced = await self._get_part(
                "get attachment",
                f"/v1/submissions/{submission_id}/attachments/{attachment_id}",
                bound,
            )
            if not complete:
                # Over its own bound (as announced, or read up to it): the attachment's fault;
                # stopped at what was left of the bundle: the bundle's.
                own = bound == own_bound or (announced is not None and announced > own_bound)
                raise _TooLarge(f"attachments/{index}" if own else _BUNDLE, case_id)
            attachments[attachment_id] = raw.decode("ascii", errors="replace").strip()
            budget -= len(attachments[attachment_id])
        return attachments

    # ----------------------------------------------------------------- events

    async def send_event(self, case_id: str, set_token: str) -> str:
        """POST a Security Event Token to the case's event log, with bounded retries.

        Each attempt reads the event log first (:func:`fc.answer_in_log`): a SET
        with the same ``jti`` there (``present``: an earlier attempt or run
        delivered it, its acknowledgement was lost) or another one with the same
        event (``answered``) is not posted again; the other event there raises
        :class:`FitConnectConflict` (never retried). Returns ``sent``, ``present``
        or ``answered``. An event log the service will not show (a 4xx other than
        408/429, or not the documented shape) does not stop the answer: it is
        posted, and the same ``jti`` lets the service recognise a repetition.
        """
        if not _UUID.fullmatch(case_id):
            raise UnsendableReceipt("case_id must be a UUID")
        try:
            fc.answer_in_log(set_token, [])  # ValueError unless an accept or reject SET
        except ValueError:
            raise UnsendableReceipt("not an accept or reject event") from None
        for attempt in range(1, self.config.max_attempts + 1):
            try:
                state = await self._logged(case_id, set_token)
                if state in (fc.ANSWER_PRESENT, fc.ANSWER_GIVEN):
                    log.info("fitconnect.event_present", case_id=case_id, state=state)
                    return state
                if state == fc.ANSWER_CONFLICT:
                    log.error("fitconnect.event_conflict", case_id=case_id)
                    raise FitConnectConflict(case_id)
                async with self._http().post(
                    self._url(f"/v1/cases/{case_id}/events"),
                    data=set_token.encode("ascii"),
                    headers={**self._auth(), "Content-Type": "application/jose"},
                ) as response:
                    if 200 <= response.status < 300:
                        log.info("fitconnect.event_sent", case_id=case_id)
                        return "sent"
                    error: Exception = FitConnectApiError("post event", response.status)
            except (aiohttp.ClientError, TimeoutError, FitConnectApiError) as exc:
                error = exc
            if isinstance(error, FitConnectApiError) and not error.retriable:
                log.error("fitconnect.event_refused", case_id=case_id, status=error.status)
                raise error
            log.warning(
                "fitconnect.event_retry",
                case_id=case_id,
                attempt=attempt,
                error=type(error).__name__,
            )
            if attempt == self.config.max_attempts or await self._stop_within(
                self._backoff(attempt)
            ):
                raise error
        raise RuntimeError("unreachable")  # pragma: no cover - the loop returns or raises

    async def _logged(self, case_id: str, set_token: str) -> str:
        """How the case's event log stands to ``set_token`` (``ANSWER_*``); absent if unreadable."""
        try:
            document = await self._get_json(
                "get events", f"/v1/cases/{case_id}/events", self.config.max_list_bytes
            )
        except FitConnectApiError as exc:
            if exc.retriable:
                raise
            log.warning("fitconnect.event_log_unreadable", case_id=case_id, status=exc.status)
            return fc.ANSWER_ABSENT
        except _Malformed:
            log.warning("fitconnect.event_log_unreadable", case_id=case_id, status=200)
            return fc.ANSWER_ABSENT
        return fc.answer_in_log(set_token, document.get("eventLog"))

    # ----------------------------------------------------------------- HTTP

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the receiver is not started")
        return self._session

    def _url(self, path: str) -> str:
        return self.config.api_url.rstrip("/") + path

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.token.reveal()}"}

    async def _get(
        self, operation: str, path: str, limit: int, params: Mapping[str, str] | None = None
    ) -> bytes:
        async with self._http().get(
            self._url(path), headers=self._auth(), params=params
        ) as response:
            if response.status != 200:
                raise FitConnectApiError(operation, response.status)
            body = await read_limited(response.content, limit)
        if body is None:
            raise _Malformed
        return body

    async def _get_part(
        self, operation: str, path: str, limit: int, *, read_beyond_announcement: bool = False
    ) -> tuple[bytes, bool, int | None]:
        """GET one part: ``(body, True, announced)``, or ``(prefix, False, announced)`` when over ``limit``.

        ``announced`` is the ``Content-Length``, if any. One above ``limit`` ends
        it before the body is read (``prefix`` empty), unless
        ``read_beyond_announcement``: then, as for a body that announces no size,
        at most ``limit`` bytes are read and returned (and if the server breaks
        off such a body, the announcement stands: what came is returned as
        incomplete).
        """
        async with self._http().get(self._url(path), headers=self._auth()) as response:
            if response.status != 200:
                raise FitConnectApiError(operation, response.status)
            announced = response.content_length
            too_large = announced is not None and announced > limit
            if too_large and not read_beyond_announcement:
                return b"", False, announced
            body, complete = await read_prefix(response.content, limit, keep_on_break=too_large)
            return body, complete, announced

    async def _get_json(
        self, operation: str, path: str, limit: int, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        body = await self._get(operation, path, limit, params)
        try:
            document = fc.parse_json(body)
        except Rejection:
            raise _Malformed from None
        if not isinstance(document, dict):
            raise _Malformed
        return document
