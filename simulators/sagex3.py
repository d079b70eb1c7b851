"""Sage X3 (Syracuse) simulator: api1 REST and GraphQL journal entries, Basic / OAuth2 / connected-app auth, faults.

Run as a process::

    uv run python -m simulators.sagex3 --port 8702 --folder SEED --user admin:secret

It prints one JSON line (base URL, folders, users) and serves until SIGINT/SIGTERM.
From tests: ``server, base_url = start_in_thread(config={...})``; ``server.app`` is the :class:`SageX3Sim`.

api1 (``/api1/x3/erp/{FOLDER}/...``, HTTP Basic):

* ``POST /{CLASS}?representation={REP}.$create`` with the entry as JSON -> 201 with the stored entry, ``$uuid`` and
  ``NUM`` from the entry type's sequence (``ODG-000001``);
* ``GET /{CLASS}?representation={REP}.$query&where=(REFINT eq 'X')&count=N`` -> ``{"$resources": [...], "$links": {}}``;
* ``GET /{CLASS}('{NUM}')?representation={REP}.$details`` -> one entry with its lines.

Field names default to the connector's ``DEFAULT_REST_MAPPING`` (header TYP, JOU, FCY, ACCDAT, CUR, DESVCR, REFINT,
BPRVCR; lines under GACCENTRYD with LIN, ACC, DES and DEB/CDT, or SNS/AMTCUR) and can be changed via ``/_sim/config``.
Errors: ``{"$diagnoses": [{"$severity": "error", "$message": "..."}]}`` with 400 (validation), 401 (auth), 404.

Rules: the entry must balance (negative storno amounts allowed), accounts must be in the chart, ACCDAT must be in
an open period, and site / journal / entry type / currency must be known when those lists are configured.

SOAP (``CAdxWebServiceXmlCC`` save/query/read/getDescription, details in :mod:`simulators.x3soap`), over the same
entries: ``POST /soap-generic/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC`` with HTTP Basic, and the WSDL at
``GET /soap-wsdl/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC?wsdl``. ``save`` counts as ``POST`` for faults.

GraphQL (protocol details in :mod:`simulators.xtrem`), both over the same entries, rules and sequences as api1:

* ``POST /xtrem/api`` with ``x-xtrem-endpoint: <FOLDER>`` and a connected-application JWT (on-premise style);
* ``POST /v1/service/{FOLDER}/api`` with an OAuth2 access token from the gateway below (Sage X3 cloud style);
* ``GET /v1/token/authorise`` (pairing, auto-approved) and ``POST /v1/token`` (authorization code, rotating refresh).

For fault injection a GraphQL mutation counts as a ``POST`` and a query as a ``GET`` (so ``methods: ["POST"]``
hits creates on both APIs); the token service counts as ``TOKEN`` (``methods: ["TOKEN"]``).

Control API (no auth): ``GET /_sim/entries``, ``POST /_sim/reset``, ``GET|POST /_sim/config``,
``GET|POST /_sim/faults`` (latency, 5xx, refused connections, resets, timeouts, commit-then-drop), ``GET /_sim/stats``,
``GET /_sim/oauth`` (authorizations), ``POST /_sim/oauth/revoke``, ``POST /_sim/oauth/expire``.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import dataclasses
import hmac
import json
import re
import threading
import time
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from . import x3soap, xtrem
from ._http import (
    JSON_TYPE,
    FaultError,
    Faults,
    HttpError,
    Request,
    Response,
    Router,
    SimApp,
    SimServer,
    apply_post_commit_faults,
    apply_pre_faults,
    json_response,
    run_forever,
)
from ._http import start_in_thread as _start_in_thread

ZERO = Decimal(0)

# A small French-style chart of accounts (PCG). Replace it through /_sim/config {"chart": [...]} or disable the
# check with {"chart": null}.
DEFAULT_CHART = [
    "401000",  # suppliers
    "411000",  # customers
    "411100",  # customers - marketplaces
    "419100",  # customer prepayments / store credit
    "445660",  # deductible VAT
    "445710",  # VAT collected
    "445711",  # VAT collected - other rate
    "445800",  # VAT to regularise
    "467000",  # other receivables / payment gateway clearing
    "471000",  # suspense
    "511200",  # cheques / payments to cash in
    "512000",  # bank
    "580000",  # internal transfers
    "603700",  # change in stock of goods
    "607000",  # purchases of goods (COGS)
    "627000",  # bank fees
    "658000",  # other operating expenses
    "665000",  # discounts granted
    "706000",  # services
    "707000",  # sales of goods
    "708500",  # shipping and handling billed
    "708800",  # other income (fees, gift wrapping)
    "709000",  # rebates and returns on sales
    "758000",  # other operating income
    "370000",  # stock of goods
]

# The chart as the account class / publication / GraphQL node serves it (chart of accounts refresh): a name per
# account, the accounts closed to postings, and the dimension types an account requires (informational here).
ACCOUNT_NAMES: dict[str, str] = {
    "401000": "Suppliers",
    "411000": "Customers",
    "411100": "Customers - marketplaces",
    "419100": "Customer prepayments / store credit",
    "445660": "Deductible VAT",
    "445710": "VAT collected",
    "445711": "VAT collected - other rate",
    "445800": "VAT to regularise",
    "467000": "Other receivables / payment gateway clearing",
    "471000": "Suspense",
    "511200": "Cheques / payments to cash in",
    "512000": "Bank",
    "580000": "Internal transfers",
    "603700": "Change in stock of goods",
    "607000": "Purchases of goods (COGS)",
    "627000": "Bank fees",
    "658000": "Other operating expenses",
    "665000": "Discounts granted",
    "706000": "Services",
    "707000": "Sales of goods",
    "708500": "Shipping and handling billed",
    "708800": "Other income (fees, gift wrapping)",
    "709000": "Rebates and returns on sales",
    "758000": "Other operating income",
    "370000": "Stock of goods",
}
DEFAULT_CLOSED_ACCOUNTS = ["580000"]
DEFAULT_ACCOUNT_DIMENSIONS: dict[str, list[str]] = {"707000": ["CCT"], "708500": ["CCT"]}

DEFAULT_FIELDS: dict[str, Any] = {
    # header: our name -> X3 field (as in integrations/sagex3/types.py DEFAULT_REST_MAPPING)
    "header": {
        "entry_type": "TYP",
        "journal": "JOU",
        "site": "FCY",
        "accounting_date": "ACCDAT",
        "currency": "CUR",
        "description": "DESVCR",
        "reference": "REFINT",
        "source_document": "BPRVCR",
        "company": "CPY",
    },
    "lines_key": "GACCENTRYD",
    "line": {
        "line_number": "LIN",
        "account": "ACC",
        "description": "DES",
        "debit": "DEB",
        "credit": "CDT",
        "sign": "SNS",
        "amount": "AMTCUR",
        # Analytical dimensions: parallel lists of dimension types and values on a line.
        "dimension_type": "DIE",
        "dimension_value": "CCE",
    },
    "document_number": "NUM",
}

DEFAULT_CONFIG: dict[str, Any] = {
    "folders": ["SEED"],
    "users": {"admin": "admin"},
    "class": "GACCENTRY",
    "representation": "GACCENTRY",
    "fields": DEFAULT_FIELDS,
    "chart": DEFAULT_CHART,  # None: any account is accepted
    "account_names": ACCOUNT_NAMES,  # code -> name, for the account class (blank name when missing)
    "closed_accounts": DEFAULT_CLOSED_ACCOUNTS,  # in the chart but closed: listed as not active, postings refused
    "account_dimensions": DEFAULT_ACCOUNT_DIMENSIONS,  # code -> dimension types required
    "account_class": "GACCOUNT",  # api1 class and representation, and the SOAP publication, of the chart
    "sites": None,  # None: any site; a list, or {site: company} to echo CPY
    "journals": None,  # None: any journal
    "entry_types": None,  # None: any entry type
    "currencies": None,  # None: any 3-letter code
    "closed_periods": [],  # ["2026-10", ...]
    "closed_before": None,  # "YYYY-MM": every earlier period is closed too
    "sequence_format": "{TYP}-{n:06d}",
    "create_status": 201,
    "reject_duplicate_reference": False,  # real X3: REFINT (key HAE5) allows duplicates
    "max_lines": 9999,
    "realm": "Syracuse",
    # GraphQL authorization (simulators/xtrem.py): the cloud gateway's OAuth2 clients and token lifetimes, merged
    # key by key; connected applications client_id -> {"secret", "user", "url" (None: this server's /xtrem/api),
    # "enabled", "max_lifetime_s"}, replaced as a whole.
    "oauth": xtrem.OAUTH_DEFAULTS,
    "connected_apps": {},
    "jwt_leeway_s": 60,  # a connected-app token's iat may be this far in the future (clock skew)
    "clock_offset_s": 0,  # added to the simulator's clock for tokens and codes (a test can jump ahead)
    # SOAP (simulators/x3soap.py): pools (alias -> folder), "children" (0: "No Web services accepted") and the
    # publications (public name -> groups, query list, criteria, keys), merged key by key.
    "soap": x3soap.DEFAULT_SOAP,
}


def diagnoses(status: int, *messages: str, severity: str = "error") -> Response:
    return json_response(status, {"$diagnoses": [{"$severity": severity, "$message": m} for m in messages]})


def server_error(status: int) -> Response:
    return diagnoses(status, f"Internal server error ({status}, simulated)")


_WHERE_TERM = re.compile(
    r"^\s*(\w+)\s+(eq|ne|gt|ge|lt|le|like)\s+(?:'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?))\s*$", re.IGNORECASE
)


def parse_where(where: str) -> list[tuple[str, str, str]]:
    """``(REFINT eq 'X') and (TYP eq 'ODG')`` -> [("REFINT", "eq", "X"), ("TYP", "eq", "ODG")]."""
    text = where.strip()
    terms = []
    for part in re.split(r"\s+and\s+", text, flags=re.IGNORECASE):
        part = part.strip()
        while part.startswith("(") and part.endswith(")"):
            part = part[1:-1].strip()
        match = _WHERE_TERM.match(part)
        if not match:
            raise ValueError(f"unsupported where clause: {where}")
        value = match.group(3).replace("''", "'") if match.group(3) is not None else match.group(4)
        terms.append((match.group(1), match.group(2).lower(), value))
    return terms


def _compare(actual: Any, op: str, expected: str) -> bool:
    left = "" if actual is None else str(actual)
    try:
        a, b = Decimal(left), Decimal(expected)
    except InvalidOperation:
        a, b = left, expected  # type: ignore[assignment]
    if op == "eq":
        return a == b
    if op == "ne":
        return a != b
    if op == "like":
        pattern = "^" + re.escape(expected).replace("%", ".*").replace("_", ".") + "$"
        return re.match(pattern, left) is not None
    return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[op]  # type: ignore[operator]


class SageX3Sim(SimApp):
    name = "sagex3"

    def __init__(
        self,
        *,
        config: dict[str, Any] | None = None,
        faults: dict[str, Any] | None = None,
        seed: int = 0,
        verbose: bool = False,
    ) -> None:
        self.verbose = verbose
        self.lock = threading.RLock()
        self.faults = Faults(seed)
        self._initial_config = copy.deepcopy(config or {})
        self.config = self._merged_config(self._initial_config)
        self.entries: list[dict[str, Any]] = []
        self.sequences: dict[tuple[str, str], int] = {}
        self.oauth = xtrem.OAuthGateway()
        self.stats = self._empty_stats()
        self.api = Router()
        self.control = Router()
        self._routes()
        if faults:
            self.faults.update(faults)

    @staticmethod
    def _empty_stats() -> dict[str, Any]:
        return {
            "requests": 0,
            "by_endpoint": {},
            "by_status": {},
            "created": 0,
            "rejected": 0,
            "unauthorized": 0,
            "graphql": {
                "requests": 0,
                "xtrem": 0,  # POST /xtrem/api (connected application)
                "gateway": 0,  # POST /v1/service/{folder}/api (OAuth2)
                "mutations": 0,
                "queries": 0,
                "created": 0,
                "rejected": 0,
                "errors": 0,  # answers carrying errors[] (any status)
                "unauthorized": 0,
            },
            "soap": {"requests": 0, "created": 0, "rejected": 0},  # plus a count per operation
            "token": {
                "requests": 0,  # authorise + token
                "authorise": 0,
                "authorization_code": 0,
                "refresh_token": 0,
                "issued": 0,
                "refused": 0,
            },
        }

    @staticmethod
    def _merged_config(changes: dict[str, Any], base: dict[str, Any] | None = None) -> dict[str, Any]:
        config = copy.deepcopy(base if base is not None else DEFAULT_CONFIG)
        for key, value in changes.items():
            if key not in DEFAULT_CONFIG:
                raise ValueError(f"unknown config key {key!r}")
            if key == "oauth":
                config["oauth"] = xtrem.merge_oauth(config["oauth"], value)
            elif key == "soap":
                config["soap"] = x3soap.merge_soap(config["soap"], value)
            elif key == "fields" and isinstance(value, dict):
                fields = copy.deepcopy(config["fields"])
                for sub, sub_value in value.items():
                    if isinstance(sub_value, dict):
                        fields.setdefault(sub, {}).update(sub_value)
                    else:
                        fields[sub] = sub_value
                config["fields"] = fields
            else:
                config[key] = copy.deepcopy(value)
        if isinstance(config["folders"], str):
            config["folders"] = [config["folders"]]
        xtrem.check_auth_config(config)
        return config

    def now(self) -> float:
        """The simulator's clock for tokens and codes (wall clock plus ``clock_offset_s``)."""
        return time.time() + float(self.config["clock_offset_s"] or 0)

    def close(self) -> None:
        pass

    def internal_error(self, message: str) -> Response:
        return diagnoses(500, f"Internal server error: {message}")

    # ---------------------------------------------------------------------------------------------------- routes
    def _routes(self) -> None:
        a = self.api
        a.add("POST", "/api1/x3/erp/{folder}/{cls:name}", self.api1_create, "POST api1 $create")
        a.add("GET", "/api1/x3/erp/{folder}/{cls:name}", self.api1_query, "GET api1 $query")
        a.add("GET", "/api1/x3/erp/{folder}/{cls:name}('{key}')", self.api1_details, "GET api1 $details")
        # GraphQL: on-premise (connected application) and through the cloud gateway (OAuth2)
        a.add("POST", "/xtrem/api", self.graphql, "POST /xtrem/api")
        a.add("GET", "/xtrem/api", self.graphql, "GET /xtrem/api")
        a.add("POST", "/v1/service/{folder}/api", self.graphql_gateway, "POST /v1/service/{folder}/api")
        a.add("GET", "/v1/service/{folder}/api", self.graphql_gateway, "GET /v1/service/{folder}/api")
        a.add("POST", "/v1/token", self.token, "POST /v1/token")
        a.add("GET", "/v1/token/authorise", self.authorise, "GET /v1/token/authorise")
        # SOAP (classic web services): the WSDL and the generic endpoint
        a.add("GET", x3soap.WSDL_PATH, lambda req: x3soap.wsdl(self, req), "GET SOAP WSDL")
        a.add("POST", x3soap.SOAP_PATH, lambda req: x3soap.handle(self, req), "POST SOAP")
        c = self.control
        c.add("GET", "/_sim/health", self.c_health)
        c.add("GET", "/_sim/entries", self.c_entries)
        c.add("POST", "/_sim/entries/delete", self.c_entries_delete)
        c.add("POST", "/_sim/entries/alter", self.c_entries_alter)
        c.add("POST", "/_sim/reset", self.c_reset)
        c.add("GET", "/_sim/config", self.c_config)
        c.add("POST", "/_sim/config", self.c_config)
        c.add("GET", "/_sim/faults", self.c_faults)
        c.add("POST", "/_sim/faults", self.c_faults)
        c.add("GET", "/_sim/stats", self.c_stats)
        c.add("POST", "/_sim/stats/reset", self.c_stats_reset)
        c.add("GET", "/_sim/oauth", self.c_oauth)
        c.add("POST", "/_sim/oauth/revoke", self.c_oauth_revoke)
        c.add("POST", "/_sim/oauth/expire", self.c_oauth_expire)

    def handle(self, req: Request) -> Response:
        if req.path == "/_sim" or req.path.startswith("/_sim/"):
            route, params, allowed = self.control.match(req.method, req.path)
            if route is None:
                return json_response(
                    405 if allowed else 404, {"error": f"no control endpoint {req.method} {req.path}"}
                )
            req.params = params
            try:
                return route.handler(req)
            except (ValueError, FaultError) as exc:
                return json_response(400, {"error": str(exc)})
        route, params, allowed = self.api.match(req.method, req.path)
        endpoint = route.name if route else f"{req.method} {req.path}"
        try:
            response = self._handle_api(req, route, params, allowed)
        except HttpError as exc:
            response = exc.response
        except Exception:
            self._count(endpoint, 0)
            raise
        self._count(endpoint, response.status)
        return response

    def _count(self, endpoint: str, status: int) -> None:
        with self.lock:
            s = self.stats
            s["requests"] += 1
            s["by_endpoint"][endpoint] = s["by_endpoint"].get(endpoint, 0) + 1
            s["by_status"][str(status)] = s["by_status"].get(str(status), 0) + 1
            if status == 401:
                s["unauthorized"] += 1

    def _handle_api(self, req: Request, route: Any, params: dict[str, str], allowed: set[str]) -> Response:
        if route is None:
            return diagnoses(405 if allowed else 404, f"No resource at {req.method} {req.path}")
        req.params, req.route_name = params, route.name
        if not req.path.startswith("/api1/"):
            return route.handler(req)  # GraphQL and tokens: own auth, faults after reading the operation
        self._authenticate(req)
        fault = apply_pre_faults(req, self.faults, server_error)
        if fault is not None:
            return fault
        return route.handler(req)

    def _authenticate(self, req: Request) -> str:
        header = req.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        user = password = None
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user = None
        users = self.config["users"] or {}
        expected = users.get(user) if user is not None else None
        if expected is None or password is None or not hmac.compare_digest(str(expected), password):
            response = diagnoses(401, "Unauthorized: invalid user or password")
            response.headers["WWW-Authenticate"] = f'Basic realm="{self.config["realm"]}"'
            raise HttpError(response)
        return user  # type: ignore[return-value]

    def _check_target(self, req: Request, facet: str) -> tuple[str, str]:
        folder, cls = req.params["folder"], req.params["cls"]
        if folder not in self.config["folders"]:
            raise HttpError(diagnoses(404, f"Endpoint {folder} not found"))
        if cls != self.config["class"]:
            raise HttpError(diagnoses(404, f"Class {cls} not found"))
        representation = req.arg("representation")
        if not representation:
            raise HttpError(diagnoses(400, "The representation parameter is mandatory"))
        rep, _, fac = representation.partition(".")
        if rep != self.config["representation"]:
            raise HttpError(diagnoses(404, f"Representation {rep} not found"))
        if fac != facet:
            raise HttpError(diagnoses(400, f"Facet {fac or '(none)'} is not allowed here; expected {facet}"))
        return folder, cls

    # ------------------------------------------------------------------------------------------------------ api1
    def api1_create(self, req: Request) -> Response:
        folder, cls = self._check_target(req, "$create")
        body = req.json(lambda m: diagnoses(400, m))
        if not isinstance(body, dict):
            return diagnoses(400, "The request body must be a JSON object")
        with self.lock:
            errors, normalized = self._validate(body)
            if errors:
                self.stats["rejected"] += 1
                return diagnoses(400, *errors)
            entry = self._store(folder, cls, body, normalized)
            self.stats["created"] += 1
        fault = apply_post_commit_faults(req, self.faults, server_error)
        if fault is not None:
            return fault
        doc = self._public(entry, with_lines=True)
        num_field = self.config["fields"]["document_number"]
        url = self._details_url(req, folder, cls, entry[num_field])
        doc["$url"] = url
        return json_response(self.config["create_status"], doc, {"Location": url, "ETag": entry["$etag"]})

    def account_records(self) -> list[dict[str, Any]]:
        """The chart as X3 table GACCOUNT would hold it (ACC, DES, ENAFLG 2 active / 1 not, DIE), sorted by code."""
        cfg = self.config
        closed = set(cfg["closed_accounts"] or [])
        return [
            {
                "ACC": code,
                "DES": (cfg["account_names"] or {}).get(code, ""),
                "ENAFLG": 1 if code in closed else 2,
                "DIE": ",".join((cfg["account_dimensions"] or {}).get(code, [])),
            }
            for code in sorted(cfg["chart"] or [])
        ]

    def api1_accounts(self, req: Request) -> Response:
        """``$query`` on the account class: count, key=gt.<ACC>, a where on ACC; a $next link while more remain."""
        folder = req.params["folder"]
        if folder not in self.config["folders"]:
            raise HttpError(diagnoses(404, f"Endpoint {folder} not found"))
        cls = self.config["account_class"]
        if (req.arg("representation") or "") != f"{cls}.$query":
            raise HttpError(diagnoses(404, f"Representation {req.arg('representation')} not found"))
        try:
            count = int(req.arg("count") or 20)
            terms = parse_where(req.arg("where") or "") if req.arg("where") else []
        except ValueError as exc:
            return diagnoses(400, str(exc))
        with self.lock:
            rows = [r for r in self.account_records() if all(_compare(r.get(f), op, v) for f, op, v in terms)]
        key = req.arg("key") or ""
        if key.startswith("gt."):
            rows = [r for r in rows if r["ACC"] > key[3:]]
        page = rows[:count]
        links: dict[str, Any] = {}
        if len(rows) > count and page:
            query = f"representation={cls}.$query&count={count}&key=gt.{quote(page[-1]['ACC'])}"
            links["$next"] = {"$url": f"{self._base(req)}/api1/x3/erp/{folder}/{cls}?{query}"}
        return json_response(200, {"$resources": page, "$links": links})

    def api1_query(self, req: Request) -> Response:
        if req.params["cls"] == self.config["account_class"]:
            return self.api1_accounts(req)
        folder, cls = self._check_target(req, "$query")
        where = req.arg("where")
        try:
            terms = parse_where(where) if where else []
        except ValueError as exc:
            return diagnoses(400, str(exc))
        try:
            count = int(req.arg("count") or 20)
        except ValueError:
            return diagnoses(400, "count must be an integer")
        with self.lock:
            rows = [e for e in self.entries if e["_folder"] == folder and e["_class"] == cls]
            rows = [e for e in rows if all(_compare(e.get(f), op, v) for f, op, v in terms)]
            order_by = req.arg("orderBy")
            if order_by:
                for part in reversed([p.strip() for p in order_by.split(",") if p.strip()]):
                    name, _, direction = part.partition(" ")
                    rows.sort(
                        key=lambda e, n=name: str(e.get(n, "")), reverse=direction.strip().lower() == "desc"
                    )
            key = req.arg("key")
            if key and key.startswith("gt."):
                num_field = self.config["fields"]["document_number"]
                rows = [e for e in rows if str(e[num_field]) > key[3:]]
            page = rows[:count]
            resources = [self._public(e, with_lines=False) for e in page]
        links: dict[str, Any] = {}
        if len(rows) > count and page:
            num_field = self.config["fields"]["document_number"]
            rep = self.config["representation"]
            query = f"representation={rep}.$query&count={count}&key=gt.{quote(str(page[-1][num_field]))}"
            if where:
                query += f"&where={quote(where)}"
            links["$next"] = {"$url": f"{self._base(req)}/api1/x3/erp/{folder}/{cls}?{query}"}
        return json_response(200, {"$resources": resources, "$links": links})

    def api1_details(self, req: Request) -> Response:
        folder, cls = self._check_target(req, "$details")
        key = req.params["key"].replace("''", "'")
        typ_field = self.config["fields"]["header"]["entry_type"]
        num_field = self.config["fields"]["document_number"]
        typ, sep, num = key.partition("~")
        with self.lock:
            for entry in self.entries:
                if entry["_folder"] != folder or entry["_class"] != cls:
                    continue
                if (sep and entry.get(typ_field) == typ and entry[num_field] == num) or (
                    not sep and entry[num_field] == key
                ):
                    return json_response(200, self._public(entry, with_lines=True), {"ETag": entry["$etag"]})
        return diagnoses(404, f"Record {key} does not exist")

    # --------------------------------------------------------------------------------------------------- GraphQL
    def graphql(self, req: Request) -> Response:
        """``/xtrem/api``: on-premise GraphQL, folder in ``x-xtrem-endpoint``, connected-application JWT."""
        return self._graphql(req, "xtrem")

    def graphql_gateway(self, req: Request) -> Response:
        """``/v1/service/{folder}/api``: GraphQL through the cloud gateway, OAuth2 access token."""
        return self._graphql(req, "gateway")

    def _graphql(self, req: Request, api: str) -> Response:
        with self.lock:
            self.stats["graphql"]["requests"] += 1
            self.stats["graphql"][api] += 1
        response = self._graphql_answer(req, api)
        with self.lock:
            if response.status == 401:
                self.stats["graphql"]["unauthorized"] += 1
            if response.body and response.content_type == JSON_TYPE and b'"errors"' in response.body:
                try:
                    has_errors = bool(json.loads(response.body).get("errors"))
                except (ValueError, AttributeError):
                    has_errors = False
                self.stats["graphql"]["errors"] += has_errors
        return response

    def _graphql_answer(self, req: Request, api: str) -> Response:
        header_folder = (req.headers.get(xtrem.ENDPOINT_HEADER) or "").strip()
        token = xtrem.bearer(req)
        with self.lock:
            config = self.config
            now = self.now()
            if api == "xtrem":
                if not token:
                    return xtrem.unauthorised()
                try:
                    xtrem.check_connected_app_token(
                        token,
                        config["connected_apps"],
                        now=now,
                        leeway=float(config["jwt_leeway_s"]),
                        default_url=f"{self._base(req)}/xtrem/api",
                    )
                except xtrem.InvalidToken as exc:
                    return xtrem.invalid_token(exc.code)
                if not header_folder:
                    return xtrem.request_errors(400, f"The {xtrem.ENDPOINT_HEADER} header is required")
                folder = header_folder
            else:
                authorization = self.oauth.check_access(token, now=now)
                if authorization is None:
                    return xtrem.unauthorised()
                folder = req.params["folder"]
                if header_folder and header_folder != folder:
                    return xtrem.request_errors(
                        400,
                        f"{xtrem.ENDPOINT_HEADER} {header_folder} does not match the endpoint {folder} of the URL",
                    )
                if folder in config["folders"] and folder not in authorization["folders"]:
                    return xtrem.gateway_error(
                        403, f"The application is not authorised for endpoint {folder}", "Forbidden"
                    )
            if folder not in config["folders"]:
                return xtrem.gateway_error(404, f"Endpoint {folder} not found", "NotFound")
        operation = xtrem.read_operation(req)
        if isinstance(operation, Response):
            return operation
        with self.lock:
            self.stats["graphql"]["mutations" if operation.kind == "mutation" else "queries"] += 1
        # For the fault settings' "methods", a mutation is a write (POST) and a query a read (GET).
        as_method = dataclasses.replace(req, method="POST" if operation.kind == "mutation" else "GET")
        fault = apply_pre_faults(as_method, self.faults, xtrem.injected_error)
        if fault is not None:
            return fault
        response, committed = xtrem.run_operation(self, operation, folder)
        if committed:
            fault = apply_post_commit_faults(as_method, self.faults, xtrem.injected_error)
            if fault is not None:
                return fault
        return response

    # ------------------------------------------------------------------------------------------ OAuth2 gateway
    def _gateway(self, req: Request) -> str:
        return f"{self._base(req)}/v1"

    def authorise(self, req: Request) -> Response:
        """``GET /v1/token/authorise``: the pairing page. Approves at once (or refuses) and redirects back."""
        fault = apply_pre_faults(dataclasses.replace(req, method="TOKEN"), self.faults, xtrem.injected_error)
        if fault is not None:
            return fault
        params = {k: v[0] for k, v in req.query.items() if v}
        with self.lock:
            self.stats["token"]["requests"] += 1
            self.stats["token"]["authorise"] += 1
            response = self.oauth.authorise(
                params,
                self.config["oauth"],
                now=self.now(),
                gateway=self._gateway(req),
                folders=list(self.config["folders"]),
            )
            if response.status != 302:
                self.stats["token"]["refused"] += 1
        return response

    def token(self, req: Request) -> Response:
        """``POST /v1/token``: exchange an authorization code, or a refresh token (rotating), for a token pair."""
        fault = apply_pre_faults(dataclasses.replace(req, method="TOKEN"), self.faults, xtrem.injected_error)
        if fault is not None:
            return fault
        params = xtrem.token_params(req)
        with self.lock:
            self.stats["token"]["requests"] += 1
            if isinstance(params, Response):
                response = params
            else:
                grant = params.get("grant_type")
                if grant in ("authorization_code", "refresh_token"):
                    self.stats["token"][grant] += 1
                response = self.oauth.token(
                    params, self.config["oauth"], now=self.now(), gateway=self._gateway(req)
                )
            self.stats["token"]["issued" if response.status == 200 else "refused"] += 1
        return response

    # ----------------------------------------------------------------------------------------------- validation
    def _validate(self, body: dict[str, Any]) -> tuple[list[str], list[dict[str, Any]]]:
        cfg = self.config
        h = cfg["fields"]["header"]
        lf = cfg["fields"]["line"]
        errors: list[str] = []

        def field_value(name: str) -> str:
            value = body.get(h[name])
            return "" if value is None else str(value).strip()

        for name in ("entry_type", "journal", "site", "accounting_date", "currency"):
            if not field_value(name):
                errors.append(f"{h[name]}: mandatory field")
        typ, jou, fcy, cur = (field_value(n) for n in ("entry_type", "journal", "site", "currency"))
        if typ and cfg["entry_types"] is not None and typ not in cfg["entry_types"]:
            errors.append(f"Entry type {typ} does not exist")
        if jou and cfg["journals"] is not None and jou not in cfg["journals"]:
            errors.append(f"Journal {jou} does not exist")
        if fcy and cfg["sites"] is not None and fcy not in cfg["sites"]:
            errors.append(f"Site {fcy} does not exist or is not a financial site")
        cpy = field_value("company") if "company" in h else ""
        if cpy and fcy and isinstance(cfg["sites"], dict) and cfg["sites"].get(fcy) not in (None, cpy):
            errors.append(f"Site {fcy} does not belong to company {cpy}")
        if cur and (
            not re.fullmatch(r"[A-Z]{3}", cur)
            or (cfg["currencies"] is not None and cur not in cfg["currencies"])
        ):
            errors.append(f"Currency {cur} does not exist")
        accdat = field_value("accounting_date")
        if accdat:
            parsed = self._parse_date(accdat)
            if parsed is None:
                errors.append(f"{h['accounting_date']}: invalid date {accdat}")
            else:
                period = f"{parsed.year:04d}-{parsed.month:02d}"
                closed_before = cfg["closed_before"]
                if period in (cfg["closed_periods"] or []) or (closed_before and period < closed_before):
                    errors.append(f"Accounting date {parsed.isoformat()}: period {period} is closed")
        reference = field_value("reference")
        if reference and len(reference) > 25:
            errors.append(f"{h['reference']}: {reference} is longer than 25 characters")
        if reference and cfg["reject_duplicate_reference"]:
            if any(e.get(h["reference"]) == reference for e in self.entries):
                errors.append(
                    f"{h['reference']}: an entry with internal reference {reference} already exists"
                )

        lines = body.get(cfg["fields"]["lines_key"])
        normalized: list[dict[str, Any]] = []
        if not isinstance(lines, list) or not lines:
            errors.append(f"{cfg['fields']['lines_key']}: at least one line is required")
            return errors, normalized
        if len(lines) > cfg["max_lines"]:
            errors.append(f"Too many lines: {len(lines)} (maximum {cfg['max_lines']})")
        chart = set(cfg["chart"]) if cfg["chart"] is not None else None
        total_debit = ZERO
        total_credit = ZERO
        amounts_ok = True
        for index, line in enumerate(lines, start=1):
            if not isinstance(line, dict):
                errors.append(f"Line {index}: must be an object")
                amounts_ok = False
                continue
            number = line.get(lf["line_number"], index)
            account = "" if line.get(lf["account"]) is None else str(line.get(lf["account"])).strip()
            if not account:
                errors.append(f"Line {number}: {lf['account']} mandatory field")
            elif chart is not None and account not in chart:
                errors.append(f"Line {number}: account {account} does not exist in the chart of accounts")
            elif account in (cfg["closed_accounts"] or []):
                errors.append(f"Line {number}: account {account} is closed")
            try:
                debit, credit = self._line_amounts(line, lf)
            except ValueError as exc:
                errors.append(f"Line {number}: {exc}")
                amounts_ok = False
                continue
            total_debit += debit
            total_credit += credit
            normalized.append(
                {
                    "line": number,
                    "account": account,
                    "debit": debit,
                    "credit": credit,
                    "description": str(line.get(lf["description"]) or ""),
                    "dimensions": self._line_dimensions(line, lf),
                }
            )
        if amounts_ok and total_debit != total_credit:
            errors.append(
                f"Entry is not balanced: total debit {total_debit} is not equal to total credit {total_credit}"
            )
        return errors, normalized

    @staticmethod
    def _line_dimensions(line: dict[str, Any], lf: dict[str, str]) -> dict[str, str]:
        """A line's analytical dimensions (type -> value) from its parallel DIE/CCE lists; {} when none."""
        types, values = line.get(lf.get("dimension_type") or ""), line.get(lf.get("dimension_value") or "")
        if not isinstance(types, list) or not isinstance(values, list):
            return {}
        return {str(t): str(v) for t, v in zip(types, values, strict=False)}

    @staticmethod
    def _parse_date(value: str) -> date | None:
        for fmt in ("%Y-%m-%d", "%Y%m%d"):
            try:
                return datetime.strptime(value, fmt).date()
            except ValueError:
                continue
        return None

    @staticmethod
    def _amount(value: Any, name: str) -> Decimal:
        if value is None or value == "":
            return ZERO
        if isinstance(value, bool):
            raise ValueError(f"{name}: not a number")
        try:
            amount = Decimal(str(value))
        except InvalidOperation as exc:
            raise ValueError(f"{name}: {value!r} is not a number") from exc
        if not amount.is_finite():
            raise ValueError(f"{name}: {value!r} is not a number")
        return amount

    def _line_amounts(self, line: dict[str, Any], lf: dict[str, str]) -> tuple[Decimal, Decimal]:
        has_dc = lf["debit"] in line or lf["credit"] in line
        has_sign = lf["sign"] in line or lf["amount"] in line
        if has_dc and has_sign:
            raise ValueError(
                f"use either {lf['debit']}/{lf['credit']} or {lf['sign']}/{lf['amount']}, not both"
            )
        if has_sign:
            sign = line.get(lf["sign"])
            amount = self._amount(line.get(lf["amount"]), lf["amount"])
            if str(sign) not in ("1", "-1"):
                raise ValueError(f"{lf['sign']} must be 1 (debit) or -1 (credit), not {sign!r}")
            return (amount, ZERO) if str(sign) == "1" else (ZERO, amount)
        if not has_dc:
            raise ValueError(f"no amount ({lf['debit']}/{lf['credit']} or {lf['sign']}/{lf['amount']})")
        debit = self._amount(line.get(lf["debit"]), lf["debit"])
        credit = self._amount(line.get(lf["credit"]), lf["credit"])
        if debit and credit:
            raise ValueError(f"a line has either a {lf['debit']} or a {lf['credit']} amount, not both")
        return debit, credit

    # ------------------------------------------------------------------------------------------------ storage
    def _store(
        self,
        folder: str,
        cls: str,
        body: dict[str, Any],
        normalized: list[dict[str, Any]],
        *,
        api: str = "api1",
    ) -> dict[str, Any]:
        cfg = self.config
        h = cfg["fields"]["header"]
        lines_key = cfg["fields"]["lines_key"]
        num_field = cfg["fields"]["document_number"]
        typ = str(body[h["entry_type"]]).strip()
        n = self.sequences.get((folder, typ), 0) + 1
        self.sequences[(folder, typ)] = n
        now = datetime.now(UTC).replace(microsecond=0)
        entry = {k: v for k, v in body.items() if k != lines_key and not k.startswith("$")}
        entry[num_field] = cfg["sequence_format"].format(TYP=typ, n=n, FOLDER=folder)
        if isinstance(cfg["sites"], dict):
            entry.setdefault("CPY", cfg["sites"].get(str(body[h["site"]])))
        accdat = self._parse_date(str(body[h["accounting_date"]]).strip())
        entry[h["accounting_date"]] = accdat.isoformat() if accdat else body[h["accounting_date"]]
        lines = []
        line_number_field = cfg["fields"]["line"]["line_number"]
        for index, (line, norm) in enumerate(zip(body[lines_key], normalized, strict=True), start=1):
            stored = {k: v for k, v in line.items() if not k.startswith("$")}
            stored.setdefault(line_number_field, index)
            stored["$uuid"] = str(uuid.uuid4())
            lines.append(stored)
            norm["line"] = stored[line_number_field]
        entry[lines_key] = lines
        entry["$uuid"] = str(uuid.uuid4())
        entry["$etag"] = now.isoformat().replace("+00:00", "Z")
        entry["_folder"] = folder
        entry["_class"] = cls
        entry["_api"] = api
        entry["_created_at"] = now.isoformat()
        entry["_lines"] = normalized
        self.entries.append(entry)
        return entry

    def _public(self, entry: dict[str, Any], *, with_lines: bool) -> dict[str, Any]:
        lines_key = self.config["fields"]["lines_key"]
        out = {k: v for k, v in entry.items() if not k.startswith("_") and (with_lines or k != lines_key)}
        return copy.deepcopy(out)

    def _inspect(self, entry: dict[str, Any]) -> dict[str, Any]:
        out = self._public(entry, with_lines=True)
        lines = entry["_lines"]
        out["_sim"] = {
            "folder": entry["_folder"],
            "class": entry["_class"],
            "api": entry["_api"],
            "created_at": entry["_created_at"],
            "debit_total": str(sum((ln["debit"] for ln in lines), ZERO)),
            "credit_total": str(sum((ln["credit"] for ln in lines), ZERO)),
            "lines": [{**ln, "debit": str(ln["debit"]), "credit": str(ln["credit"])} for ln in lines],
        }
        return out

    @staticmethod
    def _base(req: Request) -> str:
        host = req.headers.get("Host")
        return f"http://{host}" if host else req.server.base_url

    def _details_url(self, req: Request, folder: str, cls: str, num: str) -> str:
        rep = self.config["representation"]
        return f"{self._base(req)}/api1/x3/erp/{folder}/{cls}('{quote(num)}')?representation={rep}.$details"

    # ------------------------------------------------------------------------------------------------- control
    def c_health(self, req: Request) -> Response:
        return json_response(200, {"ok": True, "simulator": self.name, "folders": self.config["folders"]})

    def c_entries(self, req: Request) -> Response:
        ref_field = self.config["fields"]["header"]["reference"]
        reference = req.arg("reference")
        folder = req.arg("folder")
        with self.lock:
            entries = [
                self._inspect(e)
                for e in self.entries
                if (reference is None or e.get(ref_field) == reference)
                and (folder is None or e["_folder"] == folder)
            ]
        return json_response(200, {"entries": entries, "count": len(entries)})

    def _entries_by_reference(self, req: Request) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        body = req.json(lambda m: json_response(400, {"error": m})) or {}
        reference = body.get("reference") if isinstance(body, dict) else None
        if not isinstance(reference, str) or not reference:
            raise ValueError("give the entry's reference")
        ref_field = self.config["fields"]["header"]["reference"]
        return body, [e for e in self.entries if e.get(ref_field) == reference]

    def c_entries_delete(self, req: Request) -> Response:
        """Forget the entries carrying a reference (as if deleted in X3), to provoke a "missing" in a tie-out."""
        with self.lock:
            _, found = self._entries_by_reference(req)
            self.entries[:] = [e for e in self.entries if all(e is not f for f in found)]
        return json_response(200, {"deleted": len(found)})

    def c_entries_alter(self, req: Request) -> Response:
        """Change header fields of the entries carrying a reference (``{"reference", "fields": {"ACCDAT": …}}``), as
        if edited in X3, to provoke a "differs" in a tie-out. Lines are not changed here."""
        with self.lock:
            body, found = self._entries_by_reference(req)
            fields = body.get("fields")
            lines_key = self.config["fields"]["lines_key"]
            if not isinstance(fields, dict) or any(k.startswith("_") or k == lines_key for k in fields):
                raise ValueError("fields: an object of header fields to change")
            for entry in found:
                entry.update(fields)
        return json_response(200, {"altered": len(found)})

    def c_reset(self, req: Request) -> Response:
        body = req.json(lambda m: json_response(400, {"error": m})) or {}
        with self.lock:
            self.entries.clear()
            self.sequences.clear()
            self.stats = self._empty_stats()
            self.faults.clear()
            self.oauth.clear()
            if body.get("config", True):
                self.config = self._merged_config(self._initial_config)
        return json_response(200, {"reset": True})

    def c_config(self, req: Request) -> Response:
        if req.method == "POST":
            body = req.json(lambda m: json_response(400, {"error": m}))
            if not isinstance(body, dict):
                return json_response(400, {"error": "expected a JSON object"})
            faults = body.pop("faults", None)
            with self.lock:
                base = None if body.pop("replace", False) else self.config
                self.config = self._merged_config(body, base)
            if faults is not None:
                self.faults.update(faults)
        with self.lock:
            return json_response(200, self.config)

    def c_faults(self, req: Request) -> Response:
        if req.method == "POST":
            body = req.json(lambda m: json_response(400, {"error": m}))
            self.faults.update(body)
        return json_response(200, {**self.faults.snapshot(), "counters": dict(self.faults.counters)})

    def c_stats(self, req: Request) -> Response:
        with self.lock:
            return json_response(
                200, {**self.stats, "entries": len(self.entries), "faults": dict(self.faults.counters)}
            )

    def c_stats_reset(self, req: Request) -> Response:
        with self.lock:
            self.stats = self._empty_stats()
            self.faults.counters.clear()
        return json_response(200, {"reset": True})

    def c_oauth(self, req: Request) -> Response:
        with self.lock:
            return json_response(
                200,
                {
                    "authorizations": self.oauth.summary(now=self.now()),
                    "pending_codes": len(self.oauth.codes),
                },
            )

    @staticmethod
    def _selector(body: Any, *, extra: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValueError("expected a JSON object")
        unknown = sorted(set(body) - {"authorization", "client_id", "customer", *extra})
        if unknown:
            raise ValueError(
                f"unknown key(s): {', '.join(unknown)} (select by authorization, client_id, customer)"
            )
        return {k: v for k, v in body.items() if k not in extra and v is not None}

    def c_oauth_revoke(self, req: Request) -> Response:
        """Revoke authorizations (``authorization`` id, ``client_id``, ``customer``; none: all): every token of
        theirs is refused from now on; only a new pairing helps."""
        body = req.json(lambda m: json_response(400, {"error": m})) or {}
        with self.lock:
            return json_response(200, {"revoked": self.oauth.revoke(self._selector(body))})

    def c_oauth_expire(self, req: Request) -> Response:
        """Expire the live tokens of the selected authorizations now (``access``: default true, ``refresh``:
        default false). Clients still believe them valid: the next call gets a 401 (or a refused refresh)."""
        body = req.json(lambda m: json_response(400, {"error": m})) or {}
        with self.lock:
            count = self.oauth.expire(
                self._selector(body, extra=("access", "refresh")),
                access=bool(body.get("access", True)),
                refresh=bool(body.get("refresh", False)),
                now=self.now(),
            )
        return json_response(200, {"expired": count})


# -------------------------------------------------------------------------------------------------------- entry points


def start_in_thread(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> tuple[SimServer, str]:
    """Start a :class:`SageX3Sim` (``options`` are its keyword arguments) on a daemon thread."""
    return _start_in_thread(SageX3Sim(**options), host=host, port=port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.sagex3", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8702)
    parser.add_argument("--folder", action="append", help="X3 endpoint/folder (repeatable; default SEED)")
    parser.add_argument(
        "--user", action="append", help="user:password for HTTP Basic (repeatable; default admin:admin)"
    )
    parser.add_argument("--closed-period", action="append", help="YYYY-MM period that is closed (repeatable)")
    parser.add_argument(
        "--oauth-client",
        action="append",
        metavar="ID:SECRET",
        help="OAuth2 client of the cloud gateway (repeatable; any redirect URI is accepted)",
    )
    parser.add_argument(
        "--connected-app",
        action="append",
        metavar="ID:SECRET:USER[:URL]",
        help="connected application for /xtrem/api (repeatable; URL default: this server's /xtrem/api)",
    )
    parser.add_argument(
        "--config", help="JSON file with /_sim/config keys (and optionally a 'faults' object)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    config: dict[str, Any] = {}
    faults = None
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            config = json.load(fh)
        faults = config.pop("faults", None)
    if args.folder:
        config["folders"] = args.folder
    if args.user:
        config["users"] = dict(u.split(":", 1) for u in args.user)
    if args.closed_period:
        config["closed_periods"] = args.closed_period
    if args.oauth_client:
        clients = dict(config.get("oauth", {}).get("clients") or {})
        for spec in args.oauth_client:
            client_id, _, secret = spec.partition(":")
            clients[client_id] = {"secret": secret, "redirect_uris": []}
        config["oauth"] = {**config.get("oauth", {}), "clients": clients}
    if args.connected_app:
        apps = dict(config.get("connected_apps") or {})
        for spec in args.connected_app:
            parts = spec.split(":", 3)
            if len(parts) < 3:
                parser.error("--connected-app takes ID:SECRET:USER[:URL]")
            apps[parts[0]] = {
                "secret": parts[1],
                "user": parts[2],
                "url": parts[3] if len(parts) > 3 else None,
            }
        config["connected_apps"] = apps
    app = SageX3Sim(config=config, faults=faults, seed=args.seed, verbose=args.verbose)

    def banner(base_url: str) -> dict[str, Any]:
        return {
            "simulator": "sagex3",
            "base_url": base_url,
            "api1": f"{base_url}/api1/x3/erp/{app.config['folders'][0]}/{app.config['class']}",
            "graphql": f"{base_url}/xtrem/api",
            "gateway": f"{base_url}/v1",
            "control": f"{base_url}/_sim/",
            "folders": app.config["folders"],
            "users": sorted(app.config["users"]),
            "oauth_clients": sorted(app.config["oauth"]["clients"]),
            "connected_apps": sorted(app.config["connected_apps"]),
        }

    run_forever(app, args.host, args.port, banner)


__all__ = ["DEFAULT_CHART", "DEFAULT_CONFIG", "SageX3Sim", "main", "parse_where", "start_in_thread"]

if __name__ == "__main__":
    main()
