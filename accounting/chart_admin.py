"""Admin pieces for the chart of accounts: the cached accounts, and account names next to codes.

Names come from one ``code -> name`` dict per tenant and page (accounting.chart.account_names), never a query per
row.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest
from django.utils.html import format_html_join
from django.utils.safestring import mark_safe

from .chart import MAPPING_ACCOUNT_FIELDS, account_names, mapping_account_warnings
from .models import ChannelMapping


def names_for(request: HttpRequest, tenant_id: int) -> dict[str, str]:
    """The tenant's code -> name dict, loaded once per request."""
    cache: dict[int, dict[str, str]] = request.__dict__.setdefault("_gl_account_names", {})
    if tenant_id not in cache:
        cache[tenant_id] = account_names(tenant_id)
    return cache[tenant_id]


def mapped_accounts_html(mapping: ChannelMapping, names: dict[str, str]) -> str:
    rows = [
        (
            field.removesuffix("_account").replace("_", " "),
            code,
            names.get(code, "not in the loaded chart" if names else ""),
        )
        for field in MAPPING_ACCOUNT_FIELDS
        if (code := getattr(mapping, field))
    ]
    return format_html_join(mark_safe("<br>"), "{}: <code>{}</code> {}", rows) or "—"


def named_accounts_column(request: HttpRequest) -> Callable[[ChannelMapping], str]:
    @admin.display(description="Accounts (names from the Sage X3 chart)")
    def accounts_with_names(mapping: ChannelMapping) -> str:
        return mapped_accounts_html(mapping, names_for(request, mapping.tenant_id))

    return accounts_with_names


class ChartNamesMappingMixin:
    """For the channel mapping admin: a column and a read-only block with each account's name; warnings on save."""

    def get_list_display(self, request: HttpRequest) -> Any:
        return [*super().get_list_display(request), named_accounts_column(request)]  # type: ignore[misc]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*super().get_readonly_fields(request, obj), "chart_accounts"]  # type: ignore[misc]

    @admin.display(description="Accounts in the Sage X3 chart")
    def chart_accounts(self, obj: ChannelMapping) -> str:
        if obj is None or obj.pk is None:
            return "Save first; accounts are then shown with their names."
        return mapped_accounts_html(obj, account_names(obj.tenant_id))

    def save_model(self, request: HttpRequest, obj: ChannelMapping, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        for warning in mapping_account_warnings(obj):
            messages.warning(request, warning)


class LineNamesMixin:
    """For posting line inlines (one instance per request): the account's name next to its code."""

    _names: dict[str, str] | None = None

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if self._names is None:
            self._names = names_for(request, obj.tenant_id) if obj is not None else {}
        fields = list(super().get_fields(request, obj))  # type: ignore[misc]
        if "account" in fields and "account_name" not in fields:
            fields.insert(fields.index("account") + 1, "account_name")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [*super().get_readonly_fields(request, obj), "account_name"]  # type: ignore[misc]

    @admin.display(description="Account name")
    def account_name(self, line: Any) -> str:
        return (self._names or {}).get(line.account, "")
