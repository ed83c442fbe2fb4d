"""Settings: environment over TOML file over defaults; secrets never printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.config import ConfigError, Secret, Settings, load, received_record_bound

CANARY = "pa55-Wörd-7f3a9c"  # a value that must never show up in output


def write_toml(tmp_path: Path, body: str) -> dict[str, str]:
    path = tmp_path / "sozialhub.toml"
    path.write_text(body, encoding="utf-8")
    return {"SOZIALHUB_CONFIG": str(path)}


def assert_config_error(build, *, names: tuple[str, ...], hidden: tuple[str, ...]) -> ConfigError:
    """``build()`` raises ConfigError whose message names every setting and hides every value."""
    with pytest.raises(ConfigError) as caught:
        build()
    message = str(caught.value) + repr(caught.value)
    expected = ([], [])
    actual = ([n for n in names if n not in message], [h for h in hidden if h in message])
    assert expected == actual, message
    assert caught.value.__cause__ is None
    return caught.value


class TestPrecedence:
    def test_defaults(self):
        """Without environment or file, the hub runs on its embedded broker in plaintext."""
        settings = load({})
        expected = (True, "PLAINTEXT", "sozialhub.", 6066, None)
        actual = (
            settings.embedded,
            settings.security_protocol,
            settings.topic_prefix,
            settings.web_port,
            settings.sasl_password,
        )
        assert expected == actual

    def test_file_values_are_used(self, tmp_path):
        """Keys of the [sozialhub] table in the SOZIALHUB_CONFIG file set the fields."""
        env = write_toml(tmp_path, '[sozialhub]\ntopic_prefix = "file."\nweb_port = 7001\n')
        settings = load(env)
        expected = ("file.", 7001)
        assert expected == (settings.topic_prefix, settings.web_port)

    def test_environment_wins_over_file(self, tmp_path):
        """An environment variable overrides the same setting in the file."""
        env = write_toml(
            tmp_path,
            '[sozialhub]\ntopic_prefix = "file."\nweb_port = 7001\n'
            'bootstrap_servers = "file:9092"\n',
        )
        env |= {
            "SOZIALHUB_TOPIC_PREFIX": "env.",
            "SOZIALHUB_WEB_PORT": "7002",
            "KAFKA_BOOTSTRAP_SERVERS": "env:9092",
        }
        settings = load(env)
        expected = ("env.", 7002, "env:9092")
        assert expected == (settings.topic_prefix, settings.web_port, settings.bootstrap_servers)

    def test_empty_environment_variable_counts_as_unset(self, tmp_path):
        """An empty variable does not blank out the file's value."""
        env = write_toml(tmp_path, '[sozialhub]\ntopic_prefix = "file."\n')
        settings = load(env | {"SOZIALHUB_TOPIC_PREFIX": ""})
        expected = "file."
        assert expected == settings.topic_prefix

    def test_os_environ_is_the_default_source(self, monkeypatch):
        """load() without an argument reads os.environ."""
        monkeypatch.delenv("SOZIALHUB_CONFIG", raising=False)
        monkeypatch.setenv("SOZIALHUB_HUB_IDENTITY", "from-os-environ")
        expected = "from-os-environ"
        assert expected == load().hub_identity

    def test_values_are_converted_to_field_types(self):
        """Environment strings become ints, floats, paths and secrets as the fields declare."""
        settings = load(
            {
                "SOZIALHUB_WEB_PORT": "7003",
                "SOZIALHUB_INBOX_POLL_SECONDS": "0.25",
                "SOZIALHUB_REPLICATION_FACTOR": "1",
                "SOZIALHUB_INBOX_DIR": "/srv/inbox",
                "SOZIALHUB_SIGNING_KEY_PASSWORD": CANARY,
            }
        )
        expected = (7003, 0.25, 1, Path("/srv/inbox"), Secret(CANARY))
        actual = (
            settings.web_port,
            settings.inbox_poll_seconds,
            settings.replication_factor,
            settings.inbox_dir,
            settings.signing_key_password,
        )
        assert expected == actual

    def test_derived_names(self):
        """Topic and group names carry the configured prefix."""
        settings = load({"SOZIALHUB_TOPIC_PREFIX": "kreis-re."})
        expected = ("kreis-re.audit.log", "kreis-re.hub")
        assert expected == (settings.topic("audit.log"), settings.group_id)


def sasl_settings(**overrides) -> Settings:
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": "kafka-1.gkd.example:9093,kafka-2.gkd.example:9093",
        "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": "sozialhub",
        "KAFKA_SASL_PASSWORD": CANARY,
        "KAFKA_SSL_CAFILE": "/etc/sozialhub/ca.pem",
    }
    return load(env | overrides)


class TestSecrets:
    def test_secret_masks_repr_and_str(self):
        """A Secret prints as a fixed mask and reveals its value only on request."""
        secret = Secret(CANARY)
        expected = ("Secret('**********')", "Secret('**********')", CANARY)
        assert expected == (repr(secret), str(secret), secret.reveal())

    def test_secret_equality_compares_values(self):
        """Two secrets are equal exactly when their values are."""
        assert Secret("a") == Secret("a")
        assert Secret("a") != Secret("b")
        assert Secret("a") != "a"

    @pytest.mark.parametrize("render", [repr, str, format], ids=["repr", "str", "format"])
    def test_settings_never_print_secrets(self, render):
        """repr/str/format of settings show masks for the SASL, TLS key and signing passwords."""
        settings = sasl_settings(
            KAFKA_SSL_KEY_PASSWORD=CANARY + "-tls",
            SOZIALHUB_SIGNING_KEY_PASSWORD=CANARY + "-sign",
        )
        text = render(settings)
        assert CANARY not in text
        assert "**********" in text

    def test_secret_from_file_is_masked(self, tmp_path):
        """A password given in the TOML file is a Secret as well."""
        env = write_toml(
            tmp_path,
            "[sozialhub]\n"
            'bootstrap_servers = "k:9093"\nsecurity_protocol = "SASL_PLAINTEXT"\n'
            f'sasl_username = "hub"\nsasl_password = "{CANARY}"\n',
        )
        settings = load(env)
        expected = Secret(CANARY)
        assert expected == settings.sasl_password
        assert CANARY not in repr(settings)

    def test_broken_toml_error_does_not_quote_the_file(self, tmp_path):
        """A TOML syntax error is reported without the file's content (which may hold secrets)."""
        env = write_toml(tmp_path, f'[sozialhub]\nsasl_password = "{CANARY}\n')
        assert_config_error(lambda: load(env), names=("SOZIALHUB_CONFIG",), hidden=(CANARY,))

    def test_missing_file(self, tmp_path):
        """A SOZIALHUB_CONFIG that points nowhere is a ConfigError."""
        env = {"SOZIALHUB_CONFIG": str(tmp_path / "missing.toml")}
        assert_config_error(lambda: load(env), names=("SOZIALHUB_CONFIG",), hidden=())

    def test_unknown_file_keys_are_named_without_values(self, tmp_path):
        """Unknown keys in the file are listed by name; their values are not shown."""
        env = write_toml(tmp_path, f'[sozialhub]\nkafka_passwort = "{CANARY}"\n')
        assert_config_error(lambda: load(env), names=("kafka_passwort",), hidden=(CANARY,))

    def test_sasl_without_username_hides_the_password(self):
        """SASL with a password but no user names both settings, not the password."""

        def build():
            return load(
                {
                    "KAFKA_BOOTSTRAP_SERVERS": "k:9093",
                    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                    "KAFKA_SASL_PASSWORD": CANARY,
                }
            )

        assert_config_error(build, names=("sasl_username", "sasl_password"), hidden=(CANARY,))


class TestKafkaConfig:
    def test_sasl_ssl(self):
        """SASL_SSL yields librdkafka keys for TLS verification, CA, mechanism and credentials."""
        expected = {
            "bootstrap.servers": "kafka-1.gkd.example:9093,kafka-2.gkd.example:9093",
            "security.protocol": "SASL_SSL",
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.ca.location": "/etc/sozialhub/ca.pem",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": "sozialhub",
            "sasl.password": CANARY,
        }
        assert expected == sasl_settings().kafka_config()

    def test_sasl_mechanism_defaults_to_scram_sha_512(self):
        """Without an explicit mechanism, SASL uses SCRAM-SHA-512 (never PLAIN by accident)."""
        settings = sasl_settings(KAFKA_SASL_MECHANISM="")
        expected = "SCRAM-SHA-512"
        assert expected == settings.kafka_config()["sasl.mechanism"]

    def test_ssl_with_client_certificate(self):
        """SSL with a client certificate passes certificate, key and key password."""
        settings = load(
            {
                "KAFKA_BOOTSTRAP_SERVERS": "k:9093",
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CAFILE": "/ca.pem",
                "KAFKA_SSL_CERTFILE": "/client.pem",
                "KAFKA_SSL_KEYFILE": "/client.key",
                "KAFKA_SSL_KEY_PASSWORD": CANARY,
            }
        )
        expected = {
            "bootstrap.servers": "k:9093",
            "security.protocol": "SSL",
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.ca.location": "/ca.pem",
            "ssl.certificate.location": "/client.pem",
            "ssl.key.location": "/client.key",
            "ssl.key.password": CANARY,
        }
        assert expected == settings.kafka_config()

    def test_plaintext_has_no_tls_or_sasl_keys(self):
        """PLAINTEXT yields only the bootstrap servers and the protocol."""
        settings = load({"KAFKA_BOOTSTRAP_SERVERS": "localhost:9092"})
        expected = {"bootstrap.servers": "localhost:9092", "security.protocol": "PLAINTEXT"}
        assert expected == settings.kafka_config()

    def test_embedded_broker_has_no_client_config(self):
        """Without bootstrap servers there is no external client configuration to give."""
        settings = load({})
        assert_config_error(settings.kafka_config, names=("bootstrap_servers",), hidden=())


INVALID = [
    ("KAFKA_SECURITY_PROTOCOL", "security_protocol", "SASL_PLAIN_BOGUS"),
    ("KAFKA_SASL_MECHANISM", "sasl_mechanism", "GSSAPI-x7"),
    ("SOZIALHUB_LOG_FORMAT", "log_format", "xml-x7"),
    ("SOZIALHUB_TOPIC_PREFIX", "topic_prefix", "bad prefix/x7"),
    ("SOZIALHUB_WEB_PORT", "web_port", "port-x7"),
    ("SOZIALHUB_CERT_WARN_DAYS", "cert_warn_days", "30days-x7"),
    ("SOZIALHUB_REPLICATION_FACTOR", "replication_factor", "three-x7"),
    ("SOZIALHUB_INBOX_POLL_SECONDS", "inbox_poll_seconds", "fast-x7"),
    ("SOZIALHUB_MAX_SUBMISSION_BYTES", "max_submission_bytes", "4MB-x7"),
]


class TestInvalidValues:
    @pytest.mark.parametrize(("variable", "name", "value"), INVALID, ids=[i[1] for i in INVALID])
    def test_invalid_value_names_the_setting_only(self, variable, name, value):
        """An invalid value raises ConfigError naming the setting, never echoing the value."""
        assert_config_error(lambda: load({variable: value}), names=(name,), hidden=(value,))

    @pytest.mark.parametrize(("variable", "name", "value"), INVALID, ids=[i[1] for i in INVALID])
    def test_invalid_value_in_file_names_the_setting_only(self, tmp_path, variable, name, value):
        """The same holds when the invalid value comes from the TOML file."""
        env = write_toml(tmp_path, f'[sozialhub]\n{name} = "{value}"\n')
        assert_config_error(lambda: load(env), names=(name,), hidden=(value,))

    def test_config_error_is_a_value_error(self):
        """Callers that catch ValueError also catch configuration errors."""
        assert issubclass(ConfigError, ValueError)


class TestSizes:
    """A submission within max_submission_bytes must fit its submissions.received record."""

    def test_defaults_fit(self):
        settings = Settings()
        assert received_record_bound(settings.max_submission_bytes) <= settings.max_record_bytes

    def test_the_largest_submission_the_message_names_fits_and_one_more_byte_does_not(self):
        with pytest.raises(ConfigError) as caught:
            Settings(max_submission_bytes=7_000_000)
        largest = int(str(caught.value).rsplit(" ", 1)[1])
        assert Settings(max_submission_bytes=largest).max_submission_bytes == largest
        with pytest.raises(ConfigError):
            Settings(max_submission_bytes=largest + 1)

    def test_a_smaller_record_bound_needs_a_smaller_submission_bound(self):
        with pytest.raises(ConfigError, match="max_submission_bytes does not fit"):
            Settings(max_record_bytes=4 * 1024 * 1024)  # the 4 MiB default grows by a third
        assert Settings(max_record_bytes=4 * 1024 * 1024, max_submission_bytes=3_000_000)

    def test_from_the_environment_too(self):
        env = {"SOZIALHUB_MAX_SUBMISSION_BYTES": "8000000"}
        with pytest.raises(ConfigError, match="max_submission_bytes does not fit"):
            load(env)

    @pytest.mark.parametrize("field", ["max_submission_bytes", "max_record_bytes"])
    def test_sizes_must_be_positive(self, field):
        with pytest.raises(ConfigError, match="must be positive"):
            Settings(**{field: 0})
