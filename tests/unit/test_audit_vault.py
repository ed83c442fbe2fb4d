"""The audit vault: sealing with per-person keys, KEK wrapping, dispatch's recorded inputs,
the worker's person-key index, the KEK file and the `audit erase` command line. No Kafka."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
from pathlib import Path

import jsonschema
import pytest
from structlog.testing import capture_logs

from hub import audit_kek, cli
from hub.audit_vault_cli import erased_event, rewrapped_event
from hub.config import PROJECT_ROOT, ConfigError, load
from hub.core import audit_vault as av
from hub.core.errors import Reason, Rejection
from hub.core.pipeline import AUDIT, dispatch
from hub.core.records import Accepted, AuditEvent, Delivery, decode, encode
from hub.stream.app import WorkerOptions, vault_keks
from hub.stream.person_keys import PersonKeyIndex
from tests import clitools
from tests.unit.test_pipeline import (
    HOUSEHOLD,
    PERSONAL,
    SOURCE,
    accepted_of,
    person,
    submission_bytes,
)

NOW = dt.datetime(2026, 11, 2, 10, 0, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=1)
SID = "sub-" + "5e" * 16
PERSON = "psn-dev-" + "7" * 32
OTHER_PERSON = "psn-dev-" + "8" * 32
KEK_BYTES = bytes(range(32))
VALUE = (
    b'{"submission_id":"sub-5e5e","type":"sozialhub.accepted","v":1,"family_name":"Quastenhoff"}'
)


class CountingRandom:
    """Deterministic 'random' bytes: SHAKE-256 of a counter (tests only)."""

    def __init__(self, seed: bytes = b"seed") -> None:
        self.seed = seed
        self.calls = 0

    def __call__(self, n: int) -> bytes:
        self.calls += 1
        return hashlib.shake_256(self.seed + self.calls.to_bytes(4, "big")).digest(n)


def kek(kid: str = "kek1", key: bytes = KEK_BYTES) -> av.Kek:
    return av.Kek(kid, key)


def ring(*previous: av.Kek) -> av.KekRing:
    return av.KekRing(kek(), previous)


def person_key(person: str = PERSON, seed: bytes = b"seed") -> tuple[av.PersonKey, av.DataKey]:
    return av.new_person_key(person, kek(), CountingRandom(seed), NOW)


def sealed_record() -> tuple[av.SealedInput, av.PersonKey, av.DataKey]:
    record, key = person_key()
    return av.seal(VALUE, SID, key, NOW), record, key


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def flipped(text: str, index: int = 0) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[index] ^= 0x01
    return b64(bytes(raw))


class TestSealing:
    def test_seal_then_open_gives_the_value_back(self):
        """A sealed value opens with its key to the very bytes that were sealed."""
        sealed, record, _ = sealed_record()
        assert VALUE == av.open_sealed(sealed, {record.key_id: record}, ring())

    def test_the_ciphertext_holds_no_plaintext(self):
        """Nothing of the value is readable in the sealed record."""
        sealed, _, _ = sealed_record()
        encoded = av.encode_record(sealed)
        assert b"Quastenhoff" not in encoded
        assert b"Quastenhoff" not in base64.b64decode(sealed.ciphertext_b64)

    def test_sealing_again_gives_the_same_record(self):
        """Same value, submission and key: the same nonce and ciphertext (a re-run adds nothing)."""
        first, _, key = sealed_record()
        again = av.seal(VALUE, SID, key, LATER)
        assert (first.nonce_b64, first.ciphertext_b64) == (again.nonce_b64, again.ciphertext_b64)

    def test_another_value_or_submission_gets_another_nonce(self):
        """The nonce depends on the value and the submission: GCM never reuses one for two values."""
        first, _, key = sealed_record()
        other_value = av.seal(VALUE + b" ", SID, key, NOW)
        other_submission = av.seal(VALUE, "sub-" + "6f" * 16, key, NOW)
        nonces = {first.nonce_b64, other_value.nonce_b64, other_submission.nonce_b64}
        assert 3 == len(nonces)

    def test_the_digest_is_the_ciphertexts(self):
        """ciphertext_sha256 is the SHA-256 of the ciphertext bytes (what the audit event names)."""
        sealed, _, _ = sealed_record()
        expected = hashlib.sha256(base64.b64decode(sealed.ciphertext_b64)).hexdigest()
        assert expected == sealed.ciphertext_sha256

    def test_another_key_id_is_the_wrong_key(self):
        """A data key other than the one the record names is refused before decrypting."""
        sealed, _, _ = sealed_record()
        _, other = person_key(seed=b"other")
        with pytest.raises(av.WrongKeyError) as caught:
            av.open_with(sealed, other)
        assert "wrong-key" == caught.value.code

    def test_another_persons_key_is_the_wrong_key(self):
        """A key of the right id but another person is refused."""
        sealed, _, key = sealed_record()
        with pytest.raises(av.WrongKeyError):
            av.open_with(sealed, dataclasses.replace(key, person=OTHER_PERSON))

    def test_other_key_bytes_under_the_right_id_do_not_authenticate(self):
        """Forged key bytes under the record's key id: TamperedError, never garbage plaintext."""
        sealed, _, key = sealed_record()
        with pytest.raises(av.TamperedError):
            av.open_with(sealed, dataclasses.replace(key, key=bytes(32)))

    @pytest.mark.parametrize("index", [0, 10, -1])
    def test_a_flipped_ciphertext_bit_is_tampering(self, index):
        """Any flipped bit (the digest updated to match) fails the GCM tag."""
        sealed, record, _ = sealed_record()
        ciphertext = flipped(sealed.ciphertext_b64, index)
        digest = hashlib.sha256(base64.b64decode(ciphertext)).hexdigest()
        forged = dataclasses.replace(sealed, ciphertext_b64=ciphertext, ciphertext_sha256=digest)
        with pytest.raises(av.TamperedError) as caught:
            av.open_sealed(forged, {record.key_id: record}, ring())
        assert "tampered" == caught.value.code

    def test_a_ciphertext_not_matching_its_digest_is_tampering(self):
        """The digest the audit chain covers must be the ciphertext's."""
        sealed, record, _ = sealed_record()
        forged = dataclasses.replace(sealed, ciphertext_sha256="0" * 64)
        with pytest.raises(av.TamperedError, match="digest"):
            av.open_sealed(forged, {record.key_id: record}, ring())

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("submission_id", "sub-" + "6f" * 16),  # moved to another submission
            ("contract", "sozialhub.received/1"),  # claimed to be something else
            ("nonce_b64", b64(bytes(12))),
        ],
    )
    def test_changed_associated_data_or_nonce_is_tampering(self, name, value):
        """Submission id, contract and nonce are bound: changing one fails authentication."""
        sealed, record, _ = sealed_record()
        forged = dataclasses.replace(sealed, **{name: value})
        with pytest.raises(av.TamperedError):
            av.open_sealed(forged, {record.key_id: record}, ring())

    def test_an_erased_key_cannot_open(self):
        """Without the person key (tombstoned on audit.keys) the record is erased."""
        sealed, _, _ = sealed_record()
        with pytest.raises(av.ErasedError) as caught:
            av.open_sealed(sealed, {}, ring())
        assert "erased" == caught.value.code


class TestWrapping:
    def test_wrap_then_unwrap_gives_the_key_back(self):
        """The KEK unwraps exactly the data key it wrapped."""
        record, key = person_key()
        assert key == av.unwrap(record, ring())

    def test_the_wrapped_key_is_not_the_key(self):
        """The record on audit.keys holds only the wrapped key: nonce, ciphertext, tag."""
        record, key = person_key()
        wrapped = base64.b64decode(record.wrapped_b64)
        assert key.key not in wrapped
        assert b64(key.key) not in av.encode_record(record).decode()
        expected = av.NONCE_BYTES + av.KEY_BYTES + 16
        assert expected == len(wrapped)

    def test_an_unconfigured_kek_is_the_wrong_key(self):
        """A key wrapped with a KEK id the ring lacks: WrongKeyError naming the ids only."""
        record, _ = person_key()
        other = av.KekRing(av.Kek("kek9", bytes(32)))
        with pytest.raises(av.WrongKeyError, match="kek1"):
            av.unwrap(record, other)

    def test_another_kek_under_the_same_id_does_not_authenticate(self):
        """Same KEK id, other key bytes: TamperedError."""
        record, _ = person_key()
        with pytest.raises(av.TamperedError):
            av.unwrap(record, av.KekRing(av.Kek("kek1", bytes(32))))

    @pytest.mark.parametrize(
        ("name", "value"),
        [("key_id", "pk-" + "0" * 32), ("person", OTHER_PERSON)],
    )
    def test_a_wrapped_key_cannot_be_moved_to_another_id_or_person(self, name, value):
        """The key id and the pseudonym are bound to the wrapped key."""
        record, _ = person_key()
        with pytest.raises(av.TamperedError):
            av.unwrap(dataclasses.replace(record, **{name: value}), ring())

    def test_a_previous_kek_still_unwraps_older_keys(self):
        """After a KEK rotation the old KEK, kept as previous, unwraps keys it wrapped."""
        record, key = person_key()
        rotated = av.KekRing(av.Kek("kek2", bytes(range(1, 33))), [kek()])
        assert key == av.unwrap(record, rotated)
        assert ("kek2", "kek1") == rotated.kids

    def test_random_bytes_come_from_the_caller(self):
        """Key id, data key and wrapping nonce are the injected randomness: the same source
        gives the same key; a source that gives too few bytes is refused."""
        assert person_key(seed=b"a") == person_key(seed=b"a")
        assert person_key(seed=b"a")[0].key_id != person_key(seed=b"b")[0].key_id
        with pytest.raises(ValueError, match="random"):
            av.new_person_key(PERSON, kek(), lambda n: b"\x00" * (n - 1), NOW)

    def test_keys_and_rings_refuse_bad_material(self):
        """A KEK must be 32 bytes with a plain id; a ring must not hold one key twice."""
        with pytest.raises(ValueError, match="32 bytes"):
            av.Kek("kek1", bytes(16))
        with pytest.raises(ValueError, match="KEK id"):
            av.Kek("Kek 1", KEK_BYTES)
        with pytest.raises(ValueError, match="share"):
            av.KekRing(kek(), [av.Kek("kek2", KEK_BYTES)])


class TestRewrapping:
    def test_rewrap_moves_a_key_to_the_current_kek(self):
        """The same data key, id, person and creation time under the current KEK: the key's
        sealed inputs open with a ring that no longer holds the old KEK."""
        record, key = person_key()
        sealed = av.seal(VALUE, SID, key, NOW)
        new = av.Kek("kek2", bytes(range(1, 33)))
        moved = av.rewrap(record, av.KekRing(new, [kek()]), CountingRandom(b"r"))
        assert ("kek2", record.key_id, record.person, record.created_at) == (
            moved.kek_id,
            moved.key_id,
            moved.person,
            moved.created_at,
        )
        only_new = av.KekRing(new)
        assert key == av.unwrap(moved, only_new)
        assert VALUE == av.open_sealed(sealed, {moved.key_id: moved}, only_new)
        with pytest.raises(av.WrongKeyError):
            av.unwrap(record, only_new)

    def test_rewrap_refuses_what_unwrap_refuses(self):
        """A key under a KEK the ring lacks, or one that does not authenticate, is not re-wrapped."""
        record, _ = person_key()
        new = av.Kek("kek2", bytes(range(1, 33)))
        with pytest.raises(av.WrongKeyError):
            av.rewrap(record, av.KekRing(new), CountingRandom())
        moved = dataclasses.replace(record, person=OTHER_PERSON)
        with pytest.raises(av.TamperedError):
            av.rewrap(moved, av.KekRing(new, [kek()]), CountingRandom())

    @pytest.mark.parametrize(
        ("history", "erased"),
        [
            ([(3, False), (9, False)], False),  # read at 3, written at 9: nothing in between
            ([(3, False), (5, True), (9, False)], True),  # erased at 5: the write revived it
            ([(3, False), (9, False), (11, True)], False),  # erased after the write: erased
            ([(1, True), (3, False), (9, False)], False),  # an earlier erasure, then a new record
        ],
    )
    def test_an_erasure_between_read_and_write_is_found(self, history, erased):
        assert erased is av.erased_meanwhile(history, 3, 9)

    def test_the_event_counts_keys_and_follows_the_schema(self):
        """audit/rewrapped: the key count under sub-unknown, nothing else; one id per run."""
        keys = ("pk-" + "1" * 32, "pk-" + "2" * 32)
        event = decode(rewrapped_event("kek2", keys, NOW).value, AuditEvent)
        schema = TestAuditEventSchema.SCHEMA
        jsonschema.validate(json.loads(encode(event)), schema)
        set_fields = {f.name for f in dataclasses.fields(event) if getattr(event, f.name)}
        assert {"event_id", "submission_id", "stage", "decision", "at", "key_count"} == set_fields
        assert ("sub-unknown", av.REWRAPPED, 2) == (
            event.submission_id,
            event.decision,
            event.key_count,
        )
        again = decode(rewrapped_event("kek2", keys[::-1], LATER).value, AuditEvent)
        other = decode(rewrapped_event("kek3", keys, NOW).value, AuditEvent)
        assert event.event_id == again.event_id != other.event_id


class TestNoKeyMaterialShown:
    def test_reprs_and_strs_mask_every_key(self):
        """Kek, KekRing, DataKey and Vault show ids, never key bytes (in any encoding)."""
        record, key = person_key()
        vault = av.Vault(ring(), {PERSON: (record,)}, CountingRandom())
        shown = " ".join(
            f(o)
            for o in (kek(), ring(), key, vault, av.Sealing(sealed_record()[0], record))
            for f in (repr, str)
        )
        for secret in (KEK_BYTES, key.key):
            for form in (repr(secret), secret.hex(), b64(secret), str(list(secret))):
                assert form not in shown
        assert "kek1" in shown

    def test_errors_name_ids_never_keys_or_plaintext(self):
        """Every vault error message is free of key bytes and of the sealed value."""
        sealed, record, key = sealed_record()
        messages = []
        for attempt in (
            lambda: av.open_with(sealed, dataclasses.replace(key, key=bytes(32))),
            lambda: av.open_sealed(sealed, {}, ring()),
            lambda: av.unwrap(record, av.KekRing(av.Kek("kek1", bytes(32)))),
            lambda: av.unwrap(record, av.KekRing(av.Kek("kek9", bytes(32)))),
        ):
            with pytest.raises(av.VaultError) as caught:
                attempt()
            messages.append(str(caught.value))
        text = " ".join(messages)
        for secret in (KEK_BYTES.hex(), key.key.hex(), b64(key.key), "Quastenhoff"):
            assert secret not in text

    def test_kek_file_errors_and_settings_never_show_the_key(self, tmp_path):
        """A bad KEK file's error names the file and the KEK id; Settings show the path only."""
        secret = b64(b"\x07" * 31)  # one byte short
        path = tmp_path / "kek.json"
        path.write_text(json.dumps({"kid": "kek1", "key": secret}))
        with pytest.raises(ConfigError) as caught:
            audit_kek.load(path)
        assert secret not in str(caught.value)
        assert "kek1" in str(caught.value)
        path.write_text(json.dumps({"kid": "kek1", "key": b64(KEK_BYTES)}))
        settings = load({"SOZIALHUB_AUDIT_KEK_FILE": str(path)})
        loaded = audit_kek.from_settings(settings)
        assert loaded is not None
        assert b64(KEK_BYTES) not in repr(settings) + repr(loaded) + str(loaded)

    def test_the_worker_warns_once_without_a_kek_and_logs_no_key_with_one(self, tmp_path):
        """No KEK: exactly one warning, and no inputs are recorded. With one: nothing logged."""
        with capture_logs() as logs:
            assert vault_keks(load({}), WorkerOptions()) is None
        assert ["vault.disabled"] == [e["event"] for e in logs]
        path = tmp_path / "kek.json"
        path.write_text(json.dumps({"kid": "kek1", "key": b64(KEK_BYTES)}))
        with capture_logs() as logs:
            keks = vault_keks(load({"SOZIALHUB_AUDIT_KEK_FILE": str(path)}), WorkerOptions())
        assert keks is not None
        assert "kek1" == keks.current.kid
        assert [] == logs


class TestKekFile:
    def write(self, tmp_path, document) -> Path:
        path = tmp_path / "kek.json"
        path.write_text(json.dumps(document))
        return path

    def test_current_and_previous(self, tmp_path):
        """kid/key is the current KEK; previous ones only unwrap."""
        path = self.write(
            tmp_path,
            {
                "kid": "kek2",
                "key": b64(KEK_BYTES),
                "previous": [{"kid": "kek1", "key": b64(b"\x01" * 32)}],
            },
        )
        loaded = audit_kek.load(path)
        assert ("kek2", "kek1") == loaded.kids
        assert "kek2" == loaded.current.kid

    @pytest.mark.parametrize(
        ("document", "message"),
        [
            ({"kid": "kek1"}, "exactly"),
            ({"kid": "kek1", "key": "not base64!"}, "not base64"),
            ({"kid": "kek1", "key": b64(bytes(16))}, "32 bytes"),
            ({"kid": "dev", "key": b64(KEK_BYTES)}, "development"),
            ({"kid": "kek1", "key": b64(KEK_BYTES), "extra": 1}, "unknown"),
            ({"kid": "kek1", "key": b64(KEK_BYTES), "previous": {}}, "list"),
            ([], "object"),
        ],
    )
    def test_bad_files_are_configuration_errors(self, tmp_path, document, message):
        """Every malformed file is a ConfigError that says what is wrong."""
        with pytest.raises(ConfigError, match=message):
            audit_kek.load(self.write(tmp_path, document))

    def test_the_development_key_is_refused_in_a_file(self, tmp_path):
        """The public development KEK can never be configured as a real one."""
        public = audit_kek.development_ring().current.key
        with pytest.raises(ConfigError, match="development"):
            audit_kek.load(self.write(tmp_path, {"kid": "kek1", "key": b64(public)}))

    def test_development_only_on_request(self):
        """Without a file: no KEK, unless the development KEK is asked for."""
        assert audit_kek.from_settings(load({})) is None
        assert "dev" == audit_kek.from_settings(load({}), development=True).current.kid


def vault_of(keys=None, random=None) -> av.Vault:
    return av.Vault(ring(), {} if keys is None else keys, random or CountingRandom())


def by_topic(result, topic: str) -> list[bytes]:
    return [e.value for e in result.emits if e.topic == topic]


def vault_events(result) -> list[AuditEvent]:
    events = [decode(e.value, AuditEvent) for e in result.emits if e.topic == AUDIT]
    return [e for e in events if e.stage == av.STAGE]


class TestDispatch:
    @pytest.fixture
    def accepted(self, hub_context, now) -> Accepted:
        return accepted_of(submission_bytes(*HOUSEHOLD), hub_context, now)

    def test_without_a_vault_nothing_is_recorded(self, hub_context, accepted, now):
        """No KEK configured (no vault): dispatch writes no key, no vault record, no vault event."""
        result = dispatch(accepted, SOURCE, hub_context, now)
        assert [] == by_topic(result, av.KEYS) + by_topic(result, av.VAULT)
        assert [] == vault_events(result)

    def test_a_new_person_gets_a_key_then_the_sealed_input(self, hub_context, accepted, now):
        """First submission of a person: the key record, the vault record, one sealed event,
        before the deliveries; keyed by key id and submission id."""
        result = dispatch(accepted, SOURCE, hub_context, now, vault_of())
        topics = [e.topic for e in result.emits]
        assert [av.KEYS, av.VAULT, AUDIT] == topics[:3]
        assert "routed" == result.outcome
        key = av.decode_person_key(result.emits[0].value)
        sealed = av.decode_sealed(result.emits[1].value)
        assert (key.key_id, accepted.submission_id) == (result.emits[0].key, result.emits[1].key)
        assert (sealed.person_key, sealed.person) == (key.key_id, key.person)
        assert 1 == len(by_topic(result, av.KEYS)) == len(by_topic(result, av.VAULT))

    def test_the_sealed_event_carries_the_digest_and_the_person_key(
        self, hub_context, accepted, now
    ):
        """vault/sealed names the pseudonym (the deliveries'), the person key and the SHA-256 of
        the sealed ciphertext: the chain covers the vault record."""
        result = dispatch(accepted, SOURCE, hub_context, now, vault_of())
        sealed = av.decode_sealed(by_topic(result, av.VAULT)[0])
        (event,) = vault_events(result)
        delivery = decode(
            next(e.value for e in result.emits if e.topic.startswith("deliveries.")), Delivery
        )
        assert (av.SEALED, accepted.submission_id) == (event.decision, event.submission_id)
        assert delivery.person == event.person == sealed.person
        assert sealed.person_key == event.person_key
        ciphertext = base64.b64decode(sealed.ciphertext_b64)
        assert hashlib.sha256(ciphertext).hexdigest() == event.input_sha256
        assert event.payload_sha256 is None
        assert event.key_count is None

    def test_the_sealed_value_is_the_accepted_record_value(self, hub_context, accepted, now):
        """What opens is the submissions.accepted value: the bytes consumed, else re-encoded."""
        consumed = encode(accepted)
        for given in (consumed, None):
            result = dispatch(accepted, SOURCE, hub_context, now, vault_of(), given)
            key = av.decode_person_key(by_topic(result, av.KEYS)[0])
            sealed = av.decode_sealed(by_topic(result, av.VAULT)[0])
            opened = av.open_sealed(sealed, {key.key_id: key}, ring())
            assert consumed == opened
            assert accepted == decode(opened, Accepted)

    def test_a_known_key_is_used_and_no_new_one_made(self, hub_context, accepted, now):
        """A person with a key gets no second one; no randomness is drawn."""
        first = dispatch(accepted, SOURCE, hub_context, now, vault_of())
        key = av.decode_person_key(by_topic(first, av.KEYS)[0])
        random = CountingRandom(b"never")
        again = dispatch(accepted, SOURCE, hub_context, now, vault_of({key.person: (key,)}, random))
        assert [] == by_topic(again, av.KEYS)
        assert key.key_id == av.decode_sealed(by_topic(again, av.VAULT)[0]).person_key
        assert 0 == random.calls

    def test_a_rerun_gives_the_same_records(self, hub_context, accepted, now):
        """Re-processing the accepted record (the key known by then) repeats the vault record and
        every other output byte for byte: no second vault record with another id or content."""
        index = PersonKeyIndex()
        first = dispatch(accepted, SOURCE, hub_context, now, vault_of(index))
        index.remember(first.emits)
        again = dispatch(accepted, SOURCE, hub_context, now, vault_of(index))
        assert [e for e in first.emits if e.topic != av.KEYS] == list(again.emits)

    def test_a_key_remembered_in_the_batch_serves_the_persons_next_submission(
        self, hub_context, now
    ):
        """Two submissions of one person in one batch: one key, both sealed under it."""
        index = PersonKeyIndex()
        results = []
        for street in ("Vogelsangweg", "Am Lohtor"):
            other = accepted_of(submission_bytes(person(street=street)), hub_context, now)
            results.append(dispatch(other, SOURCE, hub_context, now, vault_of(index)))
            index.remember(results[-1].emits)
        keys = [k for r in results for k in by_topic(r, av.KEYS)]
        sealed = [av.decode_sealed(by_topic(r, av.VAULT)[0]) for r in results]
        assert 1 == len(keys)
        assert 2 == len({s.submission_id for s in sealed})
        assert {av.decode_person_key(keys[0]).key_id} == {s.person_key for s in sealed}

    def test_a_key_that_does_not_unwrap_is_passed_over(self, hub_context, accepted, now):
        """A key wrapped with a KEK no longer configured: the person gets a new key."""
        first = dispatch(accepted, SOURCE, hub_context, now, vault_of())
        old = av.decode_person_key(by_topic(first, av.KEYS)[0])
        foreign = dataclasses.replace(old, kek_id="kek0")
        again = dispatch(
            accepted,
            SOURCE,
            hub_context,
            now,
            vault_of({old.person: (foreign,)}, CountingRandom(b"new")),
        )
        (new,) = [av.decode_person_key(v) for v in by_topic(again, av.KEYS)]
        assert new.key_id != old.key_id

    def test_no_pseudonym_no_recorded_input(self, hub_context, accepted, now):
        """Without a key ring (or a portal) there is no person pseudonym: nothing is recorded."""
        without_ring = dataclasses.replace(hub_context, pseudonyms=None)
        without_portal = dataclasses.replace(accepted, portal=None)
        for hub, record in ((without_ring, accepted), (hub_context, without_portal)):
            result = dispatch(record, SOURCE, hub, now, vault_of())
            assert [] == by_topic(result, av.KEYS) + by_topic(result, av.VAULT)
            assert [] == vault_events(result)

    def test_a_routing_rejection_still_records_the_input(self, hub_context, now):
        """Replay re-runs rejected submissions too: the input is sealed whatever routing says."""
        nowhere = accepted_of(
            submission_bytes(person(postcode=None, town="Bottrop")), hub_context, now
        )
        result = dispatch(nowhere, SOURCE, hub_context, now, vault_of())
        assert ("rejected", "ROUTE_UNRESOLVED") == (result.outcome, result.reason)
        assert 1 == len(by_topic(result, av.VAULT))
        assert [av.SEALED] == [e.decision for e in vault_events(result)]

    def test_an_input_too_large_to_record_is_skipped_not_produced(self, hub_context, accepted, now):
        """A vault record above the record limit is not written (the worker would crash-loop):
        vault/skipped with reason SIZE; no key is made for it; the deliveries go out."""
        full = dispatch(accepted, SOURCE, hub_context, now, vault_of())
        vault_size = len(by_topic(full, av.VAULT)[0])
        largest_delivery = max(
            len(e.value) for e in full.emits if e.topic.startswith("deliveries.")
        )
        assert largest_delivery < vault_size
        small = dataclasses.replace(hub_context, max_record_bytes=vault_size - 1)
        result = dispatch(accepted, SOURCE, small, now, vault_of())
        assert [] == by_topic(result, av.KEYS) + by_topic(result, av.VAULT)
        (event,) = vault_events(result)
        assert (av.SKIPPED, "SIZE") == (event.decision, event.reason)
        assert "routed" == result.outcome

    def test_no_personal_data_outside_the_ciphertext(self, hub_context, accepted, now):
        """Key records, vault records and audit events hold no name, birth date or street."""
        result = dispatch(accepted, SOURCE, hub_context, now, vault_of())
        plain = [e.value for e in result.emits if e.topic in (av.KEYS, av.VAULT, AUDIT)]
        for value in plain:
            for text in PERSONAL:
                assert text.encode() not in value


class TestAuditEventSchema:
    SCHEMA = json.loads(
        (PROJECT_ROOT / "schemas" / "hub" / "audit-event-1.schema.json").read_text("utf-8")
    )

    def test_the_vault_and_erasure_events_follow_the_published_schema(self, hub_context, now):
        """vault/sealed, vault/skipped and audit/erased validate against audit-event-1; erased
        sets the pseudonym and the key count, nothing else, under sub-unknown."""
        accepted = accepted_of(submission_bytes(*HOUSEHOLD), hub_context, now)
        full = dispatch(accepted, SOURCE, hub_context, now, vault_of())
        sealed = vault_events(full)
        limit = len(by_topic(full, av.VAULT)[0]) - 1
        small = dataclasses.replace(hub_context, max_record_bytes=limit)
        skipped = vault_events(dispatch(accepted, SOURCE, small, now, vault_of()))
        keys = ("pk-" + "1" * 32, "pk-" + "2" * 32)
        erased = decode(erased_event(PERSON, keys, now).value, AuditEvent)
        assert [av.SEALED, av.SKIPPED, av.ERASED] == [
            e.decision for e in (*sealed, *skipped, erased)
        ]
        for event in (*sealed, *skipped, erased):
            jsonschema.validate(json.loads(encode(event)), self.SCHEMA)
        set_fields = {f.name for f in dataclasses.fields(erased) if getattr(erased, f.name)}
        assert {"event_id", "submission_id", "stage", "decision", "at", "person", "key_count"} == (
            set_fields
        )
        assert ("sub-unknown", 2) == (erased.submission_id, erased.key_count)
        again = decode(erased_event(PERSON, keys[::-1], LATER).value, AuditEvent)
        assert erased.event_id == again.event_id


class TestRecords:
    def test_round_trip(self):
        """Both records encode as compact sorted JSON with type and v, and decode back equal."""
        sealed, record, _ = sealed_record()
        for item, decoder, contract in (
            (sealed, av.decode_sealed, "sozialhub.audit-sealed"),
            (record, av.decode_person_key, "sozialhub.audit-person-key"),
        ):
            encoded = av.encode_record(item)
            body = json.loads(encoded)
            assert (contract, 1) == (body["type"], body["v"])
            assert encoded == json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            assert item == decoder(encoded)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("key_id", "pk-XYZ"),
            ("person", "Erika Mustermann"),
            ("kek_id", "KEK 1"),
            ("wrapped_b64", 7),
        ],
    )
    def test_malformed_person_keys_are_envelope(self, name, value):
        """A person key record with a malformed id, pseudonym or field is ENVELOPE at that field."""
        record, _ = person_key()
        body = json.loads(av.encode_record(record))
        body[name] = value
        with pytest.raises(Rejection) as caught:
            av.decode_person_key(json.dumps(body).encode())
        assert (Reason.ENVELOPE, name) == (caught.value.reason, caught.value.path)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("submission_id", "sub-unknown"),
            ("person_key", "pk-1"),
            ("ciphertext_sha256", "abc"),
            ("person", "psn-dev-x"),
        ],
    )
    def test_malformed_sealed_inputs_are_envelope(self, name, value):
        """A sealed input with a malformed id or digest is ENVELOPE."""
        sealed, _, _ = sealed_record()
        body = json.loads(av.encode_record(sealed))
        body[name] = value
        with pytest.raises(Rejection) as caught:
            av.decode_sealed(json.dumps(body).encode())
        assert Reason.ENVELOPE == caught.value.reason

    def test_erasure_finds_every_key_of_the_persons(self):
        """keys_of lists each pseudonym's live keys, also two made at once; others untouched."""
        first, _ = person_key(seed=b"1")
        second, _ = person_key(seed=b"2")
        other, _ = person_key(OTHER_PERSON, seed=b"3")
        live = {r.key_id: r for r in (first, second, other)}
        found = av.keys_of([PERSON, "psn-old-" + "9" * 32], live)
        assert {PERSON: tuple(sorted((first.key_id, second.key_id)))} == found
        assert av.erasure_target(PERSON, [second.key_id, first.key_id]) == av.erasure_target(
            PERSON, [first.key_id, second.key_id]
        )


class TestPersonKeyIndex:
    def test_follows_records_and_tombstones(self):
        """Records add keys, oldest first; a tombstone removes one; the person goes with the last."""
        old, _ = person_key(seed=b"old")
        new = dataclasses.replace(person_key(seed=b"new")[0], created_at="2027-01-01T00:00:00.000Z")
        index = PersonKeyIndex()
        for record in (new, old):
            index.take(record.key_id.encode(), av.encode_record(record))
        assert (old, new) == index[PERSON]
        index.take(old.key_id.encode(), None)
        assert (new,) == index[PERSON]
        index.take(new.key_id.encode(), None)
        assert PERSON not in index
        assert 0 == index.key_count

    def test_foreign_records_are_ignored(self):
        """A key that is no key id, a value that is no person key, or one under another id."""
        record, _ = person_key()
        other, _ = person_key(seed=b"other")
        index = PersonKeyIndex()
        with capture_logs() as logs:
            index.take(b"Erika", av.encode_record(record))
            index.take(record.key_id.encode(), b"{}")
            index.take(other.key_id.encode(), av.encode_record(record))
        assert 0 == len(index)
        assert 3 == len(logs)
        assert all(e["event"] == "person_keys.foreign_record" for e in logs)

    def test_remembers_the_keys_dispatch_makes(self, hub_context, now):
        """Keys in a batch's emits are known at once; nothing else is taken from them."""
        accepted = accepted_of(submission_bytes(*HOUSEHOLD), hub_context, now)
        result = dispatch(accepted, SOURCE, hub_context, now, vault_of())
        index = PersonKeyIndex()
        index.remember(result.emits)
        (key,) = [av.decode_person_key(v) for v in by_topic(result, av.KEYS)]
        assert (key,) == index[key.person]
        assert 1 == index.key_count


class TestEraseCommandLine:
    @pytest.fixture(autouse=True)
    def isolated(self, monkeypatch):
        """A clean environment; main() configures logging for this stderr: undo that after."""
        with clitools.isolated(monkeypatch):
            yield

    def run(self, capsys, monkeypatch, *argv: str) -> tuple[int, str, str]:
        status = cli.main(["audit", "erase", *argv])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    def test_a_malformed_pseudonym_is_a_usage_error(self, capsys, monkeypatch):
        """--person must be a pseudonym: exit 2 before anything is read."""
        with pytest.raises(SystemExit) as caught:
            self.run(capsys, monkeypatch, "--person", "Erika Mustermann")
        assert 2 == caught.value.code

    def test_without_a_cluster_it_refuses(self, capsys, monkeypatch):
        """The vault lives on a cluster: without bootstrap servers, exit 2 and say so."""
        status, out, err = self.run(capsys, monkeypatch, "--person", PERSON, "--yes")
        assert (2, "") == (status, out)
        assert "KAFKA_BOOTSTRAP_SERVERS" in err

    def test_naming_nobody_or_a_malformed_identifier_is_a_usage_error(self, capsys, monkeypatch):
        """Neither --person nor --identifier, or an identifier that does not check: exit 2,
        and the identifier is never echoed."""
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        status, _, err = cli.main(["audit", "erase", "--yes"]), *capsys.readouterr()
        assert 2 == status
        assert "--person" in err
        status = cli.main(
            ["audit", "erase", "--identifier", "idnr:86095742718", "--development-key", "--yes"]
        )
        _, err = capsys.readouterr()
        assert 2 == status
        assert "IDENTIFIER" in err
        assert "86095742718" not in err

    def test_person_and_identifier_must_agree(self, capsys, monkeypatch):
        """--person given with --identifier must be one of the identifier's pseudonyms."""
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        status = cli.main(
            [
                "audit",
                "erase",
                "--identifier",
                "idnr:86095742719",
                "--person",
                PERSON,
                "--development-key",
                "--yes",
            ]
        )
        _, err = capsys.readouterr()
        assert 2 == status
        assert "not a pseudonym of --identifier" in err
