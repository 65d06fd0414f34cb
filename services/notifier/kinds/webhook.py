"""Generic JSON webhook: the report as JSON, optionally signed.

Headers: `X-Agentledger-Signature: sha256=<hex HMAC-SHA256 of the exact body under the signing
secret>` when a secret is set, and `Idempotency-Key: <report_id>:<target>` on every attempt, so a
receiver can drop the resend that follows a crash between its 2xx and our record of it.
"""

from __future__ import annotations

import hashlib
import hmac

import aiohttp
import msgspec
import orjson

from services.notifier.kinds.base import Answer, Message, Outcome, Target, post_json

SIGNATURE = "X-Agentledger-Signature"


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(msg: Message) -> dict[str, object]:
    return {"report_id": msg.report_id, "target": msg.target, "title": msg.title, "text": msg.text,
            "report": msgspec.to_builtins(msg.report)}


async def send(msg: Message, target: Target, http: aiohttp.ClientSession) -> Outcome:
    body = payload(msg)
    headers = {"Idempotency-Key": f"{msg.report_id}:{msg.target}"}
    if secret := target.secrets.get("signing_secret"):
        headers[SIGNATURE] = sign(secret, orjson.dumps(body))
    answer = await post_json(http, target.secrets["url"], body, target, headers)
    if isinstance(answer, Answer) and 200 <= answer.status < 300:
        return Outcome(True, answer.status)
    return answer.failure(target) if isinstance(answer, Answer) else answer
