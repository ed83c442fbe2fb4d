"""Decryption of one XML Encryption ``xenc:EncryptedData`` element with RSA-OAEP + AES. Pure.

Supported, and nothing else:

- the content key in an ``xenc:EncryptedKey`` inside the data's ``ds:KeyInfo``,
  transported with ``rsa-oaep-mgf1p`` (XML-Enc 1.0) or ``xmlenc11#rsa-oaep``,
  digest SHA-1/256/384/512 (``ds:DigestMethod``, default SHA-1) and MGF1 with
  SHA-1/224/256/384/512 (``xenc11:MGF``, default SHA-1), no ``OAEPparams``;
- the data in an inline ``xenc:CipherData/xenc:CipherValue``, encrypted with
  AES-GCM (``xmlenc11#aes128-gcm``/``aes192-gcm``/``aes256-gcm``; 12-byte IV,
  or the 16-byte IV of older OSCI libraries, then the 16-byte tag) or AES-CBC
  (``xmlenc#aes128-cbc``/``aes192-cbc``/``aes256-cbc``; 16-byte IV, XML-Enc
  padding).

Not supported: RSA PKCS#1 v1.5 key transport, Triple-DES, key agreement, key
wrap, ``xenc:CipherReference`` and EncryptedKeys outside the EncryptedData.

Which configured key to use: an EncryptedKey that names its recipient (its
``Recipient`` attribute or a ``ds:KeyName``) is tried with the configured key of
that name only; one that names no configured key is tried with every
configured key (OAEP tells a wrong key apart). Reasons: no keys configured,
``ENCRYPTED``; unsupported algorithms, no key that opens the content key, or
content that does not decrypt, ``DECRYPT``; a malformed element, ``CONTAINER``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from lxml import etree

from hub.core.errors import Reason, Rejection
from hub.core.transport._codec import b64decode_strict

XENC = "http://www.w3.org/2001/04/xmlenc#"
XENC11 = "http://www.w3.org/2009/xmlenc11#"
DS = "http://www.w3.org/2000/09/xmldsig#"
_XENC = f"{{{XENC}}}"
_XENC11 = f"{{{XENC11}}}"
_DS = f"{{{DS}}}"

DecryptionKeys = Mapping[str, rsa.RSAPrivateKey]

_GCM_IV_LENGTHS = (12, 16)
_GCM_TAG = 16
_AES_BLOCK = 16
_DATA_ALGORITHMS: dict[str, tuple[str, int]] = {
    f"{XENC}aes128-cbc": ("cbc", 16),
    f"{XENC}aes192-cbc": ("cbc", 24),
    f"{XENC}aes256-cbc": ("cbc", 32),
    f"{XENC11}aes128-gcm": ("gcm", 16),
    f"{XENC11}aes192-gcm": ("gcm", 24),
    f"{XENC11}aes256-gcm": ("gcm", 32),
}
_KEY_TRANSPORT = frozenset({f"{XENC}rsa-oaep-mgf1p", f"{XENC11}rsa-oaep"})
_DIGESTS: dict[str, type[hashes.HashAlgorithm]] = {
    f"{DS}sha1": hashes.SHA1,
    f"{XENC}sha256": hashes.SHA256,
    "http://www.w3.org/2001/04/xmldsig-more#sha384": hashes.SHA384,
    f"{XENC}sha512": hashes.SHA512,
}
_MGFS: dict[str, type[hashes.HashAlgorithm]] = {
    f"{XENC11}mgf1sha1": hashes.SHA1,
    f"{XENC11}mgf1sha224": hashes.SHA224,
    f"{XENC11}mgf1sha256": hashes.SHA256,
    f"{XENC11}mgf1sha384": hashes.SHA384,
    f"{XENC11}mgf1sha512": hashes.SHA512,
}


@dataclass(frozen=True, slots=True)
class Decrypted:
    plaintext: bytes = field(repr=False)
    mime_type: str | None  # the EncryptedData's MimeType attribute, if any


def decrypt(
    encrypted: etree._Element, keys: DecryptionKeys | None, *, where: str, max_keys: int = 8
) -> Decrypted:
    """Decrypt ``encrypted`` with one of ``keys``; ``where`` is its location for rejections."""
    if not keys:
        raise Rejection(Reason.ENCRYPTED, where)
    method = _algorithm(_child(encrypted, f"{_XENC}EncryptionMethod", where), where)
    if method not in _DATA_ALGORITHMS:
        raise Rejection(Reason.DECRYPT, f"{where}/EncryptionMethod")
    mode, key_length = _DATA_ALGORITHMS[method]
    key_info = _child(encrypted, f"{_DS}KeyInfo", where)
    encrypted_keys = [c for c in key_info if c.tag == f"{_XENC}EncryptedKey"]
    if len(encrypted_keys) > max_keys:
        raise Rejection(Reason.CONTAINER, f"{where}/KeyInfo")
    ciphertext = _cipher_value(encrypted, where)
    content_key = _content_key(encrypted_keys, keys, f"{where}/KeyInfo/EncryptedKey")
    if len(content_key) != key_length:
        raise Rejection(Reason.DECRYPT, f"{where}/KeyInfo/EncryptedKey")
    if mode == "gcm":
        plaintext = _open_gcm(content_key, ciphertext, where)
    else:
        plaintext = _open_cbc(content_key, ciphertext, where)
    return Decrypted(plaintext, encrypted.get("MimeType"))


def _child(parent: etree._Element, tag: str, where: str) -> etree._Element:
    found = [c for c in parent if c.tag == tag]
    if len(found) != 1:
        raise Rejection(Reason.CONTAINER, f"{where}/{tag.rsplit('}', 1)[-1]}")
    return found[0]


def _algorithm(method: etree._Element, where: str) -> str:
    algorithm = method.get("Algorithm")
    if algorithm is None:
        raise Rejection(Reason.CONTAINER, f"{where}/EncryptionMethod/@Algorithm")
    return algorithm.strip()


def _cipher_value(parent: etree._Element, where: str) -> bytes:
    cipher_data = _child(parent, f"{_XENC}CipherData", where)
    if any(c.tag == f"{_XENC}CipherReference" for c in cipher_data):
        raise Rejection(Reason.DECRYPT, f"{where}/CipherData/CipherReference")
    value = _child(cipher_data, f"{_XENC}CipherValue", f"{where}/CipherData")
    data = b64decode_strict(value.text or "") if len(value) == 0 else None
    if not data:
        raise Rejection(Reason.CONTAINER, f"{where}/CipherData/CipherValue")
    return data


def _content_key(encrypted_keys: list[etree._Element], keys: DecryptionKeys, where: str) -> bytes:
    if not encrypted_keys:
        raise Rejection(Reason.DECRYPT, where)
    for encrypted_key in encrypted_keys:
        method = _child(encrypted_key, f"{_XENC}EncryptionMethod", where)
        oaep = _oaep(method)
        if oaep is None:
            continue
        wrapped = _cipher_value(encrypted_key, where)
        for private_key in _candidates(encrypted_key, keys):
            try:
                return private_key.decrypt(wrapped, oaep)
            except ValueError:
                continue
    raise Rejection(Reason.DECRYPT, where)


def _oaep(method: etree._Element) -> padding.OAEP | None:
    """The OAEP parameters an EncryptionMethod declares, or None if they are not supported."""
    if (method.get("Algorithm") or "").strip() not in _KEY_TRANSPORT:
        return None
    digest: type[hashes.HashAlgorithm] = hashes.SHA1
    mgf: type[hashes.HashAlgorithm] = hashes.SHA1
    for child in method.iterchildren("*"):  # elements only, no comments
        algorithm = (child.get("Algorithm") or "").strip()
        if child.tag == f"{_DS}DigestMethod" and algorithm in _DIGESTS:
            digest = _DIGESTS[algorithm]
        elif child.tag == f"{_XENC11}MGF" and algorithm in _MGFS:
            mgf = _MGFS[algorithm]
        else:
            return None  # OAEPparams, unknown digests and anything else: not supported
    return padding.OAEP(mgf=padding.MGF1(mgf()), algorithm=digest(), label=None)


def _candidates(encrypted_key: etree._Element, keys: DecryptionKeys) -> list[rsa.RSAPrivateKey]:
    names = {(encrypted_key.get("Recipient") or "").strip()}
    for key_info in encrypted_key.iterchildren(f"{_DS}KeyInfo"):
        names.update((n.text or "").strip() for n in key_info.iterchildren(f"{_DS}KeyName"))
    named = [keys[name] for name in sorted(names) if name in keys]
    return named or list(keys.values())


def _open_gcm(key: bytes, ciphertext: bytes, where: str) -> bytes:
    aead = AESGCM(key)
    for iv_length in _GCM_IV_LENGTHS:
        if len(ciphertext) < iv_length + _GCM_TAG:
            continue
        try:
            return aead.decrypt(ciphertext[:iv_length], ciphertext[iv_length:], None)
        except InvalidTag:
            continue
    raise Rejection(Reason.DECRYPT, f"{where}/CipherData")


def _open_cbc(key: bytes, ciphertext: bytes, where: str) -> bytes:
    if len(ciphertext) < 2 * _AES_BLOCK or len(ciphertext) % _AES_BLOCK:
        raise Rejection(Reason.DECRYPT, f"{where}/CipherData")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(ciphertext[:_AES_BLOCK])).decryptor()
    padded = decryptor.update(ciphertext[_AES_BLOCK:]) + decryptor.finalize()
    # XML-Enc padding: the last byte says how many bytes to drop (1..16); the others are arbitrary.
    count = padded[-1]
    if not 1 <= count <= _AES_BLOCK:
        raise Rejection(Reason.DECRYPT, f"{where}/CipherData")
    return padded[:-count]
