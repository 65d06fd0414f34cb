"""What the CLI prints: rich tables and progress bars on a terminal, plain text when piped.

Results go to stdout, progress and messages to stderr, so `agentledger sql --json ... | jq`
and `agentledger publish ... > seq.txt` stay clean.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
if not out.is_terminal and "COLUMNS" not in os.environ:
    out.width = 1000  # piped: tables at their natural width, never folded at 80 columns


def line(text: str) -> None:
    """One plain line on stdout (no markup, no wrapping), flushed at once."""
    out.print(text, markup=False, highlight=False)
    out.file.flush()


def note(text: str) -> None:
    err.print(text, markup=False, highlight=False)


def fail(text: str) -> None:
    """The one-line reason a command failed, on stderr (a multi-line message is joined)."""
    one = " ".join(part.strip() for part in text.splitlines() if part.strip())
    err.print(f"agentledger: {one}", markup=False, highlight=False, style="red", soft_wrap=True)


def cell(value: Any) -> Text:
    if value is None:
        return Text("NULL", style="dim")
    if isinstance(value, (dict, list)):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


def table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None
) -> None:
    t = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(cell(v) for v in r))
    out.print(t)


def records_json(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Rows as a JSON array of objects, one line, for scripts."""
    line(
        json.dumps(
            [dict(zip(columns, r, strict=True)) for r in rows], ensure_ascii=False, default=str
        )
    )


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


class RateColumn(ProgressColumn):
    """Events per second of the task."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("-- ev/s" if speed is None else f"{speed:,.0f} ev/s", style="cyan")


class Bar:
    """`progress(done, total)` for long work: a rich bar with events/s and ETA on stderr."""

    def __init__(self, progress: Progress, description: str) -> None:
        self.progress = progress
        self.task = progress.add_task(description, total=None)
        self.done = 0

    def __call__(self, done: int, total: int | None = None) -> None:
        self.done = done
        self.progress.update(self.task, completed=done, total=total if total else None)


@contextmanager
def progress_bar(description: str) -> Iterator[Bar]:
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )
    with progress:
        yield Bar(progress, description)
