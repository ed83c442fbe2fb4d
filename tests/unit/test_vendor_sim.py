"""The vendor endpoint simulator (hub.sim.vendor), spoken to with a plain aiohttp client over loopback."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from hub.sim import pki
from hub.sim.vendor import VendorSimulator, VendorSimulatorThread, schema_validator

pytestmark = pytest.mark.timeout(60)

KEY = "dlv-" + "a" * 32
BODY = b'{"leistung": "hlu", "betrag": 1}'
JSON = {"Content-Type": "application/json"}


def headers(key: str | None = KEY, **extra: str) -> dict[str, str]:
    result = dict(JSON)
    if key is not None:
        result["Idempotency-Key"] = f'"{key}"'
    return result | extra


Answer = tuple[int, dict[str, str], Any]


async def post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes = BODY,
    head: dict[str, str] | None = None,
) -> Answer:
    async with session.post(url, data=body, headers=headers() if head is None else head) as r:
        document = await r.json() if r.content_type == "application/json" else None
        return r.status, dict(r.headers), document


def run(
    scenario: Callable[[VendorSimulator, aiohttp.ClientSession], Awaitable[Any]],
    **options: Any,
) -> Any:
    async def main() -> Any:
        async with VendorSimulator(**options) as sim, aiohttp.ClientSession() as session:
            return await scenario(sim, session)

    return asyncio.run(main())


def case_url(sim: VendorSimulator, office: str = "sozialamt-marl") -> str:
    return sim.url_template.replace("{office}", office)


class TestIdempotency:
    def test_books_once_and_replays_the_original_result(self):
        async def scenario(sim, session):
            first = await post(session, case_url(sim))
            second = await post(session, case_url(sim))
            return first, second, sim

        first, second, sim = run(scenario)
        assert 201 == first[0]
        assert "Idempotent-Replayed" not in first[1]
        assert (201, "true") == (second[0], second[1]["Idempotent-Replayed"])
        assert first[2] == second[2]
        assert first[1]["Location"] == second[1]["Location"]
        assert first[1]["Location"].endswith("/" + first[2]["bookingId"])
        booking = sim.booking(KEY)
        assert ("sozialamt-marl", 1, 1) == (booking.office, booking.booked, booking.replays)
        assert 2 == sim.requests_by_key[KEY]

    def test_same_key_other_body_is_422(self):
        async def scenario(sim, session):
            await post(session, case_url(sim))
            return await post(session, case_url(sim), b'{"other": true}'), len(sim.bookings)

        (status, _, document), booked = run(scenario)
        assert (422, 1) == (status, booked)
        assert "already used" in document["title"]

    def test_request_outstanding_is_409(self):
        async def scenario(sim, session):
            sim.slow(0.5)
            slow = asyncio.create_task(post(session, case_url(sim)))
            await asyncio.sleep(0.2)
            sim.slow(0)
            conflict = await post(session, case_url(sim))
            return conflict[0], (await slow)[0], len(sim.bookings)

        assert (409, 201, 1) == run(scenario)

    @pytest.mark.parametrize(
        "head",
        [
            headers(None),
            headers(None) | {"Idempotency-Key": KEY},  # a token, not an sf-string
            headers(None) | {"Idempotency-Key": '"a\\"b"'},
            headers(None) | {"Idempotency-Key": '""'},
        ],
    )
    def test_missing_or_malformed_key_is_400(self, head):
        async def scenario(sim, session):
            return (await post(session, case_url(sim), head=head))[0], len(sim.bookings)

        assert (400, 0) == run(scenario)

    def test_media_type_size_and_token(self):
        auth = {"Authorization": "Bearer t0ken"}

        async def scenario(sim, session):
            wrong_type = await post(
                session, case_url(sim), head=headers() | auth | {"Content-Type": "text/plain"}
            )
            too_large = await post(
                session, case_url(sim), b"{" + b" " * 2000 + b"}", headers() | auth
            )
            no_token = await post(session, case_url(sim))
            wrong_token = await post(
                session, case_url(sim), head=headers() | {"Authorization": "Bearer x"}
            )
            with_token = await post(session, case_url(sim), head=headers() | auth)
            return [r[0] for r in (wrong_type, too_large, no_token, wrong_token, with_token)]

        statuses = run(scenario, max_request_bytes=1000, token="t0ken")  # noqa: S106 - a test value
        assert [415, 413, 401, 401, 201] == statuses

    def test_validator(self):
        schema = {
            "type": "object",
            "required": ["leistung"],
            "properties": {"leistung": {"type": "string"}},
        }

        async def scenario(sim, session):
            good = await post(session, case_url(sim))
            bad = await post(session, case_url(sim), b'{"betrag": 1}', headers("dlv-" + "b" * 32))
            not_json = await post(session, case_url(sim), b"\xff{", headers("dlv-" + "c" * 32))
            return [good[0], bad[0], not_json[0]], len(sim.bookings)

        assert ([201, 422, 422], 1) == run(scenario, validate=schema_validator(schema))

    def test_booked_twice_finds_one_body_under_two_keys(self):
        async def scenario(sim, session):
            await post(session, case_url(sim))
            await post(session, case_url(sim), head=headers("dlv-" + "b" * 32))
            return sim.booked_twice()

        assert 1 == len(run(scenario))

    def test_configurable_path(self):
        async def scenario(sim, session):
            url = sim.url_template.replace("{office}", "amt-1")
            return (await post(session, url))[0], sim.booking(KEY).office

        assert (201, "amt-1") == run(scenario, path="/api/v2/{office}/vorgaenge")

    def test_path_needs_the_office(self):
        with pytest.raises(ValueError, match="office"):
            VendorSimulator(path="/cases")


class TestFailureModes:
    def test_down_and_up(self):
        async def scenario(sim, session):
            sim.down(retry_after=30)
            down = await post(session, case_url(sim))
            async with session.get(sim.health_url) as r:
                health_down = r.status
            sim.up()
            up = await post(session, case_url(sim))
            async with session.get(sim.health_url) as r:
                health_up = r.status
            return down, health_down, up[0], health_up, sim.case_requests, sim.health_requests

        down, health_down, up, health_up, cases, probes = run(scenario)
        assert (503, "30") == (down[0], down[1]["Retry-After"])
        assert (503, 201, 200) == (health_down, up, health_up)
        assert (2, 2) == (cases, probes)

    def test_outage_ends_by_itself(self):
        async def scenario(sim, session):
            sim.outage(0.3)
            during = await post(session, case_url(sim))
            await asyncio.sleep(0.35)
            after = await post(session, case_url(sim))
            return during, after[0]

        during, after = run(scenario)
        assert 503 == during[0]
        assert 1 <= int(during[1]["Retry-After"]) <= 1
        assert 201 == after

    def test_drop_cuts_the_connection(self):
        async def scenario(sim, session):
            sim.down("drop")
            with pytest.raises(aiohttp.ClientError):
                await post(session, case_url(sim))
            return len(sim.bookings)

        assert 0 == run(scenario)

    def test_flaky_fails_every_nth(self):
        async def scenario(sim, session):
            sim.flaky(every_nth=3, status=500)
            statuses = []
            for n in range(7):
                status, _, _ = await post(session, case_url(sim), head=headers(f"dlv-{n:032x}"))
                statuses.append(status)
            return statuses

        assert [201, 201, 500, 201, 201, 500, 201] == run(scenario)

    def test_fail_next_statuses_then_normal(self):
        async def scenario(sim, session):
            sim.fail_next(2, status=429, retry_after="5")
            first = await post(session, case_url(sim))
            second = await post(session, case_url(sim))
            third = await post(session, case_url(sim))
            return first[0], first[1]["Retry-After"], second[0], third[0]

        assert (429, "5", 429, 201) == run(scenario)

    def test_lose_answer_books_but_cuts_the_connection(self):
        async def scenario(sim, session):
            sim.fail_next(mode="lose_answer")
            with pytest.raises(aiohttp.ClientError):
                await post(session, case_url(sim))
            replay = await post(session, case_url(sim))
            return replay[0], replay[1].get("Idempotent-Replayed"), len(sim.bookings)

        assert (201, "true", 1) == run(scenario)

    def test_heal_clears_everything(self):
        async def scenario(sim, session):
            sim.down()
            sim.flaky(every_nth=1)
            sim.fail_next(3)
            sim.slow(5)
            sim.heal()
            return (await post(session, case_url(sim)))[0]

        assert 201 == run(scenario)


class TestHttpsAndThread:
    def test_https_requires_a_client_certificate(self, tmp_path):
        dev = pki.create(tmp_path)

        async def scenario(sim, _):
            assert sim.url.startswith("https://")
            without = ssl.create_default_context(cafile=str(dev.ca))
            with_cert = ssl.create_default_context(cafile=str(dev.ca))
            with_cert.load_cert_chain(str(dev.client_cert), str(dev.client_key))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=without)) as s:
                with pytest.raises(aiohttp.ClientError):
                    await post(s, case_url(sim))
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=with_cert)) as s:
                return (await post(s, case_url(sim)))[0]

        assert 201 == run(scenario, ssl_context=dev.server_context())

    def test_background_thread(self):
        runner = VendorSimulatorThread(VendorSimulator())
        url = runner.start()
        try:

            async def client() -> list[int]:
                async with aiohttp.ClientSession() as session:
                    target = url + "/offices/amt-1/cases"
                    runner.sim.fail_next(status=503)
                    return [(await post(session, target))[0], (await post(session, target))[0]]

            statuses = asyncio.run(client())
            snapshot = runner.snapshot()
        finally:
            runner.stop()
        assert [503, 201] == statuses
        assert {"requests": 2, "bookings": 1, "replays": 0, "booked_twice": []} == snapshot

    def test_repr_and_url_before_start(self):
        sim = VendorSimulator()
        assert "url=None" in repr(sim)
        with pytest.raises(RuntimeError):
            _ = sim.url
