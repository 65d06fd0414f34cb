"""Page routes: one linkable URL per page, all served from the same shell and the package's assets.

The page name is written into the shell on the server so the script knows what to render
before its first event arrives; everything else the browser fetches from this gateway.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from services.gateway.dashboard import sse
from services.gateway.errors import HttpError

STATIC = Path(__file__).with_name("static")
PAGES = ("fleet", "tasks", "providers", "ledger", "calendar", "reports", "watchdog", "runs")
_SHELL = (STATIC / "shell.html").read_text()
# The shell and its scripts load only from this origin: a stray external URL fails loudly.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


async def index(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/dashboard/fleet")


async def page(request: web.Request) -> web.Response:
    name = request.match_info["page"]
    if name not in PAGES:
        raise HttpError(404, "not_found", f"no dashboard page {name!r}; pages: {', '.join(PAGES)}")
    return web.Response(
        text=_SHELL.replace("{{page}}", name), content_type="text/html",
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"},
    )


def routes() -> list[web.RouteDef | web.StaticDef]:
    return [
        web.get("/dashboard", index),
        web.get("/dashboard/sse", sse.stream),  # before /dashboard/{page}
        web.static("/dashboard/static", STATIC),
        web.get("/dashboard/{page}", page),
    ]
