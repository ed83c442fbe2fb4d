"""FIT-Connect receiver core: callback HMAC, opening submissions, Security Event Tokens.

Keys are 4096-bit RSA, generated once per process (hub.sim.fitconnect.demo_keys).
Every rejection test asserts the reason code and the path, and that no payload
fragment reaches ``str``/``repr`` of the rejection.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import json
import pickle
import warnings

import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from connectors.fitconnect import ReceiverConfig
from connectors.fitconnect.receiver import FitConnectReceiver
from hub.config import PROJECT_ROOT, ConfigError, Secret
from hub.core.errors import Reason, Rejection, UnsendableReceipt
from hub.core.transport import AttachmentPolicy
from hub.core.transport import fitconnect as fc
from hub.fitconnect import load_decryption_keys, load_set_signer, load_submission_schemas
from hub.sim import fitconnect as sim

NOW = dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=dt.UTC)
DESTINATION = "d12caea8-f372-4eb1-b102-b0a228253a11"
SCHEMA_URI = "urn:xoev-de:xsozial:basis:2.4.0"
LEIKA = "urn:de:fim:leika:leistung:99050012104000"
SECRET = b"callback-secret-of-the-destination"
# Marker strings standing for personal data: they must never appear in a rejection.
DATA = b"<antrag><name>Erika Mustermann</name><diagnose>F32.1</diagnose></antrag>"
ATTACHMENTS = [
    ("Bescheid-Mustermann.pdf", "application/pdf", b"%PDF-1.7 Mustermann Befund"),
    ("foto.png", "image/png", b"\x89PNG\r\n\x1a\n Mustermann"),
]
MARKERS = ("Mustermann", "F32.1", "Befund", "Bescheid")


@pytest.fixture(scope="session")
def keys() -> sim.DemoKeys:
    return sim.demo_keys()


@pytest.fixture(scope="session")
def decryption(keys: sim.DemoKeys) -> fc.DecryptionKeys:
    return fc.DecryptionKeys([keys.encryption])


@pytest.fixture(scope="session")
def unlabelled_signing_key(keys: sim.DemoKeys) -> RSAKey:
    """The signing key's material without its PS512 labels: a wrong decryption key, an RS256 forger."""
    material = keys.signing.as_dict(private=True)
    return RSAKey.import_key({k: v for k, v in material.items() if k not in ("alg", "use", "kid")})


@pytest.fixture(scope="session")
def schemas() -> fc.SubmissionSchemas:
    return load_submission_schemas(PROJECT_ROOT / "schemas", [SCHEMA_URI])


def seal(keys: sim.DemoKeys, **kwargs) -> sim.Submission:
    return sim.seal_submission(
        DATA,
        ATTACHMENTS,
        kwargs.pop("recipient", keys.encryption_public),
        destination_id=DESTINATION,
        schema_uri=SCHEMA_URI,
        service_identifier=LEIKA,
        **kwargs,
    )


def rejected(original: bytes, keys: fc.DecryptionKeys, schemas, **kwargs) -> Rejection:
    with pytest.raises(Rejection) as caught:
        fc.open_submission(original, keys, schemas, NOW, **kwargs)
    rejection = caught.value
    for marker in MARKERS:
        assert marker not in str(rejection)
        assert marker not in repr(rejection)
    return rejection


def tamper_segment(token: str, index: int) -> str:
    parts = token.split(".")
    segment = parts[index]
    parts[index] = ("B" if segment[0] == "A" else "A") + segment[1:]
    return ".".join(parts)


# --------------------------------------------------------------------------- callback


class TestCallback:
    BODY = (
        b'{"type":"https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions"}'
    )

    @staticmethod
    def stamp(moment: dt.datetime) -> str:
        return str(int(moment.timestamp()))

    def test_authentic_fresh_callback_passes(self):
        timestamp = self.stamp(NOW - dt.timedelta(seconds=10))
        signature = fc.callback_signature(self.BODY, timestamp, SECRET)
        assert fc.verify_callback(self.BODY, timestamp, signature, SECRET, NOW) is None

    def test_signature_is_hmac_sha512_over_timestamp_dot_body(self):
        expected = hmac.new(SECRET, b"1672527599." + self.BODY, hashlib.sha512).hexdigest()
        assert expected == fc.callback_signature(self.BODY, "1672527599", SECRET)

    def test_changed_body_is_refused(self):
        timestamp = self.stamp(NOW)
        signature = fc.callback_signature(self.BODY, timestamp, SECRET)
        with pytest.raises(Rejection) as caught:
            fc.verify_callback(self.BODY + b" ", timestamp, signature, SECRET, NOW)
        assert (Reason.SIG_INVALID, "callback-authentication") == (
            caught.value.reason,
            caught.value.path,
        )

    def test_wrong_secret_is_refused(self):
        timestamp = self.stamp(NOW)
        signature = fc.callback_signature(self.BODY, timestamp, b"another secret")
        with pytest.raises(Rejection) as caught:
            fc.verify_callback(self.BODY, timestamp, signature, SECRET, NOW)
        assert Reason.SIG_INVALID == caught.value.reason

    def test_timestamp_is_covered_by_the_mac(self):
        signed_at = self.stamp(NOW - dt.timedelta(minutes=30))
        signature = fc.callback_signature(self.BODY, signed_at, SECRET)
        with pytest.raises(Rejection) as caught:
            fc.verify_callback(self.BODY, self.stamp(NOW), signature, SECRET, NOW)
        assert (Reason.SIG_INVALID, "callback-authentication") == (
            caught.value.reason,
            caught.value.path,
        )

    def test_stale_authentic_callback_is_a_replay(self):
        timestamp = self.stamp(NOW - dt.timedelta(minutes=5, seconds=1))
        signature = fc.callback_signature(self.BODY, timestamp, SECRET)
        with pytest.raises(Rejection) as caught:
            fc.verify_callback(self.BODY, timestamp, signature, SECRET, NOW)
        assert (Reason.DUPLICATE, "callback-timestamp") == (caught.value.reason, caught.value.path)

    def test_just_under_five_minutes_passes(self):
        timestamp = self.stamp(NOW - dt.timedelta(minutes=4, seconds=59))
        signature = fc.callback_signature(self.BODY, timestamp, SECRET)
        fc.verify_callback(self.BODY, timestamp, signature, SECRET, NOW)

    def test_future_timestamp_is_refused(self):
        timestamp = self.stamp(NOW + dt.timedelta(minutes=2))
        signature = fc.callback_signature(self.BODY, timestamp, SECRET)
        with pytest.raises(Rejection) as caught:
            fc.verify_callback(self.BODY, timestamp, signature, SECRET, NOW)
        assert (Reason.SIG_INVALID, "callback-timestamp") == (
            caught.value.reason,
            caught.value.path,
        )

    @pytest.mark.parametrize(
        ("timestamp", "signature", "path"),
        [
            ("", "a" * 128, "callback-timestamp"),
            ("12.5", "a" * 128, "callback-timestamp"),
            ("-1", "a" * 128, "callback-timestamp"),
            ("1672527599", "", "callback-authentication"),
            ("1672527599", "a" * 127, "callback-authentication"),
            ("1672527599", "g" * 128, "callback-authentication"),
        ],
    )
    def test_malformed_headers_are_refused(self, timestamp, signature, path):
        with pytest.raises(Rejection) as caught:
            fc.verify_callback(self.BODY, timestamp, signature, SECRET, NOW)
        assert (Reason.SIG_INVALID, path) == (caught.value.reason, caught.value.path)

    def test_mac_is_compared_in_constant_time(self, monkeypatch):
        calls: list[tuple[str, str]] = []
        real = fc.hmac.compare_digest

        def spy(a, b):
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(fc.hmac, "compare_digest", spy)
        timestamp = self.stamp(NOW)
        good = fc.callback_signature(self.BODY, timestamp, SECRET)
        bad = "0" * 128
        fc.verify_callback(self.BODY, timestamp, good, SECRET, NOW)
        with pytest.raises(Rejection):
            fc.verify_callback(self.BODY, timestamp, bad, SECRET, NOW)
        assert [(good, good), (good, bad)] == calls

    def test_callback_names_submissions_of_this_destination_only(self):
        mine, other = "f39ab143-d91a-474a-b69f-b00f1a1873c2", "0b799252-deb9-42b0-98d3-c50d24bbafe0"
        body = json.dumps(
            {
                "type": fc.CALLBACK_NEW_SUBMISSIONS,
                "submissions": [
                    {"destinationId": DESTINATION, "submissionId": mine, "caseId": mine},
                    {"destinationId": other, "submissionId": other, "caseId": other},
                ],
            }
        ).encode()
        assert (mine,) == fc.callback_submissions(body, DESTINATION)

    @pytest.mark.parametrize(
        "kind",
        [
            "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-submissions",
            "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events",
            "https://schema.fitko.de/fit-connect/reply-api/callbacks/new-replies",
        ],
    )
    def test_callback_type_of_fit_connect(self, kind):
        assert kind == fc.read_callback(json.dumps({"type": kind}).encode(), DESTINATION)[0]

    def test_other_callback_types_announce_nothing(self):
        kind = "https://schema.fitko.de/fit-connect/submission-api/callbacks/new-events"
        other = {"type": kind, "submissions": [{"submissionId": "not read"}]}
        assert (kind, {}) == fc.read_callback(json.dumps(other).encode(), DESTINATION)
        with pytest.raises(Rejection) as caught:
            fc.callback_announcements(json.dumps(other).encode(), DESTINATION)
        assert (Reason.CONTAINER, "callback/type") == (caught.value.reason, caught.value.path)

    @pytest.mark.parametrize(
        "body",
        [
            b'{"type":"urn:other"}',
            b'{"type":"https://schema.fitko.de/fit-connect/"}',
            b'{"type":"https://schema.fitko.de/fit-connect/a b"}',
            b'{"type":"https://schema.fitko.de.example/fit-connect/x"}',
            b'{"type":"HTTPS://schema.fitko.de/fit-connect/x"}',
            b'{"type":"https://schema.fitko.de/fit-connect/x\n"}',
            json.dumps({"type": "https://schema.fitko.de/fit-connect/" + "x" * 201}).encode(),
            b'{"type":1}',
            b"[]",
            b'{"type":"a","type":"b"}',
        ],
    )
    def test_callback_type_of_anything_else_is_refused(self, body):
        with pytest.raises(Rejection) as caught:
            fc.read_callback(body, DESTINATION)
        assert caught.value.reason is Reason.CONTAINER

    def test_callback_of_another_type_is_refused(self):
        with pytest.raises(Rejection) as caught:
            fc.callback_submissions(b'{"type":"urn:other","submissionIds":[]}', DESTINATION)
        assert (Reason.CONTAINER, "callback/type") == (caught.value.reason, caught.value.path)


# --------------------------------------------------------------------------- keys


class TestKeys:
    def test_repr_shows_key_ids_not_key_material(self, keys, decryption):
        private = keys.encryption.as_dict(private=True)
        text = repr(decryption) + str(decryption)
        assert "DecryptionKeys(kids=['demo-enc-1'])" in text
        for member in ("d", "p", "q", "n"):
            assert private[member][:16] not in text

    def test_cannot_be_pickled(self, decryption):
        with pytest.raises(TypeError):
            pickle.dumps(decryption)

    def test_key_below_4096_bits_is_refused(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            small = RSAKey.generate_key(2048)
        with pytest.raises(ValueError, match="4096"):
            fc.DecryptionKeys([small])

    def test_public_key_is_refused(self, keys):
        with pytest.raises(ValueError, match="private"):
            fc.DecryptionKeys([keys.encryption_public])

    def test_signing_key_is_not_a_decryption_key(self, keys):
        with pytest.raises(ValueError, match="RSA-OAEP-256"):
            fc.DecryptionKeys([keys.signing])

    def test_set_signer_hides_its_key(self, keys):
        signer = fc.SetSigner(keys.signing)
        assert "SetSigner(key_id='demo-sig-1')" == repr(signer)
        with pytest.raises(TypeError):
            pickle.dumps(signer)


# --------------------------------------------------------------------------- open_submission


class TestOpen:
    def test_happy_path(self, keys, decryption, schemas):
        submission = seal(keys)
        envelope = fc.open_submission(submission.bundle(), decryption, schemas, NOW)
        assert "fitconnect" == envelope.transport
        assert DATA == envelope.payload
        assert "application/xml" == envelope.payload_content_type
        assert submission.submission_id == envelope.message_id
        assert submission.case_id == envelope.case_id
        assert DESTINATION == envelope.reader
        assert LEIKA == envelope.service
        assert SCHEMA_URI == envelope.payload_schema
        expected = [
            (name, mime, hashlib.sha256(content).hexdigest(), content)
            for name, mime, content in ATTACHMENTS
        ]
        actual = [(a.filename, a.content_type, a.sha256, a.data) for a in envelope.attachments]
        assert expected == actual
        assert list(submission.attachments) == [a.attachment_id for a in envelope.attachments]

    def test_rotation_next_key_opens_with_its_kid(self, keys, unlabelled_signing_key, schemas):
        rotating = fc.DecryptionKeys([unlabelled_signing_key, keys.encryption])
        envelope = fc.open_submission(seal(keys).bundle(), rotating, schemas, NOW)
        assert DATA == envelope.payload

    def test_jwe_without_kid_is_tried_with_each_key(self, keys, unlabelled_signing_key, schemas):
        no_kid = RSAKey.import_key(
            {k: v for k, v in keys.encryption.as_dict(private=False).items() if k != "kid"}
        )
        submission = seal(keys, recipient=no_kid)
        assert "kid" not in json.loads(
            base64.urlsafe_b64decode(submission.encrypted_data.split(".")[0] + "==")
        )
        rotating = fc.DecryptionKeys([unlabelled_signing_key, keys.encryption])
        assert DATA == fc.open_submission(submission.bundle(), rotating, schemas, NOW).payload

    def test_unlabelled_signing_key_is_decrypt(self, keys, unlabelled_signing_key, schemas):
        rejection = rejected(
            seal(keys).bundle(), fc.DecryptionKeys([unlabelled_signing_key]), schemas
        )
        assert (Reason.DECRYPT, "metadata") == (rejection.reason, rejection.path)

    @pytest.mark.parametrize(
        ("alg", "enc", "path"),
        [
            ("RSA-OAEP", "A256GCM", "data/header/alg"),
            ("RSA1_5", "A256GCM", "data/header/alg"),
            ("RSA-OAEP-256", "A128GCM", "data/header/enc"),
            ("RSA-OAEP-256", "A256CBC-HS512", "data/header/enc"),
        ],
    )
    def test_algorithm_downgrade_of_data_is_refused(
        self, keys, decryption, schemas, alg, enc, path
    ):
        submission = seal(keys)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # joserfc warns about RSA1_5 itself
            downgraded = sim.encrypt_part(DATA, keys.encryption_public, alg=alg, enc=enc)
        rejection = rejected(
            submission.replace(encrypted_data=downgraded).bundle(), decryption, schemas
        )
        assert (Reason.DECRYPT, path) == (rejection.reason, rejection.path)

    def test_algorithm_downgrade_of_metadata_is_refused(self, keys, decryption, schemas):
        submission = seal(keys)
        metadata = json.dumps({"contentStructure": {}}).encode()
        downgraded = sim.encrypt_part(metadata, keys.encryption_public, alg="RSA-OAEP")
        rejection = rejected(
            submission.replace(encrypted_metadata=downgraded).bundle(), decryption, schemas
        )
        assert (Reason.DECRYPT, "metadata/header/alg") == (rejection.reason, rejection.path)

    def test_compressed_jwe_is_refused(self, keys, decryption, schemas):
        submission = seal(keys)
        zipped = sim.encrypt_part(DATA, keys.encryption_public, extra_header={"zip": "DEF"})
        rejection = rejected(
            submission.replace(encrypted_data=zipped).bundle(), decryption, schemas
        )
        assert (Reason.COMPRESSED, "data/header/zip") == (rejection.reason, rejection.path)

    def test_unexpected_header_member_is_refused(self, keys, decryption, schemas):
        submission = seal(keys)
        token = sim.encrypt_part(
            DATA, keys.encryption_public, extra_header={"jku": "https://attacker.example/jwks"}
        )
        rejection = rejected(submission.replace(encrypted_data=token).bundle(), decryption, schemas)
        assert (Reason.DECRYPT, "data/header") == (rejection.reason, rejection.path)

    @pytest.mark.parametrize(
        ("segment", "name"), [(1, "key"), (2, "iv"), (3, "ciphertext"), (4, "tag")]
    )
    def test_tampered_data_is_decrypt(self, keys, decryption, schemas, segment, name):
        submission = seal(keys)
        tampered = tamper_segment(submission.encrypted_data, segment)
        rejection = rejected(
            submission.replace(encrypted_data=tampered).bundle(), decryption, schemas
        )
        assert (Reason.DECRYPT, "data") == (rejection.reason, rejection.path), name

    def test_tampered_attachment_is_decrypt(self, keys, decryption, schemas):
        submission = seal(keys)
        first = next(iter(submission.attachments))
        attachments = dict(submission.attachments)
        attachments[first] = tamper_segment(attachments[first], 3)
        rejection = rejected(
            submission.replace(attachments=attachments).bundle(), decryption, schemas
        )
        assert (Reason.DECRYPT, "attachments/0") == (rejection.reason, rejection.path)

    def test_data_hash_mismatch(self, keys, decryption, schemas):
        def wrong_data_hash(metadata):
            metadata["contentStructure"]["data"]["hash"]["content"] = hashlib.sha512(
                b"<antrag/>"
            ).hexdigest()

        rejection = rejected(
            seal(keys, edit_metadata=wrong_data_hash).bundle(), decryption, schemas
        )
        assert (Reason.HASH_MISMATCH, "data") == (rejection.reason, rejection.path)

    def test_attachment_hash_mismatch(self, keys, decryption, schemas):
        def wrong_attachment_hash(metadata):
            entry = metadata["contentStructure"]["attachments"][1]
            entry["hash"]["content"] = "0" * 128

        submission = seal(keys, edit_metadata=wrong_attachment_hash)
        rejection = rejected(submission.bundle(), decryption, schemas)
        assert (Reason.HASH_MISMATCH, "attachments/1") == (rejection.reason, rejection.path)

    def test_swapped_attachment_is_a_hash_mismatch(self, keys, decryption, schemas):
        """A validly encrypted but exchanged attachment (the attack the hashes exist for)."""
        submission = seal(keys)
        first = next(iter(submission.attachments))
        swapped = dict(submission.attachments)
        swapped[first] = sim.encrypt_part(b"%PDF-1.7 forged", keys.encryption_public)
        rejection = rejected(submission.replace(attachments=swapped).bundle(), decryption, schemas)
        assert (Reason.HASH_MISMATCH, "attachments/0") == (rejection.reason, rejection.path)

    def test_data_swapped_is_a_hash_mismatch(self, keys, decryption, schemas):
        submission = seal(keys)
        forged = sim.encrypt_part(b"<antrag>forged</antrag>", keys.encryption_public)
        rejection = rejected(
            submission.replace(encrypted_data=forged).bundle(), decryption, schemas
        )
        assert (Reason.HASH_MISMATCH, "data") == (rejection.reason, rejection.path)

    @pytest.mark.parametrize(
        ("edit", "path"),
        [
            (
                lambda m: m["contentStructure"]["data"]["hash"].update(type="sha256"),
                "metadata/contentStructure/data/hash/type",
            ),
            (
                lambda m: m["contentStructure"]["data"]["hash"].update(content="ab" * 32),
                "metadata/contentStructure/data/hash/content",
            ),
            (
                lambda m: m["contentStructure"]["attachments"][0].update(attachmentId="not-a-uuid"),
                "metadata/contentStructure/attachments/0/attachmentId",
            ),
            (lambda m: m["contentStructure"].pop("data"), "metadata/contentStructure"),
            (lambda m: m.update({"Erika Mustermann": "F32.1"}), "metadata"),
            (
                lambda m: m.update(replyChannel={"eMail": {"Mustermann": [["F32.1"]]}}),
                "metadata/replyChannel/*/*/0",  # free-form member names are never shown
            ),
            (
                lambda m: m.update(replyChannel={"eMail": {"a": {"Mustermann": {"F32.1": 1}}}}),
                "metadata/replyChannel/*/*/*",  # at most two levels below a channel
            ),
            (
                lambda m: m.update(additionalReferenceInfo={"applicant": "Mustermann"}),
                "metadata/additionalReferenceInfo",  # only x- members are the sender's own
            ),
            (
                lambda m: m["contentStructure"]["data"].update(signature={"content": {"a": 1}}),
                "metadata/contentStructure/data/signature/content",
            ),
        ],
        ids=[
            "hash-type",
            "hash-length",
            "attachment-id",
            "no-data",
            "unknown-member",
            "free-form",
            "too-deep",
            "reference-info-member",
            "signature-nested",
        ],
    )
    def test_metadata_schema_violation(self, keys, decryption, schemas, edit, path):
        rejection = rejected(seal(keys, edit_metadata=edit).bundle(), decryption, schemas)
        assert (Reason.METADATA, path) == (rejection.reason, rejection.path)

    def test_metadata_members_senders_may_add_are_carried(self, keys, decryption, schemas):
        """A fitConnect reply channel with its key, signatures, x- reference members: accepted."""
        jwk = dict(keys.encryption_public, key_ops=["wrapKey"], x5c=["MII" + "A" * 2000])

        def add(metadata):
            metadata["replyChannel"] = {
                "fitConnect": {
                    "processStandards": ["urn:xoev-de:xbau:standard:xbau"],
                    "encryptionPublicKey": jwk,
                },
                "eMail": {"address": "antrag@example.org", "pgpPublicKey": "-----BEGIN"},
            }
            signature = {"signatureFormat": "cms", "detachedSignature": True, "content": "MIAG"}
            metadata["contentStructure"]["data"]["signature"] = signature
            metadata["contentStructure"]["attachments"][0]["signature"] = dict(signature)
            metadata["additionalReferenceInfo"] = {
                "senderReference": "A-1",
                "x-applicant": {"familyName": "Mustermann", "givenNames": ["Erika"]},
                "x-channel": "web",
            }
            metadata["paymentInformation"] = {"transactionId": "t-1", "status": "BOOKED"}

        envelope = fc.open_submission(
            seal(keys, edit_metadata=add).bundle(), decryption, schemas, NOW
        )
        assert DATA == envelope.payload

    def test_metadata_that_is_not_json(self, keys, decryption, schemas):
        submission = seal(keys)
        garbage = sim.encrypt_part(b'{"contentStructure": NaN}', keys.encryption_public)
        rejection = rejected(
            submission.replace(encrypted_metadata=garbage).bundle(), decryption, schemas
        )
        assert (Reason.METADATA, "metadata") == (rejection.reason, rejection.path)

    def test_duplicate_attachment_ids_in_metadata(self, keys, decryption, schemas):
        def duplicate(metadata):
            listed = metadata["contentStructure"]["attachments"]
            listed[1]["attachmentId"] = listed[0]["attachmentId"].upper()

        rejection = rejected(seal(keys, edit_metadata=duplicate).bundle(), decryption, schemas)
        expected = (Reason.METADATA, "metadata/contentStructure/attachments/1/attachmentId")
        assert expected == (rejection.reason, rejection.path)

    def test_attachment_listed_but_missing(self, keys, decryption, schemas):
        submission = seal(keys)
        first = next(iter(submission.attachments))
        remaining = {k: v for k, v in submission.attachments.items() if k != first}
        rejection = rejected(
            submission.replace(attachments=remaining).bundle(), decryption, schemas
        )
        assert (Reason.ATTACHMENT, "attachments/0") == (rejection.reason, rejection.path)

    def test_attachment_present_but_not_listed(self, keys, decryption, schemas):
        submission = seal(keys)
        extra = dict(submission.attachments)
        extra["046a9fa5-bed6-494b-aab6-d41056c6db79"] = sim.encrypt_part(
            b"%PDF-1.7 smuggled", keys.encryption_public
        )
        rejection = rejected(submission.replace(attachments=extra).bundle(), decryption, schemas)
        assert (Reason.ATTACHMENT, "attachments/unlisted") == (rejection.reason, rejection.path)

    def test_attachment_count_is_checked_before_any_decryption(
        self, keys, unlabelled_signing_key, schemas
    ):
        policy = AttachmentPolicy(max_count=1)
        rejection = rejected(
            seal(keys).bundle(),
            fc.DecryptionKeys([unlabelled_signing_key]),
            schemas,
            attachments=policy,
        )
        assert (Reason.ATTACHMENT, "count") == (rejection.reason, rejection.path)

    def test_attachment_media_type_outside_policy(self, keys, decryption, schemas):
        def executable(metadata):
            metadata["contentStructure"]["attachments"][1]["mimeType"] = "application/x-msdownload"

        rejection = rejected(seal(keys, edit_metadata=executable).bundle(), decryption, schemas)
        assert (Reason.ATTACHMENT, "attachments/1/contentType") == (
            rejection.reason,
            rejection.path,
        )

    def test_attachment_larger_than_policy_is_refused_before_decryption(
        self, keys, decryption, schemas
    ):
        policy = AttachmentPolicy(max_bytes=8)
        rejection = rejected(seal(keys).bundle(), decryption, schemas, attachments=policy)
        assert (Reason.ATTACHMENT, "attachments/0/size") == (rejection.reason, rejection.path)

    def test_data_larger_than_limit(self, keys, decryption, schemas):
        rejection = rejected(
            seal(keys).bundle(), decryption, schemas, limits=fc.Limits(max_data_bytes=16)
        )
        assert (Reason.SIZE, "data") == (rejection.reason, rejection.path)

    def test_data_that_is_not_xml_is_unknown_payload(self, keys, decryption, schemas):
        submission = sim.seal_submission(
            DATA,
            [],
            keys.encryption_public,
            destination_id=DESTINATION,
            schema_uri=SCHEMA_URI,
            service_identifier=LEIKA,
            data_mime_type="application/json",
        )
        rejection = rejected(submission.bundle(), decryption, schemas)
        expected = "metadata/contentStructure/data/submissionSchema/mimeType"
        assert (Reason.UNKNOWN_PAYLOAD, expected) == (rejection.reason, rejection.path)

    def test_schema_uri_not_allow_listed(self, keys, decryption, schemas):
        submission = sim.seal_submission(
            DATA,
            [],
            keys.encryption_public,
            destination_id=DESTINATION,
            schema_uri="https://schema.example/other.xsd",
            service_identifier=LEIKA,
        )
        rejection = rejected(submission.bundle(), decryption, schemas)
        expected = "metadata/contentStructure/data/submissionSchema/schemaUri"
        assert (Reason.UNKNOWN_PAYLOAD, expected) == (rejection.reason, rejection.path)

    def test_service_type_outside_and_inside_must_agree(self, keys, decryption, schemas):
        def other_service(metadata):
            metadata["publicServiceType"]["identifier"] = "urn:de:fim:leika:leistung:99050012104001"

        rejection = rejected(seal(keys, edit_metadata=other_service).bundle(), decryption, schemas)
        expected = (Reason.METADATA, "metadata/publicServiceType/identifier")
        assert expected == (rejection.reason, rejection.path)

    def test_application_date_in_the_future(self, keys, decryption, schemas):
        def future(metadata):
            metadata["additionalReferenceInfo"] = {"applicationDate": "2026-11-04"}

        rejection = rejected(seal(keys, edit_metadata=future).bundle(), decryption, schemas)
        expected = (Reason.METADATA, "metadata/additionalReferenceInfo/applicationDate")
        assert expected == (rejection.reason, rejection.path)

    def test_application_date_today_passes(self, keys, decryption, schemas):
        def today(metadata):
            metadata["additionalReferenceInfo"] = {"applicationDate": "2026-11-02"}

        envelope = fc.open_submission(
            seal(keys, edit_metadata=today).bundle(), decryption, schemas, NOW
        )
        assert DATA == envelope.payload


@pytest.fixture(scope="module")
def document(keys) -> dict:
    return json.loads(seal(keys).bundle())


class TestBundle:
    @pytest.mark.parametrize(
        ("raw", "path"),
        [
            (b"", "bundle"),
            (b"\xff\xfe{}", "bundle"),
            (b"[]", "bundle"),
            (b"[" * 100_000, "bundle"),
            (b'{"submissionId": "\\ud800"}', "bundle"),
        ],
        ids=["empty", "not-utf8", "array", "deep", "lone-surrogate"],
    )
    def test_not_a_bundle(self, decryption, schemas, raw, path):
        rejection = rejected(raw, decryption, schemas)
        assert (Reason.CONTAINER, path) == (rejection.reason, rejection.path)

    def test_duplicate_members_are_refused(self, document, decryption, schemas):
        text = json.dumps(document)
        raw = ('{"submissionId": "00000000-0000-0000-0000-000000000000", ' + text[1:]).encode()
        rejection = rejected(raw, decryption, schemas)
        assert (Reason.CONTAINER, "bundle") == (rejection.reason, rejection.path)

    def test_unknown_member_is_refused(self, document, decryption, schemas):
        raw = json.dumps({**document, "x-vendor": "vendor-b"}).encode()
        rejection = rejected(raw, decryption, schemas)
        assert (Reason.CONTAINER, "bundle") == (rejection.reason, rejection.path)

    def test_submission_id_must_be_a_uuid(self, document, decryption, schemas):
        raw = json.dumps({**document, "submissionId": "../../etc/passwd"}).encode()
        rejection = rejected(raw, decryption, schemas)
        assert (Reason.CONTAINER, "bundle/submissionId") == (rejection.reason, rejection.path)

    def test_malformed_jwe_is_container(self, document, decryption, schemas):
        raw = json.dumps({**document, "encryptedData": "a.b.c"}).encode()
        rejection = rejected(raw, decryption, schemas)
        assert (Reason.CONTAINER, "bundle/encryptedData") == (rejection.reason, rejection.path)

    def test_bundle_larger_than_limit_is_refused_before_parsing(self, decryption, schemas):
        rejection = rejected(
            b"{" * 2000, decryption, schemas, limits=fc.Limits(max_bundle_bytes=1000)
        )
        assert (Reason.SIZE, None) == (rejection.reason, rejection.path)

    def test_peek_reads_the_ids_of_a_bundle_that_does_not_open(self, document):
        broken = json.dumps({**document, "encryptedData": "x"}).encode()
        envelope = fc.peek(broken)
        expected = (document["submissionId"], document["caseId"], DESTINATION, b"")
        assert expected == (
            envelope.message_id,
            envelope.case_id,
            envelope.reader,
            envelope.payload,
        )

    def test_authentication_tags_are_the_last_jwe_segments(self, keys):
        submission = seal(keys)
        tags = fc.authentication_tags(submission.bundle())
        assert submission.encrypted_data.split(".")[4] == tags["data"]
        assert submission.encrypted_metadata.split(".")[4] == tags["metadata"]
        assert {k: v.split(".")[4] for k, v in submission.attachments.items()} == tags[
            "attachments"
        ]


# --------------------------------------------------------------------------- Security Event Tokens


def decode_segment(token: str, index: int) -> dict:
    segment = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


class TestSecurityEventToken:
    SUBMISSION = "02bf1d9f-282d-4abf-810a-c4104baf0afe"
    CASE = "452b5ee6-35df-441a-bd39-6141723cf914"

    def sign(self, keys, kind="accept", **kwargs):
        return fc.security_event_token(
            kind,
            submission_id=self.SUBMISSION,
            case_id=self.CASE,
            destination_id=DESTINATION,
            signing_key=keys.signing,
            key_id="demo-sig-1",
            now=NOW,
            **kwargs,
        )

    def test_accept_round_trip(self, keys):
        tags = {"metadata": "m", "data": "d", "attachments": {}}
        token = self.sign(keys, authentication_tags=tags)
        header = decode_segment(token, 0)
        assert {"alg": "PS512", "typ": "secevent+jwt", "kid": "demo-sig-1"} == header
        claims = fc.verify_set(token, keys.signing_public)
        assert f"submission:{self.SUBMISSION}" == claims["sub"]
        assert f"case:{self.CASE}" == claims["txn"]
        assert DESTINATION == claims["iss"]
        assert int(NOW.timestamp()) == claims["iat"]
        assert fc.SET_PAYLOAD_SCHEMA == claims["$schema"]
        assert {fc.EVENT_ACCEPT: {"authenticationTags": tags}} == claims["events"]

    def test_the_same_answer_signed_again_has_the_same_jti(self, keys):
        first = fc.verify_set(self.sign(keys), keys.signing_public)
        later = fc.SetSigner(keys.signing).sign(
            "accept",
            submission_id=self.SUBMISSION,
            case_id=self.CASE,
            destination_id=DESTINATION,
            now=NOW + dt.timedelta(hours=1),
        )
        again = fc.verify_set(later, keys.signing_public)
        assert first["jti"] == again["jti"]
        assert first["iat"] != again["iat"]

    def test_another_answer_never_shares_a_jti(self, keys):
        accept = fc.verify_set(self.sign(keys), keys.signing_public)["jti"]
        reject = fc.verify_set(
            self.sign(keys, "reject", problems=[Rejection(Reason.SIZE)]), keys.signing_public
        )["jti"]
        other_reason = fc.verify_set(
            self.sign(keys, "reject", problems=[Rejection(Reason.DECRYPT)]), keys.signing_public
        )["jti"]
        tagged = fc.verify_set(
            self.sign(keys, authentication_tags={"metadata": "m", "data": "d", "attachments": {}}),
            keys.signing_public,
        )["jti"]
        assert 4 == len({accept, reject, other_reason, tagged})

    def test_accept_without_payload_names_no_schema(self, keys):
        claims = fc.verify_set(self.sign(keys), keys.signing_public)
        assert "$schema" not in claims
        assert {fc.EVENT_ACCEPT: {}} == claims["events"]

    def test_reject_carries_reason_codes_only(self, keys):
        problems = [Rejection(Reason.HASH_MISMATCH, "attachments/1"), Rejection(Reason.METADATA)]
        token = self.sign(keys, "reject", problems=problems)
        claims = fc.verify_set(token, keys.signing_public)
        listed = claims["events"][fc.EVENT_REJECT]["problems"]
        expected = [
            ("urn:sozialhub:reason:HASH_MISMATCH", "HASH_MISMATCH", "attachments"),
            ("urn:sozialhub:reason:METADATA", "METADATA", "submission"),
        ]
        assert expected == [(p["type"], p["title"], p["instance"]) for p in listed]

    def test_signer_event_from_a_rejection(self, keys):
        envelope = fc.peek(seal(keys).bundle())
        token = fc.SetSigner(keys.signing).event(envelope, "rejected", "DECRYPT", NOW)
        claims = fc.verify_set(token, keys.signing_public)
        (problem,) = claims["events"][fc.EVENT_REJECT]["problems"]
        assert ("DECRYPT", f"submission:{envelope.message_id}") == (problem["title"], claims["sub"])

    def test_signer_event_accept_with_tags(self, keys, decryption, schemas):
        submission = seal(keys)
        envelope = fc.open_submission(submission.bundle(), decryption, schemas, NOW)
        token = fc.SetSigner(keys.signing).event(
            envelope, "accepted", None, NOW, original=submission.bundle()
        )
        claims = fc.verify_set(token, keys.signing_public)
        tags = claims["events"][fc.EVENT_ACCEPT]["authenticationTags"]
        assert submission.encrypted_data.split(".")[4] == tags["data"]

    def test_rs256_token_is_refused(self, keys, unlabelled_signing_key):
        claims = fc.verify_set(self.sign(keys), keys.signing_public)
        forged = jwt.encode(
            {"alg": "RS256", "typ": "secevent+jwt"},
            claims,
            unlabelled_signing_key,
            algorithms=["RS256"],
        )
        with pytest.raises(Rejection) as caught:
            fc.verify_set(forged, keys.signing_public)
        assert (Reason.SIG_ALG, "set/header/alg") == (caught.value.reason, caught.value.path)

    def test_ps512_header_over_an_rs256_signature_is_refused(self, keys, unlabelled_signing_key):
        claims = fc.verify_set(self.sign(keys), keys.signing_public)
        forged = jwt.encode(
            {"alg": "RS256", "typ": "secevent+jwt"},
            claims,
            unlabelled_signing_key,
            algorithms=["RS256"],
        )
        header = base64.urlsafe_b64encode(b'{"alg":"PS512","typ":"secevent+jwt"}').rstrip(b"=")
        relabelled = header.decode() + "." + forged.split(".", 1)[1]
        with pytest.raises(Rejection) as caught:
            fc.verify_set(relabelled, keys.signing_public)
        assert (Reason.SIG_INVALID, "set") == (caught.value.reason, caught.value.path)

    def test_wrong_type_is_refused(self, keys):
        claims = fc.verify_set(self.sign(keys), keys.signing_public)
        plain_jwt = jwt.encode({"alg": "PS512"}, claims, keys.signing, algorithms=["PS512"])
        with pytest.raises(Rejection) as caught:
            fc.verify_set(plain_jwt, keys.signing_public)
        assert (Reason.SIG_INVALID, "set/header/typ") == (caught.value.reason, caught.value.path)

    def test_tampered_claims_are_refused(self, keys):
        token = self.sign(keys)
        header, _, signature = token.split(".")
        claims = decode_segment(token, 1)
        claims["sub"] = "submission:00000000-0000-0000-0000-000000000000"
        payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        with pytest.raises(Rejection) as caught:
            fc.verify_set(f"{header}.{payload}.{signature}", keys.signing_public)
        assert (Reason.SIG_INVALID, "set") == (caught.value.reason, caught.value.path)

    def test_token_of_another_key_is_refused(self, keys):
        with pytest.raises(Rejection) as caught:
            fc.verify_set(self.sign(keys), keys.encryption_public)
        assert Reason.SIG_INVALID == caught.value.reason

    def test_small_signing_key_is_refused(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            small = RSAKey.generate_key(2048)
        with pytest.raises(ValueError, match="4096"):
            fc.SetSigner(small, key_id="small")

    def test_reject_needs_a_problem(self, keys):
        with pytest.raises(ValueError, match="problem"):
            self.sign(keys, "reject")


# --------------------------------------------------------------------------- adapters


class TestLoaders:
    def test_decryption_keys_from_a_jwk_set_file(self, keys, unlabelled_signing_key, tmp_path):
        path = tmp_path / "fitconnect-keys.json"
        next_key = unlabelled_signing_key.as_dict(private=True) | {"kid": "next"}
        document = {"keys": [keys.encryption.as_dict(private=True), next_key]}
        path.write_text(json.dumps(document))
        assert ("demo-enc-1", "next") == load_decryption_keys(path).kids

    def test_public_jwk_file_is_a_config_error_naming_no_key_material(self, keys, tmp_path):
        path = tmp_path / "public.json"
        public = keys.encryption.as_dict(private=False)
        path.write_text(json.dumps(public))
        with pytest.raises(ConfigError) as caught:
            load_decryption_keys([path])
        assert public["n"][:16] not in str(caught.value)

    def test_set_signer_from_file(self, keys, tmp_path):
        path = tmp_path / "set-signing.json"
        path.write_text(json.dumps(keys.signing.as_dict(private=True)))
        assert "demo-sig-1" == load_set_signer(path).key_id

    def test_schema_uris_must_be_allow_listed(self):
        with pytest.raises(ConfigError, match="schema URI"):
            load_submission_schemas(PROJECT_ROOT / "schemas", [])


class TestReceiverConfig:
    def config(self, **changes) -> ReceiverConfig:
        values = {
            "api_url": "https://submission-api-testing.fit-connect.fitko.dev",
            "destination_id": DESTINATION,
            "token": Secret("bearer-token-value"),
            "callback_secret": Secret("callback-secret-value"),
        }
        return ReceiverConfig(**(values | changes))

    def test_repr_masks_secrets(self):
        text = repr(self.config())
        assert "bearer-token-value" not in text
        assert "callback-secret-value" not in text

    @pytest.mark.parametrize(
        "url", ["http://submission-api.example", "ftp://127.0.0.1", "file:///etc/passwd"]
    )
    def test_plain_http_only_on_loopback(self, url):
        with pytest.raises(ValueError, match="https"):
            self.config(api_url=url)

    def test_loopback_http_is_allowed_for_the_simulator(self):
        assert "http://127.0.0.1:8080" == self.config(api_url="http://127.0.0.1:8080").api_url

    def test_destination_must_be_a_uuid(self):
        with pytest.raises(ValueError, match="UUID"):
            self.config(destination_id="destination")


class TestUnsendableReceipts:
    """A receipt that can never be posted is refused at once: the receipt sender does not retry it."""

    def receiver(self) -> FitConnectReceiver:
        async def handover(*_args):  # never called here
            raise AssertionError

        return FitConnectReceiver(TestReceiverConfig().config(), handover)

    @pytest.mark.parametrize(
        ("case_id", "token"),
        [("not-a-case", "x.y.z"), ("6f1d2c3b-4a5e-4f60-8b7a-9c0d1e2f3a4b", "not.a.set")],
    )
    def test_a_bad_case_id_or_token_is_not_retriable(self, case_id, token):
        with pytest.raises(UnsendableReceipt) as caught:
            asyncio.run(self.receiver().send_event(case_id, token))
        assert caught.value.retriable is False
        assert str(caught.value) in ("case_id must be a UUID", "not an accept or reject event")
