"""Research: what a deep run costs beyond the models and the network, and how reading scales.

A deep research run (plan → 2 searches → read 10 pages → write → verify) against loopback
fakes: a fake search provider (Serper's wire format) and a small web of 10 article pages of
~40 KB of HTML each. The model is an in-process stand-in that answers instantly, so what is
left is Sophia's own work: HTTP handling, SSRF checks, text extraction (trafilatura), the cache,
prompt building, citation checks.

- overhead: wall time of `Researcher.run` with an instant model and pages served without delay
  (median of N runs, cache off so every page is fetched and extracted again) — target < 200 ms
- concurrency: pages that each take 200 ms to answer, read with SOPHIA_RESEARCH_CONCURRENCY
  = 1, 5, 10; wall time of the reading step and the most pages in flight at once

    python bench/research.py [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.ports import ModelDone, TextDelta  # noqa: E402
from bot.core.research import PLAN_PROMPT, VERIFY_PROMPT, Researcher  # noqa: E402
from bot.core.types import QuietProgress, Usage  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.store import Store  # noqa: E402
from integrations.research import research_from_settings  # noqa: E402

PAGES = 10
PARAGRAPH = (
    "<p>Embedded vector search keeps the index inside the application process, so there is no "
    "server to run, no network hop per query and one backup to take. Teams report p99 latencies "
    "under a millisecond at tens of thousands of points, and throughput limited by the "
    "embedding model rather than by the store.</p>\n"
)


def article(i: int) -> str:
    body = PARAGRAPH * 90  # ~40 KB of HTML
    nav = "".join(f'<a href="/p{k}">Related {k}</a> ' for k in range(40))
    return (
        f"<html><head><title>Article {i}</title></head><body><nav>{nav}</nav>"
        f"<article><h1>Article {i}</h1>{body}</article><footer>© 2026</footer></body></html>"
    )


class InstantModel:
    """A `ModelClient` that answers at once: plan, write and verify, in the shapes expected."""

    def __init__(self, pages: int) -> None:
        self.pages = pages

    def stream(
        self, *, route, messages, tools=None, tool_choice=None, max_tokens=None, timeout=None
    ):
        system = messages[0]["content"]
        if system.startswith(PLAN_PROMPT[:30]):
            text = json.dumps(["embedded vector search", "vector search latency"])
        elif system.startswith(VERIFY_PROMPT[:30]):
            text = json.dumps(
                {"verdicts": [{"id": i, "verdict": "supported"} for i in range(1, 12)]}
            )
        else:
            text = " ".join(
                f"Embedded vector search keeps the index in process [{i}]."
                for i in range(1, self.pages + 1)
            )

        async def events():
            yield TextDelta(text)
            yield ModelDone(model="instant", usage=Usage(), route=route)

        return events()

    def model_for(self, route: str) -> str:
        return "instant"

    def has_credentials(self, route: str) -> bool:
        return True


class World:
    """One loopback server: Serper's /search and the pages, with an optional delay per page."""

    def __init__(self) -> None:
        self.page_delay = 0.0
        self.in_flight = 0
        self.peak = 0
        self.base = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/serper/search", self.search)
        app.router.add_get("/page/{n}", self.page)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def search(self, request: web.Request) -> web.Response:
        body = await request.json()
        half = PAGES // 2
        offset = 0 if "latency" not in body["q"] else half
        organic = [
            {
                "title": f"Article {n}",
                "link": f"{self.base}/page/{n}",
                "snippet": "Embedded vector search.",
            }
            for n in range(offset, offset + half)
        ]
        return web.json_response({"organic": organic})

    async def page(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.page_delay:
                await asyncio.sleep(self.page_delay)
            n = int(request.match_info["n"])
            return web.Response(text=article(n), content_type="text/html")
        finally:
            self.in_flight -= 1


async def run(runs: int) -> None:
    world = World()
    await world.start()
    data = Path(tempfile.mkdtemp(prefix="sophia-bench-research-"))
    store = await Store.open(f"sqlite:///{data / 'bench.db'}")
    base = {
        "serper_api_key": "bench-key", "serper_api_url": f"{world.base}/serper",
        "research_allow_private": True, "research_cache_ttl": "0s",
    }  # fmt: skip

    async def once(concurrency: int) -> tuple[float, float]:
        settings = Settings(_env_file=None, **base, research_concurrency=concurrency)
        web_research = research_from_settings(settings, store)
        researcher = Researcher(
            web_research, InstantModel(PAGES), concurrency=concurrency, pages=PAGES
        )
        timings: dict[str, float] = {}
        original = researcher._read

        async def timed_read(sources, progress):
            started = time.perf_counter()
            await original(sources, progress)
            timings["read"] = time.perf_counter() - started

        researcher._read = timed_read
        started = time.perf_counter()
        findings = await researcher.run("how fast is embedded vector search?", QuietProgress())
        total = time.perf_counter() - started
        await web_research.close()
        assert sum(s.read for s in findings.sources) == PAGES, "every page should be read"
        return total, timings["read"]

    await once(5)  # warm: imports, first connections
    totals = [(await once(5))[0] for _ in range(runs)]
    print(
        f"deep research, {PAGES} pages of ~40 KB HTML, instant model, no page delay ({runs} runs)"
    )
    print(f"  overhead median {statistics.median(totals) * 1000:.0f} ms, "
          f"min {min(totals) * 1000:.0f} ms, max {max(totals) * 1000:.0f} ms  (target < 200 ms)")  # fmt: skip

    world.page_delay = 0.2
    print("\npages answering in 200 ms each; reading step by SOPHIA_RESEARCH_CONCURRENCY")
    for concurrency in (1, 5, 10):
        world.peak = 0
        _, read = await once(concurrency)
        print(f"  concurrency {concurrency:>2}: read {PAGES} pages in {read * 1000:.0f} ms, "
              f"at most {world.peak} in flight")  # fmt: skip
    await store.close()
    await world.runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.runs))


if __name__ == "__main__":
    main()
