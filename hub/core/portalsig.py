"""Verification of author and portal XML signatures by policy (bad-inputs E31-E42, F43-F46).

A signed portal submission carries one enveloped ``ds:Signature`` as a direct
child of the payload root, with exactly one ``Reference`` to that root (``URI=""``
or ``URI="#<id of the root>"``). :func:`verify` checks it against a per-portal
:class:`SignaturePolicy` and returns the *signed* data; the caller continues only
with :attr:`Verified.signed_root`, never with the tree it passed in.

The order of the checks, each ending in a fixed reason code and a location
(never a value, never a library's message, which echoes payload fragments):

1. location: exactly one ``ds:Signature`` in the whole document, a direct child
   of the root (``SIG_LOCATION``); none at all is ``SIG_MISSING`` when required;
2. no id-like attribute value (``Id``, ``ID``, ``id``, ``xml:id``, any namespace)
   twice in the document (``SIG_AMBIGUOUS``);
3. the shape of ``SignedInfo``: allowed canonicalization, signature and digest
   methods, no ``HMACOutputLength`` (``SIG_ALG``); exactly one reference with an
   enveloped-signature transform (``SIG_REF``); the reference names the root,
   not another element (``SIG_WRAPPING``); no ``ds:Object`` (``SIG_WRAPPING``);
4. ``KeyInfo``: bounded (``SIZE``), X.509 certificates only, any ``KeyValue`` equal
   to the signer's certificate key (``SIG_KEYINFO``);
5. trust: the signer certificate is pinned (full DER) or chains to the
   portal's CA bundle (``SIG_TRUST``); chain depth, key usage, extended key
   usage, policies and key size (``CERT_POLICY``); validity of every
   certificate in the path (``CERT_VALIDITY``); revocation by the configured
   CRLs (``CERT_REVOKED``, stale or missing: ``CERT_STATUS_UNKNOWN``);
6. cryptography, by signxml with the already trusted certificate and a strict
   configuration (``SIG_DIGEST``, ``SIG_INVALID``), ``SignedInfo`` canonicalized
   where it stands in the document (:class:`_InPlaceVerifier`);
7. anti-wrapping: the data signxml reports as signed must be the canonical form
   of the root without its signature (``SIG_WRAPPING``).

:func:`verify_osci` is the entry point for OSCI-Transport 1.2 author signatures:
detached signatures in or on the content containers around the payload, with
``#Id`` and ``cid:`` references. It applies the same policy and the same checks
2 to 6, verifies the signature value and every reference's digest itself, and
demands that a verified signature covers exactly the payload bytes the pipeline
reads (``SIG_WRAPPING`` otherwise, bad-inputs E.33).

Pure: no I/O, no logging. (signxml reads its bundled XMLDSig schema from its
package on the first verification in a process.)
"""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import ExtensionOID, ObjectIdentifier
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from hub.core.errors import Reason, Rejection

if TYPE_CHECKING:  # the OSCI transport loads on first use; only its types are needed here
    from hub.core.transport.osci import OsciSignature, OsciUnpacked

DS = "http://www.w3.org/2000/09/xmldsig#"
DSIG11 = "http://www.w3.org/2009/xmldsig11#"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
_DS = f"{{{DS}}}"
_DSIG11 = f"{{{DSIG11}}}"

Mode = Literal["required", "optional", "none"]
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
_E = TypeVar("_E", bound=x509.ExtensionType)
_R = TypeVar("_R")
MODES: frozenset[str] = frozenset({"required", "optional", "none"})

# Policy names of the signature methods the hub can accept. HMAC, DSA and every
# SHA-1 method are deliberately absent: they cannot be configured at all.
SIGNATURE_METHODS: dict[str, SignatureMethod] = {
    "rsa-pss-sha256": SignatureMethod.SHA256_RSA_MGF1,
    "rsa-pss-sha384": SignatureMethod.SHA384_RSA_MGF1,
    "rsa-pss-sha512": SignatureMethod.SHA512_RSA_MGF1,
    "rsa-sha256": SignatureMethod.RSA_SHA256,
    "rsa-sha384": SignatureMethod.RSA_SHA384,
    "rsa-sha512": SignatureMethod.RSA_SHA512,
    "ecdsa-sha256": SignatureMethod.ECDSA_SHA256,
    "ecdsa-sha384": SignatureMethod.ECDSA_SHA384,
    "ecdsa-sha512": SignatureMethod.ECDSA_SHA512,
}
DIGEST_METHODS: dict[str, DigestAlgorithm] = {
    "sha256": DigestAlgorithm.SHA256,
    "sha384": DigestAlgorithm.SHA384,
    "sha512": DigestAlgorithm.SHA512,
    "sha3-256": DigestAlgorithm.SHA3_256,
    "sha3-384": DigestAlgorithm.SHA3_384,
    "sha3-512": DigestAlgorithm.SHA3_512,
}
DEFAULT_SIGNATURE_METHODS: frozenset[str] = frozenset(SIGNATURE_METHODS)
DEFAULT_DIGEST_METHODS: frozenset[str] = frozenset({"sha256", "sha384", "sha512"})
# Named curves and their OIDs (for dsig11:ECKeyValue/NamedCurve/@URI).
EC_CURVES: dict[str, str] = {
    "secp256r1": "1.2.840.10045.3.1.7",
    "secp384r1": "1.3.132.0.34",
    "secp521r1": "1.3.132.0.35",
}
_METHOD_BY_URI = {method.value: name for name, method in SIGNATURE_METHODS.items()}
_DIGEST_BY_URI = {digest.value: name for name, digest in DIGEST_METHODS.items()}
_C14N_URIS = frozenset(method.value for method in CanonicalizationMethod)
# signxml canonicalizes a reference without a c14n transform with this method.
_DEFAULT_REFERENCE_C14N = CanonicalizationMethod.CANONICAL_XML_1_1.value
_CERT_HASHES = frozenset({"sha256", "sha384", "sha512"})
# Extensions the path checks understand; any other critical extension fails closed.
_KNOWN_CRITICAL = frozenset(
    {
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
    }
)
_ID_NAMES = frozenset({"Id", "ID", "id"})  # local names; xml:id has the local name "id"
_KEYINFO_CHILDREN = frozenset(
    {f"{_DS}KeyName", f"{_DS}KeyValue", f"{_DS}X509Data", f"{_DSIG11}DEREncodedKeyValue"}
)
_KEYINFO_SLACK = 16  # elements in KeyInfo besides the certificates (X509Data, KeyValue, ...)

# Locations used in rejections.
SIGNATURE = "Signature"
SIGNED_INFO = "Signature/SignedInfo"
C14N_METHOD = "Signature/SignedInfo/CanonicalizationMethod"
SIGNATURE_METHOD = "Signature/SignedInfo/SignatureMethod"
REFERENCE = "Signature/SignedInfo/Reference"
REFERENCE_URI = "Signature/SignedInfo/Reference/@URI"
TRANSFORMS = "Signature/SignedInfo/Reference/Transforms"
DIGEST_METHOD = "Signature/SignedInfo/Reference/DigestMethod"
SIGNATURE_VALUE = "Signature/SignatureValue"
OBJECT = "Signature/Object"
KEY_INFO = "Signature/KeyInfo"
KEY_VALUE = "Signature/KeyInfo/KeyValue"
CERTIFICATES = "Signature/KeyInfo/X509Data"
ROOT = "/"


def _chain_path(index: int) -> str:
    """The location of a certificate in the validated path: 0 is the signer."""
    return f"chain[{index}]"


@dataclass(frozen=True)
class SignaturePolicy:
    """How one portal's submissions must be signed (all fields have safe defaults).

    ``mode``: ``required`` (unsigned is ``SIG_MISSING``), ``optional`` (a present
    signature must verify) or ``none`` (no check at all). Trust is a set of
    ``pinned`` signer certificates (matched by full DER) and/or a ``ca_bundle``
    of partner CA certificates (trust anchors). When ``crls`` are configured,
    every certificate of a CA path below the anchor needs a current CRL from
    its issuer (fail closed). A pinned certificate that does not chain to the
    bundle is trusted by its pin alone; revoke it by removing the pin.
    """

    mode: Mode = "required"
    pinned: tuple[x509.Certificate, ...] = ()
    ca_bundle: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    signature_methods: frozenset[str] = DEFAULT_SIGNATURE_METHODS
    digest_methods: frozenset[str] = DEFAULT_DIGEST_METHODS
    max_certificates: int = 8  # X509Certificate elements in KeyInfo
    max_certificate_bytes: int = 16_384  # DER size of one KeyInfo certificate
    max_chain_depth: int = 3  # CA certificates above the signer, trust anchor included
    min_rsa_bits: int = 2048
    max_rsa_bits: int = 8192
    ec_curves: frozenset[str] = frozenset(EC_CURVES)
    eku_oids: frozenset[str] = frozenset()  # if set, the signer needs at least one of them
    policy_oids: frozenset[str] = frozenset()  # if set, the signer needs at least one of them
    _pinned_der: frozenset[bytes] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_policy(self)
        pinned = frozenset(_der(c) for c in self.pinned)
        object.__setattr__(self, "_pinned_der", pinned)

    def is_pinned(self, cert: x509.Certificate) -> bool:
        return _der(cert) in self._pinned_der


def _check_policy(policy: SignaturePolicy) -> None:
    """Refuse a policy that is unsafe or cannot work (ValueError: a configuration error)."""
    if policy.mode not in MODES:
        raise ValueError("mode must be required, optional or none")
    if policy.mode != "none" and not (policy.pinned or policy.ca_bundle):
        raise ValueError("a signature policy needs pinned certificates or a CA bundle")
    if not policy.signature_methods or not policy.signature_methods <= SIGNATURE_METHODS.keys():
        raise ValueError(
            f"signature_methods must be a non-empty subset of {sorted(SIGNATURE_METHODS)}"
        )
    if not policy.digest_methods or not policy.digest_methods <= DIGEST_METHODS.keys():
        raise ValueError(f"digest_methods must be a non-empty subset of {sorted(DIGEST_METHODS)}")
    if not policy.ec_curves <= EC_CURVES.keys():
        raise ValueError(f"ec_curves must be a subset of {sorted(EC_CURVES)}")
    _check_policy_limits(policy)


def _check_policy_limits(policy: SignaturePolicy) -> None:
    if policy.max_certificates < 1 or policy.max_chain_depth < 1:
        raise ValueError("max_certificates and max_chain_depth must be at least 1")
    if not 1024 <= policy.max_certificate_bytes <= 65_536:
        raise ValueError("max_certificate_bytes must be between 1024 and 65536")
    if not 2048 <= policy.min_rsa_bits <= policy.max_rsa_bits <= 16_384:
        raise ValueError("need 2048 <= min_rsa_bits <= max_rsa_bits <= 16384")
    for oid in policy.eku_oids | policy.policy_oids:
        try:
            ObjectIdentifier(oid)
        except ValueError:
            raise ValueError("eku_oids and policy_oids must be dotted OIDs") from None
    if not all(_is_ca(cert) for cert in policy.ca_bundle):
        raise ValueError("every ca_bundle certificate must be a CA (basicConstraints)")


@dataclass(frozen=True)
class Verified:
    """The outcome of :func:`verify`: continue only with ``signed_root``.

    For a signed document ``signed_root`` is the signed data as signxml
    canonicalized and re-parsed it: the payload root without its signature and
    without unsigned comments. Without a signature (mode ``none``, or
    ``optional`` and unsigned) it is the input root and the other fields are
    empty (``algorithm`` is ``"none"``).
    """

    signed_root: etree._Element
    signer_subject: str
    certificate_sha256: str
    algorithm: str
    # SHA-256 of the exact bytes the signature covers (the canonical root without the
    # signature): with the message id, the replay key of bad-inputs G47. Empty if unsigned.
    signed_sha256: str = ""

    @property
    def signed(self) -> bool:
        return bool(self.certificate_sha256)


@dataclass(frozen=True)
class _Shape:
    """What the (still unverified) SignedInfo declares, after the shape checks."""

    method: str  # policy name
    c14n: str  # the reference's canonicalization URI
    inclusive_prefixes: tuple[str, ...] | None


def verify(root: etree._Element, policy: SignaturePolicy, now: dt.datetime) -> Verified:
    """Verify the portal signature of ``root`` under ``policy`` at ``now``.

    ``root`` is the payload root from :func:`hub.core.xmlsafe.parse`. Raises
    :class:`Rejection` with a fixed reason and a location; returns
    :class:`Verified`, whose ``signed_root`` is the only tree to continue with.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if policy.mode == "none":
        return _unsigned(root)
    signatures = list(root.iter(f"{_DS}Signature"))
    if not signatures:
        if policy.mode == "required":
            raise Rejection(Reason.SIG_MISSING, SIGNATURE)
        return _unsigned(root)
    signature = signatures[0]
    if len(signatures) > 1 or signature.getparent() is not root:
        raise Rejection(Reason.SIG_LOCATION, SIGNATURE)
    _check_unique_ids(root)
    shape = _check_shape(root, signature, policy)
    leaf, _ = _trusted_signer(signature, shape.method, policy, now)
    result = _verify_cryptography(root, signature, leaf, policy, now)
    _check_signed_is_root(root, signature, shape, result)
    assert result.signed_xml is not None  # checked by _check_signed_is_root  # noqa: S101
    return Verified(
        signed_root=result.signed_xml,
        signer_subject=leaf.subject.rfc4514_string(),
        certificate_sha256=hashlib.sha256(_der(leaf)).hexdigest(),
        algorithm=shape.method,
        signed_sha256=hashlib.sha256(result.signed_data).hexdigest(),
    )


def _unsigned(root: etree._Element) -> Verified:
    return Verified(root, "", "", "none")


# -- document-level checks ----------------------------------------------------------------


def _elements(node: etree._Element) -> Iterator[etree._Element]:
    return (e for e in node.iter() if isinstance(e.tag, str))


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _ids(element: etree._Element) -> Iterator[tuple[str, str]]:
    """(local name, value) of the id-like attributes of one element, in any namespace."""
    for name, value in element.attrib.items():
        local = _local(str(name))
        if local in _ID_NAMES:
            yield local, str(value)


def _check_unique_ids(root: etree._Element) -> None:
    """No id-like attribute value twice: signxml resolves ``#x`` by the first name that matches."""
    seen: set[str] = set()
    for element in _elements(root):
        for local, value in _ids(element):
            if value in seen:
                raise Rejection(Reason.SIG_AMBIGUOUS, f"@{local}")
            seen.add(value)


def _root_ids(root: etree._Element) -> set[str]:
    return {value for _, value in _ids(root)}


def _one(parent: etree._Element, tag: str, reason: Reason, where: str) -> etree._Element:
    found = [child for child in parent if child.tag == tag]
    if len(found) != 1:
        raise Rejection(reason, where)
    return found[0]


def _children(element: etree._Element) -> list[etree._Element]:
    return [child for child in element if isinstance(child.tag, str)]


def _signed_info(
    signature: etree._Element, policy: SignaturePolicy, *, only_known_children: bool = False
) -> tuple[etree._Element, str, list[etree._Element]]:
    """SignedInfo's CanonicalizationMethod, the allow-listed signature method and References.

    Checked in this order: one SignedInfo and one SignatureValue, no unknown child of
    SignedInfo (``only_known_children``), the canonicalization, the signature method.
    """
    signed_info = _one(signature, f"{_DS}SignedInfo", Reason.SIG_INVALID, SIGNED_INFO)
    _one(signature, f"{_DS}SignatureValue", Reason.SIG_INVALID, SIGNATURE_VALUE)
    if only_known_children and any(
        child.tag not in _SIGNED_INFO_CHILDREN for child in _children(signed_info)
    ):
        raise Rejection(Reason.SIG_INVALID, SIGNED_INFO)
    c14n = _one(signed_info, f"{_DS}CanonicalizationMethod", Reason.SIG_INVALID, C14N_METHOD)
    _check_c14n(c14n, C14N_METHOD)
    method = _one(signed_info, f"{_DS}SignatureMethod", Reason.SIG_INVALID, SIGNATURE_METHOD)
    name = _METHOD_BY_URI.get(method.get("Algorithm", ""))
    # Any child of SignatureMethod (HMACOutputLength above all) is refused.
    if name is None or name not in policy.signature_methods or _children(method):
        raise Rejection(Reason.SIG_ALG, SIGNATURE_METHOD)
    return c14n, name, [child for child in signed_info if child.tag == f"{_DS}Reference"]


def _check_shape(
    root: etree._Element, signature: etree._Element, policy: SignaturePolicy
) -> _Shape:
    children = _children(signature)
    if any(child.tag == f"{_DS}Object" for child in children):
        # Unsigned content inside the signature: the classic place to hide a signed original.
        raise Rejection(Reason.SIG_WRAPPING, OBJECT)
    _, name, references = _signed_info(signature, policy)
    if len(references) != 1:
        raise Rejection(Reason.SIG_REF, REFERENCE)
    reference = references[0]
    digest = _one(reference, f"{_DS}DigestMethod", Reason.SIG_INVALID, DIGEST_METHOD)
    digest_name = _DIGEST_BY_URI.get(digest.get("Algorithm", ""))
    if digest_name is None or digest_name not in policy.digest_methods or _children(digest):
        raise Rejection(Reason.SIG_ALG, DIGEST_METHOD)
    _check_uri(root, reference.get("URI"))
    c14n_uri, prefixes = _transforms(reference)
    return _Shape(name, c14n_uri, prefixes)


def _check_c14n(element: etree._Element, where: str) -> None:
    algorithm = element.get("Algorithm", "")
    if algorithm not in _C14N_URIS:
        raise Rejection(Reason.SIG_ALG, where)
    extra = _children(element)
    allowed = f"{{{EXC_C14N}}}InclusiveNamespaces" if algorithm.startswith(EXC_C14N) else None
    if len(extra) > 1 or any(child.tag != allowed for child in extra):
        raise Rejection(Reason.SIG_ALG, where)


def _check_uri(root: etree._Element, uri: str | None) -> None:
    if uri is None:
        raise Rejection(Reason.SIG_REF, REFERENCE_URI)
    if uri == "":
        return
    fragment = uri[1:] if uri.startswith("#") else None
    if not fragment or "(" in fragment or "/" in fragment:
        # External (http:, file:, relative), XPointer or an empty fragment: never dereferenced.
        raise Rejection(Reason.SIG_REF, REFERENCE_URI)
    if fragment in _root_ids(root):
        return
    for element in _elements(root):
        if any(value == fragment for _, value in _ids(element)):
            # The reference signs some other element than the payload root.
            raise Rejection(Reason.SIG_WRAPPING, REFERENCE_URI)
    raise Rejection(Reason.SIG_REF, REFERENCE_URI)


def _transforms(reference: etree._Element) -> tuple[str, tuple[str, ...] | None]:
    """Exactly the enveloped-signature transform, optionally followed by one c14n transform."""
    transforms_parent = [c for c in reference if c.tag == f"{_DS}Transforms"]
    if len(transforms_parent) != 1:
        raise Rejection(Reason.SIG_REF, TRANSFORMS)
    transforms = _children(transforms_parent[0])
    if any(t.tag != f"{_DS}Transform" for t in transforms):
        raise Rejection(Reason.SIG_ALG, TRANSFORMS)
    if not transforms or transforms[0].get("Algorithm") != ENVELOPED or _children(transforms[0]):
        raise Rejection(Reason.SIG_REF, TRANSFORMS)
    rest = transforms[1:]
    if len(rest) > 1:
        raise Rejection(Reason.SIG_ALG, TRANSFORMS)
    if not rest:
        return _DEFAULT_REFERENCE_C14N, None
    _check_c14n(rest[0], TRANSFORMS)
    algorithm = rest[0].get("Algorithm", "")
    prefixes = [c.get("PrefixList") for c in rest[0]]
    inclusive = tuple(prefixes[0].split()) if prefixes and prefixes[0] else None
    return algorithm, inclusive


# -- KeyInfo -------------------------------------------------------------------------------


def _keyinfo_certificates(
    signature: etree._Element, policy: SignaturePolicy
) -> list[x509.Certificate]:
    """The certificates of KeyInfo/X509Data, the signer's first; bounded before decoding."""
    texts = _certificate_texts(signature, policy)
    certificates = []
    for text in texts:
        # Base64 of the DER plus line breaks: bound the text before decoding it.
        if len(text) > 2 * policy.max_certificate_bytes:
            raise Rejection(Reason.SIZE, CERTIFICATES)
        der = _b64(text, CERTIFICATES)
        if len(der) > policy.max_certificate_bytes:
            raise Rejection(Reason.SIZE, CERTIFICATES)
        try:
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise Rejection(Reason.SIG_KEYINFO, CERTIFICATES) from None
    return certificates


def _certificate_texts(signature: etree._Element, policy: SignaturePolicy) -> list[str]:
    key_info = [child for child in signature if child.tag == f"{_DS}KeyInfo"]
    if len(key_info) != 1:
        raise Rejection(Reason.SIG_KEYINFO, KEY_INFO)
    if sum(1 for _ in _elements(key_info[0])) > policy.max_certificates + _KEYINFO_SLACK:
        raise Rejection(Reason.SIZE, KEY_INFO)
    texts: list[str] = []
    for child in _children(key_info[0]):
        if child.tag not in _KEYINFO_CHILDREN:
            # RetrievalMethod, SPKIData, PGPData, ...: never followed, never guessed.
            raise Rejection(Reason.SIG_KEYINFO, KEY_INFO)
        if child.tag == f"{_DS}X509Data":
            texts.extend(c.text or "" for c in child if c.tag == f"{_DS}X509Certificate")
    if len(texts) > policy.max_certificates:
        raise Rejection(Reason.SIZE, CERTIFICATES)
    if not texts:
        raise Rejection(Reason.SIG_KEYINFO, CERTIFICATES)
    return texts


def _b64(text: str, where: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Rejection(Reason.SIG_KEYINFO, where) from None


def _trusted_signer(
    signature: etree._Element, method: str, policy: SignaturePolicy, now: dt.datetime
) -> tuple[x509.Certificate, PublicKey]:
    """The signer's certificate and key, once KeyInfo, key sizes, the trusted path, the
    signer's key usage and algorithm, validity and revocation have passed."""
    certificates = _keyinfo_certificates(signature, policy)
    leaf, key = certificates[0], _public_key(certificates[0])
    _check_key_values(signature, key)
    for extra in certificates[1:]:
        _check_key_size(_public_key(extra), policy)
    path = _trusted_path(leaf, certificates[1:], policy)
    _check_signer(leaf, key, method, policy)
    _check_path(path, now)
    if policy.crls:
        _check_revocation(path, policy.crls, now)
    return leaf, key


def _public_key(cert: x509.Certificate) -> PublicKey:
    try:
        key = cert.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise Rejection(Reason.CERT_POLICY, CERTIFICATES) from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        # DSA, EdDSA, ...: no allowed signature method fits.
        raise Rejection(Reason.SIG_ALG, CERTIFICATES)
    return key


def _check_key_values(signature: etree._Element, key: PublicKey) -> None:
    """A KeyValue or DEREncodedKeyValue next to X509Data must be the certificate's key."""
    key_info = signature.find(f"{_DS}KeyInfo")
    assert key_info is not None  # checked by _keyinfo_certificates  # noqa: S101
    spki = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for child in _children(key_info):
        if child.tag == f"{_DSIG11}DEREncodedKeyValue":
            if _b64(child.text or "", KEY_VALUE) != spki:
                raise Rejection(Reason.SIG_KEYINFO, KEY_VALUE)
        elif child.tag == f"{_DS}KeyValue" and not _key_value_matches(child, key):
            raise Rejection(Reason.SIG_KEYINFO, KEY_VALUE)


def _key_value_matches(key_value: etree._Element, key: PublicKey) -> bool:
    children = _children(key_value)
    if len(children) != 1:
        return False
    value = children[0]
    if value.tag == f"{_DS}RSAKeyValue" and isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        modulus = _b64(value.findtext(f"{_DS}Modulus") or "", KEY_VALUE)
        exponent = _b64(value.findtext(f"{_DS}Exponent") or "", KEY_VALUE)
        return (int.from_bytes(modulus, "big"), int.from_bytes(exponent, "big")) == (
            numbers.n,
            numbers.e,
        )
    if value.tag == f"{_DSIG11}ECKeyValue" and isinstance(key, ec.EllipticCurvePublicKey):
        curve = value.find(f"{_DSIG11}NamedCurve")
        point = _b64(value.findtext(f"{_DSIG11}PublicKey") or "", KEY_VALUE)
        expected = key.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        oid = EC_CURVES.get(key.curve.name)
        return curve is not None and curve.get("URI") == f"urn:oid:{oid}" and point == expected
    return False


# -- trust and certificate policy -------------------------------------------------------------


def _extension(cert: x509.Certificate, kind: type[_E]) -> _E | None:
    try:
        return cert.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None
    except ValueError:  # malformed or duplicate extensions
        raise Rejection(Reason.CERT_POLICY, CERTIFICATES) from None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except (x509.ExtensionNotFound, ValueError):
        return False
    return constraints.ca


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _issued_by(child: x509.Certificate, issuer: x509.Certificate, below: int) -> bool:
    """``issuer`` is a CA that signed ``child``; ``below`` intermediates sit under ``issuer``."""
    if child.issuer != issuer.subject:
        return False
    try:
        constraints = _extension(issuer, x509.BasicConstraints)
        usage = _extension(issuer, x509.KeyUsage)
    except Rejection:
        return False
    may_issue = (
        constraints is not None
        and constraints.ca
        and (constraints.path_length is None or below <= constraints.path_length)
        and (usage is None or usage.key_cert_sign)
    )
    if not may_issue:
        return False
    try:
        child.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _trusted_path(
    leaf: x509.Certificate, extra: list[x509.Certificate], policy: SignaturePolicy
) -> list[x509.Certificate]:
    """The validated path from the signer to a trust anchor, or ``[leaf]`` if it is pinned."""
    path = [leaf]
    too_deep = False
    if policy.ca_bundle:
        current = leaf
        for _ in range(policy.max_chain_depth):
            below = len(path) - 1
            anchor = next((a for a in policy.ca_bundle if _issued_by(current, a, below)), None)
            if anchor is not None:
                return [*path, anchor]
            used = {_der(c) for c in path}
            issuer = next(
                (c for c in extra if _der(c) not in used and _issued_by(current, c, below)), None
            )
            if issuer is None:
                break
            path.append(issuer)
            current = issuer
        else:
            too_deep = True
    if policy.is_pinned(leaf):
        return [leaf]
    if too_deep:
        raise Rejection(Reason.CERT_POLICY, CERTIFICATES)
    raise Rejection(Reason.SIG_TRUST, CERTIFICATES)


def _check_key_size(key: PublicKey, policy: SignaturePolicy) -> None:
    if isinstance(key, rsa.RSAPublicKey):
        if not policy.min_rsa_bits <= key.key_size <= policy.max_rsa_bits:
            raise Rejection(Reason.CERT_POLICY, CERTIFICATES)
    elif key.curve.name not in policy.ec_curves:
        raise Rejection(Reason.CERT_POLICY, CERTIFICATES)


def _check_signer(
    leaf: x509.Certificate, key: PublicKey, method: str, policy: SignaturePolicy
) -> None:
    if method.startswith("ecdsa") != isinstance(key, ec.EllipticCurvePublicKey):
        raise Rejection(Reason.SIG_ALG, SIGNATURE_METHOD)
    _check_key_size(key, policy)
    where = _chain_path(0)
    constraints = _extension(leaf, x509.BasicConstraints)
    if constraints is not None and constraints.ca:
        raise Rejection(Reason.CERT_POLICY, where)
    usage = _extension(leaf, x509.KeyUsage)
    if usage is None or not (usage.digital_signature or usage.content_commitment):
        raise Rejection(Reason.CERT_POLICY, where)
    if policy.eku_oids:
        ekus = _extension(leaf, x509.ExtendedKeyUsage)
        if ekus is None or not {oid.dotted_string for oid in ekus} & policy.eku_oids:
            raise Rejection(Reason.CERT_POLICY, where)
    if policy.policy_oids:
        policies = _extension(leaf, x509.CertificatePolicies)
        found = {p.policy_identifier.dotted_string for p in policies or ()}
        if not found & policy.policy_oids:
            raise Rejection(Reason.CERT_POLICY, where)


def _check_path(path: list[x509.Certificate], now: dt.datetime) -> None:
    """Every certificate below the anchor: strong hash, no unknown critical extension; all valid."""
    for index, cert in enumerate(path):
        where = _chain_path(index)
        if index < len(path) - 1 or len(path) == 1:
            try:
                algorithm = cert.signature_hash_algorithm
            except UnsupportedAlgorithm:
                raise Rejection(Reason.CERT_POLICY, where) from None
            if algorithm is None or algorithm.name not in _CERT_HASHES:
                raise Rejection(Reason.CERT_POLICY, where)
            try:
                critical = {e.oid for e in cert.extensions if e.critical}
            except ValueError:
                raise Rejection(Reason.CERT_POLICY, where) from None
            if critical - _KNOWN_CRITICAL:
                raise Rejection(Reason.CERT_POLICY, where)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise Rejection(Reason.CERT_VALIDITY, where)


def _check_revocation(
    path: list[x509.Certificate],
    crls: tuple[x509.CertificateRevocationList, ...],
    now: dt.datetime,
) -> None:
    """Each certificate below the anchor needs a current CRL signed by its issuer in the path."""
    for index in range(len(path) - 1):
        cert, issuer = path[index], path[index + 1]
        where = _chain_path(index)
        usable = [crl for crl in crls if _crl_from(crl, issuer)]
        if any(crl.get_revoked_certificate_by_serial_number(cert.serial_number) for crl in usable):
            raise Rejection(Reason.CERT_REVOKED, where)
        fresh = [
            crl
            for crl in usable
            if crl.last_update_utc <= now
            and crl.next_update_utc is not None
            and now < crl.next_update_utc
        ]
        if not fresh:
            raise Rejection(Reason.CERT_STATUS_UNKNOWN, where)


def _crl_from(crl: x509.CertificateRevocationList, issuer: x509.Certificate) -> bool:
    """A complete CRL (not a delta, not partitioned) whose signature is the issuer's."""
    if crl.issuer != issuer.subject:
        return False
    try:
        extensions = {e.oid for e in crl.extensions}
        usage = _extension(issuer, x509.KeyUsage)
        public_key = issuer.public_key()
    except (ValueError, UnsupportedAlgorithm, Rejection):
        return False
    usable = (
        not extensions & {ExtensionOID.DELTA_CRL_INDICATOR, ExtensionOID.ISSUING_DISTRIBUTION_POINT}
        and (usage is None or usage.crl_sign)
        and isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey)
    )
    if not usable:
        return False
    try:
        return crl.is_signature_valid(public_key)  # type: ignore[arg-type] # narrowed above
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False


# -- cryptography and the signed data --------------------------------------------------------


class _InPlaceVerifier(XMLVerifier):
    """signxml's verifier, with ``SignedInfo`` canonicalized where it stands in the document.

    signxml canonicalizes ``SignedInfo`` in a copy of the signature parsed on its own,
    and libxml2 leaves an element's ancestors' ``xml:`` attributes out of its canonical
    form. Under inclusive C14N, Canonical XML 1.0 and 1.1 (section 2.4) give a subset's
    apex the ``xml:`` attributes of its ancestors, so a signature made to the
    specification over a payload root with ``xml:lang`` was refused. ``SignedInfo`` is
    canonicalized by :func:`_canonical` instead, as for OSCI signatures; everything else
    (references, digests, the signature value) stays signxml's.
    """

    def __init__(self, signed_info: etree._Element) -> None:
        super().__init__()
        self._signed_info_in_place = signed_info

    def _c14n(
        self,
        nodes: Any,
        algorithm: CanonicalizationMethod,
        inclusive_ns_prefixes: list[str] | None = None,
    ) -> bytes:
        # signxml calls this for SignedInfo, a child of its own copy of the Signature, and for
        # each reference's data, a copy of the payload root: the root of a document of its own
        # (even where the root is itself named ds:SignedInfo).
        parent = nodes.getparent() if isinstance(nodes, etree._Element) else None  # noqa: SLF001 - lxml's element type
        if (
            parent is not None
            and parent.getparent() is None
            and parent.tag == f"{_DS}Signature"
            and nodes.tag == f"{_DS}SignedInfo"
        ):
            prefixes = tuple(inclusive_ns_prefixes) if inclusive_ns_prefixes else None
            return _canonical(self._signed_info_in_place, algorithm.value, prefixes, SIGNED_INFO)
        canonical: bytes = super()._c14n(nodes, algorithm, inclusive_ns_prefixes)
        return canonical


def _verify_cryptography(
    root: etree._Element,
    signature: etree._Element,
    leaf: x509.Certificate,
    policy: SignaturePolicy,
    now: dt.datetime,
) -> VerifyResult:
    config = SignatureConfiguration(
        require_x509=True,
        location="./",
        expect_references=1,
        signature_methods=frozenset(SIGNATURE_METHODS[m] for m in policy.signature_methods),
        digest_algorithms=frozenset(DIGEST_METHODS[d] for d in policy.digest_methods),
        # KeyValue/DEREncodedKeyValue were compared with the certificate above
        # (_check_key_values); signxml's own comparison raises NotImplementedError for
        # RSA-PSS, which would turn a consistent KeyInfo into SIG_INVALID.
        ignore_ambiguous_key_info=True,
        verification_time=now,
    )
    verifier = _InPlaceVerifier(
        _one(signature, f"{_DS}SignedInfo", Reason.SIG_INVALID, SIGNED_INFO)
    )
    try:
        # x509_cert: the certificate trusted above; signxml never consults the web PKI then.
        result = verifier.verify(root, x509_cert=leaf, expect_config=config)
    except Rejection:
        raise  # the hub's own canonicalization of SignedInfo refused it, with its location
    except InvalidDigest:
        raise Rejection(Reason.SIG_DIGEST, REFERENCE) from None
    except InvalidCertificate:
        raise Rejection(Reason.CERT_VALIDITY, _chain_path(0)) from None
    except Exception:  # noqa: BLE001 - signxml raises many types; all mean "not valid"; never echo them
        raise Rejection(Reason.SIG_INVALID, SIGNATURE_VALUE) from None
    if not isinstance(result, VerifyResult):  # only with expect_references != 1
        raise Rejection(Reason.SIG_REF, REFERENCE)
    return result


def _check_signed_is_root(
    root: etree._Element, signature: etree._Element, shape: _Shape, result: VerifyResult
) -> None:
    """What signxml verified must be the root without its signature, byte for byte."""
    if result.signed_xml is None or result.signed_xml.tag != root.tag:
        raise Rejection(Reason.SIG_WRAPPING, ROOT)
    if result.signed_data != _canonical_without(root, signature, shape):
        raise Rejection(Reason.SIG_WRAPPING, ROOT)


def _canonical_without(root: etree._Element, signature: etree._Element, shape: _Shape) -> bytes:
    position = list(root).index(signature)
    clone = copy.deepcopy(root)
    removed = clone[position]
    # Keep the signature's tail text, as the enveloped-signature transform does.
    if removed.tail:
        previous = removed.getprevious()
        if previous is not None:
            previous.tail = (previous.tail or "") + removed.tail
        else:
            clone.text = (clone.text or "") + removed.tail
    clone.remove(removed)
    return etree.tostring(
        clone,
        method="c14n",
        exclusive=shape.c14n.startswith(EXC_C14N),
        with_comments=shape.c14n.endswith("#WithComments"),
        inclusive_ns_prefixes=list(shape.inclusive_prefixes) if shape.inclusive_prefixes else None,
    )


# -- OSCI container signatures (detached) ------------------------------------------------------
#
# The OSCI library signs a content container with a detached XMLDSig signature inside it, one
# reference per Content ("#<Id>") and per MIME attachment ("cid:<Content-ID>"); a signature
# directly in the ContentPackage signs the containers it names. verify_osci applies a portal's
# policy to them: the same location-free checks as above (shape, KeyInfo, trust, validity,
# revocation), the signature value over SignedInfo, every reference's digest, and that the
# payload the pipeline reads is covered (bad-inputs E.33). Nothing is fetched: "#" references
# resolve inside the package, "cid:" references to the parts the unpacker decoded.

MAX_REFERENCES = 64  # references in one detached signature (a container has at most 64 Contents)
_XMLDSIG_BASE = "http://www.w3.org/2000/09/xmldsig#"
# XMLDSig's conversion of a node-set to octets without a c14n transform: Canonical XML 1.0.
_DEFAULT_DETACHED_C14N = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
_SIGNATURE_CHILDREN = frozenset({f"{_DS}SignedInfo", f"{_DS}SignatureValue", f"{_DS}KeyInfo"})
_SIGNED_INFO_CHILDREN = frozenset(
    {f"{_DS}CanonicalizationMethod", f"{_DS}SignatureMethod", f"{_DS}Reference"}
)
_REFERENCE_CHILDREN = frozenset({f"{_DS}Transforms", f"{_DS}DigestMethod", f"{_DS}DigestValue"})
_HASH_NAMES = {  # policy digest names -> hashlib names
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sha3-256": "sha3_256",
    "sha3-384": "sha3_384",
    "sha3-512": "sha3_512",
}
_METHOD_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


@dataclass(frozen=True)
class _DetachedReference:
    where: str  # Signature/SignedInfo/Reference[n]
    uri: str
    digest: str  # policy name of the DigestMethod
    value: bytes  # the DigestValue
    target: etree._Element | None  # the element a "#" reference names
    part: bytes | None  # the part a "cid:" reference names
    c14n: str  # canonicalization of the target ("#" references)
    prefixes: tuple[str, ...] | None


@dataclass(frozen=True)
class _DetachedShape:
    site: OsciSignature
    method: str  # policy name of the SignatureMethod
    c14n: str  # of SignedInfo
    prefixes: tuple[str, ...] | None
    references: tuple[_DetachedReference, ...]


class _Ids:
    """Id-like attribute values to elements, per document tree, built once per tree."""

    def __init__(self) -> None:
        self._trees: dict[etree._Element, dict[str, list[etree._Element]]] = {}

    def find(self, element: etree._Element, fragment: str) -> list[etree._Element]:
        root = element.getroottree().getroot()
        index = self._trees.get(root)
        if index is None:
            index = self._trees[root] = {}
            for node in _elements(root):
                for _, value in _ids(node):
                    index.setdefault(value, []).append(node)
        return index.get(fragment, [])


def verify_osci(
    unpacked: OsciUnpacked,
    payload: bytes,
    root: etree._Element,
    policy: SignaturePolicy,
    now: dt.datetime,
) -> Verified:
    """Verify the author signatures on an OSCI package's containers under ``policy`` at ``now``.

    ``unpacked`` is what :func:`hub.core.transport.osci.unpack` reported, ``payload`` the
    payload bytes the pipeline reads and ``root`` their parsed tree. The signatures *on the
    payload's path* are those in a container around the payload
    (``payload_container_ids``) and those in the ContentPackage that name such a container
    or the payload Content. Every one of them must verify under the policy, and at least one
    must cover the payload's bytes: a ``#`` reference to the payload's ``Base64Content``, its
    ``Content`` or a container around it (inline data), or ``cid:`` of the payload's MIME
    part. Signatures elsewhere (on other containers only) are neither verified nor counted.

    None on the payload's path: ``SIG_MISSING`` when ``required``, unsigned when
    ``optional``. On the path, but none covers the payload: ``SIG_WRAPPING``. Rejection
    paths start at the signature's location in the package
    (``ContentPackage/ContentContainer[1]/Signature[1]/SignedInfo/Reference[2]``).
    Returns :class:`Verified` with ``signed_root`` = ``root`` (the payload is the data the
    signature covers, checked byte for byte) and the covering signature's signer.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if policy.mode == "none":
        return _unsigned(root)
    ids = _Ids()
    anchor = unpacked.payload_element
    on_path = [s for s in unpacked.signature_sites if _on_payload_path(s, unpacked, anchor, ids)]
    if not on_path:
        if policy.mode == "required":
            raise Rejection(Reason.SIG_MISSING, SIGNATURE)
        return _unsigned(root)
    shapes = [_at(site, _detached_shape, site, unpacked, policy, ids) for site in on_path]
    covering = next((shape for shape in shapes if _covering(shape, unpacked, anchor)), None)
    if covering is None:
        # Signed, but not the payload: the signed original may sit elsewhere (E.33).
        raise Rejection(Reason.SIG_WRAPPING, f"{on_path[0].path}/SignedInfo/Reference/@URI")
    # Digests by what they cover: a signature may name one large container many times, and
    # several signatures the same Contents; each is canonicalized and hashed once.
    digests: dict[tuple[Any, ...], bytes] = {}
    leaves = {
        id(shape): _at(shape.site, _verify_detached, shape, policy, now, digests)
        for shape in shapes
    }
    _check_signed_payload(covering, unpacked, payload)
    leaf = leaves[id(covering)]
    return Verified(
        signed_root=root,
        signer_subject=leaf.subject.rfc4514_string(),
        certificate_sha256=hashlib.sha256(_der(leaf)).hexdigest(),
        algorithm=covering.method,
        signed_sha256=hashlib.sha256(payload).hexdigest(),
    )


def _at(site: OsciSignature, check: Callable[..., _R], *args: Any) -> _R:
    """Run ``check``; a rejection's path is moved under the signature's location."""
    try:
        return check(*args)
    except Rejection as rejection:
        where = rejection.path or SIGNATURE
        if where == SIGNATURE or where.startswith(f"{SIGNATURE}/"):
            where = site.path + where.removeprefix(SIGNATURE)
        else:  # chain[i], @Id
            where = f"{site.path}/{where}"
        raise Rejection(rejection.reason, where) from None


def _contains(outer: etree._Element, inner: etree._Element) -> bool:
    """``outer`` is ``inner`` or one of its ancestors (lxml keeps one proxy per live node)."""
    return outer is inner or any(ancestor is outer for ancestor in inner.iterancestors())


def _on_payload_path(
    site: OsciSignature,
    unpacked: OsciUnpacked,
    anchor: etree._Element | None,
    ids: _Ids,
) -> bool:
    if site.container_id is not None:
        return site.container_id in unpacked.payload_container_ids
    if anchor is None:
        return False
    for uri in site.references:
        if uri.startswith("#"):
            found = ids.find(site.element, uri[1:])
            if len(found) == 1 and _contains(found[0], anchor):
                return True
    return False


def _covering(shape: _DetachedShape, unpacked: OsciUnpacked, anchor: etree._Element | None) -> bool:
    """Whether one of the signature's references covers the payload's bytes."""
    if unpacked.payload_part_id is not None:
        return any(
            ref.part is not None and unpacked.part_id_of(ref.uri) == unpacked.payload_part_id
            for ref in shape.references
        )
    return anchor is not None and any(
        ref.target is not None and _contains(ref.target, anchor) for ref in shape.references
    )


def _detached_shape(
    site: OsciSignature, unpacked: OsciUnpacked, policy: SignaturePolicy, ids: _Ids
) -> _DetachedShape:
    """Stages 2 and 3 for a detached signature: ids, SignedInfo, references (no crypto)."""
    signature = site.element
    children = _children(signature)
    if any(child.tag == f"{_DS}Object" for child in children):
        raise Rejection(Reason.SIG_WRAPPING, OBJECT)
    if any(child.tag not in _SIGNATURE_CHILDREN for child in children) or _has_text(signature):
        raise Rejection(Reason.SIG_INVALID, SIGNATURE)
    document = signature.getroottree().getroot()
    _check_unique_ids(document)
    c14n, name, references = _signed_info(signature, policy, only_known_children=True)
    if not 1 <= len(references) <= MAX_REFERENCES:
        raise Rejection(Reason.SIG_REF, REFERENCE)
    # "#" references must name something inside the package (or the decrypted container the
    # signature sits in), never e.g. a SOAP header around it.
    scope = unpacked.package if document is unpacked.package.getroottree().getroot() else document
    return _DetachedShape(
        site=site,
        method=name,
        c14n=c14n.get("Algorithm", ""),
        prefixes=_prefix_list(c14n),
        references=tuple(
            _detached_reference(reference, f"{REFERENCE}[{n}]", scope, unpacked, policy, ids)
            for n, reference in enumerate(references, start=1)
        ),
    )


def _has_text(element: etree._Element) -> bool:
    return bool((element.text or "").strip()) or any(
        (child.tail or "").strip() for child in element
    )


def _prefix_list(c14n: etree._Element) -> tuple[str, ...] | None:
    prefixes = [child.get("PrefixList") for child in c14n]
    return tuple(prefixes[0].split()) if prefixes and prefixes[0] else None


def _detached_reference(
    reference: etree._Element,
    where: str,
    scope: etree._Element,
    unpacked: OsciUnpacked,
    policy: SignaturePolicy,
    ids: _Ids,
) -> _DetachedReference:
    if any(child.tag not in _REFERENCE_CHILDREN for child in _children(reference)):
        raise Rejection(Reason.SIG_INVALID, where)
    digest = _one(reference, f"{_DS}DigestMethod", Reason.SIG_INVALID, f"{where}/DigestMethod")
    digest_name = _DIGEST_BY_URI.get(digest.get("Algorithm", ""))
    if digest_name is None or digest_name not in policy.digest_methods or _children(digest):
        raise Rejection(Reason.SIG_ALG, f"{where}/DigestMethod")
    value_element = _one(reference, f"{_DS}DigestValue", Reason.SIG_INVALID, f"{where}/DigestValue")
    value = _strict_b64(value_element, f"{where}/DigestValue")
    uri = reference.get("URI")
    if uri is None:
        raise Rejection(Reason.SIG_REF, f"{where}/@URI")
    transforms = _reference_transforms(reference, f"{where}/Transforms")
    if uri[:4].lower() == "cid:":
        part = unpacked.referenced_part(uri)
        if part is None:
            raise Rejection(Reason.SIG_REF, f"{where}/@URI")
        # The digest is over the part's bytes, as the OSCI library makes it: no transforms.
        if transforms is not None:
            raise Rejection(Reason.SIG_ALG, f"{where}/Transforms")
        return _DetachedReference(where, uri, digest_name, value, None, part, "", None)
    target = _fragment_target(reference, uri, f"{where}/@URI", scope, ids)
    c14n, prefixes = transforms or (_DEFAULT_DETACHED_C14N, None)
    return _DetachedReference(where, uri, digest_name, value, target, None, c14n, prefixes)


def _fragment_target(
    reference: etree._Element, uri: str, where: str, scope: etree._Element, ids: _Ids
) -> etree._Element:
    """The one element inside ``scope`` a same-document reference ``#<id>`` names."""
    fragment = uri[1:] if uri.startswith("#") else None
    if not fragment or "(" in fragment or "/" in fragment:
        # "", external (http:, file:, relative) or XPointer: never dereferenced.
        raise Rejection(Reason.SIG_REF, where)
    found = ids.find(reference, fragment)
    if len(found) > 1:
        raise Rejection(Reason.SIG_AMBIGUOUS, where)
    if not found:
        raise Rejection(Reason.SIG_REF, where)
    if not _contains(scope, found[0]):
        raise Rejection(Reason.SIG_WRAPPING, where)
    return found[0]


def _reference_transforms(
    reference: etree._Element, where: str
) -> tuple[str, tuple[str, ...] | None] | None:
    """None without Transforms; else exactly one canonicalization transform (nothing else)."""
    parents = [child for child in reference if child.tag == f"{_DS}Transforms"]
    if not parents:
        return None
    transforms = _children(parents[0])
    if len(parents) > 1 or len(transforms) != 1 or transforms[0].tag != f"{_DS}Transform":
        raise Rejection(Reason.SIG_ALG, where)
    _check_c14n(transforms[0], where)  # enveloped-signature, base64, XPath, XSLT: SIG_ALG
    return transforms[0].get("Algorithm", ""), _prefix_list(transforms[0])


def _strict_b64(element: etree._Element, where: str) -> bytes:
    if _children(element):
        raise Rejection(Reason.SIG_INVALID, where)
    try:
        return base64.b64decode("".join((element.text or "").split()), validate=True)
    except (binascii.Error, ValueError):
        raise Rejection(Reason.SIG_INVALID, where) from None


def _verify_detached(
    shape: _DetachedShape,
    policy: SignaturePolicy,
    now: dt.datetime,
    digests: dict[tuple[Any, ...], bytes],
) -> x509.Certificate:
    """Stages 4 to 8 for one detached signature; returns the signer certificate."""
    signature = shape.site.element
    leaf, key = _trusted_signer(signature, shape.method, policy, now)
    _check_signature_value(shape, key)
    for reference in shape.references:
        if _digest(reference, digests) != reference.value:
            raise Rejection(Reason.SIG_DIGEST, reference.where)
    return leaf


def _digest(reference: _DetachedReference, digests: dict[tuple[Any, ...], bytes]) -> bytes:
    """The digest of what ``reference`` names, computed once per target, method and algorithm."""
    key: tuple[Any, ...] = (
        (id(reference.part), reference.digest)
        if reference.part is not None
        else (id(reference.target), reference.c14n, reference.prefixes, reference.digest)
    )
    digest = digests.get(key)
    if digest is None:
        data = _referenced(reference)
        digest = digests[key] = hashlib.new(_HASH_NAMES[reference.digest], data).digest()
    return digest


def _canonical(
    element: etree._Element, algorithm: str, prefixes: tuple[str, ...] | None, where: str
) -> bytes:
    """The canonical form of ``element`` and its descendants as a document subset.

    A tree C14N cannot write (a relative namespace URI) is SIG_INVALID. Inclusive
    C14N gives the subset's apex the ``xml:`` attributes of its ancestors
    (:func:`_inherited_xml_attributes`), which libxml2 leaves out of an element's
    canonical form: they are set on the element for the moment of writing it.
    """
    exclusive = algorithm.startswith(EXC_C14N)
    inherited = {} if exclusive else _inherited_xml_attributes(element, algorithm, where)
    for name, value in inherited.items():
        element.set(name, value)
    try:
        return etree.tostring(
            element,
            method="c14n",
            exclusive=exclusive,
            with_comments=algorithm.endswith("#WithComments"),
            inclusive_ns_prefixes=list(prefixes) if exclusive and prefixes else None,
        )
    except etree.Error:
        raise Rejection(Reason.SIG_INVALID, where) from None
    finally:
        for name in inherited:
            del element.attrib[name]


_XML_ATTRIBUTE = "{http://www.w3.org/XML/1998/namespace}"
# Canonical XML 1.1's "simple inheritable attributes": the only ones it copies to an apex.
_SIMPLE_INHERITABLE = frozenset({f"{_XML_ATTRIBUTE}lang", f"{_XML_ATTRIBUTE}space"})
_XML_BASE = f"{_XML_ATTRIBUTE}base"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"


def _inherited_xml_attributes(
    element: etree._Element, algorithm: str, where: str
) -> dict[str, str]:
    """The ``xml:`` attributes inclusive C14N adds to a subset's apex from its ancestors.

    Canonical XML 1.0 (section 2.4) adds every ``xml:`` attribute the element does not
    carry itself, from the nearest ancestor that does. Canonical XML 1.1 (section 2.4)
    adds only ``xml:lang`` and ``xml:space`` that way (never ``xml:id``), and computes
    ``xml:base`` by joining the ancestors' values; that join is not implemented, so a
    1.1 subset below an ``xml:base`` is refused (SIG_INVALID) rather than verified
    against a form its signer did not make.
    """
    inherited: dict[str, str] = {}
    below_a_base = False
    for ancestor in element.iterancestors():
        attributes: list[tuple[str, str]] = ancestor.items()  # type: ignore[assignment] # lxml-stubs
        for name, value in attributes:
            if not name.startswith(_XML_ATTRIBUTE):
                continue
            below_a_base = below_a_base or name == _XML_BASE
            if name not in inherited and element.get(name) is None:
                inherited[name] = value
    if algorithm.startswith(C14N_11):
        if below_a_base:  # the apex's own xml:base, if any, would be joined with it too
            raise Rejection(Reason.SIG_INVALID, where)
        return {name: value for name, value in inherited.items() if name in _SIMPLE_INHERITABLE}
    return inherited


def _referenced(reference: _DetachedReference) -> bytes:
    if reference.part is not None:
        return reference.part
    assert reference.target is not None  # a "#" reference resolved  # noqa: S101
    return _canonical(reference.target, reference.c14n, reference.prefixes, reference.where)


def _check_signature_value(shape: _DetachedShape, key: PublicKey) -> None:
    signature = shape.site.element
    signed_info = _one(signature, f"{_DS}SignedInfo", Reason.SIG_INVALID, SIGNED_INFO)
    value = _one(signature, f"{_DS}SignatureValue", Reason.SIG_INVALID, SIGNATURE_VALUE)
    raw = _strict_b64(value, SIGNATURE_VALUE)
    data = _canonical(signed_info, shape.c14n, shape.prefixes, SIGNED_INFO)
    algorithm = _METHOD_HASHES[shape.method.rsplit("-", 1)[1]]()
    size = (key.key_size + 7) // 8
    if isinstance(key, ec.EllipticCurvePublicKey) and len(raw) != 2 * size:
        raise Rejection(Reason.SIG_INVALID, SIGNATURE_VALUE)  # XMLDSig ECDSA: r and s, each padded
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            r, s = int.from_bytes(raw[:size], "big"), int.from_bytes(raw[size:], "big")
            key.verify(utils.encode_dss_signature(r, s), data, ec.ECDSA(algorithm))
        elif shape.method.startswith("rsa-pss"):
            pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
            key.verify(raw, data, pss, algorithm)
        else:
            key.verify(raw, data, padding.PKCS1v15(), algorithm)
    except (InvalidSignature, ValueError):
        raise Rejection(Reason.SIG_INVALID, SIGNATURE_VALUE) from None


def _check_signed_payload(covering: _DetachedShape, unpacked: OsciUnpacked, payload: bytes) -> None:
    """The payload the pipeline reads is, byte for byte, the data the signature covers (E.33)."""
    from hub.core.transport._codec import b64decode_strict  # noqa: PLC0415 - OSCI only

    signed: bytes | None
    if unpacked.payload_part_id is not None:
        signed = next(
            ref.part
            for ref in covering.references
            if ref.part is not None and unpacked.part_id_of(ref.uri) == unpacked.payload_part_id
        )
    else:
        anchor = unpacked.payload_element
        if anchor is None or len(anchor):
            raise Rejection(Reason.SIG_WRAPPING, ROOT)
        signed = b64decode_strict(anchor.text or "")
    if signed is None or signed != payload:
        raise Rejection(Reason.SIG_WRAPPING, ROOT)
