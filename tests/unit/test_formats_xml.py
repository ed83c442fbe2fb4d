"""fv-xml: the string-built mapping gives the lxml version's bytes, or its rejection, for any input.

``tests/fvxml_reference.py`` is the mapping as it was built with lxml (fv-xml/1.1.0).
The faster writer must not change a single byte of the output, nor which value a
refusal names; schema validity and value round trips stay with test_mapping.py.
"""

from __future__ import annotations

import dataclasses

import hypothesis
import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from hub.core.errors import Rejection
from hub.core.mapping import DeliveryContext, fvxml
from hub.core.model import Address, Submission
from hub.testing import DocumentSpec, PersonSpec, SubmissionSpec
from tests import fvxml_reference
from tests.formats_support import (
    HARD,
    SOFT,
    context_for,
    extracted,
    hostile_submissions,
    mappable_submissions,
    route,
)

ROUTE = route("fv-xml")
XML_EDGES = ["\ufdd0", "\ufffe", "\uffff", "\ud800", "\x0b", "\r", "\t", "\n", "\x7f", "\x85"]
VALUES = st.lists(st.sampled_from(SOFT + HARD + XML_EDGES), min_size=0, max_size=4).map("".join)


def outcome(render, submission: Submission, context: DeliveryContext):
    """The bytes, or the rejection's reason and path."""
    try:
        return render(submission, ROUTE, context)
    except Rejection as rejection:
        return (rejection.reason, rejection.path)


def assert_same(submission: Submission, context: DeliveryContext | None = None) -> None:
    context = context or context_for(submission)
    expected = outcome(fvxml_reference.render, submission, context)
    assert expected == outcome(fvxml.render, submission, context)


SETTINGS = hypothesis.settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class TestSameAsLxml:
    @SETTINGS
    @given(submission=hostile_submissions())
    def test_hostile_submissions(self, submission):
        """Hostile strings anywhere: the same bytes, or the same reason and path."""
        assert_same(submission)

    @SETTINGS
    @given(submission=mappable_submissions())
    def test_mappable_submissions(self, submission):
        """Markup, quotes, spaces, other scripts: the same bytes."""
        assert_same(submission)

    @SETTINGS
    @given(
        given_name=VALUES,
        street=VALUES,
        person_id=VALUES,
        code=VALUES,
        content=st.sampled_from(["", "JVBERi0=", "JVB\nERi0=", "a&b", "\ufffe"]),
        file_name=st.none() | VALUES,
    )
    def test_every_escaping_and_refusal_path(
        self, given_name, street, person_id, code, content, file_name
    ):
        """Values at every kind of place (attribute, text, fv:Text, content) behave like lxml."""
        submission = extracted(SubmissionSpec(documents=(DocumentSpec(),)))
        person = submission.persons[0]
        person = dataclasses.replace(
            person,
            person_id=person_id,
            given_name=given_name,
            role=dataclasses.replace(person.role, code=code),
            address=Address(street=street, house_number=None, postcode="45657", town=""),
        )
        document = dataclasses.replace(
            submission.documents[0], content_b64=content, file_name=file_name
        )
        assert_same(dataclasses.replace(submission, persons=(person,), documents=(document,)))

    @pytest.mark.parametrize("persons", [1, 5, 30])
    def test_households(self, persons):
        """Households of every size up to the payload's 30 persons give the same bytes."""
        spec = SubmissionSpec(
            persons=(
                PersonSpec(),
                *(
                    PersonSpec(given_name=f"Kind {i}", applicant=False, role="kind", benefits=())
                    for i in range(persons - 1)
                ),
            ),
            documents=(DocumentSpec(), DocumentSpec(document_id="doc-2", file_name="")),
        )
        assert_same(extracted(spec))

    def test_empty_receipt_and_no_dvdv(self):
        """An empty receipt and an office without DVDV key are written as lxml wrote them."""
        submission = extracted(SubmissionSpec())
        context = dataclasses.replace(context_for(submission), receipt=b"")
        office = dataclasses.replace(ROUTE.office, dvdv=None)
        expected = fvxml_reference.render(
            submission, dataclasses.replace(ROUTE, office=office), context
        )
        assert expected == fvxml.render(
            submission, dataclasses.replace(ROUTE, office=office), context
        )
