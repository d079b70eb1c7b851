"""HTTP entry points. Thin: they translate HTTP to service calls and back."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import intake, operations, tasks, x3auth
from .access import tenants_for
from .metrics import count_webhooks

logger = logging.getLogger(__name__)


def _read_body(request: HttpRequest, limit: int) -> bytes | None:
    """The raw body, or None when it is larger than ``limit`` (checked before reading it all)."""
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return None
    body = request.read(limit + 1)
    return None if len(body) > limit else body


@count_webhooks
@csrf_exempt
@transaction.non_atomic_requests
@require_POST
def bigcommerce_webhook(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    """``POST /webhooks/bigcommerce/<tenant>/``: answer fast; the work happens in a django-q2 task."""
    body = _read_body(request, settings.CONNECTOR["WEBHOOK_MAX_BODY_BYTES"])
    if body is None:
        return JsonResponse({"error": "Payload too large"}, status=413)
    try:
        result = intake.receive(tenant_slug=tenant_slug, body=body, headers=request.headers)
    except intake.IntakeError as exc:
        return JsonResponse({"error": exc.message}, status=exc.status)
    except DatabaseError:
        # Not the sender's fault: 503 makes BigCommerce retry later, and nothing was half-stored.
        logger.exception("Database error while storing a webhook for tenant %s", tenant_slug)
        return JsonResponse({"error": "Temporarily unavailable"}, status=503)
    response = JsonResponse({"status": result.message}, status=result.status)
    response.webhook_duplicate = result.duplicate  # type: ignore[attr-defined]  # read by connector/metrics.py
    return response


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return False
    return True


def _broker_ok() -> bool:
    try:
        return tasks.broker().ping() is not False
    except Exception as exc:  # redis errors, a refused connection, a timeout: all mean "not ready"
        logger.warning("Readiness: the task broker does not answer (%s)", type(exc).__name__)
        return False


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness plus a database round trip, for the Docker HEALTHCHECK. Does not look at the broker: a broker outage
    does not lose webhooks (they are stored, the sweep queues them), so it is no reason to restart the web process."""
    if not _database_ok():
        return JsonResponse({"status": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: the database and the task broker (django-q2's ping) both answer. 503 names the part that is down."""
    checks = {
        "database": "ok" if _database_ok() else "unavailable",
        "broker": "ok" if _broker_ok() else "unavailable",
    }
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", **checks}, status=200 if ready else 503)


# --- "Connect to Sage X3" (OAuth2 authorization code) -------------------------------------------------------------


def x3_oauth_redirect_uri(request: HttpRequest) -> str:
    """The redirect URI registered in the Sage App Registry: the setting, else this site's callback URL."""
    return settings.CONNECTOR["X3_OAUTH_REDIRECT_URI"] or request.build_absolute_uri(
        reverse("x3-oauth-callback")
    )


@never_cache
@staff_member_required
@require_POST
def x3_oauth_start(request: HttpRequest, tenant_id: int) -> HttpResponse:
    """``POST /x3/oauth/<tenant>/start/`` (admin, CSRF-protected): record a single-use state, go to Sage."""
    if not request.user.has_perm("connector.change_tenant"):
        return HttpResponseForbidden("You may not change tenants.")
    tenant = get_object_or_404(tenants_for(request.user).select_related("x3"), pk=tenant_id)
    change_url = reverse("admin:connector_tenant_change", args=[tenant.pk])
    try:
        url = x3auth.x3_authorization_start(
            x3=tenant.x3, user=request.user, redirect_uri=x3_oauth_redirect_uri(request)
        )
    except x3auth.AuthorizationFlowError as exc:
        messages.error(request, exc.message)
        return HttpResponseRedirect(change_url)
    return HttpResponseRedirect(url)


@never_cache
@csrf_exempt  # Sage calls back (possibly with a cross-site POST); the single-use state is the CSRF check
@require_http_methods(["GET", "POST"])
def x3_oauth_callback(request: HttpRequest) -> HttpResponse:
    """``/x3/oauth/callback/``: Sage's redirect after the customer approved (or refused) the pairing.

    Accepted only with a state we issued, unused and unexpired; if a user is logged in, it must be the one who
    started the flow. Sage documents the parameters as ``authorizationCode``, ``state`` and ``endpoint``; the
    standard ``code`` is accepted too.
    """
    params = request.POST if request.method == "POST" else request.GET
    try:
        result = x3auth.x3_authorization_complete(
            state=params.get("state", ""),
            code=params.get("authorizationCode") or params.get("code", ""),
            endpoint=params.get("endpoint", ""),
            error=params.get("error_description") or params.get("error", ""),
            user=request.user,
        )
    except x3auth.AuthorizationFlowError as exc:
        return render(
            request,
            "connector/x3_oauth_result.html",
            {"ok": False, "message": exc.message},
            status=exc.status,
        )
    tenant = result.connection.tenant
    resumed = operations.resume_after_reauthorization(tenant)
    message = f"Sage X3 connected for {tenant.name}." + (
        f" {resumed} posting(s) waiting for re-authorization were resumed." if resumed else ""
    )
    if request.user.is_authenticated and request.user.is_staff:
        messages.success(request, message)
        return HttpResponseRedirect(reverse("admin:connector_tenant_change", args=[tenant.pk]))
    return render(request, "connector/x3_oauth_result.html", {"ok": True, "message": message})
