"""Channel → GL mappings, postings (one per idempotency key), their lines and their audit trail."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from connector.models import Tenant, WebhookEvent

from .dimensions import dimension_problems

MONEY: dict[str, Any] = {"max_digits": 18, "decimal_places": 4}


# A mapping version effective from this date applies to every order: the data migration gives existing mappings
# this date, and it is the default of a channel's first mapping.
BEGINNING = date(1900, 1, 1)
# Fields of a version that decide what an entry posts. Changing one on a version entries already used is refused: add
# a new version with a later "effective from" date instead (docs/decisions/0022-mapping-versions-and-dimensions.md).
# A channel mapping's GL accounts by role, in the order the admin, imports and checks show them.
ACCOUNT_FIELDS: tuple[str, ...] = (
    "receivable_account",
    "revenue_account",
    "shipping_account",
    "handling_account",
    "wrapping_account",
    "fee_account",
    "tax_account",
    "discount_account",
    "cogs_account",
    "inventory_account",
)
VERSIONED_FIELDS: tuple[str, ...] = (
    *ACCOUNT_FIELDS,
    "company",
    "site",
    "entry_type",
    "journal",
    "dimensions",
    "effective_from",
    "channel_id",
    "tenant_id",
)


class ChannelMapping(models.Model):
    """One version of the GL accounts, X3 organisation and dimensions a BigCommerce sales channel posts to.

    A channel has one or more versions; the one in force on an entry's GL date is the latest whose
    ``effective_from`` is on or before it. An order whose channel has none in force is parked (needs mapping).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="channel_mappings")
    channel_id = models.PositiveIntegerField(help_text="BigCommerce channel_id (1 = the default storefront)")
    effective_from = models.DateField(
        default=BEGINNING,
        help_text="GL date from which this version applies. To change a channel's accounts, organisation or "
        "dimensions, add a version with a new date: entries dated before it keep the earlier version.",
    )
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
    company = models.CharField(
        max_length=10, blank=True, help_text="X3 company (CPY); blank: not sent, X3 derives it from the site"
    )
    site = models.CharField(
        max_length=10, blank=True, help_text="X3 site for this channel; blank: the tenant's"
    )
    entry_type = models.CharField(
        max_length=10, blank=True, help_text="X3 entry type (TYP); blank: the tenant's X3 connection's"
    )
    journal = models.CharField(
        max_length=10, blank=True, help_text="X3 journal (JOU); blank: the tenant's X3 connection's"
    )
    dimensions = models.JSONField(
        default=dict,
        blank=True,
        help_text='Analytical dimensions per line role: {"revenue": {"CCT": "WEB", "BRA": "{channel_id}"}}. '
        "Roles: receivable, revenue, shipping, handling, wrapping, fee, tax, discount, cogs, inventory, refund, "
        "rounding. {channel_id} is replaced by the order's channel.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who added or last changed this version",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "channel_id", "-effective_from"]
        verbose_name = "channel mapping version"
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "channel_id", "effective_from"], name="uniq_channel_mapping_version"
            )
        ]

    def __str__(self) -> str:
        since = "" if self.effective_from == BEGINNING else f" from {self.effective_from:%Y-%m-%d}"
        return f"{self.tenant} · channel {self.channel_id}{since}" + (f" ({self.name})" if self.name else "")

    # Accounts every entry needs: the others fall back to these or are optional (see Accounts.from_mapping).
    REQUIRED_ACCOUNTS = ("receivable_account", "revenue_account", "shipping_account", "tax_account")

    def blank_required_accounts(self) -> list[str]:
        """The labels of the required accounts left blank (the form forbids it; an import or a script may not)."""
        return [
            str(getattr(self._meta.get_field(name), "verbose_name", name))
            for name in self.REQUIRED_ACCOUNTS
            if not (getattr(self, name) or "").strip()
        ]

    def clean(self) -> None:
        """Dimensions are well formed; accounts are checked against the tenant's X3 chart when one is loaded
        (accounting/chart.py), with the dimension types its accounts require; a version entries used is frozen."""
        super().clean()
        problems: dict[str, Any] = {}
        dimension_errors = dimension_problems(self.dimensions)
        if dimension_errors:
            problems["dimensions"] = dimension_errors
        if self.pk is not None:
            used = self.postings.exclude(status__in=("waiting", "needs_mapping", "skipped")).count()
            stored = type(self).objects.filter(pk=self.pk).values(*VERSIONED_FIELDS).first()
            changed = [f for f in VERSIONED_FIELDS if stored is not None and stored[f] != getattr(self, f)]
            if used and changed:
                problems.setdefault("effective_from", []).append(
                    f"This version was used by {used} entr{'y' if used == 1 else 'ies'}, which keep it: "
                    f"add a new version with a later 'effective from' date instead of changing "
                    f"{', '.join(c.removesuffix('_id').replace('_', ' ') for c in changed)}."
                )
        if self.tenant_id is None:
            if problems:
                raise ValidationError(problems)
            return
        from .chart import (  # chart.py imports these models
            mapping_account_problems,
            mapping_dimension_problems,
        )

        for field, message in mapping_account_problems(self).items():
            problems.setdefault(field, []).append(message)
        if not dimension_errors:
            for field, message in mapping_dimension_problems(self).items():
                problems.setdefault(field, []).append(message)
        if problems:
            raise ValidationError(problems)


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
        SUMMARY = "summary", "Daily summary"

    class Status(models.TextChoices):
        WAITING = "waiting", "Waiting (order not confirmed)"
        NEEDS_MAPPING = "needs_mapping", "Needs mapping"
        AWAITING_APPROVAL = "awaiting_approval", "Awaiting approval"
        PENDING = "pending", "Pending"
        POSTING = "posting", "Posting"
        UNKNOWN = "unknown", "Outcome unknown (checking X3)"
        RETRY = "retry", "Retry scheduled"
        POSTED = "posted", "Posted"
        NEEDS_ATTENTION = "needs_attention", "Needs attention"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authorization"
        HELD = "held", "Held: period closed"
        SKIPPED = "skipped", "Skipped"
        IN_SUMMARY = "in_summary", "In a daily summary (not sent by itself)"

    class Trigger(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        REPLAY = "replay", "Replay"
        ADMIN = "admin", "Admin"
        SWEEP = "sweep", "Sweep"

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
    source_currency = models.CharField(
        max_length=3,
        blank=True,
        help_text="The order's own currency when the entry was converted; else blank",
    )
    exchange_rate = models.DecimalField(
        max_digits=24,
        decimal_places=10,
        null=True,
        blank=True,
        help_text="BigCommerce's store-default-to-order-currency rate used to convert the entry (blank: none)",
    )
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
        default=dict,
        blank=True,
        help_text="The GL accounts by role, organisation and dimensions this entry used (later entries of the "
        "order reuse them)",
    )
    mapping_version = models.ForeignKey(
        ChannelMapping,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="postings",
        help_text="The channel mapping version this entry used (the one in force on the order's GL date)",
    )
    company = models.CharField(max_length=10, blank=True, help_text="X3 company (CPY) sent; blank: none sent")
    site = models.CharField(max_length=10, blank=True, help_text="X3 site (FCY) used")
    entry_type = models.CharField(max_length=10, blank=True, help_text="X3 entry type (TYP) used")
    journal = models.CharField(max_length=10, blank=True, help_text="X3 journal (JOU) used")
    attempts = models.PositiveIntegerField(default=0)
    held_period = models.CharField(
        max_length=7,
        blank=True,
        help_text="YYYY-MM: the closed X3 period this entry waits for (or was moved out of)",
    )
    original_gl_date = models.DateField(
        null=True, blank=True, help_text="The entry's own date, when a closed period moved it to a later one"
    )
    may_exist_in_x3 = models.BooleanField(
        "May already be in X3",
        default=False,
        help_text="A create request may have reached Sage X3: every further attempt asks X3 for the reference "
        "before sending again. Set before a send; cleared only when that very send provably did not reach X3; "
        "never reset by retries or operators.",
    )
    last_error = models.TextField(blank=True)
    order_read_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Order rows: when the BigCommerce re-read this row was last planned from started (a webhook "
        "received before it is covered by that read)",
    )
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.WEBHOOK)
    source_event = models.ForeignKey(WebhookEvent, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    posted_at = models.DateTimeField(null=True, blank=True)
    summary = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="members",
        help_text="Daily summary mode: the summary entry that carries this entry to X3 (docs/decisions/0024)",
    )
    # The reconciliation's figures of this entry, stored when it is planned (accounting.figures.stored_figures;
    # docs/decisions/0030-reconciliation-figures-stored.md): BigCommerce's side from the snapshot, quantized to the
    # currency, and the GL side as the sums of the entry's own lines per column. Lines never change once written.
    bc_sales = models.DecimalField(**MONEY, default=Decimal(0), help_text="BigCommerce total (0 when void)")
    bc_tax = models.DecimalField(**MONEY, default=Decimal(0), help_text="BigCommerce tax")
    bc_shipping = models.DecimalField(
        **MONEY, default=Decimal(0), help_text="BigCommerce shipping and handling"
    )
    bc_refund = models.DecimalField(
        **MONEY, default=Decimal(0), help_text="Refund entries: the refund's total"
    )
    gl_sales = models.DecimalField(**MONEY, default=Decimal(0), help_text="Receivable of the entry's lines")
    gl_revenue = models.DecimalField(**MONEY, default=Decimal(0), help_text="Revenue, wrapping and fee lines")
    gl_discount = models.DecimalField(**MONEY, default=Decimal(0), help_text="Discount lines")
    gl_shipping = models.DecimalField(**MONEY, default=Decimal(0), help_text="Shipping and handling lines")
    gl_tax = models.DecimalField(**MONEY, default=Decimal(0), help_text="Tax lines")
    gl_cogs = models.DecimalField(**MONEY, default=Decimal(0), help_text="Cost of goods sold lines")

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
            # The reconciliation tells orders with adjustments or reversals from those with only their own entry.
            models.Index(
                fields=["parent"], condition=Q(kind__in=["adjustment", "reversal"]), name="posting_followers"
            ),
        ]
        permissions = [
            ("operate_posting", "Can retry and re-post postings and webhook events"),
            ("export_posting", "Can export postings, reconciliation and trial balance"),
        ]

    def __str__(self) -> str:
        return f"{self.entry_label} — {self.get_status_display()}"

    def save(self, *args, **kwargs) -> None:
        self._found_posted = False
        super().save(*args, **kwargs)
        if self._found_posted:  # raised here, outside save()'s own atomic block, so the caller's stays usable
            raise ImmutablePostingError(f"Posting {self.idempotency_key} is posted and cannot be changed")

    def _do_update(self, base_qs, using, pk_val, values, *args, **kwargs):
        """A posted row is never overwritten: the UPDATE of ``save()`` skips it (one statement, no read first, and
        no gap between a check and the write); ``save()`` then raises ImmutablePostingError."""
        if not values:
            return super()._do_update(base_qs, using, pk_val, values, *args, **kwargs)
        if base_qs.filter(pk=pk_val).exclude(status=self.Status.POSTED)._update(values) > 0:
            return True
        if base_qs.filter(pk=pk_val, status=self.Status.POSTED).exists():
            self._found_posted = True
            return True  # nothing written; not "missing" either, so no INSERT
        return False  # no such row: save() inserts it

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
        if self.kind == self.Kind.SUMMARY:
            return self.description or f"Daily summary {self.idempotency_key}"
        number = self.idempotency_key.rsplit(":", 1)[-1]
        return f"{self.get_kind_display()} {number} of order {self.order_id}"


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
    dimensions = models.JSONField(
        default=dict, blank=True, help_text="Analytical dimensions sent with the line: type -> value"
    )

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


class ChainedRecord(models.Model):
    """A record of the tenant's tamper-evident audit chain (accounting/audit_chain.py; docs/decisions/0013).

    Rows are only ever appended, through :mod:`accounting.audit_chain`, which fills the chain columns: saving one
    any other way, changing or deleting one is refused here (raw SQL is what ``verify_audit`` catches).
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    seq = models.PositiveBigIntegerField(help_text="Position in the tenant's audit chain (1, 2, …)")
    prev_hash = models.CharField(max_length=64, help_text="Hash of the previous record of the tenant's chain")
    hash = models.CharField(max_length=64, help_text="SHA-256 of prev_hash + this record's canonical JSON")

    class Meta:
        abstract = True

    def save(self, *args, **kwargs) -> None:
        if not self._state.adding:
            raise ImmutablePostingError(f"{type(self).__name__} records are append-only")
        if not self.hash:
            raise ImmutablePostingError(
                f"{type(self).__name__} records are appended through accounting.audit_chain"
            )
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ImmutablePostingError(f"{type(self).__name__} records are append-only")


class PostingAttempt(ChainedRecord):
    """One call to Sage X3 made for a posting: what was sent and what came back (credentials never stored)."""

    class Outcome(models.TextChoices):
        OK = "ok", "OK"
        NOT_FOUND = "not_found", "Not found"
        RETRYABLE = "retryable", "Retryable error"
        UNKNOWN = "unknown", "Outcome unknown"
        PERMANENT = "permanent", "Permanent error"

    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="attempt_log")
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
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["posting", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="uniq_attempt_chain_seq")]

    def __str__(self) -> str:
        return f"#{self.attempt} {self.operation} → {self.outcome}"


class PostingLog(ChainedRecord):
    """Append-only history of a posting: every state change, who or what caused it, and why."""

    posting = models.ForeignKey(Posting, on_delete=models.PROTECT, related_name="log")
    created_at = models.DateTimeField(default=timezone.now)
    from_status = models.CharField(max_length=20, blank=True)
    to_status = models.CharField(max_length=20)
    trigger = models.CharField(max_length=20, blank=True)
    # PROTECT: the user is part of the chained record; people who acted are deactivated, not deleted.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT)
    message = models.TextField(blank=True)

    class Meta:
        ordering = ["posting", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "seq"], name="uniq_log_chain_seq")]

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status}"


class X3Circuit(models.Model):
    """A tenant's circuit breaker for Sage X3 (see docs/decisions/0009-exactly-once-and-circuit-breaker.md).

    Closed: postings go out as usual. After ``CIRCUIT_FAILURE_THRESHOLD`` consecutive "X3 unavailable" failures
    (refused, reset, timeout, 408, 5xx) it opens: postings wait without spending their attempt budget, and one
    posting at a time is let through as a probe when ``next_probe_at`` comes. The first success closes it and the
    waiting postings are made due again. Kept apart from the X3 connection so saving credentials in the admin can
    never overwrite its state.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="x3_circuit")
    failures = models.PositiveIntegerField(default=0, help_text="Consecutive 'X3 unavailable' failures")
    opened_at = models.DateTimeField(
        null=True, blank=True, help_text="When X3 was found down (blank: closed)"
    )
    next_probe_at = models.DateTimeField(null=True, blank=True)
    probes = models.PositiveIntegerField(default=0, help_text="Probes sent since the circuit opened")
    last_error = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "X3 circuit"

    def __str__(self) -> str:
        return f"{self.tenant}: {'open since ' + self.opened_at.isoformat() if self.opened_at else 'closed'}"

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


class AuditChainHead(models.Model):
    """The last link of a tenant's audit chain. Appending locks this row (``SELECT … FOR UPDATE``), so two workers
    appending for one tenant at once take turns instead of forking the chain."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="audit_head")
    seq = models.PositiveBigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.tenant} · audit chain at #{self.seq}"


class AuditCheck(models.Model):
    """The result of the last ``verify_audit`` run for a tenant, shown in the admin without re-reading the chain."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="audit_check")
    checked_at = models.DateTimeField()
    intact = models.BooleanField()
    records = models.PositiveBigIntegerField(default=0, help_text="Records verified")
    message = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"{self.tenant}: {'intact' if self.intact else 'broken'}"


class GlChart(models.Model):
    """The last chart of accounts refresh of a tenant: when, whether it worked, and what X3 said if not."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="gl_chart")
    refreshed_at = models.DateTimeField(null=True, blank=True, help_text="Last successful refresh")
    attempted_at = models.DateTimeField(null=True, blank=True)
    ok = models.BooleanField(default=False)
    message = models.TextField(blank=True)
    account_count = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "chart of accounts"
        verbose_name_plural = "charts of accounts"

    def __str__(self) -> str:
        return f"{self.tenant}: {self.account_count} accounts"


class GlAccount(models.Model):
    """One GL account of a tenant's X3 chart, cached by the chart refresh (accounting/chart.py)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="gl_accounts")
    code = models.CharField(max_length=40)
    name = models.CharField(max_length=200, blank=True)
    postable = models.BooleanField(default=True, help_text="X3 accepts entries on it (active, not closed)")
    dimensions = models.JSONField(default=list, blank=True, help_text="Dimension types X3 requires")
    refreshed_at = models.DateTimeField()

    class Meta:
        ordering = ["tenant", "code"]
        verbose_name = "GL account"
        constraints = [models.UniqueConstraint(fields=["tenant", "code"], name="uniq_gl_account")]

    def __str__(self) -> str:
        return f"{self.code} {self.name}".strip()


class TenderMapping(models.Model):
    """Where one way of paying books: payments at ``gateway`` (and ``method``, blank = any) are debited to
    ``account`` (a payment-clearing account) instead of the channel's receivable. docs/payments-and-currencies.md."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="tender_mappings")
    gateway = models.CharField(
        max_length=40,
        help_text="BigCommerce transaction gateway, e.g. braintree, stripe, paypalexpress, bankdeposit, cod",
    )
    method = models.CharField(
        max_length=40,
        blank=True,
        help_text="Transaction method, e.g. credit_card, electronic_wallet, offline. Blank: any method",
    )
    account = models.CharField(max_length=40, help_text="Debit: the payment-clearing account for this tender")
    name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["tenant", "gateway", "method"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "gateway", "method"], name="uniq_tender_mapping")
        ]

    def __str__(self) -> str:
        what = f"{self.gateway} / {self.method or 'any method'}"
        return f"{self.tenant} · {what}" + (f" ({self.name})" if self.name else "")

    def save(self, *args, **kwargs) -> None:
        self.gateway, self.method = self.gateway.strip().lower(), self.method.strip().lower()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        """The account is checked against the tenant's X3 chart when one is loaded, like a channel mapping's."""
        super().clean()
        self.gateway, self.method = self.gateway.strip().lower(), self.method.strip().lower()
        if self.tenant_id is None:
            return
        from .chart import account_problems  # chart.py imports these models: a real cycle

        problems = account_problems(self.tenant_id, {"account": self.account})
        if problems:
            raise ValidationError(problems)
