"""Self-check of tests/fakes/github.py against the real PyGithub client.

PyGithub is synchronous, and the fake serves on the test's event loop, so every PyGithub call
runs in ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from github import Auth, BadCredentialsException, Github, GithubException, InputGitTreeElement
from github.GithubRetry import GithubRetry
from github.Repository import Repository

from tests.fakes.github import FakeGitHub

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
FILES = {"README.md": "# app\n", "src/a.py": "a = 1\n", "src/b.py": "b = 1\n"}
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in PROXY_VARS:  # requests honours these
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
async def fake():
    async with FakeGitHub() as fake_github:
        fake_github.add_repo("acme/app", files=FILES)
        yield fake_github


def client(fake: FakeGitHub, token: str | None = None, **kwargs: Any) -> Github:
    # PyGithub by default sleeps 0.25 s between requests and 1 s between writes
    defaults = {"retry": None, "seconds_between_requests": None, "seconds_between_writes": None}
    kwargs = {"base_url": fake.base_url, **defaults, **kwargs}
    return Github(auth=Auth.Token(token or fake.token), **kwargs)


async def sync(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def error(fn: Callable[[], Any]) -> GithubException:
    with pytest.raises(GithubException) as info:
        await sync(fn)
    return info.value


async def test_branch_commit_pull_and_merge(fake: FakeGitHub) -> None:
    gh = client(fake)
    repo: Repository = await sync(lambda: gh.get_repo("acme/app"))
    assert (repo.full_name, repo.default_branch, repo.permissions.push) == (
        "acme/app",
        "main",
        True,
    )
    readme = await sync(lambda: repo.get_contents("README.md"))
    assert readme.decoded_content == b"# app\n"
    assert readme.sha == hashlib.sha1(b"blob 6\0# app\n").hexdigest()  # git's blob sha

    # a branch from the default head, then one commit changing two files and adding one
    main_sha = await sync(lambda: repo.get_branch("main").commit.sha)
    ref = await sync(lambda: repo.create_git_ref("refs/heads/feature/x", main_sha))
    assert ref.ref == "refs/heads/feature/x"

    def commit_three_files() -> str:
        base = repo.get_git_commit(main_sha)
        blob = repo.create_git_blob("a = 2\n", "utf-8")
        tree = repo.create_git_tree(
            [
                InputGitTreeElement("src/a.py", "100644", "blob", sha=blob.sha),
                InputGitTreeElement("src/b.py", "100644", "blob", content="b = 2\n"),
                InputGitTreeElement("src/new.py", "100644", "blob", content="new = 3\n"),
            ],
            base_tree=base.tree,
        )
        commit = repo.create_git_commit("Change a and b, add new", tree, [base])
        repo.get_git_ref("heads/feature/x").edit(commit.sha)
        return commit.sha

    start = len(fake.requests)
    head_sha = await sync(commit_three_files)
    writes = [(r.method, r.path) for r in fake.requests[start:] if r.method != "GET"]
    assert writes == [
        ("POST", "/repos/acme/app/git/blobs"),
        ("POST", "/repos/acme/app/git/trees"),
        ("POST", "/repos/acme/app/git/commits"),
        ("PATCH", "/repos/acme/app/git/refs/heads/feature/x"),
    ]
    assert (
        fake.calls("POST", r"/git/trees$")[0].json["base_tree"]
        == fake.repo("acme/app").store.commits[main_sha].tree
    )
    assert fake.calls("PATCH", "/git/refs/")[0].json == {"sha": head_sha}
    on_branch = {
        p: fake.file("acme/app", p, "feature/x")
        for p in ("src/a.py", "src/b.py", "src/new.py", "README.md")
    }
    assert on_branch == {
        "src/a.py": "a = 2\n",
        "src/b.py": "b = 2\n",
        "src/new.py": "new = 3\n",
        "README.md": "# app\n",
    }
    assert fake.file("acme/app", "src/a.py") == "a = 1\n"  # main untouched
    tree = await sync(lambda: repo.get_git_tree(head_sha, recursive=True))
    paths = {e.path: e.type for e in tree.tree}
    assert paths == {
        "README.md": "blob",
        "src": "tree",
        "src/a.py": "blob",
        "src/b.py": "blob",
        "src/new.py": "blob",
    }

    # open the pull request and read it like a reviewer would
    pr = await sync(
        lambda: repo.create_pull(base="main", head="feature/x", title="Tweak", body="Why")
    )
    assert (pr.number, pr.state, pr.user.login, pr.head.sha, pr.base.ref) == (
        1,
        "open",
        "sophia-bot",
        head_sha,
        "main",
    )
    fake.set_status("acme/app", head_sha, state="success", context="ci")
    fake.add_check_run("acme/app", head_sha, name="lint", conclusion="success")
    fake.add_check_run("acme/app", head_sha, name="tests", status="in_progress", conclusion=None)

    def review() -> dict:
        pull = repo.get_pull(1)
        commit = repo.get_commit(pull.head.sha)
        combined = commit.get_combined_status()
        runs = list(commit.get_check_runs())
        return {
            "details": (pull.title, pull.body, pull.mergeable, pull.mergeable_state, pull.merged),
            "stats": (pull.additions, pull.deletions, pull.changed_files, pull.commits),
            "files": [(f.filename, f.status, f.additions, f.deletions) for f in pull.get_files()],
            "patch": next(f.patch for f in pull.get_files() if f.filename == "src/a.py"),
            "combined": (
                combined.state,
                combined.total_count,
                [s.context for s in combined.statuses],
            ),
            "runs": sorted((r.name, r.status, r.conclusion) for r in runs),
        }

    start = len(fake.requests)
    seen = await sync(review)
    assert seen["details"] == ("Tweak", "Why", True, "unstable", False)  # "tests" still running
    assert seen["stats"] == (3, 2, 3, 1)
    assert seen["files"] == [
        ("src/a.py", "modified", 1, 1),
        ("src/b.py", "modified", 1, 1),
        ("src/new.py", "added", 1, 0),
    ]
    assert seen["patch"] == "@@ -1 +1 @@\n-a = 1\n+a = 2"
    assert seen["combined"] == ("success", 1, ["ci"])
    assert seen["runs"] == [("lint", "completed", "success"), ("tests", "in_progress", None)]
    paths = [r.path for r in fake.requests[start:]]
    assert paths == [
        "/repos/acme/app/pulls/1",
        f"/repos/acme/app/commits/{head_sha}",
        f"/repos/acme/app/commits/{head_sha}/status",
        f"/repos/acme/app/commits/{head_sha}/check-runs",
        "/repos/acme/app/pulls/1/files",
        "/repos/acme/app/pulls/1/files",
    ]

    # merge with the reviewed head sha
    result = await sync(
        lambda: repo.get_pull(1).merge(
            sha=head_sha, merge_method="squash", commit_title="Tweak (#1)"
        )
    )
    assert (result.merged, result.message) == (True, "Pull Request successfully merged")
    assert fake.calls("PUT", r"/pulls/1/merge$")[0].json == {
        "commit_title": "Tweak (#1)",
        "merge_method": "squash",
        "sha": head_sha,
    }
    assert fake.merges == [
        {
            "repo": "acme/app",
            "number": 1,
            "sha": result.sha,
            "head_sha": head_sha,
            "merge_method": "squash",
            "commit_title": "Tweak (#1)",
        }
    ]
    assert fake.file("acme/app", "src/new.py") == "new = 3\n"
    assert fake.file("acme/app", "src/a.py") == "a = 2\n"
    merged = await sync(lambda: repo.get_pull(1))
    assert (merged.state, merged.merged, merged.merge_commit_sha, merged.merged_by.login) == (
        "closed",
        True,
        result.sha,
        "sophia-bot",
    )
    assert await sync(merged.is_merged)
    main = await sync(lambda: repo.get_branch("main").commit)
    assert (main.sha, [p.sha for p in main.parents]) == (
        result.sha,
        [main_sha],
    )  # squash: one parent
    assert (
        fake.state.repos["acme/app"]
        .store.commits[result.sha]
        .message.startswith("Tweak (#1)\n\n* Change a and b")
    )
    assert (
        await error(lambda: repo.get_pull(1).merge(sha=head_sha))
    ).status == 405  # already merged


async def test_merge_refusals(fake: FakeGitHub) -> None:
    gh = client(fake)
    repo = await sync(lambda: gh.get_repo("acme/app"))
    first = fake.add_pull("acme/app", title="One", head_branch="one", files={"one.txt": "1\n"})
    old_head = first["head"]["sha"]
    new_head = fake.push_commit("acme/app", "one", {"one.txt": "1+\n"}, message="more")
    assert fake.pull("acme/app", first["number"]).head_sha == new_head

    stale = await error(lambda: repo.get_pull(first["number"]).merge(sha=old_head))
    assert (stale.status, stale.data["message"]) == (
        409,
        "Head branch was modified. Review and try the merge again.",
    )

    conflicted = fake.add_pull("acme/app", title="Two", head_branch="two", mergeable=False)
    pull = await sync(lambda: repo.get_pull(conflicted["number"]))
    assert (pull.mergeable, pull.mergeable_state) == (False, "dirty")
    refused = await error(lambda: pull.merge(sha=pull.head.sha))
    assert (refused.status, refused.data["message"]) == (405, "Pull Request is not mergeable")

    # a real three-way conflict: both sides change the same file differently
    fake.add_pull("acme/app", title="Three", head_branch="three", files={"README.md": "# three\n"})
    fake.push_commit("acme/app", "main", {"README.md": "# main moved\n"})
    three = await sync(lambda: repo.get_pull(3))
    assert (three.mergeable, three.mergeable_state) == (False, "dirty")

    fake.repo("acme/app").allow_squash_merge = False
    disabled = await error(lambda: repo.get_pull(first["number"]).merge(merge_method="squash"))
    assert (disabled.status, disabled.data["message"]) == (
        405,
        "Squash merges are not allowed on this repository.",
    )

    fake.set_required_checks("acme/app", "main", ["ci"])
    blocked = await sync(lambda: repo.get_pull(first["number"]))
    assert blocked.mergeable_state == "blocked"
    checks = await sync(lambda: repo.get_branch("main").get_required_status_checks())
    assert checks.contexts == ["ci"]
    missing = await error(lambda: blocked.merge(sha=new_head))
    assert (missing.status, missing.data["message"]) == (
        405,
        'Required status check "ci" is expected.',
    )
    fake.set_status("acme/app", new_head, state="failure")
    failing = await error(lambda: blocked.merge(sha=new_head))
    assert failing.data["message"] == 'Required status check "ci" is failing.'
    fake.set_status("acme/app", new_head, state="success")
    done = await sync(lambda: blocked.merge(sha=new_head, merge_method="merge"))
    main = fake.repo("acme/app").store.commits[done.sha]
    assert len(main.parents) == 2 and main.parents[1] == new_head
    assert main.message == "Merge pull request #1 from acme/one\n\nOne"
    assert fake.file("acme/app", "one.txt") == "1+\n"
    unprotected = await error(lambda: repo.get_branch("one").get_required_status_checks())
    assert (unprotected.status, unprotected.data["message"]) == (404, "Branch not protected")


async def test_auth_errors_and_unknown_routes(fake: FakeGitHub) -> None:
    with pytest.raises(BadCredentialsException) as bad:
        await sync(lambda: client(fake, token="ghp_wrong").get_repo("acme/app"))
    assert (bad.value.status, bad.value.data["message"]) == (401, "Bad credentials")
    anonymous = Github(base_url=fake.base_url, retry=None, seconds_between_requests=None)
    assert (await error(lambda: anonymous.get_repo("acme/app"))).data[
        "message"
    ] == "Requires authentication"
    assert fake.requests[0].headers["Authorization"] == "token ghp_wrong"

    gh = client(fake)
    missing = await error(lambda: gh.get_repo("acme/nope"))
    assert (type(missing).__name__, missing.status) == ("UnknownObjectException", 404)
    repo = await sync(lambda: gh.get_repo("acme/app"))
    assert (await error(lambda: repo.get_contents("nope.txt"))).status == 404
    assert (await error(lambda: repo.get_pull(99))).status == 404
    status, _, body = await sync(lambda: gh.requester.requestJson("GET", "/nothing/here"))
    assert (status, body) == (
        404,
        '{"message": "Not Found", "documentation_url": "https://docs.github.com/rest", "status": "404"}',
    )
    exists = await error(
        lambda: repo.create_git_ref("refs/heads/main", fake.repo("acme/app").branches["main"])
    )
    assert (exists.status, exists.data["message"]) == (422, "Reference already exists")
    nothing = await error(lambda: repo.create_pull(base="main", head="main", title="Nothing"))
    assert nothing.status == 422
    assert nothing.data["errors"][0]["message"] == "No commits between main and main"


async def test_enterprise_prefix_pagination_and_lazy_objects(fake: FakeGitHub) -> None:
    for n in range(5):
        fake.add_pull("acme/app", title=f"PR {n}", head_branch=f"b{n}")
    gh = client(fake, base_url=f"{fake.base_url}/api/v3", per_page=2, lazy=True)
    repo = await sync(lambda: gh.get_repo("acme/app"))
    assert fake.requests == []  # lazy: nothing fetched yet

    def list_pulls() -> tuple[list[int], int]:
        pulls = repo.get_pulls(state="open")
        return [p.number for p in pulls], pulls.totalCount

    numbers, total = await sync(list_pulls)
    assert (numbers, total) == ([5, 4, 3, 2, 1], 5)
    first = fake.calls("GET", r"/pulls$")[0]
    assert first.query == {"per_page": "2", "state": "open"}
    assert [r.query.get("page") for r in fake.calls("GET", r"/pulls$")] == [None, "2", "3", None]
    listed = fake.calls("GET", r"/pulls$")[1]
    assert listed.headers["Authorization"].startswith("token ")
    # URLs in answers carry the /api/v3 prefix the client used (PyGithub follows them)
    simple = await sync(lambda: repo.get_pulls(head="acme:b1")[0])
    assert simple.url == f"{fake.base_url}/api/v3/repos/acme/app/pulls/2"
    assert await sync(lambda: simple.mergeable) is True  # not in the list shape: fetched
    assert fake.requests[-1].path == "/repos/acme/app/pulls/2"
    assert await sync(lambda: repo.get_pulls(head="b1").totalCount) == 5  # no "owner:": ignored

    eager = client(fake)
    plain = await sync(lambda: eager.get_repo("acme/app"))
    assert await sync(plain.update) is False  # ETag round trip: 304 Not Modified
    assert fake.requests[-1].status == 304


async def test_retry_on_server_errors(fake: FakeGitHub) -> None:
    fake.fail("POST", r"/git/blobs$", status=502, message="Server Error")
    no_retry = client(fake)
    repo = await sync(lambda: no_retry.get_repo("acme/app"))
    assert (await error(lambda: repo.create_git_blob("x", "utf-8"))).status == 502

    fake.fail("POST", r"/git/blobs$", status=502, times=1)
    retrying = client(fake, retry=GithubRetry(total=3))
    retried = await sync(lambda: retrying.get_repo("acme/app").create_git_blob("x", "utf-8"))
    assert retried.sha == hashlib.sha1(b"blob 1\0x").hexdigest()
    assert [r.status for r in fake.calls("POST", r"/git/blobs$")] == [502, 502, 201]  # POST retried


async def test_contents_search_and_other_reads(fake: FakeGitHub) -> None:
    gh = client(fake)
    repo = await sync(lambda: gh.get_repo("acme/app"))
    listing = await sync(lambda: repo.get_contents("src"))
    assert [(c.name, c.type) for c in listing] == [("a.py", "file"), ("b.py", "file")]
    current = await sync(lambda: repo.get_contents("src/a.py"))
    updated = await sync(
        lambda: repo.update_file("src/a.py", "edit", "a = 9\n", current.sha, branch="main")
    )
    assert fake.file("acme/app", "src/a.py") == "a = 9\n"
    assert updated["commit"].sha == fake.repo("acme/app").branches["main"]
    stale = await error(lambda: repo.update_file("src/a.py", "edit", "a = 0\n", current.sha))
    assert stale.status == 409
    await sync(lambda: repo.create_file("docs/x.md", "add", "hello world\n"))
    assert fake.file("acme/app", "docs/x.md") == "hello world\n"

    hits = await sync(lambda: list(gh.search_code("hello", repo="acme/app")))
    assert [(h.path, h.repository.full_name) for h in hits] == [("docs/x.md", "acme/app")]
    assert await sync(lambda: hits[0].decoded_content) == b"hello world\n"  # lazy: follows its url
    assert fake.requests[-1].path == "/repos/acme/app/contents/docs/x.md"  # via /repositories/{id}
    assert await sync(lambda: gh.search_code("nothing-matches-this").totalCount) == 0

    me = await sync(lambda: gh.get_user().login)
    assert me == "sophia-bot"
    refs = await sync(lambda: [r.ref for r in repo.get_git_matching_refs("heads/")])
    assert refs == ["refs/heads/main"]
    blob = await sync(lambda: repo.get_git_blob(current.sha))
    assert (blob.encoding, blob.size) == ("base64", 6)
    assert re.fullmatch(r"[0-9a-f]{40}", fake.repo("acme/app").branches["main"])


async def test_git_data_edge_cases_and_merge_methods(fake: FakeGitHub) -> None:
    gh = client(fake)
    repo = await sync(lambda: gh.get_repo("acme/app"))
    main_sha = fake.repo("acme/app").branches["main"]
    base = await sync(lambda: repo.get_git_commit(main_sha))

    def delete_and_commit() -> str:
        gone = InputGitTreeElement("src/b.py", "100644", "blob", sha=None)  # sha null deletes
        tree = repo.create_git_tree([gone], base_tree=base.tree)
        commit = repo.create_git_commit("Drop b", tree, [base])
        repo.create_git_ref("refs/heads/drop", commit.sha)
        return commit.sha

    await sync(delete_and_commit)
    assert fake.file("acme/app", "src/b.py", "drop") is None
    assert fake.file("acme/app", "src/a.py", "drop") == "a = 1\n"
    ghost = InputGitTreeElement("nope.txt", "100644", "blob", sha=None)
    assert (await error(lambda: repo.create_git_tree([ghost], base_tree=base.tree))).status == 422
    bogus = InputGitTreeElement("x.txt", "100644", "blob", sha="0" * 40)
    assert (await error(lambda: repo.create_git_tree([bogus]))).status == 422

    # non fast-forward ref updates need force
    other = fake.push_commit("acme/app", "side", {"side.txt": "s\n"})
    ref = await sync(lambda: repo.get_git_ref("heads/drop"))
    non_ff = await error(lambda: ref.edit(other))
    assert (non_ff.status, non_ff.data["message"]) == (422, "Update is not a fast forward")
    await sync(lambda: ref.edit(other, force=True))
    assert fake.repo("acme/app").branches["drop"] == other

    # rebase replays the head commits onto a base that moved meanwhile
    pr = fake.add_pull("acme/app", title="Two commits", head_branch="two", files={"t1.txt": "1\n"})
    second = fake.push_commit("acme/app", "two", {"t2.txt": "2\n"}, message="second")
    fake.push_commit("acme/app", "main", {"main.txt": "m\n"})
    pull = await sync(lambda: repo.get_pull(pr["number"]))
    assert (pull.commits, pull.changed_files, pull.mergeable_state) == (2, 2, "clean")
    rebased = await sync(lambda: pull.merge(sha=second, merge_method="rebase"))
    store = fake.repo("acme/app").store
    tip = store.commits[rebased.sha]
    assert tip.message == "second" and store.commits[tip.parents[0]].message == "Two commits"
    assert [fake.file("acme/app", p) for p in ("t1.txt", "t2.txt", "main.txt")] == [
        "1\n",
        "2\n",
        "m\n",
    ]

    # drafts cannot be merged; deleting a head branch closes its pull request
    draft = fake.add_pull("acme/app", title="Draft", head_branch="wip", draft=True)
    refused = await error(lambda: repo.get_pull(draft["number"]).merge())
    assert (refused.status, refused.data["message"]) == (405, "Pull Request is still a draft")
    await sync(lambda: repo.get_git_ref("heads/wip").delete())
    assert fake.pull("acme/app", draft["number"]).state == "closed"
    no_head = await error(lambda: repo.create_pull(base="main", head="acme:wip", title="Gone"))
    assert (no_head.status, no_head.data["errors"][0]["field"]) == (422, "head")
