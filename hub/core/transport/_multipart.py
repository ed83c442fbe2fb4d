"""A bounded reader for one ``multipart/related`` message (SOAP with attachments). Pure.

The stdlib ``email`` package does the parsing, but only after a cheap pre-scan
has bounded what it will be given: the header block size, the number of
delimiter lines, and that no part is itself a ``multipart/*`` or ``message/*``
entity (the parser recurses into those; about a thousand nested levels raise
``RecursionError`` and fifty thousand flat parts take seconds) and the number of
line breaks (the parser works line by line). The parser's
result must then agree with the pre-scan (same number of parts, no parser
defects), so a parser differential cannot smuggle a part past the checks.

The message and each part carry their Content-Type parameters (``parameters``,
e.g. XOP's ``type`` and ``start-info``); :func:`content_id_of_cid_url` reads a
``cid:`` reference (used for XTA's MTOM packages, :mod:`hub.core.transport._xop`).

Failures are ``Rejection(Reason.CONTAINER, path)`` with a path under ``mime``
(``mime/Content-Type``, ``mime/part[2]/Content-ID``), ``SIZE`` for a message
above the byte limit and ``ATTACHMENT`` for a file name that is not text;
values never appear in paths.
"""

from __future__ import annotations

import email.policy
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesParser
from typing import TypeVar

from hub.core.errors import Reason, Rejection
from hub.core.transport._codec import b64decode_strict

T = TypeVar("T")

_PARSER = BytesParser(policy=email.policy.default)
# RFC 2046 boundary: 1-70 characters from bchars, not ending in a space.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
# A Content-ID without its angle brackets: visible ASCII except brackets.
_CONTENT_ID = re.compile(r"[!-;=?-~]+")
# A cid: URL's value: visible ASCII except '%' and angle brackets, or percent escapes.
_CID_URL = re.compile(r"(?:[!-$&-;=?-~]|%[0-9A-Fa-f]{2})+")
_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LINE_BREAK = rb"(?:\r\n|\r(?!\n)|\n)"
_PART_HEADER_END = re.compile(rb"(?:\A|" + _LINE_BREAK + rb")" + _LINE_BREAK)
# Transfer encodings that leave the bytes as they are ("8-bit" is the OSCI library's spelling).
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "8-bit", "binary"})
_SINGLE_HEADERS = ("Content-Type", "Content-ID", "Content-Transfer-Encoding", "Content-Disposition")


@dataclass(frozen=True, slots=True)
class MultipartLimits:
    max_bytes: int
    max_parts: int
    max_header_bytes: int
    max_id_length: int
    max_line_breaks: int


@dataclass(frozen=True, slots=True)
class Part:
    """One body part after transfer decoding."""

    index: int  # 1-based position in the message
    content_id: str | None  # without angle brackets
    media_type: str | None  # lower-case type/subtype without parameters; None when not declared
    charset: str | None
    filename: str | None  # from Content-Disposition (or the Content-Type name parameter)
    data: bytes = field(repr=False)
    # The Content-Type parameters (names lower-case, values as decoded), e.g. XOP's ``type``.
    parameters: Mapping[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"mime/part[{self.index}]"


@dataclass(frozen=True, slots=True)
class Related:
    root: Part
    parts: tuple[Part, ...]  # every other part, in message order
    # The message's Content-Type parameters (names lower-case), e.g. ``type``, ``start-info``.
    parameters: Mapping[str, str] = field(default_factory=dict)


def parse_related(message: bytes, limits: MultipartLimits) -> Related:
    """Split a ``multipart/related`` message into its root part and the other parts."""
    if len(message) > limits.max_bytes:
        raise Rejection(Reason.SIZE)
    message = message.lstrip(b"\r\n")  # the OSCI library writes a line break before the headers
    end = _HEADER_END.search(message, 0, limits.max_header_bytes + 4)
    if end is None:
        raise Rejection(Reason.CONTAINER, "mime/headers")
    headers = _guard(
        "mime/headers", lambda: _PARSER.parsebytes(message[: end.end()], headersonly=True)
    )
    boundary, start = _multipart_parameters(headers)
    parameters = _guard("mime/Content-Type", lambda: _parameters(headers))
    body = message[end.end() :]
    # The parser's cost grows with the number of lines (about 0.4 us each): bound it.
    if body.count(b"\n") + body.count(b"\r") > limits.max_line_breaks:
        raise Rejection(Reason.CONTAINER, "mime/lines")
    slices = _prescan(body, boundary.encode("ascii"), limits)
    parsed = _guard("mime", lambda: _PARSER.parsebytes(message))
    subparts = _guard("mime", lambda: _flat_parts(parsed))
    if len(subparts) != len(slices) or parsed.defects:
        raise Rejection(Reason.CONTAINER, "mime")
    parts = [_read_part(sub, index, limits) for index, sub in enumerate(subparts, start=1)]
    related = _select_root(parts, start)
    return Related(root=related.root, parts=related.parts, parameters=parameters)


def _parameters(message: Message) -> dict[str, str]:
    """The Content-Type parameters as the email package decodes them (none without the header)."""
    header = message.get("Content-Type")
    params = getattr(header, "params", None)
    if params is None:
        return {}
    return {str(name).lower(): str(value) for name, value in params.items()}


def content_id_of_cid_url(href: str) -> str | None:
    """The Content-ID a ``cid:`` URL names (RFC 2392, percent-encoded), or None if it is not one."""
    value = href.strip(" \t\r\n")
    if value[:4].lower() != "cid:" or not _CID_URL.fullmatch(value[4:]):
        return None
    decoded = _PERCENT.sub(lambda m: chr(int(m.group(1), 16)), value[4:])
    return decoded if _CONTENT_ID.fullmatch(decoded) else None


def _guard(path: str, call: Callable[[], T]) -> T:
    """Run one call into the email package; any exception it raises means a malformed message."""
    try:
        return call()
    except Rejection:
        raise
    except Exception:  # noqa: BLE001 - email raises many types on hostile input; all mean "malformed"
        raise Rejection(Reason.CONTAINER, path) from None


def _check_single_headers(message: Message, path: str) -> None:
    """Each structural header at most once: two Content-IDs would make the part ambiguous."""
    for name in _SINGLE_HEADERS:
        if len(message.get_all(name) or []) > 1:
            raise Rejection(Reason.CONTAINER, f"{path}/{name}")


def _multipart_parameters(headers: Message) -> tuple[str, str | None]:
    _guard("mime/headers", lambda: _check_single_headers(headers, "mime"))
    if _guard("mime/Content-Type", headers.get_content_type) != "multipart/related":
        raise Rejection(Reason.CONTAINER, "mime/Content-Type")
    # The top-level Content-Type is not checked for parameter defects: OSCI writes
    # ``type=text/xml`` unquoted, which the email package flags but parses.
    boundary = _guard("mime/Content-Type", lambda: headers.get_param("boundary"))
    if not isinstance(boundary, str) or not _BOUNDARY.fullmatch(boundary):
        raise Rejection(Reason.CONTAINER, "mime/Content-Type/boundary")
    start = _guard("mime/Content-Type", lambda: headers.get_param("start"))
    if start is not None and not isinstance(start, str):
        raise Rejection(Reason.CONTAINER, "mime/Content-Type/start")
    return boundary, start


def _prescan(body: bytes, boundary: bytes, limits: MultipartLimits) -> list[bytes]:
    """The part slices between delimiter lines, bounded before the email package sees them."""
    anywhere = re.compile(rb"(?:\A|(?<=[\r\n]))--" + re.escape(boundary))
    # A superset of what the parser treats as delimiter lines bounds its work.
    for count, _ in enumerate(anywhere.finditer(body), start=1):
        if count > limits.max_parts + 1:
            raise Rejection(Reason.CONTAINER, "mime/parts")
    delimiter = re.compile(
        rb"(?:\A|(?<=[\r\n]))--" + re.escape(boundary) + rb"(--)?[ \t]*(?:\r\n|\r|\n|\Z)"
    )
    slices: list[bytes] = []
    begin: int | None = None
    for match in delimiter.finditer(body):
        if begin is not None:
            slices.append(body[begin : match.start()])
        if match.group(1):
            break
        begin = match.end()
    else:
        raise Rejection(Reason.CONTAINER, "mime/parts")  # no close delimiter
    if not slices:
        raise Rejection(Reason.CONTAINER, "mime/parts")
    for index, chunk in enumerate(slices, start=1):
        _prescan_part(chunk, index, limits)
    return slices


def _prescan_part(chunk: bytes, index: int, limits: MultipartLimits) -> None:
    path = f"mime/part[{index}]"
    end = _PART_HEADER_END.search(chunk, 0, limits.max_header_bytes + 4)
    if end is None:
        raise Rejection(Reason.CONTAINER, f"{path}/headers")
    headers = _guard(path, lambda: _PARSER.parsebytes(chunk[: end.end()], headersonly=True))
    maintype = _guard(f"{path}/Content-Type", headers.get_content_maintype)
    if maintype in {"multipart", "message"}:
        raise Rejection(Reason.CONTAINER, f"{path}/Content-Type")


def _flat_parts(parsed: EmailMessage) -> list[Message]:
    if not parsed.is_multipart():
        raise Rejection(Reason.CONTAINER, "mime")
    subparts = parsed.get_payload()
    if not isinstance(subparts, list):
        raise Rejection(Reason.CONTAINER, "mime")
    flat: list[Message] = []
    for index, sub in enumerate(subparts, start=1):
        if not isinstance(sub, Message) or sub.is_multipart() or sub.defects:
            raise Rejection(Reason.CONTAINER, f"mime/part[{index}]")
        flat.append(sub)
    return flat


def _read_part(sub: Message, index: int, limits: MultipartLimits) -> Part:
    path = f"mime/part[{index}]"
    _guard(f"{path}/headers", lambda: _check_single_headers(sub, path))
    return Part(
        index=index,
        content_id=_guard(
            f"{path}/Content-ID",
            lambda: _content_id(sub.get("Content-ID"), f"{path}/Content-ID", limits.max_id_length),
        ),
        media_type=_guard(f"{path}/Content-Type", lambda: _media_type(sub, path)),
        charset=_guard(f"{path}/Content-Type", sub.get_content_charset),
        filename=_guard(f"{path}/Content-Disposition", lambda: _filename(sub, path)),
        data=_guard(path, lambda: _decoded_body(sub, path)),
        parameters=_guard(f"{path}/Content-Type", lambda: _parameters(sub)),
    )


def _content_id(value: object, path: str, max_length: int) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if len(text) > max_length or not _CONTENT_ID.fullmatch(text):
        raise Rejection(Reason.CONTAINER, path)
    return text


def _media_type(sub: Message, path: str) -> str | None:
    header = sub.get("Content-Type")
    if header is None:
        return None
    if getattr(header, "defects", ()):
        raise Rejection(Reason.CONTAINER, f"{path}/Content-Type")
    media = sub.get_content_type()
    if not _MEDIA_TYPE.fullmatch(media):
        raise Rejection(Reason.CONTAINER, f"{path}/Content-Type")
    return media


def _filename(sub: Message, path: str) -> str | None:
    name = sub.get_filename()
    if name is None:
        return None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # Raw 8-bit header bytes arrive as surrogate escapes; accept them only if they are UTF-8.
        try:
            name = name.encode("ascii", "surrogateescape").decode("utf-8")
        except UnicodeError:
            raise Rejection(Reason.ATTACHMENT, f"{path}/filename") from None
    return name


def _decoded_body(sub: Message, path: str) -> bytes:
    encoding = str(sub.get("Content-Transfer-Encoding") or "binary").strip().lower()
    if encoding == "base64":
        # The undecoded text: get_payload(decode=True) would skip invalid characters silently.
        # Non-ASCII bytes come back as U+FFFD here and fail the strict decoder.
        text = sub.get_payload()
        data = b64decode_strict(text) if isinstance(text, str) else None
        if data is None:
            raise Rejection(Reason.CONTAINER, f"{path}/base64")
        return data
    if encoding not in _IDENTITY_ENCODINGS:
        raise Rejection(Reason.CONTAINER, f"{path}/Content-Transfer-Encoding")
    # For identity encodings this is the part's original bytes (BytesParser keeps them as
    # surrogate escapes and restores them here).
    raw = sub.get_payload(decode=True)
    if not isinstance(raw, bytes):
        raise Rejection(Reason.CONTAINER, path)
    if encoding == "7bit" and not raw.isascii():
        raise Rejection(Reason.CONTAINER, f"{path}/Content-Transfer-Encoding")
    return raw


def _select_root(parts: list[Part], start: str | None) -> Related:
    seen: set[str] = set()
    for part in parts:
        if part.content_id is None:
            continue
        if part.content_id in seen:
            raise Rejection(Reason.CONTAINER, f"{part.path}/Content-ID")
        seen.add(part.content_id)
    if start is None:
        root = parts[0]
    else:
        wanted = start.strip().removeprefix("<").removesuffix(">")
        matches = [part for part in parts if part.content_id == wanted]
        if not matches:
            raise Rejection(Reason.CONTAINER, "mime/Content-Type/start")
        root = matches[0]
    others = tuple(part for part in parts if part is not root)
    for part in others:
        if part.content_id is None:
            raise Rejection(Reason.CONTAINER, f"{part.path}/Content-ID")
    return Related(root=root, parts=others)
