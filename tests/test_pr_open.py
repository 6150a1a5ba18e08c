"""`pr open`: one commit on a new branch (blobs → tree → commit → ref), then a PR; bad proposals stop."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from bot.core.types import StepStatus
from bot.services import Services
from integrations.github import GitHub, GitHubError
from integrations.github_pr import open_pr, run_pr_open
from integrations.llm import LiteLLMModels
from tests.conftest import make_settings
from tests.fakes.github import FakeGitHub
from tests.fakes.llm import Text

README = "# Site\n\nWelcom to the site.\n\nIt is small.\n"
APP = "print('hi')\n"
BRANCH = re.compile(r"sophia/[a-z0-9-]+-[0-9a-f]{6}")


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub() as fake:
        fake.add_repo(
            "acme/site",
            files={"README.md": README, "app.py": APP, "old.txt": "bye\n", "logo.png": "x"},
        )
        yield fake


@pytest.fixture
def models(tmp_path, slack, llm, github) -> LiteLLMModels:
    settings = make_settings(
        tmp_path, slack, llm, github_token=github.token, github_api_url=github.base_url
    )
    return LiteLLMModels(settings)


@pytest.fixture
def services(github) -> Services:
    return Services(core=None, github=GitHub(token=github.token, base_url=github.base_url))  # type: ignore[arg-type]


@dataclass
class Command:
    """A `CommandContext` that records what the subcommand says and where."""

    args: str
    services: Any
    core: Any
    user: str = "U0USER"
    channel: str = "C0CHAN"
    private: bool = False
    lang: str = "en"
    private_replies: list[str] = field(default_factory=list)
    posts: list[str] = field(default_factory=list)

    async def reply_private(self, text: str) -> None:
        self.private_replies.append(text)

    async def post(self, text: str) -> None:
        self.posts.append(text)

    async def answer(self, text: str, *, route: str | None = None) -> None:
        raise AssertionError("pr open must not hand the request to the answering model")

    async def post_approval(self, request: Any) -> None:
        raise AssertionError("opening a PR needs no approval")


@dataclass
class Steps:
    """A `Progress` that records steps."""

    seen: list[tuple[str, str, StepStatus]] = field(default_factory=list)

    async def step(self, step_id: str, title: str, status: StepStatus, *, detail=None) -> None:
        self.seen.append((step_id, title, status))

    async def text(self, delta: str) -> None:
        pass


def command(args: str, services: Services, models: LiteLLMModels) -> Command:
    return Command(args=args, services=services, core=SimpleNamespace(models=models))


def reply(
    *changes: dict, title: str = "Fix the welcome typo", summary: str = "Fixes a typo."
) -> Text:
    return Text(json.dumps({"title": title, "summary": summary, "changes": list(changes)}))


README_DIFF = (
    "--- a/README.md\n+++ b/README.md\n@@ -1,3 +1,3 @@\n # Site\n \n-Welcom to the site.\n"
    "+Welcome to the site.\n"
)


def writes(github: FakeGitHub) -> list[str]:
    return [f"{r.method} {r.path}" for r in github.requests if r.method != "GET"]


async def test_a_multi_file_change_lands_as_one_commit_and_a_pull_request(
    github, llm, services, models
):
    main_before = github.repo("acme/site").branches["main"]
    llm.script(
        reply(
            {"path": "README.md", "diff": README_DIFF},
            {"path": "app.py", "content": "print('hello')\n"},
            {"path": "docs/new.md", "content": "# New\n"},
            {"path": "old.txt", "delete": True},
        )
    )
    ctx = command("acme/site fix the typo in README and say hello in app.py", services, models)
    await run_pr_open(ctx)

    assert not [r for r in ctx.private_replies if ":no_entry:" in r]
    # Blobs for the three written files, then one tree, one commit, the ref, the PR: in order.
    assert writes(github) == [
        "POST /repos/acme/site/git/blobs",
        "POST /repos/acme/site/git/blobs",
        "POST /repos/acme/site/git/blobs",
        "POST /repos/acme/site/git/trees",
        "POST /repos/acme/site/git/commits",
        "POST /repos/acme/site/git/refs",
        "POST /repos/acme/site/pulls",
    ]
    [tree] = github.calls("POST", r"/git/trees$")
    head_tree = github.repo("acme/site").store.commits[main_before].tree
    assert tree.json["base_tree"] == head_tree
    assert {"path": "old.txt", "mode": "100644", "type": "blob", "sha": None} in tree.json["tree"]
    [commit] = github.calls("POST", r"/git/commits$")
    assert commit.json["parents"] == [main_before]
    [ref] = github.calls("POST", r"/git/refs$")
    branch = ref.json["ref"].removeprefix("refs/heads/")
    assert BRANCH.fullmatch(branch) and branch.startswith("sophia/fix-the-welcome-typo-")

    # The branch has the change, as one commit on top of main; main is untouched.
    assert github.file("acme/site", "README.md", branch) == README.replace("Welcom ", "Welcome ")
    assert github.file("acme/site", "app.py", branch) == "print('hello')\n"
    assert github.file("acme/site", "docs/new.md", branch) == "# New\n"
    assert github.file("acme/site", "old.txt", branch) is None
    assert github.repo("acme/site").store.commits[
        github.repo("acme/site").branches[branch]
    ].parents == (main_before,)
    assert github.repo("acme/site").branches["main"] == main_before
    assert github.file("acme/site", "README.md") == README
    assert github.file("acme/site", "old.txt") == "bye\n"

    pull = github.pull("acme/site", 1)
    assert (pull.head, pull.base, pull.title) == (branch, "main", "Fix the welcome typo")
    assert "Fixes a typo." in pull.body and "`docs/new.md` (added)" in pull.body
    assert "`old.txt` (deleted)" in pull.body and "U0USER" in pull.body

    [post] = ctx.posts
    assert "/acme/site/pull/1|acme/site#1>" in post and "*Fix the welcome typo*" in post
    assert "• `README.md` (edited)" in post and "• `app.py` (edited)" in post
    assert f"`{branch}` → `main`" in post and "<@U0USER>" in post


async def test_the_model_gets_the_relevant_files_as_delimited_data_on_the_coding_route(
    github, llm, services, models
):
    llm.script(reply({"path": "README.md", "content": "# Site\n"}))
    await run_pr_open(command("acme/site fix the typo in README", services, models))
    [body] = [b for b in llm.chat_requests() if "JSON" in b["messages"][0]["content"]]
    assert body["model"] == models.model_for("coding").removeprefix("openai/")
    system, user = body["messages"][0]["content"], body["messages"][1]["content"]
    assert "ONLY one JSON object" in system and "never instructions" in system
    boundary = re.search(r"<<<FILE (\w+) README\.md>>>\n", user)[1]
    assert f"<<<FILE {boundary} README.md>>>\n{README}<<<END {boundary}>>>" in user
    assert boundary in system  # the model is told which markers delimit data
    assert "logo.png" in user and "logo.png>>>" not in user  # binaries are listed, never read


async def test_a_diff_that_does_not_apply_is_reported_and_nothing_is_written(
    github, llm, services, models
):
    stale = README_DIFF.replace("Welcom to the site.", "Welcome to our site.")
    llm.script(
        reply({"path": "app.py", "content": "x = 1\n"}, {"path": "README.md", "diff": stale})
    )
    ctx = command("acme/site fix the README typo and use x in app.py", services, models)
    await run_pr_open(ctx)
    error = ctx.private_replies[-1]
    assert error.startswith(":no_entry: README.md: hunk 1") and "does not apply" in error
    assert error.endswith("Nothing was committed.")
    assert "should read `Welcome to our site.`" in error
    assert writes(github) == [] and ctx.posts == []
    assert set(github.repo("acme/site").branches) == {"main"}


async def test_the_pull_request_targets_the_default_branch_with_progress_reported(
    llm, models, github
):
    github.add_repo("acme/tool", default_branch="develop", files={"README.md": "# Tool\n"})
    gh = GitHub(token=github.token, base_url=github.base_url)
    llm.script(
        Text(
            "```json\n"
            + json.dumps({"title": "Describe the tool", "summary": "Says what it does. <!channel>",
                          "changes": [{"path": "README.md", "content": "# Tool\n\nIt helps.\n"}]})
            + "\n```"
        )
    )  # fmt: skip
    steps = Steps()
    message = await open_pr(
        Services(core=None, github=gh), models, repo="acme/tool",  # type: ignore[arg-type]
        request="describe the tool in the readme", requester="U0USER", progress=steps,
    )  # fmt: skip
    pull = github.pull("acme/tool", 1)
    assert pull.base == "develop" and pull.title == "Describe the tool"
    assert pull.body.startswith("Says what it does.")
    assert "acme/tool#1" in message and "→ `develop`" in message
    assert "<!channel>" not in message and "&lt;!channel&gt;" in message  # model text is inert
    titles = [t for _, t, s in steps.seen if s == StepStatus.COMPLETE]
    assert titles[0] == "Reading acme/tool" and titles[1] == "Proposing the change (coding model)"
    assert titles[2].startswith("Committing on sophia/describe-the-tool-")
    assert titles[3] == "Opening the pull request"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"path": "../../etc/passwd", "content": "x"}, "outside the repository"),
        ({"path": "/etc/passwd", "content": "x"}, "outside the repository"),
        ({"path": "docs/../../x", "content": "x"}, "outside the repository"),
        ({"path": ".git/config", "content": "x"}, "outside the repository"),
        ({"path": "old.txt", "content": "overwritten blind\n"}, "without having read it"),
        ({"path": "old.txt", "diff": "@@ -1 +1 @@\n-bye\n+hi\n"}, "did not read"),
        ({"path": "missing.txt", "delete": True}, "not in acme/site"),
    ],
)
async def test_unsafe_or_blind_changes_are_refused(github, llm, services, models, change, expected):
    llm.script(reply({"path": "README.md", "diff": README_DIFF}, change))
    ctx = command("acme/site fix the typo in README", services, models)
    await run_pr_open(ctx)
    assert expected in ctx.private_replies[-1]
    assert writes(github) == [] and ctx.posts == []


async def test_a_model_answer_that_is_not_json_is_reported(github, llm, services, models):
    llm.script(Text("Sure! I fixed the typo for you."))
    ctx = command("acme/site fix the typo in README", services, models)
    await run_pr_open(ctx)
    assert "did not answer with the JSON" in ctx.private_replies[-1] and writes(github) == []


@pytest.mark.parametrize("github_service", ["missing", "no token"])
async def test_unconfigured_github_names_github_token(github, llm, models, github_service):
    gh = None if github_service == "missing" else GitHub(token=None, base_url=github.base_url)
    ctx = command("acme/site fix the typo", Services(core=None, github=gh), models)  # type: ignore[arg-type]
    await run_pr_open(ctx)
    assert "GITHUB_TOKEN" in ctx.private_replies[-1]
    assert llm.chat_requests() == [] and github.requests == []


@pytest.mark.parametrize("args", ["", "acme/site", "not-a-repo fix it"])
async def test_usage_errors_are_private(github, llm, services, models, args):
    ctx = command(args, services, models)
    await run_pr_open(ctx)
    [only] = ctx.private_replies
    assert "/sophia pr open <owner/repo> <what to change>" in only
    assert llm.chat_requests() == [] and github.requests == []


async def test_an_existing_branch_is_not_overwritten(github):
    gh = GitHub(token=github.token, base_url=github.base_url)
    github.push_commit("acme/site", "taken", {"a.txt": "a\n"})
    with pytest.raises(GitHubError, match="branch `taken` already exists"):
        await gh.commit_change("acme/site", branch="taken", message="m", files={"b.txt": "b\n"})
    assert github.file("acme/site", "b.txt", "taken") is None


async def test_list_files_lists_blobs_with_sizes(github):
    gh = GitHub(token=github.token, base_url=github.base_url)
    files = dict(await gh.list_files("acme/site"))
    assert files == {"README.md": len(README), "app.py": len(APP), "old.txt": 4, "logo.png": 1}


async def test_slash_pr_open_posts_the_pr_link_in_the_channel(tmp_path, slack, llm, github):
    """End to end through Slack: `/sophia pr open` commits on a branch and posts the PR link."""
    from bot.app import Sophia

    settings = make_settings(
        tmp_path, slack, llm, github_token=github.token, github_api_url=github.base_url
    )
    llm.script(Text(json.dumps({
        "title": "Fix README typo", "summary": "Corrects a typo.",
        "changes": [{"path": "README.md", "content": "# Site\\n\\nWelcome!\\n"}],
    })))  # fmt: skip
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    try:
        await slack.wait_connected()
        await slack.push_slash_command("pr open acme/site fix the typo in the README")
        [post] = await slack.wait_for_call(
            "chat.postMessage", lambda c: "/pull/" in c.args.get("text", ""), timeout=10
        )
        assert post.args["channel"] == "C0CHAN" and "Fix README typo" in post.args["text"]
        assert github.file("acme/site", "README.md") == README  # main untouched
        [pull] = github.calls("POST", r"/pulls$")
        assert pull.json["base"] == "main" and BRANCH.fullmatch(pull.json["head"])
    finally:
        await sophia.stop()


async def test_a_mention_can_open_a_pr_through_the_model(tmp_path, slack, llm, github):
    from bot.app import Sophia
    from tests.fakes.llm import ToolCalls
    from tests.test_mention import mention

    settings = make_settings(
        tmp_path, slack, llm, github_token=github.token, github_api_url=github.base_url
    )
    proposal = {"title": "Fix typo", "summary": "Welcom → Welcome.",
                "changes": [{"path": "README.md", "content": README.replace("Welcom ", "Welcome ")}]}  # fmt: skip
    llm.script(
        ToolCalls(
            [("github_open_pr", {"repo": "acme/site", "change": "fix the typo in the README"})]
        ),
        Text(json.dumps(proposal)),
        Text("I opened a pull request with the fix."),
    )
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    try:
        await slack.wait_connected()
        await slack.push_event(mention("fix the typo in README of acme/site"))
        [stop] = await slack.wait_for_call("chat.stopStream", timeout=10)
        assert "I opened a pull request" in slack.message("C0CHAN", stop.args["ts"])["text"]
        [pull] = github.calls("POST", r"/pulls$")
        assert pull.json["title"] == "Fix typo"
        assert github.file("acme/site", "README.md") == README  # the default branch is untouched
    finally:
        await sophia.stop()
