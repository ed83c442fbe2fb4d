"""Outbound HTTP(S) connector: JSON (or any mapped body) POSTed to a vendor endpoint.

The connector only moves bytes: one POST per delivery with the delivery id as
``Idempotency-Key``, so a vendor books a case once however often it is sent; and
one POST per forwarded Rechtskreiswechsel message (:class:`HandoverParcel`) to the
vendor's handover endpoint, keyed by the message id.
What an answer means and how long to wait live in :mod:`hub.core.delivery`;
docs/delivery/http.md is the contract.
"""

from connectors.http.sender import (
    MAPPING_VERSION_HEADER,
    OFFICE_ID,
    REPLAYED_HEADER,
    USER_AGENT,
    AttemptResult,
    HandoverParcel,
    HttpDeliverer,
    HttpEndpoint,
    OnRetry,
    Outcome,
    OutcomeKind,
    RetryEvent,
    handover_url,
)
from hub.core.delivery import OutagePolicy, RetryPolicy, Verdict

__all__ = [
    "MAPPING_VERSION_HEADER",
    "OFFICE_ID",
    "REPLAYED_HEADER",
    "USER_AGENT",
    "AttemptResult",
    "HandoverParcel",
    "HttpDeliverer",
    "HttpEndpoint",
    "OnRetry",
    "OutagePolicy",
    "Outcome",
    "OutcomeKind",
    "RetryEvent",
    "RetryPolicy",
    "Verdict",
    "handover_url",
]
