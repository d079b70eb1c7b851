"""BigCommerce simulator: several stores behind ``/stores/{store_hash}/v2|v3/...``, plus a ``/_sim/`` control API.

Run as a process::

    uv run python -m simulators.bigcommerce --port 8701 --stores 2 --orders 50 --seed 42

It prints one JSON line (base URL, store hashes, tokens, client secrets) and serves until SIGINT/SIGTERM.
From tests: ``server, base_url = start_in_thread(stores=1, orders=20)``; ``server.app`` is the
:class:`BigCommerceSim`; stop with ``server.stop()``.

API (auth ``X-Auth-Token``; every response carries the ``X-Rate-Limit-*`` headers; over quota -> 429 + ``X-Retry-After``):

* v2: ``GET /v2/orders`` (filters, sort, page/limit<=250, 204 when empty), ``GET /v2/orders/{id}``
  (``include=consignments[.line_items],fees&consignment_structure=object``), ``/products`` (paged, 204 past the end),
  ``/products/{id}``, ``/shipping_addresses``, ``/coupons``, ``/fees``, ``/consignments``, ``/shipments``,
  ``GET /v2/order_statuses``.
* v3: refunds per order, all refunds (``order_id:in``, ``id:in``, ``created:min|max``, page/limit), one refund,
  ``GET /v3/channels``, ``/v3/channels/{id}``, hooks CRUD (``/v3/hooks``, ``/v3/hooks/{id}``).

Control API (JSON, no auth): see :class:`BigCommerceSim` ``_control_routes`` and ``simulators.control``.
"""

from __future__ import annotations

import argparse
import json
import math
import threading
import time
from collections import deque
from datetime import datetime
from decimal import Decimal
from typing import Any

from . import bc_data
from ._http import (
    AbortConnection,
    Faults,
    HttpError,
    Request,
    Response,
    Router,
    SimApp,
    SimServer,
    apply_pre_faults,
    empty_response,
    json_response,
    parse_bool,
    run_forever,
)
from ._http import start_in_thread as _start_in_thread
from .bc_data import DataError, StoreConfig, StoreData
from .webhooks import DEFAULT_RETRY_SCHEDULE, Dispatcher, HookSource, WebhookSettings, scope_matches

ERROR_TYPE = "https://developer.bigcommerce.com/api-docs/getting-started/api-status-codes"
MAX_LIMIT = 250
DEFAULT_LIMIT = 50


# --------------------------------------------------------------------------------------------------- error formats


def v3_error(status: int, title: str, errors: dict[str, Any] | None = None) -> Response:
    body: dict[str, Any] = {"status": status, "title": title, "type": ERROR_TYPE}
    if errors is not None:
        body["errors"] = errors
    return json_response(status, body)


def v2_error(status: int, message: str) -> Response:
    return json_response(status, [{"status": status, "message": message}])


def control_error(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def server_error(status: int) -> Response:
    titles = {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }
    return v3_error(status, titles.get(status, "Server Error"))


# ------------------------------------------------------------------------------------------------------ rate limits


class RateLimiter:
    """A fixed window per store: ``quota`` requests per ``window_ms``, starting with the first request."""

    def __init__(self, quota: int, window_ms: int) -> None:
        self.quota = quota
        self.window_ms = window_ms
        self.window_start = 0.0
        self.used = 0

    def hit(self) -> tuple[bool, dict[str, str]]:
        now = time.monotonic() * 1000
        if now - self.window_start >= self.window_ms:
            self.window_start = now
            self.used = 0
        reset_ms = max(1, int(self.window_ms - (now - self.window_start)))
        allowed = self.used < self.quota
        if allowed:
            self.used += 1
        headers = {
            "X-Rate-Limit-Time-Window-Ms": str(self.window_ms),
            "X-Rate-Limit-Time-Reset-Ms": str(reset_ms),
            "X-Rate-Limit-Requests-Quota": str(self.quota),
            "X-Rate-Limit-Requests-Left": str(max(0, self.quota - self.used)),
        }
        if not allowed:
            headers["X-Retry-After"] = str(max(1, math.ceil(reset_ms / 1000)))
        return allowed, headers

    def configure(self, quota: int | None = None, window_ms: int | None = None) -> None:
        if quota is not None:
            self.quota = int(quota)
        if window_ms is not None:
            self.window_ms = int(window_ms)
        self.window_start = 0.0
        self.used = 0

    def as_dict(self) -> dict[str, Any]:
        now = time.monotonic() * 1000
        in_window = now - self.window_start < self.window_ms
        return {
            "quota": self.quota,
            "window_ms": self.window_ms,
            "used": self.used if in_window else 0,
            "reset_ms": int(self.window_ms - (now - self.window_start)) if in_window else self.window_ms,
        }


# ----------------------------------------------------------------------------------------------------------- stores


class Store:
    def __init__(self, cfg: StoreConfig) -> None:
        self.cfg = cfg
        self.data = StoreData(cfg)
        self.hooks: dict[int, dict[str, Any]] = {}
        self.rate = RateLimiter(cfg.rate_limit_quota, cfg.rate_limit_window_ms)
        self.deliveries: deque[dict[str, Any]] = deque(maxlen=20_000)
        self.stats = self._empty_stats()

    @staticmethod
    def _empty_stats() -> dict[str, Any]:
        return {
            "requests": 0,  # everything that reached the store, 401 and 429 included
            "served": 0,  # answered by an endpoint (2xx/4xx from the handler)
            "rate_limited": 0,  # 429s
            "unauthorized": 0,
            "errors_injected": 0,
            "by_endpoint": {},
            "by_status": {},
        }

    def count(self, endpoint: str, status: int) -> None:
        s = self.stats
        s["requests"] += 1
        s["by_endpoint"][endpoint] = s["by_endpoint"].get(endpoint, 0) + 1
        s["by_status"][str(status)] = s["by_status"].get(str(status), 0) + 1
        if status == 429:
            s["rate_limited"] += 1
        elif status == 401:
            s["unauthorized"] += 1

    def summary(self, base_url: str) -> dict[str, Any]:
        cfg = self.cfg
        return {
            "hash": cfg.hash,
            "store_id": cfg.store_id,
            "name": cfg.name,
            "access_token": cfg.access_token,
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
            "currency": cfg.currency,
            "currencies": cfg.currencies,
            "tax_inclusive": cfg.tax_inclusive,
            "tax_rate": str(cfg.tax_rate),
            "fractional_tax": cfg.fractional_tax,
            "channels": [int(c["id"]) for c in cfg.channels],
            "api_base": f"{base_url}/stores/{cfg.hash}",
            "orders": len(self.data.orders),
            "refunds": len(self.data.refunds),
            "hooks": len(self.hooks),
            "rate_limit": self.rate.as_dict(),
        }


def _base_url(req: Request) -> str:
    host = req.headers.get("Host")
    return f"http://{host}" if host else req.server.base_url


def _int_arg(req: Request, name: str, default: int | None = None, *, v2: bool = True) -> int | None:
    value = req.arg(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        err = v2_error(400, f"The field '{name}' is invalid.") if v2 else v3_error(422, f"Invalid {name}")
        raise HttpError(err) from exc


def _int_list(req: Request, name: str) -> list[int] | None:
    values = req.query.get(name)
    if not values:
        return None
    out: list[int] = []
    try:
        for value in values:
            out.extend(int(v) for v in value.split(",") if v.strip())
    except ValueError as exc:
        raise HttpError(v3_error(422, f"Invalid {name}")) from exc
    return out


def _date_arg(req: Request, name: str, *, v2: bool = True) -> datetime | None:
    value = req.arg(name)
    if not value:
        return None
    candidates = [value]
    if " " in value:  # an unencoded "+" in "+0000" / "+01:00" arrives as a space
        head, _, tail = value.rpartition(" ")
        candidates.append(f"{head}+{tail}")
    for candidate in candidates:
        try:
            return bc_data.parse_when(candidate)
        except DataError:
            continue
    err = (
        v2_error(400, f"The field '{name}' is invalid.") if v2 else v3_error(422, f"Invalid {name}: {value}")
    )
    raise HttpError(err)


def _pagination(total: int, page: int, limit: int, count: int, extra: str = "") -> dict[str, Any]:
    pages = max(1, math.ceil(total / limit)) if limit else 1
    return {
        "total": total,
        "count": count,
        "per_page": limit,
        "current_page": page,
        "total_pages": pages,
        "links": {
            **({"previous": f"?page={page - 1}&limit={limit}{extra}"} if page > 1 else {}),
            "current": f"?page={page}&limit={limit}{extra}",
            **({"next": f"?page={page + 1}&limit={limit}{extra}"} if page < pages else {}),
        },
    }


# -------------------------------------------------------------------------------------------------------- simulator


class BigCommerceSim(SimApp, HookSource):
    name = "bigcommerce"

    def __init__(
        self,
        *,
        stores: int | list[dict[str, Any]] = 1,
        orders: int = 0,
        seed: int = 0,
        webhooks: dict[str, Any] | None = None,
        faults: dict[str, Any] | None = None,
        verbose: bool = False,
    ) -> None:
        self.seed = seed
        self.verbose = verbose
        self.lock = threading.RLock()
        self.faults = Faults(seed)
        self.webhook_settings = WebhookSettings()
        if webhooks:
            self.webhook_settings.update(webhooks)
        self.dispatcher = Dispatcher(self, self.webhook_settings, seed=seed)
        self.stores: dict[str, Store] = {}
        self.next_hook_id = 18_048_287
        self.global_stats: dict[str, Any] = {"unknown_store": 0, "control": 0}
        self._initial = {"stores": stores, "orders": orders, "faults": dict(faults or {})}
        self.api = Router()
        self.control = Router()
        self._api_routes()
        self._control_routes()
        self._load_initial()

    def _load_initial(self) -> None:
        stores, orders = self._initial["stores"], self._initial["orders"]
        specs = [{} for _ in range(stores)] if isinstance(stores, int) else [dict(s) for s in stores]
        for index, spec in enumerate(specs):
            n = int(spec.pop("orders", orders))
            store = self.add_store(spec, index=index)
            if n:
                store.data.generate(n)
        if self._initial["faults"]:
            self.faults.update(self._initial["faults"])

    def add_store(self, spec: dict[str, Any], *, index: int | None = None, replace: bool = False) -> Store:
        with self.lock:
            cfg = StoreConfig.build(spec, index=len(self.stores) if index is None else index, seed=self.seed)
            if cfg.hash in self.stores and not replace:
                raise DataError(f"store {cfg.hash} already exists")
            if any(
                s.cfg.access_token == cfg.access_token and s.cfg.hash != cfg.hash
                for s in self.stores.values()
            ):
                raise DataError("access_token already used by another store")
            store = Store(cfg)
            self.stores[cfg.hash] = store
            return store

    def close(self) -> None:
        self.dispatcher.stop()

    def internal_error(self, message: str) -> Response:
        return v3_error(500, f"Internal Server Error ({message})")

    # ------------------------------------------------------------------------------------------------ dispatching
    def handle(self, req: Request) -> Response:
        if req.path == "/_sim" or req.path.startswith("/_sim/"):
            self.global_stats["control"] += 1
            route, params, allowed = self.control.match(req.method, req.path)
            if route is None:
                return control_error(405 if allowed else 404, f"no control endpoint {req.method} {req.path}")
            req.params, req.route_name = params, route.name
            try:
                return route.handler(req)
            except DataError as exc:
                return control_error(422, str(exc))
            except KeyError as exc:
                return control_error(404, f"not found: {exc}")
            except (ValueError, TypeError) as exc:  # FaultError, bad numbers, wrong types
                return control_error(400, str(exc))
        if not req.path.startswith("/stores/"):
            return v3_error(404, "Not Found")
        _, _, rest = req.path.partition("/stores/")
        store_hash, _, sub = rest.partition("/")
        sub = "/" + sub
        with self.lock:
            store = self.stores.get(store_hash)
            if store is None:
                self.global_stats["unknown_store"] += 1
                return v3_error(404, f"Store {store_hash} not found")
            route, params, allowed = self.api.match(req.method, sub)
            endpoint = route.name if route else f"{req.method} {sub}"
            if req.headers.get("X-Auth-Token") != store.cfg.access_token:
                store.count(endpoint, 401)
                return v3_error(
                    401,
                    "Unauthorized - the v3 Auth client ID or token in the request are not a valid combination for this store.",
                )
            scope = (
                "orders"
                if sub.startswith("/v2/orders")
                else "channels"
                if sub.startswith("/v3/channels")
                else ""
            )
            if scope and scope in store.cfg.missing_scopes:
                store.count(endpoint, 403)
                return v3_error(403, "You don't have a required scope to access the endpoint")
            allowed_now, rate_headers = store.rate.hit()
            if not allowed_now:
                store.count(endpoint, 429)
                response = v3_error(429, "Too many requests")
                response.headers.update(rate_headers)
                return response
        # faults happen outside the lock (they sleep)
        try:
            fault = apply_pre_faults(req, self.faults, server_error)
        except AbortConnection:
            with self.lock:
                store.count(endpoint, 0)
                store.stats["errors_injected"] += 1
            raise
        if fault is not None:
            with self.lock:
                store.count(endpoint, fault.status)
                store.stats["errors_injected"] += 1
            fault.headers.update(rate_headers)
            return fault
        with self.lock:
            if route is None:
                response = v3_error(
                    405 if allowed else 404, "Not Found" if not allowed else "Method Not Allowed"
                )
            else:
                req.params, req.route_name = params, route.name
                try:
                    response = route.handler(req, store)  # type: ignore[call-arg]
                except HttpError as exc:
                    response = exc.response
            store.count(endpoint, response.status)
            store.stats["served"] += 1
        response.headers.update(rate_headers)
        return response

    # ----------------------------------------------------------------------------------------------- API routes
    def _api_routes(self) -> None:
        r = self.api
        r.add("GET", "/v2/orders", self.v2_orders, "GET /v2/orders")
        r.add("GET", "/v2/orders/{id:int}", self.v2_order, "GET /v2/orders/{id}")
        r.add("GET", "/v2/orders/{id:int}/products", self.v2_products, "GET /v2/orders/{id}/products")
        r.add(
            "GET",
            "/v2/orders/{id:int}/products/{pid:int}",
            self.v2_product,
            "GET /v2/orders/{id}/products/{id}",
        )
        r.add(
            "GET",
            "/v2/orders/{id:int}/shipping_addresses",
            self.v2_addresses,
            "GET /v2/orders/{id}/shipping_addresses",
        )
        r.add("GET", "/v2/orders/{id:int}/coupons", self.v2_coupons, "GET /v2/orders/{id}/coupons")
        r.add("GET", "/v2/orders/{id:int}/fees", self.v2_fees, "GET /v2/orders/{id}/fees")
        r.add(
            "GET",
            "/v2/orders/{id:int}/consignments",
            self.v2_consignments,
            "GET /v2/orders/{id}/consignments",
        )
        r.add("GET", "/v2/orders/{id:int}/shipments", self.v2_shipments, "GET /v2/orders/{id}/shipments")
        r.add("GET", "/v2/order_statuses", self.v2_statuses, "GET /v2/order_statuses")
        r.add("GET", "/v2/order_statuses/{id:int}", self.v2_status, "GET /v2/order_statuses/{id}")
        r.add(
            "GET",
            "/v3/orders/{id:int}/payment_actions/refunds",
            self.v3_order_refunds,
            "GET /v3/orders/{id}/payment_actions/refunds",
        )
        r.add(
            "GET",
            "/v3/orders/payment_actions/refunds",
            self.v3_refunds,
            "GET /v3/orders/payment_actions/refunds",
        )
        r.add(
            "GET",
            "/v3/orders/payment_actions/refunds/{id:int}",
            self.v3_refund,
            "GET /v3/orders/payment_actions/refunds/{id}",
        )
        r.add(
            "GET",
            "/v3/orders/{id:int}/transactions",
            self.v3_order_transactions,
            "GET /v3/orders/{id}/transactions",
        )
        r.add("GET", "/v3/channels", self.v3_channels, "GET /v3/channels")
        r.add("GET", "/v3/channels/{id:int}", self.v3_channel, "GET /v3/channels/{id}")
        r.add("GET", "/v3/hooks", self.v3_hooks, "GET /v3/hooks")
        r.add("POST", "/v3/hooks", self.v3_create_hook, "POST /v3/hooks")
        r.add("GET", "/v3/hooks/{id:int}", self.v3_hook, "GET /v3/hooks/{id}")
        r.add("PUT", "/v3/hooks/{id:int}", self.v3_update_hook, "PUT /v3/hooks/{id}")
        r.add("DELETE", "/v3/hooks/{id:int}", self.v3_delete_hook, "DELETE /v3/hooks/{id}")

    @staticmethod
    def _api_base(req: Request, store: Store) -> str:
        return f"{_base_url(req)}/stores/{store.cfg.hash}/v2"

    @staticmethod
    def _order(store: Store, order_id: str) -> bc_data.Order:
        order = store.data.orders.get(int(order_id))
        if order is None:
            raise HttpError(v2_error(404, "The requested resource was not found."))
        return order

    @staticmethod
    def _include(req: Request) -> tuple[set[str], bool]:
        include: set[str] = set()
        for value in req.query.get("include", []):
            include.update(v.strip() for v in value.split(",") if v.strip())
        return include, req.arg("consignment_structure") == "object"

    def _render(self, req: Request, store: Store, order: bc_data.Order) -> dict[str, Any]:
        include, as_object = self._include(req)
        return bc_data.order_to_v2(
            order,
            self._api_base(req, store),
            include=include,
            consignment_object=as_object,
            refunded_amount_mode=store.cfg.refunded_amount_mode,
        )

    def _page(self, req: Request, *, v2: bool = True) -> tuple[int, int]:
        page = _int_arg(req, "page", 1, v2=v2) or 1
        limit = _int_arg(req, "limit", DEFAULT_LIMIT, v2=v2) or DEFAULT_LIMIT
        if page < 1 or limit < 1:
            raise HttpError(
                v2_error(400, "page and limit must be positive") if v2 else v3_error(422, "Invalid page")
            )
        return page, min(limit, MAX_LIMIT)

    def v2_orders(self, req: Request, store: Store) -> Response:
        orders = list(store.data.orders.values())
        deleted = parse_bool(req.arg("is_deleted"))
        orders = [o for o in orders if o.is_deleted == bool(deleted)]
        filters_int = {
            "min_id": lambda o, v: o.id >= v,
            "max_id": lambda o, v: o.id <= v,
            "status_id": lambda o, v: o.status_id == v,
            "channel_id": lambda o, v: o.channel_id == v,
            "customer_id": lambda o, v: o.customer_id == v,
        }
        for name, check in filters_int.items():
            value = _int_arg(req, name)
            if value is not None:
                orders = [o for o in orders if check(o, value)]
        if req.arg("status_id") in (None, ""):
            orders = [o for o in orders if o.status_id != 0]  # incomplete orders only when asked for
        filters_date = {
            "min_date_created": lambda o, v: o.date_created >= v,
            "max_date_created": lambda o, v: o.date_created <= v,
            "min_date_modified": lambda o, v: o.date_modified >= v,
            "max_date_modified": lambda o, v: o.date_modified <= v,
        }
        for name, check in filters_date.items():
            moment = _date_arg(req, name)
            if moment is not None:
                orders = [o for o in orders if check(o, moment)]
        for name, attr in (("email", "email"), ("payment_method", "payment_method"), ("cart_id", "cart_id")):
            value = req.arg(name)
            if value:
                if attr == "email":
                    orders = [
                        o for o in orders if o.billing_address.get("email", "").lower() == value.lower()
                    ]
                else:
                    orders = [o for o in orders if str(getattr(o, attr)) == value]
        external = req.arg("external_order_id")
        if external:
            orders = [o for o in orders if o.external_order_id == external]
        for name, op in (("min_total", "ge"), ("max_total", "le")):
            value = req.arg(name)
            if value:
                try:
                    bound = bc_data.D(value)
                except DataError as exc:
                    raise HttpError(v2_error(400, f"The field '{name}' is invalid.")) from exc
                orders = [
                    o
                    for o in orders
                    if (
                        o.totals()["total_inc_tax"] >= bound
                        if op == "ge"
                        else o.totals()["total_inc_tax"] <= bound
                    )
                ]
        sort = req.arg("sort") or "id:asc"
        field, _, direction = sort.partition(":")
        keys = {
            "id": lambda o: o.id,
            "customer_id": lambda o: o.customer_id,
            "date_created": lambda o: o.date_created,
            "date_modified": lambda o: o.date_modified,
            "status_id": lambda o: o.status_id,
            "channel_id": lambda o: o.channel_id,
            "external_id": lambda o: o.external_id or "",
        }
        if field not in keys or direction not in ("", "asc", "desc"):
            raise HttpError(v2_error(400, f"The field 'sort' is invalid: {sort}"))
        key = keys[field]
        orders.sort(key=lambda o: (key(o), o.id), reverse=direction == "desc")
        page, limit = self._page(req)
        chunk = orders[(page - 1) * limit : page * limit]
        if not chunk:
            return empty_response(204)
        return json_response(200, [self._render(req, store, o) for o in chunk])

    def v2_order(self, req: Request, store: Store) -> Response:
        return json_response(200, self._render(req, store, self._order(store, req.params["id"])))

    def v2_products(self, req: Request, store: Store) -> Response:
        order = self._order(store, req.params["id"])
        page, limit = self._page(req)
        chunk = order.lines[(page - 1) * limit : page * limit]
        if not chunk:
            return empty_response(204)
        return json_response(200, [bc_data.line_to_v2(ln, order) for ln in chunk])

    def v2_product(self, req: Request, store: Store) -> Response:
        order = self._order(store, req.params["id"])
        for ln in order.lines:
            if ln.id == int(req.params["pid"]):
                return json_response(200, bc_data.line_to_v2(ln, order))
        return v2_error(404, "The requested resource was not found.")

    def v2_addresses(self, req: Request, store: Store) -> Response:
        order = self._order(store, req.params["id"])
        if order.shipping_address is None:
            return empty_response(204)
        return json_response(200, [bc_data.shipping_address_to_v2(order, self._api_base(req, store))])

    def v2_coupons(self, req: Request, store: Store) -> Response:
        coupons = bc_data.coupons_to_v2(self._order(store, req.params["id"]))
        return json_response(200, coupons) if coupons else empty_response(204)

    def v2_fees(self, req: Request, store: Store) -> Response:
        order = self._order(store, req.params["id"])
        return json_response(200, [bc_data.fee_to_v2(f) for f in order.fees])

    def v2_consignments(self, req: Request, store: Store) -> Response:
        order = self._order(store, req.params["id"])
        include, _ = self._include(req)
        return json_response(
            200,
            bc_data.consignments_to_v2(
                order, self._api_base(req, store), with_lines="consignments.line_items" in include
            ),
        )

    def v2_shipments(self, req: Request, store: Store) -> Response:
        shipments = bc_data.shipments_to_v2(self._order(store, req.params["id"]))
        return json_response(200, shipments) if shipments else empty_response(204)

    def v2_statuses(self, req: Request, store: Store) -> Response:
        return json_response(200, bc_data.status_list_v2())

    def v2_status(self, req: Request, store: Store) -> Response:
        for status in bc_data.status_list_v2():
            if status["id"] == int(req.params["id"]):
                return json_response(200, status)
        return v2_error(404, "The requested resource was not found.")

    # ---- v3 transactions
    def v3_order_transactions(self, req: Request, store: Store) -> Response:
        """The order's payment events, derived from the order: gift certificates and store credit from their
        amounts, the rest as one event at the order's payment provider (authorisation while the payment status
        is "authorized", pending while "pending", else a purchase), and one refund event per v3 refund payment.
        204 when the order has none (nothing paid)."""
        order_id = int(req.params["id"])
        order = store.data.orders.get(order_id)
        if order is None:
            return v3_error(404, f"Order {order_id} not found")
        rows = transactions_of(order, [r for r in store.data.refunds.values() if r.order_id == order_id])
        if not rows:
            return empty_response(204)
        return json_response(200, {"data": rows, "meta": {}})

    # ---- v3 refunds
    def v3_order_refunds(self, req: Request, store: Store) -> Response:
        order_id = int(req.params["id"])
        if order_id not in store.data.orders:
            return v3_error(404, f"Order {order_id} not found")
        refunds = sorted(
            (r for r in store.data.refunds.values() if r.order_id == order_id), key=lambda r: r.id
        )
        transaction_id = req.arg("transaction_id")
        if transaction_id:
            refunds = [
                r for r in refunds if any(p.get("transaction_id") == transaction_id for p in r.payments)
            ]
        return json_response(200, {"data": [r.to_v3() for r in refunds], "meta": {}})

    def v3_refunds(self, req: Request, store: Store) -> Response:
        refunds = sorted(store.data.refunds.values(), key=lambda r: r.id)
        order_ids = _int_list(req, "order_id:in")
        if order_ids is not None:
            refunds = [r for r in refunds if r.order_id in set(order_ids)]
        refund_ids = _int_list(req, "id:in")
        if refund_ids is not None:
            refunds = [r for r in refunds if r.id in set(refund_ids)]
        created_min = _date_arg(req, "created:min", v2=False)
        if created_min is not None:
            refunds = [r for r in refunds if r.created >= created_min]
        created_max = _date_arg(req, "created:max", v2=False)
        if created_max is not None:
            refunds = [r for r in refunds if r.created <= created_max]
        transaction_id = req.arg("transaction_id")
        if transaction_id:
            refunds = [
                r for r in refunds if any(p.get("transaction_id") == transaction_id for p in r.payments)
            ]
        page, limit = self._page(req, v2=False)
        chunk = refunds[(page - 1) * limit : page * limit]
        return json_response(
            200,
            {
                "data": [r.to_v3() for r in chunk],
                "meta": {"pagination": _pagination(len(refunds), page, limit, len(chunk))},
            },
        )

    def v3_refund(self, req: Request, store: Store) -> Response:
        refund = store.data.refunds.get(int(req.params["id"]))
        if refund is None:
            return v3_error(404, f"Refund with id [{req.params['id']}] not found")
        return json_response(200, {"data": refund.to_v3(), "meta": {}})

    # ---- v3 channels
    def v3_channels(self, req: Request, store: Store) -> Response:
        channels = [bc_data.channel_to_v3(c, store.data.created_at) for c in store.cfg.channels]
        for param, key in (("status:in", "status"), ("type:in", "type"), ("platform:in", "platform")):
            values = req.query.get(param)
            if values:
                wanted = {v.strip() for value in values for v in value.split(",")}
                channels = [c for c in channels if c[key] in wanted]
        page, limit = self._page(req, v2=False)
        chunk = channels[(page - 1) * limit : page * limit]
        return json_response(
            200, {"data": chunk, "meta": {"pagination": _pagination(len(channels), page, limit, len(chunk))}}
        )

    def v3_channel(self, req: Request, store: Store) -> Response:
        for c in store.cfg.channels:
            if int(c["id"]) == int(req.params["id"]):
                return json_response(
                    200, {"data": bc_data.channel_to_v3(c, store.data.created_at), "meta": {}}
                )
        return v3_error(404, "The requested channel was not found.")

    # ---- v3 hooks
    @staticmethod
    def _hook_out(hook: dict[str, Any]) -> dict[str, Any]:
        return {
            k: hook[k]
            for k in (
                "id",
                "client_id",
                "store_hash",
                "scope",
                "destination",
                "headers",
                "is_active",
                "created_at",
                "updated_at",
            )
        }

    def v3_hooks(self, req: Request, store: Store) -> Response:
        hooks = sorted(store.hooks.values(), key=lambda h: h["id"])
        active = parse_bool(req.arg("is_active"))
        if active is not None:
            hooks = [h for h in hooks if h["is_active"] == active]
        for name in ("scope", "destination"):
            value = req.arg(name)
            if value:
                hooks = [h for h in hooks if h[name] == value]
        page, limit = self._page(req, v2=False)
        chunk = hooks[(page - 1) * limit : page * limit]
        return json_response(
            200,
            {
                "data": [self._hook_out(h) for h in chunk],
                "meta": {"pagination": _pagination(len(hooks), page, limit, len(chunk))},
            },
        )

    def _validate_hook_fields(
        self, body: Any, store: Store, *, partial: bool, hook_id: int | None = None
    ) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise HttpError(v3_error(422, "JSON data is missing or invalid"))
        errors: dict[str, str] = {}
        fields = {k: body[k] for k in ("scope", "destination", "is_active", "headers") if k in body}
        if not partial:
            for key in ("scope", "destination"):
                if not body.get(key):
                    errors[key] = "error.path.missing."
        elif not fields:
            raise HttpError(v3_error(422, "Update webhook request should not be empty"))
        if "scope" in fields and not (
            isinstance(fields["scope"], str) and fields["scope"].startswith("store/")
        ):
            errors["scope"] = "error.scope.invalid."
        destination = fields.get("destination")
        if destination is not None:
            if not isinstance(destination, str) or not destination.startswith(("http://", "https://")):
                errors["destination"] = "error.destination.invalid."
            elif self.webhook_settings.require_https and not destination.startswith("https://"):
                errors["destination"] = "error.destination.https_required."
        if "headers" in fields and fields["headers"] is not None:
            headers = fields["headers"]
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                errors["headers"] = "error.headers.invalid."
        if "is_active" in fields and not isinstance(fields["is_active"], bool):
            errors["is_active"] = "error.is_active.invalid."
        if errors:
            raise HttpError(v3_error(422, "JSON data is missing or invalid", errors))
        return fields

    def v3_create_hook(self, req: Request, store: Store) -> Response:
        fields = self._validate_hook_fields(req.json(lambda m: v3_error(400, m)), store, partial=False)
        for hook in store.hooks.values():
            if hook["scope"] == fields["scope"] and hook["destination"] == fields["destination"]:
                return v3_error(422, "A webhook with this scope and destination already exists.")
        if sum(1 for h in store.hooks.values() if h["scope"] == fields["scope"]) >= 10:
            return v3_error(422, "At most 10 webhooks per scope are allowed.")
        now = int(time.time())
        hook = {
            "id": self.next_hook_id,
            "client_id": store.cfg.client_id,
            "store_hash": store.cfg.hash,
            "scope": fields["scope"],
            "destination": fields["destination"],
            "headers": fields.get("headers"),
            "is_active": fields.get("is_active", True),
            "created_at": now,
            "updated_at": now,
        }
        self.next_hook_id += 1
        store.hooks[hook["id"]] = hook
        return json_response(200, {"data": self._hook_out(hook), "meta": {}})

    def _hook(self, req: Request, store: Store) -> dict[str, Any]:
        hook = store.hooks.get(int(req.params["id"]))
        if hook is None:
            raise HttpError(v3_error(404, f"Webhook with id [{req.params['id']}] not found"))
        return hook

    def v3_hook(self, req: Request, store: Store) -> Response:
        return json_response(200, {"data": self._hook_out(self._hook(req, store)), "meta": {}})

    def v3_update_hook(self, req: Request, store: Store) -> Response:
        hook = self._hook(req, store)
        fields = self._validate_hook_fields(req.json(lambda m: v3_error(400, m)), store, partial=True)
        hook.update(fields)
        hook["updated_at"] = int(time.time())
        return json_response(200, {"data": self._hook_out(hook), "meta": {}})

    def v3_delete_hook(self, req: Request, store: Store) -> Response:
        hook = self._hook(req, store)
        del store.hooks[hook["id"]]
        return json_response(200, {"data": self._hook_out(hook), "meta": {}})

    # ----------------------------------------------------------------------------------------- webhook plumbing
    def hook_for_delivery(self, store_hash: str, hook_id: int) -> tuple[dict[str, Any], str] | None:
        with self.lock:
            store = self.stores.get(store_hash)
            hook = store.hooks.get(hook_id) if store else None
            if store is None or hook is None or not hook["is_active"]:
                return None
            return dict(hook), store.cfg.client_secret

    def deactivate_hook(self, store_hash: str, hook_id: int) -> None:
        with self.lock:
            store = self.stores.get(store_hash)
            hook = store.hooks.get(hook_id) if store else None
            if hook is not None:
                hook["is_active"] = False
                hook["updated_at"] = int(time.time())

    def record_attempt(self, store_hash: str, record: dict[str, Any]) -> None:
        with self.lock:
            store = self.stores.get(store_hash)
            if store is not None:
                store.deliveries.append(record)

    def publish(self, store: Store, events: list[bc_data.Event]) -> list[dict[str, Any]]:
        """Deliver ``events`` to the store's matching hooks. Returns what was fired (for control responses)."""
        fired = []
        hooks = [dict(h) for h in store.hooks.values()]
        for scope, data in events:
            payload = dict(data)
            if data.get("type") == "order" and int(data.get("id", 0)) in store.data.orders:
                payload["_channel_id"] = store.data.orders[int(data["id"])].channel_id
            queued = self.dispatcher.publish(store.cfg.hash, store.cfg.store_id, hooks, scope, payload)
            fired.append({"scope": scope, "data": data, "deliveries": queued})
        return fired

    # ------------------------------------------------------------------------------------------- control routes
    def _control_routes(self) -> None:
        r = self.control
        r.add("GET", "/_sim/health", self.c_health)
        r.add("POST", "/_sim/reset", self.c_reset)
        r.add("GET", "/_sim/stores", self.c_stores)
        r.add("POST", "/_sim/stores", self.c_create_store)
        r.add("GET", "/_sim/stores/{hash}", self.c_store)
        r.add("DELETE", "/_sim/stores/{hash}", self.c_delete_store)
        r.add("POST", "/_sim/stores/{hash}/reset", self.c_reset_store)
        r.add("POST", "/_sim/stores/{hash}/orders/generate", self.c_generate)
        r.add("POST", "/_sim/stores/{hash}/orders", self.c_create_order)
        r.add("GET", "/_sim/stores/{hash}/orders/{id:int}", self.c_order)
        r.add("POST", "/_sim/stores/{hash}/orders/{id:int}/status", self.c_status)
        r.add("POST", "/_sim/stores/{hash}/orders/{id:int}/edit", self.c_edit)
        r.add("POST", "/_sim/stores/{hash}/orders/{id:int}/refunds", self.c_refund)
        r.add("POST", "/_sim/stores/{hash}/orders/{id:int}/ship", self.c_ship)
        r.add("POST", "/_sim/stores/{hash}/orders/{id:int}/archive", self.c_archive)
        r.add("POST", "/_sim/stores/{hash}/orders/{id:int}/messages", self.c_message)
        r.add("POST", "/_sim/stores/{hash}/events", self.c_event)
        r.add("GET", "/_sim/stores/{hash}/rate_limit", self.c_rate_limit)
        r.add("POST", "/_sim/stores/{hash}/rate_limit", self.c_rate_limit)
        r.add("GET", "/_sim/stores/{hash}/deliveries", self.c_deliveries)
        r.add("DELETE", "/_sim/stores/{hash}/deliveries", self.c_clear_deliveries)
        r.add("GET", "/_sim/stores/{hash}/stats", self.c_store_stats)
        r.add("GET", "/_sim/faults", self.c_faults)
        r.add("POST", "/_sim/faults", self.c_faults)
        r.add("GET", "/_sim/webhooks", self.c_webhooks)
        r.add("POST", "/_sim/webhooks", self.c_webhooks)
        r.add("POST", "/_sim/webhooks/wait", self.c_webhooks_wait)
        r.add("GET", "/_sim/stats", self.c_stats)
        r.add("POST", "/_sim/stats/reset", self.c_stats_reset)

    def _store(self, req: Request) -> Store:
        store = self.stores.get(req.params["hash"])
        if store is None:
            raise HttpError(control_error(404, f"no store {req.params['hash']}"))
        return store

    @staticmethod
    def _body(req: Request) -> dict[str, Any]:
        body = req.json(lambda m: control_error(400, m))
        if not isinstance(body, dict):
            raise HttpError(control_error(400, "expected a JSON object"))
        return body

    @staticmethod
    def _when(body: dict[str, Any]) -> datetime | None:
        return bc_data.parse_when(body["at"]) if body.get("at") else None

    def _order_out(self, req: Request, store: Store, order: bc_data.Order) -> dict[str, Any]:
        api_base = self._api_base(req, store)
        out = bc_data.order_to_v2(
            order,
            api_base,
            include={"consignments.line_items", "fees"},
            consignment_object=True,
            refunded_amount_mode=store.cfg.refunded_amount_mode,
        )
        return {
            "order": out,
            "products": [bc_data.line_to_v2(ln, order) for ln in order.lines],
            "refunds": [
                r.to_v3()
                for r in sorted(store.data.refunds.values(), key=lambda r: r.id)
                if r.order_id == order.id
            ],
        }

    def c_health(self, req: Request) -> Response:
        return json_response(200, {"ok": True, "simulator": self.name, "stores": sorted(self.stores)})

    def c_reset(self, req: Request) -> Response:
        body = self._body(req)
        with self.lock:
            self.dispatcher.clear()
            self.stores.clear()
            self.faults.clear()
            self.global_stats = {"unknown_store": 0, "control": 1}
            if not body.get("empty"):
                self._load_initial()
            return json_response(200, {"stores": [s.summary(_base_url(req)) for s in self.stores.values()]})

    def c_stores(self, req: Request) -> Response:
        with self.lock:
            return json_response(200, {"stores": [s.summary(_base_url(req)) for s in self.stores.values()]})

    def c_create_store(self, req: Request) -> Response:
        body = self._body(req)
        orders = int(body.pop("orders", 0))
        generate = body.pop("generate", {}) or {}
        replace = bool(body.pop("replace", False))
        with self.lock:
            store = self.add_store(body, replace=replace)
            if orders:
                store.data.generate(orders, **self._generate_kwargs(generate))
            return json_response(201, store.summary(_base_url(req)))

    def c_store(self, req: Request) -> Response:
        with self.lock:
            return json_response(200, self._store(req).summary(_base_url(req)))

    def c_delete_store(self, req: Request) -> Response:
        with self.lock:
            store = self._store(req)
            self.dispatcher.clear(store.cfg.hash)
            del self.stores[store.cfg.hash]
            return json_response(200, {"deleted": store.cfg.hash})

    def c_reset_store(self, req: Request) -> Response:
        body = self._body(req)
        with self.lock:
            old = self._store(req)
            self.dispatcher.clear(old.cfg.hash)
            store = Store(old.cfg)
            self.stores[old.cfg.hash] = store
            if body.get("orders"):
                store.data.generate(int(body["orders"]), **self._generate_kwargs(body))
            return json_response(200, store.summary(_base_url(req)))

    @staticmethod
    def _generate_kwargs(body: dict[str, Any]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        for key in ("start", "end"):
            if body.get(key):
                kwargs[key] = bc_data.parse_when(body[key])
        for key in ("seed",):
            if body.get(key) is not None:
                kwargs[key] = int(body[key])
        for key in ("refund_rate", "full_refund_rate", "edit_rate"):
            if key in body:
                kwargs[key] = float(body[key])
        if body.get("status_weights"):
            kwargs["status_weights"] = {int(k): int(v) for k, v in body["status_weights"].items()}
        if body.get("spec"):
            kwargs["spec"] = dict(body["spec"])
        return kwargs

    def c_generate(self, req: Request) -> Response:
        body = self._body(req)
        with self.lock:
            store = self._store(req)
            order_ids, refund_ids = store.data.generate(
                int(body.get("count", 10)), **self._generate_kwargs(body)
            )
            fired: list[dict[str, Any]] = []
            if body.get("fire_webhooks"):
                for order_id in order_ids:
                    fired += self.publish(store, [("store/order/created", {"type": "order", "id": order_id})])
            return json_response(201, {"order_ids": order_ids, "refund_ids": refund_ids, "events": fired})

    def c_create_order(self, req: Request) -> Response:
        body = self._body(req)
        fire = body.pop("fire_webhooks", True)
        with self.lock:
            store = self._store(req)
            order, events = store.data.create_order(body, now=self._when(body))
            fired = self.publish(store, events) if fire else []
            return json_response(201, {**self._order_out(req, store, order), "events": fired})

    def c_order(self, req: Request) -> Response:
        with self.lock:
            store = self._store(req)
            order = store.data.get(int(req.params["id"]))
            return json_response(200, self._order_out(req, store, order))

    def _mutate(self, req: Request, action: str) -> Response:
        body = self._body(req)
        fire = body.pop("fire_webhooks", True)
        with self.lock:
            store = self._store(req)
            order_id = int(req.params["id"])
            if order_id not in store.data.orders:
                return control_error(404, f"no order {order_id} in store {store.cfg.hash}")
            extra: dict[str, Any] = {}
            if action == "status":
                if "status_id" not in body:
                    return control_error(400, "status_id is required")
                events = store.data.set_status(order_id, int(body["status_id"]), now=self._when(body))
            elif action == "edit":
                events = store.data.edit(order_id, body, now=self._when(body))
            elif action == "refund":
                refund, events = store.data.refund(order_id, body)
                extra["refund"] = refund.to_v3()
            elif action == "ship":
                events = store.data.ship(order_id, body.get("items"), now=self._when(body))
            elif action == "archive":
                events = store.data.archive(order_id, now=self._when(body))
            else:
                events = store.data.message(order_id)
            fired = self.publish(store, events) if fire else []
            return json_response(
                200, {**self._order_out(req, store, store.data.orders[order_id]), **extra, "events": fired}
            )

    def c_status(self, req: Request) -> Response:
        return self._mutate(req, "status")

    def c_edit(self, req: Request) -> Response:
        return self._mutate(req, "edit")

    def c_refund(self, req: Request) -> Response:
        return self._mutate(req, "refund")

    def c_ship(self, req: Request) -> Response:
        return self._mutate(req, "ship")

    def c_archive(self, req: Request) -> Response:
        return self._mutate(req, "archive")

    def c_message(self, req: Request) -> Response:
        return self._mutate(req, "message")

    def c_event(self, req: Request) -> Response:
        body = self._body(req)
        if not body.get("scope") or not isinstance(body.get("data"), dict):
            return control_error(400, "scope and data (an object) are required")
        with self.lock:
            store = self._store(req)
            fired = self.publish(store, [(str(body["scope"]), dict(body["data"]))])
            return json_response(200, {"events": fired})

    def c_rate_limit(self, req: Request) -> Response:
        with self.lock:
            store = self._store(req)
            if req.method == "POST":
                body = self._body(req)
                store.rate.configure(body.get("quota"), body.get("window_ms"))
            return json_response(200, store.rate.as_dict())

    def c_deliveries(self, req: Request) -> Response:
        with self.lock:
            store = self._store(req)
            records = list(store.deliveries)
        scope = req.arg("scope")
        if scope:
            records = [r for r in records if r["scope"] == scope]
        hook_id = req.arg("hook_id")
        if hook_id:
            records = [r for r in records if r["hook_id"] == int(hook_id)]
        return json_response(200, {"deliveries": records, "pending": self.dispatcher.pending()})

    def c_clear_deliveries(self, req: Request) -> Response:
        with self.lock:
            self._store(req).deliveries.clear()
        return json_response(200, {"cleared": True})

    def c_store_stats(self, req: Request) -> Response:
        with self.lock:
            store = self._store(req)
            return json_response(200, {**store.stats, "rate_limit": store.rate.as_dict()})

    def c_faults(self, req: Request) -> Response:
        if req.method == "POST":
            self.faults.update(self._body(req))
        return json_response(200, {**self.faults.snapshot(), "counters": dict(self.faults.counters)})

    def c_webhooks(self, req: Request) -> Response:
        if req.method == "POST":
            try:
                self.webhook_settings.update(self._body(req))
            except ValueError as exc:
                return control_error(400, str(exc))
        return json_response(200, {**self.webhook_settings.as_dict(), "pending": self.dispatcher.pending()})

    def c_webhooks_wait(self, req: Request) -> Response:
        body = self._body(req)
        idle = self.dispatcher.wait_idle(float(body.get("timeout", 5)))
        return json_response(200, {"idle": idle, "pending": self.dispatcher.pending()})

    def c_stats(self, req: Request) -> Response:
        with self.lock:
            return json_response(
                200,
                {
                    "stores": {
                        h: {**s.stats, "rate_limit": s.rate.as_dict()} for h, s in self.stores.items()
                    },
                    "global": dict(self.global_stats),
                    "faults": dict(self.faults.counters),
                    "webhooks_pending": self.dispatcher.pending(),
                },
            )

    def c_stats_reset(self, req: Request) -> Response:
        with self.lock:
            for store in self.stores.values():
                store.stats = Store._empty_stats()
            self.faults.counters.clear()
            self.global_stats = {"unknown_store": 0, "control": 1}
        return json_response(200, {"reset": True})


# -------------------------------------------------------------------------------------------------------- entry points


# Gateways whose payments are card payments; others (bank deposit, cash, custom) are offline methods.
_CARD_GATEWAYS = frozenset(
    {"braintree", "stripe", "stripev3", "squarev2", "authorizenet", "adyen", "checkoutcom"}
)


def transactions_of(order: bc_data.Order, refunds: list[bc_data.Refund]) -> list[dict[str, Any]]:
    """``GET /v3/orders/{id}/transactions`` rows for a simulated order (see ``v3_order_transactions``)."""
    rows: list[dict[str, Any]] = []
    created = bc_data.iso8601(order.date_created)

    def add(event: str, method: str, gateway: str, amount: Decimal) -> None:
        rows.append(
            {
                "id": order.id * 100 + len(rows) + 1,
                "order_id": str(order.id),
                "event": event,
                "method": method,
                "amount": bc_data.number(amount),
                "currency": order.currency,
                "gateway": gateway,
                "gateway_transaction_id": f"sim-{order.id}-{len(rows) + 1}",
                "date_created": created,
                "test": False,
                "status": "ok",
                "fraud_review": False,
                "payment_method_id": f"{gateway}.{method}" if gateway else "",
            }
        )

    if order.gift_certificate_amount:
        add("purchase", "gift_certificate", "giftcertificate", order.gift_certificate_amount)
    if order.store_credit_amount:
        add("purchase", "store_credit", "storecredit", order.store_credit_amount)
    rest = order.totals()["total_inc_tax"] - order.gift_certificate_amount - order.store_credit_amount
    provider = order.payment_provider_id
    if rest > 0 and provider not in ("storecredit", "giftcertificate"):
        gateway = provider or "custom"
        method = "credit_card" if gateway in _CARD_GATEWAYS else "offline" if provider else "custom"
        status = order.payment_status.lower()
        event = {"authorized": "authorization", "pending": "pending", "": "pending"}.get(status, "purchase")
        add(event, method, gateway, rest)
    for refund in refunds:
        for payment in refund.payments:
            if not payment.get("is_declined"):
                gateway = str(payment.get("provider_id") or "custom")
                add(
                    "refund",
                    "store_credit" if gateway == "storecredit" else "credit_card",
                    gateway,
                    Decimal(str(payment.get("amount", 0))),
                )
    return rows


def start_in_thread(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> tuple[SimServer, str]:
    """Start a :class:`BigCommerceSim` (``options`` are its keyword arguments) on a daemon thread."""
    return _start_in_thread(BigCommerceSim(**options), host=host, port=port)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.bigcommerce", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stores", type=int, default=1, help="number of preset stores to create (default 1)")
    parser.add_argument("--orders", type=int, default=25, help="orders generated per store (default 25)")
    parser.add_argument("--config", help="JSON file: {stores: [...], webhooks: {...}, faults: {...}, seed}")
    parser.add_argument("--webhook-compression", type=float, help="multiply webhook retry delays by this")
    parser.add_argument(
        "--rate-limit-quota", type=int, help="requests per window for every store (default 150)"
    )
    parser.add_argument("--rate-limit-window-ms", type=int, help="window length (default 30000)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)

    config: dict[str, Any] = {}
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            config = json.load(fh)
    stores: int | list[dict[str, Any]] = config.get("stores", args.stores)
    if args.rate_limit_quota or args.rate_limit_window_ms:
        specs = [{} for _ in range(stores)] if isinstance(stores, int) else stores
        for spec in specs:
            if args.rate_limit_quota:
                spec.setdefault("rate_limit_quota", args.rate_limit_quota)
            if args.rate_limit_window_ms:
                spec.setdefault("rate_limit_window_ms", args.rate_limit_window_ms)
        stores = specs
    webhooks = dict(config.get("webhooks", {}))
    if args.webhook_compression is not None:
        webhooks["compression"] = args.webhook_compression
    app = BigCommerceSim(
        stores=stores,
        orders=int(config.get("orders", args.orders)),
        seed=int(config.get("seed", args.seed)),
        webhooks=webhooks,
        faults=config.get("faults"),
        verbose=args.verbose,
    )

    def banner(base_url: str) -> dict[str, Any]:
        with app.lock:
            return {
                "simulator": "bigcommerce",
                "base_url": base_url,
                "control": f"{base_url}/_sim/",
                "retry_schedule_s": list(DEFAULT_RETRY_SCHEDULE),
                "stores": [s.summary(base_url) for s in app.stores.values()],
            }

    run_forever(app, args.host, args.port, banner)


__all__ = ["BigCommerceSim", "RateLimiter", "main", "scope_matches", "start_in_thread"]

if __name__ == "__main__":
    main()
