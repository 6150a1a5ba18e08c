"""Fake Lambda Cloud API (v1) server for tests, following the published OpenAPI shapes.

``FakeLambda`` is an aiohttp server on 127.0.0.1; ``base_url`` ends in ``/api/v1`` like
``LAMBDA_API_URL``. It keeps instance types (with the regions that have capacity: none means
sold out), SSH keys and instances, and records every request::

    async with FakeLambda() as fake:
        fake.add_type("gpu_1x_a10", 75, regions=["us-east-1"])
        fake.add_type("gpu_8x_h100_sxm5", 2392, regions=[])  # sold out
        fake.add_ssh_key("sophia")
        ...
        [launch] = fake.calls("POST", "/instance-operations/launch")

Instances launch ``booting`` without an IP and turn ``active`` (with ``instance_ip``) on their
``boot_polls``-th observation by a GET; terminate answers ``terminating`` and the instance is
``terminated`` (and gone from ``GET /instances``) from then on. Auth is ``Authorization: Bearer
<key>`` (or Basic with the key as user); anything else gets 401 ``global/invalid-api-key``.
Errors are ``{"error": {"code", "message", "suggestion"}}``.
"""

from __future__ import annotations

import base64
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.loopback import LoopbackServer

REGIONS = {
    "us-east-1": "Virginia, USA",
    "us-west-1": "California, USA",
    "us-south-1": "Texas, USA",
    "europe-central-1": "Germany",
}


@dataclass
class Req:
    """One request as the fake received it (path without the ``/api/v1`` prefix)."""

    method: str
    path: str
    json: Any
    headers: dict[str, str]
    status: int = 0


@dataclass
class FakeInstance:
    id: str
    name: str
    type_name: str
    region: str
    ssh_key_names: list[str]
    status: str = "booting"
    ip: str | None = None
    observed: int = 0  # GETs that returned it (drives booting → active)
    extra: dict[str, Any] = field(default_factory=dict)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, suggestion: str = "") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.suggestion = status, code, message, suggestion


def _region(name: str) -> dict[str, str]:
    return {"name": name, "description": REGIONS.get(name, name)}


class FakeLambda(LoopbackServer):
    prefix = "/api/v1"  # LAMBDA_API_URL includes it
    api_key = "secret_sophia-test_0123456789abcdef"

    def __init__(self, *, api_key: str | None = None, boot_polls: int = 2) -> None:
        super().__init__()
        self.api_key = api_key or self.api_key
        self.boot_polls = boot_polls
        self.instance_ip = "198.51.100.2"  # what active instances report as their IP
        self.types: dict[str, dict[str, Any]] = {}
        self.capacity: dict[str, list[str]] = {}  # type → regions with capacity
        self.ssh_keys: list[dict[str, str]] = []
        self.instances: dict[str, FakeInstance] = {}
        self.requests: list[Req] = []

    # -- state -------------------------------------------------------------------------------
    def add_type(
        self, name: str, price_cents: int, *, regions: list[str], gpus: int = 1,
        description: str | None = None,
    ) -> None:  # fmt: skip
        gpu = name.split("_", 2)[-1].upper().replace("_", " ")
        self.types[name] = {
            "name": name, "description": description or f"{gpus}x {gpu}",
            "gpu_description": gpu, "price_cents_per_hour": price_cents,
            "specs": {"vcpus": 30 * gpus, "memory_gib": 200 * gpus, "storage_gib": 1400 * gpus,
                      "gpus": gpus},
        }  # fmt: skip
        self.capacity[name] = list(regions)

    def add_ssh_key(self, name: str) -> None:
        self.ssh_keys.append(
            {"id": secrets.token_hex(16), "name": name, "public_key": f"ssh-ed25519 AAAA {name}"}
        )

    def add_instance(
        self, type_name: str, region: str, *, status: str = "active", name: str = "",
        ssh_key: str = "sophia",
    ) -> FakeInstance:  # fmt: skip
        """An instance that already runs (launched outside the test's flow)."""
        inst = FakeInstance(
            id=secrets.token_hex(16), name=name, type_name=type_name, region=region,
            ssh_key_names=[ssh_key], status=status,
            ip=self.instance_ip if status == "active" else None,
        )  # fmt: skip
        self.instances[inst.id] = inst
        return inst

    def calls(self, method: str, path_pattern: str) -> list[Req]:
        """Requests with this method whose path matches the regular expression."""
        pattern = re.compile(path_pattern)
        return [r for r in self.requests if r.method == method and pattern.search(r.path)]

    @property
    def launches(self) -> list[Req]:
        return self.calls("POST", r"^/instance-operations/launch$")

    @property
    def terminations(self) -> list[Req]:
        return self.calls("POST", r"^/instance-operations/terminate$")

    # -- wire --------------------------------------------------------------------------------
    def _authorized(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value == self.api_key
        if scheme.lower() == "basic":
            if value == self.api_key:
                return True
            try:
                return base64.b64decode(value).decode().split(":", 1)[0] == self.api_key
            except ValueError:
                return False
        return False

    async def _dispatch(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"].rstrip("/")
        body = await request.json() if request.can_read_body else None
        req = Req(request.method, path, body, dict(request.headers))
        self.requests.append(req)
        try:
            if not self._authorized(request.headers.get("Authorization", "")):
                raise ApiError(
                    401, "global/invalid-api-key", "API key was invalid, expired, or deleted.",
                    "Check your API key or create a new one, then try again.",
                )  # fmt: skip
            data = self._route(request.method, path, body)
        except ApiError as exc:
            req.status = exc.status
            error = {"code": exc.code, "message": exc.message}
            if exc.suggestion:
                error["suggestion"] = exc.suggestion
            return web.json_response({"error": error}, status=exc.status)
        req.status = 200
        return web.json_response({"data": data})

    def _route(self, method: str, path: str, body: Any) -> Any:
        if method == "GET" and path == "/instance-types":
            return {
                name: {"instance_type": shape,
                       "regions_with_capacity_available": [_region(r) for r in self.capacity[name]]}
                for name, shape in self.types.items()
            }  # fmt: skip
        if method == "GET" and path == "/instances":
            live = [i for i in self.instances.values() if i.status != "terminated"]
            return [self._observe(i) for i in live]
        if method == "GET" and (match := re.fullmatch(r"/instances/([^/]+)", path)):
            return self._observe(self._instance(match.group(1)))
        if method == "GET" and path == "/ssh-keys":
            return self.ssh_keys
        if method == "POST" and path == "/instance-operations/launch":
            return self._launch(body if isinstance(body, dict) else {})
        if method == "POST" and path == "/instance-operations/terminate":
            ids = (body or {}).get("instance_ids") if isinstance(body, dict) else None
            if not isinstance(ids, list) or not ids:
                raise ApiError(400, "global/invalid-parameters", "Invalid request data.")
            gone = [self._instance(i) for i in ids]
            for inst in gone:
                if inst.status == "terminated":
                    raise ApiError(404, "global/object-does-not-exist", "Specified instance does not exist.")  # fmt: skip
            out = []
            for inst in gone:
                inst.status = "terminating"
                out.append(self._wire(inst))
                inst.status = "terminated"
            return {"terminated_instances": out}
        raise ApiError(404, "global/object-does-not-exist", f"No route {method} {path}.")

    def _launch(self, body: dict[str, Any]) -> dict[str, Any]:
        for key in ("region_name", "instance_type_name", "ssh_key_names"):
            if key not in body:
                raise ApiError(400, "global/invalid-parameters", f"Missing {key}.")
        type_name, region = body["instance_type_name"], body["region_name"]
        keys = body["ssh_key_names"]
        if not isinstance(keys, list) or len(keys) != 1:
            raise ApiError(400, "global/invalid-parameters", "Exactly one SSH key must be specified.")  # fmt: skip
        if type_name not in self.types:
            raise ApiError(404, "global/object-does-not-exist", f"Instance type {type_name} does not exist.", "Choose an instance type from /instance-types.")  # fmt: skip
        if keys[0] not in {k["name"] for k in self.ssh_keys}:
            raise ApiError(404, "global/object-does-not-exist", f"SSH key {keys[0]} does not exist.", "Add the SSH key first.")  # fmt: skip
        if region not in self.capacity[type_name]:
            raise ApiError(400, "instance-operations/launch/insufficient-capacity", "Not enough capacity to fulfill launch request.", "Choose another region or try again later.")  # fmt: skip
        ids = []
        for _ in range(int(body.get("quantity", 1))):
            inst = FakeInstance(
                id=secrets.token_hex(16), name=body.get("name", ""), type_name=type_name,
                region=region, ssh_key_names=list(keys),
            )  # fmt: skip
            self.instances[inst.id] = inst
            ids.append(inst.id)
        return {"instance_ids": ids}

    def _instance(self, instance_id: str) -> FakeInstance:
        inst = self.instances.get(instance_id)
        if inst is None:
            raise ApiError(404, "global/object-does-not-exist", "Specified instance does not exist.")  # fmt: skip
        return inst

    def _observe(self, inst: FakeInstance) -> dict[str, Any]:
        inst.observed += 1
        if inst.status == "booting" and inst.observed >= self.boot_polls:
            inst.status, inst.ip = "active", self.instance_ip
        return self._wire(inst)

    def _wire(self, inst: FakeInstance) -> dict[str, Any]:
        available = {"available": inst.status == "active"}
        actions = ("migrate", "rebuild", "restart", "cold_reboot", "terminate")
        data: dict[str, Any] = {
            "id": inst.id, "name": inst.name, "status": inst.status,
            "ssh_key_names": inst.ssh_key_names, "file_system_names": [],
            "region": _region(inst.region), "instance_type": self.types[inst.type_name],
            "actions": {k: dict(available) for k in actions},
            "tags": [],
        }  # fmt: skip
        if inst.ip:
            data.update(ip=inst.ip, private_ip="10.0.2.100", hostname=inst.ip.replace(".", "-"))
        return data | inst.extra
