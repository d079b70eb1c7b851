"""Tenants, their credentials, and inbound webhook events."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models

from .fields import encrypted

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
    refund_restock_cogs = models.BooleanField(
        default=False,
        help_text="Reverse cost of goods for refunded product quantities (the goods went back to stock).",
    )
    users = models.ManyToManyField(
        settings.AUTH_USER_MODEL,
        blank=True,
        related_name="tenants",
        help_text="Staff users who may see and work on this tenant (superusers see every tenant).",
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
        from django.core.exceptions import ValidationError

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
    }

    @property
    def is_graphql(self) -> bool:
        return self.method in (self.Method.GRAPHQL_OAUTH2, self.Method.GRAPHQL_JWT)

    def graphql_overrides(self) -> dict:
        """The tenant's GraphQL mapping overrides, as integrations.sagex3.graphql.effective_graphql_mapping takes."""
        overrides = dict(self.graphql_mapping or {})
        if self.graphql_mutation.strip():
            overrides["mutation"] = self.graphql_mutation
        if self.graphql_variables:
            overrides["variables"] = self.graphql_variables
        if self.graphql_lookup_query.strip():
            overrides["lookup_query"] = self.graphql_lookup_query
        return overrides

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        errors: dict[str, list[str]] = {}
        label = self.Method(self.method).label if self.method in self.Method.values else self.method
        for name in self.REQUIRED_BY_METHOD.get(self.method, ()):
            if not getattr(self, name):
                errors.setdefault(name, []).append(f"Required for {label}.")
        if not isinstance(self.graphql_mapping, dict):
            errors.setdefault("graphql_mapping", []).append("Must be a JSON object.")
        elif not isinstance(self.graphql_variables, dict):
            errors.setdefault("graphql_variables", []).append("Must be a JSON object.")
        elif self.is_graphql or self.graphql_overrides():
            from integrations.sagex3.graphql import effective_graphql_mapping, graphql_mapping_problems

            problems = graphql_mapping_problems(effective_graphql_mapping(self.graphql_overrides()))
            for key, messages in problems.items():
                field = GRAPHQL_MAPPING_FIELDS.get(key, "graphql_mapping")
                prefix = "" if field != "graphql_mapping" or key == "mapping" else f"{key}: "
                errors.setdefault(field, []).extend(prefix + m for m in messages)
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
