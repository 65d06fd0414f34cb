"""The one error middleware: every failure becomes `{"error": {"code", "message", "field"?}}`.

Status codes follow what a client can do about it: fix the input (400/413/422), look elsewhere
(404), re-read and retry (409), or wait (503/504). Anything unexpected is logged and a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from events.core.client import Refused
from events.core.errors import Conflict, Forbidden, Unavailable, ValidationError
from projections.runtime.protocol import QueryError

log = logging.getLogger(__name__)

_QUERY_STATUS = {"bad_request": 400, "forbidden": 403, "not_found": 404, "timeout": 504, "unavailable": 503, "internal": 500}


class HttpError(Exception):
    """Raised by handlers for answers that are not domain errors (e.g. 404 for an unknown id)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field, self.extra = status, code, message, field, extra


def error_response(status: int, code: str, message: str, field: str | None = None, **extra: Any) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    body.update(extra)
    return web.json_response({"error": body}, status=status)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpError as e:
        return error_response(e.status, e.code, e.message, e.field, **e.extra)
    except ValidationError as e:
        extra = {"index": e.index} if e.index is not None else {}
        return error_response(422, "validation", str(e), e.field, **extra)
    except Conflict as e:
        return error_response(409, "conflict", str(e))
    except Forbidden as e:
        return error_response(403, "forbidden", str(e))
    except (Unavailable, Refused) as e:
        return error_response(503, "unavailable", str(e))
    except QueryError as e:
        return error_response(_QUERY_STATUS.get(e.code, 500), e.code, e.message)
    except web.HTTPRequestEntityTooLarge as e:
        return error_response(413, "too_large", e.text or "request body too large")
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(e.status, e.reason.lower().replace(" ", "_"), e.reason)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the gateway log")
