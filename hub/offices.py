"""Load the office table (config/offices.yml) into the core's :class:`OfficeTable`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import yaml

from hub.config import ConfigError
from hub.core.route import Area, HttpChannel, Office, OfficeTable, Vendor


def parse(document: Any, schema: dict[str, Any]) -> OfficeTable:
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as exc:
        location = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise ConfigError(f"office table invalid at {location}") from None
    vendors = {vid: _vendor(vid, v) for vid, v in document["vendors"].items()}
    offices = []
    seen: set[str] = set()
    seen_dvdv: set[str] = set()
    seen_destinations: set[str] = set()
    for o in document["offices"]:
        if o["id"] in seen:
            raise ConfigError(f"office table: duplicate office id {o['id']}")
        if o["vendor"] not in vendors:
            raise ConfigError(f"office table: office {o['id']} names an unknown vendor")
        # Reader routing looks offices up by DVDV key: a shared key would pick one silently.
        if o.get("dvdv") in seen_dvdv:
            raise ConfigError(f"office table: duplicate dvdv key at office {o['id']}")
        seen.add(o["id"])
        if o.get("dvdv"):
            seen_dvdv.add(o["dvdv"])
        offices.append(
            Office(
                office_id=o["id"],
                name=o["name"],
                dvdv=o.get("dvdv"),
                areas=tuple(o["areas"]),
                leika=frozenset(o["leika"]),
                vendor=o["vendor"],
                rechtskreise=tuple(o["rechtskreise"]),
                fitconnect_destinations=tuple(o.get("fitconnect_destinations", ())),
            )
        )
        for destination in o.get("fitconnect_destinations", ()):
            if destination in seen_destinations:
                raise ConfigError(
                    f"office table: duplicate FIT-Connect destination at office {o['id']}"
                )
            seen_destinations.add(destination)
    areas = tuple(
        Area(name=a["name"], ars=a["ars"], postcodes=tuple(a.get("postcodes", ())))
        for a in document.get("areas", ())
    )
    return OfficeTable(offices=tuple(offices), vendors=vendors, areas=areas)


_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def _url(url: str | None, where: str) -> str | None:
    """An endpoint URL: https, or plain http only to a loopback host (simulators, tests)."""
    if url is None:
        return None
    parts = urlsplit(url.replace("{office}", "office"))
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
        raise ConfigError(f"office table: {where} uses plain http to a non-loopback host")
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        raise ConfigError(f"office table: {where} has an unusable endpoint URL")
    return url


def _vendor(vendor_id: str, data: dict[str, Any]) -> Vendor:
    delivery = data["delivery"]
    channel = delivery["channel"]
    http = None
    if channel == "http":
        defaults = HttpChannel(url=delivery["url"])
        http = HttpChannel(
            url=_url(delivery["url"], f"vendor {vendor_id}") or "",
            timeout_s=float(delivery.get("timeout_s", defaults.timeout_s)),
            max_attempts=int(delivery.get("max_attempts", defaults.max_attempts)),
            initial_backoff_s=float(delivery.get("initial_backoff_s", defaults.initial_backoff_s)),
            max_backoff_s=float(delivery.get("max_backoff_s", defaults.max_backoff_s)),
            probe_interval_s=float(delivery.get("probe_interval_s", defaults.probe_interval_s)),
            outage_max_s=float(delivery.get("outage_max_s", defaults.outage_max_s)),
        )
        if http.initial_backoff_s > http.max_backoff_s:
            raise ConfigError(f"office table: vendor {vendor_id} backs off beyond its maximum")
    if channel == "kafka" and data["format"] != "fv-avro":
        # The vendor topic's contract is an Avro record (docs/asyncapi.yaml).
        raise ConfigError(f"office table: vendor {vendor_id} on kafka needs format fv-avro")
    return Vendor(
        vendor_id=vendor_id, name=data["name"], format=data["format"], channel=channel, http=http
    )


def load(path: Path, schema_dir: Path) -> OfficeTable:
    schema = json.loads((schema_dir / "hub" / "offices.schema.json").read_text("utf-8"))
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        raise ConfigError(f"office table {path} cannot be read") from None
    return parse(document, schema)
