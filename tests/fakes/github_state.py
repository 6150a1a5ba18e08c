"""Repository state behind the fake GitHub in ``tests/fakes/github.py``.

A small but real git object store per repository (blobs, nested trees and commits whose shas are
computed exactly as git computes them), branches, pull requests, commit statuses, check runs and
required status checks. The operations that GitHub performs server-side (three-way merge of a
pull request, merge/squash/rebase, mergeability, combined status) live here; failures raise
``ApiError`` which the server turns into GitHub's JSON error body. Everything runs on one event
loop, so nothing locks.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import hashlib
import itertools
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

Flat = dict[str, tuple[str, str]]  # path -> (mode, blob sha): a tree flattened to its files
BLOB_MODES = {"100644", "100755", "120000"}
TREE_MODE = "040000"
GOOD_CONCLUSIONS = {"success", "neutral", "skipped"}
URL_TEMPLATES = {
    "branches": "branches{/branch}",
    "pulls": "pulls{/number}",
    "contents": "contents/{+path}",
    "git_refs": "git/refs{/sha}",
    "git_commits": "git/commits{/sha}",
    "trees": "git/trees{/sha}",
    "blobs": "git/blobs{/sha}",
    "statuses": "statuses/{sha}",
    "commits": "commits{/sha}",
}


class ApiError(Exception):
    """An HTTP error answered as ``{"message": ..., "errors": [...]}``."""

    def __init__(self, status: int, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status, self.message, self.errors = status, message, errors


def not_found(message: str = "Not Found") -> ApiError:
    return ApiError(404, message)


def invalid(resource: str, field_: str, code: str = "invalid", **extra: Any) -> ApiError:
    errors = [{"resource": resource, "field": field_, "code": code, **extra}]
    return ApiError(422, "Validation Failed", errors)


def git_sha(kind: str, data: bytes) -> str:
    return hashlib.sha1(f"{kind} {len(data)}\0".encode() + data).hexdigest()


def encode(text: str | bytes) -> bytes:
    return text.encode() if isinstance(text, str) else text


class Clock:
    """Deterministic time: starts at 2024-01-01T00:00:00Z and advances a second per tick."""

    def __init__(self) -> None:
        self._now = datetime(2024, 1, 1, tzinfo=UTC)

    def tick(self) -> datetime:
        self._now += timedelta(seconds=1)
        return self._now


def iso(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


@dataclass(frozen=True)
class Entry:
    name: str
    mode: str
    type: str  # "blob" | "tree"
    sha: str


@dataclass(frozen=True)
class GitCommit:
    sha: str
    tree: str
    parents: tuple[str, ...]
    message: str
    author: dict[str, str]  # name, email, date (ISO)
    committer: dict[str, str]


class ObjectStore:
    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.trees: dict[str, tuple[Entry, ...]] = {}
        self.commits: dict[str, GitCommit] = {}
        self.empty_tree = self.put_tree([])

    def put_blob(self, data: bytes) -> str:
        sha = git_sha("blob", data)
        self.blobs[sha] = data
        return sha

    def put_tree(self, entries: list[Entry]) -> str:
        # git sorts entries by name, comparing a directory as "name/"
        ordered = sorted(entries, key=lambda e: e.name + ("/" if e.type == "tree" else ""))
        raw = b"".join(
            f"{e.mode.lstrip('0')} {e.name}".encode() + b"\0" + bytes.fromhex(e.sha)
            for e in ordered
        )
        sha = git_sha("tree", raw)
        self.trees[sha] = tuple(ordered)
        return sha

    def tree_from_flat(self, flat: Flat) -> str:
        files: list[Entry] = []
        dirs: dict[str, Flat] = {}
        for path, (mode, sha) in flat.items():
            head, _, rest = path.partition("/")
            if rest:
                dirs.setdefault(head, {})[rest] = (mode, sha)
            else:
                files.append(Entry(head, mode, "blob", sha))
        subtrees = [Entry(n, TREE_MODE, "tree", self.tree_from_flat(f)) for n, f in dirs.items()]
        return self.put_tree(files + subtrees)

    def walk(self, tree: str, prefix: str = "") -> Iterator[tuple[str, Entry]]:
        """Every (path, entry) below ``tree``, directories before their contents."""
        for entry in self.trees[tree]:
            path = f"{prefix}{entry.name}"
            yield path, entry
            if entry.type == "tree":
                yield from self.walk(entry.sha, f"{path}/")

    def flatten(self, tree: str) -> Flat:
        return {p: (e.mode, e.sha) for p, e in self.walk(tree) if e.type == "blob"}

    def lookup(self, tree: str, path: str) -> Entry | None:
        """The entry at ``path`` in ``tree`` ("" is the root tree itself)."""
        entry = Entry("", TREE_MODE, "tree", tree)
        for part in filter(None, path.split("/")):
            if entry.type != "tree":
                return None
            entry = next((e for e in self.trees[entry.sha] if e.name == part), None)  # type: ignore[assignment]
            if entry is None:
                return None
        return entry

    def put_commit(
        self, tree: str, parents: list[str], message: str, author: dict, committer: dict
    ) -> str:
        def person(p: dict) -> str:
            stamp = int(
                datetime.strptime(p["date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
            )
            return f"{p['name']} <{p['email']}> {stamp} +0000"

        lines = [f"tree {tree}", *(f"parent {p}" for p in parents)]
        lines += [f"author {person(author)}", f"committer {person(committer)}", "", message]
        sha = git_sha("commit", "\n".join(lines).encode())
        self.commits[sha] = GitCommit(sha, tree, tuple(parents), message, author, committer)
        return sha

    def ancestors(self, sha: str) -> list[str]:
        """``sha`` and all its ancestors, nearest first (breadth first)."""
        seen, queue = {sha: None}, [sha]
        for current in queue:
            for parent in self.commits[current].parents:
                if parent not in seen:
                    seen[parent] = None
                    queue.append(parent)
        return list(seen)

    def merge_base(self, a: str, b: str) -> str | None:
        ours = set(self.ancestors(a))
        return next((c for c in self.ancestors(b) if c in ours), None)

    def files_of(self, commit: str) -> Flat:
        return self.flatten(self.commits[commit].tree)

    def text(self, sha: str) -> str:
        return self.blobs[sha].decode("utf-8", errors="replace")


def merge_flat(base: Flat, ours: Flat, theirs: Flat) -> Flat | None:
    """Three-way merge at file granularity; None when both sides changed a file differently."""
    result = dict(ours)
    for path in base.keys() | theirs.keys():
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        if t == b or o == t:
            continue
        if o != b:
            return None
        if t is None:
            result.pop(path, None)
        else:
            result[path] = t
    return result


def diff_files(store: ObjectStore, old: Flat, new: Flat) -> list[dict[str, Any]]:
    """GitHub's "files" of a comparison: filename, status, additions, deletions, changes, patch."""
    files = []
    for path in sorted(old.keys() | new.keys()):
        before, after = old.get(path), new.get(path)
        if before == after:
            continue
        a = store.text(before[1]).splitlines() if before else []
        b = store.text(after[1]).splitlines() if after else []
        lines = list(difflib.unified_diff(a, b, lineterm="", n=3))[2:]
        added = sum(1 for line in lines if line.startswith("+"))
        removed = sum(1 for line in lines if line.startswith("-"))
        status = "added" if before is None else "removed" if after is None else "modified"
        files.append(
            {
                "sha": (after or before)[1],  # type: ignore[index]
                "filename": path,
                "status": status,
                "additions": added,
                "deletions": removed,
                "changes": added + removed,
                "patch": "\n".join(lines),
            }
        )
    return files


@dataclass
class Status:
    id: int
    state: str
    context: str
    description: str | None
    target_url: str | None
    creator: str
    created_at: datetime


@dataclass
class CheckRun:
    id: int
    name: str
    head_sha: str
    status: str
    conclusion: str | None
    started_at: datetime
    completed_at: datetime | None = None
    details_url: str | None = None
    title: str | None = None
    summary: str | None = None


@dataclass
class Pull:
    number: int
    id: int
    title: str
    body: str | None
    user: str
    head: str  # branch names
    base: str
    head_sha: str  # follow the branches while open, frozen once closed
    base_sha: str
    created_at: datetime
    updated_at: datetime
    state: str = "open"
    draft: bool = False
    merged: bool = False
    merged_at: datetime | None = None
    merged_by: str | None = None
    merge_commit_sha: str | None = None
    closed_at: datetime | None = None
    mergeable: bool | None = True  # False forces a conflict; None reads as "not computed yet"
    additions: int | None = None  # overrides of the computed diff statistics
    deletions: int | None = None
    comments: list[dict] = field(default_factory=list)


@dataclass
class Repo:
    id: int
    owner: str
    name: str
    default_branch: str
    private: bool
    allow_squash_merge: bool
    allow_merge_commit: bool
    allow_rebase_merge: bool
    permissions: dict[str, bool]
    created_at: datetime
    store: ObjectStore = field(default_factory=ObjectStore)
    branches: dict[str, str] = field(default_factory=dict)
    statuses: dict[str, list[Status]] = field(default_factory=dict)  # sha -> newest first
    check_runs: dict[str, list[CheckRun]] = field(default_factory=dict)  # sha -> newest first
    required_checks: dict[str, list[str]] = field(default_factory=dict)  # branch -> contexts
    pulls: dict[int, Pull] = field(default_factory=dict)
    delete_branch_on_merge: bool = False

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    def resolve(self, ref: str | None) -> str | None:
        """Commit sha of a branch name, ``heads/x``, ``refs/heads/x``, a sha or a sha prefix."""
        ref = ref or self.default_branch
        name = ref.removeprefix("refs/").removeprefix("heads/")
        if name in self.branches:
            return self.branches[name]
        if ref in self.store.commits:
            return ref
        if len(ref) >= 7:
            hits = [s for s in self.store.commits if s.startswith(ref.lower())]
            if len(hits) == 1:
                return hits[0]
        return None

    def commit(self, ref: str | None) -> GitCommit:
        sha = self.resolve(ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return self.store.commits[sha]

    def set_branch(self, name: str, sha: str) -> None:
        self.branches[name] = sha
        for pull in self.pulls.values():
            if pull.state == "open":
                pull.head_sha = self.branches.get(pull.head, pull.head_sha)
                pull.base_sha = self.branches.get(pull.base, pull.base_sha)

    def delete_branch(self, name: str, now: datetime) -> None:
        del self.branches[name]
        for pull in self.pulls.values():  # GitHub closes pull requests whose branch is gone
            if pull.state == "open" and name in (pull.head, pull.base):
                pull.state, pull.closed_at, pull.updated_at = "closed", now, now

    def list_pulls(self, query: dict[str, str]) -> list[Pull]:
        """``GET pulls`` filtering and order (state, head ``owner:branch``, base, sort)."""
        pulls = [p for p in self.pulls.values() if query.get("state", "open") in ("all", p.state)]
        if ":" in query.get("head", ""):  # like GitHub, ignore a head filter without "owner:"
            owner, _, branch = query["head"].partition(":")
            mine = owner.lower() == self.owner.lower()
            pulls = [p for p in pulls if mine and p.head == branch]
        pulls = [p for p in pulls if query.get("base", p.base) == p.base]
        by_updated = query.get("sort") in ("updated", "long-running")
        pulls.sort(key=lambda p: p.updated_at if by_updated else p.created_at)
        return pulls[::-1] if query.get("direction", "desc") == "desc" else pulls

    # -- pull request computations -------------------------------------------------------
    def pull_commits(self, pull: Pull) -> list[str]:
        """Commits on the head and not on the base, oldest first."""
        on_base = set(self.store.ancestors(pull.base_sha))
        return [c for c in self.store.ancestors(pull.head_sha) if c not in on_base][::-1]

    def pull_files(self, pull: Pull) -> list[dict[str, Any]]:
        base = self.store.merge_base(pull.base_sha, pull.head_sha)
        old = self.store.files_of(base) if base else {}
        return diff_files(self.store, old, self.store.files_of(pull.head_sha))

    def merged_files(self, pull: Pull) -> Flat | None:
        """The base's files with the pull request merged in, None on a conflict."""
        if pull.mergeable is False:
            return None
        base = self.store.merge_base(pull.base_sha, pull.head_sha)
        return merge_flat(
            self.store.files_of(base) if base else {},
            self.store.files_of(pull.base_sha),
            self.store.files_of(pull.head_sha),
        )

    def check_state(self, sha: str, context: str) -> str | None:
        """success / failure / pending for one context (status or check run), None if absent."""
        status = next((s for s in self.statuses.get(sha, []) if s.context == context), None)
        if status is not None:
            return {"error": "failure"}.get(status.state, status.state)
        run = next((r for r in self.check_runs.get(sha, []) if r.name == context), None)
        if run is None:
            return None
        if run.status != "completed":
            return "pending"
        return "success" if run.conclusion in GOOD_CONCLUSIONS else "failure"

    def required_problem(self, pull: Pull) -> str | None:
        for context in self.required_checks.get(pull.base, []):
            state = self.check_state(pull.head_sha, context)
            if state == "failure":
                return f'Required status check "{context}" is failing.'
            if state != "success":
                return f'Required status check "{context}" is expected.'
        return None

    def mergeability(self, pull: Pull) -> tuple[bool | None, str]:
        """GitHub's ``mergeable`` and ``mergeable_state`` for a pull request."""
        if pull.state != "open" or pull.mergeable is None:
            return None, "unknown"
        if self.merged_files(pull) is None:
            return False, "dirty"
        if pull.draft:
            return True, "draft"
        if self.required_problem(pull):
            return True, "blocked"
        contexts = {s.context for s in self.statuses.get(pull.head_sha, [])}
        contexts |= {r.name for r in self.check_runs.get(pull.head_sha, [])}
        if any(self.check_state(pull.head_sha, c) != "success" for c in contexts):
            return True, "unstable"
        return True, "clean"

    def combined_statuses(self, sha: str) -> tuple[str, list[Status]]:
        latest: dict[str, Status] = {}
        for status in self.statuses.get(sha, []):
            latest.setdefault(status.context, status)
        states = {s.state for s in latest.values()}
        if states & {"failure", "error"}:
            return "failure", list(latest.values())
        if not latest or "pending" in states:
            return "pending", list(latest.values())
        return "success", list(latest.values())


class GitHubState:
    """All repositories, the ids and clock they share, and the API's write operations."""

    def __init__(self, login: str) -> None:
        self.login = login
        self.clock = Clock()
        self.repos: dict[str, Repo] = {}  # lower-case full name -> repo (GitHub ignores case)
        self.user_ids: dict[str, int] = {}
        self.merges: list[dict[str, Any]] = []
        self._ids = itertools.count(1001)

    def next_id(self) -> int:
        return next(self._ids)

    def user_id(self, login: str) -> int:
        return self.user_ids.setdefault(login, len(self.user_ids) + 1)

    def repo(self, owner: str, name: str) -> Repo:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None:
            raise not_found()
        return repo

    def person(self, login: str) -> dict[str, str]:
        date = iso(self.clock.tick())
        return {"name": login, "email": f"{login}@users.noreply.github.com", "date": date or ""}

    def add_repo(self, full_name: str, default_branch: str, files: dict, **settings: Any) -> Repo:
        owner, name = full_name.split("/", 1)
        perms = {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}
        perms |= settings.pop("permissions", None) or {}
        repo = Repo(
            self.next_id(),
            owner,
            name,
            default_branch,
            permissions=perms,
            created_at=self.clock.tick(),
            **settings,
        )
        self.repos[full_name.lower()] = repo
        repo.set_branch(
            default_branch, self.commit_files(repo, None, files, "Initial commit", owner)
        )
        return repo

    def commit_files(
        self, repo: Repo, parent: str | None, files: dict, message: str, login: str
    ) -> str:
        """A new commit on top of ``parent`` changing ``files`` (None deletes a file)."""
        flat = repo.store.files_of(parent) if parent else {}
        for path, content in files.items():
            if content is None:
                flat.pop(path, None)
            else:
                mode = flat.get(path, ("100644", ""))[0]
                flat[path] = (mode, repo.store.put_blob(encode(content)))
        tree = repo.store.tree_from_flat(flat)
        who = self.person(login)
        return repo.store.put_commit(tree, [parent] if parent else [], message, who, who)

    # -- git data API --------------------------------------------------------------------
    @staticmethod
    def _branch_of(repo: Repo, ref: Any) -> str:
        """Branch of ``heads/x`` / ``refs/heads/x``; 422 when it does not exist."""
        ref = str(ref or "").removeprefix("refs/")
        if not ref.startswith("heads/") or ref[6:] not in repo.branches:
            raise ApiError(422, "Reference does not exist")
        return ref[6:]

    @staticmethod
    def _commit_arg(repo: Repo, args: dict) -> str:
        sha = args.get("sha")
        if not isinstance(sha, str) or sha not in repo.store.commits:
            raise ApiError(422, "Object does not exist")
        return sha

    def create_ref(self, repo: Repo, args: dict) -> str:
        """``POST git/refs`` (branches only); returns the branch name."""
        ref = args.get("ref")
        if not isinstance(ref, str) or not ref.startswith("refs/") or ref.count("/") < 2:
            raise ApiError(422, "Reference name is invalid")  # must be "refs/<kind>/<name>"
        if not ref.startswith("refs/heads/"):
            raise ApiError(422, f"FakeGitHub only supports refs/heads/*, not {ref}")
        sha, name = self._commit_arg(repo, args), ref.removeprefix("refs/heads/")
        if name in repo.branches:
            raise ApiError(422, "Reference already exists")
        repo.set_branch(name, sha)
        return name

    def update_ref(self, repo: Repo, ref: str, args: dict) -> str:
        """``PATCH git/refs/heads/x``: fast-forward only unless ``force``."""
        name, sha = self._branch_of(repo, ref), self._commit_arg(repo, args)
        if not args.get("force") and repo.branches[name] not in repo.store.ancestors(sha):
            raise ApiError(422, "Update is not a fast forward")
        repo.set_branch(name, sha)
        return name

    def delete_ref(self, repo: Repo, ref: str) -> None:
        repo.delete_branch(self._branch_of(repo, ref), self.clock.tick())

    def create_blob(self, repo: Repo, args: dict) -> str:
        content, encoding = args.get("content"), args.get("encoding", "utf-8")
        if not isinstance(content, str):
            raise invalid("Blob", "content", "missing_field")
        if encoding not in ("utf-8", "utf8", "base64"):
            raise invalid("Blob", "encoding", "invalid")
        try:
            raw = "".join(content.split())
            data = (
                base64.b64decode(raw, validate=True) if encoding == "base64" else content.encode()
            )
        except binascii.Error as exc:
            raise invalid("Blob", "content", "invalid") from exc
        return repo.store.put_blob(data)

    def create_commit(self, repo: Repo, args: dict) -> str:
        """``POST git/commits``: author/committer default to the token's user, now."""
        store, message, tree = repo.store, args.get("message"), args.get("tree")
        parents = args.get("parents", [])
        if not isinstance(message, str):
            raise invalid("Commit", "message", "missing_field")
        if tree not in store.trees:
            raise ApiError(422, "Tree SHA does not exist")
        if not isinstance(parents, list) or any(p not in store.commits for p in parents):
            raise ApiError(422, "Parent SHA does not exist or is not a commit object")
        author = self.person(self.login) | (args.get("author") or {})
        committer = author | (args.get("committer") or {})
        return store.put_commit(tree, parents, message, author, committer)

    def create_tree(self, repo: Repo, entries: Any, base: Any) -> str:
        """``POST git/trees``: entries overwrite ``base`` paths, ``sha: null`` deletes a path,
        ``content`` stores a new blob, a ``tree`` entry replaces a whole directory."""
        store = repo.store
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise invalid("Tree", "tree", "missing_field")
        if base is not None and base not in store.trees:
            raise ApiError(422, "base_tree is not a valid tree oid")
        flat = store.flatten(base) if base else {}
        for entry in entries:
            path, mode, kind = entry.get("path"), entry.get("mode"), entry.get("type", "blob")
            parts = path.split("/") if isinstance(path, str) else [""]
            if any(p in ("", ".", "..") for p in parts):
                raise ApiError(422, f"tree.path contains a malformed path component: {path!r}")
            modes = BLOB_MODES if kind == "blob" else {TREE_MODE} if kind == "tree" else set()
            if mode not in modes:
                raise ApiError(422, f"GitRPC::BadObjectState: bad mode/type {mode}/{kind}")
            below = [p for p in flat if p.startswith(f"{path}/")]
            if entry.get("content") is not None and kind == "blob":
                sha = store.put_blob(encode(entry["content"]))
            elif "sha" not in entry:
                raise ApiError(422, f"tree.sha or tree.content is required for {path}")
            else:
                sha = entry["sha"]
            if sha is None:  # deletion; GitHub refuses to delete what is not there
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
        return store.tree_from_flat(flat)

    def open_pull(
        self,
        repo: Repo,
        *,
        title: Any,
        head: str,
        base: Any,
        body: Any,
        user: str,
        draft: bool = False,
        number: int | None = None,
    ) -> Pull:
        """``POST pulls`` with GitHub's validation (``head`` may be ``owner:branch``)."""
        owner, _, head = head.rpartition(":")
        if not isinstance(title, str) or not title:
            raise invalid("PullRequest", "title", "missing_field")
        if base not in repo.branches:
            raise invalid("PullRequest", "base", "invalid")
        if head not in repo.branches or (owner and owner.lower() != repo.owner.lower()):
            raise invalid("PullRequest", "head", "invalid")
        message = None
        if any(p.state == "open" and (p.head, p.base) == (head, base) for p in repo.pulls.values()):
            message = f"A pull request already exists for {repo.owner}:{head}."
        elif repo.branches[head] in repo.store.ancestors(repo.branches[base]):
            message = f"No commits between {base} and {head}"
        if message:
            error = {"resource": "PullRequest", "code": "custom", "message": message}
            raise ApiError(422, "Validation Failed", [error])
        now, number = self.clock.tick(), number or max(repo.pulls, default=0) + 1
        pull = Pull(
            number,
            self.next_id(),
            title,
            body,
            user,
            head,
            base,
            repo.branches[head],
            repo.branches[base],
            now,
            now,
            draft=draft,
        )
        repo.pulls[number] = pull
        return pull

    def change_file(
        self, repo: Repo, path: str, args: dict, content: bytes | None
    ) -> tuple[str, str | None]:
        """``PUT``/``DELETE contents/{path}``: commit on ``branch``; returns (commit, old blob)."""
        branch, given = args.get("branch") or repo.default_branch, args.get("sha")
        if not isinstance(args.get("message"), str):
            raise invalid("Commit", "message", "missing_field")
        if branch not in repo.branches:
            raise not_found(f"Branch {branch} not found")
        current = repo.store.files_of(repo.branches[branch]).get(path)
        if content is None and current is None:
            raise not_found()
        if current is not None and given is None:
            raise ApiError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        if given is not None and (current is None or current[1] != given):
            raise ApiError(409, f"{path} does not match {given}")
        parent = repo.branches[branch]
        sha = self.commit_files(repo, parent, {path: content}, args["message"], self.login)
        repo.set_branch(branch, sha)
        return sha, current[1] if current else None

    def add_status(self, repo: Repo, sha: str, args: dict) -> Status:
        state = args.get("state")
        if state not in ("error", "failure", "pending", "success"):
            raise invalid("Status", "state", "custom", message=f"{state} is not a valid state")
        status = Status(
            self.next_id(),
            state,
            args.get("context") or "default",
            args.get("description"),
            args.get("target_url"),
            self.login,
            self.clock.tick(),
        )
        repo.statuses.setdefault(sha, []).insert(0, status)
        return status

    def add_check_run(self, repo: Repo, sha: str, name: str, status: str, conclusion: Any) -> None:
        now, done = self.clock.tick(), status == "completed"
        run = CheckRun(self.next_id(), name, sha, status, conclusion if done else None, now)
        run.completed_at = now if done else None
        repo.check_runs.setdefault(sha, []).insert(0, run)

    def edit_pull(self, repo: Repo, pull: Pull, args: dict) -> None:
        """``PATCH pulls/{n}``: title, body, base, state (open/closed)."""
        now = self.clock.tick()
        for key in ("title", "body"):
            if isinstance(args.get(key), str):
                setattr(pull, key, args[key])
        if args.get("base") is not None:
            if args["base"] not in repo.branches:
                raise invalid("PullRequest", "base", "invalid")
            pull.base, pull.base_sha = args["base"], repo.branches[args["base"]]
        state = args.get("state")
        if state in ("open", "closed") and state != pull.state:
            if pull.merged:
                raise invalid("PullRequest", "state", "custom", message="pull request is merged")
            pull.state, pull.closed_at = state, now if state == "closed" else None
        pull.updated_at = now

    def search_code(self, q: str) -> list[tuple[Repo, str, str]]:
        """(repo, path, blob sha) of default-branch files containing the text of ``q``
        (case-insensitive). Qualifiers: repo, org, user, path, filename, extension, in:path;
        others (language, ...) are ignored."""
        try:
            tokens = shlex.split(q)
        except ValueError:
            tokens = q.split()
        is_qualifier = re.compile(r"^[a-z]+:.").match
        quals = dict(t.split(":", 1) for t in tokens if is_qualifier(t))
        text = " ".join(t for t in tokens if not is_qualifier(t)).lower()
        if not text and not quals:
            raise invalid("Search", "q", "missing")
        owner = (quals.get("org") or quals.get("user") or "").lower()
        hits = []
        for repo in sorted(self.repos.values(), key=lambda r: r.full_name):
            if quals.get("repo", repo.full_name).lower() != repo.full_name.lower():
                continue
            if owner and repo.owner.lower() != owner:
                continue
            files = repo.store.files_of(repo.branches[repo.default_branch])
            for path, (_, sha) in sorted(files.items()):
                name = path.rsplit("/", 1)[-1]
                haystack = path if quals.get("in") == "path" else repo.store.text(sha)
                if (
                    text in haystack.lower()
                    and quals.get("filename", name) == name
                    and ("extension" not in quals or name.endswith(f".{quals['extension']}"))
                    and path.startswith(quals.get("path", "").strip("/"))
                ):
                    hits.append((repo, path, sha))
        return hits

    def merge_pull(self, repo: Repo, pull: Pull, args: dict) -> str:
        """``PUT pulls/{n}/merge``: GitHub's checks in order, then the base branch moves."""
        sha, method = args.get("sha"), args.get("merge_method") or "merge"
        title, message = args.get("commit_title"), args.get("commit_message")
        if pull.state != "open":
            raise ApiError(405, "Pull Request is not mergeable")
        if sha is not None and sha != pull.head_sha:
            raise ApiError(409, "Head branch was modified. Review and try the merge again.")
        if pull.draft:
            raise ApiError(405, "Pull Request is still a draft")
        if method not in ("merge", "squash", "rebase"):
            raise invalid("PullRequest", "merge_method", "invalid", value=method)
        setting = {"merge": "merge_commit", "squash": "squash_merge", "rebase": "rebase_merge"}
        if not getattr(repo, f"allow_{setting[method]}"):
            noun = {"merge": "Merge commits", "squash": "Squash merges", "rebase": "Rebase merges"}
            raise ApiError(405, f"{noun[method]} are not allowed on this repository.")
        merged = repo.merged_files(pull)
        if merged is None:
            raise ApiError(405, "Pull Request is not mergeable")
        problem = repo.required_problem(pull)
        if problem:
            raise ApiError(405, problem)
        store, tree, me = repo.store, repo.store.tree_from_flat(merged), self.person(self.login)
        commits, text = repo.pull_commits(pull), None
        if method == "merge":
            default = f"Merge pull request #{pull.number} from {repo.owner}/{pull.head}"
            text = f"{title or default}\n\n{message or pull.title}"
            new = store.put_commit(tree, [pull.base_sha, pull.head_sha], text, me, me)
        elif method == "squash":
            listed = "\n".join(f"* {store.commits[c].message}" for c in commits)
            text = f"{title or f'{pull.title} (#{pull.number})'}\n\n{message or listed}".strip()
            author = store.commits[pull.head_sha].author
            new = store.put_commit(tree, [pull.base_sha], text, author, me)
        else:  # rebase: replay each head commit onto the base
            new = pull.base_sha
            for old in map(store.commits.__getitem__, commits):
                before = store.files_of(old.parents[0]) if old.parents else {}
                replayed = merge_flat(before, store.files_of(new), store.files_of(old.sha))
                if replayed is None:
                    raise ApiError(405, "This branch can't be rebased")
                tree = store.tree_from_flat(replayed)
                new = store.put_commit(tree, [new], old.message, old.author, me)
        now, base_before = self.clock.tick(), pull.base_sha
        repo.set_branch(pull.base, new)
        pull.state, pull.merged, pull.merged_by, pull.merge_commit_sha = (
            "closed",
            True,
            self.login,
            new,
        )
        pull.merged_at = pull.closed_at = pull.updated_at = now
        pull.base_sha = base_before  # GitHub keeps showing the base the head was merged into
        title_line = text.split("\n", 1)[0] if text else None
        self.merges.append(
            {
                "repo": repo.full_name,
                "number": pull.number,
                "sha": new,
                "head_sha": pull.head_sha,
                "merge_method": method,
                "commit_title": title_line,
            }
        )
        if repo.delete_branch_on_merge and pull.head in repo.branches:
            repo.delete_branch(pull.head, now)
        return new


def _node(kind: str, ident: int | str) -> str:
    return f"{kind}_kwDOfake{ident}"


class Wire:
    """GitHub's JSON shapes, with API URLs under ``api`` (the root the client used, as PyGithub
    follows them) and web URLs under ``html``."""

    def __init__(self, state: GitHubState, api: str, html: str) -> None:
        self.state, self.api, self.html = state, api, html

    def repo_url(self, repo: Repo) -> str:
        return f"{self.api}/repos/{repo.full_name}"

    def web_url(self, repo: Repo) -> str:
        return f"{self.html}/{repo.full_name}"

    def user(self, login: str) -> dict[str, Any]:
        uid = self.state.user_id(login)
        return {
            "login": login,
            "id": uid,
            "node_id": _node("U", uid),
            "avatar_url": f"{self.html}/avatars/u/{uid}",
            "gravatar_id": "",
            "url": f"{self.api}/users/{login}",
            "html_url": f"{self.html}/{login}",
            "type": "User",
            "site_admin": False,
        }

    def repo(self, repo: Repo) -> dict[str, Any]:
        url, html, when = self.repo_url(repo), self.web_url(repo), iso(repo.created_at)
        data = {
            "id": repo.id,
            "node_id": _node("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": repo.private,
            "owner": self.user(repo.owner),
            "html_url": html,
            "description": None,
            "fork": False,
            "url": url,
            "clone_url": f"{html}.git",
            "created_at": when,
            "updated_at": when,
            "pushed_at": when,
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
        for key, tail in URL_TEMPLATES.items():
            data[f"{key}_url"] = f"{url}/{tail}"
        return data

    def git_commit(self, repo: Repo, commit: GitCommit) -> dict[str, Any]:
        url, html = self.repo_url(repo), self.web_url(repo)
        return {
            "sha": commit.sha,
            "node_id": _node("C", commit.sha[:10]),
            "url": f"{url}/git/commits/{commit.sha}",
            "html_url": f"{html}/commit/{commit.sha}",
            "author": dict(commit.author),
            "committer": dict(commit.committer),
            "message": commit.message,
            "tree": {"sha": commit.tree, "url": f"{url}/git/trees/{commit.tree}"},
            "parents": [
                {"sha": p, "url": f"{url}/git/commits/{p}", "html_url": f"{html}/commit/{p}"}
                for p in commit.parents
            ],
            "verification": {
                "verified": False,
                "reason": "unsigned",
                "signature": None,
                "payload": None,
            },
        }

    def commit(self, repo: Repo, commit: GitCommit, files: bool = False) -> dict[str, Any]:
        """The REST commit (``commits/{ref}``): the git commit wrapped with users and links."""
        url, html, sha = self.repo_url(repo), self.web_url(repo), commit.sha
        git = self.git_commit(repo, commit)
        data = {
            "sha": sha,
            "node_id": git.pop("node_id"),
            "url": f"{url}/commits/{sha}",
            "html_url": git.pop("html_url"),
            "comments_url": f"{url}/commits/{sha}/comments",
            "commit": git | {"comment_count": 0},
            "author": self.user(commit.author["name"]),
            "committer": self.user(commit.committer["name"]),
            "parents": [
                {"sha": p, "url": f"{url}/commits/{p}", "html_url": f"{html}/commit/{p}"}
                for p in commit.parents
            ],
        }
        for key in ("sha", "parents"):
            git.pop(key)
        if files:
            store = repo.store
            old = store.files_of(commit.parents[0]) if commit.parents else {}
            changed = [
                self.file(repo, sha, f) for f in diff_files(store, old, store.flatten(commit.tree))
            ]
            adds, dels = sum(f["additions"] for f in changed), sum(f["deletions"] for f in changed)
            data["stats"] = {"total": adds + dels, "additions": adds, "deletions": dels}
            data["files"] = changed
        return data

    def file(self, repo: Repo, ref: str, changed: dict[str, Any]) -> dict[str, Any]:
        """A changed file of a commit or pull request, with its links at ``ref``."""
        path = quote(changed["filename"])
        return {
            **changed,
            "blob_url": f"{self.web_url(repo)}/blob/{ref}/{path}",
            "raw_url": f"{self.web_url(repo)}/raw/{ref}/{path}",
            "contents_url": f"{self.repo_url(repo)}/contents/{path}?ref={ref}",
        }

    def ref(self, repo: Repo, branch: str) -> dict[str, Any]:
        sha, url = repo.branches[branch], self.repo_url(repo)
        return {
            "ref": f"refs/heads/{branch}",
            "node_id": _node("REF", hashlib.sha1(branch.encode()).hexdigest()[:10]),
            "url": f"{url}/git/refs/heads/{quote(branch)}",
            "object": {"sha": sha, "type": "commit", "url": f"{url}/git/commits/{sha}"},
        }

    def required_checks(self, repo: Repo, branch: str) -> dict[str, Any]:
        contexts = repo.required_checks[branch]
        url = f"{self.repo_url(repo)}/branches/{quote(branch)}/protection/required_status_checks"
        return {
            "url": url,
            "strict": False,
            "contexts": list(contexts),
            "contexts_url": f"{url}/contexts",
            "checks": [{"context": c, "app_id": None} for c in contexts],
        }

    def branch(self, repo: Repo, branch: str) -> dict[str, Any]:
        sha, url = repo.branches[branch], f"{self.repo_url(repo)}/branches/{quote(branch)}"
        required = repo.required_checks.get(branch)
        checks = {
            "enforcement_level": "non_admins" if required else "off",
            "contexts": required or [],
            "checks": [{"context": c, "app_id": None} for c in required or []],
        }
        return {
            "name": branch,
            "commit": self.commit(repo, repo.store.commits[sha]),
            "_links": {"self": url, "html": f"{self.web_url(repo)}/tree/{branch}"},
            "protected": required is not None,
            "protection": {"enabled": required is not None, "required_status_checks": checks},
            "protection_url": f"{url}/protection",
        }

    def tree(self, repo: Repo, sha: str, recursive: bool = False) -> dict[str, Any]:
        store, url = repo.store, self.repo_url(repo)
        walk = store.walk(sha) if recursive else ((e.name, e) for e in store.trees[sha])
        entries = []
        for path, e in walk:
            item: dict[str, Any] = {"path": path, "mode": e.mode, "type": e.type, "sha": e.sha}
            if e.type == "blob":
                item["size"] = len(store.blobs[e.sha])
            entries.append(item | {"url": f"{url}/git/{e.type}s/{e.sha}"})
        return {"sha": sha, "url": f"{url}/git/trees/{sha}", "tree": entries, "truncated": False}

    def blob(self, repo: Repo, sha: str) -> dict[str, Any]:
        data = repo.store.blobs[sha]
        return {
            "sha": sha,
            "node_id": _node("B", sha[:10]),
            "size": len(data),
            "url": f"{self.repo_url(repo)}/git/blobs/{sha}",
            "content": base64.encodebytes(data).decode(),
            "encoding": "base64",
        }

    def content(
        self, repo: Repo, path: str, entry: Entry, ref: str, with_content: bool = False
    ) -> dict[str, Any]:
        """A ``contents/{path}`` item: a file (with base64 ``content`` if asked) or a dir."""
        is_file, qpath = entry.type == "blob", quote(path)
        url = f"{self.repo_url(repo)}/contents/{qpath}?ref={quote(ref)}"
        git_url = f"{self.repo_url(repo)}/git/{entry.type}s/{entry.sha}"
        html_url = f"{self.web_url(repo)}/{'blob' if is_file else 'tree'}/{ref}/{qpath}"
        data = {
            "type": "file" if is_file else "dir",
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": entry.sha,
            "size": len(repo.store.blobs[entry.sha]) if is_file else 0,
            "url": url,
            "html_url": html_url,
            "git_url": git_url,
            "download_url": f"{self.web_url(repo)}/raw/{ref}/{qpath}" if is_file else None,
            "_links": {"self": url, "git": git_url, "html": html_url},
        }
        if with_content and is_file:
            data["content"] = base64.encodebytes(repo.store.blobs[entry.sha]).decode()
            data["encoding"] = "base64"
        return data

    def pull(self, repo: Repo, pull: Pull, full: bool = True) -> dict[str, Any]:
        """A pull request; ``full=False`` is the "pull-request-simple" shape lists return,
        without merged / mergeable / commits / additions / deletions / changed_files."""
        api, n = self.repo_url(repo), pull.number
        url, html, issue = f"{api}/pulls/{n}", f"{self.web_url(repo)}/pull/{n}", f"{api}/issues/{n}"

        def part(branch: str, sha: str) -> dict[str, Any]:
            owner = self.user(repo.owner)
            return {"label": f"{repo.owner}:{branch}", "ref": branch, "sha": sha, "user": owner}

        data = {
            "url": url,
            "id": pull.id,
            "node_id": _node("PR", pull.id),
            "html_url": html,
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "issue_url": issue,
            "commits_url": f"{url}/commits",
            "review_comments_url": f"{url}/comments",
            "review_comment_url": f"{api}/pulls/comments{{/number}}",
            "comments_url": f"{issue}/comments",
            "statuses_url": f"{api}/statuses/{pull.head_sha}",
            "number": n,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self.user(pull.user),
            "body": pull.body,
            "labels": [],
            "milestone": None,
            "active_lock_reason": None,
            "created_at": iso(pull.created_at),
            "updated_at": iso(pull.updated_at),
            "closed_at": iso(pull.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_commit_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "requested_teams": [],
            "head": part(pull.head, pull.head_sha) | {"repo": self.repo(repo)},
            "base": part(pull.base, pull.base_sha) | {"repo": self.repo(repo)},
            "_links": {"self": {"href": url}, "html": {"href": html}, "issue": {"href": issue}},
            "author_association": "OWNER" if pull.user == repo.owner else "CONTRIBUTOR",
            "auto_merge": None,
            "draft": pull.draft,
        }
        if not full:
            return data
        mergeable, mergeable_state = repo.mergeability(pull)
        files = repo.pull_files(pull)
        additions = sum(f["additions"] for f in files)
        deletions = sum(f["deletions"] for f in files)
        return data | {
            "merged": pull.merged,
            "mergeable": mergeable,
            "rebaseable": mergeable,
            "mergeable_state": mergeable_state,
            "merged_by": self.user(pull.merged_by) if pull.merged_by else None,
            "comments": len(pull.comments),
            "review_comments": 0,
            "maintainer_can_modify": False,
            "commits": len(repo.pull_commits(pull)),
            "additions": additions if pull.additions is None else pull.additions,
            "deletions": deletions if pull.deletions is None else pull.deletions,
            "changed_files": len(files),
        }

    def status(self, repo: Repo, sha: str, status: Status) -> dict[str, Any]:
        return {
            "url": f"{self.repo_url(repo)}/statuses/{sha}",
            "avatar_url": None,
            "id": status.id,
            "node_id": _node("SC", status.id),
            "state": status.state,
            "description": status.description,
            "target_url": status.target_url,
            "context": status.context,
            "created_at": iso(status.created_at),
            "updated_at": iso(status.created_at),
            "creator": self.user(status.creator),
        }

    def combined_status(self, repo: Repo, sha: str) -> dict[str, Any]:
        state, statuses = repo.combined_statuses(sha)
        return {
            "state": state,
            "statuses": [self.status(repo, sha, s) for s in statuses],
            "sha": sha,
            "total_count": len(statuses),
            "repository": self.repo(repo),
            "commit_url": f"{self.repo_url(repo)}/commits/{sha}",
            "url": f"{self.repo_url(repo)}/commits/{sha}/status",
        }

    def check_run(self, repo: Repo, run: CheckRun) -> dict[str, Any]:
        url = f"{self.repo_url(repo)}/check-runs/{run.id}"
        app = {"id": 1, "slug": "fake-ci", "node_id": _node("A", 1), "name": "Fake CI"}
        return {
            "id": run.id,
            "name": run.name,
            "node_id": _node("CR", run.id),
            "head_sha": run.head_sha,
            "external_id": str(run.id),
            "url": url,
            "html_url": f"{self.web_url(repo)}/runs/{run.id}",
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
                "annotations_url": f"{url}/annotations",
            },
            "check_suite": {"id": run.id},
            "app": app | {"owner": self.user("fake-ci"), "html_url": f"{self.html}/apps/fake-ci"},
            "pull_requests": [],
        }

    def comment(self, repo: Repo, number: int, comment: dict[str, Any]) -> dict[str, Any]:
        cid, api = comment["id"], self.repo_url(repo)
        return {
            "id": cid,
            "node_id": _node("IC", cid),
            "url": f"{api}/issues/comments/{cid}",
            "html_url": f"{self.web_url(repo)}/pull/{number}#issuecomment-{cid}",
            "issue_url": f"{api}/issues/{number}",
            "body": comment["body"],
            "user": self.user(comment["user"]),
            "created_at": iso(comment["at"]),
            "updated_at": iso(comment["at"]),
            "author_association": "MEMBER",
        }

    def search_item(self, repo: Repo, path: str, sha: str) -> dict[str, Any]:
        """A code search hit; its ``url`` uses ``/repositories/{id}`` as GitHub's does."""
        head, qpath = repo.branches[repo.default_branch], quote(path)
        return {
            "name": path.rsplit("/", 1)[-1],
            "path": path,
            "sha": sha,
            "url": f"{self.api}/repositories/{repo.id}/contents/{qpath}?ref={head}",
            "git_url": f"{self.api}/repositories/{repo.id}/git/blobs/{sha}",
            "html_url": f"{self.web_url(repo)}/blob/{head}/{qpath}",
            "repository": self.repo(repo),
            "score": 1.0,
        }
