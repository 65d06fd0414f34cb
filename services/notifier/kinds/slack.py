"""Slack incoming webhook: `POST <url>` with JSON `text`; Slack answers 200 `ok`.

Errors come back as 4xx with a plain-text reason (`invalid_payload`, `no_service`), 429 with
`Retry-After`.
"""

from __future__ import annotations

import aiohttp

from services.notifier.kinds.base import Message, Outcome, Target, post_json

LIMIT = 40_000


async def send(msg: Message, target: Target, http: aiohttp.ClientSession) -> Outcome:
    answer = await post_json(http, target.secrets["url"], {"text": msg.text[:LIMIT]}, target)
    if isinstance(answer, Outcome):
        return answer
    if 200 <= answer.status < 300:
        return Outcome(True, answer.status)
    return answer.failure(target)
