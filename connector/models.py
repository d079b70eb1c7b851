"""Tenants, their credentials, and inbound webhook events."""

from __future__ import annotations

import datetime
import re
import zoneinfo
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from integrations.sagex3.accounts import chart_query_problems
from integrations.sagex3.graphql_mapping import effective_graphql_mapping, graphql_mapping_problems

from .fields import encrypted

# BigCommerce's "paid" statuses: Shipped, Partially Shipped, Awaiting Pickup, Awaiting Shipment, Completed,
# Awaiting Fulfillment (docs/reference/bigcommerce.md §6.3). Refunded (4) is "neither paid nor unpaid".
DEFAULT_CONFIRMED_STATUS_IDS = [2, 3, 8, 9, 10, 11]


def default_confirmed_status_ids() -> list[int]:
    return list(DEFAULT_CONFIRMED_STATUS_IDS)


def redact(value: str | None) -> str:
    """What the admin and logs may show of a secret: whether it is set. No characters of it, not even the last few."""
    return "set" if value else "not set"


def validate_time_zone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            f"{value!r} is not a time zone: use a name like Europe/Paris or America/New_York"
        ) from None


class Tenant(models.Model):
    """One merchant: one BigCommerce store and one Sage X3 connection."""

    slug = models.SlugField(unique=True, help_text="Used in the webhook URL: /webhooks/bigcommerce/SLUG/")
    name = models.CharField(max_length=200)
    is_active = models.BooleanField(
        default=True,
        help_text="Inactive tenants get 404 on webhooks and nothing is sent to X3: their postings wait until the "
        "tenant is active again.",
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
        SHIPPED_LAST = "shipped_last", "Date the order was fully shipped (waits until everything is shipped)"

    class ReviewPolicy(models.TextChoices):
        OFF = "off", "Post without review"
        FLAGGED = "flagged", "Review entries flagged for rounding before they post"
        ALL = "all", "Review every entry before it posts"

    class ClosedPeriodPolicy(models.TextChoices):
        PARK = "park", "Park it for a person (needs attention)"
        NEXT_PERIOD = (
            "next_period",
            "Post on the first day of the next open period (original date in the description)",
        )
        WAIT = "wait", "Hold it and post it by itself once the period is open again"

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
    reconciled_until = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="The reconciliation poll has compared BigCommerce with our postings up to this time.",
    )
    review_policy = models.CharField(
        max_length=10,
        choices=ReviewPolicy.choices,
        default=ReviewPolicy.OFF,
        help_text="Review before posting: entries wait as 'awaiting approval' with a preview until an accountant "
        "approves them. Entries flagged for rounding always wait when review is on.",
    )
    closed_period_policy = models.CharField(
        max_length=12,
        choices=ClosedPeriodPolicy.choices,
        default=ClosedPeriodPolicy.PARK,
        help_text="What happens to an entry X3 refuses because its date is in a closed (or not yet open) period.",
    )
    refund_restock_cogs = models.BooleanField(
        default=False,
        help_text="Reverse cost of goods for refunded product quantities (the goods went back to stock).",
    )
    # Tenders and currencies (docs/payments-and-currencies.md). Gateway clearing accounts are TenderMappings.
    gift_certificate_account = models.CharField(
        max_length=40,
        blank=True,
        help_text="Liability for gift certificates: those sold are credited here instead of revenue, those "
        "redeemed as payment are debited. Blank: gift certificates sold count as revenue and redeemed ones stay "
        "on the channel's receivable.",
    )
    store_credit_account = models.CharField(
        max_length=40,
        blank=True,
        help_text="Liability for store credit: store credit used as payment is debited here, refunds paid back "
        "as store credit are credited. Blank: both stay on the channel's receivable.",
    )

    class PostingCurrencyPolicy(models.TextChoices):
        TRANSACTIONAL = "transactional", "The currency the shopper paid in"
        STORE_DEFAULT = (
            "store_default",
            "The store's default currency, at the exchange rate BigCommerce recorded on the order",
        )

    posting_currency_policy = models.CharField(
        max_length=16,
        choices=PostingCurrencyPolicy.choices,
        default=PostingCurrencyPolicy.TRANSACTIONAL,
        help_text="Which currency entries are posted in. An order keeps the currency of its first entry for all "
        "its later entries.",
    )
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="tenants",
        help_text="Staff users who may see and work on this tenant (superusers see every tenant).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    # Not columns: facts a worker's task loads with the tenant (connector/task_tenant.py); None when not loaded.
    knows_refunds: bool | None = None  # the task's order has refund postings
    maps_tenders: bool | None = None  # the tenant maps tenders to clearing accounts

    # --- Daily summary posting mode (docs/decisions/0024-daily-summary-posting.md) ---
    class PostingMode(models.TextChoices):
        PER_ORDER = "per_order", "One X3 entry per order, refund and adjustment"
        DAILY_SUMMARY = "daily_summary", "One X3 entry per channel, currency and day"

    posting_mode = models.CharField(
        max_length=20,
        choices=PostingMode.choices,
        default=PostingMode.PER_ORDER,
        help_text="Per order (default) or a daily summary per channel, currency and day.",
    )
    posting_mode_from = models.DateField(
        null=True,
        blank=True,
        help_text="Entries dated on or after this day use the posting mode; earlier ones the other mode. Blank: "
        "every entry planned from now on.",
    )
    summary_channels = models.JSONField(
        default=list,
        blank=True,
        help_text="Daily summary mode for these BigCommerce channel IDs only; empty: every channel.",
    )
    business_time_zone = models.CharField(
        max_length=50,
        blank=True,
        validators=[validate_time_zone],
        help_text="Time zone of the business day (e.g. Europe/Paris): entries are dated, and daily summaries "
        "closed, in it. Blank: the server's TIME_ZONE.",
    )
    summary_cutoff = models.TimeField(
        default=datetime.time(0, 0),
        help_text="A day closes at this time on the next day (00:00: at midnight), in the time zone above.",
    )
    summary_grace_minutes = models.PositiveIntegerField(
        default=60, help_text="Late webhooks: a day's summary is built this many minutes after the cut-off."
    )
    summary_max_lines = models.PositiveIntegerField(
        default=9999,
        validators=[MinValueValidator(3)],
        help_text="Most lines X3 accepts in one entry: a larger summary is split into balanced numbered parts.",
    )
    summary_clearing_account = models.CharField(
        max_length=40,
        blank=True,
        help_text="Balances each part of a split summary (the parts' lines on it add up to zero). Blank: the "
        "rounding account.",
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def is_confirmed_status(self, status_id: int) -> bool:
        return status_id in {int(s) for s in self.confirmed_status_ids}


class BigCommerceStore(models.Model):
    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="bigcommerce")
    store_hash = models.CharField(max_length=40, unique=True)
    access_token = encrypted(models.CharField(max_length=200, blank=True))
    client_id = models.CharField(max_length=100, blank=True)
    client_secret = encrypted(models.CharField(max_length=200, blank=True))
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
    webhook_header_value = encrypted(models.CharField(max_length=200, blank=True))

    class Meta:
        verbose_name = "BigCommerce store"

    def __str__(self) -> str:
        return f"store {self.store_hash}"

    def clean(self) -> None:
        # Here rather than in the admin form, so a tenant file (configure_tenant) gets the same checks.
        if not (self.accept_standard_webhooks or self.accept_custom_header or self.accept_x_bc_signature):
            raise ValidationError("Enable at least one webhook authentication scheme.")
        if self.accept_custom_header and not (self.webhook_header_name and self.webhook_header_value):
            raise ValidationError("The custom header scheme needs a header name and a secret value.")


class X3Connection(models.Model):
    """How one tenant reaches Sage X3: the transport and authentication (``method``), entry defaults, and for
    GraphQL the tenant's mapping. Token fields are runtime state written by connector/x3auth.py, never typed in."""

    class Method(models.TextChoices):
        REST_BASIC = "rest_basic", "REST api1 + HTTP Basic"
        GRAPHQL_OAUTH2 = "graphql_oauth2", "GraphQL + OAuth2 (Sage X3 cloud gateway)"
        GRAPHQL_JWT = "graphql_jwt", "GraphQL + connected application (JWT)"
        SOAP_BASIC = "soap_basic", "SOAP web services + HTTP Basic"

    class TokenFormat(models.TextChoices):
        JSON = "json", "JSON body (Sage's example)"
        FORM = "form", "Form-encoded body"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="x3")
    method = models.CharField(max_length=20, choices=Method.choices, default=Method.REST_BASIC)
    server_url = models.URLField(
        help_text="Syracuse server with port, e.g. https://x3.example.com:8124. For the cloud: the customer's X3 URL."
    )
    folder = models.CharField(max_length=40, help_text="X3 endpoint/folder, e.g. SEED")
    username = models.CharField(max_length=100, blank=True)
    password = encrypted(models.CharField(max_length=200, blank=True))
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
        help_text="Start of the reference written into X3 (REFINT, 25 characters). Blank: BC-STOREHASH.",
    )
    rest_mapping = models.JSONField(
        default=dict,
        blank=True,
        help_text="Overrides of the default api1 class/representation and field mapping (docs/x3-mapping.md).",
    )

    chart_query = models.JSONField(
        "chart of accounts query",
        default=dict,
        blank=True,
        help_text="How to read the GL accounts with this method: overrides of the defaults (account class / "
        "publication GACCOUNT, GraphQL x3FinanceData.account, field names). Blank: the defaults. "
        "See docs/chart-of-accounts.md.",
    )

    # --- SOAP web services (CAdxWebServiceXmlCC; user name and password above) ---
    soap_public_name = models.CharField(
        "web service public name",
        max_length=10,
        default="GAS",
        help_text="The publication of the journal-entry object (GESAWE), at most 10 characters, e.g. GAS or ZGAS.",
    )
    soap_pool_alias = models.CharField(
        "SOAP pool alias",
        max_length=40,
        blank=True,
        help_text="The classic SOAP pool to use. Blank: the folder name.",
    )
    soap_pool_id = models.CharField("SOAP pool ID", max_length=40, blank=True)
    soap_code_lang = models.CharField(
        "language code", max_length=3, default="ENG", help_text="X3 language of the answers, e.g. ENG, FRA."
    )
    soap_request_config = models.CharField(
        "request config",
        max_length=200,
        default="adxwss.optreturn=JSON&adxwss.beautify=false",
        help_text="Sent in the call context. Keep adxwss.optreturn=JSON.",
    )
    soap_wsdl_url = models.URLField(
        "WSDL URL",
        blank=True,
        help_text="Blank: the WSDL shipped with the connector. Or the server's own, e.g. "
        "https://x3.example.com:8124/soap-wsdl/syracuse/collaboration/syracuse/CAdxWebServiceXmlCC?wsdl",
    )
    soap_mapping = models.JSONField(
        "SOAP field mapping",
        default=dict,
        blank=True,
        help_text="Overrides of the default object XML mapping: groups, fields, amount style (docs/x3-soap.md).",
    )

    # --- GraphQL (both GraphQL methods) ---
    graphql_url = models.URLField(
        "GraphQL URL",
        blank=True,
        help_text="Blank: {server URL}/xtrem/api (connected application) or {gateway endpoint}/service/{folder}/api "
        "(cloud).",
    )
    graphql_mutation = models.TextField(
        "create mutation",
        blank=True,
        help_text="The GraphQL mutation that creates a journal entry in this X3 (built with X3 Builder API "
        "operations). Blank: the default template (docs/x3-graphql.md).",
    )
    graphql_variables = models.JSONField(
        "mutation variables template",
        default=dict,
        blank=True,
        help_text="JSON template of the mutation's variables, with ${reference}, ${account}, … and one $lines object. "
        "Blank: the default.",
    )
    graphql_lookup_query = models.TextField(
        "lookup query",
        blank=True,
        help_text="The query that finds an entry by our reference before any re-post. Blank: the default.",
    )
    graphql_mapping = models.JSONField(
        "GraphQL result paths and options",
        default=dict,
        blank=True,
        help_text="Overrides of lookup_variables, document_number_path, lookup_nodes_path, "
        "lookup_document_number_field, lookup_reference_field, date_format.",
    )

    # --- OAuth2, Sage X3 cloud gateway (authorization code) ---
    oauth_client_id = models.CharField("OAuth client ID", max_length=200, blank=True)
    oauth_client_secret = encrypted(models.CharField("OAuth client secret", max_length=500, blank=True))
    oauth_authorise_url = models.URLField(
        "authorise URL",
        blank=True,
        help_text="e.g. https://api.eu-prod-sagex3.com/v1/token/authorise",
    )
    oauth_token_url = models.URLField(
        "token URL", blank=True, help_text="e.g. https://api.eu-prod-sagex3.com/v1/token"
    )
    oauth_scope = models.CharField(
        "OAuth scope", max_length=300, blank=True, default="businessDomain.ALL api.graphQL"
    )
    oauth_token_format = models.CharField(
        "token request body",
        max_length=10,
        choices=TokenFormat.choices,
        default=TokenFormat.JSON,
        help_text="How requests to the token endpoint are encoded (the refresh body is not confirmed by Sage).",
    )
    gateway_endpoint = models.URLField(
        blank=True,
        help_text="The regional gateway the authorization named (set by 'Connect to Sage X3'); used for every call.",
    )
    access_token = encrypted(models.TextField(blank=True))
    access_token_expires_at = models.DateTimeField(null=True, blank=True)
    refresh_token = encrypted(models.TextField(blank=True))
    refresh_token_expires_at = models.DateTimeField(null=True, blank=True)
    authorized_at = models.DateTimeField(
        null=True, blank=True, help_text="Last successful 'Connect to Sage X3'"
    )
    tokens_refreshed_at = models.DateTimeField(null=True, blank=True)
    authorization_error = models.TextField(
        blank=True, help_text="Why the authorization cannot be renewed; cleared by reconnecting."
    )

    # --- Connected application (on-premise, client-signed JWT) ---
    app_client_id = models.CharField("connected app client ID", max_length=200, blank=True)
    app_secret = encrypted(models.CharField("connected app secret", max_length=500, blank=True))
    app_user = models.CharField(
        "allowed user",
        max_length=100,
        blank=True,
        help_text="The connected application's allowed Syracuse user",
    )
    app_audience = models.URLField(
        "audience URL",
        blank=True,
        help_text="The URL registered on the connected application, byte for byte. Blank: the GraphQL URL.",
    )
    app_token_lifetime = models.PositiveIntegerField(
        "token lifetime (seconds)",
        default=300,
        validators=[MinValueValidator(120)],
        help_text="At most the connected application's 'Tokens validity'.",
    )

    class Meta:
        verbose_name = "Sage X3 connection"

    def __str__(self) -> str:
        return f"{self.server_url} / {self.folder}"

    REQUIRED_BY_METHOD = {
        Method.REST_BASIC: ("username", "password"),
        Method.GRAPHQL_OAUTH2: (
            "oauth_client_id",
            "oauth_client_secret",
            "oauth_authorise_url",
            "oauth_token_url",
        ),
        Method.GRAPHQL_JWT: ("app_client_id", "app_secret", "app_user"),
        Method.SOAP_BASIC: ("username", "password"),
    }

    @property
    def is_graphql(self) -> bool:
        return self.method in (self.Method.GRAPHQL_OAUTH2, self.Method.GRAPHQL_JWT)

    def graphql_overrides(self) -> dict:
        """The tenant's GraphQL mapping overrides, as integrations.sagex3.graphql_mapping.effective_graphql_mapping takes."""
        overrides = dict(self.graphql_mapping or {})
        if self.graphql_mutation.strip():
            overrides["mutation"] = self.graphql_mutation
        if self.graphql_variables:
            overrides["variables"] = self.graphql_variables
        if self.graphql_lookup_query.strip():
            overrides["lookup_query"] = self.graphql_lookup_query
        return overrides

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}
        label = self.Method(self.method).label if self.method in self.Method.values else self.method
        for name in self.REQUIRED_BY_METHOD.get(self.Method(self.method), ()):
            if not getattr(self, name):
                errors.setdefault(name, []).append(f"Required for {label}.")
        if not isinstance(self.soap_mapping, dict):
            errors.setdefault("soap_mapping", []).append("Must be a JSON object.")
        elif self.method == self.Method.SOAP_BASIC or self.soap_mapping:
            from integrations.sagex3.soap import effective_soap_mapping, validate_soap_mapping

            errors.setdefault("soap_mapping", []).extend(
                validate_soap_mapping(effective_soap_mapping(self.soap_mapping))
            )
            if not errors["soap_mapping"]:
                del errors["soap_mapping"]
        if self.method == self.Method.SOAP_BASIC and not re.fullmatch(
            r"[A-Za-z][A-Za-z0-9_]{0,9}", self.soap_public_name or ""
        ):
            errors.setdefault("soap_public_name", []).append(
                "An X3 code of at most 10 letters, digits or underscores (longer names are cut by X3)."
            )
        if not isinstance(self.graphql_mapping, dict):
            errors.setdefault("graphql_mapping", []).append("Must be a JSON object.")
        elif not isinstance(self.graphql_variables, dict):
            errors.setdefault("graphql_variables", []).append("Must be a JSON object.")
        elif self.is_graphql or self.graphql_overrides():
            problems = graphql_mapping_problems(effective_graphql_mapping(self.graphql_overrides()))
            for key, messages in problems.items():
                field = GRAPHQL_MAPPING_FIELDS.get(key, "graphql_mapping")
                prefix = "" if field != "graphql_mapping" or key == "mapping" else f"{key}: "
                errors.setdefault(field, []).extend(prefix + m for m in messages)
        chart_problems = chart_query_problems(self.chart_query)
        if chart_problems:
            errors.setdefault("chart_query", []).extend(chart_problems)
        if errors:
            raise ValidationError(errors)


# Which model field holds each key of the effective GraphQL mapping (the others live in graphql_mapping).
GRAPHQL_MAPPING_FIELDS = {
    "mutation": "graphql_mutation",
    "variables": "graphql_variables",
    "lookup_query": "graphql_lookup_query",
}


class X3AuthorizationRequest(models.Model):
    """One "Connect to Sage X3" attempt: the OAuth2 ``state`` we sent, stored server-side and usable once.

    Only a SHA-256 of the state is kept, so a database read cannot complete someone's flow. The row remembers who
    started it, the redirect URI that the code exchange must repeat, and when it was used.
    """

    connection = models.ForeignKey(
        X3Connection, on_delete=models.CASCADE, related_name="authorization_requests"
    )
    state_hash = models.CharField(max_length=64, unique=True)
    redirect_uri = models.URLField(max_length=500)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"authorization request {self.pk} for {self.connection}"


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


# --- Alarms (connector/alerts.py) ----------------------------------------------------------------------------------


def validate_https_url(value: str) -> None:
    from django.core.validators import URLValidator

    if value:
        URLValidator(schemes=["https"], message="Enter an https:// URL.")(value)


def parse_addresses(text: str) -> list[str]:
    """Email addresses from a box where they are separated by commas, semicolons, spaces or new lines."""
    import re

    return [a for a in re.split(r"[\s,;]+", text or "") if a]


class AlertSettings(models.Model):
    """Who hears about a tenant's alarms. Without this row (or with no recipient) only ALERT_EMAILS do."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="alert_settings")
    enabled = models.BooleanField(
        default=True, help_text="Off: no alarm digest for this tenant (not even to ALERT_EMAILS)."
    )
    email_recipients = models.TextField(
        blank=True, help_text="Email addresses, separated by commas or one per line."
    )
    # Whoever has a chat webhook URL can post to the channel: it is a secret like the others.
    webhook_url = encrypted(
        models.CharField(
            "chat webhook URL",
            max_length=500,
            blank=True,
            validators=[validate_https_url],
            help_text='https URL that accepts a JSON POST {"text": …} (Slack, Google Chat, Mattermost, …).',
        )
    )
    webhook_silence_hours = models.PositiveIntegerField(
        "alarm after hours without webhook",
        null=True,
        blank=True,
        help_text="Alarm when no BigCommerce webhook arrived for this many hours. Blank: the ALERT_WEBHOOK_SILENCE_"
        "HOURS setting; 0: never (for a quiet store).",
    )

    class Meta:
        verbose_name = "alarm recipients"
        verbose_name_plural = "alarm recipients"

    def __str__(self) -> str:
        return str(self.tenant)

    @property
    def emails(self) -> list[str]:
        return parse_addresses(self.email_recipients)

    def clean(self) -> None:
        from django.core.exceptions import ValidationError
        from django.core.validators import validate_email

        bad = []
        for address in self.emails:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            raise ValidationError({"email_recipients": f"Not an email address: {', '.join(bad)}"})


class AlertState(models.Model):
    """What was last notified about one alarm condition of one tenant, so a digest only repeats it when it changed
    or ALERT_RENOTIFY_HOURS passed. ``items`` are the condition's notified parts (e.g. posting ids)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="alert_states")
    condition = models.CharField(max_length=40)
    active = models.BooleanField(default=True)
    items = models.JSONField(default=list)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the notified items")
    summary = models.CharField(max_length=300, blank=True)
    first_seen_at = models.DateTimeField()
    last_notified_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "alarm state"
        ordering = ["tenant", "condition"]
        constraints = [models.UniqueConstraint(fields=["tenant", "condition"], name="uniq_alert_state")]

    def __str__(self) -> str:
        return f"{self.tenant} · {self.condition} ({'active' if self.active else 'resolved'})"


class Notification(models.Model):
    """One alarm digest sent (or that failed to send) on one channel. Read-only in the admin."""

    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Chat webhook"

    class Outcome(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="notifications")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    recipients = models.TextField(
        blank=True, help_text="Email addresses; a chat webhook is shown by its host"
    )
    subject = models.CharField(max_length=300)
    body = models.TextField()
    conditions = models.JSONField(default=list, help_text="The alarm conditions in this digest")
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    error = models.TextField(blank=True)

    class Meta:
        verbose_name = "alarm notification"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.tenant}: {self.subject} ({self.outcome})"


class ReconcileFinding(models.Model):
    """A reconciliation run that found orders or refunds the webhooks had not brought, or re-activated hooks."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="reconcile_findings")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    orders_checked = models.PositiveIntegerField(default=0)
    orders_missed = models.PositiveIntegerField(default=0)
    refunds_missed = models.PositiveIntegerField(default=0)
    hooks_reactivated = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.tenant}: {self.orders_missed} orders, {self.refunds_missed} refunds missed"


class BulkOperation(models.Model):
    """An admin action on many postings, done by a worker (connector/bulk.py). The row is the work; the queue only
    rings the bell, and the sweep rings it again for a batch whose task was lost."""

    class Kind(models.TextChoices):
        RETRY = "retry", "Retry now"
        REPOST = "repost", "Re-post order"
        APPROVE = "approve", "Approve and post"
        REJECT = "reject", "Reject"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    tenants = models.ManyToManyField(Tenant, related_name="bulk_operations")
    posting_ids = models.JSONField(default=list, help_text="The selected postings, all of the tenants above")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    position = models.PositiveIntegerField(default=0, help_text="How many of the postings have been handled")
    done = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    report = models.JSONField(
        default=dict, help_text="Outcome counts and notes (connector.operations.Report)"
    )
    summary = models.TextField(blank=True)
    level = models.CharField(max_length=10, blank=True, help_text="success, warning or error")
    created_at = models.DateTimeField(auto_now_add=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "bulk action"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {len(self.posting_ids)} postings ({self.get_status_display()})"

    @property
    def total(self) -> int:
        return len(self.posting_ids)


class SetupCheck(models.Model):
    """The last outcome of one step of the guided setup that calls an outside system (test BigCommerce, read the
    channels, test Sage X3, dry run, register webhooks), so the page can show each step's state on every load
    without calling anything. ``fingerprint`` is a hash of the settings the check ran with: when they change, the
    step shows "settings changed since the last test" instead of a stale success."""

    class Step(models.TextChoices):
        BC_TEST = "bc_test", "Test BigCommerce"
        CHANNELS = "channels", "Store channels"
        X3_TEST = "x3_test", "Test Sage X3"
        PREVIEW = "preview", "Dry run"
        WEBHOOKS = "webhooks", "Register webhooks"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="setup_checks")
    step = models.CharField(max_length=20, choices=Step.choices)
    ok = models.BooleanField(default=False)
    summary = models.CharField(max_length=500, blank=True)
    details = models.JSONField(
        default=list, blank=True, help_text="Lines in plain words, or the channels read"
    )
    fingerprint = models.CharField(max_length=64, blank=True)
    checked_at = models.DateTimeField()
    checked_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "step"], name="uniq_setup_check")]

    def __str__(self) -> str:
        return f"{self.tenant}: {self.get_step_display()} ({'ok' if self.ok else 'failed'})"


class StoreChannel(models.Model):
    """A BigCommerce channel as ``GET /v3/channels`` last showed it: the name the workspace and lists show."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="store_channels")
    channel_id = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=40, blank=True)
    platform = models.CharField(max_length=60, blank=True)
    status = models.CharField(max_length=40, blank=True)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "channel_id"], name="uniq_store_channel"),
        ]
        ordering = ["tenant", "channel_id"]

    def __str__(self) -> str:
        return f"{self.channel_id} · {self.name}"


class PeriodRun(models.Model):
    """What every queued workspace run has: who asked, for which tenant, period and channel, and how it went."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    requested_by = models.CharField(max_length=150, blank=True)
    period_start = models.DateField()
    period_end = models.DateField()
    channel_id = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    requested_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True, help_text="When its latest task began")
    finished_at = models.DateTimeField(null=True, blank=True)
    message = models.TextField(blank=True, help_text="The outcome in plain words")

    class Meta:
        abstract = True
        ordering = ["-requested_at", "-id"]


class ReReadRun(PeriodRun):
    """A "re-read from BigCommerce" of a period: orders modified since its first day checked against the postings."""

    orders_checked = models.PositiveIntegerField(default=0)
    orders_queued = models.PositiveIntegerField(default=0)
    refunds_queued = models.PositiveIntegerField(default=0)
    resume_from = models.DateTimeField(
        null=True, blank=True, help_text="A long re-read continues in a new task from this modification time"
    )

    class Meta(PeriodRun.Meta):
        verbose_name = "re-read from BigCommerce"

    def __str__(self) -> str:
        return f"Re-read of {self.tenant} {self.period_start}–{self.period_end}: {self.get_status_display()}"


class TieOutRun(PeriodRun):
    """A tie-out against Sage X3: each posted entry of the period read back by its reference."""

    method = models.CharField(max_length=20, blank=True)
    compared = models.CharField(max_length=200, blank=True, help_text="What the lookup lets us compare")
    checked = models.PositiveIntegerField(default=0)
    matched = models.PositiveIntegerField(default=0)
    missing = models.PositiveIntegerField(default=0)
    differs = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    resume_after = models.BigIntegerField(
        default=0, help_text="A long tie-out continues in a new task after this posting id"
    )

    class Meta(PeriodRun.Meta):
        verbose_name = "tie-out against Sage X3"

    def __str__(self) -> str:
        return f"Tie-out of {self.tenant} {self.period_start}–{self.period_end}: {self.get_status_display()}"


class TieOutRow(models.Model):
    """One entry the tie-out found missing in X3, different there, or could not check (matches are not stored)."""

    class Problem(models.TextChoices):
        MISSING = "missing", "Missing in X3"
        DIFFERS = "differs", "Differs in X3"
        ERROR = "error", "Could not be checked"

    run = models.ForeignKey(TieOutRun, on_delete=models.CASCADE, related_name="rows")
    posting = models.ForeignKey("accounting.Posting", null=True, on_delete=models.SET_NULL, related_name="+")
    reference = models.CharField(max_length=60)
    problem = models.CharField(max_length=10, choices=Problem.choices)
    x3_document_number = models.CharField(max_length=60, blank=True)
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "id"]

    def __str__(self) -> str:
        return f"{self.reference}: {self.get_problem_display()}"
