"""Memory: scopes and the privacy rule, forgetting, restarts, one owner per store, extraction.

Real mem0, real WordLlama embeddings and a real store, offline: the embedded Qdrant Edge shard
(the default) and, for the same behaviour, qdrant-client's local mode through QDRANT_URL.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.errors import ConfigError
from bot.core.tools import ToolContext, ToolRegistry
from bot.settings import Settings
from integrations.llm import LiteLLMModels
from integrations.memory import MemoryService, Scope, Where, memory_tools
from tests.fakes.llm import Error, FakeLLM, Text

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [
    json.loads(line) for line in (ROOT / "tests/data/memory_pairs.jsonl").read_text().splitlines()
]

ALICE_DM = Where(user="UALICE", channel="DALICE", private=True)
ALICE_IN_PROJECT = Where(user="UALICE", channel="CPROJECT", private=False)
ALICE_IN_RANDOM = Where(user="UALICE", channel="CRANDOM", private=False)
BOB_IN_PROJECT = Where(user="UBOB", channel="CPROJECT", private=False)
BOB_IN_RANDOM = Where(user="UBOB", channel="CRANDOM", private=False)
BOB_DM = Where(user="UBOB", channel="DBOB", private=True)
EVERYWHERE = [ALICE_DM, ALICE_IN_PROJECT, ALICE_IN_RANDOM, BOB_IN_PROJECT, BOB_IN_RANDOM, BOB_DM]


def make_settings(tmp_path: Path, backend: str, **overrides: object) -> Settings:
    """Settings for one backend: the embedded default, or qdrant-client local mode via QDRANT_URL."""
    url = f"file:{tmp_path / 'qdrant-local'}" if backend == "client" else None
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "qdrant_url": url,
        "embeddings": None,
    }
    return Settings(_env_file=None, **(values | overrides))


@pytest.fixture(params=["edge", "client"])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def memory(tmp_path: Path, backend: str):
    service = await MemoryService.open(make_settings(tmp_path, backend))
    yield service
    await service.close()


async def texts(service: MemoryService, query: str, where: Where) -> list[str]:
    return [item.text for item in await service.recall(query, where=where)]


async def recalled_in(service: MemoryService, query: str, text: str) -> list[Where]:
    """Every place (of EVERYWHERE) where asking `query` brings back `text`."""
    return [w for w in EVERYWHERE if text in await texts(service, query, w)]


# --- scopes -------------------------------------------------------------------------------------


async def test_channel_scope_is_the_default_and_stays_in_its_channel(memory):
    item = await memory.remember(
        "The Falcon launch date is March 3", scope=None, where=ALICE_IN_PROJECT
    )
    assert (item.scope, item.channel, item.author, item.private) == (
        Scope.CHANNEL,
        "CPROJECT",
        "UALICE",
        False,
    )
    where = await recalled_in(memory, "when does Falcon launch?", item.text)
    assert where == [ALICE_IN_PROJECT, BOB_IN_PROJECT]


async def test_user_scope_follows_the_person_but_not_to_others(memory):
    item = await memory.remember(
        "Alice prefers written specs before any kickoff", scope=Scope.USER, where=ALICE_IN_PROJECT
    )
    assert (item.scope, item.user) == (Scope.USER, "UALICE")
    where = await recalled_in(memory, "what does Alice want before a kickoff?", item.text)
    assert where == [ALICE_DM, ALICE_IN_PROJECT, ALICE_IN_RANDOM]


async def test_workspace_memory_is_recalled_everywhere(memory):
    item = await memory.remember(
        "The holiday code freeze starts on December 15", scope=Scope.WORKSPACE, where=BOB_IN_RANDOM
    )
    assert item.scope is Scope.WORKSPACE
    where = await recalled_in(memory, "when does the code freeze start?", item.text)
    assert where == EVERYWHERE


# --- the privacy rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("asked", [None, Scope.USER, Scope.CHANNEL, Scope.WORKSPACE])
async def test_a_dm_fact_is_private_and_recalled_only_in_that_dm(memory, asked):
    item = await memory.remember(
        "Alice is interviewing with another company", scope=asked, where=ALICE_DM
    )
    assert (item.scope, item.private, item.user) == (Scope.USER, True, "UALICE")
    where = await recalled_in(memory, "is Alice interviewing elsewhere?", item.text)
    assert where == [ALICE_DM]
    for place in EVERYWHERE[1:]:
        assert item.text not in [
            i.text for i in await memory.search_visible("Alice interviewing", where=place)
        ]


async def test_a_private_channel_memory_never_reaches_a_public_channel(memory):
    secret = Where(user="UALICE", channel="GSECRET", private=False)  # a private channel
    item = await memory.remember(
        "The acquisition of Initech closes in May", scope=None, where=secret
    )
    for place in [*EVERYWHERE, Where("UALICE", "CGENERAL", False)]:
        assert item.text not in await texts(
            memory, "when does the Initech acquisition close?", place
        )
    assert item.text in await texts(memory, "when does the Initech acquisition close?", secret)


async def test_search_visible_shows_only_what_may_be_told_here(memory):
    await memory.remember("Deploy window for Falcon is Tuesday", scope=None, where=ALICE_IN_PROJECT)
    await memory.remember("Falcon budget is 40k", scope=None, where=ALICE_DM)
    await memory.remember(
        "Falcon is the mobile redesign", scope=Scope.WORKSPACE, where=BOB_IN_RANDOM
    )
    shown = {i.text for i in await memory.search_visible("Falcon", where=BOB_IN_RANDOM)}
    assert shown == {"Falcon is the mobile redesign"}
    shown = {i.text for i in await memory.search_visible("Falcon", where=ALICE_IN_PROJECT)}
    assert shown == {"Deploy window for Falcon is Tuesday", "Falcon is the mobile redesign"}


async def test_off_topic_chatter_recalls_nothing(memory):
    await memory.remember(
        "Grace wants pull requests under 400 lines", scope=Scope.WORKSPACE, where=BOB_IN_RANDOM
    )
    for chatter in ("thanks!", "lol", "ping", "ok cool"):
        assert await memory.recall(chatter, where=BOB_IN_RANDOM) == []
    assert await memory.recall("   ", where=BOB_IN_RANDOM) == []


# --- listing, deleting, forgetting --------------------------------------------------------------


async def test_list_about_shows_a_persons_memories_newest_first(memory):
    first = await memory.remember("Alice likes oat milk", scope=Scope.USER, where=ALICE_IN_PROJECT)
    second = await memory.remember("Alice runs the Friday demo", scope=None, where=ALICE_IN_PROJECT)
    third = await memory.remember("Alice is moving to Lisbon", scope=None, where=ALICE_DM)
    await memory.remember("Bob likes tea", scope=Scope.USER, where=BOB_IN_PROJECT)
    listed = await memory.list_about("UALICE")
    assert [i.id for i in listed] == [third.id, second.id, first.id]
    assert [i.id for i in await memory.list_about("UALICE", limit=1)] == [third.id]


async def test_only_the_author_or_the_subject_may_delete(memory):
    item = await memory.remember(
        "Release train leaves on Tuesdays", scope=None, where=ALICE_IN_PROJECT
    )
    assert await memory.delete(item.id, user="UBOB") is False
    assert await memory.delete("not-a-memory-id", user="UALICE") is False
    assert await memory.delete(item.id, user="UALICE") is True
    assert await texts(memory, "when does the release train leave?", ALICE_IN_PROJECT) == []
    assert await memory.delete(item.id, user="UALICE") is False


async def test_forget_user_removes_everything_of_that_person_and_nothing_else(memory, tmp_path):
    alice = [
        await memory.remember(
            "Alice prefers async updates", scope=Scope.USER, where=ALICE_IN_PROJECT
        ),
        await memory.remember(
            "Alice set the Falcon deadline to June 1", scope=None, where=ALICE_IN_PROJECT
        ),
        await memory.remember(
            "Alice announced the offsite is in Lisbon", scope=Scope.WORKSPACE, where=ALICE_IN_RANDOM
        ),
        await memory.remember(
            "Alice has a doctor's appointment Friday", scope=None, where=ALICE_DM
        ),
    ]
    bob = [
        await memory.remember("Bob owns the billing service", scope=None, where=BOB_IN_PROJECT),
        await memory.remember(
            "The offsite budget is 20k", scope=Scope.WORKSPACE, where=BOB_IN_RANDOM
        ),
    ]
    assert await memory.forget_user("UALICE") == 4
    assert await memory.list_about("UALICE") == []
    assert await memory.count() == 2
    for item in alice:
        for place in EVERYWHERE:
            assert item.text not in await texts(memory, item.text, place)
    assert {i.text for i in await memory.list_about("UBOB")} == {i.text for i in bob}
    assert "Bob owns the billing service" in await texts(
        memory, "who owns billing?", ALICE_IN_PROJECT
    )
    history = sqlite3.connect(tmp_path / "data" / "memory" / "history.db")
    rows = history.execute("SELECT old_memory, new_memory FROM history").fetchall()
    assert not any("Alice" in (old or "") + (new or "") for old, new in rows)
    assert await memory.forget_user("UALICE") == 0


# --- lifecycle ----------------------------------------------------------------------------------


async def test_memories_survive_a_restart(tmp_path, backend):
    settings = make_settings(tmp_path, backend)
    first = await MemoryService.open(settings)
    await first.remember("Backups are kept for 35 days", scope=Scope.WORKSPACE, where=BOB_IN_RANDOM)
    await first.close()
    second = await MemoryService.open(settings)
    try:
        assert await texts(second, "how long do we keep backups?", ALICE_DM) == [
            "Backups are kept for 35 days"
        ]
    finally:
        await second.close()


async def test_a_second_open_of_the_same_store_is_refused(tmp_path, backend):
    settings = make_settings(tmp_path, backend)
    first = await MemoryService.open(settings)
    try:
        with pytest.raises(ConfigError) as refused:
            await MemoryService.open(settings)
        assert "QDRANT_URL" in str(refused.value) and "SOPHIA_DATA_DIR" in str(refused.value)
        await first.remember("Still works after the refusal", scope=None, where=BOB_IN_PROJECT)
    finally:
        await first.close()


def test_another_process_is_refused_while_the_store_is_open(tmp_path):
    code = (
        "import asyncio, sys\n"
        "from bot.settings import Settings\n"
        "from bot.core.errors import ConfigError\n"
        "from integrations.memory import MemoryService\n"
        f"s = Settings(_env_file=None, data_dir={str(tmp_path / 'data')!r}, qdrant_url=None)\n"
        "try:\n    asyncio.run(MemoryService.open(s))\n"
        "except ConfigError as e:\n    print('refused:', e); sys.exit(3)\n"
    )

    async def hold_and_try() -> subprocess.CompletedProcess:
        service = await MemoryService.open(make_settings(tmp_path, "edge"))
        try:
            command = [sys.executable, "-c", code]
            return await asyncio.to_thread(
                subprocess.run, command, cwd=ROOT, capture_output=True, text=True
            )
        finally:
            await service.close()

    result = asyncio.run(hold_and_try())
    assert result.returncode == 3, result.stderr
    assert "another Sophia process" in result.stdout


async def test_changing_the_embedder_is_refused(tmp_path, backend):
    await (await MemoryService.open(make_settings(tmp_path, backend))).close()
    changed = make_settings(tmp_path, backend, embeddings="openai/text-embedding-3-small")
    with pytest.raises(ConfigError) as refused:
        await MemoryService.open(changed)
    assert refused.value.variable == "SOPHIA_EMBEDDINGS"
    assert "re-index" in str(refused.value).lower()
    await (await MemoryService.open(make_settings(tmp_path, backend))).close()  # lock released


async def test_an_unreachable_qdrant_server_is_a_config_error(tmp_path):
    settings = make_settings(tmp_path, "edge", qdrant_url="http://127.0.0.1:9")
    with pytest.raises(ConfigError) as refused:
        await MemoryService.open(settings)
    assert refused.value.variable == "QDRANT_URL"


async def test_reindex_moves_the_store_to_the_new_embedder(tmp_path):
    async with FakeLLM() as fake:
        service = await MemoryService.open(make_settings(tmp_path, "edge"))
        await service.remember(
            "Backups are kept for 35 days", scope=Scope.WORKSPACE, where=BOB_IN_RANDOM
        )
        await service.close()
        hosted = make_settings(
            tmp_path,
            "edge",
            embeddings="openai/fake-embed",
            llm_api_base=fake.base_url,
            llm_api_key="k",
        )
        assert await MemoryService.reindex(hosted) == 1
        service = await MemoryService.open(hosted)
        try:
            assert service.embedder.dims == 8
            # The fake embeds by hash: only the identical text is close, which is all this needs.
            assert await texts(service, "Backups are kept for 35 days", ALICE_DM) == [
                "Backups are kept for 35 days"
            ]
        finally:
            await service.close()
        with pytest.raises(ConfigError):
            await MemoryService.open(make_settings(tmp_path, "edge"))


async def test_fifty_concurrent_adds_all_land(memory):
    where = [Where(f"U{i % 7}", f"C{i % 3}", False) for i in range(50)]
    items = await asyncio.gather(
        *(
            memory.remember(f"Fact number {i} about the rollout", scope=Scope.WORKSPACE, where=w)
            for i, w in enumerate(where)
        )
    )
    assert len({i.id for i in items}) == 50
    assert await memory.count() == 50
    found = await memory.search_visible("Fact number 17 about the rollout", where=BOB_DM, limit=50)
    assert "Fact number 17 about the rollout" in [i.text for i in found]


# --- quality ------------------------------------------------------------------------------------


async def test_recall_finds_the_right_memory_for_questions_phrased_differently(tmp_path):
    service = await MemoryService.open(make_settings(tmp_path, "edge"))
    try:
        await service.remember_many(
            [p["memory"] for p in PAIRS], scope=Scope.WORKSPACE, where=BOB_IN_RANDOM
        )
        hits = [p["memory"] in await texts(service, p["question"], ALICE_IN_PROJECT) for p in PAIRS]
        # bench/memory.py measures 0.909 with the tuned threshold; a little slack for library updates.
        assert sum(hits) / len(PAIRS) >= 0.88
    finally:
        await service.close()


# --- learning and tools -------------------------------------------------------------------------


async def test_learn_extracts_facts_with_the_speed_route_and_keeps_dm_facts_private(tmp_path):
    async with FakeLLM() as fake:
        settings = make_settings(tmp_path, "edge", llm_api_base=fake.base_url, llm_api_key="k")
        fact = {"memory": [{"id": "0", "text": "<@UALICE> prefers tabs over spaces"}]}
        fake.script(Text(json.dumps(fact)))
        service = await MemoryService.open(settings, models=LiteLLMModels(settings))
        try:
            exchange = [
                {"role": "user", "content": "I always use tabs"},
                {"role": "assistant", "content": "Noted!"},
            ]
            await service.learn(exchange, where=ALICE_DM)
            request = fake.chat_requests()[-1]
            assert request["model"] == LiteLLMModels(settings).model_for("speed").removeprefix(
                "openai/"
            )
            assert "<@UALICE>" in request["messages"][-1]["content"]
            where = await recalled_in(
                service, "tabs or spaces for Alice?", "<@UALICE> prefers tabs over spaces"
            )
            assert where == [ALICE_DM]
            fake.script(Error(500))
            await service.learn(exchange, where=ALICE_IN_PROJECT)  # a failing model never raises
            db = sqlite3.connect(tmp_path / "data" / "memory" / "history.db")
            assert db.execute("SELECT count(*) FROM messages").fetchone() != (0,)
            assert await service.forget_user("UALICE") == 1
            assert db.execute("SELECT count(*) FROM messages").fetchone() == (0,)
            assert db.execute("SELECT count(*) FROM history").fetchone() == (0,)
        finally:
            await service.close()


async def test_learn_without_a_model_does_nothing(memory):
    await memory.learn([{"role": "user", "content": "I like tea"}], where=ALICE_DM)
    assert await memory.count() == 0


async def test_remember_and_recall_tools_follow_the_place(memory):
    registry = ToolRegistry(memory_tools(memory))
    dm = ToolContext(user="UALICE", channel="DALICE", thread_ts=None, private=True, request_id="r1")
    channel = ToolContext(
        user="UALICE", channel="CPROJECT", thread_ts="1.2", private=False, request_id="r2"
    )
    stored = await registry.call(
        "remember", {"text": "My manager is Victor", "scope": "workspace"}, dm
    )
    assert stored.ok and "private" in json.loads(stored.content)["kept_as"]
    bad = await registry.call("remember", {"text": "x", "scope": "galaxy"}, channel)
    assert not bad.ok
    found = await registry.call("recall", {"query": "who is my manager?"}, dm)
    assert [r["text"] for r in json.loads(found.content)] == ["My manager is Victor"]
    assert (
        json.loads(
            (await registry.call("recall", {"query": "who is my manager?"}, channel)).content
        )
        == []
    )


def test_importing_memory_loads_no_heavy_library():
    code = "import sys, integrations.memory; print(sorted({'mem0','qdrant_edge','wordllama','qdrant_client'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
