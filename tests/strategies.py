"""hypothesis strategies read off the msgspec types, so the tests follow the schema as it grows.

`valid(cls)` draws JSON objects the type accepts, its boundary values included; `invalid(cls)`
draws objects with exactly one field out of range (one past a bound, inf, a naive time, a control
character, one item too many). Both are JSON values (dicts, lists, str, int, float), ready for a
raw publish or an HTTP body, so they reach every reader as a person or `nats pub` would send them.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec.inspect as mi
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from events.calendar.model import DueAt
from events.core.bounds import ID_PATTERN

S = st.SearchStrategy
INF = "__inf__"  # stands for a JSON number that decodes to inf (1e400): json.dumps cannot write one
MAX_ITEMS = 3
DUE_AT = mi.type_info(DueAt)
_label = st.characters(blacklist_categories=("Cc", "Cs"), max_codepoint=0x2FFF)


def _low_high(t: Any) -> tuple[Any, Any]:
    return (t.ge if t.ge is not None else t.gt, t.le if t.le is not None else t.lt)


def _string(t: mi.StrType) -> S[str]:
    low, high = t.min_length or 0, min(t.max_length or 40, 40)
    if t.pattern is None or t.pattern.startswith("^[^"):
        return st.text(_label, min_size=low, max_size=high)
    if t.pattern == ID_PATTERN:
        return st.text(string.ascii_letters + string.digits + "_-", min_size=1, max_size=40)
    if t.pattern == DUE_AT.pattern:  # a real instant, not only its shape (the type checks both)
        return st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
            lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ"))
    return st.from_regex(t.pattern, fullmatch=True).filter(lambda s: len(s) <= (t.max_length or 1 << 30))


def valid(t: Any) -> S[Any]:
    """JSON values the msgspec type `t` (a class or an inspect.Type) decodes."""
    if not isinstance(t, mi.Type):
        t = mi.type_info(t)
    match t:
        case mi.IntType():
            low, high = _low_high(t)
            return st.sampled_from([low, high]) | st.integers(low, high)
        case mi.FloatType():
            low, high = _low_high(t)
            return st.sampled_from([high, float(t.ge if t.ge is not None else high)]) | st.floats(
                low, high, allow_nan=False, allow_infinity=False, exclude_min=t.gt is not None
            )
        case mi.StrType():
            return _string(t)
        case mi.BoolType():
            return st.booleans()
        case mi.NoneType():
            return st.none()
        case mi.LiteralType():
            return st.sampled_from(list(t.values))
        case mi.DateTimeType():
            return st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1), timezones=st.just(UTC)).map(
                datetime.isoformat
            )
        case mi.ListType() | mi.SetType() | mi.FrozenSetType() | mi.VarTupleType():
            return st.lists(valid(t.item_type), min_size=t.min_length or 0, max_size=MAX_ITEMS)
        case mi.DictType():
            return st.dictionaries(valid(t.key_type), valid(t.value_type), max_size=MAX_ITEMS)
        case mi.UnionType():
            return st.one_of([valid(u) for u in t.types])
        case mi.StructType():
            return _object(t, {})
        case mi.AnyType():  # free JSON (a slot's event_data): scalars are enough to fold
            return st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.text(max_size=20))
        case _:
            raise TypeError(f"no strategy for {t!r}")


def _object(t: mi.StructType, override: dict[str, S[Any]]) -> S[dict[str, Any]]:
    def pick(f: mi.Field) -> S[Any]:
        return override[f.encode_name] if f.encode_name in override else valid(f.type)

    required = {f.encode_name: pick(f) for f in t.fields if f.required}
    optional = {f.encode_name: pick(f) for f in t.fields if not f.required}
    forced = {k: v for k, v in optional.items() if k in override}
    optional = {k: v for k, v in optional.items() if k not in override}
    return st.fixed_dictionaries({**required, **forced}, optional=optional)


def _out_of_range(t: Any) -> list[Any]:
    """Values one step past what `t` accepts (empty when nothing is out of range for it)."""
    match t:
        case mi.IntType():
            low, high = _low_high(t)
            return [high + 1, low - 1, 2**63, -(2**63) - 1, "5"]
        case mi.FloatType():
            return [INF, _low_high(t)[1] * 10, -1e300]
        case mi.StrType():
            bad: list[Any] = ["a\x00b", "\x1b[31m", 5] if t.pattern else [5]
            return bad + (["x" * (t.max_length + 1)] if t.max_length and t.max_length <= 100_000 else [])
        case mi.LiteralType():
            return ["not-a-choice"]
        case mi.DateTimeType():
            return ["2026-01-01T00:00:00"]
        case mi.ListType() if t.max_length is not None and t.max_length <= 1000:
            return [["a"] * (t.max_length + 1)]
        case mi.UnionType():
            return [v for u in t.types for v in _out_of_range(u)]
        case _:
            return []


def invalid(cls: type) -> S[tuple[str, dict[str, Any]]]:
    """(field, object) pairs: a valid object of `cls` whose one `field` is out of range."""
    t = mi.type_info(cls)
    choices = [(f.encode_name, v) for f in t.fields for v in _out_of_range(f.type)]
    return st.sampled_from(choices).flatmap(
        lambda fv: _object(t, {fv[0]: st.just(fv[1])}).map(lambda obj: (fv[0], obj))
    )


def draw(strategy: S[Any], n: int) -> list[Any]:
    """n examples, the same on every run (CI stays reproducible and bounded)."""
    out: list[Any] = []

    @settings(max_examples=n, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)
    @given(strategy)
    def collect(value: Any) -> None:
        out.append(value)

    collect()
    return out


def json_bytes(obj: Any, dumps: Callable[[Any], bytes]) -> bytes:
    """The object as JSON, with the INF stand-in written as a number that decodes to inf."""
    return dumps(obj).replace(f'"{INF}"'.encode(), b"1e400")
