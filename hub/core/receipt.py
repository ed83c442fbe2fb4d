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

import base64
import copy
import datetime as dt
import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree
from signxml import (  # type: ignore[attr-defined] # signxml re-exports without __all__
    DigestAlgorithm,
    SignatureConfiguration,
    SignatureMethod,
    XMLVerifier,
)
from signxml.algorithms import CanonicalizationMethod, SignatureConstructionMethod

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
# The hash each signature method signs with.
_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384]] = {
    "ecdsa-sha256": hashes.SHA256,
    "ecdsa-sha384": hashes.SHA384,
    "rsa-pss-sha256": hashes.SHA256,
    "rsa-sha256": hashes.SHA256,
}
# The same hashes in hashlib, which digests the data the key signs (ReceiptSigner._signing).
_HASHLIB: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "ecdsa-sha256": hashlib.sha256,
    "ecdsa-sha384": hashlib.sha384,
    "rsa-pss-sha256": hashlib.sha256,
    "rsa-sha256": hashlib.sha256,
}

_DS_NAMESPACE = "http://www.w3.org/2000/09/xmldsig#"
_DS = f"{{{_DS_NAMESPACE}}}"
_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
_ENVELOPED = SignatureConstructionMethod.enveloped.value
_SHA256 = DigestAlgorithm.SHA256.value
# The attested fields, in the receipt's order.
_FIELDS = (
    "submissionId",
    "payloadDigest",
    "payloadNamespace",
    "payloadVersion",
    "validation",
    "validatedWith",
    "signedAt",
    "hub",
)


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

    @functools.cached_property
    def validity(self) -> tuple[dt.datetime, dt.datetime]:
        """The certificate's ``not_valid_before_utc`` and ``not_valid_after_utc``, read once."""
        return self.certificate.not_valid_before_utc, self.certificate.not_valid_after_utc

    @functools.cached_property
    def _templates(self) -> tuple[etree._Element, etree._Element]:
        """The receipt and its Signature without the per-receipt texts, built once per signer.

        Element for element what ``signxml.XMLSigner`` writes for an enveloped signature
        with exclusive C14N: one reference ``URI=""`` with the enveloped-signature and
        exclusive C14N transforms, a SHA-256 digest, the certificate in KeyInfo.
        """
        receipt = etree.Element(f"{_R}receipt", nsmap={"r": NAMESPACE})
        for tag in _FIELDS:
            etree.SubElement(receipt, f"{_R}{tag}")
        receipt[_FIELDS.index("payloadDigest")].set("algorithm", "sha256")
        signature = etree.Element(f"{_DS}Signature", nsmap={"ds": _DS_NAMESPACE})
        signed_info = etree.SubElement(signature, f"{_DS}SignedInfo", nsmap={"ds": _DS_NAMESPACE})
        etree.SubElement(signed_info, f"{_DS}CanonicalizationMethod", Algorithm=_EXC_C14N)
        etree.SubElement(
            signed_info, f"{_DS}SignatureMethod", Algorithm=_ALGORITHMS[self.algorithm].value
        )
        reference = etree.SubElement(signed_info, f"{_DS}Reference", URI="")
        transforms = etree.SubElement(reference, f"{_DS}Transforms")
        etree.SubElement(transforms, f"{_DS}Transform", Algorithm=_ENVELOPED)
        etree.SubElement(transforms, f"{_DS}Transform", Algorithm=_EXC_C14N)
        etree.SubElement(reference, f"{_DS}DigestMethod", Algorithm=_SHA256)
        etree.SubElement(reference, f"{_DS}DigestValue")
        etree.SubElement(signature, f"{_DS}SignatureValue")
        key_info = etree.SubElement(signature, f"{_DS}KeyInfo")
        pem = self.certificate.public_bytes(Encoding.PEM).decode("ascii").replace("\r", "")
        # The PEM body with its line breaks, as signxml writes X509Certificate.
        body = pem.split("-----BEGIN CERTIFICATE-----\n", 1)[1]
        body = body.split("-----END CERTIFICATE-----", 1)[0]
        x509_data = etree.SubElement(key_info, f"{_DS}X509Data")
        etree.SubElement(x509_data, f"{_DS}X509Certificate").text = body
        return receipt, signature

    def _signature_value(self, data: bytes) -> bytes:
        """XMLDSig's SignatureValue octets: ECDSA as r || s (RFC 4050), RSA as is."""
        return self._signing(data)

    @functools.cached_property
    def _signing(self) -> Callable[[bytes], bytes]:
        """:meth:`_signature_value`, with the key's algorithm objects made once per signer.

        The hash, ECDSA, PSS and padding objects only name parameters (no state): one of
        each serves every signature. The data is hashed with :mod:`hashlib` and the digest
        signed as prehashed: the same signature (the scheme signs the digest either way),
        without the key's library setting up a digest of its own for each receipt.
        """
        algorithm = _HASHES[self.algorithm]()
        digest_of = _HASHLIB[self.algorithm]
        prehashed = Prehashed(algorithm)
        key = self.key
        if isinstance(key, ec.EllipticCurvePrivateKey):
            ecdsa = ec.ECDSA(prehashed)
            size = (key.key_size + 7) // 8

            def sign_ecdsa(data: bytes) -> bytes:
                r, s = decode_dss_signature(key.sign(digest_of(data).digest(), ecdsa))
                return r.to_bytes(size, "big") + s.to_bytes(size, "big")

            return sign_ecdsa
        scheme: padding.AsymmetricPadding = padding.PKCS1v15()
        if self.algorithm == "rsa-pss-sha256":
            scheme = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)

        def sign_rsa(data: bytes) -> bytes:
            return key.sign(digest_of(data).digest(), scheme, prehashed)

        return sign_rsa

    @functools.cached_property
    def _formats(self) -> tuple[tuple[str, ...], tuple[bytes, bytes], tuple[str, ...]]:
        """The receipt's fixed text around its variable texts, cut from the templates once.

        The receipt's exclusive C14N (the bytes the reference digest covers) as the pieces
        around the attested texts, the canonical SignedInfo as the two pieces around the
        digest value, and the signed document as lxml writes it as the pieces around the
        attested texts, the digest and the signature (:func:`_fill` puts texts in place).
        """
        receipt, signature_template = self._templates
        root = copy.deepcopy(receipt)
        for index, element in enumerate(root):
            element.text = f"@@{index}@@"
        signature = copy.deepcopy(signature_template)
        signature[0][2][2].text = f"@@{len(_FIELDS)}@@"  # SignedInfo/Reference/DigestValue
        signature[1].text = f"@@{len(_FIELDS) + 1}@@"  # SignatureValue
        canonical = etree.tostring(root, method="c14n", exclusive=True)
        signed_info = etree.tostring(signature[0], method="c14n", exclusive=True)
        root.append(signature)
        document = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        fragments = []
        for data, places in (
            (canonical, range(len(_FIELDS))),
            (signed_info, range(len(_FIELDS), len(_FIELDS) + 1)),
            (document, range(len(_FIELDS) + 2)),
        ):
            pieces = _MARK.split(data)  # fragment, place number, fragment, ...
            if [int(number) for number in pieces[1::2]] != list(places):
                raise RuntimeError("a receipt template lost a text place")  # pragma: no cover
            fragments.append(tuple(pieces[::2]))
        canonical_pieces, (before_digest, after_digest), document_pieces = fragments
        return (
            tuple(piece.decode() for piece in canonical_pieces),
            (before_digest, after_digest),
            tuple(piece.decode() for piece in document_pieces),
        )

    def sign(self, attestation: Attestation) -> bytes:
        """The signed receipt: an enveloped XMLDSig signature over the attested fields.

        The same document ``signxml.XMLSigner`` makes. The fixed text of the receipt's
        canonical form, of the canonical SignedInfo and of the written document is cut
        from templates once per signer (:attr:`_formats`); a receipt only escapes its
        texts and puts them in their places, as lxml's C14N and serialiser would.
        ``tests/unit/test_hot_path_equivalence.py`` compares the bytes with signxml's and
        with the tree-built receipt, and verifies receipts with signxml.
        """
        texts: tuple[str, ...] = (
            attestation.submission_id,
            attestation.payload_sha256,
            attestation.payload_namespace,
            attestation.payload_version,
            "valid",
            attestation.validated_with,
            attestation.signed_at.astimezone(dt.UTC).isoformat(),
            attestation.hub_identity,
        )
        joined = "".join(texts)
        if _UNUSUAL.search(joined) is None:  # neither of the two below: the common case
            canonical_texts = written_texts = texts
        elif _NOT_XML.search(joined) is not None:
            # lxml's own refusal, for the characters XML 1.0 cannot carry.
            raise ValueError(
                "All strings must be XML compatible: Unicode or ASCII, no NULL bytes or control characters"
            )
        elif _SPECIAL.search(joined) is None:
            canonical_texts = written_texts = texts
        else:
            canonical_texts = tuple(_escape(text, "&#xD;") for text in texts)
            written_texts = tuple(_escape(text, "&#13;") for text in texts)
        canonical, (before_digest, after_digest), document = self._formats
        digest = hashlib.sha256(_fill(canonical, canonical_texts).encode()).digest()
        digest_value = base64.b64encode(digest)
        value = self._signing(before_digest + digest_value + after_digest)
        signature_value = base64.b64encode(value).decode()
        return _fill(document, (*written_texts, digest_value.decode(), signature_value)).encode()


# A text's place in a template (see ReceiptSigner._formats); the split keeps the number.
_MARK = re.compile(rb"@@(\d+)@@")
# Characters XML 1.0 cannot carry, which lxml refuses as text (surrogates fail to encode).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_SPECIAL = re.compile("[&<>\r]")
_UNUSUAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff&<>\r]")  # either of the two


def _escape(text: str, carriage_return: str) -> str:
    """Text content as C14N (``&#xD;``) or lxml's serialiser (``&#13;``) escapes it."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("\r", carriage_return)


def _fill(pieces: tuple[str, ...], texts: tuple[str, ...]) -> str:
    """The pieces with the texts between them: ``pieces[0] + texts[0] + pieces[1] + ...``.

    One join: ``str.format`` parsed the 1.5 kB template again on every receipt.
    """
    parts = list(pieces + texts)
    parts[::2] = pieces
    parts[1::2] = texts
    return "".join(parts)


def verify(
    receipt: bytes, certificate: x509.Certificate, at: dt.datetime | None = None
) -> dict[str, str]:
    """Verify a receipt against a pinned hub certificate; return the attested fields.

    Only ECDSA and RSA-PSS/PKCS#1 with SHA-256 or stronger are accepted; the
    returned fields are read from the signed data, not the unverified tree. The
    signature must be a direct child of the receipt element.

    ``at``: the time at which the certificate must be valid (timezone-aware);
    with it the result depends on the arguments only. To check an old receipt
    after its certificate expired or was rotated out, pass a time you trust,
    e.g. when you received the receipt (its own ``signedAt`` is signed by the
    same key, so it proves nothing about when). ``None``: the current time.
    """
    if at is not None and at.utcoffset() is None:
        raise ValueError("the verification time must be timezone-aware")
    root = xmlsafe.parse(receipt)
    config = SignatureConfiguration(
        signature_methods=frozenset(_ALGORITHMS.values()),
        digest_algorithms=frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384}),
        expect_references=1,
        location="./",
        verification_time=at,
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
