"""Gong (REST v2): the calls that involved a company, and what was said and promised on them.

Calls come from `POST /v2/calls/extensive` (cursor-paged, parties and CRM context included);
a call involves the company when an attendee's email domain is the company's, the CRM context
names it, or the title does (DESIGN.md §7). Transcripts come from `POST /v2/calls/transcript`;
sentences that promise, set a next step or object are kept as moments with their mm:ss.
Gong allows about 3 calls a second: a 429 is waited out as its Retry-After says.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from bot.core.account import Asker, Company, Found, Record, SourceError, mentions, moment

log = logging.getLogger("sophia.gong")

DAYS = 90
MAX_PAGES = 20  # 100 calls a page: 2,000 calls in 90 days is plenty for one account
MAX_RETRIES = 3
MAX_WAIT_S = 30.0
TRANSCRIBED_CALLS = 5  # the latest calls whose words are read
MOMENTS_PER_CALL = 10
# What kind of moment a sentence is; the first rule that matches wins.
CUES = [
    ("promise", re.compile(
        r"\b(i'll|i will|we'll|we will|let me|i'm going to|we're going to|i can|we can)\b.{0,60}"
        r"\b(send|share|get back|follow up|set up|schedule|deliver|provide|circle back|loop in|prepare|draft|have)\b",
        re.IGNORECASE)),
    ("next step", re.compile(
        r"\b(next steps?|follow[- ]up|next (week|call|meeting)|by (monday|tuesday|wednesday|thursday|friday|end of)|"
        r"kick[- ]?off|pilot|trial|sign(ed)? by)\b", re.IGNORECASE)),
    ("objection", re.compile(
        r"\b(concern(ed)?|worr(y|ied)|too expensive|expensive|pricing|price|budget|competitor|not sure|"
        r"hesitant|blocker|risk|security review|procurement|cheaper|churn|cancel)\b", re.IGNORECASE)),
]  # fmt: skip


class GongError(SourceError):
    """Gong could not be read; the message says why and what to check."""


class Gong:
    """Gong calls as an account source."""

    name = "Gong"

    def __init__(
        self, *, access_key: str | None, secret: str | None, base_url: str, days: int = DAYS,
        max_wait_s: float = MAX_WAIT_S,
    ) -> None:  # fmt: skip
        self._auth = aiohttp.BasicAuth(access_key, secret) if access_key and secret else None
        self._base = base_url.rstrip("/")
        self._days = days
        self._max_wait = max_wait_s

    @property
    def missing(self) -> str | None:
        return None if self._auth else "GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET"

    async def _post(self, session: aiohttp.ClientSession, path: str, body: dict) -> dict:
        """POST with Gong's rate limit respected (429 → wait Retry-After, up to 3 times)."""
        for attempt in range(MAX_RETRIES + 1):
            try:
                async with session.post(self._base + path, json=body, auth=self._auth) as response:
                    if response.status == 429 and attempt < MAX_RETRIES:
                        wait = _retry_after(response.headers.get("Retry-After"))
                        log.info("gong rate limit, waiting", extra={"seconds": wait})
                        await asyncio.sleep(min(wait, self._max_wait))
                        continue
                    data = (
                        await response.json(content_type=None)
                        if response.content_length != 0
                        else {}
                    )
                    return _checked(response.status, data or {})
            except aiohttp.ClientError:
                raise GongError(
                    f"Could not reach Gong at {self._base} (check GONG_API_URL)."
                ) from None
        raise GongError("Gong kept answering “too many requests”; try again in a minute.")

    async def calls(
        self, session: aiohttp.ClientSession, *, since: datetime, until: datetime
    ) -> list[dict]:
        """Every call in the range, with parties, CRM context, topics and action items."""
        body: dict[str, Any] = {
            "filter": {"fromDateTime": _iso(since), "toDateTime": _iso(until)},
            "contentSelector": {
                "context": "Extended",
                "exposedFields": {
                    "parties": True,
                    "content": {"topics": True, "pointsOfInterest": True, "brief": True},
                },
            },
        }
        calls: list[dict] = []
        for _ in range(MAX_PAGES):
            page = await self._post(session, "/v2/calls/extensive", body)
            calls += page.get("calls") or []
            cursor = (page.get("records") or {}).get("cursor")
            if not cursor:
                break
            body = {**body, "cursor": cursor}
        return calls

    async def transcripts(
        self, session: aiohttp.ClientSession, call_ids: list[str]
    ) -> dict[str, list]:
        """Monologues (speakerId, topic, sentences with start ms) per call id."""
        out: dict[str, list] = {}
        body: dict[str, Any] = {"filter": {"callIds": call_ids}}
        for _ in range(MAX_PAGES):
            page = await self._post(session, "/v2/calls/transcript", body)
            for item in page.get("callTranscripts") or []:
                out[str(item.get("callId"))] = item.get("transcript") or []
            cursor = (page.get("records") or {}).get("cursor")
            if not cursor:
                break
            body = {**body, "cursor": cursor}
        return out

    async def gather(self, company: Company, asker: Asker) -> Found:
        """The company's calls in the last 90 days and the moments worth knowing from them."""
        until = datetime.now(UTC)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            every = await self.calls(session, since=until - timedelta(days=self._days), until=until)
            ours = [c for c in every if involves(c, company)]
            ours.sort(
                key=lambda c: str((c.get("metaData") or {}).get("started") or ""), reverse=True
            )
            latest = [str(c["metaData"]["id"]) for c in ours[:TRANSCRIBED_CALLS]]
            words = await self.transcripts(session, latest) if latest else {}
        records: list[Record] = []
        for call in ours[:10]:
            records.append(call_record(call))
        for call in ours[:TRANSCRIBED_CALLS]:
            records += call_moments(call, words.get(str(call["metaData"]["id"])) or [])
        notes = [] if ours else [f"No calls with {company.name} in the last {self._days} days."]
        return Found(records, notes)


def involves(call: dict, company: Company) -> bool:
    """An attendee from the company's domain, CRM context naming it, or a title that does."""
    domain = (company.domain or "").lower()
    for party in call.get("parties") or []:
        email_domain = (party.get("emailAddress") or "").rpartition("@")[2].lower()
        same = email_domain == domain or email_domain.endswith("." + domain)
        if domain and email_domain and same:
            return True
        if _context_names(party.get("context"), company):
            return True
    if _context_names(call.get("context"), company):
        return True
    return mentions(str((call.get("metaData") or {}).get("title") or ""), company)


def _context_names(contexts: list | None, company: Company) -> bool:
    for ctx in contexts or []:
        for obj in ctx.get("objects") or []:
            if company.id and str(obj.get("objectId")) == company.id:
                return True
            if str(obj.get("objectType", "")).lower() in ("account", "company"):
                names = [
                    f.get("value")
                    for f in obj.get("fields") or []
                    if str(f.get("name")).lower() == "name"
                ]
                if any(str(n).strip().lower() == company.name.lower() for n in names):
                    return True
    return False


def call_record(call: dict) -> Record:
    """One call: title, date, who attended, Gong's topics and brief."""
    meta = call.get("metaData") or {}
    content = call.get("content") or {}
    people = [
        f"{p.get('name') or p.get('emailAddress') or '?'} ({'us' if p.get('affiliation') == 'Internal' else 'them'})"
        for p in call.get("parties") or []
    ]
    topics = [
        f"{t['name']} ({round((t.get('duration') or 0) / 60)} min)"
        for t in content.get("topics") or []
        if t.get("name")
    ]
    fields = {"attendees": ", ".join(people), "topics": ", ".join(topics)}
    if meta.get("duration"):
        fields["duration"] = f"{round(meta['duration'] / 60)} min"
    return Record("Gong", "call", meta.get("title") or "Call", meta.get("url") or "", content.get("brief") or "",
                  when=_when(meta.get("started")), fields={k: v for k, v in fields.items() if v})  # fmt: skip


def call_moments(call: dict, transcript: list) -> list[Record]:
    """Promises, next steps and objections said on a call, each with its mm:ss."""
    meta = call.get("metaData") or {}
    title, url = meta.get("title") or "Call", meta.get("url") or ""
    when = _when(meta.get("started"))
    speakers = {
        str(p.get("speakerId")): (p.get("name") or "someone", "us" if p.get("affiliation") == "Internal" else "them")
        for p in call.get("parties") or [] if p.get("speakerId")
    }  # fmt: skip
    out: list[Record] = []
    actions = ((call.get("content") or {}).get("pointsOfInterest") or {}).get("actionItems")
    for item in actions or []:
        who = speakers.get(str(item.get("speakerID")), ("someone", "?"))
        out.append(Record("Gong", "next step", title, url, f"{who[0]} ({who[1]}): {item.get('snippet', '')}",
                          when=when, moment=moment(item.get("snippetStartTime") or 0)))  # fmt: skip
    for mono in transcript:
        who = speakers.get(str(mono.get("speakerId")), ("someone", "?"))
        for sentence in mono.get("sentences") or []:
            text = sentence.get("text") or ""
            kind = next((k for k, rule in CUES if rule.search(text)), None)
            if kind and len(out) < MOMENTS_PER_CALL:
                at = moment((sentence.get("start") or 0) / 1000)
                out.append(
                    Record(
                        "Gong",
                        kind,
                        title,
                        url,
                        f"{who[0]} ({who[1]}): {text}",
                        when=when,
                        moment=at,
                    )
                )
    return out


def _checked(status: int, data: dict) -> dict:
    """The body of a good answer; a plain GongError for a bad one (404 "no calls" is empty)."""
    errors = " ".join(str(e) for e in data.get("errors") or [])
    if status == 200:
        return data
    if status == 404 and "no calls" in errors.lower():
        return {}
    if status == 401:
        raise GongError("Gong refused the key: check GONG_ACCESS_KEY and GONG_ACCESS_KEY_SECRET.")
    if status == 403:
        raise GongError(
            "The Gong key lacks a scope (api:calls:read:extensive, api:calls:read:transcript)."
        )
    raise GongError(f"Gong answered {status}." + (f" ({errors[:200]})" if errors else ""))


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value or 1))
    except ValueError:
        return 1.0


def _iso(moment_: datetime) -> str:
    return moment_.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _when(started: Any) -> str | None:
    """Gong's `started` (ISO text, or epoch seconds in older answers) as ISO text."""
    if isinstance(started, int | float):
        return datetime.fromtimestamp(started, UTC).isoformat()
    return str(started) if started else None
