"""One broker fixture for every integration test; the backend is chosen by setting.

- ``KAFKA_BOOTSTRAP_SERVERS`` set: that cluster (TLS/SASL from the usual variables).
- a Docker engine answers (developer laptops): Apache Kafka in KRaft mode in a
  container via testcontainers (its Python module runs Confluent's packaging of
  Apache Kafka, ``confluentinc/cp-kafka``).
- otherwise: the bundled Tansu broker (here and in CI, where no Docker engine runs).

``SOZIALHUB_TEST_BROKER=tansu|kafka`` forces a choice.

Every test gets a fresh topic prefix (and so a fresh consumer group) and its own
directories.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub import topics
from hub.broker import EmbeddedBroker, free_port
from hub.config import Settings, load

pytestmark = pytest.mark.integration


def _docker_engine_answers() -> bool:
    try:
        import docker

        return bool(docker.from_env(timeout=3).ping())
    except Exception:
        return False


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    choice = os.environ.get("SOZIALHUB_TEST_BROKER", "auto")
    if choice == "kafka" or (choice == "auto" and _docker_engine_answers()):
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


@pytest.fixture
def hub_settings(bootstrap_servers: str, tmp_path: Path) -> Settings:
    """Settings for one test: fresh prefix, own directories, free web port, topics applied."""
    base = load(
        {k: v for k, v in os.environ.items() if k.startswith(("KAFKA_", "SOZIALHUB_SIGNING"))}
    )
    settings = base.in_workspace(tmp_path).with_overrides(
        bootstrap_servers=bootstrap_servers,
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        replication_factor=1,
        web_port=free_port(),
    )
    topics.apply(settings, topics.load(settings))
    return settings
