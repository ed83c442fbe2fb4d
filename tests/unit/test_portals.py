"""Portal table: loading, lookups from transport metadata only, payload and sender checks."""

from __future__ import annotations

import json

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from hub import portals
from hub.config import PROJECT_ROOT, ConfigError
from hub.core.errors import Reason, Rejection
from hub.core.portals import Portal, PortalTable
from hub.core.transport import Envelope
from tests import sigtools

SCHEMA = json.loads((PROJECT_ROOT / "schemas" / "hub" / "portals.schema.json").read_text())
EXAMPLE = PROJECT_ROOT / "config" / "portals.yml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text("utf-8"))


def test_the_example_configuration_loads() -> None:
    table = portals.load(EXAMPLE, PROJECT_ROOT / "schemas")
    ids = {p.portal_id for p in table}
    assert ids == {"sozialplattform-nrw", "serviceportal-emscher-lippe", "filedrop"}


@pytest.fixture(scope="module")
def table() -> PortalTable:
    return portals.parse(example(), SCHEMA, PROJECT_ROOT / "config")


@pytest.mark.parametrize(
    ("envelope", "portal"),
    [
        (Envelope("xta2", b"", author="sop:050000100099"), "sozialplattform-nrw"),
        (Envelope("osci", b"", author="sop:050000100099"), "sozialplattform-nrw"),
        (
            Envelope("fitconnect", b"", reader="6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b"),
            "serviceportal-emscher-lippe",
        ),
        (Envelope("file", b""), "filedrop"),
    ],
)
def test_the_portal_comes_from_transport_metadata(
    table: PortalTable, envelope: Envelope, portal: str
) -> None:
    assert table.for_envelope(envelope).portal_id == portal


@pytest.mark.parametrize(
    "envelope",
    [
        Envelope("xta2", b"", author="sop:999999999999"),
        Envelope("xta2", b""),
        # A FIT-Connect author key is not a destination: the lookup keys differ per transport.
        Envelope("fitconnect", b"", reader="sop:050000100099"),
        Envelope("fitconnect", b"", author="sop:055620000001"),
    ],
)
def test_an_unknown_sender_is_refused(table: PortalTable, envelope: Envelope) -> None:
    with pytest.raises(Rejection) as caught:
        table.for_envelope(envelope)
    assert (caught.value.reason, caught.value.path) == (Reason.SENDER_MISMATCH, "transport/author")


def test_payload_type_and_named_author_must_be_the_portals(table: PortalTable) -> None:
    platform = table.for_envelope(Envelope("xta2", b"", author="sop:050000100099"))
    table.check_payload(platform, "xsozial-basis-2.4.0", "sop:050000100099")
    with pytest.raises(Rejection) as wrong_type:
        table.check_payload(platform, "wohngeld-antrag-1", "sop:050000100099")
    assert wrong_type.value.reason is Reason.UNKNOWN_PAYLOAD
    with pytest.raises(Rejection) as spoofed:
        table.check_payload(platform, "xsozial-basis-2.4.0", "sop:055620000001")
    assert spoofed.value.reason is Reason.SENDER_MISMATCH


def test_an_author_key_cannot_belong_to_two_portals() -> None:
    both = [
        Portal(name, name, frozenset({"xta2"}), frozenset({"p"}), frozenset({"sop:050000100099"}))
        for name in ("a", "b")
    ]
    with pytest.raises(ValueError, match="two portals"):
        PortalTable(both)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["portals"][0].pop("authors"), "needs authors"),
        (lambda d: d["portals"][1].pop("destinations"), "needs destinations"),
        (lambda d: d["portals"].append(dict(d["portals"][2], id="second")), "file drop"),
        (lambda d: d["portals"][0]["signature"].update(mode="required"), "pinned certificates"),
        (lambda d: d["portals"][0]["signature"].update(ca_bundle="missing.pem"), "ca_bundle"),
        (lambda d: d["portals"][0].update(transports=["smtp"]), "portals/0/transports/0"),
    ],
)
def test_invalid_configurations_name_the_setting(change, message: str) -> None:  # type: ignore[no-untyped-def]
    document = example()
    change(document)
    if document["portals"][0]["signature"].get("ca_bundle"):
        document["portals"][0]["signature"]["mode"] = "required"
    with pytest.raises(ConfigError, match=message):
        portals.parse(document, SCHEMA, PROJECT_ROOT / "config")


def test_a_required_policy_loads_its_ca_bundle(tmp_path) -> None:  # type: ignore[no-untyped-def]
    authority = sigtools.ca("Sozialplattform Test CA")
    (tmp_path / "ca.pem").write_bytes(authority.cert.public_bytes(serialization.Encoding.PEM))
    document = example()
    document["portals"][0]["signature"] = {"mode": "required", "ca_bundle": "ca.pem"}
    table = portals.parse(document, SCHEMA, tmp_path)
    platform = table.for_envelope(Envelope("xta2", b"", author="sop:050000100099"))
    assert platform.signature is not None
    assert platform.signature.mode == "required"
    assert len(platform.signature.ca_bundle) == 1
