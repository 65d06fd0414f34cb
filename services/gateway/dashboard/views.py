"""What each page shows, gathered on the server from the same queries the read APIs answer.

A view is asked again only when the projections' position moved (see `sse`), so a quiet fleet
costs one health request per tick and nothing more. The providers view carries no rows: its
backends and statistics sit behind the admin token, which only the browser holds, so the page
refetches the admin API itself when told the read models moved.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web
from nats.js.errors import Error as JetStreamError

from events.agents import CLASS_DEFAULTS, ROUND_WARNING_RATIO
from events.calendar import today
from services.gateway.keys import NC, QUERIES, SETTINGS

log = logging.getLogger(__name__)
View = Callable[[web.Application, dict[str, Any]], Awaitable[dict[str, Any]]]
REJECTS_SHOWN = 200
REPORTS_SHOWN = 50
DECISIONS_SHOWN = 200
RUNS_SHOWN = 100
TAIL_CHARS = 400


def position(projections: dict[str, Any], page: str) -> str:
    """An id for what a page shows now: every projection's checkpoints and health, and for the
    ledger (which shows them) its lag, rejects and snapshot time too; a lag that comes and goes
    is no news to the other pages."""
    ledger = page == "ledger"
    held = {n: [p.get("checkpoints"), p.get("healthy"),
                *([p.get("lag"), p.get("rejects"), p.get("snapshot_at")] if ledger else [])]
            for n, p in sorted(projections.items())}
    return hashlib.sha256(orjson.dumps(held, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


async def fleet(app: web.Application, projections: dict[str, Any]) -> dict[str, Any]:
    """Agents, each with the outcome of its last finished attempt (kept by the tasks read model)."""
    agents = (await app[QUERIES].query("agents", "list")).records()
    if "tasks" in projections:
        outcomes = {r["agent_id"]: r for r in (await app[QUERIES].query("tasks", "last_outcomes")).records()}
        for agent in agents:
            last = outcomes.get(agent["id"], {})
            agent["last_outcome"], agent["last_outcome_task"] = last.get("last_outcome"), last.get("last_outcome_task")
    return {
        "agents": agents,
        "classes": {name: d._asdict() for name, d in CLASS_DEFAULTS.items()},
        "round_warning_ratio": ROUND_WARNING_RATIO,
    }


async def tasks(app: web.Application, projections: dict[str, Any]) -> dict[str, Any]:
    if "tasks" not in projections:
        return {"actionable": [], "tasks": [], "note": "the tasks projection is not running"}
    actionable = await app[QUERIES].query("tasks", "actionable", agent=None, limit=None)
    listed = await app[QUERIES].query("tasks", "list", status=None, agent=None, project=None)
    return {"actionable": actionable.records(), "tasks": listed.records(), "truncated": listed.truncated}


async def providers(app: web.Application, projections: dict[str, Any]) -> dict[str, Any]:
    return {}


async def ledger(app: web.Application, projections: dict[str, Any]) -> dict[str, Any]:
    rejects = await app[QUERIES].rejects(None, REJECTS_SHOWN)
    return {"streams": await _streams(app), "projections": projections, "rejects": rejects.records()}


async def _streams(app: web.Application) -> list[dict[str, Any]]:
    try:
        infos = await app[NC].jetstream().streams_info()
    except (JetStreamError, TimeoutError) as exc:
        log.warning("dashboard: stream list unavailable: %s", exc)
        return []
    return sorted(
        ({"name": i.config.name, "subjects": i.config.subjects, "messages": i.state.messages,
          "bytes": i.state.bytes, "first_seq": i.state.first_seq, "last_seq": i.state.last_seq}
         for i in infos),
        key=lambda s: s["name"],
    )


async def calendar(app: web.Application, projections: dict[str, Any]) -> dict[str, Any]:
    """Today (in the calendar's time zone) per agent, each slot with its wake outcome."""
    day = today(datetime.now(UTC), ZoneInfo(app[SETTINGS].calendar_timezone))
    if "calendar" not in projections:
        return {"date": day, "slots": [], "note": "the calendar projection is not running"}
    rows = await app[QUERIES].query("calendar", "day", date=day, agent=None)
    return {"date": day, "slots": rows.records()}


def _missing(name: str, projections: dict[str, Any]) -> dict[str, Any] | None:
    return None if name in projections else {"note": f"the {name} projection is not running"}


async def reports(app: web.Application, projections: dict[str, Any]) -> dict[str, Any]:
    """Queues per target and the newest reports with every delivery and attempt, in three queries
    whatever the number of reports shown."""
    if missing := _missing("reports", projections):
        return missing
    q = app[QUERIES]
    listed = await q.query("reports", "list", status=None, target=None, limit=REPORTS_SHOWN)
    return {
        "queues": (await q.query("reports", "queues")).records(),
        "reports": listed.records(), "truncated": listed.truncated,
        "deliveries": (await q.query("reports", "recent_deliveries", limit=REPORTS_SHOWN)).records(),
        "attempts": (await q.query("reports", "recent_attempts", limit=REPORTS_SHOWN)).records(),
    }


async def watchdog(app: web.Application, projections: dict[str, Any]) -> dict[str, Any]:
    if missing := _missing("watchdog", projections):
        return missing
    rows = await app[QUERIES].query("watchdog", "list", agent=None, task=None, limit=DECISIONS_SHOWN)
    return {"decisions": rows.records()}


async def runs(app: web.Application, projections: dict[str, Any]) -> dict[str, Any]:
    """The newest runs with the tail of their text; the whole text is one click away (`/api/runs/{id}`)."""
    if missing := _missing("runs", projections):
        return missing
    rows = await app[QUERIES].query("runs", "tails", chars=TAIL_CHARS, limit=RUNS_SHOWN)
    return {"runs": rows.records(), "tail_chars": TAIL_CHARS}


VIEWS: dict[str, View] = {
    "fleet": fleet, "tasks": tasks, "providers": providers, "ledger": ledger, "calendar": calendar,
    "reports": reports, "watchdog": watchdog, "runs": runs,
}
