"""Repository indexing: structural chunks, incremental re-index by blob SHA, `path:line` citations."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bot.settings import Settings
from bot.store import Store
from integrations.code_chunks import chunk_file, should_index
from integrations.github import GitHub
from integrations.index_capability import web_url_for
from integrations.memory.edge_store import EdgeStore
from integrations.memory.embeddings import load_embedder
from integrations.repo_index import RepoIndex
from tests.fakes.github import FakeGitHub

PAYMENTS = '''"""Payments."""

import time


def retry_payment(charge, attempts=3):
    """Retry a failed card charge with exponential backoff."""
    for attempt in range(attempts):
        if charge():
            return True
        time.sleep(2 ** attempt)
    return False


class Refunds:
    def refund(self, charge_id):
        return charge_id
'''
README = "# Shop\n\nA small shop.\n\n## Deploying\n\nRun `fly deploy` from the repository root.\n"


def test_python_is_chunked_by_definitions_with_line_ranges():
    chunks = chunk_file("payments.py", PAYMENTS)
    ranges = [(c.start, c.end, c.text.splitlines()[0]) for c in chunks]
    assert ranges == [
        (1, 3, '"""Payments."""'),
        (6, 12, "def retry_payment(charge, attempts=3):"),
        (15, 17, "class Refunds:"),
    ]


def test_markdown_is_chunked_by_headings():
    assert [c.text.splitlines()[0] for c in chunk_file("README.md", README)] == [
        "# Shop",
        "## Deploying",
    ]


def test_binaries_vendored_and_huge_files_are_skipped():
    assert should_index("src/app.py", 120)
    assert not should_index("node_modules/x/index.js", 10)
    assert not should_index("assets/logo.png", 10)
    assert not should_index("package-lock.json", 10)
    assert not should_index("data/big.sql", 5_000_000)


def test_web_urls_for_github_and_enterprise():
    assert web_url_for("https://api.github.com") == "https://github.com"
    assert web_url_for("https://ghe.acme.com/api/v3") == "https://ghe.acme.com"


@pytest.fixture
async def github() -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub() as fake:
        fake.add_repo(
            "acme/shop",
            files={"payments.py": PAYMENTS, "README.md": README, "logo.png": "x", "old.py": "def gone():\n    pass\n"},
        )  # fmt: skip
        yield fake


@pytest.fixture
async def index(tmp_path, github) -> AsyncIterator[RepoIndex]:
    store = await Store.open(f"sqlite:///{tmp_path / 'sophia.db'}")
    edge = EdgeStore.open(tmp_path / "edge")
    embedder = load_embedder(Settings(_env_file=None))
    collection = edge.collection("code", embedder.dims)
    yield RepoIndex(
        github=GitHub(token=github.token, base_url=github.base_url), store=store,
        collection=collection, embedder=embedder, web_url=github.base_url,
    )  # fmt: skip
    edge.close()
    await store.close()


def file_reads(github: FakeGitHub) -> list[str]:
    return [r.path.split("/contents/")[1] for r in github.requests if "/contents/" in r.path]


async def test_search_cites_the_right_path_and_lines(index, github):
    report = await index.sync("acme/shop")
    assert (report.files, report.changed, report.removed) == (3, 3, 0)  # logo.png skipped
    [hit, *_] = await index.search("how do we retry a failed card charge?", repo="acme/shop")
    assert (hit.path, hit.start, hit.end) == ("payments.py", 6, 12)
    assert hit.url.endswith("/acme/shop/blob/main/payments.py#L6-L12")
    assert hit.citation.startswith("<http") and "|payments.py:6>" in hit.citation


async def test_re_index_touches_only_changed_files_and_removes_deleted_ones(index, github):
    await index.sync("acme/shop")
    before = len(file_reads(github))
    github.push_commit(
        "acme/shop", "main",
        {"README.md": README.replace("fly deploy", "fly deploy --remote-only"), "old.py": None},
    )  # fmt: skip
    report = await index.sync("acme/shop")
    assert (report.changed, report.removed) == (1, 1)
    assert file_reads(github)[before:] == ["README.md"]  # only the changed file was read again
    hits = await index.search("remote-only deploy", repo="acme/shop")
    assert hits[0].path == "README.md" and "--remote-only" in hits[0].text
    assert all(h.path != "old.py" for h in await index.search("gone", repo="acme/shop", limit=10))
    again = await index.sync("acme/shop")
    assert (again.changed, again.removed) == (0, 0)


async def test_index_through_slack_then_a_question_cites_path_and_line(
    tmp_path, slack, llm, github
):
    from bot.app import Sophia
    from tests.conftest import answer_requests, make_settings
    from tests.fakes.llm import Text, ToolCalls
    from tests.test_mention import mention

    settings = make_settings(
        tmp_path, slack, llm, github_token=github.token, github_api_url=github.base_url
    )
    sophia = Sophia(settings, socket_ping_interval=1.0)
    await sophia.start()
    try:
        await slack.wait_connected()
        await sophia.memory_ready.wait()
        await slack.push_slash_command("index acme/shop")
        [stop] = await slack.wait_for_call("chat.stopStream", timeout=20)
        final = slack.message("C0CHAN", stop.args["ts"])
        assert "Indexed `acme/shop` on `main`: 3 files" in final["text"]
        assert (
            final["tasks"]["embed"]["title"] == "Indexed 3 files (6 chunks)"
        )  # progress in the thread

        llm.script(ToolCalls([("search_code", {"query": "retry a failed card charge", "repo": "acme/shop"})]),
                   Text("See payments.py:6."))  # fmt: skip
        await slack.push_event(mention("where do we retry card charges?"))
        await slack.wait_for_call("chat.stopStream", count=2, timeout=10)
        tool_result = answer_requests(llm)[-1]["messages"][-1]["content"]
        assert "payments.py:6-12" in tool_result and "#L6-L12|payments.py:6>" in tool_result
    finally:
        await sophia.stop()
