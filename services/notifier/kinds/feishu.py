"""Feishu (Lark) custom bot webhook: an interactive card, coloured by severity.

Body `{"msg_type": "interactive", "card": {...}}`; with a signing secret also `timestamp` (seconds,
a string) and `sign` = base64(HMAC-SHA256(key = "<timestamp>\\n<secret>", message = empty)), as
Feishu documents it. Feishu answers HTTP 200 even when it refuses: only `code == 0` (older
answers: `StatusCode == 0`) is a delivery; 9499 / 11232 mean rate limited.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import aiohttp

from services.notifier.kinds.base import Message, Outcome, Target, post_json, scrub

COLOURS = {"critical": "red", "warning": "yellow", "info": "blue"}
RATE_LIMITED = {9499, 11232}


def sign(secret: str, timestamp: str) -> str:
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def card(msg: Message) -> dict[str, Any]:
    elements: list[dict[str, Any]] = [{"tag": "markdown", "content": msg.text}]
    if msg.link:
        elements.append({"tag": "action", "actions": [{
            "tag": "button", "type": "primary", "url": msg.link,
            "text": {"tag": "plain_text", "content": "Open"},
        }]})
    elements.append({"tag": "note", "elements": [
        {"tag": "plain_text", "content": f"agentledger report {msg.report_id}"},
    ]})
    colour = COLOURS.get(msg.severity or "", "green" if msg.report.status in ("normal", "resolved") else "blue")
    return {
        "config": {"wide_screen_mode": True},
        "header": {"title": {"tag": "plain_text", "content": msg.title}, "template": colour},
        "elements": elements,
    }


async def send(msg: Message, target: Target, http: aiohttp.ClientSession) -> Outcome:
    body: dict[str, Any] = {"msg_type": "interactive", "card": card(msg)}
    if secret := target.secrets.get("signing_secret"):
        stamp = str(int(time.time()))
        body |= {"timestamp": stamp, "sign": sign(secret, stamp)}
    answer = await post_json(http, target.secrets["url"], body, target)
    if isinstance(answer, Outcome):
        return answer
    if not 200 <= answer.status < 300:
        return answer.failure(target)
    data = answer.json()
    data = data if isinstance(data, dict) else {}
    code = data.get("code", data.get("StatusCode"))
    if code == 0:
        return Outcome(True, answer.status)
    error = scrub(f"feishu code {code}: {data.get('msg') or data.get('StatusMessage') or answer.body[:100]!r}", target)
    if code in RATE_LIMITED:
        return Outcome(False, answer.status, error=error, retry_after_s=answer.retry_after(), outcome="rate_limited")
    return Outcome(False, answer.status, error=error)
