"""Load the portal table (config/portals.yml): entries, signature policies, trust material.

Certificates and CRLs are read once here (paths relative to the file); the
core's :class:`~hub.core.portals.PortalTable` and
:class:`~hub.core.portalsig.SignaturePolicy` only use them.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from cryptography import x509

from hub.config import ConfigError
from hub.core.portals import Portal, PortalTable
from hub.core.portalsig import SignaturePolicy


def _certificates(path: Path, where: str) -> tuple[x509.Certificate, ...]:
    try:
        return tuple(x509.load_pem_x509_certificates(path.read_bytes()))
    except (OSError, ValueError):
        raise ConfigError(f"portal table: certificates at {where} cannot be read") from None


def _crl(path: Path, where: str) -> x509.CertificateRevocationList:
    try:
        data = path.read_bytes()
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_crl(data)
        return x509.load_der_x509_crl(data)
    except (OSError, ValueError):
        raise ConfigError(f"portal table: CRL at {where} cannot be read") from None


def _policy(spec: dict[str, Any], base: Path, where: str) -> SignaturePolicy | None:
    if spec["mode"] == "none":
        return None
    pinned: tuple[x509.Certificate, ...] = ()
    for index, name in enumerate(spec.get("pinned", ())):
        pinned += _certificates(base / name, f"{where}/pinned/{index}")
    bundle = spec.get("ca_bundle")
    crls = tuple(
        _crl(base / name, f"{where}/crls/{index}")
        for index, name in enumerate(spec.get("crls", ()))
    )
    options: dict[str, Any] = {
        key: frozenset(spec[key])
        for key in ("signature_methods", "digest_methods", "eku_oids", "policy_oids")
        if key in spec
    }
    if "max_chain_depth" in spec:
        options["max_chain_depth"] = spec["max_chain_depth"]
    try:
        return SignaturePolicy(
            mode=spec["mode"],
            pinned=pinned,
            ca_bundle=_certificates(base / bundle, f"{where}/ca_bundle") if bundle else (),
            crls=crls,
            **options,
        )
    except ValueError as exc:
        # The core's messages name settings, never certificate content.
        raise ConfigError(f"portal table: {where}: {exc}") from None


def _freshness(spec: dict[str, int] | None) -> dict[str, dt.timedelta]:
    """``freshness: {max_age_days, max_clock_skew_minutes}`` as Portal fields; absent: no window."""
    if spec is None:
        return {}
    window = {"max_age": dt.timedelta(days=spec["max_age_days"])}
    if "max_clock_skew_minutes" in spec:
        window["max_clock_skew"] = dt.timedelta(minutes=spec["max_clock_skew_minutes"])
    return window


def parse(document: Any, schema: dict[str, Any], base: Path) -> PortalTable:
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as exc:
        location = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise ConfigError(f"portal table invalid at {location}") from None
    portals = []
    ids: set[str] = set()
    for index, entry in enumerate(document["portals"]):
        where = f"portals/{index}"
        if entry["id"] in ids:
            raise ConfigError(f"portal table: duplicate portal id at {where}")
        ids.add(entry["id"])
        if set(entry["transports"]) & {"xta2", "osci"} and not entry.get("authors"):
            raise ConfigError(f"portal table: {where} uses XTA/OSCI and needs authors")
        if "fitconnect" in entry["transports"] and not entry.get("destinations"):
            raise ConfigError(f"portal table: {where} uses FIT-Connect and needs destinations")
        if "osci" in entry and "osci" not in entry["transports"]:
            raise ConfigError(f"portal table: {where} has osci settings but not transport osci")
        portals.append(
            Portal(
                portal_id=entry["id"],
                name=entry["name"],
                transports=frozenset(entry["transports"]),
                payloads=frozenset(entry["payloads"]),
                authors=frozenset(entry.get("authors", ())),
                destinations=frozenset(entry.get("destinations", ())),
                signature=_policy(entry["signature"], base, f"{where}/signature"),
                **_freshness(entry.get("freshness")),
                osci_payload_id=entry.get("osci", {}).get("payload_id"),
            )
        )
    try:
        return PortalTable(portals)
    except ValueError as exc:
        raise ConfigError(f"portal table: {exc}") from None


def load(path: Path, schema_dir: Path) -> PortalTable:
    schema = json.loads((schema_dir / "hub" / "portals.schema.json").read_text("utf-8"))
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        raise ConfigError(f"portal table {path} cannot be read") from None
    return parse(document, schema, path.parent)
