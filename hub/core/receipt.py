"""The hub's signed receipt: what the hub attests about an accepted submission.

The portal's original bytes stay untouched; the receipt covers their SHA-256
digest, the payload schema and version, the validation result, the time and the
hub's identity, signed with XMLDSig (enveloped, exclusive C14N). A vendor can
verify the receipt with the hub's certificate and compare the digest with the
original bytes it received.

:class:`ReceiptSigner` holds a key and certificate loaded once by an adapter;
signing and verification are pure computations.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml import (  # type: ignore[attr-defined] # signxml re-exports without __all__
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLSigner,
    XMLVerifier,
)
from signxml.algorithms import CanonicalizationMethod

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection

NAMESPACE = "urn:sozialhub:receipt:1"
_R = f"{{{NAMESPACE}}}"

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_ALGORITHMS = {
    "ecdsa-sha256": SignatureMethod.ECDSA_SHA256,
    "ecdsa-sha384": SignatureMethod.ECDSA_SHA384,
    "rsa-pss-sha256": SignatureMethod.SHA256_RSA_MGF1,
    "rsa-sha256": SignatureMethod.RSA_SHA256,
}


@dataclass(frozen=True, slots=True)
class Attestation:
    submission_id: str
    payload_sha256: str
    payload_namespace: str
    payload_version: str
    validated_with: str
    signed_at: dt.datetime
    hub_identity: str


@dataclass(frozen=True)
class ReceiptSigner:
    """A loaded signing key and its certificate. Never prints the key."""

    key: SigningKey = field(repr=False)
    certificate: x509.Certificate
    algorithm: str = "ecdsa-sha256"

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS:
            raise ValueError("unsupported signature algorithm")
        is_ec = isinstance(self.key, ec.EllipticCurvePrivateKey)
        if is_ec != self.algorithm.startswith("ecdsa"):
            raise ValueError("signature algorithm does not fit the key type")

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def sign(self, attestation: Attestation) -> bytes:
        root = etree.Element(f"{_R}receipt", nsmap={"r": NAMESPACE})
        for tag, text in (
            ("submissionId", attestation.submission_id),
            ("payloadDigest", attestation.payload_sha256),
            ("payloadNamespace", attestation.payload_namespace),
            ("payloadVersion", attestation.payload_version),
            ("validation", "valid"),
            ("validatedWith", attestation.validated_with),
            ("signedAt", attestation.signed_at.astimezone(dt.UTC).isoformat()),
            ("hub", attestation.hub_identity),
        ):
            etree.SubElement(root, f"{_R}{tag}").text = text
        root.find(f"{_R}payloadDigest").set("algorithm", "sha256")  # type: ignore[union-attr]
        signer = XMLSigner(
            signature_algorithm=_ALGORITHMS[self.algorithm],
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        )
        signed = signer.sign(root, key=self.key, cert=[self.certificate])
        return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def verify(receipt: bytes, certificate: x509.Certificate) -> dict[str, str]:
    """Verify a receipt against a pinned hub certificate; return the attested fields.

    Only ECDSA and RSA-PSS/PKCS#1 with SHA-256 or stronger are accepted; the
    returned fields are read from the signed data, not the unverified tree.
    """
    root = xmlsafe.parse(receipt)
    config = SignatureConfiguration(
        signature_methods=frozenset(_ALGORITHMS.values()),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384}),
        expect_references=1,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=certificate, expect_config=config)
    except Exception:  # noqa: BLE001 - signxml raises many types; all mean "not valid"
        raise Rejection(Reason.SIG_INVALID, "receipt/Signature") from None
    if isinstance(result, list):  # only with expect_references > 1
        raise Rejection(Reason.SIG_INVALID, "receipt/Signature")
    signed = result.signed_xml
    if signed is None or signed.tag != f"{_R}receipt":
        raise Rejection(Reason.SIG_INVALID, "receipt")
    return {
        etree.QName(child).localname: child.text or ""
        for child in signed
        if isinstance(child.tag, str) and child.tag.startswith(_R)
    }
