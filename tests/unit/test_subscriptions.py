"""Rechtskreiswechsel subscriptions: the shipped example, matching, schema and consistency checks."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from hub import subscriptions
from hub.config import ConfigError
from hub.core import rechtskreiswechsel as rkw
from hub.core.subscriptions import Role, Subscription, Subscriptions, Trigger, problems
from hub.core.transfer import CATEGORIES, PURPOSES

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


@pytest.fixture(scope="module")
def schema(settings) -> dict:
    return json.loads(
        (settings.schema_dir / "hub" / "subscriptions.schema.json").read_text("utf-8")
    )


@pytest.fixture(scope="module")
def document(settings) -> dict:
    return yaml.safe_load(subscriptions.default_path(settings).read_text("utf-8"))


@pytest.fixture(scope="module")
def shipped(settings, office_table) -> Subscriptions:
    return subscriptions.load(
        subscriptions.default_path(settings), settings.schema_dir, office_table
    )


def ids(found: tuple[Subscription, ...]) -> set[str]:
    return {s.subscription_id for s in found}


def refused(document: dict, schema: dict, table) -> str:
    with pytest.raises(ConfigError) as caught:
        subscriptions.parse(document, schema, table)
    return str(caught.value)


class TestShipped:
    def test_loads(self, shipped):
        """3 new-office, 1 old-office and 21 affected subscriptions (Ausländerbehörde, 10 + 10)."""
        counts = {role: sum(s.role is role for s in shipped.entries) for role in Role}
        assert {Role.NEW_OFFICE: 3, Role.OLD_OFFICE: 1, Role.AFFECTED: 21} == counts

    def test_every_city_has_wohngeld_and_but_subscriptions(self, shipped):
        """Each city's Wohngeldstelle and BuT office is affected, in its own area."""
        offices = {s.office: s.areas for s in shipped.entries if s.role is Role.AFFECTED}
        expected: list[str] = []
        missing = [
            f"{kind}-{city}"
            for city in CITIES
            for kind in ("wgs", "but")
            if f"{kind}-{city}" not in offices
        ]
        assert expected == missing

    def test_affected_default_to_their_offices_areas(self, shipped, office_table):
        """An affected subscription without areas takes its office's areas from the table."""
        wohngeld = next(s for s in shipped.entries if s.subscription_id == "wohngeld-marl")
        assert office_table.office("wgs-marl").areas == wohngeld.areas

    def test_recognition_in_marl(self, shipped):
        """AsylbLG to SGB II in Marl: Jobcenter needs, old office, Ausländerbehörde, Wohngeld, BuT."""
        expected = {
            "new-office-sgb2",
            "old-office-confirmation",
            "abh-from-asylblg",
            "wohngeld-marl",
            "but-marl",
        }
        assert expected == ids(shipped.matching("AsylbLG", "SGB II", "recognition", "05562024"))

    def test_permanent_incapacity_adds_health(self, shipped):
        """SGB II to SGB XII for permanent incapacity: the health need is declared as well."""
        found = shipped.matching("SGB II", "SGB XII", "permanent-incapacity", "05562012")
        declared = set().union(*(s.categories for s in found if s.role is Role.NEW_OFFICE))
        assert "health" in declared

    def test_retirement_declares_no_health(self, shipped):
        """For retirement age the new office declares no health data."""
        found = shipped.matching("SGB II", "SGB XII", "retirement-age", "05562012")
        declared = set().union(*(s.categories for s in found if s.role is Role.NEW_OFFICE))
        assert "health" not in declared

    def test_no_subscription_declares_youth_welfare(self, shipped):
        """Youth-welfare data (§ 65 SGB VIII) is declared by nobody in the example."""
        expected: list[str] = []
        assert expected == [
            s.subscription_id for s in shipped.entries if "youth-welfare" in s.categories
        ]

    def test_outside_the_kreis_nobody(self, shipped):
        """A person in Bochum (05911) matches no subscription of Kreis Recklinghausen."""
        expected: set[str] = set()
        assert expected == ids(shipped.matching("AsylbLG", "SGB II", "recognition", "05911000"))


class TestMatching:
    @pytest.mark.parametrize(
        ("trigger", "matches"),
        [
            (Trigger(), True),
            (Trigger(from_rechtskreis="AsylbLG"), True),
            (Trigger(to_rechtskreis="SGB II"), True),
            (Trigger(to_rechtskreis="SGB XII"), False),
            (Trigger("AsylbLG", "SGB II", "recognition"), True),
            (Trigger("AsylbLG", "SGB II", "ukraine-2022"), False),
            (Trigger(reason="recognition"), True),
        ],
    )
    def test_trigger(self, trigger, matches):
        """Every field a trigger names must equal the event's; unnamed fields match anything."""
        assert matches == trigger.matches("AsylbLG", "SGB II", "recognition")

    @pytest.mark.parametrize(
        ("areas", "area", "matches"),
        [
            (("05562",), "05562024", True),
            (("05562024",), "05562024", True),
            (("05562020",), "05562024", False),
        ],
    )
    def test_area_prefix(self, areas, area, matches):
        """The person's area must start with one of the subscription's AGS prefixes."""
        s = Subscription("s", Role.NEW_OFFICE, "rechtskreiswechsel-handover", frozenset(), areas)
        assert matches == s.matches("AsylbLG", "SGB II", "other", area)

    def test_any_trigger_suffices(self):
        """Triggers are alternatives."""
        s = Subscription(
            "s",
            Role.NEW_OFFICE,
            "rechtskreiswechsel-handover",
            frozenset(),
            ("05562",),
            (Trigger(to_rechtskreis="SGB XII"), Trigger(reason="other")),
        )
        assert (True, True, False) == (
            s.matches("SGB II", "SGB XII", "retirement-age", "05562024"),
            s.matches("AsylbLG", "SGB II", "other", "05562024"),
            s.matches("AsylbLG", "SGB II", "recognition", "05562024"),
        )


def entry(document: dict, subscription_id: str) -> dict:
    return next(e for e in document["subscriptions"] if e["id"] == subscription_id)


class TestViolations:
    @pytest.mark.parametrize(
        ("subscription_id", "change", "where"),
        [
            ("wohngeld-marl", {"office": None}, "subscriptions/"),
            ("wohngeld-marl", {"categories": ["religion"]}, "/categories/0"),
            ("wohngeld-marl", {"purpose": "marketing"}, "/purpose"),
            ("wohngeld-marl", {"when": [{}]}, "/when/0"),
            ("wohngeld-marl", {"when": [{"to": "SGB 2"}]}, "/when/0/to"),
            ("wohngeld-marl", {"areas": ["0556"]}, "/areas/0"),
            ("new-office-sgb2", {"office": "jc-re-marl"}, "subscriptions/"),
            ("new-office-sgb2", {"areas": None}, "subscriptions/"),
            ("new-office-sgb2", {"purpose": "joint-case-management"}, "/purpose"),
            ("old-office-confirmation", {"categories": ["household"]}, "/categories"),
            ("old-office-confirmation", {"role": "owner"}, "/role"),
            ("old-office-confirmation", {"on": [{"to": "SGB II"}]}, "subscriptions/"),
        ],
    )
    def test_schema_names_the_location(
        self, document, schema, office_table, subscription_id, change, where
    ):
        """A value the schema forbids is refused with its location in the file."""
        changed = copy.deepcopy(document)
        target = entry(changed, subscription_id)
        for key, value in change.items():
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value
        message = refused(changed, schema, office_table)
        assert ("subscriptions invalid at", True) == (message[:24], where in message)

    def test_schema_error_does_not_echo_the_value(self, document, schema, office_table):
        """Locations, never values."""
        changed = copy.deepcopy(document)
        entry(changed, "wohngeld-marl")["office"] = "Frau Erika Mustermann"
        assert "Mustermann" not in refused(changed, schema, office_table)

    @pytest.mark.parametrize(
        ("subscription_id", "change", "words"),
        [
            ("wohngeld-marl", {"office": "wgs-bochum"}, ("wohngeld-marl", "no office")),
            ("wohngeld-marl", {"areas": ["05562020"]}, ("wohngeld-marl", "wgs-marl")),
            ("but-marl", {"id": "wohngeld-marl"}, ("duplicate", "wohngeld-marl")),
            (
                "but-marl",
                {"office": "wgs-marl", "purpose": "evidence-reuse"},
                ("wgs-marl", "two purposes"),
            ),
        ],
    )
    def test_consistency_with_the_office_table(
        self, document, schema, office_table, subscription_id, change, words
    ):
        """Unknown offices, areas outside the office's, duplicate ids, two purposes for one office."""
        changed = copy.deepcopy(document)
        entry(changed, subscription_id).update(change)
        message = refused(changed, schema, office_table)
        expected: list[str] = []
        assert expected == [w for w in words if w not in message], message

    def test_problems_of_hand_built_subscriptions(self, office_table):
        """The pure check also catches what only the schema would otherwise refuse."""
        entries = (
            Subscription(
                "a", Role.OLD_OFFICE, "joint-case-management", frozenset({"income"}), ("05562",)
            ),
            Subscription("b", Role.NEW_OFFICE, "rechtskreiswechsel-handover", frozenset({"x"}), ()),
            Subscription(
                "c",
                Role.AFFECTED,
                "rechtskreiswechsel-handover",
                frozenset(),
                ("05562",),
                (Trigger(to_rechtskreis="SGB III", reason="marriage"),),
                office="wgs-marl",
            ),
        )
        found = problems(Subscriptions(entries), office_table)
        expected = [
            "subscription a: a old-office subscription has purpose rechtskreiswechsel-handover",
            "subscription a: the old office's confirmation carries no categories",
            "subscription b: unknown data category",
            "subscription b: no area",
            "subscription c: unknown Rechtskreis in a trigger",
            "subscription c: unknown reason in a trigger",
        ]
        assert expected == list(found)


class TestFiles:
    def test_missing_file(self, settings, office_table, tmp_path):
        """A missing subscriptions file is a ConfigError."""
        with pytest.raises(ConfigError):
            subscriptions.load(tmp_path / "missing.yml", settings.schema_dir, office_table)

    def test_invalid_yaml(self, settings, office_table, tmp_path):
        """A file that is not YAML is a ConfigError."""
        path = tmp_path / "subscriptions.yml"
        path.write_text("subscriptions: [unclosed\n", encoding="utf-8")
        with pytest.raises(ConfigError):
            subscriptions.load(path, settings.schema_dir, office_table)

    def test_default_path_is_beside_the_office_table(self, settings):
        """``subscriptions.yml`` lives next to the configured ``offices.yml``."""
        assert settings.offices_file.parent == subscriptions.default_path(settings).parent

    def test_schema_enums_follow_the_code_lists(self, schema):
        """The schema lists exactly the purposes, categories, Rechtskreise, reasons and roles."""
        props = schema["properties"]["subscriptions"]["items"]["properties"]
        trigger = props["when"]["items"]["properties"]
        expected = (
            list(PURPOSES),
            list(CATEGORIES),
            list(rkw.RECHTSKREISE),
            list(rkw.REASONS),
            [r.value for r in Role],
        )
        actual = (
            props["purpose"]["enum"],
            props["categories"]["items"]["enum"],
            trigger["from"]["enum"],
            trigger["reason"]["enum"],
            props["role"]["enum"],
        )
        assert expected == actual
