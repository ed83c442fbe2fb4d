"""Prometheus metrics served on the worker's web port (``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry()

RECORDS = Counter(
    "sozialhub_stage_records",
    "Records processed per stage and outcome",
    ["stage", "outcome"],
    registry=REGISTRY,
)
STAGE_SECONDS = Histogram(
    "sozialhub_stage_seconds",
    "Time spent in the pure core per record and stage",
    ["stage"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0),
    registry=REGISTRY,
)
END_TO_END_SECONDS = Histogram(
    "sozialhub_end_to_end_seconds",
    "From receipt at the inbound connector to durable delivery",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "sozialhub_dead_letters",
    "Dead letters written, by stage and reason",
    ["stage", "reason"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "sozialhub_consumer_lag",
    "High watermark minus the consumer position",
    ["topic", "partition"],
    registry=REGISTRY,
)
CERT_DAYS_LEFT = Gauge(
    "sozialhub_signing_certificate_days_left",
    "Days until the hub signing certificate expires (which: current, or next during a rotation)",
    ["which"],
    registry=REGISTRY,
)
INBOX_FILES = Gauge(
    "sozialhub_inbox_files",
    "Files waiting in the file-drop inbox (counted up to 500)",
    registry=REGISTRY,
)
OSCI_INBOX_PACKAGES = Gauge(
    "sozialhub_osci_inbox_packages",
    "OSCI packages waiting in the file drop's osci sub-inbox, with or without their metadata",
    registry=REGISTRY,
)
VENDOR_UP = Gauge(
    "sozialhub_vendor_endpoint_up",
    "1 while an http vendor's endpoint takes deliveries, 0 while its partition is paused",
    ["vendor"],
    registry=REGISTRY,
)
DELIVERY_RETRIES = Counter(
    "sozialhub_delivery_retries",
    "Failed delivery attempts that were tried again, by vendor",
    ["vendor"],
    registry=REGISTRY,
)
HANDOVER_ENDPOINT_UP = Gauge(
    "sozialhub_handover_endpoint_up",
    "1 while an http vendor's handover endpoint takes Rechtskreiswechsel messages, 0 while paused",
    ["vendor"],
    registry=REGISTRY,
)
HANDOVER_RETRIES = Counter(
    "sozialhub_handover_retries",
    "Failed attempts to forward a Rechtskreiswechsel message that were tried again, by vendor",
    ["vendor"],
    registry=REGISTRY,
)
RECEIPTS = Counter(
    "sozialhub_receipts",
    "Portal receipts this worker answered, by channel and outcome (sent, refused)",
    ["channel", "outcome"],
    registry=REGISTRY,
)
AUDIT_CHAINED = Counter(
    "sozialhub_audit_chained",
    "Audit events appended to audit.chain by this worker's chainer",
    registry=REGISTRY,
)
AUDIT_CHECKPOINTS = Counter(
    "sozialhub_audit_checkpoints",
    "Signed checkpoints written to audit.checkpoints by this worker's chainer",
    registry=REGISTRY,
)
