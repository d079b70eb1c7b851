"""The BigCommerce simulator over real HTTP: auth, shapes from the OpenAPI specs, consistency, filters, limits."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import parsedate_to_datetime

import pytest

from simulators import bc_data

from .conftest import BC, STORES

# property names from orders.v2.oas2.yml (order_Resp, orderProducts) and orders.v3.yml (Refund, RefundItem, ...)
ORDER_FIELDS = set(
    "base_handling_cost base_shipping_cost base_wrapping_cost billing_address cart_id channel_id consignments "
    "coupon_discount coupons currency_code currency_exchange_rate currency_id customer_id customer_locale "
    "customer_message date_created date_modified date_shipped default_currency_code default_currency_id "
    "discount_amount ebay_order_id external_id external_merchant_id external_order_id external_source fees "
    "geoip_country geoip_country_iso2 gift_certificate_amount handling_cost_ex_tax handling_cost_inc_tax "
    "handling_cost_tax handling_cost_tax_class_id id ip_address ip_address_v6 is_deleted is_email_opt_in "
    "is_tax_inclusive_pricing items_shipped items_total order_is_digital order_source payment_method "
    "payment_provider_id payment_status products refunded_amount shipping_address_count shipping_addresses "
    "shipping_cost_ex_tax shipping_cost_inc_tax shipping_cost_tax shipping_cost_tax_class_id staff_notes status "
    "status_id store_credit_amount store_default_currency_code store_default_to_transactional_exchange_rate "
    "subtotal_ex_tax subtotal_inc_tax subtotal_tax tax_provider_id total_ex_tax total_inc_tax total_tax "
    "wrapping_cost_ex_tax wrapping_cost_inc_tax wrapping_cost_tax wrapping_cost_tax_class_id".split()
)
PRODUCT_FIELDS = set(
    "applied_discounts base_cost_price base_price base_total base_wrapping_cost bin_picking_number brand "
    "configurable_fields cost_price_ex_tax cost_price_inc_tax cost_price_tax depth discounted_total_inc_tax "
    "ebay_item_id ebay_transaction_id event_date event_name external_id fixed_shipping_cost gift_certificate_id "
    "height id is_bundled_product is_refunded name name_customer name_merchant option_set_id order_address_id "
    "order_id order_pickup_method_id parent_order_product_id price_ex_tax price_inc_tax price_tax product_id "
    "product_options quantity quantity_refunded quantity_shipped refund_amount return_id sku total_ex_tax "
    "total_inc_tax total_tax type upc variant_id weight width wrapping_cost_ex_tax wrapping_cost_inc_tax "
    "wrapping_cost_tax wrapping_id wrapping_message wrapping_name".split()
)
REFUND_FIELDS = {
    "created",
    "id",
    "items",
    "order_id",
    "payments",
    "reason",
    "total_amount",
    "total_tax",
    "user_id",
    "uses_merchant_override_values",
}
REFUND_PAYMENT_FIELDS = {
    "amount",
    "declined_message",
    "id",
    "is_declined",
    "offline",
    "provider_id",
    "transaction_id",
}
MONEY4 = re.compile(r"^-?\d+\.\d{4}$")
RFC2822 = re.compile(r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$")
MONEY_KEYS = [
    k for k in ORDER_FIELDS if k.endswith(("_tax", "_cost", "_amount", "_discount")) and "class" not in k
]


def D(value: str) -> Decimal:
    return Decimal(value)


def all_orders(bc: BC, store: str) -> list[dict]:
    orders, page = [], 1
    while True:
        r = bc.get(store, "/v2/orders", page=page, limit=250)
        if r.status_code == 204:
            return orders
        assert r.status_code == 200
        orders += r.json()
        page += 1


def check_order_consistency(order: dict, products: list[dict]) -> None:
    total = lambda key: sum((D(p[key]) for p in products), Decimal(0))  # noqa: E731
    assert D(order["subtotal_ex_tax"]) == total("total_ex_tax")
    assert D(order["subtotal_tax"]) == total("total_tax")
    assert D(order["subtotal_inc_tax"]) == total("total_inc_tax")
    assert D(order["wrapping_cost_ex_tax"]) == total("wrapping_cost_ex_tax")
    for p in products:
        assert D(p["total_ex_tax"]) == D(p["price_ex_tax"]) * p["quantity"]
        assert D(p["total_tax"]) == D(p["price_tax"]) * p["quantity"]
        assert D(p["total_inc_tax"]) == D(p["total_ex_tax"]) + D(p["total_tax"])
        assert D(p["price_inc_tax"]) == D(p["price_ex_tax"]) + D(p["price_tax"])
        assert 0 <= p["quantity_refunded"] <= p["quantity"]
        assert D(p["cost_price_ex_tax"]) >= 0 and D(p["base_cost_price"]) == D(p["cost_price_ex_tax"])
        discount = sum((D(d["amount"]) for d in p["applied_discounts"]), Decimal(0))
        assert D(p["discounted_total_inc_tax"]) == D(p["total_inc_tax"]) - discount
    for prefix in ("shipping_cost", "handling_cost", "wrapping_cost"):
        assert D(order[f"{prefix}_inc_tax"]) == D(order[f"{prefix}_ex_tax"]) + D(order[f"{prefix}_tax"])
    fees = order["fees"]
    fees_inc = sum((D(f["cost_inc_tax"]) for f in fees), Decimal(0))
    fees_tax = sum((D(f["cost_tax"]) for f in fees), Decimal(0))
    assert (
        D(order["total_tax"])
        == (D(order["subtotal_tax"]) + D(order["shipping_cost_tax"]) + D(order["handling_cost_tax"]))
        + D(order["wrapping_cost_tax"])
        + fees_tax
    )
    assert D(order["total_inc_tax"]) == (
        D(order["subtotal_inc_tax"])
        + D(order["shipping_cost_inc_tax"])
        + D(order["handling_cost_inc_tax"])
        + D(order["wrapping_cost_inc_tax"])
        + fees_inc
        - D(order["discount_amount"])
    )
    assert D(order["total_ex_tax"]) == D(order["total_inc_tax"]) - D(order["total_tax"])
    assert D(order["coupon_discount"]) <= D(order["discount_amount"])
    assert order["items_total"] == sum(p["quantity"] for p in products)


# -------------------------------------------------------------------------------------------------------------- auth


def test_auth_token_is_required(bc: BC) -> None:
    r = bc.http.get(bc.api() + "/v2/orders", timeout=5)
    assert r.status_code == 401
    assert r.json()["status"] == 401 and "title" in r.json()
    r = bc.get("usstore01", "/v2/orders", token="tok-fr")  # another store's token
    assert r.status_code == 401
    r = bc.http.get(
        bc.base_url + "/stores/nosuchstore/v2/orders", headers={"X-Auth-Token": "tok-us"}, timeout=5
    )
    assert r.status_code == 404
    assert bc.get("usstore01", "/v2/orders").status_code == 200
    stats = bc.ctl.store_stats("usstore01")
    assert stats["unauthorized"] == 2 and stats["requests"] == 3


# ------------------------------------------------------------------------------------------------------------- shape


def test_order_shape_follows_the_v2_spec(bc: BC) -> None:
    order_id = all_orders(bc, "usstore01")[0]["id"]
    r = bc.get("usstore01", f"/v2/orders/{order_id}")
    assert r.status_code == 200
    order = r.json()
    assert ORDER_FIELDS <= set(order)
    assert set(order["products"]) == {"url", "resource"}
    assert order["products"]["resource"] == f"/orders/{order_id}/products"
    assert set(order["consignments"]) == {"url", "resource"}
    assert set(order["fees"]) == {"url", "resource"}
    for key in MONEY_KEYS:
        assert MONEY4.match(order[key]), (key, order[key])
    assert RFC2822.match(order["date_created"]) and RFC2822.match(order["date_modified"])
    assert order["default_currency_code"] == order["currency_code"]
    assert order["refunded_amount"] == "0.0000"  # "always returns 0"

    # following the products link works
    products = bc.http.get(order["products"]["url"], headers={"X-Auth-Token": "tok-us"}, timeout=5).json()
    assert products and all(PRODUCT_FIELDS <= set(p) for p in products)


def test_include_consignments_line_items_and_fees(bc: BC) -> None:
    created = bc.ctl.create_order(
        "usstore01",
        status_id=11,
        lines=[
            {"name": "Mug", "sku": "MUG-1", "price": "12.00", "quantity": 3, "cost_price": "4.5"},
            {"name": "E-book", "type": "digital", "price": "9.00"},
            {"name": "Gift Certificate", "type": "giftcertificate", "price": "25.00"},
        ],
        shipping_cost="7.00",
        handling_cost="1.50",
        fees=[{"name": "Eco fee", "cost": "2.00"}],
    )
    order_id = created["order"]["id"]
    r = bc.get(
        "usstore01",
        f"/v2/orders/{order_id}",
        include="consignments.line_items,fees",
        consignment_structure="object",
    )
    order = r.json()
    consignments = order["consignments"]
    assert set(consignments) == {"shipping", "pickups", "downloads", "email"}
    assert set(consignments["email"]) == {"gift_certificates"}
    (shipping,) = consignments["shipping"]
    (line,) = shipping["line_items"]
    assert PRODUCT_FIELDS <= set(line) and line["sku"] == "MUG-1" and line["quantity"] == 3
    assert line["cost_price_ex_tax"] == "4.5000" and line["total_ex_tax"] == "36.0000"
    assert shipping["cost_ex_tax"] == 7 and shipping["handling_cost_ex_tax"] == 1.5  # numbers in consignments
    assert consignments["downloads"][0]["line_items"][0]["type"] == "digital"
    assert consignments["email"]["gift_certificates"][0]["line_items"][0]["total_tax"] == "0.0000"
    assert [f["display_name_merchant"] for f in order["fees"]] == ["Eco fee"]
    products = bc.get("usstore01", f"/v2/orders/{order_id}/products").json()
    check_order_consistency(order, products)

    # consignments without line items: links to the products
    r = bc.get("usstore01", f"/v2/orders/{order_id}", include="consignments", consignment_structure="object")
    assert set(r.json()["consignments"]["shipping"][0]["line_items"][0]) == {"url", "resource"}


def test_generated_orders_are_consistent_across_currencies_and_tax_modes(bc: BC) -> None:
    seen_currencies, seen_statuses, tax_inclusive = set(), set(), set()
    for store in STORES:
        orders = all_orders(bc, store["hash"])
        assert len(orders) == 60
        for listed in orders:
            order = bc.get(store["hash"], f"/v2/orders/{listed['id']}", include="fees").json()
            products = bc.get(store["hash"], f"/v2/orders/{listed['id']}/products").json()
            check_order_consistency(order, products)
            seen_currencies.add(order["default_currency_code"])
            seen_statuses.add(order["status_id"])
            tax_inclusive.add(order["is_tax_inclusive_pricing"])
            if order["default_currency_code"] == "JPY":
                assert D(order["total_inc_tax"]) == D(order["total_inc_tax"]).to_integral_value()
            if store["hash"] == "ukstore04" and D(order["subtotal_ex_tax"]) != D(
                order["subtotal_ex_tax"]
            ).quantize(Decimal("0.01")):
                tax_inclusive.add("fractional")
    assert {"USD", "EUR", "GBP", "JPY"} <= seen_currencies
    assert {True, False, "fractional"} <= tax_inclusive
    assert seen_statuses & {2, 3, 8, 9, 10, 11} and seen_statuses & {1, 7, 6}
    assert {4, 14} & seen_statuses  # some generated orders were refunded


def test_generation_is_deterministic_for_a_seed() -> None:
    end = datetime(2026, 11, 1, tzinfo=UTC)
    renders = []
    for _ in range(2):
        data = bc_data.StoreData(bc_data.StoreConfig.build({"hash": "det"}, index=1, seed=3))
        data.generate(25, end=end, seed=11)
        renders.append(
            [bc_data.order_to_v2(o, "http://x", include={"fees"}) for o in data.orders.values()]
            + [r.to_v3() | {"payments": []} for r in data.refunds.values()]
        )
    assert renders[0] == renders[1]


def test_statuses_and_channels(bc: BC) -> None:
    statuses = bc.get("usstore01", "/v2/order_statuses").json()
    assert [s["id"] for s in statuses] == list(range(15))
    assert {"id", "name", "system_label", "custom_label", "system_description", "order"} <= set(statuses[0])
    channels = bc.get("usstore01", "/v3/channels").json()
    assert [c["id"] for c in channels["data"]] == [1, 2, 3]
    assert channels["meta"]["pagination"]["total"] == 3
    assert {"id", "name", "type", "platform", "status", "date_created", "is_listable_from_ui"} <= set(
        channels["data"][0]
    )
    marketplace = bc.get("usstore01", "/v3/channels", **{"type:in": "marketplace"}).json()["data"]
    assert [c["platform"] for c in marketplace] == ["amazon"]


def test_unknown_order_is_a_404(bc: BC) -> None:
    r = bc.get("usstore01", "/v2/orders/999999")
    assert r.status_code == 404
    assert r.json()[0]["status"] == 404
    assert bc.get("usstore01", "/v2/orders/999999/products").status_code == 404
    assert bc.get("usstore01", "/v3/orders/payment_actions/refunds/999999").status_code == 404


# ----------------------------------------------------------------------------------------------------- list filters


def test_list_filters_sort_and_paging(bc: BC) -> None:
    orders = all_orders(bc, "frstore02")
    modified = sorted(parsedate_to_datetime(o["date_modified"]) for o in orders)
    pivot = modified[len(modified) // 2]
    expected = sum(1 for m in modified if m >= pivot)
    rfc = bc.get("frstore02", "/v2/orders", min_date_modified=bc_data.rfc2822(pivot), limit=250).json()
    iso = bc.get("frstore02", "/v2/orders", min_date_modified=pivot.isoformat(), limit=250).json()
    assert len(rfc) == len(iso) == expected
    by_modified = bc.get(
        "frstore02", "/v2/orders", sort="date_modified:asc", min_date_modified=pivot.isoformat(), limit=250
    ).json()
    stamps = [parsedate_to_datetime(o["date_modified"]) for o in by_modified]
    assert stamps == sorted(stamps)

    first_ids = [o["id"] for o in bc.get("frstore02", "/v2/orders", limit=5, sort="id:asc").json()]
    assert first_ids == sorted(first_ids) and len(first_ids) == 5
    second = [o["id"] for o in bc.get("frstore02", "/v2/orders", limit=5, page=2).json()]
    assert min(second) > max(first_ids)
    assert all(o["id"] >= first_ids[2] for o in bc.get("frstore02", "/v2/orders", min_id=first_ids[2]).json())
    assert all(o["channel_id"] == 2 for o in bc.get("frstore02", "/v2/orders", channel_id=2).json())
    assert all(o["status_id"] == 11 for o in bc.get("frstore02", "/v2/orders", status_id=11).json())
    assert len(bc.get("frstore02", "/v2/orders", limit=1000).json()) == 60  # capped at 250, not an error

    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = bc.get("frstore02", "/v2/orders", min_date_modified=future)
    assert r.status_code == 204 and r.content == b""
    assert bc.get("frstore02", "/v2/orders", min_date_modified="not a date").status_code == 400


def test_products_paging_ends_with_204(bc: BC) -> None:
    lines = [{"name": f"Item {i}", "price": "1.00"} for i in range(3)]
    order_id = bc.ctl.create_order("usstore01", lines=lines)["order"]["id"]
    page1 = bc.get("usstore01", f"/v2/orders/{order_id}/products", limit=2, page=1)
    page2 = bc.get("usstore01", f"/v2/orders/{order_id}/products", limit=2, page=2)
    page3 = bc.get("usstore01", f"/v2/orders/{order_id}/products", limit=2, page=3)
    assert len(page1.json()) == 2 and len(page2.json()) == 1
    assert page3.status_code == 204


# ----------------------------------------------------------------------------------------------- mutations, refunds


def test_refunds_partial_then_full(bc: BC) -> None:
    created = bc.ctl.create_order(
        "usstore01",
        status_id=11,
        lines=[{"name": "Lamp", "price": "50.00", "quantity": 2, "cost_price": "20"}],
        shipping_cost="10.00",
        coupon_code="SPRING10",
        discount_amount="10.00",
    )
    order_id = created["order"]["id"]
    line_id = created["products"][0]["id"]
    address_id = created["products"][0]["order_address_id"]
    partial = bc.ctl.refund(
        "usstore01", order_id, items=[{"item_type": "PRODUCT", "item_id": line_id, "quantity": 1}]
    )
    assert partial["order"]["status_id"] == 14
    assert partial["products"][0]["quantity_refunded"] == 1
    refund = partial["refund"]
    assert REFUND_FIELDS <= set(refund) and REFUND_PAYMENT_FIELDS <= set(refund["payments"][0])
    assert refund["items"] == [
        {
            "item_type": "PRODUCT",
            "item_id": line_id,
            "reason": "Refund",
            "quantity": 1,
            "requested_amount": None,
        }
    ]
    assert (
        isinstance(refund["total_amount"], int | float) and refund["total_amount"] == 49.13
    )  # (2 x 54.13 - 10) / 2
    # full refund of what is left: the other unit, shipping
    full = bc.ctl.refund("usstore01", order_id, full=True)
    assert full["order"]["status_id"] == 4 and full["order"]["payment_status"] == "refunded"
    kinds = {i["item_type"] for i in full["refund"]["items"]}
    assert {"PRODUCT", "SHIPPING"} <= kinds
    assert any(i["item_type"] == "SHIPPING" and i["item_id"] == address_id for i in full["refund"]["items"])
    refunds = bc.get("usstore01", f"/v3/orders/{order_id}/payment_actions/refunds").json()["data"]
    assert [r["id"] for r in refunds] == sorted(r["id"] for r in refunds) and len(refunds) == 2
    total = sum(Decimal(str(r["total_amount"])) for r in refunds)
    assert total == D(full["order"]["total_inc_tax"])
    # over-refunding is refused
    with pytest.raises(Exception, match="422"):
        bc.ctl.refund("usstore01", order_id, amount=1)

    # the store-wide list and its filters
    listed = bc.get(
        "usstore01", "/v3/orders/payment_actions/refunds", **{"order_id:in": str(order_id)}
    ).json()
    assert [r["id"] for r in listed["data"]] == [r["id"] for r in refunds]
    assert listed["meta"]["pagination"]["total"] == 2
    one = bc.get(
        "usstore01", "/v3/orders/payment_actions/refunds", **{"id:in": str(refunds[1]["id"])}
    ).json()["data"]
    assert [r["id"] for r in one] == [refunds[1]["id"]]
    single = bc.get("usstore01", f"/v3/orders/payment_actions/refunds/{refunds[0]['id']}").json()
    assert single["data"]["id"] == refunds[0]["id"] and single["meta"] == {}
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (
        bc.get("usstore01", "/v3/orders/payment_actions/refunds", **{"created:min": future}).json()["data"]
        == []
    )
    paged = bc.get("usstore01", "/v3/orders/payment_actions/refunds", limit=2, page=1).json()
    assert len(paged["data"]) == 2 and paged["meta"]["pagination"]["per_page"] == 2


def test_edit_and_status_change_bump_date_modified(bc: BC) -> None:
    created = bc.ctl.create_order(
        "frstore02",
        status_id=7,
        lines=[{"name": "Vase", "price": "24.00", "quantity": 1}],
        date_created="2026-01-05T10:00:00Z",
    )
    order_id, line_id = created["order"]["id"], created["products"][0]["id"]
    assert created["order"]["date_modified"] == "Mon, 05 Jan 2026 10:00:00 +0000"
    edited = bc.ctl.edit_order(
        "frstore02", order_id, lines=[{"id": line_id, "quantity": 3, "price": "20.00"}]
    )
    assert edited["order"]["is_tax_inclusive_pricing"] is True
    assert edited["order"]["subtotal_inc_tax"] == "60.0000" and edited["order"]["subtotal_tax"] == "9.9900"
    assert parsedate_to_datetime(edited["order"]["date_modified"]) > datetime(2026, 1, 6, tzinfo=UTC)
    assert [e["scope"] for e in edited["events"]] == ["store/order/updated"]
    changed = bc.ctl.set_status("frstore02", order_id, 11, at="2027-01-01T00:00:00Z")
    assert changed["order"]["status_id"] == 11 and changed["order"]["payment_status"] == "captured"
    assert changed["order"]["date_modified"] == "Fri, 01 Jan 2027 00:00:00 +0000"
    assert [e["scope"] for e in changed["events"]] == ["store/order/statusUpdated", "store/order/updated"]
    check_order_consistency(
        bc.get("frstore02", f"/v2/orders/{order_id}", include="fees").json(),
        bc.get("frstore02", f"/v2/orders/{order_id}/products").json(),
    )
    archived = bc.ctl.archive("frstore02", order_id)
    assert archived["order"]["is_deleted"] is True
    ids = [o["id"] for o in all_orders(bc, "frstore02")]
    assert order_id not in ids  # archived orders leave the list


# ------------------------------------------------------------------------------------------------------ rate limits


def test_rate_limit_429_with_headers_and_stats(bc: BC) -> None:
    bc.ctl.set_rate_limit("jpstore03", quota=3, window_ms=400)
    lefts = []
    for _ in range(3):
        r = bc.get("jpstore03", "/v2/order_statuses")
        assert r.status_code == 200
        assert r.headers["X-Rate-Limit-Requests-Quota"] == "3"
        assert r.headers["X-Rate-Limit-Time-Window-Ms"] == "400"
        assert 0 < int(r.headers["X-Rate-Limit-Time-Reset-Ms"]) <= 400
        lefts.append(int(r.headers["X-Rate-Limit-Requests-Left"]))
    assert lefts == [2, 1, 0]
    r = bc.get("jpstore03", "/v2/orders")
    assert r.status_code == 429
    assert r.headers["X-Rate-Limit-Requests-Left"] == "0"
    assert int(r.headers["X-Retry-After"]) >= 1
    assert int(r.headers["X-Rate-Limit-Time-Reset-Ms"]) <= 400
    stats = bc.ctl.store_stats("jpstore03")
    assert stats["rate_limited"] == 1 and stats["requests"] == 4
    assert stats["by_endpoint"] == {"GET /v2/order_statuses": 3, "GET /v2/orders": 1}
    time.sleep(int(r.headers["X-Rate-Limit-Time-Reset-Ms"]) / 1000 + 0.02)
    assert bc.get("jpstore03", "/v2/orders").status_code == 200
    # other stores have their own quota
    assert bc.get("usstore01", "/v2/orders").headers["X-Rate-Limit-Requests-Quota"] == "150"
    assert bc.ctl.stats()["stores"]["jpstore03"]["rate_limited"] == 1


# ------------------------------------------------------------------------------------------------------------ faults


def test_fault_injection(bc: BC) -> None:
    bc.ctl.set_faults(fail_next=2, fail_status=502)
    assert [bc.get("usstore01", "/v2/order_statuses").status_code for _ in range(3)] == [502, 502, 200]
    bc.ctl.set_faults(latency_ms=120)
    started = time.monotonic()
    assert bc.get("usstore01", "/v2/order_statuses").status_code == 200
    assert time.monotonic() - started >= 0.12
    bc.ctl.set_faults(latency_ms=0, error_rate=1.0, error_status=503)
    r = bc.get("usstore01", "/v2/orders")
    assert r.status_code == 503 and "X-Rate-Limit-Requests-Left" in r.headers
    bc.ctl.clear_faults()
    assert bc.get("usstore01", "/v2/orders").status_code == 200
    assert bc.ctl.store_stats("usstore01")["errors_injected"] == 3


# ------------------------------------------------------------------------------------------------------------- hooks


def test_hooks_crud(bc: BC) -> None:
    url = bc.api("usstore01") + "/v3/hooks"
    headers = {"X-Auth-Token": "tok-us"}
    r = bc.http.post(url, json={"scope": "store/order/created"}, headers=headers, timeout=5)
    assert r.status_code == 422 and r.json()["errors"] == {"destination": "error.path.missing."}
    body = {
        "scope": "store/order/created",
        "destination": "https://example.com/hook",
        "is_active": True,
        "headers": {"X-Secret": "abc"},
    }
    created = bc.http.post(url, json=body, headers=headers, timeout=5).json()["data"]
    assert {
        "id",
        "client_id",
        "store_hash",
        "scope",
        "destination",
        "headers",
        "is_active",
        "created_at",
        "updated_at",
    } <= set(created)
    assert created["store_hash"] == "usstore01" and created["headers"] == {"X-Secret": "abc"}
    hook_url = f"{url}/{created['id']}"
    assert (
        bc.http.post(url, json=body, headers=headers, timeout=5).status_code == 422
    )  # same scope + destination
    assert bc.http.put(hook_url, json={}, headers=headers, timeout=5).status_code == 422
    updated = bc.http.put(hook_url, json={"is_active": False}, headers=headers, timeout=5).json()["data"]
    assert updated["is_active"] is False
    listed = bc.http.get(url, params={"is_active": "false"}, headers=headers, timeout=5).json()
    assert [h["id"] for h in listed["data"]] == [created["id"]] and listed["meta"]["pagination"]["total"] == 1
    assert bc.http.get(url, params={"is_active": "true"}, headers=headers, timeout=5).json()["data"] == []
    deleted = bc.http.delete(hook_url, headers=headers, timeout=5)
    assert deleted.status_code == 200 and deleted.json()["data"]["id"] == created["id"]
    assert bc.http.get(hook_url, headers=headers, timeout=5).status_code == 404


def test_order_transactions_split_tender_and_refund_payments(bc: BC) -> None:
    created = bc.ctl.create_order(
        "usstore01",
        status_id=11,
        lines=[{"name": "Lamp", "price": "50.00", "quantity": 2, "cost_price": "20"}],
        shipping_cost="10.00",
        payment_provider_id="braintree",
        payment_status="captured",
        gift_certificate_amount="25.00",
    )
    order = created["order"]
    rows = bc.get("usstore01", f"/v3/orders/{order['id']}/transactions").json()["data"]
    tenders = [(r["event"], r["method"], r["gateway"], r["amount"]) for r in rows]
    total = float(order["total_inc_tax"])
    assert tenders == [
        ("purchase", "gift_certificate", "giftcertificate", 25),
        ("purchase", "credit_card", "braintree", round(total - 25, 2)),
    ]
    assert {"id", "order_id", "currency", "status", "payment_method_id"} <= set(rows[0])

    refund = bc.ctl.refund("usstore01", order["id"], full=True)["refund"]
    rows = bc.get("usstore01", f"/v3/orders/{order['id']}/transactions").json()["data"]
    assert rows[-1]["event"] == "refund" and rows[-1]["gateway"] == refund["payments"][0]["provider_id"]
    assert bc.get("usstore01", "/v3/orders/999999/transactions").status_code == 404


def test_shipments_ship_lines_and_the_order_shows_them(bc: BC) -> None:
    from integrations.bigcommerce.parsing import consignment_products, parse_order

    created = bc.ctl.create_order(
        "frstore02",
        status_id=11,
        lines=[
            {"name": "Vase", "price": "24.00", "quantity": 2},
            {"name": "Bowl", "price": "12.00", "quantity": 1},
        ],
        shipping_cost="5.00",
        pickup=False,
        date_created="2026-01-05T10:00:00Z",
    )
    order_id = created["order"]["id"]
    vase, bowl = (p["id"] for p in created["products"])
    assert bc.get("frstore02", f"/v2/orders/{order_id}/shipments").status_code == 204

    def read():
        raw = bc.get(
            "frstore02",
            f"/v2/orders/{order_id}",
            include="consignments.line_items,fees",
            consignment_structure="object",
        ).json()
        return parse_order(raw, consignment_products(raw))

    assert not read().is_fully_shipped and read().date_shipped is None
    first = bc.ctl.ship(
        "frstore02", order_id, items=[{"order_product_id": vase, "quantity": 2}], at="2026-01-06T09:00:00Z"
    )
    assert first["order"]["status_id"] == 3
    assert [e["scope"] for e in first["events"]] == ["store/order/statusUpdated", "store/order/updated"]
    assert not read().is_fully_shipped
    last = bc.ctl.ship("frstore02", order_id, at="2026-01-09T15:00:00Z")  # the rest
    assert (
        last["order"]["status_id"] == 2
        and last["order"]["date_modified"] == "Fri, 09 Jan 2026 15:00:00 +0000"
    )
    order = read()
    assert order.is_fully_shipped and order.date_shipped == datetime(2026, 1, 6, 9, tzinfo=UTC)
    shipments = bc.get("frstore02", f"/v2/orders/{order_id}/shipments").json()
    assert [(s["date_created"], s["items"]) for s in shipments] == [
        (
            "Tue, 06 Jan 2026 09:00:00 +0000",
            [{"order_product_id": vase, "product_id": ANY_INT, "quantity": 2}],
        ),
        (
            "Fri, 09 Jan 2026 15:00:00 +0000",
            [{"order_product_id": bowl, "product_id": ANY_INT, "quantity": 1}],
        ),
    ]
    refused = bc.http.post(f"{bc.base_url}/_sim/stores/frstore02/orders/{order_id}/ship", json={}, timeout=5)
    assert refused.status_code == 422 and "nothing left to ship" in refused.text


class _AnyInt:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, int)


ANY_INT = _AnyInt()
