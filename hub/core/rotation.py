"""Rotation of the hub's receipt-signing key: which key signs when, and what verifies.

A rotation has two certificates. The ``current`` one signs until the ``next``
certificate becomes valid (its ``not_valid_before``); from then on ``next``
signs. Vendors need the next certificate before it signs, and the current one
for a while after, for receipts signed just before the switch: until
``overlap_until`` both are published as trusted (:meth:`SignerSet.certificates_at`),
and :func:`verify_any` accepts a receipt signed by either.

Pure: the adapter loads the keys (``hub.keys``) and passes the time in.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from hub.core import receipt
from hub.core.errors import HubError, Reason, Rejection
from hub.core.receipt import ReceiptSigner


class RotationError(HubError):
    """No configured certificate is valid to sign at the requested time."""


def _valid_at(certificate: x509.Certificate, moment: dt.datetime) -> bool:
    return certificate.not_valid_before_utc <= moment <= certificate.not_valid_after_utc


def _aware(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return moment


@dataclass(frozen=True)
class SignerSet:
    """The current signer and, during a rotation, the next one.

    ``overlap_until``: until when verifiers keep trusting the current certificate
    once the next one signs. It must lie between the switch (the next
    certificate's ``not_valid_before``) and the current certificate's expiry,
    and the next certificate must become valid before the current one expires,
    so that at every moment one certificate can sign.
    """

    current: ReceiptSigner
    next: ReceiptSigner | None = None
    overlap_until: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.next is None:
            if self.overlap_until is not None:
                raise ValueError("overlap_until needs a next signer")
            return
        if self.overlap_until is None:
            raise ValueError("a next signer needs overlap_until")
        _aware(self.overlap_until)
        current, following = self.current.certificate, self.next.certificate
        if current.public_bytes(serialization.Encoding.DER) == following.public_bytes(
            serialization.Encoding.DER
        ):
            raise ValueError("the next certificate is the current one")
        switch = following.not_valid_before_utc
        if switch > current.not_valid_after_utc:
            raise ValueError("the next certificate starts after the current one expires (gap)")
        if following.not_valid_after_utc <= current.not_valid_after_utc:
            raise ValueError("the next certificate must outlive the current one")
        if not switch <= self.overlap_until <= current.not_valid_after_utc:
            raise ValueError("overlap_until must lie between the switch and the current expiry")

    @property
    def switch_at(self) -> dt.datetime | None:
        """When the next signer takes over (None: no rotation configured)."""
        return None if self.next is None else self.next.certificate.not_valid_before_utc

    @property
    def signing_until(self) -> dt.datetime:
        """After this moment no configured certificate can sign (the last one has expired)."""
        last = self.current if self.next is None else self.next
        return last.certificate.not_valid_after_utc

    def signer_at(self, moment: dt.datetime) -> ReceiptSigner:
        """The signer for a receipt made at ``moment``; RotationError if its certificate is not valid."""
        _aware(moment)
        chosen = self.current
        # The certificates' validity is read once per signer (every receipt asks).
        if self.next is not None and moment >= self.next.validity[0]:  # switch_at
            chosen = self.next
        not_before, not_after = chosen.validity
        if not not_before <= moment <= not_after:  # _valid_at(chosen.certificate, moment)
            raise RotationError("no valid signing certificate at this time")
        return chosen

    def certificates_at(self, moment: dt.datetime) -> tuple[x509.Certificate, ...]:
        """The certificates a verifier should trust at ``moment``, the signing one first."""
        _aware(moment)
        if self.next is None:
            return (self.current.certificate,)
        assert self.overlap_until is not None  # checked in __post_init__  # noqa: S101
        if self.switch_at is not None and moment < self.switch_at:
            return (self.current.certificate, self.next.certificate)
        if moment <= self.overlap_until:
            return (self.next.certificate, self.current.certificate)
        return (self.next.certificate,)

    def expiry_warnings(self, now: dt.datetime, warn_days: float) -> list[tuple[str, float]]:
        certificates = {"current": self.current.certificate}
        if self.next is not None:
            certificates["next"] = self.next.certificate
        return expiry_warnings(certificates, now, warn_days)


def verify_any(
    data: bytes, certificates: Sequence[x509.Certificate], at: dt.datetime | None = None
) -> tuple[dict[str, str], x509.Certificate]:
    """Verify a receipt with each certificate in turn (current and next during a rotation).

    Returns the attested fields and the certificate that verified them. A receipt
    that no certificate verifies is ``SIG_INVALID``; any other rejection (the
    receipt is not well-formed, too large, ...) is raised at once. ``at`` is
    passed to :func:`hub.core.receipt.verify` (the time certificates must be valid).
    """
    if not certificates:
        raise ValueError("no certificates to verify with")
    for certificate in certificates:
        try:
            return receipt.verify(data, certificate, at), certificate
        except Rejection as rejection:
            if rejection.reason is not Reason.SIG_INVALID:
                raise
    raise Rejection(Reason.SIG_INVALID, "receipt/Signature")


def expiry_warnings(
    certificates: Mapping[str, x509.Certificate], now: dt.datetime, warn_days: float
) -> list[tuple[str, float]]:
    """``(which, days_left)`` for every certificate expiring within ``warn_days`` of ``now``.

    Expired certificates have negative days; the most urgent comes first.
    """
    _aware(now)
    found = []
    for which, certificate in certificates.items():
        days_left = (certificate.not_valid_after_utc - now).total_seconds() / 86_400
        if days_left <= warn_days:
            found.append((which, days_left))
    return sorted(found, key=lambda item: item[1])
