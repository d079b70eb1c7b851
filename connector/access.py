"""Who may see which tenant: staff users are granted tenants (``Tenant.users``); superusers see all of them.

Every admin page, export, action, chart and reconciliation goes through :func:`tenants_for` or
:class:`TenantScopedAdmin`, so one deployment can serve several merchants without one seeing another's books.
See docs/decisions/0015-accountant-workspace.md.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404

from .models import Tenant


def tenants_for(user) -> QuerySet[Tenant]:
    """The tenants this user may see: all for a superuser, the granted ones for staff, none otherwise."""
    if not (user and user.is_authenticated and user.is_active):
        return Tenant.objects.none()
    if user.is_superuser:
        return Tenant.objects.all()
    return Tenant.objects.filter(users=user)


def tenant_or_404(user, tenant_id) -> Tenant:
    """One of the user's tenants, or 404 (never "forbidden": another merchant's tenant does not exist for them)."""
    try:
        return tenants_for(user).get(pk=int(tenant_id))
    except (Tenant.DoesNotExist, TypeError, ValueError):
        raise Http404("No such tenant") from None


class TenantScopedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose rows, detail pages, actions, exports and tenant choices are limited to the user's tenants.

    ``tenant_path`` is the lookup from the model to its tenant ("tenant", "posting__tenant"); "" for Tenant itself.
    A row outside the user's tenants answers 404, exactly like a row that does not exist.
    """

    tenant_path = "tenant"

    def scope(self, request, queryset: QuerySet) -> QuerySet:
        if request.user.is_superuser:
            return queryset
        if not self.tenant_path:
            return queryset.filter(pk__in=tenants_for(request.user).values("pk"))
        return queryset.filter(**{f"{self.tenant_path}__in": tenants_for(request.user).values("pk")})

    def get_queryset(self, request):
        return self.scope(request, super().get_queryset(request))

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such record")
        return obj

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Tenant:
            kwargs["queryset"] = tenants_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class TenantScopedInline:
    """Mixin for inlines: a tenant picked in an inline is one of the user's."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.related_model is Tenant:
            kwargs["queryset"] = tenants_for(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]  # an inline mixin
