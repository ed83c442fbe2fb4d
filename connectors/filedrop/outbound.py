"""Outbound file drop: one file per delivery, written atomically.

Layout: ``<outbox>/<vendor>/<office>/<delivery id><suffix>``. The file is
written under a hidden temporary name in the same directory, flushed to disk,
then hard-linked into place (which never overwrites), so a Fachverfahren import
job never sees half a file.
The delivery id is deterministic, so a redelivery finds the file already there
and is reported as a duplicate instead of being booked twice.

A writer killed mid-write leaves a hidden temporary (``.<host>-<pid>-*.part``).
On start the outbox removes temporaries of dead writers on this host, and any
older than an hour (writers on other hosts sharing the volume).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import tempfile
import time
from pathlib import Path

_SAFE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")


class UnsafeName(ValueError):  # noqa: N818 - reads as the condition it reports
    """A path component that could escape the outbox."""


STALE_SECONDS = 3600.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class FileDropOutbox:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._host = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
        root.mkdir(parents=True, exist_ok=True)

    def sweep(self, now: float | None = None) -> int:
        """Remove temporaries left by crashed writers; return how many."""
        moment = time.time() if now is None else now
        removed = 0
        for path in self.root.glob("*/*/.*.part"):
            host, _, rest = path.name[1:].partition("-")
            pid_text = rest.partition("-")[0]
            dead_here = host == self._host and pid_text.isdigit() and not _alive(int(pid_text))
            with contextlib.suppress(FileNotFoundError):
                if dead_here or moment - path.stat().st_mtime > STALE_SECONDS:
                    path.unlink()
                    removed += 1
        return removed

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
        fd, temporary = tempfile.mkstemp(
            dir=target.parent, prefix=f".{self._host}-{os.getpid()}-", suffix=".part"
        )
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(body)
                handle.flush()
                os.fsync(handle.fileno())
            # link() refuses to overwrite, so two writers of one delivery cannot both book it.
            os.link(temporary, target)
        except FileExistsError:
            return False
        finally:
            Path(temporary).unlink(missing_ok=True)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return True
