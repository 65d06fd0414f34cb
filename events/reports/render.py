"""What a report says: one text for every channel, a title, and a time-sortable id.

The text follows the seed producer's checkpoint layout, so owners read the same shape whether a
report reaches them by Discord, Telegram, Feishu, Slack, a webhook or a command.
"""

from __future__ import annotations

import os
from datetime import datetime

from events.reports.model import ReportFiled

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_LINES = (("Progress", "progress"), ("Done", "done"), ("Next", "next"), ("Source", "source"))


def new_id(now: datetime, entropy: bytes | None = None) -> str:
    """`r` + a ULID (48-bit ms time, 80 random bits, Crockford base32): sorts by filing time."""
    ms = int(now.timestamp() * 1000)
    rand = int.from_bytes(entropy if entropy is not None else os.urandom(10), "big")
    value = (ms << 80) | rand
    chars = [_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1)]
    return "r" + "".join(chars)


def title(report: ReportFiled) -> str:
    if report.title:
        return report.title
    who = "/".join(p for p in (report.team, report.worker) if p)
    parts = [p for p in (who, report.task_id) if p]
    return f"[{report.status}] {': '.join(parts) or 'report'}"


def text(report: ReportFiled) -> str:
    """Title, the checkpoint fields that are set, then the body."""
    lines = [title(report)]
    if report.team or report.worker:
        lines.append(f"Worker: {'/'.join(p for p in (report.team, report.worker) if p)}")
    if report.task_id:
        lines.append(f"Task: {report.task_id}")
    lines += [f"{label}: {value}" for label, attr in _LINES if (value := getattr(report, attr))]
    if report.status and report.title:
        lines.append(f"Status: {report.status}")
    if report.link:
        lines.append(f"Link: {report.link}")
    if report.body:
        lines += ["", report.body]
    return "\n".join(lines)
