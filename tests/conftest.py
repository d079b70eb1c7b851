from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from accounting.models import ChannelMapping
from connector.models import BigCommerceStore, Tenant, X3Connection

FIXTURES = Path(__file__).parent / "fixtures"
STORE_HASH = "abc123"
CLIENT_SECRET = "bc-client-secret-0123456789"
ACCESS_TOKEN = "bc-access-token-abcdefghijkl"
X3_PASSWORD = "x3-password-ZYXW"
BC_BASE = "https://bc.test"
X3_BASE = "https://x3.test:8124"


def load_fixture(name: str) -> dict:
    return copy.deepcopy(json.loads((FIXTURES / name).read_text()))


def standard_headers(
    body: bytes, secret: str = CLIENT_SECRET, *, msg_id: str | None = None, ts: int | None = None
) -> dict:
    """Standard Webhooks headers exactly as BigCommerce sends them (HMAC key = the raw client secret)."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def webhook_body(scope: str = "store/order/created", order_id: int = 250, **data) -> bytes:
    payload = {
        "scope": scope,
        "store_id": "1025646",
        "data": {"type": "order", "id": order_id, **data},
        "hash": hashlib.sha1(json.dumps({"type": "order", "id": order_id, **data}).encode()).hexdigest(),  # noqa: S324
        "created_at": int(time.time()),
        "producer": f"stores/{STORE_HASH}",
    }
    return json.dumps(payload).encode()


def money(value) -> str:
    return f"{Decimal(str(value)):.4f}"


def order_json(
    order_id: int = 250,
    *,
    channel_id: int = 2,
    status_id: int = 11,
    currency: str = "USD",
    products: list[dict] | None = None,
    shipping_ex: str = "10.00",
    shipping_tax: str = "0.80",
    discount: str = "0.00",
    tax_inclusive: bool = False,
    **overrides,
) -> dict:
    """A v2 order as GET /v2/orders/{id}?include=consignments.line_items,fees returns it, internally consistent."""
    products = products or [
        {"id": 11, "sku": "MUG-1", "quantity": 2, "price_ex": "20.00", "tax": "3.20", "cost": "7.50"},
        {"id": 12, "sku": "TEE-2", "quantity": 1, "price_ex": "40.00", "tax": "3.20", "cost": "15.00"},
    ]
    lines = []
    sub_ex = sub_tax = Decimal(0)
    for p in products:
        total_ex = Decimal(p["price_ex"]) * p["quantity"]
        tax = Decimal(p["tax"])
        sub_ex += total_ex
        sub_tax += tax
        lines.append(
            {
                "id": p["id"],
                "order_id": order_id,
                "product_id": p["id"] + 1000,
                "sku": p["sku"],
                "name": p["sku"],
                "quantity": p["quantity"],
                "base_price": money(p["price_ex"]),
                "price_ex_tax": money(p["price_ex"]),
                "total_ex_tax": money(total_ex),
                "total_inc_tax": money(total_ex + tax),
                "total_tax": money(tax),
                "base_cost_price": money(p["cost"]),
                "cost_price_ex_tax": money(p["cost"]),
                "cost_price_inc_tax": money(p["cost"]),
                "quantity_refunded": 0,
                "is_refunded": False,
            }
        )
    ship_ex, ship_tax, disc = Decimal(shipping_ex), Decimal(shipping_tax), Decimal(discount)
    total_tax = sub_tax + ship_tax
    total_inc = sub_ex + sub_tax + ship_ex + ship_tax - disc
    data = {
        "id": order_id,
        "customer_id": 7,
        "date_created": "Tue, 05 Mar 2026 21:40:11 +0000",
        "date_modified": "Tue, 05 Mar 2026 21:45:00 +0000",
        "date_shipped": "",
        "status_id": status_id,
        "status": {11: "Awaiting Fulfillment", 1: "Pending", 7: "Awaiting Payment", 10: "Completed"}.get(
            status_id, "X"
        ),
        "payment_status": "captured",
        "subtotal_ex_tax": money(sub_ex),
        "subtotal_inc_tax": money(sub_ex + sub_tax),
        "subtotal_tax": money(sub_tax),
        "base_shipping_cost": money(ship_ex),
        "shipping_cost_ex_tax": money(ship_ex),
        "shipping_cost_inc_tax": money(ship_ex + ship_tax),
        "shipping_cost_tax": money(ship_tax),
        "handling_cost_ex_tax": "0.0000",
        "handling_cost_inc_tax": "0.0000",
        "handling_cost_tax": "0.0000",
        "wrapping_cost_ex_tax": "0.0000",
        "wrapping_cost_inc_tax": "0.0000",
        "wrapping_cost_tax": "0.0000",
        "total_ex_tax": money(total_inc - total_tax),
        "total_inc_tax": money(total_inc),
        "total_tax": money(total_tax),
        "is_tax_inclusive_pricing": tax_inclusive,
        "discount_amount": money(disc),
        "coupon_discount": money(disc),
        "refunded_amount": "0.0000",
        "store_credit_amount": "0.0000",
        "gift_certificate_amount": "0.0000",
        "currency_code": currency,
        "default_currency_code": currency,
        "channel_id": channel_id,
        "is_deleted": False,
        "fees": [],
        "consignments": {
            "pickups": [],
            "shipping": [{"id": 99, "line_items": lines, "shipping_method": "Flat rate"}],
            "downloads": [],
            "email": {"gift_certificates": []},
        },
    }
    data.update(overrides)
    return data


def order_url(order_id: int) -> str:
    return f"{BC_BASE}/stores/{STORE_HASH}/v2/orders/{order_id}"


X3_ENTRY_URL = f"{X3_BASE}/api1/x3/erp/SEED/GACCENTRY"


@pytest.fixture
def tenant(db) -> Tenant:
    tenant = Tenant.objects.create(slug="acme", name="Acme Ltd", rounding_account="658000")
    BigCommerceStore.objects.create(
        tenant=tenant,
        store_hash=STORE_HASH,
        access_token=ACCESS_TOKEN,
        client_id="client-id",
        client_secret=CLIENT_SECRET,
        api_base_url=BC_BASE,
        accept_standard_webhooks=True,
        accept_custom_header=True,
        webhook_header_name="X-Webhook-Secret",
        webhook_header_value="custom-header-secret-value",
    )
    X3Connection.objects.create(
        tenant=tenant,
        server_url=X3_BASE,
        folder="SEED",
        username="WEBUSER",
        password=X3_PASSWORD,
        entry_type="ODG",
        journal="VEN",
        site="FR011",
    )
    for channel_id, prefix in ((1, "1"), (2, "2"), (3, "3")):
        ChannelMapping.objects.create(
            tenant=tenant,
            channel_id=channel_id,
            name=f"Channel {channel_id}",
            receivable_account=f"41{prefix}000",
            revenue_account=f"70{prefix}000",
            shipping_account=f"70{prefix}800",
            tax_account=f"44{prefix}570",
            discount_account=f"70{prefix}900",
            cogs_account=f"60{prefix}000",
            inventory_account=f"37{prefix}000",
        )
    return tenant
