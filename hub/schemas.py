"""Build the payload registry once, from local schema files only.

Schemas are loaded with ``allow='sandbox'`` (no access outside the schema
directory) and ``defuse='always'``; nothing is fetched from the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import xmlschema
from lxml import etree

from hub.config import ConfigError
from hub.core import wohngeld, xsozial
from hub.core.payloads import PayloadRegistry, PayloadType

PAYLOAD_SCHEMAS = {
    # payload type name -> path below the schema directory
    "xsozial-basis-2.4.0": Path("payload/xsozial-basis-2.4.0/xsozial-basis.xsd"),
    "wohngeld-antrag-1": Path("payload/wohngeld-antrag-1/wohngeld-antrag.xsd"),
}


def build_schema(path: Path) -> Any:
    """A schema from one local file; imports must stay inside its directory."""
    if not path.is_file():
        raise ConfigError(f"schema file missing: {path}")
    # use_fallback=False: never load xmlschema's bundled schemas (xmldsig, XHTML, ...) while
    # validating lax wildcard content; that would let input extend the pinned schema.
    return xmlschema.XMLSchema(
        str(path.resolve()), allow="sandbox", defuse="always", timeout=1, use_fallback=False
    )


def build_fast_schema(path: Path) -> etree.XMLSchema:
    """The same local XSD compiled by libxml2, for the validation hot path."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        document = etree.parse(str(path.resolve()), parser)  # noqa: TID251 - a trusted local schema file
        return etree.XMLSchema(document)
    except (OSError, etree.XMLSyntaxError, etree.XMLSchemaParseError):
        raise ConfigError(f"schema cannot be compiled by libxml2: {path}") from None


def load_payloads(schema_dir: Path, *, fast: bool = True) -> PayloadRegistry:
    """Every payload type the hub accepts, schemas compiled once from local files."""
    modules = {"xsozial-basis-2.4.0": xsozial, "wohngeld-antrag-1": wohngeld}
    types = []
    for name, module in modules.items():
        path = schema_dir / PAYLOAD_SCHEMAS[name]
        types.append(
            PayloadType(
                name=name,
                namespace=module.NAMESPACE,
                root=module.ROOT,
                versions=module.VERSIONS,
                schema=build_schema(path),
                extract=module.extract,
                fast_schema=build_fast_schema(path) if fast else None,
            )
        )
    return PayloadRegistry(types)


def load_vendor_schema(schema_dir: Path, format_name: str) -> Any:
    return build_schema(schema_dir / "vendor" / f"{format_name}-1.xsd")
