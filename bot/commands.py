"""The built-in `/sophia` subcommands, and placeholders for capabilities still to land."""

from __future__ import annotations

import time

from bot.core.budget import utc_midnight
from bot.core.routing import ROUTES
from bot.i18n import summary as localized_summary
from bot.i18n import t
from bot.registry import CommandContext, Registry, Subcommand

# Every subcommand of DESIGN.md §3, so `help` is complete from day one. Entries without a
# handler answer that the capability is not available yet and which settings it will use;
# each capability's module replaces its entry when it lands.
PLANNED = [
    ("research", "research <question>", "Research the web and answer with citations", ("SERPER_API_KEY",)),
    ("memory search", "memory search <query>", "Search what Sophia remembers", ()),
    ("memory forget", "memory forget", "Forget everything Sophia remembers about you", ()),
    ("index", "index <owner/repo>", "Index a GitHub repository for questions", ("GITHUB_TOKEN",)),
    ("pr open", "pr open <owner/repo> <what to change>", "Open a pull request with a change", ("GITHUB_TOKEN",)),
    ("pr merge", "pr merge <owner/repo>#<n>", "Ask to merge a pull request (needs approval)", ("GITHUB_TOKEN",)),  # replaced when GitHub is wired
    ("deploy", "deploy <fly-app> [image]", "Ask to deploy a Fly.io app (needs approval)", ("FLY_API_TOKEN",)),
    ("fly status", "fly status <app>", "Show a Fly.io app's machines and checks", ("FLY_API_TOKEN",)),
    ("fly secrets", "fly secrets <app>", "List a Fly.io app's secret names", ("FLY_API_TOKEN",)),
    ("gpu list", "gpu list", "Lambda GPU types, prices and running instances", ("LAMBDA_API_KEY",)),
    ("gpu launch", "gpu launch <type> [region]", "Ask to launch a GPU instance (needs approval)", ("LAMBDA_API_KEY",)),
    ("gpu terminate", "gpu terminate <id>", "Ask to terminate a GPU instance (needs approval)", ("LAMBDA_API_KEY",)),
    ("gpu run", "gpu run <id> <command>", "Ask to run a command on a GPU instance (needs approval)", ("LAMBDA_API_KEY",)),
    ("account", "account <company>", "Brief on a company from CRM, calls and Slack", ("HUBSPOT_ACCESS_TOKEN",)),
    ("mcp", "mcp", "List connected MCP servers and their tools", ("SOPHIA_MCP_CONFIG",)),
]  # fmt: skip


def help_text(registry: Registry, *, unknown: str | None = None, lang: str = "en") -> str:
    """The help message: every subcommand with its usage and one line on what it does."""
    lines = []
    if unknown:
        lines.append(t("help.unknown", lang, name=unknown))
    lines.append(t("help.header", lang))
    for sub in registry.subcommands.values():
        later = "" if sub.run else " " + t("help.later", lang)
        lines.append(
            f"• `/sophia {sub.usage}` — {localized_summary(sub.name, sub.summary, lang)}{later}"
        )
    lines.append(t("help.footer", lang))
    return "\n".join(lines)


def parse_model_flag(args: str) -> tuple[str | None, str]:
    """Split `--model <route> rest` (or `--model=<route>`) into the route and the rest."""
    words = args.split(maxsplit=1)
    if not words:
        return None, ""
    first = words[0]
    if first.startswith("--model="):
        return first.split("=", 1)[1].lower(), words[1] if len(words) > 1 else ""
    if first == "--model":
        rest = words[1].split(maxsplit=1) if len(words) > 1 else []
        route = rest[0].lower() if rest else ""
        return route, rest[1] if len(rest) > 1 else ""
    return None, args


def register_core_commands(registry: Registry) -> None:
    """Add `help`, `ask` and the placeholders to a registry."""

    async def run_help(ctx: CommandContext) -> None:
        await ctx.reply_private(help_text(registry, lang=ctx.lang))

    async def run_ask(ctx: CommandContext) -> None:
        route, text = parse_model_flag(ctx.args)
        if route is not None and route not in ROUTES:
            await ctx.reply_private(
                f"`{route or '(empty)'}` is not a model route. Choose one of: "
                + ", ".join(f"`{r}`" for r in ROUTES)
                + "\nExample: `/sophia ask --model coding why does this regex not match?`"
            )
            return
        if not text.strip():
            await ctx.reply_private(t("command.ask_what", ctx.lang))
            return
        await ctx.answer(text, route=route)

    registry.add_subcommand(Subcommand("help", "help", "Show this list", run_help))
    registry.add_subcommand(
        Subcommand(
            "models", "models", "Model routes, whether each is reachable, today's spend", run_models
        )
    )
    registry.add_subcommand(
        Subcommand("ask", "ask [--model <route>] <text>", "Ask a question (optionally pick the model route)", run_ask)
    )  # fmt: skip
    registry.add_subcommand(
        Subcommand(
            "usage",
            "usage",
            "Your requests, tokens and spend today (admins: everyone's)",
            run_usage,
        )
    )
    registry.add_subcommand(
        Subcommand("approvals", "approvals", "Requests waiting for your approval", run_approvals)
    )
    registry.add_subcommand(
        Subcommand("audit", "audit [n]", "The latest approval decisions (approvers)", run_audit)
    )
    registry.add_subcommand(Subcommand("jobs", "jobs", "Your running and recent jobs", run_jobs))
    for name, usage, summary, needs in PLANNED:
        registry.add_subcommand(Subcommand(name, usage, summary, None, needs))


async def run_models(ctx: CommandContext) -> None:
    """`/sophia models`: the route table with reachability and today's use per route."""
    models, config = ctx.core.models, ctx.core.config
    usage = await ctx.core.requests.usage_by_route(since=utc_midnight(time.time()))
    lines = ["*Model routes* (today, UTC)"]
    for route in ROUTES:
        reachable = "✅ key present" if models.has_credentials(route) else "⚠️ no key"
        n, tokens, cost = usage.get(route, (0, 0, 0.0))
        lines.append(
            f"• *{route}* — `{models.model_for(route)}` — {reachable} — "
            f"{n} request{'s' * (n != 1)}, {tokens:,} tokens, ${cost:.4f}"
        )
    caps = []
    if config.daily_budget_usd is not None:
        caps.append(f"workspace ${config.daily_budget_usd:.2f}/day")
    if config.user_daily_budget_usd is not None:
        caps.append(f"per person ${config.user_daily_budget_usd:.2f}/day")
    lines.append("Budgets: " + (", ".join(caps) if caps else "none set"))
    lines.append("Pick a route yourself with `/sophia ask --model <route> …`.")
    await ctx.reply_private("\n".join(lines))


async def run_usage(ctx: CommandContext) -> None:
    """`/sophia usage`: your use today and the limits; admins also see the workspace."""
    since = utc_midnight(time.time())
    requests, config = ctx.core.requests, ctx.core.config
    mine = (await requests.usage_report(since=since, user_id=ctx.user))["total"]
    lines = [
        "*Your usage today (UTC)*",
        f"{mine['requests']} requests · {mine['tokens']:,} tokens · ${mine['cost']:.4f}",
    ]
    caps = []
    if config.user_daily_budget_usd is not None:
        caps.append(f"your budget ${config.user_daily_budget_usd:.2f}/day")
    if config.daily_budget_usd is not None:
        caps.append(f"workspace budget ${config.daily_budget_usd:.2f}/day")
    lines.append("Limits: " + (", ".join(caps) if caps else "no budgets set"))
    admins = ctx.services.admins
    if admins is None or not await admins(ctx.user):
        await ctx.reply_private("\n".join(lines))
        return
    report = await requests.usage_report(since=since)
    total = report["total"]
    lines += [
        "",
        "*Workspace today*",
        f"{total['requests']} requests · {total['tokens']:,} tokens · ${total['cost']:.4f}",
    ]
    lines += ["*Top users*"] + [
        f"• <@{u['user_id']}> — {u['requests']} requests, ${u['cost'] or 0:.4f}"
        for u in report["top"]
    ]
    by_route = await requests.usage_by_route(since=since)
    lines += ["*By route*"] + [
        f"• {r} — {n} requests, {t:,} tokens, ${c:.4f}" for r, (n, t, c) in sorted(by_route.items())
    ]
    lines += ["*Last 7 days*"] + [
        f"• {d['day']} — {d['requests']} requests, ${d['cost'] or 0:.4f}" for d in report["days"]
    ]
    fb = report["feedback"]
    lines.append(f"*Feedback today*: 👍 {fb.get('good', 0)} · 👎 {fb.get('bad', 0)}")
    await ctx.reply_private("\n".join(lines))


_JOB_ICONS = {
    "pending": "⏳ waiting for approval", "approved": "▶️ starting", "executing": "⚙️ running",
    "done": "✅ done", "failed": "⚠️ failed", "rejected": "🚫 rejected", "expired": "⌛ expired",
    "void": "♻️ void",
}  # fmt: skip


async def run_jobs(ctx: CommandContext) -> None:
    """`/sophia jobs`: the actions this person asked for, running and recent, with their state."""
    approvals = ctx.services.approvals
    mine = await approvals.requested_by(ctx.user) if approvals else []
    if not mine:
        await ctx.reply_private(
            "You have no jobs yet. Actions you ask for (merges, deploys, GPU launches) appear here."
        )
        return
    lines = ["*Your jobs* (newest first)"]
    for request in mine:
        when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(request.created_at))
        state = _JOB_ICONS.get(request.state.value, request.state.value)
        result = f" — {request.result}" if request.result else ""
        lines.append(f"• {state} · {request.summary} · `{request.id}` · {when}{result[:300]}")
    await ctx.reply_private("\n".join(lines))


async def run_approvals(ctx: CommandContext) -> None:
    """`/sophia approvals`: pending requests this person may decide."""
    approvals = ctx.services.approvals
    pending = await approvals.pending_for(ctx.user) if approvals else []
    if not pending:
        await ctx.reply_private("Nothing is waiting for your approval.")
        return
    lines = [f"*Waiting for your approval* ({len(pending)})"]
    for request in pending:
        where = f" in <#{request.channel}>" if request.channel else ""
        lines.append(
            f"• `{request.id}` {request.summary} — {request.target}{where} (asked by <@{request.requester}>)"
        )
    await ctx.reply_private("\n".join(lines))


async def run_audit(ctx: CommandContext) -> None:
    """`/sophia audit [n]`: the latest decisions and executions, for approvers only."""
    approvals = ctx.services.approvals
    if approvals is None or not await approvals.is_approver(ctx.user):
        await ctx.reply_private("Only approvers (SOPHIA_APPROVERS) can read the audit log.")
        return
    arg = ctx.args.strip()
    limit = min(int(arg), 200) if arg.isdigit() else 20
    entries = await approvals.audit_log(limit)
    if not entries:
        await ctx.reply_private("The audit log is empty.")
        return
    lines = [f"*Audit log* (latest {len(entries)})"]
    for e in entries:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(e["at"]))
        who = "Sophia" if e["user_id"] == "sophia" else f"<@{e['user_id']}>"
        lines.append(
            f"• {when} UTC · `{e['approval_id']}` · {who} · {e['action']} → {e['outcome']}"
        )
    await ctx.reply_private("\n".join(lines))


def not_available_text(sub: Subcommand, lang: str = "en") -> str:
    """The reply for a subcommand whose capability has not landed yet."""
    text = t("help.not_available", lang, name=sub.name)
    if sub.needs:
        text += t("help.needs", lang, variables=", ".join(f"`{n}`" for n in sub.needs))
    return text + t("help.try_help", lang)
