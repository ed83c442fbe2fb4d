"""Canonical submission -> fixed-width records ``fv-fixed`` v1 (an ASSUMED contract).

The old payment-system style (DTAUS-like): a file of records of exactly
:data:`RECORD_LENGTH` characters in ISO-8859-15, each followed by CR LF. A header
record (``A``), the case (``V``), one record per benefit (``L``), per person
(``P``), per document reference (``D``), the hub receipt in base64 parts (``Q``)
and a trailer (``E``) with counts, the sum of the document sizes and a SHA-256
over everything before it. Documents travel *beside* the file; a ``D`` record
names the file (:func:`hub.core.documents.beside_file_name`), its MIME type,
size and SHA-256.

The layout is data (:data:`RECORD_TYPES`, published as
``schemas/vendor/fv-fixed-1.layout.json`` by :func:`layout`); one engine renders
it (:func:`render`) and parses it back (:func:`parse`). The field rules
(docs/formats.md):

- ``key`` (ids, codes, list URIs, postcodes, file names, base64): left-aligned,
  space-padded, never changed: a character ISO-8859-15 lacks is
  ``FIELD_CHARSET``, a value longer than the field ``FIELD_LENGTH``;
- ``text`` (names, street, house number, town, labels): left-aligned,
  space-padded; characters ISO-8859-15 lacks are transliterated by
  :data:`TRANSLITERATION` and the rules in :func:`_transliterate` (record flag
  ``umschrift`` = ``J``), anything else is ``FIELD_CHARSET``; a value longer than
  the field is cut to the field (record flag ``gekuerzt`` = ``J``);
- ``num``: right-aligned, zero-padded decimal digits; too many digits is
  ``FIELD_LENGTH``;
- ``date``: ``YYYYMMDD``, spaces when absent; ``bool``/``flag``: ``J`` or ``N``.

Control characters (Unicode Cc, line and paragraph separators) are
``FIELD_FORMAT`` in every field. Case is kept as sent. Trailing spaces are not
significant. Leading ``=``, ``+``, ``-``, ``@`` are carried unchanged: the
format is positional and never interpreted as a formula. Rejections name
``mapping/fv-fixed/<field>``, never the value.
"""

from __future__ import annotations

import base64
import hashlib
import re
import unicodedata
from collections.abc import Callable
from collections.abc import Mapping as ReadOnly
from dataclasses import dataclass
from typing import Any, Literal

from hub.core.documents import beside_file_name
from hub.core.errors import Reason, Rejection
from hub.core.mapping import DeliveryContext, Mapping, plain_date
from hub.core.model import Code, Person, Submission
from hub.core.route import Route

FORMAT = "fv-fixed"
VERSION = "fv-fixed/1.0.0"
STATUS = (
    "ASSUMED: the hub's proposal until the vendor supplies its import specification; "
    "it changes when the vendor does."
)
ENCODING = "ISO-8859-15"
_CODEC = "iso8859_15"
RECORD_LENGTH = 512
LINE_END = "\r\n"
RECEIPT_PART = 480  # base64 characters of the hub receipt per Q record

FieldType = Literal["const", "key", "text", "num", "date", "bool", "flag", "filler"]


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    length: int
    type: FieldType
    description: str
    value: str | None = None  # const: the literal; flag: "truncated" or "transliterated"


@dataclass(frozen=True, slots=True)
class RecordType:
    code: str
    name: str
    occurs: str
    description: str
    fields: tuple[Field, ...]  # the last one is the filler up to RECORD_LENGTH

    def starts(self) -> tuple[int, ...]:
        """0-based start of each field."""
        out, position = [], 0
        for field in self.fields:
            out.append(position)
            position += field.length
        return tuple(out)


def _record(code: str, name: str, occurs: str, description: str, *fields: Field) -> RecordType:
    head = (
        Field("satzart", 1, "const", "record type", code),
        Field("satzNr", 6, "num", "record number: 1 for the header, then consecutive"),
    )
    used = sum(f.length for f in (*head, *fields))
    filler = Field("filler", RECORD_LENGTH - used, "filler", "spaces up to the record length")
    return RecordType(code, name, occurs, description, (*head, *fields, filler))


def _code(prefix: str, what: str) -> tuple[Field, ...]:
    return (
        Field(f"{prefix}Code", 20, "key", f"{what}: code"),
        Field(f"{prefix}Liste", 60, "key", f"{what}: code list URI"),
        Field(f"{prefix}ListenVersion", 16, "key", f"{what}: code list version (spaces: none)"),
    )


_FLAGS = (
    Field(
        "gekuerzt", 1, "flag", "J: a text field of this record was cut to its length", "truncated"
    ),
    Field(
        "umschrift",
        1,
        "flag",
        "J: a text field of this record was transliterated",
        "transliterated",
    ),
)

RECORD_TYPES: tuple[RecordType, ...] = (
    _record(
        "A",
        "vorsatz",
        "1",
        "header: format version, character set, delivery and recipient",
        Field("formatVersion", 20, "key", "mapping version, e.g. fv-fixed/1.0.0"),
        Field("zeichensatz", 12, "const", "character set of the file", ENCODING),
        Field("satzlaenge", 4, "const", "record length without CR LF", f"{RECORD_LENGTH:04d}"),
        Field("lieferungId", 36, "key", "delivery id (dlv-...): deduplicate on it"),
        Field("einreichungId", 36, "key", "submission id (sub-...)"),
        Field("behoerde", 64, "key", "office id"),
        Field("dvdv", 20, "key", "the office's DVDV key (spaces: none configured)"),
        Field("regel", 8, "key", "routing rule: reader or area"),
    ),
    _record(
        "V",
        "vorgang",
        "1",
        "the case",
        Field("vorgangsId", 64, "key", "case id"),
        Field("nachrichtId", 64, "key", "message id"),
        Field("antragsDatum", 8, "date", "application date (spaces: none)"),
        Field("portal", 64, "key", "the portal's DVDV key (message author)"),
        *_code("vorgangsTyp", "case type"),
        Field("vorgangsTypName", 80, "text", "case type: code name"),
        *_FLAGS,
    ),
    _record(
        "L",
        "leistung",
        "1..n",
        "one per benefit routed to this office, in request order",
        Field("leistungNr", 3, "num", "position, from 1"),
        *_code("leistung", "benefit (LeiKa)"),
        Field("leistungName", 120, "text", "benefit: code name"),
        *_FLAGS,
    ),
    _record(
        "P",
        "person",
        "1..n",
        "one per person of the submission, in submission order; sex and address: spaces when none",
        Field("personNr", 3, "num", "position, from 1"),
        Field("personId", 64, "key", "person id within the submission"),
        Field("antragsteller", 1, "bool", "J: the applicant"),
        *_code("rolle", "role"),
        Field("vorname", 45, "text", "given name"),
        Field("nachname", 45, "text", "family name"),
        Field("geburtsdatum", 8, "date", "birth date (spaces: none)"),
        *_code("geschlecht", "sex"),
        Field("strasse", 50, "text", "street"),
        Field("hausnummer", 10, "text", "house number"),
        Field("plz", 10, "key", "postcode"),
        Field("ort", 40, "text", "town"),
        *_FLAGS,
    ),
    _record(
        "D",
        "dokument",
        "0..n",
        "one per document; the document itself is a file beside this one",
        Field("dokumentNr", 3, "num", "position, from 1"),
        Field("dokumentId", 64, "key", "document id"),
        Field("datei", 48, "key", "name of the file beside this one: <delivery id>.d<nn>.<ext>"),
        Field("mimeType", 40, "key", "media type of the file"),
        Field("groesse", 10, "num", "size of the file in bytes"),
        Field("sha256", 64, "key", "SHA-256 of the file, lower-case hex"),
        Field("dateiname", 80, "text", "the sender's file name (information only)"),
        Field("bezeichnung", 80, "text", "document name"),
        *_FLAGS,
    ),
    _record(
        "Q",
        "quittung",
        "1..n",
        "the signed hub receipt (XML), base64, in consecutive parts",
        Field("teilNr", 3, "num", "part number, from 1"),
        Field("daten", RECEIPT_PART, "key", "base64 characters of this part"),
    ),
    _record(
        "E",
        "nachsatz",
        "1",
        "trailer: counts, control sum and checksum",
        Field("anzahlSaetze", 6, "num", "number of records, header and trailer included"),
        Field("anzahlLeistungen", 3, "num", "number of L records"),
        Field("anzahlPersonen", 3, "num", "number of P records"),
        Field("anzahlDokumente", 3, "num", "number of D records"),
        Field("anzahlQuittungsteile", 3, "num", "number of Q records"),
        Field("summeGroessen", 12, "num", "sum of groesse over all D records"),
        Field("pruefsumme", 64, "key", "SHA-256 (lower-case hex) of every byte before this record"),
    ),
)
_TYPES = {t.code: t for t in RECORD_TYPES}
_ORDER = re.compile("AVL+P+D*Q+E")
_POSITIONS = {"L": "leistungNr", "P": "personNr", "D": "dokumentNr", "Q": "teilNr"}

# Characters ISO-8859-15 lacks that have a fixed replacement (docs/formats.md). Other Latin
# letters lose their diacritics (NFKD base letters); everything else not in the set is refused.
TRANSLITERATION: dict[str, str] = {
    # Latin letters without a Unicode decomposition
    "\N{LATIN CAPITAL LETTER L WITH STROKE}": "L",
    "\N{LATIN SMALL LETTER L WITH STROKE}": "l",
    "\N{LATIN CAPITAL LETTER D WITH STROKE}": "D",
    "\N{LATIN SMALL LETTER D WITH STROKE}": "d",
    "\N{LATIN CAPITAL LETTER H WITH STROKE}": "H",
    "\N{LATIN SMALL LETTER H WITH STROKE}": "h",
    "\N{LATIN CAPITAL LETTER T WITH STROKE}": "T",
    "\N{LATIN SMALL LETTER T WITH STROKE}": "t",
    "\N{LATIN SMALL LETTER DOTLESS I}": "i",
    "\N{LATIN CAPITAL LETTER ENG}": "N",
    "\N{LATIN SMALL LETTER ENG}": "n",
    "\N{LATIN CAPITAL LETTER SHARP S}": "SS",
    # Latin-1 characters ISO-8859-15 replaced
    "\N{ACUTE ACCENT}": "'",
    "\N{BROKEN BAR}": "|",
    "\N{VULGAR FRACTION ONE QUARTER}": "1/4",
    "\N{VULGAR FRACTION ONE HALF}": "1/2",
    "\N{VULGAR FRACTION THREE QUARTERS}": "3/4",
    # Typographic punctuation
    "\N{MODIFIER LETTER TURNED COMMA}": "'",
    "\N{MODIFIER LETTER APOSTROPHE}": "'",
    "\N{LEFT SINGLE QUOTATION MARK}": "'",
    "\N{RIGHT SINGLE QUOTATION MARK}": "'",
    "\N{SINGLE LOW-9 QUOTATION MARK}": ",",
    "\N{SINGLE HIGH-REVERSED-9 QUOTATION MARK}": "'",
    "\N{LEFT DOUBLE QUOTATION MARK}": '"',
    "\N{RIGHT DOUBLE QUOTATION MARK}": '"',
    "\N{DOUBLE LOW-9 QUOTATION MARK}": '"',
    "\N{DOUBLE HIGH-REVERSED-9 QUOTATION MARK}": '"',
    "\N{SINGLE LEFT-POINTING ANGLE QUOTATION MARK}": "<",
    "\N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK}": ">",
    "\N{PRIME}": "'",
    "\N{DOUBLE PRIME}": '"',
    "\N{HYPHEN}": "-",
    "\N{NON-BREAKING HYPHEN}": "-",
    "\N{FIGURE DASH}": "-",
    "\N{EN DASH}": "-",
    "\N{EM DASH}": "-",
    "\N{HORIZONTAL BAR}": "-",
    "\N{MINUS SIGN}": "-",
    "\N{HORIZONTAL ELLIPSIS}": "...",
}
TRANSLITERATION_RULES = (
    (
        "a value is first NFC-normalised; characters ISO-8859-15 has are kept, except U+00A0 "
        "(no-break space) and U+00AD (soft hyphen)"
    ),
    "characters in the table are replaced by their entry",
    "any other space separator (Unicode Zs, e.g. U+00A0, U+2009, U+3000) becomes U+0020",
    (
        "format characters (Unicode Cf: soft hyphen, zero-width space and joiners, bidi "
        "controls, BOM) and combining marks left after NFC (Mn, Me) are removed"
    ),
    (
        "any other Latin letter (Unicode name contains LATIN) or decimal digit becomes its NFKD "
        "decomposition without combining marks, if that is in ISO-8859-15 (e.g. U+0218 -> S, "
        "U+01C5 -> Dz, U+FB01 -> fi, full-width U+FF21 -> A)"
    ),
    "control characters (Cc) and line or paragraph separators (Zl, Zp) are refused: FIELD_FORMAT",
    (
        "everything else (other scripts, symbols, emoji, private use, unassigned) is refused: "
        "FIELD_CHARSET; so is a value that would become empty"
    ),
    "the record's flag umschrift is J when any text field of the record was changed",
)

# Characters a field may hold as they are: printable ISO-8859-15 without NBSP and soft hyphen.
_KEPT = "".join(bytes([b]).decode(_CODEC) for b in (*range(0x20, 0x7F), *range(0xA1, 0x100)))
_KEPT = _KEPT.replace("\u00ad", "")
_KEPT_SET = frozenset(_KEPT)
_PLAIN = re.compile(f"[{re.escape(_KEPT)}]*")
_CONTROL_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
_REMOVED_CATEGORIES = frozenset({"Cf", "Mn", "Me"})


def _fail(reason: Reason, field: Field | str) -> Rejection:
    name = field if isinstance(field, str) else field.name
    return Rejection(reason, f"mapping/{FORMAT}/{name}")


def _bad_character(value: str, field: Field) -> Rejection:
    """FIELD_FORMAT when the value holds a control character, else FIELD_CHARSET."""
    if any(unicodedata.category(c) in _CONTROL_CATEGORIES for c in value):
        return _fail(Reason.FIELD_FORMAT, field)
    return _fail(Reason.FIELD_CHARSET, field)


def _base_letters(char: str, category: str) -> str | None:
    if category[0] not in "LN":
        return None
    if category != "Nd" and "LATIN" not in unicodedata.name(char, ""):
        return None
    decomposed = unicodedata.normalize("NFKD", char)
    base = "".join(c for c in decomposed if unicodedata.category(c) not in ("Mn", "Me"))
    return base if base and _PLAIN.fullmatch(base) else None


def _replacement(char: str, field: Field | str) -> str:
    replacement = TRANSLITERATION.get(char)
    if replacement is not None:
        return replacement
    category = unicodedata.category(char)
    if category == "Zs":
        return " "
    if category in _REMOVED_CATEGORIES:
        return ""
    base = _base_letters(char, category)
    if base is None:
        raise _fail(Reason.FIELD_CHARSET, field)
    return base


def transliterate(value: str, field: Field | str) -> tuple[str, bool]:
    """``value`` in ISO-8859-15 by the documented rules, and whether it changed.

    Raises ``FIELD_FORMAT`` (control character) or ``FIELD_CHARSET`` at ``field``.
    """
    if _PLAIN.fullmatch(value):
        return value, False
    if any(unicodedata.category(c) in _CONTROL_CATEGORIES for c in value):
        raise _fail(Reason.FIELD_FORMAT, field)
    normal = unicodedata.normalize("NFC", value)
    if _PLAIN.fullmatch(normal):
        return normal, False  # NFC is what the hub keeps of every text anyway
    result = "".join(c if c in _KEPT_SET else _replacement(c, field) for c in normal)
    if not result.strip(" "):
        raise _fail(Reason.FIELD_CHARSET, field)
    return result, True


# ----------------------------------------------------------------------------- engine


def _key(value: object, field: Field) -> str:
    if value is None or value == "":
        return " " * field.length
    if not isinstance(value, str):
        raise _fail(Reason.MAPPING_ERROR, field)
    if not _PLAIN.fullmatch(value):
        raise _bad_character(value, field)
    if value.endswith(" "):
        raise _fail(Reason.FIELD_FORMAT, field)  # would not survive the space padding
    if len(value) > field.length:
        raise _fail(Reason.FIELD_LENGTH, field)
    return value.ljust(field.length)


def _text(value: object, field: Field) -> tuple[str, bool, bool]:
    """(padded field, truncated, transliterated)."""
    if value is None or value == "":
        return " " * field.length, False, False
    if not isinstance(value, str):
        raise _fail(Reason.MAPPING_ERROR, field)
    text, changed = transliterate(value, field)
    text = text.rstrip(" ")
    cut = len(text) > field.length
    return text[: field.length].ljust(field.length), cut, changed


def _num(value: object, field: Field) -> str:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _fail(Reason.MAPPING_ERROR, field)
    digits = str(value)
    if len(digits) > field.length:
        raise _fail(Reason.FIELD_LENGTH, field)
    return digits.zfill(field.length)


def _date(value: object, field: Field) -> str:
    if value is None or value == "":
        return " " * field.length
    if not isinstance(value, str):
        raise _fail(Reason.MAPPING_ERROR, field)
    return plain_date(value, f"mapping/{FORMAT}/{field.name}").replace("-", "")


def render_record(kind: RecordType, values: ReadOnly[str, object]) -> str:
    """One record of ``kind`` from ``values`` (by field name), exactly RECORD_LENGTH characters."""
    parts: list[str] = []
    truncated = transliterated = False
    flags: list[tuple[int, str | None]] = []
    for field in kind.fields:
        kind_of = field.type
        if kind_of == "key":
            parts.append(_key(values.get(field.name), field))
        elif kind_of == "text":
            text, cut, changed = _text(values.get(field.name), field)
            parts.append(text)
            truncated = truncated or cut
            transliterated = transliterated or changed
        elif kind_of == "num":
            parts.append(_num(values.get(field.name), field))
        elif kind_of == "date":
            parts.append(_date(values.get(field.name), field))
        elif kind_of == "bool":
            parts.append("J" if values.get(field.name) else "N")
        elif kind_of == "flag":
            flags.append((len(parts), field.value))
            parts.append("N")
        elif kind_of == "const":
            parts.append((field.value or "").ljust(field.length))
        else:  # filler
            parts.append(" " * field.length)
    for index, mark in flags:
        raised = truncated if mark == "truncated" else transliterated
        parts[index] = "J" if raised else "N"
    return "".join(parts)


def _code_values(prefix: str, code: Code | None) -> dict[str, object]:
    if code is None:
        return {}
    return {
        f"{prefix}Code": code.code,
        f"{prefix}Liste": code.list_uri,
        f"{prefix}ListenVersion": code.list_version,
    }


def _person_values(number: int, person: Person) -> dict[str, object]:
    address = person.address
    values: dict[str, object] = {
        "personNr": number,
        "personId": person.person_id,
        "antragsteller": person.applicant,
        **_code_values("rolle", person.role),
        "vorname": person.given_name,
        "nachname": person.family_name,
        "geburtsdatum": person.birth_date,
        **_code_values("geschlecht", person.sex),
    }
    if address is not None:
        values.update(
            strasse=address.street,
            hausnummer=address.house_number,
            plz=address.postcode,
            ort=address.town,
        )
    return values


def render(submission: Submission, route: Route, context: DeliveryContext) -> bytes:
    if not context.benefits:
        raise Rejection(Reason.MAPPING_ERROR, f"mapping/{FORMAT}/leistung")
    requested = {b.code: b for b in submission.benefits}
    if any(key not in requested for key in context.benefits):
        raise Rejection(Reason.MAPPING_ERROR, f"mapping/{FORMAT}/leistung")
    lines: list[str] = []

    def add(kind: str, values: dict[str, object]) -> None:
        lines.append(render_record(_TYPES[kind], {"satzNr": len(lines) + 1, **values}))

    office = route.office
    add(
        "A",
        {
            "formatVersion": VERSION,
            "lieferungId": context.delivery_id,
            "einreichungId": context.submission_id,
            "behoerde": office.office_id,
            "dvdv": office.dvdv,
            "regel": route.rule,
        },
    )
    add(
        "V",
        {
            "vorgangsId": submission.case_id,
            "nachrichtId": submission.message_id,
            "antragsDatum": submission.application_date,
            "portal": submission.author.key,
            **_code_values("vorgangsTyp", submission.case_type),
            "vorgangsTypName": submission.case_type.name,
        },
    )
    for number, key in enumerate(context.benefits, start=1):
        benefit = requested[key]
        add(
            "L",
            {
                "leistungNr": number,
                **_code_values("leistung", benefit),
                "leistungName": benefit.name,
            },
        )
    for number, person in enumerate(submission.persons, start=1):
        add("P", _person_values(number, person))
    for number, document in enumerate(submission.documents, start=1):
        add(
            "D",
            {
                "dokumentNr": number,
                "dokumentId": document.document_id,
                "datei": beside_file_name(context.delivery_id, number, document.mime_type),
                "mimeType": document.mime_type,
                "groesse": document.size,
                "sha256": document.sha256,
                "dateiname": document.file_name,
                "bezeichnung": document.name,
            },
        )
    receipt = base64.b64encode(context.receipt).decode("ascii")
    parts = [receipt[i : i + RECEIPT_PART] for i in range(0, len(receipt), RECEIPT_PART)] or [""]
    for number, part in enumerate(parts, start=1):
        add("Q", {"teilNr": number, "daten": part})
    try:
        body = "".join(line + LINE_END for line in lines).encode(_CODEC)
    except UnicodeEncodeError:  # unreachable: every field was checked against the set
        raise Rejection(Reason.FIELD_CHARSET, f"mapping/{FORMAT}") from None
    add(
        "E",
        {
            "anzahlSaetze": len(lines) + 1,
            "anzahlLeistungen": len(context.benefits),
            "anzahlPersonen": len(submission.persons),
            "anzahlDokumente": len(submission.documents),
            "anzahlQuittungsteile": len(parts),
            "summeGroessen": sum(d.size for d in submission.documents),
            "pruefsumme": hashlib.sha256(body).hexdigest(),
        },
    )
    return body + (lines[-1] + LINE_END).encode(_CODEC)


# ----------------------------------------------------------------------------- parse


class LayoutError(ValueError):
    """Bytes that are not a valid fv-fixed file; the message names a record and field, no value."""


def _parse_num(_field: Field, chunk: str, where: str) -> object:
    if not (chunk.isascii() and chunk.isdigit()):
        raise LayoutError(f"{where}: not zero-padded digits")
    return int(chunk)


def _parse_date(field: Field, chunk: str, where: str) -> object:
    if chunk == " " * field.length:
        return None
    try:
        return plain_date(f"{chunk[:4]}-{chunk[4:6]}-{chunk[6:]}", where)
    except Rejection:
        raise LayoutError(f"{where}: not a date YYYYMMDD") from None


def _parse_yes_no(_field: Field, chunk: str, where: str) -> object:
    if chunk not in ("J", "N"):
        raise LayoutError(f"{where}: not J or N")
    return chunk == "J"


def _parse_const(field: Field, chunk: str, where: str) -> object:
    if chunk != (field.value or "").ljust(field.length):
        raise LayoutError(f"{where}: not the constant")
    return chunk.rstrip(" ")


def _parse_filler(field: Field, chunk: str, where: str) -> object:
    if chunk != " " * field.length:
        raise LayoutError(f"{where}: filler not blank")
    return None


def _parse_alnum(_field: Field, chunk: str, _where: str) -> object:
    return chunk.rstrip(" ")


_PARSERS: dict[str, Callable[[Field, str, str], object]] = {
    "const": _parse_const,
    "key": _parse_alnum,
    "text": _parse_alnum,
    "num": _parse_num,
    "date": _parse_date,
    "bool": _parse_yes_no,
    "flag": _parse_yes_no,
    "filler": _parse_filler,
}


def _parse_line(raw: bytes, number: int) -> dict[str, Any]:
    if len(raw) != RECORD_LENGTH:
        raise LayoutError(f"record {number}: not {RECORD_LENGTH} bytes")
    line = raw.decode(_CODEC)  # every byte decodes in ISO-8859-15
    if not _PLAIN.fullmatch(line):
        raise LayoutError(f"record {number}: a byte outside the printable character set")
    kind = _TYPES.get(line[0])
    if kind is None:
        raise LayoutError(f"record {number}: unknown record type")
    values: dict[str, Any] = {}
    for field, start in zip(kind.fields, kind.starts(), strict=True):
        chunk = line[start : start + field.length]
        value = _PARSERS[field.type](field, chunk, f"record {number}/{field.name}")
        if field.type != "filler":
            values[field.name] = value
    return values


def parse(data: bytes) -> list[dict[str, Any]]:
    """Every record of an fv-fixed file, field by field, after checking structure and trailer."""
    if not data.endswith(LINE_END.encode("ascii")):
        raise LayoutError("file does not end with CR LF")
    raw_lines = data[: -len(LINE_END)].split(LINE_END.encode("ascii"))
    records = [_parse_line(raw, number) for number, raw in enumerate(raw_lines, start=1)]
    if not _ORDER.fullmatch("".join(r["satzart"] for r in records)):
        raise LayoutError("record types not in the order A V L.. P.. D.. Q.. E")
    if [r["satzNr"] for r in records] != list(range(1, len(records) + 1)):
        raise LayoutError("record numbers not consecutive from 1")
    trailer = records[-1]
    counted = {kind: sum(r["satzart"] == kind for r in records) for kind in "LPDQ"}
    expected = {
        "anzahlSaetze": len(records),
        "anzahlLeistungen": counted["L"],
        "anzahlPersonen": counted["P"],
        "anzahlDokumente": counted["D"],
        "anzahlQuittungsteile": counted["Q"],
        "summeGroessen": sum(r["groesse"] for r in records if r["satzart"] == "D"),
        "pruefsumme": hashlib.sha256(data[: -(RECORD_LENGTH + len(LINE_END))]).hexdigest(),
    }
    for name, value in expected.items():
        if trailer[name] != value:
            raise LayoutError(f"trailer/{name} does not match the file")
    for kind, position in _POSITIONS.items():
        numbers = [r[position] for r in records if r["satzart"] == kind]
        if numbers != list(range(1, len(numbers) + 1)):
            raise LayoutError(f"{position}: not consecutive from 1")
    return records


def receipt_of(records: list[dict[str, Any]]) -> bytes:
    """The hub receipt reassembled from the Q records of a parsed file."""
    text = "".join(r["daten"] for r in records if r["satzart"] == "Q")
    return base64.b64decode(text, validate=True)


# ----------------------------------------------------------------------------- publication


def layout() -> dict[str, Any]:
    """The layout as published in ``schemas/vendor/fv-fixed-1.layout.json``."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "status": STATUS,
        "encoding": ENCODING,
        "recordLength": RECORD_LENGTH,
        "lineEnding": "CR LF after every record, the last one included",
        "positions": "start and end are 1-based and inclusive; one character is one byte",
        "recordOrder": "A, V, L (1..n), P (1..n), D (0..n), Q (1..n), E",
        "documents": (
            "beside: each document is a file next to this one, named in its D record "
            "(<delivery id>.d<nn>.<ext>) with media type, size and SHA-256"
        ),
        "fieldTypes": {
            "const": "the literal value, left-aligned, space-padded",
            "key": (
                "left-aligned, space-padded, carried unchanged; a character outside the "
                "character set is FIELD_CHARSET, a value longer than the field FIELD_LENGTH; "
                "spaces only: absent"
            ),
            "text": (
                "left-aligned, space-padded; transliterated by the rules below (flag umschrift), "
                "cut to the field length when longer (flag gekuerzt); trailing spaces are not "
                "significant; spaces only: absent"
            ),
            "num": "right-aligned, zero-padded decimal digits; more digits is FIELD_LENGTH",
            "date": "YYYYMMDD; spaces: absent",
            "bool": "J (yes) or N (no)",
            "flag": "J or N, set by the hub for the record (truncated, transliterated)",
            "filler": "spaces",
        },
        "characterSet": (
            "printable ISO-8859-15: 0x20-0x7E and 0xA1-0xFF except 0xAD; case is kept as sent; "
            "leading = + - @ are carried unchanged (the file is positional, never a formula); "
            "control characters are FIELD_FORMAT"
        ),
        "transliteration": {"rules": list(TRANSLITERATION_RULES), "table": TRANSLITERATION},
        "records": [
            {
                "type": kind.code,
                "name": kind.name,
                "occurs": kind.occurs,
                "description": kind.description,
                "fields": [
                    {
                        "name": field.name,
                        "start": start + 1,
                        "end": start + field.length,
                        "length": field.length,
                        "type": field.type,
                        **({"value": field.value} if field.type == "const" else {}),
                        **({"marks": field.value} if field.type == "flag" else {}),
                        "description": field.description,
                    }
                    for field, start in zip(kind.fields, kind.starts(), strict=True)
                ],
            }
            for kind in RECORD_TYPES
        ],
    }


MAPPING = Mapping(
    format=FORMAT,
    version=VERSION,
    media_type="text/plain; charset=ISO-8859-15",
    file_suffix=".dat",
    render=render,
    documents="beside",
)
