"""Tenants, their credentials, and inbound webhook events."""

from __future__ import annotations

from decimal import Decimal

from django.core.validators import MinValueValidator
from django.db import models
from django_cryptography.fields import encrypt

# BigCommerce's "paid" statuses: Shipped, Partially Shipped, Awaiting Pickup, Awaiting Shipment, Completed,
# Awaiting Fulfillment (../shared/reference/bigcommerce.md §6.3). Refunded (4) is "neither paid nor unpaid".
DEFAULT_CONFIRMED_STATUS_IDS = [2, 3, 8, 9, 10, 11]


def default_confirmed_status_ids() -> list[int]:
    return list(DEFAULT_CONFIRMED_STATUS_IDS)


def redact(value: str | None) -> str:
    """What the admin and logs may show of a secret: that it is set, and its last 4 characters if long enough."""
    if not value:
        return "(not set)"
    if len(value) < 12:
        return "set (••••)"
    return f"set (••••{value[-4:]})"


class Tenant(models.Model):
    """One merchant: one BigCommerce store and one Sage X3 connection."""

    slug = models.SlugField(unique=True, help_text="Used in the webhook URL: /webhooks/bigcommerce/<slug>/")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(
        default=True, help_text="Inactive tenants get 404 on webhooks; nothing posts."
    )
    confirmed_status_ids = models.JSONField(
        default=default_confirmed_status_ids,
        help_text="BigCommerce status IDs that count as confirmed (paid). Orders in other statuses wait.",
    )
    rounding_account = models.CharField(
        max_length=40, help_text="GL account for differences between an order's components and its total."
    )
    rounding_threshold = models.DecimalField(
        max_digits=12,
        decimal_places=4,
        default=Decimal("0.05"),
        validators=[MinValueValidator(Decimal(0))],
        help_text="A posting whose difference line exceeds this amount is flagged for review.",
    )

    class GlDatePolicy(models.TextChoices):
        CONFIRMED = "confirmed", "Date the order became confirmed (paid)"
        CREATED = "created", "Date the order was created"

    class OrderRefundPolicy(models.TextChoices):
        REFUND_ACCOUNT = "refund_account", "Post to the refunds account (no tax, as BigCommerce records it)"
        PROPORTIONAL = "proportional", "Allocate across the order's revenue, shipping and tax lines"

    gl_date_policy = models.CharField(
        max_length=20,
        choices=GlDatePolicy.choices,
        default=GlDatePolicy.CONFIRMED,
        help_text="Which date an order's entry is booked on. Refunds use their own date.",
    )
    order_refund_policy = models.CharField(
        max_length=20,
        choices=OrderRefundPolicy.choices,
        default=OrderRefundPolicy.REFUND_ACCOUNT,
        help_text='How order-level ("custom amount") refunds, which carry no tax in BigCommerce, are posted.',
    )
    refund_account = models.CharField(
        max_length=40,
        blank=True,
        help_text="Refunds account for order-level refunds. Blank: the order's revenue account.",
    )
    refund_restock_cogs = models.BooleanField(
        default=False,
        help_text="Reverse cost of goods for refunded product quantities (the goods went back to stock).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def is_confirmed_status(self, status_id: int) -> bool:
        return status_id in {int(s) for s in self.confirmed_status_ids}


class BigCommerceStore(models.Model):
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="bigcommerce")
    store_hash = models.CharField(max_length=40, unique=True)
    access_token = encrypt(models.CharField(max_length=200, blank=True))
    client_id = models.CharField(max_length=100, blank=True)
    client_secret = encrypt(models.CharField(max_length=200, blank=True))
    api_base_url = models.URLField(
        blank=True, help_text="Leave blank for BigCommerce. Set only for tests or a simulator."
    )
    # Which webhook authentication schemes this store accepts (a request must pass at least one).
    accept_standard_webhooks = models.BooleanField(
        default=True,
        help_text="webhook-id/-timestamp/-signature headers, HMAC-SHA256 keyed with the client secret.",
    )
    accept_custom_header = models.BooleanField(
        default=False, help_text="A secret header registered with the hook (BigCommerce's `headers`)."
    )
    accept_x_bc_signature = models.BooleanField(
        default=False,
        help_text="X-BC-Signature: HMAC-SHA256 of the body with the client secret. Not in BigCommerce's docs.",
    )
    webhook_header_name = models.CharField(max_length=64, blank=True, default="X-Webhook-Secret")
    webhook_header_value = encrypt(models.CharField(max_length=200, blank=True))

    class Meta:
        verbose_name = "BigCommerce store"

    def __str__(self) -> str:
        return f"store {self.store_hash}"


class X3Connection(models.Model):
    class Method(models.TextChoices):
        REST_BASIC = "rest_basic", "REST api1 + HTTP Basic"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="x3")
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.REST_BASIC)
    server_url = models.URLField(help_text="Syracuse server with port, e.g. https://x3.example.com:8124")
    folder = models.CharField(max_length=40, help_text="X3 endpoint/folder, e.g. SEED")
    username = models.CharField(max_length=100, blank=True)
    password = encrypt(models.CharField(max_length=200, blank=True))
    verify_tls = models.BooleanField(default=True)
    ca_bundle = models.CharField(
        max_length=300,
        blank=True,
        help_text="Path to a CA bundle for servers with a private certificate chain.",
    )
    timeout_seconds = models.PositiveIntegerField(default=60)
    entry_type = models.CharField(max_length=10, help_text="X3 entry type (TYP), e.g. ODG")
    journal = models.CharField(max_length=10, help_text="X3 journal (JOU)")
    site = models.CharField(
        max_length=10, help_text="Financial site (FCY); a channel mapping may override it"
    )
    reference_prefix = models.CharField(
        max_length=16,
        blank=True,
        help_text="Start of the reference written into X3 (REFINT, 25 characters). Blank: BC-<store hash>.",
    )
    rest_mapping = models.JSONField(
        default=dict,
        blank=True,
        help_text="Overrides of the default api1 class/representation and field mapping (docs/x3-mapping.md).",
    )

    class Meta:
        verbose_name = "Sage X3 connection"

    def __str__(self) -> str:
        return f"{self.server_url} / {self.folder}"


class WebhookEvent(models.Model):
    """One accepted BigCommerce delivery, stored raw before any processing.

    De-duplicated on ``delivery_key``: BigCommerce retries a delivery up to 11 times over 48 hours.
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="webhook_events")
    delivery_key = models.CharField(max_length=200)
    webhook_id = models.CharField(max_length=200, blank=True)
    scope = models.CharField(max_length=100)
    store_id = models.CharField(max_length=40, blank=True)
    order_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    refund_id = models.BigIntegerField(null=True, blank=True)
    bc_hash = models.CharField("BigCommerce hash", max_length=64, blank=True)
    event_created_at = models.BigIntegerField(null=True, blank=True, help_text="Payload created_at (Unix s)")
    body = models.TextField()
    headers = models.JSONField(default=dict)
    verified_by = models.CharField(max_length=40)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    deliveries = models.PositiveIntegerField(default=1, help_text="How many times BigCommerce delivered it")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="When a failed event is retried")
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "delivery_key"], name="uniq_webhook_delivery"),
        ]
        indexes = [models.Index(fields=["status", "received_at"])]

    def __str__(self) -> str:
        return f"{self.scope} order {self.order_id} ({self.status})"
