"""The office table: the shipped config loads; schema and consistency violations are refused."""

from __future__ import annotations

import copy
import json

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
        """config/offices.yml loads: 4 offices per city and 3 of the Kreis, 4 vendors, 10 areas."""
        expected = (43, 4, 10)
        actual = (len(office_table.offices), len(office_table.vendors), len(office_table.areas))
        assert expected == actual

    def test_every_city_has_jobcenter_sozialamt_wohngeldstelle_and_but_office(self, office_table):
        """Each of the ten cities has a Jobcenter Bezirksstelle, Sozialamt, Wohngeld and BuT office."""
        ids = {o.office_id for o in office_table.offices}
        expected: list[str] = []
        missing = [
            f"{kind}-{city}"
            for city in CITIES
            for kind in ("jc-re", "soa", "wgs", "but")
            if f"{kind}-{city}" not in ids
        ]
        assert expected == missing

    def test_kreis_offices_for_elterngeld_and_schwerbehinderung(self, office_table):
        """The Kreis runs the Elterngeldstelle, Fachdienst 59 and the Ausländerbehörde Kreis-wide (05562)."""
        expected = {
            "kreis-re-elterngeld": ("05562",),
            "kreis-re-fd59": ("05562",),
            "kreis-re-abh": ("05562",),
        }
        actual = {
            o.office_id: o.areas for o in office_table.offices if o.office_id.startswith("kreis-")
        }
        assert expected == actual

    def test_each_vendor_has_its_own_format_and_channel(self, office_table):
        """The four vendor profiles use the four formats, over file, http and kafka."""
        expected = {
            "akdn": ("fv-avro", "kafka"),
            "openprosoz": ("fv-xml", "file"),
            "lammkom": ("fv-fixed", "file"),
            "oksozius": ("fv-json", "http"),
        }
        actual = {v.vendor_id: (v.format, v.channel) for v in office_table.vendors.values()}
        assert expected == actual

    def test_http_endpoint_is_per_office(self, office_table):
        """An http vendor's URL template gets the office id filled in; other vendors have none."""
        expected = (
            "https://fv.oksozius.example/api/v1/offices/but-marl/cases",
            None,
        )
        actual = (
            office_table.endpoint(office_table.office("but-marl")),
            office_table.endpoint(office_table.office("soa-marl")),
        )
        assert expected == actual

    def test_fitconnect_destination_names_an_office(self, office_table):
        """The Serviceportal's FIT-Connect destination belongs to the Wohngeldstelle Herten."""
        from hub.core.model import Party
        from hub.core.route import FITCONNECT_DIRECTORY

        reader = Party(FITCONNECT_DIRECTORY, "6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b")
        expected = ("wgs-herten", None)
        actual = (
            office_table.office_by_reader(reader).office_id,
            office_table.office_by_reader(Party("DVDV", reader.key)),
        )
        assert expected == actual


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
            (("schema",), "sozialhub.offices/1", "schema"),
            (("offices", 0, "rechtskreise"), ["SGB 2"], "offices/0/rechtskreise/0"),
            (("offices", 0, "rechtskreise"), [], "offices/0/rechtskreise"),
            (("vendors", "akdn", "delivery"), {"channel": "ftp"}, "vendors/akdn/delivery"),
            (("vendors", "oksozius", "delivery"), {"channel": "http"}, "vendors/oksozius/delivery"),
            (
                ("vendors", "oksozius", "delivery"),
                {"channel": "http", "url": "https://x.example/", "max_attempts": 0},
                "vendors/oksozius/delivery",
            ),
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

    def test_plain_http_endpoint_off_loopback(self, shipped, schema):
        """An http vendor URL without TLS is refused unless it points at a loopback simulator."""
        document = copy.deepcopy(shipped)
        document["vendors"]["oksozius"]["delivery"]["url"] = "http://fv.example/{office}"
        assert_refused(document, schema, "vendor oksozius", "plain http")
        document["vendors"]["oksozius"]["delivery"]["url"] = "http://127.0.0.1:8080/{office}"
        assert offices.parse(document, schema).vendors["oksozius"].http is not None

    def test_kafka_channel_needs_avro(self, shipped, schema):
        """A vendor on the kafka channel must use fv-avro, the vendor topic's contract."""
        document = copy.deepcopy(shipped)
        document["vendors"]["openprosoz"]["delivery"] = {"channel": "kafka"}
        assert_refused(document, schema, "openprosoz", "fv-avro")

    def test_office_level_endpoint_is_not_a_field(self, shipped, schema):
        """An office cannot name its own URL: one template per vendor, ``{office}`` filled in."""
        document = copy.deepcopy(shipped)
        document["offices"][0]["endpoint"] = "https://x.example/cases"
        assert_refused(document, schema, "offices/0")

    def test_duplicate_fitconnect_destination(self, shipped, schema):
        """Two offices claiming one FIT-Connect destination are refused."""
        document = copy.deepcopy(shipped)
        destination = "6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b"
        document["offices"][0]["fitconnect_destinations"] = [destination]
        assert_refused(document, schema, "duplicate FIT-Connect destination")


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
