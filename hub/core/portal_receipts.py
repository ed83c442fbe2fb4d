"""The receipt a portal gets for each submission: built and signed here, sent by a connector.

- XTA 2: a receipt message for the XTA send port, addressed back to the author
  of the original message;
- FIT-Connect: an ``accept-submission`` or ``reject-submission`` Security
  Event Token (PS512);
- OSCI content containers and bare files: no way back from the hub; the
  ``submissions.receipts`` record itself is the receipt (channel ``none``).

Receipts name the hub's submission id and, for a rejection, the reason code;
never payload content.
"""

from __future__ import annotations

import datetime as dt

from hub.core.transport import Envelope
from hub.core.transport.registry import TransportKeys


def build(
    envelope: Envelope,
    submission_id: str,
    outcome: str,
    reason: str | None,
    keys: TransportKeys,
    now: dt.datetime,
    original: bytes | None = None,
) -> tuple[str, str | None, bytes | None]:
    """(channel, media type, body) of the receipt for one submission."""
    if envelope.transport == "xta2" and envelope.message_id and envelope.author:
        from hub.core.transport import xta  # noqa: PLC0415

        body = xta.receipt_message(
            original_message_id=envelope.message_id,
            portal=envelope.author,
            hub=keys.xta_identity or envelope.reader or "sozialhub",
            submission_id=submission_id,
            outcome=outcome,
            reason=reason,
            now=now,
        )
        return "xta2", "application/soap+xml", body
    if envelope.transport == "fitconnect" and keys.fitconnect_signing is not None:
        # An accept SET carries the authentication tags of the encrypted parts it accepts.
        token = keys.fitconnect_signing.event(
            envelope, outcome, reason, now, original=original if outcome == "accepted" else None
        )
        return "fitconnect", "application/jose", str(token).encode("ascii")
    return "none", None, None
