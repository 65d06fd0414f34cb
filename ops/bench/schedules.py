"""Evaluation: JetStream message schedules (nats-server >= 2.12) as the calendar's due times.

Starts its own nats-server (temp store, free port) and asks three questions, printing one JSON
object with the answers:
  (a) accuracy: `Nats-Schedule: @at <time>` messages, each targeting its own subject; how late is
      the message the server produces, against the time asked for (stream timestamps);
  (b) restart: a schedule due while the server is stopped; is it produced after the restart, and
      how late;
  (c) fit: can the CALENDAR stream's settings (deny_delete, deny_purge, discard new) carry
      schedules, and can a schedule be moved or cancelled there (a slot deferred or removed).

    python ops/bench/schedules.py [--n 20] [--lead 2.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import nats.js.errors
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from services.runtime.natsd import EmbeddedNats, free_port


def at(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def produced(js: Any, stream: str, subject: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return await js.get_msg(stream, subject=subject)
        except nats.js.errors.NotFoundError:
            await asyncio.sleep(0.05)
    return None


async def accuracy(js: Any, n: int, lead: float) -> dict[str, Any]:
    await js.add_stream(StreamConfig(name="SCHED", subjects=["sched.>", "fire.>"], storage=StorageType.FILE,
                                     allow_msg_schedules=True))
    asked = {}
    for i in range(n):
        when = at(lead + i % 3)
        asked[i] = datetime.fromisoformat(when)
        await js.publish(f"sched.s{i}", b"due", headers={"Nats-Schedule": f"@at {when}",
                                                         "Nats-Schedule-Target": f"fire.s{i}"})
    late = []
    for i in range(n):
        msg = await produced(js, "SCHED", f"fire.s{i}", lead + 10)
        late.append(None if msg is None else (msg.time - asked[i]).total_seconds())
    got = [x for x in late if x is not None]
    return {"scheduled": n, "produced": len(got), "late_s_min": min(got, default=None),
            "late_s_max": max(got, default=None)}


async def restart(server: EmbeddedNats, url: str, lead: float) -> dict[str, Any]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    when = at(lead)
    await js.publish("sched.r", b"due", headers={"Nats-Schedule": f"@at {when}", "Nats-Schedule-Target": "fire.r"})
    await nc.close()
    server.stop()
    await asyncio.sleep(lead + 1.0)  # the schedule falls due while the server is down
    server.start()
    nc = await nats.connect(url)
    msg = await produced(nc.jetstream(), "SCHED", "fire.r", 15)
    await nc.close()
    asked = datetime.fromisoformat(when)
    return {"produced_after_restart": msg is not None,
            "late_s": None if msg is None else round((msg.time - asked).total_seconds(), 3)}


async def fit(js: Any, lead: float) -> dict[str, Any]:
    cfg = StreamConfig(name="IMMUTABLE", subjects=["imm.>"], storage=StorageType.FILE, discard=DiscardPolicy.NEW,
                       deny_delete=True, deny_purge=True, allow_msg_schedules=True, allow_atomic=True)
    out: dict[str, Any] = {}
    try:
        await js.add_stream(cfg)
        out["calendar_stream_settings_with_schedules"] = "created"
    except nats.js.errors.APIError as exc:
        out["calendar_stream_settings_with_schedules"] = f"refused: {exc.description}"
        cfg.discard = DiscardPolicy.OLD  # the rest of CALENDAR's settings, to see what else breaks
        try:
            await js.add_stream(cfg)
            out["same_with_discard_old"] = "created"
        except nats.js.errors.APIError as exc2:
            out["same_with_discard_old"] = f"refused: {exc2.description}"
            return out
    await js.publish("imm.sched.x", b"1", headers={"Nats-Schedule": f"@at {at(lead)}", "Nats-Schedule-Target": "imm.fire.x"})
    # moving the slot: a second schedule on the same subject
    await js.publish("imm.sched.x", b"2", headers={"Nats-Schedule": f"@at {at(lead + 1)}", "Nats-Schedule-Target": "imm.fire.x"})
    await asyncio.sleep(lead + 3)
    fired = 0
    seq = 0
    while True:
        try:
            m = await js.get_msg("IMMUTABLE", seq=seq + 1, subject="imm.fire.x", next=True)
        except nats.js.errors.NotFoundError:
            break
        fired += 1
        seq = m.seq
    out["fired_after_moving_once"] = fired
    try:
        ok = await js.purge_stream("IMMUTABLE", subject="imm.sched.x")
        out["cancel_by_purge"] = "allowed" if ok else "not done"
    except nats.js.errors.APIError as exc:
        out["cancel_by_purge"] = f"refused: {exc.description}"
    return out


async def main(n: int, lead: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedNats(port=free_port(), store_dir=Path(tmp) / "store")
        server.start()
        url = f"nats://127.0.0.1:{server.port}"
        try:
            nc = await nats.connect(url)
            js = nc.jetstream()
            result = {"accuracy": await accuracy(js, n, lead), "fit": await fit(js, lead)}
            await nc.close()
            result["restart"] = await restart(server, url, lead)
        finally:
            server.stop()
    return result


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20)
    p.add_argument("--lead", type=float, default=2.0)
    a = p.parse_args()
    print(json.dumps(asyncio.run(main(a.n, a.lead)), indent=2))
