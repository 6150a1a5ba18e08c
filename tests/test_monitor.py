"""Health monitor, self-deployment and /healthz, end to end through fake Slack, GitHub and Fly."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest

from bot.app import Sophia
from bot.core.approvals import ApprovalState
from bot.core.monitor import Finding, Health, Monitor, Snapshot
from bot.store import Store
from tests.conftest import make_settings
from tests.fakes.fly import FakeFly
from tests.fakes.github import FakeGitHub
from tests.fakes.llm import Text
from tests.test_approvals import click, wait_state

ALERTS, REQUESTER, APPROVER = "C0ALERT", "U0USER", "U0BOSS"
WEB_V1, WEB_V2 = "registry.fly.io/web:v1", "registry.fly.io/web:v2"


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub() as fake:
        fake.add_repo("acme/site", files={"README.md": "# Site\n", "app.py": "print('hi')\n"})
        fake.add_check_run("acme/site", "main", name="test", conclusion="success")
        yield fake


@pytest.fixture
async def fly() -> AsyncIterator[FakeFly]:
    async with FakeFly() as fake:
        fake.add_app("web")
        yield fake


def settings_for(tmp_path, slack, llm, github, fly, **overrides):
    values = {
        "github_token": github.token, "github_api_url": github.base_url,
        "fly_api_token": fly.token, "fly_api_url": fly.base_url, "approvers": [APPROVER],
        "monitored_apps": ["web"], "monitored_repos": ["acme/site"], "alert_channel": ALERTS,
        # The loop looks once at start; the tests drive every further look with tick().
        "monitor_interval": timedelta(hours=1),
    }  # fmt: skip
    values.update(overrides)
    return make_settings(tmp_path, slack, llm, **values)


async def started(settings, slack) -> Sophia:
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    await slack.wait_connected()
    return sophia


@pytest.fixture
async def app(tmp_path, slack, llm, github, fly) -> AsyncIterator[Sophia]:
    sophia = await started(settings_for(tmp_path, slack, llm, github, fly), slack)
    yield sophia
    await sophia.stop()


def monitor_of(sophia: Sophia) -> Monitor:
    """The monitor whose loop Sophia runs (its `run` is one of the background loops)."""
    loops = sophia.deps.services.background
    return next(f.__self__ for f in loops if isinstance(getattr(f, "__self__", None), Monitor))


async def look(sophia: Sophia) -> None:
    """One more look, after the one the loop makes at start."""
    monitor = monitor_of(sophia)
    for _ in range(200):
        if monitor.ticks:
            break
        await asyncio.sleep(0.02)
    await monitor.tick()


def alerts(slack) -> list:
    """Top-level messages in the alert channel (alerts, not thread replies)."""
    return [
        c
        for c in slack.calls_to("chat.postMessage")
        if c.args.get("channel") == ALERTS and not c.args.get("thread_ts")
    ]


def replies(slack, ts: str) -> list[str]:
    return [
        c.args["text"]
        for c in slack.calls_to("chat.postMessage")
        if c.args.get("thread_ts") == ts and c.args.get("channel") == ALERTS
    ]


def buttons(post) -> dict[str, dict]:
    actions = next(b for b in post.args["blocks"] if b["type"] == "actions")
    return {e["text"]["text"]: e for e in actions["elements"]}


async def press(slack, post, label: str, *, user: str = REQUESTER, action_ts: str = "1.1") -> None:
    button = buttons(post)[label]
    ts = post.response["ts"]
    await slack.push_interactive({
        "type": "block_actions", "user": {"id": user},
        "container": {"type": "message", "message_ts": ts, "channel_id": ALERTS},
        "channel": {"id": ALERTS}, "message": {"ts": ts},
        "actions": [{"type": "button", "action_id": button["action_id"],
                     "block_id": "monitor", "value": button["value"], "action_ts": action_ts}],
    })  # fmt: skip


async def test_a_critical_check_alerts_once_updates_its_thread_and_recovers(
    tmp_path, slack, llm, github, fly
):
    fly.add_machine("web", image=WEB_V1, name="web-1")
    fly.add_machine("web", image=WEB_V2, name="web-2")
    sophia = await started(settings_for(tmp_path, slack, llm, github, fly), slack)
    try:
        await look(sophia)
        assert alerts(slack) == []  # all green: nothing to say

        fly.fail_checks(WEB_V1, "HTTP GET /healthz: 500 Internal Server Error (db timeout)")
        await look(sophia)
        await look(sophia)  # still failing: no second alert
        [alert] = alerts(slack)
        text = str(alert.args["blocks"])
        assert "web" in alert.args["text"] and "db timeout" in text and "```" in text
        assert "web-1" in text and "web-2" not in text
        assert set(buttons(alert)) == {"Restart machine", "Mute 1h"}
        ts = alert.response["ts"]
        assert replies(slack, ts) == []

        fly.fail_checks(WEB_V2, "HTTP GET /healthz: 502 Bad Gateway")
        await look(sophia)
        [update] = replies(slack, ts)
        assert "web-2" in update and "critical" in update and "502" in update

        fly.pass_checks(WEB_V1)
        fly.pass_checks(WEB_V2)
        await look(sophia)
        await look(sophia)
        recovery = replies(slack, ts)[1:]
        assert len(recovery) == 1 and "recovered" in recovery[0]
        resolved = slack.message(ALERTS, ts)
        assert "Resolved" in str(resolved["blocks"])
        assert not any(b["type"] == "actions" for b in resolved["blocks"])
        assert len(alerts(slack)) == 1

        fly.fail_checks(WEB_V1, "HTTP GET /healthz: 500 again")
        await look(sophia)
        assert len(alerts(slack)) == 2  # a new incident is a new alert
    finally:
        await sophia.stop()

    # A restart (same database) continues the incident instead of alerting again.
    sophia = await started(settings_for(tmp_path, slack, llm, github, fly), slack)
    try:
        await look(sophia)
        assert len(alerts(slack)) == 2
    finally:
        await sophia.stop()


async def test_warnings_do_not_alert(app, slack, fly, github):
    machine = fly.add_machine("web", image=WEB_V1)
    fly.hold(machine)  # its checks read `warning` until released
    github.add_check_run("acme/site", "main", name="lint", conclusion="cancelled")
    await look(app)
    await look(app)
    checks = (await app.deps.services.fly.machine("web", machine)).checks
    assert checks and all(c.status == "warning" for c in checks)
    assert alerts(slack) == []


class Recorder:
    """An `AlertSink` that records, slowly enough for two replicas to be mid-post together."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str]] = []

    async def alert(self, snapshot, incident) -> str:
        await asyncio.sleep(0.05)
        self.posts.append(("alert", snapshot.key))
        return f"C|{len(self.posts)}"

    async def update(self, snapshot, incident, change) -> None:
        self.posts.append(("update", snapshot.key))

    async def resolve(self, snapshot, incident) -> None:
        self.posts.append(("resolve", snapshot.key))


async def test_two_replicas_sharing_a_database_post_one_alert(tmp_path):
    store = await Store.open(f"sqlite:///{tmp_path / 'shared.db'}")
    try:
        sinks = [Recorder(), Recorder()]
        replicas = [Monitor(probes=list, state=store, sink=sink, interval_s=60) for sink in sinks]
        failing = Snapshot("fly:web", "app", "web", [Finding("check http", Health.CRITICAL, "500")])
        healthy = Snapshot("fly:web", "app", "web", [Finding("check http", Health.PASSING)])
        for snapshot in (failing, failing, healthy, healthy):
            await asyncio.gather(*(m.observe(snapshot) for m in replicas))
        posts = sinks[0].posts + sinks[1].posts
        assert sorted(posts) == [("alert", "fly:web"), ("resolve", "fly:web")]
    finally:
        await store.close()


async def test_mute_silences_the_target_for_an_hour(app, slack, fly):
    fly.add_machine("web", image=WEB_V1, name="web-1")
    fly.fail_checks(WEB_V1)
    await look(app)
    [alert] = alerts(slack)
    await press(slack, alert, "Mute 1h")
    [ephemeral] = await slack.wait_for_call("chat.postEphemeral")
    assert ephemeral.args["user"] == REQUESTER and "Muted" in ephemeral.args["text"]

    fly.add_machine("web", image=WEB_V2, name="web-2")
    fly.fail_checks(WEB_V2)
    await look(app)
    assert replies(slack, alert.response["ts"]) == []  # no update while muted

    fly.pass_checks(WEB_V1)
    fly.pass_checks(WEB_V2)
    await look(app)  # the recovery of an alerted incident is still said
    assert ["recovered" in r for r in replies(slack, alert.response["ts"])] == [True]

    fly.fail_checks(WEB_V1)
    await look(app)
    assert len(alerts(slack)) == 1  # a new incident within the hour stays quiet


async def test_restart_button_asks_for_approval_and_restarts_once(app, slack, fly):
    machine = fly.add_machine("web", image=WEB_V1, name="web-1")
    fly.fail_checks(WEB_V1)
    await look(app)
    [alert] = alerts(slack)
    await press(slack, alert, "Restart machine")
    [request] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    assert request.args["thread_ts"] == alert.response["ts"]  # in the alert's thread
    assert "web-1" in request.args["text"]
    actions = next(b for b in request.args["blocks"] if b["type"] == "actions")
    approval_id = actions["elements"][0]["value"]
    assert (await app.deps.services.approvals.get(approval_id)).kind == "fly.restart"
    assert fly.calls("POST", r"/restart$") == []  # nothing before the approval

    ts = request.response["ts"]
    await click(slack, approval_id, ts, user=APPROVER, action_ts="2.1")
    await click(slack, approval_id, ts, user=APPROVER, action_ts="2.2")  # a double click
    await wait_state(app, approval_id, ApprovalState.DONE)
    await slack.wait_for_call("chat.postMessage", lambda c: "Restarted" in c.args.get("text", ""))
    [restart] = fly.calls("POST", r"/restart$")
    assert machine in restart.path


async def test_a_ci_failure_on_a_monitored_repo_alerts_and_can_open_a_fix_pr(
    app, slack, llm, github
):
    github.add_check_run(
        "acme/site", "main", name="test", conclusion="failure", title="1 test failed",
        summary="test_app: AssertionError: expected 'hello', got 'hi'",
    )  # fmt: skip
    await look(app)
    [alert] = alerts(slack)
    text = str(alert.args["blocks"])
    assert "acme/site" in text and "expected 'hello'" in text
    assert set(buttons(alert)) == {"Open fix PR", "Mute 1h"}

    llm.script(
        Text(json.dumps({
            "title": "Say hello", "summary": "The test expects hello.",
            "changes": [{"path": "app.py", "content": "print('hello')\n"}],
        }))
    )  # fmt: skip
    await press(slack, alert, "Open fix PR")
    [done] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Opened" in c.args.get("text", ""), timeout=15
    )
    assert done.args["thread_ts"] == alert.response["ts"]
    [pull] = github.calls("POST", r"/pulls$")
    assert pull.json["title"] == "Say hello"
    [prompt] = [b for b in llm.chat_requests() if "health monitor" in str(b["messages"])]
    assert "expected 'hello'" in str(prompt["messages"])  # the failure was the context


# -- self-deployment -----------------------------------------------------------------------

SELF_REPO, SELF_APP = "acme/sophia", "sophia-bot"
OLD, NEW = "registry.fly.io/sophia-bot:old", "registry.fly.io/sophia-bot:deployment-7f3a"


@pytest.fixture
async def self_world(github, fly) -> AsyncIterator[tuple[FakeGitHub, FakeFly, str]]:
    github.add_repo(SELF_REPO, files={"bot.py": "print('v1')\n"})
    pr = github.add_pull(SELF_REPO, title="Be nicer", head_branch="nicer", files={"bot.py": "x\n"})
    github.set_status(SELF_REPO, pr["head"]["sha"], state="success", context="ci")
    fly.add_app(SELF_APP)
    machine = fly.add_machine(SELF_APP, image=OLD, name="sophia-1")
    yield github, fly, machine


def self_settings(tmp_path, slack, llm, github, fly, **overrides):
    return settings_for(
        tmp_path, slack, llm, github, fly, self_repo=SELF_REPO, self_fly_app=SELF_APP,
        monitored_apps=[], monitored_repos=[], monitor_interval=timedelta(seconds=0.05),
        deploy_check_timeout=timedelta(seconds=20), shutdown_grace=timedelta(seconds=0.2),
        **overrides,
    )  # fmt: skip


async def merge_self_pr(slack, github) -> str:
    """Merge the self repo's PR through Sophia; returns the merge request's message ts."""
    await slack.push_slash_command(f"pr merge {SELF_REPO}#1", user_id=REQUESTER)
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    approval_id = next(b for b in post.args["blocks"] if b["type"] == "actions")["elements"][0]
    await click(slack, approval_id["value"], post.response["ts"], user=APPROVER)
    await slack.wait_for_call(
        "chat.postMessage", lambda c: "I'll wait for its CI" in c.args["text"]
    )
    return post.response["ts"]


async def deploy_offer(slack, thread: str):
    [offer] = await slack.wait_for_call(
        "chat.postMessage",
        lambda c: "Approval needed" in c.args["text"] and "Deploy" in c.args["text"],
        timeout=10,
    )
    assert offer.args["thread_ts"] == thread
    actions = next(b for b in offer.args["blocks"] if b["type"] == "actions")
    return actions["elements"][0]["value"], offer


async def test_a_merge_of_the_self_repo_offers_a_deploy_of_the_image_ci_built(
    tmp_path, slack, llm, github, fly, self_world
):
    sophia = await started(self_settings(tmp_path, slack, llm, github, fly), slack)
    try:
        thread = await merge_self_pr(slack, github)
        sha = github.merges[0]["sha"]
        github.add_check_run(SELF_REPO, sha, name="build", status="in_progress", conclusion=None)
        await asyncio.sleep(0.3)  # several polls while CI runs: no offer yet
        assert not [c for c in slack.calls_to("chat.postMessage") if "Deploy" in c.args["text"]]
        github.add_check_run(
            SELF_REPO, sha, name="build", conclusion="success", title="Image pushed",
            summary=f"Pushed `{NEW}` to the Fly registry.",
        )  # fmt: skip
        approval_id, offer = await deploy_offer(slack, thread)
        assert NEW in offer.args["text"]
        request = await sophia.deps.services.approvals.get(approval_id)
        assert request.kind == "fly.deploy" and request.params["image"] == NEW
        assert request.requester == REQUESTER  # on behalf of who asked for the merge
        notes = [c.args["text"] for c in slack.calls_to("chat.postMessage")]
        assert any("reported by CI `build`" in n for n in notes)
        assert fly.updates() == []  # only offered
    finally:
        await sophia.stop()


async def test_without_a_reported_tag_the_image_is_named_by_the_merge_commit(
    tmp_path, slack, llm, github, fly, self_world
):
    sophia = await started(self_settings(tmp_path, slack, llm, github, fly), slack)
    try:
        thread = await merge_self_pr(slack, github)
        sha = github.merges[0]["sha"]
        github.set_status(SELF_REPO, sha, state="success", context="ci/build")
        approval_id, _ = await deploy_offer(slack, thread)
        request = await sophia.deps.services.approvals.get(approval_id)
        assert request.params["image"] == f"registry.fly.io/{SELF_APP}:{sha}"
    finally:
        await sophia.stop()


async def test_a_failed_ci_run_offers_no_deploy(tmp_path, slack, llm, github, fly, self_world):
    sophia = await started(self_settings(tmp_path, slack, llm, github, fly), slack)
    try:
        thread = await merge_self_pr(slack, github)
        github.add_check_run(SELF_REPO, github.merges[0]["sha"], name="build", conclusion="failure")
        [said] = await slack.wait_for_call(
            "chat.postMessage", lambda c: "CI failed" in c.args["text"]
        )
        assert said.args["thread_ts"] == thread and "`build`" in said.args["text"]
        assert (await sophia.deps.store.kv_items("selfdeploy.watch")) == {}
    finally:
        await sophia.stop()


async def test_a_failed_self_deploy_rolls_back_and_says_so(
    tmp_path, slack, llm, github, fly, self_world
):
    _, _, machine = self_world
    sophia = await started(self_settings(tmp_path, slack, llm, github, fly), slack)
    try:
        thread = await merge_self_pr(slack, github)
        github.add_check_run(
            SELF_REPO, github.merges[0]["sha"], name="build", conclusion="success", summary=NEW
        )
        approval_id, offer = await deploy_offer(slack, thread)
        fly.fail_checks(NEW, "HTTP GET /healthz: 503")
        await click(slack, approval_id, offer.response["ts"], user=APPROVER, action_ts="3.1")
        await wait_state(sophia, approval_id, ApprovalState.FAILED, timeout=15)
        assert fly.updates(SELF_APP) == [(machine, NEW), (machine, OLD)]
        [said] = await slack.wait_for_call(
            "chat.postMessage", lambda c: "Rolled back" in c.args["text"]
        )
        assert said.args["thread_ts"] == thread
    finally:
        await sophia.stop()


async def test_sophia_survives_her_own_redeploy_and_the_new_instance_reports(
    tmp_path, slack, llm, github, fly, self_world
):
    _, _, machine = self_world
    settings = self_settings(tmp_path, slack, llm, github, fly)
    first = await started(settings, slack)
    try:
        thread = await merge_self_pr(slack, github)
        github.add_check_run(
            SELF_REPO, github.merges[0]["sha"], name="build", conclusion="success", summary=NEW
        )
        approval_id, offer = await deploy_offer(slack, thread)
        fly.hold(machine)  # the new version boots slowly: the deploy is mid-way when she stops
        await click(slack, approval_id, offer.response["ts"], user=APPROVER, action_ts="4.1")
        await slack.wait_for_call("chat.postMessage", lambda c: "Rolling out" in c.args["text"])
        for _ in range(250):
            if fly.updates(SELF_APP):
                break
            await asyncio.sleep(0.02)
        assert fly.updates(SELF_APP) == [(machine, NEW)]
    finally:
        await first.stop()  # Fly replaced her machine: the old process is gone mid-deploy
    assert (await _approval(settings, approval_id)) == ApprovalState.EXECUTING

    fly.release(machine)
    second = await started(settings, slack)  # the new version, same data dir and database
    try:
        [report] = await slack.wait_for_call(
            "chat.postMessage", lambda c: "After a restart" in c.args["text"], timeout=15
        )
        assert report.args["thread_ts"] == thread and "Deployed" in report.args["text"]
        await wait_state(second, approval_id, ApprovalState.DONE)
        assert fly.updates(SELF_APP) == [(machine, NEW)]  # never updated twice
        assert fly.image_of(SELF_APP, machine) == NEW
    finally:
        await second.stop()


async def _approval(settings, approval_id: str) -> ApprovalState:
    store = await Store.open(settings.resolved_database_url())
    try:
        return (await store.load_approval(approval_id)).state
    finally:
        await store.close()


# -- /healthz ------------------------------------------------------------------------------


async def healthz(sophia: Sophia) -> int:
    url = f"http://127.0.0.1:{sophia.health.port}/healthz"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status


async def wait_status(sophia: Sophia, status: int, timeout: float = 15) -> None:
    for _ in range(int(timeout / 0.05)):
        if await healthz(sophia) == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz never answered {status}")


async def test_healthz_reflects_a_dropped_socket_mode_connection(sophia, slack):
    assert await healthz(sophia) == 200
    slack.fail("apps.connections.open", error="internal_error", times=None)  # no way back yet
    await slack.drop_connections()
    await wait_status(sophia, 503)
    slack.clear_failures("apps.connections.open")
    await slack.wait_connected(timeout=20)
    await wait_status(sophia, 200)
