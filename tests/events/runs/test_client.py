"""The seed's run-log chain against real JetStream: what lands on `runs.<run_id>.*`."""

from __future__ import annotations

from events.core.client import EventClient
from events.runs import KEEP_CONTENT, MAX_CONTENT, RunFinished, RunFollowing, RunStarted, cap
from events.runs.client import get_logger
from tests.services.watchdog.streams import events_of


def test_the_log_text_keeps_the_newest_80000_characters_once_past_100000() -> None:
    assert cap("x" * MAX_CONTENT) == "x" * MAX_CONTENT
    capped = cap("a" * 30_000 + "b" * (MAX_CONTENT - 20_000))
    assert len(capped) == KEEP_CONTENT and set(capped) == {"b"}


async def test_the_seed_chain_writes_started_following_and_finished_once_each(client: EventClient) -> None:
    ticks = iter([10.0, 12.5, 13.0])
    log = get_logger(client, "architect", "task", run_id="R1", clock=lambda: next(ticks))
    await log.set_task("T1").finish("running")
    await log.set_message("step 2 of 5").finish("following")
    await log.set_content("line one").set_content("\nline two").finish("success")
    await log.finish("success")  # a retried call: same msg id, stored once
    got = await events_of(client.nc, "runs")
    assert got == [
        RunStarted(agent_id="architect", task_id="T1", log_type="task"),
        RunFollowing(line="step 2 of 5"),
        RunFinished(status="success", duration_ms=2500, level="info",
                    content="step 2 of 5\nline one\nline two", message="step 2 of 5"),
    ]


async def test_a_run_finished_without_a_start_is_started_first_and_failures_log_as_errors(
    client: EventClient,
) -> None:
    log = get_logger(client, "architect", run_id="R2", clock=lambda: 5.0)
    await log.set_task("T9").set_content("Traceback ...").finish("failed")
    started, finished = await events_of(client.nc, "runs")
    assert isinstance(started, RunStarted) and started.task_id == "T9"
    assert (finished.status, finished.level, finished.content) == ("failed", "error", "Traceback ...")
