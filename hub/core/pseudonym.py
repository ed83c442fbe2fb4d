"""Person pseudonyms: keyed HMAC-SHA256 of a stable identifier, with a rotatable key ring. Pure.

A person's key on every topic (consent records, transfer requests) is a
pseudonym, never an identifier in clear::

    psn-<key id>-<32 hex>     e.g. psn-k2027-3f9a…

The hex part is the first 128 bits of ``HMAC-SHA256(key, "sozialhub.pseudonym/1"
US kind US normalised value)`` (US: the unit separator ``\\x1f``). The key id
says which key of the :class:`KeyRing` made it, so a pseudonym stays checkable
after the current key changed: :meth:`KeyRing.matches` recomputes it under the
key it names, :meth:`KeyRing.candidates` lists the person's pseudonym under
every key of the ring (current first). The re-keying procedure is in
docs/consent.md#key-rotation.

Identifiers (:class:`Identifier`), in order of preference:

- ``idnr``: the Steuer-ID (IdNr, § 139b AO), the cross-register identifier of the
  Registermodernisierung. Checked: 11 digits, no leading zero, in the first ten
  digits exactly one digit twice or three times (three not in a row) and every
  other at most once, and the check digit (ISO/IEC 7064 MOD 11,10).
- ``rvnr``: the Versicherungsnummer of the pension insurance; format only
  (12 characters, ``NNDDMMYYLNNC``), its check digit is not verified yet.
- ``local:<office id>``: an office's own person number, namespaced by the
  office, for persons without IdNr; a pseudonym of one office's number never
  meets another office's.

The same person has different pseudonyms under different identifier kinds: use
the IdNr wherever it is known. Errors name the identifier kind, never its value;
an :class:`Identifier`'s and a key's ``repr`` mask the value.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from hub.core.errors import Reason, Rejection

PSEUDONYM = re.compile(r"psn-([a-z0-9]{1,12})-([0-9a-f]{32})")
KEY_ID = re.compile(r"[a-z0-9]{1,12}")
MIN_KEY_BYTES = 32
IDENTIFIER_KINDS: dict[str, str] = {
    "idnr": "Steuerliche Identifikationsnummer (§ 139b AO)",
    "rvnr": "Versicherungsnummer der Rentenversicherung (§ 147 SGB VI)",
    "local": "an office's own person number: kind local:<office id>",
}
_DOMAIN = b"sozialhub.pseudonym/1"
_LOCAL_KIND = re.compile(r"local:[a-z][a-z0-9-]{1,62}")
_RVNR = re.compile(r"[0-9]{8}[A-Z][0-9]{3}")
_LOCAL_VALUE = re.compile(r"[A-Z0-9][A-Z0-9./_-]{0,63}")
_SEPARATORS = re.compile(r"[\s/.-]")  # how IdNr are written on forms: "86 095 742 719"


def is_pseudonym(text: str) -> bool:
    """Shaped like a pseudonym this module makes (says nothing about the key)."""
    return PSEUDONYM.fullmatch(text) is not None


def idnr_check_digit(first_ten: str) -> int:
    """The IdNr check digit of ten digits: ISO/IEC 7064 MOD 11,10 (a hybrid system)."""
    product = 10
    for char in first_ten:
        total = (int(char) + product) % 10 or 10
        product = (total * 2) % 11
    check = 11 - product
    return 0 if check == 10 else check


def idnr_valid(text: str) -> bool:
    """Whether ``text`` (digits only, already normalised) is a well-formed IdNr."""
    if len(text) != 11 or not text.isascii() or not text.isdigit() or text[0] == "0":
        return False
    head = text[:10]
    counts = [head.count(d) for d in set(head)]
    repeated = [c for c in counts if c > 1]
    if len(repeated) != 1 or repeated[0] not in (2, 3):
        return False
    if repeated[0] == 3 and any(head[i] == head[i + 1] == head[i + 2] for i in range(8)):
        return False  # a digit used three times must not stand three times in a row
    return idnr_check_digit(head) == int(text[10])


@dataclass(frozen=True, slots=True)
class Identifier:
    """A normalised, validated stable identifier of a person. Build it with :func:`identifier`."""

    kind: str
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return f"Identifier(kind={self.kind!r}, value='***')"

    def message(self) -> bytes:
        """What the HMAC covers: a domain tag, the kind and the normalised value."""
        return b"\x1f".join((_DOMAIN, self.kind.encode(), self.value.encode()))


def identifier(kind: str, value: str) -> Identifier:
    """Normalise and check ``value`` as an identifier of ``kind``; ``IDENTIFIER`` if it is not one.

    Normalisation: Unicode NFKC, then for ``idnr`` spaces, ``/``, ``.`` and ``-``
    are removed; ``rvnr`` and ``local:…`` values lose surrounding whitespace and
    are upper-cased (``rvnr`` loses inner spaces too).
    """
    text = unicodedata.normalize("NFKC", value)
    if kind == "idnr":
        text = _SEPARATORS.sub("", text)
        if not idnr_valid(text):
            raise Rejection(Reason.IDENTIFIER, "idnr")
        return Identifier("idnr", text)
    if kind == "rvnr":
        text = re.sub(r"\s", "", text).upper()
        if _RVNR.fullmatch(text) is None:
            raise Rejection(Reason.IDENTIFIER, "rvnr")
        return Identifier("rvnr", text)
    if _LOCAL_KIND.fullmatch(kind):
        text = text.strip().upper()
        if _LOCAL_VALUE.fullmatch(text) is None:
            raise Rejection(Reason.IDENTIFIER, "local")
        return Identifier(kind, text)
    raise Rejection(Reason.IDENTIFIER, "kind")


@dataclass(frozen=True, slots=True)
class PseudonymKey:
    """One HMAC key of the ring. Its ``repr`` shows the id only."""

    key_id: str
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if KEY_ID.fullmatch(self.key_id) is None:
            raise ValueError("a pseudonym key id is 1 to 12 lower-case letters or digits")
        if len(self.secret) < MIN_KEY_BYTES:
            raise ValueError(f"pseudonym key {self.key_id} is shorter than {MIN_KEY_BYTES} bytes")

    def pseudonym(self, person: Identifier) -> str:
        digest = hmac.new(self.secret, person.message(), hashlib.sha256).hexdigest()
        return f"psn-{self.key_id}-{digest[:32]}"


class KeyRing:
    """The current pseudonym key and the previous ones still honoured.

    New pseudonyms use the current key. A pseudonym made under a previous key
    still :meth:`matches`, and :meth:`candidates` lists all of a person's
    pseudonyms, so state keyed under an old pseudonym can be found and moved
    (docs/consent.md#key-rotation). A key removed from the ring makes its
    pseudonyms unlinkable.
    """

    __slots__ = ("_current", "_keys")

    def __init__(self, keys: Iterable[PseudonymKey], current: str) -> None:
        by_id: dict[str, PseudonymKey] = {}
        for key in keys:
            if key.key_id in by_id:
                raise ValueError(f"pseudonym key {key.key_id} is in the ring twice")
            by_id[key.key_id] = key
        if current not in by_id:
            raise ValueError("the current pseudonym key is not in the ring")
        secrets = [k.secret for k in by_id.values()]
        if len(set(secrets)) != len(secrets):
            raise ValueError("two pseudonym keys of the ring share a secret")
        self._keys: Mapping[str, PseudonymKey] = by_id
        self._current = by_id[current]

    @property
    def current(self) -> str:
        """The id of the key new pseudonyms are made with."""
        return self._current.key_id

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id of the ring, the current one first, the others sorted."""
        return (self.current, *sorted(k for k in self._keys if k != self.current))

    def pseudonym(self, person: Identifier) -> str:
        """The person's pseudonym under the current key."""
        return self._current.pseudonym(person)

    def candidates(self, person: Identifier) -> tuple[str, ...]:
        """The person's pseudonym under every key of the ring, the current key's first."""
        return tuple(self._keys[k].pseudonym(person) for k in self.key_ids)

    def matches(self, person: Identifier, pseudonym: str) -> bool:
        """Whether ``pseudonym`` is this person's under the ring key it names (constant time)."""
        found = PSEUDONYM.fullmatch(pseudonym)
        if found is None or found.group(1) not in self._keys:
            return False
        expected = self._keys[found.group(1)].pseudonym(person)
        return hmac.compare_digest(expected.encode(), pseudonym.encode())

    def __repr__(self) -> str:
        return f"KeyRing(current={self.current!r}, keys={list(self.key_ids)!r})"
