"""The FIT-Connect answer index: which submissions the hub has answered, with which SET.

Folded from ``submissions.receipts`` (every record with channel ``fitconnect``)
in a background thread, like the replay index (:mod:`hub.stream.seen`). The
receiver asks it before it fetches a submission the delivery service lists:
a known answer is sent again (the same SET) instead of fetching and handing
the submission over once more (``FitConnectReceiver(answered=index.get)``).

The first receipt of a FIT-Connect submission wins: a later one for the same
submission (intake re-run after a crash, or a submission fetched again) is
never allowed to replace the answer the hub gave first. Only answers of the
last ``RELEVANT`` are kept (the delivery service rejects a submission itself
after 14 days, and never lists it after that), at most ``MAX_ANSWERS``; only
records of that window (by record timestamp, with ``READ_MARGIN``) are read.
Nothing here decides anything, and no SET is logged.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Callable

import structlog

from hub.config import Settings
from hub.core.errors import Rejection
from hub.core.pipeline import RECEIPTS
from hub.core.records import PortalReceipt, decode, unb64
from hub.stream.follow import follow_compacted, in_background

log = structlog.get_logger(__name__)

RELEVANT = dt.timedelta(days=15)
MAX_ANSWERS = 20_000
# How much earlier than RELEVANT the topic is read from, by record timestamp: a record's
# timestamp (its producer's clock) and its receipt's time (intake's) may differ a little.
READ_MARGIN = dt.timedelta(days=1)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AnswerIndex:
    """FIT-Connect submission id -> (case id, SET) of the hub's first answer. Thread-safe."""

    def __init__(
        self, *, max_answers: int = MAX_ANSWERS, clock: Callable[[], dt.datetime] = _utc_now
    ) -> None:
        self._answers: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._max = max_answers
        self._clock = clock
        self._lock = threading.Lock()
        self.loaded = threading.Event()
        self.failed = False
        self.read = 0  # records taken, usable or not

    def __len__(self) -> int:
        with self._lock:
            return len(self._answers)

    def get(self, submission_id: str) -> tuple[str, str] | None:
        """The case id and SET the hub answered ``submission_id`` with, or None."""
        with self._lock:
            return self._answers.get(submission_id.lower())

    def take(self, value: bytes | None) -> None:
        """Fold one ``submissions.receipts`` record value; anything but a usable FIT-Connect answer is skipped."""
        self.read += 1
        if value is None:
            return
        try:
            receipt = decode(value, PortalReceipt)
            token = unb64(receipt.body_b64 or "").decode("ascii")
            at = dt.datetime.fromisoformat(receipt.at)
        except (Rejection, UnicodeDecodeError, ValueError, TypeError):
            log.warning("fitconnect_answers.foreign_record")  # not ours: ignored, never trusted
            return
        message, case = receipt.transport_message_id, receipt.case_id
        if receipt.channel != "fitconnect" or not (message and case and token):
            return
        if at.tzinfo is None or self._clock() - at > RELEVANT:
            return
        with self._lock:
            if message.lower() in self._answers:
                return  # the first answer stays the answer
            self._answers[message.lower()] = (case.lower(), token)
            while len(self._answers) > self._max:
                self._answers.popitem(last=False)

    def follow(self, settings: Settings, stop: threading.Event) -> None:
        """Read ``submissions.receipts`` from the records of the last ``RELEVANT`` (and a
        day's margin) on; set ``loaded`` at its end; keep following. The topic keeps 90
        days: reading only the window keeps a worker's start short."""
        if not follow_compacted(
            settings,
            RECEIPTS,
            stop,
            group="fitconnect-answers",
            name="fitconnect_answers",
            missing="receipts topic missing: run `sozialhub topics apply`",
            take=lambda _key, value: self.take(value),
            loaded=self.loaded,
            on_loaded=lambda: log.info(
                "fitconnect_answers.loaded", answers=len(self), read=self.read
            ),
            since=self._clock() - RELEVANT - READ_MARGIN,
        ):
            self.failed = True


def start(settings: Settings) -> tuple[AnswerIndex, threading.Event]:
    """A loading index and the event that stops its follower thread."""
    index = AnswerIndex()
    return index, in_background(index, settings, "fitconnect-answers")
