"""How an SQL worker starts: at the lowest CPU priority the OS has, before it costs anything, so
the API's processes never wait behind it.

The runner starts `python -S launcher.py projections.runtime.adhoc.worker` in a new session: this
file lowers its own priority first, then loads `site` and runs the worker module, so the
interpreter's and DuckDB's start-up (0.3 s of CPU each) runs at that priority too. Lowered by the
parent after the start instead, four workers started together spent their first tens of
milliseconds at normal priority and `GET /api/agents` waited 50-100 ms behind them.

SCHED_IDLE alone is not enough where the kernel groups tasks for fairness (autogroup, on by default
in Debian's and Ubuntu's kernels: one group per session): the scheduler first shares the CPU
between groups, so an idle-class worker in the service's group keeps that group busy against other
tenants, and every wake-up of a service then waits its group's turn. So a worker starts in a
session of its own (the runner passes `start_new_session`) and its group is niced to 10: the
services' group stays idle between requests and wins the core when one arrives, and a worker still
gets about a tenth of a core from a busy tenant (at 19 it got under 1 % and its queries only timed
out). Measured on the 2-core host with two busy tenants, two CPU-bound queries running:
`GET /api/agents` p50 20 -> 9-11 ms, p99 56-64 -> 24-28 ms (ops/bench/sql_abuse.py).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

LOWEST_NICE = 19
GROUP_NICE = 10  # of a worker's own autogroup; see above


def lowest_priority(pid: int = 0) -> str:
    """SCHED_IDLE where the OS has it (the worker runs only on CPU time nothing else of its group
    wants, and a waking thread takes the core from it at once), else nice 19; then its autogroup
    at GROUP_NICE where there is one. Returns which took ("idle", "nice" or "")."""
    took = ""
    try:
        os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        took = "idle"
    except AttributeError:  # no SCHED_IDLE (macOS)
        if pid == 0 and os.getpriority(os.PRIO_PROCESS, 0) < LOWEST_NICE:
            os.setpriority(os.PRIO_PROCESS, 0, LOWEST_NICE)
            took = "nice"
    except OSError:  # the worker is already gone
        return ""
    try:
        Path(f"/proc/{pid or 'self'}/autogroup").write_text(str(GROUP_NICE))
    except OSError:  # no autogroup (kernel without it, or the tasks live in a cgroup instead)
        pass
    return took


def is_lowest(pid: int = 0) -> bool:
    try:
        return os.sched_getscheduler(pid) == os.SCHED_IDLE
    except AttributeError:
        return os.getpriority(os.PRIO_PROCESS, pid) >= LOWEST_NICE


def autogroup_nice(pid: int = 0) -> int | None:
    """The nice of the autogroup `pid` is in, None where there is none."""
    try:
        return int(Path(f"/proc/{pid or 'self'}/autogroup").read_text().split("nice")[1])
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads, -1.0 where /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return -1.0


def command(module: str) -> list[str]:
    return [sys.executable, "-S", __file__, module]


def _boot() -> None:
    lowest_priority()
    del sys.path[0]  # this file's folder: its module names must not shadow anything
    import runpy
    import site

    site.main()
    module = sys.argv.pop(1)
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _boot()
