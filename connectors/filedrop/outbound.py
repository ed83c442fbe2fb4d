"""Outbound file drop: one file per delivery, written atomically.

Layout: ``<outbox>/<vendor>/<office>/<delivery id><suffix>``. The file is
written under a hidden temporary name in the same directory, flushed to disk,
then renamed into place, so a Fachverfahren import job never sees half a file.
The delivery id is deterministic, so a redelivery finds the file already there
and is reported as a duplicate instead of being booked twice.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

_SAFE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")


class UnsafeName(ValueError):  # noqa: N818 - reads as the condition it reports
    """A path component that could escape the outbox."""


class FileDropOutbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def target(self, vendor: str, office: str, delivery_id: str, suffix: str) -> Path:
        for part in (vendor, office, delivery_id):
            if not _SAFE.match(part):
                raise UnsafeName("unsafe path component")
        if not _SUFFIX.match(suffix):
            raise UnsafeName("unsafe suffix")
        return self.root / vendor / office / f"{delivery_id}{suffix}"

    def write(self, target: Path, body: bytes) -> bool:
        """Write ``body`` atomically; False when the delivery is already there (duplicate)."""
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return True
