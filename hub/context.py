"""Build the core's :class:`HubContext` from settings: schemas, office table, signing keys,
the transfer policy and the pseudonym key ring."""

from __future__ import annotations

import structlog

from hub import fitconnect, keys, offices, policy, portals, pseudonyms, reader_keys, schemas
from hub.config import ConfigError, Settings
from hub.core.payloads import PayloadRegistry
from hub.core.pipeline import HubContext, delivery_queue, vendor_topic
from hub.core.pseudonym import KeyRing
from hub.core.transport.registry import TransportKeys
from hub.core.xmlsafe import Limits
from hub.topics import TopicSpec

log = structlog.get_logger(__name__)


def transport_keys(settings: Settings, payloads: PayloadRegistry) -> TransportKeys:
    """Keys of the configured transports, read once.

    The reader keys (``reader_decryption_keys``) open end-to-end encrypted OSCI and
    XTA content alike; the FIT-Connect keys only FIT-Connect submissions.
    """
    reader = reader_keys.load(settings)
    if not settings.fitconnect_decryption_keys:
        return TransportKeys(osci_decryption=reader, xta_identity=settings.xta_mailbox)
    return TransportKeys(
        osci_decryption=reader,
        fitconnect_decryption=fitconnect.load_decryption_keys(settings.fitconnect_decryption_keys),
        fitconnect_signing=(
            fitconnect.load_set_signer(
                settings.fitconnect_signing_key, settings.fitconnect_signing_key_id
            )
            if settings.fitconnect_signing_key
            else None
        ),
        # FIT-Connect data may claim any payload schema the hub reads, and nothing else.
        fitconnect_schemas=fitconnect.load_submission_schemas(
            settings.schema_dir, [t.namespace for t in payloads]
        ),
        xta_identity=settings.xta_mailbox,
    )


def pseudonym_keys(settings: Settings) -> KeyRing:
    """The configured key ring, or the public development ring if none is configured.

    As with the signing key (an ephemeral one when none is configured), the hub
    runs without configuration for development, tests and the demo, and says so;
    ``sozialhub run`` refuses without ``SOZIALHUB_PSEUDONYM_KEYS_FILE`` unless
    ``--development-pseudonym-key`` is given. Development pseudonyms protect
    nothing: anyone can recompute them (hub.pseudonyms).
    """
    if settings.pseudonym_keys_file is None:
        log.warning(
            "pseudonyms.development_key",
            detail="no pseudonym keys configured; person pseudonyms use the public development key",
        )
    return pseudonyms.from_settings(settings, development=True)


def build(settings: Settings) -> HubContext:
    payloads = schemas.load_payloads(settings.schema_dir)
    signers = keys.load_signers(settings)  # current and next (rotation), loaded once
    return HubContext(
        payloads=payloads,
        offices=offices.load(settings.offices_file, settings.schema_dir),
        signer=signers.current,
        signers=signers,
        identity=settings.hub_identity,
        limits=Limits(max_bytes=settings.max_submission_bytes),
        max_record_bytes=settings.max_record_bytes,
        portals=portals.load(settings.portals_file, settings.schema_dir),
        transport_keys=transport_keys(settings, payloads),
        policy=policy.from_settings(settings),
        pseudonyms=pseudonym_keys(settings),
    )


def check_vendor_topics(hub: HubContext, specs: tuple[TopicSpec, ...]) -> tuple[str, ...]:
    """Every vendor needs its delivery queue, a kafka-channel vendor also its vendor topic.

    Returns their logical names, delivery queues first.
    """
    declared = {s.name for s in specs}
    vendors = sorted(hub.offices.vendors.values(), key=lambda v: v.vendor_id)
    needed = tuple(delivery_queue(v.vendor_id) for v in vendors) + tuple(
        vendor_topic(v.vendor_id) for v in vendors if v.channel == "kafka"
    )
    missing = [name for name in needed if name not in declared]
    if missing:
        raise ConfigError("topics.yml lacks vendor topics: " + ", ".join(missing))
    return needed
