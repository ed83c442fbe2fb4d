"""The office's reader decryption keys: configured, loaded once, and used for OSCI and XTA content.

``reader_decryption_keys`` names PEM files (RSA, at least 2048 bits, optionally
encrypted with ``reader_decryption_key_password``); :func:`hub.context.build`
loads them into ``TransportKeys.osci_decryption``, which intake passes to both
transports. With a key an encrypted container opens; without one it is
``ENCRYPTED``. Errors name the setting and the key's name, never key material
or the password.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from hub import cli, context, reader_keys
from hub.config import ConfigError, Secret, Settings, load
from hub.core.pipeline import ACCEPTED, DEAD_LETTER, RECEIPTS, HubContext, intake
from hub.core.records import Accepted, DeadLetter, PortalReceipt, Received, decode, unb64
from hub.core.transport import xta
from hub.core.transport.osci_handover import OsciMetadata, parse_metadata, render
from hub.sim.xta import DEFAULT_BUSINESS_SCENARIO, DEFAULT_MESSAGE_TYPE
from hub.testing import SubmissionSpec, make_submission
from tests import clitools
from tests import osci_builders as b

PLATFORM = "sop:050000100099"  # the Sozialplattform's author key in config/portals.yml
READER = "jbc:055620000000"
OFFICE = "wgb010540880000"
OSCI_ID = "b3NjaS1lbmNyeXB0ZWQtNDcxMQ=="
XTA_ID = "urn:de:xta:messageid:sop:enc-keys-1"
PASSWORD = "canary-Kennwort-7f3e"  # noqa: S105 - a test value that must never surface
SUBMISSION = make_submission(SubmissionSpec())


@pytest.fixture(scope="module")
def current() -> rsa.RSAPrivateKey:
    return b.reader_key()


@pytest.fixture(scope="module")
def following() -> rsa.RSAPrivateKey:
    return b.reader_key()


def pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, password: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode())
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def write(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def with_keys(settings: Settings, spec: str | None, password: str | None = None) -> Settings:
    return settings.with_overrides(
        reader_decryption_keys=spec,
        reader_decryption_key_password=Secret(password) if password else None,
    )


def refused(settings: Settings, *hidden: str) -> str:
    """The ConfigError's message; it names the setting and shows none of ``hidden``."""
    with pytest.raises(ConfigError) as caught:
        reader_keys.load(settings)
    message = str(caught.value)
    assert "reader_decryption_keys" in message
    assert [h for h in (*hidden, "PRIVATE KEY", PASSWORD) if h in message] == []
    return message


class TestSetting:
    def test_environment_variables_and_names(self, tmp_path):
        """A bare path is named by its stem, ``name=path`` by its name; the password is a Secret."""
        settings = load(
            {
                "SOZIALHUB_READER_DECRYPTION_KEYS": f"{tmp_path}/reader-2025.pem, next={tmp_path}/b.pem",
                "SOZIALHUB_READER_DECRYPTION_KEY_PASSWORD": PASSWORD,
            }
        )
        assert (("reader-2025", tmp_path / "reader-2025.pem"), ("next", tmp_path / "b.pem")) == (
            settings.reader_key_files()
        )
        assert settings.reader_decryption_key_password == Secret(PASSWORD)
        assert PASSWORD not in repr(settings)

    @pytest.mark.parametrize(
        "spec",
        ["a=/k/a.pem,a=/k/b.pem", "/k/a.pem,/x/a.pem", "=/k/a.pem", "bad name=/k/a.pem", "x="],
        ids=["same-name", "same-stem", "empty-name", "space-in-name", "empty-path"],
    )
    def test_malformed_lists_are_refused(self, spec):
        with pytest.raises(ConfigError) as caught:
            load({"SOZIALHUB_READER_DECRYPTION_KEYS": spec})
        assert "reader_decryption_keys" in str(caught.value)
        assert "/k/" not in str(caught.value)

    def test_unset_is_no_keys(self, settings):
        assert dict(reader_keys.load(settings)) == {}


class TestLoading:
    def test_a_plain_key_by_its_stem_and_a_named_one(self, settings, tmp_path, current, following):
        one = write(tmp_path, "reader-2025.pem", pem(current))
        two = write(tmp_path, "other.pem", pem(following))
        loaded = reader_keys.load(with_keys(settings, f"{one},next={two}"))
        assert ["next", "reader-2025"] == sorted(loaded)
        assert loaded["reader-2025"].private_numbers() == current.private_numbers()
        assert loaded["next"].private_numbers() == following.private_numbers()

    def test_an_encrypted_key_with_the_password(self, settings, tmp_path, current, following):
        """The password opens encrypted keys; an unencrypted one beside it is read as it is."""
        locked = write(tmp_path, "locked.pem", pem(current, PASSWORD))
        plain = write(tmp_path, "plain.pem", pem(following))
        loaded = reader_keys.load(with_keys(settings, f"{locked},{plain}", PASSWORD))
        assert loaded["locked"].private_numbers() == current.private_numbers()
        assert loaded["plain"].private_numbers() == following.private_numbers()

    def test_wrong_password(self, settings, tmp_path, current):
        locked = write(tmp_path, "locked.pem", pem(current, PASSWORD))
        message = refused(with_keys(settings, str(locked), "not-the-password"), "not-the-password")
        assert "locked" in message
        assert "reader_decryption_key_password" in message

    def test_encrypted_without_a_password(self, settings, tmp_path, current):
        locked = write(tmp_path, "locked.pem", pem(current, PASSWORD))
        assert "reader_decryption_key_password is not set" in refused(
            with_keys(settings, str(locked))
        )

    def test_an_ec_key_is_refused(self, settings, tmp_path):
        path = write(tmp_path, "ec.pem", pem(ec.generate_private_key(ec.SECP256R1())))
        assert "must be an RSA private key" in refused(with_keys(settings, str(path)))

    def test_a_short_rsa_key_is_refused(self, settings, tmp_path):
        short = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - refused
        path = write(tmp_path, "short.pem", pem(short))
        assert "has 1024 bits; at least 2048" in refused(with_keys(settings, str(path)))

    def test_a_missing_file(self, settings, tmp_path):
        message = refused(with_keys(settings, f"gone={tmp_path}/missing.pem"), str(tmp_path))
        assert "key gone cannot be read" in message

    def test_not_a_private_key(self, settings, tmp_path, current):
        public = current.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for name, data in (("public", public), ("text", b"hello"), ("huge", b"x" * 70_000)):
            path = write(tmp_path, f"{name}.pem", data)
            refused(with_keys(settings, str(path)))

    def test_the_first_bad_key_stops_the_start_through_build(self, settings, tmp_path, current):
        good = write(tmp_path, "good.pem", pem(current))
        bad = write(tmp_path, "bad.pem", pem(ec.generate_private_key(ec.SECP384R1())))
        with pytest.raises(ConfigError, match="reader_decryption_keys: key bad "):
            context.build(with_keys(settings, f"{good},{bad}"))


# --- through the worker's context and intake -----------------------------------------------------


def moment() -> dt.datetime:
    """Now: the built context signs receipts with an ephemeral certificate valid from its start."""
    return dt.datetime.now(dt.UTC)


def osci_package(reader: rsa.RSAPublicKey, key_name: str | None = None) -> bytes:
    """A content package whose container is encrypted for ``reader`` (naming no key by default)."""
    secret = b.container(b.inline(SUBMISSION, "payload"), b.inline(b.PDF, "att1"), ident="secret")
    return b.xml(b.package(b.encrypt(secret, reader, key_name=key_name)))


def osci_received(original: bytes) -> Received:
    """The record the osci sub-inbox writes: the package and its sidecar's metadata."""
    metadata = parse_metadata(render(OsciMetadata(PLATFORM, READER, OSCI_ID)))
    return Received.of(
        original,
        "filedrop",
        "osci",
        moment(),
        metadata.message_id,
        transport_author=metadata.author,
        transport_reader=metadata.reader,
    )


def xta_message(reader: rsa.RSAPublicKey) -> bytes:
    """An XTA message whose ContentContainer is end-to-end encrypted for ``reader``."""
    metadata = xta.message_metadata(
        xta.OutboundMetadata(
            message_id=XTA_ID,
            author=PLATFORM,
            reader=OFFICE,
            service="urn:x:service",
            message_type=DEFAULT_MESSAGE_TYPE,
            payload_schema="https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0",
            business_scenario=DEFAULT_BUSINESS_SCENARIO,
        )
    )
    (content,) = xta.content_container(
        xta.Content(SUBMISSION, "application/xml", "antrag.xml"),
        [xta.Content(b.PDF, "application/pdf", "nachweis.pdf")],
    )
    container = etree.Element(f"{{{xta.XTA}}}GenericContentContainer", nsmap={"xta": xta.XTA})
    container.append(b.encrypt(content, reader, key_name=None))
    return xta.soap_message(metadata, container, action=xta.ACTION_GET_MESSAGE)


def only(result, topic: str, cls):
    (record,) = [decode(e.value, cls) for e in result.emits if e.topic == topic]
    return record


@pytest.fixture(scope="module")
def key_files(tmp_path_factory, current, following) -> str:
    """The rotation's two keys, the current one encrypted: the setting's value."""
    directory = tmp_path_factory.mktemp("reader-keys")
    old = write(directory, "reader-2025.pem", pem(current, PASSWORD))
    new = write(directory, "reader-2026.pem", pem(following))
    return f"{old},{new}"


@pytest.fixture(scope="module")
def keyed_hub(settings, key_files) -> HubContext:
    """The worker's context (hub.context.build) with both reader keys configured."""
    return context.build(with_keys(settings, key_files, PASSWORD))


@pytest.fixture(scope="module")
def plain_hub(settings) -> HubContext:
    """The worker's context without reader keys."""
    return context.build(settings)


class TestThroughBuildAndIntake:
    def test_the_built_context_holds_the_keys(self, keyed_hub, plain_hub):
        assert ["reader-2025", "reader-2026"] == sorted(keyed_hub.transport_keys.osci_decryption)
        assert {} == dict(plain_hub.transport_keys.osci_decryption)
        assert PASSWORD not in repr(keyed_hub.transport_keys)

    @pytest.mark.parametrize("which", ["current", "following"])
    def test_an_encrypted_osci_container_opens_with_either_key(self, keyed_hub, which, request):
        """Every configured key is tried: content for the current or the next key is accepted."""
        reader: rsa.RSAPrivateKey = request.getfixturevalue(which)
        result = intake(osci_received(osci_package(reader.public_key())), None, keyed_hub, moment())
        assert result.outcome == "accepted", result.reason
        accepted = only(result, ACCEPTED, Accepted)
        assert (SUBMISSION, PLATFORM, READER, OSCI_ID) == (
            unb64(accepted.payload_b64),
            accepted.author,
            accepted.reader,
            accepted.transport_message_id,
        )
        assert ["att1.pdf"] == [a["filename"] for a in accepted.attachments or []]
        assert "accepted" == only(result, RECEIPTS, PortalReceipt).outcome

    def test_a_key_named_by_the_encrypted_key_is_used(self, keyed_hub, following):
        original = osci_package(following.public_key(), key_name="reader-2026")
        assert "accepted" == intake(osci_received(original), None, keyed_hub, moment()).outcome

    def test_without_keys_the_osci_container_is_encrypted(self, plain_hub, current):
        result = intake(
            osci_received(osci_package(current.public_key())), None, plain_hub, moment()
        )
        letter = only(result, DEAD_LETTER, DeadLetter)
        assert ("ENCRYPTED", "ContentPackage/EncryptedData[1]") == (letter.reason, letter.path)
        receipt = only(result, RECEIPTS, PortalReceipt)
        assert ("rejected", "ENCRYPTED", OSCI_ID) == (
            receipt.outcome,
            receipt.reason,
            receipt.transport_message_id,
        )

    def test_content_for_another_key_is_decrypt(self, keyed_hub):
        original = osci_package(b.reader_key().public_key())
        result = intake(osci_received(original), None, keyed_hub, moment())
        letter = only(result, DEAD_LETTER, DeadLetter)
        path = "ContentPackage/EncryptedData[1]/KeyInfo/EncryptedKey"
        assert ("DECRYPT", path) == (letter.reason, letter.path)

    def test_encrypted_xta_content_opens_with_the_same_keys(self, keyed_hub, plain_hub, current):
        message = xta_message(current.public_key())
        result = intake(Received.of(message, "xta", "xta2", moment()), None, keyed_hub, moment())
        assert result.outcome == "accepted", result.reason
        accepted = only(result, ACCEPTED, Accepted)
        assert (SUBMISSION, XTA_ID) == (unb64(accepted.payload_b64), accepted.transport_message_id)
        assert ["nachweis.pdf"] == [a["filename"] for a in accepted.attachments or []]
        without = intake(Received.of(message, "xta", "xta2", moment()), None, plain_hub, moment())
        letter = only(without, DEAD_LETTER, DeadLetter)
        assert ("ENCRYPTED", "GenericContentContainer/EncryptedData") == (
            letter.reason,
            letter.path,
        )


class TestCheckCommand:
    """``sozialhub check`` builds the same context: the setting lets it open encrypted packages."""

    @pytest.fixture(autouse=True)
    def clean_environment(self, monkeypatch):
        with clitools.isolated(monkeypatch):
            yield

    def check(self, capsys, path: Path) -> tuple[int, list[dict]]:
        status = cli.main(["check", "--json", str(path)])
        out = capsys.readouterr().out
        return status, [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def test_check_opens_an_encrypted_package_with_the_setting(
        self, capsys, monkeypatch, tmp_path, current, key_files
    ):
        path = write(tmp_path, "paket.xml", osci_package(current.public_key()))
        write(tmp_path, "paket.xml.json", render(OsciMetadata(PLATFORM, READER, OSCI_ID)))
        status, (report,) = self.check(capsys, path)
        assert (1, "ENCRYPTED") == (status, report["reason"])
        monkeypatch.setenv("SOZIALHUB_READER_DECRYPTION_KEYS", key_files)
        monkeypatch.setenv("SOZIALHUB_READER_DECRYPTION_KEY_PASSWORD", PASSWORD)
        status, (report,) = self.check(capsys, path)
        assert (0, "accepted", "osci", "sozialplattform-nrw") == (
            status,
            report["verdict"],
            report["transport"],
            report["portal"],
        )

    def test_check_refuses_a_bad_key_as_a_usage_error(self, capsys, monkeypatch, tmp_path):
        bad = write(tmp_path, "ec.pem", pem(ec.generate_private_key(ec.SECP256R1())))
        path = write(tmp_path, "paket.xml", b"<x/>")
        monkeypatch.setenv("SOZIALHUB_READER_DECRYPTION_KEYS", str(bad))
        status, reports = self.check(capsys, path)
        assert (2, []) == (status, reports)
