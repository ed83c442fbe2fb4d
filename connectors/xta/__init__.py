"""XTA 2 (version 3) inbound connector: poll the hub's mailbox on an XTA server over mutual TLS.

The connector only moves bytes: it fetches each message (the SOAP envelope of
the ``getMessage`` response, or an MTOM response as a MIME entity), hands it to
the hub and closes it once the hub has it; a message too large to fetch is
handed over as its status list metadata (``reject_oversize``) and closed once the
hub has recorded its rejection. Unwrapping and every check live in
:mod:`hub.core.transport.xta`.
"""

from connectors.xta.poller import (
    Handover,
    PollReport,
    RejectOversize,
    SendResult,
    XtaError,
    XtaFaultError,
    XtaPoller,
    XtaSendRefusedError,
    XtaSettings,
    XtaTooLargeError,
    client_ssl_context,
)

__all__ = [
    "Handover",
    "PollReport",
    "RejectOversize",
    "SendResult",
    "XtaError",
    "XtaFaultError",
    "XtaPoller",
    "XtaSendRefusedError",
    "XtaSettings",
    "XtaTooLargeError",
    "client_ssl_context",
]
