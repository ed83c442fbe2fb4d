"""XTA 2 (version 3) inbound connector: poll the hub's mailbox on an XTA server over mutual TLS.

The connector only moves bytes: it fetches each message (the SOAP envelope of
the ``getMessage`` response), hands it to the hub and closes it once the hub has
it. Unwrapping and every check live in :mod:`hub.core.transport.xta`.
"""

from connectors.xta.poller import (
    Handover,
    PollReport,
    XtaError,
    XtaFaultError,
    XtaPoller,
    XtaSettings,
    XtaTooLargeError,
    client_ssl_context,
)

__all__ = [
    "Handover",
    "PollReport",
    "XtaError",
    "XtaFaultError",
    "XtaPoller",
    "XtaSettings",
    "XtaTooLargeError",
    "client_ssl_context",
]
