"""Hub receipts: XMLDSig over the attested fields, verified against a pinned certificate."""

from __future__ import annotations

import datetime as dt

import hypothesis
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree
from signxml import SignatureMethod, XMLSigner

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.receipt import NAMESPACE, Attestation, ReceiptSigner, verify
from hub.keys import ephemeral_certificate

R = f"{{{NAMESPACE}}}"
NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)
HEX = "0123456789abcdef"


def make_signer(algorithm: str) -> ReceiptSigner:
    if algorithm.startswith("rsa"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif algorithm == "ecdsa-sha384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    return ReceiptSigner(key, ephemeral_certificate(key, "sozialhub-test", now=NOW), algorithm)


ALGORITHMS = ["ecdsa-sha256", "ecdsa-sha384", "rsa-pss-sha256", "rsa-sha256"]


@pytest.fixture(scope="module")
def signers() -> dict[str, ReceiptSigner]:
    return {name: make_signer(name) for name in ALGORITHMS}


@pytest.fixture(scope="module")
def ecdsa(signers) -> ReceiptSigner:
    return signers["ecdsa-sha256"]


def attestation(**changes) -> Attestation:
    values = {
        "submission_id": "sub-" + "a1" * 16,
        "payload_sha256": "b2" * 32,
        "payload_namespace": "https://portalverbund.d-nrw.de/efa/XSozial-basis/Version_2_4_0",
        "payload_version": "2.4.0",
        "validated_with": "xmlschema",
        "signed_at": NOW,
        "hub_identity": "sozialhub-test",
    }
    return Attestation(**{**values, **changes})


def fields_of(a: Attestation) -> dict[str, str]:
    return {
        "submissionId": a.submission_id,
        "payloadDigest": a.payload_sha256,
        "payloadNamespace": a.payload_namespace,
        "payloadVersion": a.payload_version,
        "validation": "valid",
        "validatedWith": a.validated_with,
        "signedAt": a.signed_at.astimezone(dt.UTC).isoformat(),
        "hub": a.hub_identity,
    }


def assert_rejected(receipt: bytes, certificate) -> None:
    with pytest.raises(Rejection) as caught:
        verify(receipt, certificate)
    expected = Reason.SIG_INVALID
    assert expected == caught.value.reason


def tamper(receipt: bytes, change) -> bytes:
    root = xmlsafe.parse(receipt)
    change(root)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class TestRoundTrip:
    @hypothesis.settings(max_examples=30, deadline=None)
    @given(
        submission_id=st.text(HEX, min_size=32, max_size=32).map("sub-".__add__),
        digest=st.text(HEX, min_size=64, max_size=64),
        version=st.sampled_from(["2.4.0", "2.4.1", "3.0.0"]),
    )
    def test_sign_then_verify_returns_the_attested_fields(
        self, ecdsa, submission_id, digest, version
    ):
        """Whatever ids and digests are signed, verification returns exactly those fields."""
        a = attestation(submission_id=submission_id, payload_sha256=digest, payload_version=version)
        expected = fields_of(a)
        assert expected == verify(ecdsa.sign(a), ecdsa.certificate)

    @pytest.mark.parametrize("algorithm", ALGORITHMS)
    def test_every_supported_algorithm_round_trips(self, signers, algorithm):
        """ECDSA (P-256, P-384), RSA-PSS and RSA PKCS#1 v1.5 receipts all verify."""
        signer = signers[algorithm]
        expected = fields_of(attestation())
        assert expected == verify(signer.sign(attestation()), signer.certificate)

    @pytest.mark.parametrize(
        ("algorithm", "uri"),
        [
            ("ecdsa-sha256", "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"),
            ("rsa-pss-sha256", "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1"),
        ],
    )
    def test_signature_method_is_the_configured_one(self, signers, algorithm, uri):
        """The receipt declares the signature method the signer was configured with."""
        root = xmlsafe.parse(signers[algorithm].sign(attestation()))
        method = root.find(".//{http://www.w3.org/2000/09/xmldsig#}SignatureMethod")
        assert uri == method.get("Algorithm")

    def test_signed_at_is_written_in_utc(self, ecdsa):
        """A signing time in another zone is attested as the same instant in UTC."""
        local = NOW.astimezone(dt.timezone(dt.timedelta(hours=2)))
        attested = verify(ecdsa.sign(attestation(signed_at=local)), ecdsa.certificate)
        expected = "2026-11-02T10:00:00+00:00"
        assert expected == attested["signedAt"]

    def test_unsupported_algorithm_is_refused(self):
        """A signer cannot be built with an algorithm outside the allow-list (e.g. SHA-1)."""
        key = ec.generate_private_key(ec.SECP256R1())
        with pytest.raises(ValueError, match="unsupported signature algorithm"):
            ReceiptSigner(key, ephemeral_certificate(key, "x", now=NOW), "ecdsa-sha1")


ATTESTED = [
    "submissionId",
    "payloadDigest",
    "payloadNamespace",
    "payloadVersion",
    "validation",
    "validatedWith",
    "signedAt",
    "hub",
]


class TestTampering:
    @pytest.mark.parametrize("field", ATTESTED)
    def test_changing_any_attested_field_fails(self, ecdsa, field):
        """Changing the text of any attested field breaks the signature."""

        def change(root):
            element = root.find(f"{R}{field}")
            element.text = (element.text or "") + "0"

        assert_rejected(tamper(ecdsa.sign(attestation()), change), ecdsa.certificate)

    @pytest.mark.parametrize("field", ATTESTED)
    def test_removing_any_attested_field_fails(self, ecdsa, field):
        """Removing an attested field breaks the signature."""

        def change(root):
            root.remove(root.find(f"{R}{field}"))

        assert_rejected(tamper(ecdsa.sign(attestation()), change), ecdsa.certificate)

    def test_changing_the_digest_algorithm_attribute_fails(self, ecdsa):
        """The payloadDigest algorithm attribute is covered by the signature too."""

        def change(root):
            root.find(f"{R}payloadDigest").set("algorithm", "md5")

        assert_rejected(tamper(ecdsa.sign(attestation()), change), ecdsa.certificate)

    def test_adding_a_field_fails(self, ecdsa):
        """An element added to a signed receipt breaks the signature."""

        def change(root):
            etree.SubElement(root, f"{R}note").text = "approved"

        assert_rejected(tamper(ecdsa.sign(attestation()), change), ecdsa.certificate)

    def test_swapping_signature_values_between_receipts_fails(self, ecdsa):
        """The signature of one receipt does not validate another receipt's fields."""
        first = ecdsa.sign(attestation())
        second = ecdsa.sign(attestation(submission_id="sub-" + "c3" * 16))
        signature = xmlsafe.parse(first).find(".//{http://www.w3.org/2000/09/xmldsig#}Signature")

        def change(root):
            old = root.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
            root.replace(old, signature)

        assert_rejected(tamper(second, change), ecdsa.certificate)

    def test_unsigned_receipt_fails(self, ecdsa):
        """A receipt without its Signature element is refused."""

        def change(root):
            root.remove(root.find("{http://www.w3.org/2000/09/xmldsig#}Signature"))

        assert_rejected(tamper(ecdsa.sign(attestation()), change), ecdsa.certificate)

    def test_signed_document_that_is_not_a_receipt_fails(self, ecdsa):
        """A correctly signed document with another root is not accepted as a receipt."""
        root = etree.Element("{urn:example}note")
        etree.SubElement(root, "{urn:example}text").text = "approved"
        signer = XMLSigner(signature_algorithm=SignatureMethod.ECDSA_SHA256)
        signed = signer.sign(root, key=ecdsa.key, cert=[ecdsa.certificate])
        assert_rejected(etree.tostring(signed), ecdsa.certificate)

    @hypothesis.settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def test_no_byte_flip_changes_the_attested_fields(self, ecdsa, data):
        """Flipping any byte either breaks verification or leaves the attested fields unchanged."""
        a = attestation()
        receipt = ecdsa.sign(a)
        position = data.draw(st.integers(0, len(receipt) - 1))
        flip = data.draw(st.integers(1, 255))
        mutated = receipt[:position] + bytes([receipt[position] ^ flip]) + receipt[position + 1 :]
        try:
            attested = verify(mutated, ecdsa.certificate)
        except Rejection:
            return
        expected = fields_of(a)
        assert expected == attested

    @pytest.mark.parametrize("body", [b"", b"not xml", b"<r/>", b"\x1f\x8b\x08\x00"])
    def test_garbage_is_a_rejection(self, ecdsa, body):
        """Bytes that are not a receipt at all give a Rejection, never another exception."""
        with pytest.raises(Rejection):
            verify(body, ecdsa.certificate)


class TestCertificates:
    def test_other_certificate_fails(self, ecdsa):
        """A receipt does not verify against another hub's certificate of the same kind."""
        other = make_signer("ecdsa-sha256")
        assert_rejected(ecdsa.sign(attestation()), other.certificate)

    def test_certificate_of_other_key_type_fails(self, signers):
        """An ECDSA receipt does not verify against an RSA certificate, nor the reverse."""
        ecdsa, rsa_pss = signers["ecdsa-sha256"], signers["rsa-pss-sha256"]
        assert_rejected(ecdsa.sign(attestation()), rsa_pss.certificate)
        assert_rejected(rsa_pss.sign(attestation()), ecdsa.certificate)

    def test_embedded_certificate_is_not_trusted(self, ecdsa):
        """A receipt signed by another key, embedding that key's certificate, is refused."""
        forger = make_signer("ecdsa-sha256")
        assert_rejected(forger.sign(attestation()), ecdsa.certificate)


class TestKeyNeverPrinted:
    @pytest.mark.parametrize("algorithm", ALGORITHMS)
    def test_repr_and_str_hold_no_key_material(self, signers, algorithm):
        """repr() and str() of a signer show neither the private key numbers nor its PEM."""
        signer = signers[algorithm]
        text = repr(signer) + str(signer)
        numbers = signer.key.private_numbers()
        secrets = (
            [numbers.private_value]
            if isinstance(numbers, ec.EllipticCurvePrivateNumbers)
            else [numbers.d, numbers.p, numbers.q, numbers.dmp1, numbers.dmq1, numbers.iqmp]
        )
        pem = signer.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        body = "".join(pem.splitlines()[1:-1])
        leaks = [s for n in secrets for s in (str(n), f"{n:x}", f"{n:X}") if s in text]
        chunks = (body[i : i + 16] for i in range(0, len(body) - 16, 16))
        leaks += [chunk for chunk in chunks if chunk in text]
        expected: list[str] = []
        assert expected == leaks
        assert "PRIVATE KEY" not in text
        assert "key=" not in text
