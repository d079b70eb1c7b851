from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from import_export import fields, resources
from import_export.admin import ImportExportModelAdmin
from import_export.widgets import ForeignKeyWidget

from connector import bulk, operations
from connector.access import TenantScopedAdmin, tenants_for
from connector.admin import ReadOnlyAdmin
from connector.channels import store_channel_label, store_channels
from connector.clients import x3_client
from connector.forms import ORDER_STATUSES
from connector.models import BulkOperation, StoreChannel, Tenant
from integrations.errors import IntegrationError

from . import explain
from .chart import account_names, chart_loaded
from .chart_admin import ChartNamesMappingMixin, LineNamesMixin
from .journal import quantize
from .models import (
    ACCOUNT_FIELDS,
    VERSIONED_FIELDS,
    AuditChainHead,
    AuditCheck,
    ChannelMapping,
    GlAccount,
    GlChart,
    Posting,
    PostingAttempt,
    PostingLine,
    PostingLog,
    TenderMapping,
    X3Circuit,
)
from .planning import mapping_problem_of
from .posting import entry_for


def mapping_url(posting: Posting) -> str:
    """Where to fix a posting's channel mapping: the existing one (inactive, or an account blank), else the add form
    with the tenant and channel filled in."""
    if hasattr(posting, "mapping_pk"):  # read with the list (PostingAdmin.get_queryset)
        pk = posting.mapping_pk
    else:
        pk = (
            ChannelMapping.objects.filter(tenant=posting.tenant_id, channel_id=posting.channel_id)
            .values_list("pk", flat=True)
            .first()
            if posting.channel_id is not None
            else None
        )
    if pk is not None:
        return reverse("admin:accounting_channelmapping_change", args=[pk])
    return (
        reverse("admin:accounting_channelmapping_add")
        + f"?tenant={posting.tenant_id}&channel_id={posting.channel_id or ''}"
    )


ORDER_STATUS_NAMES = dict(ORDER_STATUSES)


def readable_json(body: str) -> str:
    """A compact JSON request body laid out one value per line, only whitespace added, so every value (numbers at
    the currency's precision, strings) is shown exactly as sent. Anything that is not a JSON object or array (SOAP
    XML) is returned unchanged."""
    if body.lstrip()[:1] not in ("{", "["):
        return body
    out: list[str] = []
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(body):
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
            out.append(ch)
        elif ch in "{[":
            depth += 1
            closing = body[i + 1 : i + 2] in ("}", "]")
            out.append(ch if closing else ch + "\n" + "  " * depth)
        elif ch in "}]":
            depth -= 1
            if out and out[-1][-1:] not in ("{", "["):
                out.append("\n" + "  " * depth)
            out.append(ch)
        elif ch == ",":
            out.append(",\n" + "  " * depth)
        elif ch == ":":
            out.append(": ")
        elif not ch.isspace():
            out.append(ch)
    return "".join(out)


class GlDateFilter(admin.DateFieldListFilter):
    """ "By GL date" (the model's field says "gl date")."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "GL date"


class ChannelFilter(admin.SimpleListFilter):
    """ "By channel" with the channels' names ("2 · Amazon EU"), not bare numbers. The parameter stays
    ``channel_id`` so the workspace's links (``?channel_id=2``) keep working."""

    title = "channel"
    parameter_name = "channel_id"

    def lookups(self, request, model_admin):
        from connector.channels import label_for

        pairs = (
            model_admin.get_queryset(request)
            .exclude(channel_id=None)
            .values_list("channel_id", "tenant_id")
            .distinct()
            .order_by("channel_id")
        )
        labels: dict[int, list[str]] = {}
        for channel_id, tenant_id in pairs:
            label = label_for(tenant_id, channel_id)
            if label not in labels.setdefault(channel_id, []):
                labels[channel_id].append(label)
        return [(str(c), " / ".join(names)) for c, names in labels.items()]

    def queryset(self, request, queryset):
        value = self.value()
        if value in (None, ""):
            return queryset
        if not str(value).isdigit():
            return queryset.none()
        return queryset.filter(channel_id=int(value))


class TenantWidget(ForeignKeyWidget):
    """A tenant named by its slug, looked up only among the importing user's tenants."""

    allowed = None  # a Tenant queryset; None: every tenant (no request, e.g. a script)

    def get_queryset(self, value, row, *args, **kwargs):
        return self.allowed if self.allowed is not None else super().get_queryset(value, row, *args, **kwargs)


def side_amount(amount, currency: str) -> str:
    """An amount at the currency's precision, blank when zero (the unused side of a line)."""
    if not amount:
        return ""
    return f"{quantize(Decimal(amount), currency or 'USD'):,}"


def money_totals(rows, currency_key: str, keys: tuple[str, ...]) -> list[dict]:
    """[{currency, <key>: amount at the currency's precision}] from an aggregate grouped by currency."""
    out = []
    for row in rows:
        cur = row[currency_key] or "USD"
        out.append({"currency": cur, **{k: f"{quantize(Decimal(str(row[k] or 0)), cur):,}" for k in keys}})
    return sorted(out, key=lambda r: r["currency"])


NO_CHANNEL_NAMES_HELP = (
    "The store's channel names are not loaded yet: type the BigCommerce channel number (1 = the default "
    'storefront), or load the names first with "Refresh channel names" on the reconciliation page or the '
    'tenant action "Refresh channel names from BigCommerce", then reopen this page to pick from the list.'
)


NO_TENANT_HELP = (
    "Type the BigCommerce channel number (1 = the default storefront). To pick it from the store's channels by "
    'name instead, open this form from the guided setup\'s "Add a mapping" link or from a posting that needs a '
    "mapping: the tenant is then known."
)


def unknown_channel_message(channel_id: object, channels: list[StoreChannel]) -> str:
    """Plain words for a channel number the store does not have, with the ones it has."""
    valid = "; ".join(store_channel_label(c) for c in channels)
    return (
        f"Channel {channel_id} is not one of this store's channels. The store's channels are: {valid}. "
        "Pick one of them; if the channel was added in BigCommerce recently, refresh the channel names "
        "(reconciliation page or the tenant action) and try again."
    )


class ChannelMappingResource(resources.ModelResource):
    """CSV/XLSX import and export of channel mapping versions; the tenant is named by its slug.

    A row is one version: (tenant, channel_id, effective_from). A row with a new effective_from adds a version; a
    row for an existing version may change it only while no entry used it (ChannelMapping.clean says so)."""

    tenant = fields.Field(attribute="tenant", column_name="tenant", widget=TenantWidget(Tenant, field="slug"))

    def __init__(self, user=None, **kwargs):
        super().__init__(**kwargs)
        if user is not None:
            self.fields["tenant"].widget.allowed = tenants_for(user)
        self.user = user

    def before_save_instance(self, instance, row, **kwargs):
        if self.user is not None and getattr(self.user, "pk", None):
            instance.created_by = self.user

    def validate_instance(self, instance, import_validation_errors=None, validate_unique=True):
        """A row's channel must be one of the store's channels, when their names have been read."""
        errors = dict(import_validation_errors or {})
        if "channel_id" not in errors and instance.tenant_id and instance.channel_id is not None:
            memo = self.__dict__.setdefault("_channels", {})
            if instance.tenant_id not in memo:
                memo[instance.tenant_id] = store_channels(instance.tenant_id)
            channels = memo[instance.tenant_id]
            if channels and instance.channel_id not in {c.channel_id for c in channels}:
                stored = instance.pk and ChannelMapping.objects.filter(pk=instance.pk).first()
                if not (
                    stored and stored.channel_id == instance.channel_id
                ):  # an existing version stays editable
                    errors["channel_id"] = [unknown_channel_message(instance.channel_id, channels)]
        super().validate_instance(instance, errors or None, validate_unique)

    class Meta:
        model = ChannelMapping
        import_id_fields = ("tenant", "channel_id", "effective_from")
        exclude = ("id", "created_at", "updated_at", "created_by")
        skip_unchanged = True
        report_skipped = True
        # ChannelMapping.clean checks dimensions, accounts and required dimensions against the X3 chart
        clean_model_instances = True


class ChannelMappingForm(forms.ModelForm):
    """Changing a version's effective date saves a NEW version; the version edited stays as it was."""

    class Meta:
        model = ChannelMapping
        fields = (
            "tenant",
            "channel_id",
            "effective_from",
            "name",
            "is_active",
            *(f for f in VERSIONED_FIELDS if f.endswith("_account")),
            "company",
            "site",
            "entry_type",
            "journal",
            "dimensions",
        )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.store_channels: list[StoreChannel] = []
        if "channel_id" not in self.fields or "tenant" not in self.fields:
            return
        tenant_id = self._tenant_id()
        if tenant_id is not None:
            self.store_channels = store_channels(tenant_id)
        field = self.fields["channel_id"]
        field.label = "Channel"
        if tenant_id is None:
            field.help_text = NO_TENANT_HELP
            return
        if not self.store_channels:
            field.help_text = NO_CHANNEL_NAMES_HELP
            return
        choices: list[tuple[object, str]] = [
            (c.channel_id, store_channel_label(c)) for c in self.store_channels
        ]
        known = {c.channel_id for c in self.store_channels}
        mapped = self.instance.channel_id if self.instance.pk else None
        if mapped is not None and mapped not in known:
            choices.append((mapped, f"{mapped} · not in the store's channel list any more (mapped earlier)"))
        wanted = self.initial.get("channel_id")
        note = ""
        if not self.instance.pk:
            choices.insert(0, ("", "— pick the store's channel —"))
            if wanted not in (None, "") and str(wanted) not in {str(c[0]) for c in choices}:
                note = (
                    f" Channel {wanted} (from the link you followed) is not in the list BigCommerce last gave: "
                    "refresh the channel names if it was added recently."
                )
        self.fields["channel_id"] = forms.TypedChoiceField(
            label=field.label,
            choices=choices,
            coerce=int,
            empty_value=None,
            required=True,
            help_text="The store's channels as BigCommerce last listed them." + note,
            error_messages={
                "invalid_choice": unknown_channel_message("\0", self.store_channels)
                .replace("%", "%%")
                .replace("\0", "%(value)s")
            },
        )

    def clean(self):
        cleaned = super().clean() or self.cleaned_data
        if not cleaned.get("name"):  # a blank name takes the store's name for the channel
            channel = next(
                (c for c in self.store_channels if c.channel_id == cleaned.get("channel_id")), None
            )
            if channel is not None:
                cleaned["name"] = channel.name[: ChannelMapping._meta.get_field("name").max_length]
        return cleaned

    def _tenant_id(self) -> int | None:
        """The tenant whose channels to list: the one posted, else the mapping's, else ?tenant= — one of the
        user's tenants only (the tenant field's choices are scoped to them)."""
        if self.is_bound:
            raw = self.data.get(self.add_prefix("tenant"))
        elif self.instance.pk:
            raw = self.instance.tenant_id
        else:
            raw = self.initial.get("tenant")
        try:
            tenant_id = int(raw) if raw not in (None, "") else None
        except (TypeError, ValueError):
            return None
        queryset = self.fields["tenant"].queryset  # type: ignore[attr-defined]
        if tenant_id is None or not queryset.filter(pk=tenant_id).exists():
            return None
        return tenant_id

    def _post_clean(self) -> None:
        stored = self.instance.pk and ChannelMapping.objects.filter(pk=self.instance.pk).first()
        if stored and "effective_from" in self.changed_data:
            self.instance.pk = None
            self.instance._state.adding = True
        super()._post_clean()  # type: ignore[misc]


@admin.register(ChannelMapping)
class ChannelMappingAdmin(ChartNamesMappingMixin, TenantScopedAdmin, ImportExportModelAdmin):
    resource_classes = [ChannelMappingResource]
    form = ChannelMappingForm
    list_display = (
        "tenant",
        "channel_id",
        "effective_from",
        "in_force",
        "name",
        "is_active",
        "receivable_account",
        "revenue_account",
        "shipping_account",
        "tax_account",
        "site",
    )
    list_filter = (("tenant", admin.RelatedOnlyFieldListFilter), "is_active")
    search_fields = ("name", "=channel_id")
    list_select_related = ("tenant",)
    readonly_fields = ("created_by", "version_history")
    fieldsets = (
        (None, {"fields": ("tenant", "channel_id", "effective_from", "name", "is_active")}),
        (
            "GL accounts",
            {"fields": (*ACCOUNT_FIELDS, "chart_accounts")},
        ),
        (
            "Sage X3 organisation and dimensions",
            {
                "description": "Blank: the tenant's X3 connection's entry type, journal and site; no company "
                "(X3 derives it from the site).",
                "fields": ("company", "site", "entry_type", "journal", "dimensions"),
            },
        ),
        (
            "History",
            {
                "description": "To change accounts, organisation or dimensions, give a new 'effective from' date "
                "and save: a new version is added, entries dated before it keep this one.",
                "fields": ("created_by", "version_history"),
            },
        ),
    )

    def get_import_resource_kwargs(self, request, **kwargs):
        return {**super().get_import_resource_kwargs(request, **kwargs), "user": request.user}

    def save_model(self, request, obj, form, change):
        obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def get_queryset(self, request):
        in_force = (
            ChannelMapping.objects.filter(
                tenant=OuterRef("tenant"),
                channel_id=OuterRef("channel_id"),
                effective_from__lte=timezone.localdate(),
            )
            .order_by("-effective_from")
            .values("pk")[:1]
        )
        return super().get_queryset(request).annotate(in_force_pk=Subquery(in_force))

    @admin.display(description="In force today", boolean=True)
    def in_force(self, obj: ChannelMapping) -> bool:
        return getattr(obj, "in_force_pk", None) == obj.pk

    @admin.display(description="Versions of this channel")
    def version_history(self, obj: ChannelMapping) -> str:
        if obj is None or obj.pk is None:
            return "Save first."
        rows = mapping_history(obj.tenant_id, obj.channel_id)
        current = version_in_force(obj.tenant_id, obj.channel_id)
        return format_html_join(
            mark_safe("<br>"),
            '{} <a href="{}">from {}</a>{} — added by {} on {}: {}',
            (
                (
                    "▶" if row["version"].pk == obj.pk else "·",
                    reverse("admin:accounting_channelmapping_change", args=[row["version"].pk]),
                    row["version"].effective_from.isoformat(),
                    " (in force today)" if row["version"].pk == current else "",
                    row["version"].created_by or "—",
                    f"{timezone.localtime(row['version'].created_at):%Y-%m-%d %H:%M}",
                    row["changes"],
                )
                for row in rows
            ),
        )


def version_in_force(tenant_id: int, channel_id: int) -> int | None:
    """The pk of the channel's version in force today."""
    return (
        ChannelMapping.objects.filter(
            tenant_id=tenant_id, channel_id=channel_id, effective_from__lte=timezone.localdate()
        )
        .order_by("-effective_from")
        .values_list("pk", flat=True)
        .first()
    )


def mapping_history(tenant_id: int, channel_id: int) -> list[dict]:
    """The channel's versions, newest first, each with what it changed from the one before it."""
    versions = list(
        ChannelMapping.objects.filter(tenant_id=tenant_id, channel_id=channel_id)
        .select_related("created_by")
        .order_by("effective_from")
    )
    rows, previous = [], None
    for version in versions:
        if previous is None:
            changes = "first version"
        else:
            changed = [
                f"{f.replace('_', ' ')} {getattr(previous, f) or '—'} → {getattr(version, f) or '—'}"
                for f in VERSIONED_FIELDS
                if f not in ("effective_from", "channel_id", "tenant_id")
                and getattr(previous, f) != getattr(version, f)
            ]
            changes = "; ".join(changed) or "no change"
        rows.append({"version": version, "changes": changes})
        previous = version
    return rows[::-1]


class PostingLineInline(LineNamesMixin, admin.TabularInline):
    model = PostingLine
    fields = ("line_no", "role", "account", "debit_amount", "credit_amount", "description", "dimensions")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Debit")
    def debit_amount(self, obj: PostingLine) -> str:
        return side_amount(obj.debit, obj.posting.currency)

    @admin.display(description="Credit")
    def credit_amount(self, obj: PostingLine) -> str:
        return side_amount(obj.credit, obj.posting.currency)


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


def status_words(value: str) -> str:
    """A stored status code in the words the admin shows everywhere else ("awaiting_approval" → "Awaiting
    approval"); an unknown code is shown as it is."""
    if not value:
        return "—"
    try:
        return str(Posting.Status(value).label)
    except ValueError:
        return value


class PostingLogInline(admin.TabularInline):
    model = PostingLog
    fields = ("created_at", "from_status_words", "to_status_words", "trigger_words", "user", "message")
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = "History"

    @admin.display(description="From status")
    def from_status_words(self, obj: PostingLog) -> str:
        return status_words(obj.from_status)

    @admin.display(description="To status")
    def to_status_words(self, obj: PostingLog) -> str:
        return status_words(obj.to_status)

    @admin.display(description="Trigger")
    def trigger_words(self, obj: PostingLog) -> str:
        try:
            return str(Posting.Trigger(obj.trigger).label)
        except ValueError:
            return obj.trigger or "—"

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Posting)
class PostingAdmin(ReadOnlyAdmin):
    list_display = (
        "entry",
        "status_badge",
        "amount",
        "reason",
        "gl_day",
        "channel",
        "x3_document",
        "flag",
        "tenant",
    )
    list_display_links = (
        None  # the entry column carries its own links (the entry, and all entries of its order)
    )
    list_filter = (
        "status",
        ("tenant", admin.RelatedOnlyFieldListFilter),
        "kind",
        ChannelFilter,
        "flagged",
        "trigger",
        ("gl_date", GlDateFilter),
        "created_at",
    )
    search_fields = ("=order_id", "reference", "x3_document_number", "idempotency_key")
    list_select_related = ("tenant",)
    date_hierarchy = "gl_date"
    inlines = (PostingLineInline, PostingLogInline, PostingAttemptInline)
    actions = ("approve", "reject", "repost_orders", "retry_now")
    readonly_fields = [f.name for f in Posting._meta.fields] + [
        "balance",
        "flag",
        "entry_total",
        "rounding",
        "x3_preview",
        "channel",
        "order_status",
        "gl_day",
        "summary_members",
        "summary_drill_down",
    ]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "tenant",
                    "kind",
                    "idempotency_key",
                    "order_id",
                    "refund_id",
                    "parent",
                    "status",
                    "summary",
                )
            },
        ),
        ("Daily summary", {"fields": ("summary_members", "summary_drill_down"), "classes": ("collapse",)}),
        (
            "Entry",
            {
                "fields": (
                    "channel",
                    "order_status",
                    "gl_day",
                    "currency",
                    "source_currency",
                    "exchange_rate",
                    "entry_total",
                    "balance",
                    "rounding",
                    "flag",
                    "flag_reason",
                    "description",
                )
            },
        ),
        (
            "Sage X3",
            {
                "fields": (
                    "reference",
                    "x3_document_number",
                    "x3_uuid",
                    "posted_at",
                    ("mapping_version", "company", "site", "entry_type", "journal"),
                    "x3_preview",
                )
            },
        ),
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

    @admin.display(description="Amount", ordering="total")
    def amount(self, obj: Posting) -> str:
        currency = obj.currency or "USD"
        if not obj.total and obj.status in (Posting.Status.WAITING, Posting.Status.NEEDS_MAPPING):
            order_total = (obj.snapshot or {}).get("total_inc_tax")
            if order_total:  # nothing built yet: show what the order is worth, marked as such
                amount = quantize(Decimal(str(order_total)), currency)
                return format_html(
                    '<span title="Order total; no entry built yet">({} {})</span>', f"{amount:,}", currency
                )
        return f"{quantize(obj.total, currency):,} {obj.currency}"

    @admin.display(description="Entry", ordering="order_id")
    def entry(self, obj: Posting) -> str:
        if obj.kind == Posting.Kind.SUMMARY:  # drill-down: the entries it carries
            return format_html(
                '<a href="{}" title="Idempotency key {}">{}</a> <a href="{}" class="ws-all">(its entries)</a>',
                reverse("admin:accounting_posting_change", args=[obj.pk]),
                obj.idempotency_key,
                obj.entry_label,
                self.members_url(obj),
            )
        link = self._entry_link(obj)
        if obj.summary_id:  # carried to X3 by a daily summary
            return format_html(
                '{} <a href="{}" class="ws-all" title="The daily summary that carries this entry">(in summary)</a>',
                link,
                reverse("admin:accounting_posting_change", args=[obj.summary_id]),
            )
        return link

    def _entry_link(self, obj: Posting) -> str:
        return format_html(
            '<a href="{}" title="Idempotency key {}">{}</a> <a href="{}" class="ws-all" title="All entries of order {}">'
            "(all)</a>",
            reverse("admin:accounting_posting_change", args=[obj.pk]),
            obj.idempotency_key,
            obj.entry_label,
            self.order_entries_url(obj),
            obj.order_id,
        )

    @admin.display(description="GL date", ordering="gl_date")
    def gl_day(self, obj: Posting) -> str:
        return obj.gl_date.isoformat() if obj.gl_date else "—"

    @admin.display(description="Channel", ordering="channel_id")
    def channel(self, obj: Posting):
        from connector.channels import label_for

        return label_for(obj.tenant_id, obj.channel_id)

    def get_fieldsets(self, request, obj=None):
        """The daily-summary fields only where they say something: a summary, or an entry carried by one."""
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or obj.kind == Posting.Kind.SUMMARY or obj.summary_id is not None:
            return fieldsets
        kept = []
        for name, options in fieldsets:
            if name == "Daily summary":
                continue
            fields = tuple(f for f in options.get("fields", ()) if f != "summary")
            kept.append((name, {**options, "fields": fields}))
        return kept

    @admin.display(description="BigCommerce order status")
    def order_status(self, obj: Posting) -> str:
        if obj.order_status_id is None:
            return "—"
        name = ORDER_STATUS_NAMES.get(obj.order_status_id)
        return f"{obj.order_status_id} · {name}" if name else str(obj.order_status_id)

    @admin.display(description="X3 document", ordering="x3_document_number")
    def x3_document(self, obj: Posting) -> str:
        return obj.x3_document_number

    @staticmethod
    def members_url(obj: Posting) -> str:
        head = obj.parent_id if obj.kind == Posting.Kind.SUMMARY and obj.parent_id else obj.pk
        return reverse("admin:accounting_posting_changelist") + f"?summary__id__exact={head}"

    @admin.display(description="Entries in this summary")
    def summary_members(self, obj: Posting) -> str:
        if obj.kind != Posting.Kind.SUMMARY:
            return "—"
        members = (obj.snapshot or {}).get("members", [])
        shown = format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            (
                (reverse("admin:accounting_posting_change", args=[m["posting"]]), f"{m['kind']} {m['order']}")
                for m in members[:50]
            ),
        )
        return format_html(
            '{} entries: {}{} <a href="{}">(list them)</a>',
            len(members),
            shown,
            " …" if len(members) > 50 else "",
            self.members_url(obj),
        )

    @admin.display(description="Orders behind each line")
    def summary_drill_down(self, obj: Posting) -> str:
        if obj.kind != Posting.Kind.SUMMARY:
            return "—"
        currency = obj.currency or "USD"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    line["line_no"],
                    line["account"],
                    line["role"],
                    f"{quantize(Decimal(line['amount']), currency):,}",
                    ", ".join(
                        f"order {s['order']}: {quantize(Decimal(s['amount']), currency):,}"
                        for s in line["sources"][:20]
                    )
                    + (f" … and {len(line['sources']) - 20} more" if len(line["sources"]) > 20 else ""),
                )
                for line in (obj.snapshot or {}).get("lines", [])
            ),
        )
        return format_html(
            "<table><thead><tr><th>Line</th><th>Account</th><th>Role</th><th>Debit − credit</th>"
            "<th>Orders and amounts</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    @staticmethod
    def order_entries_url(obj: Posting) -> str:
        return (
            reverse("admin:accounting_posting_changelist")
            + f"?tenant__id__exact={obj.tenant_id}&order_id={obj.order_id}"
        )

    def get_list_display(self, request):
        fields = super().get_list_display(request)
        if tenants_for(request.user).count() == 1:
            fields = tuple(f for f in fields if f != "tenant")  # one tenant: the column says nothing
        return fields

    @admin.display(description="Total (receivable)")
    def entry_total(self, obj: Posting) -> str:
        return self.amount(obj)

    @admin.display(description="Rounding line")
    def rounding(self, obj: Posting) -> str:
        return side_amount(obj.difference, obj.currency) or "none"

    def get_queryset(self, request):
        """The channel mapping of each unmapped row, read with the list (no query per row)."""
        # The version in force on the entry's GL date (today when it has none yet), as it is now.
        mapping = ChannelMapping.objects.filter(
            tenant=OuterRef("tenant"),
            channel_id=OuterRef("channel_id"),
            effective_from__lte=Coalesce(OuterRef("gl_date"), Value(timezone.localdate())),
        ).order_by("-effective_from")
        unmapped = Q(status=Posting.Status.NEEDS_MAPPING)
        fields = ("pk", "is_active", *ChannelMapping.REQUIRED_ACCOUNTS)
        return (
            super()
            .get_queryset(request)
            .annotate(
                **{
                    f"mapping_{name}": Case(When(unmapped, then=Subquery(mapping.values(name)[:1])))
                    for name in fields
                }
            )
        )

    @staticmethod
    def mapping_problem(obj: Posting):
        if obj.status != Posting.Status.NEEDS_MAPPING or not hasattr(obj, "mapping_pk"):
            return explain.mapping_state(obj) if obj.status == Posting.Status.NEEDS_MAPPING else None
        mapping = None
        if obj.mapping_pk is not None:
            mapping = ChannelMapping(
                pk=obj.mapping_pk,
                is_active=getattr(obj, "mapping_is_active"),  # noqa: B009  (an annotation)
                **{name: getattr(obj, f"mapping_{name}") for name in ChannelMapping.REQUIRED_ACCOUNTS},
            )
        return mapping_problem_of(obj.channel_id or 0, mapping)

    @admin.display(description="Reason")
    def reason(self, obj: Posting) -> str:
        text = explain.reason(obj, problem=self.mapping_problem(obj))
        if not text:
            return ""
        short = text if len(text) <= 140 else text[:139] + "…"
        if obj.status == Posting.Status.NEEDS_MAPPING:
            return format_html('<a href="{}" title="{}">{}</a>', mapping_url(obj), text, short)
        return format_html('<span title="{}">{}</span>', text, short)

    @admin.display(description="Flagged", ordering="flagged")
    def flag(self, obj: Posting) -> str:
        if not obj.flagged:
            return ""
        return format_html('<span class="connector-flag" title="{}">⚑ flagged</span>', obj.flag_reason)

    def changelist_view(self, request, extra_context=None):
        audit = {"audit_lines": audit_chain_lines(tenants_for(request.user))}
        response = super().changelist_view(request, {**audit, **(extra_context or {})})
        cl = response.context_data.get("cl") if hasattr(response, "context_data") else None
        if cl is not None:
            rows = cl.queryset.values("currency").annotate(total=Sum("total"), n=Count("id")).order_by()
            totals = money_totals(rows, "currency", ("total",))
            counts = {(r["currency"] or "USD"): r["n"] for r in rows}
            for t in totals:
                t["n"] = counts.get(t["currency"], 0)
            response.context_data["totals"] = totals  # type: ignore[attr-defined]
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        posting = self.get_object(request, object_id)
        banner = explain.explain(posting)
        context = {
            **(extra_context or {}),
            "banner": banner,
            "flag_reason": posting.flag_reason if posting.flagged else "",
        }
        if banner and posting.status == Posting.Status.NEEDS_MAPPING:
            context["banner_link"] = mapping_url(posting)
        elif banner and posting.status == Posting.Status.NEEDS_REAUTH:
            context["banner_link"] = reverse("admin:connector_tenant_change", args=[posting.tenant_id])
        if banner and posting.status in explain.NEEDS_A_PERSON:
            context["banner_list"] = self.order_entries_url(posting)
        if posting.status == Posting.Status.AWAITING_APPROVAL and self.has_operate_permission(request):
            context["decide_url"] = reverse("admin:accounting_posting_decide", args=[posting.pk])
        return super().change_view(request, object_id, form_url, context)

    def decide_view(self, request, object_id: int) -> HttpResponse:
        """The posting page's "Approve and post" / "Reject" buttons: the list actions, for this one entry."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:accounting_posting_change", args=[object_id]))
        if not self.has_operate_permission(request):
            raise PermissionDenied
        queryset = self.get_queryset(request).filter(pk=object_id)  # another merchant's entry: 404
        if not queryset.exists():
            raise Http404("No such posting")
        kinds = {"approve": BulkOperation.Kind.APPROVE, "reject": BulkOperation.Kind.REJECT}
        kind = kinds.get(request.POST.get("decision", ""))
        if kind is None:
            messages.error(request, "Choose “Approve and post” or “Reject”.")
        else:
            self._bulk(request, queryset, kind)
        return HttpResponseRedirect(reverse("admin:accounting_posting_change", args=[object_id]))

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
        debit, credit = (Decimal(str(totals[k] or 0)) for k in ("d", "c"))
        shown = [f"{quantize(v, obj.currency or 'USD'):,}" for v in (debit, credit)]
        return f"{shown[0]} = {shown[1]}" + ("" if debit == credit else "  ⚠ NOT BALANCED")

    @admin.display(description="What is sent to X3")
    def x3_preview(self, obj: Posting) -> str:
        """The exact request body this entry goes to X3 with (shown until it is posted, for review)."""
        if obj.status == Posting.Status.POSTED:
            return "Sent: the request and Sage X3's answer are under “X3 calls” at the bottom of this page."
        if obj.status not in (Posting.Status.AWAITING_APPROVAL, Posting.Status.PENDING, Posting.Status.RETRY):
            return "—"
        try:
            body = x3_client(obj.tenant).preview(entry_for(obj))
        except (IntegrationError, ValueError) as exc:
            return f"Cannot build the X3 request: {getattr(exc, 'message', exc)}"
        return format_html(
            '<pre class="x3-request">{}</pre><p class="help">{}</p>',
            readable_json(body),
            "Line breaks and indentation added for reading; the values are exactly those sent."
            if body.lstrip()[:1] in ("{", "[")
            else "Exactly as sent.",
        )

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("accounting.operate_posting")

    def _bulk(self, request, queryset, kind: str):
        """Run a posting action: a few rows in the request, more as one batch in the queue (connector/bulk.py).
        Either way one summary message, a warning unless everything selected was sent or queued as asked."""
        if queryset.count() > bulk.inline_max():
            batch = bulk.start(kind, queryset, user=request.user)
            return HttpResponseRedirect(reverse("admin:accounting_posting_bulk", args=[batch.pk]))
        report = bulk.run_now(kind, queryset, user=request.user)
        label = BulkOperation.Kind(kind).label
        self.message_user(request, f"{label}: {report.summary()}", report.level)
        return None

    @admin.action(
        description="Re-post order: re-fetch from BigCommerce, post only what is missing",
        permissions=["operate"],
    )
    def repost_orders(self, request, queryset):
        return self._bulk(request, queryset, BulkOperation.Kind.REPOST)

    @admin.action(description="Approve and post (entries awaiting approval)", permissions=["operate"])
    def approve(self, request, queryset):
        return self._bulk(request, queryset, BulkOperation.Kind.APPROVE)

    @admin.action(description="Reject (entries awaiting approval): nothing is sent", permissions=["operate"])
    def reject(self, request, queryset):
        return self._bulk(request, queryset, BulkOperation.Kind.REJECT)

    @admin.action(
        description="Retry now: rebuild from the current order and mapping, then send (not posted entries)",
        permissions=["operate"],
    )
    def retry_now(self, request, queryset):
        return self._bulk(request, queryset, BulkOperation.Kind.RETRY)

    def get_urls(self):
        progress = path(
            "bulk/<int:batch_id>/",
            self.admin_site.admin_view(self.bulk_view),
            name="accounting_posting_bulk",
        )
        decide = path(
            "<int:object_id>/decide/",
            self.admin_site.admin_view(self.decide_view),
            name="accounting_posting_decide",
        )
        return [progress, decide, *super().get_urls()]

    def bulk_view(self, request, batch_id: int) -> HttpResponse:
        """The progress of a bulk action; 404 for a batch that touches a tenant the user does not have."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        batch = BulkOperation.objects.filter(pk=batch_id).select_related("requested_by").first()
        if batch is None or not bulk.visible_to(request.user, batch):
            raise Http404("No such bulk action")
        report = operations.Report.from_json(batch.report)
        finished = batch.status == BulkOperation.Status.DONE
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"{batch.get_kind_display()}: {batch.total} entries",
            "batch": batch,
            "finished": finished,
            "percent": 100 if not batch.total else round(100 * batch.position / batch.total),
            "summary": batch.summary if finished else "",
            "notes": report.notes[:20],
            "more_notes": max(0, len(report.notes) - 20),
            "postings_url": reverse("admin:accounting_posting_changelist"),
        }
        return TemplateResponse(request, "admin/accounting/posting/bulk_progress.html", context)


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


def audit_chain_lines(tenants) -> list[tuple[str, str]]:
    """(message level, text) about the audit chains of ``tenants`` (the user's), from the last ``verify_audit``
    results: two small queries, never a walk over the records."""
    checks = {
        c.tenant_id: c
        for c in AuditCheck.objects.filter(tenant__in=tenants)
        .select_related("tenant")
        .order_by("tenant__name")
    }
    unverified = (
        AuditChainHead.objects.filter(tenant__in=tenants)
        .exclude(tenant_id__in=checks)
        .select_related("tenant")
        .order_by("tenant__name")
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


@admin.register(PostingLine)
class PostingLineAdmin(ReadOnlyAdmin):
    """The lines behind a trial-balance figure (drill-down from the workspace), with totals of the filtered rows."""

    tenant_path = "posting__tenant"
    list_display = (
        "posting_link",
        "gl_date",
        "channel",
        "role",
        "account",
        "debit_amount",
        "credit_amount",
        "dimensions",
    )
    list_filter = ("role", ("posting__tenant", admin.RelatedOnlyFieldListFilter), "posting__status")
    search_fields = ("=account", "=posting__order_id", "description")
    list_select_related = ("posting",)
    # Query-string lookups the workspace links use (relational lookups must be allowed explicitly).
    drill_down_lookups = (
        "posting__tenant__id__exact",
        "posting__channel_id",
        "posting__currency",
        "posting__status__exact",
        "posting__gl_date__gte",
        "posting__gl_date__lte",
    )

    def lookup_allowed(self, lookup, value, request=None):
        return lookup in self.drill_down_lookups or super().lookup_allowed(lookup, value, request)

    @admin.display(description="Entry", ordering="posting__idempotency_key")
    def posting_link(self, obj: PostingLine) -> str:
        url = reverse("admin:accounting_posting_change", args=[obj.posting_id])
        return format_html(
            '<a href="{}" title="{}">{}</a>', url, obj.posting.idempotency_key, obj.posting.entry_label
        )

    @admin.display(description="GL date", ordering="posting__gl_date")
    def gl_date(self, obj: PostingLine):
        return obj.posting.gl_date

    @admin.display(description="Channel", ordering="posting__channel_id")
    def channel(self, obj: PostingLine):
        from connector.channels import label_for

        return label_for(obj.posting.tenant_id, obj.posting.channel_id)

    @admin.display(description="Debit", ordering="debit")
    def debit_amount(self, obj: PostingLine) -> str:
        return side_amount(obj.debit, obj.posting.currency)

    @admin.display(description="Credit", ordering="credit")
    def credit_amount(self, obj: PostingLine) -> str:
        return side_amount(obj.credit, obj.posting.currency)

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        cl = getattr(response, "context_data", {}).get("cl") if hasattr(response, "context_data") else None
        if cl is not None:
            response.context_data["totals"] = money_totals(  # type: ignore[attr-defined]
                cl.queryset.values("posting__currency").annotate(d=Sum("debit"), c=Sum("credit")).order_by(),
                "posting__currency",
                ("d", "c"),
            )
        return response


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


# --- tenders: payment-clearing accounts per gateway (docs/payments-and-currencies.md) ---


class TenderMappingResource(resources.ModelResource):
    """CSV/XLSX import and export of tender mappings; the tenant is named by its slug."""

    tenant = fields.Field(attribute="tenant", column_name="tenant", widget=TenantWidget(Tenant, field="slug"))

    def __init__(self, user=None, **kwargs):
        super().__init__(**kwargs)
        if user is not None:
            self.fields["tenant"].widget.allowed = tenants_for(user)

    class Meta:
        model = TenderMapping
        import_id_fields = ("tenant", "gateway", "method")
        exclude = ("id", "created_at", "updated_at")
        skip_unchanged = True
        report_skipped = True
        clean_model_instances = True  # TenderMapping.clean checks the account against the X3 chart


@admin.register(TenderMapping)
class TenderMappingAdmin(TenantScopedAdmin, ImportExportModelAdmin):
    resource_classes = [TenderMappingResource]
    list_display = ("tenant", "gateway", "method_or_any", "name", "account", "account_name")
    list_filter = (("tenant", admin.RelatedOnlyFieldListFilter), "gateway")
    search_fields = ("gateway", "method", "name", "account")
    list_select_related = ("tenant",)

    @admin.display(description="Method", ordering="method")
    def method_or_any(self, obj: TenderMapping) -> str:
        return obj.method or "any method"

    @admin.display(description="Account name")
    def account_name(self, obj: TenderMapping) -> str:
        return account_names(obj.tenant_id).get(obj.account, "") or "—"

    def save_model(self, request, obj: TenderMapping, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if not chart_loaded(obj.tenant_id):
            messages.warning(
                request,
                f"No Sage X3 chart of accounts is loaded for {obj.tenant}: account {obj.account} was not checked. "
                "Use 'Refresh chart of accounts' on the tenant.",
            )

    def get_import_resource_kwargs(self, request, **kwargs):
        return {**super().get_import_resource_kwargs(request, **kwargs), "user": request.user}
