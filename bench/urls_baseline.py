"""One view, the least a webhook endpoint can do on this stack: read the body, INSERT one row with the ORM."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from connector.views import healthz


@csrf_exempt
@transaction.non_atomic_requests
@require_POST
def insert_one_row(request: HttpRequest, tenant_slug: str) -> HttpResponse:
    body = request.read(64 * 1024 + 1)
    Session.objects.create(
        session_key=uuid.uuid4().hex,
        session_data=body.decode("utf-8", errors="replace"),
        expire_date=timezone.now() + timedelta(days=1),
    )
    return JsonResponse({"status": "Accepted"})


urlpatterns = [
    path("webhooks/bigcommerce/<slug:tenant_slug>/", insert_one_row, name="baseline-webhook"),
    path("healthz", healthz, name="healthz"),
]
