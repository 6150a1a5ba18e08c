"""Fake Asana API (1.0) for tests: workspaces, task search (paid plans) and typeahead.

    GET /workspaces                              {"data": [{"gid", "name", "resource_type"}]}
    GET /workspaces/{gid}/tasks/search           text, completed; 402 on a free plan
    GET /workspaces/{gid}/typeahead              resource_type=task|project, query, count
    GET /users/me

Answers wrap their payload in ``data``; errors are ``{"errors": [{"message": ...}]}``. Fields are
returned as ``opt_fields`` asks (``assignee.name`` → ``{"gid", "name"}``). Bearer auth.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.rest_server import Req, RestServer

NO_SEARCH = "Search is only available to premium users."


class FakeAsana(RestServer):
    token = "2/1200000000000001/1200000000000002:fakeasanatoken"

    def __init__(self, *, premium: bool = True) -> None:
        super().__init__()
        self.premium = premium
        self.workspace = {"gid": "1200000000000100", "name": "Ours", "resource_type": "workspace"}
        self.tasks: list[dict] = []
        self.projects: list[dict] = []
        base = r"/api/1\.0"
        self.route("GET", rf"{base}/workspaces", self._workspaces)
        self.route("GET", rf"{base}/workspaces/(?P<ws>\d+)/tasks/search", self._search)
        self.route("GET", rf"{base}/workspaces/(?P<ws>\d+)/typeahead", self._typeahead)
        self.route("GET", rf"{base}/users/me", self._me)

    @property
    def api_url(self) -> str:
        """What ASANA_API_URL is set to (Asana's base includes /api/1.0)."""
        return self.base_url + "/api/1.0"

    def add_task(self, name: str, *, notes: str = "", assignee: str | None = None, due_on: str | None = None,
                 completed: bool = False, project: str | None = None) -> str:  # fmt: skip
        gid = str(1200000000001000 + len(self.tasks))
        self.tasks.append({
            "gid": gid, "resource_type": "task", "name": name, "notes": notes, "completed": completed,
            "assignee": {"gid": "1200000000000777", "name": assignee, "resource_type": "user"} if assignee else None,
            "due_on": due_on, "permalink_url": f"https://app.asana.com/0/0/{gid}/f",
            "projects": [{"gid": "1200000000000500", "name": project, "resource_type": "project"}] if project else [],
            "modified_at": "2025-04-30T12:00:00.000Z",
        })  # fmt: skip
        return gid

    def add_project(self, name: str, *, owner: str | None = None, archived: bool = False) -> str:
        gid = str(1200000000002000 + len(self.projects))
        self.projects.append({
            "gid": gid, "resource_type": "project", "name": name, "archived": archived, "due_on": None,
            "owner": {"gid": "1200000000000777", "name": owner, "resource_type": "user"} if owner else None,
            "permalink_url": f"https://app.asana.com/0/{gid}/{gid}",
        })  # fmt: skip
        return gid

    # -- wire ------------------------------------------------------------------------------
    def authorised(self, req: Req) -> bool:
        return req.headers.get("Authorization") == f"Bearer {self.token}"

    def error_body(self, status: int) -> Any:
        message = {401: "Not Authorized", 402: NO_SEARCH, 404: "Not Found"}.get(
            status, f"HTTP {status}"
        )
        return {"errors": [{"message": message, "help": "For more information on API status codes and how to handle them, read the docs on errors: https://developers.asana.com/docs/errors"}]}  # fmt: skip

    @staticmethod
    def _fields(item: dict, opt_fields: str | None) -> dict:
        """Compact records unless opt_fields names more (dotted names keep gid + that field)."""
        out = {k: item[k] for k in ("gid", "resource_type", "name") if k in item}
        for name in (opt_fields or "").split(","):
            top, _, sub = name.partition(".")
            if top not in item:
                continue
            value = item[top]
            if sub and isinstance(value, dict):
                value = {"gid": value["gid"], sub: value.get(sub)}
            elif sub and isinstance(value, list):
                value = [{"gid": v["gid"], sub: v.get(sub)} for v in value]
            out[top] = value
        return out

    def _workspaces(self, req: Req) -> tuple:
        return 200, {"data": [self._fields(self.workspace, req.query.get("opt_fields"))]}

    def _search(self, req: Req, ws: str) -> tuple:
        if not self.premium:
            return 402, self.error_body(402)
        text = (req.query.get("text") or "").lower()
        done = req.query.get("completed")
        hits = [t for t in self.tasks if text in (t["name"] + " " + t["notes"]).lower()]
        if done is not None:
            hits = [t for t in hits if t["completed"] == (done == "true")]
        return 200, {"data": [self._fields(t, req.query.get("opt_fields")) for t in hits]}

    def _typeahead(self, req: Req, ws: str) -> tuple:
        kind, query = req.query.get("resource_type"), (req.query.get("query") or "").lower()
        pool = self.tasks if kind == "task" else self.projects if kind == "project" else []
        hits = [item for item in pool if query in item["name"].lower()][
            : int(req.query.get("count") or 20)
        ]
        return 200, {"data": [self._fields(item, req.query.get("opt_fields")) for item in hits]}

    def _me(self, req: Req) -> tuple:
        return 200, {"data": {"gid": "1200000000000777", "name": "Sophia Bot", "resource_type": "user",
                              "workspaces": [self.workspace]}}  # fmt: skip
