"""Load the audit vault's key-encryption key (``SOZIALHUB_AUDIT_KEK_FILE``) into a :class:`KekRing`.

The file is JSON::

    {"kid": "kek2027", "key": "<base64 of 32 random bytes>",
     "previous": [{"kid": "kek2026", "key": "<base64>"}]}

``kid`` and ``key`` are the current KEK, which wraps every new person key;
``previous`` (optional) lists KEKs that only unwrap person keys made before a
rotation (docs/audit-vault.md#kek-handling-and-rotation). Keys are read into
:class:`~hub.config.Secret` values and revealed only to build the ring; errors
name the file and the KEK id, never a key. Without a file there is no KEK (the
worker records no inputs), unless the caller explicitly asks for the
development KEK (:func:`development_ring`): a fixed, public key that protects
nothing, for the demo and tests only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path
from typing import Any

from hub.config import ConfigError, Secret, Settings
from hub.core.audit_vault import KEY_BYTES, Kek, KekRing

DEVELOPMENT_KID = "dev"
# Public on purpose: anyone can unwrap what it wraps. Never for real persons.
_DEVELOPMENT_KEY = hashlib.sha256(b"sozialhub development audit KEK, not secret").digest()


def development_ring() -> KekRing:
    """A ring with the one public development KEK ``dev``: demo and tests only."""
    return KekRing(Kek(DEVELOPMENT_KID, _DEVELOPMENT_KEY))


def _kek(entry: Any, where: str, position: str) -> Kek:
    if not isinstance(entry, dict) or set(entry) != {"kid", "key"}:
        raise ConfigError(f"audit KEK {where}: {position} needs exactly 'kid' and 'key'")
    kid, text = entry["kid"], entry["key"]
    if not isinstance(kid, str) or not isinstance(text, str):
        raise ConfigError(f"audit KEK {where}: {position} 'kid' and 'key' must be strings")
    secret = Secret(text)
    try:
        raw = base64.b64decode(secret.reveal(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"audit KEK {where}: key of {kid!r} is not base64") from None
    if kid == DEVELOPMENT_KID or raw == _DEVELOPMENT_KEY:
        raise ConfigError(f"audit KEK {where}: {kid!r} is the development KEK")
    if len(raw) != KEY_BYTES:
        raise ConfigError(f"audit KEK {where}: key of {kid!r} is not {KEY_BYTES} bytes")
    try:
        return Kek(kid, raw)
    except ValueError as exc:
        raise ConfigError(f"audit KEK {where}: {exc}") from None


def parse(document: Any, where: str) -> KekRing:
    """The ring a KEK document describes; :class:`ConfigError` naming the place, never a key."""
    if not isinstance(document, dict):
        raise ConfigError(f"audit KEK {where}: not a JSON object")
    unknown = set(document) - {"kid", "key", "previous"}
    if unknown:
        raise ConfigError(f"audit KEK {where}: unknown members {sorted(unknown)}")
    current = _kek({k: v for k, v in document.items() if k != "previous"}, where, "the KEK")
    previous = document.get("previous", [])
    if not isinstance(previous, list):
        raise ConfigError(f"audit KEK {where}: 'previous' must be a list")
    older = [_kek(entry, where, f"previous[{i}]") for i, entry in enumerate(previous)]
    try:
        return KekRing(current, older)
    except ValueError as exc:
        raise ConfigError(f"audit KEK {where}: {exc}") from None


def load(path: Path) -> KekRing:
    try:
        document = json.loads(path.read_bytes())
    except (OSError, ValueError):
        # json.JSONDecodeError is a ValueError; the file's content is never echoed.
        raise ConfigError(f"audit KEK {path} cannot be read as JSON") from None
    return parse(document, str(path))


def from_settings(settings: Settings, *, development: bool = False) -> KekRing | None:
    """The configured KEK ring; the development ring only when asked for and none is configured;
    else None (no inputs are recorded)."""
    if settings.audit_kek_file is not None:
        return load(settings.audit_kek_file)
    return development_ring() if development else None
