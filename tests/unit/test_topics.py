"""Topics as code: topics.yml against its schema, parse(), the pure plan() and strimzi()."""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from typing import Any

import jsonschema
import pytest
import yaml

from hub import context, topics
from hub.config import ConfigError
from hub.topics import Drift, ObservedTopic, TopicSpec

PREFIX = "sozialhub."
# Kubernetes object names (RFC 1123 subdomain): lowercase alphanumerics, '-' and '.'.
RFC1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


@pytest.fixture(scope="module")
def schema(settings) -> dict[str, Any]:
    return json.loads((settings.schema_dir / "hub" / "topics.schema.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def document(settings) -> dict[str, Any]:
    return yaml.safe_load(settings.topics_file.read_text("utf-8"))


@pytest.fixture(scope="module")
def specs(settings) -> tuple[TopicSpec, ...]:
    return topics.load(settings)


def minimal(*names: str, **topic_fields: Any) -> dict[str, Any]:
    """A valid topics.yml document with one topic per name."""
    return {
        "schema": "sozialhub.topics/1",
        "defaults": {
            "partitions": 3,
            "replication_factor": 3,
            "config": {"min.insync.replicas": "2"},
        },
        "topics": [
            {
                "name": name,
                "description": "A topic used by the tests only.",
                "retention_ms": 86400000,
                "cleanup_policy": "delete",
                "key": {"type": "string", "meaning": "submission id"},
                "value": {"contract": "sozialhub.test/1", "content_type": "application/json"},
                "producer": "tests",
                "consumers": ["tests"],
                **topic_fields,
            }
            for name in names
        ],
    }


def spec(name: str, partitions: int = 3, **config: str) -> TopicSpec:
    return TopicSpec(
        name=name,
        partitions=partitions,
        replication_factor=3,
        config={"retention.ms": "86400000", "cleanup.policy": "delete", **config},
        description="A topic used by the tests only.",
        key={"type": "string", "meaning": "id"},
        value={"contract": "sozialhub.test/1", "content_type": "application/json"},
        producer="tests",
        consumers=("tests",),
    )


def observed(s: TopicSpec, partitions: int | None = None, **config: str) -> ObservedTopic:
    """What a cluster reports for a topic created from ``s``, with optional differences."""
    return ObservedTopic(
        partitions=s.partitions if partitions is None else partitions,
        config={**s.config, **config},
    )


def assert_config_error(document: Any, schema: dict[str, Any], *hidden: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        topics.parse(document, schema)
    message = str(caught.value)
    expected = ([], None)
    actual = ([h for h in hidden if h in message], caught.value.__cause__)
    assert expected == actual, message
    return caught.value


class TestTopicsFile:
    def test_validates_against_schema(self, document, schema):
        """The shipped topics.yml is valid against schemas/hub/topics.schema.json."""
        jsonschema.validate(document, schema)

    def test_schema_is_a_valid_draft_2020_12_schema(self, schema):
        """The JSON schema itself is well-formed."""
        jsonschema.Draft202012Validator.check_schema(schema)

    def test_load_gives_one_spec_per_declared_topic(self, document, specs):
        """load() keeps every declared topic, in file order."""
        expected = [t["name"] for t in document["topics"]]
        assert expected == [s.name for s in specs]

    def test_every_vendor_has_a_topic(self, hub_context, specs, office_table):
        """Every vendor has its deliveries.<vendor> queue; a kafka-channel vendor its vendor topic."""
        queues = tuple(sorted(f"deliveries.{v}" for v in office_table.vendors))
        kafka = tuple(
            sorted(
                f"fachverfahren.{v.vendor_id}"
                for v in office_table.vendors.values()
                if v.channel == "kafka"
            )
        )
        assert (*queues, *kafka) == context.check_vendor_topics(hub_context, specs)

    def test_missing_delivery_queue_is_a_config_error(self, hub_context, specs):
        """check_vendor_topics() names a delivery queue topics.yml lacks."""
        without = tuple(s for s in specs if s.name != "deliveries.lammkom")
        with pytest.raises(ConfigError, match=r"deliveries\.lammkom"):
            context.check_vendor_topics(hub_context, without)

    def test_only_kafka_vendors_have_a_vendor_topic(self, specs, office_table):
        """topics.yml declares fachverfahren.<vendor> exactly for the kafka-channel vendors."""
        kafka = {v.vendor_id for v in office_table.vendors.values() if v.channel == "kafka"}
        declared = {
            s.name.removeprefix("fachverfahren.")
            for s in specs
            if s.name.startswith("fachverfahren.")
        }
        assert kafka == declared

    def test_missing_vendor_topic_is_a_config_error(self, hub_context, specs):
        """check_vendor_topics() names a vendor topic topics.yml lacks."""
        without = tuple(s for s in specs if s.name != "fachverfahren.akdn")
        with pytest.raises(ConfigError, match=r"fachverfahren\.akdn"):
            context.check_vendor_topics(hub_context, without)


class TestParse:
    def test_defaults_and_topic_values(self, schema):
        """A topic inherits partitions, replication and config from defaults; its own fields win."""
        document = minimal("a.one", partitions=6, config={"max.message.bytes": "1048576"})
        (parsed,) = topics.parse(document, schema)
        expected = (
            6,
            3,
            {
                "min.insync.replicas": "2",
                "max.message.bytes": "1048576",
                "retention.ms": "86400000",
                "cleanup.policy": "delete",
            },
            ("tests",),
        )
        assert expected == (
            parsed.partitions,
            parsed.replication_factor,
            dict(parsed.config),
            parsed.consumers,
        )

    def test_duplicate_name_is_rejected(self, schema):
        """A topic declared twice is a ConfigError naming the topic."""
        error = assert_config_error(minimal("a.one", "a.two", "a.one"), schema)
        assert "a.one" in str(error)

    @pytest.mark.parametrize(
        ("change", "hidden"),
        [
            pytest.param(
                lambda d: d["topics"][0].update(partitions="canary-7731"), "canary-7731", id="type"
            ),
            pytest.param(lambda d: d["topics"][0].update(partitions=0), None, id="minimum"),
            pytest.param(
                lambda d: d["topics"][0].update(name="Canary.Upper"), "Canary", id="name-pattern"
            ),
            pytest.param(
                lambda d: d["topics"][0].update(config={"max.message.bytes": 99881177}),
                "99881177",
                id="config-type",
            ),
            pytest.param(
                lambda d: d["topics"][0].update(config={"retention.ms": "7"}),
                None,
                id="reserved-config-key",
            ),
            pytest.param(
                lambda d: d["topics"][0].update(cleanup_policy="canary-policy"), "canary", id="enum"
            ),
            pytest.param(lambda d: d["topics"][0].pop("consumers"), None, id="missing-field"),
            pytest.param(
                lambda d: d["topics"][0].update(extra_canary="x"),
                "extra_canary",
                id="unknown-field",
            ),
            pytest.param(
                lambda d: d.update(schema="sozialhub.topics/2"), "topics/2", id="schema-version"
            ),
            pytest.param(lambda d: d.update(topics=[]), None, id="no-topics"),
        ],
    )
    def test_schema_violation_is_a_config_error_without_values(self, schema, change, hidden):
        """A schema violation is a ConfigError; its message carries no value from the file."""
        document = minimal("a.one")
        change(document)
        error = assert_config_error(document, schema, *([hidden] if hidden else []))
        assert str(error).startswith("topics.yml invalid at ")

    @pytest.mark.parametrize(
        "document", [None, [], "topics", 42], ids=["empty", "list", "string", "number"]
    )
    def test_not_a_mapping_is_a_config_error(self, schema, document):
        """A file that is not a mapping at all is a ConfigError, not a crash."""
        assert_config_error(document, schema)

    def test_location_names_the_offending_field(self, schema):
        """The message points at the field (its path), so an operator can find it."""
        document = minimal("a.one", "a.two")
        document["topics"][1]["partitions"] = 0
        error = assert_config_error(document, schema)
        expected = "topics.yml invalid at topics/1/partitions"
        assert expected == str(error)


class TestReplication:
    def test_min_insync_kept_with_replication_three(self, schema):
        """With replication 3 the default min.insync.replicas=2 is kept."""
        (parsed,) = topics.parse(minimal("a.one"), schema)
        expected = (3, "2")
        assert expected == (parsed.replication_factor, parsed.config.get("min.insync.replicas"))

    def test_override_one_drops_min_insync(self, schema):
        """replication override 1 (single broker) drops min.insync.replicas for every topic."""
        parsed = topics.parse(minimal("a.one", "a.two"), schema, replication_override=1)
        expected = [(1, False), (1, False)]
        assert expected == [
            (s.replication_factor, "min.insync.replicas" in s.config) for s in parsed
        ]

    def test_topic_replication_one_drops_min_insync(self, schema):
        """A topic declaring replication 1 itself loses min.insync.replicas; the others keep it."""
        document = minimal("a.one", "a.two")
        document["topics"][0]["replication_factor"] = 1
        parsed = topics.parse(document, schema)
        expected = [(1, False), (3, True)]
        assert expected == [
            (s.replication_factor, "min.insync.replicas" in s.config) for s in parsed
        ]

    def test_load_applies_the_settings_override(self, settings):
        """Settings.replication_factor=1 reaches every spec loaded from the shipped topics.yml."""
        parsed = topics.load(settings.with_overrides(replication_factor=1))
        expected = {(1, False)}
        assert expected == {
            (s.replication_factor, "min.insync.replicas" in s.config) for s in parsed
        }

    def test_parse_does_not_modify_the_document(self, schema):
        """Dropping min.insync.replicas does not touch the shared defaults of the input document."""
        document = minimal("a.one")
        before = copy.deepcopy(document)
        topics.parse(document, schema, replication_override=1)
        assert before == document


class TestPlan:
    def test_missing_topic_is_created(self):
        """A declared topic the cluster lacks is planned for creation."""
        a, b = spec("a"), spec("b")
        result = topics.plan([a, b], {PREFIX + "a": observed(a)}, PREFIX)
        expected = ((b,), (), (), ("a",))
        assert expected == (result.create, result.drift, result.unknown, result.in_sync)

    def test_partition_drift_is_reported(self):
        """Different partition counts are drift with declared and actual values."""
        a = spec("a", partitions=3)
        result = topics.plan([a], {PREFIX + "a": observed(a, partitions=6)}, PREFIX)
        expected = ((), (Drift("a", "partitions", "3", "6"),), ())
        assert expected == (result.create, result.drift, result.in_sync)

    def test_config_drift_is_reported(self):
        """A differing config value is drift with declared and actual value; topic not in sync."""
        a = spec("a", **{"max.message.bytes": "8388608"})
        cluster = {
            PREFIX + "a": observed(a, **{"max.message.bytes": "1048576", "retention.ms": "1"})
        }
        result = topics.plan([a], cluster, PREFIX)
        expected = (
            (
                Drift("a", "max.message.bytes", "8388608", "1048576"),
                Drift("a", "retention.ms", "86400000", "1"),
            ),
            (),
        )
        assert expected == (result.drift, result.in_sync)

    def test_config_not_reported_by_the_cluster_is_not_drift(self):
        """A declared setting the cluster does not report is not drift (describe may omit it)."""
        a = spec("a", **{"min.insync.replicas": "2"})
        cluster = {PREFIX + "a": ObservedTopic(partitions=3, config={"retention.ms": "86400000"})}
        result = topics.plan([a], cluster, PREFIX)
        expected = ((), ("a",))
        assert expected == (result.drift, result.in_sync)

    def test_undeclared_topic_under_prefix_is_unknown(self):
        """An undeclared topic under our prefix is listed as unknown (full name, sorted)."""
        a = spec("a")
        cluster = {
            PREFIX + "a": observed(a),
            PREFIX + "zz.old": ObservedTopic(1, {}),
            PREFIX + "b.legacy": ObservedTopic(1, {}),
        }
        result = topics.plan([a], cluster, PREFIX)
        expected = ((PREFIX + "b.legacy", PREFIX + "zz.old"), ("a",))
        assert expected == (result.unknown, result.in_sync)

    def test_topics_outside_the_prefix_are_ignored(self):
        """Other applications' topics (and internal ones) are neither unknown nor drift."""
        a = spec("a")
        cluster = {
            PREFIX + "a": observed(a),
            "other.a": ObservedTopic(1, {"retention.ms": "1"}),
            "__consumer_offsets": ObservedTopic(50, {}),
            "a": ObservedTopic(9, {}),
        }
        result = topics.plan([a], cluster, PREFIX)
        expected = ((), (), (), ("a",), True)
        assert expected == (
            result.create,
            result.drift,
            result.unknown,
            result.in_sync,
            result.clean,
        )

    def test_everything_in_sync_is_clean(self, specs):
        """A cluster matching topics.yml exactly gives a clean plan with every topic in sync."""
        cluster = {PREFIX + s.name: observed(s) for s in specs}
        result = topics.plan(specs, cluster, PREFIX)
        expected = (True, tuple(s.name for s in specs))
        assert expected == (result.clean, result.in_sync)

    def test_empty_cluster_creates_everything(self, specs):
        """On an empty cluster every declared topic is to be created and the plan is not clean."""
        result = topics.plan(specs, {}, PREFIX)
        expected = (specs, False)
        assert expected == (result.create, result.clean)

    def test_plan_as_dict_uses_full_names(self):
        """as_dict() reports full topic names for create, drift, unknown and in_sync."""
        a, b, c = spec("a"), spec("b"), spec("c", partitions=1)
        cluster = {
            PREFIX + "b": observed(b),
            PREFIX + "c": observed(c, partitions=2),
            PREFIX + "x": ObservedTopic(1, {}),
        }
        body = topics.plan([a, b, c], cluster, PREFIX).as_dict(PREFIX)
        expected = {
            "create": [PREFIX + "a"],
            "drift": [
                {"topic": PREFIX + "c", "setting": "partitions", "declared": "1", "actual": "2"}
            ],
            "unknown": [PREFIX + "x"],
            "in_sync": [PREFIX + "b"],
        }
        assert expected == body

    def test_plan_is_pure(self):
        """plan() does not modify its inputs and gives the same answer twice."""
        a = spec("a")
        cluster = {PREFIX + "a": observed(a, partitions=1), PREFIX + "x": ObservedTopic(1, {})}
        before = copy.deepcopy(cluster)
        first, second = topics.plan([a], cluster, PREFIX), topics.plan([a], cluster, PREFIX)
        expected = (before, first)
        assert expected == (cluster, second)


def rendered(specs: Any, prefix: str = PREFIX, **options: str) -> list[dict[str, Any]]:
    """strimzi() output parsed back into its YAML documents."""
    return [
        d for d in yaml.safe_load_all(topics.strimzi(specs, prefix, **options)) if d is not None
    ]


@pytest.fixture(scope="module")
def resources(specs) -> list[dict[str, Any]]:
    return rendered(specs)


class TestStrimzi:
    def test_output_is_yaml_with_one_kafka_topic_per_topic(self, specs, resources):
        """strimzi() renders one KafkaTopic document per declared topic."""
        expected = [("KafkaTopic", PREFIX + s.name) for s in specs]
        assert expected == [(r["kind"], r["spec"]["topicName"]) for r in resources]

    def test_api_version_is_strimzi_v1(self, resources):
        """Every resource uses apiVersion kafka.strimzi.io/v1 (Strimzi 1.x)."""
        expected = {"kafka.strimzi.io/v1"}
        assert expected == {r["apiVersion"] for r in resources}

    def test_resource_names_are_kubernetes_names(self, resources):
        """Resource names are valid, unique Kubernetes object names derived from the topic names."""
        names = [r["metadata"]["name"] for r in resources]
        expected = ([], len(names))
        assert expected == ([n for n in names if not RFC1123.match(n)], len(set(names)))

    def test_spec_carries_partitions_replicas_and_config(self, specs, resources):
        """Partitions, replicas and the full config come from the spec."""
        expected = [(s.partitions, s.replication_factor, dict(s.config)) for s in specs]
        actual = [
            (r["spec"]["partitions"], r["spec"]["replicas"], r["spec"]["config"]) for r in resources
        ]
        assert expected == actual

    def test_cluster_and_namespace(self, specs):
        """The cluster label and namespace are the ones asked for."""
        documents = rendered(specs, cluster="c1", namespace="ns1")
        expected = {("c1", "ns1")}
        actual = {
            (d["metadata"]["labels"]["strimzi.io/cluster"], d["metadata"]["namespace"])
            for d in documents
        }
        assert expected == actual

    def test_output_is_marked_generated(self, specs):
        """The stream starts with a do-not-edit header."""
        assert topics.strimzi(specs, PREFIX).startswith("# GENERATED by `sozialhub topics strimzi`")

    @pytest.mark.parametrize(
        ("first", "second"), [("a.b", "a_b"), ("a.b", "a-b"), ("x_y.z", "x.y-z")]
    )
    def test_colliding_resource_names_are_a_config_error(self, first, second):
        """Two topics that map to the same resource name after '.'/'_' -> '-' are a ConfigError."""
        with pytest.raises(ConfigError):
            topics.strimzi([spec(first), spec(second)], PREFIX)

    def test_names_that_differ_after_mapping_are_fine(self):
        """Distinct names that stay distinct after the mapping render without error."""
        documents = rendered([spec("a.b"), spec("a.c")])
        expected = ["sozialhub-a-b", "sozialhub-a-c"]
        assert expected == [d["metadata"]["name"] for d in documents]

    def test_uppercase_prefix_keeps_topic_name(self):
        """topicName keeps the configured prefix as is; only the resource name is lowercased."""
        (document,) = rendered([spec("a")], "Hub_X.")
        expected = ("hub-x-a", "Hub_X.a")
        assert expected == (document["metadata"]["name"], document["spec"]["topicName"])

    @pytest.mark.parametrize(
        ("prefix", "name"),
        [
            ("sozialhub.", "a."),
            ("sozialhub.", "a_"),
            ("sozialhub.", "a-"),
            ("_hub.", "a"),
            ("-hub.", "a"),
        ],
    )
    def test_names_kubernetes_cannot_hold_are_a_config_error(self, prefix, name):
        """A prefix or name whose resource name would start or end with '-' is a ConfigError."""
        with pytest.raises(ConfigError):
            topics.strimzi([spec(name)], prefix)

    def test_overlong_resource_name_is_a_config_error(self):
        """A resource name over 253 characters is a ConfigError, not a broken manifest."""
        with pytest.raises(ConfigError):
            topics.strimzi([spec("a" * 150)], "p" * 120 + ".")

    def test_spec_is_unchanged_by_rendering(self):
        """Rendering does not modify the specs."""
        a = spec("a")
        before = dataclasses.replace(a, config=dict(a.config))
        topics.strimzi([a], PREFIX)
        assert before == a
