"""Where a connection's replies arrive: under `_INBOX.<user>`, which only that user may read.

nats-py (and the `nats` CLI) put every reply subject under one prefix, `_INBOX` by default, and a
server that let everyone subscribe to `_INBOX.>` would let any client read the JetStream acks,
query answers and command results meant for another. The server config agentledger generates
lets each user subscribe only under its own prefix, and its clients connect with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote, urlsplit

DEFAULT_INBOX = "_INBOX"


def inbox_prefix(user: str | None) -> str:
    """Where replies to `user` arrive: `_INBOX.<user>`, nats-py's `_INBOX` for no user. The
    server config agentledger generates lets each user subscribe under its own prefix only, so no
    client reads the replies meant for another (JetStream acks, query answers, command results)."""
    return f"{DEFAULT_INBOX}.{user}" if user else DEFAULT_INBOX


def inbox_for(servers: str | Sequence[str], user: str | None = None) -> str:
    """The inbox prefix for a connection as `user`, or as the user a server URL carries."""
    if user is None:
        first = (servers.split(",") if isinstance(servers, str) else list(servers) or [""])[0].strip()
        user = urlsplit(first if "://" in first else f"nats://{first}").username
    return inbox_prefix(unquote(user) if user else None)
