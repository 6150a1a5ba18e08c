"""Account briefs: every business source asked in parallel, one cited brief written from them.

The core knows no SDK and no Slack: HubSpot, Gong, Asana, Slack messages and the web each
implement `AccountSource`; HubSpot also implements `CompanyDirectory` (which company is meant).
The brief is written by the `reasoning` route with no tools at all, from the gathered records
only (wrapped as untrusted data). The model cites record ids (`[G2]`); the ids are turned into
the records' own links here, so every link in a brief is one a source returned.

    SophiaError
     ├── SourceError          a source failed; the message says how, plainly
     └── AmbiguousCompany     several CRM companies match; `candidates` to choose from
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from bot.core.brief_text import (
    brief_messages,
    cite,
    company_link,
    digest,
    number,
    short,
    sources_list,
    when,
)
from bot.core.budget import check_budget
from bot.core.errors import ModelError, SophiaError
from bot.core.ports import ModelDone, TextDelta, WebResearch
from bot.core.types import Progress, RequestRecord, StepStatus, new_request_id

if TYPE_CHECKING:
    from bot.core.orchestrator import Orchestrator

log = logging.getLogger("sophia.account")

# The id of a "this company" button; the Slack layer listens for it and re-runs the command.
PICK_ACTION = "sophia_account_pick"
# The prefix that pins a CRM record in `/sophia account hubspot:<id>` (what a pick button sends).
PINNED = "hubspot:"
SOURCE_TIMEOUT_S = 45.0
BRIEF_TIMEOUT_S = 120.0
# Per source, how many records reach the model (the newest / most relevant first).
MAX_RECORDS = {"HubSpot": 40, "Gong": 40, "Slack": 25, "Asana": 25, "Web": 6}


class SourceError(SophiaError):
    """A source could not be read; `str()` says why in words a person understands."""


class AmbiguousCompany(SophiaError):
    """More than one CRM company matches what was typed."""

    def __init__(self, query: str, candidates: list[Company]) -> None:
        super().__init__(f"Several companies match “{query}”; which one do you mean?")
        self.query, self.candidates = query, candidates


@dataclass(frozen=True)
class Company:
    """The account a brief is about: from the CRM when found there, else as typed."""

    name: str
    domain: str | None = None
    id: str | None = None  # the CRM record id
    url: str | None = None  # the CRM record link
    detail: str = ""  # told apart on a pick button: "acme.com · Berlin"

    @property
    def short_name(self) -> str:
        """The name without its legal form ("Acme Corp" → "Acme"), as people write it."""
        return _LEGAL.sub("", self.name).strip(" ,.") or self.name


@dataclass(frozen=True)
class Asker:
    """Who asks, and where the brief will be read (sources filter what that place may see)."""

    user: str
    channel: str | None
    private: bool  # read in a DM, by the asker alone


@dataclass
class Record:
    """One thing a source knows, with the link that proves it."""

    source: str  # "HubSpot", "Gong", "Slack", "Asana", "Web"
    kind: (
        str  # "company", "deal", "contact", "note", "call", "promise", "message", "task", "news", …
    )
    title: str
    url: str
    text: str = ""
    when: str | None = None  # ISO date or date-time
    moment: str | None = None  # "12:34" into a recorded call
    fields: dict[str, str] = field(default_factory=dict)

    def label(self) -> str:
        """Short link text for an inline citation: "Gong 12:34", "HubSpot", "reuters.com"."""
        if self.moment:
            return f"{self.source} {self.moment}"
        if self.source == "Web":
            return re.sub(r"^www\.", "", re.sub(r"^https?://([^/]+).*$", r"\1", self.url))
        return self.source


@dataclass
class Found:
    """What one source found, plus anything worth saying about how (a plan limit, a filter)."""

    records: list[Record] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class AccountSource(Protocol):
    """One place that knows about accounts."""

    name: str  # "HubSpot", "Gong", "Slack", "Asana", "Web"

    @property
    def missing(self) -> str | None:
        """What to set to switch this source on (a variable name), or None when it is on."""
        ...

    async def gather(self, company: Company, asker: Asker) -> Found:
        """Records about `company` that `asker` may see where the brief is read; raises SourceError."""
        ...


class CompanyDirectory(Protocol):
    """Finds which company is meant (the CRM)."""

    async def find_companies(self, query: str, *, limit: int = 6) -> list[Company]:
        """Companies matching a name or a domain, best first."""
        ...

    async def company(self, company_id: str) -> Company:
        """One company by its record id; raises SourceError when there is none."""
        ...


# Why someone may not read business data (None: they may). Set by the Slack layer.
AccessRule = Callable[[str], Awaitable[str | None]]


@dataclass
class Outcome:
    """How one source did, for the progress line and the brief's footer."""

    source: str
    status: str  # "ok", "off" (not configured), "failed"
    found: Found = field(default_factory=Found)
    detail: str = ""  # the variable to set, or the failure
    elapsed_s: float = 0.0

    def line(self) -> str:
        """One line for the footer of a brief."""
        if self.status == "off":
            return f"- {self.source}: not configured — set `{self.detail}`."
        if self.status == "failed":
            return f"- {self.source}: failed — {self.detail} The brief uses the other sources."
        n = len(self.found.records)
        notes = "".join(f" {note}" for note in self.found.notes)
        return f"- {self.source}: {n} record{'s' * (n != 1)}.{notes}"


class WebNews:
    """Recent news from web research (`services.research`), when a search provider is set up."""

    name = "Web"

    def __init__(self, research: Callable[[], WebResearch | None]) -> None:
        self._research = research  # read at call time: research may be wired after us

    @property
    def missing(self) -> str | None:
        return None if self._research() else "SERPER_API_KEY (or another search provider's key)"

    async def gather(self, company: Company, asker: Asker) -> Found:
        research = self._research()
        query = f"{company.name} {company.domain or ''} news".strip()
        try:
            results = await research.search(query, limit=5)
        except SophiaError as exc:
            raise SourceError(str(exc)) from exc
        return Found([
            Record("Web", "news", hit.title, hit.url, hit.snippet, when=hit.published)
            for hit in results.hits
        ])  # fmt: skip


class AccountBriefs:
    """The business sources, who may read them, and the briefs written from them."""

    def __init__(
        self, *, core: Orchestrator, directory: CompanyDirectory | None,
        sources: list[AccountSource], source_timeout: float = SOURCE_TIMEOUT_S,
    ) -> None:  # fmt: skip
        self._core = core
        self.directory = directory
        self._sources = sources
        self._timeout = source_timeout
        self.slack: AccountSource | None = None  # Slack messages, attached by the Slack layer
        self.access: AccessRule | None = None  # attached by the Slack layer; None: a terminal
        # Buttons to pick one of several companies (Block Kit, from the Slack layer).
        self.choices: Callable[[str, list[Company]], list[dict]] | None = None

    @property
    def configured(self) -> bool:
        """Whether any business source has credentials (Slack and the web alone are not enough)."""
        return any(s.missing is None for s in self._sources if s.name != "Web")

    @property
    def sources(self) -> list[AccountSource]:
        """Every source, in the order a brief lists them."""
        slack = [self.slack] if self.slack else []
        return [*self._sources[:2], *slack, *self._sources[2:]]

    async def refusal(self, user: str) -> str | None:
        """Why `user` may not read account data, or None."""
        return await self.access(user) if self.access else None

    async def resolve(self, query: str) -> Company:
        """The company meant by `query`; raises AmbiguousCompany when the CRM has several."""
        query = query.strip()
        if self.directory is None:
            return typed_company(query)
        if query.lower().startswith(PINNED):
            return await self.directory.company(query[len(PINNED) :].strip())
        try:
            found = await self.directory.find_companies(query)
        except SourceError:
            log.warning("company lookup failed; using the name as typed")
            return typed_company(query)
        if not found:
            return typed_company(query)
        exact = [c for c in found if query.lower() in (c.name.lower(), (c.domain or "").lower())]
        if len(exact) == 1:
            return exact[0]
        if len(found) == 1:
            return found[0]
        raise AmbiguousCompany(query, found)

    async def gather(
        self, company: Company, asker: Asker, progress: Progress, *, timeout: float | None = None
    ) -> list[Outcome]:
        """Ask every source at once; each reports its own step (found, time, or why not)."""
        limit = timeout or self._timeout
        return list(
            await asyncio.gather(
                *(self._ask(s, company, asker, progress, limit) for s in self.sources)
            )
        )

    async def _ask(
        self,
        source: AccountSource,
        company: Company,
        asker: Asker,
        progress: Progress,
        limit: float,
    ) -> Outcome:
        step = f"source-{source.name.lower()}"
        if source.missing:
            await progress.step(
                step,
                source.name,
                StepStatus.COMPLETE,
                detail=f"not configured: set {source.missing}",
            )
            return Outcome(source.name, "off", detail=source.missing)
        await progress.step(step, source.name, StepStatus.IN_PROGRESS)
        started = time.perf_counter()
        try:
            found = await asyncio.wait_for(source.gather(company, asker), limit)
        except SourceError as exc:
            outcome = Outcome(source.name, "failed", detail=_sentence(str(exc)))
        except TimeoutError:
            outcome = Outcome(source.name, "failed", detail=f"no answer within {limit:g} s.")
        except Exception:
            log.exception("account source crashed", extra={"source": source.name})
            outcome = Outcome(source.name, "failed", detail="an unexpected error (see the logs).")
        else:
            found.records = found.records[: MAX_RECORDS.get(source.name, 25)]
            outcome = Outcome(source.name, "ok", found=found)
        outcome.elapsed_s = time.perf_counter() - started
        if outcome.status == "ok":
            detail = f"{len(outcome.found.records)} found · {outcome.elapsed_s:.1f} s"
            await progress.step(step, source.name, StepStatus.COMPLETE, detail=detail)
        else:
            await progress.step(step, source.name, StepStatus.ERROR, detail=outcome.detail)
        return outcome

    async def write(self, company: Company, asker: Asker, progress: Progress) -> str:
        """Gather, then have the reasoning route write the cited brief (records only, no tools)."""
        outcomes = await self.gather(company, asker, progress)
        records = number(outcomes)
        head = f"**Account brief: {company_link(company)}**"
        footer = "\n\n**Sources checked**\n" + "\n".join(o.line() for o in outcomes)
        if not records:
            return f"{head}\n\nI found nothing about {company.name} in the sources I could read.{footer}"
        await progress.step(
            "brief", "Writing the brief", StepStatus.IN_PROGRESS, detail="reasoning"
        )
        try:
            text = await self._compose(company, asker, records, outcomes)
        except (ModelError, TimeoutError) as exc:
            reason = str(exc) or "the model did not answer in time"
            await progress.step("brief", "Writing the brief", StepStatus.ERROR, detail=reason)
            return f"{head}\n\n_I could not write the brief ({reason}); here is what the sources hold._\n\n{digest(records)}{footer}"
        await progress.step("brief", "Writing the brief", StepStatus.COMPLETE)
        body, cited = cite(text, records)
        return f"{head}\n\n{body}\n\n{sources_list(records, cited)}{footer}"

    async def dossier(
        self, company: Company, asker: Asker, progress: Progress, *, timeout: float | None = None
    ) -> str:
        """The records as cited text for the agent's model (no second model call)."""
        outcomes = await self.gather(company, asker, progress, timeout=timeout)
        records = number(outcomes)
        lines = [f"Account records for {company.name} (untrusted data; cite the links):"]
        lines += [f"- {r.source} {r.kind}: {r.title}{when(r)} — {short(r.text, 300)} <{r.url}>" for r in records.values()]  # fmt: skip
        lines += ["Sources checked:", *(o.line() for o in outcomes)]
        return "\n".join(lines)

    async def _compose(
        self, company: Company, asker: Asker, records: dict[str, Record], outcomes: list[Outcome]
    ) -> str:
        core = self._core
        config = core.config
        verdict = await check_budget(
            core.requests, user=asker.user, workspace_cap=config.daily_budget_usd,
            user_cap=config.user_daily_budget_usd,
        )  # fmt: skip
        if not verdict.allowed:
            raise ModelError(verdict.message or "the daily model budget is used up")
        messages = brief_messages(company, records, outcomes)
        parts: list[str] = []
        done: ModelDone | None = None
        started = time.perf_counter()

        async def run() -> None:
            nonlocal done
            async for event in core.models.stream(route="reasoning", messages=messages, max_tokens=config.max_output_tokens or 2000):  # fmt: skip
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                elif isinstance(event, ModelDone):
                    done = event

        await asyncio.wait_for(run(), BRIEF_TIMEOUT_S)
        if done is not None:
            await _log_usage(core, asker, done, time.perf_counter() - started)
        return "".join(parts).strip()


_LEGAL = re.compile(
    r"[\s,]+(inc|incorporated|corp|corporation|co|company|llc|ltd|limited|gmbh|ag|sa|sas|bv|nv|plc|pty)\.?$",
    re.IGNORECASE,
)
_DOMAIN = re.compile(r"^(?:https?://)?(?:www\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)+)/?$", re.IGNORECASE)


def typed_company(query: str) -> Company:
    """A company known only by what was typed; a domain is kept as the domain."""
    match = _DOMAIN.match(query.strip())
    if match:
        domain = match.group(1).lower()
        return Company(name=domain.split(".")[0].capitalize(), domain=domain)
    return Company(name=query.strip())


def moment(seconds: float) -> str:
    """A point in a recording as mm:ss (h:mm:ss past an hour)."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def mentions(text: str, company: Company) -> bool:
    """Whether `text` names the company (as a whole word) or its domain."""
    names = [company.name, company.short_name] + ([company.domain] if company.domain else [])
    return any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", text, re.IGNORECASE) for n in names if n)


async def _log_usage(core: Orchestrator, asker: Asker, done: ModelDone, elapsed: float) -> None:
    """Count the brief's model use in the request log (budgets and `/sophia usage` see it)."""
    record = RequestRecord(
        id=new_request_id(), at=time.time(), user_id=asker.user, channel=asker.channel,
        thread_ts=None, source="command", route=done.route or "reasoning", model=done.model,
        prompt_tokens=done.usage.prompt_tokens, completion_tokens=done.usage.completion_tokens,
        cost_usd=done.usage.cost_usd, latency_ms=round(elapsed * 1000, 1), status="ok",
    )  # fmt: skip
    try:
        await core.requests.log_request(record)
    except Exception:
        log.warning("could not log the brief's model use")


def _sentence(text: str) -> str:
    text = text.strip() or "it failed."
    return text if text.endswith((".", "!", "?")) else text + "."
