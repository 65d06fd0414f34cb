"""The watchdog service: the HEARTBEAT rules applied from the streams (`events.watchdog`)."""

from services.watchdog.service import Watchdog, policy_of, serve

__all__ = ["Watchdog", "policy_of", "serve"]
