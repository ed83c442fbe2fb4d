"""Load the office table (config/offices.yml) into the core's :class:`OfficeTable`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from hub.config import ConfigError
from hub.core.route import Area, Office, OfficeTable, Vendor


def parse(document: Any, schema: dict[str, Any]) -> OfficeTable:
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as exc:
        location = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise ConfigError(f"office table invalid at {location}") from None
    vendors = {
        vid: Vendor(vendor_id=vid, name=v["name"], format=v["format"])
        for vid, v in document["vendors"].items()
    }
    offices = []
    seen: set[str] = set()
    seen_dvdv: set[str] = set()
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
            )
        )
    areas = tuple(
        Area(name=a["name"], ars=a["ars"], postcodes=tuple(a.get("postcodes", ())))
        for a in document.get("areas", ())
    )
    return OfficeTable(offices=tuple(offices), vendors=vendors, areas=areas)


def load(path: Path, schema_dir: Path) -> OfficeTable:
    schema = json.loads((schema_dir / "hub" / "offices.schema.json").read_text("utf-8"))
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        raise ConfigError(f"office table {path} cannot be read") from None
    return parse(document, schema)
