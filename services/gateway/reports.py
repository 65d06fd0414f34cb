"""Reports over HTTP: file one (`POST /api/reports`), read them from the `reports` projection.

Filing goes through the SDK's `ReportClient` (validation, default targets, the id, OCC), so the
HTTP path, the CLI and Python agents file exactly the same event. 201 only after JetStream acked
it; 200 with `duplicate: true` for a repeat of the same report; `dry_run: true` writes nothing and
answers what would be sent.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from events.core.errors import ValidationError
from events.core.subjects import check_id
from events.reports import AlreadyFiled
from events.reports.client import ReportClient
from services.gateway.body import json_body, json_response, no_unknown, require_object
from services.gateway.errors import HttpError
from services.gateway.keys import EVENTS, QUERIES

PROJECTION = "reports"
FIELDS = {"report_id", "team", "worker", "task_id", "progress", "done", "next", "status", "source", "title",
          "body", "targets", "severity", "link", "dry_run"}
STATES = ("pending", "delivered", "abandoned")
MAX_LIMIT = 10_000


async def file_report(request: web.Request) -> web.Response:
    body = require_object(await json_body(request))
    no_unknown(body, FIELDS)
    dry_run = body.pop("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ValidationError("dry_run must be true or false", field="$.dry_run")
    report_id = body.pop("report_id", None)
    if report_id is not None and not isinstance(report_id, str):
        raise ValidationError("report_id must be a string", field="$.report_id")
    targets = body.pop("targets", None)
    if targets is not None and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        raise ValidationError("targets must be a list of target names", field="$.targets")
    try:
        filed = await ReportClient(request.app[EVENTS]).file(report_id, targets=targets, dry_run=dry_run, **body)
    except AlreadyFiled as exc:
        raise HttpError(409, "conflict", str(exc)) from None
    answer: dict[str, Any] = {"report_id": filed.report_id, "targets": filed.targets}
    if filed.dry_run:
        return json_response({**answer, "dry_run": True, "text": filed.text})
    return json_response({**answer, "seq": filed.seq, "duplicate": filed.duplicate},
                         status=200 if filed.duplicate else 201)


async def list_reports(request: web.Request) -> web.Response:
    status = request.query.get("status") or None
    if status is not None and status not in STATES:
        raise ValidationError(f"unknown status {status!r}; known: {', '.join(STATES)}", field="status")
    target = request.query.get("target") or None
    if target is not None:
        check_id(target, "target")
    try:
        limit = int(request.query.get("limit") or 100)
    except ValueError:
        raise ValidationError("limit must be an integer", field="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationError(f"limit must be between 1 and {MAX_LIMIT}", field="limit")
    rows = await request.app[QUERIES].query(PROJECTION, "list", status=status, target=target, limit=limit)
    return json_response({"reports": rows.records(), "truncated": rows.truncated})


async def get_report(request: web.Request) -> web.Response:
    report_id = check_id(request.match_info["id"], "id")
    queries = request.app[QUERIES]
    rows = (await queries.query(PROJECTION, "get", id=report_id)).records()
    if not rows:
        raise HttpError(404, "not_found", f"report {report_id} does not exist (or is not projected yet)")
    deliveries = (await queries.query(PROJECTION, "deliveries", id=report_id)).records()
    attempts = (await queries.query(PROJECTION, "attempts", id=report_id)).records()
    return json_response({"report": rows[0], "deliveries": deliveries, "attempts": attempts})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/reports", file_report),
        web.get("/api/reports", list_reports),
        web.get("/api/reports/{id}", get_report),
    ]
