"""Receipt-key rotation end to end: loading current and next pair, signing by time, verifying, warnings.

Keys and certificates are made here with cryptography and written to ``tmp_path``;
every time is fixed, so nothing depends on the wall clock.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from structlog.testing import capture_logs

from hub import keys
from hub.config import ConfigError, Secret, Settings
from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import ACCEPTED, HubContext, intake
from hub.core.receipt import NAMESPACE, Attestation, ReceiptSigner, verify
from hub.core.records import Accepted, Received, SourceRef, decode, unb64
from hub.core.rotation import RotationError, SignerSet, verify_any
from hub.stream import app as stream_app
from hub.stream import metrics
from hub.testing import SubmissionSpec, make_submission
from tests.sigtools import issue

T0 = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)  # the unit tests' fixed "now"
DAY = dt.timedelta(days=1)
SECOND = dt.timedelta(seconds=1)
# Current: valid until T0 + 65 days. Next: valid from T0 + 30 days (the switch) to T0 + 400 days.
CURRENT = (T0 - 300 * DAY, T0 + 65 * DAY)
NEXT = (T0 + 30 * DAY, T0 + 400 * DAY)
SWITCH = NEXT[0]
SOURCE = SourceRef("sozialhub.submissions.received", 0, 1)
DS = "{http://www.w3.org/2000/09/xmldsig#}"


def _key(algorithm: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    if algorithm.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def _write_pair(
    directory: Path,
    stem: str,
    window: tuple[dt.datetime, dt.datetime],
    algorithm: str = "ecdsa-sha256",
    password: bytes | None = None,
) -> tuple[Path, Path]:
    """A key and a self-signed certificate valid in ``window``, as PEM files."""
    key = _key(algorithm)
    certificate = issue(
        key.public_key(), f"hub {stem}", self_key=key, not_before=window[0], not_after=window[1]
    )
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    key_file, cert_file = directory / f"{stem}.key", directory / f"{stem}.crt"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def _configured(
    settings: Settings,
    current: tuple[Path, Path],
    following: tuple[Path, Path] | None = None,
    **changes: object,
) -> Settings:
    return settings.with_overrides(
        signing_key_file=current[0],
        signing_cert_file=current[1],
        signing_next_key_file=following[0] if following else None,
        signing_next_cert_file=following[1] if following else None,
        **changes,
    )


@pytest.fixture
def rotation_files(tmp_path: Path) -> tuple[tuple[Path, Path], tuple[Path, Path]]:
    return _write_pair(tmp_path, "current", CURRENT), _write_pair(tmp_path, "next", NEXT)


@pytest.fixture
def signers(settings: Settings, rotation_files) -> SignerSet:
    return keys.load_signers(_configured(settings, *rotation_files), now=T0)


def _config_error(settings: Settings, now: dt.datetime = T0) -> str:
    with pytest.raises(ConfigError) as raised:
        keys.load_signers(settings, now=now)
    return str(raised.value)


# -- loading -------------------------------------------------------------------------------------


class TestLoading:
    @pytest.mark.parametrize("algorithm", ["ecdsa-sha256", "rsa-pss-sha256"])
    def test_current_and_next_pairs_are_loaded_into_one_signer_set(
        self, settings, tmp_path, algorithm
    ):
        """Both pairs load with the configured algorithm; the current certificate is trusted until it expires."""
        current = _write_pair(tmp_path, "current", CURRENT, algorithm)
        following = _write_pair(tmp_path, "next", NEXT, algorithm)
        loaded = keys.load_signers(
            _configured(settings, current, following, signing_algorithm=algorithm), now=T0
        )
        assert loaded.next is not None
        expected = (CURRENT[1], SWITCH, CURRENT[1], NEXT[1], algorithm, algorithm)
        actual = (
            loaded.current.not_after,
            loaded.switch_at,
            loaded.overlap_until,
            loaded.signing_until,
            loaded.current.algorithm,
            loaded.next.algorithm,
        )
        assert expected == actual

    def test_without_a_next_pair_only_the_current_one_signs(self, settings, tmp_path):
        loaded = keys.load_signers(
            _configured(settings, _write_pair(tmp_path, "current", CURRENT)), now=T0
        )
        assert (loaded.next, loaded.switch_at, loaded.signing_until) == (None, None, CURRENT[1])

    def test_encrypted_keys_share_the_signing_key_password(self, settings, tmp_path):
        password = b"correct horse battery staple"
        current = _write_pair(tmp_path, "current", CURRENT, password=password)
        following = _write_pair(tmp_path, "next", NEXT, password=password)
        configured = _configured(
            settings, current, following, signing_key_password=Secret(password.decode())
        )
        assert keys.load_signers(configured, now=T0).next is not None

    def test_a_wrong_password_names_the_setting_not_the_password(self, settings, tmp_path):
        current = _write_pair(tmp_path, "current", CURRENT, password=b"right one")
        message = _config_error(
            _configured(settings, current, signing_key_password=Secret("wrong-password-xyz"))
        )
        assert "signing_key_file" in message
        assert "wrong-password-xyz" not in message

    def test_the_next_key_must_belong_to_the_next_certificate(self, settings, tmp_path):
        current = _write_pair(tmp_path, "current", CURRENT)
        key_file, _ = _write_pair(tmp_path, "next", NEXT)
        _, foreign_cert = _write_pair(tmp_path, "foreign", NEXT)
        message = _config_error(_configured(settings, current, (key_file, foreign_cert)))
        assert "signing_next_cert_file does not belong to signing_next_key_file" == message

    def test_the_algorithm_must_fit_the_next_key(self, settings, tmp_path):
        """signing_algorithm applies to both pairs: an RSA next key under ecdsa-sha256 is refused."""
        current = _write_pair(tmp_path, "current", CURRENT)
        following = _write_pair(tmp_path, "next", NEXT, "rsa-pss-sha256")
        message = _config_error(_configured(settings, current, following))
        assert "signing_algorithm does not fit signing_next_key_file" in message

    @pytest.mark.parametrize(
        ("broken", "setting"),
        [(0, "signing_next_key_file"), (1, "signing_next_cert_file")],
    )
    def test_unreadable_next_files_name_their_setting_and_no_content(
        self, settings, tmp_path, broken, setting
    ):
        current = _write_pair(tmp_path, "current", CURRENT)
        following = list(_write_pair(tmp_path, "next", NEXT))
        following[broken].write_text("-----BEGIN GARBAGE-----\nc2VjcmV0\n-----END GARBAGE-----\n")
        message = _config_error(_configured(settings, current, (following[0], following[1])))
        assert message.startswith(setting)
        assert "BEGIN" not in message
        assert "c2VjcmV0" not in message

    def test_a_missing_next_file_is_a_config_error(self, settings, tmp_path):
        current = _write_pair(tmp_path, "current", CURRENT)
        message = _config_error(
            _configured(settings, current, (tmp_path / "absent.key", tmp_path / "absent.crt"))
        )
        assert message.startswith("signing_next_key_file cannot be loaded")

    @pytest.mark.parametrize(
        ("window", "fragment"),
        [
            ((CURRENT[1] + DAY, CURRENT[1] + 400 * DAY), "gap"),
            ((SWITCH, CURRENT[1] - DAY), "outlive"),
        ],
        ids=["gap", "expires-first"],
    )
    def test_a_next_certificate_that_does_not_continue_the_current_one_is_refused(
        self, settings, tmp_path, window, fragment
    ):
        """A gap between the two certificates (or a next one that expires first) stops the start."""
        current = _write_pair(tmp_path, "current", CURRENT)
        following = _write_pair(tmp_path, "next", window)
        message = _config_error(_configured(settings, current, following))
        assert message.startswith("signing_next_cert_file does not continue signing_cert_file")
        assert fragment in message

    def test_the_next_pair_must_not_repeat_the_current_one(self, settings, tmp_path):
        current = _write_pair(tmp_path, "current", CURRENT)
        assert "is the current one" in _config_error(_configured(settings, current, current))

    def test_a_next_pair_needs_a_configured_current_pair(self, settings, tmp_path):
        """With the ephemeral key there is nothing to rotate from."""
        following = _write_pair(tmp_path, "next", NEXT)
        configured = settings.with_overrides(
            signing_next_key_file=following[0], signing_next_cert_file=following[1]
        )
        with capture_logs() as logs:
            message = _config_error(configured)
        assert "signing_next_key_file needs signing_key_file" in message
        assert [] == logs  # refused before an ephemeral key is made

    @pytest.mark.parametrize(
        ("now", "with_next", "message"),
        [
            (CURRENT[0] - DAY, False, "signing_cert_file is not valid yet (notBefore)"),
            (
                CURRENT[1] + DAY,
                False,
                "no signing certificate is valid now: signing_cert_file has expired",
            ),
            (
                NEXT[1] + DAY,
                True,
                (
                    "no signing certificate is valid now: signing_cert_file has expired "
                    "and signing_next_cert_file too"
                ),
            ),
        ],
        ids=["not-yet-valid", "expired", "both-expired"],
    )
    def test_refuses_to_start_when_nothing_can_sign_now(
        self, settings, rotation_files, now, with_next, message
    ):
        current, following = rotation_files
        configured = _configured(settings, current, following if with_next else None)
        assert message == _config_error(configured, now=now)

    def test_starts_after_the_current_certificate_expired_when_the_next_one_signs(
        self, settings, rotation_files
    ):
        later = CURRENT[1] + DAY
        loaded = keys.load_signers(_configured(settings, *rotation_files), now=later)
        assert loaded.signer_at(later) is loaded.next

    def test_the_ephemeral_key_still_loads(self, settings):
        """No key configured (development): one ephemeral signer, valid now."""
        loaded = keys.load_signers(settings)
        assert (loaded.next, loaded.current.algorithm) == (None, "ecdsa-sha256")


# -- signing by time, in the pipeline --------------------------------------------------------------


def _accepted(hub: HubContext, now: dt.datetime) -> Accepted:
    original = make_submission(SubmissionSpec())
    result = intake(Received.of(original, "test-inbox", "file", now), SOURCE, hub, now)
    assert result.outcome == "accepted", result.reason
    (record,) = [e for e in result.emits if e.topic == ACCEPTED]
    return decode(record.value, Accepted)


def _signing_certificate_der(receipt: bytes) -> str:
    text = xmlsafe.parse(receipt).findtext(
        f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate"
    )
    return "".join((text or "").split())


def _der_b64(signer: ReceiptSigner) -> str:
    return base64.b64encode(signer.certificate.public_bytes(serialization.Encoding.DER)).decode()


class TestSigningSwitch:
    def test_intake_signs_with_current_until_the_next_certificate_is_valid(
        self, hub_context, signers
    ):
        """One second before the next certificate's notBefore the current key signs; from it on, the next."""
        hub = dataclasses.replace(hub_context, signer=signers.current, signers=signers)
        assert signers.next is not None
        before = unb64(_accepted(hub, SWITCH - SECOND).receipt_b64)
        after = unb64(_accepted(hub, SWITCH).receipt_b64)
        assert _signing_certificate_der(before) == _der_b64(signers.current)
        assert _signing_certificate_der(after) == _der_b64(signers.next)
        # Each verifies with its own certificate at its signing time, not with the other one.
        verify(before, signers.current.certificate, at=SWITCH - SECOND)
        verify(after, signers.next.certificate, at=SWITCH)
        with pytest.raises(Rejection):
            verify(after, signers.current.certificate, at=SWITCH)

    def test_without_a_signer_set_the_context_signer_signs(self, hub_context):
        """Contexts built without rotation (tests, older callers) keep signing with ``signer``."""
        assert hub_context.signers is None
        assert hub_context.signer_at(T0 + 10_000 * DAY) is hub_context.signer

    def test_intake_raises_rotation_error_when_no_certificate_can_sign(self, hub_context, signers):
        """The adapter must handle this (the worker exits before it happens, see below)."""
        hub = dataclasses.replace(hub_context, signer=signers.current, signers=signers)
        with pytest.raises(RotationError):
            _accepted(hub, NEXT[1] + SECOND)


# -- verifying with current and next -------------------------------------------------------------


def _attestation(signed_at: dt.datetime) -> Attestation:
    return Attestation(
        submission_id="sub-" + "ab" * 16,
        payload_sha256="cd" * 32,
        payload_namespace="urn:example",
        payload_version="2.4.0",
        validated_with="libxml2",
        signed_at=signed_at,
        hub_identity="sozialhub-test",
    )


class TestVerifying:
    def test_verify_any_accepts_receipts_from_both_sides_of_the_switch(self, signers):
        """During the overlap vendors trust both certificates; each receipt names the one that verified it."""
        before, after = SWITCH - SECOND, SWITCH + DAY
        trusted = signers.certificates_at(after)
        old = signers.signer_at(before).sign(_attestation(before))
        new = signers.signer_at(after).sign(_attestation(after))
        assert signers.next is not None
        assert verify_any(old, trusted, at=after)[1] == signers.current.certificate
        assert verify_any(new, trusted, at=after)[1] == signers.next.certificate

    def test_an_old_receipt_verifies_at_its_time_after_its_certificate_expired(self, signers):
        """Verification is pure: given the time, a receipt of an expired certificate still verifies."""
        signed = signers.current.sign(_attestation(T0))
        with pytest.raises(Rejection) as raised:
            verify(signed, signers.current.certificate, at=CURRENT[1] + DAY)
        assert raised.value.reason is Reason.SIG_INVALID
        assert (
            "sub-" + "ab" * 16 == verify(signed, signers.current.certificate, at=T0)["submissionId"]
        )

    def test_without_a_time_the_certificate_is_checked_against_now(self, tmp_path, settings):
        """``at=None`` keeps the old behaviour: a certificate valid only from 2040 fails today."""
        window = (dt.datetime(2040, 1, 1, tzinfo=dt.UTC), dt.datetime(2041, 1, 1, tzinfo=dt.UTC))
        future = keys.load_signers(
            _configured(settings, _write_pair(tmp_path, "future", window)), now=window[0] + DAY
        ).current
        signed = future.sign(_attestation(window[0] + DAY))
        with pytest.raises(Rejection):
            verify(signed, future.certificate)
        assert verify(signed, future.certificate, at=window[0] + DAY)["hub"] == "sozialhub-test"

    def test_a_naive_verification_time_is_refused(self, signers):
        signed = signers.current.sign(_attestation(T0))
        with pytest.raises(ValueError, match="timezone"):
            verify(signed, signers.current.certificate, at=dt.datetime(2026, 11, 2))  # noqa: DTZ001

    def test_the_signature_must_be_a_direct_child_of_the_receipt(self, signers):
        """Moved into a field, the enveloped signature still matches its digest; the location check refuses it."""
        signed = signers.current.sign(_attestation(T0))
        root = xmlsafe.parse(signed)
        signature = root.find(f"{DS}Signature")
        assert signature is not None
        root.remove(signature)
        hub_field = root.find(f"{{{NAMESPACE}}}hub")
        assert hub_field is not None
        hub_field.append(signature)
        moved = etree.tostring(root)
        assert verify(signed, signers.current.certificate, at=T0)["hub"] == "sozialhub-test"
        with pytest.raises(Rejection) as raised:
            verify(moved, signers.current.certificate, at=T0)
        assert raised.value.reason is Reason.SIG_INVALID


# -- warnings: logs, metrics, stopping before nothing can sign ------------------------------------


def _gauge(which: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(
        "sozialhub_signing_certificate_days_left", {"which": which}
    )


class TestWarnings:
    def test_gauge_per_certificate_and_warning_for_the_one_expiring_soon(self, signers):
        """35 days before the current certificate expires: both gauges set, one warning (current)."""
        now = CURRENT[1] - 35 * DAY
        with capture_logs() as logs:
            stream_app.check_certificates(signers, 40, now)
        assert (_gauge("current"), _gauge("next")) == (35.0, 370.0)
        warnings = [e for e in logs if e["event"] == "signing.certificate_expires_soon"]
        expected = [
            {
                "event": "signing.certificate_expires_soon",
                "log_level": "warning",
                "which": "current",
                "days_left": 35.0,
                "next_signs_from": SWITCH.isoformat(),
            }
        ]
        assert expected == warnings

    def test_no_warning_above_the_threshold(self, signers):
        with capture_logs() as logs:
            stream_app.check_certificates(signers, 30, CURRENT[1] - 35 * DAY)
        assert [] == [e for e in logs if e["event"] == "signing.certificate_expires_soon"]

    def test_without_rotation_the_warning_names_the_current_certificate_only(self, signers):
        alone = SignerSet(signers.current)
        with capture_logs() as logs:
            stream_app.check_certificates(alone, 30, CURRENT[1] - 2 * DAY)
        assert [("current", 2.0, False)] == [
            (e["which"], e["days_left"], "next_signs_from" in e)
            for e in logs
            if e["event"] == "signing.certificate_expires_soon"
        ]

    def test_observability_sets_the_gauges_at_start_and_watches_the_deadline(
        self, settings, hub_context, signers, monkeypatch
    ):
        """Wired into the worker: gauges at start, an hourly timer, and the deadline task."""
        registered: dict[str, list[object]] = {"timer": [], "task": [], "page": []}
        fake_app = SimpleNamespace(
            timer=lambda interval: lambda f: registered["timer"].append((interval, f)),
            task=registered["task"].append,
            page=lambda path: lambda f: registered["page"].append(path),
        )
        monkeypatch.setattr(stream_app, "utcnow", lambda: CURRENT[1] - 10 * DAY)
        hub = dataclasses.replace(hub_context, signer=signers.current, signers=signers)
        with capture_logs() as logs:
            stream_app.observability(fake_app, settings, hub)  # type: ignore[arg-type]
        assert (_gauge("current"), _gauge("next")) == (10.0, 345.0)
        assert ["current"] == [
            e["which"] for e in logs if e["event"] == "signing.certificate_expires_soon"
        ]
        assert 3600.0 in [interval for interval, _ in registered["timer"]]
        assert [f.__name__ for f in registered["task"]] == ["signing_deadline"]  # type: ignore[attr-defined]

    def test_the_worker_exits_shortly_before_the_last_certificate_expires(
        self, signers, monkeypatch
    ):
        """Sleeps (at most an hour at a time) until SIGNING_STOP_MARGIN before signing_until, then exits."""
        clock = [signers.signing_until - 2 * dt.timedelta(hours=1)]
        slept: list[float] = []

        async def fake_sleep(seconds: float) -> None:
            slept.append(seconds)
            clock[0] += dt.timedelta(seconds=seconds)

        class ExitedError(Exception):
            pass

        def fake_exit(event: str, exc: BaseException) -> None:
            raise ExitedError(event, type(exc).__name__)

        monkeypatch.setattr(stream_app, "utcnow", lambda: clock[0])
        monkeypatch.setattr(stream_app.asyncio, "sleep", fake_sleep)
        monkeypatch.setattr(stream_app, "exit_without_commit", fake_exit)
        with pytest.raises(ExitedError) as exited:
            asyncio.run(stream_app.stop_when_signing_ends(signers))
        assert exited.value.args == ("signing.no_valid_certificate", "RotationError")
        assert slept == [3600.0, 3600.0 - stream_app.SIGNING_STOP_MARGIN]
        assert clock[0] == signers.signing_until - dt.timedelta(
            seconds=stream_app.SIGNING_STOP_MARGIN
        )
