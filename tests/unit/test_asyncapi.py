"""The vendor-facing AsyncAPI document: generated from the code, committed, consistent."""

from __future__ import annotations

import json
from typing import Any

import fastavro
import pytest
import yaml

from hub import asyncapi, cli, config, topics
from hub.config import PROJECT_ROOT
from hub.core.mapping import fvavro

COMMITTED = PROJECT_ROOT / "docs" / "asyncapi.yaml"
SETTINGS = config.load({})


@pytest.fixture(scope="module")
def specs() -> tuple[topics.TopicSpec, ...]:
    return topics.load(SETTINGS)


@pytest.fixture(scope="module")
def document(specs) -> dict[str, Any]:
    return asyncapi.document(SETTINGS, specs)


def _resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in _refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in _refs(value)]
    return []


def test_committed_document_is_what_the_code_generates(specs):
    """docs/asyncapi.yaml equals `sozialhub asyncapi` output: regenerate it after any change."""
    assert COMMITTED.read_text("utf-8") == asyncapi.render(SETTINGS, specs)


def test_cli_writes_the_document(tmp_path, specs):
    """`sozialhub asyncapi --output FILE` writes exactly the rendered document."""
    target = tmp_path / "asyncapi.yaml"
    assert 0 == cli.main(["asyncapi", "--output", str(target)])
    assert asyncapi.render(SETTINGS, specs) == target.read_text("utf-8")


def test_one_channel_per_kafka_vendor(document, office_table):
    """Exactly the kafka-channel vendors have a channel, at their prefixed vendor topic."""
    kafka = sorted(v.vendor_id for v in office_table.vendors.values() if v.channel == "kafka")
    addresses = sorted(c["address"] for c in document["channels"].values())
    assert [f"{SETTINGS.topic_prefix}fachverfahren.{v}" for v in kafka] == addresses


def test_every_reference_resolves(document):
    """Every $ref in the document points at something in the document."""
    refs = _refs(document)
    assert refs
    for ref in refs:
        assert _resolve(document, ref) is not None


def test_operations_receive_on_their_channel(document):
    """Each operation receives on a channel, with a message of that channel."""
    for operation in document["operations"].values():
        assert operation["action"] == "receive"
        channel = _resolve(document, operation["channel"]["$ref"])
        for message in operation["messages"]:
            prefix = operation["channel"]["$ref"] + "/messages/"
            assert message["$ref"].startswith(prefix)
            assert message["$ref"].removeprefix(prefix) in channel["messages"]


def test_payload_is_the_published_avro_schema(document):
    """The message payload is schemas/vendor/fv-avro-1.avsc, equal to the mapping's own schema."""
    published = json.loads((PROJECT_ROOT / "schemas" / "vendor" / "fv-avro-1.avsc").read_text())
    (message,) = document["components"]["messages"].values()
    assert message["payload"]["schemaFormat"].startswith("application/vnd.apache.avro")
    assert published == message["payload"]["schema"]
    assert published == fvavro.SCHEMA
    fastavro.parse_schema(message["payload"]["schema"])


def test_key_is_the_delivery_id_and_groups_are_prefixed(document):
    """The key binding is the delivery id pattern; group ids must carry the vendor prefix."""
    (message,) = document["components"]["messages"].values()
    assert message["bindings"]["kafka"]["key"]["pattern"] == "^dlv-[0-9a-f]{32}$"
    (operation,) = document["operations"].values()
    assert operation["bindings"]["kafka"]["groupId"]["pattern"] == "^vendor-akdn\\..+$"


def test_document_parses_as_asyncapi_3(document):
    """The committed YAML loads and declares AsyncAPI 3.0.0 with the required top-level fields."""
    loaded = yaml.safe_load(COMMITTED.read_text("utf-8"))
    assert loaded == document
    assert {"asyncapi", "info", "channels", "operations", "components"} <= set(loaded)
    assert loaded["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(loaded["info"])
