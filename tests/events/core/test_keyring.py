"""The keyring: AES-256-GCM tokens `<key_id>:<nonce>:<ciphertext>`, rotation, masking, secrecy."""

from __future__ import annotations

import base64
import pickle

import pytest

from events.core.keyring import (
    DecryptionFailed,
    InvalidKeyring,
    Keyring,
    MalformedToken,
    UnknownKeyId,
    is_token,
    key_id_of,
    mask,
)

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
SECRET = "nvapi-SUPERSECRET-0123456789abcdefXYZ"
BACKEND = "bkd_nvidia1"


def env(**keys: bytes) -> str:
    return ",".join(f"{k}={base64.b64encode(v).decode()}" for k, v in keys.items())


def test_a_key_encrypted_for_a_backend_decrypts_for_that_backend() -> None:
    ring = Keyring.from_env_value(env(k1=K1))
    token = ring.encrypt(SECRET, aad=BACKEND)
    assert ring.decrypt(token, aad=BACKEND) == SECRET


def test_a_token_names_its_key_id_and_never_contains_the_plaintext() -> None:
    token = Keyring.from_env_value(env(k1=K1)).encrypt(SECRET, aad=BACKEND)
    assert key_id_of(token) == "k1" and is_token(token)
    assert SECRET not in token and "SUPERSECRET" not in token


def test_two_encryptions_of_the_same_key_differ_by_their_nonce() -> None:
    ring = Keyring.from_env_value(env(k1=K1))
    assert ring.encrypt(SECRET, BACKEND) != ring.encrypt(SECRET, BACKEND)


def test_a_given_nonce_makes_encryption_deterministic() -> None:
    ring = Keyring.from_env_value(env(k1=K1))
    assert ring.encrypt(SECRET, BACKEND, nonce=b"\0" * 12) == ring.encrypt(
        SECRET, BACKEND, nonce=b"\0" * 12
    )


def test_the_last_key_of_the_keyring_value_is_current() -> None:
    ring = Keyring.from_env_value(env(k1=K1, k2=K2))
    assert ring.current == "k2"
    assert key_id_of(ring.encrypt(SECRET, BACKEND)) == "k2"


def test_a_key_marked_with_a_star_is_current_wherever_it_stands() -> None:
    value = f"*k1={base64.b64encode(K1).decode()},k2={base64.b64encode(K2).decode()}"
    ring = Keyring.from_env_value(value)
    assert ring.current == "k1"
    assert Keyring.from_env_value(ring.to_env_value()).current == "k1"


def test_after_rotation_old_tokens_decrypt_and_new_ones_use_the_new_key_id() -> None:
    old = Keyring.from_env_value(env(k1=K1))
    old_token = old.encrypt(SECRET, BACKEND)
    new = old.with_key(old.next_key_id(), K2)
    assert new.current == "k2"
    assert new.decrypt(old_token, BACKEND) == SECRET
    rotated = new.reencrypt(old_token, BACKEND)
    assert key_id_of(rotated) == "k2" and new.decrypt(rotated, BACKEND) == SECRET
    assert new.reencrypt(rotated, BACKEND) == rotated


def test_a_rotated_keyring_survives_its_env_value() -> None:
    ring = Keyring.from_env_value(env(k1=K1)).with_key("k2", K2)
    again = Keyring.from_env_value(ring.to_env_value())
    assert again.key_ids == ("k1", "k2") and again.current == "k2"


def test_a_key_id_missing_from_the_keyring_is_an_error_naming_it() -> None:
    token = Keyring.from_env_value(env(k7=K1)).encrypt(SECRET, BACKEND)
    ring = Keyring.from_env_value(env(k1=K1))
    with pytest.raises(UnknownKeyId, match="'k7'") as info:
        ring.decrypt(token, BACKEND)
    assert info.value.key_id == "k7"
    with pytest.raises(UnknownKeyId, match="'k7'"):
        ring.require([token])


def test_tampered_ciphertext_does_not_decrypt() -> None:
    ring = Keyring.from_env_value(env(k1=K1))
    key_id, nonce, sealed = ring.encrypt(SECRET, BACKEND).split(":")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(DecryptionFailed):
        ring.decrypt(f"{key_id}:{nonce}:{flipped}", BACKEND)


def test_a_token_of_one_backend_does_not_decrypt_for_another() -> None:
    ring = Keyring.from_env_value(env(k1=K1))
    with pytest.raises(DecryptionFailed, match="bkd_other"):
        ring.decrypt(ring.encrypt(SECRET, BACKEND), "bkd_other")


def test_a_wrong_key_under_the_same_id_does_not_decrypt() -> None:
    token = Keyring.from_env_value(env(k1=K1)).encrypt(SECRET, BACKEND)
    with pytest.raises(DecryptionFailed):
        Keyring.from_env_value(env(k1=K2)).decrypt(token, BACKEND)


def test_a_plaintext_key_is_not_a_token() -> None:
    with pytest.raises(MalformedToken) as info:
        Keyring.from_env_value(env(k1=K1)).decrypt(SECRET, BACKEND)
    assert SECRET not in str(info.value)
    assert not is_token(SECRET)


def test_the_plaintext_never_appears_in_errors_or_reprs() -> None:
    ring = Keyring.from_env_value(env(k1=K1))
    token = ring.encrypt(SECRET, BACKEND)
    texts = [repr(ring), str(ring)]
    for attempt in (
        lambda: ring.decrypt(token, "bkd_other"),
        lambda: ring.decrypt(SECRET, BACKEND),
        lambda: Keyring.from_env_value(env(k1=K1)).with_key("k1", K2),
    ):
        with pytest.raises(Exception) as info:
            attempt()
        texts += [str(info.value), repr(info.value)]
    for text in texts:
        assert SECRET not in text and "SUPERSECRET" not in text
        assert base64.b64encode(K1).decode() not in text and K1.hex() not in text


def test_a_keyring_refuses_to_be_pickled() -> None:
    with pytest.raises(TypeError):
        pickle.dumps(Keyring.from_env_value(env(k1=K1)))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("k1", "entry 1"),
        (f"k1={base64.b64encode(b'short').decode()}", "k1 has 5 bytes"),
        ("k1=!!!not base64!!!", "k1 is not valid base64"),
        (f"{env(k1=K1)},{env(k1=K2)}", "twice"),
        (f"*{env(k1=K1)},*{env(k2=K2)}", "both marked"),
        (f"a.b={base64.b64encode(K1).decode()}", "invalid key id"),
    ],
)
def test_an_unreadable_keyring_value_is_an_error_that_does_not_echo_key_bytes(
    value: str, message: str
) -> None:
    with pytest.raises(InvalidKeyring, match=message) as info:
        Keyring.from_env_value(value)
    assert base64.b64encode(K1).decode() not in str(info.value)


def test_a_long_key_is_masked_as_first_six_stars_last_four() -> None:
    assert mask(SECRET) == "nvapi-****fXYZ"


def test_a_short_key_is_masked_entirely() -> None:
    assert mask("sk-1234567") == "****"
    assert mask("") == "****"
