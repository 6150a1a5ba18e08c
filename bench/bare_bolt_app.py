"""The baseline for bench/ack_latency.py: a stock slack-bolt Socket Mode app that only says "ok".

Reads SLACK_BOT_TOKEN, SLACK_APP_TOKEN and SLACK_API_URL (both Web API clients, so
apps.connections.open too, go to SLACK_API_URL). Runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient


async def main() -> None:
    base_url = os.environ.get("SLACK_API_URL", "https://slack.com/api/")
    app_token = os.environ["SLACK_APP_TOKEN"]
    app = AsyncApp(client=AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=base_url))

    @app.event("app_mention")
    async def on_mention(ack, say) -> None:
        await ack()
        await say("ok")

    handler = AsyncSocketModeHandler(
        app, app_token, web_client=AsyncWebClient(token=app_token, base_url=base_url)
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await handler.connect_async()
    await stopping.wait()
    await handler.close_async()


if __name__ == "__main__":
    logging.basicConfig(level=os.environ.get("BARE_BOLT_LOG_LEVEL", "WARNING"))
    asyncio.run(main())
