"""Pseudonyms: IdNr checks, normalisation, the key ring across a rotation, the key file loader."""

from __future__ import annotations

import base64
import json
import re

import pytest

from hub import pseudonyms
from hub.config import ConfigError, Settings, load
from hub.core.errors import Reason, Rejection
from hub.core.pseudonym import (
    PSEUDONYM,
    Identifier,
    KeyRing,
    PseudonymKey,
    identifier,
    idnr_check_digit,
    idnr_valid,
    is_pseudonym,
)

# Well-formed IdNr (format rules and check digit hold), as used in public examples of the format.
VALID_IDNR = ["86095742719", "47036892816", "65929970489", "57549285017", "25768131411"]
FULL_WIDTH = "".join(chr(0xFF10 + int(d)) for d in "86095742719")  # full-width digits
KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))


def ring(*keys: tuple[str, bytes], current: str) -> KeyRing:
    return KeyRing([PseudonymKey(k, s) for k, s in keys], current)


class TestIdnr:
    @pytest.mark.parametrize("number", VALID_IDNR)
    def test_valid_numbers_pass(self, number):
        """Published valid IdNr pass every check."""
        assert idnr_valid(number)

    @pytest.mark.parametrize("number", VALID_IDNR)
    def test_check_digit_is_mod_11_10(self, number):
        """The 11th digit is the ISO/IEC 7064 MOD 11,10 check digit of the first ten."""
        expected = int(number[10])
        assert expected == idnr_check_digit(number[:10])

    @pytest.mark.parametrize("number", VALID_IDNR)
    def test_any_other_check_digit_fails(self, number):
        """Changing the check digit makes the number invalid."""
        wrong = [number[:10] + str(d) for d in range(10) if str(d) != number[10]]
        expected = [False] * 9
        assert expected == [idnr_valid(n) for n in wrong]

    @pytest.mark.parametrize(
        ("number", "why"),
        [
            ("06095742719", "leading zero"),
            ("8609574271", "ten digits"),
            ("860957427190", "twelve digits"),
            ("8609574271X", "not a digit"),
            ("1234567890" + str(idnr_check_digit("1234567890")), "no repeated digit"),
            ("1123456788" + str(idnr_check_digit("1123456788")), "two digits repeated"),
            ("1111234567" + str(idnr_check_digit("1111234567")), "a digit four times"),
            ("1112345678" + str(idnr_check_digit("1112345678")), "three times in a row"),
            (FULL_WIDTH[:1] + "6095742719", "full-width digit before normalisation"),
        ],
    )
    def test_malformed_numbers_fail(self, number, why):
        """Length, leading zero, repetition rule and digits-only are all checked."""
        assert not idnr_valid(number), why

    def test_a_digit_three_times_apart_passes(self):
        """Three uses of one digit are allowed when they do not stand in a row (since 2016)."""
        head = "1121345678"
        assert idnr_valid(head + str(idnr_check_digit(head)))

    def test_separators_are_normalised(self):
        """Spaces, slashes, dots, hyphens and full-width digits are normalised before checking."""
        expected = {Identifier("idnr", "86095742719")}
        actual = {
            identifier("idnr", text)
            for text in ("86 095 742 719", "86/095/742/719", "86-095.742 719", FULL_WIDTH)
        }
        assert expected == actual

    def test_invalid_idnr_is_an_identifier_rejection_without_the_value(self):
        """The rejection names the kind, never the number."""
        with pytest.raises(Rejection) as info:
            identifier("idnr", "86095742718")
        expected = (Reason.IDENTIFIER, "idnr", False)
        assert expected == (info.value.reason, info.value.path, "86095742718" in str(info.value))


class TestOtherIdentifiers:
    def test_rvnr_is_upper_cased_and_compacted(self):
        """A Versicherungsnummer loses spaces and is upper-cased."""
        expected = Identifier("rvnr", "65170839J003")
        assert expected == identifier("rvnr", " 65 170839 j 003 ")

    @pytest.mark.parametrize("value", ["65170839003", "6517083JJ003", "65170839J0031"])
    def test_malformed_rvnr_is_refused(self, value):
        """The format (8 digits, a letter, 3 digits) is checked."""
        with pytest.raises(Rejection) as info:
            identifier("rvnr", value)
        assert (Reason.IDENTIFIER, "rvnr") == (info.value.reason, info.value.path)

    def test_local_numbers_are_namespaced_by_office(self):
        """The same local number at two offices gives two different identifiers and pseudonyms."""
        keys = ring(("a", KEY_A), current="a")
        one = identifier("local:soa-marl", "az-4711")
        other = identifier("local:soa-herten", "AZ-4711")
        expected = (True, False)
        assert expected == (one.value == other.value, keys.pseudonym(one) == keys.pseudonym(other))

    @pytest.mark.parametrize("kind", ["IDNR", "passport", "local:", "local:Soa", ""])
    def test_unknown_kind_is_refused(self, kind):
        """Only idnr, rvnr and local:<office id> are identifier kinds."""
        with pytest.raises(Rejection) as info:
            identifier(kind, "86095742719")
        assert Reason.IDENTIFIER == info.value.reason

    def test_repr_masks_the_value(self):
        """An identifier's repr shows its kind, never its value."""
        text = repr(identifier("idnr", "86095742719"))
        expected = (True, False)
        assert expected == ("idnr" in text, "86095742719" in text)


class TestKeyRing:
    def test_pseudonym_shape_names_the_key(self):
        """A pseudonym is psn-<key id>-<32 hex> under the current key."""
        keys = ring(("k2026", KEY_A), current="k2026")
        made = keys.pseudonym(identifier("idnr", VALID_IDNR[0]))
        found = PSEUDONYM.fullmatch(made)
        assert found is not None
        assert "k2026" == found.group(1)
        assert is_pseudonym(made)

    def test_deterministic_and_key_dependent(self):
        """The same identifier gives the same pseudonym under one key, another under another key."""
        person = identifier("idnr", VALID_IDNR[0])
        one = ring(("a", KEY_A), current="a")
        again = ring(("a", KEY_A), current="a")
        other = ring(("a", KEY_B), current="a")
        expected = (True, False)
        assert expected == (
            one.pseudonym(person) == again.pseudonym(person),
            one.pseudonym(person) == other.pseudonym(person),
        )

    def test_different_people_differ(self):
        """Distinct identifiers give distinct pseudonyms."""
        keys = ring(("a", KEY_A), current="a")
        made = {keys.pseudonym(identifier("idnr", n)) for n in VALID_IDNR}
        assert len(VALID_IDNR) == len(made)

    def test_kind_is_part_of_the_input(self):
        """Equal text under two kinds does not collide (the kind is hashed with the value)."""
        keys = ring(("a", KEY_A), current="a")
        one = keys.pseudonym(Identifier("local:soa-marl", "1"))
        other = keys.pseudonym(Identifier("local:soa-marlx", "1"))
        assert one != other

    def test_matches_across_a_rotation(self):
        """After the current key changes, a pseudonym made under the old key still matches."""
        person = identifier("idnr", VALID_IDNR[1])
        before = ring(("k1", KEY_A), current="k1")
        after = ring(("k1", KEY_A), ("k2", KEY_B), current="k2")
        old = before.pseudonym(person)
        new = after.pseudonym(person)
        expected = (True, True, False, (new, old))
        actual = (
            after.matches(person, old),
            after.matches(person, new),
            old == new,
            after.candidates(person),
        )
        assert expected == actual

    def test_no_match_for_another_person_or_unknown_key(self):
        """Another person's pseudonym, a retired key's and a malformed one do not match."""
        person = identifier("idnr", VALID_IDNR[1])
        retired = ring(("k0", KEY_B), current="k0").pseudonym(person)
        keys = ring(("k1", KEY_A), current="k1")
        other = keys.pseudonym(identifier("idnr", VALID_IDNR[2]))
        expected = [False, False, False]
        assert expected == [keys.matches(person, p) for p in (other, retired, "psn-k1-zz")]

    def test_ring_rules(self):
        """The current key must be in the ring; ids are unique; secrets are unique and long enough."""
        for build in (
            lambda: ring(("a", KEY_A), current="b"),
            lambda: ring(("a", KEY_A), ("a", KEY_B), current="a"),
            lambda: ring(("a", KEY_A), ("b", KEY_A), current="a"),
            lambda: ring(("a", b"short"), current="a"),
            lambda: ring(("A-1", KEY_A), current="A-1"),
        ):
            with pytest.raises(ValueError, match="pseudonym key"):
                build()

    def test_repr_shows_ids_only(self):
        """Neither the ring's nor a key's repr shows secret bytes."""
        keys = ring(("a", KEY_A), ("b", KEY_B), current="b")
        text = repr(keys) + repr(PseudonymKey("a", KEY_A))
        assert "KeyRing(current='b', keys=['b', 'a'])" in text
        assert repr(KEY_A) not in text
        assert KEY_A.hex() not in text


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


class TestKeyFile:
    def test_json_file(self, tmp_path, settings):
        """A JSON key file gives a ring with its current key."""
        path = tmp_path / "keys.json"
        body = {
            "schema": "sozialhub.pseudonym-keys/1",
            "current": "k2",
            "keys": {"k1": _b64(KEY_A), "k2": _b64(KEY_B)},
        }
        path.write_text(json.dumps(body))
        keys = pseudonyms.load(path, settings.schema_dir)
        assert ("k2", "k1") == keys.key_ids

    def test_toml_file_from_settings(self, tmp_path):
        """SOZIALHUB_PSEUDONYM_KEYS_FILE names a TOML key file; the ring equals the one built by hand."""
        path = tmp_path / "keys.toml"
        path.write_text(
            f'schema = "sozialhub.pseudonym-keys/1"\ncurrent = "k1"\n[keys]\nk1 = "{_b64(KEY_A)}"\n'
        )
        configured = load({"SOZIALHUB_PSEUDONYM_KEYS_FILE": str(path)})
        keys = pseudonyms.from_settings(configured)
        person = identifier("idnr", VALID_IDNR[0])
        expected = ring(("k1", KEY_A), current="k1").pseudonym(person)
        assert expected == keys.pseudonym(person)

    @pytest.mark.parametrize(
        ("keys", "current", "message"),
        [
            ({"k1": "not base64!"}, "k1", "invalid at keys/k1"),
            ({"k1": _b64(b"x" * 31)}, "k1", "invalid at keys/k1"),  # shorter than 32 bytes
            ({"k1": _b64(KEY_A)}, "k2", "current pseudonym key is not in the ring"),
            ({"K1": _b64(KEY_A)}, "K1", "invalid at"),
            ({"k1": _b64(KEY_A), "k2": _b64(KEY_A)}, "k1", "share a secret"),
        ],
    )
    def test_errors_name_the_key_never_the_secret(self, tmp_path, settings, keys, current, message):
        """Malformed files are ConfigErrors naming the location; no secret text in the message."""
        path = tmp_path / "keys.json"
        path.write_text(
            json.dumps({"schema": "sozialhub.pseudonym-keys/1", "current": current, "keys": keys})
        )
        with pytest.raises(ConfigError) as info:
            pseudonyms.load(path, settings.schema_dir)
        assert message in str(info.value)
        assert all(secret not in str(info.value) for secret in keys.values())

    def test_development_key_is_refused_in_a_file(self, tmp_path, settings):
        """The public development key cannot be configured as a real key."""
        dev = pseudonyms._DEVELOPMENT_SECRET
        path = tmp_path / "keys.json"
        path.write_text(
            json.dumps(
                {"schema": "sozialhub.pseudonym-keys/1", "current": "k1", "keys": {"k1": _b64(dev)}}
            )
        )
        with pytest.raises(ConfigError, match="development key"):
            pseudonyms.load(path, settings.schema_dir)

    def test_unreadable_file(self, tmp_path, settings):
        """A file that is neither JSON nor TOML is a ConfigError naming the file only."""
        path = tmp_path / "keys.toml"
        path.write_text("current = = 'secret-looking'")
        with pytest.raises(ConfigError) as info:
            pseudonyms.load(path, settings.schema_dir)
        assert "secret-looking" not in str(info.value)

    def test_no_file_needs_an_explicit_development_request(self):
        """Without a key file there is no ring, unless development is asked for explicitly."""
        unset = Settings()
        with pytest.raises(ConfigError, match="pseudonym_keys_file"):
            pseudonyms.from_settings(unset)
        keys = pseudonyms.from_settings(unset, development=True)
        assert ("dev",) == keys.key_ids
        assert re.fullmatch(
            r"psn-dev-[0-9a-f]{32}", keys.pseudonym(identifier("idnr", VALID_IDNR[0]))
        )
