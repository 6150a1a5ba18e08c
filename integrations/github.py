"""GitHub through PyGithub: read repositories and pull requests, write branches and PRs, merge.

PyGithub is synchronous, so every call runs in a worker thread. `GITHUB_API_URL` points it
at GitHub Enterprise (or a test fake). Merging is only ever reached through an approved
request (see `MergeExecutor`), and always sends the approved head SHA, so GitHub itself
refuses if the head moved.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bot.core.approvals import ApprovalRequest, Report, VersionChanged
from bot.core.errors import ConfigError, SophiaError

log = logging.getLogger("sophia.github")
T = TypeVar("T")

MERGE_METHODS = ("squash", "merge", "rebase")


class GitHubError(SophiaError):
    """A GitHub call failed; the message says what, in plain words."""


@dataclass(frozen=True)
class Check:
    """One status context or check run on a commit."""

    name: str
    state: str  # success | pending | failure


@dataclass(frozen=True)
class CIResult:
    """One status context or check run on a commit, with what it says (for alerts, image tags)."""

    name: str
    state: str  # success | pending | failure | neutral (cancelled, action required: no alert)
    detail: str  # a status's description, or a check run's output title, summary and text
    url: str | None = None


# Check run conclusions that mean "broken"; cancelled / action_required / stale are not failures.
_FAILED = {"failure", "timed_out", "startup_failure"}
_PASSED = {"success", "neutral", "skipped"}


@dataclass
class PullFacts:
    """What a reviewer needs to decide on a merge."""

    repo: str
    number: int
    title: str
    author: str
    head_sha: str
    head_ref: str
    base_ref: str
    additions: int
    deletions: int
    changed_files: int
    mergeable: bool | None
    merged: bool
    state: str
    html_url: str
    checks: list[Check] = field(default_factory=list)
    required: list[str] | None = None  # required contexts from branch protection, when readable

    def blocking_checks(self) -> list[Check]:
        """Checks that forbid merging now: required ones not green (or, unknown rules, any not green)."""
        if self.required is not None:
            by_name = {c.name: c for c in self.checks}
            return [by_name.get(name, Check(name, "pending")) for name in self.required
                    if by_name.get(name, Check(name, "pending")).state != "success"]  # fmt: skip
        return [c for c in self.checks if c.state != "success"]


@dataclass(frozen=True)
class CommitResult:
    """A commit made on a new branch cut from the default branch."""

    branch: str
    sha: str
    base: str  # the default branch it was cut from


def parse_pr_ref(text: str) -> tuple[str, int]:
    """`owner/repo#12` (or a PR URL) → ("owner/repo", 12)."""
    text = text.strip().rstrip("/")
    if "/pull/" in text:
        path = text.split("://", 1)[-1].split("/", 1)[1]
        owner, repo, _, number = path.split("/")[:4]
        return f"{owner}/{repo}", int(number)
    repo, sep, number = text.partition("#")
    if not sep or repo.count("/") != 1 or not number.isdigit():
        raise ValueError("Write the pull request as owner/repo#number, e.g. acme/site#42.")
    return repo, int(number)


class GitHub:
    """Async facade over PyGithub for the calls Sophia makes."""

    def __init__(self, *, token: str | None, base_url: str) -> None:
        self._token = token
        self._base_url = base_url.rstrip("/")
        self._client: Any = None

    @property
    def configured(self) -> bool:
        """Whether GITHUB_TOKEN is set."""
        return bool(self._token)

    def _gh(self) -> Any:
        if not self._token:
            raise ConfigError(
                "GitHub is not configured: set GITHUB_TOKEN.", variable="GITHUB_TOKEN"
            )
        if self._client is None:
            from github import Auth, Github

            # No client-side pacing: Sophia's GitHub traffic is small and human-approved, and
            # PyGithub's default 0.25 s/1 s pauses would add seconds to every merge.
            self._client = Github(
                base_url=self._base_url, auth=Auth.Token(self._token), retry=None, timeout=20,
                seconds_between_requests=None, seconds_between_writes=None,
            )  # fmt: skip
        return self._client

    async def _call(self, what: str, fn: Callable[[], T], *, merging: bool = False) -> T:
        """Run a PyGithub call in a thread; turn its exceptions into plain sentences."""
        from github import BadCredentialsException, GithubException, UnknownObjectException

        try:
            return await asyncio.to_thread(fn)
        except BadCredentialsException:
            raise GitHubError("GitHub rejected the token; check GITHUB_TOKEN.") from None
        except UnknownObjectException:
            raise GitHubError(f"{what}: not found, or the token has no access to it.") from None
        except GithubException as exc:
            message = (exc.data or {}).get("message") if isinstance(exc.data, dict) else None
            if exc.status == 409 and merging:
                raise VersionChanged(
                    f"{what}: GitHub says the head changed ({message}); the approval is void."
                ) from None
            if exc.status in (403, 405, 422):
                raise GitHubError(f"{what}: GitHub refused — {message or exc.status}.") from None
            raise GitHubError(f"{what}: GitHub answered {exc.status} ({message}).") from None

    # -- reading -------------------------------------------------------------------------

    async def pull_facts(self, repo_name: str, number: int) -> PullFacts:
        """A PR's details, diff stats, checks, and required contexts where visible."""

        def load() -> PullFacts:
            from github import GithubException

            repo = self._gh().get_repo(repo_name)
            pr = repo.get_pull(number)
            facts = PullFacts(
                repo=repo_name, number=number, title=pr.title, author=pr.user.login,
                head_sha=pr.head.sha, head_ref=pr.head.ref, base_ref=pr.base.ref,
                additions=pr.additions, deletions=pr.deletions, changed_files=pr.changed_files,
                mergeable=pr.mergeable, merged=pr.merged, state=pr.state, html_url=pr.html_url,
            )  # fmt: skip
            commit = repo.get_commit(pr.head.sha)
            for status in commit.get_combined_status().statuses:
                state = (
                    "success"
                    if status.state == "success"
                    else "pending"
                    if status.state == "pending"
                    else "failure"
                )
                facts.checks.append(Check(status.context, state))
            for run in commit.get_check_runs():
                if run.status != "completed":
                    facts.checks.append(Check(run.name, "pending"))
                elif run.conclusion in ("success", "neutral", "skipped"):
                    facts.checks.append(Check(run.name, "success"))
                else:
                    facts.checks.append(Check(run.name, "failure"))
            try:
                facts.required = list(
                    repo.get_branch(pr.base.ref).get_required_status_checks().contexts
                )
            except GithubException:
                facts.required = None  # not protected, or not visible to this token
            return facts

        return await self._call(f"{repo_name}#{number}", load)

    async def read_file(self, repo_name: str, path: str, ref: str | None = None) -> str:
        """A text file's contents."""

        def load() -> str:
            repo = self._gh().get_repo(repo_name)
            content = repo.get_contents(path, ref=ref or repo.default_branch)
            if isinstance(content, list):
                return "\n".join(sorted(c.path + ("/" if c.type == "dir" else "") for c in content))
            return base64.b64decode(content.content).decode("utf-8", errors="replace")

        return await self._call(f"{repo_name}:{path}", load)

    async def search_code(
        self, repo_name: str, query: str, limit: int = 10
    ) -> list[dict[str, str]]:
        """Code search within one repository: path and link of each hit."""

        def load() -> list[dict[str, str]]:
            hits = self._gh().search_code(f"{query} repo:{repo_name}")
            return [{"path": h.path, "url": h.html_url} for h in hits[:limit]]

        return await self._call(f"search in {repo_name}", load)

    async def repo_info(self, repo_name: str) -> dict[str, Any]:
        """Name, description, default branch, visibility and link."""

        def load() -> dict[str, Any]:
            repo = self._gh().get_repo(repo_name)
            return {
                "full_name": repo.full_name, "description": repo.description,
                "default_branch": repo.default_branch, "private": repo.private,
                "html_url": repo.html_url,
            }  # fmt: skip

        return await self._call(repo_name, load)

    async def branch_head(self, repo_name: str, branch: str | None = None) -> tuple[str, str]:
        """(branch, head commit sha) of `branch`, the default branch when omitted."""

        def load() -> tuple[str, str]:
            repo = self._gh().get_repo(repo_name)
            name = branch or repo.default_branch
            return name, repo.get_git_ref(f"heads/{name}").object.sha

        return await self._call(f"{repo_name}:{branch or 'default branch'}", load)

    async def list_blobs(
        self, repo_name: str, ref: str | None = None
    ) -> list[tuple[str, str, int]]:
        """Every file on `ref` as (path, blob sha, size): the sha tells what changed since last time."""

        def load() -> list[tuple[str, str, int]]:
            repo = self._gh().get_repo(repo_name)
            tree = repo.get_git_tree(ref or repo.default_branch, recursive=True)
            return [(e.path, e.sha, e.size or 0) for e in tree.tree if e.type == "blob"]

        return await self._call(f"{repo_name} files", load)

    async def list_files(self, repo_name: str, ref: str | None = None) -> list[tuple[str, int]]:
        """Every file (path, size in bytes) on `ref`, the default branch when omitted."""

        def load() -> list[tuple[str, int]]:
            repo = self._gh().get_repo(repo_name)
            tree = repo.get_git_tree(ref or repo.default_branch, recursive=True)
            if tree.truncated:
                log.info("tree listing truncated by GitHub", extra={"repo": repo_name})
            return [(e.path, e.size or 0) for e in tree.tree if e.type == "blob"]

        return await self._call(f"{repo_name} files", load)

    async def commit_ci(self, repo_name: str, ref: str) -> tuple[str, list[CIResult]]:
        """(sha, every status context and latest check run) of a commit, branch or tag."""

        def load() -> tuple[str, list[CIResult]]:
            commit = self._gh().get_repo(repo_name).get_commit(ref)
            results = []
            for status in commit.get_combined_status().statuses:
                state = {"error": "failure"}.get(status.state, status.state)
                results.append(
                    CIResult(status.context, state, status.description or "", status.target_url)
                )
            for run in commit.get_check_runs():
                if run.status != "completed":
                    state = "pending"
                elif run.conclusion in _PASSED:
                    state = "success"
                elif run.conclusion in _FAILED:
                    state = "failure"
                else:
                    state = "neutral"
                out = run.output
                parts = (out.title, out.summary, out.text) if out else ()
                detail = "\n".join(part for part in parts if part)
                results.append(CIResult(run.name, state, detail, run.html_url or run.details_url))
            return commit.sha, results

        return await self._call(f"{repo_name}@{ref[:12]}", load)

    async def default_branch_ci(self, repo_name: str) -> tuple[str, str, list[CIResult]]:
        """(default branch, its head sha, its CI results): what the health monitor watches."""
        branch, sha = await self.branch_head(repo_name)
        _, results = await self.commit_ci(repo_name, sha)
        return branch, sha, results

    async def merge_commit(self, repo_name: str, number: int) -> str | None:
        """The commit a merged PR became on its base branch (None while unmerged)."""

        def load() -> str | None:
            pr = self._gh().get_repo(repo_name).get_pull(number)
            return pr.merge_commit_sha if pr.merged else None

        return await self._call(f"{repo_name}#{number}", load)

    # -- writing (new branches only; the default branch is never touched) ------------------

    async def commit_change(
        self, repo_name: str, *, branch: str, message: str, files: dict[str, str | None],
        parent: str | None = None,
    ) -> CommitResult:  # fmt: skip
        """Commit `files` (None deletes) as one commit on a new `branch` from the default branch.

        Git Data API, in this order: one blob per written file, one tree on the parent's
        tree, one commit, then the ref. `parent` (a commit sha the files were read at)
        defaults to the default branch's head.
        """
        if not files:
            raise GitHubError("There is nothing to commit.")

        def run() -> CommitResult:
            from github import GithubException, InputGitTreeElement

            repo = self._gh().get_repo(repo_name)
            base = repo.default_branch
            head = repo.get_git_commit(parent or repo.get_git_ref(f"heads/{base}").object.sha)
            listing = repo.get_git_tree(head.tree.sha, recursive=True)
            modes = {e.path: e.mode for e in listing.tree if e.type == "blob"}
            missing = [p for p, text in files.items() if text is None and p not in modes]
            if missing and not listing.truncated:
                raise GitHubError(f"Cannot delete `{missing[0]}`: it is not in {repo_name}.")
            elements = []
            for path, text in files.items():
                if text is None:
                    elements.append(InputGitTreeElement(path, "100644", "blob", sha=None))
                    continue
                blob = repo.create_git_blob(text, "utf-8")
                mode = modes.get(path, "100644")
                elements.append(InputGitTreeElement(path, mode, "blob", sha=blob.sha))
            tree = repo.create_git_tree(elements, base_tree=head.tree)
            commit = repo.create_git_commit(message, tree, [head])
            try:
                repo.create_git_ref(f"refs/heads/{branch}", commit.sha)
            except GithubException as exc:
                if exc.status == 422 and "already exists" in str(exc.data).lower():
                    raise GitHubError(
                        f"The branch `{branch}` already exists in {repo_name}."
                    ) from None
                raise
            return CommitResult(branch=branch, sha=commit.sha, base=base)

        return await self._call(f"{repo_name}:{branch}", run)

    async def open_pull(
        self, repo_name: str, *, branch: str, title: str, body: str
    ) -> tuple[int, str]:
        """Open a pull request from `branch` into the default branch; (number, link)."""

        def run() -> tuple[int, str]:
            repo = self._gh().get_repo(repo_name)
            pr = repo.create_pull(base=repo.default_branch, head=branch, title=title, body=body)
            return pr.number, pr.html_url

        return await self._call(f"{repo_name}: pull request from {branch}", run)

    # -- merging ---------------------------------------------------------------------------

    async def merge(self, repo_name: str, number: int, *, sha: str, method: str, title: str) -> str:
        """Merge with the approved head `sha`, using `method` if the repo allows it; returns a link."""

        def run() -> str:
            repo = self._gh().get_repo(repo_name)
            allowed = [
                m
                for m in MERGE_METHODS
                if getattr(repo, f"allow_{'merge_commit' if m == 'merge' else m + '_merge'}", True)
            ]
            chosen = method if method in allowed else (allowed[0] if allowed else method)
            pr = repo.get_pull(number)
            status = pr.merge(commit_title=title, merge_method=chosen, sha=sha)
            if not status.merged:
                raise GitHubError(f"GitHub did not merge: {status.message}")
            return f"Merged <{pr.html_url}|{repo_name}#{number}> ({chosen}) as `{status.sha[:7]}`."

        return await self._call(f"{repo_name}#{number}", run, merging=True)


def _allows(repo: Any, method: str) -> bool:
    """Whether the repository allows a merge method (unknown counts as allowed)."""
    name = "allow_merge_commit" if method == "merge" else f"allow_{method}_merge"
    return getattr(repo, name, None) is not False


class MergeExecutor:
    """Carries out approved `github.merge` requests."""

    def __init__(self, github: GitHub, *, method: str) -> None:
        self._github = github
        self._method = method

    async def current_version(self, request: ApprovalRequest) -> str:
        facts = await self._github.pull_facts(request.params["repo"], request.params["number"])
        return facts.head_sha

    async def already_done(self, request: ApprovalRequest) -> str | None:
        facts = await self._github.pull_facts(request.params["repo"], request.params["number"])
        if facts.merged:
            return f"<{facts.html_url}|{request.target}> was already merged; nothing more to do."
        return None

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        params = request.params
        return await self._github.merge(
            params["repo"], params["number"], sha=request.bound_version, method=self._method,
            title=f"{params.get('title', request.target)} (#{params['number']})",
        )  # fmt: skip
