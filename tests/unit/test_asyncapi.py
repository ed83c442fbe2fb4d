"""The vendor-facing AsyncAPI document: generated from the code, committed, consistent."""

from __future__ import annotations

import json
import re
from typing import Any

import fastavro
import pytest
import yaml

from hub import asyncapi, cli, config, topics
from hub.config import PROJECT_ROOT
from hub.core import fanout
from hub.core import rkw_stages as stages
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


def _channels(document: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The channels whose address is under ``prefix`` (logical, without the topic prefix)."""
    full = SETTINGS.topic_prefix + prefix
    return {k: c for k, c in document["channels"].items() if c["address"].startswith(full)}


def _message(document: dict[str, Any], channel: dict[str, Any]) -> dict[str, Any]:
    (ref,) = channel["messages"].values()
    message: dict[str, Any] = _resolve(document, ref["$ref"])
    return message


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
    addresses = sorted(c["address"] for c in _channels(document, "fachverfahren.").values())
    assert [f"{SETTINGS.topic_prefix}fachverfahren.{v}" for v in kafka] == addresses


def test_one_channel_per_handovers_topic(document, specs, office_table):
    """Every handovers.<vendor> of topics.yml has a channel; every vendor has such a topic."""
    declared = sorted(s.name for s in specs if s.name.startswith("handovers."))
    assert declared == sorted(f"handovers.{v}" for v in office_table.vendors)
    addresses = sorted(c["address"] for c in _channels(document, "handovers.").values())
    assert [SETTINGS.topic_prefix + name for name in declared] == addresses
    assert len(document["channels"]) == len(_channels(document, "fachverfahren.")) + len(declared)


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
    (channel,) = _channels(document, "fachverfahren.").values()
    message = _message(document, channel)
    assert message["payload"]["schemaFormat"].startswith("application/vnd.apache.avro")
    assert published == message["payload"]["schema"]
    assert published == fvavro.SCHEMA
    fastavro.parse_schema(message["payload"]["schema"])


def test_key_is_the_delivery_id_and_groups_are_prefixed(document):
    """The key binding is the delivery id pattern; group ids must carry the vendor prefix."""
    (channel,) = _channels(document, "fachverfahren.").values()
    key = _message(document, channel)["bindings"]["kafka"]["key"]
    assert key["pattern"] == "^dlv-[0-9a-f]{32}$"
    operation = document["operations"]["receiveAkdn"]
    assert operation["channel"]["$ref"] == "#/channels/fachverfahrenAkdn"
    assert operation["bindings"]["kafka"]["groupId"]["pattern"] == "^vendor-akdn\\..+$"


# AsyncAPI 3.0.0, Multi Format Schema Object: the formats every tool MUST support.
MUST_SUPPORT = {
    "application/schema+json;version=draft-07",
    "application/schema+yaml;version=draft-07",
    "application/vnd.aai.asyncapi;version=3.0.0",
    "application/vnd.aai.asyncapi+json;version=3.0.0",
    "application/vnd.aai.asyncapi+yaml;version=3.0.0",
}


def test_handovers_payload_is_the_published_json_schema(document, specs):
    """Each handovers message's payload is the schema file topics.yml names, unchanged."""
    by_address = {SETTINGS.topic_prefix + s.name: s for s in specs}
    channels = _channels(document, "handovers.")
    assert channels
    for channel in channels.values():
        spec = by_address[channel["address"]]
        published = json.loads((PROJECT_ROOT / spec.value["schema"]).read_text("utf-8"))
        message = _message(document, channel)
        assert message["contentType"] == "application/json"
        payload = _resolve(document, message["payload"]["$ref"])
        assert payload["schemaFormat"] in MUST_SUPPORT
        assert published == payload["schema"]
        assert spec.value["schema"] == "schemas/rechtskreiswechsel/message-1.schema.json"


def test_handovers_schema_is_embedded_once(document):
    """The four vendors' messages share one components.schemas entry (no copies, no aliases)."""
    channels = _channels(document, "handovers.").values()
    refs = {_message(document, c)["payload"]["$ref"] for c in channels}
    assert refs == {f"#/components/schemas/{k}" for k in document["components"]["schemas"]}
    assert len(refs) == 1
    assert "&id" not in asyncapi.render(SETTINGS, topics.load(SETTINGS))


def test_handovers_key_is_the_message_id(document):
    """The key binding is the message id pattern, and the fan-out's message ids match it."""
    key = f"^{stages.MESSAGE_ID.pattern}$"
    sample = fanout.message_id("rkw-" + "0" * 32, "jc-re-marl")
    for channel in _channels(document, "handovers.").values():
        binding = _message(document, channel)["bindings"]["kafka"]["key"]
        assert (binding["type"], binding["pattern"]) == ("string", key)
        assert re.fullmatch(binding["pattern"].strip("^$"), sample)


def test_handovers_operations_state_the_delivery_semantics(document, office_table):
    """One receive operation per handovers channel: the vendor's group prefix, at least once,
    each message id and kind once; a principal only for kafka-channel vendors."""
    channels = _channels(document, "handovers.")
    operations = {
        o["channel"]["$ref"].removeprefix("#/channels/"): o
        for o in document["operations"].values()
        if o["channel"]["$ref"].removeprefix("#/channels/") in channels
    }
    assert sorted(operations) == sorted(channels)
    for channel_id, operation in operations.items():
        vendor = channels[channel_id]["address"].rsplit(".", 1)[1]
        groups = operation["bindings"]["kafka"]["groupId"]["pattern"]
        assert groups == f"^vendor-{vendor}\\..+$"
        text = operation["description"]
        assert "at least once" in text
        assert "Take each pair of message id and kind once" in text
        assert "supersedes" in text
        has_principal = office_table.vendors[vendor].channel == "kafka"
        assert (f"principal `vendor-{vendor}`" in text) is has_principal
        assert ("no Kafka principal" in text) is not has_principal


def test_document_parses_as_asyncapi_3(document):
    """The committed YAML loads and declares AsyncAPI 3.0.0 with the required top-level fields."""
    loaded = yaml.safe_load(COMMITTED.read_text("utf-8"))
    assert loaded == document
    assert {"asyncapi", "info", "channels", "operations", "components"} <= set(loaded)
    assert loaded["asyncapi"] == "3.0.0"
    assert {"title", "version"} <= set(loaded["info"])
