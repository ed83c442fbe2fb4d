"""MIME ``multipart/related`` bodies for the portal simulators: XTA MTOM/XOP responses
(:func:`hub.sim.xta.mtom_message`) and OSCI content packages (:mod:`hub.sim.osci`).

Built by byte concatenation of values the simulators choose themselves; a header line
break in a name or value is refused, so no part can smuggle in headers.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

# One part: its header lines as (name, value), then its bytes (sent as they are, binary).
Part = tuple[Sequence[tuple[str, str]], bytes]


def multipart(boundary: str, parts: Iterable[Part]) -> bytes:
    """A multipart body: per part the delimiter, its header lines, a blank line and its bytes;
    then the close delimiter. Every line ends with CRLF."""
    delimiter = b"--" + boundary.encode("ascii")
    body = bytearray()
    for headers, data in parts:
        lines = []
        for name, value in headers:
            if any(c in "\r\n" for c in name + value):
                raise ValueError("a header line break")
            lines.append(f"\r\n{name}: {value}")
        body += delimiter + "".join(lines).encode("ascii") + b"\r\n\r\n" + data + b"\r\n"
    return bytes(body + delimiter + b"--\r\n")
