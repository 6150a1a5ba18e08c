"""HubSpot writes, only ever through an approved request (DESIGN.md §4).

`hubspot.note` adds a note or a task to a company or deal; `hubspot.deal_stage` moves a deal to
another stage, bound to the stage the approver saw (a deal moved meanwhile voids the approval).
A note carries the request id, so after a restart it is found instead of written twice.
"""

from __future__ import annotations

import hashlib

from bot.core.account import AccessRule
from bot.core.approvals import ApprovalRequest, Approvals, Report
from integrations.hubspot import HubSpot, HubSpotError


class NoteExecutor:
    """Writes one approved note or task."""

    def __init__(self, hubspot: HubSpot) -> None:
        self._hubspot = hubspot

    async def current_version(self, request: ApprovalRequest) -> str:
        p = request.params
        if p["to_type"] == "deals":
            await self._hubspot.deal(p["to_id"])  # gone → a plain failure, not a stray note
        else:
            await self._hubspot.company(p["to_id"])
        return request.bound_version  # the text the approver read is in the request itself

    async def already_done(self, request: ApprovalRequest) -> str | None:
        p = request.params
        texts = await self._hubspot.engagement_texts(
            p["kind"], to_type=p["to_type"], to_id=p["to_id"]
        )
        if any(request.id in text for text in texts):
            return f"The {p['kind']} on <{p['url']}|{p['record']}> was already written."
        return None

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        p = request.params
        text = f"{p['text']}\n\n(added by Sophia for <@{request.requester}>, approved request {request.id})"
        await self._hubspot.add_engagement(
            p["kind"], to_type=p["to_type"], to_id=p["to_id"], text=text, due=p.get("due")
        )
        return f"Added the {p['kind']} to <{p['url']}|{p['record']}> in HubSpot."


class DealStageExecutor:
    """Moves one deal to the approved stage."""

    def __init__(self, hubspot: HubSpot) -> None:
        self._hubspot = hubspot

    async def current_version(self, request: ApprovalRequest) -> str:
        return (await self._hubspot.deal(request.params["deal_id"])).stage

    async def already_done(self, request: ApprovalRequest) -> str | None:
        p = request.params
        if (await self._hubspot.deal(p["deal_id"])).stage == p["stage_id"]:
            return f"<{p['url']}|{p['deal']}> is already in *{p['stage']}*."
        return None

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        p = request.params
        await self._hubspot.move_deal(p["deal_id"], p["stage_id"])
        return f"Moved <{p['url']}|{p['deal']}> from *{p['from']}* to *{p['stage']}* in HubSpot."


def register(approvals: Approvals, hubspot: HubSpot) -> None:
    """The two kinds of HubSpot action."""
    approvals.register("hubspot.note", NoteExecutor(hubspot))
    approvals.register("hubspot.deal_stage", DealStageExecutor(hubspot))


async def _check(access: AccessRule | None, user: str) -> None:
    if access is not None and (reason := await access(user)):
        raise HubSpotError(reason)


async def prepare_note(
    hubspot: HubSpot, approvals: Approvals, access: AccessRule | None, *, company: str, text: str,
    kind: str, due: str | None, deal: str | None, requester: str, channel: str | None,
    thread_ts: str | None,
) -> ApprovalRequest:  # fmt: skip
    """Find the record and store a request to add the note (or task) to it."""
    await _check(access, requester)
    if kind not in ("note", "task"):
        raise HubSpotError("I can add a `note` or a `task`.")
    if not text.strip():
        raise HubSpotError("The note is empty.")
    if deal:
        found = await hubspot.find_deal(deal)
        to_type, to_id, record, url = "deals", found.id, found.name, found.url
    else:
        matches = await hubspot.find_companies(company)
        exact = [
            c for c in matches if company.lower() in (c.name.lower(), (c.domain or "").lower())
        ]
        if not matches:
            raise HubSpotError(f"No company matching “{company}” in HubSpot.")
        if len(matches) > 1 and len(exact) != 1:
            raise HubSpotError(
                "Several companies match: "
                + ", ".join(f"{c.name} ({c.domain or c.id})" for c in matches)
                + "."
            )
        target = (exact or matches)[0]
        to_type, to_id, record, url = "companies", target.id or "", target.name, target.url or ""
    facts = [("Record", f"<{url}|{record}>"), ("Kind", kind), (kind.capitalize(), text[:900])]
    if due:
        facts.append(("Due", due))
    return await approvals.create(
        kind="hubspot.note", target=f"{record} (HubSpot)",
        params={"kind": kind, "to_type": to_type, "to_id": to_id, "record": record, "url": url,
                "text": text, "due": due},
        bound_version=hashlib.sha256(text.encode()).hexdigest()[:16],
        summary=f"Add a {kind} to *{record}* in HubSpot", requester=requester, channel=channel,
        thread_ts=thread_ts, facts=facts, link=url,
    )  # fmt: skip


async def prepare_deal_stage(
    hubspot: HubSpot, approvals: Approvals, access: AccessRule | None, *, deal: str, stage: str,
    requester: str, channel: str | None, thread_ts: str | None,
) -> ApprovalRequest:  # fmt: skip
    """Find the deal and the stage, and store a request bound to the deal's current stage."""
    await _check(access, requester)
    found = await hubspot.find_deal(deal)
    stages = await hubspot.stages()
    wanted = stage.strip().lower()
    choices = [s for s in stages.values() if s.pipeline == found.pipeline] or list(stages.values())
    target = next((s for s in choices if wanted in (s.id.lower(), s.label.lower())), None)
    if target is None:
        names = ", ".join(f"“{s.label}”" for s in choices)
        raise HubSpotError(f"“{stage}” is not a stage of this pipeline; choose one of {names}.")
    now = stages.get(found.stage)
    if found.stage == target.id:
        raise HubSpotError(f"{found.name} is already in {target.label}.")
    current = now.label if now else found.stage
    facts = [
        ("Deal", f"<{found.url}|{found.name}>"), ("From", current), ("To", target.label),
        ("Amount", found.amount or "—"), ("Close date", (found.close_date or "—")[:10]),
    ]  # fmt: skip
    return await approvals.create(
        kind="hubspot.deal_stage", target=f"{found.name} (HubSpot deal)",
        params={"deal_id": found.id, "deal": found.name, "url": found.url, "stage_id": target.id,
                "stage": target.label, "from": current,
                "ask_again": f"@Sophia move the deal {found.name} to {target.label}"},
        bound_version=found.stage, summary=f"Move deal *{found.name}* from *{current}* to *{target.label}*",
        requester=requester, channel=channel, thread_ts=thread_ts, facts=facts, link=found.url,
    )  # fmt: skip
