"""BigCommerce store data for the simulator: orders, lines, fees, refunds, and a seeded generator.

Orders are kept as Python objects with ``Decimal`` money and rendered on the fly in the shapes of BigCommerce's
OpenAPI specs (``orders.v2.oas2.yml`` ``order_Resp`` / ``orderProducts``, ``orders.v3.yml`` ``Refund``), so any
mutation (status change, edit, refund) keeps every total consistent:

* line: ``total_ex_tax = price_ex_tax * quantity``, ``total_tax = price_tax * quantity``,
  ``total_inc_tax = total_ex_tax + total_tax``;
* ``subtotal_* = sum(line total_*)``; shipping / handling / wrapping / fee ``*_inc_tax = *_ex_tax + *_tax``;
* ``total_tax = subtotal_tax + shipping_tax + handling_tax + wrapping_tax + fees_tax``;
* ``total_inc_tax = subtotal_inc + shipping_inc + handling_inc + wrapping_inc + fees_inc - discount_amount``;
* ``total_ex_tax = total_inc_tax - total_tax``.

Amounts are rounded to the currency's minor unit (JPY has none) unless a store sets ``fractional_tax`` (tax-
inclusive stores then show 4-decimal ex-tax figures such as ``"62.6793"``, as real stores do).

Mutations return the webhook events they cause as ``(scope, data)`` pairs; the server delivers them.
"""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

ZERO = Decimal(0)
ONE = Decimal(1)

Event = tuple[str, dict[str, Any]]


class DataError(ValueError):
    """A control-API request that cannot be applied (bad fields, over-refund...). Maps to HTTP 422."""


# ------------------------------------------------------------------------------------------------------- reference data


@dataclass(frozen=True)
class Currency:
    code: str
    id: int
    exponent: int
    per_usd: Decimal  # units of this currency per 1 USD (fixed simulator rates)
    symbol: str


CURRENCIES: dict[str, Currency] = {
    "USD": Currency("USD", 1, 2, Decimal(1), "$"),
    "EUR": Currency("EUR", 2, 2, Decimal("0.92"), "€"),
    "GBP": Currency("GBP", 3, 2, Decimal("0.79"), "£"),
    "JPY": Currency("JPY", 4, 0, Decimal("151.20"), "¥"),
    "CAD": Currency("CAD", 5, 2, Decimal("1.37"), "$"),
    "AUD": Currency("AUD", 6, 2, Decimal("1.52"), "$"),
}

# (id, name, system_description, control-panel sort order): GET /v2/order_statuses, from the v2 spec's example
ORDER_STATUSES: list[tuple[int, str, str, int]] = [
    (
        0,
        "Incomplete",
        "An incomplete order happens when a shopper reached the payment page, but did not complete the transaction.",
        0,
    ),
    (1, "Pending", "Customer started the checkout process, but did not complete it.", 1),
    (
        2,
        "Shipped",
        "Order has been shipped, but receipt has not been confirmed; seller has used the Ship Items action.",
        8,
    ),
    (
        3,
        "Partially Shipped",
        "Only some items in the order have been shipped, due to some products being pre-order only or other reasons.",
        6,
    ),
    (4, "Refunded", "Seller has used the Refund action.", 11),
    (5, "Cancelled", "Seller has cancelled an order, due to a stock inconsistency or other reasons.", 9),
    (
        6,
        "Declined",
        "Seller has marked the order as declined for lack of manual payment, or other reasons.",
        10,
    ),
    (
        7,
        "Awaiting Payment",
        "Customer has completed checkout process, but payment has yet to be confirmed.",
        2,
    ),
    (
        8,
        "Awaiting Pickup",
        "Order has been pulled, and is awaiting customer pickup from a seller-specified location.",
        5,
    ),
    (
        9,
        "Awaiting Shipment",
        "Order has been pulled and packaged, and is awaiting collection from a shipping provider.",
        4,
    ),
    (
        10,
        "Completed",
        "Client has paid for their digital product and their file(s) are available for download.",
        7,
    ),
    (
        11,
        "Awaiting Fulfillment",
        "Customer has completed the checkout process and payment has been confirmed.",
        3,
    ),
    (
        12,
        "Manual Verification Required",
        "Order is on hold while some aspect needs to be manually confirmed.",
        13,
    ),
    (
        13,
        "Disputed",
        "Customer has initiated a dispute resolution process for the PayPal transaction that paid for the order.",
        12,
    ),
    (14, "Partially Refunded", "Seller has partially refunded the order.", 14),
]
STATUS_NAMES = {sid: name for sid, name, _, _ in ORDER_STATUSES}
PAID_STATUS_IDS = frozenset({2, 3, 8, 9, 10, 11})

PAYMENT_STATUS_BY_STATUS = {
    0: "",
    1: "",
    2: "captured",
    3: "captured",
    4: "refunded",
    5: "void",
    6: "declined",
    7: "pending",
    8: "captured",
    9: "captured",
    10: "captured",
    11: "captured",
    12: "held for review",
    13: "captured",
    14: "partially refunded",
}

# generated status mix: mostly paid, some pending / awaiting payment / declined
DEFAULT_STATUS_WEIGHTS = {11: 30, 10: 20, 2: 15, 9: 8, 3: 5, 8: 4, 1: 5, 7: 6, 6: 3, 5: 2, 12: 1, 13: 1}

DEFAULT_CHANNELS: list[dict[str, Any]] = [
    {"id": 1, "name": "Main Storefront", "type": "storefront", "platform": "bigcommerce", "status": "active"},
    {"id": 2, "name": "Amazon US", "type": "marketplace", "platform": "amazon", "status": "connected"},
    {"id": 3, "name": "Retail POS", "type": "pos", "platform": "square", "status": "active"},
]
_ORDER_SOURCE_BY_PLATFORM = {
    "bigcommerce": "www",
    "amazon": "amazon",
    "ebay": "ebay",
    "facebook": "facebookshop",
}
_CHANNEL_WEIGHTS = [70, 20, 10, 5, 5, 5]

_PAYMENT_METHODS = {
    "storefront": [
        ("Credit Card", "braintree", 60),
        ("PayPal", "paypalcommerce", 25),
        ("Store Credit", "storecredit", 5),
    ],
    "marketplace": [("Amazon", "", 100)],
    "pos": [("Square", "squarev2", 80), ("Cash", "", 20)],
    "marketing": [("Credit Card", "stripev3", 100)],
}

_FIRST = ["Jane", "John", "Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Sofia", "Hugo", "Yuki", "Ren"]
_LAST = ["Doe", "Smith", "Martin", "Garcia", "Müller", "Rossi", "Tanaka", "Brown", "Dubois", "Novak"]
_ADDRESSES = {
    "USD": ("United States", "US", [("Austin", "Texas", "78701"), ("Denver", "Colorado", "80202")]),
    "EUR": ("France", "FR", [("Lyon", "Auvergne-Rhône-Alpes", "69002"), ("Paris", "Île-de-France", "75011")]),
    "GBP": (
        "United Kingdom",
        "GB",
        [("Leeds", "West Yorkshire", "LS1 4AP"), ("Bristol", "Bristol", "BS1 5TR")],
    ),
    "JPY": ("Japan", "JP", [("Osaka", "Osaka", "530-0001"), ("Tokyo", "Tokyo", "150-0002")]),
    "CAD": ("Canada", "CA", [("Toronto", "Ontario", "M5V 2T6")]),
    "AUD": ("Australia", "AU", [("Sydney", "New South Wales", "2000")]),
}
_PRODUCT_WORDS = (
    ["Linen", "Chambray", "Canvas", "Ceramic", "Walnut", "Copper", "Wool", "Cotton", "Oak", "Glass"],
    [
        "Towel",
        "Tote",
        "Mug",
        "Bowl",
        "Lamp",
        "Blanket",
        "Apron",
        "Vase",
        "Tray",
        "Journal",
        "Kettle",
        "Scarf",
    ],
)
_BRANDS = ["Common Good", "OFS", "Sagaform", "BigCommerce", ""]
_FEE_NAMES = ["Payment surcharge", "Eco fee", "Rush processing"]
_COUPONS = [
    ("SPRING10", "percent", Decimal(10)),
    ("WELCOME5", "fixed", Decimal(5)),
    ("VIP15", "percent", Decimal(15)),
]


def D(value: Any) -> Decimal:
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise DataError(f"not a number: {value!r}") from exc


def money4(value: Decimal) -> str:
    """v2 "Float-As-String": 4 decimals."""
    return f"{value.quantize(Decimal('0.0001'), ROUND_HALF_UP):.4f}"


def number(value: Decimal) -> int | float:
    """v3 refunds: a JSON number."""
    return int(value) if value == value.to_integral_value() else float(value)


def rfc2822(moment: datetime) -> str:
    """``Tue, 05 Mar 2019 21:40:11 +0000`` ("always in UTC in the api response")."""
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def iso8601(moment: datetime) -> str:
    """``2022-06-16T16:44:15+00:00`` (v3 refunds)."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def iso_z(moment: datetime) -> str:
    """``2021-05-07T14:54:51Z`` (v3 channels)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def parse_when(value: Any) -> datetime:
    """ISO 8601 (``Z`` allowed) or RFC 2822; naive values are UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            try:
                moment = parsedate_to_datetime(text)
            except (TypeError, ValueError) as exc:
                raise DataError(f"not a date: {value!r}") from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------------------------------------- the model


@dataclass
class Line:
    id: int
    product_id: int
    variant_id: int
    sku: str
    name: str
    type: str  # physical | digital | giftcertificate
    quantity: int
    base_price: Decimal  # the price as entered (inc tax on tax-inclusive stores)
    unit_ex: Decimal
    unit_tax: Decimal
    unit_cost: Decimal
    order_address_id: int = 0
    brand: str = ""
    quantity_refunded: int = 0
    quantity_shipped: int = 0
    wrap_id: int = 0
    wrap_name: str = ""
    wrap_base: Decimal = ZERO  # line totals (per unit * quantity)
    wrap_ex: Decimal = ZERO
    wrap_tax: Decimal = ZERO
    discount: Decimal = ZERO  # share of the order discount (inc tax)
    discount_name: str = ""
    discount_code: str | None = None
    gift_certificate_id: int | None = None
    refunded_amount: Decimal = ZERO  # what refunds took from this line (inc tax) and its tax part
    refunded_tax: Decimal = ZERO
    wrap_refunded: bool = False

    @property
    def unit_inc(self) -> Decimal:
        return self.unit_ex + self.unit_tax

    @property
    def total_ex(self) -> Decimal:
        return self.unit_ex * self.quantity

    @property
    def total_tax(self) -> Decimal:
        return self.unit_tax * self.quantity

    @property
    def total_inc(self) -> Decimal:
        return self.total_ex + self.total_tax

    @property
    def wrap_inc(self) -> Decimal:
        return self.wrap_ex + self.wrap_tax

    @property
    def discounted_total_inc(self) -> Decimal:
        return self.total_inc - self.discount


@dataclass
class Fee:
    id: int
    name: str
    base: Decimal
    ex: Decimal
    tax: Decimal
    tax_class_id: int | None = 0
    source: str = "AA"
    refunded: bool = False

    @property
    def inc(self) -> Decimal:
        return self.ex + self.tax


@dataclass
class Order:
    id: int
    channel_id: int
    customer_id: int
    status_id: int
    date_created: datetime
    date_modified: datetime
    currency: str  # transactional currency (default_currency_code)
    store_currency: str
    tax_inclusive: bool
    tax_rate: Decimal
    fractional: bool
    lines: list[Line]
    billing_address: dict[str, Any]
    shipping_address: dict[str, Any] | None  # includes "id" (the order_address_id)
    pickup: dict[str, Any] | None = None
    date_shipped: datetime | None = None
    shipping_base: Decimal = ZERO
    shipping_ex: Decimal = ZERO
    shipping_tax: Decimal = ZERO
    shipping_method: str = ""
    handling_base: Decimal = ZERO
    handling_ex: Decimal = ZERO
    handling_tax: Decimal = ZERO
    fees: list[Fee] = field(default_factory=list)
    discount_amount: Decimal = ZERO
    coupon_discount: Decimal = ZERO
    coupon_code: str | None = None
    payment_method: str = "Credit Card"
    payment_provider_id: str = ""
    payment_status: str = ""
    order_source: str = "www"
    external_source: str | None = None
    external_id: str | None = None
    external_order_id: str = ""
    is_deleted: bool = False
    store_credit_amount: Decimal = ZERO
    gift_certificate_amount: Decimal = ZERO
    customer_message: str = ""
    staff_notes: str = ""
    cart_id: str = ""
    ip_address: str = ""
    shipping_refunded: bool = False
    handling_refunded: bool = False
    refunded_total: Decimal = ZERO  # sum of v3 refunds' total_amount
    # v2 shipments: {"id", "date_created", "items": [{"order_product_id", "product_id", "quantity"}]}
    shipments: list[dict[str, Any]] = field(default_factory=list)

    # ---- derived amounts
    @property
    def currency_info(self) -> Currency:
        return CURRENCIES[self.currency]

    def totals(self) -> dict[str, Decimal]:
        sub_ex = sum((ln.total_ex for ln in self.lines), ZERO)
        sub_tax = sum((ln.total_tax for ln in self.lines), ZERO)
        wrap_base = sum((ln.wrap_base for ln in self.lines), ZERO)
        wrap_ex = sum((ln.wrap_ex for ln in self.lines), ZERO)
        wrap_tax = sum((ln.wrap_tax for ln in self.lines), ZERO)
        fees_ex = sum((f.ex for f in self.fees), ZERO)
        fees_tax = sum((f.tax for f in self.fees), ZERO)
        total_tax = sub_tax + self.shipping_tax + self.handling_tax + wrap_tax + fees_tax
        total_inc = (
            sub_ex
            + sub_tax
            + self.shipping_ex
            + self.shipping_tax
            + self.handling_ex
            + self.handling_tax
            + wrap_ex
            + wrap_tax
            + fees_ex
            + fees_tax
            - self.discount_amount
        )
        return {
            "subtotal_ex_tax": sub_ex,
            "subtotal_tax": sub_tax,
            "subtotal_inc_tax": sub_ex + sub_tax,
            "wrapping_base": wrap_base,
            "wrapping_ex_tax": wrap_ex,
            "wrapping_tax": wrap_tax,
            "wrapping_inc_tax": wrap_ex + wrap_tax,
            "fees_ex_tax": fees_ex,
            "fees_tax": fees_tax,
            "fees_inc_tax": fees_ex + fees_tax,
            "total_tax": total_tax,
            "total_inc_tax": total_inc,
            "total_ex_tax": total_inc - total_tax,
        }

    @property
    def is_digital(self) -> bool:
        return all(ln.type != "physical" for ln in self.lines) if self.lines else False


@dataclass
class Refund:
    id: int
    order_id: int
    created: datetime
    reason: str
    total_amount: Decimal
    total_tax: Decimal
    items: list[dict[str, Any]]
    payments: list[dict[str, Any]]
    user_id: int = 0
    uses_merchant_override_values: bool = False

    def to_v3(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "user_id": self.user_id,
            "created": iso8601(self.created),
            "reason": self.reason,
            "total_amount": number(self.total_amount),
            "total_tax": number(self.total_tax),
            "uses_merchant_override_values": self.uses_merchant_override_values,
            "items": [dict(item) for item in self.items],
            "payments": [dict(p) for p in self.payments],
        }


# ------------------------------------------------------------------------------------------------------ store config


def _token(rng: random.Random, length: int, alphabet: str = string.ascii_lowercase + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(length))


PRESETS: list[dict[str, Any]] = [
    # a US store: tax-exclusive sales tax, sells in USD (mostly), EUR and GBP
    {
        "currency": "USD",
        "currencies": {"USD": 80, "EUR": 12, "GBP": 8},
        "tax_inclusive": False,
        "tax_rate": "0.0825",
    },
    # a French store: VAT-inclusive prices, EUR and GBP
    {"currency": "EUR", "currencies": {"EUR": 85, "GBP": 15}, "tax_inclusive": True, "tax_rate": "0.20"},
    # a Japanese store: consumption tax included, yen has no decimals
    {"currency": "JPY", "currencies": {"JPY": 100}, "tax_inclusive": True, "tax_rate": "0.10"},
    # a UK store with 4-decimal ex-tax figures (fractional tax back-calculation)
    {
        "currency": "GBP",
        "currencies": {"GBP": 90, "EUR": 10},
        "tax_inclusive": True,
        "tax_rate": "0.20",
        "fractional_tax": True,
    },
]


@dataclass
class StoreConfig:
    hash: str
    store_id: str
    name: str
    access_token: str
    client_id: str
    client_secret: str
    currency: str = "USD"
    currencies: dict[str, int] = field(default_factory=lambda: {"USD": 100})
    tax_inclusive: bool = False
    tax_rate: Decimal = Decimal("0.0825")
    fractional_tax: bool = False
    channels: list[dict[str, Any]] = field(default_factory=lambda: [dict(c) for c in DEFAULT_CHANNELS])
    seed: int = 0
    first_order_id: int = 100
    refunded_amount_mode: str = "zero"  # "zero" (v2 spec: always 0) or "actual"
    status_webhook_on_create: bool = (
        True  # created also fires statusUpdated 0 -> status (as in the sample payload)
    )
    rate_limit_quota: int = 150
    rate_limit_window_ms: int = 30_000
    # Scopes the simulated API account lacks: "orders", "channels" (requests to them answer 403). Hooks need none.
    missing_scopes: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, spec: dict[str, Any] | None = None, *, index: int = 0, seed: int = 0) -> StoreConfig:
        """A store from a (partial) spec; missing credentials come from ``seed`` so runs are reproducible."""
        spec = dict(spec or {})
        # a preset (currency mix and tax mode) applies when asked for, or when the spec sets none of its keys
        tax_keys = ("currency", "currencies", "tax_inclusive", "tax_rate", "fractional_tax")
        preset_index = spec.pop("preset", None if any(k in spec for k in tax_keys) else index)
        preset = dict(PRESETS[int(preset_index) % len(PRESETS)]) if preset_index is not None else {}
        store_seed = int(spec.pop("seed", seed * 1000 + index))
        rng = random.Random(f"store-{store_seed}")
        merged = {**preset, **spec}
        currency = str(merged.get("currency", "USD")).upper()
        currencies = merged.get("currencies") or {currency: 100}
        if isinstance(currencies, list):
            currencies = {str(c).upper(): (100 if i == 0 else 10) for i, c in enumerate(currencies)}
        currencies = {str(k).upper(): int(v) for k, v in currencies.items()}
        for code in [currency, *currencies]:
            if code not in CURRENCIES:
                raise DataError(f"unsupported currency {code}; known: {', '.join(CURRENCIES)}")
        channels = merged.get("channels")
        if channels is None:
            channels = [dict(c) for c in DEFAULT_CHANNELS]
        elif isinstance(channels, int):
            channels = [dict(c) for c in DEFAULT_CHANNELS[:channels]] + [
                {
                    "id": i,
                    "name": f"Channel {i}",
                    "type": "storefront",
                    "platform": "custom",
                    "status": "active",
                }
                for i in range(len(DEFAULT_CHANNELS) + 1, channels + 1)
            ]
        store_hash = str(merged.get("hash") or _token(rng, 10))
        return cls(
            hash=store_hash,
            store_id=str(merged.get("store_id") or rng.randint(1_000_000, 9_999_999)),
            name=str(merged.get("name") or f"Simulated store {store_hash}"),
            access_token=str(merged.get("access_token") or _token(rng, 31)),
            client_id=str(merged.get("client_id") or _token(rng, 31)),
            client_secret=str(
                merged.get("client_secret") or _token(rng, 64, string.ascii_letters + string.digits)
            ),
            currency=currency,
            currencies=currencies,
            tax_inclusive=bool(merged.get("tax_inclusive", False)),
            tax_rate=D(merged.get("tax_rate", "0.0825")),
            fractional_tax=bool(merged.get("fractional_tax", False)),
            channels=channels,
            seed=store_seed,
            first_order_id=int(merged.get("first_order_id", 100)),
            refunded_amount_mode=str(merged.get("refunded_amount_mode", "zero")),
            status_webhook_on_create=bool(merged.get("status_webhook_on_create", True)),
            rate_limit_quota=int(merged.get("rate_limit_quota", 150)),
            rate_limit_window_ms=int(merged.get("rate_limit_window_ms", 30_000)),
            missing_scopes=[str(x) for x in merged.get("missing_scopes") or []],
        )


# ----------------------------------------------------------------------------------------------------------- the store


class StoreData:
    """One store's orders and refunds, with the mutations the control API exposes. Not thread-safe: lock outside."""

    def __init__(self, cfg: StoreConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.orders: dict[int, Order] = {}
        self.refunds: dict[int, Refund] = {}
        self.next_order_id = cfg.first_order_id
        self.next_line_id = 1
        self.next_address_id = 1
        self.next_refund_id = 1
        self.next_payment_id = 1
        self.next_fee_id = 1
        self.next_shipment_id = 1
        self.next_message_id = 1
        self.catalog = self._make_catalog()
        self.created_at = utcnow() - timedelta(days=365)

    # ---- helpers
    def quantum(self, currency: str, fractional: bool = False) -> Decimal:
        if fractional:
            return Decimal("0.0001")
        return Decimal(1).scaleb(-CURRENCIES[currency].exponent)

    def q(self, amount: Decimal, currency: str, fractional: bool = False) -> Decimal:
        return amount.quantize(self.quantum(currency, fractional), ROUND_HALF_UP)

    def split_tax(self, base: Decimal, currency: str, *, taxable: bool = True) -> tuple[Decimal, Decimal]:
        """(ex, tax) for a price as entered in the store (inc tax on tax-inclusive stores)."""
        rate = self.cfg.tax_rate if taxable else ZERO
        base = self.q(base, currency)
        if not self.cfg.tax_inclusive:
            return base, self.q(base * rate, currency)
        if self.cfg.fractional_tax:
            ex = (base / (ONE + rate)).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            return ex, base - ex
        tax = self.q(base * rate / (ONE + rate), currency)
        return base - tax, tax

    def channel(self, channel_id: int) -> dict[str, Any]:
        for ch in self.cfg.channels:
            if int(ch["id"]) == int(channel_id):
                return ch
        raise DataError(f"unknown channel_id {channel_id}")

    def to_currency(self, usd: Decimal, currency: str) -> Decimal:
        info = CURRENCIES[currency]
        amount = usd * info.per_usd
        if info.exponent == 0:
            return (amount / 10).quantize(ONE, ROUND_HALF_UP) * 10  # round yen prices to 10
        return (
            amount.quantize(ONE, ROUND_HALF_UP) - Decimal("0.01") if amount > 2 else self.q(amount, currency)
        )

    def exchange_rate(self, currency: str) -> Decimal:
        """store default -> transactional currency."""
        return (CURRENCIES[currency].per_usd / CURRENCIES[self.cfg.currency].per_usd).quantize(
            Decimal("1e-10")
        )

    def _make_catalog(self) -> list[dict[str, Any]]:
        rng = random.Random(f"catalog-{self.cfg.seed}")
        catalog = []
        for i in range(30):
            kind = "physical"
            if i in (27, 28):
                kind = "digital"
            elif i == 29:
                kind = "giftcertificate"
            name = f"{rng.choice(_PRODUCT_WORDS[0])} {rng.choice(_PRODUCT_WORDS[1])}"
            if kind == "digital":
                name = f"{name} (e-book)"
            if kind == "giftcertificate":
                name = "Gift Certificate"
            price = Decimal(rng.randint(8, 220))
            catalog.append(
                {
                    "product_id": 70 + i,
                    "sku": f"{''.join(w[0] for w in name.split()[:2]).upper()}-{100 + i}",
                    "name": name,
                    "type": kind,
                    "price_usd": Decimal(25) if kind == "giftcertificate" else price,
                    "cost_ratio": ZERO if kind == "giftcertificate" else Decimal(rng.randint(30, 70)) / 100,
                    "brand": rng.choice(_BRANDS),
                }
            )
        return catalog

    def _address(self, rng: random.Random, currency: str) -> dict[str, Any]:
        country, iso2, places = _ADDRESSES.get(currency, _ADDRESSES["USD"])
        city, state, zip_code = rng.choice(places)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        return {
            "first_name": first,
            "last_name": last,
            "company": "",
            "street_1": f"{rng.randint(1, 999)} Main Street",
            "street_2": "",
            "city": city,
            "state": state,
            "zip": zip_code,
            "country": country,
            "country_iso2": iso2,
            "phone": f"555{rng.randint(1000000, 9999999)}",
            "email": f"{first.lower()}.{last.lower()}@example.com".replace("ü", "u"),
            "form_fields": [],
        }

    # ---- order construction
    def build_order(
        self, spec: dict[str, Any], *, created: datetime, rng: random.Random | None = None
    ) -> Order:
        """An order from a (partial) spec; anything not given is drawn from ``rng``."""
        rng = rng or self.rng
        spec = dict(spec)
        channel_ids = [int(c["id"]) for c in self.cfg.channels]
        channel_id = int(
            spec.get("channel_id")
            or rng.choices(channel_ids, weights=_CHANNEL_WEIGHTS[: len(channel_ids)])[0]
        )
        channel = self.channel(channel_id)
        currency = str(
            spec.get("currency_code")
            or spec.get("currency")
            or rng.choices(list(self.cfg.currencies), weights=list(self.cfg.currencies.values()))[0]
        ).upper()
        if currency not in CURRENCIES:
            raise DataError(f"unsupported currency {currency}")
        if "status_id" in spec:
            status_id = int(spec["status_id"])
        else:
            statuses = list(DEFAULT_STATUS_WEIGHTS)
            status_id = rng.choices(statuses, weights=list(DEFAULT_STATUS_WEIGHTS.values()))[0]
        if status_id not in STATUS_NAMES:
            raise DataError(f"unknown status_id {status_id}")

        billing = {**self._address(rng, currency), **(spec.get("billing_address") or {})}
        pickup_wanted = spec.get(
            "pickup", status_id == 8 or (channel["type"] == "pos" and rng.random() < 0.3)
        )
        line_specs = spec.get("lines")
        # explicit lines: no random extras (wrapping, fees, coupons, handling, shipping cost)
        explicit = line_specs is not None
        if line_specs is None:
            line_specs = []
            for _ in range(rng.choices([1, 2, 3, 4], weights=[40, 30, 20, 10])[0]):
                product = rng.choice(self.catalog)
                line_specs.append(
                    {"product_id": product["product_id"], "quantity": rng.choice([1, 1, 1, 2, 3, 5])}
                )
        if not line_specs:
            raise DataError("an order needs at least one line")

        order = Order(
            id=int(spec.get("id") or self.next_order_id),
            channel_id=channel_id,
            customer_id=int(spec.get("customer_id", 0 if rng.random() < 0.2 else rng.randint(1, 500))),
            status_id=status_id,
            date_created=created,
            date_modified=created,
            currency=currency,
            store_currency=self.cfg.currency,
            tax_inclusive=self.cfg.tax_inclusive,
            tax_rate=self.cfg.tax_rate,
            fractional=self.cfg.fractional_tax,
            lines=[],
            billing_address=billing,
            shipping_address=None,
        )
        if order.id in self.orders:
            raise DataError(f"order {order.id} already exists")
        self.next_order_id = max(self.next_order_id, order.id + 1)

        for ls in line_specs:
            order.lines.append(self._build_line(ls, order, rng, random_extras=not explicit))
        physical = any(ln.type == "physical" for ln in order.lines)
        if physical and pickup_wanted:
            order.pickup = {
                "id": self._next("address"),
                "pickup_method_id": 1,
                "pickup_method_display_name": "Pick Up",
                "collection_instructions": "Bring your ID",
                "collection_time_description": "9am - 6pm",
                "location": {
                    "id": 1,
                    "name": "Main warehouse",
                    "code": "LOCATION-1",
                    "address_line_1": billing["street_1"],
                    "address_line_2": "",
                    "city": billing["city"],
                    "state": billing["state"],
                    "postal_code": billing["zip"],
                    "country_alpha2": billing["country_iso2"],
                    "email": "pickup@example.com",
                    "phone": "+1 111-111-1111",
                },
            }
        elif physical:
            addr = {**self._address(rng, currency), **(spec.get("shipping_address") or {})}
            addr["id"] = self._next("address")
            order.shipping_address = addr
        address_id = (order.shipping_address or order.pickup or {}).get("id", 0)
        for ln in order.lines:
            ln.order_address_id = address_id if ln.type == "physical" else 0

        # shipping and handling (entered as base prices)
        if order.shipping_address is not None:
            if "shipping_cost" in spec or explicit:
                ship_base = D(spec.get("shipping_cost", 0))
            else:
                ship_base = rng.choice(
                    [ZERO, self.to_currency(Decimal(5), currency), self.to_currency(Decimal(9), currency)]
                )
            order.shipping_method = spec.get("shipping_method") or (
                "Free Shipping" if not ship_base else "Flat Rate"
            )
            order.shipping_base = self.q(ship_base, currency)
            order.shipping_ex, order.shipping_tax = self.split_tax(ship_base, currency)
            if "handling_cost" in spec or explicit:
                handling_base = D(spec.get("handling_cost", 0))
            else:
                handling_base = self.to_currency(Decimal(3), currency) if rng.random() < 0.1 else ZERO
            order.handling_base = self.q(handling_base, currency)
            order.handling_ex, order.handling_tax = self.split_tax(handling_base, currency)
        elif spec.get("shipping_cost") or spec.get("handling_cost"):
            raise DataError("shipping/handling costs need a physical, shipped line")

        # fees
        fee_specs = spec.get("fees")
        if fee_specs is None and explicit:
            fee_specs = []
        elif fee_specs is None:
            fee_specs = (
                [{"name": rng.choice(_FEE_NAMES), "cost": self.to_currency(Decimal(2), currency)}]
                if rng.random() < 0.08
                else []
            )
        order.fees = [self._build_fee(fs, currency) for fs in fee_specs]

        # discounts: coupon (percent or fixed) and/or manual discount, spread pro rata over the lines
        if "discount_amount" in spec or "coupon_code" in spec:
            discount = self.q(D(spec.get("discount_amount", spec.get("coupon_discount", 0))), currency)
            coupon_code = spec.get("coupon_code")
            coupon_discount = (
                self.q(D(spec["coupon_discount"]), currency)
                if "coupon_discount" in spec
                else (discount if coupon_code else ZERO)
            )
        elif not explicit and rng.random() < 0.22:
            coupon_code, kind, value = rng.choice(_COUPONS)
            subtotal_inc = sum((ln.total_inc for ln in order.lines if ln.type != "giftcertificate"), ZERO)
            if kind == "percent":
                discount = self.q(subtotal_inc * value / 100, currency)
            else:
                discount = min(self.to_currency(value, currency), subtotal_inc)
            coupon_discount = discount
        else:
            discount, coupon_discount, coupon_code = ZERO, ZERO, None
        order.discount_amount = discount
        order.coupon_discount = coupon_discount
        order.coupon_code = coupon_code
        self._allocate_discount(order)

        # payment
        methods = _PAYMENT_METHODS.get(channel["type"], _PAYMENT_METHODS["storefront"])
        method, provider, _ = rng.choices(methods, weights=[m[2] for m in methods])[0]
        order.payment_method = str(spec.get("payment_method", method))
        order.payment_provider_id = str(spec.get("payment_provider_id", provider))
        order.payment_status = str(spec.get("payment_status", PAYMENT_STATUS_BY_STATUS.get(status_id, "")))
        total_inc = order.totals()["total_inc_tax"]
        if order.payment_provider_id == "storecredit":
            order.store_credit_amount = total_inc
        order.store_credit_amount = D(spec.get("store_credit_amount", order.store_credit_amount))
        order.gift_certificate_amount = D(spec.get("gift_certificate_amount", 0))

        # the rest
        platform = str(channel.get("platform", "bigcommerce"))
        order.order_source = str(
            spec.get("order_source", _ORDER_SOURCE_BY_PLATFORM.get(platform, "external"))
        )
        if channel["type"] == "marketplace":
            order.external_source = platform.capitalize()
            order.external_order_id = (
                f"{rng.randint(100, 999)}-{rng.randint(1000000, 9999999)}-{rng.randint(1000000, 9999999)}"
            )
        order.external_source = spec.get("external_source", order.external_source)
        order.external_order_id = str(spec.get("external_order_id", order.external_order_id))
        order.customer_message = str(spec.get("customer_message", ""))
        order.staff_notes = str(spec.get("staff_notes", ""))
        order.cart_id = str(spec.get("cart_id", uuid.UUID(int=rng.getrandbits(128), version=4)))
        order.ip_address = str(spec.get("ip_address", f"203.0.113.{rng.randint(1, 254)}"))
        self._apply_status_side_effects(order, status_id, created)
        return order

    def _next(self, kind: str) -> int:
        attr = f"next_{kind}_id"
        value = getattr(self, attr)
        setattr(self, attr, value + 1)
        return value

    def _build_line(
        self, ls: dict[str, Any], order: Order, rng: random.Random, *, random_extras: bool = False
    ) -> Line:
        product = None
        if "product_id" in ls:
            product = next((p for p in self.catalog if p["product_id"] == int(ls["product_id"])), None)
        if product is None and ("price" not in ls and "price_ex_tax" not in ls and "price_inc_tax" not in ls):
            product = rng.choice(self.catalog)
        product = product or {}
        kind = str(ls.get("type", product.get("type", "physical")))
        if kind not in ("physical", "digital", "giftcertificate"):
            raise DataError(f"unknown line type {kind}")
        quantity = int(ls.get("quantity", 1))
        if quantity < 1:
            raise DataError("quantity must be at least 1")
        currency = order.currency
        taxable = kind != "giftcertificate" and bool(ls.get("taxable", True))
        if "price_ex_tax" in ls or "price_inc_tax" in ls:
            rate = self.cfg.tax_rate if taxable else ZERO
            if "price_ex_tax" in ls:
                unit_ex = D(ls["price_ex_tax"])
                unit_tax = (
                    D(ls["price_inc_tax"]) - unit_ex
                    if "price_inc_tax" in ls
                    else self.q(unit_ex * rate, currency)
                )
            else:
                inc = D(ls["price_inc_tax"])
                unit_tax = self.q(inc * rate / (ONE + rate), currency)
                unit_ex = inc - unit_tax
            base = unit_ex + unit_tax if self.cfg.tax_inclusive else unit_ex
        else:
            base = D(ls["price"]) if "price" in ls else self.to_currency(product["price_usd"], currency)
            unit_ex, unit_tax = self.split_tax(base, currency, taxable=taxable)
        if "cost_price" in ls:
            unit_cost = self.q(D(ls["cost_price"]), currency, True)
        else:
            unit_cost = self.q(unit_ex * product.get("cost_ratio", Decimal("0.5")), currency)
        line = Line(
            id=self._next("line"),
            product_id=int(ls.get("product_id", product.get("product_id", 0))),
            variant_id=int(ls.get("variant_id", product.get("product_id", 0) + 1000 if product else 0)),
            sku=str(ls.get("sku", product.get("sku", ""))),
            name=str(ls.get("name", product.get("name", "Custom item"))),
            type=kind,
            quantity=quantity,
            base_price=self.q(base, currency, order.fractional),
            unit_ex=unit_ex,
            unit_tax=unit_tax,
            unit_cost=unit_cost,
            brand=str(ls.get("brand", product.get("brand", ""))),
        )
        if kind == "giftcertificate":
            line.gift_certificate_id = rng.randint(1, 9999)
        wrap = ls.get("wrapping")
        if wrap is None and random_extras and kind == "physical" and rng.random() < 0.06:
            wrap = self.to_currency(Decimal(3), currency)
        if wrap:
            wrap_unit = D(wrap["cost"] if isinstance(wrap, dict) else wrap)
            ex, tax = self.split_tax(wrap_unit, currency)
            line.wrap_id = 1
            line.wrap_name = "Gift Wrap"
            line.wrap_base = self.q(wrap_unit, currency) * quantity
            line.wrap_ex, line.wrap_tax = ex * quantity, tax * quantity
        return line

    def _build_fee(self, fs: dict[str, Any], currency: str) -> Fee:
        base = D(fs.get("cost", fs.get("cost_inc_tax", fs.get("cost_ex_tax", 0))))
        taxable = bool(fs.get("taxable", True))
        ex, tax = self.split_tax(base, currency, taxable=taxable)
        return Fee(
            id=self._next("fee"),
            name=str(fs.get("name", "Fee")),
            base=self.q(base, currency),
            ex=ex,
            tax=tax,
            tax_class_id=fs.get("tax_class_id", 0 if taxable else None),
        )

    def _allocate_discount(self, order: Order) -> None:
        lines = [ln for ln in order.lines if ln.type != "giftcertificate"] or order.lines
        for ln in order.lines:
            ln.discount, ln.discount_name, ln.discount_code = ZERO, "", None
        if not order.discount_amount:
            return
        base = sum((ln.total_inc for ln in lines), ZERO)
        left = order.discount_amount
        for i, ln in enumerate(lines):
            share = (
                left
                if i == len(lines) - 1
                else self.q(order.discount_amount * ln.total_inc / base, order.currency)
            )
            ln.discount = share
            left -= share
            ln.discount_name = "Coupon" if order.coupon_code else "Manual Discount"
            ln.discount_code = order.coupon_code

    def _apply_status_side_effects(self, order: Order, status_id: int, when: datetime) -> None:
        order.status_id = status_id
        if status_id in PAYMENT_STATUS_BY_STATUS and status_id not in (4, 14):
            order.payment_status = PAYMENT_STATUS_BY_STATUS[status_id]
        if status_id in (2, 10):
            for ln in order.lines:
                ln.quantity_shipped = ln.quantity if ln.type == "physical" else 0
            if any(ln.type == "physical" for ln in order.lines) and order.date_shipped is None:
                order.date_shipped = when
        elif status_id == 3:
            physical = [ln for ln in order.lines if ln.type == "physical"]
            for i, ln in enumerate(physical):
                ln.quantity_shipped = ln.quantity if i == 0 else 0
            if physical and order.date_shipped is None:
                order.date_shipped = when

    # ---- generation
    def generate(
        self,
        count: int,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        seed: int | None = None,
        refund_rate: float = 0.12,
        full_refund_rate: float = 0.05,
        edit_rate: float = 0.08,
        status_weights: dict[int, int] | None = None,
        spec: dict[str, Any] | None = None,
    ) -> tuple[list[int], list[int]]:
        """``count`` realistic orders created between ``start`` and ``end`` (ascending ids and dates), some later
        edited, status-changed or refunded. Returns (order ids, refund ids). No webhooks: this is history."""
        rng = random.Random(seed) if seed is not None else self.rng
        end = end or utcnow()
        start = start or end - timedelta(days=30)
        if end <= start:
            raise DataError("end must be after start")
        span = (end - start).total_seconds()
        moments = sorted(start + timedelta(seconds=int(rng.uniform(0, span * 0.9))) for _ in range(count))
        order_ids: list[int] = []
        refund_ids: list[int] = []
        weights = status_weights or DEFAULT_STATUS_WEIGHTS
        for created in moments:
            order_spec = dict(spec or {})
            if "status_id" not in order_spec:
                order_spec["status_id"] = rng.choices(list(weights), weights=list(weights.values()))[0]
            order = self.build_order(order_spec, created=created, rng=rng)
            self.orders[order.id] = order
            order_ids.append(order.id)
            latest = min(end, created + timedelta(minutes=rng.randint(1, 3 * 24 * 60)))
            order.date_modified = created if rng.random() < 0.3 else latest
            if order.date_shipped is not None:
                order.date_shipped = order.date_modified
            if rng.random() < edit_rate:  # an edit happened later: only the modification date shows it now
                order.date_modified = min(end, order.date_modified + timedelta(hours=rng.randint(1, 48)))
            if order.status_id in PAID_STATUS_IDS and order.totals()["total_inc_tax"] > 0:
                roll = rng.random()
                when = min(end, order.date_modified + timedelta(hours=rng.randint(1, 72)))
                if roll < full_refund_rate:
                    refund, _ = self.refund(
                        order.id, {"full": True, "reason": "Customer cancelled"}, now=when, rng=rng
                    )
                    refund_ids.append(refund.id)
                elif roll < full_refund_rate + refund_rate:
                    refund, _ = self.refund(
                        order.id, self._random_partial_refund(order, rng), now=when, rng=rng
                    )
                    refund_ids.append(refund.id)
        return order_ids, refund_ids

    def _random_partial_refund(self, order: Order, rng: random.Random) -> dict[str, Any]:
        candidates = [ln for ln in order.lines if ln.quantity - ln.quantity_refunded > 0]
        roll = rng.random()
        if roll < 0.15 or not candidates:
            total = order.totals()["total_inc_tax"]
            amount = self.q(total * Decimal("0.1"), order.currency) or total
            return {
                "items": [{"item_type": "ORDER", "item_id": order.id, "amount": amount}],
                "reason": "Goodwill",
            }
        line = rng.choice(candidates)
        items: list[dict[str, Any]] = [{"item_type": "PRODUCT", "item_id": line.id, "quantity": 1}]
        if roll > 0.8 and order.shipping_address and (order.shipping_ex + order.shipping_tax) > 0:
            items.append({"item_type": "SHIPPING", "item_id": order.shipping_address["id"]})
        return {"items": items, "reason": "Damaged item"}

    # ---- mutations (return webhook events)
    def create_order(self, spec: dict[str, Any], *, now: datetime | None = None) -> tuple[Order, list[Event]]:
        created = parse_when(spec["date_created"]) if spec.get("date_created") else (now or utcnow())
        order = self.build_order(spec, created=created)
        if spec.get("date_modified"):
            order.date_modified = parse_when(spec["date_modified"])
        self.orders[order.id] = order
        events: list[Event] = [("store/order/created", {"type": "order", "id": order.id})]
        if self.cfg.status_webhook_on_create and order.status_id != 0:
            events.append(_status_event(order.id, 0, order.status_id))
        return order, events

    def get(self, order_id: int) -> Order:
        order = self.orders.get(int(order_id))
        if order is None:
            raise KeyError(order_id)
        return order

    def set_status(self, order_id: int, status_id: int, *, now: datetime | None = None) -> list[Event]:
        order = self.get(order_id)
        status_id = int(status_id)
        if status_id not in STATUS_NAMES:
            raise DataError(f"unknown status_id {status_id}")
        now = now or utcnow()
        previous = order.status_id
        self._apply_status_side_effects(order, status_id, now)
        if status_id in (4, 14):
            order.payment_status = PAYMENT_STATUS_BY_STATUS[status_id]
        order.date_modified = now
        events: list[Event] = []
        if previous != status_id:
            events.append(_status_event(order.id, previous, status_id))
        events.append(("store/order/updated", {"type": "order", "id": order.id}))
        return events

    def edit(self, order_id: int, changes: dict[str, Any], *, now: datetime | None = None) -> list[Event]:
        """Change quantities/prices/costs of lines, add or remove lines, change shipping/handling/discount/notes."""
        order = self.get(order_id)
        now = now or utcnow()
        by_id = {ln.id: ln for ln in order.lines}
        for change in changes.get("lines", []):
            line = by_id.get(int(change.get("id", -1)))
            if line is None:
                raise DataError(f"order {order.id} has no line {change.get('id')}")
            if "quantity" in change:
                quantity = int(change["quantity"])
                if quantity < line.quantity_refunded:
                    raise DataError(f"line {line.id}: quantity below the refunded quantity")
                if quantity == 0:
                    order.lines.remove(line)
                    continue
                if line.wrap_ex:
                    line.wrap_base = line.wrap_base / line.quantity * quantity
                    line.wrap_ex = line.wrap_ex / line.quantity * quantity
                    line.wrap_tax = line.wrap_tax / line.quantity * quantity
                line.quantity = quantity
                line.quantity_shipped = min(line.quantity_shipped, quantity)
            if "price" in change:
                line.base_price = self.q(D(change["price"]), order.currency, order.fractional)
                line.unit_ex, line.unit_tax = self.split_tax(
                    D(change["price"]), order.currency, taxable=line.type != "giftcertificate"
                )
            if "price_ex_tax" in change or "price_inc_tax" in change:
                rate = order.tax_rate if line.type != "giftcertificate" else ZERO
                if "price_ex_tax" in change:
                    line.unit_ex = D(change["price_ex_tax"])
                    line.unit_tax = (
                        D(change["price_inc_tax"]) - line.unit_ex
                        if "price_inc_tax" in change
                        else self.q(line.unit_ex * rate, order.currency)
                    )
                else:
                    inc = D(change["price_inc_tax"])
                    line.unit_tax = self.q(inc * rate / (ONE + rate), order.currency)
                    line.unit_ex = inc - line.unit_tax
                line.base_price = line.unit_inc if order.tax_inclusive else line.unit_ex
            if "cost_price" in change:
                line.unit_cost = self.q(D(change["cost_price"]), order.currency, True)
        for spec in changes.get("add_lines", []):
            line = self._build_line(spec, order, self.rng)
            address = order.shipping_address or order.pickup or {}
            line.order_address_id = address.get("id", 0) if line.type == "physical" else 0
            order.lines.append(line)
        if not order.lines:
            raise DataError("an order needs at least one line")
        if "shipping_cost" in changes:
            if order.shipping_address is None:
                raise DataError("this order is not shipped")
            order.shipping_base = self.q(D(changes["shipping_cost"]), order.currency)
            order.shipping_ex, order.shipping_tax = self.split_tax(
                D(changes["shipping_cost"]), order.currency
            )
        if "handling_cost" in changes:
            if order.shipping_address is None:
                raise DataError("this order is not shipped")
            order.handling_base = self.q(D(changes["handling_cost"]), order.currency)
            order.handling_ex, order.handling_tax = self.split_tax(
                D(changes["handling_cost"]), order.currency
            )
        if "fees" in changes:
            order.fees = [self._build_fee(fs, order.currency) for fs in changes["fees"]]
        if "discount_amount" in changes:
            order.discount_amount = self.q(D(changes["discount_amount"]), order.currency)
            order.coupon_discount = min(order.coupon_discount, order.discount_amount)
        if "coupon_discount" in changes:
            order.coupon_discount = self.q(D(changes["coupon_discount"]), order.currency)
        for key in ("staff_notes", "customer_message", "payment_method"):
            if key in changes:
                setattr(order, key, str(changes[key]))
        self._allocate_discount(order)
        if order.totals()["total_inc_tax"] < order.refunded_total:
            raise DataError("the new total is below what was already refunded")
        order.date_modified = now
        return [("store/order/updated", {"type": "order", "id": order.id})]

    def ship(
        self, order_id: int, items: list[dict[str, Any]] | None = None, *, now: datetime | None = None
    ) -> list[Event]:
        """One shipment, as ``POST /v2/orders/{id}/shipments`` makes it: ``items`` ``[{"order_product_id",
        "quantity"}]`` (default: every physical quantity not shipped or refunded yet). The lines' ``quantity_shipped``
        grow; the order becomes Partially Shipped (3), or Shipped (2) once nothing physical is left to ship;
        ``date_shipped`` keeps the first shipment's date (what it holds for later shipments is not documented)."""
        order = self.get(order_id)
        now = now or utcnow()
        physical = {ln.id: ln for ln in order.lines if ln.type == "physical"}
        if items is None:
            items = [
                {
                    "order_product_id": ln.id,
                    "quantity": ln.quantity - ln.quantity_refunded - ln.quantity_shipped,
                }
                for ln in physical.values()
                if ln.quantity - ln.quantity_refunded - ln.quantity_shipped > 0
            ]
        if not items:
            raise DataError("nothing left to ship")
        shipped: list[dict[str, Any]] = []
        for item in items:
            line = physical.get(int(item.get("order_product_id", -1)))
            if line is None:
                raise DataError(f"order {order.id} has no physical line {item.get('order_product_id')}")
            quantity = int(item.get("quantity", 0))
            if quantity <= 0 or line.quantity_shipped + quantity > line.quantity - line.quantity_refunded:
                raise DataError(f"line {line.id}: cannot ship {quantity} more")
            line.quantity_shipped += quantity
            shipped.append({"order_product_id": line.id, "product_id": line.product_id, "quantity": quantity})
        order.shipments.append({"id": self._next("shipment"), "date_created": now, "items": shipped})
        if order.date_shipped is None:
            order.date_shipped = now
        left = any(ln.quantity_shipped < ln.quantity - ln.quantity_refunded for ln in physical.values())
        previous, order.status_id = order.status_id, 3 if left else 2
        order.date_modified = now
        events: list[Event] = []
        if previous != order.status_id:
            events.append(_status_event(order.id, previous, order.status_id))
        events.append(("store/order/updated", {"type": "order", "id": order.id}))
        return events

    def archive(self, order_id: int, *, now: datetime | None = None) -> list[Event]:
        order = self.get(order_id)
        order.is_deleted = True
        order.date_modified = now or utcnow()
        return [("store/order/archived", {"type": "order", "id": order.id})]

    def refund(
        self,
        order_id: int,
        spec: dict[str, Any],
        *,
        now: datetime | None = None,
        rng: random.Random | None = None,
    ) -> tuple[Refund, list[Event]]:
        """Create a v3 refund. ``spec``: ``{"items": [{"item_type", "item_id", "quantity"|"amount"}], "reason"}``,
        ``{"full": true}`` (everything not refunded yet) or ``{"amount": x}`` (an ORDER-level custom amount)."""
        order = self.get(order_id)
        now = parse_when(spec["at"]) if spec.get("at") else (now or utcnow())
        cur = order.currency
        items_spec = list(spec.get("items") or [])
        if spec.get("full"):
            items_spec = self._remaining_items(order)
        elif "amount" in spec and not items_spec:
            items_spec = [{"item_type": "ORDER", "item_id": order.id, "amount": spec["amount"]}]
        if not items_spec:
            raise DataError("nothing to refund")
        reason = str(spec.get("reason", "Refund"))
        items: list[dict[str, Any]] = []
        total = ZERO
        total_tax = ZERO
        effects: list[Any] = []  # applied only when the whole refund is valid
        lines = {ln.id: ln for ln in order.lines}
        fees = {f.id: f for f in order.fees}
        seen: set[tuple[str, int]] = set()
        for raw in items_spec:
            kind = str(raw.get("item_type", "")).upper()
            item_id = int(raw.get("item_id", 0))
            if (kind, item_id) in seen and kind != "ORDER":
                raise DataError(f"{kind} item {item_id} listed twice")
            seen.add((kind, item_id))
            item: dict[str, Any] = {
                "item_type": kind,
                "item_id": item_id,
                "reason": str(raw.get("reason", reason)),
            }
            if kind == "PRODUCT":
                line = lines.get(item_id)
                if line is None:
                    raise DataError(f"order {order.id} has no product line {item_id}")
                left = line.quantity - line.quantity_refunded
                quantity = int(raw.get("quantity", left))
                if quantity < 1 or quantity > left:
                    raise DataError(f"line {item_id}: can refund 1..{left} units, not {quantity}")
                remaining_amount = line.discounted_total_inc - line.refunded_amount
                remaining_tax = line.total_tax - line.refunded_tax
                if quantity == left:
                    amount, tax = remaining_amount, remaining_tax
                else:
                    amount = self.q(remaining_amount * quantity / left, cur)
                    tax = self.q(remaining_tax * quantity / left, cur)
                item.update({"quantity": quantity, "requested_amount": None})
                effects.append(("line", line, quantity, amount, tax))
            elif kind in ("SHIPPING", "HANDLING"):
                address_id = (order.shipping_address or {}).get("id")
                if address_id is None or item_id != address_id:
                    raise DataError(f"{kind} refunds take the order address id ({address_id}), not {item_id}")
                done = order.shipping_refunded if kind == "SHIPPING" else order.handling_refunded
                ex, tx = (
                    (order.shipping_ex, order.shipping_tax)
                    if kind == "SHIPPING"
                    else (order.handling_ex, order.handling_tax)
                )
                if done or ex + tx <= 0:
                    raise DataError(f"no {kind.lower()} cost left to refund")
                amount, tax = ex + tx, tx
                item["requested_amount"] = number(amount)
                effects.append((kind.lower(), None, 0, amount, tax))
            elif kind == "GIFT_WRAPPING":
                line = lines.get(item_id)
                if line is None or not line.wrap_ex or line.wrap_refunded:
                    raise DataError(f"no gift wrapping left to refund on line {item_id}")
                amount, tax = line.wrap_inc, line.wrap_tax
                item["requested_amount"] = number(amount)
                effects.append(("wrap", line, 0, amount, tax))
            elif kind == "FEE":
                fee = fees.get(item_id)
                if fee is None or fee.refunded:
                    raise DataError(f"no fee {item_id} left to refund")
                amount, tax = fee.inc, fee.tax
                item["requested_amount"] = number(amount)
                effects.append(("fee", fee, 0, amount, tax))
            elif kind == "ORDER":
                if item_id != order.id:
                    raise DataError(f"ORDER refunds take the order id ({order.id}) as item_id")
                amount = self.q(D(raw.get("amount", raw.get("requested_amount", 0))), cur)
                if amount <= 0:
                    raise DataError("an ORDER refund needs a positive amount")
                tax = ZERO  # custom amounts are tax-exempt
                item["requested_amount"] = number(amount)
                effects.append(("order", None, 0, amount, tax))
            else:
                raise DataError(f"unknown item_type {kind!r}")
            total += amount
            total_tax += tax
            items.append(item)
        total_tax = self.q(
            total_tax, cur
        )  # 4-decimal tax parts (fractional stores) -> the currency's decimals
        order_total = order.totals()["total_inc_tax"]
        if order.refunded_total + total > order_total:
            raise DataError(
                f"refund of {total} exceeds the refundable amount {order_total - order.refunded_total} of order {order.id}"
            )
        for kind, obj, quantity, amount, tax in effects:
            if kind == "line":
                obj.quantity_refunded += quantity
                obj.refunded_amount += amount
                obj.refunded_tax += tax
            elif kind == "shipping":
                order.shipping_refunded = True
            elif kind == "handling":
                order.handling_refunded = True
            elif kind == "wrap":
                obj.wrap_refunded = True
            elif kind == "fee":
                obj.refunded = True
        order.refunded_total += total
        provider = order.payment_provider_id or "custom"
        payment = {
            "id": self._next("payment"),
            "provider_id": str(spec.get("provider_id", provider)),
            "amount": number(total),
            "offline": provider in ("custom", "storecredit") or bool(spec.get("offline", False)),
            "is_declined": False,
            "declined_message": "",
            "transaction_id": str(uuid.UUID(int=(rng or self.rng).getrandbits(128), version=4)),
        }
        refund = Refund(
            id=self._next("refund"),
            order_id=order.id,
            created=now,
            reason=reason,
            total_amount=total,
            total_tax=total_tax,
            items=items,
            payments=[payment],
        )
        self.refunds[refund.id] = refund
        previous = order.status_id
        new_status = 4 if order.refunded_total >= order_total else 14
        order.status_id = new_status
        order.payment_status = PAYMENT_STATUS_BY_STATUS[new_status]
        order.date_modified = max(order.date_modified, now)
        events: list[Event] = [
            (
                "store/order/refund/created",
                {"type": "order", "id": order.id, "refund": {"refund_id": refund.id}},
            )
        ]
        if previous != new_status:
            events.append(_status_event(order.id, previous, new_status))
        events.append(("store/order/updated", {"type": "order", "id": order.id}))
        return refund, events

    def _remaining_items(self, order: Order) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for ln in order.lines:
            if ln.quantity > ln.quantity_refunded:
                items.append(
                    {"item_type": "PRODUCT", "item_id": ln.id, "quantity": ln.quantity - ln.quantity_refunded}
                )
            if ln.wrap_ex and not ln.wrap_refunded:
                items.append({"item_type": "GIFT_WRAPPING", "item_id": ln.id})
        address_id = (order.shipping_address or {}).get("id")
        if address_id and not order.shipping_refunded and order.shipping_ex + order.shipping_tax > 0:
            items.append({"item_type": "SHIPPING", "item_id": address_id})
        if address_id and not order.handling_refunded and order.handling_ex + order.handling_tax > 0:
            items.append({"item_type": "HANDLING", "item_id": address_id})
        for fee in order.fees:
            if not fee.refunded:
                items.append({"item_type": "FEE", "item_id": fee.id})
        # what the items cannot cover (e.g. a discount larger than the products): an ORDER amount
        covered = order.refunded_total
        planned = ZERO
        for item in items:
            if item["item_type"] == "PRODUCT":
                ln = next(x for x in order.lines if x.id == item["item_id"])
                planned += ln.discounted_total_inc - ln.refunded_amount
        planned += sum(
            (
                ln.wrap_inc
                for ln in order.lines
                if any(i["item_type"] == "GIFT_WRAPPING" and i["item_id"] == ln.id for i in items)
            ),
            ZERO,
        )
        if any(i["item_type"] == "SHIPPING" for i in items):
            planned += order.shipping_ex + order.shipping_tax
        if any(i["item_type"] == "HANDLING" for i in items):
            planned += order.handling_ex + order.handling_tax
        planned += sum((f.inc for f in order.fees if not f.refunded), ZERO)
        gap = order.totals()["total_inc_tax"] - covered - planned
        if (
            gap < 0
        ):  # earlier custom-amount refunds already took part of it: refund what is left as one amount
            return [
                {
                    "item_type": "ORDER",
                    "item_id": order.id,
                    "amount": order.totals()["total_inc_tax"] - covered,
                }
            ]
        if gap > 0:
            items.append({"item_type": "ORDER", "item_id": order.id, "amount": gap})
        return items

    def message(self, order_id: int) -> list[Event]:
        order = self.get(order_id)
        message_id = self._next("message")
        return [
            (
                "store/order/message/created",
                {"type": "order", "id": order.id, "message": {"order_message_id": message_id}},
            )
        ]


def _status_event(order_id: int, previous: int, new: int) -> Event:
    return (
        "store/order/statusUpdated",
        {"type": "order", "id": order_id, "status": {"previous_status_id": previous, "new_status_id": new}},
    )


# ------------------------------------------------------------------------------------------------------ v2 rendering


def _link(api_base: str, resource: str) -> dict[str, str]:
    return {"url": f"{api_base}{resource}", "resource": resource}


def line_to_v2(line: Line, order: Order) -> dict[str, Any]:
    """``orderProducts`` (GET /v2/orders/{id}/products)."""
    discounts = []
    if line.discount:
        discounts.append(
            {
                "id": "coupon" if line.discount_code else "manual-discount",
                "amount": money4(line.discount),
                "name": line.discount_name,
                "code": line.discount_code,
                "target": "order",
            }
        )
    return {
        "id": line.id,
        "order_id": order.id,
        "product_id": line.product_id,
        "variant_id": line.variant_id,
        "order_pickup_method_id": 1 if order.pickup and line.type == "physical" else 0,
        "order_address_id": line.order_address_id,
        "name": line.name,
        "name_customer": line.name,
        "name_merchant": line.name,
        "sku": line.sku,
        "upc": "",
        "type": line.type,
        "base_price": money4(line.base_price),
        "price_ex_tax": money4(line.unit_ex),
        "price_inc_tax": money4(line.unit_inc),
        "price_tax": money4(line.unit_tax),
        "base_total": money4(line.base_price * line.quantity),
        "total_ex_tax": money4(line.total_ex),
        "total_inc_tax": money4(line.total_inc),
        "total_tax": money4(line.total_tax),
        "weight": "1.0000" if line.type == "physical" else "0.0000",
        "width": "0.0000",
        "height": "0.0000",
        "depth": "0.0000",
        "quantity": line.quantity,
        "base_cost_price": money4(line.unit_cost),
        "cost_price_inc_tax": money4(line.unit_cost),
        "cost_price_ex_tax": money4(line.unit_cost),
        "cost_price_tax": "0.0000",
        "is_refunded": line.quantity_refunded >= line.quantity,
        "quantity_refunded": line.quantity_refunded,
        "refund_amount": "0.0000",
        "return_id": 0,
        "wrapping_id": line.wrap_id,
        "wrapping_name": line.wrap_name,
        "base_wrapping_cost": money4(line.wrap_base),
        "wrapping_cost_ex_tax": money4(line.wrap_ex),
        "wrapping_cost_inc_tax": money4(line.wrap_inc),
        "wrapping_cost_tax": money4(line.wrap_tax),
        "wrapping_message": "Happy birthday!" if line.wrap_id else "",
        "quantity_shipped": line.quantity_shipped,
        "event_name": None,
        "event_date": None,
        "fixed_shipping_cost": "0.0000",
        "ebay_item_id": "",
        "ebay_transaction_id": "",
        "option_set_id": None,
        "parent_order_product_id": None,
        "is_bundled_product": False,
        "bin_picking_number": "",
        "external_id": None,
        "brand": line.brand,
        "applied_discounts": discounts,
        "product_options": [],
        "configurable_fields": [],
        "gift_certificate_id": line.gift_certificate_id,
        "discounted_total_inc_tax": money4(line.discounted_total_inc),
    }


def fee_to_v2(fee: Fee) -> dict[str, Any]:
    return {
        "id": fee.id,
        "type": "custom_fee",
        "display_name_customer": fee.name,
        "display_name_merchant": fee.name,
        "source": fee.source,
        "base_cost": money4(fee.base),
        "cost_ex_tax": money4(fee.ex),
        "cost_inc_tax": money4(fee.inc),
        "cost_tax": money4(fee.tax),
        "tax_class_id": fee.tax_class_id,
    }


def shipping_address_to_v2(order: Order, api_base: str) -> dict[str, Any]:
    addr = dict(order.shipping_address or {})
    items = [ln for ln in order.lines if ln.type == "physical"]
    return {
        "id": addr.get("id"),
        "order_id": order.id,
        **{k: v for k, v in addr.items() if k != "id"},
        "items_total": sum(ln.quantity for ln in items),
        "items_shipped": sum(ln.quantity_shipped for ln in items),
        "shipping_method": order.shipping_method,
        "base_cost": money4(order.shipping_base),
        "cost_ex_tax": money4(order.shipping_ex),
        "cost_inc_tax": money4(order.shipping_ex + order.shipping_tax),
        "cost_tax": money4(order.shipping_tax),
        "cost_tax_class_id": 2,
        "base_handling_cost": money4(order.handling_base),
        "handling_cost_ex_tax": money4(order.handling_ex),
        "handling_cost_inc_tax": money4(order.handling_ex + order.handling_tax),
        "handling_cost_tax": money4(order.handling_tax),
        "handling_cost_tax_class_id": 2,
        "shipping_zone_id": 1,
        "shipping_zone_name": addr.get("country", ""),
        "shipping_quotes": _link(
            api_base, f"/orders/{order.id}/shipping_addresses/{addr.get('id')}/shipping_quotes"
        ),
    }


def shipments_to_v2(order: Order) -> list[dict[str, Any]]:
    """``GET /v2/orders/{id}/shipments`` (the accounting-relevant fields)."""
    address_id = (order.shipping_address or {}).get("id", 0)
    return [
        {
            "id": shipment["id"],
            "order_id": order.id,
            "customer_id": order.customer_id,
            "order_address_id": address_id,
            "date_created": rfc2822(shipment["date_created"]),
            "tracking_number": "",
            "shipping_method": order.shipping_method,
            "shipping_provider": "",
            "tracking_carrier": "",
            "comments": "",
            "items": [dict(item) for item in shipment["items"]],
        }
        for shipment in order.shipments
    ]


def consignments_to_v2(order: Order, api_base: str, *, with_lines: bool) -> dict[str, Any]:
    """``orderConsignment_Get`` (object structure): shipping / pickups / downloads / email.gift_certificates."""

    def items(lines: list[Line]) -> list[dict[str, Any]]:
        if with_lines:
            return [line_to_v2(ln, order) for ln in lines]
        return [_link(api_base, f"/orders/{order.id}/products/{ln.id}") for ln in lines]

    physical = [ln for ln in order.lines if ln.type == "physical"]
    digital = [ln for ln in order.lines if ln.type == "digital"]
    gifts = [ln for ln in order.lines if ln.type == "giftcertificate"]
    out: dict[str, Any] = {"pickups": [], "shipping": [], "downloads": [], "email": {"gift_certificates": []}}
    if order.pickup and physical:
        pickup = {k: v for k, v in order.pickup.items()}
        pickup["line_items"] = items(physical)
        out["pickups"].append(pickup)
    elif order.shipping_address and physical:
        addr = order.shipping_address
        out["shipping"].append(
            {
                "id": addr["id"],
                **{k: v for k, v in addr.items() if k != "id"},
                "shipping_method": order.shipping_method,
                "line_items": items(physical),
                "items_total": sum(ln.quantity for ln in physical),
                "items_shipped": sum(ln.quantity_shipped for ln in physical),
                "base_cost": number(order.shipping_base),
                "cost_ex_tax": number(order.shipping_ex),
                "cost_inc_tax": number(order.shipping_ex + order.shipping_tax),
                "cost_tax": number(order.shipping_tax),
                "cost_tax_class_id": 2,
                "base_handling_cost": number(order.handling_base),
                "handling_cost_ex_tax": number(order.handling_ex),
                "handling_cost_inc_tax": number(order.handling_ex + order.handling_tax),
                "handling_cost_tax": number(order.handling_tax),
                "handling_cost_tax_class_id": 2,
                "shipping_zone_id": 1,
                "shipping_zone_name": addr.get("country", ""),
                "shipping_quotes": _link(
                    api_base, f"/orders/{order.id}/consignments/shipping/{addr['id']}/shipping_quotes"
                ),
            }
        )
    if digital:
        out["downloads"].append(
            {"recipient_email": order.billing_address.get("email", ""), "line_items": items(digital)}
        )
    if gifts:
        out["email"]["gift_certificates"].append(
            {"recipient_email": order.billing_address.get("email", ""), "line_items": items(gifts)}
        )
    return out


def order_to_v2(
    order: Order,
    api_base: str,
    *,
    include: set[str] | frozenset[str] = frozenset(),
    consignment_object: bool = False,
    refunded_amount_mode: str = "zero",
) -> dict[str, Any]:
    """``order_Resp`` (GET /v2/orders/{id})."""
    t = order.totals()
    cur = CURRENCIES[order.currency]
    out: dict[str, Any] = {
        "id": order.id,
        "customer_id": order.customer_id,
        "date_created": rfc2822(order.date_created),
        "date_modified": rfc2822(order.date_modified),
        "date_shipped": rfc2822(order.date_shipped) if order.date_shipped else "",
        "status_id": order.status_id,
        "status": STATUS_NAMES[order.status_id],
        "custom_status": STATUS_NAMES[order.status_id],
        "subtotal_ex_tax": money4(t["subtotal_ex_tax"]),
        "subtotal_inc_tax": money4(t["subtotal_inc_tax"]),
        "subtotal_tax": money4(t["subtotal_tax"]),
        "base_shipping_cost": money4(order.shipping_base),
        "shipping_cost_ex_tax": money4(order.shipping_ex),
        "shipping_cost_inc_tax": money4(order.shipping_ex + order.shipping_tax),
        "shipping_cost_tax": money4(order.shipping_tax),
        "shipping_cost_tax_class_id": 2 if order.shipping_tax else 0,
        "base_handling_cost": money4(order.handling_base),
        "handling_cost_ex_tax": money4(order.handling_ex),
        "handling_cost_inc_tax": money4(order.handling_ex + order.handling_tax),
        "handling_cost_tax": money4(order.handling_tax),
        "handling_cost_tax_class_id": 2 if order.handling_tax else 0,
        "base_wrapping_cost": money4(t["wrapping_base"]),
        "wrapping_cost_ex_tax": money4(t["wrapping_ex_tax"]),
        "wrapping_cost_inc_tax": money4(t["wrapping_inc_tax"]),
        "wrapping_cost_tax": money4(t["wrapping_tax"]),
        "wrapping_cost_tax_class_id": 3 if t["wrapping_tax"] else 0,
        "total_ex_tax": money4(t["total_ex_tax"]),
        "total_inc_tax": money4(t["total_inc_tax"]),
        "total_tax": money4(t["total_tax"]),
        "is_tax_inclusive_pricing": order.tax_inclusive,
        "items_total": sum(ln.quantity for ln in order.lines),
        "items_shipped": sum(ln.quantity_shipped for ln in order.lines),
        "payment_method": order.payment_method,
        "payment_provider_id": order.payment_provider_id,
        "payment_status": order.payment_status,
        "refunded_amount": money4(order.refunded_total if refunded_amount_mode == "actual" else ZERO),
        "order_is_digital": order.is_digital,
        "store_credit_amount": money4(order.store_credit_amount),
        "gift_certificate_amount": money4(order.gift_certificate_amount),
        "ip_address": order.ip_address,
        "ip_address_v6": "",
        "geoip_country": order.billing_address.get("country", ""),
        "geoip_country_iso2": order.billing_address.get("country_iso2", ""),
        "currency_id": cur.id,
        "currency_code": order.currency,
        "currency_exchange_rate": "1.0000000000",
        "default_currency_id": cur.id,
        "default_currency_code": order.currency,
        "store_default_currency_code": order.store_currency,
        "store_default_to_transactional_exchange_rate": (
            f"{(CURRENCIES[order.currency].per_usd / CURRENCIES[order.store_currency].per_usd):.10f}"
        ),
        "staff_notes": order.staff_notes,
        "customer_message": order.customer_message,
        "discount_amount": money4(order.discount_amount),
        "coupon_discount": money4(order.coupon_discount),
        "shipping_address_count": 1 if order.shipping_address else 0,
        "is_deleted": order.is_deleted,
        "ebay_order_id": "0",
        "cart_id": order.cart_id,
        "billing_address": dict(order.billing_address),
        "is_email_opt_in": False,
        "credit_card_type": None,
        "order_source": order.order_source,
        "channel_id": order.channel_id,
        "external_source": order.external_source,
        "consignments": _link(api_base, f"/orders/{order.id}/consignments"),
        "products": _link(api_base, f"/orders/{order.id}/products"),
        "shipping_addresses": _link(api_base, f"/orders/{order.id}/shipping_addresses"),
        "coupons": _link(api_base, f"/orders/{order.id}/coupons"),
        "external_id": order.external_id,
        "external_merchant_id": None,
        "tax_provider_id": "BasicTaxProvider" if t["total_tax"] else "",
        "customer_locale": "en",
        "external_order_id": order.external_order_id,
        "fees": _link(api_base, f"/orders/{order.id}/fees"),
    }
    if consignment_object and ("consignments" in include or "consignments.line_items" in include):
        out["consignments"] = consignments_to_v2(
            order, api_base, with_lines="consignments.line_items" in include
        )
    if "fees" in include:
        out["fees"] = [fee_to_v2(f) for f in order.fees]
    return out


def coupons_to_v2(order: Order) -> list[dict[str, Any]]:
    if not order.coupon_code:
        return []
    return [
        {
            "id": 1,
            "coupon_id": 1,
            "order_id": order.id,
            "code": order.coupon_code,
            "amount": money4(order.coupon_discount),
            "type": 0,
            "discount": money4(order.coupon_discount),
        }
    ]


def status_list_v2() -> list[dict[str, Any]]:
    return [
        {
            "id": sid,
            "name": name,
            "system_label": name,
            "custom_label": name,
            "system_description": description,
            "order": sort_order,
        }
        for sid, name, description, sort_order in ORDER_STATUSES
    ]


def channel_to_v3(channel: dict[str, Any], created: datetime) -> dict[str, Any]:
    return {
        "id": int(channel["id"]),
        "external_id": str(channel.get("external_id", "")),
        "is_listable_from_ui": bool(channel.get("is_listable_from_ui", True)),
        "is_enabled": channel.get("status", "active") in ("active", "connected", "prelaunch"),
        "is_visible": bool(channel.get("is_visible", True)),
        "status": channel.get("status", "active"),
        "name": channel.get("name", f"Channel {channel['id']}"),
        "type": channel.get("type", "storefront"),
        "platform": channel.get("platform", "bigcommerce"),
        "date_created": iso_z(created),
        "date_modified": iso_z(created),
        "icon_url": channel.get(
            "icon_url",
            "https://storage.googleapis.com/bigcommerce-production-dev-center/images/bigcommerce_icon.svg",
        ),
    }
