"""The dashboard: pages over the read models, live through one server-sent event stream.

Every asset ships in this package (no CDN, no build step); the pages read the same APIs as any
client and change things only through the admin API, with the admin token the operator typed.
"""

from services.gateway.dashboard.pages import PAGES, routes

__all__ = ["PAGES", "routes"]
