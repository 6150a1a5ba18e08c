"""mem0 wired to Sophia: its vector store (Edge shard or qdrant-client), embedder and model.

mem0's config validation only knows its own providers, so the configs are built with
`model_construct` and Sophia's classes are registered in mem0's factories: `qdrant_edge`
(vector store), `sophia` (embedder, and the LLM that calls the `speed` route). A marker point
records which embedder built a store; opening it with another one is refused.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.errors import ConfigError
from bot.settings import Settings

log = logging.getLogger("sophia.memory")

COLLECTION = "sophia_memory"
# A payload-only point recording which embedder built the store (never matches a recall filter).
MARKER_ID = str(uuid.uuid5(uuid.NAMESPACE_URL, "sophia:memory:embedder"))


@dataclass
class Backend:
    """An opened mem0 `Memory` and what must be closed with it."""

    memory: Any
    embedder: Any
    owner: Any = None  # EdgeStore (embedded default)
    client: Any = None  # QdrantClient (QDRANT_URL)

    @property
    def local(self) -> bool:
        """qdrant-client's in-process local mode (`:memory:` or a path)."""
        inner = getattr(self.client, "_client", None)
        return self.client is not None and type(inner).__name__ == "QdrantLocal"

    def write_marker(self) -> None:
        """Record the embedder that builds this store."""
        dims = self.embedder.dims
        payload = {"kind": "embedder", "name": self.embedder.name, "dims": dims}
        self.memory.vector_store.insert(
            vectors=[[1.0] + [0.0] * (dims - 1)], payloads=[payload], ids=[MARKER_ID]
        )

    def count(self, filters: dict[str, Any]) -> int:
        """How many points match mem0-style equality `filters` (without reading payloads)."""
        if self.owner is not None:
            from integrations.memory.edge_store import to_filter

            return self.owner.collection(COLLECTION).count(to_filter(filters))
        from qdrant_client import models

        must = [
            models.FieldCondition(key=k, match=models.MatchValue(value=v))
            for k, v in filters.items()
        ]
        return self.client.count(
            COLLECTION, count_filter=models.Filter(must=must), exact=True
        ).count

    def close(self) -> None:
        """Close mem0's history DB, then the store (releasing the Edge lock)."""
        self.memory.close()
        if self.owner is not None:
            self.owner.close()
        if self.client is not None:
            self.client.close()


class SpeedRouteLLM:
    """mem0's LLM for fact extraction: the `speed` route of Sophia's litellm Router."""

    def __init__(self, config: Any = None) -> None:
        self.models: Any = None  # LiteLLMModels, bound by `open_backend`

    def generate_response(
        self, messages: list[dict], response_format: Any = None, tools: Any = None, **_: Any
    ) -> str:
        """One non-streamed completion; mem0 asks for a JSON object."""
        if self.models is None:
            raise RuntimeError("no model is configured for memory extraction")
        extra = {"response_format": response_format} if response_format else {}
        response = self.models.router.completion(
            model="speed", messages=messages, timeout=self.models.timeout_for("speed"), **extra
        )
        return response.choices[0].message.content or ""


def open_backend(settings: Settings, models: Any, *, reindexing: bool = False) -> Backend:
    """Open mem0 over the configured store (blocking); ConfigError says what to change."""
    root = Path(settings.data_dir) / "memory"
    root.mkdir(parents=True, exist_ok=True)
    quiet_mem0(root)
    from mem0 import Memory
    from mem0.configs.base import MemoryConfig
    from mem0.embeddings.configs import EmbedderConfig
    from mem0.llms.configs import LlmConfig
    from mem0.utils.factory import LlmFactory
    from mem0.vector_stores.configs import VectorStoreConfig

    from integrations.memory import edge_store, embeddings

    embedder = embeddings.load_embedder(settings)
    backend = Backend(memory=None, embedder=embedder)
    try:
        if settings.qdrant_url:
            backend.client = qdrant_client(settings)
            try:
                stored = _marker_on_server(backend.client)
            except Exception as exc:  # unreachable, refused key, TLS...
                raise ConfigError(
                    f"Qdrant at QDRANT_URL did not answer ({type(exc).__name__}); check "
                    "QDRANT_URL and QDRANT_API_KEY.",
                    variable="QDRANT_URL",
                ) from exc
        else:
            backend.owner = edge_store.EdgeStore.open(root / "qdrant_edge")
            stored = _marker_on_edge(backend.owner)
        if stored and stored.get("name") != embedder.name and not reindexing:
            raise ConfigError(
                f"The memory store was built with the embedder {stored.get('name')} but "
                f"SOPHIA_EMBEDDINGS now selects {embedder.name}; mixing them would make recall "
                "meaningless. Re-index with `sophia memory reindex` (re-embeds every memory "
                "with the new model), or set SOPHIA_EMBEDDINGS back.",
                variable="SOPHIA_EMBEDDINGS",
            )
        if stored and not reindexing:
            embedder.assume_dims(stored["dims"])
        if backend.client is not None:
            store = VectorStoreConfig(
                provider="qdrant",
                config={
                    "client": backend.client,
                    "collection_name": COLLECTION,
                    "embedding_model_dims": embedder.dims,
                },
            )
        else:
            edge_store.register_with_mem0()
            edge = edge_store.EdgeStoreConfig(
                collection_name=COLLECTION,
                embedding_model_dims=embedder.dims,
                path=str(backend.owner.root),
            )
            store = VectorStoreConfig.model_construct(provider="qdrant_edge", config=edge)
        LlmFactory.register_provider("sophia", f"{__name__}.SpeedRouteLLM")
        config = MemoryConfig.model_construct(
            vector_store=store,
            embedder=EmbedderConfig.model_construct(
                provider="sophia", config=embeddings.register_with_mem0(embedder)
            ),
            llm=LlmConfig.model_construct(provider="sophia", config={}),
            history_db_path=str(root / "history.db"),
        )
        with warnings.catch_warnings():  # local mode warns that payload indexes do nothing
            warnings.simplefilter("ignore", UserWarning)
            backend.memory = Memory(config)
        backend.memory.llm.models = models
        _tune_history(backend.memory.db)
        if not stored:
            backend.write_marker()
        if backend.client is not None and not backend.local:
            _index_scope_fields(backend.client)
        return backend
    except BaseException:
        if backend.memory is not None:
            backend.memory.close()
        if backend.owner is not None:
            backend.owner.close()
        if backend.client is not None:
            backend.client.close()
        raise


def quiet_mem0(root: Path) -> None:
    """No telemetry, and mem0's home (it writes config.json at import) inside the data dir."""
    os.environ["MEM0_TELEMETRY"] = "False"
    os.environ.setdefault("MEM0_DIR", str(root / "mem0"))
    # Without spaCy (mem0's optional `nlp` extra) lemmas and entity boosts are skipped, as intended.
    logging.getLogger("mem0.utils.spacy_models").setLevel(logging.ERROR)
    if "mem0" in sys.modules:  # imported before us (it reads the env at import): switch it off
        import mem0.memory.main as main
        import mem0.memory.telemetry as telemetry

        telemetry.MEM0_TELEMETRY = main.MEM0_TELEMETRY = False


def qdrant_client(settings: Settings) -> Any:
    """A client for QDRANT_URL: a server URL, `:memory:`, or `file:<dir>` for local mode."""
    from qdrant_client import QdrantClient

    url = settings.qdrant_url or ""
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    if url == ":memory:":
        return QdrantClient(location=":memory:")
    if url.startswith("file:"):
        path = url.removeprefix("file://").removeprefix("file:")
        try:
            return QdrantClient(path=path)
        except RuntimeError as exc:  # "already accessed by another instance"
            from integrations.memory.edge_store import busy_message

            raise ConfigError(busy_message(Path(path)), variable="QDRANT_URL") from exc
    return QdrantClient(url=url, api_key=key)


def rows(listed: Any) -> list[Any]:
    """mem0 stores return `[rows]` or `(rows, next_offset)` from `list`."""
    if isinstance(listed, list | tuple) and listed and isinstance(listed[0], list):
        return listed[0]
    return list(listed or [])


def _tune_history(db: Any) -> None:
    """WAL with normal sync: mem0 commits once per memory, and a full fsync each costs ~ms."""
    with db._lock:
        db.connection.execute("PRAGMA journal_mode=WAL")
        db.connection.execute("PRAGMA synchronous=NORMAL")


def _marker_on_edge(owner: Any) -> dict[str, Any] | None:
    if COLLECTION not in owner.collections():
        return None
    found = owner.collection(COLLECTION).retrieve([MARKER_ID])
    return dict(found[0].payload) if found else None


def _marker_on_server(client: Any) -> dict[str, Any] | None:
    if not client.collection_exists(COLLECTION):
        return None
    found = client.retrieve(COLLECTION, [MARKER_ID], with_payload=True)
    return dict(found[0].payload) if found else None


def _index_scope_fields(client: Any) -> None:
    """Indexes for the listing filters on a server (mem0 indexes its own session ids)."""
    for name, kind in (("subject", "keyword"), ("author", "keyword"), ("scope", "keyword")):
        try:
            client.create_payload_index(COLLECTION, field_name=name, field_schema=kind)
        except Exception:
            log.debug("payload index %s not created", name)
