from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from import_export import fields, resources
from import_export.admin import ImportExportModelAdmin
from import_export.widgets import ForeignKeyWidget

from connector import operations
from connector.admin import ReadOnlyAdmin
from connector.clients import x3_client
from connector.models import Tenant
from integrations.errors import IntegrationError

from .chart_admin import ChartNamesMappingMixin, LineNamesMixin
from .journal import quantize
from .models import (
    AuditChainHead,
    AuditCheck,
    ChannelMapping,
    GlAccount,
    GlChart,
    Posting,
    PostingAttempt,
    PostingLine,
    PostingLog,
    X3Circuit,
)
from .posting import entry_for


class ChannelMappingResource(resources.ModelResource):
    """CSV/XLSX import and export of channel mappings; the tenant is named by its slug."""

    tenant = fields.Field(
        attribute="tenant", column_name="tenant", widget=ForeignKeyWidget(Tenant, field="slug")
    )

    class Meta:
        model = ChannelMapping
        import_id_fields = ("tenant", "channel_id")
        exclude = ("id", "created_at", "updated_at")
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True  # ChannelMapping.clean checks the accounts against the X3 chart


@admin.register(ChannelMapping)
class ChannelMappingAdmin(ChartNamesMappingMixin, ImportExportModelAdmin):
    resource_classes = [ChannelMappingResource]
    list_display = (
        "tenant",
        "channel_id",
        "name",
        "is_active",
        "receivable_account",
        "revenue_account",
        "shipping_account",
        "tax_account",
        "site",
    )
    list_filter = ("tenant", "is_active")
    search_fields = ("name", "=channel_id")
    list_select_related = ("tenant",)


class PostingLineInline(LineNamesMixin, admin.TabularInline):
    model = PostingLine
    fields = ("line_no", "role", "account", "debit", "credit", "description")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class PostingAttemptInline(admin.StackedInline):
    model = PostingAttempt
    fields = (
        "attempt",
        "operation",
        "outcome",
        "method",
        "url",
        "status_code",
        "duration_ms",
        "error",
        "request_body",
        "response_body",
        "created_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    classes = ("collapse",)
    verbose_name_plural = "X3 calls (request and response bodies, credentials never stored)"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class PostingLogInline(admin.TabularInline):
    model = PostingLog
    fields = ("created_at", "from_status", "to_status", "trigger", "user", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "History"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Posting)
class PostingAdmin(ReadOnlyAdmin):
    list_display = (
        "idempotency_key",
        "order_link",
        "status_badge",
        "amount",
        "gl_date",
        "x3_document_number",
        "channel_id",
        "flagged",
        "attempts",
        "tenant",
        "created_at",
    )
    list_filter = ("status", "tenant", "kind", "channel_id", "flagged", "trigger", "gl_date", "created_at")
    search_fields = ("=order_id", "reference", "x3_document_number", "idempotency_key")
    list_select_related = ("tenant",)
    date_hierarchy = "gl_date"
    inlines = (PostingLineInline, PostingLogInline, PostingAttemptInline)
    actions = ("approve", "reject", "repost_orders", "retry_now")
    readonly_fields = [f.name for f in Posting._meta.fields] + ["balance", "x3_preview"]
    fieldsets = (
        (
            None,
            {"fields": ("tenant", "kind", "idempotency_key", "order_id", "refund_id", "parent", "status")},
        ),
        (
            "Entry",
            {
                "fields": (
                    "channel_id",
                    "order_status_id",
                    "gl_date",
                    "currency",
                    "total",
                    "balance",
                    "difference",
                    "flagged",
                    "flag_reason",
                    "description",
                )
            },
        ),
        ("Sage X3", {"fields": ("reference", "x3_document_number", "x3_uuid", "posted_at", "x3_preview")}),
        (
            "Processing",
            {
                "fields": (
                    "trigger",
                    "source_event",
                    "attempts",
                    "may_exist_in_x3",
                    "last_error",
                    "next_attempt_at",
                    "claimed_at",
                    "created_at",
                    "updated_at",
                )
            },
        ),
        ("Order snapshot", {"fields": ("snapshot",), "classes": ("collapse",)}),
    )

    @admin.display(description="Order (all entries)", ordering="order_id")
    def order_link(self, obj: Posting) -> str:
        url = (
            reverse("admin:accounting_posting_changelist")
            + f"?tenant__id__exact={obj.tenant_id}&q={obj.order_id}"
        )
        return format_html('<a href="{}">{}</a>', url, obj.order_id)

    @admin.display(description="Amount", ordering="total")
    def amount(self, obj: Posting) -> str:
        return f"{quantize(obj.total, obj.currency or 'USD')} {obj.currency}"

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Posting) -> str:
        # Colours live in connector/admin.css: the Content-Security-Policy allows no inline style attributes.
        tones: dict[str, str] = {
            Posting.Status.POSTED: "ok",
            Posting.Status.NEEDS_ATTENTION: "error",
            Posting.Status.NEEDS_MAPPING: "error",
            Posting.Status.UNKNOWN: "warning",
            Posting.Status.RETRY: "warning",
        }
        tone = tones.get(obj.status, "neutral")
        return format_html('<b class="connector-status-{}">{}</b>', tone, obj.get_status_display())

    @admin.display(description="Debit = credit")
    def balance(self, obj: Posting) -> str:
        totals = obj.lines.aggregate(d=Sum("debit"), c=Sum("credit"))
        debit, credit = (Decimal(str(totals[k] or 0)).quantize(Decimal("0.0001")) for k in ("d", "c"))
        return f"{debit} = {credit}" + ("" if debit == credit else "  ⚠ NOT BALANCED")

    @admin.display(description="What is sent to X3")
    def x3_preview(self, obj: Posting) -> str:
        """The exact request body this entry goes to X3 with (shown until it is posted, for review)."""
        if obj.status not in (Posting.Status.AWAITING_APPROVAL, Posting.Status.PENDING, Posting.Status.RETRY):
            return "—"
        try:
            body = x3_client(obj.tenant).preview(entry_for(obj))
        except (IntegrationError, ValueError) as exc:
            return f"Cannot build the X3 request: {getattr(exc, 'message', exc)}"
        return format_html("<pre>{}</pre>", body)

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("accounting.operate_posting")

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {"audit_lines": audit_chain_lines(), **(extra_context or {})})

    @admin.action(
        description="Re-post order: re-fetch from BigCommerce, post only what is missing",
        permissions=["operate"],
    )
    def repost_orders(self, request, queryset) -> None:
        report = operations.repost_orders(queryset, user=request.user)
        for level, text in report:
            self.message_user(request, text, level)

    @admin.action(description="Approve and post (entries awaiting approval)", permissions=["operate"])
    def approve(self, request, queryset) -> None:
        count = operations.approve(queryset, user=request.user)
        skipped = queryset.count() - count
        self.message_user(
            request,
            f"{count} entr{'y' if count == 1 else 'ies'} approved and queued for posting."
            + (
                f" {skipped} selected row(s) were not awaiting approval and were left alone."
                if skipped
                else ""
            ),
            messages.SUCCESS if count and not skipped else messages.WARNING,
        )

    @admin.action(description="Reject (entries awaiting approval): nothing is sent", permissions=["operate"])
    def reject(self, request, queryset) -> None:
        count = operations.reject(queryset, user=request.user)
        self.message_user(
            request,
            f"{count} entr{'y' if count == 1 else 'ies'} rejected; nothing was sent to X3.",
            messages.SUCCESS if count else messages.WARNING,
        )

    @admin.action(description="Retry now (failed, scheduled or unknown postings)", permissions=["operate"])
    def retry_now(self, request, queryset) -> None:
        count = operations.retry_now(queryset, user=request.user)
        self.message_user(request, f"{count} posting(s) queued for another attempt.", messages.SUCCESS)


@admin.register(X3Circuit)
class X3CircuitAdmin(ReadOnlyAdmin):
    """Whether each tenant's Sage X3 answers. Read-only: it opens and closes by itself."""

    list_display = ("tenant", "state", "failures", "opened_at", "next_probe_at", "probes", "last_error")
    list_select_related = ("tenant",)

    @admin.display(description="State")
    def state(self, obj: X3Circuit) -> str:
        if obj.is_open:
            return format_html('<b class="connector-status-error">{}</b>', "X3 unavailable — postings wait")
        return format_html('<b class="connector-status-ok">{}</b>', "X3 answers")


def audit_chain_lines() -> list[tuple[str, str]]:
    """(message level, text) about the tenants' audit chains, from the last ``verify_audit`` results: two small
    queries, never a walk over the records."""
    checks = {c.tenant_id: c for c in AuditCheck.objects.select_related("tenant").order_by("tenant__name")}
    unverified = (
        AuditChainHead.objects.exclude(tenant_id__in=checks).select_related("tenant").order_by("tenant__name")
    )
    stale_before = timezone.now() - timedelta(minutes=2 * settings.CONNECTOR["AUDIT_VERIFY_INTERVAL_MINUTES"])
    lines = []
    intact = [c for c in checks.values() if c.intact]
    for check in checks.values():
        if not check.intact:
            lines.append(
                ("error", f"Audit chain of {check.tenant.name}: {check.message} (verified {_when(check)})")
            )
    if intact:
        oldest = min(intact, key=lambda c: c.checked_at)
        who = f"of {intact[0].tenant.name}" if len(intact) == 1 else f"of {len(intact)} tenants"
        level = "warning" if oldest.checked_at < stale_before else "success"
        records = sum(c.records for c in intact)
        lines.append((level, f"Audit chain {who}: intact ({records} records, verified {_when(oldest)})"))
    for head in unverified:
        lines.append(
            ("warning", f"Audit chain of {head.tenant.name}: not verified yet (manage.py verify_audit)")
        )
    return lines


def _when(check: AuditCheck) -> str:
    return f"{timezone.localtime(check.checked_at):%Y-%m-%d %H:%M}"


# --- chart of accounts (docs/chart-of-accounts.md) ---


@admin.register(GlAccount)
class GlAccountAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "code", "name", "postable", "dimension_types", "refreshed_at")
    list_filter = ("tenant", "postable")
    search_fields = ("code", "name")
    list_select_related = ("tenant",)

    @admin.display(description="Dimensions required")
    def dimension_types(self, obj: GlAccount) -> str:
        return ", ".join(obj.dimensions or []) or "—"


@admin.register(GlChart)
class GlChartAdmin(ReadOnlyAdmin):
    list_display = ("tenant", "account_count", "refreshed_at", "attempted_at", "outcome")
    list_select_related = ("tenant",)

    @admin.display(description="Last attempt")
    def outcome(self, obj: GlChart) -> str:
        level = "ok" if obj.ok else "error"
        return format_html('<span class="connector-note-{}">{}</span>', level, obj.message or "—")
