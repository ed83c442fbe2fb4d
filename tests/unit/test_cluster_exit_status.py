"""One rule for every command that talks to the cluster: no answer is exit 75, try again.

Exit 1 stays the command's own negative answer (a finding, a difference, a refusal,
not confirmed), exit 2 a usage or configuration error (a missing topic included).
A cluster that does not answer is neither: each command below is pointed at a
bootstrap address nobody listens on and must end with 75 and say so, without a
traceback. The reader and producer timeouts are shortened for the test.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from hub import cli, dlq
from hub.sim import pki
from tests import clitools

PERSON = "psn-dev-" + "7" * 32
IDNR = "86095742719"
NOBODY = "127.0.0.1:1"


@pytest.fixture(autouse=True)
def unreachable(monkeypatch, tmp_path):
    """A clean environment, a cluster that never answers, timeouts of a second."""
    with clitools.isolated(monkeypatch):
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", NOBODY)
        monkeypatch.setattr(dlq, "METADATA_TIMEOUT", 1.0)
        monkeypatch.setattr(dlq, "IDLE_TIMEOUT", 1.0)
        monkeypatch.setattr(dlq, "ACK_TIMEOUT", 1.0)
        yield


def kek_file(directory: Path) -> Path:
    path = directory / "kek.json"
    key = base64.b64encode(os.urandom(32)).decode("ascii")
    path.write_text(json.dumps({"kid": "kek1", "key": key}))
    return path


def trust_file(directory: Path) -> Path:
    """A certificate to trust (any will do: nothing is read to check against it)."""
    return pki.create(directory / "pki").ca


@pytest.mark.parametrize(
    ("argv", "setup"),
    [
        (["dlq", "list"], None),
        (["dlq", "show", "dlq-" + "0" * 32], None),
        (["audit", "report", "--person", PERSON], None),
        (["audit", "erase", "--person", PERSON, "--yes"], None),
        (["audit", "rewrap"], "kek"),
        (["audit", "verify"], "trust"),
        (["audit", "replay", "--from", "2026-11-01", "--to", "2026-11-02"], "kek"),
        (["consent", "show", "--development-key", "--person-id", IDNR], None),
        (["receipts", "resend", "sub-" + "0" * 32, "--yes"], None),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else str(v),
)
def test_a_cluster_that_does_not_answer_is_exit_75(argv, setup, tmp_path, monkeypatch, capsys):
    if setup == "kek":
        monkeypatch.setenv("SOZIALHUB_AUDIT_KEK_FILE", str(kek_file(tmp_path)))
    if setup == "trust":
        argv = [*argv, "--trust", str(trust_file(tmp_path))]
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert (dlq.EXIT_CLUSTER_FAILED, "Traceback" in err) == (status, False)
    assert f"sozialhub {argv[0]}" in err


def test_a_missing_topic_is_a_configuration_error_and_anything_else_is_75():
    """The one rule (hub.dlq.command_error): a missing topic says how to fix it, exit 2."""
    message, status = dlq.command_error(dlq.MissingTopicError("no topic t.audit.chain"))
    assert (2, True) == (status, "SOZIALHUB_TOPIC_PREFIX" in message)
    message, status = dlq.command_error(dlq.DlqError("the cluster did not answer within 1 s"))
    assert (75, "the cluster did not answer within 1 s") == (status, message)
