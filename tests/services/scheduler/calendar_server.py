"""A local calendar backend speaking the seed's API (004), for the scheduler to sync from.

Full answers, diffs since a token (each change bumps the version; the token is `v<version>`),
`410 Gone` for a token it no longer knows (`forget_tokens`), a diff that does not apply
(`bad_diff_next`), failures (`fail_next`), agent status, heartbeats; it records what it was asked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

DAY = datetime.now(UTC).date().isoformat()


class CalendarServer:
    def __init__(self, schedules: dict[str, list[dict[str, Any]]] | None = None, day: str = DAY) -> None:
        self.day = day
        self.schedules: dict[str, dict[str, dict[str, Any]]] = {
            a: {str(s["id"]): s for s in slots} for a, slots in (schedules or {}).items()
        }
        self.version = 1
        self.log: list[tuple[int, dict[str, Any]]] = []
        self.oldest = 1  # tokens before this version answer 410
        self.asked: list[str | None] = []
        self.claws: list[str] = []
        self.fail_next = 0
        self.bad_diff_next = False
        self.heartbeats = 0
        self.statuses: dict[str, str] = {}
        self.reports: list[dict[str, Any]] = []

    # -- changing the calendar -----------------------------------------------------------------

    def _change(self, op: dict[str, Any]) -> None:
        self.version += 1
        self.log.append((self.version, op))

    async def add(self, agent: str, slot: dict[str, Any]) -> str:
        slot = {"id": 1 + sum(len(s) for s in self.schedules.values()), **slot}
        self.schedules.setdefault(agent, {})[str(slot["id"])] = slot
        self._change({"op": "add", "agent": agent, "slot": slot})
        return str(slot["id"])

    async def update(self, agent: str, slot_id: str, **patch: Any) -> None:
        self.schedules[agent][slot_id].update(patch)
        self._change({"op": "update", "agent": agent, "slotId": int(slot_id), "patch": patch})

    async def remove(self, agent: str, slot_id: str) -> None:
        del self.schedules[agent][slot_id]
        self._change({"op": "remove", "agent": agent, "slotId": int(slot_id)})

    def forget_tokens(self) -> None:
        self.oldest = self.version + 1

    # -- the API ---------------------------------------------------------------------------------

    async def sync(self, request: web.Request) -> web.Response:
        since = request.query.get("since")
        self.asked.append(since)
        self.claws.append(request.headers.get("X-Claw-Identifier", ""))
        if self.fail_next:
            self.fail_next -= 1
            return web.json_response({"error": "database is down"}, status=503)
        token = f"v{self.version}"
        if since is None:
            schedules = {a: list(s.values()) for a, s in self.schedules.items()}
            return web.json_response({"full": True, "schedules": schedules, "date": self.day, "syncToken": token})
        known = since.startswith("v") and since[1:].isdigit() and self.oldest <= int(since[1:]) <= self.version
        if not known:
            return web.json_response({"error": f"unknown sync token {since}"}, status=410)
        diff = [op for v, op in self.log if v > int(since[1:])]
        if self.bad_diff_next:
            self.bad_diff_next = False
            diff = [{"op": "remove", "agent": "dev", "slotId": 999}]
        return web.json_response({"full": False, "diff": diff, "syncToken": token})

    async def agent_status(self, request: web.Request) -> web.Response:
        agent = request.query.get("agent_id", "")
        if agent not in self.statuses:
            return web.json_response({"error": "unknown agent"}, status=404)
        return web.json_response({"status": self.statuses[agent]})

    async def report(self, request: web.Request) -> web.Response:
        self.reports.append(await request.json())
        return web.json_response({"ok": True})

    async def heartbeat(self, request: web.Request) -> web.Response:
        self.heartbeats += 1
        return web.json_response({})

    def app(self) -> web.Application:
        app = web.Application()
        app.add_routes([
            web.get("/calendar/sync", self.sync),
            web.get("/calendar/agent/status", self.agent_status),
            web.post("/calendar/agent/status", self.report),
            web.post("/monitor/server/heartbeat", self.heartbeat),
        ])
        return app
