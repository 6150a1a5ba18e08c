"""Sophia deploys herself: after a merge of SOPHIA_SELF_REPO, wait for CI, offer the image.

When an approved `github.merge` of the self repository finishes, the merge commit is
recorded (kv `selfdeploy.watch`, so a restart resumes the wait) and watched: once every CI
result on that commit has finished, a failure is reported and nothing is offered; success
becomes a new `fly.deploy` approval request for SOPHIA_SELF_FLY_APP, in the merge's thread.

The image: the first `registry.fly.io/<app>:<tag>` reference a CI result on the commit
reports (a check run's output title, summary or text, or a status description), else the
convention `registry.fly.io/<app>:<merge commit sha>` — what
`flyctl deploy --build-only --push --image-label ${{ github.sha }}` pushes.

Deploying herself restarts Sophia mid-deploy; the approval and the deploy's progress are in
the database, and the new instance's `Approvals.reconcile` finishes the rollout (or the
rollback) and reports in the same thread.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bot.core.approvals import ApprovalRequest, ApprovalState
from bot.core.errors import SophiaError
from integrations.fly_deploy import prepare_deploy
from integrations.github import CIResult

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger("sophia.selfdeploy")

WATCHES = "selfdeploy.watch"
CI_WAIT_S = 45 * 60  # a build and push rarely takes longer; past it Sophia says so and stops
_TAG, _DIGEST = r":\w[\w.-]{0,127}", r"@sha256:[0-9a-f]{64}"
_IMAGE = rf"registry\.fly\.io/{{app}}(?:{_TAG}(?:{_DIGEST})?|{_DIGEST})"

# (request) → post it with its buttons; (channel, thread_ts, text) → a line in that thread
Offer = Callable[[ApprovalRequest], Awaitable[None]]
Say = Callable[["str | None", "str | None", str], Awaitable[None]]


def image_for(app: str, sha: str, results: list[CIResult]) -> tuple[str, str]:
    """(image, where it came from): the tag CI reports for `app`, else `registry.fly.io/app:sha`."""
    pattern = re.compile(_IMAGE.replace("{app}", re.escape(app)))
    for result in results:
        found = pattern.search(result.detail or "") if result.state == "success" else None
        if found:
            return found.group(0).rstrip("."), f"reported by CI `{result.name}`"
    return f"registry.fly.io/{app}:{sha}", "the CI convention `registry.fly.io/<app>:<sha>`"


class SelfDeploy:
    """Follows merges of the self repository to a deploy offer; one watch per merge commit."""

    def __init__(
        self, services: Services, *, offer: Offer, say: Say, poll_s: float,
        timeout_s: float = CI_WAIT_S,
    ) -> None:  # fmt: skip
        self._services = services
        self._offer, self._say = offer, say
        self._poll_s, self._timeout_s = poll_s, timeout_s
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._active: dict[str, asyncio.Task[None]] = {}

    async def on_finished(self, request: ApprovalRequest) -> None:
        """Approvals listener: a merge of the self repo that went through starts a watch."""
        settings = self._services.settings
        params = request.params
        if request.kind != "github.merge" or request.state != ApprovalState.DONE:
            return
        if params.get("repo") != settings.self_repo:
            return
        sha = await self._services.github.merge_commit(params["repo"], int(params["number"]))
        if not sha:
            return
        watch = {
            "repo": params["repo"], "number": params["number"], "sha": sha,
            "channel": request.channel, "thread_ts": request.thread_ts or request.message_ts,
            "requester": request.requester, "since": time.time(),
        }  # fmt: skip
        await self._services.store.kv_put(WATCHES, sha, watch, ttl_s=self._timeout_s + 3600)
        self._queue.put_nowait(watch)

    async def run(self) -> None:
        """Resume watches a restart interrupted, then follow new merges, until cancelled."""
        try:
            for watch in (await self._services.store.kv_items(WATCHES)).values():
                self._start(watch)
            while True:
                self._start(await self._queue.get())
        finally:
            for task in self._active.values():
                task.cancel()
            await asyncio.gather(*self._active.values(), return_exceptions=True)

    def _start(self, watch: dict[str, Any]) -> None:
        sha = watch["sha"]
        if sha in self._active and not self._active[sha].done():
            return
        self._active[sha] = asyncio.create_task(self._follow(watch))

    async def _follow(self, watch: dict[str, Any]) -> None:
        try:
            await self.follow(watch)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("self-deploy watch failed", extra={"sha": watch["sha"]})

    async def follow(self, watch: dict[str, Any]) -> None:
        """Wait for CI on the merge commit, then offer the deploy (or say why not)."""
        services, store = self._services, self._services.store
        repo, sha, app = watch["repo"], watch["sha"], services.settings.self_fly_app
        channel, thread = watch["channel"], watch["thread_ts"]
        claimed = await store.claim_event(f"selfdeploy:{sha}:watch")
        if claimed:  # said once, by whichever replica took the watch first
            await self._say(
                channel, thread,
                f":eyes: Merged into my own repository as `{sha[:7]}`. I'll wait for its CI "
                f"and then offer a deploy of `{app}`.",
            )  # fmt: skip
        results = await self._wait_for_ci(repo, sha, deadline=watch["since"] + self._timeout_s)
        if not await store.claim_event(f"selfdeploy:{sha}:outcome"):
            await store.kv_delete(WATCHES, sha)
            return  # another replica (or this one before a restart) is offering it
        try:
            if results is None:
                minutes = int(self._timeout_s // 60)
                await self._say(
                    channel, thread,
                    f":hourglass: No finished CI run on `{sha[:7]}` after {minutes} min, so no "
                    f"deploy is offered. When the image is built: `/sophia deploy {app} <image>`.",
                )  # fmt: skip
                return
            failed = [r for r in results if r.state == "failure"]
            if failed:
                names = ", ".join(f"`{r.name}`" for r in failed[:5])
                await self._say(
                    channel, thread,
                    f":x: CI failed on `{sha[:7]}` ({names}), so I am not offering a deploy of "
                    f"`{app}`. Fix it first; the next merge tries again.",
                )  # fmt: skip
                return
            image, source = image_for(app, sha, results)
            await self._say(
                channel, thread,
                f":package: CI passed on `{sha[:7]}`. Image `{image}` ({source}).",
            )  # fmt: skip
            try:
                request = await prepare_deploy(
                    services, app, image, requester=watch["requester"], channel=channel,
                    thread_ts=thread,
                )  # fmt: skip
            except SophiaError as exc:
                await self._say(channel, thread, f":no_entry: No deploy offered: {exc}")
                return
            await self._offer(request)
        finally:
            await store.kv_delete(WATCHES, sha)

    async def _wait_for_ci(self, repo: str, sha: str, *, deadline: float) -> list[CIResult] | None:
        """Every CI result on `sha` once none is still running; None past the deadline."""
        github = self._services.github
        while True:
            try:
                _, results = await github.commit_ci(repo, sha)
            except SophiaError as exc:
                log.warning("could not read CI", extra={"sha": sha, "error": str(exc)[:200]})
                results = []
            if results and all(r.state != "pending" for r in results):
                return results
            if time.time() >= deadline:
                return None
            await asyncio.sleep(self._poll_s)
