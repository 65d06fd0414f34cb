"""Ad-hoc SQL cannot hurt the projector: side effects refused, memory capped, killed at the
timeout in any phase, slots of its own so named queries answer while every slot is busy, and a
shutdown that never waits on a query, workers at the lowest CPU priority."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest
from nats.aio.client import Client as NATS

from events.agents import AgentHeartbeat
from events.core.client import EventClient
from projections.runtime.adhoc import AdHocSql
from projections.runtime.adhoc.launcher import (
    GROUP_NICE,
    autogroup_nice,
    command,
    cpu_seconds,
    is_lowest,
)
from projections.runtime.protocol import QueryClient, QueryError
from services.projector.service import ProjectorHost
from services.runtime.pids import alive
from services.settings import Settings
from tests.hosting import running
from tests.polling import eventually

SLOW = "SELECT sum(hash(range)) FROM range(100000000000)"  # constant memory, runs for minutes
WIDE = "SELECT " + ", ".join(f"{i} AS c{i}" for i in range(60_000))  # slow to parse and bind


@pytest.fixture
async def fleet(client: EventClient, host: ProjectorHost) -> None:
    await client.publish("architect", AgentHeartbeat(status="busy"))
    await eventually(lambda: host.health()["agents"]["checkpoints"].get("AGENTS") == 1)


@pytest.mark.parametrize("sql, name", [
    ("SELECT * FROM checkpoint()", "checkpoint"),
    ("SELECT * FROM force_checkpoint()", "force_checkpoint"),
    ("SELECT * FROM query('SELECT 1')", "query"),
    ("SELECT x FROM (SELECT 1 AS x) WHERE x IN (SELECT * FROM force_checkpoint('agents'))", "force_checkpoint"),
])
async def test_functions_with_side_effects_are_refused_by_name(
    fleet: None, queries: QueryClient, sql: str, name: str
) -> None:
    with pytest.raises(QueryError) as err:
        await queries.sql("agents", sql)
    assert err.value.code == "bad_request" and f"function {name}() is not allowed" in err.value.message
    assert (await queries.sql("agents", "SELECT id FROM agents")).rows == [["architect"]]


async def test_a_query_over_its_memory_cap_ends_with_a_clear_error(fleet: None, queries: QueryClient) -> None:
    with pytest.raises(QueryError) as err:
        await queries.sql("agents", "SELECT count(*) FROM generate_series(1, 100000000000) a, "
                                    "generate_series(1, 100000000000) b")
    assert err.value.code in ("bad_request", "timeout"), err.value.message
    if err.value.code == "bad_request":
        assert "memory cap" in err.value.message


async def test_a_query_is_killed_at_the_timeout_even_while_it_parses(
    settings: Settings, host_nc: NATS, client: EventClient, queries: QueryClient
) -> None:
    settings.query_timeout_s = 3.0  # kills at 3 s; room for a worker to start on a loaded machine
    async with running(ProjectorHost(settings, host_nc)) as host:
        assert host.adhoc is not None
        seen: list[int] = []

        async def watch() -> None:
            while True:
                seen.extend(host.adhoc.running)  # type: ignore[union-attr]
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            for sql in (WIDE, SLOW):
                with pytest.raises(QueryError) as err:
                    await queries.sql("agents", sql)
                assert err.value.code in ("timeout", "bad_request"), err.value.message
            tg.cancel_scope.cancel()
        assert seen and host.adhoc.running == set()
        # answered first, killed at once, reaped in the background (its idle-class exit may lag)
        await eventually(lambda: not any(alive(pid) for pid in set(seen)), 10, "the killed workers are gone")


async def test_named_queries_answer_while_every_sql_slot_is_busy_and_shutdown_kills_the_workers(
    settings: Settings, host_nc: NATS, client: EventClient, queries: QueryClient
) -> None:
    settings.sql_slots = 2
    await client.publish("architect", AgentHeartbeat(status="busy"))
    pids: set[int] = set()
    spares: set[int] = set()
    async with running(ProjectorHost(settings, host_nc)) as host:
        adhoc = host.adhoc
        assert isinstance(adhoc, AdHocSql)
        async with anyio.create_task_group() as tg:
            for _ in range(2):
                tg.start_soon(_expect_failure, queries)
            await eventually(lambda: len(adhoc.running) == 2, 30, "both SQL slots run a query")
            pids = set(adhoc.running)
            spares = {p.pid for p in adhoc._spares}
            named = await queries.query("agents", "list")
            assert adhoc.busy == 2 and set(adhoc.running) == pids  # answered while both were busy
            assert [r["id"] for r in named.records()] == ["architect"]
            with pytest.raises(QueryError) as err:
                await queries.sql("agents", "SELECT 1")
            assert err.value.code == "unavailable" and "all 2 SQL slots are busy" in err.value.message
            assert all(alive(pid) for pid in pids)
            assert all(os.getsid(pid) == pid for pid in pids | spares)  # a scheduling group of their own
            # the launcher's first lines (a spare started a moment ago may not have run them yet)
            await eventually(lambda: all(is_lowest(pid) for pid in pids | spares), 10,
                             "every worker at the lowest priority: the API's processes go first")
            if autogroup_nice() is not None:
                await eventually(lambda: {autogroup_nice(pid) for pid in pids | spares} == {GROUP_NICE}, 10,
                                 "every worker's group niced")
            timeout = int(settings.query_timeout_s)
            await eventually(lambda: all(timeout + 2 <= _cpu_limit(pid) <= timeout + 4 for pid in pids), 10,
                             "a CPU-time backstop just over the timeout")
            tg.cancel_scope.cancel()
    assert pids and not any(alive(pid) for pid in pids)  # the host stopped without waiting on them
    assert not any(alive(pid) for pid in spares)


def _cpu_limit(pid: int) -> int:
    line = next(x for x in Path(f"/proc/{pid}/limits").read_text().splitlines() if x.startswith("Max cpu time"))
    soft = line.split()[3]
    return 0 if soft == "unlimited" else int(soft)


async def _expect_failure(queries: QueryClient) -> None:
    with pytest.raises(QueryError):
        await queries.sql("agents", SLOW)


async def test_an_answer_over_the_byte_cap_is_refused_and_its_worker_killed(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "t.duckdb"
    duckdb.connect(str(path)).close()
    adhoc = AdHocSql(max_bytes=10_000, timeout_s=30)
    with pytest.raises(QueryError) as err:
        await adhoc.run(path, "SELECT range, repeat('x', 100) FROM range(1000000)", 10_000)
    assert err.value.code == "bad_request" and "over the 10000 bytes" in err.value.message
    assert adhoc.running == set()
    assert (await adhoc.run(path, "SELECT 1 AS one", 10)) == {"columns": ["one"], "rows": [[1]], "truncated": False}


ORPHAN = """
import sys, anyio
from pathlib import Path
from projections.runtime.adhoc import AdHocSql

async def main():
    adhoc = AdHocSql(timeout_s=600)
    async with anyio.create_task_group() as tg:
        tg.start_soon(adhoc.run, Path(sys.argv[1]), sys.argv[2], 10)
        while not adhoc.running:
            await anyio.sleep(0.05)
        print(next(iter(adhoc.running)), flush=True)

anyio.run(main)
"""


async def test_a_worker_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "t.duckdb"
    duckdb.connect(str(path)).close()
    async with await anyio.open_process([sys.executable, "-c", ORPHAN, str(path), SLOW]) as parent:
        assert parent.stdout is not None
        worker = int((await parent.stdout.receive()).decode().split()[0])
        assert alive(worker)
        parent.kill()  # SIGKILL: the parent cannot kill its worker, the kernel does
        await parent.wait()
    await eventually(lambda: not alive(worker), 10, "the orphaned worker is killed")


async def test_a_query_starved_of_cpu_says_so_when_it_times_out(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "t.duckdb"
    duckdb.connect(str(path)).close()
    adhoc = AdHocSql(timeout_s=3)
    errors: list[QueryError] = []

    async def ask() -> None:
        with pytest.raises(QueryError) as err:
            await adhoc.run(path, SLOW, 10)
        errors.append(err.value)

    async with anyio.create_task_group() as tg:
        tg.start_soon(ask)
        await eventually(lambda: bool(adhoc.running), 10, "the query runs")
        os.kill(next(iter(adhoc.running)), signal.SIGSTOP)  # what a host busy elsewhere looks like
    assert errors[0].code == "timeout"
    assert "stopped after 3s" in errors[0].message and "the host was busy" in errors[0].message


async def test_a_query_that_used_its_time_is_not_called_starved(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "t.duckdb"
    duckdb.connect(str(path)).close()
    with pytest.raises(QueryError) as err:
        await AdHocSql(timeout_s=3).run(path, SLOW, 10)
    assert err.value.code == "timeout" and "stopped after 3s" in err.value.message
    if cpu_seconds(os.getpid()) >= 0 and os.getloadavg()[0] < (os.cpu_count() or 1):  # the query had a core
        assert "busy" not in err.value.message


def test_the_launcher_lowers_the_priority_before_the_module_runs_and_keeps_site_packages(tmp_path: Path) -> None:
    (tmp_path / "probe_priority.py").write_text(
        "import os, duckdb\nprint(os.sched_getscheduler(0), duckdb.__name__, __name__)\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(command("probe_priority"), env=env, capture_output=True, text=True, timeout=60,
                         start_new_session=True, check=True).stdout.split()
    assert out == [str(os.SCHED_IDLE), "duckdb", "__main__"]
