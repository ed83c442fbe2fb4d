"""Running ``cli.main`` in tests: no machine settings leak in, and its logging set-up is undone."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import structlog

PREFIXES = ("SOZIALHUB_", "KAFKA_")


def clear_environment(monkeypatch: Any, prefixes: tuple[str, ...] = PREFIXES) -> None:
    """Remove every variable with one of ``prefixes`` (undone with ``monkeypatch``)."""
    for name in list(os.environ):
        if name.startswith(prefixes):
            monkeypatch.delenv(name)


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """``main`` configures structlog and the root logger for the current stderr: undo that."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)
        root.handlers[:] = handlers
        root.setLevel(level)


@contextlib.contextmanager
def isolated(monkeypatch: Any) -> Iterator[None]:
    """No SOZIALHUB_*/KAFKA_* variables, and the logging configuration restored afterwards."""
    clear_environment(monkeypatch)
    with logging_restored():
        yield
