"""What the health monitor looks at: Fly machines and their checks, default-branch CI on GitHub.

Each probe turns one outside system's view into `bot.core.monitor` findings:

- Fly app: a machine in state `failed` is critical; a started machine's checks count as Fly
  reports them (`passing` / `warning` / `critical`); a machine on its way (starting,
  replacing, …) is pending; stopped and suspended machines are left alone (Fly's autostop
  stops machines on purpose, and their checks are stale).
- GitHub repository: every status context and latest check run on the default branch's head;
  failure, error, timed out and startup failure are critical, cancelled and action required
  are warnings, queued and running are pending.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.core.monitor import Finding, Health, Probe, Snapshot
from integrations.index_capability import web_url_for

if TYPE_CHECKING:
    from bot.services import Services

_CHECK = {"passing": Health.PASSING, "warning": Health.WARNING, "critical": Health.CRITICAL}
_CI = {
    "success": Health.PASSING, "failure": Health.CRITICAL, "neutral": Health.WARNING,
    "pending": Health.PENDING,
}  # fmt: skip
_AT_REST = {"stopped", "suspended", "created", "destroyed", "destroying"}


def app_key(app: str) -> str:
    return f"fly:{app}"


def repo_key(repo: str) -> str:
    return f"github:{repo}"


@dataclass
class FlyAppProbe:
    """Machine states and health checks of one Fly app."""

    fly: Any  # integrations.fly.Fly
    app: str

    @property
    def key(self) -> str:
        return app_key(self.app)

    async def look(self) -> Snapshot:
        findings: list[Finding] = []
        machines = await self.fly.machines(self.app)
        for m in machines:
            where = {"machine": m.id, "machine_name": m.name or m.id}
            if m.state == "failed":
                text = f"Machine {m.name or m.id} ({m.region}) is in state `failed`."
                findings.append(Finding("machine state", Health.CRITICAL, text, **where))
            elif m.state == "started":
                for check in m.checks:
                    health = _CHECK.get(check.status, Health.PENDING)
                    findings.append(Finding(f"check {check.name}", health, check.output, **where))
            elif m.state not in _AT_REST:
                text = f"Machine {m.name or m.id} is {m.state}."
                findings.append(Finding("machine state", Health.PENDING, text, **where))
        version = machines[0].image if machines else None
        link = f"https://fly.io/apps/{self.app}/monitoring"
        return Snapshot(self.key, "app", self.app, findings, link=link, version=version)


@dataclass
class RepoCIProbe:
    """The CI results on the head of one repository's default branch."""

    github: Any  # integrations.github.GitHub
    repo: str
    web: str  # the GitHub web host, for links

    @property
    def key(self) -> str:
        return repo_key(self.repo)

    async def look(self) -> Snapshot:
        branch, sha, results = await self.github.default_branch_ci(self.repo)
        findings = [
            Finding(f"CI {r.name}", _CI.get(r.state, Health.PENDING), r.detail, url=r.url)
            for r in results
        ]
        link = f"{self.web}/{self.repo}/commit/{sha}"
        return Snapshot(self.key, "repo", f"{self.repo}@{branch}", findings, link=link, version=sha)


def probes_for(services: Services) -> list[Probe]:
    """The probes of `SOPHIA_MONITORED_APPS` and `SOPHIA_MONITORED_REPOS` that can run now."""
    settings = services.settings
    found: list[Probe] = []
    fly = services.fly
    if fly is not None and getattr(fly, "configured", False):
        found += [FlyAppProbe(fly, app) for app in settings.monitored_apps]
    github = services.github
    if github is not None and github.configured:
        web = web_url_for(settings.github_api_url)
        found += [RepoCIProbe(github, repo, web) for repo in settings.monitored_repos]
    return found
