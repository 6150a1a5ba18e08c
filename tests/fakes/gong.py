"""Fake Gong API (v2) for tests: calls with parties and content, transcripts, cursor paging.

    POST /v2/calls/extensive     filter.fromDateTime/toDateTime/callIds, contentSelector, cursor
    POST /v2/calls/transcript    filter.callIds, cursor
    GET  /v2/workspaces

Answers have Gong's shape: ``{"requestId", "records": {"totalRecords", "currentPageSize",
"currentPageNumber", "cursor"?}, "calls": [...]}``; no match is a 404 with ``errors``. Auth is
HTTP Basic with the access key and secret. ``page_size`` makes pagination visible in tests;
``fail(..., status=429, retry_after=1)`` exercises the rate limit.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.rest_server import Req, RestServer


def ago(days: float) -> str:
    """An ISO time `days` before now, as Gong writes `started`."""
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class FakeGong(RestServer):
    access_key, secret = "GONGKEY123", "gong-secret-456"

    def __init__(self, *, page_size: int = 100) -> None:
        super().__init__()
        self.page_size = page_size
        self.calls_: list[dict] = []  # the extensive call objects
        self.transcripts: dict[str, list] = {}
        self.route("POST", r"/v2/calls/extensive", self._extensive)
        self.route("POST", r"/v2/calls/transcript", self._transcript)
        self.route("GET", r"/v2/workspaces", self._workspaces)

    def add_call(
        self, *, title: str, days_ago: float, parties: list[dict], lines: list[tuple[str, float, str]] = (),
        topics: list[tuple[str, int]] = (), action_items: list[tuple[str, float, str]] = (),
    ) -> str:  # fmt: skip
        """A call; ``parties``: {"name", "email", "internal"}; ``lines``: (speaker name, second, text)."""
        call_id = str(7782342274025937000 + len(self.calls_))
        people = []
        for i, p in enumerate(parties):
            people.append({
                "id": str(5600 + i), "emailAddress": p["email"], "name": p["name"], "title": p.get("title", ""),
                "speakerId": str(6400 + i), "affiliation": "Internal" if p.get("internal") else "External",
                "methods": ["Invitee"], **({"userId": str(2300 + i)} if p.get("internal") else {}),
            })  # fmt: skip
        speaker = {p["name"]: p["speakerId"] for p in people}
        self.calls_.append({
            "metaData": {
                "id": call_id, "url": f"https://app.gong.io/call?id={call_id}", "title": title,
                "scheduled": ago(days_ago), "started": ago(days_ago), "duration": 1860, "direction": "Conference",
                "system": "Zoom", "scope": "External", "media": "Video", "language": "eng",
                "workspaceId": "623457276584334", "isPrivate": False,
            },
            "context": [],
            "parties": people,
            "content": {
                "topics": [{"name": n, "duration": d} for n, d in topics],
                "pointsOfInterest": {"actionItems": [
                    {"snippetStartTime": s, "snippetEndTime": s + 5, "speakerID": speaker[who], "snippet": text}
                    for who, s, text in action_items
                ]},
            },
        })  # fmt: skip
        self.transcripts[call_id] = [
            {"speakerId": speaker[who], "topic": None, "sentences": [{"start": int(s * 1000), "end": int(s * 1000) + 4000, "text": text}]}
            for who, s, text in lines
        ]  # fmt: skip
        return call_id

    # -- wire ------------------------------------------------------------------------------
    def authorised(self, req: Req) -> bool:
        token = base64.b64encode(f"{self.access_key}:{self.secret}".encode()).decode()
        return req.headers.get("Authorization") == f"Basic {token}"

    def error_body(self, status: int) -> Any:
        message = {401: "Unauthorized: invalid access key or secret", 429: "Too many requests"}.get(
            status, f"HTTP {status}"
        )
        return {"requestId": "4al018gzaztcr8nbukw", "errors": [message]}

    def _page(self, items: list, body: dict, key: str) -> tuple:
        start = int(body["cursor"], 16) if body.get("cursor") else 0
        page = items[start : start + self.page_size]
        records: dict[str, Any] = {
            "totalRecords": len(items),
            "currentPageSize": len(page),
            "currentPageNumber": start // self.page_size,
        }
        if start + self.page_size < len(items):
            records["cursor"] = format(start + self.page_size, "x").rjust(
                8, "0"
            )  # opaque to clients
        return 200, {"requestId": "4al018gzaztcr8nbukw", "records": records, key: page}

    def _extensive(self, req: Req) -> tuple:
        body = req.json or {}
        f = body.get("filter") or {}
        calls = self.calls_
        if f.get("fromDateTime"):
            calls = [
                c for c in calls if _parse(c["metaData"]["started"]) >= _parse(f["fromDateTime"])
            ]
        if f.get("toDateTime"):
            calls = [c for c in calls if _parse(c["metaData"]["started"]) < _parse(f["toDateTime"])]
        if f.get("callIds"):
            calls = [c for c in calls if c["metaData"]["id"] in f["callIds"]]
        if not calls:
            return 404, {
                "requestId": "4al018gzaztcr8nbukw",
                "errors": ["No calls found corresponding to the provided filters"],
            }
        exposed = (body.get("contentSelector") or {}).get("exposedFields") or {}
        shown = [{k: v for k, v in c.items() if k == "metaData" or exposed.get(k) or (k == "context" and body["contentSelector"].get("context"))} for c in calls]  # fmt: skip
        return self._page(shown, body, "calls")

    def _transcript(self, req: Req) -> tuple:
        body = req.json or {}
        ids = (body.get("filter") or {}).get("callIds") or list(self.transcripts)
        items = [
            {"callId": i, "transcript": self.transcripts[i]} for i in ids if i in self.transcripts
        ]
        if not items:
            return 404, {
                "requestId": "4al018gzaztcr8nbukw",
                "errors": ["No calls found corresponding to the provided filters"],
            }
        return self._page(items, body, "callTranscripts")

    def _workspaces(self, req: Req) -> tuple:
        return 200, {
            "requestId": "4al018gzaztcr8nbukw",
            "workspaces": [{"id": "623457276584334", "name": "Sales", "description": ""}],
        }
