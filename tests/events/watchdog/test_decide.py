"""One test per watchdog rule, given timed facts, when a pass runs at a time, then decisions."""

from __future__ import annotations

from events.agents import AgentHeartbeat, AgentRegistered
from events.runs import RunFinished, RunStarted
from events.tasks import (
    TaskClaimed,
    TaskCreated,
    TaskProgressed,
    TaskReleased,
    TaskRootCauseRequested,
    TaskStarted,
)
from events.watchdog import Policy, table
from tests.events.watchdog.given import POLICY, given

DEV = AgentRegistered(agent_class="dev")  # stall 30 min, recovery 45 min, task timeout 120 min


def holding(minute: float = 0, agent: str = "architect", task: str = "T1", by: str = "pm"):
    return (
        (minute, f"agents.{agent}", DEV),
        (minute, f"tasks.{task}", TaskCreated(title="t", by=by)),
        (minute, f"tasks.{task}", TaskClaimed(agent_id=agent)),
        (minute, f"agents.{agent}", AgentHeartbeat(status="busy", current_task=task, round=1)),
    )


def test_an_agent_that_heartbeats_is_left_alone() -> None:
    g = given(*holding()).also(
        (25, "agents.architect", AgentHeartbeat(status="busy", current_task="T1")),
        (25, "tasks.T1", TaskProgressed(agent_id="architect", progress=40)),
    )
    g.when(50).then()


def test_silence_past_the_stall_warning_is_suspected_once() -> None:
    g = given(*holding()).when(31)
    g.then(("suspected", "watchdog:suspected:architect:T1:1795251600"))
    g.taken(31).when(32).then()


def test_the_ladder_goes_in_order_suspected_before_recovery_even_when_both_are_due() -> None:
    g = given(*holding()).when(60).then(("suspected", "watchdog:suspected:architect:T1:1795251600"))
    g.taken(60).when(60).then(("timed_out", "watchdog:timed_out:T1:silence:1795251600"))
    ev = g.events[0]
    assert (ev.step, ev.action, ev.why, ev.notify) == (1, "release", "silence", ["coo", "pm"])
    g.taken(60).when(61).then()


def test_the_second_timeout_of_a_task_tells_the_coo_and_the_third_blocks_and_tells_the_owner() -> None:
    g = given(*holding(), (0, "agents.coo", AgentRegistered(agent_class="high_frequency")))
    for n, action in ((1, "release"), (2, "release"), (3, "block")):
        start = (n - 1) * 100
        g.also((start, "agents.architect", AgentHeartbeat(status="busy", current_task="T1")))
        g.when(start + 31).taken(start + 31).when(start + 46)
        assert [(e.name, e.step, e.action) for e in g.events] == [("timed_out", n, action)]
        g.taken(start + 46)
        if n < 3:  # released: the dispatcher claims it again
            g.also((start + 46, "tasks.T1", TaskReleased(reason="watchdog")),
                   (start + 50, "tasks.T1", TaskClaimed(agent_id="architect")))
    assert g.events[0].notify == ["coo", "pm"]


def test_a_task_that_does_not_move_times_out_although_the_agent_heartbeats() -> None:
    g = given(*holding(), (1, "tasks.T1", TaskStarted(agent_id="architect")))
    for m in range(10, 130, 10):
        g.also((m, "agents.architect", AgentHeartbeat(status="busy", current_task="T1")))
    g.when(31).then(("suspected", "watchdog:suspected:architect:T1:stagnation:1795251660"))
    assert (g.events[0].why, g.events[0].silent_s) == ("stagnation", 1800)
    g.taken(31).when(119).then()
    g.when(121).then(("timed_out", "watchdog:timed_out:T1:stagnation:1795251660"))
    assert g.events[0].why == "stagnation"


def test_an_open_run_without_a_log_line_for_the_stuck_timeout_is_stuck_with_a_fix_task() -> None:
    g = given(*holding(), (1, "runs.R1", RunStarted(agent_id="architect", task_id="T1")))
    g.when(10).then()
    g.when(11.5).then(("stuck", "watchdog:stuck:T1:1795251660"))
    assert (g.events[0].fix_task_id, g.events[0].run_id) == ("FIX-T1-STUCK", "R1")


def test_a_finished_run_leaves_the_agent_to_the_silence_ladder() -> None:
    g = given(*holding(), (1, "runs.R1", RunStarted(agent_id="architect", task_id="T1")),
              (2, "runs.R1", RunFinished(status="success")))
    g.when(20).then()
    g.when(33).then(("suspected", "watchdog:suspected:architect:T1:1795251720"))


def test_heartbeat_rounds_warn_at_80_percent_and_pause_at_the_limit_once_per_limit() -> None:
    g = given(*holding(), (1, "tasks.T1", TaskCreated(title="x")))
    g.also((2, "agents.architect", AgentHeartbeat(status="busy", current_task="T1", round=79)))
    g.when(3).then()
    g.also((4, "agents.architect", AgentHeartbeat(status="busy", current_task="T1", round=80)))
    g.when(5).then(("round_warned", "watchdog:round_warned:T1:100")).taken(5).when(6).then()
    g.also((7, "agents.architect", AgentHeartbeat(status="busy", current_task="T1", round=100)))
    g.when(8).then(("round_paused", "watchdog:round_paused:T1:100"))
    assert g.events[0].notify == ["coo", "pm"]


def test_a_dependency_open_past_the_wait_notifies_its_holder_once() -> None:
    g = given(
        (0, "agents.architect", DEV),
        (0, "tasks.D1", TaskCreated(title="dep")),
        (0, "tasks.D1", TaskClaimed(agent_id="designer")),
        (0, "tasks.T2", TaskCreated(title="t", depends_on=["D1"], assignee="architect")),
        (0, "agents.designer", AgentRegistered(agent_class="dev")),
    )
    for m in range(10, 130, 10):
        g.also((m, "agents.designer", AgentHeartbeat(status="busy", current_task="D1")),
               (m, "tasks.D1", TaskProgressed(agent_id="designer", progress=m // 2)))
    g.when(119).then()
    g.when(121).then(("dependency_waited", "watchdog:dependency:T2:D1:claimed"))
    assert g.events[0].notify == ["designer"]
    g.taken(121).when(122).then()


def test_a_cancelled_dependency_goes_to_the_coo_at_once() -> None:
    from events.tasks import TaskCancelled

    g = given(
        (0, "tasks.D1", TaskCreated(title="dep")),
        (0, "tasks.T2", TaskCreated(title="t", depends_on=["D1"])),
        (1, "tasks.D1", TaskCancelled(reason="dropped")),
    )
    g.when(2).then(("dependency_waited", "watchdog:dependency:T2:D1:cancelled"))
    assert g.events[0].notify == ["coo"]


def test_a_backlog_is_noticed_once_per_crossing_and_once_when_it_clears() -> None:
    tasks = [(0, f"tasks.B{i}", TaskCreated(title="b", assignee="architect")) for i in range(6)]
    g = given((0, "agents.architect", DEV), *tasks)
    g.when(1).then(("backlog_noticed", "watchdog:backlog:architect:1")).taken(1).when(2).then()
    g.also((3, "tasks.B0", TaskClaimed(agent_id="architect")))
    g.when(4).then(("backlog_noticed", "watchdog:backlog:architect:2"))
    assert (g.events[0].count, g.events[0].limit) == (5, 5)


def test_root_cause_requested_wakes_the_analyst_with_the_tasks_last_runs() -> None:
    runs = [
        step for i in range(55) for step in (
            (1, f"runs.R{i}", RunStarted(agent_id="architect", task_id="T1")),
            (1, f"runs.R{i}", RunFinished(status="failed")),
        )
    ]
    g = given((0, "tasks.T1", TaskCreated(title="t")), *runs,
              (2, "tasks.T1", TaskRootCauseRequested(failures=3, last_error="boom")))
    g.when(3).then(("analyst_woken", "watchdog:analyst:T1"))
    assert g.events[0].run_ids == [f"R{i}" for i in range(5, 55)]
    assert (g.events[0].analyst, g.events[0].failures) == ("analyst", 3)


def test_without_an_analyst_configured_nobody_is_woken() -> None:
    g = given((0, "tasks.T1", TaskCreated(title="t")),
              (2, "tasks.T1", TaskRootCauseRequested(failures=3)),
              policy=POLICY._replace(analyst=None))
    g.when(3).then()


def test_settings_override_a_class_and_the_agents_registration_overrides_the_class() -> None:
    policy = Policy(classes=table({"dev": {"stall_warning_s": 60}}), coo="coo")
    g = given(*holding(), policy=policy)
    g.when(1.5).then(("suspected", "watchdog:suspected:architect:T1:1795251600"))
    own = AgentRegistered(agent_class="dev", stall_warning_s=600)
    g2 = given((0, "agents.architect", own), *holding()[1:], policy=policy)
    g2.when(5).then()
    g2.when(11).then(("suspected", "watchdog:suspected:architect:T1:1795251600"))
