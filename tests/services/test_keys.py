"""Gateway secrets in the settings, and `agentledger keys rotate`.

Secrets never show in a repr; client keys are held only as SHA-256; the keyring comes from the
environment or a key file, and a malformed one is an error naming the setting.
"""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from events.keyring import Keyring, new_key
from services.settings import Settings, SettingsError, load

KEY1 = "k1=" + base64.urlsafe_b64encode(b"\x01" * 32).decode().rstrip("=")


def test_secrets_are_masked_in_repr_str_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    s = load(env={"AGENTLEDGER_ADMIN_TOKEN": "adm-SECRET-1", "AGENTLEDGER_GATEWAY_KEYS": "ck-SECRET-a,ck-SECRET-b",
                  "AGENTLEDGER_KEYRING": KEY1})
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %r", s, s)
    for text in (repr(s), str(s), caplog.text):
        assert "SECRET" not in text and KEY1.split("=")[1] not in text
        assert "admin_token='<set>'" in text


def test_gateway_keys_are_kept_only_as_sha256() -> None:
    s = load(env={"AGENTLEDGER_GATEWAY_KEYS": " ck-SECRET-a , ck-SECRET-b ,"})
    assert all(h.startswith("sha256:") for h in s.gateway_keys) and len(s.gateway_keys) == 2
    assert "ck-SECRET" not in "".join(s.gateway_keys)
    assert s.gateway_key_ok("ck-SECRET-b") and not s.gateway_key_ok("ck-SECRET-c")
    assert not s.gateway_key_ok(s.gateway_keys[0])  # presenting the stored hash does not pass


def test_admin_token_absent_means_disabled_not_open() -> None:
    assert not Settings().admin_token_ok("")
    assert not Settings(admin_token="").admin_token_ok("")
    assert Settings(admin_token="t0k").admin_token_ok("t0k") and not Settings(admin_token="t0k").admin_token_ok("t0")


def test_keyring_from_env_or_file_and_errors_name_the_setting(tmp_path: Path) -> None:
    assert Settings().load_keyring() is None
    assert load(env={"AGENTLEDGER_KEYRING": KEY1}).load_keyring().key_ids == ("k1",)  # type: ignore[union-attr]
    f = tmp_path / "keyring"
    f.write_text(Keyring({"k1": new_key(), "k2": new_key()}).to_env_value() + "\n")
    assert load(env={"AGENTLEDGER_KEYRING_FILE": str(f)}).load_keyring().current == "k2"  # type: ignore[union-attr]
    with pytest.raises(SettingsError, match="AGENTLEDGER_KEYRING"):
        load(env={"AGENTLEDGER_KEYRING": "k1=short"}).load_keyring()
    with pytest.raises(SettingsError, match="keyring_file"):
        Settings(keyring_file=str(tmp_path / "missing")).load_keyring()
