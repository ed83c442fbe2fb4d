"""A vendor's case-intake endpoint (a Fachverfahren that takes JSON over HTTP), for tests and demos.

:class:`VendorSimulator` serves ``POST /offices/{office}/cases`` (the path is
configurable) and books each case once per ``Idempotency-Key``, as
draft-ietf-httpapi-idempotency-key-header describes:

- first request with a key: ``201``, ``{"bookingId": …}`` and a ``Location``;
- the same key and the same body again: the original result once more (``201``,
  the same booking id) with ``Idempotent-Replayed: true``;
- the same key with a different body: ``422``; while the first request with
  that key is still being processed: ``409``;
- no ``Idempotency-Key`` (or not an RFC 8941 string): ``400``; a
  ``validate`` callable that returns false: ``422``; another media type than
  ``application/json``: ``415``; a body above ``max_request_bytes``: ``413``;
  a ``token`` configured and not presented as a bearer token: ``401``.

Failure modes, each until changed: :meth:`~VendorSimulator.down` /
:meth:`~VendorSimulator.up` and :meth:`~VendorSimulator.outage` (every path
answers ``503`` with ``Retry-After``, or ``"drop"``: the connection is cut),
:meth:`~VendorSimulator.flaky` (every n-th case request fails),
:meth:`~VendorSimulator.fail_next` (the next requests fail with a given status,
are dropped, or are booked but their answer is lost), :meth:`~VendorSimulator.slow`
(answers late, for client timeouts); :meth:`~VendorSimulator.heal` ends them all.
``GET /health`` answers ``200``, or ``503`` while down.

Beside the cases it takes Rechtskreiswechsel messages the hub forwards
(docs/delivery.md#handover-forwarding): ``POST /offices/{office}/handovers`` (the
case path's last segment replaced, as :func:`connectors.http.sender.handover_url`
derives it; ``handover_path`` to change it). Each key ``<message id>.<kind>`` is
booked once, in :attr:`~VendorSimulator.handovers` (another kind of the same
message is booked beside it: it supersedes); a repeated key is answered as a
replay whatever the body, since the hub sends a message again with a new
decision time when it decides again; ``409`` while the key is in flight. A body
that is not a ``sozialhub.rechtskreiswechsel-message`` whose ``message_id`` and
``kind`` make the key and whose ``office`` is the path's office is ``422``. The
failure modes apply to both.

:attr:`~VendorSimulator.bookings` and :attr:`~VendorSimulator.requests_by_key`
let a test or the demo check "nothing lost, nothing booked twice":
:meth:`~VendorSimulator.booked_twice` lists bodies booked under more than one
key. :class:`VendorSimulatorThread` runs one in a background thread for
synchronous code. Not simulated: key expiry, authentication beyond a static
bearer token, reading bookings back.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import ssl
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Self, TypeVar

import jsonschema
from aiohttp import web

from connectors.http.sender import handover_url
from hub.core.fanout import MESSAGE_TYPE

T = TypeVar("T")
Validator = Callable[[bytes], bool]
FailMode = Literal["status", "drop", "lose_answer"]
DownMode = Literal["503", "drop"]

DEFAULT_PATH = "/offices/{office}/cases"
HEALTH_PATH = "/health"
REPLAYED_HEADER = "Idempotent-Replayed"
# An RFC 8941 sf-string without escapes: printable ASCII but '"' and '\'.
_KEY = re.compile(r'"([\x20\x21\x23-\x5b\x5d-\x7e]{1,255})"')
_KEY_SLOT = web.RequestKey("idempotency_key", str)  # "" when missing or malformed
_BOOKING_ROUTES = ("case", "handover")  # the routes that book (and that the failure modes hit)


@dataclass(slots=True)
class Booking:
    """One case (or forwarded handover message) the vendor booked, under one idempotency key."""

    key: str
    office: str
    booking_id: str
    body_sha256: str
    location: str
    booked: int = 1  # times a case was booked for this key: the simulator keeps it at 1
    replays: int = 0  # answers repeated for this key


@dataclass(frozen=True, slots=True)
class _Failure:
    mode: FailMode
    status: int = 503
    retry_after: str | None = None


def schema_validator(schema: Mapping[str, Any]) -> Validator:
    """A ``validate`` callable: the body is UTF-8 JSON valid against ``schema`` (JSON Schema)."""
    document = dict(schema)
    cls = jsonschema.validators.validator_for(document)
    cls.check_schema(document)
    checker = cls(document)

    def validate(body: bytes) -> bool:
        try:
            document = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return False
        return bool(checker.is_valid(document))

    return validate


class VendorSimulator:
    """An in-process vendor endpoint on loopback; use ``async with`` or :meth:`start`/:meth:`stop`.

    ``ssl_context`` makes it HTTPS (e.g. :meth:`hub.sim.pki.DevPki.server_context`,
    which requires a client certificate). The failure-mode methods may be
    called from any thread.
    """

    def __init__(
        self,
        *,
        path: str = DEFAULT_PATH,
        validate: Validator | None = None,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
        media_type: str = "application/json",
        host: str = "127.0.0.1",
        max_request_bytes: int = 1024 * 1024,
        booking_prefix: str = "BK",
        handover_path: str | None = None,
    ) -> None:
        if "{office}" not in path or not path.startswith("/"):
            raise ValueError("path must start with / and contain {office}")
        handovers = handover_url(path) if handover_path is None else handover_path
        if "{office}" not in handovers or not handovers.startswith("/") or handovers == path:
            raise ValueError("handover_path needs a leading /, {office} and another path")
        self.path = path
        self.handover_path = handovers
        self._validate = validate
        self._ssl = ssl_context
        self._token = token
        self._media_type = media_type
        self._host = host
        self._max_request_bytes = max_request_bytes
        self._prefix = booking_prefix
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        # failure modes
        self._down: DownMode | None = None
        self._down_until: float | None = None  # monotonic; None: until up()
        self._retry_after: int | None = None
        self._flaky_every = 0
        self._flaky_status = 503
        self._flaky_count = 0
        self._failures: list[_Failure] = []
        self._delay = 0.0
        # state
        self._in_flight: set[str] = set()
        self.bookings: dict[str, Booking] = {}  # idempotency key -> booking
        self.handovers: dict[str, Booking] = {}  # "<message id>.<kind>" -> booked message
        # Case and handover requests per key, failed ones too.
        self.requests_by_key: Counter[str] = Counter()
        # (key, status) of every case and handover request.
        self.statuses: list[tuple[str | None, int]] = []
        self.case_requests = 0
        self.handover_requests = 0
        self.health_requests = 0

    def __repr__(self) -> str:
        return f"VendorSimulator(url={self.url if self._port else None!r})"

    # --- failure modes -------------------------------------------------------------------------

    def down(self, mode: DownMode = "503", *, retry_after: int | None = None) -> None:
        """Fail every request until :meth:`up`: ``503`` (with ``Retry-After``) or a cut connection."""
        with self._lock:
            self._down, self._down_until, self._retry_after = mode, None, retry_after

    def outage(
        self, seconds: float, mode: DownMode = "503", *, retry_after: int | None = None
    ) -> None:
        """:meth:`down` for ``seconds``; ``Retry-After`` defaults to the time left (rounded up)."""
        with self._lock:
            self._down, self._retry_after = mode, retry_after
            self._down_until = time.monotonic() + seconds

    def up(self) -> None:
        """End :meth:`down` or :meth:`outage`."""
        with self._lock:
            self._down = self._down_until = self._retry_after = None

    def heal(self) -> None:
        """End every failure mode: outage, :meth:`flaky`, :meth:`slow` and pending failures."""
        with self._lock:
            self._down = self._down_until = self._retry_after = None
            self._flaky_every = self._flaky_count = 0
            self._failures.clear()
            self._delay = 0.0

    def flaky(self, every_nth: int = 3, *, status: int = 503) -> None:
        """From now on every ``every_nth`` case request (the n-th, 2n-th, …) fails with ``status``."""
        if every_nth < 1:
            raise ValueError("every_nth must be at least 1")
        with self._lock:
            self._flaky_every, self._flaky_status, self._flaky_count = every_nth, status, 0

    def fail_next(
        self,
        times: int = 1,
        *,
        status: int = 503,
        mode: FailMode = "status",
        retry_after: str | None = None,
    ) -> None:
        """The next ``times`` case requests fail.

        ``status``: answer ``status`` (with ``Retry-After: retry_after``) without
        booking. ``drop``: cut the connection without booking. ``lose_answer``:
        book the case, then cut the connection (the client must retry and gets
        the replay).
        """
        with self._lock:
            self._failures.extend([_Failure(mode, status, retry_after)] * times)

    def slow(self, seconds: float) -> None:
        """Answer every case request ``seconds`` late (``0`` ends it); the case is booked anyway."""
        with self._lock:
            self._delay = max(0.0, seconds)

    # --- what happened -------------------------------------------------------------------------

    def booked_twice(self) -> list[str]:
        """SHA-256 digests of bodies booked under more than one idempotency key (should be none).

        Cases and handover messages alike.
        """
        with self._lock:
            every = [*self.bookings.values(), *self.handovers.values()]
        counts = Counter(b.body_sha256 for b in every)
        return sorted(digest for digest, count in counts.items() if count > 1)

    def booking(self, key: str) -> Booking | None:
        with self._lock:
            return self.bookings.get(key)

    def handover(self, key: str) -> Booking | None:
        """The booked message under this key (``<message id>.<kind>``), if any."""
        with self._lock:
            return self.handovers.get(key)

    def snapshot(self) -> dict[str, Any]:
        """Counts for a summary: case requests, bookings, replays, bodies booked twice."""
        with self._lock:
            bookings = list(self.bookings.values())
            requests = self.case_requests
        return {
            "requests": requests,
            "bookings": len(bookings),
            "replays": sum(b.replays for b in bookings),
            "booked_twice": self.booked_twice(),
        }

    def handover_snapshot(self) -> dict[str, Any]:
        """Counts of forwarded handover messages: requests, booked messages, replays."""
        with self._lock:
            handovers = list(self.handovers.values())
            requests = self.handover_requests
        return {
            "requests": requests,
            "handovers": len(handovers),
            "replays": sum(b.replays for b in handovers),
            "booked_twice": self.booked_twice(),
        }

    # --- server --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:40123``."""
        if self._port is None:
            raise RuntimeError("the simulator is not running")
        scheme = "http" if self._ssl is None else "https"
        return f"{scheme}://{self._host}:{self._port}"

    @property
    def url_template(self) -> str:
        """The endpoint URL with ``{office}`` left in, as :class:`connectors.http.HttpEndpoint` takes it."""
        return self.url + self.path

    @property
    def handover_url_template(self) -> str:
        """The handover endpoint URL with ``{office}`` left in (what the hub derives from
        :attr:`url_template`)."""
        return self.url + self.handover_path

    @property
    def health_url(self) -> str:
        return self.url + HEALTH_PATH

    def app(self) -> web.Application:
        # The body is read by the handler with its own limit (413), not by aiohttp's.
        app = web.Application(
            client_max_size=self._max_request_bytes + 1, middlewares=[self._outage_gate]
        )
        app.router.add_post(self.path, self._case, name="case")
        app.router.add_post(self.handover_path, self._handover, name="handover")
        app.router.add_get(HEALTH_PATH, self._health, name="health")
        return app

    async def start(self, port: int = 0) -> str:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self._host, port, ssl_context=self._ssl)
        await site.start()
        self._runner = runner
        self._port = runner.addresses[0][1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._port = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    # --- handlers ------------------------------------------------------------------------------

    def _outage(self) -> tuple[DownMode, int | None] | None:
        """The current outage mode and its ``Retry-After`` seconds, if down."""
        with self._lock:
            if self._down is None:
                return None
            if self._down_until is None:
                return self._down, self._retry_after
            left = self._down_until - time.monotonic()
            if left <= 0:
                self._down = self._down_until = self._retry_after = None
                return None
            retry_after = self._retry_after if self._retry_after is not None else math.ceil(left)
            return self._down, retry_after

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.abort()
        return web.Response(status=500)  # never sent: the connection is gone

    def _unavailable(self, request: web.Request) -> web.Response | None:
        outage = self._outage()
        if outage is None:
            return None
        mode, retry_after = outage
        if mode == "drop":
            return self._drop(request)
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        return web.Response(status=503, headers=headers)

    @web.middleware
    async def _outage_gate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Count the request, then answer every path (``/`` too) as the outage says."""
        route = request.match_info.route.name
        key: str | None = None
        with self._lock:
            if route in _BOOKING_ROUTES:
                header = request.headers.get("Idempotency-Key")
                match = _KEY.fullmatch(header) if header is not None else None
                key = match.group(1) if match else None
                if route == "case":
                    self.case_requests += 1
                else:
                    self.handover_requests += 1
                if key is not None:
                    self.requests_by_key[key] += 1
            elif route == "health":
                self.health_requests += 1
        request[_KEY_SLOT] = key or ""
        response = self._unavailable(request) or await handler(request)
        if route in _BOOKING_ROUTES:
            with self._lock:
                self.statuses.append((key, response.status))
        return response

    async def _health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "up"})

    def _injected(self) -> _Failure | None:
        with self._lock:
            if self._failures:
                return self._failures.pop(0)
            if self._flaky_every:
                self._flaky_count += 1
                if self._flaky_count % self._flaky_every == 0:
                    return _Failure("status", self._flaky_status)
            return None

    async def _case(self, request: web.Request) -> web.Response:
        return await self._receive(request, handover=False)

    async def _handover(self, request: web.Request) -> web.Response:
        """A forwarded Rechtskreiswechsel message: booked once per message id and kind."""
        return await self._receive(request, handover=True)

    async def _receive(self, request: web.Request, *, handover: bool) -> web.Response:
        """Authorisation, injected failures and checks, then the booking (a case or a handover)."""
        key = request[_KEY_SLOT] or None
        if (unauthorized := self._unauthorized(request)) is not None:
            return unauthorized
        failure = self._injected()
        if failure is not None and failure.mode != "lose_answer":
            return self._fail(request, failure)
        checked = await self._checked(request, key)
        if isinstance(checked, web.Response):
            return checked
        key, office, body = checked
        if handover and not _is_handover(body, key, office):
            return web.json_response({"title": "The handover message is not valid"}, status=422)
        response = await self._book(request, key, office, body, handover=handover)
        if failure is not None:  # lose_answer: booked (or replayed), but the client never hears
            return self._drop(request)
        return response

    def _unauthorized(self, request: web.Request) -> web.Response | None:
        if self._token is None:
            return None
        if request.headers.get("Authorization") == f"Bearer {self._token}":
            return None
        return web.Response(status=401)

    def _fail(self, request: web.Request, failure: _Failure) -> web.Response:
        if failure.mode == "drop":
            return self._drop(request)
        headers = {} if failure.retry_after is None else {"Retry-After": failure.retry_after}
        return web.Response(status=failure.status, headers=headers)

    async def _checked(
        self, request: web.Request, key: str | None
    ) -> tuple[str, str, bytes] | web.Response:
        """(key, office, body) of an acceptable request, or the answer that refuses it."""
        if key is None:
            return web.json_response({"title": "Idempotency-Key is missing"}, status=400)
        if request.content_type != self._media_type:
            return web.Response(status=415)
        limit, size, chunks = self._max_request_bytes, 0, []
        while chunk := await request.content.read(min(1 << 16, limit + 1 - size)):
            size += len(chunk)
            if size > limit:
                return web.Response(status=413)
            chunks.append(chunk)
        body = b"".join(chunks)
        return key, request.match_info["office"], body

    async def _book(
        self, request: web.Request, key: str, office: str, body: bytes, *, handover: bool = False
    ) -> web.Response:
        digest = hashlib.sha256(body).hexdigest()
        ledger = self.handovers if handover else self.bookings
        with self._lock:
            if key in self._in_flight:
                return web.json_response(
                    {"title": "A request is outstanding for this Idempotency-Key"}, status=409
                )
            self._in_flight.add(key)
            delay = self._delay
        try:
            if delay:
                await asyncio.sleep(delay)
            with self._lock:
                existing = ledger.get(key)
                # A handover message is the same message under its key whatever the bytes.
                same = existing is not None and (handover or existing.body_sha256 == digest)
                if existing is not None and same:
                    existing.replays += 1
            if existing is not None:
                if not same:
                    return web.json_response(
                        {"title": "Idempotency-Key is already used"}, status=422
                    )
                return self._booked(existing, replayed=True)
            if not handover and self._validate is not None and not self._validate(body):
                return web.json_response({"title": "The case is not valid"}, status=422)
            with self._lock:
                prefix = f"{self._prefix}-H" if handover else f"{self._prefix}-"
                booking_id = f"{prefix}{len(ledger) + 1:06d}"
                booking = Booking(
                    key=key,
                    office=office,
                    booking_id=booking_id,
                    body_sha256=digest,
                    location=f"{request.path}/{booking_id}",
                )
                ledger[key] = booking
            return self._booked(booking, replayed=False)
        finally:
            with self._lock:
                self._in_flight.discard(key)

    @staticmethod
    def _booked(booking: Booking, *, replayed: bool) -> web.Response:
        headers = {"Location": booking.location}
        if replayed:
            headers[REPLAYED_HEADER] = "true"
        return web.json_response({"bookingId": booking.booking_id}, status=201, headers=headers)


def _is_handover(body: bytes, key: str, office: str) -> bool:
    """A Rechtskreiswechsel message record for ``office`` whose message id and kind are ``key``."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False
    return (
        isinstance(document, dict)
        and document.get("type") == MESSAGE_TYPE
        and f"{document.get('message_id')}.{document.get('kind')}" == key
        and document.get("office") == office
    )


class VendorSimulatorThread:
    """A :class:`VendorSimulator` in its own event loop thread, for synchronous code (the demo).

    Start with :meth:`start`, stop with :meth:`stop`; the failure modes and
    :meth:`snapshot` are thread-safe, so call them on :attr:`sim` directly.
    """

    def __init__(self, simulator: VendorSimulator) -> None:
        self.sim = simulator
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="vendor-sim", daemon=True
        )

    def _run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def start(self, port: int = 0) -> str:
        self._thread.start()
        return self._run(self.sim.start(port))

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self.sim.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def snapshot(self) -> dict[str, Any]:
        return self.sim.snapshot()
