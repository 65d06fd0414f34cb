"""Reports over HTTP: file one (`POST /api/reports`), read them from the `reports` projection, and
the operator's retry and abandon (`POST /api/reports/{id}/retry|abandon`, the admin only, as the
write policy says), which decide on the report's state from its stream like the CLI does.

Filing goes through the SDK's `ReportClient` (validation, default targets, the id, OCC), so the
HTTP path, the CLI and Python agents file exactly the same event. 201 only after JetStream acked
it; 200 with `duplicate: true` for a repeat of the same report; `dry_run: true` writes nothing and
answers what would be sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from events.core.errors import ValidationError
from events.core.policy import check
from events.core.registry import rules
from events.core.subjects import check_id
from events.reports import AlreadyFiled, ReportRuleError
from events.reports.client import ReportClient
from services.gateway.auth import caller
from services.gateway.body import field, json_body, json_response, no_unknown, require_object
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


async def retry_report(request: web.Request) -> web.Response:
    """Try again now: the next attempt is due at once, an abandoned delivery reopens."""
    report_id, body = await _operation(request, "retry_requested", {"target"})
    target = _target(body)
    return await _answer(request, report_id, lambda rc: rc.retry(report_id, target=target))


async def abandon_report(request: web.Request) -> web.Response:
    """Stop delivering it (to one target, or to every one still open)."""
    report_id, body = await _operation(request, "abandoned", {"target", "reason"})
    target = _target(body)
    reason = field(body, "reason", str, required=False) or "abandoned by an operator"
    if len(reason) > 2000:
        raise ValidationError("reason is longer than 2000 characters", field="$.reason")
    return await _answer(request, report_id, lambda rc: rc.abandon(report_id, reason=reason, target=target))


def _target(body: dict[str, Any]) -> str | None:
    target = field(body, "target", str, required=False)
    return None if target is None else check_id(target, "target")


async def _operation(request: web.Request, event: str, fields: set[str]) -> tuple[str, dict[str, Any]]:
    """The report id and the body, once the caller may write `reports.<id>.<event>` (403 naming the
    rule otherwise: agents file reports, only the admin retries or abandons them)."""
    report_id = check_id(request.match_info["id"], "id")
    who = caller(request)
    if who is not None:
        check(who, "reports", report_id, event, rules())
    body = require_object(await json_body(request)) if request.can_read_body else {}
    no_unknown(body, fields)
    return report_id, body


async def _answer(request: web.Request, report_id: str,
                  op: Callable[[ReportClient], Awaitable[list[int]]]) -> web.Response:
    try:
        seqs = await op(ReportClient(request.app[EVENTS]))
    except ReportRuleError as exc:
        raise HttpError(404 if exc.code == "not_found" else 409, exc.code, str(exc)) from None
    return json_response({"report_id": report_id, "changed": bool(seqs), "seqs": seqs})


def routes() -> list[web.RouteDef]:
    return [
        web.post("/api/reports", file_report),
        web.get("/api/reports", list_reports),
        web.get("/api/reports/{id}", get_report),
        web.post("/api/reports/{id}/retry", retry_report),
        web.post("/api/reports/{id}/abandon", abandon_report),
    ]
