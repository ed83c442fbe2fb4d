"""Portal signatures by policy (hub.core.portalsig): bad-inputs E31-E42 and F43-F46.

Signatures need certificates made at test time, so the attack documents are built
here rather than stored in a corpus: a valid XSozial-basis submission
(``hub.testing.make_submission``) is signed with signxml by a test PKI
(``tests/sigtools.py``), then changed the way an attacker would. Where an attack
needs a changed ``SignedInfo``, the document is re-signed, so its signature value
is valid and only the hub's policy can refuse it. One test per bad-inputs entry
(variants as parameters); every rejection must name its exact reason, carry no
payload value or certificate name in its text, path or formatted traceback, and
come back within the time bound. Where signxml alone accepts an attack, the test
shows that too, so the hub's own check is what the test pins.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
import socket
import time
import traceback
from typing import TYPE_CHECKING, Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from lxml import etree
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureConstructionMethod,
    SignatureMethod,
)
from signxml.signer import XMLSigner
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from hub.core import portalsig, xmlsafe, xsozial
from hub.core.errors import Reason, Rejection
from hub.core.portalsig import SignaturePolicy, Verified
from hub.testing import SubmissionSpec, make_submission
from tests import sigtools
from tests.sigtools import NOW, Party, issue, resign, sign

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DS = sigtools.DS
_DS = f"{{{DS}}}"
TIME_BOUND = 2.0  # seconds per verification (bad-inputs.md: bounded time)
SIGNER_CN = "Portal Signer Sozialplattform"
ROOT_CN = "Portal Test Root CA"
# Values of the submission and names of the certificates: never in a rejection.
FRAGMENTS = (
    "Erika",
    "Mustermann",
    "Kurfürstenwall",
    "Recklinghausen",
    "45657",
    "1985-04-12",
    "sop:050000100099",
    SIGNER_CN,
    ROOT_CN,
)
DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"  # id-kp-documentSigning (RFC 9336)
PSS_ONLY = frozenset({"rsa-pss-sha256", "rsa-pss-sha384", "rsa-pss-sha512"})


# -- the test PKI, once per module ----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Pki:
    root: Party
    intermediate: Party
    signer: Party  # RSA 2048, issued by the root
    ec_signer: Party  # P-256, issued by the root
    pinned: Party  # the signer's key in a self-signed certificate
    attacker: Party  # RSA 2048, self-signed, the same subject as the signer

    def policy(self, **changes: Any) -> SignaturePolicy:
        """A required-signature policy trusting the root CA."""
        return SignaturePolicy(ca_bundle=(self.root.cert,), **changes)

    def pinned_policy(self, **changes: Any) -> SignaturePolicy:
        return SignaturePolicy(pinned=(self.pinned.cert,), **changes)


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = sigtools.ca(ROOT_CN)
    intermediate = sigtools.ca("Portal Test Issuing CA", root)
    signer_key = rsa.generate_private_key(65537, 2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    attacker_key = rsa.generate_private_key(65537, 2048)
    return Pki(
        root=root,
        intermediate=intermediate,
        signer=Party(signer_key, issue(signer_key.public_key(), SIGNER_CN, root)),
        ec_signer=Party(ec_key, issue(ec_key.public_key(), SIGNER_CN, root)),
        pinned=Party(signer_key, issue(signer_key.public_key(), SIGNER_CN, self_key=signer_key)),
        attacker=Party(
            attacker_key,
            issue(attacker_key.public_key(), SIGNER_CN, self_key=attacker_key),
        ),
    )


@pytest.fixture(scope="module")
def submission() -> bytes:
    return make_submission(
        SubmissionSpec(
            message_uuid="6f1c2a9e-3b4d-4e5f-8a7b-9c0d1e2f3a4b",
            case_uuid="0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d",
        )
    )


@pytest.fixture(scope="module")
def signed(pki: Pki, submission: bytes) -> bytes:
    """The submission signed the usual way: RSA-PSS SHA-256, URI "", exclusive C14N."""
    return sign(submission, pki.signer.key, [pki.signer.cert])


@pytest.fixture(scope="module")
def signed_by_id(pki: Pki, submission: bytes) -> bytes:
    """Signed with Id="sub-1" on the root and URI="#sub-1" (the shape XSW attacks need)."""
    return sign(submission, pki.signer.key, [pki.signer.cert], root_id="sub-1")


@pytest.fixture(scope="module")
def canary() -> Iterator[sigtools.Canary]:
    server = sigtools.Canary()
    yield server
    server.close()


# -- helpers ---------------------------------------------------------------------------------


def _verify(data: bytes, policy: SignaturePolicy, now: dt.datetime = NOW) -> Verified:
    return portalsig.verify(xmlsafe.parse(data), policy, now)


def _texts_of(rejection: Rejection) -> list[str]:
    formatted = "".join(traceback.format_exception(rejection))
    return [str(rejection), repr(rejection), rejection.path or "", formatted]


def _rejected(
    data: bytes,
    policy: SignaturePolicy,
    reason: Reason,
    caplog: pytest.LogCaptureFixture,
    now: dt.datetime = NOW,
) -> Rejection:
    """Verify, expect exactly ``reason``; no payload in the rejection or the logs, in time."""
    root = xmlsafe.parse(data)
    caplog.clear()
    with caplog.at_level(logging.INFO):
        start = time.perf_counter()
        with pytest.raises(Rejection) as raised:
            portalsig.verify(root, policy, now)
        seconds = time.perf_counter() - start
    rejection = raised.value
    assert (rejection.reason, seconds < TIME_BOUND) == (reason, True)
    texts = [*_texts_of(rejection), caplog.text]
    for fragment in FRAGMENTS:
        assert not [t for t in texts if fragment in t], f"{fragment!r} surfaced"
    return rejection


def _signxml_accepts(data: bytes, cert: x509.Certificate, **config: Any) -> VerifyResult:
    """signxml alone, with the right certificate and location: the attack passes it."""
    expect = SignatureConfiguration(verification_time=NOW, **config)
    result = XMLVerifier().verify(xmlsafe.parse(data), x509_cert=cert, expect_config=expect)
    assert isinstance(result, VerifyResult)
    return result


def _family_name(root: etree._Element) -> str | None:
    element = next(root.iter("familienname"), None)
    return None if element is None else element.text


def _edit(data: bytes, change: Callable[[etree._Element], None]) -> bytes:
    root = xmlsafe.parse(data)
    change(root)
    return sigtools.serialize(root)


def _without_signature(root: etree._Element) -> etree._Element:
    clone = copy.deepcopy(root)
    clone.remove(sigtools.signature_of(clone))
    return clone


def _forge(original: etree._Element, keep_id: str | None = None) -> etree._Element:
    """The attacker's payload: the original without its signature and id, a new name."""
    forged = _without_signature(original)
    for attribute in ("Id", "ID"):
        forged.attrib.pop(attribute, None)
    if keep_id is not None:
        forged.set("{http://www.w3.org/XML/1998/namespace}id", keep_id)
    name = next(forged.iter("familienname"))
    name.text = "Angreifer"
    return forged


# -- positive cases --------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(portalsig.DEFAULT_SIGNATURE_METHODS))
def test_every_default_method_verifies(pki, submission, method):
    """RSA-PSS, RSA PKCS#1 v1.5 and ECDSA with SHA-256/384/512 verify by default."""
    party = pki.ec_signer if method.startswith("ecdsa") else pki.signer
    data = sign(submission, party.key, [party.cert], method=method)
    verified = _verify(data, pki.policy())
    expected = (True, method, party.cert.subject.rfc4514_string())
    assert expected == (verified.signed, verified.algorithm, verified.signer_subject)
    der = party.cert.public_bytes(serialization.Encoding.DER)
    assert verified.certificate_sha256 == hashlib.sha256(der).hexdigest()


def test_signed_root_is_the_payload_without_its_signature(pki, signed):
    """signed_root is the payload root, without ds:Signature, as the canonical signed bytes."""
    root = xmlsafe.parse(signed)
    verified = portalsig.verify(root, pki.policy(), NOW)
    expected = (root.tag, 0, "Mustermann")
    actual = (
        verified.signed_root.tag,
        len(list(verified.signed_root.iter(f"{_DS}Signature"))),
        _family_name(verified.signed_root),
    )
    assert expected == actual
    assert verified.signed_root is not root
    canonical = etree.tostring(_without_signature(root), method="c14n", exclusive=True)
    assert verified.signed_sha256 == hashlib.sha256(canonical).hexdigest()


def test_signed_sha256_ignores_unsigned_parts(pki, signed):
    """The replay key (G47) is the same for a re-sent document with other unsigned bytes."""
    resent = signed.replace(b"<?xml version='1.0' encoding='UTF-8'?>", b"")
    resent = resent.replace(b"<ds:KeyInfo>", b"<ds:KeyInfo><ds:KeyName>x</ds:KeyName>", 1)
    first, second = _verify(signed, pki.policy()), _verify(resent, pki.policy())
    assert resent != signed
    assert first.signed_sha256 == second.signed_sha256


@pytest.mark.parametrize("digest", ["sha256", "sha384", "sha512"])
def test_sha2_digests_verify(pki, submission, digest):
    data = sign(submission, pki.signer.key, [pki.signer.cert], digest=digest)
    assert _verify(data, pki.policy()).signed


@pytest.mark.parametrize(
    "c14n",
    [
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0_WITH_COMMENTS,
        CanonicalizationMethod.CANONICAL_XML_1_0,
        CanonicalizationMethod.CANONICAL_XML_1_1,
    ],
    ids=lambda m: m.name,
)
def test_canonicalization_methods_verify(pki, submission, c14n):
    """Inclusive and exclusive C14N, with and without comments: the anti-wrapping bytes agree."""
    data = sign(submission, pki.signer.key, [pki.signer.cert], c14n=c14n)
    assert _verify(data, pki.policy()).signed


_XML = "{http://www.w3.org/XML/1998/namespace}"
C14N_10 = CanonicalizationMethod.CANONICAL_XML_1_0
C14N_11 = CanonicalizationMethod.CANONICAL_XML_1_1


def _root_with_xml_attributes(submission: bytes, **attributes: str) -> bytes:
    """The submission with ``xml:<name>="<value>"`` on its root (``lang``, ``space``, ``id``)."""

    def mark(root: etree._Element) -> None:
        for name, value in attributes.items():
            root.set(f"{_XML}{name}", value)

    return _edit(submission, mark)


class TestSignedInfoInheritsXmlAttributes:
    """Inclusive C14N of SignedInfo gives it the ``xml:`` attributes of the payload root.

    SignedInfo is a document subset whose apex has ancestors (Signature, the root).
    Canonical XML 1.0 section 2.4 adds every ``xml:`` attribute of the nearest ancestor
    carrying it; 1.1 only ``xml:lang`` and ``xml:space``; exclusive C14N none. A signer
    following the specification (Apache Santuario, .NET, xmlsec) signs that form;
    signxml and lxml canonicalize SignedInfo on its own and leave them out.
    """

    def test_c14n_10_inherits_every_xml_attribute(self, pki, submission):
        marked = _root_with_xml_attributes(submission, lang="de", space="preserve", id="x1")
        data = sign(marked, pki.signer.key, [pki.signer.cert], c14n=C14N_10)
        inherited = b' xml:id="x1" xml:lang="de" xml:space="preserve"'
        resigned = resign(data, pki.signer.key, inherited=inherited)
        root = xmlsafe.parse(resigned)
        verified = portalsig.verify(root, pki.policy(), NOW)
        assert verified.signed
        assert _family_name(verified.signed_root) == "Mustermann"
        # The attributes were set on SignedInfo only while it was written.
        signed_info = sigtools.signature_of(root).find(f"{_DS}SignedInfo")
        assert signed_info is not None
        assert dict(signed_info.attrib) == {}

    def test_c14n_11_inherits_lang_and_space_but_not_id(self, pki, submission, caplog):
        marked = _root_with_xml_attributes(submission, lang="de", space="preserve", id="x1")
        data = sign(marked, pki.signer.key, [pki.signer.cert], c14n=C14N_11)
        as_specified = b' xml:lang="de" xml:space="preserve"'
        resigned = resign(data, pki.signer.key, inherited=as_specified)
        assert _verify(resigned, pki.policy()).signed
        with_id = b' xml:id="x1" xml:lang="de" xml:space="preserve"'
        wrong = resign(data, pki.signer.key, inherited=with_id)
        _rejected(wrong, pki.policy(), Reason.SIG_INVALID, caplog)

    def test_ec_signer_and_rsa_pkcs1_alike(self, pki, submission):
        marked = _root_with_xml_attributes(submission, lang="de")
        for key, certificate, method in (
            (pki.ec_signer.key, pki.ec_signer.cert, "ecdsa-sha256"),
            (pki.signer.key, pki.signer.cert, "rsa-sha256"),
        ):
            data = sign(marked, key, [certificate], c14n=C14N_10, method=method)
            resigned = resign(data, key, inherited=b' xml:lang="de"')
            assert _verify(resigned, pki.policy()).algorithm == method

    @pytest.mark.parametrize("c14n", [C14N_10, C14N_11], ids=lambda m: m.name)
    def test_the_form_without_them_is_refused(self, pki, submission, c14n, caplog):
        """signxml alone signs and accepts SignedInfo without ``xml:lang``; it is not the form."""
        marked = _root_with_xml_attributes(submission, lang="de")
        data = sign(marked, pki.signer.key, [pki.signer.cert], c14n=c14n)
        _signxml_accepts(data, pki.signer.cert)
        _rejected(data, pki.policy(), Reason.SIG_INVALID, caplog)

    def test_exclusive_c14n_inherits_nothing(self, pki, submission, caplog):
        marked = _root_with_xml_attributes(submission, lang="de")
        data = sign(marked, pki.signer.key, [pki.signer.cert])  # exclusive C14N
        assert _verify(data, pki.policy()).signed
        wrong = resign(data, pki.signer.key, inherited=b' xml:lang="de"')
        _rejected(wrong, pki.policy(), Reason.SIG_INVALID, caplog)

    @pytest.mark.parametrize("c14n", [C14N_10, sigtools.EXC_C14N], ids=lambda m: m.name)
    def test_a_root_named_signed_info_is_digested_as_itself(self, pki, c14n):
        """Only the Signature's own SignedInfo is canonicalized in place, not a look-alike root."""
        document = f'<ds:SignedInfo xmlns:ds="{DS}" xml:lang="de"><a>1</a></ds:SignedInfo>'
        data = sign(document.encode(), pki.signer.key, [pki.signer.cert], c14n=c14n)
        if c14n is C14N_10:
            data = resign(data, pki.signer.key, inherited=b' xml:lang="de"')
        verified = _verify(data, pki.policy())
        assert verified.signed_root.tag == f"{_DS}SignedInfo"
        assert verified.signed_root.findtext("a") == "1"

    def test_c14n_11_below_an_xml_base_is_refused(self, pki, submission, caplog):
        """Canonical XML 1.1 joins ``xml:base`` values; the hub does not, so it refuses."""
        marked = _root_with_xml_attributes(submission, base="https://example.org/a/", lang="de")
        data = sign(marked, pki.signer.key, [pki.signer.cert], c14n=C14N_11)
        resigned = resign(data, pki.signer.key, inherited=b' xml:lang="de"')
        rejection = _rejected(resigned, pki.policy(), Reason.SIG_INVALID, caplog)
        assert rejection.path == portalsig.SIGNED_INFO

    def test_c14n_10_inherits_xml_base_and_unknown_xml_attributes(self, pki, submission):
        """1.0 copies every ``xml:`` attribute, ``xml:base`` and ones it does not know alike."""
        marked = _root_with_xml_attributes(submission, base="https://example.org/a/", foo="x")
        data = sign(marked, pki.signer.key, [pki.signer.cert], c14n=C14N_10)
        inherited = b' xml:base="https://example.org/a/" xml:foo="x"'
        resigned = resign(data, pki.signer.key, inherited=inherited)
        root = xmlsafe.parse(resigned)
        before = etree.tostring(root)
        assert portalsig.verify(root, pki.policy(), NOW).signed
        assert before == etree.tostring(root)  # the tree verified is left as it was


def test_reference_to_the_root_id_verifies(pki, signed_by_id):
    """URI="#<id of the root>" is the other accepted reference."""
    assert _verify(signed_by_id, pki.policy()).signed


def test_signature_placed_between_children_verifies(pki, submission):
    """A signature in the middle of the root, with whitespace around it, keeps the tail text."""
    placeholder = b'<ds:Signature xmlns:ds="' + DS.encode() + b'" Id="placeholder"/>\n  '
    data = submission.replace(b"<xsozial>", placeholder + b"<xsozial>", 1)
    signed = sign(data, pki.signer.key, [pki.signer.cert])
    assert xmlsafe.parse(signed)[1].tag == f"{_DS}Signature"
    assert _verify(signed, pki.policy()).signed


def test_pinned_self_signed_certificate_verifies(pki, submission):
    """A pinned leaf (full DER match) needs no CA."""
    data = sign(submission, pki.pinned.key, [pki.pinned.cert])
    verified = _verify(data, pki.pinned_policy())
    assert verified.certificate_sha256 == pki.pinned.cert.fingerprint(hashes.SHA256()).hex()


def test_pinned_ca_issued_certificate_without_bundle_verifies(pki, signed):
    """A CA-issued certificate can be pinned on its own (no CA bundle configured)."""
    assert _verify(signed, SignaturePolicy(pinned=(pki.signer.cert,))).signed


def test_chain_through_an_intermediate_in_keyinfo_verifies(pki, submission):
    """Leaf and intermediate in KeyInfo, root in the bundle: the path is built and checked."""
    leaf = issue(pki.signer.key.public_key(), SIGNER_CN, pki.intermediate)
    data = sign(submission, pki.signer.key, [leaf, pki.intermediate.cert])
    assert _verify(data, pki.policy()).signed


def test_matching_key_value_next_to_the_certificate_verifies(pki, submission):
    """KeyValue that equals the certificate's key is no conflict."""
    data = sign(submission, pki.signer.key, [pki.signer.cert], key_value=True)
    assert xmlsafe.parse(data).find(f"{_DS}Signature/{_DS}KeyInfo/{_DS}KeyValue") is not None
    assert _verify(data, pki.policy()).signed


def test_non_repudiation_key_usage_alone_is_enough(pki, submission):
    cert = issue(pki.signer.key.public_key(), SIGNER_CN, pki.root, usage="nonrepudiation")
    data = sign(submission, pki.signer.key, [cert])
    assert _verify(data, pki.policy()).signed


def test_required_eku_and_policy_oid_present_verifies(pki, submission):
    cert = issue(
        pki.signer.key.public_key(),
        SIGNER_CN,
        pki.root,
        ekus=[x509.ObjectIdentifier(DOCUMENT_SIGNING)],
        policies=["1.3.6.1.4.1.99999.1"],
    )
    data = sign(submission, pki.signer.key, [cert])
    policy = pki.policy(eku_oids={DOCUMENT_SIGNING}, policy_oids={"1.3.6.1.4.1.99999.1"})
    assert _verify(data, policy).signed


def test_fresh_crl_without_the_signer_verifies(pki, signed):
    policy = pki.policy(crls=(sigtools.crl(pki.root, revoked=[12345]),))
    assert _verify(signed, policy).signed


def test_optional_mode_unsigned_passes(pki, submission):
    """optional: an unsigned submission passes unchanged, marked as not signed."""
    root = xmlsafe.parse(submission)
    verified = portalsig.verify(root, pki.policy(mode="optional"), NOW)
    expected = (True, False, "", "", "none")
    actual = (
        verified.signed_root is root,
        verified.signed,
        verified.signer_subject,
        verified.certificate_sha256,
        verified.algorithm,
    )
    assert expected == actual


def test_optional_mode_verifies_a_present_signature(pki, signed, caplog):
    """optional: a present signature must verify; a tampered one is refused."""
    assert _verify(signed, pki.policy(mode="optional")).signed
    tampered = signed.replace(b"Mustermann", b"Musterfrau")
    _rejected(tampered, pki.policy(mode="optional"), Reason.SIG_DIGEST, caplog)


def test_mode_none_does_not_look(submission, signed):
    """none: no check at all, even of a broken signature; the input root is returned."""
    root = xmlsafe.parse(signed.replace(b"Mustermann", b"Musterfrau"))
    verified = portalsig.verify(root, SignaturePolicy(mode="none"), NOW)
    assert (verified.signed_root is root, verified.signed) == (True, False)


# -- the policy itself -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"signature_methods": frozenset({"hmac-sha256"})},
        {"signature_methods": frozenset({"rsa-sha1"})},
        {"signature_methods": frozenset({"dsa-sha256"})},
        {"signature_methods": frozenset()},
        {"digest_methods": frozenset({"sha1"})},
        {"digest_methods": frozenset({"sha224"})},
        {"min_rsa_bits": 1024},
        {"max_rsa_bits": 65_536},
        {"max_chain_depth": 0},
        {"eku_oids": frozenset({"documentSigning"})},
        {"mode": "sometimes"},
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_unsafe_policies_cannot_be_built(pki, changes):
    """HMAC, SHA-1, DSA, weak RSA and malformed settings are configuration errors."""
    with pytest.raises(ValueError, match=r"."):
        pki.policy(**changes)


def test_policy_needs_trust_unless_mode_none(pki):
    with pytest.raises(ValueError, match="pinned certificates or a CA bundle"):
        SignaturePolicy(mode="optional")
    with pytest.raises(ValueError, match="must be a CA"):
        SignaturePolicy(ca_bundle=(pki.signer.cert,))
    assert SignaturePolicy(mode="none").mode == "none"


def test_naive_time_is_refused(pki, signed):
    with pytest.raises(ValueError, match="timezone"):
        portalsig.verify(xmlsafe.parse(signed), pki.policy(), NOW.replace(tzinfo=None))


# -- E. signature attacks ----------------------------------------------------------------------


def test_e31_missing_signature(pki, submission, caplog):
    """E31: required and unsigned -> SIG_MISSING."""
    rejection = _rejected(submission, pki.policy(), Reason.SIG_MISSING, caplog)
    assert rejection.path == "Signature"


@pytest.mark.parametrize(
    ("variant", "reason"),
    [("content", Reason.SIG_DIGEST), ("signature-value", Reason.SIG_INVALID)],
)
def test_e32_tampered_after_signing(pki, signed, variant, reason, caplog):
    """E32: content changed after signing -> SIG_DIGEST; a changed signature value -> SIG_INVALID."""
    if variant == "content":
        data = signed.replace(b"Mustermann", b"Musterfrau")
    else:

        def flip(root: etree._Element) -> None:
            value = sigtools.signature_of(root).find(f"{_DS}SignatureValue")
            assert value is not None
            assert value.text
            value.text = ("B" if value.text[0] == "A" else "A") + value.text[1:]

        data = _edit(signed, flip)
    _rejected(data, pki.policy(), reason, caplog)


def _xsw_extra(original: etree._Element) -> etree._Element:
    forged = _forge(original)
    signature = copy.deepcopy(sigtools.signature_of(original))
    extra = etree.SubElement(forged, "extra")
    extra.append(_without_signature(original))
    forged.append(signature)
    return forged


def _xsw_object(original: etree._Element) -> etree._Element:
    forged = _forge(original)
    signature = copy.deepcopy(sigtools.signature_of(original))
    etree.SubElement(signature, f"{_DS}Object").append(_without_signature(original))
    forged.append(signature)
    return forged


def _xsw_sibling(original: etree._Element) -> etree._Element:
    forged = _forge(original)
    forged.append(copy.deepcopy(sigtools.signature_of(original)))
    forged.append(_without_signature(original))
    return forged


@pytest.mark.parametrize(
    ("variant", "build"),
    [("extra", _xsw_extra), ("ds-object", _xsw_object), ("sibling", _xsw_sibling)],
)
def test_e33_signature_wrapping(pki, signed_by_id, variant, build, caplog):
    """E33: forged payload at the root, signed original hidden -> SIG_WRAPPING.

    signxml alone accepts each variant and returns the hidden original, while a
    reader of the document sees the forged name.
    """
    data = sigtools.serialize(build(xmlsafe.parse(signed_by_id)))
    hidden = _signxml_accepts(data, pki.signer.cert, location="./")
    assert (_family_name(xmlsafe.parse(data)), _family_name(hidden.signed_xml)) == (
        "Angreifer",
        "Mustermann",
    )
    _rejected(data, pki.policy(), Reason.SIG_WRAPPING, caplog)


def test_e34_duplicate_id(pki, signed_by_id, caplog):
    """E34: Id="sub-1" twice -> SIG_AMBIGUOUS (signxml refuses it too)."""
    data = _edit(signed_by_id, lambda root: next(root.iter("xsozial")).set("Id", "sub-1"))
    with pytest.raises(Exception, match="Ambiguous"):
        _signxml_accepts(data, pki.signer.cert, location="./")
    rejection = _rejected(data, pki.policy(), Reason.SIG_AMBIGUOUS, caplog)
    assert rejection.path == "@Id"


def test_e34_duplicate_id_across_id_and_xml_id(pki, submission, caplog):
    """E34 variant: the original signed by ID="sub-1" is hidden; the forged root has xml:id="sub-1".

    signxml looks up ``Id``, then ``ID``, then ``id``: it finds the hidden original
    and accepts. The hub's own duplicate check refuses (SIG_AMBIGUOUS).
    """
    root = xmlsafe.parse(submission)
    root.set("ID", "sub-1")
    original = xmlsafe.parse(sign(root, pki.signer.key, [pki.signer.cert], reference_uri="#sub-1"))
    forged = _forge(original, keep_id="sub-1")
    etree.SubElement(forged, "extra").append(_without_signature(original))
    forged.append(copy.deepcopy(sigtools.signature_of(original)))
    data = sigtools.serialize(forged)
    hidden = _signxml_accepts(data, pki.signer.cert, location="./")
    assert _family_name(hidden.signed_xml) == "Mustermann"
    _rejected(data, pki.policy(), Reason.SIG_AMBIGUOUS, caplog)


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("signed-child", Reason.SIG_WRAPPING),
        ("signed-root", Reason.SIG_DIGEST),
        ("in-signature-object", Reason.SIG_WRAPPING),
    ],
)
def test_e35_unsigned_sibling_payload_appended(pki, submission, variant, reason, caplog):
    """E35: an unsigned second payload next to the signed one.

    signed-child: only <xsozial Id="x1"> is signed; a forged <xsozial> is appended.
    signxml accepts it; the hub refuses because the signed element is not the root
    (SIG_WRAPPING). signed-root: with URI="" the append breaks the digest.
    in-signature-object: with URI="" the forged <xsozial> goes into a ds:Object of the
    signature, which the enveloped transform leaves unsigned; signxml accepts it.
    """
    if variant == "in-signature-object":
        data = sign(submission, pki.signer.key, [pki.signer.cert])

        def hide(root: etree._Element) -> None:
            forged = copy.deepcopy(next(root.iter("xsozial")))
            next(forged.iter("familienname")).text = "Angreifer"
            etree.SubElement(sigtools.signature_of(root), f"{_DS}Object").append(forged)

        data = _edit(data, hide)
        _signxml_accepts(data, pki.signer.cert, location="./")
        rejection = _rejected(data, pki.policy(), reason, caplog)
        assert rejection.path == "Signature/Object"
        return
    if variant == "signed-child":
        root = xmlsafe.parse(submission)
        next(root.iter("xsozial")).set("Id", "x1")
        data = sign(root, pki.signer.key, [pki.signer.cert], reference_uri="#x1")
    else:
        data = sign(submission, pki.signer.key, [pki.signer.cert])

    def append(root: etree._Element) -> None:
        forged = copy.deepcopy(next(root.iter("xsozial")))
        forged.attrib.pop("Id", None)
        next(forged.iter("familienname")).text = "Angreifer"
        root.append(forged)

    data = _edit(data, append)
    if variant == "signed-child":
        _signxml_accepts(data, pki.signer.cert, location="./")
    _rejected(data, pki.policy(), reason, caplog)


def test_e34_byte_comparison_is_the_second_line(pki, submission, monkeypatch, caplog):
    """Without the duplicate-id check, the ID/xml:id attack still fails: the bytes signxml
    verified are not the canonical root (SIG_WRAPPING). Pins the anti-wrapping comparison."""
    root = xmlsafe.parse(submission)
    root.set("ID", "sub-1")
    original = xmlsafe.parse(sign(root, pki.signer.key, [pki.signer.cert], reference_uri="#sub-1"))
    forged = _forge(original, keep_id="sub-1")
    etree.SubElement(forged, "extra").append(_without_signature(original))
    forged.append(copy.deepcopy(sigtools.signature_of(original)))
    monkeypatch.setattr(portalsig, "_check_unique_ids", lambda root: None)
    rejection = _rejected(sigtools.serialize(forged), pki.policy(), Reason.SIG_WRAPPING, caplog)
    assert rejection.path == "/"


def test_e36_comment_split_value_uses_signed_root(pki, submission):
    """E36: ``Muster<!---->mann`` verifies; only signed_root carries the full value.

    The pre-verification tree splits the text at the comment, so extraction from it
    reads "Muster"; extraction from ``signed_root`` reads the signed "Mustermann".
    signed_root shares no node with the input: later edits of the input cannot reach it.
    """
    split = submission.replace(b"Mustermann</familienname>", b"Muster<!---->mann</familienname>")
    data = sign(split, pki.signer.key, [pki.signer.cert])
    root = xmlsafe.parse(data)
    verified = portalsig.verify(root, pki.policy(), NOW)
    before = xsozial.extract(root).persons[0].family_name
    after = xsozial.extract(verified.signed_root).persons[0].family_name
    assert (before, after) == ("Muster", "Mustermann")
    assert list(verified.signed_root.iter(etree.Comment)) == []
    next(root.iter("familienname")).text = "Angreifer"
    assert _family_name(verified.signed_root) == "Mustermann"


@pytest.mark.parametrize("trust", ["ca-bundle", "pinned"])
def test_e37_attacker_self_signed_certificate_same_cn(pki, submission, trust, caplog):
    """E37: a valid signature by the attacker's self-signed certificate, same subject -> SIG_TRUST."""
    assert pki.attacker.cert.subject == pki.signer.cert.subject
    data = sign(submission, pki.attacker.key, [pki.attacker.cert])
    policy = pki.policy() if trust == "ca-bundle" else pki.pinned_policy()
    _rejected(data, policy, Reason.SIG_TRUST, caplog)


@pytest.mark.parametrize("variant", ["KeyValue", "DEREncodedKeyValue"])
def test_e38_x509data_with_conflicting_key_value(pki, submission, variant, caplog):
    """E38: the trusted certificate in X509Data, the attacker's key in KeyValue -> SIG_KEYINFO."""
    if variant == "KeyValue":
        # Signed by the attacker; signxml writes the signing key as KeyValue and
        # the trusted certificate as X509Data.
        data = sign(submission, pki.attacker.key, [pki.signer.cert], key_value=True)
    else:
        spki = pki.attacker.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

        def add(root: etree._Element) -> None:
            key_info = sigtools.signature_of(root).find(f"{_DS}KeyInfo")
            assert key_info is not None
            element = etree.SubElement(
                key_info, "{http://www.w3.org/2009/xmldsig11#}DEREncodedKeyValue"
            )
            element.text = base64.b64encode(spki).decode()

        data = _edit(sign(submission, pki.signer.key, [pki.signer.cert]), add)
    rejection = _rejected(data, pki.policy(), Reason.SIG_KEYINFO, caplog)
    assert rejection.path == "Signature/KeyInfo/KeyValue"


def _retrieval_method(root: etree._Element) -> None:
    key_info = sigtools.signature_of(root).find(f"{_DS}KeyInfo")
    assert key_info is not None
    etree.SubElement(key_info, f"{_DS}RetrievalMethod", URI="CANARY/cert.der")


def _key_value_only(root: etree._Element) -> None:
    key_info = sigtools.signature_of(root).find(f"{_DS}KeyInfo")
    assert key_info is not None
    for x509_data in key_info.findall(f"{_DS}X509Data"):
        key_info.remove(x509_data)


@pytest.mark.parametrize(
    ("variant", "change"),
    [("retrieval-method", _retrieval_method), ("key-value-only", _key_value_only)],
)
def test_keyinfo_needs_a_certificate_and_is_never_followed(
    pki, submission, canary, variant, change, caplog
):
    """A bare KeyValue (no certificate) or a RetrievalMethod -> SIG_KEYINFO; nothing fetched."""
    signed = sign(submission, pki.signer.key, [pki.signer.cert], key_value=True)
    data = _edit(signed, change).replace(b"CANARY", canary.url.encode())
    before = canary.settle()
    with sigtools.NETWORK_WATCH.armed() as events:
        _rejected(data, pki.policy(), Reason.SIG_KEYINFO, caplog)
    assert (canary.settle(), events) == (before, [])


def _set_method(uri: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        method = sigtools.signature_of(root).find(f"{_DS}SignedInfo/{_DS}SignatureMethod")
        assert method is not None
        method.set("Algorithm", uri)

    return change


def _set_digest(uri: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        digest = sigtools.signature_of(root).find(
            f"{_DS}SignedInfo/{_DS}Reference/{_DS}DigestMethod"
        )
        assert digest is not None
        digest.set("Algorithm", uri)

    return change


def test_e39_rsa_sha1(pki, signed, caplog):
    """E39: a valid rsa-sha1 signature -> SIG_ALG (signxml would accept it if allowed)."""
    data = resign(signed, pki.signer.key, _set_method(SignatureMethod.RSA_SHA1.value))
    _signxml_accepts(data, pki.signer.cert, signature_methods=frozenset(SignatureMethod))
    rejection = _rejected(data, pki.policy(), Reason.SIG_ALG, caplog)
    assert rejection.path == "Signature/SignedInfo/SignatureMethod"


def test_e39_sha1_digest(pki, signed, caplog):
    """E39: a valid signature over a SHA-1 reference digest -> SIG_ALG."""
    data = resign(signed, pki.signer.key, _set_digest(DigestAlgorithm.SHA1.value), redigest=True)
    _signxml_accepts(data, pki.signer.cert, digest_algorithms=frozenset(DigestAlgorithm))
    rejection = _rejected(data, pki.policy(), Reason.SIG_ALG, caplog)
    assert rejection.path == "Signature/SignedInfo/Reference/DigestMethod"


def test_e39_pkcs1_where_pss_is_mandated(pki, submission, caplog):
    """E39: RSA PKCS#1 v1.5 verifies by default but not where the portal mandates PSS."""
    data = sign(submission, pki.signer.key, [pki.signer.cert], method="rsa-sha256")
    assert _verify(data, pki.policy()).algorithm == "rsa-sha256"
    _rejected(data, pki.policy(signature_methods=PSS_ONLY), Reason.SIG_ALG, caplog)


def test_e39_dsa(pki, submission, caplog):
    """E39: a valid DSA signature by a CA-issued DSA certificate -> SIG_ALG."""
    key = dsa.generate_private_key(2048)
    cert = issue(key.public_key(), SIGNER_CN, pki.root)
    data = sign(submission, key, [cert], method="dsa-sha256")
    _rejected(data, pki.policy(), Reason.SIG_ALG, caplog)


def test_e40_hmac_keyed_with_the_public_certificate(pki, submission, caplog):
    """E40: hmac-sha256 keyed with the trusted certificate's PEM -> SIG_ALG, with or without the
    certificate added to KeyInfo.

    A verifier that hands the trusted certificate to signxml as the HMAC key accepts
    the bare document (key confusion): the MAC is valid, only the policy can refuse it.
    """
    pem = pki.signer.cert.public_bytes(serialization.Encoding.PEM)
    bare = sign(submission, pem, None, method="hmac-sha256")
    confused = XMLVerifier().verify(
        xmlsafe.parse(bare), hmac_key=pem, expect_config=SignatureConfiguration(require_x509=False)
    )
    assert _family_name(confused.signed_xml) == "Mustermann"  # type: ignore[union-attr]

    def add_certificate(root: etree._Element) -> None:
        signature = sigtools.signature_of(root)
        x509_data = etree.SubElement(etree.SubElement(signature, f"{_DS}KeyInfo"), f"{_DS}X509Data")
        der = pki.signer.cert.public_bytes(serialization.Encoding.DER)
        etree.SubElement(x509_data, f"{_DS}X509Certificate").text = base64.b64encode(der).decode()

    for data in (bare, _edit(bare, add_certificate)):
        rejection = _rejected(data, pki.policy(), Reason.SIG_ALG, caplog)
        assert rejection.path == "Signature/SignedInfo/SignatureMethod"


@pytest.mark.parametrize("method", ["hmac-sha256", "rsa-pss-sha256"])
def test_e40_hmac_output_length(pki, submission, signed, method, caplog):
    """E40: HMACOutputLength=8 (a one-byte MAC) -> SIG_ALG, under HMAC and under an allowed method."""

    def truncate(root: etree._Element) -> None:
        method_element = sigtools.signature_of(root).find(f"{_DS}SignedInfo/{_DS}SignatureMethod")
        assert method_element is not None
        etree.SubElement(method_element, f"{_DS}HMACOutputLength").text = "8"

    if method == "hmac-sha256":
        key = pki.signer.cert.public_bytes(serialization.Encoding.PEM)
        data = resign(sign(submission, key, None, method=method), key, truncate)
        data = _edit(data, _truncate_signature_value)
    else:
        data = resign(signed, pki.signer.key, truncate)
    _rejected(data, pki.policy(), Reason.SIG_ALG, caplog)


def _truncate_signature_value(root: etree._Element) -> None:
    value = sigtools.signature_of(root).find(f"{_DS}SignatureValue")
    assert value is not None
    assert value.text
    value.text = base64.b64encode(base64.b64decode(value.text)[:1]).decode()


def _nest_signature(root: etree._Element) -> None:
    signature = sigtools.signature_of(root)
    next(root.iter("xsozial")).append(signature)


def _second_signature(root: etree._Element) -> None:
    root.append(copy.deepcopy(sigtools.signature_of(root)))


@pytest.mark.parametrize(
    ("variant", "change"), [("nested", _nest_signature), ("two", _second_signature)]
)
def test_e41_signature_location(pki, signed, variant, change, caplog):
    """E41: a signature below the root (signxml's default accepts it) or two signatures -> SIG_LOCATION."""
    data = _edit(signed, change)
    if variant == "nested":
        _signxml_accepts(data, pki.signer.cert)  # default location: anywhere
    rejection = _rejected(data, pki.policy(), Reason.SIG_LOCATION, caplog)
    assert rejection.path == "Signature"


def test_e41_enveloping_signature_as_root(pki, submission, caplog):
    """E41 variant: the document root is the ds:Signature (enveloping) -> SIG_LOCATION."""
    signer = XMLSigner(
        method=SignatureConstructionMethod.enveloping,
        signature_algorithm=SignatureMethod.SHA256_RSA_MGF1,
        c14n_algorithm=sigtools.EXC_C14N,
    )
    signature = signer.sign(xmlsafe.parse(submission), key=pki.signer.key, cert=[pki.signer.cert])
    data = sigtools.serialize(signature)
    _rejected(data, pki.policy(), Reason.SIG_LOCATION, caplog)


def _set_uri(uri: str) -> Callable[[etree._Element], None]:
    def change(root: etree._Element) -> None:
        reference = sigtools.signature_of(root).find(f"{_DS}SignedInfo/{_DS}Reference")
        assert reference is not None
        reference.set("URI", uri)

    return change


@pytest.mark.parametrize("uri", ["CANARY/payload.xml", "file:///etc/passwd", "#xpointer(/)"])
def test_e42_external_or_xpointer_reference(pki, signed, canary, uri, caplog):
    """E42: a validly signed reference to a URL, a file or an XPointer -> SIG_REF; nothing fetched."""
    uri = uri.replace("CANARY", canary.url)
    data = resign(signed, pki.signer.key, _set_uri(uri))
    before = canary.settle()
    with sigtools.NETWORK_WATCH.armed() as events:
        rejection = _rejected(data, pki.policy(), Reason.SIG_REF, caplog)
    assert (canary.settle(), events) == (before, [])
    assert rejection.path == "Signature/SignedInfo/Reference/@URI"
    assert canary.url not in " ".join(_texts_of(rejection))


def _xslt_transform(root: etree._Element) -> None:
    transforms = sigtools.signature_of(root).find(f"{_DS}SignedInfo/{_DS}Reference/{_DS}Transforms")
    assert transforms is not None
    etree.SubElement(
        transforms, f"{_DS}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"
    )


def _xpath_transform(root: etree._Element) -> None:
    transforms = sigtools.signature_of(root).find(f"{_DS}SignedInfo/{_DS}Reference/{_DS}Transforms")
    assert transforms is not None
    transform = etree.SubElement(
        transforms, f"{_DS}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xpath-19991116"
    )
    etree.SubElement(transform, f"{_DS}XPath").text = "not(ancestor-or-self::xsozial)"


def _no_enveloped_transform(root: etree._Element) -> None:
    transforms = sigtools.signature_of(root).find(f"{_DS}SignedInfo/{_DS}Reference/{_DS}Transforms")
    assert transforms is not None
    transforms.remove(transforms[0])


def _second_reference(root: etree._Element) -> None:
    signed_info = sigtools.signature_of(root).find(f"{_DS}SignedInfo")
    assert signed_info is not None
    signed_info.append(copy.deepcopy(signed_info.find(f"{_DS}Reference")))


@pytest.mark.parametrize(
    ("variant", "change", "reason"),
    [
        ("xslt-transform", _xslt_transform, Reason.SIG_ALG),
        ("xpath-transform", _xpath_transform, Reason.SIG_ALG),
        ("no-enveloped-transform", _no_enveloped_transform, Reason.SIG_REF),
        ("two-references", _second_reference, Reason.SIG_REF),
    ],
)
def test_reference_shape(pki, signed, variant, change, reason, caplog):
    """Validly re-signed SignedInfo with other transforms or a second reference is refused."""
    _rejected(resign(signed, pki.signer.key, change), pki.policy(), reason, caplog)


def test_canary_sees_a_connection(canary):
    """The canary does count a connection, so its zero above means something."""
    before = canary.settle()
    with (
        sigtools.NETWORK_WATCH.armed() as events,
        socket.create_connection(("127.0.0.1", canary.port)) as s,
    ):
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    assert canary.settle() == before + 1
    assert "socket.connect" in events


# -- F. certificates ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "window"),
    [
        ("expired", (NOW - dt.timedelta(days=400), NOW - dt.timedelta(days=1))),
        ("not-yet-valid", (NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=400))),
    ],
)
def test_f43_signer_certificate_validity(pki, submission, variant, window, caplog):
    """F43: an expired or not-yet-valid signer certificate -> CERT_VALIDITY at chain[0]."""
    cert = issue(
        pki.signer.key.public_key(), SIGNER_CN, pki.root, not_before=window[0], not_after=window[1]
    )
    data = sign(submission, pki.signer.key, [cert])
    rejection = _rejected(data, pki.policy(), Reason.CERT_VALIDITY, caplog)
    assert rejection.path == "chain[0]"


def test_f43_expired_intermediate(pki, submission, caplog):
    """F43: every certificate of the path counts: an expired intermediate -> CERT_VALIDITY at chain[1]."""
    key = ec.generate_private_key(ec.SECP256R1())
    old = Party(
        key,
        issue(
            key.public_key(),
            "Portal Old Issuing CA",
            pki.root,
            ca=True,
            not_before=NOW - dt.timedelta(days=800),
            not_after=NOW - dt.timedelta(days=1),
        ),
    )
    leaf = issue(pki.signer.key.public_key(), SIGNER_CN, old)
    data = sign(submission, pki.signer.key, [leaf, old.cert])
    rejection = _rejected(data, pki.policy(), Reason.CERT_VALIDITY, caplog)
    assert rejection.path == "chain[1]"


def _other_issuer_crl(pki: Pki) -> x509.CertificateRevocationList:
    return sigtools.crl(pki.intermediate)


def _forged_crl(pki: Pki) -> x509.CertificateRevocationList:
    key = ec.generate_private_key(ec.SECP256R1())
    return sigtools.crl(Party(key, pki.root.cert))


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("revoked", Reason.CERT_REVOKED),
        ("stale", Reason.CERT_STATUS_UNKNOWN),
        ("no-crl-for-issuer", Reason.CERT_STATUS_UNKNOWN),
        ("crl-not-signed-by-issuer", Reason.CERT_STATUS_UNKNOWN),
    ],
)
def test_f44_revocation(pki, signed, variant, reason, caplog):
    """F44: serial on the current CRL -> CERT_REVOKED; stale, missing or forged CRL -> CERT_STATUS_UNKNOWN."""
    crls = {
        "revoked": lambda: sigtools.crl(pki.root, revoked=[pki.signer.cert.serial_number]),
        "stale": lambda: sigtools.crl(
            pki.root,
            last_update=NOW - dt.timedelta(days=10),
            next_update=NOW - dt.timedelta(days=1),
        ),
        "no-crl-for-issuer": lambda: _other_issuer_crl(pki),
        "crl-not-signed-by-issuer": lambda: _forged_crl(pki),
    }
    policy = pki.policy(crls=(crls[variant](),))
    rejection = _rejected(signed, policy, reason, caplog)
    assert rejection.path == "chain[0]"


def test_f45_no_digital_signature_key_usage(pki, submission, caplog):
    """F45: a CA-issued signer certificate for key encipherment only -> CERT_POLICY."""
    cert = issue(pki.signer.key.public_key(), SIGNER_CN, pki.root, usage="encipher")
    data = sign(submission, pki.signer.key, [cert])
    _rejected(data, pki.policy(), Reason.CERT_POLICY, caplog)


def test_f45_pinned_certificate_without_key_usage(pki, submission, caplog):
    """F45: a pinned certificate gets the KeyUsage check too (signxml skips it) -> CERT_POLICY."""
    cert = issue(pki.signer.key.public_key(), SIGNER_CN, self_key=pki.signer.key, usage=None)
    data = sign(submission, pki.signer.key, [cert])
    _rejected(data, SignaturePolicy(pinned=(cert,)), Reason.CERT_POLICY, caplog)


@pytest.mark.parametrize("variant", ["eku", "policy-oid"])
def test_f45_wrong_eku_or_policy(pki, submission, variant, caplog):
    """F45: documentSigning required, certificate for e-mail protection / another policy -> CERT_POLICY."""
    cert = issue(
        pki.signer.key.public_key(),
        SIGNER_CN,
        pki.root,
        ekus=[ExtendedKeyUsageOID.EMAIL_PROTECTION],
        policies=["1.3.6.1.4.1.99999.2"],
    )
    data = sign(submission, pki.signer.key, [cert])
    required = (
        {"eku_oids": {DOCUMENT_SIGNING}}
        if variant == "eku"
        else {"policy_oids": {"1.3.6.1.4.1.99999.1"}}
    )
    _rejected(data, pki.policy(**required), Reason.CERT_POLICY, caplog)


def _huge_rsa_certificate(pki: Pki, bits: int) -> x509.Certificate:
    """A CA-issued certificate for a random ``bits``-bit modulus (no private key exists)."""
    modulus = secrets.randbits(bits) | (1 << (bits - 1)) | 1
    public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    return issue(public, SIGNER_CN, pki.root)


@pytest.mark.parametrize(
    ("count", "path"), [(1000, "Signature/KeyInfo"), (9, "Signature/KeyInfo/X509Data")]
)
def test_f46_too_many_certificates_in_keyinfo(pki, submission, count, path, caplog):
    """F46: 1,000 certificates (or one more than max_certificates=8) in KeyInfo -> SIZE,
    counted before any certificate is decoded."""
    data = sign(submission, pki.signer.key, [pki.signer.cert] * count)
    rejection = _rejected(data, pki.policy(), Reason.SIZE, caplog)
    assert rejection.path == path


def test_f46_64_kilobyte_modulus(pki, submission, caplog):
    """F46: a certificate with a 64 kB (524,288-bit) modulus -> SIZE by the certificate byte limit."""
    cert = _huge_rsa_certificate(pki, 64 * 1024 * 8)
    data = sign(submission, pki.signer.key, [cert])
    _rejected(data, pki.policy(), Reason.SIZE, caplog)


@pytest.mark.parametrize("bits", [16_384, 1024])
def test_f46_rsa_modulus_outside_policy(pki, submission, bits, caplog):
    """F46: a 16,384-bit (above max_rsa_bits) or 1,024-bit modulus -> CERT_POLICY."""
    if bits == 1024:
        key = rsa.generate_private_key(65537, 1024)  # noqa: S505 - the weak key is the attack
        cert = issue(key.public_key(), SIGNER_CN, pki.root)
        data = sign(submission, key, [cert])
    else:
        data = sign(submission, pki.signer.key, [_huge_rsa_certificate(pki, bits)])
    _rejected(data, pki.policy(), Reason.CERT_POLICY, caplog)


def test_f46_chain_deeper_than_allowed(pki, submission, caplog):
    """F46: root -> 3 intermediates -> signer is 4 CA certificates; max_chain_depth=3 -> CERT_POLICY."""
    issuer = pki.root
    intermediates = []
    for level in range(3):
        issuer = sigtools.ca(f"Portal Level {level} CA", issuer)
        intermediates.append(issuer.cert)
    leaf = issue(pki.signer.key.public_key(), SIGNER_CN, issuer)
    data = sign(submission, pki.signer.key, [leaf, *reversed(intermediates)])
    _rejected(data, pki.policy(max_chain_depth=3), Reason.CERT_POLICY, caplog)
    assert _verify(data, pki.policy(max_chain_depth=4)).signed


# -- library behaviour the adapters must know ---------------------------------------------------


def test_signxml_debug_log_echoes_the_payload(pki, signed, caplog):
    """signxml logs canonicalized data at DEBUG on logger "signxml": keep that logger above DEBUG.

    Pins a library behaviour, not hub code: the hub's logging must never run signxml at DEBUG.
    """
    with caplog.at_level(logging.DEBUG, logger="signxml"):
        _verify(signed, pki.policy())
    assert "Mustermann" in caplog.text
