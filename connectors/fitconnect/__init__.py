"""FIT-Connect connector: the hub as subscriber (receiver) of a Submission API destination.

:class:`~connectors.fitconnect.receiver.FitConnectReceiver` takes the
delivery service's HMAC-signed callbacks (with polling as the fallback),
fetches each announced submission with its attachments, hands the assembled
bundle to the hub (an injected ``handover`` coroutine) and posts the hub's
Security Event Tokens. Decryption and every check of the content happen in
:mod:`hub.core.transport.fitconnect`, not here.
"""

from connectors.fitconnect.receiver import (
    Answered,
    FitConnectApiError,
    FitConnectConflict,
    FitConnectReceiver,
    Handover,
    ReceiverConfig,
    Refuse,
)

__all__ = [
    "Answered",
    "FitConnectApiError",
    "FitConnectConflict",
    "FitConnectReceiver",
    "Handover",
    "ReceiverConfig",
    "Refuse",
]
