"""The default deployment as users run it, for the benchmarks: `agentledger up` as a child process.

The benchmarks measured hand-assembled pieces before (a gateway-only process, an in-process tasks
service), which flattered the numbers; users run `up`, so this starts exactly that on a temp home
and free ports, with throwaway admin token, gateway key and keyring, and waits for readiness.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Self

from events.core.client import EventClient
from services.runtime.natsd import free_port

ADMIN_TOKEN = "bench-admin-token-0123456789"
GATEWAY_KEY = "bench-gateway-key-0123456789"


def machine() -> dict[str, Any]:
    """The figures mean little without the load the shared machine was under while they were taken."""
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


class Deployment:
    def __init__(self, *, log: Path | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="agentledger-bench-")
        self.home = Path(self._tmp.name) / "home"
        self.nats_port, self.http_port = free_port(), free_port()
        self.nats_url = f"nats://127.0.0.1:{self.nats_port}"
        self.http = f"http://127.0.0.1:{self.http_port}"
        self._log = log or Path(self._tmp.name) / "up.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        env = dict(os.environ, AGENTLEDGER_HOME=str(self.home), AGENTLEDGER_ADMIN_TOKEN=ADMIN_TOKEN,
                   AGENTLEDGER_GATEWAY_KEYS=GATEWAY_KEY, AGENTLEDGER_LOG_LEVEL="WARNING",
                   AGENTLEDGER_KEYRING="k1=" + base64.b64encode(os.urandom(32)).decode())
        exe = Path(sys.executable).parent / "agentledger"
        with open(self._log, "wb") as out:
            self._proc = subprocess.Popen(
                [str(exe), "up", "--nats-port", str(self.nats_port), "--http-port", str(self.http_port)],
                cwd=self._tmp.name, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a killed bench still stops its `up`
        try:
            self._wait_ready(60.0)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise RuntimeError(f"agentledger up exited {self._proc.returncode}: {self._log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.http + "/health", timeout=1.0):
                    return  # 200: every service is up (a 503 raises)
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"agentledger up not healthy within {timeout:.0f}s: {self._log.read_text()[-2000:]}")

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait(5)
        self._tmp.cleanup()

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    @property
    def credentials(self) -> Path:
        return self.home / "credentials" / "admin.json"

    async def connect(self, **kwargs: Any) -> EventClient:
        return await EventClient.connect(self.nats_url, credentials=self.credentials, **kwargs)

    def admin(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(self.http + path, method=method, data=json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {ADMIN_TOKEN}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10.0) as r:
            return json.loads(r.read())
