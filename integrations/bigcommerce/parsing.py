"""Parsing of BigCommerce JSON answers into the typed objects of :mod:`integrations.bigcommerce.types`.

Pure functions, no HTTP: the client (:mod:`integrations.bigcommerce.client`) decodes a body (floats as ``Decimal``)
and hands it here. A missing key or a wrong type while parsing becomes a :class:`BadResponseError` through
:func:`reading`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import BadResponseError
from .types import (
    ZERO,
    Channel,
    Hook,
    Order,
    OrderFee,
    OrderProduct,
    OrderStatus,
    OrderSummary,
    Refund,
    RefundItem,
    RefundPayment,
    Transaction,
)


@contextlib.contextmanager
def reading(target: str) -> Iterator[None]:
    """Turn a missing key or a wrong type while parsing a 2xx body into :class:`BadResponseError`."""
    try:
        yield
    except (KeyError, TypeError, ValueError, InvalidOperation, AttributeError) as exc:
        raise BadResponseError(
            f"BigCommerce {target}: unexpected response shape ({type(exc).__name__}: {exc})"[:500]
        ) from exc


def consignment_products(order: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The order products inside ``consignments`` (every shipping, pickup, download and gift-certificate
    consignment), de-duplicated by order product ``id`` and sorted by it, as ``/products`` lists them.

    ``None`` when they are not usable: no consignments, no line items, or line items that are only
    ``{url, resource}`` links. Then the caller must page ``/v2/orders/{id}/products``.
    """
    consignments = order.get("consignments")
    groups = consignments if isinstance(consignments, list) else [consignments]
    items: list[Any] = []
    for group in groups:
        if not isinstance(group, dict):
            continue
        for kind in ("shipping", "pickups", "downloads"):
            items.extend(_line_items(group.get(kind)))
        email = group.get("email")
        if isinstance(email, dict):
            items.extend(_line_items(email.get("gift_certificates")))
    products: dict[int, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict) or "id" not in item or not ({"product_id", "quantity"} & item.keys()):
            return None  # a link (or junk): the list is incomplete
        try:
            products.setdefault(int(item["id"]), item)
        except (TypeError, ValueError):
            return None
    if not products:
        return None
    return [products[key] for key in sorted(products)]


def _line_items(consignments: Any) -> list[Any]:
    if not isinstance(consignments, list):
        return []
    items: list[Any] = []
    for consignment in consignments:
        if not isinstance(consignment, dict):
            continue
        line_items = consignment.get("line_items")
        if isinstance(line_items, list):
            items.extend(line_items)
        elif isinstance(line_items, dict):  # the spec's download examples show a single object
            items.append(line_items)
    return items


def parse_order(raw: Mapping[str, Any], products: list[dict[str, Any]] | None = None) -> Order:
    """``GET /v2/orders/{id}`` (+ products, + ``fees`` when included) → :class:`Order`.

    Raises :class:`BadResponseError` when a required field (id, status, dates, currency) is missing or malformed.
    Missing money fields count as 0.
    """
    order_id = raw.get("id") if isinstance(raw, Mapping) else None
    with reading(f"GET /v2/orders/{order_id}"):
        currency = _str(raw.get("default_currency_code") or raw.get("currency_code"))
        if not currency:
            raise ValueError("no default_currency_code or currency_code")
        if products is None:
            products = consignment_products(raw) or []
        return Order(
            id=_req_int(raw, "id"),
            channel_id=_int(raw.get("channel_id"), 1),
            status_id=_req_int(raw, "status_id"),
            status=_str(raw.get("status") or raw.get("custom_status")),
            payment_status=_str(raw.get("payment_status")),
            date_created=_rfc2822(raw.get("date_created")),
            date_modified=_rfc2822(raw.get("date_modified")),
            currency_code=currency,
            is_tax_inclusive_pricing=bool(raw.get("is_tax_inclusive_pricing")),
            subtotal_ex_tax=_money(raw.get("subtotal_ex_tax")),
            subtotal_inc_tax=_money(raw.get("subtotal_inc_tax")),
            subtotal_tax=_money(raw.get("subtotal_tax")),
            shipping_cost_ex_tax=_money(raw.get("shipping_cost_ex_tax")),
            shipping_cost_inc_tax=_money(raw.get("shipping_cost_inc_tax")),
            shipping_cost_tax=_money(raw.get("shipping_cost_tax")),
            handling_cost_ex_tax=_money(raw.get("handling_cost_ex_tax")),
            handling_cost_inc_tax=_money(raw.get("handling_cost_inc_tax")),
            handling_cost_tax=_money(raw.get("handling_cost_tax")),
            wrapping_cost_ex_tax=_money(raw.get("wrapping_cost_ex_tax")),
            wrapping_cost_inc_tax=_money(raw.get("wrapping_cost_inc_tax")),
            wrapping_cost_tax=_money(raw.get("wrapping_cost_tax")),
            discount_amount=_money(raw.get("discount_amount")),
            coupon_discount=_money(raw.get("coupon_discount")),
            total_ex_tax=_money(raw.get("total_ex_tax")),
            total_inc_tax=_money(raw.get("total_inc_tax")),
            total_tax=_money(raw.get("total_tax")),
            store_credit_amount=_money(raw.get("store_credit_amount")),
            gift_certificate_amount=_money(raw.get("gift_certificate_amount")),
            is_deleted=bool(raw.get("is_deleted")),
            store_default_currency_code=_str(raw.get("store_default_currency_code")),
            store_default_rate=_rate(raw.get("store_default_to_transactional_exchange_rate")),
            products=tuple(parse_order_product(row) for row in products),
            fees=tuple(parse_fee(row) for row in _fee_rows(raw.get("fees"))),
            date_shipped=_optional_date(raw.get("date_shipped")),
            raw=dict(raw),
        )


def _fee_rows(fees: Any) -> list[dict[str, Any]]:
    if isinstance(fees, dict):  # the /fees endpoint wraps them: {"fees": [...]}
        fees = fees.get("fees")
    if not isinstance(fees, list):
        return []  # absent, or a {url, resource} link
    return [fee for fee in fees if isinstance(fee, dict)]


def parse_order_product(raw: Mapping[str, Any]) -> OrderProduct:
    """One ``orderProducts`` row. ``cost_price_ex_tax`` is per unit, falling back to ``base_cost_price``."""
    cost = raw.get("cost_price_ex_tax")
    if cost is None or cost == "":
        cost = raw.get("base_cost_price")
    return OrderProduct(
        id=_req_int(raw, "id"),
        product_id=_int(raw.get("product_id"), 0),
        sku=_str(raw.get("sku")),
        name=_str(raw.get("name") or raw.get("name_merchant") or raw.get("name_customer")),
        quantity=_int(raw.get("quantity"), 0),
        total_ex_tax=_money(raw.get("total_ex_tax")),
        total_inc_tax=_money(raw.get("total_inc_tax")),
        total_tax=_money(raw.get("total_tax")),
        cost_price_ex_tax=_money(cost),
        quantity_refunded=_int(raw.get("quantity_refunded"), 0),
        wrapping_cost_ex_tax=_money(raw.get("wrapping_cost_ex_tax")),
        wrapping_cost_tax=_money(raw.get("wrapping_cost_tax")),
        is_gift_certificate=raw.get("type") == "giftcertificate" or bool(raw.get("gift_certificate_id")),
        is_physical=raw.get("type") in (None, "", "physical"),
        quantity_shipped=_int(raw.get("quantity_shipped"), 0),
    )


def _rate(value: Any) -> Decimal:
    """An exchange rate: absent, blank or not positive means 1 (a single-currency store)."""
    try:
        rate = Decimal(str(value)) if value not in (None, "") else Decimal(1)
    except InvalidOperation:  # an odd rate must not make the whole order unreadable
        return Decimal(1)
    if not rate.is_finite() or rate <= 0:
        return Decimal(1)
    return rate


def parse_transaction(raw: Mapping[str, Any]) -> Transaction:
    """One ``GET /v3/orders/{id}/transactions`` row."""
    return Transaction(
        id=_int(raw.get("id"), 0),
        event=_str(raw.get("event")),
        method=_str(raw.get("method")),
        gateway=_str(raw.get("gateway")),
        amount=_money(raw.get("amount")),
        currency=_str(raw.get("currency")),
        status=_str(raw.get("status")),
        test=bool(raw.get("test")),
        payment_method_id=_str(raw.get("payment_method_id")),
    )


def parse_fee(raw: Mapping[str, Any]) -> OrderFee:
    """One order fee. The spec's own example spells ``cost_exc_tax`` once; both spellings are read, and a
    missing ex-tax cost is derived as inc − tax."""
    ex_tax = raw.get("cost_ex_tax", raw.get("cost_exc_tax"))
    inc_tax = _money(raw.get("cost_inc_tax"))
    tax = _money(raw.get("cost_tax"))
    return OrderFee(
        id=_req_int(raw, "id"),
        type=_str(raw.get("type")),
        name=_str(raw.get("display_name_merchant") or raw.get("display_name_customer") or raw.get("name")),
        cost_ex_tax=_money(ex_tax) if ex_tax not in (None, "") else inc_tax - tax,
        cost_inc_tax=inc_tax,
        cost_tax=tax,
    )


def parse_refund(raw: Mapping[str, Any]) -> Refund:
    """One v3 refund object."""
    return Refund(
        id=_req_int(raw, "id"),
        order_id=_req_int(raw, "order_id"),
        created=_iso_datetime(raw.get("created")),
        reason=_str(raw.get("reason")),
        total_amount=_money(raw.get("total_amount")),
        total_tax=_money(raw.get("total_tax")),
        items=tuple(
            RefundItem(
                item_type=_str(item.get("item_type")),
                item_id=_req_int(item, "item_id"),
                quantity=opt_int(item.get("quantity")),
                requested_amount=None
                if item.get("requested_amount") in (None, "")
                else _money(item.get("requested_amount")),
            )
            for item in raw.get("items") or ()
        ),
        payments=tuple(
            RefundPayment(
                id=_req_int(payment, "id"),
                provider_id=_str(payment.get("provider_id")),
                amount=_money(payment.get("amount")),
                offline=bool(payment.get("offline")),
                is_declined=bool(payment.get("is_declined")),
            )
            for payment in raw.get("payments") or ()
        ),
        raw=dict(raw),
    )


def parse_channel(raw: Mapping[str, Any]) -> Channel:
    return Channel(
        id=_req_int(raw, "id"),
        name=_str(raw.get("name")),
        type=_str(raw.get("type")),
        platform=_str(raw.get("platform")),
        status=_str(raw.get("status")),
    )


def parse_hook(raw: Mapping[str, Any]) -> Hook:
    headers = raw.get("headers")
    return Hook(
        id=_req_int(raw, "id"),
        scope=_str(raw.get("scope")),
        destination=_str(raw.get("destination")),
        is_active=bool(raw.get("is_active")),
        headers={str(k): str(v) for k, v in headers.items()} if isinstance(headers, dict) else {},
    )


def parse_order_summary(row: Mapping[str, Any]) -> OrderSummary:
    """One row of ``GET /v2/orders``, reduced to what decides what to fetch."""
    return OrderSummary(
        id=_req_int(row, "id"),
        date_modified=_rfc2822(row.get("date_modified")),
        status_id=_req_int(row, "status_id"),
        channel_id=_int(row.get("channel_id"), 1),
    )


def parse_order_status(row: Mapping[str, Any]) -> OrderStatus:
    """One row of ``GET /v2/order_statuses``. ``name`` falls back to the merchant's label, then the system label."""
    return OrderStatus(
        id=_req_int(row, "id"),
        name=_str(row.get("name") or row.get("custom_label") or row.get("system_label")),
    )


# ----------------------------------------------------------------------------------------------- value parsing


def _money(value: Any) -> Decimal:
    """A BigCommerce amount ("62.6793", 50, Decimal from ``parse_float``) → ``Decimal``; missing → 0."""
    if value is None or value == "":
        return ZERO
    if isinstance(value, bool):
        raise TypeError(f"amount is a boolean: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        # Not produced by our decoder (parse_float=Decimal); keep the shortest repr, not the binary value.
        result = Decimal(repr(value))
    elif isinstance(value, str):
        result = Decimal(value.strip())
    else:
        raise TypeError(f"amount has type {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"amount is not finite: {value!r}")
    return result


def _int(value: Any, default: int) -> int:
    """An integer field ("12", 12, Decimal("12")) → ``int``; ``None``/"" → ``default``."""
    number = opt_int(value)
    return default if number is None else number


def opt_int(value: Any) -> int | None:
    """An integer field → ``int``; ``None``/"" → ``None``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError(f"integer is a boolean: {value!r}")
    if isinstance(value, int):
        return value
    number = Decimal(str(value).strip())
    if number != number.to_integral_value():
        raise ValueError(f"not an integer: {value!r}")
    return int(number)


def _req_int(row: Mapping[str, Any], key: str) -> int:
    value = opt_int(row[key])
    if value is None:
        raise ValueError(f"{key} is empty")
    return value


def _str(value: Any) -> str:
    return "" if value is None else str(value)


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _rfc2822(value: Any) -> datetime:
    """A v2 date ("Tue, 05 Mar 2019 21:40:11 +0000") → aware UTC datetime. ISO 8601 is accepted too."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"missing date: {value!r}")
    try:
        return utc(parsedate_to_datetime(value))
    except (TypeError, ValueError):
        return _iso_datetime(value)


def _optional_date(value: Any) -> datetime | None:
    """A date BigCommerce leaves ``""`` until it applies (``date_shipped``); an unreadable one counts as absent."""
    try:
        return _rfc2822(value) if value else None
    except (TypeError, ValueError):
        return None


def _iso_datetime(value: Any) -> datetime:
    """A v3 date ("2022-06-16T16:44:15+00:00", "…Z") → aware UTC datetime; naive values are taken as UTC."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"missing date: {value!r}")
    return utc(datetime.fromisoformat(value.strip()))


def iso(value: datetime) -> str:
    """A query-string date: ISO 8601 / RFC 3339 in UTC (both v2 and v3 accept it)."""
    return utc(value).isoformat(timespec="seconds")
