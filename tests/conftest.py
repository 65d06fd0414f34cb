"""One real nats-server per test session, on a free port with a temp store.

Isolation without prefixes: the server defines many JetStream-enabled accounts and every test
that asks for `nats_url` gets an account of its own, so streams named `AGENTS` never collide.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from events.core.client import EventClient
from events.core.streams import ensure_streams
from services.runtime.natsd import EmbeddedNats, free_port

ACCOUNTS = 500


def _accounts_conf() -> str:
    accounts = "\n".join(
        f"  A{i}: {{ jetstream: enabled, users: [{{user: u{i}, password: p{i}}}] }}"
        for i in range(ACCOUNTS)
    )
    return f"""
host: 127.0.0.1
max_payload: 2MB
jetstream {{ max_memory_store: 256MB, max_file_store: 10GB }}
accounts {{
{accounts}
}}
"""


class NatsFixture:
    def __init__(self, server: EmbeddedNats) -> None:
        self.server = server
        self._ids = itertools.count()

    def account_url(self) -> str:
        n = next(self._ids)
        if n >= ACCOUNTS:
            raise RuntimeError("out of test accounts; raise ACCOUNTS in tests/conftest.py")
        return f"nats://u{n}:p{n}@{self.server.host}:{self.server.port}"


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsFixture]:
    root: Path = tmp_path_factory.mktemp("nats")
    conf = root / "nats.conf"
    conf.write_text(_accounts_conf())
    server = EmbeddedNats(port=free_port(), store_dir=root / "store", config=conf)
    server.start()
    yield NatsFixture(server)
    server.stop()


@pytest.fixture
def nats_url(nats_server: NatsFixture) -> str:
    """A NATS URL whose account belongs to this test alone."""
    return nats_server.account_url()


@pytest.fixture
async def client(nats_url: str) -> AsyncIterator[EventClient]:
    """An SDK client on a fresh account with every domain stream created."""
    c = await EventClient.connect(nats_url)
    await ensure_streams(c.js)
    yield c
    await c.close()


@pytest.fixture
def spans() -> Iterator[Any]:
    """Finished spans of this test, captured by the OTel SDK's in-memory exporter."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from services.runtime import telemetry

    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    telemetry.add_span_processor(processor)
    yield exporter
    processor.shutdown()


@pytest.fixture
async def host_nc(settings: Any, client: EventClient) -> AsyncIterator[Any]:
    """A service's own connection (streams already created by `client`); `settings` is the
    test module's or folder's fixture."""
    import nats

    nc = await nats.connect(settings.url)
    yield nc
    await nc.close()
