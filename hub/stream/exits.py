"""How a worker ends when nothing of the work in hand may be committed.

The Faust agents, the audit chainer and the receipt senders all end the same way:
log one critical line (the event and the error's type, never its message) and
leave the process at once with :data:`EXIT_SEND_FAILED`, so no offset of the
batch in hand is committed and a supervisor restarts the worker. A leaf module,
so the consumer threads and the agents share it without an import cycle.
"""

from __future__ import annotations

import contextlib
import os
from typing import NoReturn

import structlog

log = structlog.get_logger(__name__)

EXIT_SEND_FAILED = 75  # EX_TEMPFAIL: a supervisor should restart the worker


def exit_without_commit(event: str, exc: BaseException) -> NoReturn:
    """End the process at once: no offset of the current batch can be committed."""
    with contextlib.suppress(Exception):  # logging itself may fail (full disk, broken pipe)
        log.critical(event, error=type(exc).__name__, action="exit without commit")
    os._exit(EXIT_SEND_FAILED)
