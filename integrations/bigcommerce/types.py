"""Typed, parsed BigCommerce objects. Money is ``Decimal`` exactly as BigCommerce sent it (4-decimal strings)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TypedDict

ZERO = Decimal(0)


@dataclass(frozen=True)
class OrderProduct:
    id: int  # order product id (the refund item_id for PRODUCT items)
    product_id: int
    sku: str
    name: str
    quantity: int
    total_ex_tax: Decimal
    total_inc_tax: Decimal
    total_tax: Decimal
    cost_price_ex_tax: Decimal  # per unit; "the cost of your products to you"
    quantity_refunded: int = 0
    wrapping_cost_ex_tax: Decimal = ZERO
    wrapping_cost_tax: Decimal = ZERO
    # A gift certificate sold in the order: line ``type`` "giftcertificate" (or a ``gift_certificate_id``). The
    # money is a liability until the certificate is redeemed, not revenue.
    is_gift_certificate: bool = False
    # Shipping (recognition on shipment, Tenant.gl_date_policy "shipped_last"): ``type`` "physical" lines are
    # shipped; digital lines and gift certificates never are.
    is_physical: bool = True
    quantity_shipped: int = 0


@dataclass(frozen=True)
class OrderFee:
    id: int
    type: str
    name: str
    cost_ex_tax: Decimal
    cost_inc_tax: Decimal
    cost_tax: Decimal


@dataclass(frozen=True)
class Order:
    """``GET /v2/orders/{id}`` plus its products (and fees), flattened."""

    id: int
    channel_id: int
    status_id: int
    status: str
    payment_status: str
    date_created: datetime
    date_modified: datetime
    currency_code: str  # the transactional currency (``default_currency_code``): what the shopper paid in
    is_tax_inclusive_pricing: bool
    subtotal_ex_tax: Decimal
    subtotal_inc_tax: Decimal
    subtotal_tax: Decimal
    shipping_cost_ex_tax: Decimal
    shipping_cost_inc_tax: Decimal
    shipping_cost_tax: Decimal
    handling_cost_ex_tax: Decimal
    handling_cost_inc_tax: Decimal
    handling_cost_tax: Decimal
    wrapping_cost_ex_tax: Decimal
    wrapping_cost_inc_tax: Decimal
    wrapping_cost_tax: Decimal
    discount_amount: Decimal
    coupon_discount: Decimal
    total_ex_tax: Decimal
    total_inc_tax: Decimal
    total_tax: Decimal
    store_credit_amount: Decimal = ZERO  # paid with store credit (a tender)
    gift_certificate_amount: Decimal = ZERO  # paid with gift certificates (a tender)
    is_deleted: bool = False
    # Multi-currency stores: the store's default currency and ``store_default_to_transactional_exchange_rate``
    # (transactional amount = store-default amount x rate). Blank / 1 on single-currency stores.
    store_default_currency_code: str = ""
    store_default_rate: Decimal = Decimal(1)
    # Set only on a copy converted to the store's default currency (accounting.journal.in_store_currency): the
    # currency BigCommerce's amounts were in. Blank on an order as BigCommerce sent it.
    source_currency_code: str = ""
    products: tuple[OrderProduct, ...] = ()
    fees: tuple[OrderFee, ...] = ()
    date_shipped: datetime | None = None  # ``""`` in BigCommerce while nothing is shipped
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_fully_shipped(self) -> bool:
        """Whether nothing is left to ship: every physical line's quantity not refunded is shipped, or the order is
        Shipped (2) or Completed (10) (a completed pickup is never "shipped"). An order with nothing physical counts
        as shipped: there is nothing to wait for."""
        if self.status_id in (2, 10):
            return True
        return all(
            p.quantity_shipped >= p.quantity - p.quantity_refunded
            for p in self.products
            if p.is_physical and not p.is_gift_certificate
        )

    @property
    def may_have_refunds(self) -> bool:
        """Whether it is worth one more call to list the order's v3 refunds.

        v2 ``refunded_amount`` is documented as always 0, so look at the signals that are reliable: the refund
        statuses (4 Refunded, 14 Partially Refunded), the payment status, and refunded quantities on the lines.
        """
        return (
            self.status_id in (4, 14)
            or "refund" in self.payment_status.lower()
            or any(p.quantity_refunded for p in self.products)
        )


@dataclass(frozen=True)
class RefundItem:
    item_type: str  # PRODUCT, GIFT_WRAPPING, SHIPPING, HANDLING, ORDER, FEE
    item_id: int
    quantity: int | None
    requested_amount: Decimal | None


@dataclass(frozen=True)
class RefundPayment:
    id: int
    provider_id: str
    amount: Decimal
    offline: bool
    is_declined: bool


@dataclass(frozen=True)
class Refund:
    """One v3 refund (``/v3/orders/payment_actions/refunds``). Amounts are per refund, not cumulative."""

    id: int
    order_id: int
    created: datetime
    reason: str
    total_amount: Decimal
    total_tax: Decimal
    items: tuple[RefundItem, ...] = ()
    payments: tuple[RefundPayment, ...] = ()
    raw: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Transaction:
    """One row of ``GET /v3/orders/{id}/transactions``: a payment event at a gateway."""

    id: int
    event: str  # purchase, authorization, capture, refund, void, pending, settled
    method: str  # credit_card, electronic_wallet, gift_certificate, store_credit, offline, custom, ...
    gateway: str  # braintree, stripe, paypalexpress, bankdeposit, cod, custom, ... ("" when BigCommerce sends none)
    amount: Decimal
    currency: str
    status: str  # ok, error
    test: bool = False
    payment_method_id: str = ""

    @property
    def collects_money(self) -> bool:
        """A successful purchase or capture: money the gateway took for the order (authorizations and
        pending/void/refund/settled events are not counted, so an authorise-then-capture is counted once)."""
        return self.status == "ok" and self.event in ("purchase", "capture")


@dataclass(frozen=True)
class OrderStatus:
    id: int
    name: str


@dataclass(frozen=True)
class Channel:
    id: int
    name: str
    type: str
    platform: str
    status: str


@dataclass(frozen=True)
class Hook:
    id: int
    scope: str
    destination: str
    is_active: bool
    headers: dict[str, str] = field(default_factory=dict)


class OrderSummary(TypedDict):
    """One row of :meth:`BigCommerceClient.list_orders`: just enough to decide what to fetch."""

    id: int
    date_modified: datetime
    status_id: int
    channel_id: int
