"""Topics as code against a real broker: create, idempotence, drift, undeclared topics."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from hub import topics

pytestmark = pytest.mark.integration


def _admin(settings):
    return AdminClient(settings.kafka_config())


class TestApply:
    def test_apply_created_every_declared_topic_and_is_idempotent(self, hub_settings):
        """After apply (done by the fixture) the plan is clean, and a second apply creates nothing."""
        specs = topics.load(hub_settings)
        observed = topics.observe(hub_settings, specs)
        for spec in specs:
            actual = observed[hub_settings.topic(spec.name)]
            assert (
                spec.partitions,
                spec.config["retention.ms"],
                spec.config["cleanup.policy"],
            ) == (
                actual.partitions,
                actual.config["retention.ms"],
                actual.config["cleanup.policy"],
            )
        again = topics.apply(hub_settings, specs)
        assert ((), (), ()) == (again.create, again.drift, again.unknown)
        assert len(specs) == len(again.in_sync)

    def test_config_drift_is_reported_not_overwritten(self, hub_settings):
        """A retention changed on the cluster shows up as drift with declared and actual values."""
        specs = topics.load(hub_settings)
        name = hub_settings.topic("submissions.deadletter")
        change = ConfigEntry("retention.ms", "1234", incremental_operation=AlterConfigOpType.SET)
        admin = _admin(hub_settings)  # keep a reference until the futures resolve
        resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[change])
        for future in admin.incremental_alter_configs([resource]).values():
            future.result(timeout=15)
        plan = topics.apply(hub_settings, specs)
        declared = next(s for s in specs if s.name == "submissions.deadletter").config[
            "retention.ms"
        ]
        assert [topics.Drift("submissions.deadletter", "retention.ms", declared, "1234")] == list(
            plan.drift
        )
        # apply reports drift but leaves the cluster as it is.
        after = topics.observe(hub_settings, specs)[name]
        assert "1234" == after.config["retention.ms"]

    def test_undeclared_topic_is_kept_unless_deletion_is_asked_for(self, hub_settings):
        """An undeclared topic under the prefix is reported; only --delete-unknown removes it."""
        specs = topics.load(hub_settings)
        stray = hub_settings.topic("stray.topic")
        admin = _admin(hub_settings)
        for future in admin.create_topics([NewTopic(stray, 1, 1)]).values():
            future.result(timeout=15)
        kept = topics.apply(hub_settings, specs)
        assert (stray,) == kept.unknown
        assert stray in topics.observe(hub_settings, specs)
        topics.apply(hub_settings, specs, delete_unknown=True)
        assert stray not in topics.observe(hub_settings, specs)
