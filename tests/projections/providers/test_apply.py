"""The providers read model: given events -> rows, on an in-memory DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import providers as p
from events.core.keyring import Keyring, new_key
from events.core.meta import Meta
from events.usage import UsageCompleted
from projections import providers
from projections.runtime.store import Store

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # named queries look back from now()
RING = Keyring({"k1": new_key()})


class Given:
    def __init__(self) -> None:
        self.seq = {"PROVIDERS": 0, "USAGE": 0}
        self.items: list[tuple[Meta, Any]] = []

    def __call__(self, backend: str, event: Any, s: float = 0) -> Given:
        stream = "USAGE" if isinstance(event, UsageCompleted) else "PROVIDERS"
        self.seq[stream] += 1
        meta = Meta(seq=self.seq[stream], subject=f"{event.domain}.{backend}.{event.name}",
                    at=T0 + timedelta(seconds=s), stream=stream)
        self.items.append((meta, event))
        return self


@pytest.fixture
def store() -> Iterator[Store]:
    s = Store(":memory:", providers).open()
    yield s
    s.close()


def apply(store: Store, given: Given, split: int | None = None) -> None:
    items = given.items
    for chunk in [items] if split is None else [items[i : i + split] for i in range(0, len(items), split)]:
        store.commit(chunk, [], {chunk[-1][0].stream: chunk[-1][0].seq})


def rows(store: Store, sql: str) -> list[dict[str, Any]]:
    return store.connection().sql(sql).to_arrow_table().to_pylist()


def query(store: Store, name: str, **params: Any) -> list[dict[str, Any]]:
    cur = store.connection().execute(providers.QUERIES[name], params or None)
    columns = [d[0] for d in cur.description]
    return [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]


def created(backend: str = "b1", **kw: Any) -> p.BackendCreated:
    return p.BackendCreated(backend_name=backend.upper(), api_base_url="http://up.local/v1",
                            api_key=RING.encrypt("sk-live-0123456789abcdef", aad=backend), **kw)


def test_a_backend_row_keeps_its_config_and_only_the_key_id() -> None:
    s = Store(":memory:", providers).open()
    token = created().api_key
    apply(s, Given()("b1", created(pool="fallback", rpm_limit=7)))
    [row] = rows(s, "SELECT * FROM backends")
    assert (row["name"], row["pool"], row["rpm_limit"], row["key_id"], row["deleted"]) == ("B1", "fallback", 7, "k1", False)
    dump = str(rows(s, "SELECT * FROM backends"))
    assert token.split(":")[2] not in dump and "sk-live" not in dump


def test_updates_rotation_and_deletion_fold_across_batches(store: Store) -> None:
    ring2 = RING.with_key("k2", new_key())
    g = (Given()("b1", created())("b1", p.BackendUpdated(rpm_limit=99, enabled=False), s=1)
         ("b1", p.KeyRotated(api_key=ring2.encrypt("sk-live-0123456789abcdef", aad="b1")), s=2)
         ("b1", p.BackendDeleted(), s=3)("b1", p.BackendUpdated(rpm_limit=5), s=4))
    apply(store, g, split=1)
    [row] = rows(store, "SELECT * FROM backends")
    assert (row["rpm_limit"], row["enabled"], row["key_id"], row["deleted"], row["last_seq"]) == (99, False, "k2", True, 5)
    assert [r["event"] for r in rows(store, "SELECT * FROM provider_noops")] == ["updated"]
    assert query(store, "backends") == []


def test_a_cooldown_is_one_row_extended_then_ended(store: Store) -> None:
    g = (Given()("b1", created())
         ("b1", p.CooldownStarted(until=T0 + timedelta(seconds=31), length_s=30, consecutive=1), s=1)
         ("b1", p.CooldownStarted(until=T0 + timedelta(seconds=61), length_s=50, reason="retry_after", consecutive=1), s=11)
         ("b1", p.CooldownEnded(until=T0 + timedelta(seconds=61)), s=62)
         ("b1", p.CooldownStarted(until=T0 + timedelta(seconds=200), length_s=60, consecutive=2), s=140))
    apply(store, g, split=2)
    first, second = query(store, "cooldowns", limit=10)[::-1]
    assert (first["length_s"], first["extensions"], first["reason"], first["ended"]) == (60.0, 1, "retry_after", T0 + timedelta(seconds=62))
    assert (second["consecutive"], second["ended"], second["seq"]) == (2, None, 5)
    assert [r["cooling"] for r in rows(store, "SELECT cooldown_until IS NOT NULL AS cooling FROM backends")] == [True]


def usage(model: str = "gpt", latency: float = 100, **kw: Any) -> UsageCompleted:
    return UsageCompleted(model=model, status=kw.pop("status", 200), prompt_tokens=10, completion_tokens=5,
                          cost=0.5, latency_ms=latency, **kw)


def test_usage_aggregates_per_hour_and_day_with_exact_p95(store: Store) -> None:
    g = Given()
    for i in range(1, 101):
        g("b1", usage(latency=float(i), ttft_ms=10.0 if i % 2 else None, stream=bool(i % 2)), s=i)
    g("b1", usage(status=429), s=200)("b2", usage(model="emb", pool="fallback", emergency=True), s=3700)
    apply(store, g, split=33)
    total = query(store, "total")[0]
    assert (total["total_requests"], total["total_errors"], total["total_tokens"], total["total_cost"]) == (102, 1, 1530, 51.0)
    hourly = query(store, "hourly", backend_id="b1", hours=24)
    assert len(hourly) == 1
    h = hourly[0]
    assert (h["requests"], h["errors"], h["avg_ttft_ms"]) == (101, 1, 10.0)
    assert h["p95_latency_ms"] == pytest.approx(96.0)
    assert {r["backend_id"] for r in query(store, "hourly", backend_id=None, hours=24)} == {"b1", "b2"}
    daily = query(store, "daily", days=2)
    assert sum(r["requests"] for r in daily) == 102 and any(r["emergency"] == 1 for r in daily)
