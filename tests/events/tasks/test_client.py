"""The tasks SDK against a real nats-server and the tasks service: replies, errors, TaskManager."""

from __future__ import annotations

import asyncio

import pytest

from events.core.client import EventClient
from events.core.errors import Conflict, Unavailable, ValidationError
from events.tasks.client import NotFound, TaskClient, TaskManager
from tests.services.tasks.test_service import service

pytestmark = pytest.mark.asyncio


async def test_one_method_per_verb_and_errors_by_code(client: EventClient, nats_url: str) -> None:
    tc = TaskClient(client.nc)
    async with service(nats_url):
        made = await tc.create("TC-1", title="first", priority="P0")
        assert made["task"]["priority"] == "P0"
        assert (await tc.claim("TC-1", agent_id="architect"))["task"]["claimed_by"] == "architect"
        with pytest.raises(Conflict, match="task TC-1 is claimed by architect"):
            await tc.claim("TC-1", agent_id="coo")
        with pytest.raises(NotFound, match="task TC-404 does not exist"):
            await tc.start("TC-404", agent_id="architect")
        with pytest.raises(ValidationError) as bad:
            await tc.progress("TC-1", agent_id="architect", progress=101)
        assert bad.value.field == "$.progress"
        await tc.start("TC-1", agent_id="architect")
        submitted = await tc.submit("TC-1", agent_id="architect", summary="done")
        assert submitted["task"]["status"] == "review"
        sent = await tc.send_mail(from_agent="architect", to="coo", body="review please")
        assert sent["message"]["from_agent"] == "architect"
        assert (await tc.read_mail(sent["message"]["id"], agent_id="coo"))["message"]["read_at"]
    with pytest.raises(Unavailable, match="no tasks service"):
        await tc.claim("TC-1", agent_id="architect")


async def test_task_manager_keeps_the_old_method_names(client: EventClient, nats_url: str) -> None:
    async with service(nats_url):
        tm = await asyncio.to_thread(TaskManager, nats_url, agent_id="dev")
        try:
            made = await asyncio.to_thread(tm.create_task, "TC-FLOW-001", display_name="end to end", priority="P1")
            assert made["title"] == "end to end"
            assert (await asyncio.to_thread(tm.mark_start, "TC-FLOW-001"))["status"] == "working"
            fixes = await asyncio.to_thread(tm.create_fix_subtasks, "TC-FLOW-001", [{"error": "no module", "fix": "preload"}])
            assert fixes == ["FIX-TC-FLOW-001-001"]
            await asyncio.to_thread(tm.create_task, "TC-2", title="second")
            crashed = await asyncio.to_thread(tm.mark_normal_crash, "TC-2", "ECONNRESET")
            assert crashed["status"] == "pending" and crashed["retry_count"] == 1
            await asyncio.to_thread(tm.create_task, "TC-3", title="third")
            await asyncio.to_thread(tm.mark_start, "TC-3")
            pending = await asyncio.to_thread(tm.mark_error_fix_pending, "TC-3", "step 4 failed", "check imports")
            assert pending["status"] == "fix_pending" and pending["fix_ids"] == ["FIX-TC-3-001"]
            await asyncio.to_thread(tm.create_task, "TC-4", title="fourth")
            await asyncio.to_thread(tm.mark_start, "TC-4")
            assert (await asyncio.to_thread(tm.mark_end, "TC-4", "ok"))["status"] == "review"
            assert (await asyncio.to_thread(tm.mark_void, "TC-2"))["status"] == "void"
        finally:
            await asyncio.to_thread(tm.close)


async def test_task_manager_queries_read_the_tasks_projection(client: EventClient, nats_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from services.projector.service import ProjectorHost
    from services.settings import Settings
    from tests.hosting import running
    from tests.polling import eventually

    settings = Settings(nats_url=nats_url, home=str(tmp_path), batch_ms=20)
    async with service(nats_url), running(ProjectorHost(settings, client.nc, ["tasks"])):
        tm = await asyncio.to_thread(TaskManager, nats_url, agent_id="dev")
        try:
            await asyncio.to_thread(tm.create_task, "TQ-1", title="regular", priority="P1")
            await asyncio.to_thread(tm.create_task, "TQ-2", title="urgent", priority="P0")
            await asyncio.to_thread(tm.create_fix_subtasks, "TQ-1", [{"error": "e", "fix": "f"}])

            def actionable() -> list[str]:
                return [t["id"] for t in tm.get_actionable_tasks(limit=10)]

            async def settled() -> list[str] | None:  # until the projection has seen all three
                order = await asyncio.to_thread(actionable)
                return order if "FIX-TQ-1-001" in order else None

            order = await eventually(settled, what="the fix subtask is actionable")
            assert order == ["FIX-TQ-1-001", "TQ-2"]  # fix first; the parent waits for its child
            tree = await asyncio.to_thread(tm.get_task_tree, "TQ-1")
            assert {t["id"] for t in tree} == {"TQ-1", "FIX-TQ-1-001"}
            everything = await asyncio.to_thread(tm.get_task_tree)
            assert {"TQ-1", "TQ-2", "FIX-TQ-1-001"} <= {t["id"] for t in everything}
        finally:
            await asyncio.to_thread(tm.close)
