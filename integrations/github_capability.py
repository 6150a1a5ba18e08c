"""GitHub as a Sophia capability: `/sophia pr merge`, agent tools, the merge preparer, doctor."""

from __future__ import annotations

from typing import Any

import aiohttp

from bot.core.approvals import ApprovalRequest
from bot.core.tools import ToolContext, ToolRegistry, tool
from bot.registry import CheckResult, CommandContext, DoctorCheck, Registry, Subcommand
from bot.services import Services
from bot.settings import Settings
from integrations.github import GitHub, GitHubError, PullFacts, parse_pr_ref
from integrations.github_pr import open_pr, run_pr_open


def _github(services: Services) -> GitHub:
    if services.github is None or not services.github.configured:
        raise GitHubError("GitHub is not configured: set GITHUB_TOKEN.")
    return services.github


async def prepare_merge(
    services: Services, repo: str, number: int, *, requester: str, channel: str | None,
    thread_ts: str | None,
) -> ApprovalRequest:  # fmt: skip
    """Check a PR can be merged now and store an approval request bound to its head SHA."""
    if services.approvals is None:
        raise GitHubError("Approvals are not available, so nothing can be merged.")
    facts = await _github(services).pull_facts(repo, number)
    if facts.merged:
        raise GitHubError(f"{repo}#{number} is already merged.")
    if facts.state != "open":
        raise GitHubError(f"{repo}#{number} is {facts.state}, not open.")
    if facts.mergeable is False:
        raise GitHubError(
            f"{repo}#{number} has conflicts with {facts.base_ref}; resolve them first."
        )
    blocking = facts.blocking_checks()
    if blocking:
        listed = ", ".join(f"`{c.name}` ({c.state})" for c in blocking)
        raise GitHubError(f"Checks must pass before {repo}#{number} can be merged: {listed}.")
    return await services.approvals.create(
        kind="github.merge", target=f"{repo}#{number}",
        params={
            "repo": repo, "number": number, "title": facts.title,
            "ask_again": f"/sophia pr merge {repo}#{number}",
        },
        bound_version=facts.head_sha, summary=f"Merge *{facts.title}* into `{facts.base_ref}`",
        requester=requester, channel=channel, thread_ts=thread_ts, facts=merge_facts(facts),
        link=facts.html_url,
    )  # fmt: skip


def merge_facts(facts: PullFacts) -> list[tuple[str, str]]:
    """What a reviewer sees on the request."""
    checks = ", ".join(f"{c.name} ✓" for c in facts.checks) or "none reported"
    return [
        ("Title", facts.title),
        ("Author", facts.author),
        ("Changes", f"+{facts.additions} / −{facts.deletions} in {facts.changed_files} files"),
        ("Checks", checks),
        ("Head", f"`{facts.head_sha[:7]}` ({facts.head_ref} → {facts.base_ref})"),
    ]


async def _prepare_from_tool(
    services: Services,
    arguments: dict[str, Any],
    requester: str,
    channel: str | None,
    thread_ts: str | None,
) -> ApprovalRequest:
    return await prepare_merge(
        services, arguments["repo"], int(arguments["number"]), requester=requester,
        channel=channel, thread_ts=thread_ts,
    )  # fmt: skip


def github_tools(services: Services) -> list:
    """Read tools (no approval) and `merge_pr` (side effect: only ever requests approval)."""

    @tool(name="github_pr_details", group="github")
    async def github_pr_details(ctx: ToolContext, repo: str, number: int) -> dict:
        """A pull request's title, author, diff stats, mergeability and checks.

        Args:
            repo: The repository as owner/name.
            number: The pull request number.
        """
        facts = await _github(services).pull_facts(repo, number)
        return {
            "title": facts.title, "author": facts.author, "state": facts.state, "merged": facts.merged,
            "additions": facts.additions, "deletions": facts.deletions,
            "changed_files": facts.changed_files, "mergeable": facts.mergeable,
            "checks": [{"name": c.name, "state": c.state} for c in facts.checks],
            "head_sha": facts.head_sha, "url": facts.html_url,
        }  # fmt: skip

    @tool(name="github_read_file", group="github")
    async def github_read_file(
        ctx: ToolContext, repo: str, path: str, ref: str | None = None
    ) -> str:
        """Read a file (or list a directory) in a GitHub repository.

        Args:
            repo: The repository as owner/name.
            path: The file or directory path.
            ref: A branch, tag or commit; the default branch when omitted.
        """
        return await _github(services).read_file(repo, path, ref)

    @tool(name="github_repo_info", group="github")
    async def github_repo_info(ctx: ToolContext, repo: str) -> dict:
        """A repository's description, default branch, visibility and link.

        Args:
            repo: The repository as owner/name.
        """
        return await _github(services).repo_info(repo)

    @tool(name="github_search_code", group="github")
    async def github_search_code(ctx: ToolContext, repo: str, query: str) -> list:
        """Search a repository's code; returns matching file paths with links.

        Args:
            repo: The repository as owner/name.
            query: Words or an identifier to look for.
        """
        return await _github(services).search_code(repo, query)

    @tool(name="github_open_pr", group="github")
    async def github_open_pr(ctx: ToolContext, repo: str, change: str) -> str:
        """Make a change on a new branch and open a pull request (never touches the default branch).

        Args:
            repo: The repository as owner/name.
            change: What to change, in plain words (e.g. "fix the typo in the README").
        """
        return await open_pr(
            services, services.core.models, repo=repo, request=change, requester=ctx.user
        )

    @tool(name="merge_pr", side_effect=True, group="github")
    async def merge_pr(ctx: ToolContext, repo: str, number: int) -> str:
        """Ask a human approver to merge a pull request (never merges by itself).

        Args:
            repo: The repository as owner/name.
            number: The pull request number.
        """
        raise RuntimeError("merge_pr runs only through an approved request")

    return [
        github_pr_details, github_read_file, github_repo_info, github_search_code, github_open_pr,
        merge_pr,
    ]  # fmt: skip


async def run_pr_merge(ctx: CommandContext) -> None:
    """`/sophia pr merge owner/repo#n`: an approval request bound to the PR's head."""
    try:
        repo, number = parse_pr_ref(ctx.args)
    except ValueError as exc:
        await ctx.reply_private(f"{exc} Usage: `/sophia pr merge <owner/repo>#<n>`")
        return
    try:
        request = await prepare_merge(
            ctx.services, repo, number, requester=ctx.user, channel=ctx.channel, thread_ts=None
        )
    except GitHubError as exc:
        await ctx.reply_private(f":no_entry: {exc}")
        return
    await ctx.post_approval(request)


def install(registry: Registry, tools: ToolRegistry, services: Services) -> None:
    """Add GitHub's subcommands, tools and merge preparer to a running Sophia."""
    registry.add_subcommand(
        Subcommand("pr merge", "pr merge <owner/repo>#<n>", "Ask to merge a pull request (needs approval)",
                   run_pr_merge, ("GITHUB_TOKEN",))
    )  # fmt: skip
    registry.add_subcommand(
        Subcommand("pr open", "pr open <owner/repo> <what to change>", "Open a pull request with a change",
                   run_pr_open, ("GITHUB_TOKEN",))
    )  # fmt: skip
    if services.github is None or not services.github.configured:
        return  # no token: the subcommand says so; the model is not offered tools that cannot work
    for github_tool in github_tools(services):
        if tools.get(github_tool.name) is None:
            tools.add(github_tool)
    services.preparers["merge_pr"] = _prepare_from_tool


async def check_github(settings: Settings, session: aiohttp.ClientSession) -> CheckResult:
    """GET /user with the token."""
    url = settings.github_api_url.rstrip("/") + "/user"
    token = settings.github_token.get_secret_value() if settings.github_token else ""
    async with session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
        if response.status == 200:
            login = (await response.json()).get("login")
            return CheckResult(True, f"token of {login}")
        return CheckResult(
            False, f"GET /user answered {response.status}", "check GITHUB_TOKEN and GITHUB_API_URL"
        )


def register_check(registry: Registry) -> None:
    """The doctor check for GitHub."""
    registry.add_check(
        DoctorCheck(
            "GitHub", lambda s: s.github_token is not None, check_github, missing="GITHUB_TOKEN"
        )
    )
