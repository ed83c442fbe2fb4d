"""One typed, frozen settings object, read from the environment and an optional file.

Precedence: environment variables, then the TOML file named by
``SOZIALHUB_CONFIG`` (table ``[sozialhub]``, keys as the field names below),
then defaults. Secrets are :class:`Secret` values: their ``repr``/``str`` is a
mask, so they never reach logs, reprs or error messages. See docs/operations.md
for every variable.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent


# Room a submissions.received record needs besides the payload's base64: field names, ids,
# times and the transport's identifiers (XTA and OSCI message ids, authors and readers are
# bounded far below this).
RECEIVED_RECORD_OVERHEAD = 16 * 1024


def received_record_bound(max_submission_bytes: int) -> int:
    """The largest ``submissions.received`` record of a submission of ``max_submission_bytes``."""
    return 4 * ((max_submission_bytes + 2) // 3) + RECEIVED_RECORD_OVERHEAD


class Secret:
    """A string that does not print."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class ConfigError(ValueError):
    """Invalid configuration. The message names the setting, never its value."""


# field name -> environment variable
_ENV = {
    "bootstrap_servers": "KAFKA_BOOTSTRAP_SERVERS",
    "security_protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "KAFKA_SASL_MECHANISM",
    "sasl_username": "KAFKA_SASL_USERNAME",
    "sasl_password": "KAFKA_SASL_PASSWORD",
    "ssl_cafile": "KAFKA_SSL_CAFILE",
    "ssl_certfile": "KAFKA_SSL_CERTFILE",
    "ssl_keyfile": "KAFKA_SSL_KEYFILE",
    "ssl_key_password": "KAFKA_SSL_KEY_PASSWORD",
}

SIGNING_ALGORITHMS = ("ecdsa-sha256", "ecdsa-sha384", "rsa-pss-sha256", "rsa-sha256")
_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL = (None, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class Settings:
    # Kafka. No bootstrap servers: the hub starts its embedded broker.
    bootstrap_servers: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: Secret | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: Secret | None = None
    topic_prefix: str = "sozialhub."
    replication_factor: int | None = None  # override topics.yml (e.g. 1 for a single broker)
    rebalance_timeout: float = 3.0  # seconds; raise it for large consumer groups
    # Files.
    topics_file: Path = PROJECT_ROOT / "topics.yml"
    schema_dir: Path = PROJECT_ROOT / "schemas"
    offices_file: Path = PROJECT_ROOT / "config" / "offices.yml"
    portals_file: Path = PROJECT_ROOT / "config" / "portals.yml"
    transfer_policy_file: Path = PROJECT_ROOT / "config" / "transfer-policy.yml"
    # Pseudonym key ring (JSON or TOML: key id -> secret, current key named; docs/consent.md).
    # Unset: no pseudonyms can be made, unless a command explicitly asks for the development key.
    pseudonym_keys_file: Path | None = None
    # The audit vault's key-encryption key (JSON {"kid": ..., "key": base64 of 32 bytes}, optional
    # "previous": [...] during a rotation; docs/audit-vault.md). Unset: no inputs are recorded for
    # audit replay, unless a command explicitly asks for the development KEK.
    audit_kek_file: Path | None = None
    inbox_dir: Path = Path("var/inbox")
    outbox_dir: Path = Path("var/outbox")
    archive_dir: Path = Path("var/archive")
    data_dir: Path = Path("var")  # worker scratch space (Faust's data directory)
    # Signing. No key file: an ephemeral key and self-signed certificate (development only).
    signing_key_file: Path | None = None
    signing_cert_file: Path | None = None
    signing_key_password: Secret | None = None
    signing_algorithm: str = "ecdsa-sha256"
    hub_identity: str = "sozialhub"
    cert_warn_days: int = 30
    # Rechtskreiswechsel: remind the new office of a handover not accepted within this many
    # days (checked every handover_reminder_interval_s seconds).
    handover_reminder_days: int = 14
    handover_reminder_interval_s: float = 3600.0
    # The audit chain: a signed checkpoint after this many entries of a partition, or once the
    # oldest unsigned entry is this old (docs/audit.md#checkpoints).
    audit_checkpoint_every: int = 1000
    audit_checkpoint_interval_s: float = 60.0
    # Rotation: the next key and certificate, verified alongside the current one during the
    # overlap; the hub signs with the next one from its certificate's notBefore on.
    signing_next_key_file: Path | None = None
    signing_next_cert_file: Path | None = None
    # XTA 2 inbound (the hub polls one message box over SOAP 1.2 with a TLS client certificate).
    xta_msgbox_url: str | None = None  # MsgBoxPort (getStatusList, getMessage, close)
    xta_send_url: str | None = None  # SendPort (sendMessage: the hub's receipts)
    xta_mailbox: str | None = None  # the hub's reader identifier (DVDV key) at the XTA server
    xta_client_cert: Path | None = None
    xta_client_key: Path | None = None
    xta_client_key_password: Secret | None = None
    xta_ca_file: Path | None = None
    xta_poll_seconds: float = 5.0
    # A message above max_submission_bytes: "reject" (SIZE dead letter, receipt, close) or "keep".
    xta_oversize: str = "reject"
    # FIT-Connect receiver (Serviceportal).
    fitconnect_api_url: str | None = None
    fitconnect_destination: str | None = None
    fitconnect_token: Secret | None = None
    fitconnect_callback_secret: Secret | None = None
    fitconnect_decryption_keys: Path | None = None  # JSON: private RSA JWK(s), current and next
    fitconnect_signing_key: Path | None = None  # JSON: private RSA JWK for PS512 SETs
    fitconnect_ca_file: Path | None = None
    fitconnect_poll_seconds: float = 30.0
    fitconnect_callback_port: int = 6067  # the callback endpoint (POST /fitconnect/callback)
    fitconnect_signing_key_id: str | None = None
    # The office's reader keys for end-to-end encrypted OSCI and XTA content (XML Encryption):
    # PEM RSA private keys of at least 2048 bits, "path" (named by the file stem) or "name=path",
    # separated by commas; several during a rotation, each tried. One password for the encrypted
    # ones. Unset: encrypted content is ENCRYPTED.
    reader_decryption_keys: str | None = None
    reader_decryption_key_password: Secret | None = None
    # Delivery to vendors (config/offices.yml names the channel per vendor).
    # One directory per http vendor: <dir>/<vendor>/client.crt, client.key, ca.crt, token
    # (each optional; a Kubernetes Secret mounted per vendor fits this layout).
    vendor_credentials_dir: Path | None = None
    # Override http vendors' endpoint URLs, e.g. for staging: "oksozius=https://…/{office}/cases".
    vendor_urls: str | None = None
    # Limits and runtime.
    max_submission_bytes: int = 4 * 1024 * 1024
    max_record_bytes: int = 8_000_000  # below the topics' max.message.bytes (8 MiB)
    inbox_poll_seconds: float = 0.5
    # The osci sub-inbox: how long a package waits for its metadata sidecar (and a sidecar for
    # its package) before it is refused METADATA (set aside as an orphan).
    osci_pair_seconds: float = 300.0
    web_host: str = "127.0.0.1"
    web_port: int = 6066
    log_level: str = "INFO"
    log_format: str = "auto"  # auto | json | console
    extra: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.security_protocol not in _PROTOCOLS:
            raise ConfigError("security_protocol must be one of " + ", ".join(_PROTOCOLS))
        if self.sasl_mechanism not in _SASL:
            raise ConfigError("sasl_mechanism must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        if self.security_protocol.startswith("SASL") and not (
            self.sasl_username and self.sasl_password
        ):
            raise ConfigError("SASL needs sasl_username and sasl_password")
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ConfigError("log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
        if self.signing_algorithm not in SIGNING_ALGORITHMS:
            raise ConfigError("signing_algorithm must be one of " + ", ".join(SIGNING_ALGORITHMS))
        if (self.signing_key_file is None) != (self.signing_cert_file is None):
            raise ConfigError("signing_key_file and signing_cert_file must be set together")
        self._check_sizes()
        self._check_connectors()
        if self.log_format not in ("auto", "json", "console"):
            raise ConfigError("log_format must be auto, json or console")
        if not self.topic_prefix or any(c not in _TOPIC_CHARS for c in self.topic_prefix):
            raise ConfigError("topic_prefix may only contain letters, digits, '.', '_' and '-'")

    def _check_sizes(self) -> None:
        """A submission the hub takes must fit its ``submissions.received`` record.

        Otherwise a message within ``max_submission_bytes`` (which the XTA poller
        fetches and the FIT-Connect receiver takes) would become a ``SIZE`` dead
        letter at ``ingest``, where no portal receipt is made: the sender would
        never be answered.
        """
        if self.max_submission_bytes <= 0 or self.max_record_bytes <= 0:
            raise ConfigError("max_submission_bytes and max_record_bytes must be positive")
        if received_record_bound(self.max_submission_bytes) > self.max_record_bytes:
            largest = (self.max_record_bytes - RECEIVED_RECORD_OVERHEAD) // 4 * 3
            raise ConfigError(
                "max_submission_bytes does not fit max_record_bytes: a submission's "
                "submissions.received record (base64 plus metadata) must fit one record; "
                f"with this max_record_bytes, max_submission_bytes may be at most {max(0, largest)}"
            )

    def _check_connectors(self) -> None:
        if (self.signing_next_key_file is None) != (self.signing_next_cert_file is None):
            raise ConfigError(
                "signing_next_key_file and signing_next_cert_file must be set together"
            )
        if self.xta_msgbox_url and not (
            self.xta_send_url
            and self.xta_mailbox
            and self.xta_client_cert
            and self.xta_client_key
            and self.xta_ca_file
        ):
            raise ConfigError(
                "xta_msgbox_url needs xta_send_url, xta_mailbox, xta_client_cert, "
                "xta_client_key and xta_ca_file"
            )
        if self.xta_oversize not in ("reject", "keep"):
            raise ConfigError("xta_oversize must be reject or keep")
        for item in (self.vendor_urls or "").split(","):
            name, sign, url = item.strip().partition("=")
            if item.strip() and not (sign and name and url.startswith(("https://", "http://"))):
                raise ConfigError("vendor_urls must be vendor=URL pairs separated by commas")
        self.reader_key_files()  # refuses a malformed list
        if self.fitconnect_api_url and not (
            self.fitconnect_destination
            and self.fitconnect_decryption_keys
            and self.fitconnect_signing_key
            and self.fitconnect_token
            and self.fitconnect_callback_secret
        ):
            raise ConfigError(
                "fitconnect_api_url needs fitconnect_destination, fitconnect_decryption_keys, "
                "fitconnect_signing_key, fitconnect_token and fitconnect_callback_secret"
            )

    def vendor_url(self, vendor_id: str) -> str | None:
        """The endpoint URL ``vendor_urls`` sets for ``vendor_id``, if any."""
        for item in (self.vendor_urls or "").split(","):
            name, _, url = item.strip().partition("=")
            if name == vendor_id and url:
                return url
        return None

    def reader_key_files(self) -> tuple[tuple[str, Path], ...]:
        """``reader_decryption_keys`` as (name, file) pairs, in the configured order.

        An item is ``name=path`` or a bare path, named by its file stem. Names are
        what an ``xenc:EncryptedKey`` may give as its ``Recipient`` or
        ``ds:KeyName`` (:mod:`hub.core.transport._xmlenc`); they must be unique.
        """
        pairs: list[tuple[str, Path]] = []
        for item in (self.reader_decryption_keys or "").split(","):
            text = item.strip()
            if not text:
                continue
            name, sign, path = text.partition("=")
            name, path = (name.strip(), path.strip()) if sign else (Path(text).stem, text)
            if not path or _READER_KEY_NAME.fullmatch(name) is None:
                raise ConfigError(
                    "reader_decryption_keys must be PEM files or name=file pairs separated by "
                    "commas; names of letters, digits and ': . _ @ -' (1-128)"
                )
            if name in {n for n, _ in pairs}:
                raise ConfigError("reader_decryption_keys names a key twice")
            pairs.append((name, Path(path)))
        return tuple(pairs)

    @property
    def embedded(self) -> bool:
        return not self.bootstrap_servers

    def topic(self, logical: str) -> str:
        return self.topic_prefix + logical

    @property
    def group_id(self) -> str:
        """The workers' consumer group (and Faust app id)."""
        return f"{self.topic_prefix}hub"

    def in_workspace(self, root: Path) -> Settings:
        """Inbox, outbox, archive and scratch space under one directory (demo, benchmark, tests)."""
        return dataclasses.replace(
            self,
            inbox_dir=root / "inbox",
            outbox_dir=root / "outbox",
            archive_dir=root / "archive",
            data_dir=root,
        )

    def with_overrides(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def kafka_config(self) -> dict[str, str | int | float | bool]:
        """librdkafka (confluent-kafka) client settings, secrets included: pass to clients only."""
        if not self.bootstrap_servers:
            raise ConfigError("bootstrap_servers is not set")
        conf: dict[str, str | int | float | bool] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.security_protocol.endswith("SSL"):
            conf["ssl.endpoint.identification.algorithm"] = "https"
            for key, value in (
                ("ssl.ca.location", self.ssl_cafile),
                ("ssl.certificate.location", self.ssl_certfile),
                ("ssl.key.location", self.ssl_keyfile),
            ):
                if value is not None:
                    conf[key] = str(value)
            if self.ssl_key_password is not None:
                conf["ssl.key.password"] = self.ssl_key_password.reveal()
        if self.security_protocol.startswith("SASL"):
            conf["sasl.mechanism"] = self.sasl_mechanism or "SCRAM-SHA-512"
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password.reveal() if self.sasl_password else ""
        return conf


_READER_KEY_NAME = re.compile(r"[A-Za-z0-9:._@-]{1,128}")
_TOPIC_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def _convert(name: str, kind: Any, raw: Any) -> Any:
    text = str(raw)
    kind = str(kind)
    if "Secret" in kind:
        return Secret(text)
    if "Path" in kind:
        return Path(text)
    if kind.startswith("int"):
        try:
            return int(text)
        except ValueError:
            raise ConfigError(f"{name} must be an integer") from None
    if kind.startswith("float"):
        try:
            return float(text)
        except ValueError:
            raise ConfigError(f"{name} must be a number") from None
    return text


def variable(name: str) -> str:
    """The environment variable that sets field ``name``."""
    return _ENV.get(name, "SOZIALHUB_" + name.upper())


def to_environment(settings: Settings) -> dict[str, str]:
    """Non-secret settings as environment variables (for a child process).

    Secrets are left out on purpose: a child reads them from the same
    environment or configuration file its parent did.
    """
    env = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if f.name == "extra" or value is None or isinstance(value, Secret):
            continue
        env[variable(f.name)] = str(value)
    return env


def load(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``environ`` (default: ``os.environ``) and the optional file."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    config_file = env.get("SOZIALHUB_CONFIG")
    if config_file:
        try:
            with Path(config_file).open("rb") as handle:
                values.update(tomllib.load(handle).get("sozialhub", {}))
        except (OSError, tomllib.TOMLDecodeError):
            raise ConfigError("SOZIALHUB_CONFIG cannot be read as TOML") from None
    known = {f.name: f.type for f in fields(Settings) if f.name != "extra"}
    unknown = set(values) - set(known)
    if unknown:
        raise ConfigError("unknown settings in file: " + ", ".join(sorted(unknown)))
    for name in known:
        if env.get(variable(name)):
            values[name] = env[variable(name)]
    return Settings(**{k: _convert(k, known[k], v) for k, v in values.items()})
