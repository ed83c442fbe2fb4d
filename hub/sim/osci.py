"""What an OSCI client hands over, for the demo: a content package and its metadata sidecar.

The hub does not speak the OSCI dialog (docs/transports/osci.md): the office's
OSCI client fetches a delivery and writes it into the file drop's ``osci``
sub-inbox as a pair of files. :func:`content_package` builds a package the way
the OSCI library writes one (MIME ``multipart/related``, ``type=text/xml``, the
root part holding the ``osci:ContentPackage`` whose container references the
payload part by ``cid:``); :func:`metadata` the sidecar with the client's
authenticated Author, Reader and OSCI message id (checked with the hub's own
reader); :func:`hand_over` writes both into the sub-inbox atomically, the
package first.

Unsigned and unencrypted: a portal whose signature policy is ``none`` takes it
(``config/portals.yml``). Tests with hostile, signed or encrypted packages use
their own builders.
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

from lxml import etree

from connectors.filedrop.osci import METADATA_SUFFIX, SUBDIRECTORY
from hub.core.errors import Rejection
from hub.core.transport.osci import NAMESPACE
from hub.core.transport.osci_handover import TYPE, VERSION, parse_metadata
from hub.sim import mime

_ROOT_ID = "osci@message"


def new_message_id() -> str:
    """A fresh OSCI message id as the OSCI library writes it: base64 text."""
    return base64.b64encode(f"sozialhub-sim-{uuid.uuid4()}".encode("ascii")).decode("ascii")


def content_package(payload: bytes, *, filename: str = "antrag.xml") -> bytes:
    """A MIME content package with ``payload`` (an XML document) as its one data part."""
    part_id = f"payload.{uuid.uuid4().hex}@sozialhub.sim"
    osci = f"{{{NAMESPACE}}}"
    package = etree.Element(f"{osci}ContentPackage", nsmap={"osci": NAMESPACE})
    container = etree.SubElement(package, f"{osci}ContentContainer", Id="cc1")
    etree.SubElement(container, f"{osci}Content", Id="payload", href=f"cid:{part_id}")
    document = etree.tostring(package, xml_declaration=True, encoding="UTF-8")
    boundary = f"MIME_boundary_{uuid.uuid4().hex}"
    head = (
        "\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: Multipart/Related; boundary={boundary}; type=text/xml; start="<{_ROOT_ID}>"'
        "\r\n\r\n"
    ).encode("ascii")
    return head + mime.multipart(
        boundary,
        [
            (
                [
                    ("Content-Type", "text/xml; charset=UTF-8"),
                    ("Content-Transfer-Encoding", "8bit"),
                    ("Content-ID", f"<{_ROOT_ID}>"),
                ],
                document,
            ),
            (
                [
                    ("Content-Type", "text/xml"),
                    ("Content-Transfer-Encoding", "binary"),
                    ("Content-ID", f"<{part_id}>"),
                    ("Content-Disposition", f'attachment; filename="{filename}"'),
                ],
                payload,
            ),
        ],
    )


def metadata(*, author: str, reader: str, message_id: str) -> bytes:
    """The metadata sidecar; ``ValueError`` when the hub would refuse it (``METADATA``)."""
    document = {
        "type": TYPE,
        "v": VERSION,
        "author": author,
        "reader": reader,
        "message_id": message_id,
    }
    data = json.dumps(document).encode("utf-8")
    try:
        parse_metadata(data)
    except Rejection:
        raise ValueError("not a valid OSCI metadata sidecar") from None
    return data


def hand_over(inbox: Path, name: str, package: bytes, sidecar: bytes) -> tuple[Path, Path]:
    """Write ``<inbox>/osci/<name>`` and ``<name>.json`` as an OSCI client should: each under a
    temporary name, then renamed; the package first, the sidecar last. Creates ``osci/``."""
    folder = inbox / SUBDIRECTORY
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for target, data in ((folder / name, package), (folder / f"{name}{METADATA_SUFFIX}", sidecar)):
        temporary = folder / f".{target.name}.part"
        temporary.write_bytes(data)
        temporary.replace(target)
        written.append(target)
    return written[0], written[1]
