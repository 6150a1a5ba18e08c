"""MCP both ways: other servers' tools in the agent loop (read-only runs, the rest asks for
approval), and Sophia's own tools served to MCP clients over stdio and HTTP, with the relay."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import Implementation

from bot.app import Sophia
from bot.core.memory import Scope, Where
from bot.core.tools import ToolContext
from tests.conftest import make_settings
from tests.fakes.github import FakeGitHub
from tests.fakes.llm import Text, ToolCalls
from tests.test_approvals import APPROVER, click
from tests.test_cli import SOPHIA, fake_env
from tests.test_mention import mention

# An MCP server written with the `mcp` package's own server API, run by Sophia as a child.
WEATHER_SERVER = '''
import os
from mcp.server import MCPServer
from mcp.types import ToolAnnotations

app = MCPServer("weather")

@app.tool(annotations=ToolAnnotations(read_only_hint=True))
def forecast(city: str) -> str:
    """Tomorrow's forecast for a city."""
    return f"Sunny in {city}, 21C (from the weather server)"

@app.tool()
def book_table(restaurant: str, people: int) -> str:
    """Book a restaurant table."""
    with open(os.environ["CALLS_LOG"], "a") as log:
        log.write(f"{restaurant}:{people}\\n")
    return f"Booked {restaurant} for {people}"

if __name__ == "__main__":
    with open(os.environ["PID_FILE"], "w") as f:
        f.write(str(os.getpid()))
    app.run()
'''

TOKEN = "mcp-test-token-0123456789"
CTX = ToolContext(user="U0USER", channel="C0CHAN", thread_ts=None, private=False, request_id="t")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mcp_config(tmp_path: Path, **extra: dict) -> Path:
    script = tmp_path / "weather_server.py"
    script.write_text(WEATHER_SERVER)
    env = {"CALLS_LOG": str(tmp_path / "calls.log"), "PID_FILE": str(tmp_path / "weather.pid")}
    servers = {"weather": {"command": sys.executable, "args": [str(script)], "env": env}, **extra}
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return path


def calls(tmp_path: Path) -> list[str]:
    log = tmp_path / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


async def until(check, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never held")


@pytest.fixture
async def app(tmp_path, slack, llm) -> AsyncIterator[Sophia]:
    settings = make_settings(
        tmp_path, slack, llm, mcp_config=mcp_config(tmp_path), approvers=[APPROVER]
    )
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    await slack.wait_connected()
    await until(lambda: sophia.deps.core.tools.get("weather__forecast") is not None)
    yield sophia
    await sophia.stop()


def echo_tool_output(body: dict) -> Text | None:
    """The fake model answers with whatever the last tool returned."""
    last = body["messages"][-1]
    return Text(f"Here it is: {last['content']}") if last["role"] == "tool" else None


# --- Sophia as an MCP client ------------------------------------------------------------------


async def test_a_read_only_mcp_tool_is_used_in_the_agent_loop(app, slack, llm, tmp_path):
    llm.script(ToolCalls([("weather__forecast", {"city": "Oslo"})]))
    llm.on(echo_tool_output)
    await slack.push_event(mention("what's the weather in Oslo tomorrow?"))
    [stop] = await slack.wait_for_call("chat.stopStream")

    reply = slack.message("C0CHAN", stop.args["ts"])["text"]
    assert "Sunny in Oslo, 21C (from the weather server)" in reply
    asked = next(b for b in llm.chat_requests() if b.get("tools"))
    offered = {t["function"]["name"]: t["function"] for t in asked["tools"]}
    assert offered["weather__forecast"]["parameters"]["required"] == ["city"]  # schema passed on
    tool_turn = next(b for b in llm.chat_requests() if b["messages"][-1]["role"] == "tool")
    assert 'trust="untrusted"' in tool_turn["messages"][-1]["content"]  # output is data
    after = {t["function"]["name"] for t in tool_turn.get("tools") or []}
    assert "weather__forecast" in after and "weather__book_table" not in after  # no actions now


async def test_a_tool_not_marked_read_only_waits_for_approval_then_runs_once(
    app, slack, llm, tmp_path
):
    llm.script(
        ToolCalls([("weather__book_table", {"restaurant": "Maaemo", "people": 4})]),
        Text("I've asked for approval to book it."),
    )
    await slack.push_event(mention("book Maaemo for 4 tonight"))
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    await slack.wait_for_call("chat.stopStream")
    shown = str(post.args["blocks"])
    assert "book_table" in shown and "weather" in shown and "Maaemo" in shown
    assert calls(tmp_path) == []  # nothing reached the server

    actions = next(b for b in post.args["blocks"] if b["type"] == "actions")
    approval_id = actions["elements"][0]["value"]
    await click(slack, approval_id, post.response["ts"], user=APPROVER)
    await click(slack, approval_id, post.response["ts"], user=APPROVER, action_ts="1.2")
    await slack.wait_for_call("chat.postMessage", lambda c: "answered" in c.args.get("text", ""))
    [done] = [c for c in slack.calls_to("chat.postMessage") if "answered" in c.args["text"]]
    assert "Booked Maaemo for 4" in done.args["text"]
    assert calls(tmp_path) == ["Maaemo:4"]  # exactly once, with the approved arguments


async def test_mcp_subcommand_lists_servers_state_and_tools(app, slack):
    envelope = await slack.push_slash_command("mcp")
    [reply] = await slack.wait_for_response_url_post(envelope)
    assert reply["response_type"] == "ephemeral"
    assert "*weather*" in reply["text"] and "connected, 2 tools" in reply["text"]
    assert "`weather__forecast` — read-only" in reply["text"]
    assert "`weather__book_table` — needs approval" in reply["text"]


async def test_a_dead_server_is_reported_once_and_sophia_still_answers(
    tmp_path, slack, llm, caplog
):
    caplog.set_level(logging.WARNING, logger="sophia.mcp")
    broken = {"command": sys.executable, "args": ["-c", "import sys; sys.exit(3)"]}
    config = mcp_config(tmp_path, broken=broken)
    sophia = Sophia(
        make_settings(tmp_path, slack, llm, mcp_config=config), socket_ping_interval=1.0
    )
    await sophia.start()
    try:
        await slack.wait_connected()
        link = sophia.deps.services.mcp.links["broken"]
        await until(lambda: link.attempts >= 2)  # failed, waited, failed again

        llm.script(Text("Still here."))
        await slack.push_event(mention("are you there?"))
        [stop] = await slack.wait_for_call("chat.stopStream")
        assert "Still here." in slack.message("C0CHAN", stop.args["ts"])["text"]

        envelope = await slack.push_slash_command("mcp")
        [reply] = await slack.wait_for_response_url_post(envelope)
        assert "*broken*" in reply["text"] and "unavailable" in reply["text"]
        assert "*weather*" in reply["text"]  # the healthy one is unaffected
        reports = [r for r in caplog.records if getattr(r, "server", None) == "broken"]
        assert len(reports) == 1
    finally:
        await sophia.stop()


async def test_a_server_that_dies_is_reconnected_and_the_model_is_told_meanwhile(
    app, slack, llm, tmp_path
):
    pid_file = tmp_path / "weather.pid"
    first = int(pid_file.read_text())
    os.kill(first, signal.SIGKILL)  # the server Sophia started crashes
    llm.script(ToolCalls([("weather__forecast", {"city": "Oslo"})]))
    llm.on(echo_tool_output)
    await slack.push_event(mention("weather in Oslo?"))
    [stop] = await slack.wait_for_call("chat.stopStream")
    reply = slack.message("C0CHAN", stop.args["ts"])["text"]
    assert "weather" in reply and "failed" in reply and "Sunny" not in reply

    link = app.deps.services.mcp.links["weather"]
    await until(lambda: link.state.value == "connected" and int(pid_file.read_text()) != first)
    result = await app.deps.core.tools.call("weather__forecast", {"city": "Rome"}, CTX)
    assert result.ok and "Sunny in Rome" in result.content


async def test_a_broken_config_file_is_explained_by_the_mcp_command(tmp_path, slack, llm):
    config = tmp_path / "mcp.json"
    config.write_text('{"mcpServers": {"x": {"args": []}}}')
    sophia = Sophia(
        make_settings(tmp_path, slack, llm, mcp_config=config), socket_ping_interval=1.0
    )
    await sophia.start()
    try:
        await slack.wait_connected()
        envelope = await slack.push_slash_command("mcp")
        [reply] = await slack.wait_for_response_url_post(envelope)
        assert 'server \'x\' needs "command" (stdio) or "url"' in reply["text"]
    finally:
        await sophia.stop()


async def test_stopping_sophia_stops_the_servers_she_started(app, tmp_path):
    pid = int((tmp_path / "weather.pid").read_text())
    await app.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --- Sophia as an MCP server ------------------------------------------------------------------


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub() as fake:
        fake.add_repo("acme/site", files={"README.md": "# Site\n"})
        pr = fake.add_pull("acme/site", title="Fix it", head_branch="fix", files={"a.py": "x\n"})
        fake.set_status("acme/site", pr["head"]["sha"], state="success", context="ci")
        yield fake


async def remember_everywhere(memory) -> None:
    """One fact per scope, all about the same thing."""
    facts = [
        ("The launch review for Project Atlas is on Friday", Scope.WORKSPACE, Where("U0ANA", "C0CHAN", False)),
        ("The launch review for Project Atlas moved to Monday in this channel", Scope.CHANNEL, Where("U0ANA", "C0CHAN", False)),
        ("Ana prepares the launch review for Project Atlas", Scope.USER, Where("U0ANA", "C0CHAN", False)),
        ("My private note: the launch review for Project Atlas worries me", None, Where("U0DANA", "D0DANA", True)),
    ]  # fmt: skip
    for text, scope, where in facts:
        await memory.remember(text, scope=scope, where=where)


def stdio_sophia(env: dict[str, str], cwd: Path, tools: str) -> Client:
    params = StdioServerParameters(
        command=SOPHIA[0], args=[*SOPHIA[1:], "mcp", "serve", "--tools", tools], env=env,
        cwd=str(cwd),
    )  # fmt: skip
    return Client(params, client_info=Implementation(name="pytest-agent", version="1"))


def text_of(result) -> str:
    return "\n".join(block.text for block in result.content)


async def test_mcp_serve_on_stdio_offers_groups_answers_and_only_requests_actions(
    tmp_path, slack, llm, github
):
    from integrations.memory import MemoryService

    settings = make_settings(tmp_path, slack, llm)
    memory = await MemoryService.open(settings)
    await remember_everywhere(memory)
    await memory.close()
    env = fake_env(
        tmp_path, slack, llm, GITHUB_TOKEN=github.token, GITHUB_API_URL=github.base_url,
        SOPHIA_ALERT_CHANNEL="C0OPS",
    )  # fmt: skip
    async with stdio_sophia(env, tmp_path, "github,memory") as client:
        names = sorted(t.name for t in (await client.list_tools()).tools)
        assert names == [
            "github_pr_details", "github_read_file", "github_repo_info",
            "github_request_merge_pr", "github_search_code", "memory_search",
        ]  # fmt: skip

        info = await client.call_tool("github_repo_info", {"repo": "acme/site"})
        assert not info.is_error and '"default_branch": "main"' in text_of(info)

        found = await client.call_tool("memory_search", {"query": "Project Atlas launch review"})
        texts = [m["text"] for m in json.loads(text_of(found))]
        assert texts == ["The launch review for Project Atlas is on Friday"]  # workspace only

        asked = await client.call_tool(
            "github_request_merge_pr", {"repo": "acme/site", "number": 1}
        )
        answer = json.loads(text_of(asked))
        assert answer["state"] == "pending" and answer["requested_by"] == "mcp:pytest-agent"
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    assert post.args["channel"] == "C0OPS" and answer["approval_id"] in str(post.args["blocks"])
    assert github.merges == []  # a request, never the action


@pytest.fixture
async def serving(tmp_path, slack, llm, github) -> AsyncIterator[Sophia]:
    """`sophia run` with GitHub, its /mcp endpoint up and memory ready."""
    port = free_port()
    settings = make_settings(
        tmp_path, slack, llm, mcp_port=port, mcp_token=TOKEN, github_token=github.token,
        github_api_url=github.base_url, alert_channel="C0OPS",
    )  # fmt: skip
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    await slack.wait_connected()
    await sophia.memory_ready.wait()
    await remember_everywhere(sophia.deps.services.memory)
    sophia.mcp_url = f"http://127.0.0.1:{port}/mcp"
    async with aiohttp.ClientSession() as http:
        for _ in range(200):  # the endpoint starts with the background loops
            try:
                async with http.post(sophia.mcp_url, json={}) as response:
                    assert response.status == 401
                    break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        else:
            raise AssertionError("the MCP endpoint never started")
    yield sophia
    await sophia.stop()


async def test_mcp_serve_relays_to_the_running_sophia(serving, tmp_path, slack, llm, github):
    env = fake_env(
        tmp_path, slack, llm, SOPHIA_MCP_PORT=str(serving.settings.mcp_port), SOPHIA_MCP_TOKEN=TOKEN
    )
    async with stdio_sophia(env, tmp_path, "memory") as client:
        assert [t.name for t in (await client.list_tools()).tools] == ["memory_search"]
        found = await client.call_tool("memory_search", {"query": "Project Atlas launch review"})
        texts = [m["text"] for m in json.loads(text_of(found))]
        assert texts == ["The launch review for Project Atlas is on Friday"]
    async with stdio_sophia(env, tmp_path, "github") as client:
        asked = await client.call_tool(
            "github_request_merge_pr", {"repo": "acme/site", "number": 1}
        )
        approval_id = json.loads(text_of(asked))["approval_id"]
    stored = await serving.deps.services.approvals.get(approval_id)
    assert stored.requester == "mcp:pytest-agent"  # the local client, named through the relay
    assert stored.channel == "C0OPS" and github.merges == []
    # The relay answered from Sophia's own store; the DM memory exists but was never offered.
    dm = await serving.deps.services.memory.recall(
        "Project Atlas launch review", where=Where("U0DANA", "D0DANA", True)
    )
    assert any("worries me" in item.text for item in dm)


async def test_http_endpoint_refuses_requests_without_the_token_and_closes_with_sophia(serving):
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"Authorization": "Bearer wrong-token-123"}):
            async with http.post(serving.mcp_url, json=initialize, headers=headers) as response:
                assert response.status == 401
                assert "SOPHIA_MCP_TOKEN" in await response.text()
    await serving.stop()  # and the port is let go with her
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", serving.settings.mcp_port), timeout=1).close()


async def test_without_a_token_the_endpoint_does_not_start(tmp_path, slack, llm, caplog):
    port = free_port()
    sophia = Sophia(make_settings(tmp_path, slack, llm, mcp_port=port), socket_ping_interval=1.0)
    await sophia.start()
    try:
        await slack.wait_connected()
        assert any("SOPHIA_MCP_TOKEN is not" in r.getMessage() for r in caplog.records)
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientConnectionError):
                await http.post(f"http://127.0.0.1:{port}/mcp", json={})
    finally:
        await sophia.stop()


async def test_a_remote_server_over_streamable_http_with_headers_from_the_environment(
    tmp_path, slack, llm, github, monkeypatch
):
    # Sophia's own /mcp endpoint stands in for a remote server: real HTTP, a bearer header.
    monkeypatch.setenv("REMOTE_MCP_TOKEN", TOKEN)
    port = free_port()
    remote = {"url": f"http://127.0.0.1:{port}/mcp", "headers": {"Authorization": "Bearer ${REMOTE_MCP_TOKEN}"}}  # fmt: skip
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"remote": remote}}))
    settings = make_settings(
        tmp_path, slack, llm, mcp_config=config, mcp_port=port, mcp_token=TOKEN,
        github_token=github.token, github_api_url=github.base_url,
    )  # fmt: skip
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    try:
        tools = sophia.deps.core.tools
        await until(lambda: tools.get("remote__github_repo_info") is not None)
        assert not tools.get("remote__github_repo_info").side_effect  # marked read-only
        assert tools.get("remote__github_request_merge_pr").side_effect  # not: needs approval
        result = await tools.call("remote__github_repo_info", {"repo": "acme/site"}, CTX)
        assert result.ok and '"default_branch": "main"' in result.content
    finally:
        await sophia.stop()
