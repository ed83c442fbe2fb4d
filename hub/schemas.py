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
from hub.core import xsozial
from hub.core.payloads import PayloadRegistry, PayloadType

PAYLOAD_SCHEMAS = {
    # payload type name -> path below the schema directory
    "xsozial-basis-2.4.0": Path("payload/xsozial-basis-2.4.0/xsozial-basis.xsd"),
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
    return PayloadRegistry(
        [
            PayloadType(
                name="xsozial-basis-2.4.0",
                namespace=xsozial.NAMESPACE,
                root=xsozial.ROOT,
                versions=xsozial.VERSIONS,
                schema=build_schema(schema_dir / PAYLOAD_SCHEMAS["xsozial-basis-2.4.0"]),
                extract=xsozial.extract,
                fast_schema=(
                    build_fast_schema(schema_dir / PAYLOAD_SCHEMAS["xsozial-basis-2.4.0"])
                    if fast
                    else None
                ),
            )
        ]
    )


def load_vendor_schema(schema_dir: Path, format_name: str) -> Any:
    return build_schema(schema_dir / "vendor" / f"{format_name}-1.xsd")
