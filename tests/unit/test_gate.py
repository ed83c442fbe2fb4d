"""The transfer gate: one test per rule and reason code, the example policy and its loader."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json

import pytest
import yaml

from hub import policy as policy_file
from hub.config import ConfigError
from hub.core import consent, gate
from hub.core.errors import Reason
from hub.core.gate import Parties, Policy, StatutoryBasis, decide
from hub.core.model import Code, Document, Person, Submission
from hub.core.model import Party as Author
from hub.core.transfer import CATEGORIES, Outcome
from tests.consent_support import ALICE, BOB, DAY, T0, granted, policy, request

NOW = T0 + 2 * DAY
NOTICE = StatutoryBasis(
    basis_id="rkw-notice",
    legal_reference="§ 69 Abs. 1 Nr. 1 SGB X",
    purposes=frozenset({"rechtskreiswechsel-handover"}),
    senders=Parties(rechtskreise=frozenset({"AsylbLG", "SGB XII"})),
    recipients=Parties(rechtskreise=frozenset({"SGB II", "SGB XII"})),
)


def states(*events: consent.ConsentEvent) -> list[consent.ConsentState]:
    return list(consent.fold(events).values())


def outcome(decision) -> tuple:
    return (decision.outcome, decision.categories, decision.reason, dict(decision.dropped))


class TestConsentBasis:
    def test_valid_consent_allows_what_it_names(self):
        """A consent valid now, from the sender, naming recipient, purpose and categories: allow."""
        g = granted()
        decision = decide(request(), states(g), policy(), NOW)
        expected = (Outcome.ALLOW, frozenset({"identity-address", "income"}), None, {})
        assert expected == outcome(decision)
        assert ("consent", g.record_id) == (decision.basis.kind, decision.basis.consent_record)
        assert gate.CONSENT_LEGAL_REFERENCE == decision.basis.legal_reference

    def test_decision_carries_request_id_and_time(self):
        """The decision names the request and when it was decided."""
        decision = decide(request(request_id="dlv-1"), states(granted()), policy(), NOW)
        assert ("dlv-1", NOW) == (decision.request_id, decision.decided_at)

    def test_consent_scope_minimises(self):
        """Categories the consent does not name are dropped: allow-minimised, CONSENT_SCOPE."""
        g = granted(categories=["income"])
        decision = decide(request(), states(g), policy(), NOW)
        expected = (
            Outcome.ALLOW_MINIMISED,
            frozenset({"income"}),
            Reason.CONSENT_SCOPE,
            {"identity-address": Reason.CONSENT_SCOPE},
        )
        assert expected == outcome(decision)

    @pytest.mark.parametrize(
        "changes",
        [
            {"recipients": ["wgs-marl"]},
            {"purpose": "joint-case-management"},
            {"granting_office": "wgs-marl", "recipients": ["jc-re-marl"]},
        ],
    )
    def test_consent_for_another_recipient_purpose_or_sender(self, changes):
        """A consent for another recipient, purpose or sender does not cover: deny CONSENT_SCOPE."""
        decision = decide(request(), states(granted(**changes)), policy(), NOW)
        expected = (Outcome.DENY, frozenset(), Reason.CONSENT_SCOPE)
        assert expected == outcome(decision)[:3]
        assert decision.basis is None

    def test_another_persons_consent_does_not_count(self):
        """Bob's consent never covers Alice: with no consent of hers and no statute, NO_BASIS."""
        decision = decide(request(), states(granted(person=BOB)), policy(), NOW)
        assert (Outcome.DENY, Reason.NO_BASIS) == (decision.outcome, decision.reason)

    def test_consent_missing(self):
        """No consent at all, but a statute applies to the route (not to the data): CONSENT_MISSING."""
        decision = decide(request(), [], policy(NOTICE), NOW)
        expected = (
            Outcome.DENY,
            frozenset(),
            Reason.CONSENT_MISSING,
            {"identity-address": Reason.CONSENT_MISSING, "income": Reason.CONSENT_MISSING},
        )
        assert expected == outcome(decision)

    def test_revoked(self):
        """A revocation effective before now removes the consent: CONSENT_REVOKED."""
        g = granted()
        revocation = consent.revoke(
            person=ALICE, record_id=g.record_id, effective_at=NOW - DAY, channel="portal"
        )
        decision = decide(request(), states(g, revocation), policy(), NOW)
        assert (Outcome.DENY, Reason.CONSENT_REVOKED) == (decision.outcome, decision.reason)

    def test_revocation_at_now_counts_later_does_not(self):
        """Effective exactly now: revoked; effective later: still valid now."""
        g = granted()

        def at(when: dt.datetime) -> Outcome:
            revocation = consent.revoke(
                person=ALICE, record_id=g.record_id, effective_at=when, channel="portal"
            )
            return decide(request(), states(g, revocation), policy(), NOW).outcome

        assert (Outcome.DENY, Outcome.ALLOW) == (at(NOW), at(NOW + dt.timedelta(milliseconds=1)))

    def test_expired(self):
        """Past valid_until, or after an expired event: CONSENT_EXPIRED."""
        by_time = granted(valid_until=NOW - DAY)
        g = granted()
        by_event = consent.expire(person=ALICE, record_id=g.record_id, effective_at=NOW)
        expected = [Reason.CONSENT_EXPIRED, Reason.CONSENT_EXPIRED]
        actual = [
            decide(request(), states(by_time), policy(), NOW).reason,
            decide(request(), states(g, by_event), policy(), NOW).reason,
        ]
        assert expected == actual

    def test_not_yet_valid(self):
        """Before valid_from: CONSENT_NOT_YET_VALID."""
        g = granted(valid_from=NOW + DAY)
        assert Reason.CONSENT_NOT_YET_VALID == decide(request(), states(g), policy(), NOW).reason

    def test_superseded_by_a_narrower_consent(self):
        """The newer consent rules: categories only the old one named are CONSENT_SUPERSEDED."""
        old = granted()
        new = granted(categories=["income"], valid_from=T0 + DAY)
        decision = decide(
            request(), states(old, new, consent.supersede(old.record_id, new)), policy(), NOW
        )
        expected = (
            Outcome.ALLOW_MINIMISED,
            frozenset({"income"}),
            Reason.CONSENT_SUPERSEDED,
            {"identity-address": Reason.CONSENT_SUPERSEDED},
        )
        assert expected == outcome(decision)
        assert new.record_id == decision.basis.consent_record

    def test_special_category_never_on_consent(self):
        """Health in an explicit consent still does not leave: SPECIAL_CATEGORY."""
        g = granted(categories=["identity-address", "health"], sensitive=True)
        rules = policy(purpose_categories={"rechtskreiswechsel-handover": frozenset(CATEGORIES)})
        decision = decide(
            request(categories=frozenset({"identity-address", "health"})), states(g), rules, NOW
        )
        expected = (
            Outcome.ALLOW_MINIMISED,
            frozenset({"identity-address"}),
            Reason.SPECIAL_CATEGORY,
            {"health": Reason.SPECIAL_CATEGORY},
        )
        assert expected == outcome(decision)

    def test_conflicting_grants_do_not_count(self):
        """A record with two different grants is not a basis."""
        g = granted()
        assert g.record is not None
        other = dataclasses.replace(g, record=dataclasses.replace(g.record, text_version="x"))
        decision = decide(request(), states(g, other), policy(), NOW)
        assert Outcome.DENY == decision.outcome


class TestStatutoryBasis:
    def test_statute_listing_special_category_allows_it(self):
        """Only a statute that lists health lets it leave."""
        basis = StatutoryBasis(
            basis_id="sgb9-health",
            legal_reference="§ 67a SGB X",
            purposes=frozenset({"application-delivery"}),
            senders=Parties(portals=frozenset({gate.ANY})),
            recipients=Parties(rechtskreise=frozenset({"SGB IX"})),
            categories=frozenset({"identity-address", "health"}),
        )
        rules = policy(basis, purpose_categories={"application-delivery": frozenset(CATEGORIES)})
        ask = request(
            from_office="sozialplattform-nrw",
            to_office="kreis-re-fd59",
            purpose="application-delivery",
            categories=frozenset({"identity-address", "health"}),
        )
        decision = decide(ask, [], rules, NOW)
        expected = (Outcome.ALLOW, frozenset({"identity-address", "health"}), None, {})
        assert expected == outcome(decision)
        assert ("statute", "sgb9-health", "§ 67a SGB X") == (
            decision.basis.kind,
            decision.basis.basis_id,
            decision.basis.legal_reference,
        )
        elsewhere = decide(dataclasses.replace(ask, to_office="jc-re-marl"), [], rules, NOW)
        assert (Outcome.DENY, Reason.NO_BASIS) == (elsewhere.outcome, elsewhere.reason)

    def test_data_free_notice(self):
        """A request for no categories is allowed by a statute that allows none."""
        decision = decide(request(categories=frozenset()), [], policy(NOTICE), NOW)
        expected = (Outcome.ALLOW, frozenset(), None, {})
        assert expected == outcome(decision)
        assert "rkw-notice" == decision.basis.basis_id

    def test_data_free_notice_without_basis(self):
        """No statute, no consent: even a notice is denied with NO_BASIS."""
        decision = decide(request(categories=frozenset()), [], policy(), NOW)
        assert (Outcome.DENY, Reason.NO_BASIS) == (decision.outcome, decision.reason)

    def test_data_free_notice_after_revocation(self):
        """A notice relying on a revoked consent only: CONSENT_REVOKED."""
        g = granted()
        revocation = consent.revoke(
            person=ALICE, record_id=g.record_id, effective_at=T0 + DAY, channel="portal"
        )
        decision = decide(request(categories=frozenset()), states(g, revocation), policy(), NOW)
        assert (Outcome.DENY, Reason.CONSENT_REVOKED) == (decision.outcome, decision.reason)

    @pytest.mark.parametrize(
        ("from_office", "from_rk", "to_office", "to_rk", "applies"),
        [
            # No Rechtskreis named: every Rechtskreis of each office must be listed.
            ("soa-marl", None, "jc-re-marl", None, True),
            ("soa-marl", "AsylbLG", "jc-re-marl", "SGB II", True),
            # The Sozialamt does not decide in SGB II.
            ("soa-marl", "SGB II", "jc-re-marl", "SGB II", False),
            # The Jobcenter (SGB II) is no listed sender.
            ("jc-re-marl", None, "soa-marl", None, False),
            ("soa-marl", None, "wgs-marl", None, False),
            ("unknown-office", "AsylbLG", "jc-re-marl", "SGB II", False),  # not in the office table
        ],
    )
    def test_rechtskreis_matching(self, from_office, from_rk, to_office, to_rk, applies):
        """Rechtskreis sides match offices of the table by the stated or all of their Rechtskreise."""
        ask = request(
            from_office=from_office,
            to_office=to_office,
            from_rechtskreis=from_rk,
            to_rechtskreis=to_rk,
        )
        assert applies == gate.applies(NOTICE, ask, policy())

    def test_wildcards_need_the_tables(self):
        """'*' matches offices and portals of the tables only, never an unknown id."""
        basis = dataclasses.replace(
            NOTICE,
            senders=Parties(portals=frozenset({gate.ANY})),
            recipients=Parties(offices=frozenset({gate.ANY})),
        )
        known = request(from_office="sozialplattform-nrw")
        expected = (True, False, False)
        actual = (
            gate.applies(basis, known, policy()),
            gate.applies(basis, known, policy(portals=frozenset())),
            gate.applies(basis, dataclasses.replace(known, to_office="nowhere"), policy()),
        )
        assert expected == actual


class TestOrderOfEvaluation:
    def test_most_categories_wins(self):
        """A statute covering more of the request beats a consent covering less."""
        wider = dataclasses.replace(NOTICE, basis_id="wide", categories=frozenset(CATEGORIES))
        g = granted(categories=["income"])
        decision = decide(request(), states(g), policy(wider), NOW)
        assert ("statute", Outcome.ALLOW) == (decision.basis.kind, decision.outcome)

    def test_consent_before_statute_on_a_tie(self):
        """Equal coverage: the consent is the basis."""
        equal = dataclasses.replace(
            NOTICE, basis_id="equal", categories=frozenset({"identity-address", "income"})
        )
        g = granted()
        decision = decide(request(), states(g), policy(equal), NOW)
        assert ("consent", g.record_id) == (decision.basis.kind, decision.basis.consent_record)

    def test_ties_by_id(self):
        """Between equal statutes (or consents) the smaller id wins, in any input order."""
        a = dataclasses.replace(NOTICE, basis_id="a-basis")
        b = dataclasses.replace(NOTICE, basis_id="b-basis")
        ask = request(categories=frozenset())
        expected = ["a-basis", "a-basis"]
        actual = [decide(ask, [], policy(*bases), NOW).basis.basis_id for bases in ((a, b), (b, a))]
        assert expected == actual
        one, other = granted(text_version="v1"), granted(text_version="v2")
        chosen = {
            decide(request(), order, policy(), NOW).basis.consent_record
            for order in (states(one, other), states(other, one))
        }
        assert {min(one.record_id, other.record_id)} == chosen

    def test_other_basis(self):
        """A category another basis would cover is dropped with OTHER_BASIS; asking again gets it."""
        statute = dataclasses.replace(
            NOTICE, basis_id="identity", categories=frozenset({"identity-address"})
        )
        g = granted(categories=["income", "household"])
        ask = request(categories=frozenset({"income", "household", "identity-address"}))
        first = decide(ask, states(g), policy(statute), NOW)
        expected = (
            Outcome.ALLOW_MINIMISED,
            frozenset({"income", "household"}),
            Reason.OTHER_BASIS,
            {"identity-address": Reason.OTHER_BASIS},
        )
        assert expected == outcome(first)
        again = decide(
            dataclasses.replace(ask, categories=frozenset({"identity-address"})),
            states(g),
            policy(statute),
            NOW,
        )
        assert ("identity", Outcome.ALLOW) == (again.basis.basis_id, again.outcome)


class TestMinimisation:
    def test_purpose_limit(self):
        """Categories the purpose may never carry are dropped before anything else."""
        g = granted(categories=["identity-address", "income", "assets"])
        rules = policy(purpose_categories={"rechtskreiswechsel-handover": frozenset({"income"})})
        ask = request(categories=frozenset({"identity-address", "income"}))
        expected = (
            Outcome.ALLOW_MINIMISED,
            frozenset({"income"}),
            Reason.PURPOSE_LIMIT,
            {"identity-address": Reason.PURPOSE_LIMIT},
        )
        assert expected == outcome(decide(ask, states(g), rules, NOW))

    def test_nothing_left_is_deny(self):
        """When minimisation leaves nothing of a request for data: deny."""
        rules = policy(purpose_categories={})
        decision = decide(request(), states(granted()), rules, NOW)
        assert (Outcome.DENY, Reason.PURPOSE_LIMIT) == (decision.outcome, decision.reason)

    def test_default_policy_never_carries_special_categories(self):
        """The strict default lets no purpose carry health or youth-welfare data."""
        assert all(
            not (limit & {"health", "youth-welfare"})
            for limit in Policy().purpose_categories.values()
        )

    def test_reason_precedence(self):
        """The overall reason is the first dropped reason in the documented precedence."""
        g = granted(categories=["income"], valid_from=NOW + DAY)
        rules = policy(
            purpose_categories={"rechtskreiswechsel-handover": frozenset({"income", "assets"})}
        )
        ask = request(categories=frozenset({"income", "assets", "household"}))
        decision = decide(ask, states(g), rules, NOW)
        expected = {
            "income": Reason.CONSENT_NOT_YET_VALID,
            "assets": Reason.CONSENT_SCOPE,
            "household": Reason.PURPOSE_LIMIT,
        }
        assert (expected, Reason.CONSENT_NOT_YET_VALID) == (dict(decision.dropped), decision.reason)


class TestInvalidRequest:
    @pytest.mark.parametrize(
        "changes",
        [
            {"purpose": "marketing"},
            {"categories": frozenset({"income", "dna"})},
            {"person": "86095742719"},
            {"to_office": "soa-marl"},
            {"at": dt.datetime(2026, 3, 3)},  # noqa: DTZ001 - a naive time is the invalid input
            {"from_rechtskreis": "SGB XIII"},
        ],
    )
    def test_transfer_invalid(self, changes):
        """Unknown codes, a raw identifier, a transfer to oneself, a naive time: TRANSFER_INVALID."""
        decision = decide(request(**changes), states(granted()), policy(), NOW)
        expected = (Outcome.DENY, frozenset(), Reason.TRANSFER_INVALID, None)
        assert expected == (decision.outcome, decision.categories, decision.reason, decision.basis)

    def test_naive_now_is_a_programming_error(self):
        """decide() needs an aware time."""
        with pytest.raises(ValueError, match="timezone"):
            decide(request(), [], policy(), dt.datetime(2026, 3, 3))  # noqa: DTZ001


class TestHelpers:
    def test_application_categories(self):
        """Persons are identity, two of them a household, documents are documents."""
        code = Code("x", "urn:x")
        person = Person("p1", code, True, "A", "B", None, None, None)
        document = Document("d1", None, "application/pdf", None, 1, "0" * 64, None)
        base = Submission(
            "ns", "1", "m", "2026-01-01", Author("DVDV", "k"), None, "c", code, None, (person,)
        )
        expected = [frozenset({"identity-address"}), gate.APPLICATION_CATEGORIES]
        actual = [
            gate.application_categories(base),
            gate.application_categories(
                dataclasses.replace(base, persons=(person, person), documents=(document,))
            ),
        ]
        assert expected == actual

    def test_decision_to_json(self):
        """The JSON form: sorted categories, basis with legal reference, dropped as an object."""
        g = granted(categories=["income"])
        body = gate.decision_to_json(decide(request(), states(g), policy(), NOW))
        expected = {
            "request_id": "req-1",
            "outcome": "allow-minimised",
            "categories": ["income"],
            "basis": {
                "kind": "consent",
                "legal_reference": gate.CONSENT_LEGAL_REFERENCE,
                "basis_id": None,
                "consent_record": g.record_id,
            },
            "reason": "CONSENT_SCOPE",
            "dropped": {"identity-address": "CONSENT_SCOPE"},
            "decided_at": "2026-03-04T10:00:00.000Z",
        }
        assert expected == body
        assert ALICE not in json.dumps(body)


@pytest.fixture(scope="module")
def document(settings):
    """The example policy file, parsed."""
    return yaml.safe_load(settings.transfer_policy_file.read_text("utf-8"))


@pytest.fixture(scope="module")
def schema(settings):
    return json.loads(
        (settings.schema_dir / "hub" / "transfer-policy.schema.json").read_text("utf-8")
    )


class TestPolicyFile:
    def test_example_policy_loads_with_the_tables(self, settings):
        """config/transfer-policy.yml is valid and names only known offices and portals."""
        rules = policy_file.from_settings(settings)
        expected = {
            "rkw-notice",
            "rkw-notice-wohngeld",
            "application-delivery",
            "application-delivery-sgb9",
        }
        assert expected == {b.basis_id for b in rules.bases}

    def test_example_notice_bases_carry_no_data(self, settings):
        """The Rechtskreiswechsel bases of the example are data-free notices."""
        rules = policy_file.from_settings(settings)
        notices = [b for b in rules.bases if "rechtskreiswechsel-handover" in b.purposes]
        assert [frozenset(), frozenset()] == [b.categories for b in notices]

    def test_example_application_basis_is_exactly_an_application(self, settings):
        """The application-delivery basis lists exactly what an application can carry."""
        rules = policy_file.from_settings(settings)
        (basis,) = [b for b in rules.bases if b.basis_id == "application-delivery"]
        assert gate.APPLICATION_CATEGORIES == basis.categories

    def test_example_application_carries_nothing_else(self, settings):
        """Income asked for with an application delivery is dropped (PURPOSE_LIMIT)."""
        rules = policy_file.from_settings(settings)
        ask = request(
            from_office="sozialplattform-nrw",
            to_office="jc-re-marl",
            purpose="application-delivery",
            categories=gate.APPLICATION_CATEGORIES | {"income"},
        )
        expected = (
            Outcome.ALLOW_MINIMISED,
            gate.APPLICATION_CATEGORIES,
            Reason.PURPOSE_LIMIT,
            {"income": Reason.PURPOSE_LIMIT},
        )
        assert expected == outcome(decide(ask, [], rules, NOW))

    def test_example_application_delivery(self, settings, office_table):
        """Every office of the table gets its applications, from any portal."""
        rules = policy_file.from_settings(settings)
        asked = gate.APPLICATION_CATEGORIES
        outcomes = {
            decide(
                request(
                    from_office="sozialplattform-nrw",
                    to_office=o.office_id,
                    purpose="application-delivery",
                    categories=asked,
                ),
                [],
                rules,
                NOW,
            ).outcome
            for o in office_table.offices
        }
        assert {Outcome.ALLOW} == outcomes

    def test_example_application_health_only_to_sgb9(self, settings, office_table):
        """Health data in an application reaches only the office deciding SGB IX."""
        rules = policy_file.from_settings(settings)
        allowed = {
            o.office_id
            for o in office_table.offices
            if "health"
            in decide(
                request(
                    from_office="filedrop",
                    to_office=o.office_id,
                    purpose="application-delivery",
                    categories=frozenset({"identity-address", "health"}),
                ),
                [],
                rules,
                NOW,
            ).categories
        }
        assert {"kreis-re-fd59"} == allowed

    def test_schema_code_lists_agree(self, schema):
        """The policy schema's purposes, categories and Rechtskreise are the code's."""
        defs = schema["$defs"]
        expected = (sorted(gate.PURPOSES), sorted(CATEGORIES), sorted(gate.RECHTSKREISE))
        actual = (
            sorted(schema["properties"]["purposes"]["properties"]),
            sorted(defs["categories"]["items"]["enum"]),
            sorted(defs["parties"]["properties"]["rechtskreise"]["items"]["enum"]),
        )
        assert expected == actual

    def test_rechtskreise_are_the_office_tables(self, settings):
        """The gate knows exactly the Rechtskreise an office of the office table can decide in."""
        offices = json.loads(
            (settings.schema_dir / "hub" / "offices.schema.json").read_text("utf-8")
        )
        office = offices["properties"]["offices"]["items"]["properties"]
        assert sorted(office["rechtskreise"]["items"]["enum"]) == sorted(gate.RECHTSKREISE)

    @pytest.mark.parametrize(
        ("mutate", "message"),
        [
            (
                lambda d: d["bases"].append(copy.deepcopy(d["bases"][0])),
                "duplicate basis id at bases/4",
            ),
            (
                lambda d: d["bases"][0]["to"].update(offices=["nowhere"]),
                "bases/0/to/offices names an unknown office",
            ),
            (
                lambda d: d["bases"][2]["from"].update(portals=["nowhere"]),
                "bases/2/from/portals names an unknown portal",
            ),
            (
                lambda d: d["bases"][0]["categories"].append("health"),
                "bases/0/categories lists a category",
            ),
            (
                lambda d: d["bases"][1].update(purposes=["shopping"]),
                "invalid at bases/1/purposes/0",
            ),
            (lambda d: d["bases"][1].update(to={}), "invalid at bases/1/to"),
            (lambda d: d.update(schema="sozialhub.transfer-policy/2"), "invalid at schema"),
        ],
    )
    def test_invalid_policies(self, document, schema, office_table, mutate, message):
        """Errors name the location in the file, never a value."""
        broken = copy.deepcopy(document)
        mutate(broken)
        with pytest.raises(ConfigError) as info:
            policy_file.parse(
                broken,
                schema,
                offices=office_table,
                portals=["sozialplattform-nrw", "serviceportal-emscher-lippe", "filedrop"],
            )
        assert message in str(info.value)

    def test_id_in_both_tables(self, document, schema, office_table):
        """An id that is both an office and a portal would match either side: refused."""
        with pytest.raises(ConfigError, match="both an office and a portal"):
            policy_file.parse(document, schema, offices=office_table, portals=["soa-marl"])

    def test_unreadable_file(self, tmp_path, settings):
        """A file that is not YAML is a ConfigError naming the file."""
        path = tmp_path / "policy.yml"
        path.write_text("bases: [unclosed")
        with pytest.raises(ConfigError, match="cannot be read"):
            policy_file.load(path, settings.schema_dir)
