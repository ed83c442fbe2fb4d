"""The demo as users run it, and clean shutdown of the embedded broker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from hub.config import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXPECTED = json.loads((PROJECT_ROOT / "examples" / "expected.json").read_text("utf-8"))


def _environment() -> dict[str, str]:
    """A user's shell: no cluster configured, so the embedded broker is used."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SOZIALHUB_"))}


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _run_demo(
    env: dict[str, str], tmp_path
) -> tuple[subprocess.CompletedProcess[bytes], list[dict]]:
    """Run `sozialhub demo --json` as a user would; it must exit 0. Returns the process and its rows."""
    completed = subprocess.run(
        [sys.executable, "-m", "hub", "demo", "--json", "--workdir", str(tmp_path / "demo")],
        env=env,
        capture_output=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
    )
    assert 0 == completed.returncode, completed.stderr.decode()[-2000:]
    lines = completed.stdout.decode().splitlines()
    return completed, [json.loads(line) for line in lines if line.startswith("{")]


def test_demo_delivers_or_dead_letters_every_example(tmp_path):
    """`sozialhub demo` on a fresh machine ends with every example's expected outcome and exit 0."""
    completed, rows = _run_demo(_environment(), tmp_path)
    actual = {r["file"]: (r["outcome"], r["reason"], sorted(r["offices"])) for r in rows}
    expected = {
        e["file"]: (
            "delivered" if e["verdict"] == "accepted" else "dead-lettered",
            e["reason"],
            sorted(e["offices"]),
        )
        for e in EXPECTED
    }
    assert expected == actual
    assert {e["file"]: e["transport"] for e in EXPECTED} == {
        r["file"]: r["transport"] for r in rows
    }
    # Every office got its delivery through its vendor's channel: file, kafka and http.
    assert {e["file"]: e["channels"] for e in EXPECTED} == {r["file"]: r["channels"] for r in rows}
    # The http vendor was down at first: attempts were retried, and still every case was
    # booked exactly once (the demo exits 1 if the simulator saw a case booked twice).
    assert sum(r["retries"] for r in rows) > 0
    assert b"0 booked twice" in completed.stdout
    for row in rows:
        for output in row["outputs"]:
            assert (tmp_path / "demo" / output).is_file()
        verdict = "accepted" if row["outcome"] == "delivered" else "rejected"
        if row["transport"] in ("xta2", "fitconnect"):
            # The portal (simulator) received a receipt whose outcome matches the hub's verdict.
            assert (row["receipt"]["channel"], row["receipt"]["outcome"]) == (
                row["transport"],
                verdict,
            )
            assert row["receipt"]["portal_has_it"] is True
        elif row["transport"] == "osci":
            # No way back over OSCI: the receipt record names the OSCI message id and the verdict.
            assert row["receipt"] == {
                "channel": "none",
                "outcome": verdict,
                "reason": row["reason"],
                "portal_has_it": None,
            }
        # The hub received each example the way the demo sent it: transport, connector, and a
        # MIME original exactly for the XTA message served as MTOM/XOP and the OSCI package.
        source = {"xta2": "xta", "fitconnect": "fitconnect"}.get(row["transport"], "filedrop")
        mime = row["mtom"] or row["transport"] == "osci"
        assert {"transport": row["transport"], "source": source, "mime": mime} == row["received"]
    # Every inbound path was taken: XTA inline and MTOM/XOP, FIT-Connect, the OSCI sub-inbox
    # with a metadata sidecar, the file drop; the MTOM message and the OSCI package delivered.
    by_path = {(r["transport"], r["mtom"]): r for r in rows}
    paths = {
        ("xta2", False),
        ("xta2", True),
        ("fitconnect", False),
        ("osci", False),
        ("file", False),
    }
    assert paths == set(by_path)
    mtom, osci = by_path[("xta2", True)], by_path[("osci", False)]
    assert ("delivered", True, "accepted") == (
        mtom["outcome"],
        mtom["received"]["mime"],
        mtom["receipt"]["outcome"],
    )
    assert ("delivered", "osci", "filedrop", "accepted") == (
        osci["outcome"],
        osci["received"]["transport"],
        osci["received"]["source"],
        osci["receipt"]["outcome"],
    )
    assert b"1 XTA MTOM/XOP" in completed.stdout
    assert b"1 OSCI package with metadata sidecar (osci sub-inbox)" in completed.stdout
    assert b"memory only" in completed.stderr + completed.stdout
    # Every audit event was chained and signed, and the chain verifies (exit 1 otherwise).
    assert b"0 not yet signed; `sozialhub audit verify`: intact." in completed.stdout
    # Report, replay, erase, replay again, verify again: all through the broker (exit 1 if not).
    out = completed.stdout.decode()
    assert re.search(
        r"Audit replay: (\d+) of \1 recorded submissions the same today \(exit 0\)", out
    )
    assert re.search(r"replay now finds 1 input\(s\) erased and \d+ the same \(exit 1\)", out)
    assert (tmp_path / "demo" / "transparency-report.html").is_file()
    assert out.count("`sozialhub audit verify`: intact.") == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_demo_stops_broker_and_worker_on_signal(tmp_path, signum):
    """A signal during the demo stops it promptly and leaves no broker or worker process behind."""
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "demo", "--workdir", str(tmp_path / "demo")],
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
    )
    # Wait until the broker and the worker both run (the worker is in its group join).
    deadline = time.monotonic() + 60
    children: list[int] = []
    while time.monotonic() < deadline and len(children) < 2:
        time.sleep(0.2)
        children = _children(process.pid)
    assert len(children) >= 2, "broker and worker should be running"
    process.send_signal(signum)
    started = time.monotonic()
    process.wait(timeout=60)
    assert time.monotonic() - started < 40
    time.sleep(0.5)
    assert [] == [pid for pid in children if os.path.exists(f"/proc/{pid}") and _state(pid) != "Z"]


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_demo_on_a_configured_cluster_uses_and_removes_its_own_topics(bootstrap_servers, tmp_path):
    """With KAFKA_BOOTSTRAP_SERVERS the demo never touches the production topics and cleans up after itself."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    before = set(admin.list_topics(timeout=10).topics)
    env = _environment() | {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
        "SOZIALHUB_REPLICATION_FACTOR": "1",
    }
    _, rows = _run_demo(env, tmp_path)
    assert len(EXPECTED) == len(rows)
    after = set(admin.list_topics(timeout=10).topics)
    assert set() == {t for t in after - before if t.startswith(("sozialhub.", "sozialhub-demo-"))}
