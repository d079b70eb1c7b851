from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html

from accounting.models import ChannelMapping

from . import pipeline
from .forms import BigCommerceStoreForm, X3ConnectionForm
from .models import BigCommerceStore, Tenant, WebhookEvent, X3Connection, redact


class BigCommerceStoreInline(admin.StackedInline):
    model = BigCommerceStore
    form = BigCommerceStoreForm
    can_delete = False
    fieldsets = (
        (None, {"fields": ("store_hash", "access_token", "client_id", "client_secret", "api_base_url")}),
        (
            "Webhook authentication",
            {
                "fields": (
                    "accept_standard_webhooks",
                    "accept_custom_header",
                    "webhook_header_name",
                    "webhook_header_value",
                    "accept_x_bc_signature",
                )
            },
        ),
    )


class X3ConnectionInline(admin.StackedInline):
    model = X3Connection
    form = X3ConnectionForm
    can_delete = False
    fieldsets = (
        (None, {"fields": ("method", "server_url", "folder", "username", "password")}),
        ("Entry defaults", {"fields": ("entry_type", "journal", "site", "reference_prefix")}),
        ("Transport", {"fields": ("timeout_seconds", "verify_tls", "ca_bundle")}),
        ("api1 mapping", {"fields": ("rest_mapping",), "classes": ("collapse",)}),
    )


class ChannelMappingInline(admin.TabularInline):
    model = ChannelMapping
    extra = 0
    fields = (
        "channel_id",
        "name",
        "is_active",
        "receivable_account",
        "revenue_account",
        "shipping_account",
        "tax_account",
        "discount_account",
        "cogs_account",
        "inventory_account",
        "site",
    )
    show_change_link = True


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "is_active", "store", "x3", "webhook_url")
    list_filter = ("is_active",)
    search_fields = ("name", "slug", "bigcommerce__store_hash")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (BigCommerceStoreInline, X3ConnectionInline, ChannelMappingInline)
    list_select_related = ("bigcommerce", "x3")
    fieldsets = (
        (None, {"fields": ("name", "slug", "is_active")}),
        ("Accounting", {"fields": ("confirmed_status_ids", "rounding_account", "rounding_threshold")}),
    )

    @admin.display(description="BigCommerce store")
    def store(self, obj: Tenant) -> str:
        store = getattr(obj, "bigcommerce", None)
        return f"{store.store_hash} (token {redact(store.access_token)})" if store else "—"

    @admin.display(description="Sage X3")
    def x3(self, obj: Tenant) -> str:
        x3 = getattr(obj, "x3", None)
        return str(x3) if x3 else "—"

    @admin.display(description="Webhook URL")
    def webhook_url(self, obj: Tenant) -> str:
        return format_html("<code>/webhooks/bigcommerce/{}/</code>", obj.slug)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records of what happened: visible, never edited or deleted by hand."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = (
        "received_at",
        "tenant",
        "scope",
        "order_id",
        "refund_id",
        "status",
        "deliveries",
        "attempts",
    )
    list_filter = ("status", "scope", "tenant", "received_at")
    search_fields = ("=order_id", "delivery_key", "bc_hash", "webhook_id")
    list_select_related = ("tenant",)
    date_hierarchy = "received_at"
    actions = ("retry_events",)
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("accounting.operate_posting")

    @admin.action(description="Retry selected failed events", permissions=["operate"])
    def retry_events(self, request, queryset) -> None:
        count = sum(
            pipeline.retry_event(event) for event in queryset.filter(status=WebhookEvent.Status.FAILED)
        )
        self.message_user(request, f"{count} failed event(s) queued again.", messages.SUCCESS)
