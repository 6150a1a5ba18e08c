"""The `sophia` command as an operator runs it: in a subprocess, against the fakes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tests.conftest import LLM_KEY, answer_requests
from tests.fakes.llm import Text
from tests.test_mention import mention

SOPHIA = [sys.executable, "-m", "bot.cli"]
ROOT = Path(__file__).resolve().parents[1]


def env_for(tmp_path: Path, **values: str) -> dict[str, str]:
    """A clean environment: no Slack or model settings but the ones given."""
    keep = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "SOPHIA_", "OPENROUTER"))
    }
    keep.update({"PYTHONPATH": str(ROOT), "SOPHIA_DATA_DIR": str(tmp_path / "data"), **values})
    return keep


async def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *SOPHIA, *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode, out.decode(), err.decode()


def fake_env(tmp_path, slack, llm, **extra: str) -> dict[str, str]:
    values = {
        "SLACK_BOT_TOKEN": slack.bot_token, "SLACK_APP_TOKEN": slack.app_token,
        "SLACK_API_URL": slack.api_url, "SOPHIA_LLM_API_BASE": llm.base_url,
        "SOPHIA_LLM_API_KEY": LLM_KEY, "SOPHIA_HEALTH_PORT": "0",
    }  # fmt: skip
    return env_for(tmp_path, **{**values, **extra})


async def test_run_without_tokens_names_the_variables_and_exits_2(tmp_path):
    code, _, err = await run(["run"], env_for(tmp_path), tmp_path)
    assert code == 2
    assert "Missing SLACK_BOT_TOKEN and SLACK_APP_TOKEN" in err
    assert "manifest.yml" in err and "connections:write" in err
    assert "Traceback" not in err


async def test_a_malformed_setting_is_reported_by_name(tmp_path):
    env = env_for(
        tmp_path, SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1", SOPHIA_APPROVAL_TTL="soon"
    )
    code, _, err = await run(["run"], env, tmp_path)
    assert code == 2 and "SOPHIA_APPROVAL_TTL" in err and "Traceback" not in err


async def test_ask_answers_in_the_terminal(tmp_path, slack, llm):
    llm.script(Text("Forty-two."))
    code, out, _ = await run(
        ["ask", "what", "is", "the", "answer?"], fake_env(tmp_path, slack, llm), tmp_path
    )
    assert code == 0, out
    assert "Forty-two." in out
    assert "speed (factual lookup)" in out  # the footer: a quick question went to the speed route
    assert answer_requests(llm)[-1]["messages"][-1]["content"] == "what is the answer?"


async def test_doctor_prints_a_table_and_fails_when_something_configured_is_broken(
    tmp_path, slack, llm
):
    code, out, _ = await run(["doctor"], fake_env(tmp_path, slack, llm), tmp_path)
    assert code == 0, out
    assert "Slack bot token" in out and "Slack Socket Mode" in out and "Models" in out
    assert slack.calls_to("auth.test") and slack.calls_to("apps.connections.open")

    env = fake_env(tmp_path, slack, llm, SLACK_BOT_TOKEN="xoxb-wrong-token-123")
    code, out, _ = await run(["doctor"], env, tmp_path)
    assert code == 1
    assert "invalid_auth" in out
    assert "xoxb-wrong-token-123" not in out


async def test_run_answers_then_sigterm_shuts_down_cleanly_and_frees_the_data_dir(
    tmp_path, slack, llm
):
    env = fake_env(tmp_path, slack, llm, SOPHIA_LOG_FORMAT="json")
    proc = await asyncio.create_subprocess_exec(
        *SOPHIA, "run", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await slack.wait_connected(timeout=30)
        # A second process on the same data dir refuses, and says why.
        code, _, err = await run(["run"], env, tmp_path)
        assert code == 2 and "SOPHIA_DATA_DIR" in err and "already using" in err

        llm.script(Text("answered by the subprocess"))
        await slack.push_event(mention("are you alive?"))
        await slack.wait_for_call("chat.stopStream", timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    lines = [line for line in err.decode().splitlines() if line.startswith("{")]
    assert any('"message": "stopped"' in line for line in lines)  # JSON logs, one per line
    assert "answered by the subprocess" not in err.decode()  # message text is not logged

    # The lock was released: a fresh process can use the same data dir.
    proc = await asyncio.create_subprocess_exec(
        *SOPHIA, "run", env=env, cwd=tmp_path, stderr=asyncio.subprocess.PIPE
    )
    await slack.wait_connected(timeout=30)
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0


async def test_healthz_is_200_while_connected_and_503_when_the_socket_is_down(sophia, slack):
    url = f"http://127.0.0.1:{sophia.health.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 200
        async with http.get(f"{url}/metrics") as response:
            assert "sophia_inflight_replies 0" in await response.text()
        await sophia.socket.client.close()  # the connection is gone for good
        async with http.get(f"{url}/healthz") as response:
            assert response.status == 503


async def test_approvals_lists_requests_from_the_database(tmp_path, slack, llm):
    from bot.core.approvals import Approvals
    from bot.store import Store

    store = await Store.open(f"sqlite:///{tmp_path / 'data' / 'sophia.db'}")

    async def nobody(user: str) -> bool:
        return False

    approvals = Approvals(store, is_approver=nobody, ttl_s=600)
    approvals.register("github.merge", object())
    await approvals.create(
        kind="github.merge", target="acme/site#7", params={}, bound_version="abc123",
        summary="Merge it", requester="U0USER", channel="C0CHAN", thread_ts=None,
    )  # fmt: skip
    await store.close()
    env = fake_env(tmp_path, slack, llm, COLUMNS="200")  # a wide terminal: one row per request
    code, out, _ = await run(["approvals"], env, tmp_path)
    assert code == 0 and "acme/site#7" in out and "pending" in out


async def test_index_from_the_terminal_and_refusal_while_sophia_runs(tmp_path, slack, llm):
    from tests.fakes.github import FakeGitHub

    async with FakeGitHub() as github:
        github.add_repo("acme/docs", files={"README.md": "# Docs\n\n## Setup\n\nRun make.\n"})
        env = fake_env(
            tmp_path, slack, llm, GITHUB_TOKEN=github.token, GITHUB_API_URL=github.base_url
        )
        code, out, err = await run(["index", "acme/docs"], env, tmp_path)
        assert code == 0, err
        assert "acme/docs@main: 1 files, 1 (re)indexed, 0 removed" in out
        code, out, _ = await run(["index", "acme/docs"], env, tmp_path)
        assert "0 (re)indexed" in out  # nothing changed, nothing re-embedded


async def test_metrics_count_what_happened(sophia, slack, llm):
    from tests.fakes.llm import ToolCalls

    llm.script(ToolCalls([("current_time", {})]), Text("It is late."))
    await slack.push_event(mention("what time is it?"))
    await slack.wait_for_call("chat.stopStream")
    await slack.push_event(mention("and now?"), event_id="Ev0METRICS")
    await slack.push_event(mention("and now?"), event_id="Ev0METRICS", retry_attempt=1)
    await slack.wait_for_call("chat.stopStream", count=2)
    url = f"http://127.0.0.1:{sophia.health.port}/metrics"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        text = await response.text()
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["sophia_events_total"] == 3 and values["sophia_events_duplicate_total"] == 1
    assert values['sophia_replies_total{source="mention",status="ok"}'] == 2
    assert values['sophia_tool_calls_total{outcome="ok",tool="current_time"}'] == 1
    assert sum(v for k, v in values.items() if k.startswith("sophia_model_requests_total")) == 2
    assert sum(v for k, v in values.items() if k.startswith("sophia_model_tokens_total")) > 0
    assert "# TYPE sophia_replies_waiting gauge" in text
    # Every envelope's ack is timed: three events, three observations, buckets cumulative.
    assert "# TYPE sophia_ack_seconds histogram" in text
    assert values['sophia_envelopes_acked_total{type="events_api"}'] == 3
    assert values["sophia_ack_seconds_count"] == 3
    assert values['sophia_ack_seconds_bucket{le="+Inf"}'] == 3
    buckets = [v for k, v in values.items() if k.startswith("sophia_ack_seconds_bucket")]
    assert buckets == sorted(buckets)
