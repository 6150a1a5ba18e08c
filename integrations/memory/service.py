"""Sophia's long-term memory: remember, recall, list and forget under the privacy rule (§7).

mem0 does the memory work (fact extraction, history) over Qdrant: an embedded Edge shard in the
data dir by default, a Qdrant server when QDRANT_URL is set. mem0 is synchronous, so each call
runs in a worker thread; `scopes` decides where a memory is kept and what a place may see.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from bot.core.memory import MemoryItem, Scope, Where
from bot.settings import Settings
from integrations.memory import scopes
from integrations.memory.backend import Backend, open_backend, rows
from integrations.memory.scopes import AGENT

log = logging.getLogger("sophia.memory")
T = TypeVar("T")

LEARN_INSTRUCTIONS = (
    "These messages come from Slack. The user is <@{user}>: write facts about them with that "
    "mention instead of 'User', so they still make sense when read in a shared channel. Keep "
    "only durable facts (preferences, decisions, deadlines, owners, customers); skip small talk."
)
ALL = 10_000_000  # "no limit" for store listings


class MemoryService:
    """Sophia's memory; open it with `await MemoryService.open(settings, models=...)`."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._memory = backend.memory
        self.embedder = backend.embedder
        self.threshold: float = backend.embedder.threshold  # minimum cosine score worth recalling
        self.backend = "qdrant-client" if backend.client is not None else "qdrant-edge"
        # qdrant-client's local mode is not thread-safe (concurrent upserts fail inside its
        # SQLite persistence), so there every call is serialised; Edge and servers need not be.
        self._serial = threading.Lock() if backend.local else contextlib.nullcontext()
        self._closed = False

    @property
    def edge(self) -> Any:
        """The embedded `EdgeStore` (other collections may live beside memory); None with QDRANT_URL."""
        return self._backend.owner

    async def _run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run blocking mem0 work in a worker thread."""

        def call() -> T:
            with self._serial:
                return fn(*args, **kwargs)

        return await asyncio.to_thread(call)

    # -- lifecycle ---------------------------------------------------------------------------

    @classmethod
    async def open(cls, settings: Settings, *, models: Any = None) -> MemoryService:
        """Open the store in the data dir (or at QDRANT_URL); a ConfigError says what to change.

        `models` (a `LiteLLMModels`) enables `learn`; without it learning is a no-op.
        """
        return cls(await asyncio.to_thread(open_backend, settings, models))

    async def close(self) -> None:
        """Close the history DB and release the Edge shard's lock (a restart can reopen it)."""
        if not self._closed:
            self._closed = True
            await self._run(self._backend.close)

    @classmethod
    async def reindex(cls, settings: Settings) -> int:
        """Re-embed every memory with the embedder SOPHIA_EMBEDDINGS selects now; returns count."""
        service = cls(await asyncio.to_thread(open_backend, settings, None, reindexing=True))
        try:
            return await service._run(service._reindex)
        finally:
            await service.close()

    def _reindex(self) -> int:
        store = self._memory.vector_store
        kept = rows(store.list(filters={"agent_id": AGENT}, top_k=ALL))
        store.embedding_model_dims = self.embedder.dims
        store.reset()  # the collection is recreated with the new dimension
        for start in range(0, len(kept), 1000):
            batch = kept[start : start + 1000]
            vectors = self.embedder.embed([r.payload.get("data", "") for r in batch])
            ids = [str(r.id) for r in batch]
            store.insert(vectors=vectors, payloads=[r.payload for r in batch], ids=ids)
        self._backend.write_marker()
        return len(kept)

    # -- remembering -------------------------------------------------------------------------

    async def remember(
        self,
        text: str,
        *,
        scope: Scope | None,
        where: Where,
        source: str | None = None,
        thread_ts: str | None = None,
    ) -> MemoryItem:
        """Keep `text`, said by `where.user` in `where`; the item returned says how it was kept."""
        text = text.strip()
        if not text:
            raise ValueError("there is nothing to remember in an empty text")
        kept_as = scopes.placement(scope, where)
        meta = scopes.metadata(kept_as, where, source=source, thread_ts=thread_ts)
        result = await self._run(
            self._memory.add,
            text,
            user_id=scopes.space(kept_as, where),
            agent_id=AGENT,
            metadata=meta,
            infer=False,
        )
        return scopes.item(result["results"][0]["id"], {**meta, "data": text})

    async def remember_many(
        self,
        texts: list[str],
        *,
        scope: Scope | None,
        where: Where,
        source: str | None = None,
        thread_ts: str | None = None,
    ) -> list[MemoryItem]:
        """Keep many texts from one place at once: one embedding batch, one write, one commit."""
        texts = [t.strip() for t in texts if t.strip()]
        if not texts:
            return []
        kept_as = scopes.placement(scope, where)
        meta = scopes.metadata(kept_as, where, source=source, thread_ts=thread_ts)
        meta |= {"user_id": scopes.space(kept_as, where), "agent_id": AGENT, "role": "user"}
        return await self._run(self._add_batch, texts, meta)

    def _add_batch(self, texts: list[str], meta: dict[str, Any]) -> list[MemoryItem]:
        """mem0's `add(infer=False)` for a batch: the same payloads and history rows."""
        from mem0.utils.lemmatization import lemmatize_for_bm25

        now = datetime.now(UTC).isoformat()
        ids = [str(uuid.uuid4()) for _ in texts]
        payloads = [
            meta
            | {
                "data": text,
                "hash": hashlib.md5(text.encode()).hexdigest(),
                "created_at": now,
                "updated_at": now,
                "text_lemmatized": lemmatize_for_bm25(text),
            }
            for text in texts
        ]
        vectors = self._memory.embedding_model.embed_batch(texts, "add")
        self._memory.vector_store.insert(vectors=vectors, payloads=payloads, ids=ids)
        self._memory.db.batch_add_history(
            [
                {"memory_id": i, "new_memory": t, "event": "ADD", "created_at": now, "role": "user"}
                for i, t in zip(ids, texts, strict=True)
            ]
        )
        return [scopes.item(i, p) for i, p in zip(ids, payloads, strict=True)]

    async def learn(self, conversation: list[dict[str, Any]], *, where: Where) -> None:
        """Keep the durable facts of an exchange (mem0 extraction on the `speed` route); never raises."""
        if self._memory.llm.models is None:
            return
        # `name` lets forget_user find this person's raw messages in mem0's messages table.
        messages = [
            {"role": m["role"], "content": str(m["content"]), "name": where.user}
            for m in conversation
            if m.get("role") in ("user", "assistant") and m.get("content")
        ]
        if not messages:
            return
        kept_as = scopes.placement(None, where)
        try:
            await self._run(
                self._memory.add,
                messages,
                user_id=scopes.space(kept_as, where),
                agent_id=AGENT,
                metadata=scopes.metadata(kept_as, where, source=None, thread_ts=None),
                infer=True,
                prompt=LEARN_INSTRUCTIONS.format(user=where.user),
            )
        except Exception as exc:
            log.warning("memory learning failed", extra={"error_kind": type(exc).__name__})

    # -- recalling ---------------------------------------------------------------------------

    async def recall(self, query: str, *, where: Where, limit: int = 5) -> list[MemoryItem]:
        """The memories relevant to `query` that may be told to `where.user` in `where`."""
        if not query.strip():
            return []
        return await self._run(self._search, query, where, limit)

    async def search_visible(
        self, query: str, *, where: Where, limit: int = 10
    ) -> list[MemoryItem]:
        """`/sophia memory search`: what the asker could be told here (the recall rule)."""
        return await self.recall(query, where=where, limit=limit)

    def _search(self, query: str, where: Where, limit: int) -> list[MemoryItem]:
        spaces = scopes.visible_spaces(where)
        filters = {"agent_id": AGENT, "OR": [{"user_id": s} for s in spaces]}
        found = self._memory.search(query, top_k=limit, filters=filters, threshold=self.threshold)
        return [
            scopes.item(r["id"], {**(r.get("metadata") or {}), "data": r["memory"]}, r["score"])
            for r in found["results"]
            if r.get("user_id") in spaces  # belt and braces: the filter already did this
        ]

    async def list_about(self, user: str, limit: int = 50) -> list[MemoryItem]:
        """What Sophia keeps about `user`: their USER memories and what they wrote, newest first."""
        found = await self._run(self._about, user, 10_000)
        items = sorted((scopes.item(r.id, r.payload) for r in found), key=lambda i: -i.created_at)
        return items[:limit]

    def _about(self, user: str, top_k: int) -> list[Any]:
        filters = {"agent_id": AGENT, "OR": [{"subject": user}, {"author": user}]}
        return rows(self._memory.vector_store.list(filters=filters, top_k=top_k))

    async def count(self) -> int:
        """How many memories are kept (for `doctor` and benchmarks)."""
        return await self._run(self._backend.count, {"agent_id": AGENT})

    # -- forgetting --------------------------------------------------------------------------

    async def delete(self, memory_id: str, *, user: str) -> bool:
        """Delete one memory if `user` wrote it or it is about them; False otherwise."""
        return await self._run(self._delete, memory_id, user)

    def _delete(self, memory_id: str, user: str) -> bool:
        try:
            found = self._memory.vector_store.get(vector_id=memory_id)
        except Exception:  # a malformed id
            return False
        payload = getattr(found, "payload", None) or {}
        if payload.get("agent_id") != AGENT:
            return False
        if user not in (payload.get("author"), payload.get("subject")):
            return False
        self._memory.delete(memory_id)
        self._purge_history([memory_id])
        return True

    async def forget_user(self, user: str) -> int:
        """Delete `user`'s USER memories and all they wrote, mem0 history too; returns count."""
        return await self._run(self._forget, user)

    def _forget(self, user: str) -> int:
        count = 0
        while found := self._about(user, 1000):
            ids = [str(r.id) for r in found]
            for memory_id in ids:
                self._memory.delete(memory_id)
            self._purge_history(ids)
            count += len(ids)
        db = self._memory.db
        with db._lock:  # mem0's messages table keeps recent raw exchanges for extraction context
            db.connection.execute(
                "DELETE FROM messages WHERE name = ? OR instr(session_scope, ?) > 0",
                (user, f"user_id=dm:{user}:"),
            )
            db.connection.commit()
        return count

    def _purge_history(self, ids: list[str]) -> None:
        """Drop mem0's history rows (its DELETE rows would keep the old text)."""
        db = self._memory.db
        with db._lock:
            db.connection.executemany(
                "DELETE FROM history WHERE memory_id = ?", [(i,) for i in ids]
            )
            db.connection.commit()
