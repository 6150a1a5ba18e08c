"""Fake HubSpot CRM API for tests, spoken to by the real ``hubspot-api-client``.

Serves the endpoints Sophia uses, in HubSpot's wire format (camelCase JSON, ISO timestamps,
numeric-string ids, HUBSPOT_DEFINED association types)::

    POST  /crm/v3/objects/{type}/search          query / filterGroups (EQ, CONTAINS_TOKEN, IN)
    POST  /crm/v3/objects/{type}/batch/read
    GET   /crm/v3/objects/{type}/{id}            PATCH (update), POST /crm/v3/objects/{type}
    GET   /crm/v4/objects/{type}/{id}/associations/{toType}
    GET   /crm/v3/pipelines/deals                GET /crm/v3/owners/
    GET   /account-info/v3/details

Every request needs ``Authorization: Bearer <token>`` (else 401 INVALID_AUTHENTICATION).
"""

from __future__ import annotations

import itertools
from typing import Any

from tests.fakes.rest_server import Req, RestServer

NOW = "2025-05-01T10:00:00.000Z"
SEARCHABLE = {
    "companies": ("name", "domain", "website"),
    "deals": ("dealname",),
    "contacts": ("firstname", "lastname", "email"),
}
STAGES = [
    ("appointmentscheduled", "Appointment scheduled", False),
    ("qualifiedtobuy", "Qualified to buy", False),
    ("contractsent", "Contract sent", False),
    ("closedwon", "Closed won", True),
    ("closedlost", "Closed lost", True),
]
# Object type names the v4 associations API accepts, and their singular forms.
TYPES = ("companies", "contacts", "deals", "notes", "emails", "meetings", "tasks")
ASSOCIATION_TYPE = {
    ("notes", "companies"): 190,
    ("tasks", "companies"): 192,
    ("notes", "deals"): 214,
}


class FakeHubSpot(RestServer):
    token = "pat-na1-test-0000-1111"

    def __init__(self, *, portal_id: int = 4242) -> None:
        super().__init__()
        self.portal_id = portal_id
        self.objects: dict[str, dict[str, dict]] = {t: {} for t in TYPES}
        self.links: set[tuple[str, str, str, str, int]] = set()  # (type, id, toType, toId, typeId)
        self.owners = [
            {"id": "101", "firstName": "Dana", "lastName": "Reyes", "email": "dana@ours.example"}
        ]
        self._ids = itertools.count(9001)
        objects = r"/crm/v3/objects/(?P<type>[a-z_0-9-]+)"
        self.route("POST", rf"{objects}/search", self._search)
        self.route("POST", rf"{objects}/batch/read", self._batch_read)
        self.route("GET", rf"{objects}/(?P<oid>\d+)", self._get)
        self.route("PATCH", rf"{objects}/(?P<oid>\d+)", self._update)
        self.route("POST", objects, self._create)
        self.route(
            "GET",
            r"/crm/v4/objects/(?P<type>\w+)/(?P<oid>\d+)/associations/(?P<to>\w+)",
            self._associations,
        )
        self.route("GET", r"/crm/v3/pipelines/deals", self._pipelines)
        self.route("GET", r"/crm/v3/owners/?", self._owners)
        self.route("GET", r"/account-info/v3/details", self._account)

    # -- state for tests -------------------------------------------------------------------
    def add(
        self, object_type: str, properties: dict[str, Any], *, to: list[tuple[str, str]] = ()
    ) -> str:
        """Add a record (and its associations, both ways); returns its id."""
        oid = str(next(self._ids))
        props = {k: None if v is None else str(v) for k, v in properties.items()}
        props |= {"hs_object_id": oid, "createdate": NOW, "hs_lastmodifieddate": NOW}
        self.objects[object_type][oid] = {"id": oid, "properties": props, "createdAt": NOW, "updatedAt": NOW, "archived": False}  # fmt: skip
        for to_type, to_id in to:
            self.link(object_type, oid, to_type, to_id)
        return oid

    def link(self, a_type: str, a_id: str, b_type: str, b_id: str) -> None:
        type_id = ASSOCIATION_TYPE.get((a_type, b_type), 1)
        self.links |= {
            (a_type, a_id, b_type, b_id, type_id),
            (b_type, b_id, a_type, a_id, type_id + 1),
        }

    def props(self, object_type: str, oid: str) -> dict[str, Any]:
        return self.objects[object_type][oid]["properties"]

    # -- wire ------------------------------------------------------------------------------
    def authorised(self, req: Req) -> bool:
        return req.headers.get("Authorization") == f"Bearer {self.token}"

    def error_body(self, status: int) -> Any:
        category = {401: "INVALID_AUTHENTICATION", 404: "OBJECT_NOT_FOUND", 429: "RATE_LIMITS"}.get(
            status, "ERROR"
        )
        message = "Authentication credentials not found." if status == 401 else f"HTTP {status}"
        return {
            "status": "error",
            "message": message,
            "correlationId": "0f1e2d3c-fake",
            "category": category,
        }

    def _view(self, obj: dict, wanted: list[str] | None) -> dict:
        if not wanted:
            return obj
        keys = set(wanted) | {"hs_object_id", "createdate", "hs_lastmodifieddate"}
        props = {k: obj["properties"].get(k) for k in keys}
        return {**obj, "properties": props}

    def _matches(self, obj: dict, f: dict) -> bool:
        value = (obj["properties"].get(f["propertyName"]) or "").lower()
        op, want = f["operator"], str(f.get("value") or "").lower()
        if op == "EQ":
            return value == want
        if op == "NEQ":
            return value != want
        if op == "CONTAINS_TOKEN":
            return want.strip("*") in value
        if op == "IN":
            return value in [str(v).lower() for v in f.get("values") or []]
        if op == "HAS_PROPERTY":
            return bool(value)
        raise ValueError(f"operator {op} not faked")

    def _search(self, req: Req, type: str) -> tuple:
        body = req.json or {}
        found = list(self.objects[type].values())
        if body.get("query"):
            q = body["query"].lower()
            fields = SEARCHABLE.get(type, ())
            found = [
                o for o in found if any(q in (o["properties"].get(f) or "").lower() for f in fields)
            ]
        groups = body.get("filterGroups") or []
        if groups:
            found = [
                o
                for o in found
                if any(all(self._matches(o, f) for f in g["filters"]) for g in groups)
            ]
        start = int(body.get("after") or 0)
        limit = int(body.get("limit") or 10)
        page = found[start : start + limit]
        out: dict[str, Any] = {
            "total": len(found),
            "results": [self._view(o, body.get("properties")) for o in page],
        }
        if start + limit < len(found):
            out["paging"] = {
                "next": {"after": str(start + limit), "link": "?after=" + str(start + limit)}
            }
        return 200, out

    def _batch_read(self, req: Req, type: str) -> tuple:
        body = req.json or {}
        wanted = body.get("properties")
        results = [self._view(self.objects[type][i["id"]], wanted) for i in body.get("inputs") or [] if i["id"] in self.objects[type]]  # fmt: skip
        return 200, {"status": "COMPLETE", "results": results, "startedAt": NOW, "completedAt": NOW}

    def _get(self, req: Req, type: str, oid: str) -> tuple:
        obj = self.objects.get(type, {}).get(oid)
        if obj is None:
            return 404, self.error_body(404)
        wanted = [p for p in (req.query.get("properties") or "").split(",") if p]
        return 200, self._view(obj, wanted)

    def _update(self, req: Req, type: str, oid: str) -> tuple:
        obj = self.objects.get(type, {}).get(oid)
        if obj is None:
            return 404, self.error_body(404)
        obj["properties"].update(
            {k: str(v) for k, v in ((req.json or {}).get("properties") or {}).items()}
        )
        return 200, self._view(obj, list((req.json or {}).get("properties") or {}))

    def _create(self, req: Req, type: str) -> tuple:
        body = req.json or {}
        oid = self.add(type, body.get("properties") or {})
        for assoc in body.get("associations") or []:
            to_id = str(assoc["to"]["id"])
            to_type = next(t for t in TYPES if to_id in self.objects[t])
            self.link(type, oid, to_type, to_id)
        return 201, self._view(self.objects[type][oid], list(body.get("properties") or {}))

    def _associations(self, req: Req, type: str, oid: str, to: str) -> tuple:
        results = [
            {
                "toObjectId": int(b),
                "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": t, "label": None}],
            }
            for (a_type, a, b_type, b, t) in sorted(self.links)
            if a_type == type and a == oid and b_type == to
        ]
        return 200, {"results": results}

    def _pipelines(self, req: Req) -> tuple:
        stages = [
            {"id": sid, "label": label, "displayOrder": i, "metadata": {"isClosed": str(closed).lower(), "probability": "0.5"},
             "archived": False, "createdAt": NOW, "updatedAt": NOW, "writePermissions": "CRM_PERMISSIONS_ENFORCEMENT"}
            for i, (sid, label, closed) in enumerate(STAGES)
        ]  # fmt: skip
        pipeline = {"id": "default", "label": "Sales Pipeline", "displayOrder": 0, "archived": False,
                    "createdAt": NOW, "updatedAt": NOW, "stages": stages}  # fmt: skip
        return 200, {"results": [pipeline]}

    def _owners(self, req: Req) -> tuple:
        results = [
            {
                **o,
                "userId": 7,
                "createdAt": NOW,
                "updatedAt": NOW,
                "archived": False,
                "type": "PERSON",
                "teams": [],
            }
            for o in self.owners
        ]
        return 200, {"results": results}

    def _account(self, req: Req) -> tuple:
        return 200, {
            "portalId": self.portal_id, "accountType": "STANDARD", "timeZone": "US/Eastern",
            "companyCurrency": "USD", "additionalCurrencies": [], "utcOffset": "-05:00",
            "utcOffsetMilliseconds": -18000000, "uiDomain": "app.hubspot.com", "dataHostingLocation": "na1",
        }  # fmt: skip
