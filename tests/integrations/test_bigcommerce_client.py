"""Tests for :mod:`integrations.bigcommerce.client`.

HTTP is faked with ``responses`` (every registered call must fire, any other call fails). The fixtures under
``tests/fixtures/bigcommerce/`` are BigCommerce's own OpenAPI examples (orders.v2.oas2.yml, orders.v3.yml,
channels.v3.yml, webhooks.v3.yml); ``order_218_with_consignments.json`` is the order example with the spec's
shipping-consignment example whose ``line_items`` are the spec's order-products examples, and
``refunds_order_180.json`` is hand-written to the Refund schema with non-integer amounts.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from integrations.bigcommerce.client import BigCommerceClient, RateLimit, StoreConfig
from integrations.errors import (
    AuthenticationError,
    BadResponseError,
    IntegrationError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    RetryableError,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "bigcommerce"
TOKEN = "tok-SECRET-9f8e7d6c5b4a"
STORE = "abc123"
BASE = f"https://api.bigcommerce.com/stores/{STORE}"
ORDER_URL = f"{BASE}/v2/orders/218"
ORDER_QUERY = {"include": "consignments.line_items,fees", "consignment_structure": "object"}


def fixture_text(name: str) -> str:
    return (FIXTURES / name).read_text()


def fixture(name: str) -> Any:
    return json.loads(fixture_text(name))


def rate_headers(left: int, reset_ms: int, *, quota: int = 150, window_ms: int = 30000) -> dict[str, str]:
    return {
        "X-Rate-Limit-Requests-Left": str(left),
        "X-Rate-Limit-Time-Reset-Ms": str(reset_ms),
        "X-Rate-Limit-Requests-Quota": str(quota),
        "X-Rate-Limit-Time-Window-Ms": str(window_ms),
    }


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps: list[float]):
    def make(**config: Any) -> BigCommerceClient:
        return BigCommerceClient(
            StoreConfig(store_hash=STORE, access_token=TOKEN, **config),
            sleep=sleeps.append,
            clock=lambda: 1000.0,  # frozen: waits are exactly what the headers say
        )

    return make


@pytest.fixture
def client(make_client) -> BigCommerceClient:
    return make_client()


@pytest.fixture
def mocked():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        yield rsps


def product_row(order_product_id: int, **overrides: Any) -> dict[str, Any]:
    row = copy.deepcopy(fixture("order_products_149.json")[0])
    row.update(id=order_product_id, order_id=218, **overrides)
    return row


# ------------------------------------------------------------------------------------------------------ orders


def test_get_order_parses_spec_example_in_one_call(client, mocked):
    # Given the spec's order 218, returned with its consignment line items and fees
    mocked.get(
        ORDER_URL,
        body=fixture_text("order_218_with_consignments.json"),
        content_type="application/json",
        match=[
            matchers.query_param_matcher(ORDER_QUERY),
            matchers.header_matcher(
                {"X-Auth-Token": TOKEN, "Accept": "application/json", "Content-Type": "application/json"}
            ),
        ],
    )

    # When
    order = client.get_order(218)

    # Then: one HTTP call, money exactly as sent, dates aware UTC
    assert client.calls == 1
    assert len(mocked.calls) == 1
    assert order.id == 218
    assert order.status_id == 7
    assert order.status == "Awaiting Payment"
    assert order.payment_status == "authorized"
    assert order.channel_id == 1
    assert order.currency_code == "USD"
    assert order.is_tax_inclusive_pricing is False
    assert str(order.subtotal_ex_tax) == "62.6793"
    assert order.subtotal_inc_tax == Decimal("67.8400")
    assert order.shipping_cost_tax == Decimal("0.9100")
    assert order.total_inc_tax == Decimal("69.8400")
    assert order.total_tax == Decimal("5.3100")
    assert order.discount_amount == Decimal("5.0000")
    assert order.coupon_discount == Decimal("5.0000")
    assert all(isinstance(value, Decimal) for value in (order.total_ex_tax, order.store_credit_amount))
    assert order.date_created == datetime(2019, 3, 5, 21, 40, 11, tzinfo=UTC)
    assert order.date_modified == datetime(2019, 3, 11, 15, 17, 25, tzinfo=UTC)
    assert order.date_created.utcoffset().total_seconds() == 0
    # products come from the consignment
    assert [p.id for p in order.products] == [65, 66]
    towel = order.products[0]
    assert (towel.product_id, towel.sku, towel.quantity) == (77, "S-ORAN", 1)
    assert str(towel.total_inc_tax) == "65.2300"
    assert towel.total_tax == Decimal("9.2400")
    assert towel.cost_price_ex_tax == Decimal("50.0000")
    # fees: the spec's example spells "cost_exc_tax" on the first fee
    assert [(f.id, f.name, f.cost_ex_tax, f.cost_inc_tax, f.cost_tax) for f in order.fees] == [
        (1, "A Fee", Decimal("12.3000"), Decimal("12.3000"), Decimal("0.0000")),
        (2, "B Fee", Decimal("4.0000"), Decimal("12.0000"), Decimal("8.0000")),
    ]
    assert order.raw["cart_id"] == "7e48f7ef-2e88-4817-aea4-b0ed01490114"
    assert order.may_have_refunds is False


def test_get_order_collects_every_consignment_kind_once(client, mocked):
    # Given the same product 65 in a shipping and a pickup consignment, a download and a gift certificate
    body = fixture("order_218_with_consignments.json")
    consignments = body["consignments"]
    consignments["pickups"] = [{"id": 99, "line_items": [product_row(65)]}]
    consignments["downloads"] = [{"recipient_email": "a@example.com", "line_items": [product_row(70)]}]
    consignments["email"]["gift_certificates"] = [{"line_items": [product_row(71, product_id=0)]}]
    mocked.get(ORDER_URL, json=body, match=[matchers.query_param_matcher(ORDER_QUERY)])

    # When
    order = client.get_order(218)

    # Then each order product appears once, sorted by id, still with one call
    assert [p.id for p in order.products] == [65, 66, 70, 71]
    assert client.calls == 1


def test_get_order_uses_transactional_currency(client, mocked):
    # Given a multi-currency order shown in EUR but paid in GBP
    body = fixture("order_218_with_consignments.json")
    body.update(currency_code="EUR", default_currency_code="GBP")
    mocked.get(ORDER_URL, json=body)

    # When / Then
    assert client.get_order(218).currency_code == "GBP"


def test_get_order_falls_back_to_display_currency_when_default_missing(client, mocked):
    body = fixture("order_218_with_consignments.json")
    del body["default_currency_code"]
    body["currency_code"] = "CAD"
    mocked.get(ORDER_URL, json=body)

    assert client.get_order(218).currency_code == "CAD"


def test_get_order_pages_products_when_consignments_are_absent(client, mocked):
    # Given the plain spec example (products only as a link), and 250 + 1 products
    mocked.get(
        ORDER_URL, body=fixture_text("order_218.json"), match=[matchers.query_param_matcher(ORDER_QUERY)]
    )
    products_url = f"{ORDER_URL}/products"
    mocked.get(
        products_url,
        json=[product_row(1000 + n) for n in range(250)],
        match=[matchers.query_param_matcher({"page": "1", "limit": "250"})],
    )
    mocked.get(
        products_url,
        json=[product_row(2000)],
        match=[matchers.query_param_matcher({"page": "2", "limit": "250"})],
    )

    # When
    order = client.get_order(218)

    # Then
    assert len(order.products) == 251
    assert order.products[-1].id == 2000
    assert client.calls == 3


def test_get_order_pages_products_until_204(client, mocked):
    # Given consignments whose line items are only {url, resource} links, and exactly one full page
    body = fixture("order_218.json")
    body["consignments"] = {
        "shipping": [
            {"id": 1, "line_items": [{"url": "https://x/products/12", "resource": "/orders/218/products/12"}]}
        ]
    }
    mocked.get(ORDER_URL, json=body)
    products_url = f"{ORDER_URL}/products"
    mocked.get(
        products_url,
        json=[product_row(n) for n in range(1, 251)],
        match=[matchers.query_param_matcher({"page": "1", "limit": "250"})],
    )
    mocked.get(products_url, status=204, match=[matchers.query_param_matcher({"page": "2", "limit": "250"})])

    # When
    order = client.get_order(218)

    # Then
    assert len(order.products) == 250
    assert client.calls == 3


def test_get_order_is_lenient_about_missing_money_and_cost(client, mocked):
    # Given an order without handling fields and a product without cost_price_ex_tax
    body = fixture("order_218_with_consignments.json")
    for key in ("handling_cost_ex_tax", "handling_cost_inc_tax", "handling_cost_tax", "store_credit_amount"):
        del body[key]
    line = body["consignments"]["shipping"][0]["line_items"][0]
    del line["cost_price_ex_tax"]
    line["base_cost_price"] = "41.2500"
    body["date_shipped"] = ""
    del body["fees"]
    mocked.get(ORDER_URL, json=body)

    # When
    order = client.get_order(218)

    # Then
    assert order.handling_cost_tax == Decimal(0)
    assert order.store_credit_amount == Decimal(0)
    assert order.products[0].cost_price_ex_tax == Decimal("41.2500")
    assert order.fees == ()


def test_get_order_flags_refund_signals(client, mocked):
    body = fixture("order_218_with_consignments.json")
    body["consignments"]["shipping"][0]["line_items"][1]["quantity_refunded"] = 1
    mocked.get(ORDER_URL, json=body)

    assert client.get_order(218).may_have_refunds is True


def test_get_order_missing_date_is_bad_response(client, mocked):
    body = fixture("order_218_with_consignments.json")
    del body["date_created"]
    mocked.get(ORDER_URL, json=body)

    with pytest.raises(BadResponseError, match="unexpected response shape"):
        client.get_order(218)


def test_get_order_list_instead_of_object_is_bad_response(client, mocked):
    mocked.get(ORDER_URL, json=[{"id": 218}])

    with pytest.raises(BadResponseError):
        client.get_order(218)


def test_get_order_bad_json_is_bad_response(client, mocked):
    # Given a proxy error page with status 200
    mocked.get(ORDER_URL, body="<html>Bad gateway</html>", content_type="text/html")

    # When / Then
    with pytest.raises(BadResponseError, match="expected JSON") as caught:
        client.get_order(218)
    assert caught.value.retryable is True
    assert caught.value.status_code == 200


def test_list_orders_returns_minimal_rows(client, mocked):
    # Given
    rows = [
        {
            "id": 218,
            "date_modified": "Mon, 11 Mar 2019 15:17:25 +0000",
            "status_id": 7,
            "channel_id": 1,
            "x": 1,
        },
        {
            "id": 247,
            "date_modified": "Thu, 20 Jun 2019 16:07:08 +0000",
            "status_id": 11,
            "channel_id": 664179,
        },
    ]
    mocked.get(
        f"{BASE}/v2/orders",
        json=rows,
        match=[
            matchers.query_param_matcher(
                {
                    "min_date_modified": "2019-03-01T00:00:00+00:00",
                    "page": "1",
                    "limit": "250",
                    "sort": "date_modified:asc",
                }
            )
        ],
    )

    # When
    result = client.list_orders(min_date_modified=datetime(2019, 3, 1, tzinfo=UTC))

    # Then
    assert result == [
        {
            "id": 218,
            "date_modified": datetime(2019, 3, 11, 15, 17, 25, tzinfo=UTC),
            "status_id": 7,
            "channel_id": 1,
        },
        {
            "id": 247,
            "date_modified": datetime(2019, 6, 20, 16, 7, 8, tzinfo=UTC),
            "status_id": 11,
            "channel_id": 664179,
        },
    ]


class OrdersServer:
    """``GET /v2/orders`` as BigCommerce answers it (inclusive date and id bounds to the second, one sort field,
    page/limit, 204 when empty), over a mutable list of orders; ``after_request`` can change the store mid-scan."""

    def __init__(self, mocked, orders: dict[int, datetime]) -> None:
        self.orders = orders
        self.queries: list[dict[str, str]] = []
        self.after_request = lambda n: None
        mocked.add_callback(responses.GET, f"{BASE}/v2/orders", callback=self.answer)

    def answer(self, request):
        from urllib.parse import parse_qsl, urlsplit

        q = dict(parse_qsl(urlsplit(request.url).query))
        self.queries.append(q)
        low = datetime.fromisoformat(q["min_date_modified"]) if "min_date_modified" in q else None
        high = datetime.fromisoformat(q["max_date_modified"]) if "max_date_modified" in q else None
        rows = [
            (when, order_id)
            for order_id, when in self.orders.items()
            if (low is None or when >= low)
            and (high is None or when <= high)
            and order_id >= int(q.get("min_id", 0))
        ]
        field = q.get("sort", "id:asc").partition(":")[0]
        rows.sort(key=(lambda r: (r[1],)) if field == "id" else (lambda r: (r[0], r[1])))
        page, limit = int(q.get("page", 1)), int(q.get("limit", 50))
        chunk = rows[(page - 1) * limit : page * limit]
        self.after_request(len(self.queries))
        if not chunk:
            return 204, {}, ""
        body = [
            {
                "id": i,
                "date_modified": w.strftime("%a, %d %b %Y %H:%M:%S +0000"),
                "status_id": 11,
                "channel_id": 1,
            }
            for w, i in chunk
        ]
        return 200, {"Content-Type": "application/json"}, json.dumps(body)


T0 = datetime(2019, 3, 11, 15, 0, tzinfo=UTC)


def minutes(n: int) -> datetime:
    from datetime import timedelta

    return T0 + timedelta(minutes=n)


def test_iter_orders_modified_sees_every_order_when_one_is_modified_mid_scan(client, mocked):
    # Given seven orders, one per minute, read three at a time; order 1 is modified after the first page
    server = OrdersServer(mocked, {n: minutes(n) for n in range(1, 8)})

    def modify(request_number: int) -> None:
        if request_number == 1:
            server.orders[1] = minutes(30)  # moves to the end of the date_modified sort

    server.after_request = modify

    # When
    rows = list(client.iter_orders_modified(T0, limit=3))

    # Then: nothing skipped (page numbers would have lost order 4), and order 1 again at its new date
    assert [r["id"] for r in rows] == [1, 2, 3, 4, 5, 6, 7, 1]
    assert rows[-1]["date_modified"] == minutes(30)
    assert {q["page"] for q in server.queries} == {"1"}
    assert [q["min_date_modified"] for q in server.queries] == [
        "2019-03-11T15:00:00+00:00",
        "2019-03-11T15:03:00+00:00",
        "2019-03-11T15:05:00+00:00",
        "2019-03-11T15:07:00+00:00",
    ]


def test_iter_orders_modified_reads_a_crowded_second_by_id(client, mocked):
    # Given five orders in the same second (more than a page), then two later ones
    same = minutes(1)
    server = OrdersServer(mocked, {9: same, 4: same, 7: same, 5: same, 8: same, 2: minutes(2), 3: minutes(3)})

    # When
    ids = [r["id"] for r in client.iter_orders_modified(T0, limit=2)]

    # Then each order once, the crowded second read by id between equal date bounds
    assert sorted(ids) == [2, 3, 4, 5, 7, 8, 9] and len(ids) == 7
    by_id = [q for q in server.queries if q["sort"] == "id:asc"]
    assert by_id and all(
        q["min_date_modified"] == q["max_date_modified"] == "2019-03-11T15:01:00+00:00" for q in by_id
    )
    assert [q["min_id"] for q in by_id] == [
        "0",
        "5",
        "7",
        "8",
        "9",
    ]  # min_id is inclusive: the last row repeats


def test_iter_orders_modified_sends_until_as_max_date_modified(client, mocked):
    server = OrdersServer(mocked, {n: minutes(n) for n in range(1, 6)})

    ids = [r["id"] for r in client.iter_orders_modified(minutes(2), minutes(3), limit=250)]

    assert ids == [2, 3]
    assert server.queries == [
        {
            "page": "1",
            "limit": "250",
            "sort": "date_modified:asc",
            "min_date_modified": "2019-03-11T15:02:00+00:00",
            "max_date_modified": "2019-03-11T15:03:00+00:00",
        }
    ]


def test_iter_orders_modified_stops_when_min_id_does_not_move(client, mocked):
    # A server that ignores min_id would repeat the same page for ever
    same = "Mon, 11 Mar 2019 15:00:00 +0000"
    mocked.get(f"{BASE}/v2/orders", json=[{"id": n, "date_modified": same, "status_id": 1} for n in (1, 2)])

    with pytest.raises(BadResponseError, match="min_id"):
        list(client.iter_orders_modified(T0, limit=2))


@pytest.mark.parametrize(
    ("path", "call"),
    [
        ("v2/orders", lambda c: c.list_orders()),
        ("v2/order_statuses", lambda c: c.list_order_statuses()),
    ],
)
def test_204_on_v2_lists_is_empty(client, mocked, path, call):
    mocked.get(f"{BASE}/{path}", status=204)

    assert call(client) == []


def test_empty_body_on_v2_list_is_empty(client, mocked):
    mocked.get(f"{BASE}/v2/orders", body="", status=200)

    assert client.list_orders() == []


def test_list_order_statuses(client, mocked):
    mocked.get(f"{BASE}/v2/order_statuses", body=fixture_text("order_statuses.json"))

    statuses = client.list_order_statuses()

    assert statuses[0].id == 0
    assert statuses[0].name == "Incomplete"
    assert {s.id for s in statuses} >= {4, 14}


# ----------------------------------------------------------------------------------------------------- refunds


def test_get_refund_parses_spec_example(client, mocked):
    mocked.get(f"{BASE}/v3/orders/payment_actions/refunds/12", body=fixture_text("refund_12.json"))

    refund = client.get_refund(12)

    assert (refund.id, refund.order_id, refund.reason) == (12, 180, "Customer requires a refund.")
    assert refund.created == datetime(2022, 6, 16, 16, 44, 15, tzinfo=UTC)
    assert refund.total_amount == Decimal(50)
    assert refund.total_tax == Decimal(5)
    (item,) = refund.items
    assert (item.item_type, item.item_id, item.quantity, item.requested_amount) == ("PRODUCT", 87, 1, None)
    (payment,) = refund.payments
    assert (payment.id, payment.provider_id, payment.amount, payment.offline, payment.is_declined) == (
        13,
        "storecredit",
        Decimal(50),
        True,
        False,
    )
    assert client.calls == 1


def test_get_order_refunds_keeps_amounts_exact(client, mocked):
    mocked.get(f"{BASE}/v3/orders/180/payment_actions/refunds", body=fixture_text("refunds_order_180.json"))

    first, second = client.get_order_refunds(180)

    # 12.34 must not become 12.339999999999999857891452847979962825775146484375
    assert str(first.total_amount) == "12.34"
    assert first.raw["total_amount"] == Decimal("12.34")
    assert isinstance(first.raw["total_amount"], Decimal)  # parsed with parse_float=Decimal, never a float
    assert first.total_amount == Decimal("12.34")
    assert first.total_tax == Decimal("1.12")
    assert first.payments[0].amount == Decimal("12.34")
    assert first.items[1].requested_amount == Decimal("2.1")
    assert first.items[1].quantity is None
    assert second.created == datetime(2022, 6, 17, 9, 0, tzinfo=UTC)
    assert second.total_tax == Decimal("-0.01")
    assert second.payments[0].is_declined is True
    assert second.raw["uses_merchant_override_values"] is True


def test_get_order_refunds_follows_pagination(client, mocked):
    url = f"{BASE}/v3/orders/180/payment_actions/refunds"
    page_one = fixture("refunds_order_180.json")
    page_one["data"] = page_one["data"][:1]
    page_one["meta"] = {"pagination": {"current_page": 1, "total_pages": 2, "per_page": 1}}
    page_two = fixture("refunds_order_180.json")
    page_two["data"] = page_two["data"][1:]
    page_two["meta"] = {"pagination": {"current_page": 2, "total_pages": 2, "per_page": 1}}
    mocked.get(url, json=page_one, match=[matchers.query_param_matcher({})])
    mocked.get(url, json=page_two, match=[matchers.query_param_matcher({"page": "2"})])

    assert [r.id for r in client.get_order_refunds(180)] == [12, 14]
    assert client.calls == 2


def test_list_refunds_filters_on_created_min(client, mocked):
    body = fixture("refunds_order_180.json")
    body["meta"] = {"pagination": {"current_page": 1, "total_pages": 3}}
    mocked.get(
        f"{BASE}/v3/orders/payment_actions/refunds",
        json=body,
        match=[
            matchers.query_param_matcher(
                {"created:min": "2022-06-01T00:00:00+00:00", "page": "1", "limit": "250"}
            )
        ],
    )

    refunds, has_more = client.list_refunds(created_min=datetime(2022, 6, 1, tzinfo=UTC))

    assert [r.id for r in refunds] == [12, 14]
    assert has_more is True
    assert "created:min=2022-06-01T00:00:00%2B00:00" in mocked.calls[0].request.url


def test_list_refunds_last_page(client, mocked):
    body = fixture("refunds_order_180.json")
    body["meta"] = {"pagination": {"current_page": 2, "total_pages": 2}}
    mocked.get(f"{BASE}/v3/orders/payment_actions/refunds", json=body)

    refunds, has_more = client.list_refunds(page=2)

    assert len(refunds) == 2
    assert has_more is False


def test_list_refunds_without_pagination_uses_page_size(client, mocked):
    mocked.get(f"{BASE}/v3/orders/payment_actions/refunds", body=fixture_text("refunds_order_180.json"))

    assert client.list_refunds(limit=2)[1] is True


# ------------------------------------------------------------------------------------------- channels and hooks


def test_list_channels_follows_pagination(client, mocked):
    # Given the spec's example (page 2 of 4 via links) rewritten as page 1 of 2, then a last page
    url = f"{BASE}/v3/channels"
    first = fixture("channels_page.json")
    first["meta"]["pagination"].update(current_page=1, total_pages=2)
    last = {
        "data": [{"id": 2, "name": "POS", "type": "pos", "platform": "square", "status": "active"}],
        "meta": {},
    }
    mocked.get(url, json=first, match=[matchers.query_param_matcher({})])
    mocked.get(url, json=last, match=[matchers.query_param_matcher({"page": "2"})])

    channels = client.list_channels()

    assert [(c.id, c.type, c.platform, c.status) for c in channels] == [
        (1, "storefront", "bigcommerce", "prelaunch"),
        (664179, "marketplace", "amazon", "connected"),
        (667159, "marketplace", "facebook by meta", "connected"),
        (2, "pos", "square", "active"),
    ]
    assert channels[0].name == "Sample Store"


def test_list_hooks(client, mocked):
    hook = fixture("hook_18048287.json")["data"]
    mocked.get(
        f"{BASE}/v3/hooks",
        json={"data": [hook], "meta": {"pagination": {"current_page": 1, "total_pages": 1}}},
    )

    (parsed,) = client.list_hooks()

    assert (parsed.id, parsed.scope, parsed.is_active) == (18048287, "store/order/created", True)
    assert parsed.headers == {"custom-key": "developer-defined value"}


def test_create_hook_sends_is_active_and_headers(client, mocked):
    mocked.post(
        f"{BASE}/v3/hooks",
        body=fixture_text("hook_18048287.json"),
        match=[
            matchers.json_params_matcher(
                {
                    "scope": "store/order/created",
                    "destination": "https://665b65a6.ngrok.io/webhooks",
                    "is_active": True,
                    "headers": {"custom-key": "developer-defined value"},
                }
            )
        ],
    )

    hook = client.create_hook(
        scope="store/order/created",
        destination="https://665b65a6.ngrok.io/webhooks",
        headers={"custom-key": "developer-defined value"},
    )

    assert hook.id == 18048287
    assert hook.destination == "https://665b65a6.ngrok.io/webhooks"


def test_update_hook_puts_only_given_fields(client, mocked):
    mocked.put(
        f"{BASE}/v3/hooks/18048287",
        body=fixture_text("hook_18048287.json"),
        match=[matchers.json_params_matcher({"is_active": True})],
    )

    assert client.update_hook(18048287, is_active=True).is_active is True


def test_update_hook_rejects_unknown_or_no_fields(client):
    with pytest.raises(ValueError, match="unknown"):
        client.update_hook(1, events_history_enabled=True)
    with pytest.raises(ValueError, match="at least one"):
        client.update_hook(1)
    assert client.calls == 0


def test_hook_secrets_are_not_recorded(client, mocked):
    # Given a hook whose custom header is our webhook secret
    body = fixture("hook_18048287.json")
    body["data"]["headers"] = {"X-Connector-Secret": "whsec-very-secret"}
    mocked.post(f"{BASE}/v3/hooks", json=body)

    # When
    hook = client.create_hook(
        scope="store/order/created",
        destination="https://x.example/hook",
        headers={"X-Connector-Secret": "whsec-very-secret"},
    )

    # Then the caller gets the secret, the call log does not
    assert hook.headers == {"X-Connector-Secret": "whsec-very-secret"}
    (record,) = client.call_log
    assert "whsec-very-secret" not in record.request_body
    assert "whsec-very-secret" not in record.response_body
    assert "X-Connector-Secret" in record.response_body


# ------------------------------------------------------------------------------------------------ error mapping


@pytest.mark.parametrize(
    ("status", "body", "error", "text"),
    [
        (
            404,
            [{"status": 404, "message": "The requested resource was not found."}],
            NotFoundError,
            "not found",
        ),
        (
            401,
            {"status": 401, "title": "Unauthorized - the v3 Auth client ID or token ..."},
            AuthenticationError,
            "401",
        ),
        (403, {"status": 403, "title": "You do not have permission"}, AuthenticationError, "permission"),
        (500, {"status": 500, "title": "Internal Server Error"}, RetryableError, "500"),
        (502, {"status": 502, "title": "Bad gateway"}, RetryableError, "502"),
        (408, "", RetryableError, "408"),
        (
            422,
            {
                "status": 422,
                "title": "JSON data is missing or invalid",
                "errors": {"destination": "error.path.missing."},
            },
            PermanentError,
            "JSON data is missing or invalid",
        ),
        (
            400,
            [{"status": 400, "message": "The field 'item_total' cannot be written to."}],
            PermanentError,
            "item_total",
        ),
        (
            409,
            {"data": [{"status": 409, "title": "Conflict on refund"}]},
            PermanentError,
            "Conflict on refund",
        ),
    ],
)
def test_http_errors_map_onto_the_hierarchy(client, mocked, status, body, error, text):
    mocked.get(ORDER_URL, status=status, body=json.dumps(body) if body != "" else "")

    with pytest.raises(error) as caught:
        client.get_order(218)

    exc = caught.value
    assert type(exc) is error
    assert exc.status_code == status
    assert text.lower() in exc.message.lower()
    assert exc.retryable is (status in (408, 500, 502))
    assert exc.outcome_unknown is False  # a GET changes nothing
    assert TOKEN not in exc.message


def test_422_message_carries_bigcommerce_field_errors(client, mocked):
    mocked.post(
        f"{BASE}/v3/hooks",
        status=422,
        json={
            "status": 422,
            "title": "JSON data is missing or invalid",
            "errors": {"destination": "error.path.missing."},
        },
    )

    with pytest.raises(PermanentError) as caught:
        client.create_hook(scope="store/order/created", destination="")

    assert "destination: error.path.missing." in caught.value.message
    assert caught.value.retryable is False


def test_5xx_on_a_write_leaves_the_outcome_unknown(client, mocked):
    mocked.post(f"{BASE}/v3/hooks", status=503, json={"status": 503, "title": "Service Unavailable"})

    with pytest.raises(RetryableError) as caught:
        client.create_hook(scope="store/order/created", destination="https://x.example/hook")

    assert caught.value.outcome_unknown is True


def test_unexpected_redirect_is_permanent(client, mocked):
    mocked.get(ORDER_URL, status=302, headers={"Location": "https://login.example/"})

    with pytest.raises(PermanentError):
        client.get_order(218)


# ------------------------------------------------------------------------------------------------- rate limits


def test_429_waits_for_reset_then_succeeds(client, mocked, sleeps):
    # Given a 429 asking to wait 1.5 s, then the order
    mocked.get(
        ORDER_URL, status=429, headers=rate_headers(0, 1500), json={"status": 429, "title": "Too many"}
    )
    mocked.get(
        ORDER_URL, body=fixture_text("order_218_with_consignments.json"), headers=rate_headers(149, 30000)
    )

    # When
    order = client.get_order(218)

    # Then
    assert order.id == 218
    assert sleeps == [pytest.approx(1.5)]
    assert client.calls == 2
    assert [r.status_code for r in client.call_log] == [429, 200]


def test_429_uses_x_retry_after_when_no_reset_header(client, mocked, sleeps):
    mocked.get(ORDER_URL, status=429, headers={"X-Retry-After": "3"})
    mocked.get(ORDER_URL, body=fixture_text("order_218_with_consignments.json"))

    client.get_order(218)

    assert sleeps == [3.0]


def test_429_exhausting_retries_raises_rate_limited(client, mocked, sleeps):
    # Given four 429s (one try + max_429_retries=3)
    for _ in range(4):
        mocked.get(ORDER_URL, status=429, headers=rate_headers(0, 2000))

    # When
    with pytest.raises(RateLimitedError) as caught:
        client.get_order(218)

    # Then
    assert caught.value.retry_after == pytest.approx(2.0)
    assert caught.value.retryable is True
    assert caught.value.status_code == 429
    assert sleeps == [2.0, 2.0, 2.0]
    assert client.calls == 4


def test_429_without_headers_backs_off_doubling(client, mocked, sleeps):
    # "A 429 without the API HTTP headers indicates that the platform experiences high load."
    for _ in range(4):
        mocked.get(ORDER_URL, status=429)

    with pytest.raises(RateLimitedError) as caught:
        client.get_order(218)

    assert sleeps == [1.0, 2.0, 4.0]
    assert caught.value.retry_after == 8.0


def test_429_with_a_wait_above_max_inline_wait_is_raised_at_once(client, mocked, sleeps):
    mocked.get(ORDER_URL, status=429, headers=rate_headers(0, 60000))

    with pytest.raises(RateLimitedError) as caught:
        client.get_order(218)

    assert caught.value.retry_after == pytest.approx(60.0)
    assert sleeps == []
    assert client.calls == 1


def test_rate_limit_headers_are_exposed(client, mocked):
    mocked.get(
        f"{BASE}/v2/order_statuses",
        json=[],
        headers={  # lower case, as BigCommerce has sent since 2022
            "x-rate-limit-requests-left": "148",
            "x-rate-limit-time-reset-ms": "29000",
            "x-rate-limit-requests-quota": "150",
            "x-rate-limit-time-window-ms": "30000",
        },
    )

    client.list_order_statuses()

    assert client.rate_limit == RateLimit(
        requests_left=148, requests_quota=150, time_reset_ms=29000, time_window_ms=30000, observed_at=1000.0
    )


def test_throttles_before_the_next_request_when_quota_is_at_the_margin(client, mocked, sleeps):
    # Given a first answer leaving 2 requests (= rate_limit_margin) and 1.5 s until the window resets
    url = f"{BASE}/v2/order_statuses"
    mocked.get(url, json=[], headers=rate_headers(2, 1500))
    mocked.get(url, json=[], headers=rate_headers(149, 30000))
    mocked.get(url, json=[], headers=rate_headers(148, 29000))

    # When
    client.list_order_statuses()
    assert sleeps == []
    client.list_order_statuses()
    client.list_order_statuses()

    # Then exactly one wait, before the second request
    assert sleeps == [pytest.approx(1.5)]
    assert client.calls == 3


def test_no_throttle_above_the_margin(client, mocked, sleeps):
    url = f"{BASE}/v2/order_statuses"
    mocked.get(url, json=[], headers=rate_headers(3, 1500))
    mocked.get(url, json=[], headers=rate_headers(2, 1400))

    client.list_order_statuses()
    client.list_order_statuses()

    assert sleeps == []


def test_throttle_wait_is_capped(make_client, mocked, sleeps):
    client = make_client(max_inline_wait=5.0)
    url = f"{BASE}/v2/order_statuses"
    mocked.get(url, json=[], headers=rate_headers(0, 29000))
    mocked.get(url, json=[])

    client.list_order_statuses()
    client.list_order_statuses()

    assert sleeps == [5.0]


def test_throttle_skips_a_window_that_has_already_reset(mocked):
    # Given a real-ish clock that moved past the reset time between the two calls
    now = [1000.0]
    waits: list[float] = []
    client = BigCommerceClient(
        StoreConfig(store_hash=STORE, access_token=TOKEN), sleep=waits.append, clock=lambda: now[0]
    )
    url = f"{BASE}/v2/order_statuses"
    mocked.get(url, json=[], headers=rate_headers(1, 1500))
    mocked.get(url, json=[])

    client.list_order_statuses()
    now[0] += 2.0
    client.list_order_statuses()

    assert waits == []


# ------------------------------------------------------------------------------------------ transport failures


def test_read_timeout_on_a_read_is_retryable_with_known_outcome(client, mocked):
    mocked.get(ORDER_URL, body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(RetryableError) as caught:
        client.get_order(218)

    assert caught.value.outcome_unknown is False
    assert "read timeout" in caught.value.message
    assert client.calls == 1
    assert client.call_log[-1].error
    assert client.call_log[-1].status_code is None


def test_read_timeout_on_a_write_leaves_outcome_unknown(client, mocked):
    mocked.post(f"{BASE}/v3/hooks", body=requests.exceptions.ReadTimeout("read timed out"))

    with pytest.raises(RetryableError) as caught:
        client.create_hook(scope="store/order/created", destination="https://x.example/hook")

    assert caught.value.outcome_unknown is True


def test_connect_timeout_is_retryable(client, mocked):
    mocked.post(f"{BASE}/v3/hooks", body=requests.exceptions.ConnectTimeout("connect timed out"))

    with pytest.raises(RetryableError) as caught:
        client.create_hook(scope="store/order/created", destination="https://x.example/hook")

    assert caught.value.outcome_unknown is False  # nothing was sent
    assert "timed out" in caught.value.message


# ------------------------------------------------------------------------------------------- secrets, call log


def test_token_never_appears_in_errors_or_call_log(client, mocked):
    # Given a server that echoes the token back in its error body
    mocked.get(ORDER_URL, status=401, json={"status": 401, "title": f"Invalid token {TOKEN}"})
    mocked.get(f"{BASE}/v2/order_statuses", body=requests.exceptions.ConnectionError("reset by peer"))

    # When
    with pytest.raises(AuthenticationError) as auth:
        client.get_order(218)
    with pytest.raises(RetryableError) as transport:
        client.list_order_statuses()

    # Then
    for exc in (auth.value, transport.value):
        assert TOKEN not in str(exc)
        assert TOKEN not in (exc.response_body or "")
    assert "Invalid token ***" in auth.value.message
    for record in client.call_log:
        assert TOKEN not in repr(record)
    assert TOKEN not in repr(client.config)
    assert TOKEN not in repr(client)


def test_call_log_records_method_url_status_duration_and_truncated_body(client, mocked):
    # Given a large response
    mocked.get(
        f"{BASE}/v2/orders",
        json=[
            {"id": n, "date_modified": "Mon, 11 Mar 2019 15:17:25 +0000", "status_id": 1} for n in range(200)
        ],
    )

    # When
    client.list_orders(page=1, limit=250)

    # Then
    (record,) = client.call_log
    assert record.method == "GET"
    assert record.url.startswith(f"{BASE}/v2/orders?")
    assert "sort=date_modified:asc" in record.url
    assert record.status_code == 200
    assert record.duration_ms >= 0
    assert 0 < len(record.response_body) <= 2000
    assert record.request_body == ""


def test_api_base_url_trailing_slash_is_stripped(mocked, sleeps):
    client = BigCommerceClient(
        StoreConfig(store_hash=STORE, access_token=TOKEN, api_base_url="http://127.0.0.1:8765/"),
        sleep=sleeps.append,
    )
    mocked.get(f"http://127.0.0.1:8765/stores/{STORE}/v2/order_statuses", status=204)

    assert client.list_order_statuses() == []


def test_every_error_is_an_integration_error(client, mocked):
    mocked.get(ORDER_URL, status=418, body="teapot")

    with pytest.raises(IntegrationError):
        client.get_order(218)


# -------------------------------------------------------------------------------------------------- transactions


def test_get_order_transactions_one_call_exact_amounts(client, mocked):
    body = {
        "data": [
            {
                "id": 1,
                "order_id": "250",
                "event": "purchase",
                "method": "gift_certificate",
                "gateway": "giftcertificate",
                "amount": 20.1,
                "currency": "USD",
                "status": "ok",
                "test": False,
            },
            {
                "id": 2,
                "order_id": "250",
                "event": "capture",
                "method": "credit_card",
                "gateway": "braintree",
                "amount": 77.1,
                "currency": "USD",
                "status": "ok",
                "test": False,
                "payment_method_id": "braintree.card",
            },
        ],
        "meta": {"pagination": {"total": 2, "count": 2, "per_page": 50, "current_page": 1, "total_pages": 1}},
    }
    mocked.get(f"{BASE}/v3/orders/250/transactions", json=body)

    first, second = client.get_order_transactions(250)

    assert client.calls == 1  # never paged: one extra call per order at most
    assert (first.method, first.gateway, first.amount) == (
        "gift_certificate",
        "giftcertificate",
        Decimal("20.1"),
    )
    assert str(second.amount) == "77.1" and second.collects_money
    assert second.payment_method_id == "braintree.card"


def test_get_order_transactions_204_is_empty(client, mocked):
    mocked.get(f"{BASE}/v3/orders/250/transactions", status=204, body="")
    assert client.get_order_transactions(250) == []


@pytest.mark.parametrize(
    ("status", "error"), [(503, RetryableError), (404, NotFoundError), (403, AuthenticationError)]
)
def test_get_order_transactions_errors_map_onto_the_hierarchy(client, mocked, status, error):
    mocked.get(f"{BASE}/v3/orders/250/transactions", status=status, json={"status": status, "title": "x"})
    with pytest.raises(error):
        client.get_order_transactions(250)


def test_get_order_transactions_bad_shape(client, mocked):
    mocked.get(f"{BASE}/v3/orders/250/transactions", json={"data": {"id": 1}})
    with pytest.raises(BadResponseError):
        client.get_order_transactions(250)
