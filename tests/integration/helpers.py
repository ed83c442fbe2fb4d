"""Shared steps of the integration tests (not fixtures: plain functions)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from hub.config import Settings
from hub.core.outcomes import OutcomeTracker
from hub.core.pipeline import DEAD_LETTER
from hub.core.records import DeadLetter, decode
from hub.kafka import follow, follow_outcomes


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def outcomes(
    settings: Settings, expected: set[str], timeout: float, at_least: int | None = None
) -> OutcomeTracker:
    """Follow the audit log until every expected submission is final (or ``at_least`` are)."""
    if at_least is None:
        return follow_outcomes(settings, expected, timeout)
    return follow_outcomes(
        settings, expected, timeout, lambda t: sum(t.get(s).final for s in expected) >= at_least
    )


def dead_letters(settings: Settings, expected: set[str], timeout: float = 30.0) -> list[DeadLetter]:
    found: list[DeadLetter] = []
    seen = lambda: expected <= {d.submission_id for d in found}  # noqa: E731
    found.extend(
        decode(m.value(), DeadLetter) for m in follow(settings, DEAD_LETTER, seen, timeout)
    )
    return found


def drop(inbox: Path, name: str, data: bytes) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    temporary = inbox / f".{name}.part"
    temporary.write_bytes(data)
    temporary.replace(inbox / name)
