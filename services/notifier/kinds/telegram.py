"""Telegram Bot API: `POST <api_base>/bot<token>/sendMessage` with `chat_id` and `text`.

Delivered only when the answer is 2xx AND `{"ok": true}`; the message id is `result.message_id`.
A 429 says how long to wait in `parameters.retry_after` (seconds), which wins over the header.
The token is part of the URL, so every error is scrubbed of it.
"""

from __future__ import annotations

import aiohttp

from services.notifier.kinds.base import Message, Outcome, Target, post_json, scrub

API = "https://api.telegram.org"
LIMIT = 4096


async def send(msg: Message, target: Target, http: aiohttp.ClientSession) -> Outcome:
    base = str(target.settings.get("api_base") or API).rstrip("/")
    url = f"{base}/bot{target.secrets['bot_token']}/sendMessage"
    body = {"chat_id": target.settings["chat_id"], "text": msg.text[:LIMIT]}
    answer = await post_json(http, url, body, target)
    if isinstance(answer, Outcome):
        return answer
    data = answer.json()
    data = data if isinstance(data, dict) else {}
    if 200 <= answer.status < 300 and data.get("ok") is True:
        result = data.get("result") or {}
        message_id = result.get("message_id") if isinstance(result, dict) else None
        return Outcome(True, answer.status, message_id=None if message_id is None else str(message_id))
    description = scrub(str(data.get("description") or ""), target)
    params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    hint = params.get("retry_after")
    if answer.status == 429 or data.get("error_code") == 429:
        retry = float(hint) if isinstance(hint, int | float) else answer.retry_after()
        return Outcome(False, answer.status, error=f"HTTP {answer.status}: {description}"[:300],
                       retry_after_s=retry, outcome="rate_limited")
    if 200 <= answer.status < 300:
        return Outcome(False, answer.status, error=f"ok is not true: {description or answer.body[:100]!r}"[:300])
    return answer.failure(target, description)
