"""`agentledger status`: the services `up` supervises, from `<home>/status.json`, and their health.

The status file says what the supervisor started (pid, start time, restarts, state); the live
answers say whether it works: the gateway's `/health` (NATS connected, every projection
applying), which also speaks for the projector it asks. A pid that no longer exists is shown
as `gone` whatever the file says.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import aiohttp
import msgspec

from services.cli import output as show
from services.runtime import pids
from services.runtime.children import STATUS_FILE
from services.settings import Settings
from services.up import PID_FILE

COLUMNS = ("service", "pid", "uptime", "restarts", "state", "health")


class NotRunning(Exception):
    """No live `agentledger up` on this home."""


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser("status", parents=[common], help="the services `up` runs: pid, uptime, restarts, health")
    c.add_argument("--json", action="store_true")
    c.set_defaults(run=status)


def alive(pid: int | None) -> bool:
    return pid is not None and pid != 0 and pids.alive(pid)


def uptime(since: float | None) -> str:
    if since is None:
        return "-"
    s = int(time.time() - since)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


async def gateway_health(http_url: str) -> tuple[str, dict[str, Any]]:
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http, \
                http.get(f"{http_url}/health") as r:
            body = await r.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return f"unreachable ({type(exc).__name__})", {}
    return ("ok" if r.status == 200 else str(body.get("reason", r.status))), body


def nats_pid(settings: Settings) -> int | None:
    try:
        return int((settings.nats_store / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None


def read(settings: Settings) -> dict[str, Any]:
    path = settings.home_path / STATUS_FILE
    try:
        state = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        state = None
    if not state or not alive(state["supervisor"]["pid"]):
        raise NotRunning(f"nothing runs on home {settings.home_path}: start it with `agentledger up`")
    return dict(state)


async def status(args: argparse.Namespace, settings: Settings) -> int:
    state = read(settings)
    sup = state["supervisor"]
    gateway, body = await gateway_health(sup["http_url"])
    sick = {n: p.get("error") or "unhealthy" for n, p in body.get("projections", {}).items()
            if not p.get("healthy")}
    rows: list[list[Any]] = [["up", sup["pid"], uptime(sup["started_at"]), 0, "ready", "ok"]]
    if sup.get("embedded"):
        pid = nats_pid(settings)
        connected = "ok" if body.get("nats") == "connected" else "the gateway is not connected"
        rows.append(["nats-server", pid, "-", "-", "ready" if alive(pid) else "gone",
                     connected if alive(pid) else "gone"])
    for s in state["services"]:
        live = alive(s["pid"])
        if not live:
            health = "gone"
        elif s["name"] == "gateway":
            health = gateway
        elif s["name"] == "projector":
            health = "ok" if body and not sick else "; ".join(f"{n}: {e}" for n, e in sick.items()) or gateway
        else:
            health = "ok" if s["state"] == "ready" else s["state"]
        rows.append([s["name"], s["pid"], uptime(s["started_at"]), s["restarts"],
                     s["state"] if live else "gone", health])
    if args.json:
        show.records_json(COLUMNS, rows)
    else:
        show.table(COLUMNS, rows, title=f"agentledger on {settings.home_path} (NATS {sup['nats_url']})")
    return 0 if all(r[-1] == "ok" for r in rows) else 1
