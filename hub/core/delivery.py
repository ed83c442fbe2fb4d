"""Delivery policy for push channels (HTTP): what a vendor's answer means, and when to try again.

Pure: no I/O, no clock (callers pass ``now``), no randomness. The HTTP
connector (:mod:`connectors.http`) applies it; docs/delivery/http.md explains it.

:func:`classify` turns one attempt's result into a :class:`Verdict`:

======================================================  ==============  =========================
answer                                                  verdict         what the connector does
======================================================  ==============  =========================
2xx with ``Idempotent-Replayed: true``                  ``REPLAYED``    done (booked earlier)
other 2xx                                               ``DELIVERED``   done
408, 409, 421, 425, 429, 5xx except 501/505,            ``TRANSIENT``   retry with backoff, then
transport error (refused, reset, timeout, TLS), 1xx                     ``unavailable``
3xx, 401, 403, 407, 501, 505                            ``UNUSABLE``    ``unavailable`` at once
every other 4xx (400, 404, 405, 410, 413, 415, 422 …)   ``REFUSED``     dead letter, no retry
======================================================  ==============  =========================

- ``UNUSABLE`` is a problem of the endpoint or of the hub's configuration
  (credentials, client certificate, a moved URL; redirects are not followed),
  not of the case: every other delivery would fail the same way, so the
  connector reports ``unavailable`` and the caller pauses the partition
  instead of dead-lettering every case.
- 409 is ``TRANSIENT``: draft-ietf-httpapi-idempotency-key-header answers 409
  while a request with the same key is still being processed (e.g. the first
  attempt timed out on the hub's side); such a retry needs no correction. A
  key reused with a *different* body is 422 there, which is ``REFUSED``.
- 404, 405 and 410 are ``REFUSED``: with an ``{office}`` URL template they are
  how a vendor says it does not know that office; the dead letter names the
  status and can be retried (``sozialhub dlq retry``) after the fix.

:func:`backoff` is exponential with "equal jitter": attempt ``n`` waits between
half and all of ``min(max_s, initial_s * multiplier ** (n - 1))``. The jitter is
a hash of the delivery id and the attempt number, so a replayed run waits the
same and deliveries that failed together spread out. :func:`retry_after` parses
a ``Retry-After`` field (delta-seconds or an HTTP-date); :func:`next_delay`
waits at least that long, but never longer than ``max_s``.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import math
import re
from dataclasses import dataclass


class Verdict(enum.StrEnum):
    DELIVERED = "delivered"  # the vendor booked the case now
    REPLAYED = "replayed"  # the vendor had this idempotency key already and repeats its result
    REFUSED = "refused"  # permanent for this delivery: dead letter, no retry
    TRANSIENT = "transient"  # may succeed later: retry with backoff
    UNUSABLE = "unusable"  # the endpoint cannot be used now (auth, TLS identity, moved): pause


_UNUSABLE_4XX = frozenset({401, 403, 407})
_TRANSIENT_4XX = frozenset({408, 409, 421, 425, 429})
_UNUSABLE_5XX = frozenset({501, 505})


def classify(status: int | None, *, transport_error: bool, replayed: bool = False) -> Verdict:
    """The verdict on one attempt: ``status`` of the final response, or a transport error.

    ``replayed`` is true when the response carried ``Idempotent-Replayed: true``;
    it only matters for a 2xx. A status outside 100..599 is a broken answer and
    is ``TRANSIENT``.
    """
    if transport_error:
        return Verdict.TRANSIENT
    if status is None:
        raise ValueError("a status is needed unless there was a transport error")
    if 200 <= status <= 299:
        return Verdict.REPLAYED if replayed else Verdict.DELIVERED
    if 300 <= status <= 399 or status in _UNUSABLE_4XX or status in _UNUSABLE_5XX:
        return Verdict.UNUSABLE
    if 400 <= status <= 499 and status not in _TRANSIENT_4XX:
        return Verdict.REFUSED
    return Verdict.TRANSIENT


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """At most ``max_attempts`` tries of one delivery; waits from ``initial_s`` growing to ``max_s``."""

    max_attempts: int = 5
    initial_s: float = 1.0
    max_s: float = 60.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        values = (self.initial_s, self.max_s, self.multiplier)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("retry timings must be finite")
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError("need 0 < initial_s <= max_s")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")


def backoff_cap(policy: RetryPolicy, attempt: int) -> float:
    """The upper bound of the wait after failed attempt ``attempt`` (1-based); never above ``max_s``."""
    if attempt < 1:
        raise ValueError("attempts count from 1")
    exponent = attempt - 1
    if exponent == 0 or policy.multiplier == 1:
        return min(policy.initial_s, policy.max_s)
    # Compare exponents instead of computing multiplier ** exponent, which overflows.
    room = math.log(policy.max_s / policy.initial_s) / math.log(policy.multiplier)
    if exponent >= room:
        return policy.max_s
    return min(policy.max_s, policy.initial_s * policy.multiplier**exponent)


def _unit(delivery_id: str, attempt: int) -> float:
    """A number in [0, 1) that depends only on the delivery id and the attempt."""
    digest = hashlib.sha256(f"{delivery_id}\x1f{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def backoff(policy: RetryPolicy, attempt: int, delivery_id: str) -> float:
    """The wait after failed attempt ``attempt``: in ``[cap / 2, cap)``, the same for the same inputs."""
    cap = backoff_cap(policy, attempt)
    return cap / 2 + (cap / 2) * _unit(delivery_id, attempt)


def next_delay(
    policy: RetryPolicy, attempt: int, delivery_id: str, retry_after_s: float | None = None
) -> float:
    """:func:`backoff`, or the vendor's ``Retry-After`` if that is longer; at most ``max_s``."""
    delay = backoff(policy, attempt, delivery_id)
    if retry_after_s is not None and retry_after_s > delay:
        delay = retry_after_s
    return min(delay, policy.max_s)


_DELTA_SECONDS = re.compile(r"[0-9]{1,18}")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_TIME = r"(?P<h>[0-9]{2}):(?P<mi>[0-9]{2}):(?P<s>[0-9]{2})"
_MONTH = r"(?P<mo>[A-Za-z]{3})"
_HTTP_DATES = (
    # IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    re.compile(
        rf"[A-Za-z]{{3}}, (?P<d>[0-9]{{2}}) {_MONTH} (?P<y>[0-9]{{4}}) {_TIME} GMT",
    ),
    # obsolete RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    re.compile(rf"[A-Za-z]{{6,9}}, (?P<d>[0-9]{{2}})-{_MONTH}-(?P<y>[0-9]{{2}}) {_TIME} GMT"),
    # obsolete asctime: Sun Nov  6 08:49:37 1994
    re.compile(rf"[A-Za-z]{{3}} {_MONTH} (?P<d>[ 0-9][0-9]) {_TIME} (?P<y>[0-9]{{4}})"),
)
_MAX_RETRY_AFTER = 10.0**9  # seconds; longer is "very long" and gets capped by the policy anyway


def _http_date(value: str, now: dt.datetime) -> dt.datetime | None:
    for pattern in _HTTP_DATES:
        match = pattern.fullmatch(value)
        if match is None:
            continue
        month = _MONTHS.get(match["mo"].lower())
        if month is None:
            return None
        year = int(match["y"])
        if len(match["y"]) == 2:
            # RFC 9110 5.6.7: a two-digit year more than 50 years in the future is in the past.
            year += 100 * (now.year // 100)
            if year > now.year + 50:
                year -= 100
        try:
            return dt.datetime(
                year,
                month,
                int(match["d"]),
                int(match["h"]),
                int(match["mi"]),
                int(match["s"]),
                tzinfo=dt.UTC,
            )
        except ValueError:
            return None
    return None


def retry_after(value: str | None, now: dt.datetime) -> float | None:
    """Seconds to wait according to a ``Retry-After`` field value; ``None`` if absent or malformed.

    ``now`` must be timezone-aware. A date in the past is 0 seconds.
    """
    if value is None:
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return min(float(int(text)), _MAX_RETRY_AFTER)
    moment = _http_date(text, now)
    if moment is None:
        return None
    seconds = (moment - now).total_seconds()
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


@dataclass(frozen=True, slots=True)
class OutagePolicy:
    """While an endpoint is unavailable: probe with growing pauses, give up after ``max_outage_s``.

    ``max_outage_s`` must stay well below the retention of the vendor topic
    (30 days in topics.yml): a paused partition must not lose records to
    retention before it resumes.
    """

    probe_initial_s: float = 5.0
    probe_max_s: float = 300.0
    max_outage_s: float = 72 * 3600.0

    def __post_init__(self) -> None:
        values = (self.probe_initial_s, self.probe_max_s, self.max_outage_s)
        if not all(math.isfinite(v) for v in values):
            raise ValueError("outage timings must be finite")
        if not 0 < self.probe_initial_s <= self.probe_max_s:
            raise ValueError("need 0 < probe_initial_s <= probe_max_s")
        if self.max_outage_s <= 0:
            raise ValueError("max_outage_s must be positive")


def probe_delay(policy: OutagePolicy, probe: int) -> float:
    """The pause before probe number ``probe`` (1-based): doubling from ``probe_initial_s``, capped."""
    retry = RetryPolicy(
        max_attempts=1, initial_s=policy.probe_initial_s, max_s=policy.probe_max_s, multiplier=2.0
    )
    return backoff_cap(retry, probe)


def outage_exceeded(policy: OutagePolicy, outage_s: float) -> bool:
    """Whether an outage of ``outage_s`` seconds is long enough to dead-letter the waiting delivery."""
    return outage_s >= policy.max_outage_s
