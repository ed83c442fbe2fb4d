"""Shared steps of the integration tests (not fixtures: plain functions)."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from hub import config
from hub.config import Settings
from hub.core.outcomes import OutcomeTracker
from hub.core.pipeline import DEAD_LETTER
from hub.core.records import DeadLetter, decode
from hub.kafka import follow, follow_outcomes
from tests import clitools


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


def all_vendors_on_files(settings: Settings) -> Settings:
    """The shipped office table with every vendor on fv-xml files in the outbox.

    For tests that check delivered files one by one; every channel is tested through
    the broker in test_delivery_channels.py and test_demo.py.
    """
    table = yaml.safe_load(settings.offices_file.read_text("utf-8"))
    for vendor in table["vendors"].values():
        vendor["format"] = "fv-xml"
        vendor["delivery"] = {"channel": "file"}
    path = settings.data_dir / "offices-files-only.yml"
    path.write_text(yaml.safe_dump(table, allow_unicode=True), "utf-8")
    return settings.with_overrides(offices_file=path)


@contextlib.contextmanager
def cli_environment(settings: Settings, monkeypatch: Any) -> Iterator[None]:
    """``settings`` as the environment ``cli.main`` reads (every other SOZIALHUB_ variable
    removed); structlog and the root logger as they were afterwards (``main`` configures them)."""
    clitools.clear_environment(monkeypatch, ("SOZIALHUB_",))
    for name, value in config.to_environment(settings).items():
        monkeypatch.setenv(name, value)
    with clitools.logging_restored():
        yield
