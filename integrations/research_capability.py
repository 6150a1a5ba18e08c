"""Web research as a Sophia capability: `/sophia research`, the `web_research` tool, doctor checks.

The searching and reading live in `integrations.research`; the planning, writing and checking
in `bot.core.research`. This module joins them to a running Sophia (or to `sophia ask`).
"""

from __future__ import annotations

from typing import Any

from bot.core.errors import ResearchError
from bot.core.orchestrator import RESEARCH_MISSING, Orchestrator
from bot.core.research import DEEP, QUICK, Researcher
from bot.core.tools import ToolContext, ToolRegistry, tool
from bot.core.types import QuietProgress
from bot.registry import CommandContext, Registry, Subcommand
from bot.services import Services
from bot.settings import Settings
from integrations.research import Research, research_from_settings

USAGE = "research <question>"


def attach(core: Orchestrator, settings: Settings, store: Any) -> Research | None:
    """Give the core a researcher when a search provider is configured; the web client or None."""
    web = research_from_settings(settings, store)
    if web is not None:
        core.researcher = Researcher(web, core.models, concurrency=settings.research_concurrency)
    return web


def research_tools(core: Orchestrator) -> list:
    """The `web_research` agent tool (its output is outside text: side effects are withdrawn)."""

    @tool(name="web_research", group="research", reads_outside=True)
    async def web_research(ctx: ToolContext, question: str, depth: str = DEEP) -> str:
        """Research a question on the web: searches several providers, reads the best pages and
        returns a verified answer with numbered citations and a Sources list.

        Args:
            question: What to find out, as a full question.
            depth: "deep" (plan searches and read pages; slower, better) or "quick" (snippets only).
        """
        if core.researcher is None:
            return RESEARCH_MISSING
        try:
            findings = await core.researcher.run(
                question, QuietProgress(), depth=QUICK if depth == QUICK else DEEP
            )
        except ResearchError as exc:
            return f"Research failed: {exc}"
        return findings.answer

    return [web_research]


async def run_research(ctx: CommandContext) -> None:
    """`/sophia research <question>`: a visible message naming who asked, the research in its thread."""
    question = ctx.args.strip()
    if not question:
        await ctx.reply_private(f"What should I research? Usage: `/sophia {USAGE}`")
        return
    if ctx.core.researcher is None:
        await ctx.reply_private(f":warning: {RESEARCH_MISSING}")
        return
    await ctx.answer(question, research=DEEP)


def install(registry: Registry, tools: ToolRegistry, services: Services) -> None:
    """Add research to a running Sophia: the subcommand always, the tool when configured."""
    registry.add_subcommand(
        Subcommand("research", USAGE, "Research the web and answer with citations", run_research,
                   ("SERPER_API_KEY", "BRAVE_API_KEY", "TAVILY_API_KEY", "EXA_API_KEY", "SERPAPI_API_KEY"))
    )  # fmt: skip
    services.research = attach(services.core, services.settings, services.store)
    if services.research is None:
        return
    for research_tool in research_tools(services.core):
        if tools.get(research_tool.name) is None:
            tools.add(research_tool)
