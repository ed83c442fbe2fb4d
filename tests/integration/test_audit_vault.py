"""The audit vault through a real broker: a worker seals each input under its person's key,
``sozialhub audit erase`` tombstones the key, and the input can no longer be opened.

A worker process with a KEK file takes two submissions of one person (same portal
case id, so the same pseudonym) from the file drop. The first is sealed on
``audit.vault`` under a new key on ``audit.keys``; :func:`open_recorded` opens it to
the ``submissions.accepted`` value. ``audit erase`` tombstones the key and writes
``audit``/``erased``; the input is unreadable from then on, while the vault record
and the digest in its ``vault``/``sealed`` event stay. A second erase finds nothing.
The worker's index drops the tombstoned key: the person's next submission is sealed
under a new key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time

import pytest

from hub import cli, dlq
from hub.audit_vault_cli import Recorded, live_keys, open_recorded, recorded, sealed_inputs
from hub.core import audit_vault as av
from hub.core.pipeline import ACCEPTED, UNKNOWN
from hub.core.records import AuditEvent, submission_id
from hub.supervise import WorkerProcess
from tests.unit.test_pipeline import person, submission_bytes

from .helpers import cli_environment, drop, outcomes

pytestmark = pytest.mark.integration

FIRST = submission_bytes(person())
SECOND = submission_bytes(person(street="Am Lohtor"))  # the same case id: the same person


@pytest.fixture
def vault_settings(hub_settings):
    kek = {"kid": "test-kek", "key": base64.b64encode(os.urandom(32)).decode("ascii")}
    path = hub_settings.data_dir / "audit-kek.json"
    path.write_text(json.dumps(kek), "utf-8")
    return hub_settings.with_overrides(audit_kek_file=path)


@pytest.fixture
def worker(vault_settings):
    process = WorkerProcess(vault_settings, log_file=vault_settings.data_dir / "worker.log")
    process.start()
    process.wait_ready()
    yield process
    process.stop()


@pytest.fixture
def erase_cli(vault_settings, monkeypatch, capsys):
    """cli.main(["audit", "erase", ...]) against the test's cluster; (status, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        status = cli.main(["audit", "erase", *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    with cli_environment(vault_settings, monkeypatch):
        yield run


def accepted_value(settings, sid: str) -> bytes:
    (value,) = [
        m.value()
        for m in dlq.read_topic(settings, settings.topic(ACCEPTED))
        if m.key() == sid.encode()
    ]
    return value


def delivered(settings, data: bytes, name: str) -> str:
    sid = submission_id(data)
    drop(settings.inbox_dir, name, data)
    assert "delivered" == outcomes(settings, {sid}, timeout=120).get(sid).outcome
    return sid


def test_seal_erase_and_the_input_is_gone(vault_settings, worker, erase_cli):
    settings = vault_settings
    first = delivered(settings, FIRST, "first.xml")

    # Sealed under a new key of the person; opens to the accepted record value.
    (sealed,) = sealed_inputs(settings, first)
    keys = live_keys(settings)
    assert [sealed.person_key] == list(keys)
    assert sealed.person == keys[sealed.person_key].record.person
    assert "test-kek" == keys[sealed.person_key].record.kek_id
    assert accepted_value(settings, first) == open_recorded(settings, first)
    (event,) = [e for e in dlq.audit_events(settings, first) if e.stage == av.STAGE]
    ciphertext = base64.b64decode(sealed.ciphertext_b64)
    digest = hashlib.sha256(ciphertext).hexdigest()
    assert (av.SEALED, sealed.person, sealed.person_key, digest) == (
        event.decision,
        event.person,
        event.person_key,
        event.input_sha256,
    )

    # Erase: the key is tombstoned, the erasure audited, the input can no longer be opened.
    status, out, err = erase_cli("--person", sealed.person, "--yes")
    assert (0, "") == (status, err)
    report = json.loads(out)
    assert (1, [sealed.person_key]) == (report["key_count"], report["erased"][0]["keys"])
    assert {} == live_keys(settings)
    assert Recorded(first, None, "erased", sealed.person_key, digest) == recorded(settings, first)
    assert open_recorded(settings, first) is None
    (erased,) = [e for e in dlq.audit_events(settings, UNKNOWN) if e.stage == av.ERASE_STAGE]
    assert (av.ERASED, sealed.person, 1, report["erased"][0]["audit_event"]) == (
        erased.decision,
        erased.person,
        erased.key_count,
        erased.event_id,
    )
    # The event names the pseudonym and the count, nothing else.
    assert {"event_id", "submission_id", "stage", "decision", "at", "person", "key_count"} == {
        name for name, value in _fields(erased).items() if value is not None
    }
    # The vault record stays, and with it the digest the audit chain covers.
    (kept,) = sealed_inputs(settings, first)
    assert digest == hashlib.sha256(base64.b64decode(kept.ciphertext_b64)).hexdigest()

    # Idempotent: a second erase finds nothing, says so and writes no second event.
    status, out, err = erase_cli("--person", sealed.person, "--yes")
    assert (0, 0, []) == (status, json.loads(out)["key_count"], json.loads(out)["erased"])
    assert "nothing to erase" in err
    erasures = [e for e in dlq.audit_events(settings, UNKNOWN) if e.stage == av.ERASE_STAGE]
    assert 1 == len(erasures)

    # The worker's index followed the tombstone: the next submission gets a new key.
    time.sleep(1.0)  # the index follows audit.keys in the background (milliseconds behind)
    second = delivered(settings, SECOND, "second.xml")
    (again,) = sealed_inputs(settings, second)
    assert again.person == sealed.person
    assert again.person_key != sealed.person_key
    assert accepted_value(settings, second) == open_recorded(settings, second)
    assert open_recorded(settings, first) is None


def _fields(event: AuditEvent) -> dict[str, object]:
    return {name: getattr(event, name) for name in AuditEvent.__dataclass_fields__}
