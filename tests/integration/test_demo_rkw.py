"""`sozialhub demo --scenario ukraine-2022` as users run it, with 40 people instead of 500."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from hub import demo_rkw

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COUNT = 40


def _environment() -> dict[str, str]:
    """A user's shell: no cluster configured, so the embedded broker is used."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "SOZIALHUB_"))}


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("ukraine-2022")
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub",
            "demo",
            "--scenario",
            "ukraine-2022",
            "--count",
            str(COUNT),
            "--json",
            "--workdir",
            str(workdir / "demo"),
        ],
        env=_environment(),
        capture_output=True,
        timeout=300,
        check=False,
        cwd=workdir,
    )
    lines = [line for line in completed.stdout.decode().splitlines() if line.startswith("{")]
    assert completed.returncode == 0, (lines[-1:], completed.stderr.decode()[-2000:])
    assert len(lines) == 1
    return json.loads(lines[0])


def test_every_person_is_handled_exactly_once(summary):
    persons = summary["persons"]
    assert summary["problems"] == []
    assert summary["pending"] == 0
    assert sorted(p["number"] for p in persons) == list(range(COUNT))
    assert all(p["handled"] == 1 for p in persons)
    groups = {g: sum(p["group"] == g for p in persons) for g in ("consent", "without", "revokes")}
    assert groups == {"consent": 34, "without": 4, "revokes": 2}
    assert summary["groups"] == groups
    # One message per addressed office per person: new, old and three affected offices.
    assert summary["messages"] == 5 * COUNT
    assert sum(summary["by_role"]["new-office"].values()) == COUNT
    assert summary["by_role"]["old-office"] == {"confirmation": COUNT}


def test_consent_gives_a_handover_and_none_a_data_free_notice(summary):
    for person in summary["persons"]:
        if person["group"] == "consent":
            assert (person["planned"], person["kind"]) == ("handover", "handover"), person
            assert set(person["categories"]) <= set(demo_rkw.CONSENT_CATEGORIES)
            assert {"household", "income", "residence-status"} <= set(person["categories"])
        elif person["group"] == "without":
            assert person["kind"] == "notice", person
            assert person["reason"] == "CONSENT_MISSING"
            assert person["categories"] == []
    assert summary["new_office"]["denied_or_withheld"] == {}


def test_no_data_leaves_after_a_revocation_is_folded(summary):
    revokers = [p for p in summary["persons"] if p["group"] == "revokes"]
    assert len(revokers) == summary["revocations"]["produced"] == summary["revocations"]["folded"]
    for person in revokers:
        folded, decided = person["revocation_folded_at"], person["decided_at"]
        assert folded is not None
        assert decided is not None
        if person["planned"] == "notice" or decided > folded:
            # Revoked before the send: a data-free notice, whatever was planned.
            assert (person["kind"], person["categories"]) == ("notice", []), person
            assert person["reason"] == "CONSENT_REVOKED"
        elif decided < folded:
            # The send was decided before the worker knew: the consent still covered it.
            assert person["kind"] == "handover", person
        else:  # the same millisecond: either, but a notice carries nothing
            assert person["kind"] == "handover" or person["categories"] == [], person
    assert summary["revocations"]["data_after_revocation"] == 0
    # Affected offices never get personal data categories on the Jobcenter's consent.
    assert all(not label.endswith("with-data") for label in summary["by_role"]["affected"])
