"""Shared fixtures for the unit tests: settings, office table, payloads, signer, hub context.

Everything expensive (schemas, keys) is built once per session; every fixture is
read-only, so sharing is safe.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import pytest

from hub import keys, offices, policy, pseudonyms, schemas
from hub.config import Settings, load
from hub.core.pipeline import HubContext

if TYPE_CHECKING:
    from hub.core.payloads import PayloadRegistry
    from hub.core.receipt import ReceiptSigner
    from hub.core.route import OfficeTable

FIXED_NOW = dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="session")
def settings() -> Settings:
    # An empty environment: the machine's SOZIALHUB_*/KAFKA_* variables must not leak in.
    return load({})


@pytest.fixture(scope="session")
def office_table(settings: Settings) -> OfficeTable:
    return offices.load(settings.offices_file, settings.schema_dir)


@pytest.fixture(scope="session")
def payloads(settings: Settings) -> PayloadRegistry:
    return schemas.load_payloads(settings.schema_dir)


@pytest.fixture(scope="session")
def signer(settings: Settings) -> ReceiptSigner:
    # No key file configured: hub.keys makes an ephemeral ECDSA key and certificate.
    return keys.load_signer(settings)


@pytest.fixture(scope="session")
def hub_context(
    settings: Settings, payloads: PayloadRegistry, office_table: OfficeTable, signer: ReceiptSigner
) -> HubContext:
    # The example transfer policy and the development pseudonym key, as `sozialhub demo` runs.
    return HubContext(
        payloads,
        office_table,
        signer,
        "sozialhub-test",
        policy=policy.from_settings(settings),
        pseudonyms=pseudonyms.development_ring(),
    )


@pytest.fixture(scope="session")
def now() -> dt.datetime:
    return FIXED_NOW
