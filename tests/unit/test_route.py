"""Routing: (LeiKa key, applicant area, reader) -> exactly one office per benefit."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from hub.core.errors import Reason, Rejection
from hub.core.model import LEIKA_LIST_URI, Address, Code, Party, Person, Submission
from hub.core.route import (
    FITCONNECT_DIRECTORY,
    Area,
    Office,
    OfficeTable,
    Vendor,
    applicant_ars,
    ars_to_ags,
    explain,
    route,
)
from tests.shared_dir import LEIKA, shared_dir

REPO_ROOT = Path(__file__).resolve().parents[2]


def _shared_data() -> Path | None:
    """The project's shared reference data (code lists), see tests/shared_dir.py."""
    shared = shared_dir(LEIKA)
    return None if shared is None else shared / "data"


SHARED_DATA = _shared_data() or Path("/nonexistent")
ARS_LIST = "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:rs"
AGS_LIST = "urn:de:bund:destatis:bevoelkerungsstatistik:schluessel:ags"
PERSON_TYPES = "urn:xoev-de:xsozial:codeliste:personentyp"

SGB2 = "99107002017000"
WOHNGELD = "99107023017000"
BUT = "99107032148000"
ELTERNGELD = "99041006017000"
KINDERZUSCHLAG = "99107016000000"  # in the LeiKa table, but no office in the Kreis handles it

RECKLINGHAUSEN = Address(
    street="Kurfürstenwall", house_number="21", postcode="45657", town="Recklinghausen"
)


def benefit(key: str, list_uri: str = LEIKA_LIST_URI) -> Code:
    return Code(code=key, list_uri=list_uri, list_version="2024", name=None)


def person(
    *keys: str,
    applicant: bool = True,
    address: Address | None = RECKLINGHAUSEN,
    person_id: str = "p1",
    list_uri: str = LEIKA_LIST_URI,
) -> Person:
    return Person(
        person_id=person_id,
        role=Code("antragsteller" if applicant else "kind", PERSON_TYPES, "1.0"),
        applicant=applicant,
        given_name="Erika",
        family_name="Mustermann",
        birth_date="1985-04-12",
        sex=None,
        address=address,
        benefits=tuple(benefit(k, list_uri) for k in (keys or (SGB2,))),
    )


def submission(*persons: Person, reader: str | None = None) -> Submission:
    return Submission(
        payload_namespace="urn:test",
        payload_version="2.4.0",
        message_id="00000000-0000-4000-8000-000000000001",
        created="2026-11-02T09:14:00Z",
        author=Party("DVDV", "sop:050000100099"),
        reader=None if reader is None else Party("DVDV", reader),
        case_id="00000000-0000-4000-8000-000000000002",
        case_type=Code("antrag", "urn:xoev-de:xsozial:codeliste:vorgangstyp", "1.0"),
        application_date="2026-11-02",
        persons=persons or (person(),),
    )


def offices_of(routes: tuple) -> list[tuple[str, str, str]]:
    return [(r.leika, r.office.office_id, r.rule) for r in routes]


def assert_rejected(expected: Reason, sub: Submission, table: OfficeTable) -> None:
    with pytest.raises(Rejection) as caught:
        route(sub, table)
    assert expected == caught.value.reason


VENDORS = {"v": Vendor("v", "Vendor", "fv-xml")}


def small_table(*offices: Office, areas: tuple[Area, ...] = ()) -> OfficeTable:
    return OfficeTable(offices=offices, vendors=VENDORS, areas=areas)


def office(office_id: str, areas: tuple[str, ...], *leika: str, dvdv: str | None = None) -> Office:
    return Office(office_id, office_id, dvdv, areas, frozenset(leika or (SGB2,)), "v")


class TestReaderRule:
    def test_reader_key_wins_when_that_office_handles_the_benefit(self, office_table):
        """The reader's DVDV office gets the benefit even if the applicant lives elsewhere."""
        sub = submission(reader="jbc:055620120000")
        expected = [(SGB2, "jc-re-dorsten", "reader")]
        assert expected == offices_of(route(sub, office_table))

    def test_reader_office_not_handling_the_benefit_falls_back_to_area(self, office_table):
        """A reader office not handling the benefit is ignored; the applicant's area decides."""
        sub = submission(reader="wgb:055620120000")
        expected = [(SGB2, "jc-re-recklinghausen", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_reader_rule_applies_per_benefit(self, office_table):
        """With a reader handling one of two benefits, each benefit is routed by its own rule."""
        sub = submission(person(WOHNGELD, BUT), reader="wgb:055620120000")
        expected = [(WOHNGELD, "wgs-dorsten", "reader"), (BUT, "but-recklinghausen", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_reader_rule_needs_no_address(self, office_table):
        """When the reader office handles every benefit, a missing address does not matter."""
        sub = submission(person(SGB2, address=None), reader="jbc:055620120000")
        expected = [(SGB2, "jc-re-dorsten", "reader")]
        assert expected == offices_of(route(sub, office_table))

    def test_unknown_reader_key_falls_back_to_area(self, office_table):
        """A reader key that belongs to no office (the Sozialplattform default) routes by area."""
        sub = submission(reader="jbc:055620000000")
        expected = [(SGB2, "jc-re-recklinghausen", "area")]
        assert expected == offices_of(route(sub, office_table))


class TestApplicantArea:
    def test_explicit_ars_wins_over_postcode_and_town(self, office_table):
        """An ARS region key in the address is used before the postcode and the town name."""
        key = Code("055620024024", ARS_LIST)
        address = Address(postcode="45657", town="Recklinghausen", region_key=key)
        sub = submission(person(SGB2, address=address))
        expected = "055620024024"
        assert expected == applicant_ars(sub, office_table)
        expected = [(SGB2, "jc-re-marl", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_explicit_ags_is_accepted(self, office_table):
        """An 8-digit AGS under the AGS list URI routes like the ARS of the same municipality."""
        address = Address(region_key=Code("05562012", AGS_LIST))
        sub = submission(person(SGB2, address=address))
        expected = [(SGB2, "jc-re-dorsten", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_region_key_from_another_list_is_ignored(self, office_table):
        """A region key under a foreign list URI is not trusted; the postcode decides."""
        address = Address(postcode="45768", region_key=Code("055620012012", "urn:example:other"))
        sub = submission(person(SGB2, address=address))
        expected = "055620024024"
        assert expected == applicant_ars(sub, office_table)

    def test_by_postcode(self, office_table):
        """A postcode listed for exactly one area selects that area."""
        sub = submission(person(SGB2, address=Address(postcode="45768")))
        expected = [(SGB2, "jc-re-marl", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_postcode_wins_over_town(self, office_table):
        """The postcode is consulted before the town name."""
        sub = submission(person(SGB2, address=Address(postcode="45768", town="Recklinghausen")))
        expected = "055620024024"
        assert expected == applicant_ars(sub, office_table)

    def test_unknown_postcode_falls_back_to_town(self, office_table):
        """A postcode outside the table does not block the town-name lookup."""
        sub = submission(person(SGB2, address=Address(postcode="10115", town="Waltrop")))
        expected = [(SGB2, "jc-re-waltrop", "area")]
        assert expected == offices_of(route(sub, office_table))

    @pytest.mark.parametrize(
        "town", ["Haltern am See", "HALTERN AM SEE", "haltern am see", "  Haltern am See "]
    )
    def test_by_town_name_case_insensitive(self, office_table, town):
        """Town names match regardless of case and surrounding whitespace."""
        sub = submission(person(SGB2, address=Address(town=town)))
        expected = [(SGB2, "jc-re-haltern", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_town_name_is_compared_in_nfc(self):
        """A decomposed umlaut in the input matches the composed spelling in the table."""
        table = small_table(
            office("jc-luenen", ("05978024",)),
            areas=(Area("Lünen", "059780024024"),),
        )
        decomposed = "LU\u0308NEN"
        sub = submission(person(SGB2, address=Address(town=decomposed)))
        expected = [(SGB2, "jc-luenen", "area")]
        assert expected == offices_of(route(sub, table))

    def test_town_name_in_table_may_be_decomposed(self):
        """A decomposed spelling in the table matches a composed input."""
        table = small_table(
            office("jc-luenen", ("05978024",)),
            areas=(Area("Lu\u0308nen", "059780024024"),),
        )
        sub = submission(person(SGB2, address=Address(town="lünen")))
        expected = "059780024024"
        assert expected == applicant_ars(sub, table)

    def test_applicant_address_is_used_not_another_persons(self, office_table):
        """The area comes from the applicant, even when another household member is listed first."""
        child = person(BUT, applicant=False, address=Address(town="Marl"), person_id="p2")
        applicant = person(SGB2, address=Address(town="Datteln"))
        expected = "055620008008"
        assert expected == applicant_ars(submission(child, applicant), office_table)

    @given(data=st.data())
    def test_every_area_town_in_any_case_routes_to_its_jobcenter(self, office_table, data):
        """Any casing of a shipped area's town name routes SGB II to that city's Jobcenter."""
        area = data.draw(st.sampled_from(office_table.areas))
        flips = data.draw(st.lists(st.booleans(), min_size=len(area.name), max_size=len(area.name)))
        town = "".join(c.upper() if f else c.lower() for c, f in zip(area.name, flips, strict=True))
        (result,) = route(submission(person(SGB2, address=Address(town=town))), office_table)
        assert ars_to_ags(area.ars) == result.office.areas[0]
        assert result.office.office_id.startswith("jc-re-")


class TestSpecificity:
    def test_elterngeld_goes_to_the_kreis(self, office_table):
        """Elterngeld is granted by the Kreis: a city applicant routes to kreis-re-elterngeld."""
        sub = submission(person(ELTERNGELD))
        expected = [(ELTERNGELD, "kreis-re-elterngeld", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_municipality_wins_over_kreis(self):
        """When a Kreis and a municipal office both handle a benefit, the municipal one wins."""
        table = small_table(
            office("kreis", ("05562",)),
            office("stadt", ("05562032",)),
            areas=(Area("Recklinghausen", "055620032032"),),
        )
        expected = [(SGB2, "stadt", "area")]
        assert expected == offices_of(route(submission(), table))

    def test_kreis_office_serves_municipalities_without_their_own(self):
        """A city without a municipal office for the benefit falls back to the Kreis office."""
        table = small_table(
            office("kreis", ("05562",)),
            office("stadt", ("05562032",)),
            areas=(Area("Recklinghausen", "055620032032"), Area("Marl", "055620024024")),
        )
        sub = submission(person(SGB2, address=Address(town="Marl")))
        expected = [(SGB2, "kreis", "area")]
        assert expected == offices_of(route(sub, table))

    def test_equally_specific_offices_are_ambiguous(self):
        """Two municipal offices handling the same benefit for the same area are ROUTE_AMBIGUOUS."""
        table = small_table(
            office("stadt-a", ("05562032",)),
            office("stadt-b", ("05562032",)),
            areas=(Area("Recklinghausen", "055620032032"),),
        )
        assert_rejected(Reason.ROUTE_AMBIGUOUS, submission(), table)

    def test_equally_specific_kreis_offices_are_ambiguous(self):
        """Two Kreis-level offices handling the same benefit are ROUTE_AMBIGUOUS too."""
        table = small_table(
            office("kreis-a", ("05562",)),
            office("kreis-b", ("05562",)),
            areas=(Area("Recklinghausen", "055620032032"),),
        )
        assert_rejected(Reason.ROUTE_AMBIGUOUS, submission(), table)

    def test_ambiguous_postcode_falls_back_to_town(self):
        """A postcode shared by two areas decides nothing; the town name still can."""
        table = small_table(
            office("a", ("05562032",)),
            office("b", ("05562024",)),
            areas=(
                Area("Recklinghausen", "055620032032", ("45000",)),
                Area("Marl", "055620024024", ("45000",)),
            ),
        )
        sub = submission(person(SGB2, address=Address(postcode="45000", town="Marl")))
        expected = [(SGB2, "b", "area")]
        assert expected == offices_of(route(sub, table))


class TestMultipleBenefits:
    def test_wohngeld_and_but_go_to_two_offices(self, office_table):
        """A household asking for Wohngeld and BuT goes to the Wohngeldstelle and the Sozialamt."""
        sub = submission(person(WOHNGELD, BUT))
        expected = [(WOHNGELD, "wgs-recklinghausen", "area"), (BUT, "but-recklinghausen", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_benefits_of_other_household_members_are_routed(self, office_table):
        """A benefit requested for a child is routed as well, after the applicant's benefits."""
        sub = submission(person(WOHNGELD), person(BUT, applicant=False, person_id="p2"))
        expected = [(WOHNGELD, "wgs-recklinghausen", "area"), (BUT, "but-recklinghausen", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_repeated_benefit_is_routed_once(self, office_table):
        """The same LeiKa key requested by two persons yields one route."""
        sub = submission(person(BUT), person(BUT, applicant=False, person_id="p2"))
        expected = [(BUT, "but-recklinghausen", "area")]
        assert expected == offices_of(route(sub, office_table))

    def test_routing_is_all_or_nothing(self, office_table):
        """One unroutable benefit rejects the whole submission, not just that benefit."""
        sub = submission(person(SGB2, KINDERZUSCHLAG))
        assert_rejected(Reason.ROUTE_UNRESOLVED, sub, office_table)


class TestUnresolvable:
    @pytest.mark.parametrize(
        "address",
        [
            pytest.param(Address(town="Bottrop"), id="unknown-town"),
            pytest.param(Address(postcode="46236"), id="unknown-postcode"),
            pytest.param(None, id="no-address"),
            pytest.param(Address(), id="empty-address"),
            pytest.param(Address(street="Kurfürstenwall", house_number="21"), id="street-only"),
        ],
    )
    def test_area_that_cannot_be_determined(self, office_table, address):
        """Without a usable region key, postcode or known town: ROUTE_UNRESOLVED."""
        sub = submission(person(SGB2, address=address))
        assert_rejected(Reason.ROUTE_UNRESOLVED, sub, office_table)

    def test_no_applicant(self, office_table):
        """A submission without an applicant has no area and is ROUTE_UNRESOLVED."""
        sub = submission(person(SGB2, applicant=False))
        assert_rejected(Reason.ROUTE_UNRESOLVED, sub, office_table)

    def test_non_leika_list_uri(self, office_table):
        """A benefit coded in another list than LeiKa is ROUTE_UNRESOLVED."""
        sub = submission(person(SGB2, list_uri="urn:example:leistungen"))
        assert_rejected(Reason.ROUTE_UNRESOLVED, sub, office_table)

    @pytest.mark.parametrize("key", [KINDERZUSCHLAG, "99999999999999"])
    def test_leika_key_no_office_handles(self, office_table, key):
        """A LeiKa key no office handles in the applicant's area is ROUTE_UNRESOLVED."""
        assert_rejected(Reason.ROUTE_UNRESOLVED, submission(person(key)), office_table)

    def test_no_benefit_requested(self, office_table):
        """A submission requesting no benefit at all is ROUTE_UNRESOLVED."""
        sub = submission(dataclasses.replace(person(), benefits=()))
        assert_rejected(Reason.ROUTE_UNRESOLVED, sub, office_table)

    def test_area_outside_every_office(self, office_table):
        """An explicit ARS outside the Kreis matches no office and is ROUTE_UNRESOLVED."""
        address = Address(region_key=Code("051190000000", ARS_LIST))
        sub = submission(person(SGB2, address=address))
        assert_rejected(Reason.ROUTE_UNRESOLVED, sub, office_table)


class TestArsToAgs:
    @pytest.mark.parametrize(
        ("key", "expected"),
        [("055620032032", "05562032"), ("05562032", "05562032"), ("05562", "05562")],
    )
    def test_conversion(self, key, expected):
        """A 12-digit ARS drops its Verband digits; AGS and Kreis keys pass unchanged."""
        assert expected == ars_to_ags(key)


def _csv_column(name: str, column: str) -> set[str]:
    with (SHARED_DATA / name).open(encoding="utf-8", newline="") as handle:
        return {row[column] for row in csv.DictReader(handle)}


@pytest.mark.skipif(
    _shared_data() is None,
    reason="reference code lists not found: set SOZIALHUB_SHARED_DIR to the shared/ directory",
)
class TestShippedTableMatchesReferenceData:
    def test_every_leika_key_exists(self, office_table, settings):
        """Every LeiKa key in config/offices.yml (offices, leika_sets) is in the LeiKa table."""
        known = _csv_column("leika.csv", "leika_key")
        raw = yaml.safe_load(settings.offices_file.read_text("utf-8"))
        used = {k for o in office_table.offices for k in o.leika}
        used |= {k for keys in raw.get("leika_sets", {}).values() for k in keys}
        assert used, "the office table names no LeiKa keys"
        assert set() == used - known

    def test_every_area_ars_exists(self, office_table):
        """Every area ARS in config/offices.yml is a regional key of Kreis Recklinghausen."""
        known = _csv_column("kreis-recklinghausen.csv", "ars")
        used = {a.ars for a in office_table.areas}
        assert used
        assert set() == used - known

    def test_area_names_match_their_ars(self, office_table):
        """Each area's name is the official name of the municipality its ARS denotes."""
        path = SHARED_DATA / "kreis-recklinghausen.csv"
        with path.open(encoding="utf-8", newline="") as handle:
            names = {row["ars"]: row["name"] for row in csv.DictReader(handle)}
        expected = {a.ars: names.get(a.ars) for a in office_table.areas}
        assert expected == {a.ars: a.name for a in office_table.areas}

    def test_every_office_area_prefix_is_an_ags(self, office_table):
        """Every office area is the AGS of the Kreis or of one of its municipalities."""
        known = _csv_column("kreis-recklinghausen.csv", "ags")
        used = {a for o in office_table.offices for a in o.areas}
        assert set() == used - known

    def test_rechtskreise_agree_with_the_leika_list(self, office_table):
        """Every LeiKa key an office handles belongs to one of the office's Rechtskreise."""
        path = SHARED_DATA / "leika.csv"
        with path.open(encoding="utf-8", newline="") as handle:
            rechtskreis = {row["leika_key"]: row["rechtskreis"] for row in csv.DictReader(handle)}
        expected: list[tuple[str, str]] = []
        wrong = [
            (o.office_id, key)
            for o in office_table.offices
            for key in sorted(o.leika)
            if rechtskreis.get(key) not in o.rechtskreise
        ]
        assert expected == wrong


DESTINATION = "6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b"


class TestFitConnectReader:
    def test_destination_routes_to_its_office(self, office_table):
        """A FIT-Connect destination reader routes Wohngeld to the office owning the destination."""
        sub = dataclasses.replace(
            submission(person(WOHNGELD)), reader=Party(FITCONNECT_DIRECTORY, DESTINATION)
        )
        expected = [(WOHNGELD, "wgs-herten", "reader")]
        assert expected == offices_of(route(sub, office_table))

    def test_destination_key_in_another_directory_is_not_a_destination(self, office_table):
        """The same string as a DVDV key names no office: directories are not mixed."""
        sub = dataclasses.replace(submission(person(WOHNGELD)), reader=Party("DVDV", DESTINATION))
        expected = [(WOHNGELD, "wgs-recklinghausen", "area")]
        assert expected == offices_of(route(sub, office_table))


class TestExplain:
    def test_steps_of_a_reader_and_area_decision(self, office_table):
        """explain() lists benefits, the reader, the area and one route step per benefit."""
        sub = submission(person(WOHNGELD, BUT), reader="wgb:055620120000")
        explanation = explain(sub, office_table)
        expected = [
            {"step": "benefits", "outcome": "found", "leika": [WOHNGELD, BUT]},
            {"step": "reader", "outcome": "office", "directory": "DVDV", "office": "wgs-dorsten"},
            {
                "step": "route",
                "outcome": "reader",
                "leika": WOHNGELD,
                "office": "wgs-dorsten",
                "vendor": "lammkom",
            },
            {"step": "reader", "outcome": "does not handle", "leika": BUT, "office": "wgs-dorsten"},
            {
                "step": "area",
                "outcome": "found",
                "source": "postcode in the area table",
                "ags": "05562032",
            },
            {
                "step": "route",
                "outcome": "area",
                "leika": BUT,
                "office": "but-recklinghausen",
                "vendor": "oksozius",
            },
        ]
        assert expected == [s.as_dict() for s in explanation.steps]
        assert explanation.rejection is None
        assert route(sub, office_table) == explanation.routes

    def test_unresolved_explanation_names_the_benefit_and_area(self, office_table):
        """A benefit no office handles in the area is explained with its LeiKa key and the AGS."""
        sub = submission(person(KINDERZUSCHLAG))
        explanation = explain(sub, office_table)
        assert explanation.rejection is not None
        expected = (
            Reason.ROUTE_UNRESOLVED,
            "area",
            f"no office in the office table handles LeiKa {KINDERZUSCHLAG}",
        )
        actual = (
            explanation.rejection.reason,
            explanation.rejection.path,
            explanation.rejection.explanation,
        )
        assert expected == actual
        assert "decision" == explanation.steps[-1].step

    def test_ambiguous_explanation_names_the_tied_offices(self):
        """Two equally specific offices are both named, with what the operator can change."""
        table = small_table(
            office("a", ("05562032",)),
            office("b", ("05562032",)),
            areas=(Area("Recklinghausen", "055620032032"),),
        )
        rejection = explain(submission(), table).rejection
        assert rejection is not None
        assert Reason.ROUTE_AMBIGUOUS == rejection.reason
        assert "offices a, b all handle LeiKa" in rejection.explanation

    @given(
        street=st.text(min_size=2, max_size=20).map(lambda t: f"Xq{t}"),
        town=st.text(min_size=2, max_size=20).map(lambda t: f"Xq{t}"),
        postcode=st.from_regex(r"4[5-9][0-9]{3}", fullmatch=True),
    )
    def test_explanations_never_quote_the_address(self, street, town, postcode):
        """No step or explanation contains the applicant's street, town or postcode."""
        table = small_table(office("x", ("05562032",), KINDERZUSCHLAG))
        address = Address(street=street, house_number="1", postcode=postcode, town=town)
        explanation = explain(submission(person(SGB2, address=address)), table)
        text = repr([s.as_dict() for s in explanation.steps]) + repr(
            explanation.rejection.explanation if explanation.rejection else ""
        )
        for value in (street, town, postcode):
            assert repr(value)[1:-1] not in text
