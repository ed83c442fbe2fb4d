"""`sozialhub consent grant|show|revoke` through the broker, the ledger step, and a second index.

No worker process: the test folds ``consent.events`` into ``consent.ledger`` with the
consent agent's pure step (:func:`hub.core.consent_registry.record`) and produces its
emits like a worker does (as tests/integration/test_dlq.py does), then a fresh
:class:`ConsentIndex` with its own consumer loads the ledger topic.
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from hub import cli, dlq
from hub.core import consent, consent_registry
from hub.core.consent import Status
from hub.stream import consents
from tests.unit.test_consent_registry import PERSON, granted

from .helpers import cli_environment

pytestmark = pytest.mark.integration

IDNR = "86095742719"


@pytest.fixture
def consent_cli(hub_settings, monkeypatch, capsys):
    """cli.main(["consent", ...]) against the test's cluster and prefix; (status, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        status = cli.main(["consent", *argv, "--development-key", "--person-id", IDNR])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    with cli_environment(hub_settings, monkeypatch):
        yield run


def fold_pending(settings, index: consents.ConsentIndex) -> None:
    """What the consent agent does for every event on the topic so far."""
    now = dt.datetime.now(dt.UTC)
    for message in dlq.read_topic(settings, settings.topic(consent_registry.EVENTS)):
        key = message.key()
        emits = consent_registry.record(key, message.value(), index.ledger(key.decode()), now)
        index.remember(emits)
        for emit in emits:
            dlq.produce(settings, settings.topic(emit.topic), emit.key.encode("ascii"), emit.value)


def test_grant_show_revoke_show_and_a_second_index(hub_settings, consent_cli):
    status, out, err = consent_cli(
        "grant",
        "--from",
        "soa-marl",
        "--to",
        "jc-re-marl",
        "--purpose",
        "rechtskreiswechsel-handover",
        "--categories",
        "household,identity-address",
        "--text-version",
        "rkw-marl-2025-01",
        "--channel",
        "paper",
        "--scan-ref",
        "dms:soa-marl:2026/03/0412",
    )
    granted = json.loads(out)
    person, record_id = granted["person"], granted["record_id"]
    assert (0, "granted") == (status, granted["kind"]), err

    status, out, _ = consent_cli("show")
    shown = json.loads(out)
    assert (0, person, [(record_id, "valid")], 1) == (
        status,
        shown["person"],
        [(r["record_id"], r["status"]) for r in shown["records"]],
        shown["pending"],
    )

    folding = consents.ConsentIndex()
    fold_pending(hub_settings, folding)  # the agent folds the grant into the ledger

    status, out, _ = consent_cli("revoke", "--record", record_id, "--channel", "portal")
    revoked = json.loads(out)
    assert (0, "revoked", person) == (status, revoked["kind"], revoked["person"])

    status, out, _ = consent_cli("show")
    (entry,) = json.loads(out)["records"]
    assert (0, "revoked", revoked["effective_at"]) == (status, entry["status"], entry["revoked_at"])

    fold_pending(hub_settings, folding)  # and the revocation

    second, stop = consents.start(hub_settings)  # another process's index: its own consumer
    try:
        assert second.loaded.wait(30), "consent index not loaded"
        (state,) = second.states_for(person)
        effective = dt.datetime.fromisoformat(revoked["effective_at"])
        assert (record_id, Status.REVOKED, effective) == (
            state.record_id,
            state.status(effective),
            state.revoked_at,
        )
    finally:
        stop.set()

    status, out, err = consent_cli("revoke", "--record", "cns-" + "0" * 32, "--channel", "portal")
    assert (1, "", True) == (status, out, "no record" in err)
    assert IDNR not in "".join(consent_cli("show")[1:])


def test_a_loaded_index_follows_later_ledgers(hub_settings):
    """An index already loaded sees a ledger written afterwards (it follows the topic)."""
    grant = granted()
    index, stop = consents.start(hub_settings)
    try:
        assert index.loaded.wait(30), "consent index not loaded"
        ledger = consent.encode_ledger(PERSON, [grant])
        dlq.produce(
            hub_settings, hub_settings.topic(consent_registry.LEDGER), PERSON.encode(), ledger
        )
        deadline = time.monotonic() + 30
        while not index.states_for(PERSON) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [grant.record_id] == [s.record_id for s in index.states_for(PERSON)]
    finally:
        stop.set()
