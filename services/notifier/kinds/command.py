"""The seed's send command: a template run WITHOUT a shell, the message in its environment.

The template is split like a shell line once (`shlex`), then `{report_id}`, `{target}`,
`{title}` and `{message}` are filled in per argument, so a message cannot inject arguments or
shell syntax. The environment adds `OWNER_REPORT_MESSAGE`, `OWNER_REPORT_TITLE`,
`OWNER_REPORT_ID` and `OWNER_REPORT_TARGET`. Exit 0 is a delivery; a non-zero exit or a timeout
(`timeout_s`, default 30; the process is killed) is a failure with the tail of stderr.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex

import aiohttp

from services.notifier.kinds.base import Message, Outcome, Target, scrub

DEFAULT_TIMEOUT_S = 30.0


def argv(template: str, msg: Message) -> list[str]:
    values = {"report_id": msg.report_id, "target": msg.target, "title": msg.title, "message": msg.text}
    out = []
    for arg in shlex.split(template):
        for key, value in values.items():
            arg = arg.replace("{" + key + "}", value)
        out.append(arg)
    return out


async def send(msg: Message, target: Target, http: aiohttp.ClientSession) -> Outcome:
    timeout = float(target.settings.get("timeout_s") or DEFAULT_TIMEOUT_S)
    env = {**os.environ, "OWNER_REPORT_MESSAGE": msg.text, "OWNER_REPORT_TITLE": msg.title,
           "OWNER_REPORT_ID": msg.report_id, "OWNER_REPORT_TARGET": msg.target}
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv(str(target.settings["command"]), msg), env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
    except (OSError, ValueError) as exc:
        return Outcome(False, error=scrub(f"cannot run the command: {exc}", target))
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        return Outcome(False, error=f"the command ran over {timeout:.0f}s and was killed", outcome="timeout")
    if proc.returncode == 0:
        return Outcome(True)
    tail = stderr[-200:].decode(errors="replace").strip()
    return Outcome(False, error=scrub(f"exit {proc.returncode}: {tail}", target))
