"""Lambda Cloud API (https://docs-api.lambda.ai/api/cloud) over aiohttp: instance types, instances,
launch, terminate and SSH keys.

`LAMBDA_API_URL` includes `/api/v1`; every call sends `Authorization: Bearer LAMBDA_API_KEY`.
Answers are `{"data": …}`; failures are `{"error": {"code", "message", "suggestion"}}`, which
become a `LambdaError` whose text is Lambda's own message and suggestion (never the key).

    SophiaError
     └── LambdaError          the API refused or could not be reached (plain text)
          └── LambdaNotFound  no such instance (or type, or SSH key)
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.core.errors import SophiaError
from bot.redact import redact

# Statuses after which an instance costs nothing and cannot be used again.
GONE = {"terminated", "terminating", "preempted"}


class LambdaError(SophiaError):
    """The Lambda Cloud API refused a call or could not be reached; the text says why, plainly."""

    def __init__(self, message: str, *, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class LambdaNotFound(LambdaError):
    """The instance (or the type or SSH key named in a launch) does not exist."""


@dataclass(frozen=True)
class Region:
    """A Lambda region: `us-east-1`, "Virginia, USA"."""

    name: str
    description: str


@dataclass(frozen=True)
class InstanceType:
    """One offered machine shape, its price and where it can be launched right now."""

    name: str  # gpu_1x_a10
    description: str  # 1x A10 (24 GB PCIe)
    price_cents_per_hour: int
    gpus: int
    vcpus: int
    memory_gib: int
    storage_gib: int
    regions: tuple[Region, ...]  # regions with capacity available; empty: sold out

    @property
    def sold_out(self) -> bool:
        """No region has capacity for this type now."""
        return not self.regions

    @property
    def dollars_per_hour(self) -> float:
        return self.price_cents_per_hour / 100


@dataclass(frozen=True)
class Instance:
    """A launched machine as the API reports it (no launch time: the API does not give one)."""

    id: str
    name: str
    status: str  # booting, active, unhealthy, terminating, terminated, preempted
    ip: str | None  # absent while booting
    region: str
    type_name: str
    type_description: str
    price_cents_per_hour: int
    ssh_key_names: tuple[str, ...]

    @property
    def gone(self) -> bool:
        """Terminated (or on its way): nothing more to do to it."""
        return self.status in GONE


def _type_from(item: dict[str, Any]) -> InstanceType:
    shape = item.get("instance_type") or {}
    specs = shape.get("specs") or {}
    regions = tuple(
        Region(r.get("name", ""), r.get("description", ""))
        for r in item.get("regions_with_capacity_available") or []
    )
    return InstanceType(
        name=shape.get("name", ""), description=shape.get("description", ""),
        price_cents_per_hour=int(shape.get("price_cents_per_hour") or 0),
        gpus=int(specs.get("gpus") or 0), vcpus=int(specs.get("vcpus") or 0),
        memory_gib=int(specs.get("memory_gib") or 0), storage_gib=int(specs.get("storage_gib") or 0),
        regions=regions,
    )  # fmt: skip


def _instance_from(data: dict[str, Any]) -> Instance:
    shape = data.get("instance_type") or {}
    return Instance(
        id=data.get("id", ""), name=data.get("name") or "", status=data.get("status", ""),
        ip=data.get("ip") or None, region=(data.get("region") or {}).get("name", ""),
        type_name=shape.get("name", ""), type_description=shape.get("description", ""),
        price_cents_per_hour=int(shape.get("price_cents_per_hour") or 0),
        ssh_key_names=tuple(data.get("ssh_key_names") or ()),
    )  # fmt: skip


class LambdaCloud:
    """An async client for the Lambda Cloud API.

    Takes the app's aiohttp session when given one; without it each call opens a short-lived
    session (calls are few: a listing, a launch, a poll every few seconds while booting).
    """

    def __init__(
        self,
        *,
        api_url: str,
        api_key: str | None,
        session: aiohttp.ClientSession | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._key = api_key or ""
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        # How often and how long to look while a launched instance boots (minutes, in practice).
        self.poll_every_s = 10.0
        self.boot_timeout_s = 15 * 60.0
        # Lambda instances take SSH on port 22 of their public IP; a test points this at a
        # loopback server instead.
        self.ssh_port = 22

    @property
    def configured(self) -> bool:
        """Whether LAMBDA_API_KEY is set."""
        return bool(self._key)

    # -- reads -------------------------------------------------------------------------------
    async def instance_types(self) -> list[InstanceType]:
        """Every offered type, cheapest first, with the regions that have capacity now."""
        data = await self._call("GET", "/instance-types")
        types = [_type_from(item) for item in (data or {}).values()]
        return sorted(types, key=lambda t: (t.price_cents_per_hour, t.name))

    async def instances(self) -> list[Instance]:
        """The account's running (and booting) instances."""
        return [_instance_from(item) for item in await self._call("GET", "/instances") or []]

    async def instance(self, instance_id: str) -> Instance:
        """One instance; raises LambdaNotFound when there is no such instance."""
        return _instance_from(await self._call("GET", f"/instances/{instance_id}"))

    async def ssh_key_names(self) -> list[str]:
        """Names of the SSH keys stored in the account (launches name one of them)."""
        return [key.get("name", "") for key in await self._call("GET", "/ssh-keys") or []]

    # -- actions -----------------------------------------------------------------------------
    async def launch(
        self, *, instance_type: str, region: str, ssh_key_name: str, name: str
    ) -> str:  # fmt: skip
        """Launch one instance and return its id (it boots for a few minutes)."""
        body = {
            "region_name": region, "instance_type_name": instance_type,
            "ssh_key_names": [ssh_key_name], "quantity": 1, "name": name,
        }  # fmt: skip
        data = await self._call("POST", "/instance-operations/launch", body)
        ids = (data or {}).get("instance_ids") or []
        if not ids:
            raise LambdaError("Lambda accepted the launch but returned no instance id.")
        return ids[0]

    async def terminate(self, instance_id: str) -> list[Instance]:
        """Terminate one instance; returns what Lambda reports as terminated."""
        data = await self._call(
            "POST", "/instance-operations/terminate", {"instance_ids": [instance_id]}
        )
        return [_instance_from(item) for item in (data or {}).get("terminated_instances") or []]

    async def wait_active(self, instance_id: str) -> Instance | None:
        """Poll until the instance is active with an IP; None when it is not within the bound."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.boot_timeout_s
        while True:
            instance = await self.instance(instance_id)
            if instance.status == "active" and instance.ip:
                return instance
            if instance.gone:
                raise LambdaError(
                    f"Instance `{instance_id}` is {instance.status}; it never came up."
                )
            if loop.time() + self.poll_every_s > deadline:
                return None
            await asyncio.sleep(self.poll_every_s)

    # -- wire --------------------------------------------------------------------------------
    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if not self._key:
            raise LambdaError("Lambda GPUs are not configured: set LAMBDA_API_KEY.")
        if self._session is not None:
            return await self._send(self._session, method, path, body)
        async with aiohttp.ClientSession(timeout=self._timeout) as session:
            return await self._send(session, method, path, body)

    async def _send(
        self, session: aiohttp.ClientSession, method: str, path: str, body: dict[str, Any] | None
    ) -> Any:
        headers = {"Authorization": f"Bearer {self._key}", "Accept": "application/json"}
        try:
            async with session.request(
                method, self.api_url + path, json=body, headers=headers, timeout=self._timeout
            ) as response:
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = None
                if response.status < 400 and isinstance(payload, dict) and "data" in payload:
                    return payload["data"]
                raise _error(response.status, payload)
        except aiohttp.ClientError as exc:
            raise LambdaError(
                f"Could not reach the Lambda Cloud API at {self.api_url} ({type(exc).__name__}); "
                "check LAMBDA_API_URL."
            ) from exc
        except TimeoutError as exc:
            raise LambdaError("The Lambda Cloud API did not answer in time.") from exc


def _error(status: int, payload: Any) -> LambdaError:
    """Lambda's `{"error": {code, message, suggestion}}` as one plain sentence."""
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return LambdaError(f"The Lambda Cloud API answered HTTP {status}.", status=status)
    code = str(error.get("code") or "")
    text = str(error.get("message") or f"HTTP {status}").rstrip(".") + "."
    if error.get("suggestion"):
        text += f" {str(error['suggestion']).rstrip('.')}."
    if code == "global/invalid-api-key":
        text += " (LAMBDA_API_KEY was refused.)"
    kind = (
        LambdaNotFound if status == 404 or code == "global/object-does-not-exist" else LambdaError
    )
    return kind(redact(text), code=code, status=status)


def dollars(cents: float) -> str:
    """`$1.29` from cents."""
    return f"${cents / 100:,.2f}"
