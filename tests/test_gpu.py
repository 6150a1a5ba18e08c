"""Lambda GPUs through Slack: list, launch and terminate behind approvals, commands over SSH,
and the reminder about instances left running — against a fake Lambda API, a loopback SSH
server (asyncssh) and the fake Slack."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.app import Sophia
from bot.core.approvals import ApprovalRequest, ApprovalState
from bot.store import Store
from handlers.gpu import direct_message
from integrations.lambda_actions import HOST_KEYS, INSTANCES, LaunchExecutor, Records
from integrations.lambda_labs import LambdaCloud
from integrations.lambda_reminders import IdleReminders
from tests.conftest import make_settings
from tests.fakes.lambda_cloud import FakeLambda
from tests.fakes.llm import Text, ToolCalls
from tests.test_approvals import click, wait_state
from tests.test_mention import mention

REQUESTER, APPROVER = "U0USER", "U0BOSS"


@pytest.fixture
async def lam() -> AsyncIterator[FakeLambda]:
    async with FakeLambda() as fake:
        fake.add_type("gpu_1x_a10", 75, regions=["us-east-1", "us-west-1"], description="1x A10 (24 GB PCIe)")  # fmt: skip
        fake.add_type("gpu_1x_h100_pcie", 249, regions=["us-west-1"], description="1x H100 (80 GB PCIe)")  # fmt: skip
        fake.add_type("gpu_8x_h100_sxm5", 2392, regions=[], gpus=8, description="8x H100 (80 GB SXM5)")  # fmt: skip
        fake.add_ssh_key("sophia")
        yield fake


@pytest.fixture
def client_key(tmp_path: Path) -> Path:
    """The private key Sophia uses (LAMBDA_SSH_KEY_PATH), generated for the test."""
    path = tmp_path / "id_ed25519"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
    return path


@dataclass
class SSHServer:
    port: int
    logins: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)


@pytest.fixture
async def ssh(client_key: Path) -> AsyncIterator[SSHServer]:
    """A loopback SSH server that accepts only the test key and runs commands in a real shell."""
    public = asyncssh.read_private_key(str(client_key)).export_public_key().decode()
    server = SSHServer(port=0)

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            server.logins.append(username)
            return True

    async def handle(process: asyncssh.SSHServerProcess) -> None:
        server.commands.append(process.command)
        shell = await asyncio.create_subprocess_shell(
            process.command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        while chunk := await shell.stdout.read(256):
            process.stdout.write(chunk.decode())
            await process.stdout.drain()
        process.exit(await shell.wait())

    acceptor = await asyncssh.listen(
        "127.0.0.1", 0, server_factory=Server,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        authorized_client_keys=asyncssh.import_authorized_keys(public),
        process_factory=handle,
    )  # fmt: skip
    server.port = acceptor.get_port()
    yield server
    acceptor.close()
    await acceptor.wait_closed()


def gpu_settings(tmp_path, slack, llm, lam, client_key, **overrides):
    values = {
        "lambda_api_key": lam.api_key, "lambda_api_url": lam.base_url,
        "lambda_ssh_key_name": "sophia", "lambda_ssh_key_path": client_key,
        "approvers": [APPROVER],
    }  # fmt: skip
    values.update(overrides)
    return make_settings(tmp_path, slack, llm, **values)


@pytest.fixture
async def app(tmp_path, slack, llm, lam, client_key) -> AsyncIterator[Sophia]:
    sophia = Sophia(gpu_settings(tmp_path, slack, llm, lam, client_key), socket_ping_interval=1.0)
    await sophia.start()
    await slack.wait_connected()
    cloud = sophia.deps.services.lambda_cloud
    cloud.poll_every_s = 0.02  # boot polling, seconds in real life
    yield sophia
    await sophia.stop()


async def private_reply(slack, text: str, *, user: str = REQUESTER) -> str:
    """Type `/sophia <text>`; the ephemeral answer's text."""
    envelope = await slack.push_slash_command(text, user_id=user)
    [post] = await slack.wait_for_response_url_post(envelope)
    return post["text"]


async def approval_request(slack, text: str) -> tuple[str, str, dict]:
    """Type `/sophia <text>`; (approval id, request message ts, the posted message)."""
    await slack.push_slash_command(text, user_id=REQUESTER)
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    actions = next(b for b in post.args["blocks"] if b["type"] == "actions")
    return actions["elements"][0]["value"], post.response["ts"], post.args


def thread_texts(slack, ts: str) -> list[str]:
    return [c.args.get("text", "") for c in slack.calls_to("chat.postMessage") if c.args.get("thread_ts") == ts]  # fmt: skip


async def test_gpu_list_shows_prices_capacity_sold_out_and_running_instances(app, slack, lam):
    running = lam.add_instance("gpu_1x_a10", "us-east-1")
    text = await private_reply(slack, "gpu list")
    lines = text.splitlines()
    a10 = next(line for line in lines if "`gpu_1x_a10`" in line)
    assert "$0.75/h" in a10 and "us-east-1, us-west-1" in a10
    h100 = next(line for line in lines if "`gpu_8x_h100_sxm5`" in line)
    assert "$23.92/h" in h100 and "sold out" in h100
    # Not launched by Sophia: uptime counts from when she first saw it, and says so.
    instance = next(line for line in lines if running.id in line)
    assert "active" in instance and "198.51.100.2" in instance and "up ≥ 0m" in instance
    assert "$0.00 so far" in instance


async def test_a_launch_request_shows_the_price_and_one_approved_launch_posts_ssh(app, slack, lam):
    approval_id, ts, post = await approval_request(slack, "gpu launch gpu_1x_a10")
    shown = str(post["blocks"])
    assert "$0.75/hour" in shown and "us-east-1" in shown and "`sophia`" in shown
    request = await app.deps.services.approvals.get(approval_id)
    assert request.bound_version == "gpu_1x_a10@us-east-1:75c/h"  # type, region and price
    assert lam.launches == []  # nothing happens before an approver says yes

    await click(slack, approval_id, ts, user=APPROVER)
    await click(slack, approval_id, ts, user=APPROVER, action_ts="1.2")  # a double click
    await wait_state(app, approval_id, ApprovalState.DONE)
    [launch] = lam.launches
    assert launch.json == {
        "region_name": "us-east-1", "instance_type_name": "gpu_1x_a10",
        "ssh_key_names": ["sophia"], "quantity": 1, "name": f"sophia-{approval_id}",
    }  # fmt: skip
    assert launch.headers["Authorization"] == f"Bearer {lam.api_key}"
    [done] = await slack.wait_for_call("chat.postMessage", lambda c: "is up" in c.args.get("text", ""))  # fmt: skip
    assert done.args["thread_ts"] == ts
    assert "IP: `198.51.100.2`" in done.args["text"]
    assert "`ssh ubuntu@198.51.100.2`" in done.args["text"]
    assert any("Launched" in t and "boot" in t for t in thread_texts(slack, ts))
    # The list now knows who launched it.
    text = await private_reply(slack, "gpu list")
    assert f"launched by <@{REQUESTER}>" in text and "up ≥" not in text


async def test_a_price_change_after_the_request_voids_the_launch(app, slack, lam):
    approval_id, ts, _ = await approval_request(slack, "gpu launch gpu_1x_a10 us-west-1")
    lam.types["gpu_1x_a10"]["price_cents_per_hour"] = 99
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.VOID)
    [notice] = await slack.wait_for_call("chat.postMessage", lambda c: "void" in c.args.get("text", ""))  # fmt: skip
    assert "/sophia gpu launch gpu_1x_a10 us-west-1" in notice.args["text"]  # how to ask again
    assert lam.launches == []


async def test_a_sold_out_type_is_refused_with_the_cheapest_alternative(app, slack, lam):
    text = await private_reply(slack, "gpu launch gpu_8x_h100_sxm5")
    assert "sold out" in text and "`gpu_1x_a10`" in text and "$0.75/h" in text
    text = await private_reply(slack, "gpu launch gpu_1x_h100_pcie us-east-1")
    assert "no capacity in `us-east-1`" in text and "`us-west-1`" in text
    assert lam.launches == [] and not slack.calls_to("chat.postMessage")


async def test_terminate_approved_makes_exactly_one_api_call(app, slack, lam):
    running = lam.add_instance("gpu_1x_h100_pcie", "us-west-1")
    approval_id, ts, post = await approval_request(slack, f"gpu terminate {running.id[:8]}")
    assert running.id in str(post["blocks"]) and "us-west-1" in str(post["blocks"])
    await click(slack, approval_id, ts, user=APPROVER)
    await click(slack, approval_id, ts, user=APPROVER, action_ts="1.2")  # a double click
    await wait_state(app, approval_id, ApprovalState.DONE)
    [call] = lam.terminations
    assert call.json == {"instance_ids": [running.id]}
    [done] = await slack.wait_for_call("chat.postMessage", lambda c: "Terminated" in c.args.get("text", ""))  # fmt: skip
    assert done.args["thread_ts"] == ts


async def test_gpu_run_streams_the_output_tail_into_the_thread(app, slack, lam, ssh):
    lam.instance_ip = "127.0.0.1"
    app.deps.services.lambda_cloud.ssh_port = ssh.port
    running = lam.add_instance("gpu_1x_a10", "us-east-1")
    # Slack sends `>` and `&` in slash commands as entities.
    command = (
        "for i in $(seq 1 45); do echo line $i; sleep 0.005; done; echo oops &gt;&amp;2; exit 3"
    )
    approval_id, ts, post = await approval_request(slack, f"gpu run {running.id} {command}")
    assert "echo oops >&2" in str(post["blocks"])  # the approver sees the real command
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE, timeout=15)

    assert ssh.logins == ["ubuntu"] and ssh.commands == [command.replace("&gt;", ">").replace("&amp;", "&")]  # fmt: skip
    [final] = await slack.wait_for_call("chat.postMessage", lambda c: "exited with status 3" in c.args.get("text", ""))  # fmt: skip
    assert final.args["thread_ts"] == ts
    progress = [t for t in thread_texts(slack, ts) if t.startswith("Output so far")]
    assert progress and "line 20" in progress[0]  # output arrived while the command ran
    shown = re.findall(r"^(line \d+|oops)$", final.args["text"], re.M)
    assert shown[-2:] == ["line 45", "oops"] and len(shown) == 40  # the last 40 lines


async def test_a_changed_host_key_stops_the_command(app, slack, lam, ssh):
    lam.instance_ip = "127.0.0.1"
    app.deps.services.lambda_cloud.ssh_port = ssh.port
    running = lam.add_instance("gpu_1x_a10", "us-east-1")
    await app.deps.store.kv_put(HOST_KEYS, running.id, "SHA256:the-key-seen-last-time")
    approval_id, ts, _ = await approval_request(slack, f"gpu run {running.id} touch /tmp/x")
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.FAILED, timeout=15)
    [notice] = await slack.wait_for_call("chat.postMessage", lambda c: "host key" in c.args.get("text", ""))  # fmt: skip
    assert "did not run the command" in notice.args["text"] and ssh.commands == []


async def test_a_model_can_only_request_a_launch(app, slack, llm, lam):
    llm.script(
        ToolCalls([("lambda_launch", {"instance_type": "gpu_1x_h100_pcie"})]),
        Text("I've asked for approval."),
    )
    await slack.push_event(mention("spin up an H100 for me"))
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    assert "$2.49/hour" in str(post.args["blocks"]) and "us-west-1" in str(post.args["blocks"])
    await slack.wait_for_call("chat.stopStream")
    assert lam.launches == []


async def test_without_lambda_settings_the_commands_name_the_variable(
    tmp_path, slack, llm, lam, client_key
):
    settings = gpu_settings(tmp_path, slack, llm, lam, client_key, lambda_api_key=None)
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    try:
        await slack.wait_connected()
        assert "LAMBDA_API_KEY" in await private_reply(slack, "gpu list")
        assert "LAMBDA_API_KEY" in await private_reply(slack, "gpu launch gpu_1x_a10")
        assert sophia.deps.core.tools.get("lambda_launch") is None  # no tools that cannot work
        assert lam.requests == []
    finally:
        await sophia.stop()


async def test_a_launch_without_an_ssh_key_name_says_which_variable(
    tmp_path, slack, llm, lam, client_key
):
    settings = gpu_settings(tmp_path, slack, llm, lam, client_key, lambda_ssh_key_name=None)
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    try:
        await slack.wait_connected()
        assert "LAMBDA_SSH_KEY_NAME" in await private_reply(slack, "gpu launch gpu_1x_a10")
        assert lam.launches == []
    finally:
        await sophia.stop()


async def test_the_requester_is_reminded_once_a_day_about_a_long_running_instance(
    tmp_path, slack, lam
):
    store = await Store.open(f"sqlite:///{tmp_path / 'sophia.db'}")
    now = [1_000_000.0]
    records = Records(store, clock=lambda: now[0])
    cloud = LambdaCloud(api_url=lam.base_url, api_key=lam.api_key)
    web = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
    ours = lam.add_instance("gpu_1x_a10", "us-east-1")
    lam.add_instance("gpu_1x_a10", "us-west-1")  # not launched by Sophia: nobody to remind
    # Launched by Sophia for U0USER nine hours ago (the idle threshold is eight).
    await store.kv_put(INSTANCES, ours.id, {"since": now[0] - 9 * 3600, "requester": REQUESTER})
    reminders = IdleReminders(cloud, records, idle_hours=8, dm=direct_message(web))
    try:
        loop = asyncio.create_task(reminders.loop(every_s=0.01))
        [dm] = await slack.wait_for_call("chat.postMessage")
        looks = len(lam.calls("GET", "^/instances$"))
        await lam_seen(lam, looks + 3)  # the loop looked three more times …
        loop.cancel()
        assert len(slack.calls_to("chat.postMessage")) == 1  # … and did not remind again
        assert dm.response["channel"].startswith("D")  # a direct message
        assert dm.args["channel"] == REQUESTER and ours.id in dm.args["text"]
        assert "9h 00m" in dm.args["text"] and "$6.75" in dm.args["text"]
        assert f"/sophia gpu terminate {ours.id}" in dm.args["text"]

        now[0] += 24 * 3600  # a day later it is still running: one more reminder
        assert await reminders.check() == 1
        assert await reminders.check() == 0
    finally:
        await store.close()


async def lam_seen(lam: FakeLambda, count: int) -> None:
    for _ in range(500):
        if len(lam.calls("GET", "^/instances$")) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the reminder loop stopped looking")


async def test_a_launch_interrupted_by_a_restart_is_found_not_repeated(tmp_path, lam):
    """Launched, then a crash before Sophia noted it: the instance's name gives it away."""
    store = await Store.open(f"sqlite:///{tmp_path / 'sophia.db'}")
    try:
        cloud = LambdaCloud(api_url=lam.base_url, api_key=lam.api_key)
        executor = LaunchExecutor(cloud, Records(store))
        request = ApprovalRequest(
            id="a-0123456789", kind="lambda.launch", target="gpu_1x_a10 in us-east-1",
            params={"type": "gpu_1x_a10", "region": "us-east-1", "ssh_key": "sophia"},
            bound_version="gpu_1x_a10@us-east-1:75c/h", summary="Launch", requester=REQUESTER,
            channel="C0CHAN", thread_ts=None, created_at=0.0, expires_at=1.0,
        )  # fmt: skip
        assert await executor.already_done(request) is None  # nothing launched yet
        launched = lam.add_instance("gpu_1x_a10", "us-east-1", name="sophia-a-0123456789")
        found = await executor.already_done(request)
        assert found and launched.id in found
        assert (await store.kv_get(INSTANCES, launched.id))["requester"] == REQUESTER
        assert lam.launches == []
    finally:
        await store.close()
