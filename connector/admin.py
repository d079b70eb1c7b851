from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounting.chart import account_names
from accounting.chart_admin import mapped_accounts_html
from accounting.models import ACCOUNT_FIELDS, ChannelMapping, GlChart, Posting
from integrations.bigcommerce.connection import check_store
from integrations.errors import IntegrationError

from . import pipeline, setup_views, x3auth
from .access import TenantScopedAdmin, tenants_for
from .chart import refresh_chart
from .clients import bigcommerce_client, x3_client
from .forms import AlertSettingsForm, BigCommerceStoreForm, TenantForm, X3ConnectionForm
from .models import (
    AlertSettings,
    AlertState,
    BigCommerceStore,
    BulkOperation,
    Notification,
    Tenant,
    WebhookEvent,
    X3Connection,
    redact,
)
from .views import x3_oauth_redirect_uri

M = X3Connection.Method
_GRAPHQL = ("x3-method", f"x3-method-{M.GRAPHQL_OAUTH2}", f"x3-method-{M.GRAPHQL_JWT}")


def held_for_reauthorization(tenant: Tenant) -> int:
    return Posting.objects.filter(tenant=tenant, status=Posting.Status.NEEDS_REAUTH).count()


def x3_authorization_summary(x3: X3Connection) -> tuple[str, str]:
    """(level, text) describing an OAuth2 connection's authorization: level is "ok", "warning" or "error"."""
    if x3.method != M.GRAPHQL_OAUTH2:
        return "ok", ""
    if x3.authorization_error:
        return "error", f"Re-authorization needed: {x3.authorization_error}"
    if not x3.refresh_token:
        return "error", "Not connected yet: use 'Connect to Sage X3'."
    days = x3auth.refresh_days_left(x3)
    if days is None:
        return "ok", "Connected."
    expires = f"{x3.refresh_token_expires_at:%Y-%m-%d %H:%M} UTC"
    if days < 0:
        return "error", f"The authorization expired on {expires}: reconnect with 'Connect to Sage X3'."
    text = f"Refresh token: {days} day{'s' if days != 1 else ''} left (expires {expires})."
    if days < settings.CONNECTOR["X3_REFRESH_WARNING_DAYS"]:
        return "warning", text + " Reconnect before then, or postings will wait for re-authorization."
    return "ok", text


class BigCommerceStoreInline(admin.StackedInline):
    model = BigCommerceStore
    form = BigCommerceStoreForm
    can_delete = False
    readonly_fields = ("bc_status",)
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "store_hash",
                    "access_token",
                    "client_id",
                    "client_secret",
                    "api_base_url",
                    "bc_status",
                )
            },
        ),
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

    @admin.display(description="Status")
    def bc_status(self, obj: BigCommerceStore | None) -> str:
        if obj is None or obj.pk is None:
            return "Save the tenant first; then you can test the connection."
        url = reverse("admin:connector_tenant_bc_test", args=[obj.tenant_id])
        return format_html('<a class="button" href="{}">Test connection</a>', url)


class X3ConnectionInline(admin.StackedInline):
    """One form for every method; JavaScript shows the fieldsets of the chosen one (x3-method-<method> classes)."""

    model = X3Connection
    form = X3ConnectionForm
    can_delete = False
    readonly_fields = ("x3_status", "gateway_endpoint")
    fieldsets = (
        (None, {"fields": ("method", "server_url", "folder", "x3_status")}),
        (
            "User and password (HTTP Basic: REST api1 and SOAP)",
            {
                "fields": ("username", "password"),
                "classes": ("x3-method", f"x3-method-{M.REST_BASIC}", f"x3-method-{M.SOAP_BASIC}"),
            },
        ),
        (
            "SOAP web services (docs/x3-soap.md)",
            {
                "fields": (
                    "soap_public_name",
                    "soap_pool_alias",
                    "soap_code_lang",
                    "soap_pool_id",
                    "soap_request_config",
                    "soap_wsdl_url",
                ),
                "classes": ("x3-method", f"x3-method-{M.SOAP_BASIC}"),
            },
        ),
        (
            "GraphQL + OAuth2 (Sage X3 cloud gateway)",
            {
                "fields": (
                    "oauth_client_id",
                    "oauth_client_secret",
                    "oauth_authorise_url",
                    "oauth_token_url",
                    "oauth_scope",
                    "oauth_token_format",
                    "gateway_endpoint",
                ),
                "classes": ("x3-method", f"x3-method-{M.GRAPHQL_OAUTH2}"),
            },
        ),
        (
            "GraphQL + connected application (JWT)",
            {
                "fields": ("app_client_id", "app_secret", "app_user", "app_audience", "app_token_lifetime"),
                "classes": ("x3-method", f"x3-method-{M.GRAPHQL_JWT}"),
            },
        ),
        ("Entry defaults", {"fields": ("entry_type", "journal", "site", "reference_prefix")}),
        ("Transport", {"fields": ("timeout_seconds", "verify_tls", "ca_bundle")}),
        (
            "api1 mapping",
            {"fields": ("rest_mapping",), "classes": ("collapse", "x3-method", f"x3-method-{M.REST_BASIC}")},
        ),
        (
            "SOAP mapping (docs/x3-soap.md)",
            {"fields": ("soap_mapping",), "classes": ("collapse", "x3-method", f"x3-method-{M.SOAP_BASIC}")},
        ),
        (
            "GraphQL mapping (docs/x3-graphql.md)",
            {
                "fields": (
                    "graphql_url",
                    "graphql_mutation",
                    "graphql_variables",
                    "graphql_lookup_query",
                    "graphql_mapping",
                ),
                "classes": ("collapse", *_GRAPHQL),
            },
        ),
        (
            "Chart of accounts (docs/chart-of-accounts.md)",
            {"fields": ("chart_query",), "classes": ("collapse",)},
        ),
    )

    class Media:
        js = ("connector/x3_method.js",)
        css = {"all": ("connector/admin.css",)}

    @admin.display(description="Status")
    def x3_status(self, obj: X3Connection | None) -> str:
        if obj is None or obj.pk is None:
            return "Save the tenant first; then you can test the connection."
        links = [(reverse("admin:connector_tenant_x3_test", args=[obj.tenant_id]), "Test connection")]
        if obj.method == M.GRAPHQL_OAUTH2:
            links.insert(
                0, (reverse("admin:connector_tenant_x3_connect", args=[obj.tenant_id]), "Connect to Sage X3")
            )
        buttons = format_html_join(" ", '<a class="button" href="{}">{}</a>', links)
        level, text = x3_authorization_summary(obj)
        held = held_for_reauthorization(obj.tenant)
        parts = [buttons]
        if obj.is_graphql:
            parts.append(
                format_html("<div>GraphQL URL: <code>{}</code></div>", x3auth.graphql_url(obj) or "—")
            )
        if text:
            parts.append(format_html('<div class="connector-note-{}">{}</div>', level, text))
        if held:
            parts.append(
                format_html(
                    '<div class="connector-note-error">{} posting(s) wait for re-authorization.</div>',
                    held,
                )
            )
        return format_html_join("", "{}", ((p,) for p in parts))


class ChannelMappingInline(admin.TabularInline):
    model = ChannelMapping
    extra = 0
    ordering = ("channel_id", "-effective_from")  # each channel's versions, the latest first
    fields = (
        "channel_id",
        "effective_from",
        "name",
        "is_active",
        *ACCOUNT_FIELDS,
        "site",
        "account_names",
    )
    readonly_fields = ("account_names",)
    show_change_link = True
    _names: dict[str, str] | None = None  # inline instances are made per request: one dict per page

    def get_formset(self, request, obj=None, **kwargs):
        self._names = account_names(obj.pk if obj is not None else None)
        return super().get_formset(request, obj, **kwargs)

    @admin.display(description="Names in the X3 chart")
    def account_names(self, mapping: ChannelMapping) -> str:
        return mapped_accounts_html(mapping, self._names or {}) if mapping.pk else ""


class AlertSettingsInline(admin.StackedInline):
    model = AlertSettings
    form = AlertSettingsForm
    can_delete = False
    fields = ("enabled", "email_recipients", "webhook_url", "remove_webhook_url", "webhook_silence_hours")


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    tenant_path = ""
    list_display = ("name", "slug", "is_active", "store", "x3", "webhook_url")
    list_filter = ("is_active",)
    search_fields = ("name", "slug", "bigcommerce__store_hash")
    prepopulated_fields = {"slug": ("name",)}
    inlines = (BigCommerceStoreInline, X3ConnectionInline, ChannelMappingInline, AlertSettingsInline)
    list_select_related = ("bigcommerce", "x3")
    form = TenantForm
    actions = ("refresh_chart_of_accounts", "refresh_channel_names")

    class Media:
        css = {"all": ("connector/admin.css",)}  # status colours (no inline styles under the CSP)

    readonly_fields = ("reconciled_until",)
    fieldsets = (
        (None, {"fields": ("name", "slug", "is_active")}),
        (
            "Accounting",
            {
                "fields": (
                    "confirmed_status_ids",
                    "gl_date_policy",
                    "rounding_account",
                    "rounding_threshold",
                    "review_policy",
                    "closed_period_policy",
                )
            },
        ),
        ("Refunds", {"fields": ("order_refund_policy", "refund_account", "refund_restock_cogs")}),
        (
            "Payments and currencies",
            {
                "fields": ("gift_certificate_account", "store_credit_account", "posting_currency_policy"),
                "description": "Gateway payment-clearing accounts are set under Tender mappings.",
            },
        ),
        (
            "Posting mode",
            {
                "fields": (
                    "posting_mode",
                    "posting_mode_from",
                    "summary_channels",
                    "business_time_zone",
                    "summary_cutoff",
                    "summary_grace_minutes",
                    "summary_max_lines",
                    "summary_clearing_account",
                )
            },
        ),
        ("Reconciliation", {"fields": ("reconciled_until",)}),
        ("Access", {"fields": ("users",)}),
    )
    filter_horizontal = ("users",)

    def get_readonly_fields(self, request, obj=None):
        # Only a superuser grants tenants: an operator must not widen anyone's access, their own included.
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else (*fields, "users")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and not request.user.is_superuser:
            obj.users.add(request.user)  # a staff user who creates a tenant can see it

    @admin.display(description="BigCommerce store")
    def store(self, obj: Tenant) -> str:
        store = getattr(obj, "bigcommerce", None)
        return f"{store.store_hash} (token {redact(store.access_token)})" if store else "—"

    @admin.display(description="Sage X3")
    def x3(self, obj: Tenant) -> str:
        x3 = getattr(obj, "x3", None)
        if not x3:
            return "—"
        level, text = x3_authorization_summary(x3)
        held = getattr(obj, "held_for_reauth", 0)
        if level == "ok" and not held:
            return f"{x3} ({x3.get_method_display()})"
        level = "error" if level == "error" or held else "warning"
        note = text + (f" {held} posting(s) wait for re-authorization." if held else "")
        return format_html('{} <span class="connector-note-{}">{}</span>', str(x3), level, note)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                held_for_reauth=Count("postings", filter=Q(postings__status=Posting.Status.NEEDS_REAUTH))
            )
        )

    # -- Sage X3 notices and actions --

    def _x3_notices(self, request: HttpRequest, tenant: Tenant) -> None:
        x3 = getattr(tenant, "x3", None)
        held = held_for_reauthorization(tenant)
        if held:
            messages.error(
                request,
                format_html(
                    "<strong>{} posting(s) of {} wait for Sage X3 re-authorization.</strong> Nothing is lost: "
                    "use 'Connect to Sage X3' below and they are posted again.",
                    held,
                    tenant.name,
                ),
            )
        if x3 is not None:
            level, text = x3_authorization_summary(x3)
            if level == "warning" or (level == "error" and not held):
                messages.warning(request, text)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        if request.method == "GET":
            tenant = self.get_object(request, object_id)
            if tenant is not None:
                self._x3_notices(request, tenant)
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        if request.method == "GET":
            waiting = (
                tenants_for(request.user)
                .filter(postings__status=Posting.Status.NEEDS_REAUTH)
                .annotate(n=Count("postings"))
                .order_by("name")
            )
            if waiting:
                messages.error(
                    request,
                    format_html(
                        "<strong>Postings wait for Sage X3 re-authorization:</strong> {}. Open the tenant and use "
                        "'Connect to Sage X3'.",
                        format_html_join(", ", "{} ({})", ((t.name, t.n) for t in waiting)),
                    ),
                )
        return super().changelist_view(request, extra_context)

    def get_urls(self):
        urls = [
            path(
                "<int:object_id>/x3-test/",
                self.admin_site.admin_view(self.x3_test_view),
                name="connector_tenant_x3_test",
            ),
            path(
                "<int:object_id>/bc-test/",
                self.admin_site.admin_view(self.bc_test_view),
                name="connector_tenant_bc_test",
            ),
            path(
                "<int:object_id>/x3-connect/",
                self.admin_site.admin_view(self.x3_connect_view),
                name="connector_tenant_x3_connect",
            ),
            path(
                "setup/",
                self.admin_site.admin_view(setup_views.setup_index),
                name="connector_tenant_setup_index",
            ),
            path(
                "<int:object_id>/setup/",
                self.admin_site.admin_view(setup_views.setup_view),
                name="connector_tenant_setup",
            ),
        ]
        return urls + super().get_urls()

    def _tenant_for_action(self, request: HttpRequest, object_id: int) -> Tenant:
        tenant = get_object_or_404(self.get_queryset(request).select_related("x3"), pk=object_id)
        if not self.has_change_permission(request, tenant):
            raise PermissionDenied
        if not hasattr(tenant, "x3"):
            raise PermissionDenied("This tenant has no Sage X3 connection.")
        return tenant

    def _action_page(self, request: HttpRequest, tenant: Tenant, **context) -> TemplateResponse:
        return TemplateResponse(
            request,
            "admin/connector/tenant/x3_action.html",
            {**self.admin_site.each_context(request), "opts": self.opts, "original": tenant, **context},
        )

    def x3_test_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """GET: confirm; POST: one harmless authenticated call with the tenant's method; X3's own error if any."""
        tenant = self._tenant_for_action(request, object_id)
        change_url = reverse("admin:connector_tenant_change", args=[tenant.pk])
        if request.method != "POST":
            return self._action_page(
                request,
                tenant,
                title=f"Test the Sage X3 connection of {tenant.name}",
                explanation=[
                    f"Method: {tenant.x3.get_method_display()}. This makes read-only, authenticated calls to "
                    "Sage X3 and reports its answers; nothing is posted.",
                    *(
                        [
                            "SOAP: checks, one step after the other, that the server answers, the credentials are "
                            "accepted, the pool runs, the web service is published and the field mapping matches "
                            "what is published (getDescription)."
                        ]
                        if tenant.x3.method == M.SOAP_BASIC
                        else []
                    ),
                ],
                details=[],
                action_url=request.path,
                button="Test connection",
            )
        started = timezone.now()
        client = x3_client(tenant)
        steps = getattr(client, "connection_steps", None)
        if steps is not None:  # SOAP: each step in plain words, the first failure last
            all_ok = True
            for step in steps():
                all_ok = all_ok and step.ok
                report = messages.success if step.ok else messages.error
                report(request, f"{'✓' if step.ok else '✗'} {step.name}: {step.detail}")
            if all_ok:
                self._account_read_step(request, tenant, client)
            return HttpResponseRedirect(change_url)
        try:
            result = client.test_connection()
        except IntegrationError as exc:
            messages.error(request, f"Sage X3 connection test failed: {exc.message}")
        else:
            elapsed = (timezone.now() - started).total_seconds()
            messages.success(request, f"Sage X3 connection test passed in {elapsed:.1f} s. {result}")
            self._account_read_step(request, tenant, client)
        return HttpResponseRedirect(change_url)

    def _account_read_step(self, request: HttpRequest, tenant: Tenant, client) -> None:
        """When the tenant reads its chart of accounts (a chart query is set, or a chart was loaded): read one."""
        if not tenant.x3.chart_query and not GlChart.objects.filter(tenant=tenant).exists():
            return
        try:
            found = client.list_accounts(tenant.x3.chart_query or None, limit=1)
        except IntegrationError as exc:
            messages.error(request, f"✗ One account read: {exc.message}")
            return
        if not found:
            messages.error(
                request, "✗ One account read: Sage X3 answered, but with no account (check the chart query)"
            )
            return
        account = found[0]
        state = "accepts postings" if account.postable else "closed to postings"
        messages.success(request, f"✓ One account read: {account.code} {account.name} ({state})")

    def x3_connect_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """GET: explain and confirm; the button POSTs to the OAuth start view (connector.views.x3_oauth_start)."""
        tenant = self._tenant_for_action(request, object_id)
        x3 = tenant.x3
        if x3.method != M.GRAPHQL_OAUTH2:
            messages.error(request, "This tenant's Sage X3 connection does not use OAuth2.")
            return HttpResponseRedirect(reverse("admin:connector_tenant_change", args=[tenant.pk]))
        page = self._action_page(
            request,
            tenant,
            title=f"Connect {tenant.name} to Sage X3",
            explanation=[
                "You will be sent to Sage to approve access for this connector and choose the X3 folder(s) it may "
                "use. Sage then sends you back here; postings waiting for re-authorization are resumed.",
                "The redirect URI below must be registered for the app in the Sage App Registry.",
            ],
            details=[
                ("Authorise URL", x3.oauth_authorise_url or "(not set)"),
                ("Client ID", x3.oauth_client_id or "(not set)"),
                ("Scope", x3.oauth_scope),
                ("Redirect URI", x3_oauth_redirect_uri(request)),
            ],
            action_url=reverse("x3-oauth-start", args=[tenant.pk]),
            button="Connect to Sage X3",
        )
        # The button's POST is answered with a redirect to Sage: the CSP's form-action must allow that origin.
        origin = _origin(x3.oauth_authorise_url)
        if origin:
            page._csp_update = {"form-action": [origin]}  # type: ignore[attr-defined]  # django-csp reads it
        return page

    def bc_test_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """GET: confirm; POST: read-only calls for each scope we need, each step in words, then the channels."""
        tenant = get_object_or_404(Tenant.objects.select_related("bigcommerce"), pk=object_id)
        if not self.has_change_permission(request, tenant):
            raise PermissionDenied
        if not hasattr(tenant, "bigcommerce"):
            raise PermissionDenied("This tenant has no BigCommerce store.")
        common = {
            "title": f"Test the BigCommerce connection of {tenant.name}",
            "action_url": request.path,
            "button": "Test connection",
        }
        if request.method != "POST":
            return self._action_page(
                request,
                tenant,
                explanation=[
                    "This makes read-only calls to the store and reports, step by step, whether the store answers, "
                    "the access token is accepted, and the API account has the scopes the connector needs: "
                    "orders (read), channels (read) and webhooks. Nothing is changed in the store.",
                ],
                details=[],
                **common,
            )
        check = check_store(bigcommerce_client(tenant))
        return self._action_page(
            request,
            tenant,
            explanation=[f"{'✓' if s.ok else '✗'} {s.name}: {s.detail}" for s in check.steps]
            + ["All checks passed." if check.ok else "Some checks failed: see the ✗ lines above."],
            details=[
                (f"Channel {c.id}", f"{c.name} ({c.type}, {c.platform}, {c.status})") for c in check.channels
            ],
            **{**common, "button": "Test again"},
        )

    @admin.action(description="Refresh chart of accounts from Sage X3", permissions=["change"])
    def refresh_chart_of_accounts(self, request: HttpRequest, queryset) -> None:
        """Read each selected tenant's GL accounts through its X3 method and cache them (read-only calls)."""
        for tenant in queryset.select_related("x3"):
            result = refresh_chart(tenant)
            (messages.success if result.ok else messages.error)(request, f"{tenant.name}: {result.message}")

    @admin.action(description="Refresh channel names from BigCommerce", permissions=["view"])
    def refresh_channel_names(self, request: HttpRequest, queryset) -> None:
        """Read each selected tenant's channels (GET /v3/channels) and cache their names (read-only calls)."""
        from .channels import refresh_channels

        for tenant in queryset.select_related("bigcommerce"):
            if not hasattr(tenant, "bigcommerce"):
                messages.error(request, f"{tenant.name}: no BigCommerce store configured.")
                continue
            try:
                n = refresh_channels(tenant)
            except IntegrationError as exc:
                messages.error(
                    request,
                    f"{tenant.name}: BigCommerce could not be read ({exc.message}); "
                    "the last known channel names stay in use.",
                )
            else:
                messages.success(request, f"{tenant.name}: {n} channel name(s) read from BigCommerce.")

    @admin.display(description="Webhook URL")
    def webhook_url(self, obj: Tenant) -> str:
        return format_html("<code>/webhooks/bigcommerce/{}/</code>", obj.slug)


class ReadOnlyAdmin(TenantScopedAdmin):
    """Records of what happened: visible, never edited or deleted by hand."""

    class Media:
        css = {"all": ("connector/admin.css",)}  # status colours (no inline styles under the CSP)

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
    list_filter = ("status", "scope", ("tenant", admin.RelatedOnlyFieldListFilter), "received_at")
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


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of an absolute http(s) URL, else "" (nothing to allow)."""
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else ""


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "tenant", "channel", "recipients", "subject", "outcome", "short_error")
    list_filter = ("outcome", "channel", "tenant", "created_at")
    search_fields = ("subject", "recipients", "body")
    list_select_related = ("tenant",)
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in Notification._meta.fields]

    @admin.display(description="Error")
    def short_error(self, obj: Notification) -> str:
        return obj.error[:120]


@admin.register(AlertState)
class AlertStateAdmin(ReadOnlyAdmin):
    list_display = (
        "tenant",
        "condition",
        "active",
        "summary",
        "first_seen_at",
        "last_notified_at",
        "resolved_at",
    )
    list_filter = ("active", "condition", "tenant")
    list_select_related = ("tenant",)
    readonly_fields = [f.name for f in AlertState._meta.fields]


@admin.register(BulkOperation)
class BulkOperationAdmin(ReadOnlyAdmin):
    """Bulk actions on postings (connector/bulk.py): each row opens its progress page. A user sees the batches whose
    tenants are all theirs, like the postings in them."""

    list_display = ("created_at", "kind", "status", "progress", "done", "skipped", "failed", "requested_by")
    list_filter = ("status", "kind")
    list_display_links = None

    def scope(self, request, queryset):
        if request.user.is_superuser:
            return queryset
        others = Tenant.objects.exclude(pk__in=tenants_for(request.user).values("pk"))
        return queryset.exclude(tenants__in=others)

    def has_view_permission(self, request, obj=None) -> bool:
        return request.user.has_perm("accounting.view_posting")

    def has_module_permission(self, request) -> bool:
        return self.has_view_permission(request)

    @admin.display(description="Progress")
    def progress(self, obj: BulkOperation) -> str:
        url = reverse("admin:accounting_posting_bulk", args=[obj.pk])
        return format_html('<a href="{}">{} of {}</a>', url, obj.position, obj.total)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        batch = self.get_object(request, object_id)  # 404 outside the user's tenants
        return HttpResponseRedirect(reverse("admin:accounting_posting_bulk", args=[batch.pk]))


# --- django-q2's task records and schedules -------------------------------------------------------------------------


class SuperuserChangesOnly:
    """Task records and schedules run the connector: other staff may look (with the view permission), never add,
    change, delete or resubmit. django-q2's own admin classes do the rest."""

    def has_add_permission(self, request, *args) -> bool:
        return request.user.is_superuser and super().has_add_permission(request, *args)  # type: ignore[misc]

    def has_change_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_change_permission(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser and super().has_delete_permission(request, obj)  # type: ignore[misc]

    def get_actions(self, request):
        return super().get_actions(request) if request.user.is_superuser else {}  # type: ignore[misc]


def _task_admin_read_only() -> None:
    from django_q import (
        admin as q_admin,  # registers django-q2's admin classes first (django_q is an earlier app)
    )
    from django_q.models import Failure, OrmQ, Schedule, Success

    for model, base in (
        (Schedule, q_admin.ScheduleAdmin),
        (Success, q_admin.TaskAdmin),
        (Failure, q_admin.FailAdmin),
        (OrmQ, q_admin.QueueAdmin),
    ):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
            admin.site.register(model, type(f"ReadOnly{base.__name__}", (SuperuserChangesOnly, base), {}))


_task_admin_read_only()
