"""structlog set-up: JSON lines off a terminal, readable console output on one."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Libraries whose DEBUG/INFO output quotes payload content.
QUIET_LIBRARIES = ("signxml", "xmlschema", "joserfc")


def _drop_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Last line of defence: mask any key that looks like a secret."""
    for key in list(event):
        lowered = key.lower()
        if any(word in lowered for word in ("password", "secret", "token", "private_key")):
            event[key] = "**********"
    return event


def configure(level: str = "INFO", fmt: str = "auto", stream: Any = None) -> None:
    out = stream or sys.stderr
    console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_secrets,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Third-party libraries (Faust, aiokafka) log through the standard library: keep them quiet
    # and on the same stream.
    logging.basicConfig(
        level=logging.WARNING, stream=out, format="%(levelname)s %(name)s %(message)s"
    )
    # signxml logs canonicalised signed content at DEBUG, and xmlschema/lxml quote values in
    # their messages: pin them to WARNING whatever the root level, so --log-level debug never
    # writes payload data (bad-inputs step 5).
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)
