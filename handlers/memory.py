"""Memory in Slack: `/sophia memory search|forget`, the forget confirmation, App Home deletes."""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.memory import MemoryItem, Where
from bot.registry import CommandContext, Registry, Subcommand
from handlers.deps import Deps
from handlers.gates import first_time
from handlers.home import publish_home

log = logging.getLogger("sophia.memory")

FORGET, DELETE = "memory_forget_confirm", "memory_delete"


def describe(item: MemoryItem) -> str:
    """One memory as a line: the fact, its scope, when, and where it came from."""
    when = time.strftime("%Y-%m-%d", time.gmtime(item.created_at))
    source = f" · <{item.source}|source>" if item.source and item.source.startswith("http") else ""
    where = (
        " · learned in a DM" if item.private else (f" · <#{item.channel}>" if item.channel else "")
    )
    return f"• {item.text} _({item.scope.value}, {when}{where}{source})_"


async def run_memory_search(ctx: CommandContext) -> None:
    """`/sophia memory search <q>`: only what the asker could be told in this place."""
    memory = ctx.services.memory
    if memory is None:
        await ctx.reply_private(
            ctx.services.memory_missing or "Memory is starting up; try again in a moment."
        )
        return
    query = ctx.args.strip()
    if not query:
        await ctx.reply_private(
            "What should I look for? Example: `/sophia memory search release date`"
        )
        return
    where = Where(user=ctx.user, channel=ctx.channel, private=ctx.private)
    items = await memory.search_visible(query, where=where, limit=10)
    if not items:
        await ctx.reply_private(f"I don't remember anything about “{query}” that I can share here.")
        return
    await ctx.reply_private(
        f"*What I remember about “{query}”*\n" + "\n".join(describe(i) for i in items)
    )


async def run_memory_forget(ctx: CommandContext) -> None:
    """`/sophia memory forget`: asks for confirmation with a button."""
    if ctx.services.memory is None:
        await ctx.reply_private(
            ctx.services.memory_missing or "Memory is starting up; try again in a moment."
        )
        return
    text = (
        "This deletes everything I remember about you — your personal memories and every "
        "memory you added, in every channel — and the text of your past requests. It cannot be undone."
    )
    blocks = [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": [
            {"type": "button", "action_id": FORGET, "style": "danger", "value": ctx.user,
             "text": {"type": "plain_text", "text": "Forget everything about me"}},
        ]},
    ]  # fmt: skip
    await ctx.reply_private(text, blocks=blocks)


def install(registry: Registry) -> None:
    """Replace the memory placeholders with the real subcommands."""
    registry.add_subcommand(
        Subcommand(
            "memory search",
            "memory search <query>",
            "Search what Sophia remembers",
            run_memory_search,
        )
    )
    registry.add_subcommand(
        Subcommand(
            "memory forget",
            "memory forget",
            "Forget everything Sophia remembers about you",
            run_memory_forget,
        )
    )


def register(app: AsyncApp, deps: Deps) -> None:
    """The forget confirmation and App Home delete buttons."""

    @app.action(FORGET)
    async def on_forget(ack: Any, body: dict, action: dict, respond: Any) -> None:
        await ack()
        user = body["user"]["id"]
        if action.get("value") != user:  # a forwarded button can only forget its presser
            await respond(
                text="That button is for someone else.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        if not await first_time(deps, f"forget:{user}:{action.get('action_ts')}"):
            return
        count = await deps.services.memory.forget_user(user)
        cleared = await deps.store.forget_request_text(user)
        log.info("memories forgotten", extra={"user": user, "count": count, "requests": cleared})
        await respond(
            text=f"Done: I forgot {count} memor{'y' if count == 1 else 'ies'} about you and the text of "
            f"{cleared} past request{'s' * (cleared != 1)}.",
            response_type="ephemeral", replace_original=True,
        )  # fmt: skip

    @app.action(DELETE)
    async def on_delete(ack: Any, body: dict, action: dict, client: AsyncWebClient) -> None:
        await ack()
        user = body["user"]["id"]
        if deps.services.memory is not None:
            await deps.services.memory.delete(action.get("value", ""), user=user)
        await publish_home(deps, client, user)
