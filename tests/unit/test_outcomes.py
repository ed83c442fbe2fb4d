"""OutcomeTracker: audit events folded into one outcome per submission, in any order.

The events are the ones the pipeline really emits (intake, dispatch, delivered)
for the example submissions, so the tracker is tested against the audit
vocabulary it will see in production, not a hand-written imitation.
"""

from __future__ import annotations

import dataclasses

import hypothesis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.config import PROJECT_ROOT
from hub.core.outcomes import OutcomeTracker, SubmissionOutcome
from hub.core.pipeline import AUDIT, delivered, dispatch, ingest, intake
from hub.core.records import Accepted, AuditEvent, Delivery, Received, decode

EXAMPLES = PROJECT_ROOT / "examples" / "submissions"
TWO_OFFICES = EXAMPLES / "02-wohngeld-but-marl.xml"
ONE_OFFICE = EXAMPLES / "01-buergergeld-recklinghausen.xml"
INVALID = EXAMPLES / "06-invalid-birthdate.xml"
UNROUTABLE = EXAMPLES / "08-unroutable-bochum.xml"


@dataclasses.dataclass(frozen=True)
class Story:
    """All audit events of one submission, by stage, as the pipeline emits them."""

    submission_id: str
    upstream: tuple[AuditEvent, ...]  # ingest, intake, sign, route, map (or the rejection)
    delivered: tuple[AuditEvent, ...]  # one "delivered" per delivery
    duplicates: tuple[AuditEvent, ...]  # one "duplicate" per delivery (a redelivery found the file)

    @property
    def routed(self) -> tuple[AuditEvent, ...]:
        return tuple(e for e in self.upstream if e.decision == "routed")

    @property
    def rejected(self) -> tuple[AuditEvent, ...]:
        return tuple(e for e in self.upstream if e.decision == "rejected")


def _audits(emits) -> tuple[AuditEvent, ...]:
    return tuple(decode(e.value, AuditEvent) for e in emits if e.topic == AUDIT)


def story(path, hub, now) -> Story:
    """Run the pure stages on one example and collect every audit event they emit."""
    ingested = ingest(path.read_bytes(), "test", "file", hub, now)
    record = decode(ingested.emits[0].value, Received)
    events = list(_audits(ingested.emits))
    first = intake(record, None, hub, now)
    events += _audits(first.emits)
    deliveries: list[Delivery] = []
    if first.outcome == "accepted":
        second = dispatch(decode(first.emits[0].value, Accepted), None, hub, now)
        events += _audits(second.emits)
        deliveries = [
            decode(e.value, Delivery) for e in second.emits if e.topic.startswith("deliveries.")
        ]
    return Story(
        submission_id=record.submission_id,
        upstream=tuple(events),
        delivered=tuple(
            decode(delivered(d, now, duplicate=False).value, AuditEvent) for d in deliveries
        ),
        duplicates=tuple(
            decode(delivered(d, now, duplicate=True).value, AuditEvent) for d in deliveries
        ),
    )


@pytest.fixture(scope="module")
def two(hub_context, now) -> Story:
    return story(TWO_OFFICES, hub_context, now)


@pytest.fixture(scope="module")
def one(hub_context, now) -> Story:
    return story(ONE_OFFICE, hub_context, now)


@pytest.fixture(scope="module")
def invalid(hub_context, now) -> Story:
    return story(INVALID, hub_context, now)


@pytest.fixture(scope="module")
def unroutable(hub_context, now) -> Story:
    return story(UNROUTABLE, hub_context, now)


def fold(*events: AuditEvent) -> OutcomeTracker:
    tracker = OutcomeTracker()
    for event in events:
        tracker.add(event)
    return tracker


def summary(outcome: SubmissionOutcome) -> tuple:
    """Everything about an outcome that must not depend on the order events arrived in."""
    return (
        outcome.final,
        outcome.outcome,
        outcome.reason,
        outcome.offices,
        sorted(outcome.routed),
        sorted(outcome.delivered),
        outcome.duplicates,
    )


class TestStories:
    def test_two_office_story_has_two_routes(self, two):
        """Guard: the Marl household example routes to two offices and yields two deliveries."""
        expected = (2, 2, 0)
        assert expected == (len(two.routed), len(two.delivered), len(two.rejected))

    def test_rejected_stories_have_no_routes(self, invalid, unroutable):
        """Guard: the invalid and the unroutable example are rejected once and never routed."""
        expected = [(1, 0, "XSD"), (1, 0, "ROUTE_UNRESOLVED")]
        actual = [
            (len(s.rejected), len(s.routed), s.rejected[0].reason) for s in (invalid, unroutable)
        ]
        assert expected == actual


class TestRejected:
    def test_rejected_is_final_with_reason(self, invalid):
        """A rejection at intake is final, dead-lettered, with the rejection's reason code."""
        outcome = fold(*invalid.upstream).get(invalid.submission_id)
        expected = (True, "dead-lettered", "XSD", [])
        assert expected == (outcome.final, outcome.outcome, outcome.reason, outcome.offices)

    def test_rejected_at_routing_is_final(self, unroutable):
        """A rejection at the route stage (after acceptance) is final too."""
        outcome = fold(*unroutable.upstream).get(unroutable.submission_id)
        expected = (True, "dead-lettered", "ROUTE_UNRESOLVED")
        assert expected == (outcome.final, outcome.outcome, outcome.reason)

    def test_first_rejection_is_kept(self, invalid, unroutable):
        """A second rejection of the same submission does not replace the first reason."""
        later = dataclasses.replace(unroutable.rejected[0], submission_id=invalid.submission_id)
        outcome = fold(*invalid.upstream, later).get(invalid.submission_id)
        expected = "XSD"
        assert expected == outcome.reason

    def test_rejection_wins_over_pending_routes(self, two, invalid):
        """Routed, then dead-lettered (e.g. by mapping): final and dead-lettered."""
        rejection = dataclasses.replace(
            invalid.rejected[0], submission_id=two.submission_id, stage="map"
        )
        outcome = fold(*two.upstream, rejection).get(two.submission_id)
        expected = (True, "dead-lettered", "XSD")
        assert expected == (outcome.final, outcome.outcome, outcome.reason)


class TestDelivered:
    def test_routed_and_all_delivered_is_final(self, two):
        """Routed to two offices, both delivered: final, delivered, both offices listed."""
        outcome = fold(*two.upstream, *two.delivered).get(two.submission_id)
        expected = (True, "delivered", None, ["but-marl", "wgs-marl"])
        assert expected == (outcome.final, outcome.outcome, outcome.reason, outcome.offices)

    def test_one_of_two_delivered_is_pending(self, two):
        """Routed to two offices with only one delivery done: not final, pending."""
        outcome = fold(*two.upstream, two.delivered[0]).get(two.submission_id)
        expected = (False, "pending")
        assert expected == (outcome.final, outcome.outcome)

    def test_routed_without_delivery_is_pending(self, one):
        """Routed but nothing delivered yet: pending."""
        outcome = fold(*one.upstream).get(one.submission_id)
        expected = (False, "pending")
        assert expected == (outcome.final, outcome.outcome)

    def test_accepted_but_not_routed_is_pending(self, one):
        """Only the intake events (received, accepted, signed): pending, not final."""
        intake_only = [e for e in one.upstream if e.decision in ("received", "accepted", "signed")]
        outcome = fold(*intake_only).get(one.submission_id)
        expected = (False, "pending", [])
        assert expected == (outcome.final, outcome.outcome, outcome.offices)

    def test_delivered_before_routed_is_not_final(self, one):
        """A delivery event that overtakes its routed event does not make the submission final."""
        tracker = fold(*one.delivered)
        before = tracker.get(one.submission_id).final
        for event in one.upstream:
            tracker.add(event)
        expected = (False, True, "delivered")
        actual = (
            before,
            tracker.get(one.submission_id).final,
            tracker.get(one.submission_id).outcome,
        )
        assert expected == actual

    def test_delivered_before_one_of_two_routes_is_not_final(self, two):
        """Both delivered but one routed event still missing: not final until it arrives."""
        second_route = two.routed[1]
        partial = [e for e in two.upstream if e is not second_route]
        tracker = fold(*partial, *two.delivered)
        before = tracker.get(two.submission_id).final
        tracker.add(second_route)
        expected = (False, True)
        assert expected == (before, tracker.get(two.submission_id).final)

    def test_found_already_delivered_counts_as_delivered(self, one):
        """A "duplicate" (file found already there) as first delivery event completes it."""
        outcome = fold(*one.upstream, *one.duplicates).get(one.submission_id)
        expected = (True, "delivered", 0)
        assert expected == (outcome.final, outcome.outcome, outcome.duplicates)

    def test_duplicates_are_counted(self, two):
        """Each delivery event after the first for the same delivery id counts as a duplicate."""
        outcome = fold(*two.upstream, *two.delivered, *two.duplicates, two.delivered[0]).get(
            two.submission_id
        )
        expected = (True, 3, 2)
        assert expected == (outcome.final, outcome.duplicates, len(outcome.delivered))

    def test_repeated_routed_events_are_idempotent(self, two):
        """A stage replayed after a crash emits its routed events again; nothing changes."""
        once = fold(*two.upstream, *two.delivered).get(two.submission_id)
        twice = fold(*two.upstream, *two.upstream, *two.delivered).get(two.submission_id)
        assert summary(once) == summary(twice)


class TestTracker:
    def test_unknown_submission_is_pending(self):
        """get() of a submission with no events is a pending, non-final outcome."""
        outcome = OutcomeTracker().get("sub-" + "0" * 32)
        expected = (False, "pending", None, [])
        assert expected == (outcome.final, outcome.outcome, outcome.reason, outcome.offices)

    def test_get_does_not_register_the_submission(self):
        """Asking about a submission does not add it to the tracker."""
        tracker = OutcomeTracker()
        tracker.get("sub-" + "0" * 32)
        expected: dict = {}
        assert expected == tracker.by_submission

    def test_submissions_are_kept_apart(self, one, invalid):
        """Events of two submissions fold into two separate outcomes."""
        tracker = fold(*one.upstream, *invalid.upstream, *one.delivered)
        expected = {one.submission_id: "delivered", invalid.submission_id: "dead-lettered"}
        assert expected == {sid: o.outcome for sid, o in tracker.by_submission.items()}

    def test_all_final(self, one, two, invalid):
        """all_final() is true only when every named submission is final."""
        tracker = fold(*one.upstream, *one.delivered, *invalid.upstream, *two.upstream)
        expected = (True, False, True)
        actual = (
            tracker.all_final({one.submission_id, invalid.submission_id}),
            tracker.all_final({one.submission_id, two.submission_id}),
            tracker.all_final(set()),
        )
        assert expected == actual


STORY_NAMES = ["two", "one", "invalid", "unroutable"]


class TestOrderIndependence:
    @pytest.mark.parametrize("name", STORY_NAMES)
    @hypothesis.settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def test_any_permutation_gives_the_same_outcome(self, request, name, data):
        """Audit events arrive in any order (partitions, replays): the final outcome is the same."""
        s: Story = request.getfixturevalue(name)
        events = [
            *s.upstream,
            *s.delivered,
            *data.draw(st.lists(st.sampled_from(s.duplicates or s.upstream))),
        ]
        reference = summary(fold(*events).get(s.submission_id))
        shuffled = data.draw(st.permutations(events))
        assert reference == summary(fold(*shuffled).get(s.submission_id))

    @hypothesis.settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def test_any_subset_is_final_only_when_seen_routes_and_deliveries_match(self, two, data):
        """Any subset, any order: final iff routes seen and exactly the deliveries seen."""
        events = [*two.upstream, *two.delivered]
        subset = data.draw(st.lists(st.sampled_from(events), unique_by=id, max_size=len(events)))
        outcome = fold(*subset).get(two.submission_id)
        routed = {e.delivery_id for e in subset if e.decision == "routed"}
        done = {e.delivery_id for e in subset if e.decision == "delivered"}
        expected = bool(routed) and routed == done
        assert expected == outcome.final


def test_a_redelivered_message_is_final_and_receipts_are_counted() -> None:
    tracker = OutcomeTracker()
    sid = "sub-" + "1" * 32
    tracker.add(AuditEvent("aud-1", sid, "intake", "duplicate", "2026-11-02T10:00:00.000Z"))
    tracker.add(AuditEvent("aud-2", sid, "receipt", "sent", "2026-11-02T10:00:01.000Z"))
    outcome = tracker.get(sid)
    assert (outcome.final, outcome.outcome, outcome.receipts_sent) == (True, "redelivered", 1)
