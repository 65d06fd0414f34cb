"""One test message straight to a target's platform: `agentledger targets test`, the admin API.

Nothing is queued or recorded: the answer is only the platform's verdict, to check a target's
configuration before reports depend on it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp

from events import targets as domain
from events.core.keyring import Keyring
from events.reports import ReportFiled, text, title
from services.notifier.kinds import KINDS, Message, Outcome, Target
from services.targets import opened


async def send_test(keyring: Keyring | None, state: domain.Target, timeout_s: float) -> Outcome:
    """One test message straight to the platform (not queued, not recorded): its verdict."""
    secrets = opened(keyring, state)
    report = ReportFiled(title=f"agentledger test message for {state.name}", source="targets test",
                         body=f"sent {datetime.now(UTC).isoformat(timespec='seconds')}", targets=[state.name])
    msg = Message(f"test-{state.name}", state.name, title(report), text(report), report)
    async with aiohttp.ClientSession() as http:
        return await KINDS[state.kind](msg, Target(state.name, state.kind, state.settings, secrets, timeout_s), http)
