"""`agentledger cluster up --nodes 3`: a local JetStream cluster to try the services against."""

from __future__ import annotations

import argparse
from typing import Any

from services.cli import output as show
from services.cli.run import UsageError, until_signalled
from services.runtime import homelock, loop
from services.runtime.connection import redact
from services.settings import Settings


def add_parsers(sub: Any, common: argparse.ArgumentParser) -> None:
    c = sub.add_parser("cluster", parents=[common], help="a local JetStream cluster for trying and testing")
    verbs = c.add_subparsers(dest="verb", required=True, metavar="VERB")
    u = verbs.add_parser("up", parents=[common], help="run N nats-server nodes here, streams replicated N times")
    u.add_argument("--nodes", type=int, default=3, help="how many nodes (3 or 5; default 3)")
    u.add_argument("--nats-port", type=int, default=None, help="first node's client port (0: any free)")
    u.set_defaults(run=up)


async def up(args: argparse.Namespace, settings: Settings) -> int:
    from services.runtime import cluster

    if args.nodes not in (3, 5):
        raise UsageError("--nodes must be 3 or 5 (a quorum needs an odd number of at least 3)")
    if settings.nats_url is not None:
        raise UsageError("cluster up runs its own servers: unset AGENTLEDGER_NATS_URL / --nats-url")
    with homelock.hold(settings.home_path, "cluster up"):
        async with until_signalled() as tg:
            running: cluster.Cluster = await tg.start(cluster.run, settings, args.nodes)
            loop.freeze_started()
            show.line(f"agentledger cluster of {args.nodes} is up (streams replicas={running.settings.replicas})")
            for node in running.nodes:
                show.line(f"  {node.store_dir.name}  {node.url}  store {node.store_dir}")
            show.line("Run the services against it:")
            show.line(f"  AGENTLEDGER_NATS_URL={redact(running.url)} AGENTLEDGER_REPLICAS={running.settings.replicas} "
                      f"AGENTLEDGER_HOME={settings.home_path} agentledger serve <service>")
            show.line("Ctrl-C stops every node.")
    show.note("cluster stopped")
    return 0
