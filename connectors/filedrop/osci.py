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
by then is an orphan and set aside.

Taking a pair starts with claiming it (:mod:`connectors.filedrop.claims`): both
files are renamed into one new claim, ``osci/.sozialhub-claimed/<claim>.claiming/``,
the sidecar first, then the package; once both are in, the claim is renamed to
its final name ``<claim>``. The pair is read (the sidecar first), sent and moved
out from there only, so a file the client renames over either name after the
claim is a new handover, never half of this one. The order keeps a package from
ever being claimed without its metadata: a crash between the two renames leaves
a ``.claiming`` claim holding the sidecar, which the next process completes with
the package from the inbox (or, if the package is gone, sets aside as an
orphan). A package whose rename fails for another reason stays in the inbox with
its sidecar claimed; this process skips it, the next one tries again. Only the two
files a scan listed together are claimed as one pair: each claimed file must be the
listed one (:func:`connectors.filedrop.claims.identity`, kept in the ``.claiming``
claim's name for a completion after a crash); a file replaced meanwhile makes the
other an orphan, never its partner.

Nothing leaves the claim before the records made from it are acknowledged by
Kafka: the caller sends them first, then calls :meth:`OsciInbox.release` or
:meth:`OsciInbox.set_aside`. The package moves out first, so a crash in between
leaves at most its sidecar in the claim (an orphan for the next process), never
a package without its metadata. The next process takes the claims an earlier one
left first (:meth:`OsciInbox.scan`, log event ``filedrop.retaken``): a pair is sent
again with the same sidecar, so with the same submission id.

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

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from connectors.filedrop.claims import (
    CLAIMING_SUFFIX,
    CannotClaim,
    ClaimDirectory,
    Identity,
    InboxFile,
    identity,
)
from connectors.filedrop.inbound import listable
from hub.core.transport.osci_handover import MAX_METADATA_BYTES

SUBDIRECTORY = "osci"
METADATA_SUFFIX = ".json"
ARCHIVE_SUFFIX = ".osci"
DEFAULT_PAIR_SECONDS = 300.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OsciHandover:
    """One package to take: with its sidecar, or without one (``metadata`` None) once overdue.

    ``listed`` are the identities of the package and the sidecar as the scan found them
    together (:func:`connectors.filedrop.claims.identity`): only these two files are
    ever claimed as one pair.
    """

    package: Path
    metadata: Path | None
    listed: tuple[Identity, Identity] | None = None


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


def _pairs(names: set[str]) -> tuple[list[tuple[str, str | None]], list[str]]:
    """Packages in name order with their sidecar's name (None: none there), and sidecars alone."""
    packages: list[tuple[str, str | None]] = []
    alone: list[str] = []
    for name in sorted(names):
        if name.endswith(METADATA_SUFFIX):
            if name.removesuffix(METADATA_SUFFIX) not in names:
                alone.append(name)
            continue
        sidecar = name + METADATA_SUFFIX
        packages.append((name, sidecar if sidecar in names else None))
    return packages, alone


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
        self.claims = ClaimDirectory(self.directory)
        self._clock = clock
        self._first_seen: dict[str, float] = {}  # name -> when this process first saw it alone
        self._stuck: set[str] = set()  # inbox names this process could not claim
        # What an earlier process left claimed and this one has not taken yet: pairs, orphans.
        self._left: tuple[list[OsciHandover], list[Path]] | None = None

    def scan(self, limit: int = 500) -> OsciListing:
        """Pairs ready to be taken (name order, at most ``limit``), waiting packages, orphans.

        The claim directory is looked at once, on first use (a scan that finds the
        sub-inbox, or a claim): what an earlier process left claimed comes first
        (claimed paths), until taken; :meth:`claim` the rest.
        """
        try:
            entries = list(os.scandir(self.directory))
        except (FileNotFoundError, NotADirectoryError):
            return OsciListing([], 0, [])
        except OSError as exc:  # e.g. no permission: reported, and polled again
            return OsciListing([], 0, [], error=exc.errno or 0)
        left_ready, left_orphans = self._left_claimed()
        listed = {e.name: e for e in entries if listable(e) and e.name not in self._stuck}
        names = set(listed)
        now = self._clock()
        packages, sidecars = _pairs(names)
        ready: list[OsciHandover] = []
        orphans = [self.directory / name for name in sidecars if self._overdue(name, now)]
        waiting = 0
        alone = set(sidecars)
        for name, sidecar in packages:
            if sidecar is not None:
                pair = _identities(listed[name], listed[sidecar])
                if pair is not None:  # else one of them just left: listed again next time
                    directory = self.directory
                    ready.append(OsciHandover(directory / name, directory / sidecar, pair))
                continue
            alone.add(name)
            if self._overdue(name, now):
                ready.append(OsciHandover(self.directory / name, None))
            else:
                waiting += 1
        # A file that found its partner (or left) starts afresh if it is ever alone again.
        self._first_seen = {n: t for n, t in self._first_seen.items() if n in alone}
        return OsciListing([*left_ready, *ready][:limit], waiting, [*left_orphans, *orphans])

    def _overdue(self, name: str, now: float) -> bool:
        first = self._first_seen.setdefault(name, now)
        return now - first >= self.pair_seconds

    def _left_claimed(self) -> tuple[list[OsciHandover], list[Path]]:
        """What an earlier process left claimed, found on first use, not taken yet: pairs and
        lone packages to take, orphaned sidecars."""
        if self._left is None:
            self._left = self._find_left()
        return self._left

    def _find_left(self) -> tuple[list[OsciHandover], list[Path]]:
        try:
            claims = self.claims.left()
        except OSError as exc:
            log.error("filedrop.cannot_claim", inbox=SUBDIRECTORY, errno=exc.errno)  # noqa: TRY400 - no traceback
            return [], []
        ready: list[OsciHandover] = []
        orphans: list[Path] = []
        for claim, names in claims:
            packages, sidecars = _pairs(set(names))
            if claim.name.endswith(CLAIMING_SUFFIX):  # a pair half claimed: completed when taken
                stems = {name for name, _ in packages}
                stems.update(name.removesuffix(METADATA_SUFFIX) for name in sidecars)
                ready += [
                    OsciHandover(claim / s, claim / (s + METADATA_SUFFIX)) for s in sorted(stems)
                ]
                continue
            ready += [
                OsciHandover(claim / p, None if m is None else claim / m) for p, m in packages
            ]
            orphans += [claim / name for name in sidecars]  # its package moved out before a crash
        if claims:
            log.warning(
                "filedrop.retaken",
                inbox=SUBDIRECTORY,
                files=sum(len(names) for _, names in claims),
            )
        return ready, orphans

    def claim(self, handover: OsciHandover) -> OsciHandover | None:
        """Rename a listed pair (or lone package) into a claim; the claimed handover to work on.

        A pair is claimed sidecar first, then the package, then the claim becomes
        final; a package is never claimed without the sidecar it was listed with.
        None if the files are gone (another worker claimed them, or the client took
        them back). A handover :meth:`scan` gave from the claim directory is claimed
        already (a half-claimed pair is completed first). Raises :class:`CannotClaim`
        (and skips the names from then on) if a rename fails otherwise; a sidecar
        claimed by then stays claimed, for the next process to complete the pair.
        """
        left, _ = self._left_claimed()  # before the first claim of its own
        if handover in left:
            left.remove(handover)
        try:
            return self._claim(handover)
        except CannotClaim:
            raise
        except FileNotFoundError:
            return None
        except OSError as exc:  # both names stay in the inbox (or claimed), for the next process
            stem = handover.package.name
            self._stuck.update((stem, stem + METADATA_SUFFIX))
            raise CannotClaim(exc.errno, "cannot claim inbox file") from None

    def _claim(self, handover: OsciHandover) -> OsciHandover | None:
        if self.claims.holds(handover.package):
            claim = handover.package.parent
            if claim.name.endswith(CLAIMING_SUFFIX):
                return self._complete(claim, handover.package.name)
            return handover
        if handover.metadata is None:
            return OsciHandover(self.claims.claim(handover.package), None)
        # The listed identities go into the claim's name: a completion after a crash checks too.
        tag = "" if handover.listed is None else "-".join(map(_tag, handover.listed))
        return self._complete(self.claims.new(claiming=True, tag=tag), handover.package.name)

    def _complete(self, claim: Path, stem: str) -> OsciHandover | None:
        """Both halves of the pair ``stem`` into ``claim`` (a ``….claiming`` claim), sidecar first.

        Each file claimed must be the one listed (the identities in the claim's name): a
        client that renames another file over either name meanwhile makes a new
        handover, never half of this one. A sidecar that is not the listed one is set
        aside as an orphan and the package left in the inbox; a package that is not is
        left in the inbox if it was not claimed yet, or else taken alone (``METADATA``),
        and the listed sidecar is an orphan. Nothing is lost, nothing mixed.
        """
        sidecar = stem + METADATA_SUFFIX
        listed = _listed(claim)
        if not self._into(claim, sidecar):
            if self.claims.exists(claim / stem):  # not by this order; never taken alone
                raise CannotClaim(errno.ENOENT, "a claimed package without its sidecar")
            self.claims.drop(claim)
            return None  # gone, or another worker has the pair
        if listed is not None and (
            self.claims.identity(claim / sidecar) != listed[1]  # replaced after the scan
            or (  # a new package under the name, not claimed yet: left there
                not self.claims.exists(claim / stem)
                and _identity(self.directory / stem) not in (listed[0], None)
            )
        ):
            self._unpaired(claim, sidecar)
            return None
        if not self._into(claim, stem):
            if self.claims.exists(claim / sidecar):  # the package went: the sidecar is an orphan
                log.warning("filedrop.osci_orphan", moved=self._orphan(claim / sidecar))
            return None  # or another worker completed the claim and takes it
        mixed = listed is not None and self.claims.identity(claim / stem) != listed[0]
        if mixed:  # renamed over the name between the check and the claim: taken alone
            moved = self._orphan(claim / sidecar)
            log.warning("filedrop.osci_orphan", moved=moved, mixed=True)
            if not moved:  # never a final claim holding both: it would be taken as a pair
                raise CannotClaim(errno.EBUSY, "the sidecar of a mixed pair cannot be set aside")
        try:
            final = self.claims.finish(claim)
        except FileNotFoundError:
            return None  # another worker completed the claim and takes it
        return OsciHandover(final / stem, None if mixed else final / sidecar)

    def _unpaired(self, claim: Path, sidecar: str) -> None:
        """The claimed sidecar is not the listed pair's: an orphan; the claim is given up."""
        log.warning("filedrop.osci_orphan", moved=self._orphan(claim / sidecar), mixed=True)
        self.claims.drop(claim)

    def _into(self, claim: Path, name: str) -> bool:
        """Whether the file ``name`` is in ``claim``: there already, or renamed into it now."""
        if self.claims.exists(claim / name):
            return True
        try:
            self.claims.take(self.directory / name, claim)
        except FileNotFoundError:
            return self.claims.exists(claim / name)  # another worker may have put it there
        return True

    def read(self, handover: OsciHandover) -> OsciFiles | None:
        """Read a claimed pair, the sidecar first (no symlinks, regular files only); None if gone.

        A pair leaves its claim package first, so a sidecar that is gone means the
        pair was taken (by another worker): None, never a package without its
        metadata. Raises :class:`connectors.filedrop.claims.Unreadable` if either file
        cannot be read.
        """
        metadata: InboxFile | None = None
        if handover.metadata is not None:
            # Only "too large" matters of a sidecar over its limit: no need to read it to its end.
            metadata = self.claims.read(handover.metadata, MAX_METADATA_BYTES, digest_all=False)
            if metadata is None:
                return None
        package = self.claims.read(handover.package, self.max_bytes)
        if package is None:
            return None
        if metadata is None:
            return OsciFiles(package, None)
        return OsciFiles(package, metadata.data, metadata_too_large=metadata.data is None)

    def release(self, handover: OsciHandover, submission_id: str) -> bool:
        """Kafka has the record: archive the claimed pair under the submission id, or delete it."""
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
        """Unreadable: both files out of the claim under their own names, for an operator."""
        metadata = handover.metadata
        sidecar = None if metadata is None else self.unreadable / metadata.name
        return self._out(handover, self.unreadable / handover.package.name, sidecar)

    def set_orphan_aside(self, sidecar: Path) -> bool:
        """A sidecar without its package (in the inbox, or left claimed): out under its own name."""
        _, left = self._left_claimed()  # before the first claim of its own
        if self.claims.holds(sidecar):
            if sidecar in left:
                left.remove(sidecar)
            return self._orphan(sidecar)
        try:
            claimed = self.claims.claim(sidecar)
        except FileNotFoundError:
            return True  # gone already
        except OSError:
            self._stuck.add(sidecar.name)
            return False
        return self._orphan(claimed)

    def _orphan(self, sidecar: Path) -> bool:
        if not self.claims.moved(sidecar, self.orphaned / sidecar.name):
            return False
        self.claims.drop(sidecar.parent)
        return True

    def _out(self, handover: OsciHandover, package: Path | None, sidecar: Path | None) -> bool:
        # The package first: a crash in between leaves its sidecar alone in the claim, an
        # orphan for the next process, never a package refused for want of metadata it had.
        # A file that cannot move stays claimed (with its partner): the next process takes it.
        if not self.claims.moved(handover.package, package):
            return False
        if handover.metadata is not None and not self.claims.moved(handover.metadata, sidecar):
            return False
        self.claims.drop(handover.package.parent)
        return True


def _identities(
    package: os.DirEntry[str], sidecar: os.DirEntry[str]
) -> tuple[Identity, Identity] | None:
    """The identities of a listed pair (not followed); None if either has just gone."""
    try:
        return identity(package.stat(follow_symlinks=False)), identity(
            sidecar.stat(follow_symlinks=False)
        )
    except FileNotFoundError:
        return None


def _identity(path: Path) -> Identity | None:
    try:
        return identity(path.lstat())
    except FileNotFoundError:
        return None


def _tag(found: Identity) -> str:
    return ".".join(f"{number:x}" for number in found)


def _listed(claim: Path) -> tuple[Identity, Identity] | None:
    """The listed identities a ``….claiming`` claim's tag carries (earlier versions': none)."""
    parts = ClaimDirectory.tag(claim).split("-")
    found = [_untagged(part) for part in parts] if len(parts) == 2 else []
    package, sidecar = found if len(found) == 2 else (None, None)
    return None if package is None or sidecar is None else (package, sidecar)


def _untagged(text: str) -> Identity | None:
    """An identity as :func:`_tag` wrote it; None if it is not one."""
    try:
        inode, mtime, size = (int(number, 16) for number in text.split("."))
    except ValueError:
        return None
    return inode, mtime, size
