"""`/sophia account <company>`: HubSpot, Gong, Slack, Asana and the web in one cited brief.

Real hubspot-api-client, aiohttp, slack-bolt and litellm against loopback fakes; the web source
is faked at its Protocol (`WebResearch`). The model's brief is written by a FakeLLM handler that
cites the record ids it is shown, as a model would.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator

import pytest

from bot.app import Sophia
from bot.core.account import Asker, Company
from bot.core.approvals import ApprovalState
from bot.core.ports import SearchHit, SearchResults
from integrations.asana import Asana
from integrations.gong import Gong
from tests.conftest import answer_requests, make_settings
from tests.fakes.asana import FakeAsana
from tests.fakes.gong import FakeGong
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.llm import FakeLLM, Text, ToolCalls
from tests.fakes.slack import FakeSlack
from tests.test_approvals import click, wait_state
from tests.test_mention import mention

ASKER, APPROVER, OTHER = "U0USER", "U0BOSS", "U0OTHER"
SECRET = "Acme is about to churn, do not tell anyone"
NEWS_URL = "https://news.example.com/acme-raises-series-c"


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpot]:
    async with FakeHubSpot() as fake:
        acme = fake.add("companies", {"name": "Acme Corp", "domain": "acme.com", "city": "Berlin"})
        fake.add("companies", {"name": "Acme Foods", "domain": "acmefoods.com", "city": "Lyon"})
        fake.add("deals", {
            "dealname": "Acme renewal", "dealstage": "qualifiedtobuy", "pipeline": "default",
            "amount": "120000", "closedate": "2025-06-30T00:00:00.000Z", "hubspot_owner_id": "101",
        }, to=[("companies", acme)])  # fmt: skip
        fake.add("contacts", {"firstname": "Ann", "lastname": "Lee", "email": "ann@acme.com", "jobtitle": "CTO"}, to=[("companies", acme)])  # fmt: skip
        fake.add("notes", {"hs_note_body": "<p>Asked for SSO</p>", "hs_timestamp": "2025-04-20T10:00:00Z"}, to=[("companies", acme)])  # fmt: skip
        fake.acme = acme
        yield fake


@pytest.fixture
async def gong() -> AsyncIterator[FakeGong]:
    async with FakeGong() as fake:
        fake.add_call(
            title="Weekly sync", days_ago=3,
            parties=[{"name": "Ann Lee", "email": "ann@acme.com"}, {"name": "Dana Reyes", "email": "dana@ours.example", "internal": True}],
            lines=[("Ann Lee", 65, "Honestly the pricing is a concern for us."),
                   ("Dana Reyes", 130, "I'll send you the security questionnaire by Friday.")],
            topics=[("Pricing", 240)],
        )  # fmt: skip
        fake.add_call(
            title="Globex intro", days_ago=4, parties=[{"name": "Hank", "email": "hank@globex.com"}]
        )
        yield fake


@pytest.fixture
async def asana() -> AsyncIterator[FakeAsana]:
    async with FakeAsana() as fake:
        fake.add_task(
            "Send Acme the security questionnaire", assignee="Dana Reyes", due_on="2025-05-09"
        )
        fake.add_task("Acme kickoff deck", completed=True)
        yield fake


class FakeResearch:
    """`WebResearch` at its Protocol: one news hit."""

    @property
    def providers(self) -> list[str]:
        return ["serper"]

    async def search(self, query: str, *, limit: int = 8) -> SearchResults:
        hit = SearchHit(
            "Acme raises a Series C", NEWS_URL, "Acme Corp raised $80M.", "serper", "2025-04-28"
        )
        return SearchResults([hit], "serper", [("serper", "ok")])

    async def fetch(self, url: str):  # pragma: no cover - not used by briefs
        raise NotImplementedError

    async def close(self) -> None:
        return None


def business_settings(tmp_path, slack, llm, hubspot=None, gong=None, asana=None, **overrides):
    values: dict = {"approvers": [APPROVER]}
    if hubspot:
        values |= {"hubspot_access_token": hubspot.token, "hubspot_api_url": hubspot.base_url}
    if gong:
        values |= {"gong_access_key": gong.access_key, "gong_access_key_secret": gong.secret, "gong_api_url": gong.base_url}  # fmt: skip
    if asana:
        values |= {"asana_access_token": asana.token, "asana_api_url": asana.api_url}
    return make_settings(tmp_path, slack, llm, **(values | overrides))


async def started(settings, slack: FakeSlack) -> Sophia:
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    await slack.wait_connected()
    return sophia


@pytest.fixture
async def app(tmp_path, slack, llm, hubspot, gong, asana) -> AsyncIterator[Sophia]:
    sophia = await started(business_settings(tmp_path, slack, llm, hubspot, gong, asana), slack)
    yield sophia
    await sophia.stop()


def brief_writer(llm: FakeLLM, cite=("deal", "promise", "message", "task", "news")) -> list[dict]:
    """Answer brief requests citing the first record of each wanted kind; returns the requests."""
    seen: list[dict] = []

    def write(body: dict) -> Text | None:
        system = (body.get("messages") or [{}])[0].get("content") or ""
        if "You write account briefs" not in system:
            return None
        seen.append(body)
        user = body["messages"][1]["content"]
        data = json.loads(
            re.search(r"<tool_output[^>]*>\n(.*)\n</tool_output>", user, re.S).group(1)
        )
        lines = []
        for kind in cite:
            record = next((r for r in data if r["kind"] == kind), None)
            if record:
                lines.append(f"- {kind}: {record['title']} [{record['id']}]")
        lines.append("- An invented source [Z9] and a stray link https://evil.example/x")
        return Text("**Relationship**\n" + "\n".join(lines))

    llm.on(write, first=True)
    return seen


def add_slack_channels(slack: FakeSlack) -> dict[str, str]:
    """#sales (public, asker and Sophia), a private channel the asker is not in, a DM of others,
    and a private channel the asker is in; each mentions Acme. Returns channel → message ts."""
    slack.set_channel("C0SALES", name="sales", members=["UBOT", ASKER, OTHER])
    slack.set_channel("G0SECRET", name="exec", is_private=True, members=["UBOT", OTHER, "U0ADMIN"])
    slack.set_channel("G0MINE", name="deal-room", is_private=True, members=["UBOT", ASKER])
    slack.set_channel("D0OTHERS", is_im=True, is_private=True, members=[OTHER, "U0ADMIN"])
    return {
        "C0SALES": slack.add_message(
            "C0SALES", user=OTHER, text="Acme wants the SSO add-on before renewal"
        ),
        "G0SECRET": slack.add_message("G0SECRET", user=OTHER, text=SECRET),
        "G0MINE": slack.add_message(
            "G0MINE", user=ASKER, text="Acme legal asked for a DPA redline"
        ),
        "D0OTHERS": slack.add_message("D0OTHERS", user=OTHER, text=f"psst: {SECRET}"),
    }


async def brief_in_thread(slack: FakeSlack, channel: str) -> tuple[dict, str]:
    """Wait for the brief; returns the visible request message and the thread's text."""
    await slack.wait_for_call("chat.stopStream", timeout=15)
    parent = next(
        m for m in slack.messages(channel) if "asked for an account brief" in m.get("text", "")
    )
    thread = slack.messages(channel, parent["ts"])[1:]
    return parent, "\n".join(m.get("text", "") for m in thread)


async def test_the_brief_cites_every_source_with_working_links(
    app, slack, llm, hubspot, gong, asana
):
    app.deps.services.research = FakeResearch()
    ts = add_slack_channels(slack)
    prompts = brief_writer(llm)
    await slack.push_slash_command("account Acme Corp", user_id=ASKER, channel_id="C0CHAN")
    parent, text = await brief_in_thread(slack, "C0CHAN")

    assert f"<@{ASKER}>" in parent["text"] and "Acme Corp" in parent["text"]
    deal = next(oid for oid, o in hubspot.objects["deals"].items())
    assert f"(https://app.hubspot.com/contacts/4242/record/0-3/{deal})" in text  # HubSpot record
    call = gong.calls_[0]["metaData"]
    assert f"[Gong 02:10]({call['url']})" in text  # the promise, at its moment in the call
    assert "Weekly sync" in text and "02:10" in text
    link = slack.m_chat_getPermalink({"channel": "C0SALES", "message_ts": ts["C0SALES"]})
    link = link["permalink"]
    assert f"({link})" in text  # a Slack permalink to the very message
    assert f"({asana.tasks[0]['permalink_url']})" in text  # the open Asana task
    assert f"({NEWS_URL})" in text  # recent news
    assert "evil.example" not in text and "Z9" not in text  # nothing the sources did not give
    # Each source was a visible step, with what it found.
    stop = slack.calls_to("chat.stopStream")[-1]
    tasks = slack.message("C0CHAN", stop.args["ts"])["tasks"].values()
    steps = {t["title"]: t.get("details") or t.get("output") or "" for t in tasks}
    assert all("found" in steps[name] for name in ("HubSpot", "Gong", "Slack", "Asana", "Web"))
    # The model wrote from the records only, labelled untrusted, with no tools to call.
    [body] = prompts
    assert "tools" not in body and 'trust="untrusted"' in body["messages"][1]["content"]
    assert "Acme wants the SSO add-on" in body["messages"][1]["content"]


@pytest.mark.parametrize("user_token", [False, True], ids=["history", "search.messages"])
async def test_a_private_channel_the_asker_is_not_in_never_appears(
    tmp_path, slack, llm, hubspot, user_token
):
    overrides = {"slack_user_token": slack.user_token} if user_token else {}
    sophia = await started(business_settings(tmp_path, slack, llm, hubspot, **overrides), slack)
    try:
        add_slack_channels(slack)
        prompts = brief_writer(llm)
        await slack.push_slash_command("account Acme Corp", user_id=ASKER, channel_id="C0CHAN")
        _, text = await brief_in_thread(slack, "C0CHAN")
        prompt = prompts[0]["messages"][1]["content"]
        assert "SSO add-on" in prompt  # the shared public channel is read
        assert SECRET not in prompt and SECRET not in text  # not the exec channel, not others' DMs
        # The asker's own private channel stays out of a brief everyone here can read.
        assert "DPA redline" not in prompt
        assert "ask me in a DM" in text
        if user_token:
            assert slack.calls_to("search.messages")[0].token == slack.user_token
    finally:
        await sophia.stop()


async def test_a_brief_asked_in_a_dm_stays_in_the_dm(app, slack, llm):
    add_slack_channels(slack)
    prompts = brief_writer(llm)
    await slack.push_slash_command("account Acme Corp", user_id=ASKER, channel_id="D0USER")
    _, text = await brief_in_thread(slack, "D0USER")
    assert "Account brief" in text
    posted = [
        c.args.get("channel")
        for c in slack.calls
        if c.method.startswith("chat.") and c.method != "chat.getPermalink"
    ]
    assert posted and set(posted) == {"D0USER"}
    prompt = prompts[0]["messages"][1]["content"]
    assert "DPA redline" in prompt  # in a DM the asker's own private channels count
    assert SECRET not in prompt


async def test_unconfigured_and_failing_sources_are_named_and_the_brief_still_comes(
    tmp_path, slack, llm, hubspot, gong
):
    gong.fail("POST", r"/v2/calls/extensive", status=500, times=None)
    sophia = await started(business_settings(tmp_path, slack, llm, hubspot, gong), slack)
    try:
        brief_writer(llm)
        await slack.push_slash_command("account Acme Corp", user_id=ASKER)
        _, text = await brief_in_thread(slack, "C0CHAN")
        assert "Asana: not configured — set `ASANA_ACCESS_TOKEN`" in text
        assert "Web: not configured — set `SERPER_API_KEY" in text
        assert "Gong: failed — Gong answered 500" in text
        assert "Acme renewal" in text and "/record/0-3/" in text  # from HubSpot all the same
    finally:
        await sophia.stop()


async def test_a_guest_is_refused_privately_and_nothing_is_read(app, slack, hubspot):
    slack.set_user("U0GUEST", is_restricted=True)
    envelope = await slack.push_slash_command("account Acme Corp", user_id="U0GUEST")
    [reply] = await slack.wait_for_response_url_post(envelope)
    assert reply["response_type"] == "ephemeral" and "guests" in reply["text"]
    assert hubspot.requests == [] and not slack.calls_to("chat.postMessage")


async def test_business_users_limit_who_may_ask(tmp_path, slack, llm, hubspot):
    slack.set_usergroup("S0SALES", [APPROVER])
    sophia = await started(
        business_settings(tmp_path, slack, llm, hubspot, business_users=["S0SALES"]), slack
    )
    try:
        envelope = await slack.push_slash_command("account Acme Corp", user_id=ASKER)
        [reply] = await slack.wait_for_response_url_post(envelope)
        assert "SOPHIA_BUSINESS_USERS" in reply["text"] and hubspot.requests == []
    finally:
        await sophia.stop()


async def test_an_ambiguous_name_offers_buttons_and_a_pick_writes_that_brief(
    app, slack, llm, hubspot
):
    brief_writer(llm)
    envelope = await slack.push_slash_command("account acme", user_id=ASKER)
    [reply] = await slack.wait_for_response_url_post(envelope)
    buttons = next(b for b in reply["blocks"] if b["type"] == "actions")["elements"]
    assert [b["text"]["text"] for b in buttons] == ["Acme Corp", "Acme Foods"]
    foods = buttons[1]
    await slack.push_interactive({
        "type": "block_actions", "user": {"id": ASKER}, "channel": {"id": "C0CHAN"},
        "container": {"type": "message", "message_ts": "1.1", "channel_id": "C0CHAN", "is_ephemeral": True},
        "actions": [{**foods, "block_id": "sophia_account_pick", "action_ts": "2.2"}],
    })  # fmt: skip
    parent, text = await brief_in_thread(slack, "C0CHAN")
    assert "Acme Foods" in parent["text"]
    foods_id = next(
        oid
        for oid, o in hubspot.objects["companies"].items()
        if o["properties"]["name"] == "Acme Foods"
    )
    assert f"/record/0-2/{foods_id}" in text


async def test_without_business_credentials_the_command_names_the_variables(slack, sophia, llm):
    envelope = await slack.push_slash_command("account Acme", user_id=ASKER)
    [reply] = await slack.wait_for_response_url_post(envelope)
    assert "HUBSPOT_ACCESS_TOKEN" in reply["text"] and "GONG_ACCESS_KEY" in reply["text"]
    assert sophia.deps.core.tools.get("account_brief") is None


async def test_a_deal_stage_move_goes_through_approval(app, slack, llm, hubspot):
    llm.script(
        ToolCalls(
            [("hubspot_move_deal_stage", {"deal": "Acme renewal", "stage": "Contract sent"})]
        ),
        Text("I've asked for approval to move it."),
    )
    await slack.push_event(mention("move the Acme renewal to Contract sent"))
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    assert "Qualified to buy" in str(post.args["blocks"]) and "Contract sent" in str(
        post.args["blocks"]
    )
    assert not hubspot.calls("PATCH")  # nothing moves before a human says so
    approval_id = next(b for b in post.args["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    await click(slack, approval_id, post.response["ts"], user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE)
    deal = next(iter(hubspot.objects["deals"]))
    [patch] = hubspot.calls("PATCH", rf"/crm/v3/objects/deals/{deal}$")
    assert patch.json == {"properties": {"dealstage": "contractsent"}}
    await slack.wait_for_call("chat.postMessage", lambda c: "Moved" in c.args.get("text", ""))


async def test_a_note_request_is_written_once_after_approval(app, slack, llm, hubspot):
    llm.script(
        ToolCalls(
            [("hubspot_add_note", {"company": "Acme Corp", "text": "Sent the DPA redline."})]
        ),
        Text("Requested."),
    )
    await slack.push_event(mention("note on Acme Corp: sent the DPA redline"))
    [post] = await slack.wait_for_call(
        "chat.postMessage", lambda c: "Approval needed" in c.args.get("text", "")
    )
    approval_id = next(b for b in post.args["blocks"] if b["type"] == "actions")["elements"][0][
        "value"
    ]
    await click(slack, approval_id, post.response["ts"], user=APPROVER)
    await wait_state(app, approval_id, ApprovalState.DONE)
    [create] = hubspot.calls("POST", r"/crm/v3/objects/notes$")
    assert "Sent the DPA redline." in create.json["properties"]["hs_note_body"]
    assert approval_id in create.json["properties"]["hs_note_body"]  # found again after a restart
    assert create.json["associations"][0]["to"]["id"] == hubspot.acme


async def test_gong_reads_every_page_and_waits_out_its_rate_limit():
    async with FakeGong(page_size=1) as fake:
        for days, title in ((2, "Acme QBR"), (5, "Acme pricing call"), (9, "Acme kickoff")):
            fake.add_call(
                title=title, days_ago=days, parties=[{"name": "Ann", "email": "ann@acme.com"}]
            )
        fake.fail("POST", r"/v2/calls/extensive", status=429, retry_after=1)
        found = await Gong(
            access_key=fake.access_key, secret=fake.secret, base_url=fake.base_url
        ).gather(Company("Acme", "acme.com"), Asker(ASKER, "C0CHAN", False))
        assert [r.title for r in found.records if r.kind == "call"] == [
            "Acme QBR",
            "Acme pricing call",
            "Acme kickoff",
        ]
        pages = fake.calls("POST", r"/v2/calls/extensive")
        assert [p.status for p in pages] == [429, 200, 200, 200]
        assert [(p.json or {}).get("cursor") for p in pages[1:]] == [None, "00000001", "00000002"]


async def test_an_asana_plan_without_search_is_reported_and_typeahead_used():
    async with FakeAsana(premium=False) as fake:
        fake.add_task("Acme security review", assignee="Dana Reyes")
        found = await Asana(token=fake.token, base_url=fake.api_url).gather(
            Company("Acme"), Asker(ASKER, None, True)
        )
        assert [r.title for r in found.records] == ["Acme security review"]
        assert "no search on its plan" in found.notes[0]
        assert fake.calls("GET", r"/typeahead$")


async def test_account_brief_tool_gives_the_agent_cited_records(app, slack, llm, hubspot):
    llm.script(ToolCalls([("account_brief", {"company": "Acme Corp"})]), Text("Acme is renewing."))
    await slack.push_event(mention("what's going on with Acme Corp?"))
    await slack.wait_for_call("chat.stopStream", timeout=15)
    answers = [
        b for b in llm.chat_requests() if any(m.get("role") == "tool" for m in b["messages"])
    ]
    tool_output = next(m["content"] for m in answers[-1]["messages"] if m.get("role") == "tool")
    assert "Acme renewal" in tool_output and "/record/0-3/" in tool_output
    # After reading outside data the agent is offered no side-effect tools.
    offered = {t["function"]["name"] for t in answers[-1].get("tools") or []}
    assert "hubspot_move_deal_stage" not in offered


async def test_doctor_checks_hubspot_gong_and_asana_live(
    tmp_path, slack, llm, hubspot, gong, asana
):
    from bot.app import build_registry
    from bot.doctor import run_checks

    settings = business_settings(
        tmp_path, slack, llm, hubspot, gong, asana, asana_access_token="wrong"
    )
    results = {
        check.system: result for check, _, result in await run_checks(settings, build_registry())
    }
    assert results["HubSpot"].ok and results["Gong"].ok
    assert not results["Asana"].ok and "ASANA_ACCESS_TOKEN" in results["Asana"].fix


async def test_hubspot_record_links_use_the_portal_setting_or_ask_once(hubspot):
    from integrations.hubspot import HubSpot

    pinned = HubSpot(token=hubspot.token, base_url=hubspot.base_url, portal_id="777")
    [acme] = await pinned.find_companies("acme.com")
    assert acme.url == f"https://app.hubspot.com/contacts/777/record/0-2/{hubspot.acme}"
    assert not hubspot.calls("GET", r"/account-info/")
    looked_up = HubSpot(token=hubspot.token, base_url=hubspot.base_url)
    for _ in range(2):
        [acme] = await looked_up.find_companies("acme.com")
    assert acme.url == f"https://app.hubspot.com/contacts/4242/record/0-2/{hubspot.acme}"
    assert len(hubspot.calls("GET", r"/account-info/v3/details")) == 1


async def test_sophia_ask_uses_the_account_brief_tool_in_the_terminal(
    tmp_path, slack, llm, hubspot
):
    from tests.test_cli import fake_env, run

    llm.script(
        ToolCalls([("account_brief", {"company": "Acme Corp"})]),
        Text("Acme Corp: renewal in negotiation."),
    )
    env = fake_env(
        tmp_path, slack, llm, HUBSPOT_ACCESS_TOKEN=hubspot.token, HUBSPOT_API_URL=hubspot.base_url
    )
    code, out, err = await run(
        ["ask", "what's", "going", "on", "with", "Acme", "Corp?"], env, tmp_path
    )
    assert code == 0, out + err
    assert "renewal in negotiation" in out
    tool_result = [m for m in answer_requests(llm)[-1]["messages"] if m["role"] == "tool"][-1]
    assert "app.hubspot.com" in tool_result["content"]  # the CRM records, with their links
    assert hubspot.requests  # the terminal read HubSpot through the same capability


async def test_mcp_clients_get_hubspot_and_gong_account_readers(
    tmp_path, slack, llm, hubspot, gong
):
    from bot.mcp_server import Catalogue

    sophia = await started(
        business_settings(tmp_path, slack, llm, hubspot=hubspot, gong=gong), slack
    )
    try:
        catalogue = Catalogue(sophia.deps.services, ("hubspot", "gong"), poster=None)
        names = {t.name for t in catalogue.tools()}
        assert {"hubspot_account", "gong_account"} <= names
        ok, text = await catalogue.find("gong_account").run({"company": "Acme Corp"}, "agent")
        assert ok and "02:10" in text and "security questionnaire" in text
        assert "Globex" not in text  # another company's call
        ok, text = await catalogue.find("hubspot_account").run({"company": "acme.com"}, "agent")
        assert ok and "Acme renewal" in text and "app.hubspot.com" in text
        ok, text = await catalogue.find("hubspot_account").run({"company": "Acme"}, "agent")
        assert not ok and "Several companies match" in text  # Acme Corp and Acme Foods
    finally:
        await sophia.stop()
