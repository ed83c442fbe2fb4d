"""One vendor endpoint: POST each delivery as it is, retry what may succeed later, probe when down.

:meth:`HttpDeliverer.attempt` sends one request and classifies the answer with
:func:`hub.core.delivery.classify`; :meth:`HttpDeliverer.deliver` repeats
``TRANSIENT`` attempts with :func:`hub.core.delivery.next_delay` until the
retry budget is spent and returns an :class:`Outcome`. ``unavailable`` means
the endpoint cannot take deliveries now (budget spent, or an ``UNUSABLE``
answer such as 401): the caller pauses the partition, calls
:meth:`HttpDeliverer.wait_until_available` (or :meth:`HttpDeliverer.probe`
itself) and tries the same delivery again, dead-lettering it only after the
outage maximum. docs/delivery/http.md describes the contract.

The same client forwards Rechtskreiswechsel messages to vendors on the ``http``
channel (:class:`HandoverParcel`): the ``handovers.<vendor>`` record as it is,
to the vendor's handover endpoint (:func:`handover_url`), with the message id and
kind as ``Idempotency-Key``, under the same retry, probe and TLS rules.

Logs carry delivery ids, office and vendor ids, statuses, attempt numbers,
delays and exception type names: never bodies, URLs, tokens or response text.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog

from connectors.bodies import read_limited
from connectors.xta.poller import client_ssl_context
from hub import __version__
from hub.config import Secret
from hub.core.delivery import (
    OutagePolicy,
    RetryPolicy,
    Verdict,
    classify,
    next_delay,
    outage_exceeded,
    probe_delay,
    retry_after,
)
from hub.core.errors import Rejection
from hub.core.records import Delivery, is_id, unb64

log = structlog.get_logger(__name__)

OFFICE_ID = re.compile(r"[a-z][a-z0-9-]{1,62}")  # schemas/hub/offices.schema.json
VENDOR_ID = re.compile(r"[a-z][a-z0-9-]{1,30}")
USER_AGENT = f"sozialhub/{__version__}"
REPLAYED_HEADER = "Idempotent-Replayed"
MAPPING_VERSION_HEADER = "X-Sozialhub-Mapping-Version"

_PLACEHOLDER = "{office}"
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_TCHARS = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_MEDIA_TYPE = re.compile(
    rf"{_TCHARS}/{_TCHARS}(?:[ \t]*;[ \t]*{_TCHARS}=(?:{_TCHARS}|\"[^\"\\\x00-\x1f\x7f]*\"))*"
)
_MAPPING_VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}")  # e.g. fv-json/1.0.0
_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
_MESSAGE_ID = re.compile(r"rkm-[0-9a-f]{32}")  # a Rechtskreiswechsel message id
_KIND = re.compile(r"[a-z]{1,32}")  # a message kind: handover, notice, confirmation, information
HANDOVER_SEGMENT = "handovers"
HANDOVER_MEDIA_TYPE = "application/json"

OutcomeKind = Literal["delivered", "replayed", "refused", "unavailable"]
_KINDS: dict[Verdict, OutcomeKind] = {
    Verdict.DELIVERED: "delivered",
    Verdict.REPLAYED: "replayed",
    Verdict.REFUSED: "refused",
    Verdict.TRANSIENT: "unavailable",
    Verdict.UNUSABLE: "unavailable",
}


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    return parts.scheme, host, parts.port or _DEFAULT_PORTS.get(parts.scheme, 0)


def _check_url(url: str, name: str) -> None:
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{name} needs a host")
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
        raise ValueError(f"{name} must be https (plain http only on the loopback interface)")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{name} must not carry credentials")
    if parts.fragment:
        raise ValueError(f"{name} must not have a fragment")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError(f"{name} has an invalid port") from None


def handover_url(url: str) -> str:
    """The vendor's handover endpoint beside its case endpoint (docs/delivery.md#handover-forwarding).

    The last path segment of the URL template becomes ``handovers``:
    ``https://fv.example/api/v1/offices/{office}/cases`` ->
    ``https://fv.example/api/v1/offices/{office}/handovers``. When the last segment
    holds ``{office}`` (``https://fv.example/intake/{office}``), ``/handovers`` is
    appended instead, so the office stays in the path. Scheme, host, port and query
    are kept. Works on a bare path too (the simulator's route).
    """
    parts = urlsplit(url)
    path = parts.path.removesuffix("/")
    head, _, last = path.rpartition("/")
    beside = path if not last or _PLACEHOLDER in last else head
    path = f"{beside}/{HANDOVER_SEGMENT}"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


@dataclass(frozen=True)
class HttpEndpoint:
    """One vendor's endpoint. Secrets are :class:`~hub.config.Secret` (masked in reprs).

    ``url`` may contain ``{office}`` in its path or query; it is replaced by the
    delivery's office id (``^[a-z][a-z0-9-]{1,62}$``). Plain ``http`` is only
    allowed on the loopback interface. ``health_url`` (same origin) is what
    :meth:`HttpDeliverer.probe` asks; without it the probe sends ``HEAD`` to
    the origin's ``/``.
    """

    vendor: str
    url: str
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    client_cert: Path | None = None
    client_key: Path | None = None
    client_key_password: Secret | None = None
    ca_file: Path | None = None  # CA bundle for the vendor's server certificate (default: system)
    token: Secret | None = None  # bearer token, sent as ``Authorization: Bearer …``
    verify_tls: bool = True
    health_url: str | None = None
    max_response_bytes: int = 64 * 1024
    max_connections: int = 4
    reference_field: str | None = "bookingId"  # JSON member naming the vendor's booking

    def __post_init__(self) -> None:
        if VENDOR_ID.fullmatch(self.vendor) is None:
            raise ValueError("vendor is not a valid vendor id")
        rest = self.url.replace(_PLACEHOLDER, "")
        if "{" in rest or "}" in rest:
            raise ValueError("url may contain no placeholder but {office}")
        if "{" in urlsplit(self.url).netloc:
            raise ValueError("{office} may only appear in the url's path or query")
        _check_url(self.url.replace(_PLACEHOLDER, "office"), "url")
        if self.health_url is not None:
            _check_url(self.health_url, "health_url")
            if _origin(self.health_url) != _origin(self.url):
                raise ValueError("health_url must have the same origin as url")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("client_key needs client_cert")
        if not self.timeout > 0 or self.max_response_bytes <= 0 or self.max_connections < 1:
            raise ValueError("timeout, max_response_bytes and max_connections must be positive")

    @property
    def https(self) -> bool:
        return urlsplit(self.url).scheme == "https"

    def for_handovers(self) -> HttpEndpoint:
        """The same endpoint (origin, TLS, credentials, timings) at :func:`handover_url`."""
        return replace(self, url=handover_url(self.url))

    def url_for(self, office: str) -> str:
        """The endpoint URL for ``office``; ``ValueError`` for an id that could leave the path."""
        if OFFICE_ID.fullmatch(office) is None:
            raise ValueError("office is not a valid office id")
        url = self.url.replace(_PLACEHOLDER, office)
        if _origin(url) != _origin(self.url.replace(_PLACEHOLDER, "office")):
            raise ValueError("office changes the url's origin")
        return url

    def probe_url(self) -> str:
        if self.health_url is not None:
            return self.health_url
        scheme, _, _ = _origin(self.url)
        return f"{scheme}://{urlsplit(self.url).netloc}/"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (reads the certificate files): TLS 1.2+, client certificate if any."""
        if not self.https:
            return None
        password = self.client_key_password
        context = client_ssl_context(
            ca_file=self.ca_file,
            cert_file=self.client_cert,
            key_file=self.client_key,
            key_password=password.reveal() if password is not None else None,
        )
        if not self.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """One request: the verdict, the status (``None`` without an answer) and what came with it.

    ``error`` is an exception type name (transport error) or the delivery field
    that made the request impossible (then the verdict is ``REFUSED`` and no
    request was sent).
    """

    verdict: Verdict
    status: int | None = None
    retry_after_s: float | None = None
    vendor_reference: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class HandoverParcel:
    """A Rechtskreiswechsel message for the vendor's handover endpoint.

    ``body`` is the ``handovers.<vendor>`` record exactly as it was read; it is
    POSTed as ``application/json`` with ``Idempotency-Key: "<message id>.<kind>"``
    to the endpoint's URL for ``office``: the vendor takes each pair of message id
    and kind once, and another kind supersedes. The caller has checked that the
    record is a message for one of ``vendor``'s offices (``hub.core.handover_forward``).
    """

    message_id: str
    kind: str
    office: str
    vendor: str
    body: bytes = field(repr=False)

    @property
    def idempotency_key(self) -> str:
        return f"{self.message_id}.{self.kind}"


Parcel = Delivery | HandoverParcel  # what HttpDeliverer sends


def parcel_id(parcel: Parcel) -> str:
    """The parcel's idempotency key: the delivery id, or a handover's message id and kind."""
    return parcel.delivery_id if isinstance(parcel, Delivery) else parcel.idempotency_key


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """What :meth:`HttpDeliverer.deliver` reports before it waits for the next attempt."""

    delivery_id: str  # the parcel's key: a delivery id, or a handover's ``<message id>.<kind>``
    attempt: int  # the attempt that failed, 1-based
    status: int | None
    error: str | None
    delay_s: float


OnRetry = Callable[[RetryEvent], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How :meth:`HttpDeliverer.deliver` ended.

    ``delivered``/``replayed``: the vendor has the case (audit ``delivered``, or
    ``duplicate`` for a replay). ``refused``: dead letter (reason ``DELIVERY``,
    path :attr:`path`). ``unavailable``: pause and probe, then try again.
    """

    kind: OutcomeKind
    verdict: Verdict  # of the last attempt
    status: int | None
    attempts: int
    vendor_reference: str | None = None
    error: str | None = None
    waited_s: float = 0.0

    @property
    def path(self) -> str:
        """A dead-letter path: ``http/<status>``, ``http/unavailable`` or ``delivery/<field>``."""
        if self.kind == "unavailable":
            return "http/unavailable"
        if self.status is not None:
            return f"http/{self.status}"
        return f"delivery/{self.error or 'unknown'}"


@dataclass(frozen=True, slots=True)
class _Request:
    url: str
    body: bytes
    headers: dict[str, str]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _log_ids(parcel: Parcel) -> dict[str, str]:
    """The parcel's ids for a log line; a malformed one (record content) is not repeated."""

    def checked(value: str, ok: bool) -> str:  # noqa: FBT001
        return value if ok else "invalid"

    if isinstance(parcel, Delivery):
        did = parcel.delivery_id
        named = {"delivery_id": checked(did, is_id(did) and did.startswith("dlv-"))}
    else:
        mid = parcel.message_id
        named = {"message_id": checked(mid, _MESSAGE_ID.fullmatch(mid) is not None)}
    return {
        **named,
        "office": checked(parcel.office, OFFICE_ID.fullmatch(parcel.office) is not None),
        "vendor": checked(parcel.vendor, VENDOR_ID.fullmatch(parcel.vendor) is not None),
    }


class HttpDeliverer:
    """Delivers to one :class:`HttpEndpoint` over one session: ``async with HttpDeliverer(…) as d``.

    ``sleep`` and ``monotonic`` are injectable so tests do not wait; ``now``
    (aware UTC) dates ``Retry-After``. The TLS context is built here, once.
    """

    def __init__(
        self,
        endpoint: HttpEndpoint,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _utc_now,
    ) -> None:
        self.endpoint = endpoint
        self._sleep = sleep
        self._monotonic = monotonic
        self._now = now
        self._ssl = endpoint.ssl_context()
        self._session: aiohttp.ClientSession | None = None
        self._probes = 0  # probes since the last outcome that was not ``unavailable``
        if endpoint.https and not endpoint.verify_tls:
            log.warning("http.tls_verification_disabled", vendor=endpoint.vendor)

    def __repr__(self) -> str:
        return f"HttpDeliverer(vendor={self.endpoint.vendor!r})"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        self._open()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            ssl_option: ssl.SSLContext | bool = True if self._ssl is None else self._ssl
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ssl_option, limit=self.endpoint.max_connections),
                timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout),
                auto_decompress=False,
                trust_env=False,
            )
        return self._session

    def _auth(self) -> dict[str, str]:
        token = self.endpoint.token
        return {} if token is None else {"Authorization": f"Bearer {token.reveal()}"}

    def _request(self, parcel: Parcel) -> _Request | str:
        """The request for ``parcel``, or the name of the field that makes it impossible."""
        if isinstance(parcel, HandoverParcel):
            return self._handover_request(parcel)
        delivery = parcel
        checks = (
            ("vendor", delivery.vendor == self.endpoint.vendor),
            ("delivery_id", is_id(delivery.delivery_id) and delivery.delivery_id[:4] == "dlv-"),
            ("mapping_version", _MAPPING_VERSION.fullmatch(delivery.mapping_version) is not None),
            ("media_type", _MEDIA_TYPE.fullmatch(delivery.media_type) is not None),
        )
        invalid = next((name for name, ok in checks if not ok), None)
        if invalid is not None:
            return invalid
        try:
            url = self.endpoint.url_for(delivery.office)
        except ValueError:
            return "office"
        try:
            body = unb64(delivery.body_b64)
        except Rejection:
            return "body_b64"
        headers = {
            "Content-Type": delivery.media_type,
            # An RFC 8941 sf-string (draft-ietf-httpapi-idempotency-key-header); the id is hex.
            "Idempotency-Key": f'"{delivery.delivery_id}"',
            MAPPING_VERSION_HEADER: delivery.mapping_version,
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **self._auth(),
        }
        return _Request(url, body, headers)

    def _handover_request(self, parcel: HandoverParcel) -> _Request | str:
        """A handover: the record's bytes as they are, keyed by message id and kind."""
        if parcel.vendor != self.endpoint.vendor:
            return "vendor"
        if _MESSAGE_ID.fullmatch(parcel.message_id) is None:
            return "message_id"
        if _KIND.fullmatch(parcel.kind) is None:
            return "kind"
        try:
            url = self.endpoint.url_for(parcel.office)
        except ValueError:
            return "office"
        headers = {
            "Content-Type": HANDOVER_MEDIA_TYPE,
            "Idempotency-Key": f'"{parcel.idempotency_key}"',
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            **self._auth(),
        }
        return _Request(url, parcel.body, headers)

    async def attempt(self, delivery: Parcel) -> AttemptResult:
        """One POST of the parcel's body; never raises for what the endpoint or network does."""
        request = self._request(delivery)
        if isinstance(request, str):
            return AttemptResult(Verdict.REFUSED, error=request)
        session = self._open()
        body: bytes | None = None
        try:
            async with session.post(
                request.url, data=request.body, headers=request.headers, allow_redirects=False
            ) as response:
                status = response.status
                replayed = response.headers.get(REPLAYED_HEADER, "").strip().lower() == "true"
                wait = retry_after(response.headers.get("Retry-After"), self._now())
                location = response.headers.get("Location")
                try:
                    body = await read_limited(response.content, self.endpoint.max_response_bytes)
                except (aiohttp.ClientError, TimeoutError, OSError):
                    body = None  # the status stands; the body only names the booking
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return AttemptResult(classify(None, transport_error=True), error=type(exc).__name__)
        verdict = classify(status, transport_error=False, replayed=replayed)
        reference = None
        if verdict in (Verdict.DELIVERED, Verdict.REPLAYED):
            reference = self._reference(location, body)
        return AttemptResult(verdict, status, wait, reference)

    def _reference(self, location: str | None, body: bytes | None) -> str | None:
        """The vendor's booking id: ``reference_field`` of a JSON body, else ``Location``'s last segment."""
        name = self.endpoint.reference_field
        if name is not None and body:
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            value = document.get(name) if isinstance(document, dict) else None
            if isinstance(value, str) and _REFERENCE.fullmatch(value):
                return value
        if location:
            segment = urlsplit(location).path.rstrip("/").rpartition("/")[2]
            if _REFERENCE.fullmatch(segment):
                return segment
        return None

    async def deliver(self, delivery: Parcel, *, on_retry: OnRetry | None = None) -> Outcome:
        """Attempt, and retry ``TRANSIENT`` answers with backoff up to ``retry.max_attempts``.

        ``delivery`` is a :class:`~hub.core.records.Delivery` or a :class:`HandoverParcel`.
        ``on_retry`` is awaited after each failed attempt that will be retried,
        before the wait (e.g. to write a ``retried`` audit event).
        """
        policy = self.endpoint.retry
        context = _log_ids(delivery)
        key = parcel_id(delivery)
        attempts, waited = 0, 0.0
        while True:
            attempts += 1
            result = await self.attempt(delivery)
            if result.verdict is not Verdict.TRANSIENT or attempts >= policy.max_attempts:
                break
            delay = next_delay(policy, attempts, key, result.retry_after_s)
            log.warning(
                "http.retry",
                **context,
                attempt=attempts,
                status=result.status,
                error=result.error,
                delay_s=round(delay, 3),
            )
            if on_retry is not None:
                await on_retry(RetryEvent(key, attempts, result.status, result.error, delay))
            await self._sleep(delay)
            waited += delay
        outcome = Outcome(
            kind=_KINDS[result.verdict],
            verdict=result.verdict,
            status=result.status,
            attempts=attempts,
            vendor_reference=result.vendor_reference,
            error=result.error,
            waited_s=waited,
        )
        if outcome.kind != "unavailable":
            self._probes = 0
        level = log.info if outcome.kind in ("delivered", "replayed") else log.warning
        level(
            f"http.{outcome.kind}",
            **context,
            status=outcome.status,
            attempts=attempts,
            verdict=outcome.verdict.value,
            error=outcome.error,
        )
        return outcome

    async def probe(self) -> bool:
        """Whether the endpoint answers usefully now.

        With ``health_url``: ``GET`` it, up on a 2xx. Without: ``HEAD`` on the
        origin's ``/``, up on any answer that is neither ``TRANSIENT`` nor
        ``UNUSABLE`` (a 404 or 405 still shows a server that takes requests).
        Both carry the bearer token, so a revoked token keeps the probe down.
        """
        health = self.endpoint.health_url is not None
        session = self._open()
        headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity", **self._auth()}
        status: int | None = None
        try:
            method = session.get if health else session.head
            async with method(
                self.endpoint.probe_url(), headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                await read_limited(response.content, self.endpoint.max_response_bytes)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.info("http.probe", vendor=self.endpoint.vendor, up=False, error=type(exc).__name__)
            return False
        if health:
            up = 200 <= status <= 299
        else:
            up = classify(status, transport_error=False) not in (
                Verdict.TRANSIENT,
                Verdict.UNUSABLE,
            )
        log.info("http.probe", vendor=self.endpoint.vendor, up=up, status=status)
        return up

    def clock(self) -> float:
        """The monotonic clock this deliverer measures outages with."""
        return self._monotonic()

    async def wait_until_available(self, outage: OutagePolicy, *, since: float) -> bool:
        """Probe with growing pauses until the endpoint is up (``True``) or the outage is too long.

        ``since`` is :meth:`clock` at the start of the outage (the first
        ``unavailable`` outcome). ``False`` means ``outage.max_outage_s`` has
        passed: dead-letter the waiting delivery. Cancel the task to stop early.

        The pauses keep growing across calls until :meth:`deliver` ends with
        anything but ``unavailable``: an endpoint whose probe answers but whose
        deliveries do not (e.g. 401 on the case path only) is not asked every
        ``probe_initial_s``.
        """
        probes = 0
        while True:
            elapsed = self._monotonic() - since
            if outage_exceeded(outage, elapsed):
                log.error(
                    "http.outage_exceeded",
                    vendor=self.endpoint.vendor,
                    outage_s=round(elapsed, 1),
                    probes=probes,
                )
                return False
            probes += 1
            self._probes += 1
            pause = probe_delay(outage, self._probes)
            delay = min(pause, max(outage.max_outage_s - elapsed, 0.0))
            await self._sleep(delay)
            if await self.probe():
                log.info("http.endpoint_available", vendor=self.endpoint.vendor, probes=probes)
                return True
