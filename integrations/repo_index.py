"""Index GitHub repositories for questions: structural chunks, embedded, incremental by blob SHA.

A file is re-embedded only when its blob SHA changed since the last run, and files that
left the repository are removed; the database remembers which blob of each file is indexed
and as which chunks, the vector store holds the chunks. Answers cite `path:line` with a
link to the exact lines on GitHub.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from bot.core.types import Progress, StepStatus
from integrations.code_chunks import Chunk, chunk_file, should_index
from integrations.github import GitHub

log = logging.getLogger("sophia.index")

COLLECTION = "code"
FETCH_CONCURRENCY = 8  # files read from GitHub at once
EMBED_BATCH = 256
_NAMESPACE = uuid.UUID("5f6b3a4e-2c1d-4e8f-9a7b-1c2d3e4f5a6b")


@dataclass(frozen=True)
class IndexReport:
    """What one indexing run did."""

    repo: str
    ref: str
    files: int  # indexable files in the repository
    changed: int  # re-embedded this run
    removed: int  # gone from the repository
    chunks: int  # chunks written this run


@dataclass(frozen=True)
class CodeHit:
    """One matching chunk, citable as `path:start`."""

    repo: str
    path: str
    start: int
    end: int
    text: str
    score: float
    url: str

    @property
    def citation(self) -> str:
        """`path:line` linked to the lines on GitHub (Slack mrkdwn)."""
        return f"<{self.url}|{self.path}:{self.start}>"


class RepoIndex:
    """Keeps repositories' chunks in a vector collection, in step with GitHub."""

    def __init__(
        self, *, github: GitHub, store: Any, collection: Any, embedder: Any, web_url: str
    ) -> None:
        self._github = github
        self._store = store  # bot.store.Store: code_files bookkeeping
        self._collection = collection  # integrations.memory.edge_store.EdgeCollection
        self._embedder = embedder
        self._web_url = web_url.rstrip("/")  # https://github.com (or the Enterprise host)

    async def sync(self, repo: str, *, progress: Progress | None = None) -> IndexReport:
        """Bring the index of `repo` up to date with its default branch."""
        step = _Steps(progress)
        await step("list", f"Listing files of {repo}", StepStatus.IN_PROGRESS)
        branch, head = await self._github.branch_head(repo)
        wanted = {
            path: sha
            for path, sha, size in await self._github.list_blobs(repo, ref=head)
            if should_index(path, size)
        }
        known = await self._store.code_files(repo)
        changed = sorted(p for p, sha in wanted.items() if known.get(p, ("",))[0] != sha)
        removed = sorted(p for p in known if p not in wanted)
        await step(
            "list",
            f"{len(wanted)} files; {len(changed)} to index, {len(removed)} removed",
            StepStatus.COMPLETE,
        )

        for path in removed:
            await asyncio.to_thread(self._collection.delete, known[path][1])
            await self._store.drop_code_file(repo, path)

        written = 0
        semaphore = asyncio.Semaphore(FETCH_CONCURRENCY)

        async def index_file(path: str) -> int:
            async with semaphore:
                text = await self._github.read_file(repo, path, ref=head)
            chunks = chunk_file(path, text)
            ids = [
                str(uuid.uuid5(_NAMESPACE, f"{repo}:{path}:{c.start}:{wanted[path]}"))
                for c in chunks
            ]
            if path in known:  # the old version's chunks go before the new ones land
                await asyncio.to_thread(self._collection.delete, known[path][1])
            if chunks:
                await asyncio.to_thread(self._write, repo, branch, wanted[path], chunks, ids)
            await self._store.set_code_file(repo, path, wanted[path], ids)
            return len(chunks)

        done = 0
        for start in range(0, len(changed), FETCH_CONCURRENCY * 4):
            batch = changed[start : start + FETCH_CONCURRENCY * 4]
            written += sum(await asyncio.gather(*(index_file(p) for p in batch)))
            done += len(batch)
            await step("embed", f"Indexing files: {done}/{len(changed)}", StepStatus.IN_PROGRESS)
        await step("embed", f"Indexed {len(changed)} files ({written} chunks)", StepStatus.COMPLETE)
        log.info(
            "repository indexed",
            extra={"repo": repo, "changed": len(changed), "removed": len(removed)},
        )
        return IndexReport(repo, branch, len(wanted), len(changed), len(removed), written)

    def _write(
        self, repo: str, ref: str, blob_sha: str, chunks: list[Chunk], ids: list[str]
    ) -> None:
        for start in range(0, len(chunks), EMBED_BATCH):
            part = chunks[start : start + EMBED_BATCH]
            vectors = self._embedder.embed([f"{c.path}\n{c.text}" for c in part])
            payloads = [
                {"kind": "code", "repo": repo, "path": c.path, "start": c.start, "end": c.end,
                 "ref": ref, "blob_sha": blob_sha, "text": c.text[:4000]}
                for c in part
            ]  # fmt: skip
            self._collection.upsert(ids[start : start + EMBED_BATCH], vectors, payloads)

    async def search(self, query: str, *, repo: str | None = None, limit: int = 5) -> list[CodeHit]:
        """The chunks closest to `query`, in one repository or all indexed ones."""
        return await asyncio.to_thread(self._search, query, repo, limit)

    def _search(self, query: str, repo: str | None, limit: int) -> list[CodeHit]:
        from integrations.memory.edge_store import to_filter

        [vector] = self._embedder.embed([query])
        where = to_filter({"repo": repo} if repo else None)
        hits = []
        for hit in self._collection.search(vector, limit=limit, where=where):
            p = hit.payload
            url = (
                f"{self._web_url}/{p['repo']}/blob/{p['ref']}/{p['path']}#L{p['start']}-L{p['end']}"
            )
            hits.append(
                CodeHit(
                    p["repo"], p["path"], p["start"], p["end"], p["text"], hit.score or 0.0, url
                )
            )
        return hits


class _Steps:
    """Optional progress reporting."""

    def __init__(self, progress: Progress | None) -> None:
        self._progress = progress

    async def __call__(self, step_id: str, title: str, status: StepStatus) -> None:
        if self._progress is not None:
            await self._progress.step(step_id, title, status)
