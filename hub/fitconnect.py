"""Load what :mod:`hub.core.transport.fitconnect` needs from files: keys and the metadata schema.

Key files are JSON Web Keys (one JWK object, or a JWK set ``{"keys": [...]}``)
with private key material; they are read once at start-up. Errors name the
setting or file, never key material.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from jsonschema.exceptions import SchemaError

from hub.config import ConfigError
from hub.core.transport.fitconnect import (
    DecryptionKeys,
    SetSigner,
    SubmissionSchemas,
    metadata_validator,
)

METADATA_SCHEMA = Path("fitconnect/metadata.schema.json")


def _jwks(path: Path) -> list[dict[str, Any]]:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        raise ConfigError(f"FIT-Connect key file cannot be read as JSON: {path}") from None
    is_set = isinstance(document, dict) and isinstance(document.get("keys"), list)
    keys = document["keys"] if is_set else [document]
    if not all(isinstance(key, dict) for key in keys):
        raise ConfigError(f"FIT-Connect key file holds no JSON Web Key: {path}")
    return keys


def load_decryption_keys(paths: Path | Sequence[Path]) -> DecryptionKeys:
    """The destination's private decryption keys (current first, then the next one).

    One file with a JWK set, or several files with one JWK each.
    """
    files = [paths] if isinstance(paths, Path) else list(paths)
    jwks = [key for path in files for key in _jwks(path)]
    try:
        return DecryptionKeys(jwks)
    except ValueError as exc:
        raise ConfigError(f"fitconnect decryption keys: {exc}") from None


def load_set_signer(path: Path, key_id: str | None = None) -> SetSigner:
    """The hub's PS512 signing key for Security Event Tokens."""
    keys = _jwks(path)
    if len(keys) != 1:
        raise ConfigError(f"FIT-Connect signing key file must hold exactly one key: {path}")
    try:
        return SetSigner(keys[0], key_id=key_id)
    except ValueError as exc:
        raise ConfigError(f"fitconnect signing key: {exc}") from None


def load_submission_schemas(schema_dir: Path, data_schema_uris: Iterable[str]) -> SubmissionSchemas:
    """The metadata validator (from the local schema file) and the allow-listed data schema URIs."""
    path = schema_dir / METADATA_SCHEMA
    try:
        schema = json.loads(path.read_bytes())
        validator = metadata_validator(schema)
    except (OSError, ValueError):
        raise ConfigError(f"FIT-Connect metadata schema cannot be loaded: {path}") from None
    except SchemaError:
        raise ConfigError(
            f"FIT-Connect metadata schema is not a valid JSON schema: {path}"
        ) from None
    try:
        return SubmissionSchemas(validator, frozenset(data_schema_uris))
    except ValueError as exc:
        raise ConfigError(f"fitconnect schema URIs: {exc}") from None
