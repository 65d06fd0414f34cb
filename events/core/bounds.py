"""Bounded value types: the largest, smallest and strangest values a read model can still store.

Every event and command field is declared with one of these, so the SDK, the HTTP edge, the CLI
and the projector's decoder refuse the same values with the same field path, and no stored value
can break an apply: integers fit the DuckDB column they land in (INTEGER unless said otherwise),
floats are finite (a JSON `1e400` decodes to inf), datetimes carry a zone (naive and aware ones
cannot be compared), strings have a length limit, and ids and labels refuse control characters
(free text keeps them: an agent's stderr has colour codes, and DuckDB stores any character).
Lone surrogates need no pattern: no JSON decoder here (msgspec, orjson) lets one through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
FLOAT_MAX = 1e15
ID_PATTERN = r"^[A-Za-z0-9_-]{1,128}$"  # the subject grammar's aggregate id (events.core.subjects)
# one line of printable text (names, labels, models): no C0/C1 controls
_LABEL = r"^[^\x00-\x1f\x7f-\x9f]*$"


def integer(ge: int = 0, le: int = INT32_MAX) -> Any:
    """An int within [ge, le]; the default fits a DuckDB INTEGER and is never negative."""
    return Annotated[int, msgspec.Meta(ge=ge, le=le)]


def number(ge: float = 0.0, le: float = FLOAT_MAX, gt: float | None = None) -> Any:
    """A finite float: `le` keeps out inf (and so the NaN of inf - inf in a sum)."""
    if gt is not None:
        return Annotated[float, msgspec.Meta(gt=gt, le=le)]
    return Annotated[float, msgspec.Meta(ge=ge, le=le)]


def label(max_length: int = 200, min_length: int = 0) -> Any:
    return Annotated[str, msgspec.Meta(min_length=min_length, max_length=max_length, pattern=_LABEL)]


def text(max_length: int = 2000, min_length: int = 0) -> Any:
    """Free text (notes, errors, an agent's stderr): any character DuckDB stores, so only a length."""
    return Annotated[str, msgspec.Meta(min_length=min_length, max_length=max_length)]


Id = Annotated[str, msgspec.Meta(pattern=ID_PATTERN)]
Count = integer()
BigCount = integer(le=INT64_MAX)
ExitCode = integer(ge=-INT32_MAX - 1)
HttpStatus = integer(ge=100, le=599)
Instant = Annotated[datetime, msgspec.Meta(tz=True)]
Label = label()
Text = text()
