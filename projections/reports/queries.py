"""DDL and named queries of the `reports` projection.

`reports`: one row per report (the filed fields; `state` pending | delivered | abandoned over its
targets); `report_deliveries`: one row per report and target, as `events.reports.evolve` leaves
it; `report_attempts`: one row per attempt (a failed `attempted` or the `delivered` one);
`alerts`: one row per alert fingerprint, its last status; `report_noops`: events that changed
nothing, with the reason. The view `report_queues` is each target's queue: depth and the filing
time of its oldest pending report.
"""

from __future__ import annotations

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS reports (
        id VARCHAR PRIMARY KEY,            -- report id (aggregate id of reports.<id>.*)
        seq BIGINT NOT NULL,               -- REPORTS seq of `filed`: the queue order
        filed_at TIMESTAMPTZ NOT NULL,     -- JetStream time of `filed`
        team VARCHAR, worker VARCHAR, task_id VARCHAR, progress VARCHAR, done VARCHAR,
        "next" VARCHAR, status VARCHAR, source VARCHAR, title VARCHAR, body VARCHAR,
        targets VARCHAR[] NOT NULL,        -- where it goes, resolved when filed
        severity VARCHAR,                  -- alerts: critical | warning | info
        link VARCHAR,                      -- alerts: generatorURL or dashboard
        alert VARCHAR,                     -- alerts: "<fingerprint> firing|resolved"
        state VARCHAR NOT NULL,            -- pending (a target open) | delivered (all) | abandoned
        last_seq BIGINT NOT NULL           -- REPORTS seq of the last event about it
    )""",
    """CREATE TABLE IF NOT EXISTS report_deliveries (
        report_id VARCHAR NOT NULL, target VARCHAR NOT NULL,
        status VARCHAR NOT NULL,           -- pending | delivered | abandoned
        attempts INTEGER NOT NULL,         -- attempts so far
        retry_at TIMESTAMPTZ,              -- next attempt not before (pending after a failure)
        last_error VARCHAR, status_code INTEGER, message_id VARCHAR,
        reason VARCHAR,                    -- why abandoned
        budget_from INTEGER NOT NULL,      -- attempts made before the last operator retry
        since TIMESTAMPTZ,                 -- time of the last operator retry
        filed_seq BIGINT NOT NULL, filed_at TIMESTAMPTZ NOT NULL,
        PRIMARY KEY (report_id, target)
    )""",
    """CREATE TABLE IF NOT EXISTS report_attempts (
        seq BIGINT PRIMARY KEY,            -- REPORTS seq of the attempt's event
        report_id VARCHAR NOT NULL, target VARCHAR NOT NULL, attempt INTEGER NOT NULL,
        outcome VARCHAR NOT NULL,          -- delivered | failed | rate_limited | timeout
        status_code INTEGER, error VARCHAR, retry_at TIMESTAMPTZ, message_id VARCHAR,
        "at" TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS alerts (
        fingerprint VARCHAR PRIMARY KEY, status VARCHAR NOT NULL, alertname VARCHAR,
        severity VARCHAR, starts_at VARCHAR, ends_at VARCHAR, generator_url VARCHAR,
        labels VARCHAR,                    -- JSON
        targets VARCHAR[] NOT NULL,        -- where its notice went (empty: recorded only)
        notice VARCHAR,                    -- report id of the notice
        updated_at TIMESTAMPTZ NOT NULL, last_seq BIGINT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS report_noops (
        stream VARCHAR NOT NULL, seq BIGINT NOT NULL, subject VARCHAR NOT NULL,
        reason VARCHAR NOT NULL, "at" TIMESTAMPTZ NOT NULL, PRIMARY KEY (stream, seq)
    )""",
    """CREATE OR REPLACE VIEW report_queues AS
        SELECT target, count(*) AS pending, min(filed_at) AS oldest_pending_at
        FROM report_deliveries WHERE status = 'pending' GROUP BY target""",
]

QUERIES: dict[str, str] = {
    "list": (
        "SELECT * FROM reports WHERE ($status IS NULL OR state = $status) "
        "AND ($target IS NULL OR list_contains(targets, $target)) ORDER BY seq DESC LIMIT $limit"
    ),
    "get": "SELECT * FROM reports WHERE id = $id",
    "deliveries": "SELECT * FROM report_deliveries WHERE report_id = $id ORDER BY target",
    "attempts": "SELECT * FROM report_attempts WHERE report_id = $id ORDER BY seq",
    "queues": "SELECT * FROM report_queues ORDER BY target",
    "recent_deliveries": (
        "SELECT * FROM report_deliveries WHERE report_id IN "
        "(SELECT id FROM reports ORDER BY seq DESC LIMIT $limit) ORDER BY filed_seq DESC, target"
    ),
    "recent_attempts": (
        "SELECT * FROM report_attempts WHERE report_id IN "
        "(SELECT id FROM reports ORDER BY seq DESC LIMIT $limit) ORDER BY seq"
    ),
    "alerts": "SELECT * FROM alerts ORDER BY updated_at DESC LIMIT $limit",
    "metrics": (
        "SELECT t.target, coalesce(q.pending, 0) AS pending, epoch(q.oldest_pending_at) AS oldest_pending_s, "
        "a.outcome, coalesce(a.n, 0) AS n FROM (SELECT DISTINCT target FROM report_deliveries) t "
        "LEFT JOIN report_queues q USING (target) "
        "LEFT JOIN (SELECT target, outcome, count(*) AS n FROM report_attempts GROUP BY ALL) a USING (target) "
        "ORDER BY t.target, a.outcome"
    ),
}
