"""``sozialhub asyncapi``: the vendor-facing topics as an AsyncAPI 3.0 document.

Generated from ``topics.yml`` (every topic whose value names a published
``schema``, i.e. the vendor topics ``fachverfahren.<vendor>``) and the Avro
schema files under ``schemas/``. Nothing in the document is written by hand,
so it cannot drift from the code: ``docs/asyncapi.yaml`` is this function's
output, and a test regenerates it and compares.

The document describes what a vendor's consumer sees: the topic address
(with the configured prefix), the key (the delivery id, the vendor's
idempotency key), the Avro value with its compatibility rule, the consumer
group prefix its principal may use, and that there are no headers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hub import __version__
from hub.config import ConfigError, Settings
from hub.topics import TopicSpec

AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro;version=1.9.0"
VENDOR_PREFIX = "fachverfahren."
KEY_PATTERN = "^dlv-[0-9a-f]{32}$"


def _camel(text: str) -> str:
    parts = [p for p in text.replace("-", ".").replace("_", ".").split(".") if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _avro_schema(spec: TopicSpec, schema_dir: Path) -> dict[str, Any]:
    relative = str(spec.value["schema"])
    if not relative.startswith("schemas/"):
        raise ConfigError(f"topics.yml: {spec.name} value schema must be under schemas/")
    path = schema_dir / relative.removeprefix("schemas/")
    try:
        schema: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        raise ConfigError(
            f"topics.yml: {spec.name} value schema {relative} cannot be read"
        ) from None
    return schema


def vendor_topics(specs: tuple[TopicSpec, ...]) -> tuple[TopicSpec, ...]:
    """The topics vendors consume: under ``fachverfahren.`` with a published value schema."""
    return tuple(s for s in specs if s.name.startswith(VENDOR_PREFIX) and "schema" in s.value)


def document(settings: Settings, specs: tuple[TopicSpec, ...]) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document for every vendor topic of ``specs``."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in vendor_topics(specs):
        vendor = spec.name.removeprefix(VENDOR_PREFIX)
        channel_id = _camel(spec.name)
        message_id = _camel(f"{vendor}.{spec.value['contract'].split('.', 1)[1].split('/')[0]}")
        schema = _avro_schema(spec, settings.schema_dir)
        messages[message_id] = {
            "name": message_id,
            "title": f"{schema.get('name', 'record')} for {vendor}",
            "summary": spec.description,
            "contentType": str(spec.value["content_type"]),
            "description": (
                f"Contract `{spec.value['contract']}`, schema `{spec.value['schema']}`, "
                f"compatibility {spec.value.get('compatibility', 'unstated')}: every later "
                "version of the schema reads every record written with an earlier one. "
                "The value is an Avro single-object encoding (marker C3 01, the schema's "
                "8-byte CRC-64-AVRO fingerprint, the binary record). Records carry no headers."
            ),
            "payload": {"schemaFormat": AVRO_SCHEMA_FORMAT, "schema": schema},
            "bindings": {
                "kafka": {
                    "key": {"type": "string", "pattern": KEY_PATTERN},
                    "bindingVersion": "0.5.0",
                }
            },
        }
        config = spec.config
        channels[channel_id] = {
            "address": settings.topic(spec.name),
            "title": f"Deliveries for {vendor}",
            "description": spec.description,
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
            "bindings": {
                "kafka": {
                    "topic": settings.topic(spec.name),
                    "partitions": spec.partitions,
                    "replicas": spec.replication_factor,
                    "topicConfiguration": {
                        "cleanup.policy": str(config["cleanup.policy"]).split(","),
                        "retention.ms": int(config["retention.ms"]),
                        **(
                            {"max.message.bytes": int(config["max.message.bytes"])}
                            if "max.message.bytes" in config
                            else {}
                        ),
                    },
                    "bindingVersion": "0.5.0",
                }
            },
        }
        operations[_camel(f"receive.{vendor}")] = {
            "action": "receive",
            "title": f"{vendor} consumes its deliveries",
            "description": (
                f"Consume with principal `vendor-{vendor}` in a consumer group named "
                f"`vendor-{vendor}.<anything>`; no other topic or group is readable. "
                "Book each key (delivery id) once: a redelivery after a hub restart has the "
                "same key and the same bytes."
            ),
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
            "bindings": {
                "kafka": {
                    "groupId": {"type": "string", "pattern": f"^vendor-{vendor}\\..+$"},
                    "bindingVersion": "0.5.0",
                }
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "sozialhub vendor topics",
            "version": __version__,
            "description": (
                "Generated by `sozialhub asyncapi` from topics.yml and the published Avro "
                "schemas; do not edit. Every vendor format is an assumed contract until the "
                "vendor supplies its specification (docs/formats.md)."
            ),
            "license": {"name": "EUPL-1.2", "url": "https://eupl.eu/1.2/en/"},
        },
        "defaultContentType": "application/vnd.apache.avro+binary",
        "servers": {
            "production": {
                "host": "kafka.sozialhub.example:9094",
                "protocol": "kafka-secure",
                "description": "Replace with the operator's bootstrap servers (SASL_SSL).",
                "security": [{"$ref": "#/components/securitySchemes/scramSha512"}],
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "securitySchemes": {
                "scramSha512": {
                    "type": "scramSha512",
                    "description": "One principal per vendor, `vendor-<vendor>` (deploy/README.md).",
                }
            },
        },
    }


def render(settings: Settings, specs: tuple[TopicSpec, ...]) -> str:
    """The document as YAML, stable across runs (no timestamps, insertion order kept)."""
    text: str = yaml.safe_dump(
        document(settings, specs), sort_keys=False, allow_unicode=True, width=100
    )
    return "# Generated by `sozialhub asyncapi`; do not edit.\n" + text
