"""A throw-away PKI for the demo and the tests: a CA, a server certificate, a client certificate.

Development only: keys are EC P-256, certificates live a day, files are written
with mode 0600 into a directory the caller owns.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class DevPki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    def server_context(self) -> ssl.SSLContext:
        """TLS server context that requires a client certificate from this CA."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(self.ca))
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_cert_chain(str(self.server_cert), str(self.server_key))
        return context


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sozialhub development"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    """The key as unencrypted PKCS#8 PEM, in a file created readable by its owner only."""
    path.touch(mode=0o600)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def write_cert(path: Path, cert: x509.Certificate) -> Path:
    """The certificate as PEM."""
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def create(directory: Path, host: str = "127.0.0.1") -> DevPki:
    """CA, a server certificate for ``host`` (an IP address) and a client certificate."""
    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("sozialhub development CA"))
        .issuer_name(_name("sozialhub development CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        common_name: str, usage: x509.ObjectIdentifier
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if usage == ExtendedKeyUsageOID.SERVER_AUTH:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]),
                critical=False,
            )
        return builder.sign(ca_key, hashes.SHA256()), key

    server_cert, server_key = leaf("xta-simulator", ExtendedKeyUsageOID.SERVER_AUTH)
    client_cert, client_key = leaf("sozialhub", ExtendedKeyUsageOID.CLIENT_AUTH)
    return DevPki(
        ca=write_cert(directory / "ca.pem", ca_cert),
        server_cert=write_cert(directory / "server.pem", server_cert),
        server_key=write_key(directory / "server.key", server_key),
        client_cert=write_cert(directory / "client.pem", client_cert),
        client_key=write_key(directory / "client.key", client_key),
    )
