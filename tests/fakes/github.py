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
(else 401 "Requires authentication" / "Bad credentials"). GET answers carry ``ETag`` (304 on a
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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from aiohttp import web
from multidict import CIMultiDict

from tests.fakes.github_state import (
    ApiError,
    GitHubState,
    Pull,
    Repo,
    Wire,
    invalid,
    not_found,
)
from tests.fakes.loopback import LoopbackServer

__all__ = ["ApiError", "FakeGitHub", "Req"]

DOCS = "https://docs.github.com/rest"
REPO = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
PULL = rf"{REPO}/pulls/(?P<number>\d+)"
COMMIT = rf"{REPO}/commits/(?P<ref>.+)"


@dataclass
class Req:
    """One request as the fake received it (path without any ``/api/v3`` prefix, unquoted)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    headers: CIMultiDict
    url: str  # as received, with any prefix and query
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
    """What a handler gets: the wire-shape builder, query, JSON body and the repo of the path."""

    wire: Wire
    path: str  # raw path without prefix (for Link headers)
    query: dict[str, str]
    body: Any
    repo: Repo = None  # type: ignore[assignment]

    def arg(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default) if isinstance(self.body, dict) else default

    @property
    def args(self) -> dict[str, Any]:
        return self.body if isinstance(self.body, dict) else {}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class FakeGitHub(LoopbackServer):
    client_max_size = 64 * 1024**2  # git blobs up to GitHub's own limit
    token = "ghp_testtoken0123456789abcdef0123456789"

    def __init__(self, *, login: str = "sophia-bot", token: str | None = None) -> None:
        super().__init__()
        self.token = token or self.token
        self.login = login  # the token's user: author of API commits, pulls, merges, statuses
        self.state = GitHubState(login)
        self.requests: list[Req] = []
        self.rate_limit = 5000
        self._used = 0
        self._reset = int(time.time()) + 3600
        self._failures: list[_Failure] = []
        self._routes = [(m, re.compile(p), h) for m, p, h in self._route_table()]

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
        """A repository whose default branch has one commit with ``files`` (default a README).

        ``permissions`` (admin/maintain/push/triage/pull) default to all true; without push,
        writes answer 403."""
        name = full_name.split("/", 1)[1]
        return self.state.add_repo(
            full_name,
            default_branch,
            {"README.md": f"# {name}\n"} if files is None else files,
            private=private,
            allow_squash_merge=allow_squash_merge,
            allow_merge_commit=allow_merge_commit,
            allow_rebase_merge=allow_rebase_merge,
            delete_branch_on_merge=delete_branch_on_merge,
            permissions=permissions,
        )

    def push_commit(
        self,
        full_name: str,
        branch: str,
        files: dict[str, str | None],
        message: str = "Update files",
        author: str | None = None,
    ) -> str:
        """Commit ``files`` (None deletes) on ``branch``, cut from the default branch if new;
        moves the head of open pull requests from that branch. Returns the commit sha."""
        repo = self.repo(full_name)
        parent = repo.branches.get(branch) or repo.branches[repo.default_branch]
        sha = self.state.commit_files(repo, parent, files, message, author or repo.owner)
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
        """An open pull request, returned as ``GET pulls/{n}`` would show it.

        ``files`` are committed on ``head_branch`` (cut from ``base`` if new; default one file
        ``{head_branch}.md``). ``mergeable=False`` makes it conflict; None is GitHub's "not
        computed yet" (null). ``additions``/``deletions`` override the computed statistics."""
        repo = self.repo(full_name)
        if files is not None or head_branch not in repo.branches:
            parent = repo.branches.get(head_branch) or repo.branches[base]
            files = {f"{head_branch}.md": f"{title}\n"} if files is None else files
            sha = self.state.commit_files(repo, parent, files, title, author)
            repo.set_branch(head_branch, sha)
        pull = self.state.open_pull(
            repo,
            title=title,
            head=head_branch,
            base=base,
            body=body,
            user=author,
            draft=draft,
            number=number,
        )
        pull.mergeable, pull.additions, pull.deletions = mergeable, additions, deletions
        return Wire(self.state, self.base_url, self.base_url).pull(repo, pull)

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
        args = {"state": state, "context": context, "description": description}
        self.state.add_status(repo, repo.commit(sha).sha, args | {"target_url": target_url})

    def add_check_run(
        self,
        full_name: str,
        sha: str,
        *,
        name: str,
        status: str = "completed",
        conclusion: str | None = "success",
        title: str | None = None,
        summary: str | None = None,
    ) -> None:
        """A check run (status queued / in_progress / completed) on a sha or branch; ``title`` and
        ``summary`` are its ``output`` (what CI reports, e.g. a failure or an image tag)."""
        repo = self.repo(full_name)
        sha = repo.commit(sha).sha
        self.state.add_check_run(repo, sha, name, status, conclusion)
        run = repo.check_runs[sha][0]
        run.title, run.summary = title, summary

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

        GitHub's rate limits are 403 (or 429) with "API rate limit exceeded for ..." or "You have
        exceeded a secondary rate limit ..." plus ``Retry-After`` / ``X-RateLimit-Reset``."""
        failure = _Failure(
            method.upper(), re.compile(path_regex), status, message, times, headers or {}
        )
        self._failures.append(failure)

    def calls(self, method: str, path_regex: str) -> list[Req]:
        """Recorded requests with this method ("*": any) whose path matches (``re.search``)."""
        return [
            r
            for r in self.requests
            if method == "*" or method.upper() == r.method
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
            bad_json = False
        except ValueError:
            body, bad_json = text, True
        query = dict(request.query)
        headers = CIMultiDict(request.headers)
        req = Req(request.method, unquote(raw), query, body, headers, str(request.url))
        self.requests.append(req)
        wire = Wire(self.state, f"http://{request.host}{prefix}", self.base_url)
        try:
            if bad_json:
                raise ApiError(400, "Problems parsing JSON")
            response = self._injected(req) or self._check_auth(request)
            response = response or await self._route(request.method, Ctx(wire, raw, query, body))
        except ApiError as err:
            response = self._error(err.status, err.message, err.errors)
        except Exception as exc:  # a bug in the fake: answer 500, and stop() raises it again
            self.errors.append(exc)
            response = self._error(500, f"FakeGitHub raised {exc!r}")
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
        if request.method == "GET" and response.status == 200:
            etag = f'W/"{hashlib.sha1(response.body).hexdigest()}"'  # type: ignore[arg-type]
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

    async def _route(self, method: str, ctx: Ctx) -> web.Response:
        for route_method, pattern, handler in self._routes:
            match = pattern.fullmatch(ctx.path)
            if match is None or route_method != method:
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
        return _json(body | {"documentation_url": DOCS, "status": str(status)}, status)

    @staticmethod
    def _page(ctx: Ctx, items: list, key: str | None = None, **extra: Any) -> web.Response:
        """One page of ``items`` (``per_page`` ≤ 100, default 30) with GitHub's Link header."""
        per_page = min(max(_int(ctx.query.get("per_page"), 30), 1), 100)
        page = max(_int(ctx.query.get("page"), 1), 1)
        last = max(math.ceil(len(items) / per_page), 1)

        def link(number: int, rel: str) -> str:
            query = urlencode({**ctx.query, "page": number})
            return f'<{ctx.wire.api}{ctx.path}?{query}>; rel="{rel}"'

        links = [link(page - 1, "prev")] if page > 1 else []
        links += [link(page + 1, "next"), link(last, "last")] if page < last else []
        links += [link(1, "first")] if page > 1 else []
        chunk = items[(page - 1) * per_page : page * per_page]
        body = chunk if key is None else {"total_count": len(items), **extra, key: chunk}
        return _json(body, headers={"Link": ", ".join(links)} if links else None)

    def _route_table(self) -> list[tuple[str, str, Callable[..., Awaitable[web.Response]]]]:
        protection = rf"{REPO}/branches/(?P<branch>.+)/protection"
        return [
            ("GET", r"/user", self._get_me),
            ("GET", r"/users/(?P<login>[^/]+)", self._get_user),
            ("GET", r"/search/code", self._search_code),
            ("GET", REPO, self._get_repo),
            ("GET", rf"{REPO}/branches", self._list_branches),
            ("GET", rf"{protection}/required_status_checks", self._get_required_checks),
            ("GET", protection, self._get_protection),
            ("GET", rf"{REPO}/branches/(?P<branch>.+)", self._get_branch),
            ("GET", rf"{REPO}/git/ref/(?P<ref>.+)", self._get_ref),
            ("GET", rf"{REPO}/git/refs(?:/(?P<ref>.+))?", self._list_refs),
            ("GET", rf"{REPO}/git/(?P<matching>matching-refs)/(?P<ref>.*)", self._list_refs),
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
            ("GET", rf"{COMMIT}/status", self._combined_status),
            ("GET", rf"{COMMIT}/statuses", self._list_statuses),
            ("GET", rf"{COMMIT}/check-runs", self._list_check_runs),
            ("GET", COMMIT, self._get_commit),
            ("POST", rf"{REPO}/statuses/(?P<sha>[^/]+)", self._create_status),
            ("GET", rf"{REPO}/check-runs/(?P<run_id>\d+)", self._get_check_run),
            ("GET", rf"{REPO}/pulls", self._list_pulls),
            ("POST", rf"{REPO}/pulls", self._create_pull),
            ("GET", PULL, self._get_pull),
            ("PATCH", PULL, self._edit_pull),
            ("GET", rf"{PULL}/files", self._pull_files),
            ("GET", rf"{PULL}/commits", self._pull_commits),
            ("GET", rf"{PULL}/merge", self._is_merged),
            ("PUT", rf"{PULL}/merge", self._merge),
            ("GET", rf"{REPO}/issues/(?P<number>\d+)/comments", self._list_comments),
            ("POST", rf"{REPO}/issues/(?P<number>\d+)/comments", self._create_comment),
        ]

    # -- users, repositories, branches -----------------------------------------------------
    async def _get_me(self, ctx: Ctx) -> web.Response:
        owned = sum(r.owner == self.login for r in self.state.repos.values())
        extra = {"name": self.login, "email": None, "public_repos": owned}
        return _json(ctx.wire.user(self.login) | extra)

    async def _get_user(self, ctx: Ctx, login: str) -> web.Response:
        return _json(ctx.wire.user(login) | {"name": login})

    async def _get_repo(self, ctx: Ctx) -> web.Response:
        return _json(ctx.wire.repo(ctx.repo))

    async def _list_branches(self, ctx: Ctx) -> web.Response:
        repo, api = ctx.repo, ctx.wire.repo_url(ctx.repo)
        items = [
            {
                "name": name,
                "commit": {"sha": sha, "url": f"{api}/commits/{sha}"},
                "protected": name in repo.required_checks,
            }
            for name, sha in sorted(repo.branches.items())
        ]
        return self._page(ctx, items)

    async def _get_branch(self, ctx: Ctx, branch: str) -> web.Response:
        if branch not in ctx.repo.branches:
            raise not_found("Branch not found")
        return _json(ctx.wire.branch(ctx.repo, branch))

    async def _get_protection(self, ctx: Ctx, branch: str) -> web.Response:
        if branch not in ctx.repo.required_checks:
            raise not_found("Branch not protected")
        url = f"{ctx.wire.repo_url(ctx.repo)}/branches/{branch}/protection"
        data: dict = {"url": url, "enforce_admins": {"url": f"{url}/enforce_admins"}}
        data["enforce_admins"]["enabled"] = False
        if ctx.repo.required_checks[branch]:
            data["required_status_checks"] = ctx.wire.required_checks(ctx.repo, branch)
        return _json(data)

    async def _get_required_checks(self, ctx: Ctx, branch: str) -> web.Response:
        if branch not in ctx.repo.required_checks:
            raise not_found("Branch not protected")
        if not ctx.repo.required_checks[branch]:
            raise not_found("Required status checks not enabled")
        return _json(ctx.wire.required_checks(ctx.repo, branch))

    # -- git references and objects ----------------------------------------------------------
    async def _get_ref(self, ctx: Ctx, ref: str) -> web.Response:
        if not ref.startswith("heads/") or ref[6:] not in ctx.repo.branches:
            raise not_found()
        return _json(ctx.wire.ref(ctx.repo, ref[6:]))

    async def _list_refs(self, ctx: Ctx, ref: str = "", matching: str = "") -> web.Response:
        """``git/refs[/prefix]`` and ``git/matching-refs/prefix`` (only branches exist here).
        ``git/refs/heads/x`` is the old form of ``git/ref/heads/x``: one object when exact."""
        if not matching and ref.startswith("heads/") and ref[6:] in ctx.repo.branches:
            return _json(ctx.wire.ref(ctx.repo, ref[6:]))
        names = [b for b in sorted(ctx.repo.branches) if f"heads/{b}".startswith(ref)]
        if ref and not names and not matching:
            raise not_found()
        return self._page(ctx, [ctx.wire.ref(ctx.repo, b) for b in names])

    async def _create_ref(self, ctx: Ctx) -> web.Response:
        return _json(ctx.wire.ref(ctx.repo, self.state.create_ref(ctx.repo, ctx.args)), 201)

    async def _update_ref(self, ctx: Ctx, ref: str) -> web.Response:
        return _json(ctx.wire.ref(ctx.repo, self.state.update_ref(ctx.repo, ref, ctx.args)))

    async def _delete_ref(self, ctx: Ctx, ref: str) -> web.Response:
        self.state.delete_ref(ctx.repo, ref)
        return web.Response(status=204)

    async def _create_blob(self, ctx: Ctx) -> web.Response:
        sha = self.state.create_blob(ctx.repo, ctx.args)
        return _json({"sha": sha, "url": f"{ctx.wire.repo_url(ctx.repo)}/git/blobs/{sha}"}, 201)

    async def _get_blob(self, ctx: Ctx, sha: str) -> web.Response:
        if sha not in ctx.repo.store.blobs:
            raise not_found()
        return _json(ctx.wire.blob(ctx.repo, sha))

    async def _create_tree(self, ctx: Ctx) -> web.Response:
        sha = self.state.create_tree(ctx.repo, ctx.arg("tree"), ctx.arg("base_tree"))
        return _json(ctx.wire.tree(ctx.repo, sha), 201)

    async def _get_tree(self, ctx: Ctx, sha: str) -> web.Response:
        """A tree by sha, or the tree of a commit sha / branch name (GitHub accepts both)."""
        if sha not in ctx.repo.store.trees:
            commit = ctx.repo.resolve(sha)
            if commit is None:
                raise not_found()
            sha = ctx.repo.store.commits[commit].tree
        recursive = ctx.query.get("recursive", "") not in ("", "0", "false")
        return _json(ctx.wire.tree(ctx.repo, sha, recursive))

    async def _create_commit(self, ctx: Ctx) -> web.Response:
        sha = self.state.create_commit(ctx.repo, ctx.args)
        return _json(ctx.wire.git_commit(ctx.repo, ctx.repo.store.commits[sha]), 201)

    async def _get_git_commit(self, ctx: Ctx, sha: str) -> web.Response:
        if sha not in ctx.repo.store.commits:
            raise not_found()
        return _json(ctx.wire.git_commit(ctx.repo, ctx.repo.store.commits[sha]))

    # -- contents ----------------------------------------------------------------------------
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
            return _json(ctx.wire.content(repo, path, entry, ref, with_content=True))
        children = repo.store.trees[entry.sha]
        return _json(
            [ctx.wire.content(repo, f"{path}/{e.name}".lstrip("/"), e, ref) for e in children]
        )

    async def _put_contents(self, ctx: Ctx, path: str) -> web.Response:
        try:
            content = base64.b64decode(ctx.arg("content") or "", validate=True)
        except (binascii.Error, TypeError) as exc:
            raise invalid("Content", "content", "invalid") from exc
        sha, old = self.state.change_file(ctx.repo, path, ctx.args, content)
        store = ctx.repo.store
        entry = store.lookup(store.commits[sha].tree, path)
        body = {
            "content": ctx.wire.content(ctx.repo, path, entry, ctx.arg("branch") or sha),  # type: ignore[arg-type]
            "commit": ctx.wire.git_commit(ctx.repo, store.commits[sha]),
        }
        return _json(body, 200 if old else 201)

    async def _delete_contents(self, ctx: Ctx, path: str) -> web.Response:
        sha, _ = self.state.change_file(ctx.repo, path, ctx.args, None)
        commit = ctx.wire.git_commit(ctx.repo, ctx.repo.store.commits[sha])
        return _json({"content": None, "commit": commit})

    # -- commits, statuses, checks -----------------------------------------------------------
    def _sha(self, ctx: Ctx, ref: str) -> str:
        sha = ctx.repo.resolve(ref)
        if sha is None:
            raise not_found(f"No commit found for SHA: {ref}")
        return sha

    async def _get_commit(self, ctx: Ctx, ref: str) -> web.Response:
        return _json(ctx.wire.commit(ctx.repo, ctx.repo.commit(ref), files=True))

    async def _combined_status(self, ctx: Ctx, ref: str) -> web.Response:
        return _json(ctx.wire.combined_status(ctx.repo, self._sha(ctx, ref)))

    async def _list_statuses(self, ctx: Ctx, ref: str) -> web.Response:
        sha = self._sha(ctx, ref)
        statuses = ctx.repo.statuses.get(sha, [])
        return self._page(ctx, [ctx.wire.status(ctx.repo, sha, s) for s in statuses])

    async def _create_status(self, ctx: Ctx, sha: str) -> web.Response:
        if sha not in ctx.repo.store.commits:
            raise ApiError(422, f"No commit found for SHA: {sha}")
        status = self.state.add_status(ctx.repo, sha, ctx.args)
        return _json(ctx.wire.status(ctx.repo, sha, status), 201)

    async def _list_check_runs(self, ctx: Ctx, ref: str) -> web.Response:
        """Newest first; ``filter=latest`` (the default) keeps the newest run per name."""
        runs, q = ctx.repo.check_runs.get(self._sha(ctx, ref), []), ctx.query
        if q.get("filter", "latest") == "latest":
            runs = [r for i, r in enumerate(runs) if r.name not in {o.name for o in runs[:i]}]
        runs = [r for r in runs if q.get("check_name", r.name) == r.name]
        runs = [r for r in runs if q.get("status", r.status) == r.status]
        return self._page(ctx, [ctx.wire.check_run(ctx.repo, r) for r in runs], "check_runs")

    async def _get_check_run(self, ctx: Ctx, run_id: str) -> web.Response:
        runs = [r for rs in ctx.repo.check_runs.values() for r in rs if r.id == int(run_id)]
        if not runs:
            raise not_found()
        return _json(ctx.wire.check_run(ctx.repo, runs[0]))

    # -- pull requests -----------------------------------------------------------------------
    def _pull(self, ctx: Ctx, number: str) -> Pull:
        pull = ctx.repo.pulls.get(int(number))
        if pull is None:
            raise not_found()
        return pull

    async def _list_pulls(self, ctx: Ctx) -> web.Response:
        pulls = ctx.repo.list_pulls(ctx.query)
        return self._page(ctx, [ctx.wire.pull(ctx.repo, p, full=False) for p in pulls])

    async def _create_pull(self, ctx: Ctx) -> web.Response:
        pull = self.state.open_pull(
            ctx.repo,
            title=ctx.arg("title"),
            head=str(ctx.arg("head") or ""),
            base=ctx.arg("base"),
            body=ctx.arg("body"),
            user=self.login,
            draft=bool(ctx.arg("draft")),
        )
        return _json(ctx.wire.pull(ctx.repo, pull), 201)

    async def _get_pull(self, ctx: Ctx, number: str) -> web.Response:
        return _json(ctx.wire.pull(ctx.repo, self._pull(ctx, number)))

    async def _edit_pull(self, ctx: Ctx, number: str) -> web.Response:
        pull = self._pull(ctx, number)
        self.state.edit_pull(ctx.repo, pull, ctx.args)
        return _json(ctx.wire.pull(ctx.repo, pull))

    async def _pull_files(self, ctx: Ctx, number: str) -> web.Response:
        pull = self._pull(ctx, number)
        files = ctx.repo.pull_files(pull)
        return self._page(ctx, [ctx.wire.file(ctx.repo, pull.head_sha, f) for f in files])

    async def _pull_commits(self, ctx: Ctx, number: str) -> web.Response:
        repo, pull = ctx.repo, self._pull(ctx, number)
        commits = [ctx.wire.commit(repo, repo.store.commits[c]) for c in repo.pull_commits(pull)]
        return self._page(ctx, commits)

    async def _is_merged(self, ctx: Ctx, number: str) -> web.Response:
        if not self._pull(ctx, number).merged:
            raise not_found()
        return web.Response(status=204)

    async def _merge(self, ctx: Ctx, number: str) -> web.Response:
        sha = self.state.merge_pull(ctx.repo, self._pull(ctx, number), ctx.args)
        return _json({"sha": sha, "merged": True, "message": "Pull Request successfully merged"})

    async def _list_comments(self, ctx: Ctx, number: str) -> web.Response:
        pull = self._pull(ctx, number)
        comments = [ctx.wire.comment(ctx.repo, pull.number, c) for c in pull.comments]
        return self._page(ctx, comments)

    async def _create_comment(self, ctx: Ctx, number: str) -> web.Response:
        pull = self._pull(ctx, number)
        if not isinstance(ctx.arg("body"), str):
            raise invalid("IssueComment", "body", "missing_field")
        comment = {"id": self.state.next_id(), "body": ctx.arg("body"), "user": self.login}
        pull.comments.append(comment | {"at": self.state.clock.tick()})
        return _json(ctx.wire.comment(ctx.repo, pull.number, pull.comments[-1]), 201)

    # -- search ------------------------------------------------------------------------------
    async def _search_code(self, ctx: Ctx) -> web.Response:
        hits = self.state.search_code(ctx.query.get("q", ""))
        items = [ctx.wire.search_item(repo, path, sha) for repo, path, sha in hits]
        return self._page(ctx, items, "items", incomplete_results=False)
