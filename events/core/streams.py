"""Stream specifications (DESIGN §3), defined once, and their idempotent creation.

Streams are immutable logs: deletes and purges are denied, `discard=new` refuses writes at a limit
instead of silently dropping history, and `allow_atomic` lets a decision append several events
as one batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from events.core.subjects import DOMAINS, domain_filter

log = logging.getLogger(__name__)

MAX_MSG_SIZE = 1024 * 1024
DAY = 86_400.0


@dataclass(frozen=True)
class StreamSpec:
    name: str
    domain: str
    max_age_days: float | None = None

    @property
    def subjects(self) -> list[str]:
        return [domain_filter(self.domain)]


STREAMS: dict[str, StreamSpec] = {
    d: StreamSpec(d.upper(), d, {"usage": 90.0, "runs": 30.0}.get(d)) for d in DOMAINS
}


def stream_name(domain: str) -> str:
    return STREAMS[domain].name


def positions(written: Iterable[tuple[str, int]]) -> dict[str, int]:
    """`{stream: highest seq}` of `(subject, seq)` writes: what a read must wait for to see them."""
    out: dict[str, int] = {}
    for subject, seq in written:
        stream = stream_name(subject.split(".", 1)[0])
        out[stream] = max(out.get(stream, 0), seq)
    return out


def position_text(position: dict[str, int]) -> str:
    """`TASKS:42,MAIL:7`, the form queries take as `after=`."""
    return ",".join(f"{s}:{q}" for s, q in sorted(position.items()))


def stream_config(
    spec: StreamSpec,
    *,
    replicas: int = 1,
    duplicate_window_s: float = 600.0,
    max_age_days: dict[str, float] | None = None,
) -> StreamConfig:
    age = (max_age_days or {}).get(spec.domain, spec.max_age_days)
    return StreamConfig(
        name=spec.name,
        subjects=spec.subjects,
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.NEW,
        max_msg_size=MAX_MSG_SIZE,
        max_age=(age * DAY) if age else 0,
        duplicate_window=duplicate_window_s,
        num_replicas=replicas,
        deny_delete=True,
        deny_purge=True,
        allow_direct=True,
        allow_atomic=True,
    )


_COMPARED = (
    "subjects", "discard", "max_msg_size", "max_age", "duplicate_window", "num_replicas",
    "deny_delete", "deny_purge", "allow_direct", "allow_atomic",
)


async def ensure_stream(js: JetStreamContext, cfg: StreamConfig) -> str:
    """Create the stream or bring it to `cfg`; returns "created", "updated" or "unchanged"."""
    try:
        info = await js.stream_info(cfg.name)
    except NotFoundError:
        await js.add_stream(cfg)
        log.info("stream %s created subjects=%s", cfg.name, cfg.subjects)
        return "created"
    current = info.config
    if all(_same(getattr(current, f), getattr(cfg, f)) for f in _COMPARED):
        return "unchanged"
    await js.update_stream(cfg)
    log.info("stream %s updated", cfg.name)
    return "updated"


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a or 0) - float(b or 0)) < 1e-6
    return (a or None) == (b or None)


async def ensure_streams(js: JetStreamContext, **kwargs: object) -> dict[str, str]:
    """Every domain stream, created or updated idempotently; returns name -> what happened."""
    out = {}
    for spec in STREAMS.values():
        cfg = stream_config(spec, **kwargs)  # type: ignore[arg-type]
        out[cfg.name] = await ensure_stream(js, cfg)
    return out
