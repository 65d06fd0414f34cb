"""Apprise (`apprise` extra): any of its 100+ services by an Apprise URL, for breadth.

Delivered only when Apprise says the notification succeeded (its `notify` is truthy only on
success; for its HTTP services that is a 2xx). What the other kinds keep and this one loses: no
status code, no message id, no platform retry hint (a 429's Retry-After is not passed on, our own
backoff applies), no platform body check beyond what each Apprise plugin does, and Apprise's own
error text is the only detail. A URL Apprise cannot parse is a failure, never a silent skip.
"""

from __future__ import annotations

import asyncio
import importlib

import aiohttp

from services.notifier.kinds.base import Message, Outcome, Target, scrub


async def send(msg: Message, target: Target, http: aiohttp.ClientSession) -> Outcome:
    try:
        apprise = importlib.import_module("apprise")
    except ImportError:
        return Outcome(False, error="apprise is not installed: pip install 'agentledger[apprise]'")
    notifier = apprise.Apprise()
    if not notifier.add(target.secrets["url"]):
        return Outcome(False, error=scrub("apprise cannot use this URL", target))
    try:
        ok = await asyncio.wait_for(notifier.async_notify(body=msg.text, title=msg.title), target.timeout_s)
    except TimeoutError:
        return Outcome(False, error=f"no answer within {target.timeout_s:.0f}s", outcome="timeout")
    except Exception as exc:  # noqa: BLE001  (a plugin's own failure is a failed attempt)
        return Outcome(False, error=scrub(f"apprise: {type(exc).__name__}: {exc}", target))
    return Outcome(True) if ok else Outcome(False, error="apprise reported the notification as failed")
