"""Builders of OSCI-Transport 1.2 content packages for tests.

Small element builders (:func:`package`, :func:`container`, :func:`inline`,
:func:`reference`, :func:`nested`), a ``multipart/related`` writer in the
shape the OSCI library writes (:func:`mime`), a real XMLDSig author signature
over a container (:func:`sign_package`, :func:`sign_container`) and XML
Encryption of a container (:func:`encrypt`). Everything is built with lxml or
byte concatenation of fixed, test-controlled values.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree
from signxml import DigestAlgorithm, SignatureConstructionMethod, SignatureMethod, XMLSigner
from signxml.algorithms import CanonicalizationMethod

from hub.keys import ephemeral_certificate

OSCI = "http://www.osci.de/2002/04/osci"
DS = "http://www.w3.org/2000/09/xmldsig#"
XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
NSMAP = {"osci": OSCI}

PAYLOAD = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<antrag xmlns="urn:sozialhub:test"><person>Erika Mustermann</person></antrag>'
)
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
NOW = dt.datetime(2026, 11, 2, 10, 0, tzinfo=dt.UTC)


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


# --- elements ------------------------------------------------------------------------------------


def package(*children: etree._Element) -> etree._Element:
    root = etree.Element(_q(OSCI, "ContentPackage"), nsmap=NSMAP)
    root.extend(children)
    return root


def container(*children: etree._Element, ident: str | None = "cc1") -> etree._Element:
    element = etree.Element(_q(OSCI, "ContentContainer"), nsmap=NSMAP)
    if ident is not None:
        element.set("Id", ident)
    element.extend(children)
    return element


def inline(
    data: bytes, ident: str | None = None, *, id_on_base64: bool = False, text: str | None = None
) -> etree._Element:
    """``osci:Content`` with ``osci:Base64Content``; the OSCI library puts the Id on the latter."""
    content = etree.Element(_q(OSCI, "Content"), nsmap=NSMAP)
    b64 = etree.SubElement(content, _q(OSCI, "Base64Content"))
    if ident is not None:
        (b64 if id_on_base64 else content).set("Id", ident)
    b64.text = text if text is not None else base64.b64encode(data).decode("ascii")
    return content


def reference(cid: str, ident: str | None = None) -> etree._Element:
    content = etree.Element(_q(OSCI, "Content"), nsmap=NSMAP)
    if ident is not None:
        content.set("Id", ident)
    content.set("href", f"cid:{cid}")
    return content


def nested(inner: etree._Element, ident: str | None = None) -> etree._Element:
    content = etree.Element(_q(OSCI, "Content"), nsmap=NSMAP)
    if ident is not None:
        content.set("Id", ident)
    content.append(inner)
    return content


def soap(body_child: etree._Element) -> etree._Element:
    envelope = etree.Element(_q(SOAP, "Envelope"), nsmap={"soap": SOAP, "osci": OSCI})
    etree.SubElement(envelope, _q(SOAP, "Header"))
    etree.SubElement(envelope, _q(SOAP, "Body")).append(body_child)
    return envelope


def xml(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


def inline_package() -> bytes:
    """Payload and a PDF attachment, both inline."""
    return xml(package(container(inline(PAYLOAD, "payload"), inline(PDF, "att1"))))


def nested_package(depth: int = 2, payload: bytes = PAYLOAD) -> bytes:
    """The payload in the innermost of ``depth`` nested containers (``cc1`` outermost)."""
    inner = container(inline(payload, "payload"), inline(PDF, "att1"), ident=f"cc{depth}")
    for level in range(depth - 1, 0, -1):
        inner = container(nested(inner, f"n{level}"), ident=f"cc{level}")
    return xml(package(inner))


# --- MIME ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MimePart:
    content_id: str | None
    data: bytes
    content_type: str | None = "application/octet-stream"
    transfer_encoding: str | None = "binary"
    filename: str | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def render(self) -> bytes:
        lines: list[str] = []
        if self.content_type is not None:
            lines.append(f"Content-Type: {self.content_type}")
        if self.transfer_encoding is not None:
            lines.append(f"Content-Transfer-Encoding: {self.transfer_encoding}")
        if self.content_id is not None:
            lines.append(f"Content-ID: <{self.content_id}>")
        if self.filename is not None:
            lines.append(f'Content-Disposition: attachment; filename="{self.filename}"')
        lines.extend(f"{name}: {value}" for name, value in self.headers)
        body = self.data
        if (self.transfer_encoding or "").lower() == "base64":
            encoded = base64.b64encode(self.data)
            body = b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


def root_part(document: bytes, content_id: str | None = "osci@message") -> MimePart:
    return MimePart(content_id, document, "text/xml; charset=UTF-8", "8bit")


def mime(
    parts: Sequence[MimePart],
    *,
    boundary: str = "MIME_boundary",
    start: str | None = "<osci@message>",
    content_type: str | None = None,
    leading_newline: bool = True,
    close: bool = True,
) -> bytes:
    """A multipart/related message as the OSCI library writes it (``type=text/xml`` unquoted)."""
    if content_type is None:
        content_type = f"Multipart/Related; boundary={boundary}; type=text/xml"
        if start is not None:
            content_type += f'; start="{start}"'
    head = f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode("ascii")
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part.render() + b"\r\n" for part in parts)
    if close:
        body += b"--" + boundary.encode() + b"--\r\n"
    return (b"\r\n" if leading_newline else b"") + head + body


def mime_package() -> bytes:
    """Payload, a PDF and a PNG as attachments referenced by cid, as the OSCI library sends them."""
    document = xml(
        package(
            container(
                reference("payload@test", "c-payload"),
                reference("antrag.pdf@test", "c-pdf"),
                reference("foto@test", "c-png"),
            )
        )
    )
    return mime(
        [
            root_part(document),
            MimePart("payload@test", PAYLOAD, "text/xml"),
            MimePart("antrag.pdf@test", PDF, "application/pdf", filename="antrag.pdf"),
            MimePart("foto@test", PNG, "image/png", "base64", filename="foto.png"),
        ]
    )


# --- signatures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Author:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate


def make_author(name: str = "Sozialplattform Autor") -> Author:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return Author(key, ephemeral_certificate(key, name, now=NOW))


def detached_signature(root: etree._Element, uris: list[str], author: Author) -> etree._Element:
    signer = XMLSigner(
        method=SignatureConstructionMethod.detached,
        signature_algorithm=SignatureMethod.SHA256_RSA_MGF1,
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    return signer.sign(root, key=author.key, cert=[author.certificate], reference_uri=uris)


def sign_package(root: etree._Element, container_id: str, author: Author) -> etree._Element:
    """A detached signature over ``#container_id`` as the first child of the ContentPackage."""
    root.insert(0, detached_signature(root, [f"#{container_id}"], author))
    return root


def sign_container(
    root: etree._Element, container: etree._Element, author: Author
) -> etree._Element:
    """The OSCI library's placement: inside the container, one reference per Content Id."""
    uris = [f"#{c.get('Id')}" for c in container.iterchildren(_q(OSCI, "Content"))]
    container.insert(0, detached_signature(root, uris, author))
    return root


# Method and digest names as the portal policy spells them, plus the weak ones attacks use.
METHOD_URIS = {
    "rsa-pss-sha256": "http://www.w3.org/2007/05/xmldsig-more#sha256-rsa-MGF1",
    "rsa-pss-sha512": "http://www.w3.org/2007/05/xmldsig-more#sha512-rsa-MGF1",
    "rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "ecdsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
}
DIGEST_URIS = {
    "sha256": "http://www.w3.org/2001/04/xmlenc#sha256",
    "sha512": "http://www.w3.org/2001/04/xmlenc#sha512",
    "sha1": "http://www.w3.org/2000/09/xmldsig#sha1",
}
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"


def _element_by_id(document: etree._Element, ident: str) -> etree._Element:
    found = [e for e in document.iter() if isinstance(e.tag, str) and e.get("Id") == ident]
    assert len(found) == 1, ident
    return found[0]


def signature_over(
    document: etree._Element,
    uris: Sequence[str],
    key: Any,
    certificates: Sequence[x509.Certificate],
    *,
    method: str = "rsa-pss-sha256",
    digest: str = "sha256",
    parts: dict[str, bytes] | None = None,
    transform: str | None = EXC_C14N,
    digested: dict[str, bytes] | None = None,
) -> etree._Element:
    """A detached ``ds:Signature`` as the OSCI library writes it, made by hand with any algorithm.

    ``#Id`` references digest the exclusive canonical form of the element in ``document``
    (with ``transform`` as their one Transform; None: no Transforms); ``cid:`` references
    digest the bytes ``parts`` gives for the Content-ID (no Transforms). The signature
    value is a real one over SignedInfo's exclusive canonical form, made with ``key``, also
    for methods the hub refuses (rsa-sha1), so only the policy can refuse them.
    ``digested`` gives the bytes to digest for a ``#Id`` reference instead (a canonical
    form a test writes out from the specification).
    """
    from tests.sigtools import raw_signature  # a test helper beside this one

    nsmap = {"ds": DS}
    signature = etree.Element(_q(DS, "Signature"), nsmap=nsmap)
    signed_info = etree.SubElement(signature, _q(DS, "SignedInfo"))
    etree.SubElement(signed_info, _q(DS, "CanonicalizationMethod"), Algorithm=EXC_C14N)
    etree.SubElement(signed_info, _q(DS, "SignatureMethod"), Algorithm=METHOD_URIS[method])
    for uri in uris:
        reference = etree.SubElement(signed_info, _q(DS, "Reference"), URI=uri)
        if uri.startswith("cid:"):
            data = (parts or {})[uri[4:]]
        else:
            target = _element_by_id(document, uri[1:])
            data = (digested or {}).get(uri) or etree.tostring(
                target, method="c14n", exclusive=True
            )
            if transform is not None:
                transforms = etree.SubElement(reference, _q(DS, "Transforms"))
                etree.SubElement(transforms, _q(DS, "Transform"), Algorithm=transform)
        etree.SubElement(reference, _q(DS, "DigestMethod"), Algorithm=DIGEST_URIS[digest])
        hasher = hashlib.new(digest, data)
        etree.SubElement(reference, _q(DS, "DigestValue")).text = base64.b64encode(
            hasher.digest()
        ).decode()
    value = raw_signature(
        key, METHOD_URIS[method], etree.tostring(signed_info, method="c14n", exclusive=True)
    )
    etree.SubElement(signature, _q(DS, "SignatureValue")).text = base64.b64encode(value).decode()
    x509_data = etree.SubElement(etree.SubElement(signature, _q(DS, "KeyInfo")), _q(DS, "X509Data"))
    for certificate in certificates:
        der = certificate.public_bytes(serialization.Encoding.DER)
        etree.SubElement(x509_data, _q(DS, "X509Certificate")).text = base64.b64encode(der).decode()
    return signature


# --- encryption ----------------------------------------------------------------------------------

KEY_LENGTHS = {"aes128": 16, "aes192": 24, "aes256": 32}


def reader_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def encrypt(
    element: etree._Element | bytes,
    public_key: rsa.RSAPublicKey,
    *,
    algorithm: str = "aes256-gcm",
    key_name: str | None = "reader",
    transport: str = "rsa-oaep",
    iv_length: int = 12,
    tamper: str | None = None,
) -> etree._Element:
    """``xenc:EncryptedData`` holding ``element`` (serialized with its namespace declarations).

    ``element`` may also be raw plaintext bytes, for hostile decrypted content.
    ``tamper``: flip a bit in the ``"first"`` (the IV) or ``"last"`` byte of the cipher value.
    """
    plaintext = element if isinstance(element, bytes) else etree.tostring(element)
    size, mode = algorithm.split("-")
    key = os.urandom(KEY_LENGTHS.get(size, 24))
    if mode == "gcm":
        iv = os.urandom(iv_length)
        value = iv + AESGCM(key).encrypt(iv, plaintext, None)
        method = f"{XENC11}{algorithm}"
    elif mode == "cbc":
        iv = os.urandom(16)
        padder = sym_padding.PKCS7(128).padder()
        padded = padder.update(plaintext) + padder.finalize()
        encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
        value = iv + encryptor.update(padded) + encryptor.finalize()
        method = f"{XENC}{algorithm}"
    else:  # an algorithm the hub does not support, e.g. "tripledes-cbc"
        value = os.urandom(32)
        method = f"{XENC}{algorithm}"
        key = os.urandom(24)
    if tamper == "last":
        value = value[:-1] + bytes([value[-1] ^ 1])
    elif tamper == "first":
        value = bytes([value[0] ^ 1]) + value[1:]
    encrypted = etree.Element(
        _q(XENC, "EncryptedData"),
        nsmap={"xenc": XENC, "ds": DS, "xenc11": XENC11},
        Type=f"{XENC}Element",
        MimeType="text/xml",
    )
    etree.SubElement(encrypted, _q(XENC, "EncryptionMethod"), Algorithm=method)
    key_info = etree.SubElement(encrypted, _q(DS, "KeyInfo"))
    key_info.append(_encrypted_key(key, public_key, transport, key_name))
    cipher_data = etree.SubElement(encrypted, _q(XENC, "CipherData"))
    etree.SubElement(cipher_data, _q(XENC, "CipherValue")).text = base64.b64encode(value).decode()
    return encrypted


def _encrypted_key(
    key: bytes, public_key: rsa.RSAPublicKey, transport: str, key_name: str | None
) -> etree._Element:
    encrypted_key = etree.Element(_q(XENC, "EncryptedKey"))
    if transport == "rsa-oaep":
        method = etree.SubElement(
            encrypted_key, _q(XENC, "EncryptionMethod"), Algorithm=f"{XENC11}rsa-oaep"
        )
        etree.SubElement(method, _q(DS, "DigestMethod"), Algorithm=f"{XENC}sha256")
        etree.SubElement(method, _q(XENC11, "MGF"), Algorithm=f"{XENC11}mgf1sha256")
        oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    elif transport == "rsa-oaep-mgf1p":
        etree.SubElement(
            encrypted_key, _q(XENC, "EncryptionMethod"), Algorithm=f"{XENC}rsa-oaep-mgf1p"
        )
        oaep = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)  # noqa: S303
    else:  # "rsa-1_5": refused by the hub
        etree.SubElement(encrypted_key, _q(XENC, "EncryptionMethod"), Algorithm=f"{XENC}rsa-1_5")
        oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    if key_name is not None:
        info = etree.SubElement(encrypted_key, _q(DS, "KeyInfo"))
        etree.SubElement(info, _q(DS, "KeyName")).text = key_name
    cipher_data = etree.SubElement(encrypted_key, _q(XENC, "CipherData"))
    wrapped = public_key.encrypt(key, oaep)
    etree.SubElement(cipher_data, _q(XENC, "CipherValue")).text = base64.b64encode(wrapped).decode()
    return encrypted_key
