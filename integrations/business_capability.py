"""Business intelligence as a Sophia capability: `/sophia account`, agent tools, HubSpot writes, doctor.

Sources: HubSpot, Gong, Asana (each with its own credentials), Slack messages (attached by
`handlers.business`) and the web (`services.research`, when configured). Without HubSpot, Gong
or Asana credentials, `/sophia account` only says what to set and the model gets no tools.
"""

from __future__ import annotations

from typing import Any, Literal

import aiohttp

from bot.core.account import AccountBriefs, AmbiguousCompany, Asker, SourceError, WebNews
from bot.core.approvals import ApprovalRequest
from bot.core.tools import ToolContext, ToolRegistry, tool
from bot.core.types import QuietProgress
from bot.registry import CheckResult, CommandContext, DoctorCheck, Registry, Subcommand
from bot.services import Services
from bot.settings import Settings
from integrations import hubspot_actions
from integrations.asana import Asana
from integrations.gong import Gong
from integrations.hubspot import HubSpot

NEEDS = ("HUBSPOT_ACCESS_TOKEN", "GONG_ACCESS_KEY", "ASANA_ACCESS_TOKEN")
TOOL_TIMEOUT_S = 20.0  # the agent's tool calls end at 30 s; the slowest source gives way first


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


def build(settings: Settings, services: Services) -> tuple[AccountBriefs, HubSpot]:
    """The briefs over every source (configured or not: an unconfigured one names its variable)."""
    hubspot = HubSpot(
        token=_secret(settings.hubspot_access_token), base_url=settings.hubspot_api_url,
        portal_id=settings.hubspot_portal_id,
    )  # fmt: skip
    gong = Gong(
        access_key=_secret(settings.gong_access_key), secret=_secret(settings.gong_access_key_secret),
        base_url=settings.gong_api_url,
    )  # fmt: skip
    asana = Asana(token=_secret(settings.asana_access_token), base_url=settings.asana_api_url)
    web = WebNews(lambda: services.research)
    briefs = AccountBriefs(
        core=services.core, directory=hubspot if hubspot.configured else None,
        sources=[hubspot, gong, asana, web],
    )  # fmt: skip
    return briefs, hubspot


async def run_account(ctx: CommandContext) -> None:
    """`/sophia account <company>`: a visible message naming who asked; progress and brief in its thread."""
    briefs: AccountBriefs | None = ctx.services.business
    query = ctx.args.strip()
    if briefs is None or not briefs.configured:
        await ctx.reply_private(
            "Account briefs need at least one business source: set `HUBSPOT_ACCESS_TOKEN`, "
            "`GONG_ACCESS_KEY` and `GONG_ACCESS_KEY_SECRET`, or `ASANA_ACCESS_TOKEN`."
        )
        return
    if not query:
        await ctx.reply_private("Which company? Usage: `/sophia account <company name or domain>`")
        return
    if reason := await briefs.refusal(ctx.user):
        await ctx.reply_private(f":no_entry: {reason}")
        return
    try:
        company = await briefs.resolve(query)
    except AmbiguousCompany as exc:
        listed = "\n".join(
            f"• {c.name} ({c.detail or c.id}): `/sophia account hubspot:{c.id}`"
            for c in exc.candidates
        )
        blocks = briefs.choices(exc.query, exc.candidates) if briefs.choices else None
        await ctx.reply_private(f"{exc}\n{listed}", blocks=blocks)
        return
    except SourceError as exc:
        await ctx.reply_private(f":warning: {exc}")
        return
    asker = Asker(user=ctx.user, channel=ctx.channel, private=ctx.private)
    title = f":briefcase: <@{ctx.user}> asked for an account brief on *{company.name}*"
    await ctx.in_thread(title, lambda progress: briefs.write(company, asker, progress))


def business_tools(services: Services, briefs: AccountBriefs, hubspot: HubSpot) -> list:
    """`account_brief` (read) and, with HubSpot, the two writes that only ever request approval."""

    # Its output carries outside text (Slack messages, call transcripts): afterwards the agent
    # withdraws side-effect tools for the rest of the answer.
    @tool(name="account_brief", group="business", reads_outside=True)
    async def account_brief(ctx: ToolContext, company: str) -> str:
        """What the CRM, sales calls, Slack, tasks and the news say about a company, with links to cite.

        Args:
            company: The company's name or web domain (or hubspot:<id> to pin a CRM record).
        """
        if reason := await briefs.refusal(ctx.user):
            return f"Not allowed: {reason}"
        try:
            found = await briefs.resolve(company)
        except AmbiguousCompany as exc:
            names = "; ".join(f"{c.name} ({c.detail}) → hubspot:{c.id}" for c in exc.candidates)
            return f"Several companies match “{company}”: {names}. Ask which one, then call again with its hubspot:<id>."
        asker = Asker(user=ctx.user, channel=ctx.channel, private=ctx.private)
        return await briefs.dossier(found, asker, QuietProgress(), timeout=TOOL_TIMEOUT_S)

    @tool(name="hubspot_add_note", side_effect=True, group="business")
    async def hubspot_add_note(
        ctx: ToolContext, company: str, text: str, kind: Literal["note", "task"] = "note",
        due: str | None = None, deal: str | None = None,
    ) -> str:  # fmt: skip
        """Ask a human approver to add a note or a task to a HubSpot company or deal (never writes by itself).

        Args:
            company: The company's name or domain.
            text: The note, or the task's description (first line is its title).
            kind: "note" or "task".
            due: For a task, its due date (ISO 8601).
            deal: A deal name or id, to put it on the deal instead of the company.
        """
        raise RuntimeError("hubspot_add_note runs only through an approved request")

    @tool(name="hubspot_move_deal_stage", side_effect=True, group="business")
    async def hubspot_move_deal_stage(ctx: ToolContext, deal: str, stage: str) -> str:
        """Ask a human approver to move a HubSpot deal to another stage (never moves it by itself).

        Args:
            deal: The deal's name or id.
            stage: The stage's name as HubSpot shows it (e.g. "Contract sent").
        """
        raise RuntimeError("hubspot_move_deal_stage runs only through an approved request")

    if not hubspot.configured or services.approvals is None:
        return [account_brief]
    return [account_brief, hubspot_add_note, hubspot_move_deal_stage]


def _preparers(hubspot: HubSpot, briefs: AccountBriefs) -> dict[str, Any]:
    async def note(
        services: Services, args: dict, requester: str, channel: str | None, thread_ts: str | None
    ) -> ApprovalRequest:
        return await hubspot_actions.prepare_note(
            hubspot, services.approvals, briefs.access, company=args.get("company", ""),
            text=args.get("text", ""), kind=args.get("kind", "note"), due=args.get("due"),
            deal=args.get("deal"), requester=requester, channel=channel, thread_ts=thread_ts,
        )  # fmt: skip

    async def stage(
        services: Services, args: dict, requester: str, channel: str | None, thread_ts: str | None
    ) -> ApprovalRequest:
        return await hubspot_actions.prepare_deal_stage(
            hubspot, services.approvals, briefs.access, deal=str(args.get("deal", "")),
            stage=str(args.get("stage", "")), requester=requester, channel=channel, thread_ts=thread_ts,
        )  # fmt: skip

    return {"hubspot_add_note": note, "hubspot_move_deal_stage": stage}


def install(registry: Registry, tools: ToolRegistry, services: Services) -> None:
    """Add `/sophia account`, the business tools, and the HubSpot write actions."""
    briefs, hubspot = build(services.settings, services)
    services.business = briefs
    registry.add_subcommand(
        Subcommand("account", "account <company>", "Brief on a company from CRM, calls, Slack, tasks and news",
                   run_account, NEEDS)
    )  # fmt: skip
    if not briefs.configured:
        return  # the subcommand says what to set; the model is not offered tools that cannot work
    for business_tool in business_tools(services, briefs, hubspot):
        if tools.get(business_tool.name) is None:
            tools.add(business_tool)
    if hubspot.configured and services.approvals is not None:
        hubspot_actions.register(services.approvals, hubspot)
        services.preparers.update(_preparers(hubspot, briefs))


# -- doctor ------------------------------------------------------------------------------------


async def _probe(
    session: aiohttp.ClientSession, url: str, *, system: str, fix: str, **kwargs: Any
) -> CheckResult:
    try:
        async with session.get(url, timeout=aiohttp.ClientTimeout(total=15), **kwargs) as response:
            if response.status == 200:
                return CheckResult(True, "credentials accepted")
            return CheckResult(False, f"{system} answered {response.status}", fix)
    except aiohttp.ClientError as exc:
        return CheckResult(False, f"could not reach {system}: {type(exc).__name__}", fix)


async def check_hubspot(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """GET /account-info/v3/details with the private-app token."""
    url = settings.hubspot_api_url.rstrip("/") + "/account-info/v3/details"
    headers = {"Authorization": f"Bearer {_secret(settings.hubspot_access_token)}"}
    return await _probe(session, url, system="HubSpot", fix="check HUBSPOT_ACCESS_TOKEN and HUBSPOT_API_URL", headers=headers)  # fmt: skip


async def check_gong(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """GET /v2/workspaces with Basic auth (access key : secret)."""
    auth = aiohttp.BasicAuth(
        _secret(settings.gong_access_key) or "", _secret(settings.gong_access_key_secret) or ""
    )
    url = settings.gong_api_url.rstrip("/") + "/v2/workspaces"
    return await _probe(session, url, system="Gong", fix="check GONG_ACCESS_KEY, GONG_ACCESS_KEY_SECRET and GONG_API_URL", auth=auth)  # fmt: skip


async def check_asana(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """GET /users/me with the personal access token."""
    url = settings.asana_api_url.rstrip("/") + "/users/me"
    headers = {"Authorization": f"Bearer {_secret(settings.asana_access_token)}"}
    return await _probe(session, url, system="Asana", fix="check ASANA_ACCESS_TOKEN and ASANA_API_URL", headers=headers)  # fmt: skip


def register_check(registry: Registry) -> None:
    """Doctor checks for HubSpot, Gong and Asana."""
    registry.add_check(DoctorCheck("HubSpot", lambda s: s.hubspot_access_token is not None, check_hubspot, missing="HUBSPOT_ACCESS_TOKEN"))  # fmt: skip
    registry.add_check(DoctorCheck(
        "Gong", lambda s: s.gong_access_key is not None and s.gong_access_key_secret is not None, check_gong,
        missing="GONG_ACCESS_KEY, GONG_ACCESS_KEY_SECRET",
    ))  # fmt: skip
    registry.add_check(DoctorCheck("Asana", lambda s: s.asana_access_token is not None, check_asana, missing="ASANA_ACCESS_TOKEN"))  # fmt: skip
