"""Durable state in SQLite: event dedupe and the request log.

All statements run on one dedicated thread (sqlite3 connections belong to the thread
that made them), so the event loop never blocks on disk and callers simply `await`.
Replicas on one machine may share the file: WAL mode plus a busy timeout lets them
dedupe the same event without both answering it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bot.core.approvals import ApprovalRequest, ApprovalState, request_to_row, row_to_request
from bot.core.channel import ChannelSettings
from bot.core.errors import ConfigError
from bot.core.types import RequestRecord

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    at REAL NOT NULL,
    user_id TEXT NOT NULL,
    channel TEXT,
    thread_ts TEXT,
    source TEXT NOT NULL,
    route TEXT,
    model TEXT,
    prompt_tokens INTEGER DEFAULT 0,
    completion_tokens INTEGER DEFAULT 0,
    cost_usd REAL DEFAULT 0,
    latency_ms REAL,
    status TEXT NOT NULL,
    error TEXT,
    text TEXT
);
CREATE INDEX IF NOT EXISTS requests_by_user ON requests (user_id, at);
CREATE INDEX IF NOT EXISTS requests_by_thread ON requests (channel, thread_ts);
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    params TEXT NOT NULL,
    bound_version TEXT NOT NULL,
    summary TEXT NOT NULL,
    requester TEXT NOT NULL,
    channel TEXT,
    thread_ts TEXT,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    state TEXT NOT NULL,
    facts TEXT NOT NULL,
    link TEXT,
    message_ts TEXT,
    decided_by TEXT,
    decided_at REAL,
    result TEXT
);
CREATE INDEX IF NOT EXISTS approvals_by_state ON approvals (state);
CREATE INDEX IF NOT EXISTS approvals_by_requester ON approvals (requester, created_at);
CREATE TABLE IF NOT EXISTS code_files (
    repo TEXT NOT NULL,
    path TEXT NOT NULL,
    blob_sha TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,
    indexed_at REAL NOT NULL,
    PRIMARY KEY (repo, path)
);
CREATE TABLE IF NOT EXISTS feedback (
    request_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    value TEXT NOT NULL,
    comment TEXT,
    at REAL NOT NULL,
    PRIMARY KEY (request_id, user_id)
);
CREATE TABLE IF NOT EXISTS channel_settings (
    channel TEXT PRIMARY KEY,
    settings TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS kv (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    expires_at REAL,
    PRIMARY KEY (namespace, key)
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    approval_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL
);
"""
_APPROVAL_COLUMNS = (
    "id", "kind", "target", "params", "bound_version", "summary", "requester", "channel",
    "thread_ts", "created_at", "expires_at", "state", "facts", "link", "message_ts",
    "decided_by", "decided_at", "result",
)  # fmt: skip

# Slack redelivers for up to ~30 minutes; a day of event ids is plenty to dedupe against.
EVENT_RETENTION_S = 86_400


class Store:
    """Sophia's database; open with `Store.open(url)`, close with `close()`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sophia-db")
        self._conn: sqlite3.Connection | None = None
        self._last_prune = 0.0

    @classmethod
    async def open(cls, url: str) -> Store:
        """Open (and create) the database named by a `sqlite:///path` URL."""
        if url.startswith(("postgres://", "postgresql://")):
            raise ConfigError(
                "DATABASE_URL points at PostgreSQL, which this version of Sophia does not "
                "support yet; leave DATABASE_URL unset to use the SQLite file in SOPHIA_DATA_DIR.",
                variable="DATABASE_URL",
            )
        if not url.startswith("sqlite:///"):
            raise ConfigError(
                f"DATABASE_URL must look like sqlite:///path/to/file.db, not {url.split(':')[0]}:…",
                variable="DATABASE_URL",
            )
        path = Path(url.removeprefix("sqlite:///"))
        store = cls(path)
        await store._run(store._connect)
        return store

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(SCHEMA)
        self._conn = conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, fn, *args)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("store is closed")
        return self._conn

    async def claim_event(self, event_id: str) -> bool:
        """True the first time an event id is seen, by any replica sharing this database."""
        return await self._run(self._claim_event, event_id)

    def _claim_event(self, event_id: str) -> bool:
        now = time.time()
        db = self._db()
        cursor = db.execute(
            "INSERT OR IGNORE INTO events (event_id, received_at) VALUES (?, ?)", (event_id, now)
        )
        if now - self._last_prune > 3600:
            self._last_prune = now
            db.execute("DELETE FROM events WHERE received_at < ?", (now - EVENT_RETENTION_S,))
        return cursor.rowcount == 1

    async def log_request(self, record: RequestRecord) -> None:
        """Append to the request log (text only when the operator opted in)."""
        await self._run(self._log_request, record)

    def _log_request(self, r: RequestRecord) -> None:
        self._db().execute(
            "INSERT OR REPLACE INTO requests VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                r.id, r.at, r.user_id, r.channel, r.thread_ts, r.source, r.route, r.model,
                r.prompt_tokens, r.completion_tokens, r.cost_usd, r.latency_ms, r.status,
                r.error, r.text,
            ),
        )  # fmt: skip

    async def recent_requests(self, user_id: str, limit: int = 5) -> list[RequestRecord]:
        """A person's latest requests, newest first (for App Home)."""
        return await self._run(self._recent_requests, user_id, limit)

    def _recent_requests(self, user_id: str, limit: int) -> list[RequestRecord]:
        rows = self._db().execute(
            "SELECT * FROM requests WHERE user_id = ? ORDER BY at DESC LIMIT ?", (user_id, limit)
        )
        return [RequestRecord(*row) for row in rows.fetchall()]

    async def forget_request_text(self, user_id: str) -> int:
        """Blank the stored text of a person's requests (kept only with SOPHIA_LOG_CONTENT)."""
        sql = "UPDATE requests SET text = NULL WHERE user_id = ? AND text IS NOT NULL"
        cursor = await self._run(lambda: self._db().execute(sql, (user_id,)))
        return cursor.rowcount

    async def record_feedback(
        self, request_id: str, user_id: str, value: str, comment: str | None = None
    ) -> None:
        """Keep one person's verdict on one answer (the latest wins); a comment may follow."""
        sql = (
            "INSERT INTO feedback (request_id, user_id, value, comment, at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (request_id, user_id) DO UPDATE SET value = excluded.value, "
            "comment = COALESCE(excluded.comment, feedback.comment), at = excluded.at"
        )
        args = (request_id, user_id, value, comment, time.time())
        await self._run(lambda: self._db().execute(sql, args))

    async def feedback_for(self, request_id: str) -> list[dict[str, Any]]:
        """Every verdict on one answer, with the answer's route, model and latency."""
        return await self._select(
            "SELECT f.*, r.route, r.model, r.latency_ms FROM feedback f "
            "LEFT JOIN requests r ON r.id = f.request_id WHERE f.request_id = ?",
            (request_id,),
        )

    async def usage_report(self, *, since: float, user_id: str | None = None) -> dict[str, Any]:
        """Requests, tokens and dollars since `since`; with no user, also top users, days, feedback."""
        where, args = ("AND user_id = ?", (since, user_id)) if user_id else ("", (since,))
        [total] = await self._select(
            "SELECT COUNT(*) AS requests, COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens, "
            f"COALESCE(SUM(cost_usd), 0) AS cost FROM requests WHERE at >= ? {where}", args
        )  # fmt: skip
        if user_id:
            return {"total": total}
        top = await self._select(
            "SELECT user_id, COUNT(*) AS requests, SUM(cost_usd) AS cost FROM requests "
            "WHERE at >= ? GROUP BY user_id ORDER BY cost DESC, requests DESC LIMIT 5", (since,)
        )  # fmt: skip
        days = await self._select(
            "SELECT date(at, 'unixepoch') AS day, COUNT(*) AS requests, SUM(cost_usd) AS cost "
            "FROM requests WHERE at >= ? GROUP BY day ORDER BY day DESC LIMIT 7", (since - 6 * 86400,)
        )  # fmt: skip
        feedback = await self._select(
            "SELECT value, COUNT(*) AS n FROM feedback WHERE at >= ? GROUP BY value", (since,)
        )
        return {
            "total": total,
            "top": top,
            "days": days,
            "feedback": {f["value"]: f["n"] for f in feedback},
        }

    async def channel_settings(self, channel: str) -> ChannelSettings:
        """A channel's settings (the defaults when nobody configured it)."""
        rows = await self._select(
            "SELECT settings FROM channel_settings WHERE channel = ?", (channel,)
        )
        return ChannelSettings.from_json(json.loads(rows[0]["settings"]) if rows else None)

    async def set_channel_settings(
        self, channel: str, settings: ChannelSettings, user: str
    ) -> None:
        """Store a channel's settings and audit who changed them."""
        sql = "INSERT OR REPLACE INTO channel_settings VALUES (?, ?, ?, ?)"
        args = (channel, json.dumps(settings.to_json()), user, time.time())
        await self._run(lambda: self._db().execute(sql, args))
        await self.audit(
            approval_id=f"config:{channel}",
            user=user,
            action="config",
            outcome=json.dumps(settings.to_json()),
        )

    async def answered_in_thread(self, channel: str, thread_ts: str) -> bool:
        """Whether Sophia has answered in this thread before (follow-ups need no mention)."""
        sql = "SELECT 1 FROM requests WHERE channel = ? AND thread_ts = ? LIMIT 1"
        row = await self._run(lambda: self._db().execute(sql, (channel, thread_ts)).fetchone())
        return row is not None

    async def spend(self, *, since: float, user_id: str | None = None) -> float:
        """US dollars spent on models since `since`, for everyone or one user."""
        return await self._run(self._spend, since, user_id)

    def _spend(self, since: float, user_id: str | None) -> float:
        sql = "SELECT COALESCE(SUM(cost_usd), 0) FROM requests WHERE at >= ?"
        args: tuple = (since,)
        if user_id is not None:
            sql, args = sql + " AND user_id = ?", (since, user_id)
        return float(self._db().execute(sql, args).fetchone()[0])

    async def usage_by_route(self, *, since: float) -> dict[str, tuple[int, int, float]]:
        """Per route since `since`: (requests, tokens, dollars)."""
        return await self._run(self._usage_by_route, since)

    def _usage_by_route(self, since: float) -> dict[str, tuple[int, int, float]]:
        rows = self._db().execute(
            "SELECT route, COUNT(*), SUM(prompt_tokens + completion_tokens), SUM(cost_usd) "
            "FROM requests WHERE at >= ? AND route IS NOT NULL GROUP BY route",
            (since,),
        )
        return {route: (n, int(tokens or 0), float(cost or 0)) for route, n, tokens, cost in rows}

    # -- approvals (see bot/core/approvals.py) ----------------------------------------------

    async def save_approval(self, request: ApprovalRequest) -> None:
        """Insert or overwrite a request."""
        row = request_to_row(request)
        columns = ", ".join(_APPROVAL_COLUMNS)
        marks = ", ".join("?" for _ in _APPROVAL_COLUMNS)
        sql = f"INSERT OR REPLACE INTO approvals ({columns}) VALUES ({marks})"
        await self._run(lambda: self._db().execute(sql, [row[c] for c in _APPROVAL_COLUMNS]))

    async def load_approval(self, approval_id: str) -> ApprovalRequest | None:
        """A request by id, or None."""
        rows = await self._select("SELECT * FROM approvals WHERE id = ?", (approval_id,))
        return row_to_request(rows[0]) if rows else None

    async def transition(
        self, approval_id: str, frm: ApprovalState, to: ApprovalState, **fields: Any
    ) -> bool:
        """Move a request from one state to another atomically; False if it was not in `frm`."""
        sets = ", ".join(["state = ?", *(f"{name} = ?" for name in fields)])
        sql = f"UPDATE approvals SET {sets} WHERE id = ? AND state = ?"
        args = [to.value, *fields.values(), approval_id, frm.value]
        cursor = await self._run(lambda: self._db().execute(sql, args))
        return cursor.rowcount == 1

    async def approvals_in(self, states: set[ApprovalState]) -> list[ApprovalRequest]:
        """Requests in any of the given states, oldest first."""
        marks = ", ".join("?" for _ in states)
        sql = f"SELECT * FROM approvals WHERE state IN ({marks}) ORDER BY created_at"
        return [row_to_request(r) for r in await self._select(sql, tuple(s.value for s in states))]

    async def approvals_by(self, requester: str, limit: int) -> list[ApprovalRequest]:
        """One person's requests, newest first."""
        sql = "SELECT * FROM approvals WHERE requester = ? ORDER BY created_at DESC LIMIT ?"
        return [row_to_request(r) for r in await self._select(sql, (requester, limit))]

    async def audit(self, *, approval_id: str, user: str, action: str, outcome: str) -> None:
        """Append to the audit log: every click, accepted or refused, and every execution."""
        sql = "INSERT INTO audit (at, approval_id, user_id, action, outcome) VALUES (?, ?, ?, ?, ?)"
        args = (time.time(), approval_id, user, action, outcome)
        await self._run(lambda: self._db().execute(sql, args))

    async def audit_log(self, limit: int) -> list[dict[str, Any]]:
        """The latest audit entries, newest first."""
        return await self._select("SELECT * FROM audit ORDER BY seq DESC LIMIT ?", (limit,))

    # -- repository index bookkeeping (which blob of each file is embedded) ------------------

    async def code_files(self, repo: str) -> dict[str, tuple[str, list[str]]]:
        """Indexed files of a repository: path → (blob sha, chunk point ids)."""
        rows = await self._select(
            "SELECT path, blob_sha, chunk_ids FROM code_files WHERE repo = ?", (repo,)
        )
        return {r["path"]: (r["blob_sha"], json.loads(r["chunk_ids"])) for r in rows}

    async def set_code_file(
        self, repo: str, path: str, blob_sha: str, chunk_ids: list[str]
    ) -> None:
        """Record that a file's blob is indexed as these chunks."""
        sql = "INSERT OR REPLACE INTO code_files VALUES (?, ?, ?, ?, ?)"
        args = (repo, path, blob_sha, json.dumps(chunk_ids), time.time())
        await self._run(lambda: self._db().execute(sql, args))

    async def drop_code_file(self, repo: str, path: str) -> None:
        """Forget a file that left the repository."""
        sql = "DELETE FROM code_files WHERE repo = ? AND path = ?"
        await self._run(lambda: self._db().execute(sql, (repo, path)))

    async def kv_get(self, namespace: str, key: str) -> Any | None:
        """A JSON value stored with `kv_put`, or None when absent or expired."""
        sql = "SELECT value FROM kv WHERE namespace = ? AND key = ? AND (expires_at IS NULL OR expires_at > ?)"
        rows = await self._select(sql, (namespace, key, time.time()))
        return json.loads(rows[0]["value"]) if rows else None

    async def kv_put(
        self, namespace: str, key: str, value: Any, *, ttl_s: float | None = None
    ) -> None:
        """Store a JSON-able value (caches, monitor incidents, job state shared by replicas)."""
        expires = time.time() + ttl_s if ttl_s is not None else None
        sql = "INSERT OR REPLACE INTO kv (namespace, key, value, expires_at) VALUES (?, ?, ?, ?)"
        args = (namespace, key, json.dumps(value), expires)
        await self._run(lambda: self._db().execute(sql, args))

    async def kv_delete(self, namespace: str, key: str) -> None:
        """Forget one value."""
        sql = "DELETE FROM kv WHERE namespace = ? AND key = ?"
        await self._run(lambda: self._db().execute(sql, (namespace, key)))

    async def kv_items(self, namespace: str) -> dict[str, Any]:
        """Every live value in a namespace."""
        sql = "SELECT key, value FROM kv WHERE namespace = ? AND (expires_at IS NULL OR expires_at > ?)"
        rows = await self._select(sql, (namespace, time.time()))
        return {row["key"]: json.loads(row["value"]) for row in rows}

    async def _select(self, sql: str, args: tuple) -> list[dict[str, Any]]:
        def run() -> list[dict[str, Any]]:
            cursor = self._db().execute(sql, args)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        return await self._run(run)

    async def ping(self) -> bool:
        """Whether the database answers a trivial query (for /healthz)."""
        try:
            await asyncio.wait_for(self._run(lambda: self._db().execute("SELECT 1").fetchone()), 2)
        except Exception:
            return False
        return True

    async def close(self) -> None:
        """Close the connection and its thread; safe to call twice."""
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
