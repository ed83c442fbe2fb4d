"""The HTTP delivery channel: the pure policy (hub.core.delivery) and the connector against real loopback HTTP.

The connector talks to :class:`hub.sim.vendor.VendorSimulator` (or, to see the
exact request, a small capturing aiohttp server) over real sockets. Waits go
through an injected sleep that records them and advances a fake clock, so
nothing sleeps for long.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import example, given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from connectors.http import (
    USER_AGENT,
    HttpDeliverer,
    HttpEndpoint,
    OutagePolicy,
    Outcome,
    RetryEvent,
    RetryPolicy,
    Verdict,
)
from hub.config import Secret
from hub.core import delivery as policy
from hub.core.records import Delivery, b64, delivery_id
from hub.sim import pki
from hub.sim.vendor import VendorSimulator

pytestmark = pytest.mark.timeout(60)

OFFICE = "sozialamt-marl"
VENDOR = "oksozius"
SUBMISSION = "sub-" + "5" * 32
PERSONAL = "Erika Mustermann"
BODY = f'{{"antragsteller": {{"name": "{PERSONAL}"}}, "leistung": "hlu"}}'.encode()
TOKEN = "tok-3c1f9d7e-very-secret-bearer"  # noqa: S105 - a test value
NOW = dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=dt.UTC)
FAST = RetryPolicy(max_attempts=4, initial_s=0.5, max_s=30.0, multiplier=2.0)


def make_delivery(
    body: bytes = BODY,
    *,
    office: str = OFFICE,
    submission: str = SUBMISSION,
    mapping_version: str = "1",
    **changes: Any,
) -> Delivery:
    values: dict[str, Any] = {
        "delivery_id": delivery_id(submission, office, mapping_version),
        "submission_id": submission,
        "received_at": "2026-11-02T09:59:00.000Z",
        "office": office,
        "vendor": VENDOR,
        "format": "fv-json",
        "mapping_version": mapping_version,
        "media_type": "application/json",
        "file_suffix": ".json",
        "body_b64": b64(body),
    }
    return Delivery(**(values | changes))


class FakeTime:
    """An injectable sleep that only records and a monotonic clock that it advances."""

    def __init__(self, on_sleep: Callable[[int], None] | None = None) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self._on_sleep = on_sleep

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        if self._on_sleep is not None:
            self._on_sleep(len(self.waits))
        await asyncio.sleep(0)

    def monotonic(self) -> float:
        return self.now


def endpoint(sim: VendorSimulator, **changes: Any) -> HttpEndpoint:
    values: dict[str, Any] = {
        "vendor": VENDOR,
        "url": sim.url_template,
        "timeout": 5.0,
        "retry": FAST,
        "health_url": sim.health_url,
    }
    return HttpEndpoint(**(values | changes))


def run(scenario: Callable[[VendorSimulator], Awaitable[Any]], **sim_options: Any) -> Any:
    async def main() -> Any:
        async with VendorSimulator(**sim_options) as sim:
            return await scenario(sim)

    return asyncio.run(main())


def deliverer(sim: VendorSimulator, clock: FakeTime | None = None, **changes: Any) -> HttpDeliverer:
    clock = clock or FakeTime()
    return HttpDeliverer(
        endpoint(sim, **changes),
        sleep=clock.sleep,
        monotonic=clock.monotonic,
        now=lambda: NOW,
    )


def key_of(delivery: Delivery) -> str:
    return delivery.delivery_id


# --------------------------------------------------------------------------- pure policy


class TestClassify:
    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            (200, Verdict.DELIVERED),
            (201, Verdict.DELIVERED),
            (202, Verdict.DELIVERED),
            (204, Verdict.DELIVERED),
            (301, Verdict.UNUSABLE),
            (308, Verdict.UNUSABLE),
            (400, Verdict.REFUSED),
            (401, Verdict.UNUSABLE),
            (403, Verdict.UNUSABLE),
            (404, Verdict.REFUSED),
            (405, Verdict.REFUSED),
            (407, Verdict.UNUSABLE),
            (408, Verdict.TRANSIENT),
            (409, Verdict.TRANSIENT),
            (410, Verdict.REFUSED),
            (413, Verdict.REFUSED),
            (415, Verdict.REFUSED),
            (421, Verdict.TRANSIENT),
            (422, Verdict.REFUSED),
            (425, Verdict.TRANSIENT),
            (429, Verdict.TRANSIENT),
            (500, Verdict.TRANSIENT),
            (501, Verdict.UNUSABLE),
            (502, Verdict.TRANSIENT),
            (503, Verdict.TRANSIENT),
            (504, Verdict.TRANSIENT),
            (505, Verdict.UNUSABLE),
            (507, Verdict.TRANSIENT),
            (100, Verdict.TRANSIENT),
        ],
    )
    def test_table(self, status, expected):
        assert expected == policy.classify(status, transport_error=False)

    def test_transport_error_is_transient_whatever_the_status(self):
        assert Verdict.TRANSIENT == policy.classify(None, transport_error=True)
        assert Verdict.TRANSIENT == policy.classify(201, transport_error=True)

    def test_no_status_without_transport_error_is_a_programming_error(self):
        with pytest.raises(ValueError, match="status"):
            policy.classify(None, transport_error=False)

    @given(st.integers(200, 299))
    def test_replay_header_makes_a_2xx_replayed(self, status):
        assert Verdict.REPLAYED == policy.classify(status, transport_error=False, replayed=True)

    @given(st.integers(300, 599))
    def test_replay_header_does_not_change_a_failure(self, status):
        plain = policy.classify(status, transport_error=False)
        assert plain == policy.classify(status, transport_error=False, replayed=True)

    @given(st.integers(-(10**6), 10**6))
    def test_total_and_only_2xx_is_success(self, status):
        verdict = policy.classify(status, transport_error=False)
        assert (verdict is Verdict.DELIVERED) == (200 <= status <= 299)


ids = st.from_regex(r"dlv-[0-9a-f]{32}", fullmatch=True)


def _policy(initial: float, maximum: float, multiplier: float) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=5, initial_s=initial, max_s=max(initial, maximum), multiplier=multiplier
    )


class TestBackoff:
    @given(
        st.floats(0.001, 100.0),
        st.floats(0.001, 1e6),
        st.floats(1.0, 10.0),
        st.integers(1, 100_000),
        ids,
    )
    @example(1.0, 60.0, 2.0, 5000, "dlv-" + "0" * 32)  # multiplier ** 4999 would overflow
    def test_bounds(self, initial, maximum, multiplier, attempt, did):
        p = _policy(initial, maximum, multiplier)
        cap = policy.backoff_cap(p, attempt)
        delay = policy.backoff(p, attempt, did)
        assert 0 < cap <= p.max_s
        assert cap / 2 <= delay <= cap
        assert delay >= min(p.initial_s, p.max_s) / 2

    @given(
        st.floats(0.001, 100.0), st.floats(0.001, 1e6), st.floats(1.0, 10.0), st.integers(1, 500)
    )
    def test_caps_never_decrease_and_start_at_initial(self, initial, maximum, multiplier, attempt):
        p = _policy(initial, maximum, multiplier)
        assert p.initial_s == policy.backoff_cap(p, 1)
        assert policy.backoff_cap(p, attempt) <= policy.backoff_cap(p, attempt + 1)

    @given(st.floats(0.001, 10.0), st.floats(1.5, 4.0))
    def test_caps_reach_the_maximum(self, initial, multiplier):
        p = _policy(initial, initial * 1000, multiplier)
        assert p.max_s == policy.backoff_cap(p, 200)

    @given(ids, st.integers(1, 1000))
    def test_deterministic(self, did, attempt):
        assert policy.backoff(FAST, attempt, did) == policy.backoff(FAST, attempt, did)

    def test_jitter_spreads_deliveries_that_failed_together(self):
        delays = {
            policy.backoff(FAST, 3, delivery_id(SUBMISSION, f"office-{n}", "1")) for n in range(100)
        }
        assert len(delays) > 90

    def test_exponential_without_jitter_at_the_caps(self):
        p = RetryPolicy(max_attempts=9, initial_s=1.0, max_s=60.0, multiplier=2.0)
        assert [1, 2, 4, 8, 16, 32, 60, 60] == [policy.backoff_cap(p, n) for n in range(1, 9)]

    @given(ids, st.integers(1, 100), st.one_of(st.none(), st.floats(0, 1e9)))
    def test_next_delay_honours_retry_after_up_to_the_maximum(self, did, attempt, after):
        delay = policy.next_delay(FAST, attempt, did, after)
        assert delay <= FAST.max_s
        assert delay >= min(policy.backoff(FAST, attempt, did), FAST.max_s)
        if after is not None:
            assert delay >= min(after, FAST.max_s)

    @pytest.mark.parametrize(
        "changes",
        [
            {"max_attempts": 0},
            {"initial_s": 0},
            {"initial_s": 10, "max_s": 5},
            {"multiplier": 0.5},
            {"max_s": float("inf")},
            {"initial_s": float("nan")},
        ],
    )
    def test_invalid_policies(self, changes):
        with pytest.raises(ValueError):
            RetryPolicy(**changes)

    def test_attempts_count_from_one(self):
        with pytest.raises(ValueError, match="from 1"):
            policy.backoff(FAST, 0, "dlv-" + "0" * 32)


class TestRetryAfter:
    @given(st.integers(0, 10**9))
    def test_delta_seconds(self, seconds):
        assert float(seconds) == policy.retry_after(str(seconds), NOW)

    @given(st.integers(-(10**6), 10**7))
    def test_http_date(self, offset):
        moment = NOW + dt.timedelta(seconds=offset)
        value = email.utils.format_datetime(moment, usegmt=True)
        assert max(offset, 0) == policy.retry_after(value, NOW)

    def test_obsolete_date_formats(self):
        later = NOW + dt.timedelta(seconds=90)
        rfc850 = later.strftime("%A, %d-%b-%y %H:%M:%S GMT")
        asctime = later.strftime("%a %b %e %H:%M:%S %Y")
        assert 90.0 == policy.retry_after(rfc850, NOW)
        assert 90.0 == policy.retry_after(asctime, NOW)

    @pytest.mark.parametrize(
        "value",
        [
            None,
            "",
            "-5",
            "1.5",
            "soon",
            "Mon, 32 Nov 2026 10:00:00 GMT",
            "Mon, 02 Foo 2026 10:00:00 GMT",
            "Mon, 02 Nov 2026 10:00:00 CET",
            "9" * 40,
        ],
    )
    def test_malformed_is_none(self, value):
        assert policy.retry_after(value, NOW) is None

    @given(st.text(max_size=40))
    def test_never_negative_never_raises(self, value):
        result = policy.retry_after(value, NOW)
        assert result is None or 0 <= result <= 1e9


class TestOutagePolicy:
    def test_probe_delays_double_up_to_the_maximum(self):
        outage = OutagePolicy(probe_initial_s=5, probe_max_s=60, max_outage_s=3600)
        assert [5, 10, 20, 40, 60, 60] == [policy.probe_delay(outage, n) for n in range(1, 7)]

    def test_exceeded(self):
        outage = OutagePolicy(max_outage_s=100)
        assert not policy.outage_exceeded(outage, 99.9)
        assert policy.outage_exceeded(outage, 100)

    def test_default_stays_below_topic_retention(self):
        assert OutagePolicy().max_outage_s < 30 * 24 * 3600 / 2


# --------------------------------------------------------------------------- endpoint config


class TestEndpoint:
    def config(self, **changes: Any) -> HttpEndpoint:
        values: dict[str, Any] = {
            "vendor": VENDOR,
            "url": "https://fv.example/api/offices/{office}/cases",
            "token": Secret(TOKEN),
        }
        return HttpEndpoint(**(values | changes))

    def test_url_for_substitutes_the_office(self):
        assert "https://fv.example/api/offices/sozialamt-marl/cases" == self.config().url_for(
            OFFICE
        )

    @pytest.mark.parametrize(
        "office",
        [
            "../admin",
            "..",
            "a/b",
            "sozialamt/../x",
            "Sozialamt",
            "x",
            "a%2f",
            "a?x=1",
            "a#b",
            "a b",
            "a\r\nX: y",
            "-abc",
            "é-amt",
            "a" * 64,
            "a@evil.example",
            "",
        ],
    )
    def test_office_ids_that_could_leave_the_path_are_refused(self, office):
        with pytest.raises(ValueError, match="office"):
            self.config().url_for(office)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("http://fv.example/cases", "https"),
            ("ftp://127.0.0.1/cases", "https"),
            ("https://{office}.fv.example/cases", "path or query"),
            ("https://fv.example:{office}/cases", "path or query"),
            ("https://user:pw@fv.example/cases", "credentials"),
            ("https://fv.example/{office}/{vendor}", "placeholder"),
            ("https://fv.example/{office.__class__}", "placeholder"),
            ("https://fv.example/cases#x", "fragment"),
            ("https:///cases", "host"),
        ],
    )
    def test_invalid_urls(self, url, message):
        with pytest.raises(ValueError, match=message):
            self.config(url=url)

    def test_plain_http_on_loopback_is_allowed(self):
        assert not self.config(url="http://127.0.0.1:8080/{office}").https

    def test_health_url_must_share_the_origin(self):
        with pytest.raises(ValueError, match="origin"):
            self.config(health_url="https://elsewhere.example/health")
        with pytest.raises(ValueError, match="origin"):
            self.config(health_url="https://fv.example:8443/health")
        assert self.config(health_url="https://fv.example:443/health").health_url

    def test_invalid_vendor_and_key_without_cert(self):
        with pytest.raises(ValueError, match="vendor"):
            self.config(vendor="OK.SOZIUS")
        with pytest.raises(ValueError, match="client_cert"):
            self.config(client_key=Path("client.key"))

    def test_token_never_prints(self):
        config = self.config(client_key_password=Secret("key-password-value"))
        for text in (repr(config), str(config), repr(HttpDeliverer(config))):
            assert TOKEN not in text
            assert "key-password-value" not in text


# --------------------------------------------------------------------------- the connector


class TestDeliver:
    def test_delivered(self):
        async def scenario(sim: VendorSimulator) -> tuple[Outcome, Any]:
            async with deliverer(sim) as d:
                return await d.deliver(make_delivery()), sim.booking(make_delivery().delivery_id)

        outcome, booking = run(scenario)
        assert ("delivered", Verdict.DELIVERED, 201, 1) == (
            outcome.kind,
            outcome.verdict,
            outcome.status,
            outcome.attempts,
        )
        assert booking is not None
        assert booking.booking_id == outcome.vendor_reference
        assert (OFFICE, 1) == (booking.office, booking.booked)

    def test_replay_after_success_is_replayed_and_booked_once(self):
        async def scenario(sim: VendorSimulator) -> tuple[Outcome, Outcome, VendorSimulator]:
            async with deliverer(sim) as d:
                first = await d.deliver(make_delivery())
            async with deliverer(sim) as d:  # e.g. a worker restarted before the commit
                second = await d.deliver(make_delivery())
            return first, second, sim

        first, second, sim = run(scenario)
        booking = sim.booking(key_of(make_delivery()))
        assert ("delivered", "replayed") == (first.kind, second.kind)
        assert first.vendor_reference == second.vendor_reference
        assert (1, 1, 2) == (booking.booked, booking.replays, sim.requests_by_key[booking.key])
        assert [] == sim.booked_twice()

    def test_flaky_endpoint_retries_then_delivers(self):
        clock = FakeTime()
        events: list[RetryEvent] = []

        async def record(event: RetryEvent) -> None:
            events.append(event)

        async def scenario(sim: VendorSimulator) -> Outcome:
            sim.fail_next(2, status=503)
            async with deliverer(sim, clock) as d:
                return await d.deliver(make_delivery(), on_retry=record)

        outcome = run(scenario)
        did = make_delivery().delivery_id
        assert ("delivered", 3) == (outcome.kind, outcome.attempts)
        assert [1, 2] == [e.attempt for e in events]
        assert [503, 503] == [e.status for e in events]
        assert [policy.next_delay(FAST, n, did) for n in (1, 2)] == clock.waits
        assert [e.delay_s for e in events] == clock.waits
        assert outcome.waited_s == pytest.approx(sum(clock.waits))

    def test_every_nth_failing_loses_nothing_and_books_nothing_twice(self):
        async def scenario(sim: VendorSimulator) -> tuple[list[Outcome], VendorSimulator]:
            sim.flaky(every_nth=2, status=500)
            async with deliverer(sim) as d:
                outcomes = [
                    await d.deliver(make_delivery(BODY + str(n).encode(), office=f"amt-{n}"))
                    for n in range(12)
                ]
            return outcomes, sim

        outcomes, sim = run(scenario)
        assert {"delivered"} == {o.kind for o in outcomes}
        assert 12 == len(sim.bookings)
        assert {1} == {b.booked for b in sim.bookings.values()}
        assert [] == sim.booked_twice()

    def test_lost_answer_is_retried_and_replayed(self):
        async def scenario(sim: VendorSimulator) -> tuple[Outcome, VendorSimulator]:
            sim.fail_next(mode="lose_answer")  # booked, then the connection is cut
            async with deliverer(sim) as d:
                return await d.deliver(make_delivery()), sim

        outcome, sim = run(scenario)
        assert ("replayed", 2) == (outcome.kind, outcome.attempts)
        assert 1 == len(sim.bookings)
        assert [] == sim.booked_twice()

    def test_outage_longer_than_the_budget_then_up(self):
        clock = FakeTime()

        async def scenario(sim: VendorSimulator) -> tuple[Outcome, bool, bool, Outcome]:
            sim.down()
            async with deliverer(sim, clock) as d:
                unavailable = await d.deliver(make_delivery())
                down = await d.probe()
                sim.up()
                up = await d.probe()
                delivered = await d.deliver(make_delivery())
            return unavailable, down, up, delivered

        unavailable, down, up, delivered = run(scenario)
        assert ("unavailable", Verdict.TRANSIENT, 503, FAST.max_attempts) == (
            unavailable.kind,
            unavailable.verdict,
            unavailable.status,
            unavailable.attempts,
        )
        assert "http/unavailable" == unavailable.path
        assert FAST.max_attempts - 1 == len(clock.waits)
        assert (False, True) == (down, up)
        assert ("delivered", 1) == (delivered.kind, delivered.attempts)

    def test_dropped_connections_are_transient(self):
        async def scenario(sim: VendorSimulator) -> Outcome:
            sim.down("drop")
            async with deliverer(sim) as d:
                return await d.deliver(make_delivery())

        outcome = run(scenario)
        assert ("unavailable", None, FAST.max_attempts) == (
            outcome.kind,
            outcome.status,
            outcome.attempts,
        )
        assert outcome.error is not None

    def test_wait_until_available_probes_until_up(self):
        holder: dict[str, VendorSimulator] = {}
        clock = FakeTime(on_sleep=lambda n: holder["sim"].up() if n == 3 else None)
        outage = OutagePolicy(probe_initial_s=5, probe_max_s=60, max_outage_s=3600)

        async def scenario(sim: VendorSimulator) -> bool:
            holder["sim"] = sim
            sim.down()
            async with deliverer(sim, clock) as d:
                return await d.wait_until_available(outage, since=d.clock())

        assert run(scenario) is True
        assert [5, 10, 20] == clock.waits

    def test_wait_until_available_gives_up_after_the_outage_maximum(self):
        clock = FakeTime()
        outage = OutagePolicy(probe_initial_s=5, probe_max_s=60, max_outage_s=200)

        async def scenario(sim: VendorSimulator) -> tuple[bool, int]:
            sim.down()
            async with deliverer(sim, clock) as d:
                started = d.clock()
                result = await d.wait_until_available(outage, since=started)
                return result, sim.health_requests

        result, probes = run(scenario)
        assert result is False
        assert 200 == pytest.approx(sum(clock.waits))
        assert [5, 10, 20, 40, 60, 60, 5] == clock.waits
        assert len(clock.waits) == probes

    def test_probe_pauses_keep_growing_until_a_delivery_succeeds(self):
        """A probe that answers while deliveries do not (401 on the case path) is not asked every 5 s."""
        clock = FakeTime()
        outage = OutagePolicy(probe_initial_s=5, probe_max_s=60, max_outage_s=3600)

        async def scenario(sim: VendorSimulator) -> list[str]:
            kinds = []
            async with deliverer(sim, clock) as d:
                since = d.clock()
                for _ in range(2):
                    sim.fail_next(status=401)
                    kinds.append((await d.deliver(make_delivery())).kind)
                    assert await d.wait_until_available(outage, since=since)
                kinds.append((await d.deliver(make_delivery())).kind)
                sim.fail_next(status=401)
                kinds.append((await d.deliver(make_delivery(office="amt-2"))).kind)
                assert await d.wait_until_available(outage, since=d.clock())
            return kinds

        kinds = run(scenario)
        assert ["unavailable", "unavailable", "delivered", "unavailable"] == kinds
        assert [5, 10, 5] == clock.waits

    def test_probe_without_health_url_heads_the_origin(self):
        async def scenario(sim: VendorSimulator) -> tuple[bool, bool]:
            async with deliverer(sim, health_url=None) as d:
                up = await d.probe()  # 405 for HEAD /: the server answers
                sim.down()
                return up, await d.probe()

        assert (True, False) == run(scenario)

    @pytest.mark.parametrize(
        ("sim_options", "fail", "status"),
        [
            ({"validate": lambda body: False}, None, 422),
            ({}, {"status": 400}, 400),
            ({}, {"status": 404}, 404),
            ({}, {"status": 413}, 413),
        ],
    )
    def test_refused_without_retry(self, sim_options, fail, status):
        events: list[RetryEvent] = []

        async def record(event: RetryEvent) -> None:
            events.append(event)

        async def scenario(sim: VendorSimulator) -> tuple[Outcome, int]:
            if fail:
                sim.fail_next(**fail)
            async with deliverer(sim) as d:
                return await d.deliver(make_delivery(), on_retry=record), len(sim.bookings)

        outcome, booked = run(scenario, **sim_options)
        assert ("refused", Verdict.REFUSED, status, 1, f"http/{status}") == (
            outcome.kind,
            outcome.verdict,
            outcome.status,
            outcome.attempts,
            outcome.path,
        )
        assert ([], 0) == (events, booked)

    def test_same_key_with_another_body_is_refused(self):
        async def scenario(sim: VendorSimulator) -> Outcome:
            async with deliverer(sim) as d:
                await d.deliver(make_delivery())
                changed = make_delivery(b'{"leistung": "other"}')
                return await d.deliver(changed)

        outcome = run(scenario)
        assert ("refused", 422) == (outcome.kind, outcome.status)

    @pytest.mark.parametrize(
        ("retry_after", "expected"),
        [
            ("7", 7.0),
            ("120", 30.0),  # capped at max_s
            (email.utils.format_datetime(NOW + dt.timedelta(seconds=12), usegmt=True), 12.0),
        ],
    )
    def test_retry_after_is_honoured(self, retry_after, expected):
        clock = FakeTime()

        async def scenario(sim: VendorSimulator) -> Outcome:
            sim.fail_next(status=429, retry_after=retry_after)
            async with deliverer(sim, clock) as d:
                return await d.deliver(make_delivery())

        outcome = run(scenario)
        assert ("delivered", 2) == (outcome.kind, outcome.attempts)
        assert [expected] == clock.waits

    def test_outage_retry_after_is_honoured(self):
        clock = FakeTime()

        async def scenario(sim: VendorSimulator) -> Outcome:
            sim.down(retry_after=9)
            async with deliverer(sim, clock) as d:
                return await d.deliver(make_delivery())

        assert "unavailable" == run(scenario).kind
        assert [9.0] * (FAST.max_attempts - 1) == clock.waits

    def test_timeout_then_conflict_then_replay(self):
        """The first attempt times out while the vendor still books; retries see 409, then the replay."""
        retry = RetryPolicy(max_attempts=8, initial_s=0.2, max_s=0.4)
        events: list[RetryEvent] = []

        async def scenario(sim: VendorSimulator) -> tuple[Outcome, list[int], VendorSimulator]:
            async def fast_again(event: RetryEvent) -> None:
                events.append(event)
                sim.slow(0)  # only the first request is slow (it is still being processed)

            sim.slow(1.0)
            d = HttpDeliverer(endpoint(sim, timeout=0.3, retry=retry), now=lambda: NOW)
            async with d:
                outcome = await d.deliver(make_delivery(), on_retry=fast_again)
            await asyncio.sleep(0.1)
            return outcome, [status for _, status in sim.statuses], sim

        outcome, statuses, sim = run(scenario)
        assert ("replayed", 201) == (outcome.kind, outcome.status)
        assert events[0].status is None
        assert events[0].error is not None  # the timeout
        assert 409 in [e.status for e in events]
        assert 409 in statuses
        assert 1 == len(sim.bookings)
        assert [] == sim.booked_twice()

    @pytest.mark.parametrize("status", [401, 403, 301, 501])
    def test_unusable_endpoint_pauses_at_once(self, status):
        async def scenario(sim: VendorSimulator) -> Outcome:
            sim.fail_next(status=status)
            async with deliverer(sim) as d:
                return await d.deliver(make_delivery())

        outcome = run(scenario)
        assert ("unavailable", Verdict.UNUSABLE, status, 1) == (
            outcome.kind,
            outcome.verdict,
            outcome.status,
            outcome.attempts,
        )


class TestRequest:
    """The exact request, seen by a capturing server."""

    def capture(self, delivery: Delivery, **changes: Any) -> tuple[dict[str, str], bytes, str]:
        seen: dict[str, Any] = {}

        async def handler(request: web.Request) -> web.Response:
            seen["headers"] = dict(request.headers)
            seen["body"] = await request.read()
            seen["path"] = request.path
            return web.json_response({"bookingId": "FV-1"}, status=201)

        async def main() -> None:
            app = web.Application()
            app.router.add_post("/offices/{office}/cases", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            config = HttpEndpoint(
                vendor=VENDOR, url=f"http://127.0.0.1:{port}/offices/{{office}}/cases", **changes
            )
            try:
                async with HttpDeliverer(config) as d:
                    outcome = await d.deliver(delivery)
                    seen["outcome"] = outcome
            finally:
                await runner.cleanup()

        asyncio.run(main())
        return seen["headers"], seen["body"], seen["path"]

    def test_headers_and_body(self):
        delivery = make_delivery()
        headers, body, path = self.capture(delivery, token=Secret(TOKEN))
        assert BODY == body
        assert f"/offices/{OFFICE}/cases" == path
        assert "application/json" == headers["Content-Type"]
        assert f'"{delivery.delivery_id}"' == headers["Idempotency-Key"]
        assert "1" == headers["X-Sozialhub-Mapping-Version"]
        assert USER_AGENT == headers["User-Agent"]
        assert f"Bearer {TOKEN}" == headers["Authorization"]
        assert "identity" == headers["Accept-Encoding"]

    def test_no_personal_data_or_submission_in_headers(self):
        delivery = make_delivery()
        headers, _, _ = self.capture(delivery)
        text = repr(headers)
        assert PERSONAL not in text
        assert delivery.submission_id not in text
        assert "Authorization" not in headers

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"office": "../admin"}, "office"),
            ({"vendor": "akdn"}, "vendor"),
            ({"delivery_id": "dlv-../../x"}, "delivery_id"),
            ({"mapping_version": "1\r\nX-Evil: 1"}, "mapping_version"),
            ({"media_type": "application/json\r\nX-Evil: 1"}, "media_type"),
            ({"body_b64": "not base64!"}, "body_b64"),
        ],
    )
    def test_malformed_delivery_is_refused_before_any_request(self, changes, field):
        async def scenario(sim: VendorSimulator) -> tuple[Outcome, int]:
            async with deliverer(sim) as d:
                return await d.deliver(make_delivery(**changes)), sim.case_requests

        outcome, requests = run(scenario)
        assert ("refused", None, field, f"delivery/{field}", 0) == (
            outcome.kind,
            outcome.status,
            outcome.error,
            outcome.path,
            requests,
        )

    def test_malformed_ids_are_not_logged(self):
        async def scenario(sim: VendorSimulator) -> Outcome:
            async with deliverer(sim) as d:
                return await d.deliver(make_delivery(office="Erika\nMustermann"))

        with capture_logs() as logs:
            outcome = run(scenario)
        assert "refused" == outcome.kind
        assert "invalid" == logs[-1]["office"]
        assert "Mustermann" not in repr(logs)

    def test_office_injection_does_not_reach_another_path(self):
        async def scenario(sim: VendorSimulator) -> int:
            async with deliverer(sim) as d:
                for office in ("../../health", "a/../../x", "amt%2f..%2fx"):
                    await d.deliver(make_delivery(office=office))
            return sim.case_requests + sim.health_requests

        assert 0 == run(scenario)


@pytest.fixture(scope="module")
def dev_pki(tmp_path_factory) -> pki.DevPki:
    return pki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory) -> pki.DevPki:
    return pki.create(tmp_path_factory.mktemp("other-pki"))


class TestTls:
    def deliver_over_tls(self, server: ssl.SSLContext, **changes: Any) -> tuple[Outcome, int, bool]:
        async def scenario(sim: VendorSimulator) -> tuple[Outcome, int, bool]:
            assert sim.url.startswith("https://")
            async with deliverer(sim, **changes) as d:
                outcome = await d.deliver(make_delivery())
                return outcome, len(sim.bookings), await d.probe()

        return run(scenario, ssl_context=server)

    def test_client_certificate_required_and_presented(self, dev_pki):
        outcome, booked, up = self.deliver_over_tls(
            dev_pki.server_context(),
            ca_file=dev_pki.ca,
            client_cert=dev_pki.client_cert,
            client_key=dev_pki.client_key,
        )
        assert ("delivered", 1, True) == (outcome.kind, booked, up)

    def test_without_client_certificate_nothing_is_delivered(self, dev_pki):
        outcome, booked, up = self.deliver_over_tls(dev_pki.server_context(), ca_file=dev_pki.ca)
        assert ("unavailable", Verdict.TRANSIENT, 0, False) == (
            outcome.kind,
            outcome.verdict,
            booked,
            up,
        )

    def test_wrong_ca_is_not_delivered(self, dev_pki, other_pki):
        outcome, booked, up = self.deliver_over_tls(
            dev_pki.server_context(),
            ca_file=other_pki.ca,
            client_cert=dev_pki.client_cert,
            client_key=dev_pki.client_key,
        )
        assert ("unavailable", None, 0, False) == (outcome.kind, outcome.status, booked, up)
        assert outcome.error is not None

    def test_context_is_tls12_or_newer(self, dev_pki):
        config = HttpEndpoint(vendor=VENDOR, url="https://127.0.0.1:1/{office}", ca_file=dev_pki.ca)
        context = config.ssl_context()
        assert context is not None
        assert ssl.TLSVersion.TLSv1_2 <= context.minimum_version
        assert ssl.CERT_REQUIRED == context.verify_mode
        assert context.check_hostname


class TestSecretsAndLogs:
    def test_token_and_body_never_logged(self):
        async def scenario(sim: VendorSimulator) -> list[Outcome]:
            sim.fail_next(2, status=503)
            async with deliverer(sim, token=Secret(TOKEN)) as d:
                delivered = await d.deliver(make_delivery())
                sim.fail_next(status=422)
                refused = await d.deliver(
                    make_delivery(b'{"x": "' + PERSONAL.encode() + b'"}', office="amt-2")
                )
                sim.down()
                await d.probe()
                return [delivered, refused]

        with capture_logs() as logs:
            outcomes = run(scenario, token=TOKEN)
        assert ["delivered", "refused"] == [o.kind for o in outcomes]
        events = [entry["event"] for entry in logs]
        assert [
            "http.retry",
            "http.retry",
            "http.delivered",
            "http.refused",
            "http.probe",
        ] == events
        text = repr(logs)
        assert TOKEN not in text
        assert PERSONAL not in text
        assert "127.0.0.1" not in text  # no URLs either
        retry = logs[0]
        assert {"delivery_id", "office", "vendor", "attempt", "status", "delay_s"} <= set(retry)

    def test_wrong_token_is_unusable(self):
        async def scenario(sim: VendorSimulator) -> Outcome:
            async with deliverer(sim, token=Secret("wrong-token")) as d:
                return await d.deliver(make_delivery())

        outcome = run(scenario, token=TOKEN)
        assert ("unavailable", Verdict.UNUSABLE, 401, 1) == (
            outcome.kind,
            outcome.verdict,
            outcome.status,
            outcome.attempts,
        )
