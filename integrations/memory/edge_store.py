"""Embedded vector storage: Qdrant Edge shards in the data dir, with one owner per directory.

`EdgeStore` owns a directory of shards (one per collection) for one process: it holds an
exclusive `flock` on `<dir>/.lock`, so a second process (or a second open in this one) is
refused with a message naming the way out, and it serialises every call into a shard behind
a lock because mem0 calls its vector store from worker threads (the binding survived 16
threads of mixed upserts and queries in a trial, but does not promise thread safety). `EdgeVectorStore` is mem0's
`VectorStoreBase` over a shard, registered in mem0's vector-store factory as `qdrant_edge`.

Measured with qdrant-edge-py 0.9.0 on 2 cores at 50k × 256-d points: ~24k upserts/s,
filtered query p95 0.3 ms, unfiltered brute force p95 3 ms. Edge builds no HNSW index on its
own (`optimize()` does, blocking: 37 s at 50k), which filtered queries at this size never need.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import qdrant_edge as qe
from pydantic import BaseModel

from bot.core.errors import ConfigError

log = logging.getLogger("sophia.memory")

# Payload fields that filters use, indexed in every shard so filtered search stays
# sub-millisecond as the store grows (unused fields cost nothing).
KEYWORD_FIELDS = (
    *("user_id", "agent_id", "run_id", "actor_id"),  # mem0's session ids
    *("scope", "subject", "author"),  # Sophia's scopes (integrations.memory.scopes)
    *("repo", "path"),  # the repository index's chunks
)
_CONFIG_FILE = "edge_config.json"


def busy_message(path: Path) -> str:
    """What to tell an operator whose data dir is held by another process."""
    return (
        f"The memory store in {path} is already open in another Sophia process. "
        "Run one process per data dir: set QDRANT_URL (and DATABASE_URL) to share memory "
        "between replicas, or give each replica its own SOPHIA_DATA_DIR."
    )


@dataclass
class Hit:
    """A point as mem0 reads it: `id`, `score` (cosine, higher is closer) and `payload`."""

    id: str
    score: float | None = None
    payload: dict[str, Any] = field(default_factory=dict)


def _hit(point: Any) -> Hit:
    return Hit(str(point.id), getattr(point, "score", None), dict(point.payload or {}))


class EdgeCollection:
    """One Qdrant Edge shard; every call holds the shard's lock."""

    def __init__(self, path: Path, dims: int | None) -> None:
        self.path = path
        self._lock = threading.RLock()
        if (path / _CONFIG_FILE).exists():
            self._shard = _load(path)
        else:
            if dims is None:
                raise ValueError(f"no shard in {path} and no vector size to create one")
            path.mkdir(parents=True, exist_ok=True)
            config = qe.EdgeConfig(
                vectors=qe.EdgeVectorParams(size=dims, distance=qe.Distance.Cosine)
            )
            self._shard = qe.EdgeShard.create(str(path), config)
        self.dims = _stored_dims(path)
        with self._lock:  # idempotent: also indexes shards created before a field was added
            for name in KEYWORD_FIELDS:
                self._shard.update(
                    qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword)
                )

    def upsert(
        self, ids: list[str], vectors: Iterable[Any], payloads: list[dict[str, Any]]
    ) -> None:
        """Insert or replace points."""
        points = [qe.Point(i, v, p) for i, v, p in zip(ids, vectors, payloads, strict=True)]
        with self._lock:
            self._shard.update(qe.UpdateOperation.upsert_points(points))

    def search(self, vector: Any, *, limit: int, where: qe.Filter | None = None) -> list[Hit]:
        """The `limit` nearest points that pass `where`."""
        request = qe.QueryRequest(
            limit=limit, query=qe.Query.Nearest(vector), filter=where, with_payload=True
        )
        with self._lock:
            return [_hit(p) for p in self._shard.query(request)]

    def retrieve(self, ids: list[str], *, with_vector: bool = False) -> list[Any]:
        """Points by id (unknown ids are skipped, malformed ones too)."""
        valid = [i for i in ids if _is_uuid(i)]
        if not valid:
            return []
        with self._lock:
            return self._shard.retrieve(valid, True, with_vector)

    def set_payload(self, point_id: str, payload: dict[str, Any]) -> None:
        """Merge `payload` into a point's payload."""
        with self._lock:
            self._shard.update(qe.UpdateOperation.set_payload([point_id], payload))

    def set_vector(self, point_id: str, vector: Any) -> None:
        """Replace a point's vector."""
        with self._lock:
            self._shard.update(
                qe.UpdateOperation.update_vectors([qe.PointVectors(point_id, vector)])
            )

    def delete(self, ids: list[str]) -> None:
        """Delete points by id."""
        valid = [i for i in ids if _is_uuid(i)]
        if valid:
            with self._lock:
                self._shard.update(qe.UpdateOperation.delete_points(valid))

    def scroll(self, *, where: qe.Filter | None = None, limit: int = 100) -> list[Hit]:
        """Up to `limit` points passing `where`, in id order."""
        with self._lock:
            points, _ = self._shard.scroll(
                qe.ScrollRequest(limit=limit, filter=where, with_payload=True)
            )
        return [_hit(p) for p in points]

    def count(self, where: qe.Filter | None = None) -> int:
        """How many points pass `where`."""
        with self._lock:
            return self._shard.count(qe.CountRequest(exact=True, filter=where))

    def optimize(self) -> bool:
        """Build the HNSW index and merge segments (blocking; tens of seconds at 50k points)."""
        with self._lock:
            return self._shard.optimize()

    def close(self) -> None:
        """Flush and close the shard, releasing its WAL lock."""
        with self._lock:
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard = None


def _load(path: Path) -> Any:
    try:
        return qe.EdgeShard.load(str(path))
    except Exception as exc:  # Edge's own WAL lock, the last line of defence
        if "WouldBlock" in str(exc):
            raise ConfigError(busy_message(path), variable="SOPHIA_DATA_DIR") from None
        raise


def _stored_dims(path: Path) -> int:
    config = json.loads((path / _CONFIG_FILE).read_text())
    return int(config["vectors"][""]["size"])


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


_OWNERS: dict[Path, EdgeStore] = {}
_OWNERS_LOCK = threading.Lock()


class EdgeStore:
    """The single owner of a directory of Edge shards, holding its file lock until `close`."""

    def __init__(self, root: Path, lock_fd: int) -> None:
        self.root = root
        self._lock_fd: int | None = lock_fd
        self._collections: dict[str, EdgeCollection] = {}
        self._guard = threading.Lock()

    @classmethod
    def open(cls, root: Path) -> EdgeStore:
        """Take ownership of `root`; a ConfigError if another owner (any process) holds it."""
        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # flock locks belong to the open file, so a second open in this process is refused too.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(busy_message(root), variable="SOPHIA_DATA_DIR") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        store = cls(root, fd)
        with _OWNERS_LOCK:
            _OWNERS[root] = store
        return store

    @classmethod
    def owner_of(cls, root: Path) -> EdgeStore | None:
        """The store that owns `root` in this process, if one is open."""
        with _OWNERS_LOCK:
            return _OWNERS.get(Path(root).resolve())

    def collection(self, name: str, dims: int | None = None) -> EdgeCollection:
        """The shard for collection `name`, created with `dims` if it does not exist yet."""
        with self._guard:
            if self._lock_fd is None:
                raise RuntimeError(f"the memory store in {self.root} is closed")
            if name not in self._collections:
                self._collections[name] = EdgeCollection(self.root / name, dims)
            return self._collections[name]

    def drop(self, name: str) -> None:
        """Delete collection `name` and its files."""
        with self._guard:
            col = self._collections.pop(name, None)
            if col is not None:
                col.close()
            shutil.rmtree(self.root / name, ignore_errors=True)

    def collections(self) -> list[str]:
        """Names of the collections on disk."""
        return sorted(p.name for p in self.root.iterdir() if (p / _CONFIG_FILE).exists())

    def close(self) -> None:
        """Close every shard and release the directory lock (a restart can open it again)."""
        with self._guard:
            for col in self._collections.values():
                col.close()
            self._collections.clear()
            if self._lock_fd is not None:
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
                os.close(self._lock_fd)
                self._lock_fd = None
        with _OWNERS_LOCK:
            if _OWNERS.get(self.root) is self:
                del _OWNERS[self.root]


# --- mem0's filter dialect -----------------------------------------------------------------------

_LOGICAL = {
    "AND": "must",
    "$and": "must",
    "OR": "should",
    "$or": "should",
    "NOT": "must_not",
    "$not": "must_not",
}


def to_filter(filters: dict[str, Any] | None) -> qe.Filter | None:
    """Translate mem0's filter dict (`{"k": v}`, `{"k": {"in": [...]}}`, `OR`/`AND`/`NOT`)."""
    if not filters:
        return None
    parts: dict[str, list[Any]] = {"must": [], "should": [], "must_not": []}
    seen: set[str] = set()
    for key, value in filters.items():
        if key in _LOGICAL:
            if _LOGICAL[key] in seen:  # mem0 may pass both `OR` and its rewritten `$or`
                continue
            seen.add(_LOGICAL[key])
            subs = [to_filter(sub) for sub in value]
            parts[_LOGICAL[key]].extend(s for s in subs if s is not None)
        elif value != "*":
            parts["must"].append(_condition(key, value))
    if not any(parts.values()):
        return None
    return qe.Filter(**{k: v for k, v in parts.items() if v})


def _condition(key: str, value: Any) -> Any:
    if isinstance(value, bool) or (
        isinstance(value, dict) and any(isinstance(v, bool) for v in value.values())
    ):
        # qdrant-edge-py 0.9.0: MatchValue(True) matches nothing, so refuse rather than mislead.
        raise ValueError(f"filtering on boolean field {key!r} is not supported by Qdrant Edge")
    if isinstance(value, list):
        return qe.FieldCondition(key, match=qe.MatchAny(value))
    if not isinstance(value, dict):
        return qe.FieldCondition(key, match=qe.MatchValue(value))
    ranges = {op: float(value[op]) for op in ("gt", "gte", "lt", "lte") if op in value}
    if ranges:
        return qe.FieldCondition(key, range=qe.RangeFloat(**ranges))
    if "eq" in value:
        return qe.FieldCondition(key, match=qe.MatchValue(value["eq"]))
    if "in" in value:
        return qe.FieldCondition(key, match=qe.MatchAny(list(value["in"])))
    if "ne" in value:
        return qe.FieldCondition(key, match=qe.MatchExcept([value["ne"]]))
    if "nin" in value:
        return qe.FieldCondition(key, match=qe.MatchExcept(list(value["nin"])))
    raise ValueError(f"unsupported filter on {key!r}: {value!r}")


# --- mem0's VectorStoreBase --------------------------------------------------------------------


class EdgeStoreConfig(BaseModel):
    """The `vector_store.config` mem0 hands to `EdgeVectorStore` (and copies for its entity store)."""

    collection_name: str = "mem0"
    embedding_model_dims: int | None = None
    path: str


def _make_vector_store() -> type:
    """Build the mem0 adapter class (mem0 is imported only once the service has set its env)."""
    from mem0.vector_stores.base import VectorStoreBase

    class EdgeVectorStore(VectorStoreBase):
        """mem0 vector store over a Qdrant Edge shard in `path` (one collection per shard)."""

        def __init__(
            self, collection_name: str, embedding_model_dims: int | None = None, path: str = ""
        ) -> None:
            self.owner = EdgeStore.owner_of(Path(path)) or EdgeStore.open(Path(path))
            self.collection_name = collection_name
            self.embedding_model_dims = embedding_model_dims
            self.create_col(collection_name, embedding_model_dims, "cosine")

        def create_col(self, name: str, vector_size: int | None, distance: str = "cosine") -> None:
            self.col = self.owner.collection(name, vector_size)

        def insert(
            self, vectors: list, payloads: list | None = None, ids: list | None = None
        ) -> None:
            ids = [str(i) for i in ids] if ids else [str(uuid.uuid4()) for _ in vectors]
            self.col.upsert(ids, vectors, payloads or [{} for _ in vectors])

        def search(
            self, query: str, vectors: list, top_k: int = 5, filters: dict | None = None
        ) -> list[Hit]:
            return self.col.search(vectors, limit=top_k, where=to_filter(filters))

        def keyword_search(self, query: str, top_k: int = 5, filters: dict | None = None) -> None:
            # Semantic only, like mem0's qdrant store without fastembed (recall@5 0.94 without it).
            return None

        def delete(self, vector_id: str) -> None:
            self.col.delete([str(vector_id)])

        def update(
            self, vector_id: str, vector: list | None = None, payload: dict | None = None
        ) -> None:
            if payload is not None:
                self.col.set_payload(str(vector_id), payload)
            if vector is not None:
                self.col.set_vector(str(vector_id), vector)

        def get(self, vector_id: str) -> Hit | None:
            found = self.col.retrieve([str(vector_id)])
            return _hit(found[0]) if found else None

        def list_cols(self) -> list[str]:
            return self.owner.collections()

        def delete_col(self) -> None:
            self.owner.drop(self.collection_name)

        def col_info(self) -> dict[str, Any]:
            return {"name": self.collection_name, "points": self.col.count(), "dims": self.col.dims}

        def list(self, filters: dict | None = None, top_k: int | None = None) -> list[list[Hit]]:
            return [self.col.scroll(where=to_filter(filters), limit=top_k or 100)]

        def reset(self) -> None:
            self.delete_col()
            self.create_col(self.collection_name, self.embedding_model_dims)

    return EdgeVectorStore


def register_with_mem0() -> None:
    """Add `qdrant_edge` to mem0's vector-store factory."""
    from mem0.utils.factory import VectorStoreFactory

    VectorStoreFactory.provider_to_class["qdrant_edge"] = f"{__name__}.EdgeVectorStore"


def __getattr__(name: str) -> Any:
    # mem0's factory resolves "integrations.memory.edge_store.EdgeVectorStore" with getattr.
    if name == "EdgeVectorStore":
        cls = globals()["EdgeVectorStore"] = _make_vector_store()
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
