"""The target kinds: one module per platform, each `send(message, target, http) -> Outcome`."""

from services.notifier.kinds import apprise, command, discord, feishu, slack, telegram, webhook
from services.notifier.kinds.base import Kind, Message, Outcome, Target

KINDS: dict[str, Kind] = {
    "discord": discord.send,
    "telegram": telegram.send,
    "feishu": feishu.send,
    "slack": slack.send,
    "webhook": webhook.send,
    "command": command.send,
    "apprise": apprise.send,
}

__all__ = ["KINDS", "Kind", "Message", "Outcome", "Target"]
