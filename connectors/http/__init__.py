"""Outbound HTTP(S) connector: JSON (or any mapped body) POSTed to a vendor endpoint.

The connector only moves bytes: one POST per delivery with the delivery id as
``Idempotency-Key``, so a vendor books a case once however often it is sent.
What an answer means and how long to wait live in :mod:`hub.core.delivery`;
docs/delivery/http.md is the contract.
"""

from connectors.http.sender import (
    MAPPING_VERSION_HEADER,
    OFFICE_ID,
    REPLAYED_HEADER,
    USER_AGENT,
    AttemptResult,
    HttpDeliverer,
    HttpEndpoint,
    OnRetry,
    Outcome,
    OutcomeKind,
    RetryEvent,
)
from hub.core.delivery import OutagePolicy, RetryPolicy, Verdict

__all__ = [
    "MAPPING_VERSION_HEADER",
    "OFFICE_ID",
    "REPLAYED_HEADER",
    "USER_AGENT",
    "AttemptResult",
    "HttpDeliverer",
    "HttpEndpoint",
    "OnRetry",
    "OutagePolicy",
    "Outcome",
    "OutcomeKind",
    "RetryEvent",
    "RetryPolicy",
    "Verdict",
]
