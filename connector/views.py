"""HTTP entry points. Thin: they translate HTTP to service calls and back."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from . import intake

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
    return JsonResponse({"status": result.message}, status=result.status)


@require_GET
def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness plus a database round trip, for load balancers and the Docker HEALTHCHECK."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return JsonResponse({"status": "database unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
