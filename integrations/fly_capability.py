"""Fly.io as a Sophia capability: `/sophia fly status|secrets|scale`, `/sophia deploy`, tools, doctor.

Reading (status, secret names) answers at once; deploys, secrets and scaling become approval
requests (DESIGN §4) carried out by the executors in `fly_deploy` and `fly_actions`. Setting a
secret starts from a Slack modal, so its Slack side lives in `handlers/fly.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import aiohttp

from bot.core.approvals import ApprovalRequest
from bot.core.tools import ToolContext, ToolRegistry, tool
from bot.registry import CheckResult, CommandContext, DoctorCheck, Registry, Subcommand
from bot.services import Services
from bot.settings import Settings
from integrations.fly import Fly, FlyError, Machine
from integrations.fly_actions import ScaleExecutor, SecretExecutor, prepare_scale
from integrations.fly_deploy import DeployExecutor, fly_client, prepare_deploy, short_digest

NEEDS = ("FLY_API_TOKEN",)


def status_table(app: str, machines: list[Machine]) -> str:
    """A compact monospace table: machine, state, region, image, checks; then recent events."""
    if not machines:
        return f"`{app}` has no machines."
    rows = [("MACHINE", "NAME", "STATE", "REGION", "IMAGE", "CHECKS")]
    for m in machines:
        image = m.image if len(m.image) <= 44 else "…" + m.image[-43:]
        rows.append((m.id, m.name[:18], m.state, m.region, image, _checks(m)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    events = sorted(
        ((e.get("timestamp") or 0, m.name or m.id, e) for m in machines for e in m.events),
        key=lambda x: x[0], reverse=True,
    )[:5]  # fmt: skip
    text = (
        f"*{app}* — {len(machines)} machine{'s' if len(machines) != 1 else ''}\n```\n"
        + "\n".join(lines)
    )
    if events:
        text += "\n\nRECENT EVENTS"
        for ts, who, e in events:
            when = datetime.fromtimestamp(ts / 1000, UTC).strftime("%m-%d %H:%M:%S")
            text += f"\n{when}  {who}  {e.get('type', '')} {e.get('status', '')}".rstrip()
    problems = [(m, c) for m in machines for c in m.checks if c.critical]
    text += "\n```"
    for m, c in problems[:3]:
        text += f"\n:red_circle: `{m.name or m.id}` `{c.name}`: {c.output[:300] or 'no output'}"
    return text


def _checks(m: Machine) -> str:
    if not m.checks or m.state != "started":
        return "-"
    passing = sum(c.passing for c in m.checks)
    critical = [c.name for c in m.checks if c.critical]
    if critical:
        return f"{passing}/{len(m.checks)} critical: {', '.join(critical)}"[:40]
    return f"{passing}/{len(m.checks)} passing"


def _one_arg(ctx: CommandContext) -> str | None:
    words = ctx.args.split()
    return words[0] if len(words) == 1 else None


async def run_status(ctx: CommandContext) -> None:
    """`/sophia fly status <app>`."""
    app = _one_arg(ctx)
    if app is None:
        await ctx.reply_private("Usage: `/sophia fly status <app>`")
        return
    try:
        machines = await fly_client(ctx.services).machines(app)
    except FlyError as exc:
        await ctx.reply_private(f":no_entry: {exc}")
        return
    await ctx.reply_private(status_table(app, machines))


async def run_secrets(ctx: CommandContext) -> None:
    """`/sophia fly secrets <app>`: names and digests, never values."""
    app = _one_arg(ctx)
    if app is None:
        await ctx.reply_private(
            "Usage: `/sophia fly secrets <app>` (list) or `/sophia fly secrets set <app> <NAME>`"
        )
        return
    try:
        secrets = await fly_client(ctx.services).secrets(app)
    except FlyError as exc:
        await ctx.reply_private(f":no_entry: {exc}")
        return
    if not secrets:
        await ctx.reply_private(f"`{app}` has no secrets.")
        return
    width = max(len(s.name) for s in secrets)
    rows = "\n".join(f"{s.name.ljust(width)}  {s.digest}" for s in secrets)
    await ctx.reply_private(
        f"*{app}* — {len(secrets)} secret{'s' if len(secrets) != 1 else ''} (names and digests; "
        f"values stay with Fly)\n```\n{'NAME'.ljust(width)}  DIGEST\n{rows}\n```"
    )


async def run_deploy(ctx: CommandContext) -> None:
    """`/sophia deploy <app> [image]`: an approval request; no image means redeploy."""
    words = ctx.args.split()
    if len(words) not in (1, 2):
        await ctx.reply_private("Usage: `/sophia deploy <fly-app> [image]`")
        return
    try:
        request = await prepare_deploy(
            ctx.services, words[0], words[1] if len(words) == 2 else None, requester=ctx.user,
            channel=ctx.channel, thread_ts=None,
        )  # fmt: skip
    except FlyError as exc:
        await ctx.reply_private(f":no_entry: {exc}")
        return
    await ctx.post_approval(request)


async def run_scale(ctx: CommandContext) -> None:
    """`/sophia fly scale <app> <count|size>`: an approval request."""
    words = ctx.args.split()
    if len(words) != 2:
        await ctx.reply_private(
            "Usage: `/sophia fly scale <app> <count|size>` (e.g. `3` or `shared-cpu-2x`)"
        )
        return
    try:
        request = await prepare_scale(
            ctx.services, words[0], words[1], requester=ctx.user, channel=ctx.channel,
            thread_ts=None,
        )  # fmt: skip
    except FlyError as exc:
        await ctx.reply_private(f":no_entry: {exc}")
        return
    await ctx.post_approval(request)


async def _prepare_from_tool(
    services: Services, arguments: dict[str, Any], requester: str, channel: str | None,
    thread_ts: str | None,
) -> ApprovalRequest:  # fmt: skip
    return await prepare_deploy(
        services, arguments["app"], arguments.get("image") or None, requester=requester,
        channel=channel, thread_ts=thread_ts,
    )  # fmt: skip


def fly_tools(services: Services) -> list:
    """`fly_status` (read) and `fly_deploy` (side effect: only ever requests approval)."""

    @tool(name="fly_status", group="fly")
    async def fly_status(ctx: ToolContext, app: str) -> dict:
        """A Fly.io app's machines: state, region, image, digest, checks and recent events.

        Args:
            app: The Fly app name.
        """
        machines = await fly_client(services).machines(app)
        return {
            "app": app,
            "machines": [
                {"id": m.id, "name": m.name, "state": m.state, "region": m.region,
                 "image": m.image, "digest": short_digest(m.image_digest),
                 "checks": [{"name": c.name, "status": c.status, "output": c.output[:300]} for c in m.checks],
                 "recent_events": [{k: e.get(k) for k in ("type", "status", "timestamp")} for e in m.events[:3]]}
                for m in machines
            ],
        }  # fmt: skip

    @tool(name="fly_deploy", side_effect=True, group="fly")
    async def fly_deploy(ctx: ToolContext, app: str, image: str | None = None) -> str:
        """Ask a human approver to deploy an image to a Fly.io app (never deploys by itself).

        Args:
            app: The Fly app name.
            image: The image reference to deploy; omit to redeploy the current image.
        """
        raise RuntimeError("fly_deploy runs only through an approved request")

    return [fly_status, fly_deploy]


def install(registry: Registry, tools: ToolRegistry, services: Services) -> None:
    """Add Fly's subcommands, tools, executors and deploy preparer to a running Sophia."""
    settings = services.settings
    if services.fly is None:
        token = settings.fly_api_token.get_secret_value() if settings.fly_api_token else None
        services.fly = Fly(token=token, base_url=settings.fly_api_url)
    if services.approvals is not None:  # registered even without a token: reconcile needs them
        services.approvals.register("fly.deploy", DeployExecutor(services))
        services.approvals.register("fly.secret", SecretExecutor(services))
        services.approvals.register("fly.scale", ScaleExecutor(services))
    for name, usage, summary, run in (
        ("fly status", "fly status <app>", "Show a Fly.io app's machines and checks", run_status),
        ("fly secrets", "fly secrets <app>", "List a Fly.io app's secret names and digests", run_secrets),
        ("deploy", "deploy <fly-app> [image]", "Ask to deploy a Fly.io app (needs approval)", run_deploy),
        ("fly scale", "fly scale <app> <count|size>", "Ask to scale a Fly.io app (needs approval)", run_scale),
    ):  # fmt: skip
        registry.add_subcommand(Subcommand(name, usage, summary, run, NEEDS))
    if not services.fly.configured:
        return  # no token: the subcommands say so; the model is not offered tools that cannot work
    for fly_tool in fly_tools(services):
        if tools.get(fly_tool.name) is None:
            tools.add(fly_tool)
    services.preparers["fly_deploy"] = _prepare_from_tool


async def check_fly(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """GET an app Sophia knows about (her own or a monitored one), else the personal org's apps."""
    token = settings.fly_api_token.get_secret_value() if settings.fly_api_token else ""
    app = settings.self_fly_app or next(iter(settings.monitored_apps), None)
    path = f"/v1/apps/{app}" if app else "/v1/apps?org_slug=personal"
    url = settings.fly_api_url.rstrip("/") + path
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status == 200:
            return CheckResult(True, f"app `{app}` reachable" if app else "token accepted")
        if response.status == 401:
            return CheckResult(False, "FLY_API_TOKEN was refused (401)", "check FLY_API_TOKEN")
        return CheckResult(
            False, f"GET {path} answered {response.status}", "check FLY_API_TOKEN and FLY_API_URL"
        )


def register_check(registry: Registry) -> None:
    """The doctor check for Fly."""
    registry.add_check(
        DoctorCheck(
            "Fly.io", lambda s: s.fly_api_token is not None, check_fly, missing="FLY_API_TOKEN"
        )
    )
