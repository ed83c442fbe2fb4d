"""Rotation of the hub's receipt-signing key (hub.core.rotation)."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from hub.core.errors import Reason, Rejection
from hub.core.receipt import Attestation, ReceiptSigner
from hub.core.rotation import RotationError, SignerSet, expiry_warnings, verify_any
from tests.sigtools import issue

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


def _signer(
    not_before: dt.datetime, not_after: dt.datetime, name: str = "sozialhub"
) -> ReceiptSigner:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(key.public_key(), name, self_key=key, not_before=not_before, not_after=not_after)
    return ReceiptSigner(key, cert, "ecdsa-sha256")


@pytest.fixture(scope="module")
def current() -> ReceiptSigner:
    return _signer(T0, T0 + 365 * DAY, "hub 2026")


@pytest.fixture(scope="module")
def following() -> ReceiptSigner:
    # Valid from day 300, 65 days before the current certificate expires.
    return _signer(T0 + 300 * DAY, T0 + 730 * DAY, "hub 2027")


@pytest.fixture(scope="module")
def rotation(current, following) -> SignerSet:
    return SignerSet(current, following, overlap_until=T0 + 330 * DAY)


# -- which key signs when ----------------------------------------------------------------------


def test_current_signs_until_the_next_certificate_is_valid(rotation, current, following):
    moments = [
        T0 + 10 * DAY,
        T0 + 300 * DAY - dt.timedelta(seconds=1),
        T0 + 300 * DAY,
        T0 + 400 * DAY,
    ]
    expected = [current, current, following, following]
    assert expected == [rotation.signer_at(m) for m in moments]
    assert rotation.switch_at == T0 + 300 * DAY


def test_without_rotation_the_current_signer_signs(current):
    signers = SignerSet(current)
    assert (signers.signer_at(T0 + DAY), signers.switch_at) == (current, None)


@pytest.mark.parametrize("moment", [T0 - DAY, T0 + 366 * DAY])
def test_no_valid_certificate_is_an_error(current, moment):
    """Before the current certificate or after it expired, without a next one: nothing may sign."""
    with pytest.raises(RotationError):
        SignerSet(current).signer_at(moment)


def test_naive_times_are_refused(rotation):
    with pytest.raises(ValueError, match="timezone"):
        rotation.signer_at(dt.datetime(2026, 6, 1))  # noqa: DTZ001 - the point of the test


def test_trusted_certificates_per_phase(rotation, current, following):
    """Before the switch: current (signing) and next (published early); during the overlap: both,
    next first; afterwards: next only."""
    expected = [
        (current.certificate, following.certificate),
        (following.certificate, current.certificate),
        (following.certificate,),
    ]
    moments = [T0 + 100 * DAY, T0 + 310 * DAY, T0 + 331 * DAY]
    assert expected == [rotation.certificates_at(m) for m in moments]


@pytest.mark.parametrize(
    ("next_window", "overlap_days", "message"),
    [
        ((400, 800), 380, "gap"),
        ((300, 365), 330, "outlive"),
        ((300, 730), 290, "between the switch"),
        ((300, 730), 370, "between the switch"),
    ],
)
def test_inconsistent_rotations_are_refused(current, next_window, overlap_days, message):
    following = _signer(T0 + next_window[0] * DAY, T0 + next_window[1] * DAY)
    with pytest.raises(ValueError, match=message):
        SignerSet(current, following, overlap_until=T0 + overlap_days * DAY)


def test_rotation_needs_both_next_and_overlap(current, following):
    with pytest.raises(ValueError, match="needs overlap_until"):
        SignerSet(current, following)
    with pytest.raises(ValueError, match="needs a next signer"):
        SignerSet(current, overlap_until=T0 + DAY)
    with pytest.raises(ValueError, match="is the current one"):
        SignerSet(current, current, overlap_until=T0 + DAY)


# -- verifying with current and next ---------------------------------------------------------------


@pytest.fixture(scope="module")
def live() -> tuple[ReceiptSigner, ReceiptSigner]:
    """Current and next valid now: receipt.verify checks validity against the wall clock."""
    now = dt.datetime.now(dt.UTC)
    return (
        _signer(now - 300 * DAY, now + 65 * DAY, "hub current"),
        _signer(now - DAY, now + 400 * DAY, "hub next"),
    )


def _receipt(signer: ReceiptSigner) -> bytes:
    attestation = Attestation(
        submission_id="sub-0123456789abcdef",
        payload_sha256="0" * 64,
        payload_namespace="urn:example",
        payload_version="2.4.0",
        validated_with="libxml2",
        signed_at=dt.datetime.now(dt.UTC),
        hub_identity="sozialhub-test",
    )
    return signer.sign(attestation)


@pytest.mark.parametrize("which", [0, 1])
def test_verify_any_accepts_either_signer(live, which):
    certificates = [s.certificate for s in live]
    fields, used = verify_any(_receipt(live[which]), certificates)
    assert (fields["submissionId"], used) == ("sub-0123456789abcdef", certificates[which])


def test_verify_any_refuses_a_foreign_signer(live):
    now = dt.datetime.now(dt.UTC)
    stranger = _signer(now - DAY, now + DAY, "hub current")
    with pytest.raises(Rejection) as raised:
        verify_any(_receipt(stranger), [s.certificate for s in live])
    assert (raised.value.reason, raised.value.path) == (Reason.SIG_INVALID, "receipt/Signature")


def test_verify_any_raises_other_rejections_at_once(live):
    with pytest.raises(Rejection) as raised:
        verify_any(b"<receipt", [s.certificate for s in live])
    assert raised.value.reason is Reason.WELLFORMED


def test_verify_any_needs_a_certificate(live):
    with pytest.raises(ValueError, match="no certificates"):
        verify_any(_receipt(live[0]), [])


# -- expiry warnings ---------------------------------------------------------------------------------


def test_expiry_warnings_most_urgent_first(current, following):
    now = T0 + 360 * DAY
    certificates = {"next": following.certificate, "current": current.certificate}
    assert expiry_warnings(certificates, now, warn_days=30) == [("current", 5.0)]
    assert expiry_warnings(certificates, now, warn_days=400) == [("current", 5.0), ("next", 370.0)]


def test_expired_certificates_have_negative_days(current):
    assert expiry_warnings({"current": current.certificate}, T0 + 367 * DAY, 30) == [
        ("current", -2.0)
    ]


def test_signer_set_warns_for_both(rotation):
    assert [w[0] for w in rotation.expiry_warnings(T0 + 360 * DAY, 400)] == ["current", "next"]
