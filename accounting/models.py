"""Channel → GL mappings, postings (one per idempotency key), their lines and their audit trail."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from connector.models import Tenant, WebhookEvent

MONEY = {"max_digits": 18, "decimal_places": 4}


class ChannelMapping(models.Model):
    """The GL accounts one BigCommerce sales channel posts to. An order whose channel has none is parked."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="channel_mappings")
    channel_id = models.PositiveIntegerField(help_text="BigCommerce channel_id (1 = the default storefront)")
    name = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    receivable_account = models.CharField(max_length=40, help_text="Debit: receivable / payment clearing")
    revenue_account = models.CharField(max_length=40, help_text="Credit: product revenue")
    shipping_account = models.CharField(max_length=40, help_text="Credit: shipping revenue")
    handling_account = models.CharField(
        max_length=40, blank=True, help_text="Blank: use the shipping account"
    )
    wrapping_account = models.CharField(max_length=40, blank=True, help_text="Blank: use the revenue account")
    fee_account = models.CharField(max_length=40, blank=True, help_text="Blank: use the revenue account")
    tax_account = models.CharField(max_length=40, help_text="Credit: sales tax payable")
    discount_account = models.CharField(
        max_length=40, blank=True, help_text="Debit: discounts. Blank: discounts reduce the revenue line."
    )
    cogs_account = models.CharField(
        max_length=40, blank=True, help_text="Debit: cost of goods. Blank: no COGS"
    )
    inventory_account = models.CharField(max_length=40, blank=True, help_text="Credit: inventory (with COGS)")
    site = models.CharField(
        max_length=10, blank=True, help_text="X3 site for this channel; blank: the tenant's"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "channel_id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "channel_id"], name="uniq_channel_mapping")]

    def __str__(self) -> str:
        return f"{self.tenant} · channel {self.channel_id}" + (f" ({self.name})" if self.name else "")


class ImmutablePostingError(Exception):
    """A posted entry is part of the books: it is never changed or deleted, only reversed by a new posting."""


class Posting(models.Model):
    """One journal entry we owe (or owed) Sage X3, identified by its idempotency key.

    The row exists before anything is sent; its status is the source of truth for the work, and the queue only
    rings the bell. See docs/decisions/0002-postings-state-machine.md.
    """

    class Kind(models.TextChoices):
        ORDER = "order", "Order"
        REFUND = "refund", "Refund"
        ADJUSTMENT = "adjustment", "Adjustment"
        REVERSAL = "reversal", "Reversal"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting (order not confirmed)"
        NEEDS_MAPPING = "needs_mapping", "Needs mapping"
        PENDING = "pending", "Pending"
        POSTING = "posting", "Posting"
        UNKNOWN = "unknown", "Outcome unknown (checking X3)"
        RETRY = "retry", "Retry scheduled"
        POSTED = "posted", "Posted"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authorization"
        SKIPPED = "skipped", "Skipped"

    # States in which the work is not finished and the sweep must keep it moving.
    OPEN_STATUSES = (Status.PENDING, Status.POSTING, Status.UNKNOWN, Status.RETRY)

    class Trigger(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        REPLAY = "replay", "Replay"
        ADMIN = "admin", "Admin"
        SWEEP = "sweep", "Sweep"
        COMMAND = "command", "Command"

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="postings")
    idempotency_key = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.ORDER)
    order_id = models.BigIntegerField(db_index=True)
    refund_id = models.BigIntegerField(null=True, blank=True)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    channel_id = models.PositiveIntegerField(null=True, blank=True)
    order_status_id = models.PositiveIntegerField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    gl_date = models.DateField(null=True, blank=True)
    total = models.DecimalField(**MONEY, default=Decimal(0), help_text="Receivable amount of the entry")
    difference = models.DecimalField(**MONEY, default=Decimal(0), help_text="Amount on the rounding line")
    flagged = models.BooleanField(default=False)
    flag_reason = models.CharField(max_length=300, blank=True)
    description = models.CharField(max_length=200, blank=True)
    reference = models.CharField(max_length=60, blank=True, help_text="Idempotency reference written into X3")
    x3_document_number = models.CharField(max_length=60, blank=True, db_index=True)
    x3_uuid = models.CharField(max_length=80, blank=True)
    order_modified_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="BigCommerce's date_modified of the order this entry was planned from",
    )
    snapshot = models.JSONField(
        default=dict, blank=True, help_text="The order amounts this entry was built from"
    )
    accounts = models.JSONField(
        default=dict, blank=True, help_text="The GL accounts by role this entry used (refunds reuse them)"
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.WEBHOOK)
    source_event = models.ForeignKey(WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    posted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="uniq_posting_key"),
        ]
        indexes = [
            models.Index(fields=["tenant", "order_id"]),
            models.Index(fields=["status", "next_attempt_at"]),
            # The workspace: reconciliation, trial balance and dashboard read a tenant's entries by GL date/status.
            models.Index(fields=["tenant", "gl_date"], name="posting_tenant_gl_date"),
            models.Index(fields=["tenant", "status"], name="posting_tenant_status"),
        ]
        permissions = [
            ("operate_posting", "Can retry and re-post postings and webhook events"),
            ("export_posting", "Can export postings, reconciliation and trial balance"),
        ]

    def __str__(self) -> str:
        return f"{self.entry_label} — {self.get_status_display()}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            stored = type(self).objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored == self.Status.POSTED:
                raise ImmutablePostingError(f"Posting {self.idempotency_key} is posted and cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        if type(self).objects.filter(pk=self.pk, status=self.Status.POSTED).exists():
            raise ImmutablePostingError(f"Posting {self.idempotency_key} is posted and cannot be deleted")
        return super().delete(*args, **kwargs)

    @property
    def entry_label(self) -> str:
        """Plain words for the entry: "Order 103", "Refund 5001 of order 101", "Adjustment 2 of order 300"."""
        if self.kind == self.Kind.ORDER:
            return f"Order {self.order_id}"
        if self.kind == self.Kind.REFUND:
            return f"Refund {self.refund_id} of order {self.order_id}"
        number = self.idempotency_key.rsplit(":", 1)[-1]
        return f"{self.get_kind_display()} {number} of order {self.order_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class PostingLine(models.Model):
    posting = models.ForeignKey(Posting, on_delete=models.CASCADE, related_name="lines")
    line_no = models.PositiveIntegerField()
    role = models.CharField(
        max_length=20, help_text="receivable, revenue, shipping, tax, discount, rounding, …"
    )
    account = models.CharField(max_length=40)
    debit = models.DecimalField(**MONEY, default=Decimal(0))
    credit = models.DecimalField(**MONEY, default=Decimal(0))
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["posting", "line_no"]
        constraints = [models.UniqueConstraint(fields=["posting", "line_no"], name="uniq_posting_line")]

    def __str__(self) -> str:
        return f"Line {self.line_no}: {self.role} {self.account}"

    def save(self, *args, **kwargs) -> None:
        self._guard()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._guard()
        return super().delete(*args, **kwargs)

    def _guard(self) -> None:
        if Posting.objects.filter(pk=self.posting_id, status=Posting.Status.POSTED).exists():
            raise ImmutablePostingError("Lines of a posted entry cannot be changed")


class PostingAttempt(models.Model):
    """One call to Sage X3 made for a posting: what was sent and what came back (credentials never stored)."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        NOT_FOUND = "not_found", "Not found"
        RETRYABLE = "retryable", "Retryable error"
        UNKNOWN = "unknown", "Outcome unknown"
        PERMANENT = "permanent", "Permanent error"

    posting = models.ForeignKey(Posting, on_delete=models.CASCADE, related_name="attempt_log")
    attempt = models.PositiveIntegerField()
    operation = models.CharField(max_length=20, help_text="find (check by reference) or create")
    method = models.CharField(max_length=10)
    url = models.CharField(max_length=500)
    request_body = models.TextField(blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["posting", "id"]

    def __str__(self) -> str:
        return f"#{self.attempt} {self.operation} → {self.outcome}"


class PostingLog(models.Model):
    """Append-only history of a posting: every state change, who or what caused it, and why."""

    posting = models.ForeignKey(Posting, on_delete=models.CASCADE, related_name="log")
    created_at = models.DateTimeField(auto_now_add=True)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    trigger = models.CharField(max_length=20, blank=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["posting", "id"]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"
