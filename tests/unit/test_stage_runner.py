"""The stream adapter's per-record runner: log context and never-raising behaviour."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from structlog.testing import capture_logs

from hub.core.errors import Reason, Rejection
from hub.stream.app import run_stage


def event(key: bytes) -> SimpleNamespace:
    return SimpleNamespace(
        value=b"{}",
        message=SimpleNamespace(
            key=key, value=b"", topic="t.submissions.received", partition=0, offset=7
        ),
    )


def refuse(_source):
    raise Rejection(Reason.ENVELOPE, "type")


def explode(_source):
    raise RuntimeError("Erika Mustermann 1985-04-12")


@pytest.mark.parametrize("compute", [refuse, explode], ids=["rejection", "bug"])
def test_foreign_key_and_error_text_never_reach_the_logs(compute):
    """A foreign producer's key (may be personal data) and exception texts are not logged; a dead letter results."""
    with capture_logs() as logs:
        emits = run_stage("intake", event(b"Mustermann, Erika"), compute)
    text = repr(logs)
    assert "Mustermann" not in text
    assert "1985" not in text
    assert ["submissions.deadletter", "audit.log"] == [e.topic for e in emits]


def test_own_ids_are_bound_as_context():
    """While a record is processed, the hub's own submission id and the stage are the log context."""
    import structlog

    sid = "sub-" + "ab" * 16
    seen = {}

    def remember(_source):
        seen.update(structlog.contextvars.get_contextvars())
        raise Rejection(Reason.ENVELOPE, "type")

    run_stage("intake", event(sid.encode()), remember)
    assert {"stage": "intake", "submission_id": sid} == seen


def test_foreign_key_is_not_bound_as_context():
    """A key that is not a hub id is bound only as 'unrecognised'."""
    import structlog

    seen = {}

    def remember(_source):
        seen.update(structlog.contextvars.get_contextvars())
        raise Rejection(Reason.ENVELOPE, "type")

    run_stage("intake", event(b"Mustermann, Erika"), remember)
    assert {"stage": "intake", "key": "unrecognised"} == seen
