"""Every event and command field is bounded, so no decodable value can break a read model."""

from __future__ import annotations

from typing import get_args

import msgspec
import msgspec.inspect as mi
import pytest

from events import agents, mail, providers, tasks
from events.core import codec
from events.core.bounds import INT64_MAX
from events.core.errors import ValidationError
from events.core.registry import events_of
from events.core.subjects import DOMAINS

EVENTS = [t for d in DOMAINS for t in events_of(d).values()]
COMMANDS = [
    *tasks.VERBS.values(), mail.Send, mail.MarkRead, *get_args(agents.AgentCommand),
    *get_args(providers.ProviderCommand),
]


def _unbounded(t: mi.Type, path: str, seen: set[type]) -> list[str]:
    """Paths of the leaves that lack a bound the read models need."""
    match t:
        case mi.IntType():
            low, high = t.ge if t.ge is not None else t.gt, t.le if t.le is not None else t.lt
            ok = low is not None and high is not None and -INT64_MAX - 1 <= low and high <= INT64_MAX
            return [] if ok else [f"{path}: int {low}..{high}"]
        case mi.FloatType():
            ok = (t.ge is not None or t.gt is not None) and (t.le is not None or t.lt is not None)
            return [] if ok else [f"{path}: float without both bounds"]
        case mi.StrType():
            ok = t.max_length is not None or t.pattern is not None and "{1," in t.pattern
            return [] if ok else [f"{path}: str without max_length"]
        case mi.DateTimeType():
            return [] if t.tz else [f"{path}: datetime without tz=True"]
        case mi.ListType() | mi.SetType() | mi.FrozenSetType() | mi.VarTupleType():
            head = [] if t.max_length is not None else [f"{path}: list without max_length"]
            return head + _unbounded(t.item_type, f"{path}[]", seen)
        case mi.DictType():
            head = [] if t.max_length is not None else [f"{path}: dict without max_length"]
            return head + _unbounded(t.key_type, f"{path}{{key}}", seen) + _unbounded(
                t.value_type, f"{path}{{}}", seen
            )
        case mi.UnionType():
            return [p for u in t.types for p in _unbounded(u, path, seen)]
        case mi.StructType():
            if t.cls in seen:
                return []
            seen.add(t.cls)
            return [p for f in t.fields for p in _unbounded(f.type, f"{path}.{f.encode_name}", seen)]
        case _:
            return []


@pytest.mark.parametrize("cls", EVENTS + COMMANDS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_every_field_of_every_event_and_command_is_bounded(cls: type) -> None:
    assert _unbounded(mi.type_info(cls), "$", set()) == []


@pytest.mark.parametrize(
    ("subject", "payload", "field"),
    [
        ("agents.a1.heartbeat", b'{"status":"busy","round":9223372036854775808}', "$.round"),
        ("agents.a1.heartbeat", b'{"status":"busy","round":2147483648}', "$.round"),
        ("tasks.T1.created", b'{"title":"t","max_rounds":9223372036854775808}', "$.max_rounds"),
        ("usage.b1.completed", b'{"model":"m","prompt_tokens":9223372036854775808}', "$.prompt_tokens"),
        ("usage.b1.completed", b'{"model":"m","cost":1e400}', "$.cost"),
        ("usage.b1.completed", b'{"model":"m\\u0000x"}', "$.model"),
        ("agents.a1.heartbeat", b'{"status":"busy","current_task":"T\\u0085"}', "$.current_task"),
        ("agents.a1.cooldown_started", b'{"until":"2026-01-01T00:00:00","reason":"x"}', "$.until"),
        ("tasks.T1.created", b'{"title":"t","depends_on":[' + b'"a",' * 1000 + b'"a"]}', "$.depends_on"),
    ],
)
def test_the_reader_refuses_values_no_read_model_can_store_naming_the_field(
    subject: str, payload: bytes, field: str
) -> None:
    with pytest.raises(ValidationError) as err:
        codec.decode(subject, payload)
    assert err.value.field == field


def test_the_edge_refuses_the_same_values_as_the_reader() -> None:
    with pytest.raises(ValidationError) as err:
        codec.decode_strict("agents.a1.heartbeat", msgspec.json.decode(b'{"status":"busy","round":2147483648}'))
    assert err.value.field == "$.round"
