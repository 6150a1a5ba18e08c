"""Repository indexing as a capability: `/sophia index`, the `search_code` tool, the client adapter."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from bot.core.tools import Tool, ToolContext, tool
from bot.core.types import Progress
from bot.registry import CommandContext, Registry, Subcommand
from bot.services import Services
from integrations.repo_index import RepoIndex

_REPO = re.compile(r"[\w.-]+/[\w.-]+")


def web_url_for(api_url: str) -> str:
    """The web host for an API URL: api.github.com → github.com; GHE's /api/v3 dropped."""
    parsed = urlparse(api_url)
    if parsed.netloc == "api.github.com":
        return "https://github.com"
    return api_url.rstrip("/").removesuffix("/api/v3")


async def run_index(ctx: CommandContext) -> None:
    """`/sophia index owner/repo`: index (or refresh) a repository, progress in the thread."""
    repo = ctx.args.strip().removeprefix("https://github.com/").strip("/")
    if not _REPO.fullmatch(repo):
        await ctx.reply_private(
            "Name the repository as owner/repo, e.g. `/sophia index acme/site`."
        )
        return
    index: RepoIndex | None = ctx.services.repo_index
    if index is None:
        await ctx.reply_private(
            ctx.services.repo_index_missing or "Indexing is not available here."
        )
        return

    async def work(progress: Progress) -> str:
        report = await index.sync(repo, progress=progress)
        if not report.changed and not report.removed:
            return f"`{repo}` is up to date ({report.files} files indexed on `{report.ref}`)."
        return (
            f"Indexed `{repo}` on `{report.ref}`: {report.changed} file{'s' * (report.changed != 1)} "
            f"(re)indexed, {report.removed} removed, {report.chunks} chunks written; "
            f"{report.files} files in all. Ask me about it — I cite `path:line`."
        )

    await ctx.in_thread(f":mag: <@{ctx.user}> asked me to index `{repo}`.", work)


def search_code_tool(index: RepoIndex) -> Tool:
    """`search_code`: relevant code from indexed repositories, with `path:line` links."""

    @tool(name="search_code", group="github")
    async def search_code(ctx: ToolContext, query: str, repo: str | None = None) -> list:
        """Search indexed repositories' code and docs; cite results as their `citation` link.

        Args:
            query: What the code does or is called, in words or identifiers.
            repo: Limit to one indexed repository (owner/name).
        """
        hits = await index.search(query, repo=repo, limit=6)
        return [
            {"citation": h.citation, "path": f"{h.path}:{h.start}-{h.end}", "repo": h.repo,
             "score": round(h.score, 3), "text": "\n".join(h.text.splitlines()[:40])}
            for h in hits
        ]  # fmt: skip

    return search_code


def install(registry: Registry, tools: Any, services: Services) -> None:
    """Add `/sophia index` and, when an index exists, the `search_code` tool."""
    registry.add_subcommand(
        Subcommand("index", "index <owner/repo>", "Index a GitHub repository for questions", run_index, ("GITHUB_TOKEN",))
    )  # fmt: skip
    if services.repo_index is not None and tools.get("search_code") is None:
        tools.add(search_code_tool(services.repo_index))
