"""Each kind against a local server that checks the request as the platform does."""

from __future__ import annotations

import sys

from events.reports import ReportFiled, text, title
from services.notifier.kinds import KINDS, Message, Target
from tests.services.conftest import Served
from tests.services.notifier.platforms import BOT_TOKEN, FEISHU_SECRET, HOOK_SECRET, error

REPORT = ReportFiled(team="clawteam", worker="backend-a", task_id="T1", progress="80%", done="export complete",
                     next="aggregate", targets=["x"])
ALERT = ReportFiled(title="[CRITICAL] agent w1 down", body="Alert: AgentDown", severity="critical",
                    link="http://prom/graph?g0.expr=up", status="firing", targets=["x"])


def msg(report: ReportFiled = REPORT) -> Message:
    return Message("r1", "x", title(report), text(report), report)


def target(kind: str, secrets: dict[str, str], **settings: object) -> Target:
    return Target("x", kind, settings, secrets, timeout_s=5.0)


async def test_discord_posts_content_and_records_the_message_id(served: Served) -> None:
    t = target("discord", {"url": f"{served.base}/discord/d1/tok"})
    out = await KINDS["discord"](msg(), t, served.http)
    assert out.ok and out.message_id == "1"
    assert served.platforms.received["d1"] == [text(REPORT)]


async def test_discord_429_honours_retry_after(served: Served) -> None:
    served.platforms.fail("d1", error(429, retry_after="3", retry_after_s=3.0))
    out = await KINDS["discord"](msg(), target("discord", {"url": f"{served.base}/discord/d1/tok"}), served.http)
    assert (out.ok, out.outcome, out.retry_after_s, out.status_code) == (False, "rate_limited", 3.0, 429)


async def test_telegram_needs_ok_true_and_honours_parameters_retry_after(served: Served) -> None:
    t = target("telegram", {"bot_token": BOT_TOKEN}, chat_id="42", api_base=served.base)
    out = await KINDS["telegram"](msg(), t, served.http)
    assert out.ok and out.message_id == "1"
    served.platforms.fail("telegram", error(429, ok=False, error_code=429, description="Too Many Requests: retry after 9",
                                            parameters={"retry_after": 9}))
    out = await KINDS["telegram"](msg(), t, served.http)
    assert (out.ok, out.outcome, out.retry_after_s) == (False, "rate_limited", 9.0)


async def test_telegram_errors_never_carry_the_bot_token(served: Served) -> None:
    t = target("telegram", {"bot_token": BOT_TOKEN}, chat_id="42", api_base="http://127.0.0.1:1")
    out = await KINDS["telegram"](msg(), t, served.http)
    assert not out.ok and out.error and BOT_TOKEN not in out.error


async def test_feishu_sends_a_signed_card_coloured_by_severity(served: Served) -> None:
    t = target("feishu", {"url": f"{served.base}/feishu/signed1", "signing_secret": FEISHU_SECRET})
    out = await KINDS["feishu"](msg(ALERT), t, served.http)
    assert out.ok, out.error
    [card] = served.platforms.received["signed1"]
    assert card["header"]["template"] == "red"
    assert card["header"]["title"]["content"] == "[CRITICAL] agent w1 down"
    assert any(e.get("tag") == "action" and e["actions"][0]["url"] == ALERT.link for e in card["elements"])


async def test_feishu_code_not_zero_is_a_failure_even_with_http_200(served: Served) -> None:
    t = target("feishu", {"url": f"{served.base}/feishu/signed2", "signing_secret": "wrong-secret"})
    out = await KINDS["feishu"](msg(ALERT), t, served.http)
    assert (out.ok, out.status_code) == (False, 200)
    assert "19021" in out.error and served.platforms.received["signed2"] == []


async def test_slack_posts_text(served: Served) -> None:
    out = await KINDS["slack"](msg(), target("slack", {"url": f"{served.base}/slack/s1"}), served.http)
    assert out.ok and served.platforms.received["s1"] == [text(REPORT)]


async def test_webhook_is_signed_and_carries_an_idempotency_key(served: Served) -> None:
    t = target("webhook", {"url": f"{served.base}/hook/signed3", "signing_secret": HOOK_SECRET})
    out = await KINDS["webhook"](msg(), t, served.http)
    assert out.ok and out.status_code == 202
    [got] = served.platforms.received["signed3"]
    assert (got["report_id"], got["idempotency_key"], got["report"]["progress"]) == ("r1", "r1:x", "80%")
    bad = target("webhook", {"url": f"{served.base}/hook/signed3", "signing_secret": "nope"})
    assert not (await KINDS["webhook"](msg(), bad, served.http)).ok


async def test_a_server_error_is_a_failure(served: Served) -> None:
    served.platforms.fail("s2", error(500))
    out = await KINDS["slack"](msg(), target("slack", {"url": f"{served.base}/slack/s2"}), served.http)
    assert (out.ok, out.status_code, out.outcome) == (False, 500, "failed")


async def test_the_command_runs_without_a_shell_with_the_message_in_its_environment(served: Served, tmp_path) -> None:
    out_file = tmp_path / "out.txt"
    script = ("import os,sys; open(sys.argv[1],'w').write(os.environ['OWNER_REPORT_MESSAGE'] + '|' + sys.argv[2])")
    template = f"{sys.executable} -c \"{script}\" {out_file} '{{report_id}};$(touch pwned)'"
    out = await KINDS["command"](msg(), target("command", {}, command=template), served.http)
    assert out.ok, out.error
    assert out_file.read_text() == text(REPORT) + "|r1;$(touch pwned)"
    assert not (tmp_path / "pwned").exists()


async def test_a_failing_or_hanging_command_is_not_a_delivery(served: Served) -> None:
    fail = f"{sys.executable} -c \"import sys; sys.stderr.write('no route'); sys.exit(3)\""
    out = await KINDS["command"](msg(), target("command", {}, command=fail), served.http)
    assert not out.ok and "exit 3: no route" in out.error
    hang = f"{sys.executable} -c \"import time; time.sleep(30)\""
    out = await KINDS["command"](msg(), target("command", {}, command=hang, timeout_s=0.5), served.http)
    assert (out.ok, out.outcome) == (False, "timeout")


async def test_apprise_delivers_only_when_apprise_reports_success(served: Served) -> None:
    url = served.base.replace("http://", "json://") + "/apprise/a1"
    out = await KINDS["apprise"](msg(), target("apprise", {"url": url}), served.http)
    assert out.ok, out.error
    [got] = served.platforms.received["a1"]
    assert (got["title"], got["message"]) == (title(REPORT), text(REPORT))
    served.platforms.fail("a1", error(500))
    out = await KINDS["apprise"](msg(), target("apprise", {"url": url}), served.http)
    assert not out.ok and "failed" in out.error
    out = await KINDS["apprise"](msg(), target("apprise", {"url": "nonsense-scheme://x"}), served.http)
    assert not out.ok and "cannot use this URL" in out.error


def test_a_targets_repr_never_shows_its_secrets() -> None:
    assert BOT_TOKEN not in repr(target("telegram", {"bot_token": BOT_TOKEN}, chat_id="42"))
