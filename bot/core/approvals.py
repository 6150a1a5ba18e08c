"""One approval mechanism for every action that changes the outside world (DESIGN.md §4).

A request is stored before anyone sees a button; only a listed approver may decide, and by
default not the requester; a decision is single-use and expires; the bound version (a PR's
head SHA, an image digest) is checked again right before acting; and the move to
`executing` is a compare-and-set in the database, so a double click, a redelivered
envelope, a second replica or a restart never performs an action twice.

    ApprovalError
     ├── ApprovalNotFound   no such request
     ├── NotAnApprover      the clicker is not in SOPHIA_APPROVERS
     ├── SelfApproval       the requester tried to approve their own request
     ├── ApprovalExpired    past its expiry
     ├── AlreadyDecided     someone decided first (or it ran already)
     └── VersionChanged     the target moved since the request; the approval is void
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from bot.core.errors import SophiaError

log = logging.getLogger("sophia.approvals")


class ApprovalState(StrEnum):
    """Where a request is in its life; only the arrows in `_MOVES` are allowed."""

    PENDING = "pending"  # stored, buttons posted, waiting for an approver
    APPROVED = "approved"  # an approver said yes; about to execute
    REJECTED = "rejected"  # an approver said no (final)
    EXPIRED = "expired"  # nobody decided in time (final)
    VOID = "void"  # the bound version changed before execution (final)
    EXECUTING = "executing"  # claimed by exactly one process, acting now
    DONE = "done"  # the action happened (final)
    FAILED = "failed"  # the action was attempted and failed (final)


FINAL = {
    ApprovalState.REJECTED, ApprovalState.EXPIRED, ApprovalState.VOID, ApprovalState.DONE,
    ApprovalState.FAILED,
}  # fmt: skip


class ApprovalError(SophiaError):
    """A click or an execution that must not go ahead; the message says why, plainly."""


class ApprovalNotFound(ApprovalError):
    """No such request."""


class NotAnApprover(ApprovalError):
    """The person is not allowed to approve."""


class SelfApproval(ApprovalError):
    """The requester may not approve their own request."""


class ApprovalExpired(ApprovalError):
    """The request expired."""


class AlreadyDecided(ApprovalError):
    """Someone decided first, or the action already ran."""


class VersionChanged(ApprovalError):
    """The target changed since the request was made; the approval is void."""


@dataclass
class ApprovalRequest:
    """One action waiting for (or past) a human decision."""

    id: str
    kind: str  # "github.merge", "fly.deploy", …
    target: str  # "acme/site#7"
    params: dict[str, Any]
    bound_version: str  # what the approver saw: a head SHA, an image digest, a price
    summary: str  # one sentence: what will happen
    requester: str
    channel: str | None
    thread_ts: str | None
    created_at: float
    expires_at: float
    state: ApprovalState = ApprovalState.PENDING
    facts: list[tuple[str, str]] = field(default_factory=list)  # what a reviewer needs to know
    link: str | None = None
    message_ts: str | None = None
    decided_by: str | None = None
    decided_at: float | None = None
    result: str | None = None  # what happened, for the message and the audit log


# Posts one line of progress where the request was made (a deploy reports machine by machine).
Report = Callable[[str], Awaitable[None]]


class ActionExecutor(Protocol):
    """Carries out one kind of approved action; registered per `kind`."""

    async def current_version(self, request: ApprovalRequest) -> str:
        """The target's version now (compared with `bound_version` before acting)."""
        ...

    async def already_done(self, request: ApprovalRequest) -> str | None:
        """If the outside world shows the action already happened, say so (else None)."""
        ...

    async def execute(self, request: ApprovalRequest, report: Report) -> str:
        """Do it; return what happened in one line (with a link). Raise ApprovalError or SophiaError.

        `report` shows progress of a long action; an executor must be safe to run again after
        a restart mid-way (`reconcile` calls it once more) without repeating finished steps.
        """
        ...


class ApprovalStore(Protocol):
    """Durable storage with an atomic state transition."""

    async def save_approval(self, request: ApprovalRequest) -> None: ...
    async def load_approval(self, approval_id: str) -> ApprovalRequest | None: ...
    async def transition(
        self, approval_id: str, frm: ApprovalState, to: ApprovalState, **fields: Any
    ) -> bool: ...
    async def approvals_in(self, states: set[ApprovalState]) -> list[ApprovalRequest]: ...
    async def approvals_by(self, requester: str, limit: int) -> list[ApprovalRequest]: ...
    async def audit(self, *, approval_id: str, user: str, action: str, outcome: str) -> None: ...
    async def audit_log(self, limit: int) -> list[dict[str, Any]]: ...


IsApprover = Callable[[str], Awaitable[bool]]


@dataclass(frozen=True)
class Outcome:
    """The result of a click or an execution, for the message and the person."""

    request: ApprovalRequest
    message: str


class Approvals:
    """Create, decide, execute and reconcile approval requests."""

    def __init__(
        self,
        store: ApprovalStore,
        *,
        is_approver: IsApprover,
        ttl_s: float,
        allow_self_approval: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._is_approver = is_approver
        self._ttl = ttl_s
        self._allow_self = allow_self_approval
        self._clock = clock
        self._executors: dict[str, ActionExecutor] = {}
        # Where progress lines go (the Slack layer sets it to "reply in the request's thread").
        self.reporter: Callable[[ApprovalRequest, str], Awaitable[None]] | None = None
        # Told of each request whose execution just ended (done, failed, void), once, by the
        # process that ended it: how follow-ups hook in (a merge of Sophia's own repo offers
        # a deploy). Keep them quick; their errors are logged and never touch the action.
        self.finished: list[Callable[[ApprovalRequest], Awaitable[None]]] = []

    def register(self, kind: str, executor: ActionExecutor) -> None:
        """Say how one kind of action is carried out."""
        self._executors[kind] = executor

    async def create(
        self, *, kind: str, target: str, params: dict[str, Any], bound_version: str, summary: str,
        requester: str, channel: str | None, thread_ts: str | None,
        facts: list[tuple[str, str]] | None = None, link: str | None = None,
    ) -> ApprovalRequest:  # fmt: skip
        """Store a new pending request (before any button is shown)."""
        if kind not in self._executors:
            raise ApprovalError(f"Sophia does not know how to carry out `{kind}` actions.")
        now = self._clock()
        request = ApprovalRequest(
            id="a-" + secrets.token_hex(5), kind=kind, target=target, params=params,
            bound_version=bound_version, summary=summary, requester=requester, channel=channel,
            thread_ts=thread_ts, created_at=now, expires_at=now + self._ttl, facts=facts or [],
            link=link,
        )  # fmt: skip
        await self._store.save_approval(request)
        await self._store.audit(
            approval_id=request.id, user=requester, action="request", outcome="pending"
        )
        return request

    async def attach_message(self, approval_id: str, message_ts: str) -> None:
        """Remember where the buttons are, so decisions can update the message in place."""
        request = await self._get(approval_id)
        request.message_ts = message_ts
        await self._store.save_approval(request)

    async def get(self, approval_id: str) -> ApprovalRequest:
        """A request by id."""
        return await self._get(approval_id)

    async def decide(self, approval_id: str, *, user: str, approve: bool) -> Outcome:
        """Record one click; raises an ApprovalError (already audited) when it is refused."""
        verb = "approve" if approve else "reject"
        try:
            request = await self._check_click(approval_id, user)
            to = ApprovalState.APPROVED if approve else ApprovalState.REJECTED
            now = self._clock()
            if not await self._store.transition(
                approval_id, ApprovalState.PENDING, to, decided_by=user, decided_at=now
            ):
                raise AlreadyDecided("Someone else decided this request first.")
        except ApprovalError as exc:
            await self._store.audit(
                approval_id=approval_id,
                user=user,
                action=verb,
                outcome=f"refused: {type(exc).__name__}",
            )
            raise
        await self._store.audit(approval_id=approval_id, user=user, action=verb, outcome=to.value)
        request = await self._get(approval_id)
        word = "Approved" if approve else "Rejected"
        return Outcome(request, f"{word} by <@{user}>.")

    async def _check_click(self, approval_id: str, user: str) -> ApprovalRequest:
        request = await self._get(approval_id)
        if request.state != ApprovalState.PENDING:
            raise AlreadyDecided(f"This request is already {request.state.value}.")
        if self._clock() >= request.expires_at:
            await self._store.transition(approval_id, ApprovalState.PENDING, ApprovalState.EXPIRED)
            raise ApprovalExpired("This request has expired; ask again for a fresh one.")
        if not await self._is_approver(user):
            raise NotAnApprover(
                "You are not on the approvers list (SOPHIA_APPROVERS), so you cannot decide this."
            )
        if user == request.requester and not self._allow_self:
            raise SelfApproval(
                "You asked for this action, so someone else has to approve it "
                "(SOPHIA_ALLOW_SELF_APPROVAL is off)."
            )
        return request

    async def execute(self, approval_id: str) -> Outcome:
        """Carry out an approved request exactly once; safe to call from anywhere, any number of times."""
        if not await self._store.transition(
            approval_id, ApprovalState.APPROVED, ApprovalState.EXECUTING
        ):
            request = await self._get(approval_id)
            raise AlreadyDecided(f"This request is {request.state.value}; nothing to do.")
        return await self._run(await self._get(approval_id))

    async def _run(self, request: ApprovalRequest) -> Outcome:
        executor = self._executors[request.kind]
        try:
            done = await executor.already_done(request)
            if done:
                return await self._close(request, ApprovalState.DONE, done, "already done")
            current = await executor.current_version(request)
            if current != request.bound_version:
                raise VersionChanged(
                    f"The approval is void: {request.target} changed since it was requested "
                    f"(approved `{request.bound_version[:12]}`, now `{current[:12]}`)."
                )
            result = await executor.execute(request, self._report_for(request))
        except VersionChanged as exc:
            return await self._close(request, ApprovalState.VOID, str(exc), "void")
        except SophiaError as exc:
            return await self._close(request, ApprovalState.FAILED, str(exc), "failed")
        except Exception as exc:
            log.exception("approved action crashed", extra={"approval_id": request.id})
            return await self._close(
                request, ApprovalState.FAILED, f"The action failed unexpectedly (ref `{request.id}`).",
                f"failed: {type(exc).__name__}",
            )  # fmt: skip
        return await self._close(request, ApprovalState.DONE, result, "done")

    def _report_for(self, request: ApprovalRequest) -> Report:
        async def report(text: str) -> None:
            if self.reporter is None:
                return
            try:
                await self.reporter(request, text)
            except Exception:  # a lost progress line must not stop the action
                log.warning("could not report progress", extra={"approval_id": request.id})

        return report

    async def _close(
        self, request: ApprovalRequest, state: ApprovalState, result: str, audit: str
    ) -> Outcome:
        moved = await self._store.transition(
            request.id, ApprovalState.EXECUTING, state, result=result
        )
        await self._store.audit(
            approval_id=request.id, user="sophia", action="execute", outcome=audit
        )
        outcome = Outcome(await self._get(request.id), result)
        for listener in self.finished if moved else ():
            try:
                await listener(outcome.request)
            except Exception:
                log.exception(
                    "a finished-action listener failed", extra={"approval_id": request.id}
                )
        return outcome

    async def reconcile(self) -> list[Outcome]:
        """At start-up: finish requests left `executing` by a crash, checking the world first."""
        outcomes = []
        for request in await self._store.approvals_in({ApprovalState.EXECUTING}):
            log.warning("reconciling an interrupted action", extra={"approval_id": request.id})
            outcomes.append(await self._run(request))
        return outcomes

    async def expire_due(self) -> list[ApprovalRequest]:
        """Mark pending requests past their expiry as expired; returns them (to update messages)."""
        expired = []
        now = self._clock()
        for request in await self._store.approvals_in({ApprovalState.PENDING}):
            if now >= request.expires_at and await self._store.transition(
                request.id, ApprovalState.PENDING, ApprovalState.EXPIRED
            ):
                await self._store.audit(
                    approval_id=request.id, user="sophia", action="expire", outcome="expired"
                )
                expired.append(await self._get(request.id))
        return expired

    async def pending_for(self, user: str) -> list[ApprovalRequest]:
        """Pending requests this person may decide."""
        if not await self._is_approver(user):
            return []
        now = self._clock()
        return [
            r
            for r in await self._store.approvals_in({ApprovalState.PENDING})
            if r.expires_at > now and (self._allow_self or r.requester != user)
        ]

    async def requested_by(self, user: str, *, limit: int = 10) -> list[ApprovalRequest]:
        """This person's latest requests, newest first, whatever became of them."""
        return await self._store.approvals_by(user, limit)

    async def audit_log(self, limit: int = 20) -> list[dict[str, Any]]:
        """The latest audit entries, newest first."""
        return await self._store.audit_log(limit)

    async def is_approver(self, user: str) -> bool:
        """Whether this person may approve."""
        return await self._is_approver(user)

    async def _get(self, approval_id: str) -> ApprovalRequest:
        request = await self._store.load_approval(approval_id)
        if request is None:
            raise ApprovalNotFound("That approval request does not exist.")
        return request


def request_to_row(request: ApprovalRequest) -> dict[str, Any]:
    """Flatten a request for storage."""
    return {
        "id": request.id, "kind": request.kind, "target": request.target,
        "params": json.dumps(request.params), "bound_version": request.bound_version,
        "summary": request.summary, "requester": request.requester, "channel": request.channel,
        "thread_ts": request.thread_ts, "created_at": request.created_at,
        "expires_at": request.expires_at, "state": request.state.value,
        "facts": json.dumps(request.facts), "link": request.link, "message_ts": request.message_ts,
        "decided_by": request.decided_by, "decided_at": request.decided_at, "result": request.result,
    }  # fmt: skip


def row_to_request(row: dict[str, Any]) -> ApprovalRequest:
    """Rebuild a request from storage."""
    data = dict(row)
    data["params"] = json.loads(data["params"] or "{}")
    data["facts"] = [tuple(f) for f in json.loads(data["facts"] or "[]")]
    data["state"] = ApprovalState(data["state"])
    return ApprovalRequest(**data)
