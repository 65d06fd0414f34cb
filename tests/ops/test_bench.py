"""The deployment benchmarks run end to end with tiny parameters and print the JSON the README quotes.

No figure is asserted (timing on a shared machine proves nothing); what must hold is that each
script starts `agentledger up`, drives it, stops it, and reports the fields the README relies on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "ops" / "bench"


def run(script: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode in (0, 1), done.stderr[-2000:]  # rebuild exits 1 when its goal is missed
    return json.loads(done.stdout[done.stdout.index("{"):])


@pytest.mark.parametrize("client", ["wrk", "python"])
def test_proxy_reports_ratio_latency_and_usage_against_up(client: str) -> None:
    if client == "wrk" and shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    result = run("proxy.py", "--seconds", "1", "--rounds", "1", *(["--python-client"] if client == "python" else []))
    assert result["deployment"] == "agentledger up"
    assert result["load_generator"].startswith(client)
    assert result["usage_matches"] and result["requests_served"] > 0
    row = result["rounds"][0]
    assert row["gateway_c32"]["non_2xx"] == 0 and row["direct_c32"]["rps"] > 0
    assert {"rps_ratio_c32", "p50_added_ms_c4", "p99_added_ms_c4"} <= result.keys()
    assert len(result["machine"]["load_average"]) == 3


def test_freshness_sees_every_probe_heartbeat_through_http() -> None:
    result = run("freshness.py", "--rate", "200", "--samples", "5")
    assert result["acked_to_visible"]["n"] == 5
    assert result["baseline_http_get"]["n"] == 6
    assert result["background_rate_achieved"] > 0


def test_claims_runs_every_command_through_nats_and_http() -> None:
    result = run("claims.py", "--agents", "4", "--cycles", "1", "--rounds", "1", "--rate", "200")
    row = result["rounds"][0]
    assert row["saturated"]["nats"]["failed"] == row["paced"]["nats"]["failed"] == 0
    assert row["saturated"]["http"]["failed"] == 0
    assert result["deployment"] == "agentledger up"


def test_rebuild_folds_every_published_event() -> None:
    result = run("rebuild.py", "--events", "2000", "--repeat", "1")
    assert result["deployment"] == "agentledger up"
    assert result["events"] == 2000 and result["rebuild_events_per_s"] > 0 and result["raw_decode_events_per_s"] > 0
