"""Who is calling: the principal behind `Authorization: Bearer <token>`, and what it may do.

The same write policy as NATS (events.core.policy): the gateway writes with its own NATS user,
which may publish whatever any HTTP caller may, so the caller's own principal is checked here,
before anything is published. Tokens:

- the admin token (`admin_token`): the admin;
- `agl_agent_<id>.<sig>` / `agl_reader_<name>.<sig>` (issued by `agentledger agents add` and
  `agentledger up`): an agent or a reader, verified against the token secret in the home.

Routes: `/health`, `/metrics` and the proxy (`/v1/*`, its own client keys) are not checked here;
`/api/admin/*` checks the admin token itself; every other `/api/*` route reads (GET, and
`POST /api/sql`) or writes (any other method). Reads are open while the gateway listens on
loopback and `read_auth` is `loopback`; writes always need an agent or the admin.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable

from aiohttp import web

from events.core.policy import ADMIN, AGENT, Principal
from services.gateway.errors import HttpError
from services.gateway.keys import PRINCIPAL, SETTINGS, TOKEN_BOOK, TOKEN_SECRET
from services.runtime import credentials
from services.settings import Settings, SettingsError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
READ_POSTS = frozenset({"/api/sql"})
GUARDED = ("/api/", "/calendar/", "/monitor/")  # the seed's calendar backend API writes events too
ADMIN_WRITES = ("/api/calendar/slots",)  # the schedule itself: operators only
ALERTMANAGER = "/api/alertmanager"  # its own token (alertmanager_token), as Alertmanager sends it
WRITERS = frozenset({ADMIN, AGENT})


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_listen(settings: Settings) -> None:
    """Refuse to serve beyond this machine with nothing to tell callers apart."""
    if not loopback(settings.http_host) and not settings.admin_token:
        raise SettingsError(
            f"refusing to listen on {settings.http_host}: a gateway reachable from other machines "
            "needs credentials; set AGENTLEDGER_ADMIN_TOKEN (agents and readers then use the "
            "tokens in <home>/credentials)"
        )


def principal_of(request: web.Request) -> Principal | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    settings = request.app[SETTINGS]
    if settings.admin_token and settings.admin_token_ok(token):
        return Principal(ADMIN)
    secret = request.app.get(TOKEN_SECRET)
    who = credentials.verify(secret, token) if secret else None
    if who is None or not request.app[TOKEN_BOOK].current(who, token):  # revoked or issued again
        return None
    return who


def caller(request: web.Request) -> Principal | None:
    """The principal the middleware found (None: anonymous, allowed to read on loopback)."""
    return request.get(PRINCIPAL)


def identify(request: web.Request) -> Principal | None:
    """The caller, None when anonymous; a token given but not valid is refused, not ignored."""
    who = principal_of(request)
    if request.headers.get("Authorization") and who is None:
        raise HttpError(401, "unauthorized", "the bearer token is not valid here")
    return who


def check_read(request: web.Request, who: Principal | None) -> None:
    """The read policy, also asked by routes outside /api/ that show read models (the dashboard)."""
    settings = request.app[SETTINGS]
    if who is None and not (settings.read_auth == "loopback" and loopback(settings.http_host)):
        raise HttpError(401, "unauthorized", "reading needs Authorization: Bearer <token>")


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = request.path
    if not path.startswith(GUARDED) or path.startswith("/api/admin/"):
        return await handler(request)
    if path == ALERTMANAGER:
        # Alertmanager sends the token of its http_config; the route checks it. Without one
        # configured the route is open, so only to this machine.
        if not request.app[SETTINGS].alertmanager_token and not loopback(request.app[SETTINGS].http_host):
            raise HttpError(401, "unauthorized", "set alertmanager_token: this gateway is reachable "
                            "from other machines")
        return await handler(request)
    who = request[PRINCIPAL] = identify(request)
    reading = request.method in ("GET", "HEAD", "OPTIONS") or path in READ_POSTS
    if reading:
        check_read(request, who)
        return await handler(request)
    if who is None:
        raise HttpError(401, "unauthorized", f"{request.method} {path} needs Authorization: "
                        "Bearer <agent token or admin token>")
    if who.kind not in WRITERS:
        raise HttpError(403, "forbidden", f"a {who.kind} may only read; {request.method} {path} writes")
    if path.startswith(ADMIN_WRITES) and who.kind != ADMIN:
        raise HttpError(403, "forbidden", f"{request.method} {path} changes the schedule: admin only")
    return await handler(request)


async def token_ctx(app: web.Application):  # type: ignore[no-untyped-def]
    """The token secret from the home, when it has credentials (made by `up` or `agents add`)."""
    settings = app[SETTINGS]
    if (credentials.folder(settings.home_path) / "token.secret").exists():
        app[TOKEN_SECRET] = credentials.token_secret(settings.home_path)
        app[TOKEN_BOOK] = credentials.TokenBook(settings.home_path)
    yield
