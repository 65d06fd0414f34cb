"""Discord webhook: `POST <url>?wait=true` with JSON `content` (2000 characters at most).

With `wait=true` Discord answers 200 with the message object, whose `id` is recorded; 429 carries
`Retry-After` and a JSON `retry_after` in seconds.
"""

from __future__ import annotations

import aiohttp

from services.notifier.kinds.base import Message, Outcome, Target, post_json

LIMIT = 2000


async def send(msg: Message, target: Target, http: aiohttp.ClientSession) -> Outcome:
    url = target.secrets["url"]
    url += ("&" if "?" in url else "?") + "wait=true"
    body = {"content": msg.text[:LIMIT], "allowed_mentions": {"parse": []}}
    answer = await post_json(http, url, body, target)
    if isinstance(answer, Outcome):
        return answer
    if 200 <= answer.status < 300:
        data = answer.json()
        message_id = str(data["id"]) if isinstance(data, dict) and "id" in data else None
        return Outcome(True, answer.status, message_id=message_id)
    failure = answer.failure(target)
    data = answer.json()
    if answer.status == 429 and failure.retry_after_s is None and isinstance(data, dict):
        hint = data.get("retry_after")
        if isinstance(hint, int | float):
            return Outcome(False, 429, error=failure.error, retry_after_s=float(hint), outcome="rate_limited")
    return failure
