"""The second payload type: a Wohngeld application from the Serviceportal."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from hub.core import xmlsafe
from hub.core.errors import Reason, Rejection
from hub.core.payloads import PayloadRegistry, validate
from hub.core.pipeline import HubContext, check
from hub.testing import DocumentSpec, WohngeldSpec, make_wohngeld_application

WOHNGELD = "99107023017001"


def _extract(payloads: PayloadRegistry, data: bytes):  # type: ignore[no-untyped-def]
    root = xmlsafe.parse(data)
    payload_type = payloads.identify(root)
    validate(root, payload_type)
    return payload_type, payload_type.extract(root)


def test_the_registry_knows_both_payload_types(payloads: PayloadRegistry) -> None:
    assert {t.name for t in payloads} == {"xsozial-basis-2.4.0", "wohngeld-antrag-1"}
    assert all(t.engine == "libxml2" for t in payloads)


def test_extracts_household_benefit_and_home(payloads: PayloadRegistry) -> None:
    content = b"%PDF-1.7 Mietbescheinigung"
    spec = WohngeldSpec(documents=(DocumentSpec(content=content),))
    payload_type, submission = _extract(payloads, make_wohngeld_application(spec))
    assert payload_type.name == "wohngeld-antrag-1"
    assert submission.case_id == spec.application_uuid
    applicant = submission.applicant
    assert applicant is not None
    assert applicant.family_name == "Kowalski"
    assert applicant.address is not None
    assert applicant.address.postcode == "45768"
    (benefit,) = submission.benefits
    assert (benefit.code, benefit.list_uri, benefit.list_version) == (
        WOHNGELD,
        "urn:de:fim:leika:leistung",
        "2024",
    )
    assert [p.applicant for p in submission.persons] == [True, False]
    (document,) = submission.documents
    assert document.sha256 == hashlib.sha256(content).hexdigest()


def test_routes_to_the_wohngeldstelle_of_the_applicants_town(
    hub_context: HubContext, now: dt.datetime
) -> None:
    report = check(make_wohngeld_application(), hub_context, now)
    assert report["verdict"] == "accepted", report
    assert report["payload"] == "urn:sozialhub:payload:wohngeld-antrag:1"
    assert report["leika"] == [WOHNGELD]
    assert report["office"] == "wgs-marl"


def test_an_unknown_version_is_refused(payloads: PayloadRegistry) -> None:
    with pytest.raises(Rejection) as caught:
        _extract(payloads, make_wohngeld_application(WohngeldSpec(version="0.9")))
    assert caught.value.reason is Reason.SCHEMA_VERSION


def test_a_negative_rent_fails_the_schema_with_a_path_and_no_value(
    payloads: PayloadRegistry,
) -> None:
    with pytest.raises(Rejection) as caught:
        _extract(payloads, make_wohngeld_application(WohngeldSpec(rent="-612.40")))
    assert caught.value.reason is Reason.XSD
    assert caught.value.path is not None
    assert "bruttokaltmieteEuro" in caught.value.path
    assert "612" not in str(caught.value)


def test_a_household_without_applicant_is_refused(payloads: PayloadRegistry) -> None:
    data = make_wohngeld_application().replace(
        b"<antragsteller>true</antragsteller>", b"<antragsteller>false</antragsteller>"
    )
    with pytest.raises(Rejection) as caught:
        _extract(payloads, data)
    assert caught.value.reason is Reason.FIELD_FORMAT
