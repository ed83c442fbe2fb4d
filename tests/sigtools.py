"""Test-only helpers for XML signatures: a small PKI, signing, re-signing and a network canary.

Nothing here belongs in ``hub``: it makes keys, signs with any algorithm (SHA-1,
DSA and HMAC included, to build attacks) and re-signs a modified ``SignedInfo``
so that an attack document carries a *valid* signature value and only the
hub's policy can refuse it.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import datetime as dt
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.asymmetric import dsa, ec, padding, rsa, utils
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from hub.core import xmlsafe
from tests import canary

NOW = dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=dt.UTC)
DS = "http://www.w3.org/2000/09/xmldsig#"
_DS = f"{{{DS}}}"
EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0
NSMAP = {"ds": DS}

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey

METHODS: dict[str, SignatureMethod] = {
    "rsa-pss-sha256": SignatureMethod.SHA256_RSA_MGF1,
    "rsa-pss-sha384": SignatureMethod.SHA384_RSA_MGF1,
    "rsa-pss-sha512": SignatureMethod.SHA512_RSA_MGF1,
    "rsa-sha256": SignatureMethod.RSA_SHA256,
    "rsa-sha384": SignatureMethod.RSA_SHA384,
    "rsa-sha512": SignatureMethod.RSA_SHA512,
    "ecdsa-sha256": SignatureMethod.ECDSA_SHA256,
    "ecdsa-sha384": SignatureMethod.ECDSA_SHA384,
    "ecdsa-sha512": SignatureMethod.ECDSA_SHA512,
    "dsa-sha256": SignatureMethod.DSA_SHA256,
    "hmac-sha256": SignatureMethod.HMAC_SHA256,
    "rsa-sha1": SignatureMethod.RSA_SHA1,
}
DIGESTS: dict[str, DigestAlgorithm] = {
    "sha1": DigestAlgorithm.SHA1,
    "sha256": DigestAlgorithm.SHA256,
    "sha384": DigestAlgorithm.SHA384,
    "sha512": DigestAlgorithm.SHA512,
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


# -- certificates --------------------------------------------------------------------------


def name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sozialhub tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _usage(kind: str) -> x509.KeyUsage:
    flags = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    flags.update(
        {
            "sign": {"digital_signature": True, "content_commitment": True},
            "nonrepudiation": {"content_commitment": True},
            "ca": {"key_cert_sign": True, "crl_sign": True},
            "encipher": {"key_encipherment": True},
        }[kind]
    )
    return x509.KeyUsage(**flags)


@dataclass(frozen=True)
class Party:
    """A key and the certificate for it."""

    key: Any
    cert: x509.Certificate


def issue(
    public_key: Any,
    common_name: str,
    issuer: Party | None = None,
    *,
    self_key: Any = None,
    ca: bool = False,
    path_length: int | None = None,
    usage: str | None = "sign",
    ekus: Sequence[x509.ObjectIdentifier] = (),
    policies: Sequence[str] = (),
    not_before: dt.datetime = NOW - dt.timedelta(days=30),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
    serial: int | None = None,
) -> x509.Certificate:
    """A certificate for ``public_key``; self-signed with ``self_key`` when ``issuer`` is None."""
    signing_key = self_key if issuer is None else issuer.key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name(common_name))
        .issuer_name(name(common_name) if issuer is None else issuer.cert.subject)
        .public_key(public_key)
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(True, path_length), critical=True)
    if usage is not None:
        builder = builder.add_extension(_usage("ca" if ca else usage), critical=True)
    if ekus:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(ekus)), critical=False)
    if policies:
        builder = builder.add_extension(
            x509.CertificatePolicies(
                [x509.PolicyInformation(x509.ObjectIdentifier(p), None) for p in policies]
            ),
            critical=False,
        )
    return builder.sign(signing_key, hashes.SHA256())


def ca(common_name: str, issuer: Party | None = None, path_length: int | None = None) -> Party:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(
        key.public_key(), common_name, issuer, self_key=key, ca=True, path_length=path_length
    )
    return Party(key, cert)


def crl(
    issuer: Party,
    revoked: Iterable[int] = (),
    last_update: dt.datetime = NOW - dt.timedelta(hours=1),
    next_update: dt.datetime = NOW + dt.timedelta(days=7),
) -> x509.CertificateRevocationList:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(last_update)
        .next_update(next_update)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(serial)
            .revocation_date(last_update - dt.timedelta(days=1))
            .build()
        )
    return builder.sign(issuer.key, hashes.SHA256())


# -- signing -------------------------------------------------------------------------------


def parse(data: bytes) -> etree._Element:
    return xmlsafe.parse(data)


def serialize(root: etree._Element) -> bytes:
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def sign(
    data: bytes | etree._Element,
    key: Any,
    certs: Sequence[x509.Certificate] | None,
    *,
    method: str = "rsa-pss-sha256",
    digest: str = "sha256",
    c14n: CanonicalizationMethod = EXC_C14N,
    reference_uri: str | None = None,
    key_value: bool = False,
    root_id: str | None = None,
) -> bytes:
    """An enveloped signature made by signxml, appended to the root (URI "" unless told)."""
    root = parse(data) if isinstance(data, bytes) else copy.deepcopy(data)
    if root_id is not None:
        root.set("Id", root_id)
    signer = XMLSigner(
        signature_algorithm=METHODS[method], digest_algorithm=DIGESTS[digest], c14n_algorithm=c14n
    )
    signed = signer.sign(
        root,
        key=key,
        cert=list(certs) if certs is not None else None,
        reference_uri=reference_uri,
        always_add_key_value=key_value,
    )
    return serialize(signed)


def signature_of(root: etree._Element) -> etree._Element:
    found = next(root.iter(f"{_DS}Signature"), None)
    assert found is not None
    return found


def _c14n(element: etree._Element, algorithm: str) -> bytes:
    return etree.tostring(
        element,
        method="c14n",
        exclusive=algorithm.startswith("http://www.w3.org/2001/10/xml-exc-c14n#"),
        with_comments=algorithm.endswith("#WithComments"),
    )


def raw_signature(key: Any, method_uri: str, data: bytes) -> bytes:
    """The SignatureValue bytes for ``data`` under any XMLDSig method (attacks included)."""
    fragment = method_uri.rsplit("#", 1)[1]
    hash_name = fragment.split("-")[-1] if not fragment.endswith("MGF1") else fragment.split("-")[0]
    algorithm = _HASHES[hash_name]()
    if fragment.startswith("hmac"):
        mac = hmac.HMAC(key, algorithm)
        mac.update(data)
        return mac.finalize()
    if fragment.endswith("MGF1"):
        pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
        return key.sign(data, pss, algorithm)  # type: ignore[no-any-return]
    if fragment.startswith("rsa"):
        return key.sign(data, padding.PKCS1v15(), algorithm)  # type: ignore[no-any-return]
    is_ec = fragment.startswith("ecdsa")
    der = key.sign(data, ec.ECDSA(algorithm)) if is_ec else key.sign(data, algorithm)  # or DSA
    r, s = utils.decode_dss_signature(der)
    size = (key.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def resign(
    data: bytes,
    key: Any,
    mutate: Callable[[etree._Element], None] | None = None,
    *,
    redigest: bool = False,
    inherited: bytes = b"",
) -> bytes:
    """Apply ``mutate`` to the parsed document, optionally recompute the digest, and re-sign
    ``SignedInfo`` with ``key`` under whatever SignatureMethod it now names.

    ``inherited`` (`` xml:lang="de"`` ...) is written into SignedInfo's canonical start
    tag after its namespace declarations: the ``xml:`` attributes Canonical XML section
    2.4 gives a subset's apex from its ancestors, which lxml leaves out (SignedInfo must
    have no attributes of its own then).
    """
    root = parse(data)
    if mutate is not None:
        mutate(root)
    signature = signature_of(root)
    signed_info = signature.find(f"{_DS}SignedInfo")
    assert signed_info is not None
    if redigest:
        reference = signed_info.find(f"{_DS}Reference")
        assert reference is not None
        digest_uri = reference.find(f"{_DS}DigestMethod").get("Algorithm")  # type: ignore[union-attr]
        digest = _HASHES[digest_uri.rsplit("#", 1)[1]]()  # type: ignore[union-attr]
        h = hashes.Hash(digest)
        h.update(canonical_without_signature(root))
        reference.find(f"{_DS}DigestValue").text = base64.b64encode(h.finalize()).decode()  # type: ignore[union-attr]
    c14n_uri = signed_info.find(f"{_DS}CanonicalizationMethod").get("Algorithm")  # type: ignore[union-attr]
    method_uri = signed_info.find(f"{_DS}SignatureMethod").get("Algorithm")  # type: ignore[union-attr]
    # Canonicalize SignedInfo as a verifier does: from a detached copy of the signature.
    detached = parse(etree.tostring(signature))
    signed_info_copy = detached.find(f"{_DS}SignedInfo")
    assert signed_info_copy is not None
    canonical = _c14n(signed_info_copy, c14n_uri)  # type: ignore[arg-type]
    if inherited:
        assert not signed_info_copy.attrib
        head, rest = canonical.split(b">", 1)
        assert b" xml:" not in head
        canonical = head + inherited + b">" + rest
    value = raw_signature(key, method_uri, canonical)  # type: ignore[arg-type]
    signature.find(f"{_DS}SignatureValue").text = base64.b64encode(value).decode()  # type: ignore[union-attr]
    return serialize(root)


def canonical_without_signature(root: etree._Element) -> bytes:
    """Exclusive C14N of the whole document minus its (tail-less) signature."""
    clone = parse(etree.tostring(root))
    signature = signature_of(clone)
    parent = signature.getparent()
    assert parent is not None
    parent.remove(signature)
    return _c14n(clone, "http://www.w3.org/2001/10/xml-exc-c14n#")


# -- network canary ------------------------------------------------------------------------


Canary = canary.Canary  # re-exported: the signature tests use sigtools.Canary


class NetworkWatch:
    """Audit hook: Python-level network use while armed (installed once per process)."""

    EVENTS = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "urllib.Request")
    _installed = False

    def __init__(self) -> None:
        self.events: list[str] | None = None

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.events is not None and event in self.EVENTS:
            self.events.append(event)

    @contextlib.contextmanager
    def armed(self) -> Iterator[list[str]]:
        if not NetworkWatch._installed:
            sys.addaudithook(self)
            NetworkWatch._installed = True
        self.events = []
        try:
            yield self.events
        finally:
            self.events = None


NETWORK_WATCH = NetworkWatch()
