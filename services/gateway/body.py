"""Request body decoding shared by every handler: orjson, size-limited, typed errors."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from events.core.errors import ValidationError
from services.gateway.errors import HttpError


async def json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw:
        raise HttpError(400, "bad_json", "request body is empty; a JSON document is expected")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise HttpError(400, "bad_json", f"malformed JSON: {exc}") from None


def require_object(value: Any, where: str = "$") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"expected a JSON object at {where}", field=where)
    return value


def field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str = "$", *, required: bool = True) -> Any:
    if name not in obj or obj[name] is None:
        if required:
            raise ValidationError(f"missing required field {name!r}", field=f"{where}.{name}")
        return None
    value = obj[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is int:
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValidationError(
            f"{where}.{name} must be {expected}, got {type(value).__name__}", field=f"{where}.{name}"
        )
    return value


def no_unknown(obj: dict[str, Any], allowed: set[str], where: str = "$") -> None:
    for key in obj:
        if key not in allowed:
            raise ValidationError(
                f"unknown field {key!r}; allowed: {', '.join(sorted(allowed))}", field=f"{where}.{key}"
            )


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")
