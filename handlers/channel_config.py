"""`/sophia config`: per-channel settings in a modal, for admins and the channel's creator.

Stored in the database and audited; enforced in code (a switched-off tool group is not
offered to the model at all, mention-only turns off thread follow-ups, off is off).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.channel import ChannelSettings
from bot.core.routing import CLASSIFIABLE
from bot.registry import Registry, Subcommand
from handlers.deps import Deps

log = logging.getLogger("sophia.config")

CONFIG = "sophia_config"


async def may_configure(deps: Deps, client: AsyncWebClient, user: str, channel: str) -> bool:
    """SOPHIA_ADMINS, or the person who created the channel (Slack's API has no manager list)."""
    admins = deps.services.admins if deps.services else None
    if admins is not None and await admins(user):
        return True
    try:
        info = (await client.conversations_info(channel=channel)).get("channel") or {}
    except SlackApiError:
        return False
    return info.get("creator") == user


def config_modal(channel: str, current: ChannelSettings, groups: list[str]) -> dict[str, Any]:
    """The settings form, filled in with the channel's current values."""

    def option(value: str, label: str) -> dict[str, Any]:
        return {"text": {"type": "plain_text", "text": label}, "value": value}

    behaviour = [
        option("off", "Switched off in this channel"),
        option("mention_only", "Answer only when @mentioned"),
    ]
    chosen = [o for o in behaviour if getattr(current, o["value"])]
    routes = [option("auto", "Automatic (recommended)")] + [option(r, r) for r in CLASSIFIABLE]
    route_now = next(o for o in routes if o["value"] == (current.default_route or "auto"))
    tools = [option(g, g) for g in groups]
    enabled = [o for o in tools if o["value"] not in current.disabled_groups]
    blocks: list[dict[str, Any]] = [
        {"type": "input", "block_id": "behaviour", "optional": True,
         "label": {"type": "plain_text", "text": "Behaviour"},
         "element": {"type": "checkboxes", "action_id": "v", "options": behaviour, **({"initial_options": chosen} if chosen else {})}},
        {"type": "input", "block_id": "route", "label": {"type": "plain_text", "text": "Default model route"},
         "element": {"type": "static_select", "action_id": "v", "options": routes, "initial_option": route_now}},
        {"type": "input", "block_id": "prompt", "optional": True,
         "label": {"type": "plain_text", "text": "Extra instructions for this channel"},
         "element": {"type": "plain_text_input", "action_id": "v", "multiline": True, "max_length": 2000,
                     **({"initial_value": current.prompt_addition} if current.prompt_addition else {})}},
    ]  # fmt: skip
    if tools:
        blocks.append(
            {"type": "input", "block_id": "tools", "optional": True,
             "label": {"type": "plain_text", "text": "Tools Sophia may use here"},
             "element": {"type": "checkboxes", "action_id": "v", "options": tools, **({"initial_options": enabled} if enabled else {})}}
        )  # fmt: skip
    return {
        "type": "modal", "callback_id": CONFIG, "private_metadata": json.dumps({"channel": channel, "groups": groups}),
        "title": {"type": "plain_text", "text": "Sophia in this channel"},
        "submit": {"type": "plain_text", "text": "Save"}, "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }  # fmt: skip


def settings_from(values: dict[str, Any], groups: list[str]) -> ChannelSettings:
    """Read the submitted form."""

    def field(block: str) -> dict[str, Any]:
        return (values.get(block) or {}).get("v") or {}

    flags = {o["value"] for o in field("behaviour").get("selected_options") or []}
    route = (field("route").get("selected_option") or {}).get("value", "auto")
    enabled = {o["value"] for o in field("tools").get("selected_options") or []}
    return ChannelSettings(
        off="off" in flags, mention_only="mention_only" in flags,
        default_route=None if route == "auto" or route not in CLASSIFIABLE else route,
        prompt_addition=(field("prompt").get("value") or "").strip(),
        disabled_groups=frozenset(g for g in groups if g not in enabled),
    )  # fmt: skip


def install(registry: Registry, deps: Deps) -> None:
    """Replace the `config` placeholder."""

    async def run_config(ctx: Any) -> None:
        if ctx.private:
            await ctx.reply_private("Use `/sophia config` in the channel you want to configure.")
            return
        if not await may_configure(deps, ctx.client, ctx.user, ctx.channel):
            await ctx.reply_private(
                "Only Sophia's admins (SOPHIA_ADMINS) and the channel's creator can change its settings."
            )
            return
        groups = sorted({deps.core.tools.get(n).group for n in deps.core.tools.names()} - {"core"})
        current = await deps.store.channel_settings(ctx.channel)
        await ctx.client.views_open(
            trigger_id=ctx.trigger_id, view=config_modal(ctx.channel, current, groups)
        )

    registry.add_subcommand(
        Subcommand(
            "config", "config", "Channel settings (admins and the channel's creator)", run_config
        )
    )


def register(app: AsyncApp, deps: Deps) -> None:
    """Save the form."""

    @app.view(CONFIG)
    async def on_save(ack: Any, body: dict, view: dict, client: AsyncWebClient) -> None:
        meta = json.loads(view.get("private_metadata") or "{}")
        channel, user = meta.get("channel"), body["user"]["id"]
        if not channel or not await may_configure(deps, client, user, channel):
            await ack(
                response_action="errors",
                errors={"behaviour": "You can no longer change this channel's settings."},
            )
            return
        await ack()
        settings = settings_from(
            (view.get("state") or {}).get("values") or {}, meta.get("groups") or []
        )
        await deps.store.set_channel_settings(channel, settings, user)
        deps.channel_cache.pop(channel, None)
        try:
            await client.chat_postEphemeral(
                channel=channel, user=user, text="Saved Sophia's settings for this channel."
            )
        except SlackApiError:
            log.info("could not confirm the settings")
