"""Each connection's replies come under its user's own inbox prefix."""

from __future__ import annotations

import pytest

from events.core.inbox import inbox_for


@pytest.mark.parametrize("servers, user, prefix", [
    ("nats://agent-architect:pw@127.0.0.1:4222", None, "_INBOX.agent-architect"),
    ("nats://tasks:p%40ss@a:4222,nats://tasks:p%40ss@b:4222", None, "_INBOX.tasks"),
    (["nats://reader:pw@127.0.0.1:4222"], None, "_INBOX.reader"),
    ("nats://127.0.0.1:4222", "agent-coo", "_INBOX.agent-coo"),
    ("nats://127.0.0.1:4222", None, "_INBOX"),
    ("127.0.0.1:4222", None, "_INBOX"),
])
def test_replies_come_under_the_inbox_of_the_connecting_user(servers: str | list[str], user: str | None,
                                                             prefix: str) -> None:
    assert inbox_for(servers, user) == prefix
