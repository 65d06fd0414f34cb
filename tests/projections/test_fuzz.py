"""Payloads drawn from the event types, valid and one field out of range, published raw.

Whatever is drawn: no projection stalls, exactly the invalid ones are in `_rejects` of every
projection reading their stream, a later good event is applied, and the live tables equal two
rebuilds with different batch boundaries, byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import msgspec
from hypothesis import strategies as st

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from events.core.registry import events_of
from events.core.subjects import DOMAINS
from projections.catalog import PROJECTIONS
from projections.runtime.rebuild import build
from projections.runtime.store import file_path
from services.projector.service import ProjectorHost
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually
from tests.strategies import draw, invalid, json_bytes, valid

EVENTS = [t for d in DOMAINS for t in events_of(d).values()]
IDS = st.sampled_from(["a1", "a2", "T1"])


def _subject(cls: type, aggregate: str) -> str:
    return f"{cls.domain}.{aggregate}.{cls.name}"  # type: ignore[attr-defined]


good = st.sampled_from(EVENTS).flatmap(
    lambda c: st.tuples(st.just(True), IDS.map(lambda i: _subject(c, i)), valid(c))
)
bad = st.sampled_from(EVENTS).flatmap(
    lambda c: st.tuples(st.just(False), IDS.map(lambda i: _subject(c, i)), invalid(c).map(lambda fo: fo[1]))
)


def tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_type = 'BASE TABLE' ORDER BY 1").fetchall()]
        return {n: con.execute(f'SELECT * FROM "{n}" ORDER BY ALL').fetchall() for n in names}
    finally:
        con.close()


async def test_drawn_payloads_never_stall_a_projection_and_live_equals_rebuild(
    client: EventClient, settings: Settings, host_nc: Any, tmp_path: Path
) -> None:
    drawn = draw(st.lists(good | bad, min_size=40, max_size=40), 8)
    published: list[tuple[bool, str, int]] = []
    async with running(ProjectorHost(settings, host_nc)) as host:
        for chunk in drawn:
            for ok, subject, obj in chunk:
                ack = await client.js.publish(subject, json_bytes(obj, msgspec.json.encode))
                published.append((ok, ack.stream, ack.seq))
        assert {ok for ok, _, _ in published} == {True, False}
        last = {s: q for _, s, q in published}
        late = await client.publish("late", AgentHeartbeat(status="idle"))

        def caught_up() -> bool:
            health = host.health()
            return all(
                h["healthy"] and all(h["checkpoints"].get(s, 0) >= q for s, q in last.items()
                                     if s in dict(PROJECTIONS[n].SOURCES))
                for n, h in health.items()
            ) and health["agents"]["checkpoints"].get("AGENTS", 0) >= late

        try:
            await eventually(caught_up, timeout=30, what="every projection past the drawn events")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; health: {host.health()}") from None
    for name, module in PROJECTIONS.items():
        streams = dict(module.SOURCES)
        live = tables(file_path(settings.projections_dir, name))
        rejected = {(r[0], r[1]) for r in live["_rejects"]}
        assert rejected == {(s, q) for ok, s, q in published if not ok and s in streams}, name
        for size in (1, 17):
            out = tmp_path / f"{name}.{size}.duckdb"
            await build(client.nc, module, out, batch_size=size, batch_ms=5)
            rebuilt = tables(out)
            for table, rows in live.items():
                only_live = [r for r in rows if r not in rebuilt[table]]
                only_rebuilt = [r for r in rebuilt[table] if r not in rows]
                assert (only_live, only_rebuilt) == ([], []), f"{name}.{table} rebuilt in batches of {size}"
            assert rebuilt == live
    agents = tables(file_path(settings.projections_dir, "agents"))["agents"]
    assert any(row[0] == "late" for row in agents)
