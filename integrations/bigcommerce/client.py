"""BigCommerce REST client: orders (v2), refunds, channels and hooks (v3).

One small wrapper that owns the things every call needs: the ``X-Auth-Token`` header, mandatory timeouts (through
:func:`integrations.http.send`), ``Decimal`` parsing of every JSON body, rate-limit handling and the mapping of HTTP
answers onto :mod:`integrations.errors`. It returns the typed objects of :mod:`integrations.bigcommerce.types`.

Rate limits (the quota refreshes every 30 s and is shared by every app on the store):

* after each response the ``X-Rate-Limit-*`` headers are kept in :attr:`BigCommerceClient.rate_limit`;
* before a request, when the last answer said at most ``rate_limit_margin`` requests are left and the window has not
  reset yet, the client sleeps until it has (never longer than ``max_inline_wait``);
* a 429 is retried after the advertised reset time (or ``X-Retry-After``, or 1 s doubling when the platform sent no
  header at all, which means "high load"), at most ``max_429_retries`` times and only while each wait is at most
  ``max_inline_wait``; otherwise :class:`~integrations.errors.RateLimitedError` carries ``retry_after`` to the
  pipeline, which reschedules the work instead of holding a worker.

Other failures are never retried here: retries belong to the pipeline so that each attempt is recorded.

The access token is only ever put in a request header. It never appears in a URL, an error message, a log line or a
:class:`~integrations.http.CallRecord`; response bodies are scrubbed of it, and of hook header values (the shared
secret of our webhook endpoint) before they are recorded.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from ..errors import (
    AuthenticationError,
    BadResponseError,
    IntegrationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)
from ..http import CallRecord, Exchange, Transport, new_session
from ..metrics import observe_bigcommerce_quota
from .parsing import (
    consignment_products,
    iso,
    opt_int,
    parse_channel,
    parse_hook,
    parse_order,
    parse_order_status,
    parse_order_summary,
    parse_refund,
    parse_transaction,
    reading,
    utc,
)
from .types import Channel, Hook, Order, OrderStatus, OrderSummary, Refund, Transaction

logger = logging.getLogger(__name__)

#: Largest page BigCommerce serves on its v2 and v3 list endpoints.
MAX_PAGE_SIZE = 250
#: How many :class:`CallRecord` objects :attr:`BigCommerceClient.call_log` keeps (oldest dropped first).
CALL_LOG_SIZE = 100
#: How much of a response body a :class:`CallRecord` or an error keeps.
BODY_LIMIT = 2000
#: A safety stop for pagination that never ends (a server that ignores ``page``).
MAX_PAGES = 1000

_WRITE_METHODS = frozenset({"POST", "PUT"})
_HOOK_FIELDS = frozenset({"scope", "destination", "is_active", "headers"})
_REDACTED = "***"


@dataclass(frozen=True)
class StoreConfig:
    """Everything needed to talk to one store. ``api_base_url`` lets tests and the simulator replace the host."""

    store_hash: str
    access_token: str = field(repr=False)
    api_base_url: str = "https://api.bigcommerce.com"
    timeout: tuple[float, float] = (5.0, 20.0)
    rate_limit_margin: int = 2
    max_inline_wait: float = 35.0
    max_429_retries: int = 3


@dataclass(frozen=True)
class RateLimit:
    """The ``X-Rate-Limit-*`` headers of the latest response, and when (``clock()`` seconds) they were read."""

    requests_left: int | None
    requests_quota: int | None
    time_reset_ms: int | None
    time_window_ms: int | None
    observed_at: float

    def seconds_until_reset(self, now: float) -> float:
        """Seconds from ``now`` until the quota window resets (0 when unknown or already past)."""
        if self.time_reset_ms is None:
            return 0.0
        return max(0.0, self.observed_at + self.time_reset_ms / 1000 - now)


class BigCommerceClient:
    """Typed access to the BigCommerce endpoints the connector needs.

    ``session`` defaults to :func:`integrations.http.new_session`; ``sleep`` and ``clock`` are injectable so tests
    can observe rate-limit waits without waiting. Not thread-safe: use one client per worker.
    """

    def __init__(
        self,
        config: StoreConfig,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        # The access token only ever travels in a header; it is scrubbed from bodies all the same.
        self._transport = Transport(
            session if session is not None else new_session(),
            api="bigcommerce",
            timeout=config.timeout,
            secrets=[config.access_token],
            mask=_REDACTED,
            min_secret_length=1,
            body_limit=BODY_LIMIT,
            log_size=CALL_LOG_SIZE,
            decode=_text,
        )
        self._sleep = sleep
        self._clock = clock
        self._base = f"{config.api_base_url.rstrip('/')}/stores/{config.store_hash}"
        self._headers = {
            "X-Auth-Token": config.access_token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        #: HTTP requests attempted (including 429 retries and requests that failed in transport).
        self.calls = 0
        #: Rate-limit headers of the latest response that carried them.
        self.rate_limit: RateLimit | None = None
        # The observation we already waited for, so one low-quota answer costs one wait, not one per request.
        self._waited_for: RateLimit | None = None

    def __repr__(self) -> str:
        return f"BigCommerceClient(store_hash={self.config.store_hash!r})"

    @property
    def call_log(self) -> list[CallRecord]:
        """The last :data:`CALL_LOG_SIZE` calls, oldest first. No request headers, no secrets."""
        return self._transport.call_log

    # ---------------------------------------------------------------------------------------------------- orders

    def get_order(self, order_id: int) -> Order:
        """One order with its products and fees, in one call when the store returns consignment line items.

        Falls back to paging ``/v2/orders/{id}/products`` only when the consignments carry no product objects
        (absent, or just ``{url, resource}`` links).
        """
        path = f"v2/orders/{int(order_id)}"
        raw = self._get(
            path, params={"include": "consignments.line_items,fees", "consignment_structure": "object"}
        )
        if not isinstance(raw, dict):
            raise _shape_error(f"GET /{path}", "expected an order object")
        products = consignment_products(raw)
        if products is None:
            products = self._get_order_products(int(order_id))
        return parse_order(raw, products)

    def _get_order_products(self, order_id: int) -> list[dict[str, Any]]:
        path = f"v2/orders/{order_id}/products"
        products: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            rows = self._get_v2_list(path, params={"page": page, "limit": MAX_PAGE_SIZE})
            products.extend(rows)
            if len(rows) < MAX_PAGE_SIZE:
                return products
        raise _shape_error(f"GET /{path}", f"more than {MAX_PAGES} pages")

    def list_orders(
        self,
        *,
        min_date_modified: datetime | None = None,
        max_date_modified: datetime | None = None,
        min_id: int | None = None,
        page: int = 1,
        limit: int = MAX_PAGE_SIZE,
        sort: str = "date_modified:asc",
    ) -> list[OrderSummary]:
        """One page of ``GET /v2/orders``, reduced to id, date_modified, status_id and channel_id (204 → ``[]``).

        Naive datetimes are taken as UTC; both date bounds are inclusive and sent to the second. To scan orders, use
        :meth:`iter_orders_modified`, not page numbers.
        """
        params: dict[str, Any] = {"page": page, "limit": limit, "sort": sort}
        if min_date_modified is not None:
            params["min_date_modified"] = iso(min_date_modified)
        if max_date_modified is not None:
            params["max_date_modified"] = iso(max_date_modified)
        if min_id is not None:
            params["min_id"] = int(min_id)
        rows = self._get_v2_list("v2/orders", params=params)
        with reading("GET /v2/orders"):
            return [parse_order_summary(row) for row in rows]

    def iter_orders_modified(
        self, since: datetime, until: datetime | None = None, *, limit: int = MAX_PAGE_SIZE
    ) -> Iterator[OrderSummary]:
        """Every order modified in ``[since, until]`` (no upper bound when ``until`` is None), oldest change first.

        See :func:`iter_orders_modified`: keyset paging on (date_modified, id), so orders modified during the scan
        never make it skip another one.
        """
        return iter_orders_modified(self.list_orders, since, until, limit=limit)

    def list_order_statuses(self) -> list[OrderStatus]:
        """``GET /v2/order_statuses``. ``name`` falls back to the merchant's label, then the system label."""
        rows = self._get_v2_list("v2/order_statuses")
        with reading("GET /v2/order_statuses"):
            return [parse_order_status(row) for row in rows]

    def get_order_transactions(self, order_id: int) -> list[Transaction]:
        """``GET /v3/orders/{id}/transactions``: the order's payment events (gateway, method, amount), in ONE call.

        Not paged: BigCommerce cannot page an order's transactions (an order with more than 250 is out of reach
        anyway), and the pipeline allows itself one extra call per order for the tender split. 204 → ``[]``; 404
        (unknown order) and 503 (payments backend down) raise like every other call.
        """
        path = f"v3/orders/{int(order_id)}/transactions"
        rows, _ = self._get_v3_page(path, {})
        with reading(f"GET /{path}"):
            return [parse_transaction(row) for row in rows]

    # --------------------------------------------------------------------------------------------------- refunds

    def get_order_refunds(self, order_id: int) -> list[Refund]:
        """Every refund of one order, ascending by refund id."""
        path = f"v3/orders/{int(order_id)}/payment_actions/refunds"
        with reading(f"GET /{path}"):
            return [parse_refund(row) for row in self._get_v3_all(path)]

    def get_refund(self, refund_id: int) -> Refund:
        """``GET /v3/orders/payment_actions/refunds/{refund_id}``: what a ``store/order/refund/created`` names."""
        path = f"v3/orders/payment_actions/refunds/{int(refund_id)}"
        body = self._get(path)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise _shape_error(f"GET /{path}", "expected {data: refund}")
        with reading(f"GET /{path}"):
            return parse_refund(data)

    def list_refunds(
        self, *, created_min: datetime | None = None, page: int = 1, limit: int = MAX_PAGE_SIZE
    ) -> tuple[list[Refund], bool]:
        """One page of all the store's refunds, ascending by id; returns ``(refunds, has_more)``."""
        path = "v3/orders/payment_actions/refunds"
        params: dict[str, Any] = {"page": page, "limit": limit}
        if created_min is not None:
            params["created:min"] = iso(created_min)
        rows, meta = self._get_v3_page(path, params)
        with reading(f"GET /{path}"):
            refunds = [parse_refund(row) for row in rows]
            if _has_pagination(meta):
                return refunds, _next_page(meta, params) is not None
        return refunds, len(rows) >= limit

    # ------------------------------------------------------------------------------------------ channels, hooks

    def list_channels(self) -> list[Channel]:
        """``GET /v3/channels``, every page."""
        with reading("GET /v3/channels"):
            return [parse_channel(row) for row in self._get_v3_all("v3/channels")]

    def list_hooks(self) -> list[Hook]:
        """``GET /v3/hooks``: the hooks of this API account, every page."""
        with reading("GET /v3/hooks"):
            return [parse_hook(row) for row in self._get_v3_all("v3/hooks")]

    def create_hook(
        self, *, scope: str, destination: str, headers: dict[str, str] | None = None, is_active: bool = True
    ) -> Hook:
        """``POST /v3/hooks``. ``is_active`` is always sent: the API documents no default for it."""
        body: dict[str, Any] = {"scope": scope, "destination": destination, "is_active": is_active}
        if headers is not None:
            body["headers"] = dict(headers)
        return self._write_hook("POST", "v3/hooks", body)

    def update_hook(self, hook_id: int, **fields: Any) -> Hook:
        """``PUT /v3/hooks/{id}`` with any of ``scope``, ``destination``, ``is_active``, ``headers``."""
        unknown = set(fields) - _HOOK_FIELDS
        if unknown:
            raise ValueError(
                f"update_hook: unknown field(s) {sorted(unknown)}; allowed: {sorted(_HOOK_FIELDS)}"
            )
        if not fields:
            raise ValueError("update_hook: at least one field is required")
        return self._write_hook("PUT", f"v3/hooks/{int(hook_id)}", fields)

    def _write_hook(self, method: str, path: str, body: dict[str, Any]) -> Hook:
        answer = self._request(method, path, json_body=body)
        data = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(data, dict):
            raise _shape_error(f"{method} /{path}", "expected {data: hook}")
        with reading(f"{method} /{path}"):
            return parse_hook(data)

    # ------------------------------------------------------------------------------------------------ transport

    def _get(self, path: str, *, params: Mapping[str, Any] | None = None) -> Any:
        return self._request("GET", path, params=params)

    def _get_v2_list(self, path: str, *, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """A v2 list: a JSON array, or 204 / an empty body when there is nothing (more)."""
        body = self._get(path, params=params)
        if body is None:
            return []
        if not isinstance(body, list) or not all(isinstance(row, dict) for row in body):
            raise _shape_error(f"GET /{path}", "expected a JSON array of objects")
        return body

    def _get_v3_page(self, path: str, params: Mapping[str, Any]) -> tuple[list[dict[str, Any]], Any]:
        body = self._get(path, params=params)
        if body is None:
            return [], {}
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
            raise _shape_error(f"GET /{path}", "expected {data: [...]}")
        return data, body.get("meta") or {}

    def _get_v3_all(self, path: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Every row of a v3 collection, following ``meta.pagination`` when the answer has one."""
        rows: list[dict[str, Any]] = []
        current: dict[str, Any] = dict(params or {})
        for _ in range(MAX_PAGES):
            page_rows, meta = self._get_v3_page(path, current)
            rows.extend(page_rows)
            following = _next_page(meta, current)
            if following is None or not page_rows:
                return rows
            current = following
        raise _shape_error(f"GET /{path}", f"more than {MAX_PAGES} pages")

    def _url(self, path: str, params: Mapping[str, Any] | None) -> str:
        url = f"{self._base}/{path}"
        if params:
            # Keep "," and ":" readable (include=a,b; created:min; sort=date_modified:asc); "+" becomes %2B.
            url += "?" + urlencode({k: v for k, v in params.items() if v is not None}, safe=",:")
        return url

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Mapping[str, Any] | None = None,
    ) -> Any:
        """Send one logical request (retrying 429s inline when allowed); return the decoded body or ``None``."""
        url = self._url(path, params)
        target = f"{method} /{path}"
        data = json.dumps(json_body) if json_body is not None else None
        backoff = 1.0
        retries = 0
        while True:
            self._throttle()
            answer = self._send_once(method, url, path, data)
            response = answer.response
            if response.status_code != 429:
                break
            wait, from_header = _wait_for_429(response, backoff)
            if not from_header:
                backoff *= 2
            if retries >= self.config.max_429_retries or wait > self.config.max_inline_wait:
                raise self._transport.failed(
                    error_for_response(
                        response.status_code, answer.text, method=method, target=target, retry_after=wait
                    ),
                    answer.record,
                )
            retries += 1
            logger.info("BigCommerce 429 on %s; waiting %.1f s (retry %d)", target, wait, retries)
            self._sleep(wait)
            self._waited_for = self.rate_limit
        if not 200 <= response.status_code < 300:
            raise self._transport.failed(
                error_for_response(response.status_code, answer.text, method=method, target=target),
                answer.record,
            )
        return _decode(answer, target)

    def _send_once(self, method: str, url: str, path: str, data: str | None) -> Exchange:
        self.calls += 1
        scrub = _redact_hook_headers if path.startswith("v3/hooks") else None
        try:
            answer = self._transport.exchange(
                method, url, body=data, headers=self._headers, is_write=method in _WRITE_METHODS, scrub=scrub
            )
        except IntegrationError as exc:
            logger.warning("BigCommerce %s %s failed: %s", method, url, exc.message)
            raise
        self._read_rate_limit(answer.response)
        if self.rate_limit is not None:
            answer.record.extra["rate_limit_requests_left"] = self.rate_limit.requests_left
        logger.debug(
            "BigCommerce %s %s -> %s in %d ms",
            method,
            url,
            answer.response.status_code,
            answer.record.duration_ms,
        )
        return answer

    def _read_rate_limit(self, response: requests.Response) -> None:
        headers = response.headers  # case-insensitive
        left = _header_int(headers, "X-Rate-Limit-Requests-Left")
        reset = _header_int(headers, "X-Rate-Limit-Time-Reset-Ms")
        if left is None and reset is None:
            return
        self.rate_limit = RateLimit(
            requests_left=left,
            requests_quota=_header_int(headers, "X-Rate-Limit-Requests-Quota"),
            time_reset_ms=reset,
            time_window_ms=_header_int(headers, "X-Rate-Limit-Time-Window-Ms"),
            observed_at=self._clock(),
        )
        observe_bigcommerce_quota(self.config.store_hash, left, self.rate_limit.requests_quota)

    def _throttle(self) -> None:
        """Wait for the quota window to reset when the last answer left us at or below the margin."""
        limit = self.rate_limit
        if limit is None or limit is self._waited_for or limit.requests_left is None:
            return
        if limit.requests_left > self.config.rate_limit_margin:
            return
        wait = min(limit.seconds_until_reset(self._clock()), self.config.max_inline_wait)
        self._waited_for = limit
        if wait > 0:
            logger.info("BigCommerce quota low (%s left); waiting %.1f s", limit.requests_left, wait)
            self._sleep(wait)


# -------------------------------------------------------------------------------------------------- error mapping


def error_for_response(
    status: int, body: str, *, method: str, target: str, retry_after: float | None = None
) -> IntegrationError:
    """Map a non-2xx BigCommerce answer onto :mod:`integrations.errors`.

    Closed by default: only statuses known to be transient are retryable.

    * 401, 403 → :class:`AuthenticationError` (token revoked, or the API account lacks a scope);
    * 404 → :class:`NotFoundError` (e.g. a deleted order);
    * 429 → :class:`RateLimitedError` with ``retry_after`` (seconds);
    * 408 and 5xx → :class:`RetryableError`; ``outcome_unknown`` on POST/PUT, since the write may have landed;
    * any other status (other 4xx, unexpected 1xx/3xx) → :class:`PermanentError`.

    The message carries BigCommerce's own ``title``/``errors``/``message`` text, never the request headers.
    ``body`` must already be scrubbed of secrets.
    """
    detail = _bc_message(body)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    message = f"BigCommerce {target}: HTTP {status}" + (f" {reason}" if reason else "")
    if detail:
        message += f": {detail}"
    common: dict[str, Any] = {"status_code": status, "response_body": body[:BODY_LIMIT]}
    if status in (401, 403):
        return AuthenticationError(message, **common)
    if status == 404:
        return NotFoundError(message, **common)
    if status == 429:
        if retry_after is not None:
            message += f" (retry after {retry_after:.1f} s)"
        return RateLimitedError(message, retry_after=retry_after, **common)
    if status == 408 or 500 <= status < 600:
        return RetryableError(message, outcome_unknown=method in _WRITE_METHODS, **common)
    return PermanentError(message, **common)


def _bc_message(body: str) -> str:
    """BigCommerce's own error text: v3 ``{title, errors}``, v3 ``{data: [{title}]}`` or v2 ``[{message}]``."""
    try:
        doc = json.loads(body) if body else None
    except ValueError:
        return ""
    parts: list[str] = []

    def collect(item: Any) -> None:
        if not isinstance(item, dict):
            return
        text = item.get("title") or item.get("message") or item.get("error")
        if isinstance(text, str) and text:
            parts.append(text)
        errors = item.get("errors")
        if isinstance(errors, dict) and errors:
            parts.append("; ".join(f"{key}: {value}" for key, value in errors.items()))
        elif isinstance(errors, list) and errors:
            parts.append("; ".join(str(value) for value in errors))
        details = item.get("details")
        if isinstance(details, dict) and details:
            parts.append("; ".join(f"{key}: {value}" for key, value in details.items()))

    if isinstance(doc, list):
        for item in doc:
            collect(item)
    elif isinstance(doc, dict):
        collect(doc)
        if isinstance(doc.get("data"), list):
            for item in doc["data"]:
                collect(item)
    return " — ".join(parts)[:500]


def _wait_for_429(response: requests.Response, backoff: float) -> tuple[float, bool]:
    """Seconds to wait before retrying a 429, and whether the server said so (else: our own backoff)."""
    reset_ms = _header_float(response.headers, "X-Rate-Limit-Time-Reset-Ms")
    if reset_ms is not None:
        return max(0.0, reset_ms / 1000), True
    for name in ("X-Retry-After", "Retry-After"):
        seconds = _header_float(response.headers, name)
        if seconds is not None:
            return max(0.0, seconds), True
    # "A 429 without the API HTTP headers indicates that the platform experiences high load."
    return backoff, False


def _shape_error(target: str, what: str) -> BadResponseError:
    return BadResponseError(f"BigCommerce {target}: unexpected response shape ({what})")


def _text(response: requests.Response) -> str:
    # JSON is UTF-8 (RFC 8259); don't let requests guess another charset.
    return response.content.decode("utf-8", errors="replace")


def _decode(answer: Exchange, target: str) -> Any:
    """Decode a 2xx body with ``Decimal`` floats. 204 or an empty body → ``None``."""
    response = answer.response
    if response.status_code == 204 or not response.content.strip():
        return None
    try:
        return json.loads(response.content.decode("utf-8-sig"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadResponseError(
            f"BigCommerce {target}: expected JSON, got "
            f"{response.headers.get('Content-Type', 'no content type')}: {answer.text[:200]!r}",
            status_code=response.status_code,
            response_body=answer.text[:BODY_LIMIT],
        ) from exc


def _redact_hook_headers(text: str) -> str:
    try:
        doc = json.loads(text)
    except ValueError:
        return text

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                key: (
                    {name: _REDACTED for name in value}
                    if key == "headers" and isinstance(value, dict)
                    else walk(value)
                )
                for key, value in node.items()
            }
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return json.dumps(walk(doc))


def _header_float(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = _header_float(headers, name)
    return int(value) if value is not None else None


def _has_pagination(meta: Any) -> bool:
    return isinstance(meta, dict) and isinstance(meta.get("pagination"), dict)


def _next_page(meta: Any, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The params of the next page according to ``meta.pagination``, or ``None`` when this was the last one."""
    if not _has_pagination(meta):
        return None
    pagination = meta["pagination"]
    current = opt_int(pagination.get("current_page"))
    total_pages = opt_int(pagination.get("total_pages"))
    if current is not None and total_pages is not None:
        return {**params, "page": current + 1} if current < total_pages else None
    links = pagination.get("links")
    following = links.get("next") if isinstance(links, dict) else None
    if isinstance(following, str) and following:
        query = dict(parse_qsl(urlsplit(following).query or following.lstrip("?")))
        if "page" in query:
            return {**params, "page": query["page"]}
    return None


# ------------------------------------------------------------------------------------------------------ paging


def iter_orders_modified(
    list_orders: Callable[..., list[OrderSummary]],
    since: datetime,
    until: datetime | None = None,
    *,
    limit: int = MAX_PAGE_SIZE,
) -> Iterator[OrderSummary]:
    """Scan ``GET /v2/orders`` by keyset on (date_modified, id); ``list_orders`` is :meth:`BigCommerceClient.list_orders`
    (or a test double with the same parameters).

    Page numbers skip orders: when an order on an already-read page is modified, it moves to the end of the
    ``date_modified`` sort and every later order shifts one place back, so one is never read. Here each request starts
    at the last ``date_modified`` seen (``min_date_modified``, inclusive; the orders already yielded at that second
    are skipped), so a move cannot hide anything. BigCommerce sorts on one field only and dates have one-second
    resolution: when a whole page shares one second, that second is read by id instead (``min_date_modified`` =
    ``max_date_modified`` = that second, ``sort=id:asc``, ``min_id`` = the last id read), then the scan goes on from the
    next second. An order modified during the scan is yielded again at its new date when that is within the range;
    callers that want each id once de-duplicate. ``until`` is sent as ``max_date_modified``.
    """
    cursor = utc(since).replace(microsecond=0)
    seen_at_cursor: set[int] = set()
    requests_left = MAX_PAGES * 10
    while until is None or cursor <= utc(until):
        requests_left -= 1
        if requests_left < 0:
            raise _shape_error("GET /v2/orders", "pagination did not end")
        rows = list_orders(
            min_date_modified=cursor, max_date_modified=until, limit=limit, sort="date_modified:asc"
        )
        for row in rows:
            if row["date_modified"] > cursor or (
                row["date_modified"] == cursor and row["id"] not in seen_at_cursor
            ):
                yield row
        if len(rows) < limit:
            return
        last = rows[-1]["date_modified"]
        if last > cursor:
            cursor = last
            seen_at_cursor = {row["id"] for row in rows if row["date_modified"] == last}
            continue
        # A full page within one second: read that second by id, then continue after it.
        seen_at_cursor.update(row["id"] for row in rows)
        after = 0
        while True:
            requests_left -= 1
            if requests_left < 0:
                raise _shape_error("GET /v2/orders", "pagination did not end")
            rows = list_orders(
                min_date_modified=cursor, max_date_modified=cursor, min_id=after, limit=limit, sort="id:asc"
            )
            for row in rows:
                if row["id"] not in seen_at_cursor and row["date_modified"] == cursor:
                    seen_at_cursor.add(row["id"])
                    yield row
            if len(rows) < limit:
                break
            if rows[-1]["id"] <= after:
                raise _shape_error("GET /v2/orders", "min_id did not move the page forward")
            after = rows[-1]["id"]
        cursor += timedelta(seconds=1)
        seen_at_cursor = set()
