"""Outbound file drop: one file per delivery, written atomically.

Layout: ``<outbox>/<vendor>/<office>/<delivery id><suffix>``, and for formats whose
documents travel beside the record, ``<delivery id>.d<nn>.<ext>`` next to it. The file is
written under a hidden temporary name in the same directory, flushed to disk,
then hard-linked into place (which never overwrites), so a Fachverfahren import
job never sees half a file.
The delivery id is deterministic, so a redelivery finds the file already there
and is reported as a duplicate instead of being booked twice.

Rechtskreiswechsel messages forwarded from ``handovers.<vendor>`` (vendors on the file
channel have no Kafka principal) go to
``<outbox>/<vendor>/<office>/handovers/<message id>.<kind>.json``, written the same way
(:meth:`FileDropOutbox.handover_target`): each pair of message id and kind once.

Every delivery and every forwarded message also leaves an empty marker in
``<outbox>/.delivered/<vendor>/`` (named by its delivery id, or message id and kind): the ledger
that recognises a redelivery after the import job moved the file away.
Markers may be pruned once they are older than the retention of the vendor topics
(nothing older can be redelivered).

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
from collections.abc import Sequence
from pathlib import Path

_SAFE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,8}$")
_BESIDE = re.compile(r"^dlv-[0-9a-f]{32}\.d[0-9]{2,3}\.[a-z0-9]{1,8}$")
HANDOVERS = "handovers"  # <vendor>/<office>/handovers/: forwarded Rechtskreiswechsel messages


class UnsafeName(ValueError):  # noqa: N818 - reads as the condition it reports
    """A path component that could escape the outbox."""


STALE_SECONDS = 3600.0
LEDGER = ".delivered"  # hidden: import jobs read <vendor>/<office>/ only


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
        temporaries = [*self.root.glob("*/*/.*.part"), *self.root.glob(f"*/*/{HANDOVERS}/.*.part")]
        for path in temporaries:
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
        return self._inside(self.root / vendor / office / f"{delivery_id}{suffix}")

    def handover_target(self, vendor: str, office: str, message_id: str, kind: str) -> Path:
        """Where a forwarded Rechtskreiswechsel message goes:
        ``<outbox>/<vendor>/<office>/handovers/<message id>.<kind>.json``."""
        for part in (vendor, office, message_id, kind):
            if not _SAFE.match(part):
                raise UnsafeName("unsafe path component")
        name = f"{message_id}.{kind}.json"
        return self._inside(self.root / vendor / office / HANDOVERS / name)

    def _inside(self, target: Path) -> Path:
        # resolve() follows every symlink that exists on the way, also when the office
        # directory itself is not there yet.
        if not target.parent.resolve().is_relative_to(self.root.resolve()):
            raise UnsafeName("vendor or office directory leads out of the outbox")
        return target

    def _marker(self, target: Path) -> Path:
        """Ledger entry: ``<outbox>/.delivered/<vendor>/<delivery id | message id.kind>``."""
        vendor = target.relative_to(self.root).parts[0]
        return self.root / LEDGER / vendor / target.stem

    def _remember(self, target: Path) -> None:
        marker = self._marker(target)
        marker.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        _fsync_directory(marker.parent)

    def write(self, target: Path, body: bytes, beside: Sequence[tuple[str, bytes]] = ()) -> bool:
        """Write ``body`` atomically; False when the delivery was made before (duplicate).

        "Before" is judged by the ledger, not only by the file: a Fachverfahren import
        job may have taken the file away long ago, and a redelivery must not book the
        case twice.

        ``beside`` are (file name, bytes) of documents that travel next to the record.
        They are written first, each atomically, and the record last, so an import job
        that reacts to the record finds every document it references already complete.
        """
        if self._marker(target).exists():
            return False
        if target.exists():
            self._remember(target)  # written before a crash that came before the ledger entry
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        for name, data in beside:
            if not _BESIDE.match(name) or not name.startswith(target.stem + "."):
                raise UnsafeName("unsafe document file name")
            # A document left by a crashed earlier attempt has the same name and bytes.
            self._place(target.parent / name, data)
        if not self._place(target, body):
            return False
        self._remember(target)
        return True

    def _place(self, target: Path, body: bytes) -> bool:
        """Write one file under a temporary name, fsync, hard-link into place; False if it exists."""
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
        _fsync_directory(target.parent)
        return True


def _fsync_directory(path: Path) -> None:
    directory = os.open(path, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
