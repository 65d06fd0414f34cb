"""Typed application keys: every resource a handler needs, opened in the app's cleanup context."""

from __future__ import annotations

from aiohttp import web
from nats.aio.client import Client as NATS

from events.core.client import EventClient
from events.core.keyring import Keyring
from events.core.policy import Principal
from projections.runtime.protocol import QueryClient
from services.gateway.proxy.providers import ProxyContext
from services.runtime.credentials import TokenBook
from services.runtime.telemetry import Telemetry
from services.scheduler.history import CalendarLog
from services.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
NC = web.AppKey("nats", NATS)
EVENTS = web.AppKey("events", EventClient)
QUERIES = web.AppKey("queries", QueryClient)
TELEMETRY = web.AppKey("telemetry", Telemetry)
KEYRING = web.AppKey("keyring", Keyring)  # absent when no keyring is configured
PROXY = web.AppKey("proxy", ProxyContext)  # providers fold, upstream session, usage spool
TOKEN_SECRET = web.AppKey("token_secret", bytes)  # absent when the home has no credentials
TOKEN_BOOK = web.AppKey("token_book", TokenBook)  # which signed tokens are still current
PRINCIPAL = web.RequestKey("principal", Principal | None)  # set by services.gateway.auth
CALENDAR = web.AppKey("calendar", CalendarLog)  # the CALENDAR stream folded, for the calendar API
