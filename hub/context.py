"""Build the core's :class:`HubContext` from settings: schemas, office table, signing key."""

from __future__ import annotations

from hub import keys, offices, portals, schemas
from hub.config import ConfigError, Settings
from hub.core.pipeline import HubContext, vendor_topic
from hub.core.xmlsafe import Limits
from hub.topics import TopicSpec


def build(settings: Settings) -> HubContext:
    return HubContext(
        payloads=schemas.load_payloads(settings.schema_dir),
        offices=offices.load(settings.offices_file, settings.schema_dir),
        signer=keys.load_signer(settings),
        identity=settings.hub_identity,
        limits=Limits(max_bytes=settings.max_submission_bytes),
        max_record_bytes=settings.max_record_bytes,
        portals=portals.load(settings.portals_file, settings.schema_dir),
    )


def check_vendor_topics(hub: HubContext, specs: tuple[TopicSpec, ...]) -> tuple[str, ...]:
    """Every vendor of the office table needs a declared topic; return their logical names."""
    declared = {s.name for s in specs}
    needed = tuple(sorted(vendor_topic(v) for v in hub.offices.vendors))
    missing = [name for name in needed if name not in declared]
    if missing:
        raise ConfigError("topics.yml lacks vendor topics: " + ", ".join(missing))
    return needed
