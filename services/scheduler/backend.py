"""The calendar backend's HTTP API (seed 004), as a claw calls it.

`GET /calendar/sync?claw_identifier=X[&since=TOKEN]` (header `X-Claw-Identifier`), `GET` and
`POST /calendar/agent/status`, `POST /monitor/server/heartbeat`. Errors are raised, never
swallowed: the scheduler records them and backs off.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson


class BackendError(Exception):
    """The backend did not answer usefully; `status` is its HTTP status when it answered."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TokenGone(BackendError):
    """410 Gone, or an answer saying the token is unknown or expired: only a full sync helps."""


class Backend:
    def __init__(self, url: str, claw: str, timeout: float, token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.claw = claw
        self.token = token
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.http: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self.http is None:
            headers = {"X-Claw-Identifier": self.claw}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            self.http = aiohttp.ClientSession(timeout=self.timeout, headers=headers)
        return self.http

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    async def _call(self, method: str, path: str, **kw: Any) -> tuple[int, Any]:
        try:
            async with self._session().request(method, self.url + path, **kw) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendError(f"{method} {path}: {type(exc).__name__}: {exc}".rstrip(": ")) from exc
        try:
            data = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            data = None
        return status, data

    async def sync(self, since: str | None) -> dict[str, Any]:
        """The sync answer: `{"full": true, "schedules", "date", "syncToken"}` or a diff."""
        params = {"claw_identifier": self.claw, **({"since": since} if since else {})}
        status, data = await self._call("GET", "/calendar/sync", params=params)
        if status == 410:
            raise TokenGone(f"token {since!r} is gone (410)", status)
        if status >= 400:
            text = str((data or {}).get("error", "")) if isinstance(data, dict) else ""
            if since and "token" in text.lower():
                raise TokenGone(f"token {since!r} refused ({status}): {text}", status)
            raise BackendError(f"GET /calendar/sync answered {status}: {text or 'no reason given'}", status)
        if not isinstance(data, dict) or not isinstance(data.get("syncToken"), str):
            raise BackendError("GET /calendar/sync answered without a syncToken", status)
        if data.get("full") and not isinstance(data.get("schedules"), dict):
            raise BackendError("a full sync answer without schedules", status)
        if not data.get("full") and not isinstance(data.get("diff"), list):
            raise BackendError("a diff sync answer without a diff list", status)
        return data

    async def agent_status(self, agent: str) -> str | None:
        """The backend's status of the agent, or None when it does not say (no such API)."""
        status, data = await self._call("GET", "/calendar/agent/status", params={"agent_id": agent})
        if status >= 300 or not isinstance(data, dict):
            return None
        value = data.get("status")
        return value if isinstance(value, str) else None

    async def report_status(self, body: dict[str, Any]) -> int:
        status, data = await self._call("POST", "/calendar/agent/status", json={**body, "claw_identifier": self.claw})
        if status >= 300:
            raise BackendError(f"POST /calendar/agent/status answered {status}: {data}", status)
        return status

    async def heartbeat(self) -> int:
        status, _ = await self._call("POST", "/monitor/server/heartbeat", json={"claw_identifier": self.claw})
        if status >= 300:
            raise BackendError(f"POST /monitor/server/heartbeat answered {status}", status)
        return status
