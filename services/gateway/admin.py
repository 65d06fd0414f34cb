"""The admin API: backends, pools and usage statistics, behind `Authorization: Bearer <admin token>`.

Without `admin_token` configured every admin route answers 404 `disabled`: never open. The token
is compared in constant time (Settings.admin_token_ok).

Writes go through `services.providers.execute` (load, decide, OCC append). A backend key arrives
in clear only in the request body; it is encrypted with the keyring (associated data: the backend
id) before it becomes an event, and every answer shows it masked (first 6 + `****` + last 4),
decrypted only in this process's memory. Reads of backends and pools fold PROVIDERS directly (the
routing truth); statistics are the named queries of the `providers` projection.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web

from events import providers as domain
from events.core import codec
from events.core.errors import ValidationError
from events.core.keyring import MASK, KeyringError, mask
from events.core.streams import position_text, stream_name
from events.core.subjects import check_id
from services import providers
from services.gateway.body import after_param, json_body, json_response, no_unknown, require_object
from services.gateway.errors import HttpError
from services.gateway.keys import EVENTS, KEYRING, NC, PROXY, QUERIES, SETTINGS

log = logging.getLogger(__name__)

PROJECTION = "providers"
FIELDS = {"name", "label", "api_base_url", "api_key", "pool", "rpm_limit", "timeout_seconds",
          "enabled", "model_mappings"}
MAX_KEY_CHARS = 4096
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def keys_ctx(app: web.Application) -> AsyncIterator[None]:
    """At start: read the keyring and name every stored backend whose key id it lacks.

    Such a backend is an error to fix, not a reason to refuse the start: the proxy leaves it out
    of routing (`/health` says degraded) and the admin API shows it with `key_error`, where it can
    get a new key (PUT) or be deleted.
    """
    keyring = app[SETTINGS].load_keyring()
    if keyring is not None:
        app[KEYRING] = keyring
    for error in providers.key_errors(keyring, await providers.load(app[NC].jetstream())).values():
        log.error("gateway: %s; left out of routing until fixed or deleted through the admin API", error)
    yield


def admin(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def checked(request: web.Request) -> web.StreamResponse:
        settings = request.app[SETTINGS]
        if not settings.admin_token:
            raise HttpError(404, "disabled", "the admin API is disabled: set AGENTLEDGER_ADMIN_TOKEN")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not settings.admin_token_ok(token.strip()):
            raise HttpError(401, "unauthorized", "admin routes need Authorization: Bearer <admin token>")
        return await handler(request)

    return checked


def _view(request: web.Request, b: domain.Backend, now: datetime) -> dict[str, Any]:
    proxy = request.app.get(PROXY)
    keyring = proxy.fold.keyring if proxy is not None and proxy.fold.keyring else request.app.get(KEYRING)
    key, key_error = MASK, None
    try:
        if keyring is None:
            raise providers.KeyringMissing("no keyring configured")
        key = mask(keyring.decrypt(b.api_key, aad=b.id))
    except (KeyringError, providers.KeyringMissing) as exc:
        key_error = str(exc)
    status = "deleted" if b.deleted else "cooling" if b.cooling(now) else b.probe if b.enabled else "disabled"
    return {
        "id": b.id, "name": b.name, "label": b.label, "api_base_url": b.api_base_url,
        "api_key": key, "key_id": b.key_id, **({"key_error": key_error} if key_error else {}),
        "pool": b.pool, "enabled": b.enabled, "rpm_limit": b.rpm_limit,
        "timeout_seconds": b.timeout_seconds, "model_mappings": msgspec.to_builtins(b.model_mappings),
        "status": status, "probe": b.probe, "cooldown_until": _iso(b.cooldown_until),
        "cooldown_remaining_s": round(b.remaining_s(now), 3), "consecutive_429s": b.consecutive_429s,
        "created_at": _iso(b.created_at), "updated_at": _iso(b.updated_at),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _rule(exc: domain.ProviderRuleError) -> HttpError:
    if isinstance(exc, domain.NotFound):
        return HttpError(404, "not_found", str(exc))
    if isinstance(exc, domain.NotEncrypted):
        return HttpError(422, "validation", str(exc), "$.api_key")
    return HttpError(409, "conflict", str(exc))


async def _execute(
    request: web.Request, backend_id: str, make: Callable[[domain.Backend], Any]
) -> tuple[domain.Backend, int]:
    """Decide and append: the state after, and the PROVIDERS seq of the last event written (0
    when nothing was), which the answer gives as `after` so a read with `?after=` sees it."""
    try:
        state, _, seqs = await providers.execute(request.app[EVENTS], backend_id, make, actor="admin")
    except domain.ProviderRuleError as exc:
        raise _rule(exc) from None
    return state, seqs[-1] if seqs else 0


def _written(body: dict[str, Any], seq: int, status: int = 200) -> web.Response:
    after = position_text({stream_name("providers"): seq}) if seq else ""
    return json_response({**body, "after": after}, status=status)


def _encrypt(request: web.Request, backend_id: str, body: dict[str, Any]) -> str:
    key = body.get("api_key")
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_CHARS:
        raise ValidationError(f"api_key must be a non-empty string of at most {MAX_KEY_CHARS} characters",
                              field="$.api_key")
    try:
        return providers.encrypt_key(request.app.get(KEYRING), backend_id, key.strip())
    except providers.KeyringMissing as exc:
        raise HttpError(503, "no_keyring", str(exc)) from None


def _convert(cls: type, data: dict[str, Any]) -> Any:
    try:
        return msgspec.convert(data, cls)
    except msgspec.ValidationError as exc:
        raise codec.validation_error(exc, cls=cls) from None


async def _body(request: web.Request) -> dict[str, Any]:
    body = require_object(await json_body(request))
    no_unknown(body, FIELDS | {"id"})
    return body


def _now() -> datetime:
    return datetime.now(UTC)


@admin
async def list_backends(request: web.Request) -> web.Response:
    now = _now()
    states = await providers.load(request.app[NC].jetstream())
    return json_response({"backends": [_view(request, b, now) for b, _ in sorted(states.values(), key=lambda s: s[1])
                                       if b.live]})


@admin
async def get_backend(request: web.Request) -> web.Response:
    backend_id = check_id(request.match_info["id"], "id")
    state, _ = (await providers.load(request.app[NC].jetstream(), backend_id)).get(
        backend_id, (domain.initial_state(backend_id), 0))
    if not state.live:
        raise HttpError(404, "not_found", f"backend {backend_id} {'was deleted' if state.deleted else 'does not exist'}")
    return json_response(_view(request, state, _now()))


@admin
async def create_backend(request: web.Request) -> web.Response:
    body = await _body(request)
    backend_id = check_id(body.get("id") or f"bkd_{uuid.uuid4().hex[:12]}", "id")
    fields = {k: v for k, v in body.items() if k in FIELDS and k != "api_key"}
    fields["api_key"] = _encrypt(request, backend_id, body)
    event = _convert(domain.BackendCreated, fields)
    state, seq = await _execute(request, backend_id, lambda _: domain.Create(event=event))
    return _written(_view(request, state, _now()), seq, status=201)


@admin
async def update_backend(request: web.Request) -> web.Response:
    backend_id = check_id(request.match_info["id"], "id")
    body = await _body(request)
    if body.get("id", backend_id) != backend_id:
        raise ValidationError("the id of a backend cannot change", field="$.id")
    event = _convert(domain.BackendUpdated, {k: v for k, v in body.items() if k in FIELDS and k != "api_key"})
    state, seq = await _execute(request, backend_id, lambda _: domain.Update(event=event))
    if "api_key" in body:
        token = _encrypt(request, backend_id, body)
        state, rotated = await _execute(request, backend_id, lambda _: domain.RotateKey(api_key=token, reason="replaced"))
        seq = rotated or seq
    return _written(_view(request, state, _now()), seq)


@admin
async def delete_backend(request: web.Request) -> web.Response:
    backend_id = check_id(request.match_info["id"], "id")
    _, seq = await _execute(request, backend_id, lambda _: domain.Delete(reason="admin"))
    return _written({"id": backend_id, "deleted": True}, seq)


@admin
async def get_pools(request: web.Request) -> web.Response:
    now = _now()
    pools: dict[str, dict[str, int]] = {
        p: {"total": 0, "enabled": 0, "healthy": 0, "cooling": 0, "degraded": 0, "down": 0}
        for p in ("primary", "fallback")
    }
    for b, _ in (await providers.load(request.app[NC].jetstream())).values():
        if not b.live:
            continue
        s = pools[b.pool]
        s["total"] += 1
        s["enabled"] += b.enabled
        if b.enabled:
            s["cooling" if b.cooling(now) else b.probe] += 1
    return json_response({"pools": pools})


def _int(request: web.Request, name: str, default: int, high: int) -> int:
    raw = request.query.get(name) or None
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError(f"{name} must be an integer", field=name) from None
    if not 1 <= value <= high:
        raise ValidationError(f"{name} must be between 1 and {high}", field=name)
    return value


@admin
async def stats_total(request: web.Request) -> web.Response:
    rows = await request.app[QUERIES].query(PROJECTION, "total", after_param(request, PROJECTION))
    return json_response(rows.records()[0] if rows.rows else {})


@admin
async def stats_hourly(request: web.Request) -> web.Response:
    backend_id = request.query.get("backend_id") or None
    if backend_id is not None:
        check_id(backend_id, "backend_id")
    hours = _int(request, "hours", 24, 24 * 366)
    rows = await request.app[QUERIES].query(
        PROJECTION, "hourly", after_param(request, PROJECTION), backend_id=backend_id, hours=hours
    )
    return json_response({"hours": hours, "backend_id": backend_id, "rows": rows.records()})


@admin
async def stats_daily(request: web.Request) -> web.Response:
    days = _int(request, "days", 30, 3660)
    rows = await request.app[QUERIES].query(PROJECTION, "daily", after_param(request, PROJECTION), days=days)
    return json_response({"days": days, "rows": rows.records()})


@admin
async def stats_minutes(request: web.Request) -> web.Response:
    """Requests and latency per minute (the dashboard's chart), from the raw requests."""
    minutes = _int(request, "minutes", 60, 24 * 60)
    rows = await request.app[QUERIES].query(PROJECTION, "minutes", minutes=minutes)
    return json_response({"minutes": minutes, "rows": rows.records()})


@admin
async def stats_cooldown(request: web.Request) -> web.Response:
    limit = _int(request, "limit", 50, 10_000)
    rows = await request.app[QUERIES].query(PROJECTION, "cooldowns", after_param(request, PROJECTION), limit=limit)
    return json_response({"cooldowns": rows.records()})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/api/admin/backends", list_backends),
        web.post("/api/admin/backends", create_backend),
        web.get("/api/admin/backends/{id}", get_backend),
        web.put("/api/admin/backends/{id}", update_backend),
        web.delete("/api/admin/backends/{id}", delete_backend),
        web.get("/api/admin/pools", get_pools),
        web.get("/api/admin/stats/total", stats_total),
        web.get("/api/admin/stats/hourly", stats_hourly),
        web.get("/api/admin/stats/daily", stats_daily),
        web.get("/api/admin/stats/minutes", stats_minutes),
        web.get("/api/admin/stats/cooldown", stats_cooldown),
    ]
