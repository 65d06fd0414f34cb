"""Local stand-ins for the platforms, checking each request the way the platform does.

One aiohttp app serves every kind's endpoint; each request that passes the platform's checks is
kept in `received[<path key>]` in arrival order. `fail(key, *answers)` queues answers given before
the normal one (a 500, a 429 with Retry-After, Feishu's HTTP-200 refusal), one per request.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from collections import defaultdict, deque
from typing import Any

from aiohttp import web

BOT_TOKEN = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11"
FEISHU_SECRET = "feishu-signing-secret"
HOOK_SECRET = "hook-signing-secret"


class Platforms:
    def __init__(self) -> None:
        self.received: dict[str, list[Any]] = defaultdict(list)
        self.refused: list[str] = []
        self._script: dict[str, deque[web.Response]] = defaultdict(deque)
        self._ids = 0
        self.gates: dict[str, asyncio.Event] = {}  # a key's requests wait until its gate opens
        self.waiting: dict[str, int] = defaultdict(int)
        self._hold_after: dict[str, int] = {}

    def fail(self, key: str, *answers: web.Response) -> None:
        self._script[key].extend(answers)

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.post("/discord/{key}/{token}", self.discord),
            web.post("/{bot}/sendMessage", self.telegram),
            web.post("/feishu/{key}", self.feishu),
            web.post("/slack/{key}", self.slack),
            web.post("/hook/{key}", self.hook),
            web.post("/apprise/{key}", self.apprise),
        ])
        return app

    def hold(self, key: str, after: int = 0) -> asyncio.Event:
        """Requests to `key`, once `after` of them were received, wait until the event is set."""
        self.gates[key] = asyncio.Event()
        self._hold_after[key] = after
        return self.gates[key]

    async def _gate(self, key: str) -> None:
        gate = self.gates.get(key)
        if gate is not None and len(self.received[key]) >= self._hold_after[key]:
            self.waiting[key] += 1
            await gate.wait()

    def _next_id(self) -> int:
        self._ids += 1
        return self._ids

    def _refuse(self, why: str, status: int = 400) -> web.Response:
        self.refused.append(why)
        return web.json_response({"message": why}, status=status)

    async def discord(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        await self._gate(key)
        if script := self._script[key]:
            return script.popleft()
        body = await request.json()
        if not isinstance(body.get("content"), str) or not 0 < len(body["content"]) <= 2000:
            return self._refuse("discord: content must be 1..2000 characters")
        self.received[key].append(body["content"])
        if request.query.get("wait") == "true":
            return web.json_response({"id": str(self._next_id()), "content": body["content"]})
        return web.Response(status=204)

    async def telegram(self, request: web.Request) -> web.Response:
        bot = request.match_info["bot"]
        if bot != f"bot{BOT_TOKEN}":
            self.refused.append("telegram: unauthorized")
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        if script := self._script["telegram"]:
            return script.popleft()
        body = await request.json()
        if not body.get("chat_id") or not body.get("text"):
            return self._refuse("telegram: Bad Request: chat_id and text are required")
        self.received["telegram"].append(body["text"])
        return web.json_response({"ok": True, "result": {"message_id": self._next_id(), "text": body["text"]}})

    async def feishu(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        await self._gate(key)
        if script := self._script[key]:
            return script.popleft()
        body = await request.json()
        if "sign" in body or key.startswith("signed"):
            stamp = body.get("timestamp", "0")
            expected = base64.b64encode(
                hmac.new(f"{stamp}\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256).digest()).decode()
            if body.get("sign") != expected or abs(time.time() - int(stamp)) > 3600:
                self.refused.append("feishu: sign match fail")
                return web.json_response({"code": 19021, "msg": "sign match fail or timestamp is not within one hour"})
        if body.get("msg_type") != "interactive" or "header" not in body.get("card", {}):
            self.refused.append("feishu: params error")
            return web.json_response({"code": 9499, "msg": "Bad Request"})
        self.received[key].append(body["card"])
        return web.json_response({"code": 0, "msg": "success", "data": {}})

    async def slack(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        await self._gate(key)
        if script := self._script[key]:
            return script.popleft()
        body = await request.json()
        if not body.get("text"):
            return self._refuse("slack: invalid_payload")
        self.received[key].append(body["text"])
        return web.Response(text="ok")

    async def hook(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        await self._gate(key)
        if script := self._script[key]:
            return script.popleft()
        raw = await request.read()
        if key.startswith("signed"):
            expected = "sha256=" + hmac.new(HOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
            if request.headers.get("X-Agentledger-Signature") != expected:
                return self._refuse("hook: bad signature", 401)
        body = await request.json()
        self.received[key].append({**body, "idempotency_key": request.headers.get("Idempotency-Key")})
        return web.Response(status=202)


    async def apprise(self, request: web.Request) -> web.Response:
        """Apprise's `json://` service: `{"version", "title", "message", "type"}`."""
        key = request.match_info["key"]
        if script := self._script[key]:
            return script.popleft()
        body = await request.json()
        if "message" not in body:
            return self._refuse("apprise: no message")
        self.received[key].append(body)
        return web.Response(status=200)


def error(status: int, retry_after: str | None = None, **body: Any) -> web.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return web.json_response(body or {"message": "oops"}, status=status, headers=headers)
