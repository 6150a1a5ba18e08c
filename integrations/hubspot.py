"""HubSpot CRM through `hubspot-api-client`: companies, contacts, deals and engagements, with links.

The SDK is synchronous (urllib3), so every call runs in a worker thread. Its host comes from
`HUBSPOT_API_URL` (the SDK's `Configuration.host`), so a proxy or a test fake can stand in.
Record links need the portal id: `HUBSPOT_PORTAL_ID`, else asked once from the account-info API.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from hubspot.crm.objects import PublicObjectSearchRequest

from bot.core.account import Asker, Company, Found, Record, SourceError

log = logging.getLogger("sophia.hubspot")


def _sdk() -> Any:
    """hubspot-api-client's CRM models, imported on first use: the SDK is ~50 modules and
    most Sophias never talk to HubSpot."""
    from hubspot.crm import objects

    return objects


def _client_class() -> Any:
    from hubspot import HubSpot as HubSpotClient

    return HubSpotClient


T = TypeVar("T")

TIMEOUT_S = 20.0
CACHE_S = 600.0  # owners and pipeline stages change rarely
TYPE_CODE = {"contacts": "0-1", "companies": "0-2", "deals": "0-3"}
# HubSpot-defined association type ids: note/task → company, note/task → deal.
NOTE_TO = {"companies": 190, "deals": 214}
TASK_TO = {"companies": 192, "deals": 216}
COMPANY_PROPS = [
    "name", "domain", "city", "country", "industry", "lifecyclestage", "hubspot_owner_id",
    "numberofemployees", "annualrevenue", "description", "hs_lastmodifieddate",
]  # fmt: skip
DEAL_PROPS = ["dealname", "dealstage", "pipeline", "amount", "closedate", "hubspot_owner_id", "hs_lastmodifieddate"]  # fmt: skip
CONTACT_PROPS = ["firstname", "lastname", "email", "jobtitle", "lastmodifieddate"]
ENGAGEMENTS = {
    "notes": ["hs_note_body", "hs_timestamp", "hubspot_owner_id"],
    "emails": ["hs_email_subject", "hs_email_text", "hs_email_direction", "hs_timestamp"],
    "meetings": ["hs_meeting_title", "hs_meeting_body", "hs_meeting_outcome", "hs_meeting_start_time", "hs_timestamp"],
    "tasks": ["hs_task_subject", "hs_task_body", "hs_task_status", "hs_timestamp"],
}  # fmt: skip
_DOMAIN = re.compile(r"^(?:https?://)?(?:www\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)+)/?$", re.IGNORECASE)


class HubSpotError(SourceError):
    """A HubSpot call failed; the message names the fix when there is one."""


@dataclass(frozen=True)
class Stage:
    """A deal stage, with its pipeline."""

    id: str
    label: str
    pipeline: str  # pipeline id
    closed: bool


@dataclass(frozen=True)
class Deal:
    """What an approver sees of a deal, and what a stage move needs."""

    id: str
    name: str
    stage: str  # stage id
    pipeline: str
    amount: str | None
    close_date: str | None
    url: str


class HubSpot:
    """The CRM: a company directory and an account source (`bot.core.account`), plus writes."""

    name = "HubSpot"

    def __init__(self, *, token: str | None, base_url: str, portal_id: str | None = None) -> None:
        self._token = token
        self._host = base_url.rstrip("/")
        self._portal = portal_id
        self._ui = "app.hubspot.com"
        self._client = _client_class()(access_token=token, host=self._host) if token else None
        self._apis: dict[str, Any] = {}
        self._cache: dict[str, tuple[float, Any]] = {}

    @property
    def configured(self) -> bool:
        return self._client is not None

    @property
    def missing(self) -> str | None:
        return None if self.configured else "HUBSPOT_ACCESS_TOKEN"

    # -- plumbing ------------------------------------------------------------------------------

    def _api(self, name: str) -> Any:
        """One SDK API object per kind (each holds a connection pool): build once, reuse."""
        if name not in self._apis:
            crm = self._client.crm
            self._apis[name] = {
                "basic": lambda: crm.objects.basic_api,
                "batch": lambda: crm.objects.batch_api,
                "search": lambda: crm.objects.search_api,
                "associations": lambda: crm.associations.v4.basic_api,
                "pipelines": lambda: crm.pipelines.pipelines_api,
                "owners": lambda: crm.owners.owners_api,
            }[name]()
        return self._apis[name]

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking SDK call in a thread; failures become plain HubSpotErrors."""
        if self._client is None:
            raise HubSpotError("HubSpot is not configured: set HUBSPOT_ACCESS_TOKEN.")
        try:
            return await asyncio.to_thread(fn, *args)
        except HubSpotError:
            raise
        except Exception as exc:
            status = getattr(exc, "status", None)
            log.warning(
                "hubspot call failed", extra={"status": status, "error": type(exc).__name__}
            )
            raise HubSpotError(_plain(exc, self._host)) from None

    def _cached(self, key: str, load: Callable[[], T]) -> T:
        hit = self._cache.get(key)
        if hit and time.monotonic() - hit[0] < CACHE_S:
            return hit[1]
        value = load()
        self._cache[key] = (time.monotonic(), value)
        return value

    def _search(self, object_type: str, request: PublicObjectSearchRequest) -> list[dict]:
        page = self._api("search").do_search(object_type, request, _request_timeout=TIMEOUT_S)
        return [r.to_dict() for r in page.results]

    def _read(self, object_type: str, ids: list[str], properties: list[str]) -> list[dict]:
        if not ids:
            return []
        body = _sdk().BatchReadInputSimplePublicObjectId(
            inputs=[_sdk().SimplePublicObjectId(id=i) for i in ids[:100]], properties=properties,
            properties_with_history=[],
        )  # fmt: skip
        page = self._api("batch").read(
            object_type, body, archived=False, _request_timeout=TIMEOUT_S
        )
        return [r.to_dict() for r in page.results]

    def _associated(self, from_type: str, object_id: str, to_type: str) -> list[str]:
        page = self._api("associations").get_page(
            from_type, object_id, to_type, limit=100, _request_timeout=TIMEOUT_S
        )
        return [str(r.to_object_id) for r in page.results]

    def _related(self, company_id: str, to_type: str, properties: list[str]) -> list[dict]:
        return self._read(to_type, self._associated("companies", company_id, to_type), properties)

    # -- links ---------------------------------------------------------------------------------

    def _portal_sync(self) -> str:
        """The portal id (and UI host) for record links, asked once."""
        if self._portal:
            return self._portal
        response = self._client.api_request(
            {"method": "GET", "path": "/account-info/v3/details", "base_url": self._host}
        )
        if response.status_code != 200:
            raise HubSpotError(
                f"HubSpot's account-info API answered {response.status_code}; set HUBSPOT_PORTAL_ID."
            )
        details = response.json()
        self._portal = str(details["portalId"])
        self._ui = details.get("uiDomain") or self._ui
        return self._portal

    def _url(self, object_type: str, object_id: str) -> str:
        return f"https://{self._ui}/contacts/{self._portal_sync()}/record/{TYPE_CODE[object_type]}/{object_id}"

    async def record_url(self, object_type: str, object_id: str) -> str:
        """The link to a record in HubSpot's UI."""
        return await self._run(self._url, object_type, object_id)

    # -- directory -----------------------------------------------------------------------------

    def _company(self, row: dict) -> Company:
        p = row.get("properties") or {}
        where = ", ".join(x for x in (p.get("city"), p.get("country")) if x)
        detail = " · ".join(x for x in (p.get("domain"), where) if x)
        return Company(
            name=p.get("name") or p.get("domain") or f"company {row['id']}", domain=p.get("domain"),
            id=str(row["id"]), url=self._url("companies", str(row["id"])), detail=detail,
        )  # fmt: skip

    async def find_companies(self, query: str, *, limit: int = 6) -> list[Company]:
        """Companies by domain (exact) or by name (HubSpot's search over name, domain, website)."""

        def search() -> list[Company]:
            domain = _DOMAIN.match(query.strip())
            if domain:
                exact = _sdk().Filter(
                    property_name="domain", operator="EQ", value=domain.group(1).lower()
                )
                request = _sdk().PublicObjectSearchRequest(
                    filter_groups=[_sdk().FilterGroup(filters=[exact])],
                    properties=COMPANY_PROPS,
                    limit=limit,
                )
            else:
                request = _sdk().PublicObjectSearchRequest(
                    query=query, properties=COMPANY_PROPS, limit=limit
                )
            return [self._company(row) for row in self._search("companies", request)]

        return await self._run(search)

    async def company(self, company_id: str) -> Company:
        """One company by record id."""

        def get() -> Company:
            row = self._api("basic").get_by_id("companies", company_id, properties=COMPANY_PROPS)
            return self._company(row.to_dict())

        return await self._run(get)

    # -- the account source --------------------------------------------------------------------

    def _owners(self) -> dict[str, str]:
        def load() -> dict[str, str]:
            page = self._api("owners").get_page(
                limit=500, archived=False, _request_timeout=TIMEOUT_S
            )
            return {
                str(o.id): " ".join(x for x in (o.first_name, o.last_name) if x)
                or o.email
                or str(o.id)
                for o in page.results
            }

        return self._cached("owners", load)

    def _stages(self) -> dict[str, Stage]:
        def load() -> dict[str, Stage]:
            pipelines = self._api("pipelines").get_all("deals", _request_timeout=TIMEOUT_S).results
            return {
                s.id: Stage(s.id, s.label, p.id, str((s.metadata or {}).get("isClosed")).lower() == "true")
                for p in pipelines for s in p.stages
            }  # fmt: skip

        return self._cached("stages", load)

    async def gather(self, company: Company, asker: Asker) -> Found:
        """The company record, its deals, contacts and latest engagements, each with its link."""
        if company.id is None:  # not resolved here (lookup failed or no CRM match): look again
            matches = await self.find_companies(company.domain or company.name)
            if len(matches) != 1:
                return Found(notes=[f"No single company named “{company.name}” in HubSpot."])
            company = matches[0]
        cid = company.id
        related = await asyncio.gather(
            self._run(self._related, cid, "deals", DEAL_PROPS),
            self._run(self._related, cid, "contacts", CONTACT_PROPS),
            *(self._run(self._related, cid, kind, props) for kind, props in ENGAGEMENTS.items()),
            self._run(self._owners), self._run(self._stages),
        )  # fmt: skip
        deals, contacts, *engagements, owners, stages = related
        by_kind = dict(zip(ENGAGEMENTS, engagements, strict=True))

        def build() -> list[Record]:  # record links may need the portal id: off the loop
            records = [
                Record(
                    "HubSpot",
                    "company",
                    company.name,
                    company.url or "",
                    fields={"domain": company.domain or ""},
                )
            ]
            records += self._deal_records(deals, owners, stages)
            records += self._contact_records(contacts)
            return records + _engagement_records(by_kind, owners, company)

        return Found(await self._run(build))

    def _deal_records(
        self, deals: list[dict], owners: dict, stages: dict[str, Stage]
    ) -> list[Record]:
        out = []
        for row in deals:
            p = row.get("properties") or {}
            stage = stages.get(p.get("dealstage") or "")
            fields = {
                "stage": stage.label if stage else p.get("dealstage") or "?",
                "open": "no" if stage and stage.closed else "yes",
                "amount": p.get("amount") or "", "close date": (p.get("closedate") or "")[:10],
                "owner": owners.get(p.get("hubspot_owner_id") or "", ""),
            }  # fmt: skip
            url = self._url("deals", str(row["id"]))
            out.append(
                Record(
                    "HubSpot",
                    "deal",
                    p.get("dealname") or "deal",
                    url,
                    when=p.get("closedate"),
                    fields=fields,
                )
            )
        out.sort(key=lambda r: r.fields["open"] != "yes")  # open deals first
        return out

    def _contact_records(self, contacts: list[dict]) -> list[Record]:
        out = []
        for row in contacts[:15]:
            p = row.get("properties") or {}
            name = (
                " ".join(x for x in (p.get("firstname"), p.get("lastname")) if x)
                or p.get("email")
                or "contact"
            )
            text = " · ".join(x for x in (p.get("jobtitle"), p.get("email")) if x)
            out.append(
                Record("HubSpot", "contact", name, self._url("contacts", str(row["id"])), text)
            )
        return out

    # -- writes (only ever run by an approved request) -----------------------------------------

    async def find_deal(self, query: str) -> Deal:
        """A deal by id or by (part of) its name; a plain error when none or several match."""

        def find() -> list[dict]:
            if query.strip().isdigit():
                row = self._api("basic").get_by_id("deals", query.strip(), properties=DEAL_PROPS)
                return [row.to_dict()]
            request = _sdk().PublicObjectSearchRequest(query=query, properties=DEAL_PROPS, limit=5)
            return self._search("deals", request)

        rows = await self._run(find)
        if not rows:
            raise HubSpotError(f"No deal matching “{query}” in HubSpot.")
        exact = [
            r for r in rows if (r["properties"].get("dealname") or "").lower() == query.lower()
        ]
        if len(rows) > 1 and len(exact) != 1:
            names = ", ".join(f"“{r['properties'].get('dealname')}” ({r['id']})" for r in rows)
            raise HubSpotError(
                f"Several deals match “{query}”: {names}. Name one exactly, or give its id."
            )
        return await self._run(self._deal, (exact or rows)[0])

    def _deal(self, row: dict) -> Deal:
        p = row.get("properties") or {}
        return Deal(
            id=str(row["id"]), name=p.get("dealname") or "deal", stage=p.get("dealstage") or "",
            pipeline=p.get("pipeline") or "", amount=p.get("amount"), close_date=p.get("closedate"),
            url=self._url("deals", str(row["id"])),
        )  # fmt: skip

    async def deal(self, deal_id: str) -> Deal:
        """A deal as it is now."""

        def get() -> Deal:
            return self._deal(
                self._api("basic").get_by_id("deals", deal_id, properties=DEAL_PROPS).to_dict()
            )

        return await self._run(get)

    async def stages(self) -> dict[str, Stage]:
        """Every deal stage by id."""
        return await self._run(self._stages)

    async def move_deal(self, deal_id: str, stage_id: str) -> None:
        """Set a deal's stage."""

        def update() -> None:
            body = _sdk().SimplePublicObjectInput(properties={"dealstage": stage_id})
            self._api("basic").update("deals", deal_id, body, _request_timeout=TIMEOUT_S)

        await self._run(update)

    async def add_engagement(
        self, kind: str, *, to_type: str, to_id: str, text: str, due: str | None = None
    ) -> str:
        """Create a note or a task on a company or deal; returns its id."""

        def create() -> str:
            if kind == "task":
                properties = {
                    "hs_task_subject": text.splitlines()[0][:200], "hs_task_body": text,
                    "hs_task_status": "NOT_STARTED", "hs_timestamp": due or _now_iso(),
                }  # fmt: skip
                type_id, object_type = TASK_TO[to_type], "tasks"
            else:
                properties = {
                    "hs_note_body": html.escape(text).replace("\n", "<br>"),
                    "hs_timestamp": _now_iso(),
                }
                type_id, object_type = NOTE_TO[to_type], "notes"
            link = _sdk().PublicAssociationsForObject(
                to=_sdk().PublicObjectId(id=to_id),
                types=[
                    _sdk().AssociationSpec(
                        association_category="HUBSPOT_DEFINED", association_type_id=type_id
                    )
                ],
            )
            body = _sdk().SimplePublicObjectInputForCreate(
                properties=properties, associations=[link]
            )
            return str(self._api("basic").create(object_type, body, _request_timeout=TIMEOUT_S).id)

        return await self._run(create)

    async def engagement_texts(self, kind: str, *, to_type: str, to_id: str) -> list[str]:
        """The bodies of the notes (or tasks) on a record (to tell whether one was written)."""
        object_type = "tasks" if kind == "task" else "notes"
        field_name = "hs_task_body" if kind == "task" else "hs_note_body"

        def read() -> list[str]:
            ids = self._associated(to_type, to_id, object_type)
            return [
                (r.get("properties") or {}).get(field_name) or ""
                for r in self._read(object_type, ids, [field_name])
            ]

        return await self._run(read)


def _engagement_records(
    by_kind: dict[str, list[dict]], owners: dict, company: Company
) -> list[Record]:
    """Notes, emails, meetings and tasks, newest first (12 at most), linked to the company."""
    out = []
    for kind, rows in by_kind.items():
        for row in rows:
            p = row.get("properties") or {}
            when = p.get("hs_meeting_start_time") or p.get("hs_timestamp")
            if kind == "notes":
                who = owners.get(p.get("hubspot_owner_id") or "", "")
                title, text = f"Note{' by ' + who if who else ''}", _text(p.get("hs_note_body"))
            elif kind == "emails":
                title, text = p.get("hs_email_subject") or "Email", _text(p.get("hs_email_text"))
            elif kind == "meetings":
                title, text = (
                    p.get("hs_meeting_title") or "Meeting",
                    _text(p.get("hs_meeting_body")),
                )
            else:
                if p.get("hs_task_status") == "COMPLETED":
                    continue
                title, text = p.get("hs_task_subject") or "Task", _text(p.get("hs_task_body"))
            record = Record("HubSpot", kind.rstrip("s"), title, company.url or "", text, when=when)
            out.append(record)
    out.sort(key=lambda r: r.when or "", reverse=True)
    return out[:12]


def _text(value: str | None) -> str:
    """HTML bodies (notes, emails) as plain text."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", value or "")).split())


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


def _plain(exc: Exception, host: str) -> str:
    """An SDK or network error in words, with the fix when it is a setting."""
    status = getattr(exc, "status", None)
    if status == 401:
        return "HubSpot refused the token: check HUBSPOT_ACCESS_TOKEN."
    if status == 403:
        return "The HubSpot token lacks a scope this needs (crm.objects.*.read / write): add it to the private app."
    if status == 404:
        return "HubSpot has no such record."
    if status == 429:
        return "HubSpot's rate limit was hit; try again in a few seconds."
    if isinstance(status, int) and status >= 500:
        return f"HubSpot answered {status}; it may be having trouble."
    if status is not None:
        return f"HubSpot answered {status}."
    if isinstance(exc, ValueError):
        return "HubSpot answered something unexpected."
    return f"Could not reach HubSpot at {host} (check HUBSPOT_API_URL)."
