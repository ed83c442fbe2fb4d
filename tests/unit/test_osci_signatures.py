"""OSCI container signatures by portal policy (hub.core.portalsig.verify_osci).

Every signature here is real: keys and certificates are made at test time
(``tests/sigtools.py``), detached signatures are made by hand in the shape the
OSCI library writes (``tests/osci_builders.signature_over``) or by signxml, and
only then is the package changed the way an attacker would. A rejection must
name its exact reason and a location made of fixed names, never a value.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree

from hub.core import portalsig, xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.portalsig import SignaturePolicy
from hub.core.transport.osci import OsciUnpacked, unpack
from tests import osci_builders as b
from tests import sigtools
from tests.osci_builders import PAYLOAD, PDF, MimePart
from tests.sigtools import NOW, Party, issue

C1 = "ContentPackage/ContentContainer[1]"
SIGNER_CN = "OSCI Autor Sozialplattform"
ROOT_CN = "OSCI Test Root CA"
PSS_ONLY = frozenset({"rsa-pss-sha256", "rsa-pss-sha384", "rsa-pss-sha512"})
TIME_BOUND = 2.0  # seconds (bad-inputs: bounded time)
SECRETS = ("Erika", "Mustermann", SIGNER_CN, ROOT_CN, "payload", "att1", "cc1")


@dataclasses.dataclass(frozen=True)
class Pki:
    root: Party
    signer: Party  # RSA 2048, issued by the root
    ec_signer: Party  # P-256, issued by the root
    pinned: Party  # the signer's key, self-signed: trusted by its pin
    attacker: Party  # self-signed, the same subject as the signer
    expired: Party  # issued by the root, expired a day before NOW
    no_usage: Party  # issued by the root, KeyUsage keyEncipherment only

    def policy(self, **changes: Any) -> SignaturePolicy:
        return SignaturePolicy(ca_bundle=(self.root.cert,), **changes)


@pytest.fixture(scope="module")
def pki() -> Pki:
    root = sigtools.ca(ROOT_CN)
    key = rsa.generate_private_key(65537, 2048)
    ec_key = ec.generate_private_key(ec.SECP256R1())
    attacker_key = rsa.generate_private_key(65537, 2048)
    expired_key = rsa.generate_private_key(65537, 2048)
    plain_key = rsa.generate_private_key(65537, 2048)
    return Pki(
        root=root,
        signer=Party(key, issue(key.public_key(), SIGNER_CN, root)),
        ec_signer=Party(ec_key, issue(ec_key.public_key(), SIGNER_CN, root)),
        pinned=Party(key, issue(key.public_key(), SIGNER_CN, self_key=key)),
        attacker=Party(
            attacker_key, issue(attacker_key.public_key(), SIGNER_CN, self_key=attacker_key)
        ),
        expired=Party(
            expired_key,
            issue(
                expired_key.public_key(),
                SIGNER_CN,
                root,
                not_before=NOW - sigtools.dt.timedelta(days=400),
                not_after=NOW - sigtools.dt.timedelta(days=1),
            ),
        ),
        no_usage=Party(plain_key, issue(plain_key.public_key(), SIGNER_CN, root, usage="encipher")),
    )


def inline_tree() -> etree._Element:
    """Payload and a PDF inline in container cc1."""
    return b.package(b.container(b.inline(PAYLOAD, "payload"), b.inline(PDF, "att1")))


def sign_in_container(
    tree: etree._Element, party: Party, uris: list[str] | None = None, **options: Any
) -> etree._Element:
    """The OSCI library's placement: the signature first in the container it signs."""
    container = tree[0]
    if uris is None:
        uris = [f"#{c.get('Id')}" for c in container.iterchildren(f"{{{b.OSCI}}}Content")]
    container.insert(0, b.signature_over(tree, uris, party.key, [party.cert], **options))
    return tree


def unpacked_of(data: bytes) -> OsciUnpacked:
    return unpack(data)


def verify(data: bytes, policy: SignaturePolicy, *, payload: bytes | None = None, now=NOW):
    unpacked = unpack(data)
    signed = unpacked.envelope.payload if payload is None else payload
    root = xmlsafe.parse(unpacked.envelope.payload)
    return portalsig.verify_osci(unpacked, signed, root, policy, now)


def rejected(data: bytes, policy: SignaturePolicy, **options: Any) -> Rejection:
    with pytest.raises(Rejection) as caught:
        verify(data, policy, **options)
    rejection = caught.value
    text = f"{rejection} {rejection.path}"
    assert not any(secret in text for secret in SECRETS), text
    return rejection


def assert_rejected(data: bytes, policy: SignaturePolicy, reason: Reason, path: str, **options):
    rejection = rejected(data, policy, **options)
    assert (reason, path) == (rejection.reason, rejection.path)


class TestAccepted:
    def test_signature_in_the_container_covering_the_payload(self, pki):
        """The OSCI library's own shape: a signature in cc1 over every Content of cc1."""
        verified = verify(b.xml(sign_in_container(inline_tree(), pki.signer)), pki.policy())
        expected = (
            pki.signer.cert.subject.rfc4514_string(),
            "rsa-pss-sha256",
            hashlib.sha256(PAYLOAD).hexdigest(),
            True,
        )
        assert expected == (
            verified.signer_subject,
            verified.algorithm,
            verified.signed_sha256,
            verified.signed,
        )

    def test_signxml_signature_in_the_container(self, pki):
        """A detached signature made by signxml (another implementation) verifies as well."""
        author = b.Author(pki.signer.key, pki.signer.cert)
        tree = inline_tree()
        data = b.xml(b.sign_container(tree, tree[0], author))
        assert verify(data, pki.policy()).signed

    def test_package_level_signature_naming_the_container(self, pki):
        """A signature in the ContentPackage over #cc1 covers the payload inside cc1."""
        tree = inline_tree()
        tree.insert(0, b.signature_over(tree, ["#cc1"], pki.signer.key, [pki.signer.cert]))
        verified = verify(b.xml(tree), pki.policy())
        assert pki.signer.cert.subject.rfc4514_string() == verified.signer_subject

    def test_mime_payload_signed_by_cid(self, pki):
        """A payload in a MIME part is covered by ``cid:`` with the digest of the part's bytes."""
        tree = b.package(
            b.container(b.reference("payload@test", "c-payload"), b.reference("pdf@test", "c-pdf"))
        )
        parts = {"payload@test": PAYLOAD, "pdf@test": PDF}
        uris = ["cid:payload@test", "cid:pdf@test"]
        tree[0].insert(
            0, b.signature_over(tree, uris, pki.signer.key, [pki.signer.cert], parts=parts)
        )
        data = b.mime(
            [
                b.root_part(b.xml(tree)),
                MimePart("payload@test", PAYLOAD, "text/xml"),
                MimePart("pdf@test", PDF, "application/pdf"),
            ]
        )
        assert verify(data, pki.policy()).signed

    def test_signature_in_an_outer_container_over_a_nested_one(self, pki):
        """Serial signatures: the outer container's signature names the inner container."""
        inner = b.container(b.inline(PAYLOAD, "payload"), ident="cc2")
        tree = b.package(b.container(b.nested(inner, "n1"), ident="cc1"))
        sign_in_container(tree, pki.signer, ["#n1"])
        assert verify(b.xml(tree), pki.policy()).signed

    def test_ecdsa_and_a_pinned_certificate(self, pki):
        """ECDSA signatures verify; a pinned self-signed certificate is trusted by its pin."""
        ec_data = b.xml(sign_in_container(inline_tree(), pki.ec_signer, method="ecdsa-sha256"))
        pinned_data = b.xml(sign_in_container(inline_tree(), pki.pinned))
        actual = (
            verify(ec_data, pki.policy()).algorithm,
            verify(pinned_data, SignaturePolicy(pinned=(pki.pinned.cert,))).signed,
        )
        assert ("ecdsa-sha256", True) == actual

    def test_optional_without_signature_is_unsigned(self, pki):
        """Mode optional: an unsigned package passes, reported unsigned."""
        verified = verify(b.xml(inline_tree()), pki.policy(mode="optional"))
        assert (False, "none") == (verified.signed, verified.algorithm)

    def test_mode_none_checks_nothing(self, pki):
        """Mode none: not even a broken signature is looked at."""
        tree = sign_in_container(inline_tree(), pki.attacker)
        assert not verify(b.xml(tree), SignaturePolicy(mode="none")).signed


class TestRejected:
    def test_a_tree_c14n_cannot_write_is_sig_invalid_not_a_crash(self, pki):
        """A relative namespace URI (xmlsafe lets it through) makes lxml's C14N raise: a
        Rejection with its place, never an exception escaping intake."""
        data = b.xml(sign_in_container(inline_tree(), pki.signer))
        start = data.index(b"<", data.index(b"ContentPackage") - 20)
        end = data.index(b">", start)
        data = data[:end] + b' xmlns:rel="relative/uri"' + data[end:]
        rejection = rejected(data, pki.policy())
        assert rejection.reason is Reason.SIG_INVALID
        assert rejection.path.endswith(("SignedInfo", "]"))

    def test_missing_signature_under_required(self, pki):
        """E.31: required and no signature on the payload's path is SIG_MISSING."""
        assert_rejected(b.xml(inline_tree()), pki.policy(), Reason.SIG_MISSING, "Signature")

    def test_a_signature_on_another_container_only_is_missing(self, pki):
        """A signature on a container beside the payload's does not count: SIG_MISSING."""
        other = b.container(b.inline(PDF, "att2"), ident="cc2")
        tree = b.package(b.container(b.inline(PAYLOAD, "payload"), ident="cc1"), other)
        other.insert(0, b.signature_over(tree, ["#att2"], pki.signer.key, [pki.signer.cert]))
        assert_rejected(b.xml(tree), pki.policy(), Reason.SIG_MISSING, "Signature")

    def test_wrapping_signature_over_another_content(self, pki):
        """E.33: a valid signature in the payload's container over the attachment only."""
        data = b.xml(sign_in_container(inline_tree(), pki.signer, ["#att1"]))
        path = f"{C1}/Signature[1]/SignedInfo/Reference/@URI"
        assert_rejected(data, pki.policy(), Reason.SIG_WRAPPING, path)

    def test_wrapping_signed_original_moved_deeper(self, pki):
        """E.33: the signed original moved into a nested container, a forged payload on top.

        The signature still verifies over the original, but the payload rule reads the
        forged one: it is not covered.
        """
        tree = sign_in_container(inline_tree(), pki.signer, ["#payload"])
        container = tree[0]
        original = container[1]  # the signed payload Content
        container.remove(original)
        hidden = b.container(original, ident="hidden")
        container.append(b.nested(hidden, "n-hidden"))
        container.insert(1, b.inline(PAYLOAD.replace(b"Erika", b"Mallory"), "forged"))
        data = b.xml(tree)
        assert b"Mallory" in unpack(data).envelope.payload  # the package does open
        path = f"{C1}/Signature[1]/SignedInfo/Reference/@URI"
        assert_rejected(data, pki.policy(), Reason.SIG_WRAPPING, path)

    def test_wrapping_reference_into_the_soap_header(self, pki):
        """E.33: a reference that names an element outside the package (SOAP header)."""
        tree = inline_tree()
        envelope = b.soap(tree)
        header = envelope[0]
        decoy = etree.SubElement(header, f"{{{b.OSCI}}}Content", Id="decoy")
        etree.SubElement(decoy, f"{{{b.OSCI}}}Base64Content").text = "AAAA"
        signature = b.signature_over(
            envelope, ["#payload", "#decoy"], pki.signer.key, [pki.signer.cert]
        )
        tree[0].insert(0, signature)
        path = f"Envelope/{C1}/Signature[1]/SignedInfo/Reference[2]/@URI".removeprefix("Envelope/")
        assert_rejected(b.xml(envelope), pki.policy(), Reason.SIG_WRAPPING, path)

    def test_the_payload_read_must_be_the_signed_bytes(self, pki):
        """E.33 second line: payload bytes other than the covered ones are SIG_WRAPPING at /."""
        data = b.xml(sign_in_container(inline_tree(), pki.signer))
        other = PAYLOAD.replace(b"Erika", b"Mallory")
        assert_rejected(data, pki.policy(), Reason.SIG_WRAPPING, "/", payload=other)

    def test_content_tampered_after_signing(self, pki):
        """E.32: the payload changed after signing (the signature value is still valid)."""
        tree = sign_in_container(inline_tree(), pki.signer)
        forged = PAYLOAD.replace(b"Erika", b"Mallory")
        tree[0][1][0].text = b.inline(forged)[0].text
        path = f"{C1}/Signature[1]/SignedInfo/Reference[1]"
        assert_rejected(b.xml(tree), pki.policy(), Reason.SIG_DIGEST, path)

    def test_mime_part_tampered_after_signing(self, pki):
        """E.32 for a cid: reference: the part's bytes are digested, so a changed part fails."""
        tree = b.package(b.container(b.reference("payload@test", "c-payload")))
        parts = {"payload@test": PAYLOAD}
        tree[0].insert(
            0,
            b.signature_over(
                tree, ["cid:payload@test"], pki.signer.key, [pki.signer.cert], parts=parts
            ),
        )
        forged = PAYLOAD.replace(b"Erika", b"Mallory")
        data = b.mime([b.root_part(b.xml(tree)), MimePart("payload@test", forged, "text/xml")])
        path = f"{C1}/Signature[1]/SignedInfo/Reference[1]"
        assert_rejected(data, pki.policy(), Reason.SIG_DIGEST, path)

    def test_signature_value_altered(self, pki):
        """The signature value does not verify: SIG_INVALID."""
        tree = sign_in_container(inline_tree(), pki.signer)
        value = tree[0][0].find(f"{{{b.DS}}}SignatureValue")
        raw = bytearray(sigtools.base64.b64decode(value.text))
        raw[10] ^= 1
        value.text = sigtools.base64.b64encode(bytes(raw)).decode()
        path = f"{C1}/Signature[1]/SignatureValue"
        assert_rejected(b.xml(tree), pki.policy(), Reason.SIG_INVALID, path)

    def test_untrusted_self_signed_certificate_with_the_same_name(self, pki):
        """E.37: the attacker's own certificate, same subject as the portal's signer."""
        data = b.xml(sign_in_container(inline_tree(), pki.attacker))
        path = f"{C1}/Signature[1]/KeyInfo/X509Data"
        assert_rejected(data, pki.policy(), Reason.SIG_TRUST, path)

    def test_expired_certificate(self, pki):
        """F.43: the signer certificate expired before now."""
        data = b.xml(sign_in_container(inline_tree(), pki.expired))
        assert_rejected(data, pki.policy(), Reason.CERT_VALIDITY, f"{C1}/Signature[1]/chain[0]")

    def test_certificate_without_signing_key_usage(self, pki):
        """F.45: a certificate without digitalSignature/nonRepudiation is CERT_POLICY."""
        data = b.xml(sign_in_container(inline_tree(), pki.no_usage))
        assert_rejected(data, pki.policy(), Reason.CERT_POLICY, f"{C1}/Signature[1]/chain[0]")

    def test_revoked_certificate(self, pki):
        """F.44: the signer's serial is on the root's current CRL."""
        data = b.xml(sign_in_container(inline_tree(), pki.signer))
        revoked = sigtools.crl(pki.root, revoked=[pki.signer.cert.serial_number])
        path = f"{C1}/Signature[1]/chain[0]"
        assert_rejected(data, pki.policy(crls=(revoked,)), Reason.CERT_REVOKED, path)

    @pytest.mark.parametrize(
        ("options", "policy_changes", "where"),
        [
            ({"method": "rsa-sha1"}, {}, "SignedInfo/SignatureMethod"),
            ({"digest": "sha1"}, {}, "SignedInfo/Reference[1]/DigestMethod"),
            (
                {"method": "rsa-sha256"},
                {"signature_methods": PSS_ONLY},
                "SignedInfo/SignatureMethod",
            ),
            (
                {"digest": "sha512"},
                {"digest_methods": frozenset({"sha256"})},
                "SignedInfo/Reference[1]/DigestMethod",
            ),
        ],
        ids=["rsa-sha1", "sha1-digest", "pkcs1-where-pss-is-mandated", "digest-not-allowed"],
    )
    def test_algorithm_downgrade(self, pki, options, policy_changes, where):
        """E.39: a weak or not allowed method is SIG_ALG, although the signature is valid."""
        data = b.xml(sign_in_container(inline_tree(), pki.signer, **options))
        policy = pki.policy(**policy_changes)
        assert_rejected(data, policy, Reason.SIG_ALG, f"{C1}/Signature[1]/{where}")

    @pytest.mark.parametrize(
        "transform",
        [
            "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
            "http://www.w3.org/2000/09/xmldsig#base64",
            "http://www.w3.org/TR/1999/REC-xpath-19991116",
        ],
        ids=["enveloped", "base64", "xpath"],
    )
    def test_transform_other_than_canonicalization(self, pki, transform):
        """Only one canonicalization transform is allowed on a detached reference."""
        tree = inline_tree()
        signature = b.signature_over(
            tree, ["#payload"], pki.signer.key, [pki.signer.cert], transform=transform
        )
        tree[0].insert(0, signature)
        path = f"{C1}/Signature[1]/SignedInfo/Reference[1]/Transforms"
        assert_rejected(b.xml(tree), pki.policy(), Reason.SIG_ALG, path)

    @pytest.mark.parametrize(
        "uri", ["", "http://example.invalid/payload", "#xpointer(/)", "cid:nothing@test"]
    )
    def test_reference_that_names_nothing_here(self, pki, uri):
        """E.42: empty, external, XPointer and dangling cid: references; nothing is fetched."""
        tree = inline_tree()
        signature = b.signature_over(tree, ["#payload"], pki.signer.key, [pki.signer.cert])
        signature.find(f".//{{{b.DS}}}Reference").set("URI", uri)
        tree[0].insert(0, signature)
        path = f"{C1}/Signature[1]/SignedInfo/Reference[1]/@URI"
        assert_rejected(b.xml(tree), pki.policy(), Reason.SIG_REF, path)

    def test_object_in_the_signature(self, pki):
        """E.33 (ds:Object): unsigned content inside the signature is SIG_WRAPPING."""
        tree = sign_in_container(inline_tree(), pki.signer)
        etree.SubElement(tree[0][0], f"{{{b.DS}}}Object").text = "x"
        assert_rejected(b.xml(tree), pki.policy(), Reason.SIG_WRAPPING, f"{C1}/Signature[1]/Object")

    def test_every_signature_on_the_path_must_verify(self, pki):
        """A second signature on the payload's container by an untrusted signer is refused."""
        tree = sign_in_container(inline_tree(), pki.signer)
        untrusted = b.signature_over(tree, ["#payload"], pki.attacker.key, [pki.attacker.cert])
        tree[0].insert(1, untrusted)
        path = f"{C1}/Signature[2]/KeyInfo/X509Data"
        assert_rejected(b.xml(tree), pki.policy(), Reason.SIG_TRUST, path)

    def test_optional_still_demands_a_valid_signature(self, pki):
        """Mode optional: a signature that is present must verify (here: untrusted)."""
        data = b.xml(sign_in_container(inline_tree(), pki.attacker))
        rejection = rejected(data, pki.policy(mode="optional"))
        assert Reason.SIG_TRUST == rejection.reason

    def test_signature_in_a_decrypted_container(self, pki):
        """A signed container inside XML Encryption verifies once the Reader's key opens it."""
        reader = b.reader_key()
        secret = b.container(b.inline(PAYLOAD, "payload"), ident="secret")
        scratch = b.package(copy.deepcopy(secret))
        signature = b.signature_over(scratch, ["#payload"], pki.signer.key, [pki.signer.cert])
        secret.insert(0, signature)
        data = b.xml(b.package(b.encrypt(secret, reader.public_key())))
        unpacked = unpack(data, decryption_keys={"reader": reader})
        root = xmlsafe.parse(unpacked.envelope.payload)
        verified = portalsig.verify_osci(
            unpacked, unpacked.envelope.payload, root, pki.policy(), NOW
        )
        assert verified.signed


def test_many_references_to_a_large_container_stay_bounded(pki):
    """Eight signatures naming one 2 MB container 64 times each cost one digest, not 512."""
    tree = b.package(
        b.container(b.inline(PAYLOAD, "payload"), b.inline(PDF + b"\0" * 2_000_000, "att1"))
    )
    signature = b.signature_over(tree, ["#cc1"], pki.signer.key, [pki.signer.cert])
    signed_info = signature.find(f"{{{b.DS}}}SignedInfo")
    reference = signed_info.find(f"{{{b.DS}}}Reference")
    signed_info.extend(copy.deepcopy(reference) for _ in range(63))
    value = sigtools.raw_signature(
        pki.signer.key,
        b.METHOD_URIS["rsa-pss-sha256"],
        etree.tostring(signed_info, method="c14n", exclusive=True),
    )
    signature.find(f"{{{b.DS}}}SignatureValue").text = sigtools.base64.b64encode(value).decode()
    for _ in range(8):
        tree.insert(0, copy.deepcopy(signature))
    policy = pki.policy(signature_methods=frozenset({"rsa-pss-sha256"}))
    data = b.xml(tree)
    unpacked = unpack(data, attachments=b_attachments())
    root = xmlsafe.parse(unpacked.envelope.payload)
    started = time.perf_counter()
    verified = portalsig.verify_osci(unpacked, unpacked.envelope.payload, root, policy, NOW)
    elapsed = time.perf_counter() - started
    assert verified.signed
    assert elapsed < TIME_BOUND, elapsed


def b_attachments():
    """The default attachment policy with room for the 2 MB test attachment."""
    from hub.core.transport import AttachmentPolicy

    return AttachmentPolicy(max_bytes=4 * 1024 * 1024)


def test_now_must_be_aware(pki):
    unpacked = unpack(b.xml(inline_tree()))
    root = xmlsafe.parse(unpacked.envelope.payload)
    with pytest.raises(ValueError, match="timezone"):
        portalsig.verify_osci(
            unpacked, unpacked.envelope.payload, root, pki.policy(), NOW.replace(tzinfo=None)
        )


C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_11 = "http://www.w3.org/2006/12/xml-c14n11"
XML = "http://www.w3.org/XML/1998/namespace"


def _payload_content(xml_attributes: str, *, exclusive: bool = False) -> bytes:
    """The payload's Content as a document subset, written out from the specifications.

    Inclusive C14N renders the apex with every namespace in scope (``osci``, and
    ``soap`` from the envelope), sorted by prefix, then its attributes sorted by
    namespace URI and local name: ``Id`` (no namespace) before the ``xml:`` attributes
    the apex inherits from its ancestors. Exclusive C14N renders only the namespaces
    the subset uses.
    """
    b64 = base64.b64encode(PAYLOAD).decode()
    soap = "" if exclusive else f' xmlns:soap="{b.SOAP}"'
    return (
        f'<osci:Content xmlns:osci="{b.OSCI}"{soap} Id="payload"{xml_attributes}>'
        f"<osci:Base64Content>{b64}</osci:Base64Content></osci:Content>"
    ).encode()


def _tree_below_xml_attributes(**attributes: str) -> tuple[etree._Element, etree._Element]:
    """The inline package in a SOAP envelope whose Body carries ``xml:`` attributes.

    The OSCI elements themselves carry no ``xml:`` attribute (the unpacker allows only
    their ``Id``s), so what a Content inherits comes from the SOAP envelope around the
    package. Returns the envelope and the container.
    """
    envelope = b.soap(inline_tree())
    body = envelope[1]
    for name, value in attributes.items():
        body.set(f"{{{XML}}}{name}", value)
    return envelope, body[0][0]


class TestInheritedXmlAttributes:
    """Inclusive C14N of a ``#Id`` reference gives its element the ancestors' ``xml:`` attributes.

    libxml2 leaves them out of an element's canonical form; a signer following Canonical
    XML 1.0 or 1.1 section 2.4 (e.g. Apache Santuario) digests them, so each signature here
    digests the form written out by hand from the specification.
    """

    def _signed(self, pki, algorithm: str, digested: bytes, **attributes: str) -> bytes:
        envelope, container = _tree_below_xml_attributes(**attributes)
        return self._sign(pki, envelope, container, algorithm, digested)

    @staticmethod
    def _sign(pki, envelope, container, algorithm: str, digested: bytes) -> bytes:
        options = {"transform": algorithm, "digested": {"#payload": digested}}
        signature = b.signature_over(
            envelope, ["#payload"], pki.signer.key, [pki.signer.cert], **options
        )
        container.insert(0, signature)
        return b.xml(envelope)

    def test_c14n_10_inherits_every_xml_attribute(self, pki):
        canonical = _payload_content(' xml:id="cc-x" xml:lang="de" xml:space="preserve"')
        data = self._signed(pki, C14N_10, canonical, lang="de", space="preserve", id="cc-x")
        assert verify(data, pki.policy()).signed

    def test_c14n_11_inherits_lang_and_space_but_not_id(self, pki):
        canonical = _payload_content(' xml:lang="de" xml:space="preserve"')
        data = self._signed(pki, C14N_11, canonical, lang="de", space="preserve", id="cc-x")
        assert verify(data, pki.policy()).signed

    @pytest.mark.parametrize(
        ("algorithm", "xml_attributes"),
        [
            (C14N_10, ""),  # libxml2's form of the element alone
            (C14N_10, ' xml:lang="de"'),  # xml:id left out
            (C14N_11, ' xml:id="cc-x" xml:lang="de"'),  # xml:id is not inherited in 1.1
        ],
    )
    def test_a_digest_over_another_form_does_not_verify(self, pki, algorithm, xml_attributes):
        canonical = _payload_content(xml_attributes)
        data = self._signed(pki, algorithm, canonical, lang="de", id="cc-x")
        assert rejected(data, pki.policy()).reason is Reason.SIG_DIGEST

    def test_the_nearest_ancestor_wins_and_the_element_own_value_wins(self, pki):
        envelope, container = _tree_below_xml_attributes(lang="de")
        envelope.set(f"{{{XML}}}lang", "en")  # the Envelope's, further up
        envelope.set(f"{{{XML}}}space", "default")  # only on the Envelope
        canonical = _payload_content(' xml:lang="de" xml:space="default"')
        assert verify(self._sign(pki, envelope, container, C14N_10, canonical), pki.policy()).signed

    def test_the_element_own_value_wins(self, pki):
        envelope, container = _tree_below_xml_attributes(lang="de")
        payload_content = container[0]
        payload_content.set(f"{{{XML}}}lang", "tr")
        # The unpacker allows only Id on a Content: this one is refused before any digest.
        data = self._sign(pki, envelope, container, C14N_10, _payload_content(' xml:lang="tr"'))
        assert rejected(data, pki.policy()).reason is Reason.CONTAINER

    def test_exclusive_c14n_inherits_nothing(self, pki):
        canonical = _payload_content("", exclusive=True)
        data = self._signed(pki, b.EXC_C14N, canonical, lang="de")
        assert verify(data, pki.policy()).signed

    def test_c14n_11_below_an_xml_base_is_refused(self, pki):
        """1.1 joins the ancestors' xml:base into the apex's; the hub does not compute that join."""
        canonical = _payload_content(' xml:lang="de"')
        data = self._signed(pki, C14N_11, canonical, lang="de", base="https://example.org/a/")
        assert rejected(data, pki.policy()).reason is Reason.SIG_INVALID
        # Canonical XML 1.0 inherits xml:base as it stands.
        canonical = _payload_content(' xml:base="https://example.org/a/" xml:lang="de"')
        data = self._signed(pki, C14N_10, canonical, lang="de", base="https://example.org/a/")
        assert verify(data, pki.policy()).signed

    def test_the_tree_is_left_as_it_was(self, pki):
        canonical = _payload_content(' xml:lang="de"')
        data = self._signed(pki, C14N_10, canonical, lang="de")
        unpacked = unpack(data)
        root = xmlsafe.parse(unpacked.envelope.payload)
        tree = unpacked.package.getroottree()
        before = [dict(e.attrib) for e in tree.iter() if isinstance(e.tag, str)]
        portalsig.verify_osci(unpacked, unpacked.envelope.payload, root, pki.policy(), NOW)
        assert before == [dict(e.attrib) for e in tree.iter() if isinstance(e.tag, str)]
        assert any(f"{{{XML}}}lang" in attributes for attributes in before)
