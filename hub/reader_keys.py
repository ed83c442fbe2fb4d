"""Load the office's reader decryption keys once: RSA private keys for XML Encryption.

End-to-end encrypted content (an OSCI ``xenc:EncryptedData``, an XTA
``GenericContentContainer`` holding one) is encrypted for the Reader, with
RSA-OAEP key transport (:mod:`hub.core.transport._xmlenc`). The keys are PEM
files named by ``reader_decryption_keys`` (settings), optionally encrypted with
``reader_decryption_key_password``; they become
:attr:`hub.core.transport.registry.TransportKeys.osci_decryption`, which intake
passes to both transports. Several keys (a rotation, several Reader identities)
are all kept: an EncryptedKey naming one of them is opened with that one, any
other is tried with each.

Errors are :class:`~hub.config.ConfigError` naming the setting and the key's
name, never key material or the password.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from hub.config import ConfigError, Secret, Settings

log = structlog.get_logger(__name__)

SETTING = "reader_decryption_keys"
MIN_BITS = 2048  # RSA-OAEP with SHA-512 needs 1,040 bits; below 2048 RSA is not acceptable
MAX_FILE_BYTES = 64 * 1024  # a PEM RSA key of 16,384 bits is about 12 KiB


def load(settings: Settings) -> Mapping[str, rsa.RSAPrivateKey]:
    """The configured reader keys by name (empty if none is configured), read and checked once."""
    loaded = {
        name: load_key(name, path, settings.reader_decryption_key_password)
        for name, path in settings.reader_key_files()
    }
    if loaded:
        log.info(
            "transport.reader_keys_loaded",
            names=sorted(loaded),
            bits=sorted({key.key_size for key in loaded.values()}),
        )
    return MappingProxyType(loaded)


def load_key(name: str, path: Path, password: Secret | None) -> rsa.RSAPrivateKey:
    """One PEM RSA private key of at least :data:`MIN_BITS` bits.

    An unencrypted key is read as it is; an encrypted one needs ``password``
    (so the keys of a rotation may differ in whether they are encrypted).
    """
    where = f"{SETTING}: key {name}"
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError:
        raise ConfigError(f"{where} cannot be read") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{where} is larger than a PEM private key ({MAX_FILE_BYTES} bytes)")
    key = _private_key(data, password, where)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{where} must be an RSA private key (XML Encryption uses RSA-OAEP)")
    if key.key_size < MIN_BITS:
        raise ConfigError(f"{where} has {key.key_size} bits; at least {MIN_BITS} are required")
    return key


def _private_key(data: bytes, password: Secret | None, where: str) -> PrivateKeyTypes:
    try:
        return serialization.load_pem_private_key(data, None)
    except TypeError:  # encrypted: needs the password
        pass
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{where} is not a PEM private key") from None
    if password is None:
        raise ConfigError(f"{where} is encrypted and reader_decryption_key_password is not set")
    try:
        return serialization.load_pem_private_key(data, password.reveal().encode())
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{where} cannot be decrypted (reader_decryption_key_password wrong, or an unsupported "
            "cipher)"
        ) from None
