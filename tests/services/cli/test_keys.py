"""Gateway secrets in the settings, and `agentledger keys rotate`.

Secrets never show in a repr; client keys are held only as SHA-256; the keyring comes from the
environment or a key file, and a malformed one is an error naming the setting.
"""

from __future__ import annotations

import argparse
import base64
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats.js.errors
import orjson
import pytest

from events import providers as p
from events.core.client import EventClient
from events.core.keyring import Keyring, new_key
from events.usage import UsageCompleted
from projections.runtime.protocol import QueryClient
from services.cli import keys as cli_keys
from services.cli.keys import KeysError, next_ring, write_keyring
from services.gateway.app import create_app
from services.gateway.keys import PROXY
from services.projector.service import ProjectorHost
from services.settings import Settings, SettingsError, load
from tests.hosting import running
from tests.polling import eventually
from tests.services.cli.clirun import clean_env, run
from tests.services.gateway.proxy.fixtures import GATEWAY_KEY, start_upstream
from tests.services.gateway.proxy.fixtures import auth as proxy_auth

KEY1 = "k1=" + base64.urlsafe_b64encode(b"\x01" * 32).decode().rstrip("=")


def test_secrets_are_masked_in_repr_str_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    s = load(env={"AGENTLEDGER_ADMIN_TOKEN": "adm-SECRET-1", "AGENTLEDGER_GATEWAY_KEYS": "ck-SECRET-a,ck-SECRET-b",
                  "AGENTLEDGER_KEYRING": KEY1})
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("settings: %s %r", s, s)
    for text in (repr(s), str(s), caplog.text):
        assert "SECRET" not in text and KEY1.split("=")[1] not in text
        assert "admin_token='<set>'" in text


def test_gateway_keys_are_kept_only_as_sha256() -> None:
    s = load(env={"AGENTLEDGER_GATEWAY_KEYS": " ck-SECRET-a , ck-SECRET-b ,"})
    assert all(h.startswith("sha256:") for h in s.gateway_keys) and len(s.gateway_keys) == 2
    assert "ck-SECRET" not in "".join(s.gateway_keys)
    assert s.gateway_key_ok("ck-SECRET-b") and not s.gateway_key_ok("ck-SECRET-c")
    assert not s.gateway_key_ok(s.gateway_keys[0])  # presenting the stored hash does not pass


def test_admin_token_absent_means_disabled_not_open() -> None:
    assert not Settings().admin_token_ok("")
    assert not Settings(admin_token="").admin_token_ok("")
    assert Settings(admin_token="t0k").admin_token_ok("t0k") and not Settings(admin_token="t0k").admin_token_ok("t0")


def test_keyring_from_env_or_file_and_errors_name_the_setting(tmp_path: Path) -> None:
    assert Settings().load_keyring() is None
    assert load(env={"AGENTLEDGER_KEYRING": KEY1}).load_keyring().key_ids == ("k1",)  # type: ignore[union-attr]
    f = tmp_path / "keyring"
    f.write_text(Keyring({"k1": new_key(), "k2": new_key()}).to_env_value() + "\n")
    assert load(env={"AGENTLEDGER_KEYRING_FILE": str(f)}).load_keyring().current == "k2"  # type: ignore[union-attr]
    with pytest.raises(SettingsError, match="AGENTLEDGER_KEYRING"):
        load(env={"AGENTLEDGER_KEYRING": "k1=short"}).load_keyring()
    with pytest.raises(SettingsError, match="keyring_file"):
        Settings(keyring_file=str(tmp_path / "missing")).load_keyring()


# --- the acceptance test: a backend key's plaintext is nowhere; rotation keeps old events readable


KEY_A = "sk-live-PLAINTEXT-aaaa-0123456789"
KEY_B = "sk-live-PLAINTEXT-bbbb-9876543210"
ADMIN = "adm-SECRET-token-42"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


async def every_message(nc: Any) -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(stream, subject, data, headers) of every message of every stream of the account."""
    js = nc.jetstream()
    found = []
    for info in await js.streams_info():
        for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
            try:
                msg = await js.get_msg(info.config.name, seq)
            except nats.js.errors.NotFoundError:
                continue
            found.append((info.config.name, msg.subject, msg.data or b"", dict(msg.headers or {})))
    return found


def files_under(root: Path) -> dict[Path, bytes]:
    return {f: f.read_bytes() for f in root.rglob("*") if f.is_file()}


def assert_nowhere(secrets: list[str], where: str, blobs: list[bytes]) -> None:
    for secret in secrets:
        for blob in blobs:
            assert secret.encode() not in blob, f"plaintext key found in {where}"


async def test_a_backend_key_is_in_no_stream_file_log_or_answer_and_rotation_keeps_old_events(
    nats_url: str, tmp_path: Path, client: EventClient, caplog: pytest.LogCaptureFixture,
    aiohttp_client: Callable[..., Awaitable[Any]],
) -> None:
    caplog.set_level(logging.DEBUG)
    ring_file = tmp_path / "keyring"
    write_keyring(ring_file, Keyring({"k1": new_key()}))
    home = tmp_path / "home"
    settings = Settings(nats_url=nats_url, home=str(home), batch_ms=20, snapshot_interval_s=0.2,
                        admin_token=ADMIN, keyring_file=str(ring_file))
    answers: list[bytes] = []

    async def call(http: Any, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = await http.request(method, path, headers=AUTH, **kw)
        answers.append(await r.read())
        assert r.status == status, answers[-1]
        return await r.json()

    async with running(ProjectorHost(settings, client.nc, ["providers"])) as host:
        http = await aiohttp_client(create_app(settings))
        body = {"id": "bkd_x", "name": "X", "api_base_url": "http://up.local/v1", "api_key": KEY_A,
                "model_mappings": {"gpt": {"native_id": "gpt-4o"}}}
        assert (await call(http, "POST", "/api/admin/backends", 201, json=body))["api_key"] == "sk-liv****6789"
        await call(http, "POST", "/api/admin/backends", 409, json=body)
        await call(http, "POST", "/api/admin/backends", 422, json={**body, "id": "bkd_y", "pool": "nope"})
        await call(http, "PUT", "/api/admin/backends/bkd_x", json={"api_key": KEY_B, "label": "replaced"})
        await call(http, "POST", "/api/admin/backends", 201, json={**body, "id": "bkd_y"})
        await client.publish("bkd_x", UsageCompleted(model="gpt", status=200, latency_ms=5.0))
        for path in ("/api/admin/backends", "/api/admin/backends/bkd_x", "/api/admin/pools",
                     "/api/admin/stats/total", "/api/admin/stats/hourly", "/api/admin/stats/daily",
                     "/api/admin/stats/cooldown"):
            await call(http, "GET", path)

        before = len(await every_message(client.nc))
        r = await run("keys", "rotate", env=clean_env(AGENTLEDGER_NATS_URL=nats_url, AGENTLEDGER_HOME=str(home),
                                                     AGENTLEDGER_KEYRING_FILE=str(ring_file)), cwd=tmp_path)
        assert r.code == 0, r.err
        assert "bkd_x" in r.err and "k2" in r.err and r.out == ""  # the ring went to the file
        assert_nowhere([KEY_A, KEY_B], "the CLI's output", [r.out.encode(), r.err.encode()])
        ring = Settings(keyring_file=str(ring_file)).load_keyring()
        assert ring is not None and ring.key_ids == ("k1", "k2") and ring.current == "k2"

        async def projected() -> Any:
            rows = await QueryClient(client.nc, settings.projector_name, 5).query("providers", "backends")
            return {b["id"]: b["key_id"] for b in rows.records()} == {"bkd_x": "k2", "bkd_y": "k2"}

        await eventually(projected, 30, "the projection sees both backends under k2")
        await host.snapshot("providers")
        http2 = await aiohttp_client(create_app(settings))  # restarted on the new ring
        assert (await call(http2, "GET", "/api/admin/backends/bkd_x"))["api_key"] == "sk-liv****3210"
        assert (await call(http2, "GET", "/api/admin/backends/bkd_y"))["key_id"] == "k2"

    messages = await every_message(client.nc)
    assert len(messages) == before + 2  # one key_rotated per backend
    assert_nowhere([KEY_A, KEY_B], "a stream message", [d + repr(h).encode() for _, _, d, h in messages])
    tokens = {(s.split(".")[1], s.split(".")[2]): orjson.loads(d)["api_key"] for _, s, d, _ in messages
              if s.startswith("providers.") and s.split(".")[2] in ("created", "key_rotated")}
    created_x = next(orjson.loads(d)["api_key"] for _, s, d, _ in messages if s == "providers.bkd_x.created")
    replaced = [orjson.loads(d) for _, s, d, _ in messages if s == "providers.bkd_x.key_rotated"]
    assert [(t.get("reason", "rotation"), t["api_key"].split(":")[0]) for t in replaced] == [("replaced", "k1"), ("rotation", "k2")]
    assert ring.decrypt(created_x, aad="bkd_x") == KEY_A  # an old event still decrypts
    assert ring.decrypt(replaced[0]["api_key"], aad="bkd_x") == KEY_B
    assert ring.decrypt(replaced[1]["api_key"], aad="bkd_x") == KEY_B
    assert ring.decrypt(tokens[("bkd_y", "key_rotated")], aad="bkd_y") == KEY_A
    files = files_under(home)
    assert any(f.suffix == ".duckdb" for f in files), sorted(files)
    assert_nowhere([KEY_A, KEY_B], "a file under the home", list(files.values()))
    assert_nowhere([KEY_A, KEY_B], "an API answer", answers)
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert caplog.records and "bkd_x" in logged
    assert_nowhere([KEY_A, KEY_B, ADMIN], "a log line", [logged.encode()])


def test_a_staged_key_is_added_unused_then_made_current_without_a_third_key() -> None:
    first = Keyring({"k1": new_key()})
    staged = next_ring(first, stage=True)
    assert (staged.key_ids, staged.current) == (("k1", "k2"), "k1")
    with pytest.raises(KeysError, match="k2 is already staged"):
        next_ring(staged, stage=True)
    switched = next_ring(staged, stage=False)
    assert (switched.key_ids, switched.current) == (("k1", "k2"), "k2")
    assert switched.decrypt(staged.encrypt("sk-x", aad="b"), aad="b") == "sk-x"
    assert next_ring(switched, stage=False).current == "k3"


async def test_rotate_without_a_keyring_is_refused_with_what_to_do_and_changes_nothing(
    nats_url: str, tmp_path: Path, client: EventClient
) -> None:
    ring = Keyring({"k1": new_key()})
    await client.append("bkd_n", [p.BackendCreated(backend_name="N", api_base_url="http://n.local",
                                                   api_key=ring.encrypt(KEY_A, aad="bkd_n"))], expected_seq=0)
    for extra in ((), ("--stage",)):
        r = await run("keys", "rotate", *extra, env=clean_env(AGENTLEDGER_NATS_URL=nats_url,
                                                              AGENTLEDGER_HOME=str(tmp_path)), cwd=tmp_path)
        assert r.code == 2, r.err
        assert "no keyring configured" in r.err and "AGENTLEDGER_KEYRING_FILE" in r.err and "Traceback" not in r.err
        assert r.out == "" and "re-encrypted" not in r.err
    assert [s for _, s, _, _ in await every_message(client.nc)] == ["providers.bkd_n.created"]
    with pytest.raises(KeysError, match="no keyring configured"):
        next_ring(None, stage=False)


def test_the_summary_counts_only_backends_that_got_an_event() -> None:
    assert cli_keys.rotation_summary({}, "k2") == "0 backends re-encrypted under key id k2"
    text = cli_keys.rotation_summary({"bkd_a": True, "bkd_b": False, "bkd_c": True}, "k2")
    assert text == "2 backends re-encrypted under key id k2: bkd_a, bkd_c; 1 already under it: bkd_b"


async def test_rotation_in_two_steps_through_the_environment_value(nats_url: str, tmp_path: Path, client: EventClient) -> None:
    ring = Keyring({"k1": new_key()})
    await client.append("bkd_e", [p.BackendCreated(backend_name="E", api_base_url="http://e.local",
                                                   api_key=ring.encrypt(KEY_A, aad="bkd_e"))], expected_seq=0)

    async def cli(*args: str, keyring: str) -> Any:
        r = await run("keys", "rotate", *args, env=clean_env(AGENTLEDGER_NATS_URL=nats_url, AGENTLEDGER_KEYRING=keyring,
                                                            AGENTLEDGER_HOME=str(tmp_path)), cwd=tmp_path)
        assert r.code == 0, r.err
        assert KEY_A not in r.out + r.err
        return r

    staged = Keyring.from_env_value((await cli("--stage", keyring=ring.to_env_value())).out.strip())
    assert (staged.key_ids, staged.current) == (("k1", "k2"), "k1")
    assert [s for _, s, _, _ in await every_message(client.nc)] == ["providers.bkd_e.created"]
    switched = Keyring.from_env_value((await cli(keyring=staged.to_env_value())).out.strip())
    assert (switched.key_ids, switched.current) == (("k1", "k2"), "k2")
    [(_, subject, data, _)] = (await every_message(client.nc))[1:]
    token = orjson.loads(data)["api_key"]
    assert subject == "providers.bkd_e.key_rotated" and token.startswith("k2:")
    assert switched.decrypt(token, aad="bkd_e") == KEY_A


# --- a running gateway follows `keys rotate` through the key file, without a restart


async def test_a_running_gateway_reloads_the_rotated_key_file_and_keeps_serving(
    nats_url: str, tmp_path: Path, client: EventClient, caplog: pytest.LogCaptureFixture,
    aiohttp_client: Callable[..., Awaitable[Any]],
) -> None:
    caplog.set_level(logging.INFO)
    ring_file = tmp_path / "keyring"
    ring = Keyring({"k1": new_key()})
    write_keyring(ring_file, ring)
    settings = Settings(nats_url=nats_url, home=str(tmp_path / "home"), projector_name="nobody",
                        keyring_file=str(ring_file), gateway_keys=GATEWAY_KEY)
    up = await start_upstream("a")
    await client.append("bkd_a", [p.BackendCreated(
        backend_name="A", api_base_url=up.url, api_key=ring.encrypt(KEY_A, aad="bkd_a"),
        model_mappings={"gpt-x": p.ModelMapping(native_id="gpt-a")})], expected_seq=0)
    gw = await aiohttp_client(create_app(settings))
    fold = gw.app[PROXY].fold
    assert fold.reload is not None  # proxy_ctx wires the reload from the settings

    async def served() -> str:
        r = await gw.post("/v1/chat/completions", json=CHAT, headers=proxy_auth())
        assert r.status == 200, await r.text()
        return str(up.seen[-1]["headers"]["Authorization"])

    assert await served() == f"Bearer {KEY_A}"
    assert await cli_keys.rotate(argparse.Namespace(keyring_file=None, stage=False), settings) == 0
    await eventually(lambda: fold.backends["bkd_a"].key_id == "k2", 10, "the gateway folds key_rotated")
    assert await served() == f"Bearer {KEY_A}"  # decrypted under k2, which only the new file holds
    assert fold.keyring is not None and fold.keyring.key_ids == ("k1", "k2") and fold.keyring_reloads == 1

    # a key id no key file holds: that backend stays out of routing, named; the others serve on
    stranger = Keyring({"k9": new_key()})
    [seq] = await client.append("bkd_b", [p.BackendCreated(
        backend_name="B", api_base_url=up.url, api_key=stranger.encrypt(KEY_B, aad="bkd_b"),
        model_mappings={"gpt-x": p.ModelMapping(native_id="gpt-b")})], expected_seq=0)
    await client.append("bkd_b", [p.BackendUpdated(label="still unknown")], expected_seq=seq)
    await eventually(lambda: fold.backends.get("bkd_b", p.Backend(id="-")).label == "still unknown", 10)
    assert [b.id for b in fold.routable()] == ["bkd_a"]
    assert fold.keyring_reloads == 2  # once for k9, not again for its second event
    left_out = [r.getMessage() for r in caplog.records if "bkd_b left out of routing" in r.getMessage()]
    assert left_out and all("'k9' is not in the keyring" in m for m in left_out)
    assert await served() == f"Bearer {KEY_A}"
    assert_nowhere([KEY_A, KEY_B], "a log line", ["\n".join(r.getMessage() for r in caplog.records).encode()])
    assert up.server is not None
    await up.server.close()
