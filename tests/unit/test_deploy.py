"""The deployment files under deploy/: in step with topics.yml, parseable, least privilege.

Nothing under deploy/ can run here (no container engine, no Kubernetes); these tests
check what can be checked statically: the Strimzi topics are exactly what
``sozialhub topics strimzi`` renders from topics.yml, every YAML file parses, the
kustomization lists what exists, the KafkaUser ACLs give each vendor its own topic
and nothing else, and the hub worker has no rights to create or delete anything.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from hub import config, topics

REPO_ROOT = Path(__file__).resolve().parents[2]
DEPLOY = REPO_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose"
SETTINGS = config.load({})
PREFIX = SETTINGS.topic_prefix
HUB_USER = "sozialhub-hub"
VENDOR_OPERATIONS = frozenset({"Read", "Describe"})
FORBIDDEN_OPERATIONS = frozenset(
    {"Create", "Alter", "Delete", "AlterConfigs", "ClusterAction", "All"}
)
_VENDOR_TABLE = yaml.safe_load(SETTINGS.offices_file.read_text("utf-8"))["vendors"]
# Only vendors on the kafka channel read from the cluster; the others get no principal.
VENDORS = sorted(v for v, spec in _VENDOR_TABLE.items() if spec["delivery"]["channel"] == "kafka")
OFFLINE_VENDORS = sorted(set(_VENDOR_TABLE) - set(VENDORS))
YAML_FILES = sorted(p for p in DEPLOY.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml"})


def _documents(path: Path) -> list[Any]:
    return [d for d in yaml.safe_load_all(path.read_text("utf-8")) if d is not None]


def _resources(kind: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in _documents(path):
            if isinstance(document, dict) and document.get("kind") == kind:
                found[document["metadata"]["name"]] = document
    return found


def _acls(user: str) -> list[dict[str, Any]]:
    return _resources("KafkaUser")[user]["spec"]["authorization"]["acls"]


def _operations(acl: dict[str, Any]) -> set[str]:
    single = [acl["operation"]] if "operation" in acl else []  # Strimzi's deprecated form
    return {*acl.get("operations", []), *single}


def _grants(acl: dict[str, Any], resource_type: str, name: str) -> bool:
    """Whether an ACL rule allows anything on the named resource (Kafka's matching rules)."""
    resource = acl["resource"]
    if acl.get("type", "allow") != "allow" or resource["type"] != resource_type:
        return False
    if resource.get("patternType", "literal") == "prefix":
        return name.startswith(resource["name"])
    return resource["name"] in {name, "*"}


def _setting_variables() -> set[str]:
    names = {f.name for f in dataclasses.fields(config.Settings) if f.name != "extra"}
    return {config._ENV.get(n, "SOZIALHUB_" + n.upper()) for n in names} | {"SOZIALHUB_CONFIG"}


def test_strimzi_topics_match_topics_yml() -> None:
    """topics.generated.yaml is exactly `sozialhub topics strimzi` output for the defaults."""
    expected = topics.strimzi(topics.load(SETTINGS), SETTINGS.topic_prefix)
    actual = (KUBERNETES / "topics.generated.yaml").read_text("utf-8")
    assert actual == expected, (
        "deploy/kubernetes/topics.generated.yaml is stale: regenerate it from topics.yml "
        "(see deploy/README.md)"
    )


def test_deploy_has_yaml_files() -> None:
    """The YAML checks below have files to check."""
    assert len(YAML_FILES) >= 7


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_yaml_parses(path: Path) -> None:
    """Every YAML file under deploy/ parses as a YAML stream with at least one document."""
    assert _documents(path)


def test_kustomization_lists_every_manifest() -> None:
    """The kustomization names every manifest in deploy/kubernetes/, and only existing ones."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text("utf-8"))
    listed = set(kustomization["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert "topics.generated.yaml" in listed


@pytest.mark.parametrize("vendor", VENDORS)
def test_vendor_user_is_least_privilege(vendor: str) -> None:
    """Each vendor's KafkaUser may only read its own topic and use its own group prefix."""
    user = _resources("KafkaUser").get(f"vendor-{vendor}")
    assert user is not None, f"no KafkaUser vendor-{vendor}"
    assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    assert user["spec"]["authorization"]["type"] == "simple"
    allowed = {
        ("topic", f"{PREFIX}fachverfahren.{vendor}", "literal"),
        ("topic", f"{PREFIX}handovers.{vendor}", "literal"),
        ("group", f"vendor-{vendor}.", "prefix"),
    }
    seen = set()
    for acl in user["spec"]["authorization"]["acls"]:
        resource = acl["resource"]
        assert resource["type"] != "cluster"
        key = (resource["type"], resource.get("name"), resource.get("patternType", "literal"))
        assert key in allowed, f"vendor-{vendor} has an ACL on {key}"
        operations = _operations(acl)
        assert operations, f"vendor-{vendor}: ACL without operations"
        assert not operations & FORBIDDEN_OPERATIONS
        assert operations <= VENDOR_OPERATIONS
        seen.add(key)
    assert seen == allowed, f"vendor-{vendor} cannot read its topic or commit offsets"


@pytest.mark.parametrize("vendor", VENDORS)
def test_vendor_cannot_read_other_topics(vendor: str) -> None:
    """No vendor user reaches another vendor's topic or groups, or any other hub topic."""
    acls = _acls(f"vendor-{vendor}")
    own = {f"{PREFIX}fachverfahren.{vendor}", f"{PREFIX}handovers.{vendor}"}
    for topic in own:
        assert any(_grants(a, "topic", topic) and "Read" in _operations(a) for a in acls)
    declared = [PREFIX + spec.name for spec in topics.load(SETTINGS)]
    others = [v for v in _VENDOR_TABLE if v != vendor]
    foreign = [f"{PREFIX}{kind}.{v}" for v in others for kind in ("fachverfahren", "handovers")]
    for topic in [*declared, *foreign]:
        if topic not in own:
            assert not any(_grants(a, "topic", topic) for a in acls), f"vendor-{vendor} -> {topic}"
    for other in others:
        group = f"vendor-{other}.consumer"
        assert not any(_grants(a, "group", group) for a in acls), f"vendor-{vendor} -> {group}"


def test_vendors_off_kafka_have_no_principal() -> None:
    """Vendors delivered by file or http have no KafkaUser: no access is the least privilege."""
    users = _resources("KafkaUser")
    assert VENDORS, "the example configuration has a kafka-channel vendor"
    assert OFFLINE_VENDORS, "the example configuration has file and http vendors"
    expected: list[str] = []
    assert expected == [v for v in OFFLINE_VENDORS if f"vendor-{v}" in users]


def test_compose_setup_creates_principals_for_kafka_vendors_only() -> None:
    """The compose ACL script and certificate script default to the kafka-channel vendors."""
    default = "vendors=${VENDORS:-" + " ".join(VENDORS) + "}"
    for name in ("kafka-setup.sh", "make-dev-certs.sh"):
        assert default in (COMPOSE / name).read_text("utf-8"), name


def test_hub_user_cannot_create_or_delete() -> None:
    """The worker user reads and writes every declared topic, with no admin or cluster rights."""
    acls = _acls(HUB_USER)
    for acl in acls:
        assert acl["resource"]["type"] != "cluster"
        assert not _operations(acl) & FORBIDDEN_OPERATIONS
    for spec in topics.load(SETTINGS):
        name = PREFIX + spec.name
        granted = set().union(*(_operations(a) for a in acls if _grants(a, "topic", name)))
        assert {"Read", "Write", "Describe"} <= granted, name
    group = set().union(*(_operations(a) for a in acls if _grants(a, "group", f"{PREFIX}hub")))
    assert "Read" in group


def test_hub_deployment_is_hardened() -> None:
    """The hub Deployment runs non-root, read-only, probed on /healthz and /readyz."""
    pod = _resources("Deployment")["sozialhub-hub"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["enableServiceLinks"] is False
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"]["path"] == path
        assert ports[container[probe]["httpGet"]["port"]] == SETTINGS.web_port
    env = {e["name"]: e for e in container["env"]}
    assert env["KAFKA_SASL_USERNAME"]["value"] == HUB_USER
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": HUB_USER,
        "key": "password",
    }


def test_hub_environment_names_real_settings() -> None:
    """Every KAFKA_*/SOZIALHUB_* variable given to the hub is one hub/config.py reads."""
    known = _setting_variables()
    pod = _resources("Deployment")["sozialhub-hub"]["spec"]["template"]["spec"]
    names = {e["name"] for e in pod["containers"][0]["env"]}
    for path in (COMPOSE / "compose.yaml", COMPOSE / "compose.sasl-ssl.yaml"):
        services = yaml.safe_load(path.read_text("utf-8"))["services"]
        for service in ("topics", "hub"):
            names |= set(services[service].get("environment", {}))
    containerfile = (DEPLOY / "Containerfile").read_text("utf-8")
    names |= set(re.findall(r"\b(SOZIALHUB_[A-Z_]+)=", containerfile))
    assert names - known == set()


def test_compose_setup_covers_every_vendor() -> None:
    """The compose SASL overlay creates a user for every vendor of config/offices.yml."""
    overlay = yaml.safe_load((COMPOSE / "compose.sasl-ssl.yaml").read_text("utf-8"))
    assert sorted(overlay["services"]["kafka-setup"]["environment"]["VENDORS"].split()) == VENDORS


def test_audit_user_reads_the_chain_and_its_checkpoints_only() -> None:
    """The audit team's principal reads audit.chain and audit.checkpoints, writes nothing, and
    reaches no other topic (not audit.keys, not audit.vault, not the inputs)."""
    acls = _acls("sozialhub-audit")
    readable = {f"{PREFIX}audit.chain", f"{PREFIX}audit.checkpoints"}
    for topic in readable:
        assert any(_grants(a, "topic", topic) and "Read" in _operations(a) for a in acls)
    for acl in acls:
        assert _operations(acl) <= {"Read", "Describe"}
        assert acl["resource"]["type"] == "topic"
    for spec in topics.load(SETTINGS):
        topic = PREFIX + spec.name
        if topic not in readable:
            assert not any(_grants(a, "topic", topic) for a in acls), f"sozialhub-audit -> {topic}"


COMPONENTS = sorted(p.parent for p in (KUBERNETES / "components").glob("*/kustomization.yaml"))


def _component_patches(component: Path) -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((component / "kustomization.yaml").read_text("utf-8"))
    assert kustomization["kind"] == "Component"
    for listed in kustomization.get("resources", []):
        assert (component / listed).is_file()
    return [
        yaml.safe_load((component / p["path"]).read_text("utf-8")) for p in kustomization["patches"]
    ]


def test_components_exist() -> None:
    """The optional connectors' components: XTA, FIT-Connect, the office's reader keys."""
    assert [c.name for c in COMPONENTS] == ["fitconnect", "reader-keys", "xta"]


@pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.name)
def test_component_configures_its_connector_completely(component: Path) -> None:
    """A component's patch merges into the hub container by name, sets only real settings,
    and sets every setting its connector needs: the settings load without a ConfigError. Every
    file it names is an item of a Secret volume mounted read-only at the file's directory."""
    hub = _resources("Deployment")["sozialhub-hub"]
    known = _setting_variables()
    for patch in _component_patches(component):
        assert (patch["kind"], patch["metadata"]["name"]) == ("Deployment", "sozialhub-hub")
        pod = patch["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["name"] == hub["spec"]["template"]["spec"]["containers"][0]["name"]
        env = {e["name"]: e for e in container["env"]}
        assert set(env) - known == set()
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        files = [
            path
            for e in env.values()
            for item in e.get("value", "").split(",")
            if (path := item.rpartition("=")[2]).startswith("/etc/sozialhub/")
        ]
        assert files
        for file in files:
            directory, _, name = file.rpartition("/")
            mount = mounts[directory]
            assert mount["readOnly"] is True
            secret = volumes[mount["name"]]["secret"]
            assert name in {item["path"] for item in secret["items"]}
        values = {
            name: e.get("value")
            or ("https://portal.example.org/api" if name.endswith("_URL") else "placeholder")
            for name, e in env.items()
        }
        config.load(values)  # raises ConfigError if a connector lacks a setting


def test_fitconnect_callback_is_served() -> None:
    """The FIT-Connect component opens the callback port and a Service in front of it."""
    (patch,) = _component_patches(KUBERNETES / "components" / "fitconnect")
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["fitconnect"] == int(env["SOZIALHUB_FITCONNECT_CALLBACK_PORT"])
    service = yaml.safe_load(
        (KUBERNETES / "components" / "fitconnect" / "service.yaml").read_text("utf-8")
    )
    assert service["spec"]["ports"][0]["targetPort"] == "fitconnect"
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "sozialhub-hub"}
