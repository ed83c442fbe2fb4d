"""Inbound file drop: a watched directory of submissions.

Writers put a file into the inbox atomically (write elsewhere or under a name
starting with ``.`` or ending in ``.part``/``.tmp``, then rename). Before reading a
file the connector claims it: renames it into a claim of its own in the inbox's
hidden claim directory, ``<inbox>/.sozialhub-claimed/<claim>/<name>``
(:mod:`connectors.filedrop.claims`). From then on the hub works only on the claimed
file, which writers never touch: a file a writer renames over the name afterwards
is a new file in the inbox, taken as itself on a later pass. A claim that fails
because the file is gone (another worker claimed it) is skipped quietly; any other
failure leaves the file in the inbox, remembered by this process and never tried
again by it.

The connector buffers at most ``max_bytes`` of each file (a larger one is only
hashed, then set aside and dead-lettered as ``SIZE``); a claimed file moves out
(:meth:`FileDropInbox.release`) only after Kafka acknowledged the record made from
it. A crash in between leaves it claimed: the next process takes claims left
behind first (:meth:`FileDropInbox.pending`, log event ``filedrop.retaken``) and
sends them again, with the same name and bytes, so the same content-addressed
submission id lets everything downstream deduplicate.
"""

from __future__ import annotations

import os
from pathlib import Path

import structlog

from connectors.filedrop.claims import CannotClaim, ClaimDirectory, InboxFile, Unreadable

__all__ = [
    "IGNORED_SUFFIXES",
    "CannotClaim",
    "FileDropInbox",
    "InboxFile",
    "Unreadable",
    "listable",
]

IGNORED_SUFFIXES = (".part", ".tmp", ".partial", ".swp")

log = structlog.get_logger(__name__)


def listable(entry: os.DirEntry[str]) -> bool:
    """Whether an inbox entry is a file ready to be taken (not being written, not the claims)."""
    name = entry.name
    return (
        entry.is_file(follow_symlinks=False)
        and not name.startswith(".")  # being written; also the claim directory (a directory)
        and not name.lower().endswith(IGNORED_SUFFIXES)
    )


class FileDropInbox:
    def __init__(self, inbox: Path, archive: Path | None, max_bytes: int) -> None:
        self.inbox = inbox
        self.archive = archive
        aside = archive or inbox.parent / "rejected"
        self.rejected = aside / "oversize"
        self.unreadable = aside / "unreadable"
        self.max_bytes = max_bytes
        self.claims = ClaimDirectory(inbox)
        self._stuck: set[str] = set()  # inbox names this process could not claim
        self._left: list[Path] | None = None  # claimed files an earlier process left, not taken yet
        inbox.mkdir(parents=True, exist_ok=True)

    def pending(self, limit: int = 500) -> list[Path]:
        """Files to take: the claimed files an earlier process left, then the inbox's by name.

        The claim directory is looked at once, on first use (this call or
        :meth:`claim`): what an earlier process left there (claimed, maybe sent, not moved out) comes first, as claimed
        paths, until taken. Inbox files come as inbox paths; :meth:`claim` them.
        """
        names = sorted(
            entry.name
            for entry in os.scandir(self.inbox)
            if listable(entry) and entry.name not in self._stuck
        )
        return [*self._left_claimed(), *(self.inbox / name for name in names)][:limit]

    def _left_claimed(self) -> list[Path]:
        """What an earlier process left claimed, found on the first use of this inbox, not taken yet."""
        if self._left is None:
            self._left = self._find_left()
        return self._left

    def _find_left(self) -> list[Path]:
        try:
            left = [claim / name for claim, names in self.claims.left() for name in names]
        except OSError as exc:
            log.error("filedrop.cannot_claim", errno=exc.errno)  # noqa: TRY400 - no traceback
            return []
        if left:
            log.warning("filedrop.retaken", files=len(left))
        return left

    def claim(self, path: Path) -> Path | None:
        """Rename an inbox file into a claim; its claimed path, to read and move out from.

        None if the file is gone (another worker claimed it, or its writer took it
        back). A path :meth:`pending` gave from the claim directory is claimed already
        and comes back as it is. Raises :class:`CannotClaim` (and skips the name from
        then on) if the rename fails otherwise (permissions, another file system...).
        """
        left = self._left_claimed()  # before the first claim of its own
        if self.claims.holds(path):
            if path in left:
                left.remove(path)
            return path
        try:
            return self.claims.claim(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._stuck.add(path.name)
            raise CannotClaim(exc.errno, "cannot claim inbox file") from None

    def read(self, path: Path) -> InboxFile | None:
        """Read a claimed file without buffering more than the limit; ``None`` if it is gone.

        It is opened without following symlinks and must be a regular file, so a link
        renamed over the name before the claim is never followed (:class:`Unreadable`).
        """
        return self.claims.read(path, self.max_bytes)

    def release(self, path: Path, submission_id: str) -> bool:
        """Kafka has the record: move the claimed file to the archive, or delete it."""
        target = None if self.archive is None else self.archive / f"{submission_id}.xml"
        return self._out(path, target)

    def set_aside(self, path: Path, sha256: str) -> bool:
        """An oversize file: keep it, out of the inbox, for an operator to look at."""
        return self._out(path, self.rejected / f"sha256-{sha256}")

    def quarantine(self, path: Path) -> bool:
        """An unreadable file: out of the inbox under its own name, for an operator."""
        return self._out(path, self.unreadable / path.name)

    def _out(self, path: Path, target: Path | None) -> bool:
        """Move (or, without a target, delete) a claimed file; False if it cannot move.

        A file that cannot move stays claimed: this process leaves it, the next one
        takes it again.
        """
        if not self.claims.moved(path, target):
            return False
        self.claims.drop(path.parent)
        return True
