"""The file drop's ``osci`` sub-inbox: OSCI content packages with their metadata sidecars.

The hub does not speak the OSCI dialog. The office's OSCI client (the
Governikus OSCI library or a product built on it) authenticates Author and
Reader, fetches a delivery and hands it over here as a pair of files in
``<inbox>/osci/``:

- ``<name>``: the content package exactly as the client got it (MIME
  ``multipart/related`` or XML, :mod:`hub.core.transport.osci`); any name that
  does not end in ``.json``;
- ``<name>.json``: its metadata sidecar, the client's authenticated transport
  metadata (:mod:`hub.core.transport.osci_handover`).

Each file is written atomically, like every inbox file: under an ignored name
(leading ``.``, or ``.part``/``.tmp``/``.partial``/``.swp``), then renamed. The
pair is taken together once both are there, in name order. A package whose
sidecar has not arrived ``pair_seconds`` after this process first saw it is
taken alone and refused (``METADATA``); a sidecar whose package has not arrived
by then is an orphan and set aside. Nothing leaves the inbox before the records
made from it are acknowledged by Kafka: the caller sends them first, then calls
:meth:`OsciInbox.release` or :meth:`OsciInbox.set_aside`. The package moves
first, so a crash in between leaves at most its sidecar behind (later an orphan),
never a package without its metadata.

Where files go (``<aside>`` is the archive, or ``<inbox>/../rejected`` without one):

- taken: ``<archive>/<submission id>.osci`` and ``….osci.json`` (deleted without archive);
- refused unread (``SIZE``, ``METADATA``): ``<aside>/oversize/`` or ``<aside>/metadata/``,
  as ``sha256-<SHA-256 of the package>`` and ``….json``;
- unreadable (either file): ``<aside>/unreadable/<name>``;
- orphaned sidecars: ``<aside>/orphaned/<name>``.

The directory is not created: it is made for the OSCI client, which writes the
files, and the hub's user, which renames and deletes them; nobody else may write
there. A directory the hub cannot list is reported (``OsciListing.error``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from connectors.filedrop.inbound import (
    IGNORED_SUFFIXES,
    InboxFile,
    move_or_remember,
    read_file,
)
from hub.core.transport.osci_handover import MAX_METADATA_BYTES

SUBDIRECTORY = "osci"
METADATA_SUFFIX = ".json"
ARCHIVE_SUFFIX = ".osci"
DEFAULT_PAIR_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class OsciHandover:
    """One package to take: with its sidecar, or without one (``metadata`` None) once overdue."""

    package: Path
    metadata: Path | None


@dataclass(frozen=True, slots=True)
class OsciListing:
    """What one scan of the sub-inbox found."""

    ready: list[OsciHandover]
    waiting: int  # packages whose sidecar is not there yet (not overdue)
    orphans: list[Path]  # sidecars whose package did not arrive in time
    error: int | None = None  # errno when the directory could not be listed (e.g. permissions)


@dataclass(frozen=True, slots=True)
class OsciFiles:
    """A pair as read: the package (bounded like every inbox file) and its sidecar's bytes.

    ``metadata`` is None when there is no sidecar, and also when it is larger than
    the sidecar limit (``metadata_too_large``): it is never buffered then.
    """

    package: InboxFile
    metadata: bytes | None
    metadata_too_large: bool = False


class OsciInbox:
    def __init__(
        self,
        inbox: Path,
        archive: Path | None,
        max_bytes: int,
        pair_seconds: float = DEFAULT_PAIR_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = inbox / SUBDIRECTORY
        self.archive = archive
        aside = archive or inbox.parent / "rejected"
        self.oversize = aside / "oversize"
        self.refused = aside / "metadata"
        self.unreadable = aside / "unreadable"
        self.orphaned = aside / "orphaned"
        self.max_bytes = max_bytes
        self.pair_seconds = pair_seconds
        self._clock = clock
        self._first_seen: dict[str, float] = {}  # name -> when this process first saw it alone
        self._stuck: set[str] = set()  # files this process could not move out of the inbox
        self._read_as: dict[str, tuple[int, int]] = {}  # name -> identity of the file read

    def scan(self, limit: int = 500) -> OsciListing:
        """Pairs ready to be taken (name order, at most ``limit``), waiting packages, orphans."""
        try:
            entries = list(os.scandir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            return OsciListing([], 0, [])
        except OSError as exc:  # e.g. no permission: reported, and polled again
            return OsciListing([], 0, [], error=exc.errno or 0)
        names = {
            entry.name
            for entry in entries
            if entry.is_file(follow_symlinks=False)
            and not entry.name.startswith(".")
            and not entry.name.lower().endswith(IGNORED_SUFFIXES)
            and entry.name not in self._stuck
        }
        now = self._clock()
        ready: list[OsciHandover] = []
        orphans: list[Path] = []
        waiting = 0
        alone: set[str] = set()
        for name in sorted(names):
            if name.endswith(METADATA_SUFFIX):
                if name.removesuffix(METADATA_SUFFIX) not in names:
                    alone.add(name)
                    if self._overdue(name, now):
                        orphans.append(self.directory / name)
                continue
            sidecar = name + METADATA_SUFFIX
            if sidecar in names:
                ready.append(OsciHandover(self.directory / name, self.directory / sidecar))
                continue
            alone.add(name)
            if self._overdue(name, now):
                ready.append(OsciHandover(self.directory / name, None))
            else:
                waiting += 1
        # A file that found its partner (or left) starts afresh if it is ever alone again.
        self._first_seen = {n: t for n, t in self._first_seen.items() if n in alone}
        return OsciListing(ready[:limit], waiting, orphans)

    def _overdue(self, name: str, now: float) -> bool:
        first = self._first_seen.setdefault(name, now)
        return now - first >= self.pair_seconds

    def read(self, handover: OsciHandover) -> OsciFiles | None:
        """Read the pair (no symlinks, regular files only); None if the package vanished.

        Raises :class:`connectors.filedrop.inbound.Unreadable` if either file cannot
        be read. A sidecar that vanished in between reads as no sidecar.
        """
        package = read_file(handover.package, self.max_bytes)
        if package is None:
            return None
        self._read_as[handover.package.name] = package.identity
        if handover.metadata is None:
            return OsciFiles(package, None)
        # Only "too large" matters of a sidecar over its limit: no need to read it to its end.
        metadata = read_file(handover.metadata, MAX_METADATA_BYTES, digest_all=False)
        if metadata is None:
            return OsciFiles(package, None)
        self._read_as[handover.metadata.name] = metadata.identity
        return OsciFiles(package, metadata.data, metadata_too_large=metadata.data is None)

    def release(self, handover: OsciHandover, submission_id: str) -> bool:
        """Kafka has the record: archive the pair under the submission id, or delete it."""
        if self.archive is None:
            return self._out(handover, None, None)
        target = self.archive / f"{submission_id}{ARCHIVE_SUFFIX}"
        return self._out(handover, target, Path(f"{target}{METADATA_SUFFIX}"))

    def set_aside(self, handover: OsciHandover, sha256: str, reason: str) -> bool:
        """Refused unread (``SIZE`` or ``METADATA``): keep the pair for an operator."""
        directory = self.oversize if reason == "SIZE" else self.refused
        target = directory / f"sha256-{sha256}"
        return self._out(handover, target, Path(f"{target}{METADATA_SUFFIX}"))

    def quarantine(self, handover: OsciHandover) -> bool:
        """Unreadable: both files out of the inbox under their own names, for an operator."""
        metadata = handover.metadata
        sidecar = None if metadata is None else self.unreadable / metadata.name
        return self._out(handover, self.unreadable / handover.package.name, sidecar)

    def set_orphan_aside(self, sidecar: Path) -> bool:
        """A sidecar without its package: out of the inbox under its own name."""
        return self._move(sidecar, self.orphaned / sidecar.name)

    def _out(self, handover: OsciHandover, package: Path | None, sidecar: Path | None) -> bool:
        # The package first: a crash in between leaves an orphaned sidecar, never a package
        # that would be refused for want of metadata it had.
        if not self._move(handover.package, package):
            if handover.metadata is not None:
                self._stuck.add(handover.metadata.name)  # stays with its package
            return False
        return handover.metadata is None or self._move(handover.metadata, sidecar)

    def _move(self, path: Path, target: Path | None) -> bool:
        # Only the file that was read moves: one renamed over it since stays, to be taken anew.
        return move_or_remember(path, target, self._stuck, self._read_as.pop(path.name, None))
