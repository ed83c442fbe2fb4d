"""The warm handover: the order of updates, who may report them, redelivery, reminders, records."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core import handover as ho
from hub.core import rechtskreiswechsel as rkw
from hub.core.errors import Reason, Rejection
from hub.core.fanout import fan_out
from hub.core.handover import State, Update, UpdateKind
from hub.core.subscriptions import Subscriptions
from tests.rkw_support import data_free_only, deny_all, example

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
NEW, OLD = "jc-re-marl", "soa-marl"


def announced() -> ho.Handover:
    event = rkw.decode_event(example("01-recognition-marl.json").read_bytes())
    return ho.announce(event, T0)


def update(kind: UpdateKind, office: str, hours: int = 1, reason: str | None = None) -> Update:
    return Update(announced().event_id, kind, office, T0 + dt.timedelta(hours=hours), reason)


def refused(handover: ho.Handover, change: Update) -> tuple[Reason, str | None]:
    with pytest.raises(Rejection) as caught:
        ho.apply(handover, change)
    return caught.value.reason, caught.value.path


def run(*changes: Update) -> ho.Handover:
    state = announced()
    for change in changes:
        state = ho.apply(state, change)
    return state


class TestTransitions:
    def test_warm_path(self):
        """Announced, accepted by the new office, completed when the old office stops paying."""
        state = run(
            update(UpdateKind.ACCEPTED, NEW, 2), update(UpdateKind.PAYMENTS_STOPPED, OLD, 30)
        )
        expected = (
            State.COMPLETED,
            ["announced", "accepted", "payments-stopped"],
            T0 + dt.timedelta(hours=2),
            T0,
        )
        actual = (
            state.state,
            [s.kind for s in state.steps],
            state.step_at(UpdateKind.ACCEPTED),
            state.announced_at,
        )
        assert expected == actual

    @pytest.mark.parametrize(("gate", "announced"), [(data_free_only, True), (deny_all, False)])
    def test_announced_only_when_the_new_office_was_reached(self, office_table, gate, announced):
        """A withheld message reached nobody: no handover to accept, no reminder."""
        event = rkw.decode_event(example("01-recognition-marl.json").read_bytes())
        planned = fan_out(event, Subscriptions(), office_table, gate, T0)
        assert announced == (ho.announce_if_reached(event, planned, T0) is not None)

    def test_announce_names_both_offices(self):
        """The handover knows the old and the new office from the event."""
        state = announced()
        assert (State.ANNOUNCED, OLD, NEW) == (state.state, state.old_office, state.new_office)

    @pytest.mark.parametrize(
        ("changes", "state", "reason"),
        [
            ([(UpdateKind.REJECTED, NEW, "not-responsible")], State.REJECTED, "not-responsible"),
            ([(UpdateKind.CANCELLED, OLD, "event-withdrawn")], State.CANCELLED, "event-withdrawn"),
            (
                [(UpdateKind.ACCEPTED, NEW, None), (UpdateKind.CANCELLED, OLD, "other")],
                State.CANCELLED,
                "other",
            ),
        ],
    )
    def test_closing(self, changes, state, reason):
        """The new office may reject before accepting; the old office may cancel until completed."""
        result = run(*(update(k, o, i + 1, r) for i, (k, o, r) in enumerate(changes)))
        assert (state, reason) == (result.state, result.reason)

    @pytest.mark.parametrize(
        ("changes", "path"),
        [
            ([(UpdateKind.PAYMENTS_STOPPED, OLD)], "order"),  # stopped before accepted: not warm
            ([(UpdateKind.ACCEPTED, NEW), (UpdateKind.REJECTED, NEW)], "order"),
            ([(UpdateKind.REJECTED, NEW), (UpdateKind.ACCEPTED, NEW)], "order"),
            ([(UpdateKind.CANCELLED, OLD), (UpdateKind.ACCEPTED, NEW)], "order"),
            (
                [
                    (UpdateKind.ACCEPTED, NEW),
                    (UpdateKind.PAYMENTS_STOPPED, OLD),
                    (UpdateKind.CANCELLED, OLD),
                ],
                "order",
            ),
            ([(UpdateKind.ACCEPTED, OLD)], "office"),
            ([(UpdateKind.REJECTED, "wgs-marl")], "office"),
            ([(UpdateKind.ACCEPTED, NEW), (UpdateKind.PAYMENTS_STOPPED, NEW)], "office"),
            ([(UpdateKind.CANCELLED, NEW)], "office"),
        ],
    )
    def test_refused(self, changes, path):
        """Out of order or from the wrong office: RKW_HANDOVER, the state stays as it was."""
        state = announced()
        *before, last = [update(k, o, i + 1) for i, (k, o) in enumerate(changes)]
        for change in before:
            state = ho.apply(state, change)
        assert (Reason.RKW_HANDOVER, path) == refused(state, last)

    def test_other_event(self):
        """An update for another handover is refused at ``event_id``."""
        change = dataclasses.replace(update(UpdateKind.ACCEPTED, NEW), event_id="rkw-" + "0" * 32)
        assert (Reason.RKW_HANDOVER, "event_id") == refused(announced(), change)

    def test_unknown_reason(self):
        """A rejection reason outside the code list is refused at ``reason``."""
        change = update(UpdateKind.REJECTED, NEW, reason="Frau Mustermann is not ours")
        assert (Reason.RKW_HANDOVER, "reason") == refused(announced(), change)

    @pytest.mark.parametrize("kind", [UpdateKind.ACCEPTED, UpdateKind.PAYMENTS_STOPPED])
    def test_redelivery_changes_nothing(self, kind):
        """The same update delivered again (at-least-once), even late, leaves the state as it is."""
        done = run(
            update(UpdateKind.ACCEPTED, NEW, 2), update(UpdateKind.PAYMENTS_STOPPED, OLD, 30)
        )
        office = NEW if kind is UpdateKind.ACCEPTED else OLD
        assert done == ho.apply(done, update(kind, office, 99))

    def test_same_office_on_both_sides(self, office_table):
        """A case that stays in its office: the office accepts and stops paying itself."""
        event = rkw.decode_event(example("02-ukraine-2022-herten.json").read_bytes())
        state = ho.announce(event, T0)
        for kind in (UpdateKind.ACCEPTED, UpdateKind.PAYMENTS_STOPPED):
            state = ho.apply(state, Update(event.event_id, kind, "soa-herten", T0))
        assert State.COMPLETED == state.state


kinds = st.sampled_from(list(UpdateKind))
offices = st.sampled_from([NEW, OLD, "wgs-marl"])


class TestProperty:
    @given(st.lists(st.tuples(kinds, offices), max_size=8))
    def test_payments_never_stop_before_acceptance(self, changes):
        """Whatever arrives in whatever order: a completed handover was accepted first, by the new
        office, and the state is the one the recorded steps lead to.
        """
        state = announced()
        reasons = set()
        for index, (kind, office) in enumerate(changes):
            try:
                state = ho.apply(state, update(kind, office, index + 1))
            except Rejection as rejection:
                reasons.add(rejection.reason)
        assert reasons <= {Reason.RKW_HANDOVER}
        steps = [s.kind for s in state.steps]
        folded = State.ANNOUNCED
        for kind in steps[1:]:
            folded = ho.TRANSITIONS[folded, UpdateKind(kind)]
        assert folded == state.state
        if "payments-stopped" in steps:
            assert steps.index("accepted") < steps.index("payments-stopped")
        assert all(s.office in (None, NEW, OLD) for s in state.steps)


class TestReminders:
    def states(self) -> list[ho.Handover]:
        base = announced()
        late = dataclasses.replace(
            base,
            event_id="rkw-" + "1" * 32,
            steps=(ho.Step("announced", T0 - dt.timedelta(days=3)),),
        )
        accepted = ho.apply(base, update(UpdateKind.ACCEPTED, NEW))
        return [base, late, accepted]

    def test_not_accepted_in_time(self):
        """After 5 days: the unaccepted ones, most overdue first, with how overdue they are."""
        now = T0 + dt.timedelta(days=5, hours=6)
        found = ho.reminders(self.states(), now, days=5)
        expected = [
            ("rkw-" + "1" * 32, dt.timedelta(days=3, hours=6), 3),
            (announced().event_id, dt.timedelta(hours=6), 0),
        ]
        assert expected == [(r.event_id, r.overdue, r.overdue_days) for r in found]

    def test_not_yet_due(self):
        """Exactly at the deadline nothing is overdue yet."""
        assert () == ho.reminders([announced()], T0 + dt.timedelta(days=5), days=5)

    def test_closed_and_accepted_are_never_reminded(self):
        """Accepted, completed, rejected or cancelled handovers need no reminder."""
        rejected = ho.apply(announced(), update(UpdateKind.REJECTED, NEW))
        accepted = ho.apply(announced(), update(UpdateKind.ACCEPTED, NEW))
        now = T0 + dt.timedelta(days=90)
        assert () == ho.reminders([rejected, accepted], now, days=1)

    def test_reminder_id_is_stable_within_a_day(self):
        """A rerun the same overdue day repeats the id; the next day brings a new one."""
        state = [announced()]

        def reminder_id(hours: int) -> str:
            return ho.reminders(state, T0 + dt.timedelta(days=1, hours=hours), days=1)[
                0
            ].reminder_id

        assert (reminder_id(1), False) == (reminder_id(20), reminder_id(1) == reminder_id(25))

    def test_reminder_names_both_offices(self):
        """The reminder says whom to remind and who keeps paying meanwhile."""
        found = ho.reminders([announced()], T0 + dt.timedelta(days=8), days=7)[0]
        assert (NEW, OLD) == (found.new_office, found.old_office)

    def test_negative_days(self):
        """A negative number of days is a programming error."""
        with pytest.raises(ValueError, match="days"):
            ho.reminders([], T0, days=-1)


class TestRecords:
    def test_handover_round_trip(self):
        """A handover state encodes to a compact sorted record and back."""
        state = run(update(UpdateKind.ACCEPTED, NEW), update(UpdateKind.CANCELLED, OLD, 5, "other"))
        data = ho.encode_handover(state)
        body = json.loads(data)
        assert (state, "sozialhub.handover", data) == (
            ho.decode_handover(data),
            body["type"],
            json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(),
        )

    def test_update_round_trip(self):
        """An office's update encodes and decodes to the same update."""
        change = update(UpdateKind.REJECTED, NEW, reason="duplicate")
        assert change == ho.decode_update(ho.encode_update(change))

    @pytest.mark.parametrize(
        ("change", "path"),
        [
            ({"type": "sozialhub.audit"}, "type"),
            ({"v": 2}, "v"),
            ({"kind": "paid"}, "kind"),
            ({"office": "Sozialamt Marl"}, "office"),
            ({"event_id": "rkw-1"}, "event_id"),
            ({"at": "2026-11-20T09:00:00"}, "at"),
            ({"at": "yesterday"}, "at"),
            ({"reason": "because"}, "reason"),
        ],
    )
    def test_update_refused(self, change, path):
        """A malformed update is RKW_HANDOVER at the field, never quoting it."""
        body = json.loads(ho.encode_update(update(UpdateKind.ACCEPTED, NEW)))
        body.update(change)
        with pytest.raises(Rejection) as caught:
            ho.decode_update(json.dumps(body).encode())
        assert (Reason.RKW_HANDOVER, path, False) == (
            caught.value.reason,
            caught.value.path,
            "Sozialamt Marl" in str(caught.value),
        )

    def test_not_json(self):
        """Bytes that are not JSON are RKW_HANDOVER at ``json``."""
        with pytest.raises(Rejection) as caught:
            ho.decode_handover(b"{")
        assert "json" == caught.value.path
