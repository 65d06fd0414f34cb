"""The dispatcher's pure decisions: who may be woken, with which words, by which command line.

No I/O here: the agents and tasks come in as rows from the read models, time comes in as `now`,
and the answers are plain values the shell (`services.dispatcher.loop`) acts on. The outcome rules
themselves (`classify`, `follow_up`) live in `events.tasks.attempts`.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, NamedTuple

STREAM_TAIL = 64 * 1024  # bytes of stdout and of stderr kept per attempt (the tail)
ERROR_CHARS = 2000  # stderr characters recorded with a failed attempt
PLACEHOLDERS = ("agent_id", "task_id", "message", "session_id")
SESSION_PLACEHOLDERS = ("agent_id",)


class TemplateError(ValueError):
    """The wake command template cannot be used; the message names the setting."""


def wakeable(
    agents: Iterable[Mapping[str, Any]], running: Mapping[str, int], now: datetime
) -> list[str]:
    """Agents that may be woken now, in id order: registered or heard of, `idle`, not cooling
    down, and running fewer attempts than their concurrency limit."""
    out = []
    for a in agents:
        if a.get("status") != "idle":
            continue
        until = a.get("cooldown_until")
        if until is not None and _aware(until) > now:
            continue
        if running.get(a["id"], 0) >= (a.get("concurrency_limit") or 1):
            continue
        out.append(a["id"])
    return sorted(out)


def cooldown_expired(agent: Mapping[str, Any], now: datetime) -> bool:
    """The agent's cooldown is over but not yet ended by a `cooldown_ended` event."""
    until = agent.get("cooldown_until")
    return until is not None and _aware(until) <= now


def _aware(value: datetime | str) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def unread_mail(inbox: Iterable[Mapping[str, Any]]) -> int:
    """Messages of an inbox query nobody has read yet."""
    return sum(1 for m in inbox if not (m["read"] if "read" in m else m.get("read_at") is not None))


def check_template(template: str) -> list[str]:
    """Split once at start so a bad template fails there, naming the placeholder."""
    try:
        args = shlex.split(template)
    except ValueError as exc:
        raise TemplateError(f"dispatch_command: cannot split {template!r}: {exc}") from None
    if not args:
        raise TemplateError("dispatch_command is empty")
    for arg in args:
        _fill("dispatch_command", arg, PLACEHOLDERS)
    return args


def check_session_file(template: str) -> str:
    """`dispatch_session_file`: a path template whose only placeholder is `{agent_id}`."""
    if not template.strip():
        raise TemplateError("dispatch_session_file is empty")
    return _fill("dispatch_session_file", template, SESSION_PLACEHOLDERS)


def _fill(setting: str, template: str, known: tuple[str, ...]) -> str:
    try:
        return template.format(**{p: "" for p in known})
    except (KeyError, IndexError, ValueError) as exc:
        raise TemplateError(
            f"{setting}: {template!r} uses an unknown placeholder {exc}; known: "
            + ", ".join("{" + p + "}" for p in known)
        ) from None


def command_line(template: str, **values: str) -> list[str]:
    """argv for `create_subprocess_exec`: split the template first, then fill each argument, so a
    message with spaces, quotes or `;` stays one argument and no shell ever reads it."""
    return [arg.format(**values) for arg in check_template(template)]


class Meta(NamedTuple):
    transport: str | None
    fallback_reason: str | None
    duration_ms: int | None
    raw: dict[str, Any] | None


def parse_meta(stdout: str) -> Meta:
    """The agent's JSON meta: the last stdout line that is a JSON object (`openclaw agent --json`
    prints it last); its `meta` member when it has one."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if not isinstance(data, dict):
            continue
        meta = data.get("meta") if isinstance(data.get("meta"), dict) else data
        duration = meta.get("durationMs")
        return Meta(
            _text(meta.get("transport")),
            _text(meta.get("fallbackReason")),
            int(duration) if isinstance(duration, (int, float)) and duration >= 0 else None,
            meta,
        )
    return Meta(None, None, None, None)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:2000]


# --- identifiers of policy decisions: the same decision always has the same Nats-Msg-Id ---------


def decision_id(kind: str, task_id: str, attempt: int, *extra: object) -> str:
    return ":".join(["dispatch", kind, task_id, str(attempt), *map(str, extra)])


# --- wake prompts ---------------------------------------------------------------------------


def report_back(task_id: str, agent_id: str, http_url: str) -> str:
    """The exact commands an agent uses to report, in the three ways in (CLI, SDK, HTTP)."""
    api = f"{http_url.rstrip('/')}/api/tasks/{task_id}"
    return f"""## Report back (any one of the three ways)
CLI:
    agentledger tasks start {task_id} --agent {agent_id}
    agentledger tasks progress {task_id} --agent {agent_id} --progress 50 --note "<what is done>"
    agentledger tasks add_output {task_id} --agent {agent_id} --type code --title "<title>" --content "<content>"
    agentledger tasks submit {task_id} --agent {agent_id} --summary "<what you delivered>"
    agentledger tasks fail {task_id} --agent {agent_id} --error "<why it cannot be done>"
Python SDK:
    from events.tasks.client import TaskClient
    tasks = TaskClient(nc)  # nc: a connected nats.aio.client.Client
    await tasks.start("{task_id}", agent_id="{agent_id}")
    await tasks.add_output("{task_id}", agent_id="{agent_id}", type="code", title="<title>", content="<content>")
    await tasks.submit("{task_id}", agent_id="{agent_id}", summary="<what you delivered>")
HTTP:
    curl -X POST {api}/start -H 'Content-Type: application/json' -d '{{"agent_id": "{agent_id}"}}'
    curl -X POST {api}/add_output -H 'Content-Type: application/json' \\
      -d '{{"agent_id": "{agent_id}", "type": "code", "title": "<title>", "content": "<content>"}}'
    curl -X POST {api}/submit -H 'Content-Type: application/json' \\
      -d '{{"agent_id": "{agent_id}", "summary": "<what you delivered>"}}'
    curl -X POST {api}/fail -H 'Content-Type: application/json' \\
      -d '{{"agent_id": "{agent_id}", "error": "<why it cannot be done>", "kind": "business"}}'
"""


def task_prompt(
    task: Mapping[str, Any],
    agent_id: str,
    http_url: str,
    *,
    continuation: int = 0,
    max_continuations: int = 3,
) -> str:
    """The wake message for a task: what to do, and how to say how it went."""
    tid = task["id"]
    if continuation:
        head = (
            f"You were interrupted while working on task {tid} (continuation {continuation} of "
            f"{max_continuations}). Check your session history for what you already did, then "
            "finish the work; if it is already done, submit it."
        )
    else:
        head = f"You have claimed task {tid}. Start it, do it, then submit or fail it."
    return f"""{head}

## Task
- id: {tid}
- title: {task.get("title", "")}
- description: {task.get("description") or "-"}
- must haves: {task.get("must_haves") or "-"}
- success criteria: {task.get("success_criteria") or "-"}

Statuses: pending -> claimed -> working -> review -> done; review -> pending (rejected);
any open status -> failed. You are holding it now ({task.get("status", "claimed")}).

{report_back(tid, agent_id, http_url)}"""


def mail_prompt(agent_id: str, unread: int, http_url: str) -> str:
    return f"""You have {unread} unread message(s).
Read them:   agentledger mail inbox {agent_id}
             curl {http_url.rstrip("/")}/api/agents/{agent_id}/inbox
Mark read:   agentledger mail read <message id> --agent {agent_id}
Reply with:  agentledger mail send --from {agent_id} --to <sender> --performative inform \\
               --in-reply-to <message id> --subject "<subject>" --body "<text>"
Do not change any task's status for a message; the system does that."""
