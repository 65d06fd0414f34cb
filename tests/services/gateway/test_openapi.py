"""The OpenAPI document is served and a schemathesis run against `agentledger up` finds no 5xx
and no answer that breaks the document."""

from __future__ import annotations

import asyncio
import base64
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from events.core.client import EventClient
from services.gateway.app import create_app, routes
from services.runtime.natsd import free_port
from services.settings import Settings
from tests.hosting import wait_healthy
from tests.services.cli.clirun import clean_env, script

Client = TestClient[Any, Any]
# the one place the fuzzing run gets its credentials from (sent with every request)
ADMIN_TOKEN = "schemathesis-admin-token"
AUTHORIZATION: str | None = f"Bearer {ADMIN_TOKEN}"
UP_ENV = {
    "AGENTLEDGER_ADMIN_TOKEN": ADMIN_TOKEN,
    "AGENTLEDGER_KEYRING": "k1=" + base64.b64encode(bytes(range(32))).decode(),
    "AGENTLEDGER_PROBE_INTERVAL_S": "3600",  # the fuzzed backends' URLs are not worth probing
}
MAX_EXAMPLES = 5  # per operation (33 of them), so the run stays around a minute in CI
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


async def test_the_document_describes_every_api_route(
    client: EventClient, nats_url: str, tmp_path: Path, aiohttp_client: Callable[..., Awaitable[Client]]
) -> None:
    http = await aiohttp_client(create_app(Settings(nats_url=nats_url, home=str(tmp_path))))
    r = await http.get("/api/openapi.json")
    doc = await r.json()
    assert r.status == 200 and doc["openapi"].startswith("3.1")
    served = {(d.method.lower(), d.path) for d in routes() if isinstance(d, aiohttp.web.RouteDef)
              and d.path.startswith(("/api/", "/health"))}
    described = {(m, p.replace("{verb}", "")) for p, ops in doc["paths"].items() for m in ops}
    missing = {(m, p) for m, p in served if (m, p) not in described
               and not (p.endswith("{verb}") and any(d[1].startswith(p[:-6]) for d in described))}
    assert missing == set()
    heartbeat = doc["components"]["schemas"]["AgentHeartbeat"]["properties"]["round"]["anyOf"][0]
    assert heartbeat == {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}


@pytest.fixture
async def up(tmp_path: Path) -> AsyncIterator[str]:
    """`agentledger up` as a person runs it; yields the gateway's base URL."""
    http_port = free_port()
    log = (tmp_path / "up.log").open("wb")  # a file, not a pipe: a full pipe would stall the gateway
    proc = await asyncio.create_subprocess_exec(
        script(), "up", "--home", str(tmp_path / "home"), "--nats-port", str(free_port()),
        "--http-port", str(http_port), env=clean_env(**UP_ENV), cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=log,
    )
    base = f"http://127.0.0.1:{http_port}"
    try:
        await wait_healthy(proc, base)
        yield base
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(proc.wait(), 60)
        log.close()


async def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(up: str, tmp_path: Path) -> None:
    args = [
        str(Path(sys.executable).with_name("st")), "run", f"{up}/api/openapi.json", "--checks", CHECKS,
        "--max-examples", str(MAX_EXAMPLES), "--seed", "10", "--generation-database", "none",
        # no coverage phase: on this schema it trips CPython 3.11's "AST constructor recursion
        # depth mismatch" inside hypothesis' lambda descriptions, an interpreter bug, not an answer
        "--phases", "examples,fuzzing", "--workers", "2", "--no-color",
        "--request-timeout", "30", "--suppress-health-check", "all",
    ]
    if AUTHORIZATION:
        args += ["-H", f"Authorization: {AUTHORIZATION}"]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 900)
    assert proc.returncode == 0, out.decode()[-6000:]
