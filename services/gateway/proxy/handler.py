"""The OpenAI-compatible provider proxy: `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`,
`/v1/models`.

A request names a canonical model; `events.providers.routing.plan` orders the backends that serve it, and
each attempt takes a token of the backend it really goes to. The body is forwarded unchanged apart
from `model` (the backend's native id); the backend's key replaces whatever auth the client sent.
Failover on 429, 5xx, connect errors and timeouts while no byte went to the client; a 429 is
recorded as events (`rate_limited`, `cooldown_started`) before the next attempt, so this replica
and then every other one stop sending there. Each attempt yields one `usage.<backend>.completed`,
handed to the usage spool and published off the response path.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from events import providers
from events.providers import routing
from services.gateway.body import json_body, require_object
from services.gateway.errors import HttpError, error_response
from services.gateway.keys import EVENTS, NC, PROXY, SETTINGS
from services.gateway.proxy import metrics, probes
from services.gateway.proxy.attempt import Attempt
from services.gateway.proxy.providers import ProvidersFold, ProxyContext, now
from services.gateway.proxy.stream import relay
from services.gateway.proxy.upstream import UpstreamPool
from services.gateway.proxy.usage_spool import UsageSpool
from services.settings import HASHED, Settings

log = logging.getLogger(__name__)

FAILOVER_STATUS = frozenset({429, 500, 502, 503, 504})
_PASS_HEADERS = ("Content-Type", "x-request-id", "openai-processing-ms")
_PASS_HEADERS_RAW = (*_PASS_HEADERS, "Content-Encoding")  # the lean client does not decompress
USER_AGENT = "agentledger-gateway"


# -- auth ------------------------------------------------------------------------------------


def digest(key: str) -> bytes:
    # surrogateescape: aiohttp hands undecodable header bytes over as lone surrogates
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def authenticate(request: web.Request, ctx: ProxyContext) -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    given = digest(token.strip()) if scheme.lower() == "bearer" and token.strip() else b""
    ok = False
    for d in ctx.digests:  # every digest is compared: the time does not tell which one matched
        ok |= hmac.compare_digest(given, d)
    if not ok:
        raise HttpError(401, "unauthorized", "a valid gateway key is required: Authorization: Bearer <key>")


# -- handlers --------------------------------------------------------------------------------


async def list_models(request: web.Request) -> web.Response:
    ctx = request.app[PROXY]
    authenticate(request, ctx)
    models = routing.served_models(ctx.fold.routable())
    return web.json_response({"object": "list", "data": [
        {"id": m, "object": "model", "created": 0, "owned_by": "agentledger"} for m in models]})


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await forward(request, "chat/completions")


async def completions(request: web.Request) -> web.StreamResponse:
    return await forward(request, "completions")


async def embeddings(request: web.Request) -> web.StreamResponse:
    return await forward(request, "embeddings")


async def forward(request: web.Request, endpoint: str) -> web.StreamResponse:
    start = time.perf_counter()
    ctx = request.app[PROXY]
    authenticate(request, ctx)
    if not ctx.fold.ready.is_set():
        raise HttpError(503, "unavailable", "the gateway is still reading the providers stream")
    body = require_object(await json_body(request))
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise HttpError(422, "validation", "missing required field 'model'", "$.model")
    stream = body.get("stream") is True and endpoint != "embeddings"
    request_id = uuid.uuid4().hex
    upstream_s = 0.0
    attempts = 0
    tried: set[str] = set()
    last_failure: Attempt | None = None
    try:
        while True:
            routed = ctx.fold.plan(model, now())
            if isinstance(routed, routing.Exhausted):
                if not routed.served:
                    raise HttpError(404, "model_not_found", routed.reason, "$.model")
                return unavailable("exhausted", routed.reason, routed.retry_after_s or 1)
            fresh = [c for c in routed.candidates if c.backend.id not in tried]
            if not fresh:
                return _all_failed(ctx, last_failure)
            for cand in fresh:
                tried.add(cand.backend.id)
                if not ctx.fold.claim(cand.backend, cand.emergency):
                    continue
                attempts += 1
                att = Attempt(ctx, cand, model, endpoint, request_id, attempts, stream)
                try:
                    response = await _send(request, att, body)
                finally:
                    upstream_s += att.upstream_s
                    att.done()
                if response is not None:
                    return response
                last_failure = att
                if att.status == 429:
                    break  # plan again: the cooldown just taken changes the order
    finally:
        metrics.overhead.observe(max(0.0, time.perf_counter() - start - upstream_s))


def unavailable(code: str, message: str, retry_after_s: int, status: int = 503) -> web.Response:
    response = error_response(status, code, message, retry_after=retry_after_s)
    response.headers["Retry-After"] = str(retry_after_s)
    return response


def _all_failed(ctx: ProxyContext, last: Attempt | None) -> web.Response:
    if last is None:
        return unavailable("exhausted", "no backend serving the model had an RPM token left", 1)
    what = f"HTTP {last.status}" if last.status else (last.error or "error")
    message = f"every backend serving {last.model} failed; the last said {what}"
    if last.status == 429:
        at = now()
        waits = [b.remaining_s(at) for b in ctx.fold.routable() if last.model in b.model_mappings]
        cooling = [w for w in waits if w > 0]
        return unavailable("exhausted", message, max(1, math.ceil(min(cooling))) if cooling else 1)
    return unavailable("bad_gateway", message, 1, status=502)


def _upstream_request(att: Attempt, body: dict[str, Any]) -> tuple[str, bytes, dict[str, str]]:
    b = att.cand.backend
    key = att.ctx.fold.api_key(b.id) or ""
    payload = orjson.dumps({**body, "model": att.cand.native_model})
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "User-Agent": USER_AGENT,
               "Accept": "text/event-stream" if att.stream else "application/json"}
    return f"{b.api_base_url.rstrip('/')}/{att.endpoint}", payload, headers


async def _send(request: web.Request, att: Attempt, body: dict[str, Any]) -> web.StreamResponse | None:
    """The response for the client, or None to fail over."""
    url, payload, headers = _upstream_request(att, body)
    if att.stream:
        return await _send_stream(request, att, url, payload, headers)
    b = att.cand.backend
    t0 = time.perf_counter()
    try:
        answer = await att.ctx.upstream.post(url, payload, headers, b.timeout_seconds)
    except (TimeoutError, OSError, ValueError) as exc:
        att.upstream_s += time.perf_counter() - t0
        _failed(att, exc)
        return None
    att.upstream_s += time.perf_counter() - t0
    if await _failover(att, answer.status, answer.headers):
        return None
    return _answer(att, answer.status, answer.body, answer.headers, _PASS_HEADERS_RAW)


async def _send_stream(request: web.Request, att: Attempt, url: str, payload: bytes,
                       headers: dict[str, str]) -> web.StreamResponse | None:
    b = att.cand.backend
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=b.timeout_seconds, sock_read=b.timeout_seconds)
    t0 = time.perf_counter()
    try:
        resp = await att.ctx.session.post(url, data=payload, headers=headers, timeout=timeout)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        att.upstream_s += time.perf_counter() - t0
        _failed(att, exc)
        return None
    try:
        if resp.status == 200:
            return await relay(request, att, resp, t0)
        try:
            data = await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            att.upstream_s += time.perf_counter() - t0
            _failed(att, exc)
            return None
        att.upstream_s += time.perf_counter() - t0
        if await _failover(att, resp.status, resp.headers):
            return None
        return _answer(att, resp.status, data, resp.headers, _PASS_HEADERS)
    finally:
        resp.release()


def _answer(att: Attempt, status: int, data: bytes, headers: Mapping[str, str],
            passed: tuple[str, ...]) -> web.Response:
    """The upstream's whole answer for the client; a success counts its tokens."""
    if status < 400:
        att.tokens = tokens_of(data)
        _succeeded(att)
    return web.Response(body=data, status=status, headers={h: headers[h] for h in passed if h in headers})


async def _failover(att: Attempt, status: int, headers: Mapping[str, str]) -> bool:
    """Record the status; True when it calls for the next backend (a 429 is observed first)."""
    att.status = status
    if status not in FAILOVER_STATUS:
        return False
    att.error = "upstream"
    if status == 429:
        await att.ctx.fold.observe(att.cand.backend.id, providers.ObserveRateLimit(
            headers=dict(headers), status=429, model=att.model))
    return True


def _failed(att: Attempt, exc: BaseException) -> None:
    att.error = "timeout" if isinstance(exc, TimeoutError) else "connect"
    att.detail = f"{type(exc).__name__}: {exc}"[:500]
    log.info("proxy: backend %s %s for request %s: %s", att.cand.backend.id, att.error, att.request_id, att.detail)


def _succeeded(att: Attempt) -> None:
    fold = att.ctx.fold
    b = fold.backends.get(att.cand.backend.id)
    if b is not None and b.consecutive_429s and not b.cooling(now()):
        task = asyncio.get_running_loop().create_task(fold.observe(b.id, providers.ObserveSuccess(status=200)))
        _background.add(task)
        task.add_done_callback(_background.discard)


_background: set[asyncio.Task[Any]] = set()


def tokens_of(data: bytes) -> tuple[int, int]:
    """Prompt and completion tokens from an OpenAI `usage` object (0, 0 when absent)."""
    if b'"usage"' not in data:
        return 0, 0
    try:
        found = orjson.loads(data).get("usage") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return 0, 0
    prompt = found.get("prompt_tokens") or 0
    completion = found.get("completion_tokens") or 0
    return (prompt if isinstance(prompt, int) else 0, completion if isinstance(completion, int) else 0)


# -- the proxy's resources -------------------------------------------------------------------


def key_digests(settings: Settings) -> tuple[bytes, ...]:
    """The gateway keys' SHA-256 digests (settings hold them only as `sha256:<hex>`)."""
    return tuple(bytes.fromhex(h.removeprefix(HASHED)) for h in settings.gateway_keys)


async def proxy_ctx(app: web.Application) -> AsyncIterator[None]:
    """The providers fold, the shared upstream session and the usage spool, after NATS is open."""
    settings = app[SETTINGS]
    events = app[EVENTS]
    fold = ProvidersFold(app[NC], events, settings.load_keyring(), reload=settings.load_keyring)
    metrics.follow(fold)
    spool = UsageSpool(events)
    session = aiohttp.ClientSession(  # no cookie jar: one client's upstream cookies are no other's
        connector=aiohttp.TCPConnector(limit=1000, limit_per_host=0, keepalive_timeout=60),
        auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar(),
    )
    upstream = UpstreamPool()
    ctx = ProxyContext(fold, session, spool, key_digests(settings), upstream)
    app[PROXY] = ctx
    folding = asyncio.create_task(fold.run(), name="gateway-providers-fold")
    spooling = asyncio.create_task(spool.run(), name="gateway-usage-spool")
    probing = asyncio.create_task(
        probes.run(fold, session, settings.probe_interval_s, settings.probe_timeout_s), name="gateway-probes")
    ready = asyncio.create_task(fold.ready.wait())
    await asyncio.wait([folding, ready], timeout=settings.request_timeout_s,
                       return_when=asyncio.FIRST_COMPLETED)
    if folding.done():
        ready.cancel()
        await session.close()
        upstream.close()
        spooling.cancel()
        probing.cancel()
        folding.result()  # the fold failed to start (a bug): say so
    if not fold.ready.is_set():
        log.warning("gateway: providers fold not ready after %.1fs; the proxy answers 503 until it is",
                    settings.request_timeout_s)
    try:
        yield
    finally:
        ready.cancel()
        if not await spool.drained(timeout=settings.request_timeout_s):
            log.error("gateway: %d usage events could not be published before shutdown", len(spool.items))
        for task in (folding, spooling, probing):
            task.cancel()
        await asyncio.gather(folding, spooling, probing, return_exceptions=True)
        await session.close()
        upstream.close()
