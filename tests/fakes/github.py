"""Fake GitHub REST API (v3) server for tests, spoken to by the real PyGithub.

``FakeGitHub`` is an aiohttp server on 127.0.0.1 that answers the GitHub REST endpoints Sophia
uses with GitHub's JSON shapes, records every request, and keeps real repository state (a git
object store per repository, see ``github_state``)::

    async with FakeGitHub() as fake:
        fake.add_repo("acme/app", files={"README.md": "# app\\n"})
        pr = fake.add_pull("acme/app", title="Fix", head_branch="fix", files={"a.py": "x = 1\\n"})
        gh = Github(base_url=fake.base_url, auth=Auth.Token(fake.token), retry=None,
                    seconds_between_requests=None, seconds_between_writes=None)
        await asyncio.to_thread(lambda: gh.get_repo("acme/app").get_pull(pr["number"]).merge())
        assert fake.merges[0]["number"] == pr["number"]

It serves at the root and under ``/api/v3`` (GitHub Enterprise style); URLs in responses carry
the prefix the request used, because PyGithub follows them. ``/repositories/{id}/...`` aliases
``/repos/{owner}/{repo}/...``. Every request needs ``Authorization: token|Bearer <token>``
(401 "Requires authentication" / "Bad credentials"). GET answers carry ``ETag`` (and 304 on a
matching ``If-None-Match``) and ``X-RateLimit-*``; lists honour ``per_page``/``page`` with
GitHub's ``Link`` header. ``fail()`` injects errors (5xx, 403 rate limits, ...).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import re
import shlex
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.github_state import (
    BLOB_MODES,
    TREE_MODE,
    ApiError,
    CheckRun,
    GitCommit,
    GitHubState,
    Pull,
    Repo,
    Status,
    diff_files,
    encode,
    invalid,
    iso,
    not_found,
)

__all__ = ["ApiError", "FakeGitHub", "Req"]

DOCS = "https://docs.github.com/rest"
REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"


@dataclass
class Req:
    """One request as the fake received it (path without any ``/api/v3`` prefix, unquoted)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: CIMultiDict
    status: int = 0  # HTTP status the fake answered with


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern[str]
    status: int
    message: str
    times: int | None
    headers: dict[str, str]


@dataclass
class Ctx:
    request: web.Request
    api: str  # API root as the client used it: http://127.0.0.1:PORT[/api/v3]
    html: str  # web root: http://127.0.0.1:PORT
    path: str  # raw path without prefix
    query: dict[str, str]
    body: Any
    repo: Repo = None  # type: ignore[assignment]

    def arg(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default) if isinstance(self.body, dict) else default

    def repo_url(self, repo: Repo | None = None) -> str:
        return f"{self.api}/repos/{(repo or self.repo).full_name}"

    def web_url(self, repo: Repo | None = None) -> str:
        return f"{self.html}/{(repo or self.repo).full_name}"


Handler = Callable[..., Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _node(kind: str, ident: int) -> str:
    return f"{kind}_kwDOfake{ident}"


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class FakeGitHub:
    token = "ghp_testtoken0123456789abcdef0123456789"

    def __init__(self, *, login: str = "sophia-bot", token: str | None = None) -> None:
        self.token = token or self.token
        self.login = login
        self.state = GitHubState(login)
        self.requests: list[Req] = []
        self.base_url = ""
        self.rate_limit = 5000
        self._used = 0
        self._reset = int(time.time()) + 3600
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = [
            (m, re.compile(p), h) for m, p, h in self._route_table()
        ]

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGitHub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- state helpers for tests -----------------------------------------------------------
    @property
    def merges(self) -> list[dict]:
        """Every successful merge: repo, number, sha, head_sha, merge_method, commit_title."""
        return self.state.merges

    def repo(self, full_name: str) -> Repo:
        return self.state.repo(*full_name.split("/", 1))

    def pull(self, full_name: str, number: int) -> Pull:
        return self.repo(full_name).pulls[number]

    def add_repo(
        self,
        full_name: str,
        *,
        default_branch: str = "main",
        files: dict[str, str] | None = None,
        private: bool = False,
        allow_squash_merge: bool = True,
        allow_merge_commit: bool = True,
        allow_rebase_merge: bool = True,
        delete_branch_on_merge: bool = False,
        permissions: dict[str, bool] | None = None,
    ) -> Repo:
        """A repository whose default branch has one commit with ``files`` (default README)."""
        owner, name = full_name.split("/", 1)
        perms = {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}
        repo = Repo(
            self.state.next_id(), owner, name, default_branch, private, allow_squash_merge,
            allow_merge_commit, allow_rebase_merge, {**perms, **(permissions or {})},
            self.state.clock.tick(), delete_branch_on_merge=delete_branch_on_merge,
        )  # fmt: skip
        self.state.repos[full_name.lower()] = repo
        files = {"README.md": f"# {name}\n"} if files is None else files
        repo.set_branch(
            default_branch,
            self.state.commit_files(repo, None, files, "Initial commit", owner),  # type: ignore[arg-type]
        )
        return repo

    def push_commit(
        self,
        full_name: str,
        branch: str,
        files: dict[str, str | None],
        message: str = "Update files",
        author: str | None = None,
    ) -> str:
        """Commit ``files`` (None deletes) on ``branch`` (created from the default branch)."""
        repo = self.repo(full_name)
        parent = repo.branches.get(branch) or repo.branches[repo.default_branch]
        sha = self.state.commit_files(repo, parent, files, message, author or repo.owner)  # type: ignore[arg-type]
        repo.set_branch(branch, sha)
        return sha

    def add_pull(
        self,
        full_name: str,
        *,
        title: str,
        head_branch: str,
        base: str = "main",
        number: int | None = None,
        author: str = "octocat",
        files: dict[str, str | None] | None = None,
        additions: int | None = None,
        deletions: int | None = None,
        mergeable: bool | None = True,
        body: str = "",
        draft: bool = False,
    ) -> dict:
        """An open pull request; ``files`` are committed on the head branch (cut from ``base``).

        ``mergeable=False`` makes it conflict; None makes GitHub's "not computed yet" (null).
        ``additions``/``deletions`` override the statistics computed from the diff."""
        repo = self.repo(full_name)
        if files is not None or head_branch not in repo.branches:
            parent = repo.branches.get(head_branch) or repo.branches[base]
            files = {f"{head_branch}.md": f"{title}\n"} if files is None else files
            repo.set_branch(
                head_branch, self.state.commit_files(repo, parent, files, title, author)
            )
        pull = self._new_pull(repo, title, body, author, head_branch, base, draft, number)
        pull.mergeable, pull.additions, pull.deletions = mergeable, additions, deletions
        return self._pull_json(self._offline_ctx(repo), repo, pull)

    def set_status(
        self,
        full_name: str,
        sha: str,
        *,
        state: str,
        context: str = "ci",
        description: str | None = None,
        target_url: str | None = None,
    ) -> None:
        """A commit status (success / failure / error / pending) on a sha or branch."""
        repo = self.repo(full_name)
        self._add_status(repo, repo.commit(sha).sha, state, context, description, target_url)

    def add_check_run(
        self,
        full_name: str,
        sha: str,
        *,
        name: str,
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> None:
        repo, now = self.repo(full_name), self.state.clock.tick()
        head = repo.commit(sha).sha
        done = status == "completed"
        run = CheckRun(
            self.state.next_id(), name, head, status, conclusion if done else None, now,
            now if done else None, f"{self.base_url}/{repo.full_name}/actions",
        )  # fmt: skip
        repo.check_runs.setdefault(head, []).insert(0, run)

    def set_required_checks(self, full_name: str, branch: str, contexts: list[str]) -> None:
        """Protect ``branch`` requiring these status checks (``[]``: protected, none required)."""
        self.repo(full_name).required_checks[branch] = list(contexts)

    def file(self, full_name: str, path: str, ref: str | None = None) -> str | None:
        """Current text of ``path`` on ``ref`` (default branch if None), None when absent."""
        repo = self.repo(full_name)
        sha = repo.resolve(ref)
        entry = repo.store.lookup(repo.store.commits[sha].tree, path) if sha else None
        return repo.store.text(entry.sha) if entry and entry.type == "blob" else None

    def fail(
        self,
        method: str,
        path_regex: str,
        *,
        status: int = 500,
        message: str = "Server Error",
        times: int | None = 1,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests (None: all) with an error.

        403 + "API rate limit exceeded ..." / "You have exceeded a secondary rate limit ..."
        are GitHub's rate-limit answers (add ``Retry-After`` or ``X-RateLimit-Reset``)."""
        pattern = re.compile(path_regex)
        self._failures.append(
            _Failure(method.upper(), pattern, status, message, times, headers or {})
        )

    def calls(self, method: str, path_regex: str) -> list[Req]:
        """Recorded requests with this method ("*" for any) whose path matches (re.search)."""
        return [
            r
            for r in self.requests
            if method in ("*", r.method) or method.upper() == r.method
            if re.search(path_regex, r.path)
        ]

    # -- dispatch --------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        raw = request.rel_url.raw_path
        prefix = "/api/v3" if raw == "/api/v3" or raw.startswith("/api/v3/") else ""
        raw = raw[len(prefix) :] or "/"
        alias = re.fullmatch(r"/repositories/(\d+)(/.*)?", raw)
        if alias:
            repo = next((r for r in self.state.repos.values() if r.id == int(alias[1])), None)
            raw = f"/repos/{repo.full_name}{alias[2] or ''}" if repo else raw
        text = await request.text()
        try:
            body = json.loads(text) if text.strip() else None
        except ValueError:
            body = ValueError
        req = Req(
            request.method, unquote(raw), dict(request.query), body, CIMultiDict(request.headers)
        )
        self.requests.append(req)
        ctx = Ctx(
            request, f"http://{request.host}{prefix}", self.base_url, raw, dict(request.query), body
        )
        try:
            if body is ValueError:
                raise ApiError(400, "Problems parsing JSON")
            response = self._injected(req) or self._check_auth(request) or await self._route(ctx)
        except ApiError as err:
            response = self._error(err.status, err.message, err.errors)
        self._used += 1
        response.headers.update(
            {
                "X-RateLimit-Limit": str(self.rate_limit),
                "X-RateLimit-Remaining": str(max(self.rate_limit - self._used, 0)),
                "X-RateLimit-Used": str(self._used),
                "X-RateLimit-Reset": str(self._reset),
                "X-RateLimit-Resource": "search" if raw.startswith("/search/") else "core",
                "X-OAuth-Scopes": "repo, read:org",
                "X-GitHub-Media-Type": "github.v3; format=json",
                "X-GitHub-Request-Id": f"FAKE:{len(self.requests):06d}",
            }
        )
        if (
            request.method == "GET"
            and response.status == 200
            and isinstance(response, web.Response)
        ):
            etag = f'W/"{hashlib.sha1(response.body or b"").hexdigest()}"'  # type: ignore[arg-type]
            response.headers["ETag"] = etag
            if request.headers.get("If-None-Match") == etag:
                response = web.Response(status=304, headers={"ETag": etag})
        req.status = response.status
        return response

    def _injected(self, req: Req) -> web.Response | None:
        for failure in self._failures:
            if failure.method in ("*", req.method) and failure.pattern.search(req.path):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                response = self._error(failure.status, failure.message)
                response.headers.update(failure.headers)
                return response
        return None

    def _check_auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        if not header:
            return self._error(401, "Requires authentication")
        scheme, _, token = header.partition(" ")
        if scheme.lower() not in ("token", "bearer") or token.strip() != self.token:
            return self._error(401, "Bad credentials")
        return None

    async def _route(self, ctx: Ctx) -> web.StreamResponse:
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(ctx.path)
            if match is None or method != ctx.request.method:
                continue
            args = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
            if "owner" in args:
                ctx.repo = self.state.repo(args.pop("owner"), args.pop("name"))
                if method != "GET" and not ctx.repo.permissions.get("push"):
                    raise ApiError(403, "Resource not accessible by personal access token")
            return await handler(ctx, **args)
        raise not_found()

    @staticmethod
    def _error(status: int, message: str, errors: list[dict] | None = None) -> web.Response:
        body: dict[str, Any] = {"message": message}
        if errors:
            body["errors"] = errors
        body |= {"documentation_url": DOCS, "status": str(status)}
        return _json(body, status)

    def _page(self, ctx: Ctx, items: list, key: str | None = None, **extra: Any) -> web.Response:
        """One page of ``items`` (``per_page`` ≤ 100, default 30) with GitHub's Link header."""
        per_page = min(max(_int(ctx.query.get("per_page"), 30), 1), 100)
        page = max(_int(ctx.query.get("page"), 1), 1)
        last = max(math.ceil(len(items) / per_page), 1)

        def link(number: int, rel: str) -> str:
            return f'<{ctx.api}{ctx.path}?{urlencode({**ctx.query, "page": number})}>; rel="{rel}"'

        links = [link(page - 1, "prev")] if page > 1 else []
        links += [link(page + 1, "next"), link(last, "last")] if page < last else []
        links += [link(1, "first")] if page > 1 else []
        chunk = items[(page - 1) * per_page : page * per_page]
        body = chunk if key is None else {"total_count": len(items), **extra, key: chunk}
        return _json(body, headers={"Link": ", ".join(links)} if links else None)

    def _offline_ctx(self, repo: Repo) -> Ctx:
        return Ctx(None, self.base_url, self.base_url, "", {}, None, repo)  # type: ignore[arg-type]

    def _route_table(self) -> list[tuple[str, str, Handler]]:
        pull = rf"{REPO}/pulls/(?P<number>\d+)"
        commit = rf"{REPO}/commits/(?P<ref>.+)"
        return [
            ("GET", r"/user", self._get_me),
            ("GET", r"/users/(?P<login>[^/]+)", self._get_user),
            ("GET", r"/rate_limit", self._get_rate_limit),
            ("GET", r"/search/code", self._search_code),
            ("GET", REPO, self._get_repo),
            ("GET", rf"{REPO}/branches", self._list_branches),
            ("GET", rf"{REPO}/branches/(?P<branch>.+)/protection/required_status_checks", self._get_required),
            ("GET", rf"{REPO}/branches/(?P<branch>.+)/protection", self._get_protection),
            ("GET", rf"{REPO}/branches/(?P<branch>.+)", self._get_branch),
            ("GET", rf"{REPO}/git/ref/(?P<ref>.+)", self._get_ref),
            ("GET", rf"{REPO}/git/refs(?:/(?P<ref>.+))?", self._list_refs),
            ("GET", rf"{REPO}/git/matching-refs/(?P<ref>.*)", self._list_refs),
            ("POST", rf"{REPO}/git/refs", self._create_ref),
            ("PATCH", rf"{REPO}/git/refs/(?P<ref>.+)", self._update_ref),
            ("DELETE", rf"{REPO}/git/refs/(?P<ref>.+)", self._delete_ref),
            ("POST", rf"{REPO}/git/blobs", self._create_blob),
            ("GET", rf"{REPO}/git/blobs/(?P<sha>[^/]+)", self._get_blob),
            ("POST", rf"{REPO}/git/trees", self._create_tree),
            ("GET", rf"{REPO}/git/trees/(?P<sha>.+)", self._get_tree),
            ("POST", rf"{REPO}/git/commits", self._create_commit),
            ("GET", rf"{REPO}/git/commits/(?P<sha>[^/]+)", self._get_git_commit),
            ("GET", rf"{REPO}/contents(?:/(?P<path>.*))?", self._get_contents),
            ("PUT", rf"{REPO}/contents/(?P<path>.+)", self._put_contents),
            ("DELETE", rf"{REPO}/contents/(?P<path>.+)", self._delete_contents),
            ("GET", rf"{commit}/status", self._combined_status),
            ("GET", rf"{commit}/statuses", self._list_statuses),
            ("GET", rf"{commit}/check-runs", self._list_check_runs),
            ("GET", commit, self._get_commit),
            ("POST", rf"{REPO}/statuses/(?P<sha>[^/]+)", self._create_status),
            ("GET", rf"{REPO}/check-runs/(?P<run_id>\d+)", self._get_check_run),
            ("GET", rf"{REPO}/pulls", self._list_pulls),
            ("POST", rf"{REPO}/pulls", self._create_pull),
            ("GET", pull, self._get_pull),
            ("PATCH", pull, self._edit_pull),
            ("GET", rf"{pull}/files", self._pull_files),
            ("GET", rf"{pull}/commits", self._pull_commits),
            ("GET", rf"{pull}/merge", self._is_merged),
            ("PUT", rf"{pull}/merge", self._merge),
            ("GET", rf"{REPO}/issues/(?P<number>\d+)/comments", self._list_comments),
            ("POST", rf"{REPO}/issues/(?P<number>\d+)/comments", self._create_comment),
        ]  # fmt: skip

    # -- JSON shapes -------------------------------------------------------------------------
    def _user_json(self, ctx: Ctx, login: str) -> dict[str, Any]:
        uid = self.state.user_id(login)
        return {
            "login": login,
            "id": uid,
            "node_id": _node("U", uid),
            "avatar_url": f"{ctx.html}/avatars/u/{uid}",
            "gravatar_id": "",
            "url": f"{ctx.api}/users/{login}",
            "html_url": f"{ctx.html}/{login}",
            "type": "User",
            "site_admin": False,
        }

    def _repo_json(self, ctx: Ctx, repo: Repo) -> dict[str, Any]:
        url, html = ctx.repo_url(repo), ctx.web_url(repo)
        data = {
            "id": repo.id,
            "node_id": _node("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self._user_json(ctx, repo.owner),
            "html_url": html,
            "description": None,
            "fork": False,
            "url": url,
            "clone_url": f"{html}.git",
            "created_at": iso(repo.created_at),
            "updated_at": iso(repo.created_at),
            "pushed_at": iso(repo.created_at),
            "size": 0,
            "archived": False,
            "disabled": False,
            "visibility": "private" if repo.private else "public",
            "default_branch": repo.default_branch,
            "open_issues_count": sum(p.state == "open" for p in repo.pulls.values()),
            "permissions": dict(repo.permissions),
            "allow_squash_merge": repo.allow_squash_merge,
            "allow_merge_commit": repo.allow_merge_commit,
            "allow_rebase_merge": repo.allow_rebase_merge,
            "allow_auto_merge": False,
            "delete_branch_on_merge": repo.delete_branch_on_merge,
        }
        for key, tail in [("branches", "/branches{/branch}"), ("pulls", "/pulls{/number}"),
                          ("contents", "/contents/{+path}"), ("git_refs", "/git/refs{/sha}"),
                          ("trees", "/git/trees{/sha}"), ("statuses", "/statuses/{sha}"),
                          ("commits", "/commits{/sha}"), ("blobs", "/git/blobs{/sha}")]:  # fmt: skip
            data[f"{key}_url"] = url + tail
        return data

    def _git_commit_json(self, ctx: Ctx, commit: GitCommit) -> dict[str, Any]:
        url = ctx.repo_url()
        return {
            "sha": commit.sha,
            "node_id": _node("C", int(commit.sha[:8], 16)),
            "url": f"{url}/git/commits/{commit.sha}",
            "html_url": f"{ctx.web_url()}/commit/{commit.sha}",
            "author": dict(commit.author),
            "committer": dict(commit.committer),
            "message": commit.message,
            "tree": {"sha": commit.tree, "url": f"{url}/git/trees/{commit.tree}"},
            "parents": [
                {
                    "sha": p,
                    "url": f"{url}/git/commits/{p}",
                    "html_url": f"{ctx.web_url()}/commit/{p}",
                }
                for p in commit.parents
            ],
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
            },
        }

    def _commit_json(self, ctx: Ctx, commit: GitCommit, files: bool = False) -> dict[str, Any]:
        """The REST "commit" (``/commits/{ref}``): the git commit wrapped with users and links."""
        url, html = ctx.repo_url(), ctx.web_url()
        git = self._git_commit_json(ctx, commit)
        git.update({"comment_count": 0})
        for key in ("sha", "node_id", "html_url", "parents"):
            git.pop(key)
        data = {
            "sha": commit.sha,
            "node_id": _node("C", int(commit.sha[:8], 16)),
            "url": f"{url}/commits/{commit.sha}",
            "html_url": f"{html}/commit/{commit.sha}",
            "comments_url": f"{url}/commits/{commit.sha}/comments",
            "commit": git,
            "author": self._user_json(ctx, commit.author["name"]),
            "committer": self._user_json(ctx, commit.committer["name"]),
            "parents": [
                {"sha": p, "url": f"{url}/commits/{p}", "html_url": f"{html}/commit/{p}"}
                for p in commit.parents
            ],
        }
        if files:
            store = ctx.repo.store
            old = store.files_of(commit.parents[0]) if commit.parents else {}
            changed = [self._file_json(ctx, commit.sha, f) for f in
                       diff_files(store, old, store.flatten(commit.tree))]  # fmt: skip
            adds, dels = sum(f["additions"] for f in changed), sum(f["deletions"] for f in changed)
            data |= {
                "stats": {"total": adds + dels, "additions": adds, "deletions": dels},
                "files": changed,
            }
        return data

    def _file_json(self, ctx: Ctx, ref: str, f: dict[str, Any]) -> dict[str, Any]:
        path = quote(f["filename"])
        return {
            **f,
            "blob_url": f"{ctx.web_url()}/blob/{ref}/{path}",
            "raw_url": f"{ctx.web_url()}/raw/{ref}/{path}",
            "contents_url": f"{ctx.repo_url()}/contents/{path}?ref={ref}",
        }

    def _ref_json(self, ctx: Ctx, branch: str) -> dict[str, Any]:
        sha, url = ctx.repo.branches[branch], ctx.repo_url()
        return {
            "ref": f"refs/heads/{branch}",
            "node_id": _node("REF", abs(hash(branch)) % 10**8),
            "url": f"{url}/git/refs/heads/{quote(branch)}",
            "object": {"sha": sha, "type": "commit", "url": f"{url}/git/commits/{sha}"},
        }

    def _required_json(self, ctx: Ctx, branch: str) -> dict[str, Any]:
        contexts = ctx.repo.required_checks[branch]
        url = f"{ctx.repo_url()}/branches/{quote(branch)}/protection/required_status_checks"
        return {
            "url": url,
            "strict": False,
            "contexts": list(contexts),
            "contexts_url": f"{url}/contexts",
            "checks": [{"context": c, "app_id": None} for c in contexts],
        }

    def _tree_json(self, ctx: Ctx, tree: str, recursive: bool = False) -> dict[str, Any]:
        store, url = ctx.repo.store, ctx.repo_url()
        walk = store.walk(tree) if recursive else ((e.name, e) for e in store.trees[tree])
        entries = []
        for path, e in walk:
            item = {"path": path, "mode": e.mode, "type": e.type, "sha": e.sha}
            if e.type == "blob":
                item["size"] = len(store.blobs[e.sha])
            entries.append({**item, "url": f"{url}/git/{e.type}s/{e.sha}"})
        return {"sha": tree, "url": f"{url}/git/trees/{tree}", "tree": entries, "truncated": False}

    def _content_json(self, ctx: Ctx, path: str, sha: str, kind: str, ref: str) -> dict[str, Any]:
        store, url = ctx.repo.store, f"{ctx.repo_url()}/contents/{quote(path)}?ref={quote(ref)}"
        is_file = kind == "blob"
        git_url = f"{ctx.repo_url()}/git/{kind}s/{sha}"
        html_url = f"{ctx.web_url()}/{'blob' if is_file else 'tree'}/{ref}/{quote(path)}"
        return {
            "type": "file" if is_file else "dir",
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "size": len(store.blobs[sha]) if is_file else 0,
            "url": url,
            "html_url": html_url,
            "git_url": git_url,
            "download_url": f"{ctx.web_url()}/raw/{ref}/{quote(path)}" if is_file else None,
            "_links": {"self": url, "git": git_url, "html": html_url},
        }

    def _pull_json(self, ctx: Ctx, repo: Repo, pull: Pull, full: bool = True) -> dict[str, Any]:
        url, html = (
            f"{ctx.repo_url(repo)}/pulls/{pull.number}",
            f"{ctx.web_url(repo)}/pull/{pull.number}",
        )
        issue = f"{ctx.repo_url(repo)}/issues/{pull.number}"

        def part(branch: str, sha: str) -> dict[str, Any]:
            return {"label": f"{repo.owner}:{branch}", "ref": branch, "sha": sha,
                    "user": self._user_json(ctx, repo.owner), "repo": self._repo_json(ctx, repo)}  # fmt: skip

        data = {
            "url": url, "id": pull.id, "node_id": _node("PR", pull.id), "html_url": html,
            "diff_url": f"{html}.diff", "patch_url": f"{html}.patch", "issue_url": issue,
            "commits_url": f"{url}/commits", "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{ctx.repo_url(repo)}/pulls/comments{{/number}}",
            "comments_url": f"{issue}/comments",
            "statuses_url": f"{ctx.repo_url(repo)}/statuses/{pull.head_sha}",
            "number": pull.number, "state": pull.state, "locked": False, "title": pull.title,
            "user": self._user_json(ctx, pull.user), "body": pull.body, "labels": [],
            "milestone": None, "active_lock_reason": None, "created_at": iso(pull.created_at),
            "updated_at": iso(pull.updated_at), "closed_at": iso(pull.closed_at),
            "merged_at": iso(pull.merged_at), "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None, "assignees": [], "requested_reviewers": [], "requested_teams": [],
            "head": part(pull.head, pull.head_sha), "base": part(pull.base, pull.base_sha),
            "_links": {"self": {"href": url}, "html": {"href": html}, "issue": {"href": issue}},
            "author_association": "OWNER" if pull.user == repo.owner else "CONTRIBUTOR",
            "auto_merge": None, "draft": pull.draft,
        }  # fmt: skip
        if full:  # "pull-request" (single) vs "pull-request-simple" (lists)
            mergeable, mergeable_state = repo.mergeability(pull)
            files = repo.pull_files(pull)
            data |= {
                "merged": pull.merged, "mergeable": mergeable, "rebaseable": mergeable,
                "mergeable_state": mergeable_state,
                "merged_by": self._user_json(ctx, pull.merged_by) if pull.merged_by else None,
                "comments": len(pull.comments), "review_comments": 0,
                "maintainer_can_modify": False, "commits": len(repo.pull_commits(pull)),
                "additions": sum(f["additions"] for f in files) if pull.additions is None else pull.additions,
                "deletions": sum(f["deletions"] for f in files) if pull.deletions is None else pull.deletions,
                "changed_files": len(files),
            }  # fmt: skip
        return data

    def _status_json(self, ctx: Ctx, sha: str, status: Status) -> dict[str, Any]:
        return {
            "url": f"{ctx.repo_url()}/statuses/{sha}",
            "avatar_url": None,
            "id": status.id,
            "node_id": _node("SC", status.id),
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": iso(status.created_at),
            "updated_at": iso(status.created_at),
            "creator": self._user_json(ctx, status.creator),
        }

    def _check_run_json(self, ctx: Ctx, run: CheckRun) -> dict[str, Any]:
        app = {"id": 1, "slug": "fake-ci", "node_id": _node("A", 1), "name": "Fake CI",
               "owner": self._user_json(ctx, "fake-ci"), "html_url": f"{ctx.html}/apps/fake-ci"}  # fmt: skip
        return {
            "id": run.id,
            "name": run.name,
            "node_id": _node("CR", run.id),
            "head_sha": run.head_sha,
            "external_id": str(run.id),
            "url": f"{ctx.repo_url()}/check-runs/{run.id}",
            "html_url": f"{ctx.web_url()}/runs/{run.id}",
            "details_url": run.details_url,
            "status": run.status,
            "conclusion": run.conclusion,
            "started_at": iso(run.started_at),
            "completed_at": iso(run.completed_at),
            "output": {
                "title": run.title,
                "summary": run.summary,
                "text": None,
                "annotations_count": 0,
                "annotations_url": f"{ctx.repo_url()}/check-runs/{run.id}/annotations",
            },  # fmt: skip
            "check_suite": {"id": run.id},
            "app": app,
            "pull_requests": [],
        }

    # -- state operations shared by handlers and helpers -----------------------------------
    def _new_pull(
        self, repo: Repo, title: str, body: str | None, user: str, head: str, base: str,
        draft: bool = False, number: int | None = None,
    ) -> Pull:  # fmt: skip
        now = self.state.clock.tick()
        number = number or max(repo.pulls, default=0) + 1
        pull = Pull(number, self.state.next_id(), title, body, user, head, base,
                    repo.branches[head], repo.branches[base], now, now, draft=draft)  # fmt: skip
        repo.pulls[number] = pull
        return pull

    def _add_status(
        self,
        repo: Repo,
        sha: str,
        state: str,
        context: str,
        description: str | None,
        url: str | None,
    ) -> Status:
        if state not in ("error", "failure", "pending", "success"):
            raise invalid("Status", "state", "custom", message=f"{state} is not a valid state")
        status = Status(self.state.next_id(), state, context, description, url, self.login,
                        self.state.clock.tick())  # fmt: skip
        repo.statuses.setdefault(sha, []).insert(0, status)
        return status

    def _branch_of(self, ctx: Ctx, ref: str | None) -> str:
        """Branch name of ``heads/x`` / ``refs/heads/x``; 422 when it does not exist."""
        name = (ref or "").removeprefix("refs/").removeprefix("heads/")
        if (
            not (ref or "").removeprefix("refs/").startswith("heads/")
            or name not in ctx.repo.branches
        ):
            raise ApiError(422, "Reference does not exist")
        return name

    def _commit_sha(self, ctx: Ctx, key: str = "sha") -> str:
        sha = ctx.arg(key)
        if not isinstance(sha, str) or sha not in ctx.repo.store.commits:
            raise ApiError(422, "Object does not exist")
        return sha

    # -- handlers: users, repos, branches ----------------------------------------------------
    async def _get_me(self, ctx: Ctx) -> web.Response:
        me = self._user_json(ctx, self.login)
        owned = sum(r.owner == self.login for r in self.state.repos.values())
        return _json(me | {"name": self.login, "email": None, "public_repos": owned})

    async def _get_user(self, ctx: Ctx, login: str) -> web.Response:
        return _json(self._user_json(ctx, login) | {"name": login})

    async def _get_rate_limit(self, ctx: Ctx) -> web.Response:
        core = {"limit": self.rate_limit, "used": self._used, "reset": self._reset,
                "remaining": max(self.rate_limit - self._used, 0)}  # fmt: skip
        search = {"limit": 30, "used": 0, "remaining": 30, "reset": self._reset}
        return _json({"resources": {"core": core, "search": search}, "rate": core})

    async def _get_repo(self, ctx: Ctx) -> web.Response:
        return _json(self._repo_json(ctx, ctx.repo))

    async def _list_branches(self, ctx: Ctx) -> web.Response:
        items = [
            {"name": b, "commit": {"sha": sha, "url": f"{ctx.repo_url()}/commits/{sha}"},
             "protected": b in ctx.repo.required_checks}
            for b, sha in sorted(ctx.repo.branches.items())
        ]  # fmt: skip
        return self._page(ctx, items)

    async def _get_branch(self, ctx: Ctx, branch: str) -> web.Response:
        if branch not in ctx.repo.branches:
            raise not_found("Branch not found")
        sha, url = ctx.repo.branches[branch], f"{ctx.repo_url()}/branches/{quote(branch)}"
        required = ctx.repo.required_checks.get(branch)
        rsc = {"enforcement_level": "non_admins" if required else "off", "contexts": required or [],
               "checks": [{"context": c, "app_id": None} for c in required or []]}  # fmt: skip
        return _json(
            {
                "name": branch,
                "commit": self._commit_json(ctx, ctx.repo.store.commits[sha]),
                "_links": {"self": url, "html": f"{ctx.web_url()}/tree/{branch}"},
                "protected": required is not None,
                "protection": {"enabled": required is not None, "required_status_checks": rsc},
                "protection_url": f"{url}/protection",
            }
        )

    async def _get_protection(self, ctx: Ctx, branch: str) -> web.Response:
        if branch not in ctx.repo.required_checks:
            raise not_found("Branch not protected")
        url = f"{ctx.repo_url()}/branches/{quote(branch)}/protection"
        data: dict[str, Any] = {
            "url": url,
            "enforce_admins": {"url": f"{url}/enforce_admins", "enabled": False},
        }
        if ctx.repo.required_checks[branch]:
            data["required_status_checks"] = self._required_json(ctx, branch)
        return _json(data)

    async def _get_required(self, ctx: Ctx, branch: str) -> web.Response:
        if branch not in ctx.repo.required_checks:
            raise not_found("Branch not protected")
        if not ctx.repo.required_checks[branch]:
            raise not_found("Required status checks not enabled")
        return _json(self._required_json(ctx, branch))

    # -- handlers: git references and objects ------------------------------------------------
    async def _get_ref(self, ctx: Ctx, ref: str) -> web.Response:
        name = ref.removeprefix("heads/")
        if not ref.startswith("heads/") or name not in ctx.repo.branches:
            raise not_found()
        return _json(self._ref_json(ctx, name))

    async def _list_refs(self, ctx: Ctx, ref: str = "") -> web.Response:
        """``git/refs[/prefix]`` and ``git/matching-refs/prefix`` (only branches exist here)."""
        exact = ref.removeprefix("heads/")
        if (
            "/matching-refs/" not in ctx.path
            and ref.startswith("heads/")
            and exact in ctx.repo.branches
        ):
            return _json(self._ref_json(ctx, exact))  # the old single-reference form
        names = [b for b in sorted(ctx.repo.branches) if f"heads/{b}".startswith(ref)]
        if ref and not names and "/matching-refs/" not in ctx.path:
            raise not_found()
        return self._page(ctx, [self._ref_json(ctx, b) for b in names])

    async def _create_ref(self, ctx: Ctx) -> web.Response:
        ref = ctx.arg("ref")
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name is invalid")  # must be "refs/<kind>/<name>"
        if not ref.startswith("refs/heads/"):
            raise ApiError(422, f"FakeGitHub only supports refs/heads/*, not {ref}")
        sha, name = self._commit_sha(ctx), ref.removeprefix("refs/heads/")
        if name in ctx.repo.branches:
            raise ApiError(422, "Reference already exists")
        ctx.repo.set_branch(name, sha)
        return _json(self._ref_json(ctx, name), 201)

    async def _update_ref(self, ctx: Ctx, ref: str) -> web.Response:
        name, sha = self._branch_of(ctx, ref), self._commit_sha(ctx)
        current = ctx.repo.branches[name]
        if not ctx.arg("force") and current not in ctx.repo.store.ancestors(sha):
            raise ApiError(422, "Update is not a fast forward")
        ctx.repo.set_branch(name, sha)
        return _json(self._ref_json(ctx, name))

    async def _delete_ref(self, ctx: Ctx, ref: str) -> web.Response:
        ctx.repo.delete_branch(self._branch_of(ctx, ref), self.state.clock.tick())
        return web.Response(status=204)

    async def _create_blob(self, ctx: Ctx) -> web.Response:
        content, encoding = ctx.arg("content"), ctx.arg("encoding", "utf-8")
        if not isinstance(content, str) or encoding not in ("utf-8", "base64"):
            raise invalid(
                "Blob", "content" if not isinstance(content, str) else "encoding", "missing_field"
            )
        try:
            data = (
                base64.b64decode(content, validate=False)
                if encoding == "base64"
                else content.encode()
            )
        except binascii.Error as exc:
            raise ApiError(422, "Invalid base64 content") from exc
        sha = ctx.repo.store.put_blob(data)
        return _json({"sha": sha, "url": f"{ctx.repo_url()}/git/blobs/{sha}"}, 201)

    async def _get_blob(self, ctx: Ctx, sha: str) -> web.Response:
        data = ctx.repo.store.blobs.get(sha)
        if data is None:
            raise not_found()
        return _json(
            {
                "sha": sha,
                "node_id": _node("B", int(sha[:8], 16)),
                "size": len(data),
                "url": f"{ctx.repo_url()}/git/blobs/{sha}",
                "content": base64.encodebytes(data).decode(),
                "encoding": "base64",
            }  # fmt: skip
        )

    async def _create_tree(self, ctx: Ctx) -> web.Response:
        """Entries overwrite ``base_tree`` paths; ``sha: null`` deletes; ``content`` makes a blob."""
        store, entries, base = ctx.repo.store, ctx.arg("tree"), ctx.arg("base_tree")
        if not isinstance(entries, list):
            raise invalid("Tree", "tree", "missing_field")
        if base is not None and base not in store.trees:
            raise ApiError(422, "base_tree is not a valid tree oid")
        flat = store.flatten(base) if base else {}
        for entry in entries:
            path, mode, kind = entry.get("path"), entry.get("mode"), entry.get("type", "blob")
            parts = path.split("/") if isinstance(path, str) else [""]
            if any(p in ("", ".", "..") for p in parts):
                raise ApiError(422, f"tree.path contains a malformed path component: {path!r}")
            if kind not in ("blob", "tree") or mode not in (
                BLOB_MODES if kind == "blob" else {TREE_MODE}
            ):
                raise ApiError(
                    422, f"GitRPC::BadObjectState: invalid mode/type {mode}/{kind} for {path}"
                )
            below = [p for p in flat if p.startswith(f"{path}/")]
            if entry.get("content") is not None and kind == "blob":
                sha = store.put_blob(encode(entry["content"]))
            elif "sha" not in entry:
                raise ApiError(422, f"tree.sha or tree.content is required for {path}")
            else:
                sha = entry["sha"]
            if sha is None:  # deletion
                if path not in flat and not below:
                    raise ApiError(422, f"GitRPC::BadObjectState: {path} does not exist")
                for p in [path, *below]:
                    flat.pop(p, None)
                continue
            if sha not in (store.blobs if kind == "blob" else store.trees):
                raise ApiError(422, f"tree.sha {sha} is not a valid {kind}")
            for p in [*below, *("/".join(parts[:i]) for i in range(1, len(parts) + 1))]:
                flat.pop(p, None)  # a file replaces a directory and vice versa
            if kind == "blob":
                flat[path] = (mode, sha)
            else:
                flat |= {f"{path}/{p}": v for p, v in store.flatten(sha).items()}
        return _json(self._tree_json(ctx, store.tree_from_flat(flat)), 201)

    async def _get_tree(self, ctx: Ctx, sha: str) -> web.Response:
        """A tree by sha, or the tree of a commit sha / branch name (as GitHub accepts)."""
        store = ctx.repo.store
        if sha not in store.trees:
            commit = ctx.repo.resolve(sha)
            if commit is None:
                raise not_found()
            sha = store.commits[commit].tree
        recursive = ctx.query.get("recursive", "") not in ("", "0", "false")
        return _json(self._tree_json(ctx, sha, recursive))

    async def _create_commit(self, ctx: Ctx) -> web.Response:
        store, message, tree = ctx.repo.store, ctx.arg("message"), ctx.arg("tree")
        parents = ctx.arg("parents", [])
        if not isinstance(message, str):
            raise invalid("Commit", "message", "missing_field")
        if tree not in store.trees:
            raise ApiError(422, "Tree SHA does not exist")
        if not isinstance(parents, list) or any(p not in store.commits for p in parents):
            raise ApiError(422, "Parent SHA does not exist or is not a commit object")
        me = self.state.person(self.login)
        author = {**me, **(ctx.arg("author") or {})}
        committer = {**author, **(ctx.arg("committer") or {})} if ctx.arg("committer") else author
        sha = store.put_commit(tree, parents, message, author, committer)
        return _json(self._git_commit_json(ctx, store.commits[sha]), 201)

    async def _get_git_commit(self, ctx: Ctx, sha: str) -> web.Response:
        if sha not in ctx.repo.store.commits:
            raise not_found()
        return _json(self._git_commit_json(ctx, ctx.repo.store.commits[sha]))

    # -- handlers: contents ------------------------------------------------------------------
    async def _get_contents(self, ctx: Ctx, path: str = "") -> web.Response:
        repo, ref = ctx.repo, ctx.query.get("ref") or ctx.repo.default_branch
        sha = repo.resolve(ref)
        if sha is None:
            raise not_found(f"No commit found for the ref {ref}")
        path = path.strip("/")
        entry = repo.store.lookup(repo.store.commits[sha].tree, path)
        if entry is None:
            raise not_found()
        if entry.type == "blob":
            data = self._content_json(ctx, path, entry.sha, "blob", ref)
            data |= {
                "content": base64.encodebytes(repo.store.blobs[entry.sha]).decode(),
                "encoding": "base64",
            }
            return _json(data)
        return _json([self._content_json(ctx, f"{path}/{e.name}".lstrip("/"), e.sha, e.type, ref)
                      for e in repo.store.trees[entry.sha]])  # fmt: skip

    def _file_change(self, ctx: Ctx, path: str, *, deleting: bool) -> tuple[str, str | None]:
        """Branch and current blob sha for a contents PUT/DELETE, checking ``sha`` like GitHub."""
        repo, branch = ctx.repo, ctx.arg("branch") or ctx.repo.default_branch
        if not isinstance(ctx.arg("message"), str):
            raise invalid("Commit", "message", "missing_field")
        if branch not in repo.branches:
            raise not_found(f"Branch {branch} not found")
        current = repo.store.files_of(repo.branches[branch]).get(path)
        given = ctx.arg("sha")
        if deleting and current is None:
            raise not_found()
        if current is not None and given is None:
            raise ApiError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        if given is not None and (current is None or current[1] != given):
            raise ApiError(409, f"{path} does not match {given}")
        return branch, current[1] if current else None

    async def _put_contents(self, ctx: Ctx, path: str) -> web.Response:
        branch, current = self._file_change(ctx, path, deleting=False)
        try:
            data = base64.b64decode(ctx.arg("content") or "", validate=True)
        except binascii.Error as exc:
            raise invalid("Content", "content", "invalid") from exc
        repo = ctx.repo
        sha = self.state.commit_files(
            repo, repo.branches[branch], {path: data}, ctx.arg("message"), self.login
        )
        repo.set_branch(branch, sha)
        blob = repo.store.files_of(sha)[path][1]
        body = {"content": self._content_json(ctx, path, blob, "blob", branch),
                "commit": self._git_commit_json(ctx, repo.store.commits[sha])}  # fmt: skip
        return _json(body, 200 if current else 201)

    async def _delete_contents(self, ctx: Ctx, path: str) -> web.Response:
        branch, _ = self._file_change(ctx, path, deleting=True)
        repo = ctx.repo
        sha = self.state.commit_files(
            repo, repo.branches[branch], {path: None}, ctx.arg("message"), self.login
        )
        repo.set_branch(branch, sha)
        return _json(
            {"content": None, "commit": self._git_commit_json(ctx, repo.store.commits[sha])}
        )

    # -- handlers: commits, statuses, checks -------------------------------------------------
    def _sha_for_status(self, ctx: Ctx, ref: str) -> str:
        sha = ctx.repo.resolve(ref)
        if sha is None:
            raise not_found(f"No commit found for SHA: {ref}")
        return sha

    async def _get_commit(self, ctx: Ctx, ref: str) -> web.Response:
        return _json(self._commit_json(ctx, ctx.repo.commit(ref), files=True))

    async def _combined_status(self, ctx: Ctx, ref: str) -> web.Response:
        sha = self._sha_for_status(ctx, ref)
        state, statuses = ctx.repo.combined_statuses(sha)
        return _json(
            {
                "state": state,
                "statuses": [self._status_json(ctx, sha, s) for s in statuses],
                "sha": sha,
                "total_count": len(statuses),
                "repository": self._repo_json(ctx, ctx.repo),
                "commit_url": f"{ctx.repo_url()}/commits/{sha}",
                "url": f"{ctx.repo_url()}/commits/{sha}/status",
            }
        )

    async def _list_statuses(self, ctx: Ctx, ref: str) -> web.Response:
        sha = self._sha_for_status(ctx, ref)
        return self._page(
            ctx, [self._status_json(ctx, sha, s) for s in ctx.repo.statuses.get(sha, [])]
        )

    async def _create_status(self, ctx: Ctx, sha: str) -> web.Response:
        if sha not in ctx.repo.store.commits:
            raise ApiError(422, f"No commit found for SHA: {sha}")
        status = self._add_status(
            ctx.repo, sha, ctx.arg("state"), ctx.arg("context") or "default",
            ctx.arg("description"), ctx.arg("target_url"),
        )  # fmt: skip
        return _json(self._status_json(ctx, sha, status), 201)

    async def _list_check_runs(self, ctx: Ctx, ref: str) -> web.Response:
        runs = ctx.repo.check_runs.get(self._sha_for_status(ctx, ref), [])
        if ctx.query.get("filter", "latest") == "latest":
            runs = list({r.name: r for r in reversed(runs)}.values())[::-1]
        runs = [r for r in runs if ctx.query.get("check_name", r.name) == r.name]
        runs = [r for r in runs if ctx.query.get("status", r.status) == r.status]
        return self._page(ctx, [self._check_run_json(ctx, r) for r in runs], "check_runs")

    async def _get_check_run(self, ctx: Ctx, run_id: str) -> web.Response:
        runs = [r for rs in ctx.repo.check_runs.values() for r in rs if r.id == int(run_id)]
        if not runs:
            raise not_found()
        return _json(self._check_run_json(ctx, runs[0]))

    # -- handlers: pull requests -------------------------------------------------------------
    def _get_pull_or_404(self, ctx: Ctx, number: str) -> Pull:
        pull = ctx.repo.pulls.get(int(number))
        if pull is None:
            raise not_found()
        return pull

    async def _list_pulls(self, ctx: Ctx) -> web.Response:
        q, pulls = ctx.query, list(ctx.repo.pulls.values())
        state = q.get("state", "open")
        pulls = [p for p in pulls if state == "all" or p.state == state]
        if ":" in q.get("head", ""):  # GitHub ignores a head filter without "owner:"
            owner, _, branch = q["head"].partition(":")
            pulls = [
                p for p in pulls if owner.lower() == ctx.repo.owner.lower() and p.head == branch
            ]
        pulls = [p for p in pulls if q.get("base", p.base) == p.base]
        key = {"updated": lambda p: p.updated_at}.get(
            q.get("sort", "created"), lambda p: p.created_at
        )
        pulls.sort(key=key, reverse=q.get("direction", "desc") == "desc")
        return self._page(ctx, [self._pull_json(ctx, ctx.repo, p, full=False) for p in pulls])

    async def _create_pull(self, ctx: Ctx) -> web.Response:
        repo, title, base = ctx.repo, ctx.arg("title"), ctx.arg("base")
        owner, _, head = str(ctx.arg("head") or "").rpartition(":")
        if not isinstance(title, str) or not title:
            raise invalid("PullRequest", "title", "missing_field")
        if base not in repo.branches:
            raise invalid("PullRequest", "base", "invalid")
        if head not in repo.branches or (owner and owner.lower() != repo.owner.lower()):
            raise invalid("PullRequest", "head", "invalid")
        if any(p.state == "open" and (p.head, p.base) == (head, base) for p in repo.pulls.values()):
            message = f"A pull request already exists for {repo.owner}:{head}."
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "code": "custom", "message": message}],
            )
        if repo.branches[head] in repo.store.ancestors(repo.branches[base]):
            message = f"No commits between {base} and {head}"
            raise ApiError(
                422,
                "Validation Failed",
                [{"resource": "PullRequest", "code": "custom", "message": message}],
            )
        pull = self._new_pull(
            repo, title, ctx.arg("body"), self.login, head, base, bool(ctx.arg("draft"))
        )
        return _json(self._pull_json(ctx, repo, pull), 201)

    async def _get_pull(self, ctx: Ctx, number: str) -> web.Response:
        return _json(self._pull_json(ctx, ctx.repo, self._get_pull_or_404(ctx, number)))

    async def _edit_pull(self, ctx: Ctx, number: str) -> web.Response:
        pull, now = self._get_pull_or_404(ctx, number), self.state.clock.tick()
        for key in ("title", "body"):
            if isinstance(ctx.arg(key), str):
                setattr(pull, key, ctx.arg(key))
        if ctx.arg("base") is not None:
            if ctx.arg("base") not in ctx.repo.branches:
                raise invalid("PullRequest", "base", "invalid")
            pull.base, pull.base_sha = ctx.arg("base"), ctx.repo.branches[ctx.arg("base")]
        if ctx.arg("state") in ("open", "closed") and ctx.arg("state") != pull.state:
            if pull.merged:
                raise ApiError(422, "Validation Failed", [{"resource": "PullRequest", "code": "custom",
                                                           "message": "Cannot reopen a merged pull request"}])  # fmt: skip
            pull.state, pull.closed_at = (
                ctx.arg("state"),
                now if ctx.arg("state") == "closed" else None,
            )
        pull.updated_at = now
        return _json(self._pull_json(ctx, ctx.repo, pull))

    async def _pull_files(self, ctx: Ctx, number: str) -> web.Response:
        pull = self._get_pull_or_404(ctx, number)
        files = [self._file_json(ctx, pull.head_sha, f) for f in ctx.repo.pull_files(pull)]
        return self._page(ctx, files)

    async def _pull_commits(self, ctx: Ctx, number: str) -> web.Response:
        pull, store = self._get_pull_or_404(ctx, number), ctx.repo.store
        return self._page(
            ctx, [self._commit_json(ctx, store.commits[c]) for c in ctx.repo.pull_commits(pull)]
        )

    async def _is_merged(self, ctx: Ctx, number: str) -> web.Response:
        if not self._get_pull_or_404(ctx, number).merged:
            raise not_found()
        return web.Response(status=204)

    async def _merge(self, ctx: Ctx, number: str) -> web.Response:
        pull = self._get_pull_or_404(ctx, number)
        sha = self.state.merge_pull(
            ctx.repo, pull, sha=ctx.arg("sha"), method=ctx.arg("merge_method") or "merge",
            title=ctx.arg("commit_title"), message=ctx.arg("commit_message"),
        )  # fmt: skip
        return _json({"sha": sha, "merged": True, "message": "Pull Request successfully merged"})

    def _comment_json(self, ctx: Ctx, number: int, comment: dict) -> dict[str, Any]:
        url = f"{ctx.repo_url()}/issues/comments/{comment['id']}"
        return {
            "id": comment["id"], "node_id": _node("IC", comment["id"]), "url": url,
            "html_url": f"{ctx.web_url()}/pull/{number}#issuecomment-{comment['id']}",
            "issue_url": f"{ctx.repo_url()}/issues/{number}", "body": comment["body"],
            "user": self._user_json(ctx, comment["user"]), "created_at": iso(comment["at"]),
            "updated_at": iso(comment["at"]), "author_association": "MEMBER",
        }  # fmt: skip

    async def _list_comments(self, ctx: Ctx, number: str) -> web.Response:
        pull = self._get_pull_or_404(ctx, number)
        return self._page(ctx, [self._comment_json(ctx, pull.number, c) for c in pull.comments])

    async def _create_comment(self, ctx: Ctx, number: str) -> web.Response:
        pull = self._get_pull_or_404(ctx, number)
        if not isinstance(ctx.arg("body"), str):
            raise invalid("IssueComment", "body", "missing_field")
        comment = {"id": self.state.next_id(), "body": ctx.arg("body"), "user": self.login,
                   "at": self.state.clock.tick()}  # fmt: skip
        pull.comments.append(comment)
        return _json(self._comment_json(ctx, pull.number, comment), 201)

    # -- handlers: search --------------------------------------------------------------------
    async def _search_code(self, ctx: Ctx) -> web.Response:
        """Substring search over default-branch files; qualifiers repo/org/user/path/filename/
        extension/in:path (language and others are accepted and ignored)."""
        try:
            tokens = shlex.split(ctx.query.get("q", ""))
        except ValueError:
            tokens = ctx.query.get("q", "").split()
        quals = dict(t.split(":", 1) for t in tokens if re.match(r"^[a-z]+:.", t))
        text = " ".join(t for t in tokens if not re.match(r"^[a-z]+:.", t)).lower()
        if not text and not quals:
            raise invalid("Search", "q", "missing")
        repos = [
            r
            for r in self.state.repos.values()
            if quals.get("repo", r.full_name).lower() == r.full_name.lower()
        ]
        owner = quals.get("org") or quals.get("user")
        repos = [r for r in repos if owner is None or r.owner.lower() == owner.lower()]
        items = []
        for repo in sorted(repos, key=lambda r: r.full_name):
            head = repo.branches[repo.default_branch]
            for path, (_, sha) in sorted(repo.store.files_of(head).items()):
                name = path.rsplit("/", 1)[-1]
                haystack = path if quals.get("in") == "path" else repo.store.text(sha)
                if (
                    text in haystack.lower()
                    and quals.get("filename", name) == name
                    and ("extension" not in quals or name.endswith(f".{quals['extension']}"))
                    and path.startswith(quals.get("path", "").strip("/"))
                ):
                    items.append({
                        "name": name, "path": path, "sha": sha,
                        "url": f"{ctx.api}/repositories/{repo.id}/contents/{quote(path)}?ref={head}",
                        "git_url": f"{ctx.api}/repositories/{repo.id}/git/blobs/{sha}",
                        "html_url": f"{ctx.web_url(repo)}/blob/{head}/{quote(path)}",
                        "repository": self._repo_json(ctx, repo), "score": 1.0,
                    })  # fmt: skip
        return self._page(ctx, items, "items", incomplete_results=False)
