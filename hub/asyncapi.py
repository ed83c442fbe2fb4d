"""``sozialhub asyncapi``: the vendor-facing topics as an AsyncAPI 3.0 document.

Generated from ``topics.yml`` (every vendor-facing topic whose value names a
published ``schema``: the deliveries ``fachverfahren.<vendor>`` and the
Rechtskreiswechsel messages ``handovers.<vendor>``) and the schema files under
``schemas/`` (Avro for the deliveries, JSON Schema for the messages). Nothing in
the document is written by hand, so it cannot drift from the code:
``docs/asyncapi.yaml`` is this function's output, and a test regenerates it and
compares.

The document describes what a vendor's consumer sees: the topic address
(with the configured prefix), the key (the delivery id or the message id, the
vendor's idempotency key), the value's schema (Avro with its compatibility
rule; the message record's JSON Schema), the delivery semantics (at least
once: take each key once), the consumer group prefix its principal may use,
and that there are no headers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from hub import __version__
from hub.config import ConfigError, Settings
from hub.core.rkw_stages import MESSAGE_ID
from hub.topics import TopicSpec

AVRO_SCHEMA_FORMAT = "application/vnd.apache.avro;version=1.9.0"
# The message record's schema (schemas/rechtskreiswechsel/message-1.schema.json) is JSON
# Schema draft 2020-12, written in the subset that means the same under draft-07: no $ref,
# $defs, prefixItems or unevaluated*; if/then, const and boolean schemas are draft-07 too
# (tests/unit/test_rkw_message_schema.py validates every message under both drafts). So the
# document carries it unchanged as a Multi Format Schema Object declared draft-07: AsyncAPI
# 3.0 lists JSON Schema draft-07 (and its own Schema Object, a draft-07 superset) among the
# formats every tool MUST support, while draft 2020-12 is only a custom value whose support
# is optional: the AsyncAPI JS parser (behind `asyncapi validate`, Studio, the generator)
# rejected custom formats as "Unknown schema format" until parser-js #1218 (2026), so the
# tool versions vendors have still do. And no $ref inside it: a tool resolves a $ref in
# the document against the document, not against the schema.
JSON_SCHEMA_FORMAT = "application/schema+json;version=draft-07"
VENDOR_PREFIX = "fachverfahren."
HANDOVER_PREFIX = "handovers."
KEY_PATTERN = "^dlv-[0-9a-f]{32}$"
MESSAGE_KEY_PATTERN = f"^{MESSAGE_ID.pattern}$"


def _camel(text: str) -> str:
    parts = [p for p in text.replace("-", ".").replace("_", ".").split(".") if p]
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _schema_file(spec: TopicSpec, schema_dir: Path) -> dict[str, Any]:
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


def handover_topics(specs: tuple[TopicSpec, ...]) -> tuple[TopicSpec, ...]:
    """The Rechtskreiswechsel topics vendors consume: under ``handovers.`` with a published schema."""
    return tuple(s for s in specs if s.name.startswith(HANDOVER_PREFIX) and "schema" in s.value)


def _channel_bindings(settings: Settings, spec: TopicSpec) -> dict[str, Any]:
    config = spec.config
    return {
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
    }


def _group_binding(vendor: str) -> dict[str, Any]:
    return {
        "kafka": {
            "groupId": {"type": "string", "pattern": f"^vendor-{vendor}\\..+$"},
            "bindingVersion": "0.5.0",
        }
    }


def _schema_key(spec: TopicSpec) -> str:
    """``sozialhub.rechtskreiswechsel-message/1`` -> ``rechtskreiswechselMessageV1``."""
    name, _, version = str(spec.value["contract"]).split(".", 1)[1].partition("/")
    return _camel(name) + (f"V{version}" if version else "")


def _handovers(
    settings: Settings,
    specs: tuple[TopicSpec, ...],
    channels: dict[str, Any],
    operations: dict[str, Any],
    messages: dict[str, Any],
) -> dict[str, Any]:
    """Channels, operations and messages of ``handovers.<vendor>``; the schemas they share."""
    schemas: dict[str, Any] = {}
    # A vendor's principal exists for the kafka delivery channel, which has fachverfahren.<v>.
    principals = {s.name.removeprefix(VENDOR_PREFIX) for s in vendor_topics(specs)}
    for spec in handover_topics(specs):
        vendor = spec.name.removeprefix(HANDOVER_PREFIX)
        channel_id = _camel(spec.name)
        contract = str(spec.value["contract"])
        message_id = _camel(f"{vendor}.{contract.split('.', 1)[1].partition('/')[0]}")
        schema_key = _schema_key(spec)
        if schema_key not in schemas:
            schemas[schema_key] = {
                "schemaFormat": JSON_SCHEMA_FORMAT,
                "schema": _schema_file(spec, settings.schema_dir),
            }
        messages[message_id] = {
            "name": message_id,
            "title": f"Rechtskreiswechsel message for {vendor}",
            "summary": spec.description,
            "contentType": str(spec.value["content_type"]),
            "description": (
                f"Contract `{contract}`, schema `{spec.value['schema']}` (JSON Schema draft "
                f"2020-12; `#/components/schemas/{schema_key}` is that file unchanged). One "
                "office's share of one Rechtskreiswechsel event (docs/rechtskreiswechsel.md): "
                "`handover` (the case data the transfer gate allowed) or `notice` (data-free) "
                "for the new office, `confirmation` for the old office, `information` (with "
                "the allowed data, or data-free) for an affected office. A data-free message "
                "carries no case data and no categories. The value is compact UTF-8 JSON with "
                "sorted keys; records carry no headers."
            ),
            "payload": {"$ref": f"#/components/schemas/{schema_key}"},
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "pattern": MESSAGE_KEY_PATTERN,
                        "description": "the message id (`message_id`), per event and office",
                    },
                    "bindingVersion": "0.5.0",
                }
            },
        }
        channels[channel_id] = {
            "address": settings.topic(spec.name),
            "title": f"Rechtskreiswechsel messages for {vendor}",
            "description": spec.description,
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
            "bindings": _channel_bindings(settings, spec),
        }
        access = (
            f"Consume with principal `vendor-{vendor}` in a consumer group named "
            f"`vendor-{vendor}.<anything>`, the principal and group prefix of its deliveries."
            if vendor in principals
            else f"`{vendor}` has no Kafka principal (its deliveries do not go over Kafka), so "
            "it does not read this topic itself: the messages reach it only through a delivery "
            "channel that forwards them (docs/rechtskreiswechsel.md)."
        )
        operations[_camel(f"receive.{vendor}.handovers")] = {
            "action": "receive",
            "title": f"{vendor} consumes the Rechtskreiswechsel messages for its offices",
            "description": (
                f"{access} Delivery is at least once: a message can come again with the same "
                "key (message id), after a hub restart or when the old office re-sends the "
                "event, and then need not have the same bytes (the transfer gate decides again "
                "at every send: its time, and after a revoked consent the kind, can differ). "
                "Take each pair of message id and kind once: the same id with another kind "
                "supersedes the earlier message (a notice, then a handover once the person's "
                "consent exists and the event is re-sent; or the reverse after a revocation). "
                "No order holds between different keys."
            ),
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
            "bindings": _group_binding(vendor),
        }
    return schemas


def document(settings: Settings, specs: tuple[TopicSpec, ...]) -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document for every vendor topic of ``specs``."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in vendor_topics(specs):
        vendor = spec.name.removeprefix(VENDOR_PREFIX)
        channel_id = _camel(spec.name)
        message_id = _camel(f"{vendor}.{spec.value['contract'].split('.', 1)[1].split('/')[0]}")
        schema = _schema_file(spec, settings.schema_dir)
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
        channels[channel_id] = {
            "address": settings.topic(spec.name),
            "title": f"Deliveries for {vendor}",
            "description": spec.description,
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
            "bindings": _channel_bindings(settings, spec),
        }
        operations[_camel(f"receive.{vendor}")] = {
            "action": "receive",
            "title": f"{vendor} consumes its deliveries",
            "description": (
                f"Consume with principal `vendor-{vendor}` in a consumer group named "
                f"`vendor-{vendor}.<anything>`; no other topic or group is readable but "
                "its Rechtskreiswechsel messages. Book each key (delivery id) once: a "
                "redelivery after a hub restart has the same key and the same bytes."
            ),
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
            "bindings": _group_binding(vendor),
        }
    schemas = _handovers(settings, specs, channels, operations, messages)
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "sozialhub vendor topics",
            "version": __version__,
            "description": (
                "Generated by `sozialhub asyncapi` from topics.yml and the published schemas "
                "(Avro for the deliveries on fachverfahren.<vendor>, JSON Schema for the "
                "Rechtskreiswechsel messages on handovers.<vendor>); do not edit. Every vendor "
                "format is an assumed contract until the vendor supplies its specification "
                "(docs/formats.md)."
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
            **({"schemas": schemas} if schemas else {}),
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
