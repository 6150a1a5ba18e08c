"""Asana (REST 1.0): open tasks and projects that mention a company, with assignee and due date.

Tasks come from workspace search (`GET /workspaces/{gid}/tasks/search?text=…&completed=false`),
which Asana sells with its paid plans: a free workspace answers 402, is reported as such, and is
read through typeahead instead (task names only). Projects always come from typeahead.
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from bot.core.account import Asker, Company, Found, Record, SourceError

log = logging.getLogger("sophia.asana")

TASK_FIELDS = "name,completed,assignee.name,due_on,permalink_url,projects.name,modified_at"
PROJECT_FIELDS = "name,archived,owner.name,due_on,permalink_url"
MAX_WORKSPACES = 3


class AsanaError(SourceError):
    """Asana could not be read; the message says why."""


class NoSearch(AsanaError):
    """The workspace's plan has no search (HTTP 402)."""


class Asana:
    """Asana tasks and projects as an account source."""

    name = "Asana"

    def __init__(self, *, token: str | None, base_url: str) -> None:
        self._headers = (
            {"Authorization": f"Bearer {token}", "Accept": "application/json"} if token else None
        )
        self._base = base_url.rstrip("/")

    @property
    def missing(self) -> str | None:
        return None if self._headers else "ASANA_ACCESS_TOKEN"

    async def _get(self, session: aiohttp.ClientSession, path: str, **params: Any) -> list[dict]:
        try:
            async with session.get(
                self._base + path, params=params, headers=self._headers
            ) as response:
                body = await response.json(content_type=None) if response.status != 204 else {}
        except (aiohttp.ClientError, ValueError):
            raise AsanaError(
                f"Could not reach Asana at {self._base} (check ASANA_API_URL)."
            ) from None
        if response.status == 200:
            return (body or {}).get("data") or []
        message = " ".join(e.get("message", "") for e in (body or {}).get("errors") or [])
        if response.status == 402:
            raise NoSearch(message or "Payment required.")
        if response.status == 401:
            raise AsanaError("Asana refused the token: check ASANA_ACCESS_TOKEN.")
        raise AsanaError(
            f"Asana answered {response.status}." + (f" ({message[:200]})" if message else "")
        )

    async def gather(self, company: Company, asker: Asker) -> Found:
        """Open tasks (search, or typeahead on plans without search) and live projects."""
        found = Found()
        seen: set[str] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            workspaces = await self._get(session, "/workspaces", opt_fields="name", limit=100)
            for ws in workspaces[:MAX_WORKSPACES]:
                gid = ws["gid"]
                try:
                    tasks = await self._get(
                        session, f"/workspaces/{gid}/tasks/search", text=company.short_name,
                        completed="false", opt_fields=TASK_FIELDS, sort_by="modified_at",
                    )  # fmt: skip
                except NoSearch:
                    found.notes.append(
                        f"Asana workspace “{ws.get('name', gid)}” has no search on its plan "
                        "(HTTP 402), so only task names were matched (typeahead)."
                    )
                    tasks = await self._typeahead(
                        session, gid, "task", company.short_name, TASK_FIELDS
                    )
                projects = await self._typeahead(
                    session, gid, "project", company.short_name, PROJECT_FIELDS
                )
                for task in tasks:
                    if not task.get("completed") and task["gid"] not in seen:
                        seen.add(task["gid"])
                        found.records.append(task_record(task))
                for project in projects:
                    if not project.get("archived") and project["gid"] not in seen:
                        seen.add(project["gid"])
                        found.records.append(project_record(project))
        return found

    async def _typeahead(
        self, session: aiohttp.ClientSession, workspace: str, kind: str, query: str, fields: str
    ) -> list[dict]:
        return await self._get(
            session, f"/workspaces/{workspace}/typeahead", resource_type=kind, query=query,
            count=20, opt_fields=fields,
        )  # fmt: skip


def task_record(task: dict) -> Record:
    """An open task: who has it, when it is due, which projects it is in."""
    projects = ", ".join(p.get("name", "") for p in task.get("projects") or [])
    fields = {
        "assignee": ((task.get("assignee") or {}).get("name")) or "unassigned",
        "due": task.get("due_on") or "no due date",
        "projects": projects,
    }
    return Record("Asana", "task", task.get("name") or "task", task.get("permalink_url") or "",
                  when=task.get("due_on"), fields={k: v for k, v in fields.items() if v})  # fmt: skip


def project_record(project: dict) -> Record:
    """A live project that names the company."""
    fields = {
        "owner": ((project.get("owner") or {}).get("name")) or "",
        "due": project.get("due_on") or "",
    }
    return Record("Asana", "project", project.get("name") or "project", project.get("permalink_url") or "",
                  when=project.get("due_on"), fields={k: v for k, v in fields.items() if v})  # fmt: skip
