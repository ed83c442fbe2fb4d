"""Intake's hot-path shortcuts give exactly what the straightforward code gave.

``sozialhub bench --stage ingest`` led to faster versions of five pieces of the
core (docs/performance.md). Each is compared here with the code it replaced,
kept below as the reference:

- ``records.encode``: the same bytes as ``json.dumps`` of ``dataclasses.asdict``;
- ``model.to_json``: equal to ``dataclasses.asdict``;
- ``xoev.child``: the same element as lxml's ``find``;
- ``xmlsafe._bound``: the same verdict, and the same first reason, as before;
- ``ReceiptSigner.sign``: the document ``signxml.XMLSigner`` makes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from lxml import etree
from signxml import DigestAlgorithm, XMLSigner
from signxml.algorithms import CanonicalizationMethod

from hub.bench_ingest import submissions
from hub.core import pipeline, xmlsafe, xoev
from hub.core.errors import Reason, Rejection
from hub.core.model import (
    Address,
    Code,
    Document,
    Party,
    Person,
    Submission,
    ThirdParty,
    from_json,
    to_json,
)
from hub.core.receipt import _ALGORITHMS, NAMESPACE, Attestation, ReceiptSigner, verify
from hub.core.records import (
    Accepted,
    AuditEvent,
    DeadLetter,
    Delivery,
    PortalReceipt,
    Received,
    Seen,
    SourceRef,
    decode,
    encode,
)
from hub.keys import ephemeral_certificate
from hub.testing import WohngeldSpec, make_wohngeld_application

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "submissions").glob("*.xml"))
HOSTILE = sorted((ROOT / "tests" / "corpus" / "hostile").iterdir())


# -- the replaced code, as it was ---------------------------------------------------------


def encode_reference(record) -> bytes:
    body = {"type": record.TYPE, "v": 1, **dataclasses.asdict(record)}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def bound_reference(root, limits) -> None:
    count = 0
    declared = 0
    for event, node in etree.iterwalk(root, events=("start-ns", "start", "comment", "pi")):
        if event == "start-ns":
            declared += 1
            if declared > limits.max_namespaces:
                raise Rejection(Reason.NAME_LIMIT)
            continue
        count += 1
        if count > limits.max_elements:
            raise Rejection(Reason.ELEMENT_COUNT)
        if isinstance(node, etree._Entity):
            raise Rejection(Reason.DOCTYPE)
        if not isinstance(node.tag, str):
            continue
        if len(node.tag) > limits.max_name_length:
            raise Rejection(Reason.NAME_LIMIT)
        attrib = node.attrib
        if len(attrib) > limits.max_attributes_per_element:
            raise Rejection(Reason.ATTR_LIMIT)
        if any(len(name) > limits.max_name_length for name in attrib):
            raise Rejection(Reason.NAME_LIMIT)


def sign_reference(signer: ReceiptSigner, a: Attestation) -> bytes:
    r = f"{{{NAMESPACE}}}"
    root = etree.Element(f"{r}receipt", nsmap={"r": NAMESPACE})
    for tag, text in (
        ("submissionId", a.submission_id),
        ("payloadDigest", a.payload_sha256),
        ("payloadNamespace", a.payload_namespace),
        ("payloadVersion", a.payload_version),
        ("validation", "valid"),
        ("validatedWith", a.validated_with),
        ("signedAt", a.signed_at.astimezone(dt.UTC).isoformat()),
        ("hub", a.hub_identity),
    ):
        etree.SubElement(root, f"{r}{tag}").text = text
    root.find(f"{r}payloadDigest").set("algorithm", "sha256")
    xml_signer = XMLSigner(
        signature_algorithm=_ALGORITHMS[signer.algorithm],
        digest_algorithm=DigestAlgorithm.SHA256,
        c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
    )
    signed = xml_signer.sign(root, key=signer.key, cert=[signer.certificate])
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


# -- inputs ----------------------------------------------------------------------------------


def _documents() -> list[bytes]:
    return [
        *(p.read_bytes() for p in EXAMPLES),
        *submissions(2),
        make_wohngeld_application(WohngeldSpec(children=(("Ada", "Ölçek", "2016-01-02"),))),
    ]


TOPIC_TYPES = {
    pipeline.RECEIVED: Received,
    pipeline.ACCEPTED: Accepted,
    pipeline.DEAD_LETTER: DeadLetter,
    pipeline.AUDIT: AuditEvent,
    pipeline.SEEN: Seen,
    pipeline.RECEIPTS: PortalReceipt,
}


@pytest.fixture(scope="module")
def records(hub_context) -> list:
    """Every record ingest, intake and dispatch emit for the examples and benchmark submissions."""
    now = dt.datetime.now(dt.UTC)
    source = SourceRef("submissions.received", 2, 41)
    found = []
    for payload in _documents():
        emits = list(pipeline.ingest(payload, "test", "file", hub_context, now).emits)
        received = decode(emits[0].value, Received)
        first = pipeline.intake(received, source, hub_context, now)
        emits += first.emits
        for emit in first.emits:
            if emit.topic == pipeline.ACCEPTED:
                second = pipeline.dispatch(decode(emit.value, Accepted), source, hub_context, now)
                emits += second.emits
        for emit in emits:
            kind = TOPIC_TYPES.get(emit.topic, Delivery)
            found.append((emit, decode(emit.value, kind)))
    return found


class TestEncode:
    def test_the_examples_produce_every_record_type(self, records):
        """The inputs cover every record type, dead letters with a source among them (guards the test)."""
        kinds = {type(record) for _, record in records}
        with_source = [r for _, r in records if isinstance(r, DeadLetter) and r.source]
        assert set(TOPIC_TYPES.values()) | {Delivery} == kinds
        assert with_source

    def test_same_bytes_as_asdict_and_json_dumps(self, records):
        """For every record the stages emit, encode() gives the bytes the asdict version gave."""
        mismatched = [
            emit.topic
            for emit, record in records
            if not (encode(record) == encode_reference(record) == emit.value)
        ]
        expected: list[str] = []
        assert expected == mismatched

    def test_nested_values_and_non_ascii(self):
        """Nested dataclasses, lists of dicts and non-ASCII text encode as before."""
        letter = DeadLetter(
            "dlq-" + "0" * 32, "sub-" + "1" * 32, "intake", "XSD", "/a/ü", None,
            SourceRef("t", 0, 7), "2026-11-02T10:00:00.000Z",
        )  # fmt: skip
        event = AuditEvent(
            "aud-" + "2" * 32, "sub-" + "1" * 32, "route", "routed", "x", benefits=["1", "ß"]
        )
        accepted = Accepted(
            "sub-" + "1" * 32, "xta2", "a", "b", "t", "d", "cA==", "cg==",
            {"persons": ({"given_name": "Zoë", "benefits": ()},), "n": None},
            attachments=[{"filename": "ä.pdf", "size": 3}],
        )  # fmt: skip
        for record in (letter, event, accepted):
            assert encode_reference(record) == encode(record)


def _full_submission() -> Submission:
    code = Code("c", "urn:list", "1", "Näme")
    address = Address("Straße", "1a", "45657", "Recklinghausen", Code("055620032032", "urn:ars"))
    return Submission(
        payload_namespace="urn:x",
        payload_version="2.4.0",
        message_id="m",
        created="2026-11-02T09:14:00Z",
        author=Party("DVDV", "sop:1", "Portal"),
        reader=None,
        case_id="c",
        case_type=code,
        application_date=None,
        persons=(
            Person("p1", code, True, "Zoë", "Ölçek", None, None, address, (code, code)),
            Person("p2", code, False, "A", "B", "2001-01-01", code, None),
        ),
        documents=(Document("d", None, "application/pdf", None, 3, "ab", None, "cA=="),),
        third_parties=(ThirdParty(code, "Schule", address, None, "x@y"),),
    )


class TestToJson:
    def test_equal_to_asdict(self, hub_context):
        """Every extracted submission, and one with every optional field, converts as asdict did."""
        extracted = []
        for payload in _documents():
            try:
                root = xmlsafe.parse(payload)
                extracted.append(hub_context.payloads.identify(root).extract(root))
            except Rejection:
                continue  # the hostile example and the invalid one
        assert len(extracted) >= 8
        for submission in (*extracted, _full_submission()):
            converted = to_json(submission)
            assert dataclasses.asdict(submission) == converted
            assert submission == from_json(converted)

    def test_same_container_types_as_asdict(self):
        """Tuples stay tuples and dicts are fresh, as with asdict."""
        submission = _full_submission()
        converted = to_json(submission)
        reference = dataclasses.asdict(submission)
        assert type(reference["persons"]) is type(converted["persons"])
        assert type(reference["persons"][0]["benefits"]) is type(
            converted["persons"][0]["benefits"]
        )


def _paths(element) -> list[str]:
    """Look-up paths around an element: its child names, child/grandchild, and absent names."""
    names = {c.tag for c in element if isinstance(c.tag, str) and not c.tag.startswith("{")}
    paths = set(names) | {"absent", "absent/name", "code", "name"}
    for child in element:
        if isinstance(child.tag, str) and not child.tag.startswith("{"):
            paths.update(f"{child.tag}/{g.tag}" for g in child if isinstance(g.tag, str))
            paths.add(f"{child.tag}/absent")
    return sorted(p for p in paths if "{" not in p)


class TestChild:
    def test_same_element_as_find_everywhere_in_the_examples(self):
        """For every element of every example and path around it, child() is find()."""
        checked = 0
        for payload in _documents():
            if b"DOCTYPE" in payload:
                continue
            for element in xmlsafe.parse(payload).iter(etree.Element):
                for path in _paths(element):
                    assert element.find(path) is xoev.child(element, path), path
                    checked += 1
        assert checked > 1000

    def test_look_alikes_comments_and_later_matches(self):
        """Namespaced look-alikes and comments never match; a/b searches every a, in order."""
        root = xmlsafe.parse(
            b'<r xmlns:f="urn:f"><!-- name --><f:name>no</f:name><a><c/></a>'
            b"<a><b>first</b></a><a><b>second</b></a><name>yes</name></r>"
        )
        for path in ("name", "a/b", "a/c", "a", "b", "a/b/c"):
            assert root.find(path) is xoev.child(root, path), path
        assert "yes" == xoev.child(root, "name").text
        assert "first" == xoev.child(root, "a/b").text

    def test_default_namespace_children_do_not_match(self):
        """Children in a default namespace are qualified: an unqualified name finds none."""
        root = xmlsafe.parse(b'<r xmlns="urn:d"><code>1</code></r>')
        assert (None, None) == (root.find("code"), xoev.child(root, "code"))


SMALL = xmlsafe.Limits(
    max_elements=6, max_attributes_per_element=2, max_name_length=12, max_namespaces=2
)
CRAFTED = [
    b"<r><a/><b/></r>",
    # exactly at each limit: accepted
    b"<r><a/><b/><c/><d/><e/></r>",
    b'<r><a x="1" y="2"/></r>',
    b"<r><abcdefghijkl/></r>",
    b'<r abcdefghijkl="1"/>',
    b'<r xmlns:a="urn:a" xmlns:b="urn:b"/>',
    # one over each limit, alone and in combination: the first reason found wins
    b"<r><a/><b/><c/><d/><e/><f/><g/></r>",  # elements
    b'<r><a x="1" y="2" z="3"/></r>',  # attributes
    b'<r><a verylongattributename="1"/></r>',  # attribute name
    b"<r><averyveryverylongname/></r>",  # tag
    b'<r xmlns:a="urn:a" xmlns:b="urn:b" xmlns:c="urn:c"/>',  # declarations
    b'<r xmlns="urn:verylong"><a/></r>',  # Clark tag of a short name
    b"<r><!--1--><!--2--><!--3--><!--4--><!--5--><!--6--></r>",  # comments count
    b'<r x="1" y="2" z="3"><averyveryverylongname/><a/><b/><c/><d/><e/></r>',  # attributes first
    b'<r><a/><b/><c/><d/><e/><f x="1" y="2" z="3"/></r>',  # count first
    b'<r xmlns:a="urn:a" xmlns:b="urn:b"><x xmlns:c="urn:c" a="1" b="2" c="3"/></r>',  # ns first
]


def _verdict(bound, root, limits) -> str | None:
    try:
        bound(root, limits)
    except Rejection as rejection:
        return rejection.reason.value
    return None


class TestBound:
    @pytest.mark.parametrize("body", CRAFTED)
    def test_same_first_reason_on_crafted_trees(self, body):
        """With tight limits, each crafted tree gets the reason the old loop gave first."""
        root = xmlsafe.parse(body)  # within the default limits; SMALL is under test
        expected = _verdict(bound_reference, root, SMALL)
        assert expected == _verdict(xmlsafe._bound, root, SMALL)

    def test_same_verdicts_on_the_corpus_and_examples(self):
        """Every hostile-corpus file and example that parses gets the old verdict, at two limits."""
        compared = 0
        bodies = [p.read_bytes() for p in HOSTILE if p.is_file()] + _documents()
        for body in bodies:
            try:
                # xmlsafe.parse without its _bound, which is under test here
                root = etree.fromstring(xmlsafe.gate(body), xmlsafe._PARSER)  # noqa: TID251
            except (Rejection, etree.XMLSyntaxError):
                continue
            for limits in (xmlsafe.DEFAULT_LIMITS, SMALL):
                expected = _verdict(bound_reference, root, limits)
                assert expected == _verdict(xmlsafe._bound, root, limits)
                compared += 1
        assert compared > 40


def _signer(algorithm: str) -> ReceiptSigner:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if algorithm.startswith("rsa"):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        key = ec.generate_private_key(
            ec.SECP384R1() if algorithm.endswith("384") else ec.SECP256R1()
        )
    return ReceiptSigner(key, ephemeral_certificate(key, "sozialhub-test"), algorithm)


ATTESTATION = Attestation(
    submission_id="sub-" + "a1" * 16,
    payload_sha256="b2" * 32,
    payload_namespace="https://example.org/ns?a=1&b=<2>",
    payload_version="2.4.0",
    validated_with="libxml2",
    signed_at=dt.datetime(2026, 11, 2, 11, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))),
    hub_identity='Kreis "Recklinghausen" & Hub <1> ü',
)
SIGNATURE_VALUE = re.compile(rb"<ds:SignatureValue>[^<]*</ds:SignatureValue>")


class TestReceiptSigning:
    @pytest.mark.parametrize("algorithm", sorted(_ALGORITHMS))
    def test_same_document_as_signxml(self, algorithm):
        """Apart from the signature value itself, the receipt is byte for byte signxml's."""
        signer = _signer(algorithm)
        ours, theirs = signer.sign(ATTESTATION), sign_reference(signer, ATTESTATION)
        assert SIGNATURE_VALUE.sub(b"", theirs) == SIGNATURE_VALUE.sub(b"", ours)

    def test_deterministic_signatures_are_identical(self):
        """RSA PKCS#1 v1.5 signs deterministically: there the whole receipt is signxml's."""
        signer = _signer("rsa-sha256")
        assert sign_reference(signer, ATTESTATION) == signer.sign(ATTESTATION)

    @pytest.mark.parametrize("algorithm", sorted(_ALGORITHMS))
    def test_signxml_verifies_every_receipt(self, algorithm):
        """signxml's verifier accepts what the signer makes, and returns the attested fields."""
        signer = _signer(algorithm)
        for identity in ("hub", "hüb & <co>", ATTESTATION.hub_identity):
            a = dataclasses.replace(ATTESTATION, hub_identity=identity)
            assert identity == verify(signer.sign(a), signer.certificate)["hub"]

    def test_receipts_share_no_state(self):
        """Two receipts from one signer are independent documents (the templates are copied)."""
        signer = _signer("ecdsa-sha256")
        first = signer.sign(ATTESTATION)
        second = signer.sign(dataclasses.replace(ATTESTATION, submission_id="sub-" + "c3" * 16))
        assert ATTESTATION.submission_id == verify(first, signer.certificate)["submissionId"]
        assert "sub-" + "c3" * 16 == verify(second, signer.certificate)["submissionId"]
