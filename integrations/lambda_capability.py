"""Lambda GPUs as a Sophia capability: `/sophia gpu list|launch|terminate|run`, agent tools,
approval preparers and executors, the idle-instance reminder and the doctor check.

Every launch, terminate and command goes through approvals (DESIGN §4): a launch is bound to
the type, region and hourly price the approver saw, a command to the instance and its IP.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from bot.core.approvals import ApprovalRequest
from bot.core.errors import SophiaError
from bot.core.tools import ToolContext, ToolRegistry, tool
from bot.registry import CheckResult, CommandContext, DoctorCheck, Registry, Subcommand
from bot.services import Services
from bot.settings import Settings
from integrations.lambda_actions import (
    SSH_USER,
    LaunchExecutor,
    Records,
    RunExecutor,
    TerminateExecutor,
    launch_version,
    ssh_command,
)
from integrations.lambda_labs import Instance, InstanceType, LambdaCloud, LambdaError, dollars
from integrations.lambda_reminders import DirectMessage, IdleReminders

log = logging.getLogger("sophia.lambda")
NOT_CONFIGURED = "Lambda GPUs are not configured: set LAMBDA_API_KEY (and LAMBDA_API_URL for another endpoint)."  # fmt: skip


class Gpu:
    """What the subcommands, tools and preparers share: the API client, the notes, the settings."""

    def __init__(self, services: Services, cloud: LambdaCloud) -> None:
        self.services = services
        self.cloud = cloud
        self.settings: Settings = services.settings
        self.records = Records(services.store, time.time)

    def _check(self) -> None:
        if not self.cloud.configured:
            raise SophiaError(NOT_CONFIGURED)
        if self.services.approvals is None:
            raise SophiaError("Approvals are not available, so no GPU action can be taken.")

    # -- finding things ----------------------------------------------------------------------
    async def find_type(self, name: str) -> tuple[InstanceType, list[InstanceType]]:
        """The type named (case-insensitive) and all types; a plain error when unknown."""
        types = await self.cloud.instance_types()
        wanted = name.strip().lower()
        for t in types:
            if t.name.lower() == wanted:
                return t, types
        close = [t.name for t in types if wanted in t.name.lower()][:5] or [
            t.name for t in types if not t.sold_out
        ][:5]
        raise SophiaError(
            f"Lambda has no instance type `{name}`. Try one of: "
            + ", ".join(f"`{n}`" for n in close)
            + " (`/sophia gpu list` shows them all)."
        )

    async def find_instance(self, ref: str) -> Instance:
        """A running instance by id, unique id prefix or name."""
        ref = ref.strip()
        instances = await self.cloud.instances()
        exact = [i for i in instances if ref in (i.id, i.name)]
        matches = exact or [i for i in instances if len(ref) >= 4 and i.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise SophiaError(f"No running instance `{ref}`; `/sophia gpu list` shows them.")
        raise SophiaError(f"`{ref}` matches {len(matches)} instances; give more of the id.")

    # -- preparing approval requests ---------------------------------------------------------
    async def prepare_launch(
        self, type_name: str, region: str | None, *, requester: str, channel: str | None,
        thread_ts: str | None,
    ) -> ApprovalRequest:  # fmt: skip
        """Check the type, capacity and SSH key; store a request bound to type, region and price."""
        self._check()
        key_name = self.settings.lambda_ssh_key_name
        if not key_name:
            raise SophiaError(
                "Launching needs an SSH key: set LAMBDA_SSH_KEY_NAME to the name of a key in "
                "your Lambda account (Lambda Cloud → SSH keys)."
            )
        gpu, types = await self.find_type(type_name)
        if gpu.sold_out:
            raise SophiaError(
                f"`{gpu.name}` is sold out in every region right now.{_cheapest(types)}"
            )
        if region:
            chosen = next((r for r in gpu.regions if r.name == region.strip().lower()), None)
            if chosen is None:
                where = ", ".join(f"`{r.name}`" for r in gpu.regions)
                raise SophiaError(
                    f"`{gpu.name}` has no capacity in `{region}` now; it has in {where}."
                )
        else:
            # Lambda prices a type the same in every region, so any region with capacity is the
            # cheapest one; take the first Lambda lists.
            chosen = gpu.regions[0]
        keys = await self.cloud.ssh_key_names()
        if key_name not in keys:
            have = ", ".join(f"`{k}`" for k in keys) or "none"
            raise SophiaError(
                f"LAMBDA_SSH_KEY_NAME is `{key_name}`, but the Lambda account has no SSH key by "
                f"that name (it has: {have})."
            )
        price = gpu.price_cents_per_hour
        return await self.services.approvals.create(
            kind="lambda.launch", target=f"{gpu.name} in {chosen.name}",
            params={
                "type": gpu.name, "region": chosen.name, "price_cents": price, "ssh_key": key_name,
                "ask_again": f"/sophia gpu launch {gpu.name} {chosen.name}",
            },
            bound_version=launch_version(gpu.name, chosen.name, price),
            summary=f"Launch a `{gpu.name}` GPU instance in `{chosen.name}` at {dollars(price)}/hour",
            requester=requester, channel=channel, thread_ts=thread_ts,
            facts=[
                ("Type", f"{gpu.description} (`{gpu.name}`)"),
                ("Region", f"{chosen.name} ({chosen.description})"),
                ("Price", f"{dollars(price)}/hour · {dollars(price * 24)}/day until terminated"),
                ("Machine", f"{gpu.gpus} GPU · {gpu.vcpus} vCPUs · {gpu.memory_gib} GiB RAM · {gpu.storage_gib} GiB disk"),
                ("SSH key", f"`{key_name}`"),
            ],
        )  # fmt: skip

    async def prepare_terminate(
        self, ref: str, *, requester: str, channel: str | None, thread_ts: str | None
    ) -> ApprovalRequest:
        """A request to terminate one running instance (its disk is lost)."""
        self._check()
        inst = await self.find_instance(ref)
        uptime = (await self.records.uptimes([inst]))[inst.id]
        return await self.services.approvals.create(
            kind="lambda.terminate", target=inst.id,
            params={"instance_id": inst.id, "ask_again": f"/sophia gpu terminate {inst.id}"},
            bound_version=inst.id,
            summary=f"Terminate GPU instance `{inst.id}` ({inst.type_name}); its local disk is lost",
            requester=requester, channel=channel, thread_ts=thread_ts,
            facts=[
                ("Instance", f"`{inst.id}`" + (f" ({inst.name})" if inst.name else "")),
                ("Type", f"{inst.type_description or inst.type_name} in {inst.region}"),
                ("State", f"{inst.status}" + (f" · `{inst.ip}`" if inst.ip else "")),
                ("Running", uptime.describe(inst)),
            ],
        )  # fmt: skip

    async def prepare_run(
        self, ref: str, command: str, *, requester: str, channel: str | None,
        thread_ts: str | None,
    ) -> ApprovalRequest:  # fmt: skip
        """A request to run one command on an active instance, bound to the instance and its IP."""
        self._check()
        key_path = self.settings.lambda_ssh_key_path
        if key_path is None:
            raise SophiaError(
                "Running commands needs the private SSH key: set LAMBDA_SSH_KEY_PATH to the key "
                "file matching LAMBDA_SSH_KEY_NAME."
            )
        if not key_path.is_file():
            raise SophiaError(f"LAMBDA_SSH_KEY_PATH points at `{key_path}`, which is not a file.")
        inst = await self.find_instance(ref)
        if inst.status != "active" or not inst.ip:
            raise SophiaError(
                f"Instance `{inst.id}` is {inst.status}; commands run once it is active."
            )
        return await self.services.approvals.create(
            kind="lambda.run", target=inst.id,
            params={
                "instance_id": inst.id, "ip": inst.ip, "command": command,
                "ask_again": f"/sophia gpu run {inst.id} {command}",
            },
            bound_version=f"{inst.id}@{inst.ip}",
            summary=f"Run a command on GPU instance `{inst.id}`",
            requester=requester, channel=channel, thread_ts=thread_ts,
            facts=[
                ("Command", f"`{command}`"),
                ("Instance", f"`{inst.id}` ({inst.type_name} in {inst.region})"),
                ("As", f"`{SSH_USER}@{inst.ip}`"),
            ],
        )  # fmt: skip

    # -- reading -----------------------------------------------------------------------------
    async def listing(self) -> str:
        """Types with price and capacity (sold out said so), then running instances with cost."""
        types = await self.cloud.instance_types()
        instances = [i for i in await self.cloud.instances() if not i.gone]
        lines = ["*Lambda GPU types* (price per hour · regions with capacity now)"]
        for t in types:
            where = ", ".join(r.name for r in t.regions) if t.regions else "*sold out*"
            lines.append(
                f"• `{t.name}` {t.description} — {dollars(t.price_cents_per_hour)}/h — {where}"
            )
        if not types:
            lines.append("_Lambda lists no instance types right now._")
        lines.append("*Running instances*")
        await self.records.prune(instances)
        uptimes = await self.records.uptimes(instances)
        for i in instances:
            ip = f" · `{i.ip}`" if i.ip else ""
            lines.append(
                f"• `{i.id}` {i.type_name} in {i.region} · {i.status}{ip} · "
                f"{dollars(i.price_cents_per_hour)}/h · {uptimes[i.id].describe(i)}"
            )
        if not instances:
            lines.append("_None._")
        return "\n".join(lines)

    async def types_for_model(self) -> list[dict[str, Any]]:
        return [
            {"name": t.name, "description": t.description, "usd_per_hour": t.dollars_per_hour,
             "gpus": t.gpus, "regions_with_capacity": [r.name for r in t.regions],
             "sold_out": t.sold_out}
            for t in await self.cloud.instance_types()
        ]  # fmt: skip

    async def instances_for_model(self) -> list[dict[str, Any]]:
        instances = [i for i in await self.cloud.instances() if not i.gone]
        uptimes = await self.records.uptimes(instances)
        return [
            {"id": i.id, "name": i.name, "type": i.type_name, "region": i.region,
             "status": i.status, "ip": i.ip, "usd_per_hour": i.price_cents_per_hour / 100,
             "uptime_hours": round(uptimes[i.id].seconds / 3600, 2),
             "uptime_is_lower_bound": uptimes[i.id].at_least,
             "cost_so_far_usd": round(uptimes[i.id].cost_cents(i) / 100, 2),
             "ssh": ssh_command(i.ip, self.cloud.ssh_port) if i.ip else None}
            for i in instances
        ]  # fmt: skip

    # -- /sophia gpu … -----------------------------------------------------------------------
    async def run_list(self, ctx: CommandContext) -> None:
        """`/sophia gpu list`."""
        if not self.cloud.configured:
            await ctx.reply_private(NOT_CONFIGURED)
            return
        try:
            await ctx.reply_private(await self.listing())
        except SophiaError as exc:
            await ctx.reply_private(f":no_entry: {exc}")

    async def run_launch(self, ctx: CommandContext) -> None:
        """`/sophia gpu launch <type> [region]`."""
        words = ctx.args.split()
        if not 1 <= len(words) <= 2:
            await ctx.reply_private("Usage: `/sophia gpu launch <type> [region]` (`/sophia gpu list` shows types).")  # fmt: skip
            return
        region = words[1] if len(words) == 2 else None
        await self._ask(ctx, lambda: self.prepare_launch(
            words[0], region, requester=ctx.user, channel=ctx.channel, thread_ts=None
        ))  # fmt: skip

    async def run_terminate(self, ctx: CommandContext) -> None:
        """`/sophia gpu terminate <id>`."""
        words = ctx.args.split()
        if len(words) != 1:
            await ctx.reply_private("Usage: `/sophia gpu terminate <instance id>`")
            return
        await self._ask(ctx, lambda: self.prepare_terminate(
            words[0], requester=ctx.user, channel=ctx.channel, thread_ts=None
        ))  # fmt: skip

    async def run_run(self, ctx: CommandContext) -> None:
        """`/sophia gpu run <id> <command>`."""
        ref, _, command = ctx.args.strip().partition(" ")
        command = slack_unescape(command.strip())
        if not ref or not command:
            await ctx.reply_private("Usage: `/sophia gpu run <instance id> <command>`")
            return
        await self._ask(ctx, lambda: self.prepare_run(
            ref, command, requester=ctx.user, channel=ctx.channel, thread_ts=None
        ))  # fmt: skip

    async def _ask(
        self, ctx: CommandContext, prepare: Callable[[], Awaitable[ApprovalRequest]]
    ) -> None:
        """Prepare a request and show it with its buttons, or tell the asker why not."""
        try:
            request = await prepare()
        except SophiaError as exc:
            await ctx.reply_private(f":no_entry: {exc}")
            return
        await ctx.post_approval(request)


def _cheapest(types: list[InstanceType]) -> str:
    available = [t for t in types if not t.sold_out]
    if not available:
        return " Every type is sold out."
    t = available[0]  # cheapest first
    return f" The cheapest type with capacity is `{t.name}` ({t.description}) at {dollars(t.price_cents_per_hour)}/h."  # fmt: skip


def slack_unescape(text: str) -> str:
    """Slack sends `&`, `<` and `>` in slash-command text as HTML entities."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def lambda_tools(gpu: Gpu) -> list:
    """Read tools and the two side-effect tools (which only ever request approval)."""

    @tool(name="lambda_instance_types", group="lambda")
    async def lambda_instance_types(ctx: ToolContext) -> list:
        """Lambda GPU instance types with price per hour and the regions with capacity now (none: sold out)."""
        return await gpu.types_for_model()

    @tool(name="lambda_instances", group="lambda")
    async def lambda_instances(ctx: ToolContext) -> list:
        """Running Lambda GPU instances with state, IP, uptime and cost so far."""
        return await gpu.instances_for_model()

    @tool(name="lambda_launch", side_effect=True, group="lambda")
    async def lambda_launch(ctx: ToolContext, instance_type: str, region: str | None = None) -> str:
        """Ask a human approver to launch a Lambda GPU instance (never launches by itself).

        Args:
            instance_type: The type name, e.g. gpu_1x_a10 (see lambda_instance_types).
            region: A region with capacity, e.g. us-east-1; omitted: the cheapest with capacity.
        """
        raise RuntimeError("lambda_launch runs only through an approved request")

    @tool(name="lambda_terminate", side_effect=True, group="lambda")
    async def lambda_terminate(ctx: ToolContext, instance_id: str) -> str:
        """Ask a human approver to terminate a Lambda GPU instance (never terminates by itself).

        Args:
            instance_id: The instance id (see lambda_instances).
        """
        raise RuntimeError("lambda_terminate runs only through an approved request")

    return [lambda_instance_types, lambda_instances, lambda_launch, lambda_terminate]


def install(
    registry: Registry, tools: ToolRegistry, services: Services, *,
    dm: DirectMessage | None = None, reminder_every_s: float = 3600.0,
) -> Gpu:  # fmt: skip
    """Add the GPU subcommands, tools, preparers, executors and the idle reminder.

    `dm(user_id, text)` sends a direct message (the Slack layer provides it); without it there
    are no reminders.
    """
    settings = services.settings
    if services.lambda_cloud is None:
        key = settings.lambda_api_key.get_secret_value() if settings.lambda_api_key else None
        services.lambda_cloud = LambdaCloud(api_url=settings.lambda_api_url, api_key=key)
    gpu = Gpu(services, services.lambda_cloud)
    needs = ("LAMBDA_API_KEY",)
    for name, usage, summary, run in (
        ("gpu list", "gpu list", "Lambda GPU types, prices and running instances", gpu.run_list),
        ("gpu launch", "gpu launch <type> [region]", "Ask to launch a GPU instance (needs approval)", gpu.run_launch),
        ("gpu terminate", "gpu terminate <id>", "Ask to terminate a GPU instance (needs approval)", gpu.run_terminate),
        ("gpu run", "gpu run <id> <command>", "Ask to run a command on a GPU instance (needs approval)", gpu.run_run),
    ):  # fmt: skip
        registry.add_subcommand(Subcommand(name, usage, summary, run, needs))
    if not gpu.cloud.configured:
        return gpu  # the subcommands say what to set; the model gets no tools that cannot work
    if services.approvals is not None:
        services.approvals.register("lambda.launch", LaunchExecutor(gpu.cloud, gpu.records))
        services.approvals.register("lambda.terminate", TerminateExecutor(gpu.cloud, gpu.records))
        services.approvals.register(
            "lambda.run", RunExecutor(gpu.cloud, gpu.records, settings.lambda_ssh_key_path)
        )
    for lambda_tool in lambda_tools(gpu):
        if tools.get(lambda_tool.name) is None:
            tools.add(lambda_tool)
    services.preparers["lambda_launch"] = _prepare_launch(gpu)
    services.preparers["lambda_terminate"] = _prepare_terminate(gpu)
    if dm is not None:
        reminders = IdleReminders(gpu.cloud, gpu.records, idle_hours=settings.gpu_idle_hours, dm=dm)
        services.background.append(lambda: reminders.loop(every_s=reminder_every_s))
    return gpu


def _prepare_launch(gpu: Gpu) -> Callable[..., Awaitable[ApprovalRequest]]:
    async def prepare(services: Services, arguments: dict[str, Any], requester: str,
                      channel: str | None, thread_ts: str | None) -> ApprovalRequest:  # fmt: skip
        return await gpu.prepare_launch(
            arguments["instance_type"], arguments.get("region"), requester=requester,
            channel=channel, thread_ts=thread_ts,
        )  # fmt: skip

    return prepare


def _prepare_terminate(gpu: Gpu) -> Callable[..., Awaitable[ApprovalRequest]]:
    async def prepare(services: Services, arguments: dict[str, Any], requester: str,
                      channel: str | None, thread_ts: str | None) -> ApprovalRequest:  # fmt: skip
        return await gpu.prepare_terminate(
            arguments["instance_id"], requester=requester, channel=channel, thread_ts=thread_ts
        )

    return prepare


async def check_lambda(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """GET /instance-types and /ssh-keys with the key; says whether LAMBDA_SSH_KEY_NAME exists."""
    key = settings.lambda_api_key.get_secret_value() if settings.lambda_api_key else None
    cloud = LambdaCloud(api_url=settings.lambda_api_url, api_key=key, session=session)
    try:
        types = await cloud.instance_types()
        keys = await cloud.ssh_key_names()
    except LambdaError as exc:
        return CheckResult(False, str(exc), "check LAMBDA_API_KEY and LAMBDA_API_URL")
    available = sum(not t.sold_out for t in types)
    detail = f"{len(types)} instance types, {available} with capacity"
    name = settings.lambda_ssh_key_name
    if not name:
        return CheckResult(True, detail + "; no LAMBDA_SSH_KEY_NAME, so launches are refused")
    if name not in keys:
        return CheckResult(
            False, detail + f"; SSH key `{name}` not in the account",
            "set LAMBDA_SSH_KEY_NAME to one of: " + (", ".join(keys) or "(add a key first)"),
        )  # fmt: skip
    return CheckResult(True, detail + f"; SSH key `{name}` found")


def register_check(registry: Registry) -> None:
    """The doctor check for Lambda."""
    registry.add_check(
        DoctorCheck(
            "Lambda", lambda s: s.lambda_api_key is not None, check_lambda, missing="LAMBDA_API_KEY"
        )
    )
