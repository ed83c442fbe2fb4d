"""The office table: the shipped config loads; schema and consistency violations are refused."""

from __future__ import annotations

import copy
import json
from collections import Counter

import pytest
import yaml

from hub import offices
from hub.config import ConfigError


@pytest.fixture(scope="module")
def schema(settings) -> dict:
    return json.loads((settings.schema_dir / "hub" / "offices.schema.json").read_text("utf-8"))


@pytest.fixture(scope="module")
def shipped(settings) -> dict:
    return yaml.safe_load(settings.offices_file.read_text("utf-8"))


def assert_refused(document: dict, schema: dict, *words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        offices.parse(document, schema)
    expected: list[str] = []
    assert expected == [w for w in words if w not in str(caught.value)], str(caught.value)


CITIES = [
    "castrop-rauxel",
    "datteln",
    "dorsten",
    "gladbeck",
    "haltern",
    "herten",
    "marl",
    "oer-erkenschwick",
    "recklinghausen",
    "waltrop",
]


class TestShippedTable:
    def test_loads(self, office_table):
        """config/offices.yml loads: 31 offices, 4 vendors, 10 areas."""
        expected = (31, 4, 10)
        actual = (len(office_table.offices), len(office_table.vendors), len(office_table.areas))
        assert expected == actual

    def test_every_city_has_jobcenter_sozialamt_and_wohngeldstelle(self, office_table):
        """Each of the ten cities has a Jobcenter Bezirksstelle, Sozialamt and Wohngeldstelle."""
        ids = {o.office_id for o in office_table.offices}
        expected: list[str] = []
        missing = [
            f"{kind}-{city}"
            for city in CITIES
            for kind in ("jc-re", "soa", "wgs")
            if f"{kind}-{city}" not in ids
        ]
        assert expected == missing

    def test_office_ids_and_dvdv_keys_are_unique(self, office_table):
        """No office id and no DVDV key is used twice (reader routing depends on it)."""
        ids = Counter(o.office_id for o in office_table.offices)
        keys = Counter(o.dvdv for o in office_table.offices if o.dvdv)
        expected: list[str] = []
        assert expected == [k for k, n in (ids + keys).items() if n > 1]

    def test_office_lookup_by_dvdv_and_id(self, office_table):
        """Offices are found by DVDV key and by id; unknown keys give None."""
        expected = ("wgs-marl", "wgs-marl", None)
        actual = (
            office_table.office_by_dvdv("wgb:055620240000").office_id,
            office_table.office("wgs-marl").office_id,
            office_table.office_by_dvdv("wgb:000000000000"),
        )
        assert expected == actual

    def test_every_vendor_has_a_known_mapping(self, office_table):
        """Every vendor's format is one the hub can map to."""
        from hub.core.mapping import MAPPINGS

        expected: dict[str, str] = {}
        vendors = office_table.vendors.values()
        unknown = {v.vendor_id: v.format for v in vendors if v.format not in MAPPINGS}
        assert expected == unknown

    def test_parse_of_the_shipped_document_equals_load(self, office_table, shipped, schema):
        """parse() on the shipped YAML gives the same table as load()."""
        assert office_table == offices.parse(shipped, schema)


class TestViolations:
    def test_unknown_vendor(self, shipped, schema):
        """An office naming a vendor that is not declared is refused."""
        document = copy.deepcopy(shipped)
        document["offices"][0]["vendor"] = "nobody"
        assert_refused(document, schema, "unknown vendor")

    def test_duplicate_office_id(self, shipped, schema):
        """Two offices with the same id are refused, naming the id."""
        document = copy.deepcopy(shipped)
        document["offices"][1]["id"] = document["offices"][0]["id"]
        assert_refused(document, schema, "duplicate", document["offices"][0]["id"])

    def test_duplicate_dvdv_key(self, shipped, schema):
        """Two offices sharing a DVDV key are refused: reader routing would pick one silently."""
        document = copy.deepcopy(shipped)
        document["offices"][1]["dvdv"] = document["offices"][0]["dvdv"]
        assert_refused(document, schema, "duplicate", "dvdv")

    @pytest.mark.parametrize("ars", ["05562003203", "0556200320321", "05562003203x", 55620032032])
    def test_bad_area_ars(self, shipped, schema, ars):
        """An area ARS that is not exactly 12 digits is refused, naming its location."""
        document = copy.deepcopy(shipped)
        document["areas"][0]["ars"] = ars
        assert_refused(document, schema, "areas/0/ars")

    @pytest.mark.parametrize(
        ("path", "value", "where"),
        [
            (("offices", 0, "areas"), ["0556"], "offices/0/areas/0"),
            (("offices", 0, "areas"), [], "offices/0/areas"),
            (("offices", 0, "leika"), ["9910700201700"], "offices/0/leika/0"),
            (("offices", 0, "leika"), ["99107002017000", "99107002017000"], "offices/0/leika"),
            (("offices", 0, "dvdv"), "jbc-055620040000", "offices/0/dvdv"),
            (("offices", 0, "id"), "Jobcenter Eins", "offices/0/id"),
            (("vendors", "akdn", "format"), "csv", "vendors/akdn/format"),
            (("areas", 0, "postcodes"), ["4457"], "areas/0/postcodes/0"),
            (("schema",), "sozialhub.offices/2", "schema"),
        ],
    )
    def test_schema_violation_names_the_location(self, shipped, schema, path, value, where):
        """A value the JSON schema forbids is refused with the path of the offending entry."""
        document = copy.deepcopy(shipped)
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
        assert_refused(document, schema, where)

    @pytest.mark.parametrize("key", ["offices", "vendors", "schema"])
    def test_missing_required_section(self, shipped, schema, key):
        """A table without offices, vendors or the schema marker is refused."""
        document = copy.deepcopy(shipped)
        del document[key]
        assert_refused(document, schema, "office table invalid")

    def test_unknown_key(self, shipped, schema):
        """A misspelt office key is refused instead of being ignored."""
        document = copy.deepcopy(shipped)
        document["offices"][0]["leikas"] = document["offices"][0].pop("leika")
        assert_refused(document, schema, "offices/0")

    def test_violation_message_does_not_echo_the_value(self, shipped, schema):
        """Schema errors name the location, not the offending value."""
        document = copy.deepcopy(shipped)
        document["areas"][0]["ars"] = "GEHEIM-WERT-1"
        with pytest.raises(ConfigError) as caught:
            offices.parse(document, schema)
        assert "GEHEIM-WERT-1" not in str(caught.value)


class TestLoadFromFile:
    def test_missing_file(self, settings, tmp_path):
        """A missing office table file is a ConfigError."""
        with pytest.raises(ConfigError):
            offices.load(tmp_path / "missing.yml", settings.schema_dir)

    def test_invalid_yaml(self, settings, tmp_path):
        """A file that is not YAML is a ConfigError."""
        path = tmp_path / "offices.yml"
        path.write_text("offices: [unclosed\n", encoding="utf-8")
        with pytest.raises(ConfigError):
            offices.load(path, settings.schema_dir)

    def test_yaml_that_is_not_a_mapping(self, settings, tmp_path):
        """A YAML list instead of a mapping is refused by the schema."""
        path = tmp_path / "offices.yml"
        path.write_text("- just\n- a list\n", encoding="utf-8")
        with pytest.raises(ConfigError):
            offices.load(path, settings.schema_dir)
