"""The providers read model: backends, their cooldowns, and usage per hour and day.

PROVIDERS is folded with the same pure `events.providers.evolve` as the gateway's routing memory;
USAGE (`usage.<backend>.completed`) is aggregated. No key material is stored: a backend row keeps
only the key id its token names (the ciphertext stays in the stream).

Tables (timestamps TIMESTAMPTZ UTC, from the JetStream time of the event):

`backends`, one row per backend id ever created: id, name, label, api_base_url, key_id (the
keyring key id of the current token), pool (primary | fallback), enabled, rpm_limit,
timeout_seconds, model_mappings (JSON: canonical -> {native_id, cost{input, output}}), deleted,
probe (healthy | degraded | down) and probe_since, cooldown_until / cooldown_started_at (NULL
when no cooldown is open), consecutive_429s, last_rate_limited_at, created_at, updated_at,
last_seq (PROVIDERS seq of the last event about it, no-ops included).

`cooldowns`, one row per cooldown episode (a `cooldown_started` on a backend not cooling; a later
one extending it updates the same row): backend_id, started, until (the end as last extended),
length_s (until - started), reason (retry_after | backoff, of the last extension), consecutive
(the 429 count n), extensions (how many later `cooldown_started` pushed `until`), ended (time of
`cooldown_ended`, NULL while open or never recorded), seq (PROVIDERS seq of the opening event).

`usage_requests`, one row per `usage.<backend>.completed` (the raw material of p95): seq, at,
backend_id, model, pool, status, error (bool: no status, >= 400, or an error kind), prompt_tokens,
completion_tokens, cost, latency_ms, ttft_ms, stream, emergency.

`usage_hourly` / `usage_daily`, one row per (hour | day, backend_id, model, pool): requests,
errors, prompt_tokens, completion_tokens, cost, latency_ms_sum, ttft_ms_sum, ttft_count, emergency
(requests sent as emergency passthrough). Costs are DECIMAL(38, 6) and the latency sums
DECIMAL(38, 3), summed as integer micro-units, so live apply and a rebuild give byte-identical
tables whatever the batch boundaries (DOUBLE sums depend on the order of additions). Averages are sums / counts; p95 latency is computed by
the named queries from `usage_requests` (exact, `quantile_cont`), so the aggregates stay additive.

`provider_noops`: events `evolve` left without effect, with the reason.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from events import providers as domain
from events.core.meta import Meta
from events.core.streams import stream_name
from events.core.subjects import domain_filter
from events.usage import UsageCompleted
from projections.providers.queries import DDL, QUERIES
from projections.runtime.arrow_batches import execute_with, from_rows

__all__ = ["DDL", "NAME", "QUERIES", "SOURCES", "apply"]

log = logging.getLogger(__name__)

NAME = "providers"
SOURCES: list[tuple[str, list[str]]] = [
    (stream_name("providers"), [domain_filter("providers")]),
    (stream_name("usage"), [domain_filter("usage")]),
]

_TS = pa.timestamp("us", tz="UTC")
_S, _I, _B, _F, _BOOL = pa.string(), pa.int32(), pa.int64(), pa.float64(), pa.bool_()
_COST, _MS = pa.decimal128(38, 6), pa.decimal128(38, 3)
_BACKENDS = pa.schema([
    ("id", _S), ("name", _S), ("label", _S), ("api_base_url", _S), ("key_id", _S), ("pool", _S),
    ("enabled", _BOOL), ("rpm_limit", _I), ("timeout_seconds", _F), ("model_mappings", _S),
    ("deleted", _BOOL), ("probe", _S), ("probe_since", _TS), ("cooldown_until", _TS),
    ("cooldown_started_at", _TS), ("consecutive_429s", _I), ("last_rate_limited_at", _TS),
    ("created_at", _TS), ("updated_at", _TS), ("last_seq", _B),
])
_COOLDOWNS = pa.schema([
    ("backend_id", _S), ("started", _TS), ("until", _TS), ("length_s", _F), ("reason", _S),
    ("consecutive", _I), ("extensions", _I), ("ended", _TS), ("seq", _B),
])
_REQUESTS = pa.schema([
    ("seq", _B), ("at", _TS), ("backend_id", _S), ("model", _S), ("pool", _S), ("status", _I),
    ("error", _BOOL), ("prompt_tokens", _B), ("completion_tokens", _B), ("cost", _COST),
    ("latency_ms", _F), ("ttft_ms", _F), ("stream", _BOOL), ("emergency", _BOOL),
])
_AGG = pa.schema([
    ("bucket", _TS), ("backend_id", _S), ("model", _S), ("pool", _S), ("requests", _B), ("errors", _B),
    ("prompt_tokens", _B), ("completion_tokens", _B), ("cost", _COST), ("latency_ms_sum", _MS),
    ("ttft_ms_sum", _MS), ("ttft_count", _B), ("emergency", _B),
])
_NOOPS = pa.schema([("seq", _B), ("backend_id", _S), ("event", _S), ("reason", _S), ("at", _TS)])
_STATE_FIELDS = [n for n in _BACKENDS.names if n not in ("key_id", "model_mappings", "last_seq")]
_mappings = msgspec.json.Decoder(dict[str, domain.ModelMapping])
_Key = tuple[str, datetime]


def _load_backends(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, domain.Backend]:
    cols = ", ".join(f'"{c}"' for c in [*_STATE_FIELDS, "key_id", "model_mappings"])
    out: dict[str, domain.Backend] = {}
    for row in con.execute(f"SELECT {cols} FROM backends WHERE id IN (SELECT unnest($ids))", {"ids": ids}).fetchall():
        values = dict(zip(_STATE_FIELDS, row[: len(_STATE_FIELDS)], strict=True))
        key_id, mappings = row[len(_STATE_FIELDS):]
        out[values["id"]] = domain.Backend(
            **values, created=True, model_mappings=_mappings.decode(mappings),
            api_key=f"{key_id}:" if key_id else "",  # the key id alone: no key material here
        )
    return out


def _load_cooldown(con: duckdb.DuckDBPyConnection, key: _Key) -> list[Any] | None:
    found = con.execute("SELECT * FROM cooldowns WHERE backend_id = ? AND started = ?", list(key)).fetchall()
    return list(found[0]) if found else None


def apply(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, Any]]) -> None:
    provider_events = [(m, e) for m, e in batch if isinstance(e, domain.ProviderEvent)]
    usage = [(m, e) for m, e in batch if isinstance(e, UsageCompleted)]
    if provider_events:
        _apply_providers(con, provider_events)
    if usage:
        _apply_usage(con, usage)


def _apply_providers(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, domain.ProviderEvent]]) -> None:
    ids = [m.subject.split(".")[1] for m, _ in batch]
    states = _load_backends(con, list(set(ids)))
    last_seq: dict[str, int] = {}
    cooldowns: dict[_Key, list[Any]] = {}
    noops: list[tuple[int, str, str, str, datetime]] = []

    def cooldown(key: _Key) -> list[Any] | None:
        if key not in cooldowns and (row := _load_cooldown(con, key)) is not None:
            cooldowns[key] = row
        return cooldowns.get(key)

    for bid, (meta, event) in zip(ids, batch, strict=True):
        before = states.get(bid) or domain.initial_state(bid)
        after, reason = domain.evolve(before, event, meta.at)
        last_seq[bid] = meta.seq
        if reason is not None:
            noops.append((meta.seq, bid, event.name, reason, meta.at))
            continue
        states[bid] = after
        if isinstance(event, domain.CooldownStarted) and after.cooldown_started_at is not None:
            key = (bid, after.cooldown_started_at)
            row = cooldown(key)
            length = (event.until - key[1]).total_seconds()
            if row is None:
                cooldowns[key] = [bid, key[1], event.until, length, event.reason, event.consecutive, 0, None, meta.seq]
            else:
                row[2:7] = [event.until, length, event.reason, event.consecutive, row[6] + 1]
        elif (isinstance(event, domain.CooldownEnded) and before.cooldown_started_at is not None
              and (row := cooldown((bid, before.cooldown_started_at))) is not None):
            row[7] = meta.at
    touched = [states[b] for b in last_seq if b in states and states[b].created]
    if touched:
        rows = []
        for b in touched:
            values = {f: getattr(b, f) for f in _STATE_FIELDS}
            values.update(key_id=b.key_id, model_mappings=msgspec.json.encode(b.model_mappings).decode(),
                          last_seq=last_seq[b.id])
            rows.append([values[c] for c in _BACKENDS.names])
        execute_with(con, "_backends_batch", from_rows(rows, _BACKENDS),
                     "INSERT OR REPLACE INTO backends SELECT * FROM _backends_batch")
    if cooldowns:
        execute_with(con, "_cooldowns_batch", from_rows(list(cooldowns.values()), _COOLDOWNS),
                     "INSERT OR REPLACE INTO cooldowns SELECT * FROM _cooldowns_batch")
    if noops:
        log.info("providers: %d no-op events, first seq=%s: %s", len(noops), noops[0][0], noops[0][3])
        execute_with(con, "_noops_batch", from_rows(noops, _NOOPS),
                     "INSERT OR REPLACE INTO provider_noops SELECT * FROM _noops_batch")


def _apply_usage(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, UsageCompleted]]) -> None:
    requests = []
    hourly: dict[tuple[datetime, str, str, str], list[Any]] = {}
    daily: dict[tuple[datetime, str, str, str], list[Any]] = {}
    for meta, e in batch:
        bid = meta.subject.split(".")[1]
        cost = round(e.cost * 1_000_000)
        requests.append((meta.seq, meta.at, bid, e.model, e.pool, e.status, e.is_error, e.prompt_tokens,
                         e.completion_tokens, _fixed(cost, 6), e.latency_ms, e.ttft_ms, e.stream,
                         e.emergency))
        hour = meta.at.replace(minute=0, second=0, microsecond=0)
        day = datetime(hour.year, hour.month, hour.day, tzinfo=UTC)
        for buckets, start in ((hourly, hour), (daily, day)):
            agg = buckets.setdefault((start, bid, e.model, e.pool), [0, 0, 0, 0, 0, 0, 0, 0, 0])
            agg[0] += 1
            agg[1] += e.is_error
            agg[2] += e.prompt_tokens
            agg[3] += e.completion_tokens
            agg[4] += cost
            agg[5] += round(e.latency_ms * 1000)
            if e.ttft_ms is not None:
                agg[6] += round(e.ttft_ms * 1000)
                agg[7] += 1
            agg[8] += e.emergency
    execute_with(con, "_usage_batch", from_rows(requests, _REQUESTS),
                 "INSERT OR REPLACE INTO usage_requests SELECT * FROM _usage_batch")
    for table, buckets in (("usage_hourly", hourly), ("usage_daily", daily)):
        execute_with(
            con, "_agg_batch", from_rows([[*k, *v[:4], _fixed(v[4], 6), _fixed(v[5], 3), _fixed(v[6], 3),
                                          *v[7:]] for k, v in buckets.items()], _AGG),
            f"INSERT INTO {table} SELECT * FROM _agg_batch ON CONFLICT DO UPDATE SET "
            + ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in _AGG.names[4:]),
        )



def _fixed(units: int, scale: int) -> Decimal:
    """An integer count of 10^-scale units as the DECIMAL it stands for, exactly."""
    return Decimal(units).scaleb(-scale)
