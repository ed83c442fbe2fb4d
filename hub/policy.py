"""Load the transfer policy (config/transfer-policy.yml) into the gate's :class:`Policy`.

The file is validated against ``schemas/hub/transfer-policy.schema.json``; with
the office and portal tables the loader also checks every office and portal a
basis names, and gives the gate the offices' Rechtskreise to match bases by.
Errors are :class:`~hub.config.ConfigError` naming the location, never a value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from hub import offices as office_table
from hub import portals as portal_table
from hub.config import ConfigError, Settings
from hub.core.gate import ANY, CONSENT_LEGAL_REFERENCE, Parties, Policy, StatutoryBasis
from hub.core.route import OfficeTable


def _ids(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    return frozenset({ANY}) if value == ANY else frozenset(value)


def _parties(spec: dict[str, Any]) -> Parties:
    return Parties(
        offices=_ids(spec.get("offices")),
        portals=_ids(spec.get("portals")),
        rechtskreise=frozenset(spec.get("rechtskreise", ())),
    )


def _check_names(
    parties: Parties, where: str, offices: OfficeTable | None, portals: frozenset[str] | None
) -> None:
    if offices is not None:
        known = {o.office_id for o in offices.offices}
        if parties.offices - {ANY} - known:
            raise ConfigError(f"transfer policy: {where}/offices names an unknown office")
    if portals is not None and parties.portals - {ANY} - portals:
        raise ConfigError(f"transfer policy: {where}/portals names an unknown portal")


def parse(
    document: Any,
    schema: dict[str, Any],
    *,
    offices: OfficeTable | None = None,
    portals: Iterable[str] | None = None,
) -> Policy:
    """A :class:`Policy` from the parsed file; names are checked against the tables given."""
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as exc:
        location = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise ConfigError(f"transfer policy invalid at {location}") from None
    portal_ids = None if portals is None else frozenset(portals)
    office_ids = frozenset() if offices is None else {o.office_id for o in offices.offices}
    if portal_ids is not None and portal_ids & office_ids:
        # The gate matches parties by id: an id in both tables would match either side.
        raise ConfigError("transfer policy: an id is both an office and a portal")
    limits = {p: frozenset(c) for p, c in document["purposes"].items()}
    bases = []
    seen: set[str] = set()
    for index, spec in enumerate(document["bases"]):
        where = f"bases/{index}"
        if spec["id"] in seen:
            raise ConfigError(f"transfer policy: duplicate basis id at {where}")
        seen.add(spec["id"])
        basis = StatutoryBasis(
            basis_id=spec["id"],
            legal_reference=spec["legal_reference"],
            purposes=frozenset(spec["purposes"]),
            senders=_parties(spec["from"]),
            recipients=_parties(spec["to"]),
            categories=frozenset(spec["categories"]),
            description=spec.get("description", ""),
        )
        _check_names(basis.senders, f"{where}/from", offices, portal_ids)
        _check_names(basis.recipients, f"{where}/to", offices, portal_ids)
        carried = frozenset().union(*(limits.get(p, frozenset()) for p in basis.purposes))
        if basis.categories - carried:
            # The gate would drop them anyway (PURPOSE_LIMIT): a policy that says otherwise misleads.
            raise ConfigError(
                f"transfer policy: {where}/categories lists a category its purposes never carry"
            )
        bases.append(basis)
    return Policy(
        purpose_categories=limits,
        bases=tuple(bases),
        offices={}
        if offices is None
        else {o.office_id: frozenset(o.rechtskreise) for o in offices.offices},
        portals=portal_ids or frozenset(),
        consent_legal_reference=document.get("consent_legal_reference", CONSENT_LEGAL_REFERENCE),
    )


def load(
    path: Path,
    schema_dir: Path,
    *,
    offices: OfficeTable | None = None,
    portals: Iterable[str] | None = None,
) -> Policy:
    schema = json.loads((schema_dir / "hub" / "transfer-policy.schema.json").read_text("utf-8"))
    try:
        document = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        raise ConfigError(f"transfer policy {path} cannot be read") from None
    return parse(document, schema, offices=offices, portals=portals)


def from_settings(settings: Settings, path: Path | None = None) -> Policy:
    """The policy at ``path`` (default: the settings' ``transfer_policy_file``) with the
    settings' office and portal tables."""
    table = office_table.load(settings.offices_file, settings.schema_dir)
    portal_ids = [
        p.portal_id for p in portal_table.load(settings.portals_file, settings.schema_dir)
    ]
    return load(
        path or settings.transfer_policy_file,
        settings.schema_dir,
        offices=table,
        portals=portal_ids,
    )
