"""Load the hub's signing key and certificate once, or make an ephemeral pair."""

from __future__ import annotations

import datetime as dt

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from hub.config import ConfigError, Settings
from hub.core.receipt import ReceiptSigner, SigningKey

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
    if settings.signing_key_file is None or settings.signing_cert_file is None:
        key = ec.generate_private_key(ec.SECP256R1())
        log.warning(
            "signing.ephemeral_key",
            detail="no signing key configured; receipts are signed with a throw-away key",
        )
        return ReceiptSigner(
            key, ephemeral_certificate(key, settings.hub_identity, days=365), "ecdsa-sha256"
        )
    password = (
        settings.signing_key_password.reveal().encode() if settings.signing_key_password else None
    )
    try:
        loaded = serialization.load_pem_private_key(
            settings.signing_key_file.read_bytes(), password
        )
        certificate = x509.load_pem_x509_certificate(settings.signing_cert_file.read_bytes())
    except (OSError, ValueError, TypeError):
        raise ConfigError("signing key or certificate cannot be loaded") from None
    if not isinstance(loaded, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError("signing key must be RSA or EC")
    public, own = certificate.public_key(), loaded.public_key()
    if not isinstance(public, type(own)) or public.public_numbers() != own.public_numbers():
        raise ConfigError("signing certificate does not belong to the signing key")
    try:
        return ReceiptSigner(loaded, certificate, settings.signing_algorithm)
    except ValueError:
        raise ConfigError(
            "signing_algorithm does not fit the signing key (ECDSA needs EC, RSA needs RSA)"
        ) from None


def days_left(signer: ReceiptSigner, now: dt.datetime | None = None) -> float:
    moment = now or dt.datetime.now(dt.UTC)
    return (signer.not_after - moment).total_seconds() / 86400
