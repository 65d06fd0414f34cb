"""The notifier service: delivers reports and alert notices to their targets (DESIGN §5)."""

from services.notifier.service import Notifier, serve

__all__ = ["Notifier", "serve"]
