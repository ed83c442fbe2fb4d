"""Topics as code: ``topics.yml`` parsed into typed specs, planned and applied.

``plan()`` is pure: declared specs and the observed cluster state in, a plan
out (topics to create, drift to report, undeclared topics under our prefix).
``apply()`` creates what is missing and never deletes unless asked to.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from hub.config import ConfigError, Settings


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str  # logical name, without prefix
    partitions: int
    replication_factor: int
    config: Mapping[str, str]
    description: str
    key: Mapping[str, str]
    value: Mapping[str, str]
    producer: str
    consumers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ObservedTopic:
    partitions: int
    config: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Drift:
    topic: str
    setting: str
    declared: str
    actual: str


@dataclass(frozen=True)
class Plan:
    create: tuple[TopicSpec, ...] = ()
    drift: tuple[Drift, ...] = ()
    unknown: tuple[str, ...] = ()  # full names under our prefix that topics.yml does not declare
    in_sync: tuple[str, ...] = field(default=())

    @property
    def clean(self) -> bool:
        return not (self.create or self.drift or self.unknown)

    def as_dict(self, prefix: str) -> dict[str, Any]:
        return {
            "create": [prefix + t.name for t in self.create],
            "drift": [
                {
                    "topic": prefix + d.topic,
                    "setting": d.setting,
                    "declared": d.declared,
                    "actual": d.actual,
                }
                for d in self.drift
            ],
            "unknown": list(self.unknown),
            "in_sync": [prefix + n for n in self.in_sync],
        }


def parse(
    document: Any, schema: Mapping[str, Any], replication_override: int | None = None
) -> tuple[TopicSpec, ...]:
    try:
        jsonschema.validate(document, schema)
    except jsonschema.ValidationError as exc:
        location = "/".join(str(p) for p in exc.absolute_path) or "/"
        raise ConfigError(f"topics.yml invalid at {location}") from None
    defaults = document["defaults"]
    specs = []
    names: set[str] = set()
    for t in document["topics"]:
        if t["name"] in names:
            raise ConfigError(f"topics.yml declares {t['name']} twice")
        names.add(t["name"])
        replication = replication_override or t.get(
            "replication_factor", defaults["replication_factor"]
        )
        config = {
            **defaults.get("config", {}),
            **t.get("config", {}),
            "retention.ms": str(t["retention_ms"]),
            "cleanup.policy": t["cleanup_policy"],
        }
        if replication < 2:
            config.pop("min.insync.replicas", None)
        specs.append(
            TopicSpec(
                name=t["name"],
                partitions=t.get("partitions", defaults["partitions"]),
                replication_factor=replication,
                config=config,
                description=t["description"],
                key=t["key"],
                value=t["value"],
                producer=t["producer"],
                consumers=tuple(t["consumers"]),
            )
        )
    return tuple(specs)


def load(settings: Settings) -> tuple[TopicSpec, ...]:
    schema = json.loads((settings.schema_dir / "hub" / "topics.schema.json").read_text("utf-8"))
    try:
        document = yaml.safe_load(Path(settings.topics_file).read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        raise ConfigError("topics.yml cannot be read") from None
    return parse(document, schema, settings.replication_factor)


def plan(specs: Iterable[TopicSpec], observed: Mapping[str, ObservedTopic], prefix: str) -> Plan:
    """Compare declared topics with what the cluster has (keys of ``observed`` are full names)."""
    create: list[TopicSpec] = []
    drift: list[Drift] = []
    in_sync: list[str] = []
    declared = set()
    for spec in specs:
        full = prefix + spec.name
        declared.add(full)
        actual = observed.get(full)
        if actual is None:
            create.append(spec)
            continue
        found = []
        if actual.partitions != spec.partitions:
            found.append(
                Drift(spec.name, "partitions", str(spec.partitions), str(actual.partitions))
            )
        for key, value in sorted(spec.config.items()):
            if key in actual.config and actual.config[key] != value:
                found.append(Drift(spec.name, key, value, actual.config[key]))
        drift.extend(found)
        if not found:
            in_sync.append(spec.name)
    unknown = sorted(name for name in observed if name.startswith(prefix) and name not in declared)
    return Plan(tuple(create), tuple(drift), tuple(unknown), tuple(in_sync))


# --- adapter: talks to a cluster through confluent-kafka's AdminClient -------------------------


def _admin(settings: Settings) -> Any:
    from confluent_kafka.admin import AdminClient  # noqa: PLC0415 - keep CLI start-up light

    return AdminClient(settings.kafka_config())


def observe(
    settings: Settings, specs: Iterable[TopicSpec], timeout: float = 15.0
) -> dict[str, ObservedTopic]:
    from confluent_kafka.admin import (  # type: ignore[attr-defined] # noqa: PLC0415
        ConfigResource,
        ResourceType,
    )

    admin = _admin(settings)
    metadata = admin.list_topics(timeout=timeout)
    names = [n for n in metadata.topics if n.startswith(settings.topic_prefix)]
    configs: dict[str, dict[str, str]] = {n: {} for n in names}
    wanted = {settings.topic(s.name) for s in specs}
    resources = [ConfigResource(ResourceType.TOPIC, n) for n in names if n in wanted]
    if resources:
        for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
            entries = future.result(timeout=timeout)
            configs[resource.name] = {k: v.value for k, v in entries.items() if v.value is not None}
    return {
        n: ObservedTopic(partitions=len(metadata.topics[n].partitions), config=configs.get(n, {}))
        for n in names
    }


def apply(
    settings: Settings,
    specs: tuple[TopicSpec, ...],
    *,
    delete_unknown: bool = False,
    timeout: float = 30.0,
) -> Plan:
    """Create missing topics; report drift; delete undeclared ones only when asked."""
    from confluent_kafka import KafkaException  # noqa: PLC0415
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined] # noqa: PLC0415

    current = plan(specs, observe(settings, specs), settings.topic_prefix)
    admin = _admin(settings)
    if current.create:
        futures = admin.create_topics(
            [
                NewTopic(
                    settings.topic(s.name),
                    num_partitions=s.partitions,
                    replication_factor=s.replication_factor,
                    config=dict(s.config),
                )
                for s in current.create
            ],
            request_timeout=timeout,
        )
        for future in futures.values():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc.args[0]):  # created concurrently: fine
                    raise
    if delete_unknown and current.unknown:
        for future in admin.delete_topics(list(current.unknown), request_timeout=timeout).values():
            future.result(timeout=timeout)
    return current


def delete_prefixed(settings: Settings, timeout: float = 30.0) -> tuple[str, ...]:
    """Delete every topic under the settings' prefix (demo and benchmark clean-up on a real cluster)."""
    admin = _admin(settings)
    names = tuple(
        n for n in admin.list_topics(timeout=timeout).topics if n.startswith(settings.topic_prefix)
    )
    if names:
        for future in admin.delete_topics(list(names), request_timeout=timeout).values():
            future.result(timeout=timeout)
    return names


# --- Strimzi KafkaTopic resources ---------------------------------------------------------------

# A Kubernetes object name (RFC 1123 subdomain), as the mapped resource names can contain it.
_K8S_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,251}[a-z0-9])?$")


def strimzi(
    specs: Iterable[TopicSpec],
    prefix: str,
    cluster: str = "sozialhub",
    namespace: str = "sozialhub",
    api_version: str = "kafka.strimzi.io/v1",
) -> str:
    """KafkaTopic resources (Strimzi 1.x ``kafka.strimzi.io/v1``) as one YAML stream. Pure.

    Resource names are the topic names with ``.`` and ``_`` replaced by ``-``;
    two topics that would get the same resource name, or a name Kubernetes cannot
    hold (leading or trailing ``-``, over 253 characters), are a configuration error.
    """
    documents = []
    resource_names: set[str] = set()
    for spec in specs:
        full = prefix + spec.name
        resource = full.replace(".", "-").replace("_", "-").lower()
        if not _K8S_NAME.match(resource):
            raise ConfigError(f"topic {full} has no valid Strimzi resource name (RFC 1123)")
        if resource in resource_names:
            raise ConfigError(f"topics {full} and another map to the same Strimzi resource name")
        resource_names.add(resource)
        documents.append(
            {
                "apiVersion": api_version,
                "kind": "KafkaTopic",
                "metadata": {
                    "name": resource,
                    "namespace": namespace,
                    "labels": {
                        "strimzi.io/cluster": cluster,
                        "app.kubernetes.io/part-of": "sozialhub",
                    },
                    "annotations": {
                        "sozialhub.de/description": spec.description,
                        "sozialhub.de/contract": spec.value["contract"],
                    },
                },
                "spec": {
                    "topicName": full,
                    "partitions": spec.partitions,
                    "replicas": spec.replication_factor,
                    "config": dict(sorted(spec.config.items())),
                },
            }
        )
    header = "# GENERATED by `sozialhub topics strimzi` from topics.yml. Do not edit; regenerate.\n"
    return header + yaml.safe_dump_all(
        documents, sort_keys=False, allow_unicode=True, explicit_start=True
    )
