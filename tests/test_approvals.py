"""Approvals bound to the exact PR head, decided by button clicks in Slack, executed once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.app import Sophia
from bot.core.approvals import ApprovalState
from tests.conftest import make_settings
from tests.fakes.github import FakeGitHub
from tests.fakes.llm import Text, ToolCalls
from tests.test_mention import mention

REQUESTER, APPROVER, OUTSIDER = "U0USER", "U0BOSS", "U0RANDO"


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub() as fake:
        fake.add_repo("acme/site", files={"README.md": "# Site\n", "app.py": "print('hi')\n"})
        pr = fake.add_pull(
            "acme/site",
            title="Fix the typo",
            head_branch="fix-typo",
            files={"README.md": "# Site!\n"},
        )
        fake.set_status("acme/site", pr["head"]["sha"], state="success", context="ci")
        yield fake


def settings_for(tmp_path, slack, llm, github, **overrides):
    values = {
        "github_token": github.token, "github_api_url": github.base_url, "approvers": [APPROVER],
    }  # fmt: skip
    values.update(overrides)
    return make_settings(tmp_path, slack, llm, **values)


@pytest.fixture
async def app(tmp_path, slack, llm, github) -> AsyncIterator[Sophia]:
    sophia = Sophia(settings_for(tmp_path, slack, llm, github), socket_ping_interval=1.0)
    await sophia.start()
    await slack.wait_connected()
    yield sophia
    await sophia.stop()


async def request_merge(slack, *, user: str = REQUESTER) -> tuple[str, str]:
    """`/sophia pr merge acme/site#1`; returns (approval id, request message ts)."""
    await slack.push_slash_command("pr merge acme/site#1", user_id=user)
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    actions = next(b for b in post.args["blocks"] if b["type"] == "actions")
    approve = next(e for e in actions["elements"] if e["action_id"] == "approval_approve")
    return approve["value"], post.response["ts"]


async def click(
    slack,
    approval_id: str,
    message_ts: str,
    *,
    user: str,
    approve: bool = True,
    action_ts: str = "1.1",
) -> str:
    return await slack.push_interactive({
        "type": "block_actions", "user": {"id": user},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": "C0CHAN"},
        "channel": {"id": "C0CHAN"}, "message": {"ts": message_ts},
        "actions": [{
            "type": "button", "action_id": "approval_approve" if approve else "approval_reject",
            "block_id": f"approval:{approval_id}", "value": approval_id, "action_ts": action_ts,
        }],
    })  # fmt: skip


async def wait_state(
    app: Sophia, approval_id: str, state: ApprovalState, timeout: float = 5
) -> None:
    approvals = app.deps.services.approvals
    for _ in range(int(timeout / 0.05)):
        if (await approvals.get(approval_id)).state == state:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(
        f"{approval_id} never reached {state}; it is {(await approvals.get(approval_id)).state}"
    )


async def test_the_request_shows_the_facts_and_is_bound_to_the_head(app, slack, github):
    approval_id, ts = await request_merge(slack)
    [post] = slack.calls_to("chat.postMessage")
    text = str(post.args["blocks"])
    assert "Fix the typo" in text and "ci ✓" in text and "in 1 files" in text
    buttons = next(b for b in post.args["blocks"] if b["type"] == "actions")["elements"]
    assert [(b["text"]["text"], b["style"]) for b in buttons] == [
        ("Approve", "primary"),
        ("Reject", "danger"),
    ]
    stored = await app.deps.services.approvals.get(approval_id)
    assert stored.state == ApprovalState.PENDING and stored.requester == REQUESTER
    assert stored.bound_version == github.pull("acme/site", 1).head_sha
    assert stored.bound_version[:7] in text  # the reviewer sees the SHA they approve
    for _ in range(50):  # the message ts is remembered right after posting
        if (await app.deps.services.approvals.get(approval_id)).message_ts == ts:
            break
        await asyncio.sleep(0.02)
    assert (await app.deps.services.approvals.get(approval_id)).message_ts == ts


async def test_an_approver_approves_and_exactly_one_merge_is_made_with_the_approved_sha(
    app, slack, github
):
    approval_id, ts = await request_merge(slack)
    bound = (await app.deps.services.approvals.get(approval_id)).bound_version
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE)
    [merge] = github.calls("PUT", r"/pulls/1/merge$")
    assert merge.json["sha"] == bound and merge.json["merge_method"] == "squash"
    assert len(github.merges) == 1
    updated = slack.message("C0CHAN", ts)
    assert not any(b["type"] == "actions" for b in updated["blocks"])  # the buttons are gone
    assert "Done" in str(updated["blocks"]) and f"<@{APPROVER}>" in str(updated["blocks"])
    [report] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Merged" in c.args.get("text", "")
    )
    assert report.args["thread_ts"] == ts


async def test_a_non_approver_is_refused_and_the_refusal_is_audited(app, slack, github):
    approval_id, ts = await request_merge(slack)
    await click(slack, approval_id, ts, user=OUTSIDER)
    [ephemeral] = await slack.wait_for_call("chat.postEphemeral")
    assert ephemeral.args["user"] == OUTSIDER and "SOPHIA_APPROVERS" in ephemeral.args["text"]
    assert github.merges == []
    log = await app.deps.services.approvals.audit_log(10)
    assert any(e["user_id"] == OUTSIDER and e["outcome"].startswith("refused") for e in log)
    assert (await app.deps.services.approvals.get(approval_id)).state == ApprovalState.PENDING


async def test_the_requester_cannot_approve_their_own_request(app, slack, github):
    approval_id, ts = await request_merge(slack, user=APPROVER)
    await click(slack, approval_id, ts, user=APPROVER)
    [ephemeral] = await slack.wait_for_call("chat.postEphemeral")
    assert "someone else has to approve" in ephemeral.args["text"]
    assert github.merges == []


async def test_self_approval_works_when_the_setting_allows_it(tmp_path, slack, llm, github):
    sophia = Sophia(
        settings_for(tmp_path, slack, llm, github, allow_self_approval=True),
        socket_ping_interval=1.0,
    )
    await sophia.start()
    try:
        await slack.wait_connected()
        approval_id, ts = await request_merge(slack, user=APPROVER)
        await click(slack, approval_id, ts, user=APPROVER)
        await wait_state(sophia, approval_id, ApprovalState.DONE)
        assert len(github.merges) == 1
    finally:
        await sophia.stop()


async def test_an_expired_request_cannot_be_approved(tmp_path, slack, llm, github):
    sophia = Sophia(
        settings_for(tmp_path, slack, llm, github, approval_ttl=timedelta(seconds=0.3)),
        socket_ping_interval=1.0,
    )
    await sophia.start()
    try:
        await slack.wait_connected()
        approval_id, ts = await request_merge(slack)
        await asyncio.sleep(0.4)
        await click(slack, approval_id, ts, user=APPROVER)
        [ephemeral] = await slack.wait_for_call("chat.postEphemeral")
        assert "expired" in ephemeral.args["text"]
        await wait_state(sophia, approval_id, ApprovalState.EXPIRED)
        await slack.wait_for_call("chat.update", lambda c: "Expired" in str(c.args.get("blocks")))
        assert github.merges == []
    finally:
        await sophia.stop()


async def test_a_new_commit_after_the_request_voids_the_approval(app, slack, github):
    approval_id, ts = await request_merge(slack)
    github.push_commit("acme/site", "fix-typo", {"README.md": "# Site!!\n"})
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.VOID)
    assert github.merges == [] and not github.calls("PUT", r"/merge$")
    [notice] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "void" in c.args.get("text", "")
    )
    assert "/sophia pr merge acme/site#1" in notice.args["text"]  # a fresh request is offered


async def test_double_clicks_and_redelivered_envelopes_merge_once(app, slack, github):
    approval_id, ts = await request_merge(slack)
    await asyncio.gather(
        click(slack, approval_id, ts, user=APPROVER, action_ts="2.1"),
        click(slack, approval_id, ts, user=APPROVER, action_ts="2.1"),  # the same envelope again
        click(slack, approval_id, ts, user=APPROVER, action_ts="2.2"),  # a second click
    )
    await wait_state(app, approval_id, ApprovalState.DONE)
    await asyncio.sleep(0.3)
    assert len(github.merges) == 1 and len(github.calls("PUT", r"/merge$")) == 1


async def test_a_restart_between_approval_and_execution_merges_exactly_once(
    tmp_path, slack, llm, github
):
    settings = settings_for(tmp_path, slack, llm, github)
    first = Sophia(settings, socket_ping_interval=1.0)
    await first.start()
    await slack.wait_connected()
    approval_id, _ = await request_merge(slack)
    approvals = first.deps.services.approvals
    await approvals.decide(approval_id, user=APPROVER, approve=True)
    # The process claims the request and dies before acting.
    assert await first.deps.store.transition(
        approval_id, ApprovalState.APPROVED, ApprovalState.EXECUTING
    )
    await first.stop()

    second = Sophia(settings, socket_ping_interval=1.0)
    await second.start()  # reconciles on start-up
    try:
        assert (await second.deps.services.approvals.get(approval_id)).state == ApprovalState.DONE
        assert len(github.merges) == 1
        await slack.wait_for_call(
            "chat.postMessage", lambda c: "After a restart" in c.args.get("text", "")
        )
    finally:
        await second.stop()
    # A third start finds nothing left to do: still one merge.
    third = Sophia(settings, socket_ping_interval=1.0)
    await third.start()
    await third.stop()
    assert len(github.merges) == 1


async def test_a_restart_after_github_already_merged_reports_without_merging_again(
    tmp_path, slack, llm, github
):
    settings = settings_for(tmp_path, slack, llm, github)
    first = Sophia(settings, socket_ping_interval=1.0)
    await first.start()
    await slack.wait_connected()
    approval_id, _ = await request_merge(slack)
    await first.deps.services.approvals.decide(approval_id, user=APPROVER, approve=True)
    await first.deps.store.transition(approval_id, ApprovalState.APPROVED, ApprovalState.EXECUTING)
    await first.stop()
    # The merge went through on GitHub just before the crash.
    import github as pygithub

    gh = pygithub.Github(
        base_url=github.base_url, auth=pygithub.Auth.Token(github.token), retry=None
    )
    await asyncio.to_thread(
        lambda: gh.get_repo("acme/site").get_pull(1).merge(merge_method="squash")
    )
    second = Sophia(settings, socket_ping_interval=1.0)
    await second.start()
    try:
        state = await second.deps.services.approvals.get(approval_id)
        assert state.state == ApprovalState.DONE and "already merged" in state.result
        assert len(github.merges) == 1
    finally:
        await second.stop()


async def test_failing_checks_mean_no_request_and_the_reasons_are_shown(app, slack, github):
    pr = github.add_pull(
        "acme/site", title="Risky", head_branch="risky", files={"app.py": "boom\n"}
    )
    github.set_status("acme/site", pr["head"]["sha"], state="failure", context="ci")
    github.add_check_run(
        "acme/site", pr["head"]["sha"], name="lint", status="in_progress", conclusion=None
    )
    envelope = await slack.push_slash_command("pr merge acme/site#2")
    [reply] = await slack.wait_for_response_url_post(envelope)
    assert "`ci` (failure)" in reply["text"] and "`lint` (pending)" in reply["text"]
    assert not [
        c for c in slack.calls_to("chat.postMessage") if "Approval needed" in c.args.get("text", "")
    ]


async def test_a_model_can_only_request_a_merge(app, slack, llm, github):
    llm.script(
        ToolCalls([("merge_pr", {"repo": "acme/site", "number": 1})]),
        Text("I've asked for approval."),
    )
    await slack.push_event(mention("please merge acme/site#1"))
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    await slack.wait_for_call("chat.stopStream")
    thread = slack.messages("C0CHAN")[0]["ts"]
    assert post.args["thread_ts"] == thread  # posted where it was asked for
    assert github.merges == [] and not github.calls("PUT", r"/merge$")


async def test_without_approvers_the_request_says_how_to_configure_them(
    tmp_path, slack, llm, github
):
    sophia = Sophia(
        settings_for(tmp_path, slack, llm, github, approvers=[]), socket_ping_interval=1.0
    )
    await sophia.start()
    try:
        await slack.wait_connected()
        approval_id, ts = await request_merge(slack)
        [post] = slack.calls_to("chat.postMessage")
        assert "SOPHIA_APPROVERS" in str(post.args["blocks"])
        await click(slack, approval_id, ts, user=APPROVER)
        await slack.wait_for_call("chat.postEphemeral")
        assert github.merges == []
    finally:
        await sophia.stop()


async def test_user_groups_can_approve_and_the_approvals_and_audit_commands_list_them(
    tmp_path, slack, llm, github
):
    slack.set_usergroup("S0LEADS", [APPROVER])
    sophia = Sophia(
        settings_for(tmp_path, slack, llm, github, approvers=["S0LEADS"]), socket_ping_interval=1.0
    )
    await sophia.start()
    try:
        await slack.wait_connected()
        approval_id, ts = await request_merge(slack)
        envelope = await slack.push_slash_command("approvals", user_id=APPROVER)
        [listing] = await slack.wait_for_response_url_post(envelope)
        assert approval_id in listing["text"]
        await click(slack, approval_id, ts, user=APPROVER)
        await wait_state(sophia, approval_id, ApprovalState.DONE)
        envelope = await slack.push_slash_command("audit 5", user_id=APPROVER)
        [audit] = await slack.wait_for_response_url_post(envelope)
        assert "approve → approved" in audit["text"] and "execute → done" in audit["text"]
        envelope = await slack.push_slash_command("audit", user_id=OUTSIDER)
        [refused] = await slack.wait_for_response_url_post(envelope)
        assert "Only approvers" in refused["text"]
    finally:
        await sophia.stop()


async def test_the_github_token_never_reaches_slack_or_the_logs(app, slack, github, caplog):
    caplog.set_level(logging.DEBUG)
    approval_id, ts = await request_merge(slack)
    await click(slack, approval_id, ts, user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE)
    assert github.token not in "\n".join(repr(c.args) for c in slack.calls)
    assert all(github.token not in record.getMessage() for record in caplog.records)


async def test_app_home_lists_what_waits_for_the_approver(app, slack, github):
    approval_id, _ = await request_merge(slack)
    await slack.push_event(
        {"type": "app_home_opened", "user": APPROVER, "channel": "D0BOSS", "tab": "home"}
    )
    [publish] = await slack.wait_for_call("views.publish")
    view = str(publish.args["view"])
    assert "Waiting for your approval" in view and approval_id in view
    await slack.push_event(
        {"type": "app_home_opened", "user": OUTSIDER, "channel": "D0RANDO", "tab": "home"}
    )
    [_, other] = await slack.wait_for_call("views.publish", count=2)
    assert "Waiting for your approval" not in str(other.args["view"])


async def test_jobs_lists_what_the_person_asked_for_and_how_it_ended(app, slack):
    from tests.test_slash_command import ephemeral

    assert "You have no jobs yet" in await ephemeral(slack, "jobs", user_id=REQUESTER)
    approval_id, ts = await request_merge(slack)
    text = await ephemeral(slack, "jobs", user_id=REQUESTER)
    assert "⏳ waiting for approval" in text and approval_id in text
    await click(slack, approval_id, ts, user=APPROVER)
    await slack.wait_for_call("chat.update", lambda c: "Done" in c.args.get("text", ""))
    text = await ephemeral(slack, "jobs", user_id=REQUESTER)
    assert "✅ done" in text and "Fix the typo" in text
    assert "no jobs yet" in await ephemeral(slack, "jobs", user_id=OUTSIDER)  # only your own
