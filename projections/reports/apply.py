"""Fold REPORTS and ALERTS into the `reports` tables with the domains' own evolve.

A batch loads the touched reports (and their deliveries) as `events.reports.Report` states, folds
the batch with `events.reports.evolve` exactly as the notifier does, and writes every touched row
back with one Arrow insert per table; alerts the same with `events.alerts.evolve`.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec
import orjson
import pyarrow as pa

from events import alerts, reports
from events.core.meta import Meta
from events.reports import Delivered, Delivery, DeliveryAttempted, Report, ReportFiled
from projections.runtime.arrow_batches import execute_with, from_rows

_TS = pa.timestamp("us", tz="UTC")
_FILED = [f for f in ReportFiled.__struct_fields__ if f != "targets"]
_REPORT_COLS = ["id", "seq", "filed_at", *_FILED, "targets", "state", "last_seq"]
_TYPES = {"seq": pa.int64(), "last_seq": pa.int64(), "filed_at": _TS, "targets": pa.list_(pa.string())}
_REPORTS = pa.schema([(c, _TYPES.get(c, pa.string())) for c in _REPORT_COLS])
_DELIVERY_FIELDS = list(Delivery.__struct_fields__)
_DELIVERIES = pa.schema([
    ("report_id", pa.string()), ("target", pa.string()), ("status", pa.string()), ("attempts", pa.int32()),
    ("retry_at", _TS), ("last_error", pa.string()), ("status_code", pa.int32()), ("message_id", pa.string()),
    ("reason", pa.string()), ("budget_from", pa.int32()), ("since", _TS), ("filed_seq", pa.int64()),
    ("filed_at", _TS),
])
_ATTEMPTS = pa.schema([
    ("seq", pa.int64()), ("report_id", pa.string()), ("target", pa.string()), ("attempt", pa.int32()),
    ("outcome", pa.string()), ("status_code", pa.int32()), ("error", pa.string()), ("retry_at", _TS),
    ("message_id", pa.string()), ("at", _TS),
])
_ALERTS = pa.schema([
    ("fingerprint", pa.string()), ("status", pa.string()), ("alertname", pa.string()), ("severity", pa.string()),
    ("starts_at", pa.string()), ("ends_at", pa.string()), ("generator_url", pa.string()), ("labels", pa.string()),
    ("targets", pa.list_(pa.string())), ("notice", pa.string()), ("updated_at", _TS), ("last_seq", pa.int64()),
])
_NOOPS = pa.schema([("stream", pa.string()), ("seq", pa.int64()), ("subject", pa.string()),
                    ("reason", pa.string()), ("at", _TS)])


def _quoted(cols: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in cols)


def load(con: duckdb.DuckDBPyConnection, ids: list[str]) -> dict[str, Report]:
    out: dict[str, Report] = {}
    cols = _quoted(["id", "seq", "filed_at", *_FILED, "targets"])
    for row in con.execute(f"SELECT {cols} FROM reports WHERE id IN (SELECT unnest($ids))", {"ids": ids}).fetchall():
        rid, seq, filed_at, *fields, targets = row
        filed = ReportFiled(**dict(zip(_FILED, fields, strict=True)), targets=list(targets))
        out[rid] = Report(id=rid, filed=filed, filed_at=filed_at, seq=seq)
    if not out:
        return out
    cols = _quoted(["report_id", "target", *_DELIVERY_FIELDS])
    for rid, target, *values in con.execute(
            f"SELECT {cols} FROM report_deliveries WHERE report_id IN (SELECT unnest($ids))", {"ids": list(out)}
    ).fetchall():
        d = Delivery(**dict(zip(_DELIVERY_FIELDS, values, strict=True)))
        out[rid] = msgspec.structs.replace(out[rid], deliveries={**out[rid].deliveries, target: d})
    return out


def apply(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, Any]]) -> None:
    report_batch = [(m, e) for m, e in batch if m.subject.startswith("reports.")]
    alert_batch = [(m, e) for m, e in batch if m.subject.startswith("alerts.")]
    noops: list[tuple[Any, ...]] = []
    if report_batch:
        _apply_reports(con, report_batch, noops)
    if alert_batch:
        _apply_alerts(con, alert_batch, noops)
    if noops:
        execute_with(con, "_noops", from_rows(noops, _NOOPS), "INSERT OR REPLACE INTO report_noops SELECT * FROM _noops")


def _apply_reports(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, Any]], noops: list[tuple[Any, ...]]) -> None:
    ids = [m.subject.split(".")[1] for m, _ in batch]
    states = load(con, list(set(ids)))
    last: dict[str, int] = {}
    attempts: list[tuple[Any, ...]] = []
    for rid, (meta, event) in zip(ids, batch, strict=True):
        state, reason = reports.evolve(states.get(rid) or reports.initial_state(rid), event, meta.at, meta.seq)
        last[rid] = meta.seq
        if reason is not None:
            noops.append((meta.stream or "REPORTS", meta.seq, meta.subject, reason, meta.at))
            continue
        states[rid] = state
        if isinstance(event, DeliveryAttempted):
            attempts.append((meta.seq, rid, event.target, event.attempt, event.outcome, event.status_code,
                             event.error, event.retry_at, None, meta.at))
        elif isinstance(event, Delivered):
            attempts.append((meta.seq, rid, event.target, event.attempt, "delivered", event.status_code,
                             None, None, event.message_id, meta.at))
    touched = [states[r] for r in last if r in states and states[r].filed is not None]
    rows = [(r.id, r.seq, r.filed_at, *(getattr(r.filed, f) for f in _FILED), list(r.filed.targets),  # type: ignore[union-attr]
             r.status, last[r.id]) for r in touched]
    if rows:
        execute_with(con, "_reports", from_rows(rows, _REPORTS),
                     f"INSERT OR REPLACE INTO reports ({_quoted(_REPORT_COLS)}) SELECT * FROM _reports")
        deliveries = [(r.id, t, *(getattr(d, f) for f in _DELIVERY_FIELDS), r.seq, r.filed_at)
                      for r in touched for t, d in r.deliveries.items()]
        execute_with(con, "_deliveries", from_rows(deliveries, _DELIVERIES),
                     "INSERT OR REPLACE INTO report_deliveries SELECT * FROM _deliveries")
    if attempts:
        execute_with(con, "_attempts", from_rows(attempts, _ATTEMPTS),
                     "INSERT OR REPLACE INTO report_attempts SELECT * FROM _attempts")


def _apply_alerts(con: duckdb.DuckDBPyConnection, batch: list[tuple[Meta, Any]], noops: list[tuple[Any, ...]]) -> None:
    rows: dict[str, tuple[Any, ...]] = {}
    ids = list({m.subject.split(".")[1] for m, _ in batch})
    states = {fp: alerts.State(fingerprint=fp, status=s, starts_at=st or "", targets=list(t))
              for fp, s, st, t in con.execute(
                  "SELECT fingerprint, status, starts_at, targets FROM alerts WHERE fingerprint IN (SELECT unnest($ids))",
                  {"ids": ids}).fetchall()}
    for meta, event in batch:
        fp = meta.subject.split(".")[1]
        state, reason = alerts.evolve(states.get(fp) or alerts.initial_state(fp), event, meta.at)
        if reason is not None:
            noops.append((meta.stream or "ALERTS", meta.seq, meta.subject, reason, meta.at))
            continue
        states[fp] = state
        rows[fp] = (fp, event.name, event.alertname, event.severity, event.starts_at,
                    getattr(event, "ends_at", None), event.generator_url, orjson.dumps(event.labels).decode(),
                    list(event.targets), event.notice, meta.at, meta.seq)
    if rows:
        execute_with(con, "_alerts", from_rows(list(rows.values()), _ALERTS),
                     "INSERT OR REPLACE INTO alerts SELECT * FROM _alerts")

