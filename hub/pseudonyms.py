"""Load the pseudonym key ring (``SOZIALHUB_PSEUDONYM_KEYS_FILE``) into the core's :class:`KeyRing`.

The file is JSON (``.json``) or TOML (any other name), validated against
``schemas/hub/pseudonym-keys.schema.json``::

    schema = "sozialhub.pseudonym-keys/1"
    current = "k2027"

    [keys]
    k2026 = "<base64 of at least 32 random bytes>"
    k2027 = "<base64 of at least 32 random bytes>"

Secrets are read into :class:`~hub.config.Secret` values and revealed only to
build the ring. Errors name the file and the key id, never a secret or an
identifier. Without a file there is no key ring, unless the caller explicitly
asks for the development ring (:func:`development_ring`): a fixed, public key
whose pseudonyms protect nothing, for examples and tests only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema

from hub.config import ConfigError, Secret, Settings
from hub.core.pseudonym import KeyRing, PseudonymKey

DEVELOPMENT_KEY_ID = "dev"
# Public on purpose: anyone can recompute a development pseudonym. Never for real persons.
_DEVELOPMENT_SECRET = hashlib.sha256(b"sozialhub development pseudonym key, not secret").digest()


def development_ring() -> KeyRing:
    """A ring with the one public development key ``dev``: examples and tests only."""
    return KeyRing([PseudonymKey(DEVELOPMENT_KEY_ID, _DEVELOPMENT_SECRET)], DEVELOPMENT_KEY_ID)


def parse(document: Any, schema: dict[str, Any], where: str) -> KeyRing:
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as exc:
        # The path may name a key id, never a secret: the schema's error location is the id.
        location = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise ConfigError(f"pseudonym keys {where} invalid at {location}") from None
    secrets = {key_id: Secret(text) for key_id, text in document["keys"].items()}
    keys = []
    for key_id, secret in sorted(secrets.items()):
        try:
            raw = base64.b64decode(secret.reveal(), validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError(f"pseudonym keys {where}: key {key_id} is not base64") from None
        if key_id == DEVELOPMENT_KEY_ID or raw == _DEVELOPMENT_SECRET:
            raise ConfigError(f"pseudonym keys {where}: key {key_id} is the development key")
        try:
            keys.append(PseudonymKey(key_id, raw))
        except ValueError:
            raise ConfigError(f"pseudonym keys {where}: key {key_id} is too short") from None
    try:
        return KeyRing(keys, document["current"])
    except ValueError as exc:
        raise ConfigError(f"pseudonym keys {where}: {exc}") from None


def load(path: Path, schema_dir: Path) -> KeyRing:
    schema = json.loads((schema_dir / "hub" / "pseudonym-keys.schema.json").read_text("utf-8"))
    try:
        data = path.read_bytes()
        document = json.loads(data) if path.suffix == ".json" else tomllib.loads(data.decode())
    except (OSError, ValueError, UnicodeDecodeError):
        # json.JSONDecodeError and tomllib.TOMLDecodeError are ValueErrors; neither is echoed.
        raise ConfigError(f"pseudonym keys {path} cannot be read") from None
    return parse(document, schema, str(path))


def from_settings(settings: Settings, *, development: bool = False) -> KeyRing:
    """The configured key ring; the development ring only when asked for and none is configured."""
    if settings.pseudonym_keys_file is not None:
        return load(settings.pseudonym_keys_file, settings.schema_dir)
    if development:
        return development_ring()
    raise ConfigError("pseudonym_keys_file is not set (SOZIALHUB_PSEUDONYM_KEYS_FILE)")
