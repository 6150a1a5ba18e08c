"""The `sophia` command: run the Slack app, ask a question in the terminal, check the set-up.

Heavy imports (Slack SDK, aiohttp, litellm) happen inside each command so that
`sophia --help` answers instantly.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from importlib.metadata import PackageNotFoundError, version

EXIT_CONFIG = 2


def _version() -> str:
    try:
        return version("sophia")
    except PackageNotFoundError:
        return "unknown"


def _settings():  # -> Settings, typed loosely to keep imports lazy
    from pydantic import ValidationError

    from bot.settings import load_settings

    try:
        return load_settings()
    except ValidationError as exc:
        lines = ["Configuration error:"]
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else "?"
            lines.append(f"  {name}: {error['msg']}")
        _fail("\n".join(lines))


def _fail(message: str, code: int = EXIT_CONFIG) -> None:
    from bot.redact import redact

    print(redact(message), file=sys.stderr)
    raise SystemExit(code)


def cmd_run(_: argparse.Namespace) -> int:
    """Connect to Slack over Socket Mode and answer until stopped."""
    from bot.app import Sophia, check_slack_tokens
    from bot.core.errors import ConfigError
    from bot.logs import setup_logging

    settings = _settings()
    setup_logging(fmt=settings.log_format, level=settings.log_level)
    try:
        check_slack_tokens(settings)
        asyncio.run(Sophia(settings).serve())
    except ConfigError as exc:
        _fail(str(exc))
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    """Answer one question in the terminal with the same core Slack uses."""
    from bot.logs import setup_logging

    settings = _settings()
    setup_logging(fmt=settings.log_format, level="WARNING")
    text = " ".join(args.text).strip()
    if not text and not sys.stdin.isatty():
        text = sys.stdin.read().strip()
    if not text:
        _fail('Nothing to ask. Example: sophia ask "what is a vector database?"')
    return asyncio.run(_ask(settings, text, args.model))


async def _ask(settings, text: str, route: str | None) -> int:
    import getpass

    from bot.app import build_core
    from bot.capabilities import install_headless
    from bot.core.routing import ROUTES
    from bot.core.types import Request
    from bot.redact import redact
    from bot.services import Services
    from bot.store import Store
    from bot.terminal import TerminalProgress
    from handlers.render import footer_for

    if route and route not in ROUTES:
        _fail(f"Unknown route {route!r}; choose one of {', '.join(ROUTES)}.")
    redact.add(settings.secrets())
    store = await Store.open(settings.resolved_database_url())
    services = None
    try:
        core = build_core(settings, store)
        # What works without Slack: research ("research …"), account briefs, GitHub and Lambda
        # read tools. Actions can only be requested in Slack, where an approver can press Approve.
        services = Services(core=core, store=store, settings=settings)
        install_headless(services)
        progress = TerminalProgress()
        request = Request(user=f"cli:{getpass.getuser()}", text=text, source="cli", route=route)
        reply = await core.handle(request, progress)
        progress.finish(reply, footer_for(reply))
    finally:
        if services is not None and services.research is not None:
            await services.research.close()
        await store.close()
    return 0 if reply.ok else 1


def cmd_doctor(_: argparse.Namespace) -> int:
    """Check each configured system live and print a table; non-zero when one is broken."""
    from rich.console import Console
    from rich.table import Table

    from bot.app import build_registry
    from bot.doctor import run_checks
    from bot.redact import redact

    settings = _settings()
    redact.add(settings.secrets())
    results = asyncio.run(run_checks(settings, build_registry()))
    table = Table(title="sophia doctor")
    for column in ("system", "configured", "reachable", "what to fix"):
        table.add_column(column)
    broken = 0
    for check, configured, result in results:
        if not configured:
            table.add_row(check.system, "no", "—", f"set {check.missing}")
            continue
        broken += not result.ok
        mark = "[green]yes[/]" if result.ok else "[red]no[/]"
        fix = "" if result.ok else result.fix
        table.add_row(check.system, "yes", f"{mark} {redact(result.detail)}", redact(fix))
    Console().print(table)
    return 1 if broken else 0


def cmd_approvals(args: argparse.Namespace) -> int:
    """List approval requests (approving happens only in Slack, where identity is verified)."""
    from rich.console import Console
    from rich.table import Table

    settings = _settings()
    rows = asyncio.run(_approvals(settings, args.all))
    table = Table(title="approval requests" + ("" if args.all else " (pending and executing)"))
    for column in (
        "id",
        "state",
        "action",
        "target",
        "requested by",
        "expires / decided",
        "result",
    ):
        table.add_column(column)
    for r in rows:
        when = r.decided_at or r.expires_at
        stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime(when)) + " UTC"
        table.add_row(r.id, r.state.value, r.kind, r.target, r.requester, stamp, r.result or "")
    Console().print(table if rows else "No approval requests.")
    return 0


async def _approvals(settings, everything: bool):  # -> list[ApprovalRequest]
    from bot.core.approvals import ApprovalState
    from bot.store import Store

    store = await Store.open(settings.resolved_database_url())
    try:
        states = (
            set(ApprovalState) if everything else {ApprovalState.PENDING, ApprovalState.EXECUTING}
        )
        return await store.approvals_in(states)
    finally:
        await store.close()


def cmd_index(args: argparse.Namespace) -> int:
    """Index (or refresh) a GitHub repository into this data dir's store."""
    from bot.core.errors import ConfigError
    from bot.logs import setup_logging

    settings = _settings()
    setup_logging(fmt=settings.log_format, level="WARNING")
    try:
        return asyncio.run(_index(settings, args.repo))
    except ConfigError as exc:
        _fail(str(exc))
    return 2


async def _index(settings, repo: str) -> int:
    from bot.app import DataDirLock
    from bot.core.errors import ConfigError
    from bot.store import Store
    from bot.terminal import TerminalProgress
    from integrations.github import GitHub
    from integrations.index_capability import web_url_for
    from integrations.memory import MemoryService
    from integrations.repo_index import RepoIndex

    if settings.github_token is None:
        raise ConfigError("Indexing needs GitHub: set GITHUB_TOKEN.", variable="GITHUB_TOKEN")
    lock = DataDirLock(settings.data_dir)
    lock.acquire()  # a running `sophia run` owns the store: say so instead of corrupting it
    store = await Store.open(settings.resolved_database_url())
    memory = await MemoryService.open(settings)
    try:
        if memory.edge is None:
            raise ConfigError("Indexing needs the embedded store; it does not use QDRANT_URL yet.")
        github = GitHub(
            token=settings.github_token.get_secret_value(), base_url=settings.github_api_url
        )
        collection = await asyncio.to_thread(memory.edge.collection, "code", memory.embedder.dims)
        index = RepoIndex(
            github=github, store=store, collection=collection, embedder=memory.embedder,
            web_url=web_url_for(settings.github_api_url),
        )  # fmt: skip
        report = await index.sync(repo, progress=TerminalProgress())
        print(f"{repo}@{report.ref}: {report.files} files, {report.changed} (re)indexed, "
              f"{report.removed} removed, {report.chunks} chunks written")  # fmt: skip
    finally:
        await memory.close()
        await store.close()
        lock.release()
    return 0


def cmd_memory_reindex(_: argparse.Namespace) -> int:
    """Re-embed every memory after SOPHIA_EMBEDDINGS changed."""
    from bot.app import DataDirLock
    from bot.core.errors import ConfigError
    from integrations.memory import MemoryService

    settings = _settings()
    lock = DataDirLock(settings.data_dir)
    try:
        lock.acquire()
        count = asyncio.run(MemoryService.reindex(settings))
    except ConfigError as exc:
        _fail(str(exc))
    finally:
        lock.release()
    print(f"Re-embedded {count} memories.")
    return 0


def cmd_mcp_serve(args: argparse.Namespace) -> int:
    """Serve Sophia's tools over MCP on stdio (relaying to a running `sophia run` if there is one)."""
    from bot.logs import setup_logging
    from bot.mcp_stdio import parse_groups, serve

    settings = _settings()
    setup_logging(fmt=settings.log_format, level="WARNING")  # stderr: stdout carries the protocol
    try:
        groups = parse_groups(args.tools)
    except ValueError as exc:
        _fail(str(exc))
    return serve(settings, groups)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for `sophia`."""
    parser = argparse.ArgumentParser(
        prog="sophia", description="Sophia, a Slack-native AI orchestrator."
    )
    parser.add_argument("--version", action="version", version=f"sophia {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="command")
    run = sub.add_parser("run", help="connect to Slack (Socket Mode) and answer")
    run.set_defaults(func=cmd_run)
    ask = sub.add_parser("ask", help="ask a question in the terminal")
    ask.add_argument("--model", help="route: reasoning, coding, speed, analysis or fallback")
    ask.add_argument("text", nargs="*", help="the question (or pipe it on stdin)")
    ask.set_defaults(func=cmd_ask)
    doctor = sub.add_parser("doctor", help="check the configuration and each system, live")
    doctor.set_defaults(func=cmd_doctor)
    approvals = sub.add_parser("approvals", help="list approval requests (approve in Slack)")
    approvals.add_argument("--all", action="store_true", help="include decided and finished ones")
    approvals.set_defaults(func=cmd_approvals)
    index = sub.add_parser("index", help="index a GitHub repository for questions")
    index.add_argument("repo", help="owner/repo")
    index.set_defaults(func=cmd_index)
    memory = sub.add_parser("memory", help="memory maintenance")
    memory_sub = memory.add_subparsers(dest="memory_command", metavar="command", required=True)
    reindex = memory_sub.add_parser(
        "reindex", help="re-embed every memory after SOPHIA_EMBEDDINGS changed"
    )
    reindex.set_defaults(func=cmd_memory_reindex)
    mcp = sub.add_parser("mcp", help="Sophia as an MCP server")
    mcp_sub = mcp.add_subparsers(dest="mcp_command", metavar="command", required=True)
    mcp_serve = mcp_sub.add_parser("serve", help="serve Sophia's tools to an MCP client on stdio")
    mcp_serve.add_argument(
        "--tools", help="tool groups, comma-separated: github,lambda,research,gong,hubspot,memory"
    )
    mcp_serve.set_defaults(func=cmd_mcp_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sophia` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
