"""The guided setup pages in the admin: the list of the user's tenants, and one tenant's steps.

They only render :mod:`connector.guided_setup` and :mod:`connector.preview`. A GET never calls BigCommerce or Sage
X3; each outside call is a POST button (CSRF-protected). A tenant not granted to the user answers 404; the steps that
touch credentials or the store (tests, chart, webhooks) need the "change tenant" permission (Operator) or a
superuser. URLs are added by ``TenantAdmin.get_urls`` (connector/admin.py) so every page goes through
``admin_site.admin_view`` (login, staff).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import urlencode

from . import guided_setup
from .access import tenant_or_404, tenants_for
from .models import Tenant
from .preview import MAX_ORDERS

ACTIONS = ("bc_test", "channels", "x3_test", "chart", "preview", "webhooks")
CREDENTIAL_ACTIONS = ("bc_test", "x3_test", "chart", "webhooks")
DEFAULT_LAST = 10


def may_change(request: HttpRequest) -> bool:
    return request.user.is_superuser or request.user.has_perm("connector.change_tenant")


def _context(request: HttpRequest, **extra) -> dict:
    return {**admin.site.each_context(request), "opts": Tenant._meta, **extra}


def setup_index(request: HttpRequest) -> HttpResponse:
    if not may_view(request):
        raise PermissionDenied("You may not see tenants.")
    rows = []
    for tenant in tenants_for(request.user).select_related("bigcommerce", "x3").order_by("name"):
        states = guided_setup.steps(tenant)
        rows.append(
            {
                "tenant": tenant,
                "done": sum(s.state in (guided_setup.DONE, guided_setup.OPTIONAL) for s in states),
                "total": len(states),
                "next": next(
                    (s for s in states if s.state not in (guided_setup.DONE, guided_setup.OPTIONAL)), None
                ),
            }
        )
    return TemplateResponse(
        request, "admin/connector/setup/index.html", _context(request, title="Guided setup", rows=rows)
    )


def may_view(request: HttpRequest) -> bool:
    return request.user.has_perm("connector.view_tenant") or request.user.has_perm("connector.change_tenant")


def setup_view(request: HttpRequest, object_id: int) -> HttpResponse:
    tenant = tenant_or_404(request.user, object_id)
    if not may_view(request):
        raise PermissionDenied("You may not see tenants.")
    tenant = Tenant.objects.select_related("bigcommerce", "x3").get(pk=tenant.pk)
    preview = None
    status = 200
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in ACTIONS:
            messages.error(request, "Unknown step: nothing was done.")
            status = 400
        elif action in CREDENTIAL_ACTIONS and not may_change(request):
            raise PermissionDenied("Only an operator can run this step.")
        elif action == "preview":
            last = _last(request)
            if last is None:
                messages.error(
                    request, f"The number of orders must be a whole number from 1 to {MAX_ORDERS}."
                )
                status = 400
            else:
                preview = guided_setup.run_preview(tenant, last, request.user)
                if preview.error:
                    messages.error(request, preview.error)
        else:
            response = _run(request, tenant, action)
            if response is not None:
                return response
            return HttpResponseRedirect(request.path + f"#step-{action}")
    states = guided_setup.steps(tenant)
    return TemplateResponse(
        request,
        "admin/connector/setup/tenant.html",
        _context(
            request,
            title=f"Guided setup of {tenant.name}",
            original=tenant,
            steps=[_render(step, tenant, request) for step in states],
            all_done=guided_setup.all_done(states),
            may_change=may_change(request),
            preview=preview,
            last=request.POST.get("last", DEFAULT_LAST),
            max_orders=MAX_ORDERS,
            base_url=request.POST.get("base_url") or request.build_absolute_uri("/").rstrip("/"),
        ),
        status=status,
    )


def _last(request: HttpRequest) -> int | None:
    try:
        last = int(request.POST.get("last", DEFAULT_LAST))
    except (TypeError, ValueError):
        return None
    return last if 1 <= last <= MAX_ORDERS else None


def _run(request: HttpRequest, tenant: Tenant, action: str) -> HttpResponse | None:
    user = request.user
    if action == "bc_test":
        check = guided_setup.run_bc_test(tenant, user)
        _say(request, check.ok, f"BigCommerce test: {check.summary}")
    elif action == "channels":
        check = guided_setup.run_channels(tenant, user)
        _say(request, check.ok, f"Channels: {check.summary}")
    elif action == "x3_test":
        check = guided_setup.run_x3_test(tenant, user)
        _say(request, check.ok, f"Sage X3 test: {check.summary}")
    elif action == "chart":
        messages.info(request, f"Chart of accounts: {guided_setup.run_chart(tenant)}")
    elif action == "webhooks":
        base_url = request.POST.get("base_url", "").strip()
        try:
            URLValidator(schemes=["https", "http"])(base_url)
        except ValidationError:
            messages.error(
                request, "Give the public address of this connector, e.g. https://connector.example.com."
            )
            return HttpResponseRedirect(request.path + "#step-webhooks")
        if not base_url.startswith("https://"):
            messages.warning(request, "BigCommerce delivers webhooks only to HTTPS on port 443.")
        check = guided_setup.run_webhooks(tenant, base_url, user)
        _say(request, check.ok, f"Webhooks: {check.summary}")
    return None


def _say(request: HttpRequest, ok: bool, text: str) -> None:
    (messages.success if ok else messages.error)(request, text)


def _render(step: guided_setup.StepState, tenant: Tenant, request: HttpRequest) -> dict:
    links = [(reverse(link.url_name, args=link.args) + link.query, link.label) for link in step.links]
    if step.number in (1, 4):
        links.append(
            (reverse("admin:connector_tenant_change", args=[tenant.pk]), "Open the tenant's settings")
        )
    channels = []
    for row in step.channels:
        if row["mapping_id"]:
            url = reverse("admin:accounting_channelmapping_change", args=[row["mapping_id"]])
            label = "Change the mapping"
        else:
            query = urlencode({"tenant": tenant.pk, "channel_id": row["id"], "name": row["name"]})
            url = reverse("admin:accounting_channelmapping_add") + "?" + query
            label = "Add a mapping"
        channels.append({**row, "url": url, "label": label})
    return {
        "step": step,
        "links": links,
        "channels": channels,
        "can_run": bool(step.action) and (not step.credential or may_change(request)),
    }
