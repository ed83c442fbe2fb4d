"""``sozialhub dlq`` against a real broker: list, show and retry a dead letter the pipeline made.

The pure stages run in the test process and their records are produced to the
test's topics, as a worker would (no worker process: nothing consumes the
retried record, so the test can look at it on its topic).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from hub import cli, context
from hub.config import PROJECT_ROOT
from hub.core.pipeline import ACCEPTED, AUDIT, DEAD_LETTER, RECEIVED, dispatch, ingest, intake
from hub.core.records import Accepted, AuditEvent, DeadLetter, Received, SourceRef, decode
from hub.kafka import follow, producer

from .helpers import cli_environment

pytestmark = pytest.mark.integration

UNROUTABLE = PROJECT_ROOT / "examples" / "submissions" / "08-unroutable-bochum.xml"
PERSONAL = ("Nowak", "Petra", "Kortumstra")  # applicant and street in that example


def _send(settings, emits) -> dict[str, SourceRef]:
    """Produce emits like a worker does; where the first record of each topic landed."""
    out = producer(settings)
    landed: dict[str, SourceRef] = {}
    errors: list = []

    def acked(error, message):
        if error is not None:
            errors.append(error)
        else:
            ref = SourceRef(message.topic(), message.partition(), message.offset())
            landed.setdefault(message.topic(), ref)

    for emit in emits:
        out.produce(
            settings.topic(emit.topic), key=emit.key.encode(), value=emit.value, on_delivery=acked
        )
    assert 0 == out.flush(30)
    assert [] == errors
    return landed


@pytest.fixture
def rejected(hub_settings):
    """An unroutable submission through ingest, intake and dispatch: a route dead letter."""
    settings = hub_settings
    hub = context.build(settings)
    now = dt.datetime.now(dt.UTC)
    ingested = ingest(UNROUTABLE.read_bytes(), "filedrop", "file", hub, now)
    received_at = _send(settings, ingested.emits)[settings.topic(RECEIVED)]
    received = decode(ingested.emits[0].value, Received)
    accepted = intake(received, received_at, hub, now)
    assert "accepted" == accepted.outcome
    accepted_emit = next(e for e in accepted.emits if e.topic == ACCEPTED)
    accepted_at = _send(settings, accepted.emits)[settings.topic(ACCEPTED)]
    routed = dispatch(decode(accepted_emit.value, Accepted), accepted_at, hub, now)
    assert ("rejected", "ROUTE_UNRESOLVED") == (routed.outcome, routed.reason)
    _send(settings, routed.emits)
    letter = decode(next(e.value for e in routed.emits if e.topic == DEAD_LETTER), DeadLetter)
    return letter, accepted_emit, accepted_at


@pytest.fixture
def dlq_cli(hub_settings, monkeypatch, capsys):
    """cli.main() against the test's cluster and prefix; returns (status, stdout) and keeps all stdout."""
    outputs: list[str] = []

    def run(*argv: str) -> tuple[int, str]:
        status = cli.main(["dlq", *argv])
        out = capsys.readouterr().out
        outputs.append(out)
        return status, out

    run.outputs = outputs  # type: ignore[attr-defined]
    with cli_environment(hub_settings, monkeypatch):
        yield run


def _records(settings, topic: str, count: int) -> list:
    found: list = []
    found.extend(follow(settings, topic, lambda: len(found) >= count, timeout=30))
    return found


class TestDeadLetterCommands:
    def test_list_show_retry(self, hub_settings, rejected, dlq_cli):
        """list finds the dead letter, show checks its original, retry re-produces it unchanged."""
        letter, accepted_emit, accepted_at = rejected

        status, out = dlq_cli("list", "--json")
        listed = [json.loads(line) for line in out.splitlines()]
        assert (
            0,
            [(letter.dead_letter_id, letter.submission_id, "route", "ROUTE_UNRESOLVED")],
        ) == (
            status,
            [(e["dead_letter_id"], e["submission_id"], e["stage"], e["reason"]) for e in listed],
        )
        assert (0, "") == dlq_cli("list", "--stage", "intake")

        status, out = dlq_cli("show", "--json", letter.dead_letter_id)
        shown = json.loads(out)
        expected = (
            0,
            {
                "topic": accepted_at.topic,
                "partition": accepted_at.partition,
                "offset": accepted_at.offset,
            },
            True,
            "match",
            True,
            [
                ("ingest", "received"),
                ("intake", "accepted"),
                ("route", "rejected"),
                ("sign", "signed"),
            ],
        )
        actual = (
            status,
            {k: shown["source"][k] for k in ("topic", "partition", "offset")},
            shown["source"]["present"],
            shown["digest"],
            shown["retryable"],
            sorted((e["stage"], e["decision"]) for e in shown["audit"]),
        )
        assert expected == actual
        assert 0 == dlq_cli("show", letter.dead_letter_id)[0]

        status, out = dlq_cli("retry", "--yes", letter.dead_letter_id)
        assert (0, True) == (status, "re-produced" in out)
        first, again = _records(hub_settings, ACCEPTED, 2)
        assert (accepted_emit.key.encode(), accepted_emit.value, accepted_at.partition) == (
            again.key(),
            again.value(),
            again.partition(),
        )
        assert (accepted_at.offset, True) == (first.offset(), again.offset() > first.offset())

        retried = [
            decode(m.value(), AuditEvent)
            for m in _records(
                hub_settings, AUDIT, 5
            )  # received, accepted, signed, rejected, retried
            if b'"decision":"retried"' in m.value()
        ]
        assert [("dlq", "retried", letter.dead_letter_id, letter.submission_id)] == [
            (e.stage, e.decision, e.dead_letter_id, e.submission_id) for e in retried
        ]

        status, out = dlq_cli("retry", "--yes", "dlq-" + "0" * 32)
        assert 1 == status

        printed = "".join(dlq_cli.outputs)
        payload_b64 = json.loads(accepted_emit.value)["payload_b64"]
        fragments = [*PERSONAL, payload_b64[64:128]]
        assert [] == [f for f in fragments if f in printed]
