"""``sozialhub audit replay`` through a real broker: a worker with a KEK file delivers the
example submissions, the replay finds every one the same, and after ``audit erase`` of one
person that person's submissions report ``input-erased``.

The worker takes the nine example submissions from the file drop (every vendor on file
delivery, each keeping its format, so all four mappings run) and writes the delivered
files; its audit chainer chains every audit event onto ``audit.chain``, which is what
the replay reads. The command runs as its own process, as an operator would run it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from hub import audit as audit_log
from hub import dlq
from hub.config import PROJECT_ROOT, Settings
from hub.core import audit_vault as av
from hub.core.pipeline import AUDIT
from hub.core.records import AuditEvent, decode, submission_id
from hub.supervise import WorkerProcess, worker_environment

from .helpers import drop, outcomes

pytestmark = pytest.mark.integration

EXAMPLES = sorted((PROJECT_ROOT / "examples" / "submissions").glob("*.xml"))
EXPECTED = {
    e["file"]: e for e in json.loads((PROJECT_ROOT / "examples" / "expected.json").read_text())
}


@pytest.fixture
def replay_settings(hub_settings: Settings) -> Settings:
    """A KEK file (the worker seals every input) and every vendor on file delivery."""
    kek = {"kid": "replay-kek", "key": base64.b64encode(os.urandom(32)).decode("ascii")}
    kek_file = hub_settings.data_dir / "audit-kek.json"
    kek_file.write_text(json.dumps(kek), "utf-8")
    table = yaml.safe_load(hub_settings.offices_file.read_text("utf-8"))
    for vendor in table["vendors"].values():
        vendor["delivery"] = {"channel": "file"}  # the format stays: fv-xml, -json, -avro, -fixed
    offices_file = hub_settings.data_dir / "offices-on-files.yml"
    offices_file.write_text(yaml.safe_dump(table, allow_unicode=True), "utf-8")
    return hub_settings.with_overrides(audit_kek_file=kek_file, offices_file=offices_file)


def command(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "audit", *args],
        env=worker_environment(settings),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def wait_until_chained(settings: Settings, timeout: float = 120.0) -> None:
    """Until every event on audit.log is on audit.chain (the chainer runs behind)."""
    logged = {
        decode(m.value(), AuditEvent).event_id
        for m in dlq.read_topic(settings, settings.topic(AUDIT))
        if m.value() is not None
    }
    deadline = time.monotonic() + timeout
    while True:
        chained = {event.event_id for _, _, event in audit_log.chain_events(settings)}
        if logged <= chained:
            return
        assert time.monotonic() < deadline, f"{len(logged - chained)} events not chained"
        time.sleep(0.5)


def deliver_examples(settings: Settings) -> dict[str, str]:
    """Run a worker until every example is final and chained; file name -> submission id."""
    worker = WorkerProcess(settings, log_file=settings.data_dir / "worker.log").start()
    try:
        worker.wait_ready()
        sids = {}
        for path in EXAMPLES:
            data = path.read_bytes()
            sids[path.name] = submission_id(data)
            drop(settings.inbox_dir, path.name, data)
        tracker = outcomes(settings, set(sids.values()), timeout=180)
        wait_until_chained(settings)
    finally:
        worker.stop()
    for name, sid in sids.items():
        outcome = tracker.get(sid)
        accepted = EXPECTED[name]["verdict"] == "accepted"
        assert outcome.outcome == ("delivered" if accepted else "dead-lettered"), name
        if accepted:
            assert outcome.offices == sorted(EXPECTED[name]["offices"])
            for did in outcome.delivered:  # the delivered files are in the outbox
                assert list(settings.outbox_dir.glob(f"*/*/{did}*")), (name, did)
    return sids


def test_replay_finds_the_delivered_examples_the_same_until_a_person_is_erased(replay_settings):
    settings = replay_settings
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)
    sids = deliver_examples(settings)
    ended = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    delivered = {name for name, e in EXPECTED.items() if e["verdict"] == "accepted"}
    # Dispatched (and sealed): the delivered ones and the one routing rejects.
    dispatched = {sids[n] for n in delivered} | {sids["08-unroutable-bochum.xml"]}
    mapped = sum(len(EXPECTED[n]["offices"]) for n in delivered)

    window = ("replay", "--from", started.isoformat(), "--to", ended.isoformat(), "--json")
    first = command(settings, *window)
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads(first.stdout)
    assert (len(dispatched), len(dispatched), 0, []) == (
        report["submissions"],
        report["same"],
        report["different"],
        report["differences"],
    )
    assert {"same": len(dispatched)} == report["counts"]
    assert mapped == report["deliveries_compared"]
    assert report["replayed_per_second"] > 0
    assert report["live_per_second"] > 0
    assert len(delivered) == report["live"]["submissions"]
    print(  # the rates of this run, for the record (pytest -s)
        "audit replay rates:",
        json.dumps({k: report[k] for k in ("replayed_per_second", "live_per_second", "seconds")}),
    )

    # Erase the person of the first example: their inputs can no longer be replayed.
    target = sids["01-buergergeld-recklinghausen.xml"]
    (sealed,) = [
        e
        for e in dlq.audit_events(settings, target)
        if (e.stage, e.decision) == (av.STAGE, av.SEALED)
    ]
    person = sealed.person
    erased_sids = {
        sid
        for sid in dispatched
        for e in dlq.audit_events(settings, sid)
        if (e.stage, e.decision, e.person) == (av.STAGE, av.SEALED, person)
    }
    assert target in erased_sids
    erased = command(settings, "erase", "--person", person, "--yes")
    assert erased.returncode == 0, erased.stderr

    second = command(settings, *window)
    assert second.returncode == 1, second.stdout + second.stderr
    after = json.loads(second.stdout)
    assert (len(dispatched), len(dispatched) - len(erased_sids)) == (
        after["submissions"],
        after["same"],
    )
    assert {"same": len(dispatched) - len(erased_sids), "input-erased": len(erased_sids)} == after[
        "counts"
    ]
    assert sorted(erased_sids) == sorted(d["submission_id"] for d in after["differences"])
    assert {"input-erased"} == {d["kind"] for d in after["differences"]}
    assert person not in second.stdout  # results name submissions, never the person

    text = command(settings, *window[:-1])  # without --json: one line per difference
    assert text.returncode == 1
    assert f"input-erased: {target}" in text.stdout
