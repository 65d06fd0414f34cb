"""`agentledger tasks ...` and `agentledger mail ...` as a person runs them, against a real
nats-server, the real tasks service and a real projector."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import nats
import pytest

from events.core.client import EventClient
from services.projector.service import ProjectorHost
from services.settings import Settings
from services.tasks.service import TasksService
from tests.hosting import running
from tests.services.cli.clirun import Result, clean_env, run

Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
async def fleet(client: EventClient, nats_url: str, tmp_path: Path) -> AsyncIterator[None]:
    settings = Settings(nats_url=nats_url, home=str(tmp_path / "home"), batch_ms=20)
    nc = await nats.connect(nats_url)
    try:
        async with running(TasksService(nc)), running(ProjectorHost(settings, client.nc, ["tasks"])):  # type: ignore[arg-type]
            yield
    finally:
        await nc.close()


@pytest.fixture
def cli(fleet: None, nats_url: str, tmp_path: Path) -> Cli:
    env = clean_env(AGENTLEDGER_NATS_URL=nats_url)

    async def call(*args: str) -> Result:
        return await run(*args, env=env, cwd=tmp_path)

    return call


async def test_create_claim_and_read_back_as_tables_and_json(cli: Cli) -> None:
    r = await cli("tasks", "create", "T1", "--title", "write the report", "--type", "fix", "--priority", "P0")
    assert r.code == 0, r.err
    assert r.out.strip() == "T1 is pending (created; seq 1, after TASKS:1)"
    r = await cli("tasks", "create", "T2", "--title", "after T1", "--depends-on", "T1")
    assert r.code == 0, r.err
    r = await cli("tasks", "claim", "T2", "--agent", "architect")
    assert r.code == 1 and "T1" in r.err and "Traceback" not in r.err
    r = await cli("tasks", "claim", "T1", "--agent", "architect", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["task"]["claimed_by"] == "architect"

    # the write waited for the projector: the next command reads it, no polling
    r = await cli("tasks", "list", "--agent", "architect", "--json", "--after", "TASKS:1")
    (task,) = json.loads(r.out)
    assert task["id"] == "T1" and task["status"] == "claimed"
    r = await cli("tasks", "show", "T1")
    assert r.code == 0 and "write the report" in r.out and "claimed" in r.out
    r = await cli("tasks", "actionable", "--json")
    assert r.code == 0 and json.loads(r.out) == []  # T1 is taken, T2 waits for it
    r = await cli("tasks", "tree", "T1")
    assert r.code == 0 and "T1" in r.out
    r = await cli("tasks", "create", "T3", "--priority", "P9")
    assert r.code == 2 and "P9" in r.err
    r = await cli("tasks", "list", "--after", "TASKS:x")
    assert r.code == 2 and "--after" in r.err


async def test_mail_send_inbox_and_read(cli: Cli) -> None:
    r = await cli("mail", "send", "--id", "m1", "--from", "coo", "--to", "architect",
                  "--performative", "request", "--subject", "status?")
    assert r.code == 0, r.err

    r = await cli("mail", "inbox", "architect", "--json")
    (message,) = json.loads(r.out)
    assert message["id"] == "m1" and message["read"] is False
    r = await cli("mail", "read", "m1", "--agent", "architect")
    assert r.code == 0, r.err
    r = await cli("mail", "inbox", "architect")
    assert r.code == 0 and "status?" in r.out
