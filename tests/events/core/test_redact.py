"""Redaction of secret-looking fields in payloads kept for people (rejects)."""

from __future__ import annotations

import orjson

from events.core.redact import REDACTED, redact_payload, redact_text, secret_name


def test_secret_names_match_case_and_separators_but_not_token_counts_or_key_ids() -> None:
    for name in ("api_key", "API-KEY", "apiKey", "x-api-key", "key", "Token", "access_token",
                 "client_secret", "Password", "Authorization", "private_key"):
        assert secret_name(name), name
    for name in ("prompt_tokens", "max_tokens", "key_id", "keys", "monkey", "name", "status"):
        assert not secret_name(name), name


def test_nested_secret_values_go_and_the_rest_stays_to_show_what_was_wrong() -> None:
    data = orjson.dumps({"name": "X", "api_key": "sk-PLAIN", "pool": "nope",
                         "headers": {"Authorization": "Bearer sk-PLAIN"},
                         "list": [{"Secret": {"deep": "sk-PLAIN"}}, {"token": 5}], "prompt_tokens": 3})
    out = redact_payload(data)
    assert b"sk-PLAIN" not in out
    assert orjson.loads(out) == {"name": "X", "api_key": REDACTED, "pool": "nope",
                                 "headers": {"Authorization": REDACTED},
                                 "list": [{"Secret": REDACTED}, {"token": REDACTED}], "prompt_tokens": 3}


def test_a_clean_payload_keeps_its_exact_bytes() -> None:
    for data in (b'{"status": 5}', b"not json", b'{"key_id": "k1",  "n": 1}', b"[1, 2]"):
        assert redact_payload(data) == data


def test_text_that_is_not_json_is_redacted_by_pattern() -> None:
    out = redact_payload(b'{"name": "X", "api_key": "sk-PLAIN-1", "pool": "pri')
    assert b"sk-PLAIN" not in out and b'"name": "X"' in out and b'"pool": "pri' in out
    assert b"sk-PLAIN" not in redact_payload(b"api_key=sk-PLAIN-2&password='hunter2' other=1")
    assert redact_payload(b"api_key=sk-PLAIN-2 other=1").endswith(b" other=1")
    assert "sk-PLAIN" not in redact_text("bad value token: sk-PLAIN-3 at $.x")
