"""Fly.io through Slack: status, secrets, approved rolling deploys with rollback, secret set, scale."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.app import Sophia
from bot.core.approvals import ApprovalState
from integrations.fly import Fly, FlyError
from integrations.fly_actions import SECRET_VALUES
from tests.conftest import make_settings
from tests.fakes.fly import FakeFly, digest_of
from tests.fakes.llm import Text, ToolCalls
from tests.test_approvals import APPROVER, REQUESTER, click, wait_state
from tests.test_mention import mention

V1, V2 = "registry.fly.io/web:v1", "registry.fly.io/web:v2"


@pytest.fixture
async def fly() -> AsyncIterator[FakeFly]:
    async with FakeFly() as fake:
        fake.add_app("web")
        for n, state in ((1, "started"), (2, "started"), (3, "stopped")):
            fake.add_machine("web", image=V1, name=f"web-{n}", state=state)
        yield fake


def fly_settings(tmp_path, slack, llm, fly, **overrides):
    values = {
        "fly_api_token": fly.token, "fly_api_url": fly.base_url, "approvers": [APPROVER],
        "deploy_check_timeout": timedelta(seconds=2),
    }  # fmt: skip
    values.update(overrides)
    return make_settings(tmp_path, slack, llm, **values)


@pytest.fixture
async def app(tmp_path, slack, llm, fly) -> AsyncIterator[Sophia]:
    sophia = Sophia(fly_settings(tmp_path, slack, llm, fly), socket_ping_interval=1.0)
    await sophia.start()
    await slack.wait_connected()
    yield sophia
    await sophia.stop()


def ids(fly: FakeFly) -> list[str]:
    return list(fly.apps["web"].machines)


async def private_answer(slack, text: str) -> str:
    envelope = await slack.push_slash_command(text)
    [post] = await slack.wait_for_response_url_post(envelope)
    return post["text"]


async def request(slack, text: str, *, user: str = REQUESTER) -> tuple[str, str, dict]:
    """A slash command that posts an approval request; (approval id, message ts, the post)."""
    await slack.push_slash_command(text, user_id=user)
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    actions = next(b for b in post.args["blocks"] if b["type"] == "actions")
    return actions["elements"][0]["value"], post.response["ts"], post.args


def thread_lines(slack, ts: str) -> list[str]:
    return [
        c.args["text"]
        for c in slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == ts and c.args.get("text")
    ]


async def test_fly_status_renders_a_compact_table(app, slack, fly):
    fly.apps["web"].machines[ids(fly)[1]].config["image"] = "registry.fly.io/web:bad"
    fly.fail_checks("registry.fly.io/web:bad", "HTTP GET /healthz: 503")
    text = await private_answer(slack, "fly status web")
    assert text.count("```") == 2
    table = text.split("```")[1]
    for mid in ids(fly):
        assert mid in table
    assert "started" in table and "stopped" in table and "ams" in table and V1 in table
    assert "1/1 passing" in table and "critical" in table
    assert "HTTP GET /healthz: 503" in text  # the failing check's output, below the table
    assert slack.calls_to("chat.postMessage") == []  # private: nothing posted in the channel


async def test_fly_secrets_lists_names_and_digests_never_values(app, slack, fly):
    fly.add_secret("web", "DATABASE_URL", "postgres://user:hunter2-very-secret@db/prod")
    text = await private_answer(slack, "fly secrets web")
    assert "DATABASE_URL" in text and fly.apps["web"].secrets["DATABASE_URL"]["digest"] in text
    assert "hunter2" not in text


async def test_an_approved_deploy_rolls_out_machine_by_machine(app, slack, fly):
    approval_id, ts, post = await request(slack, f"deploy web {V2}")
    shown = str(post["blocks"])
    assert V2 in shown and all(mid in shown for mid in ids(fly))  # the machines to update
    stored = await app.deps.services.approvals.get(approval_id)
    assert V2 in stored.bound_version and stored.params["image"] == V2
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE, timeout=10)

    assert fly.updates("web") == [(mid, V2) for mid in ids(fly)]  # in order, each once
    first = fly.calls("POST", rf"/machines/{ids(fly)[0]}$")[0].json
    assert first["config"]["services"][0]["internal_port"] == 8080  # the whole config went back
    assert first["config"]["env"] == {"PORT": "8080"}
    stopped = fly.calls("POST", rf"/machines/{ids(fly)[2]}$")[0].json
    assert stopped.get("skip_launch") is True  # a stopped machine stays stopped
    for mid in ids(fly)[:2]:
        [wait] = fly.calls("GET", rf"/machines/{mid}/wait$")
        assert wait.query["state"] == "started" and wait.query["instance_id"]
        assert fly.machine("web", mid).state == "started"
    lines = thread_lines(slack, ts)
    assert any("1/3" in x and "checks passing" in x for x in lines)
    assert any("2/3" in x and "checks passing" in x for x in lines)
    assert any("3/3" in x and "stays stopped" in x for x in lines)
    await slack.wait_for_call("chat.postMessage", lambda c: "Deployed" in c.args.get("text", ""))


async def test_a_machine_failing_its_checks_rolls_back_every_updated_machine(app, slack, fly):
    first, second, third = ids(fly)
    fly.fail_checks(V2, "HTTP GET /healthz: 500 boom", machines=[second])
    approval_id, ts, _ = await request(slack, f"deploy web {V2}")
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.FAILED, timeout=10)

    assert fly.updates("web") == [(first, V2), (second, V2), (second, V1), (first, V1)]
    assert all(fly.image_of("web", mid) == V1 for mid in ids(fly))
    assert not fly.calls("POST", rf"/machines/{third}$")  # the rollout stopped before it
    lines = thread_lines(slack, ts)
    failure = next(x for x in lines if x.startswith(":x:"))
    assert "web-2" in failure and "500 boom" in failure and "rolling back 2 machines" in failure
    assert sum("back on" in x for x in lines) == 2
    result = (await app.deps.services.approvals.get(approval_id)).result
    assert "stopped" in result and "`web-1`" in result and "`web-2`" in result


async def test_checks_that_never_pass_time_out_and_roll_back(tmp_path, slack, llm, fly):
    fly.never_pass(V2)
    settings = fly_settings(tmp_path, slack, llm, fly, deploy_check_timeout=timedelta(seconds=0.6))
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    try:
        await slack.wait_connected()
        approval_id, ts, _ = await request(slack, f"deploy web {V2}")
        await click(slack, approval_id, ts, user=APPROVER)
        await wait_state(sophia, approval_id, ApprovalState.FAILED, timeout=10)
        first = ids(fly)[0]
        assert fly.updates("web") == [(first, V2), (first, V1)]
        assert any("did not pass within" in x for x in thread_lines(slack, ts))
    finally:
        await sophia.stop()


async def test_double_clicks_update_each_machine_once(app, slack, fly):
    approval_id, ts, _ = await request(slack, f"deploy web {V2}")
    await asyncio.gather(
        click(slack, approval_id, ts, user=APPROVER, action_ts="2.1"),
        click(slack, approval_id, ts, user=APPROVER, action_ts="2.1"),
        click(slack, approval_id, ts, user=APPROVER, action_ts="2.2"),
    )
    await wait_state(app, approval_id, ApprovalState.DONE, timeout=10)
    await asyncio.sleep(0.3)
    assert fly.updates("web") == [(mid, V2) for mid in ids(fly)]


async def test_a_restart_mid_deploy_finishes_without_updating_a_machine_twice(
    tmp_path, slack, llm, fly
):
    first, second, third = ids(fly)
    fly.hold(second)  # its checks stay pending while Sophia is stopped mid-rollout
    settings = fly_settings(
        tmp_path, slack, llm, fly, shutdown_grace=timedelta(seconds=0.1),
        deploy_check_timeout=timedelta(seconds=5),
    )  # fmt: skip
    before = Sophia(settings, socket_ping_interval=1.0)
    await before.start()
    await slack.wait_connected()
    approval_id, ts, _ = await request(slack, f"deploy web {V2}")
    await click(slack, approval_id, ts, user=APPROVER)
    for _ in range(200):
        if (second, V2) in fly.updates("web"):
            break
        await asyncio.sleep(0.02)
    await before.stop()  # cut off while waiting for web-2's checks
    assert (await_state := fly.updates("web")) == [(first, V2), (second, V2)], await_state
    fly.release(second)

    after = Sophia(settings, socket_ping_interval=1.0)
    await after.start()  # reconcile resumes the rollout
    try:
        request_now = await after.deps.services.approvals.get(approval_id)
        assert request_now.state == ApprovalState.DONE, request_now.result
        assert fly.updates("web") == [(first, V2), (second, V2), (third, V2)]
        await slack.wait_for_call(
            "chat.postMessage", lambda c: "After a restart" in c.args.get("text", "")
        )
        assert any("3/3" in x for x in thread_lines(slack, ts))
    finally:
        await after.stop()


async def test_a_secret_value_never_reaches_slack_logs_or_the_approvals_table(
    app, slack, fly, caplog
):
    value = "sk-live-Zq8vWm3-never-show-me-4711"
    caplog.set_level(logging.DEBUG, logger="sophia")
    caplog.set_level(logging.INFO)
    await slack.push_slash_command("fly secrets set web STRIPE_KEY")
    [opened] = await slack.wait_for_call("views.open")
    view = opened.args["view"]
    values = {"value": {"v": {"type": "plain_text_input", "value": value}}}
    await slack.push_interactive(
        {"type": "view_submission", "user": {"id": REQUESTER}, "view": {**view, "state": {"values": values}}}
    )  # fmt: skip
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    assert "STRIPE_KEY" in str(post.args["blocks"])
    approval_id = next(b for b in post.args["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    stored = await app.deps.services.approvals.get(approval_id)
    assert value not in json.dumps(stored.params) + json.dumps(stored.facts) + stored.summary
    await click(slack, approval_id, post.response["ts"], user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE)

    [set_call] = fly.calls("POST", r"/secrets/STRIPE_KEY$")
    assert set_call.json == {"value": value}  # Fly got it, once
    assert fly.apps["web"].secrets["STRIPE_KEY"]["value"] == value
    assert await app.deps.store.kv_get(SECRET_VALUES, approval_id) is None  # forgotten
    await slack.wait_for_call(
        "chat.postMessage", lambda c: "Set `STRIPE_KEY`" in c.args.get("text", "")
    )
    listed = await private_answer(slack, "fly secrets web")
    assert "STRIPE_KEY" in listed
    for call in slack.calls:
        assert value not in json.dumps(call.args, default=str), call.method
    assert all(value not in json.dumps(p) for p in slack.response_url_posts)
    assert value not in caplog.text


async def test_scale_count_is_an_approved_action(app, slack, fly):
    approval_id, ts, post = await request(slack, "fly scale web 4")
    assert "3 → 4" in str(post["blocks"])
    assert not fly.calls("POST", r"/apps/web/machines$")  # nothing before approval
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE)
    [create] = fly.calls("POST", r"/apps/web/machines$")
    assert create.json["config"]["image"] == V1 and len(fly.apps["web"].machines) == 4


async def test_scale_size_resizes_every_machine(app, slack, fly):
    approval_id, ts, _ = await request(slack, "fly scale web shared-cpu-2x")
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE)
    for mid in ids(fly):
        guest = fly.machine("web", mid).config["guest"]
        assert (guest["cpus"], guest["memory_mb"]) == (2, 512)
        assert fly.image_of("web", mid) == V1


async def test_the_model_can_only_request_a_deploy(app, slack, llm, fly):
    llm.script(
        ToolCalls([("fly_deploy", {"app": "web", "image": V2})]), Text("Asked for approval.")
    )
    await slack.push_event(mention("deploy v2 of web please"))
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    assert V2 in str(post.args["blocks"])
    await slack.wait_for_call("chat.stopStream")
    assert fly.updates("web") == []


async def test_without_a_token_the_commands_name_the_variable(tmp_path, slack, llm, fly):
    sophia = Sophia(make_settings(tmp_path, slack, llm), socket_ping_interval=1.0)
    await sophia.start()
    try:
        await slack.wait_connected()
        for command in ("fly status web", f"deploy web {V2}", "fly secrets web"):
            assert "FLY_API_TOKEN" in await private_answer(slack, command)
        assert sophia.deps.core.tools.get("fly_status") is None
        assert sophia.deps.core.tools.get("fly_deploy") is None
        assert fly.requests == []
    finally:
        await sophia.stop()


async def test_a_refused_token_is_said_plainly(fly):
    with pytest.raises(FlyError, match="FLY_API_TOKEN was refused"):
        await Fly(token="fo1_wrong", base_url=fly.base_url).machines("web")


async def test_deploy_without_an_image_redeploys_the_current_one(app, slack, fly):
    before = {mid: fly.machine("web", mid).instance_id for mid in ids(fly)}
    approval_id, ts, post = await request(slack, "deploy web")
    assert "Redeploy" in post["text"] and V1 in str(post["blocks"])
    assert digest_of(V1).split(":")[1][:12] in str(post["blocks"])  # bound to the digest Fly gives
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE, timeout=10)
    assert fly.updates("web") == [(mid, V1) for mid in ids(fly)]  # each machine once
    assert all(fly.machine("web", mid).instance_id != before[mid] for mid in ids(fly))


async def test_deploying_the_image_already_running_is_refused_with_a_hint(app, slack, fly):
    text = await private_answer(slack, f"deploy web {V1}")
    assert "already runs" in text and "/sophia deploy web" in text
    assert slack.calls_to("chat.postMessage") == []
