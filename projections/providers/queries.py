"""DDL and named queries of the `providers` projection (tables documented in projections.providers).

p95 latency is exact: `quantile_cont` over the raw `usage_requests` of the same buckets.
"""

from __future__ import annotations

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS backends (
        id VARCHAR PRIMARY KEY, name VARCHAR, label VARCHAR, api_base_url VARCHAR,
        key_id VARCHAR,                  -- keyring key id of the current token; never key material
        pool VARCHAR, enabled BOOLEAN, rpm_limit INTEGER, timeout_seconds DOUBLE,
        model_mappings VARCHAR,          -- JSON canonical -> {native_id, cost{input, output}}
        deleted BOOLEAN NOT NULL, probe VARCHAR, probe_since TIMESTAMPTZ,
        cooldown_until TIMESTAMPTZ, cooldown_started_at TIMESTAMPTZ, consecutive_429s INTEGER,
        last_rate_limited_at TIMESTAMPTZ, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ,
        last_seq BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS cooldowns (
        backend_id VARCHAR NOT NULL, started TIMESTAMPTZ NOT NULL, "until" TIMESTAMPTZ NOT NULL,
        length_s DOUBLE NOT NULL, reason VARCHAR, consecutive INTEGER, extensions INTEGER NOT NULL,
        ended TIMESTAMPTZ, seq BIGINT NOT NULL,
        PRIMARY KEY (backend_id, started)
    )""",
    """CREATE TABLE IF NOT EXISTS usage_requests (
        seq BIGINT PRIMARY KEY, "at" TIMESTAMPTZ NOT NULL, backend_id VARCHAR NOT NULL,
        model VARCHAR NOT NULL, pool VARCHAR NOT NULL, status INTEGER, error BOOLEAN NOT NULL,
        prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, cost DECIMAL(38, 6) NOT NULL,
        latency_ms DOUBLE NOT NULL, ttft_ms DOUBLE, stream BOOLEAN NOT NULL, emergency BOOLEAN NOT NULL
    )""",
    *(
        f"""CREATE TABLE IF NOT EXISTS {table} (
        {bucket} TIMESTAMPTZ NOT NULL, backend_id VARCHAR NOT NULL, model VARCHAR NOT NULL,
        pool VARCHAR NOT NULL, requests BIGINT NOT NULL, errors BIGINT NOT NULL,
        prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL, cost DECIMAL(38, 6) NOT NULL,
        latency_ms_sum DECIMAL(38, 3) NOT NULL, ttft_ms_sum DECIMAL(38, 3) NOT NULL,
        ttft_count BIGINT NOT NULL,
        emergency BIGINT NOT NULL,
        PRIMARY KEY ({bucket}, backend_id, model, pool)
    )"""
        for table, bucket in (("usage_hourly", '"hour"'), ("usage_daily", '"day"'))
    ),
    """CREATE TABLE IF NOT EXISTS provider_noops (
        seq BIGINT PRIMARY KEY, backend_id VARCHAR NOT NULL, event VARCHAR NOT NULL,
        reason VARCHAR NOT NULL, "at" TIMESTAMPTZ NOT NULL
    )""",
]


def _buckets(table: str, bucket: str, where: str, window: str) -> str:
    return f"""
    WITH p AS (
        SELECT date_trunc('{bucket}', "at") AS "{bucket}", backend_id, model, pool,
               quantile_cont(latency_ms, 0.95) AS p95_latency_ms
        FROM usage_requests WHERE "at" >= {window} GROUP BY ALL
    )
    SELECT u."{bucket}", u.backend_id, u.model, u.pool, u.requests, u.errors, u.prompt_tokens,
           u.completion_tokens, u.prompt_tokens + u.completion_tokens AS total_tokens, u.cost::DOUBLE AS cost,
           u.latency_ms_sum::DOUBLE / u.requests AS avg_latency_ms, p.p95_latency_ms,
           CASE WHEN u.ttft_count > 0 THEN u.ttft_ms_sum::DOUBLE / u.ttft_count END AS avg_ttft_ms,
           u.emergency
    FROM {table} u LEFT JOIN p USING ("{bucket}", backend_id, model, pool)
    WHERE u."{bucket}" >= {window} {where}
    ORDER BY u."{bucket}" DESC, u.backend_id, u.model, u.pool"""


QUERIES: dict[str, str] = {
    "backends": "SELECT * FROM backends WHERE NOT deleted ORDER BY id",
    "total": """
        SELECT coalesce(sum(requests), 0)::BIGINT AS total_requests,
               coalesce(sum(errors), 0)::BIGINT AS total_errors,
               coalesce(sum(prompt_tokens + completion_tokens), 0)::BIGINT AS total_tokens,
               coalesce(sum(prompt_tokens), 0)::BIGINT AS total_prompt_tokens,
               coalesce(sum(completion_tokens), 0)::BIGINT AS total_completion_tokens,
               coalesce(sum(cost), 0)::DOUBLE AS total_cost,
               sum(latency_ms_sum)::DOUBLE / nullif(sum(requests), 0) AS avg_latency_ms,
               (SELECT quantile_cont(latency_ms, 0.95) FROM usage_requests) AS p95_latency_ms,
               coalesce(sum(emergency), 0)::BIGINT AS total_emergency
        FROM usage_daily""",
    "hourly": _buckets("usage_hourly", "hour", "AND ($backend_id IS NULL OR u.backend_id = $backend_id)",
                       "date_trunc('hour', now()) - to_hours(CAST($hours AS BIGINT) - 1)"),
    "daily": _buckets("usage_daily", "day", "",
                      "date_trunc('day', now()) - to_days(CAST($days AS INTEGER) - 1)"),
    "cooldowns": """SELECT * FROM cooldowns ORDER BY started DESC, backend_id LIMIT $limit""",
    "minutes": """
        SELECT date_trunc('minute', "at") AS "minute", count(*)::BIGINT AS requests,
               count(*) FILTER (WHERE error)::BIGINT AS errors, avg(latency_ms) AS avg_latency_ms,
               quantile_cont(latency_ms, 0.95) AS p95_latency_ms
        FROM usage_requests
        WHERE "at" >= date_trunc('minute', now()) - to_minutes(CAST($minutes AS BIGINT) - 1)
        GROUP BY ALL ORDER BY 1""",
}
