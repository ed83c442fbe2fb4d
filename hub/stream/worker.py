"""Run the Faust worker in this process (``sozialhub run``)."""

from __future__ import annotations

import os
import threading
from typing import Any

import faust
import structlog

from hub import context, topics
from hub.config import Settings
from hub.stream.app import WorkerOptions, create_app

log = structlog.get_logger(__name__)

STOP_GRACE_SECONDS = 15.0


class _Worker(faust.Worker):
    """Faust's worker with a deadline on shutdown.

    A SIGTERM during the initial consumer-group join can hang Faust for minutes
    (docs/operations.md). Nothing is committed that was not processed, so after
    a grace period the process simply exits; the group resumes from committed
    offsets.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spinner = None  # Faust's terminal spinner writes escape codes into the JSON log

    def _on_sigterm(self) -> None:
        self._arm_deadline()
        super()._on_sigterm()

    def _on_sigint(self) -> None:
        self._arm_deadline()
        super()._on_sigint()

    def _arm_deadline(self) -> None:
        timer = threading.Timer(STOP_GRACE_SECONDS, os._exit, args=(143,))
        timer.daemon = True
        timer.start()


def run(settings: Settings, options: WorkerOptions) -> int:
    hub = context.build(settings)
    specs = topics.load(settings)
    vendor_topics = context.check_vendor_topics(hub, specs)
    app = create_app(settings, hub, vendor_topics, options)
    log.info(
        "worker.starting",
        bootstrap=settings.bootstrap_servers,
        topic_prefix=settings.topic_prefix,
        inbound=options.inbound,
        outbound=options.outbound,
        web=f"http://{settings.web_host}:{settings.web_port}",
    )
    worker: Any = _Worker(
        app,
        loglevel=os.environ.get("SOZIALHUB_FAUST_LOGLEVEL", "WARNING"),
        quiet=True,
        redirect_stdouts=False,
    )
    worker.execute_from_commandline()  # returns only via SystemExit
    return 0
