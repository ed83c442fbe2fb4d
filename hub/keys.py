"""Load the hub's signing keys and certificates once (current and next), or make an ephemeral pair."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from hub.config import ConfigError, Settings
from hub.core.receipt import ReceiptSigner, SigningKey
from hub.core.rotation import RotationError, SignerSet

log = structlog.get_logger(__name__)


def ephemeral_certificate(
    key: SigningKey, common_name: str, days: int = 30, now: dt.datetime | None = None
) -> x509.Certificate:
    """A self-signed certificate with digitalSignature key usage, for development and tests."""
    moment = now or dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(moment - dt.timedelta(minutes=5))
        .not_valid_after(moment + dt.timedelta(days=days))
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )


def load_signer(settings: Settings) -> ReceiptSigner:
    """The current signing key and certificate, or an ephemeral pair if none is configured."""
    if settings.signing_key_file is None or settings.signing_cert_file is None:
        key = ec.generate_private_key(ec.SECP256R1())
        log.warning(
            "signing.ephemeral_key",
            detail="no signing key configured; receipts are signed with a throw-away key",
        )
        return ReceiptSigner(
            key, ephemeral_certificate(key, settings.hub_identity, days=365), "ecdsa-sha256"
        )
    return _load_pair(
        settings, settings.signing_key_file, settings.signing_cert_file, "signing_key_file"
    )


def load_signers(settings: Settings, now: dt.datetime | None = None) -> SignerSet:
    """The current signer and, if configured, the next one, loaded once and checked.

    The next pair gets the checks of the current one (readable, key fits the
    certificate, ``signing_algorithm`` fits the key) and must continue the current
    certificate without a gap (:class:`hub.core.rotation.SignerSet`); the current
    certificate stays trusted until it expires (``overlap_until``). Some configured
    certificate must be able to sign ``now``, or the hub would sign nothing.
    """
    rotating = settings.signing_next_key_file is not None
    if rotating and settings.signing_key_file is None:
        raise ConfigError("signing_next_key_file needs signing_key_file and signing_cert_file")
    current = load_signer(settings)
    following = None
    if settings.signing_next_key_file is not None and settings.signing_next_cert_file is not None:
        following = _load_pair(
            settings,
            settings.signing_next_key_file,
            settings.signing_next_cert_file,
            "signing_next_key_file",
        )
    try:
        signers = SignerSet(current, following, None if following is None else current.not_after)
    except ValueError as exc:
        # SignerSet's messages describe the two certificates' dates, never key material.
        raise ConfigError(
            f"signing_next_cert_file does not continue signing_cert_file: {exc}"
        ) from None
    moment = now or dt.datetime.now(dt.UTC)
    try:
        signers.signer_at(moment)
    except RotationError:
        if moment < current.certificate.not_valid_before_utc:
            raise ConfigError("signing_cert_file is not valid yet (notBefore)") from None
        raise ConfigError(
            "no signing certificate is valid now: signing_cert_file has expired"
            + (" and signing_next_cert_file too" if following else "")
        ) from None
    if signers.next is not None:
        log.info(
            "signing.rotation_configured",
            switch_at=_iso(signers.switch_at),
            current_not_after=_iso(signers.current.not_after),
            next_not_after=_iso(signers.next.not_after),
        )
    return signers


def _iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _load_pair(
    settings: Settings, key_file: Path, cert_file: Path, key_setting: str
) -> ReceiptSigner:
    """One key and certificate; errors name the settings (``cert_setting`` follows ``key_setting``)."""
    cert_setting = key_setting.replace("_key_file", "_cert_file")
    password = (
        settings.signing_key_password.reveal().encode() if settings.signing_key_password else None
    )
    try:
        loaded = serialization.load_pem_private_key(key_file.read_bytes(), password)
    except (OSError, ValueError, TypeError):
        raise ConfigError(
            f"{key_setting} cannot be loaded (unreadable, not PEM, or signing_key_password wrong)"
        ) from None
    try:
        certificate = x509.load_pem_x509_certificate(cert_file.read_bytes())
    except (OSError, ValueError):
        raise ConfigError(f"{cert_setting} cannot be loaded (unreadable or not PEM)") from None
    if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"{key_setting} must hold an RSA or EC key")
    public, own = certificate.public_key(), loaded.public_key()
    if not isinstance(public, type(own)) or public.public_numbers() != own.public_numbers():
        raise ConfigError(f"{cert_setting} does not belong to {key_setting}")
    try:
        return ReceiptSigner(loaded, certificate, settings.signing_algorithm)
    except ValueError:
        raise ConfigError(
            f"signing_algorithm does not fit {key_setting} (ECDSA needs EC, RSA needs RSA)"
        ) from None


def days_left(signer: ReceiptSigner, now: dt.datetime | None = None) -> float:
    moment = now or dt.datetime.now(dt.UTC)
    return (signer.not_after - moment).total_seconds() / 86400
