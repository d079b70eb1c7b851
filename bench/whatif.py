"""Measured "what if" variants of the connector, for the benches only. Nothing here changes the connector:
``bench.settings_whatif`` runs the connector's own settings and URLs plus the app ``bench.apps.WhatIfConfig``, which
patches, in each process that starts (web or worker), the pieces named in ``BENCH_WHATIF`` (comma-separated):

* ``broker`` — enqueue through one django-q2 Redis broker per process instead of ``async_task``'s default of a new
  broker (a new ``redis.Redis`` client, connection pool and TCP connection, plus redis-py's per-client
  ``importlib.metadata`` lookup) for every delivery;
* ``autocommit`` — store the event with a single autocommitted INSERT and enqueue after it returns, instead of
  ``transaction.atomic()`` + ``on_commit`` (BEGIN, INSERT, COMMIT: three round trips). Same guarantee: the task is
  only queued once the row is committed;
* ``tenant-cache`` — keep the tenant and its store (with decrypted secrets) in process memory for 5 s instead of one
  SELECT … JOIN per delivery;
* ``coalesce`` (workers) — when a worker takes a webhook event, it also takes the other events of the same order
  still waiting (``received``, without a refund id), and one BigCommerce re-read serves them all: their own tasks
  then find nothing to do. BigCommerce sends two events for a new order (``created``, ``statusUpdated``) and three
  for a refund.

Each is a sketch of a suggested change (see bench/README.md), kept behaviourally identical to
``connector.intake.receive`` otherwise.
"""

from __future__ import annotations

import os
import time

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from connector import intake, pipeline, signatures, tasks
from connector.models import Tenant, WebhookEvent

ENABLED = {part.strip() for part in os.environ.get("BENCH_WHATIF", "").split(",") if part.strip()}
TENANT_TTL_SECONDS = 5.0

_broker = None
_tenants: dict[str, tuple[float, Tenant | None]] = {}
_original_enqueue = tasks.enqueue_event


def enqueue_event_cached_broker(event_id: int) -> None:
    global _broker
    from django_q.brokers import get_broker
    from django_q.tasks import async_task

    if _broker is None:
        _broker = get_broker()
    async_task(
        "connector.tasks.process_event",
        event_id,
        task_name=f"event-{event_id}",
        group="events",
        broker=_broker,
    )


def _enqueue(event_id: int) -> None:
    tasks.enqueue_event(event_id)


def _tenant(slug: str) -> Tenant | None:
    if "tenant-cache" in ENABLED:
        now = time.monotonic()
        hit = _tenants.get(slug)
        if hit is not None and now - hit[0] < TENANT_TTL_SECONDS:
            return hit[1]
    tenant = Tenant.objects.select_related("bigcommerce").filter(slug=slug, is_active=True).first()
    if "tenant-cache" in ENABLED:
        _tenants[slug] = (time.monotonic(), tenant)
    return tenant


def receive(*, tenant_slug: str, body: bytes, headers) -> intake.IntakeResult:
    """``connector.intake.receive`` with the enabled variants; same checks, same row, same answers."""
    tenant = _tenant(tenant_slug)
    store = getattr(tenant, "bigcommerce", None) if tenant else None
    if tenant is None or store is None:
        raise intake.IntakeError(404, "Unknown tenant")
    try:
        scheme = signatures.verify(
            body,
            headers,
            schemes=intake.schemes_for(store),
            client_secret=store.client_secret,
            header_name=store.webhook_header_name,
            header_value=store.webhook_header_value,
        )
    except signatures.SignatureError:
        raise intake.IntakeError(401, "Signature verification failed") from None
    event = intake.parse_payload(body)
    if event.producer and event.producer != f"stores/{store.store_hash}":
        raise intake.IntakeError(400, "producer does not match this tenant's store")
    lowered = {k.lower(): v for k, v in headers.items()}
    key = intake.delivery_key(lowered, event, body)
    row = WebhookEvent(
        tenant=tenant,
        delivery_key=key,
        webhook_id=lowered.get("webhook-id", "")[:200],
        scope=event.scope,
        store_id=event.store_id[:40],
        order_id=event.order_id,
        refund_id=event.refund_id,
        bc_hash=event.bc_hash[:64],
        event_created_at=event.created_at,
        body=body.decode("utf-8", errors="replace"),
        headers={k: lowered[k][:500] for k in intake.KEPT_HEADERS if k in lowered},
        verified_by=scheme,
        status=WebhookEvent.Status.RECEIVED if event.handled else WebhookEvent.Status.IGNORED,
    )
    try:
        if "autocommit" in ENABLED:
            row.save(force_insert=True)  # autocommit: committed when save() returns
            if event.handled:
                _enqueue(row.pk)
        else:
            with transaction.atomic():
                row.save()
                if event.handled:
                    transaction.on_commit(lambda: _enqueue(row.pk))
    except IntegrityError:
        WebhookEvent.objects.filter(tenant=tenant, delivery_key=key).update(deliveries=F("deliveries") + 1)
        return intake.IntakeResult(200, "Duplicate delivery: already received", duplicate=True)
    if not event.handled:
        return intake.IntakeResult(200, f"Scope {event.scope} is not handled", event_id=row.pk)
    return intake.IntakeResult(200, "Accepted", event_id=row.pk)


_original_process_event = pipeline.process_event


def process_event_coalescing(event_id: int) -> str:
    """``connector.pipeline.process_event``, taking the order's other waiting events along (see ``coalesce``)."""
    E = WebhookEvent.Status
    event = WebhookEvent.objects.filter(pk=event_id).values("tenant_id", "order_id").first()
    taken: list[int] = []
    if event is not None and event["order_id"] is not None:
        now = timezone.now()
        for pk in (
            WebhookEvent.objects.filter(
                tenant_id=event["tenant_id"],
                order_id=event["order_id"],
                status=E.RECEIVED,
                refund_id__isnull=True,
            )
            .exclude(pk=event_id)
            .values_list("pk", flat=True)
        ):
            if WebhookEvent.objects.filter(pk=pk, status=E.RECEIVED).update(
                status=E.PROCESSING, processing_started_at=now
            ):
                taken.append(pk)
    result = _original_process_event(event_id)
    if taken:
        if result == "not-due":  # someone else has this event: give the others back
            WebhookEvent.objects.filter(pk__in=taken, status=E.PROCESSING).update(status=E.RECEIVED)
        else:
            final = (
                WebhookEvent.objects.filter(pk=event_id).values("status", "error", "next_attempt_at").first()
            )
            WebhookEvent.objects.filter(pk__in=taken, status=E.PROCESSING).update(
                status=final["status"],
                error=final["error"] or f"Covered by event {event_id} (same order, one re-read)",
                processed_at=timezone.now(),
                next_attempt_at=final["next_attempt_at"],
            )
    return result


def apply() -> None:
    unknown = ENABLED - {"broker", "autocommit", "tenant-cache", "coalesce"}
    if unknown:
        raise RuntimeError(f"unknown BENCH_WHATIF variants: {sorted(unknown)}")
    if "broker" in ENABLED:
        tasks.enqueue_event = enqueue_event_cached_broker
    if ENABLED & {"autocommit", "tenant-cache"}:
        intake.receive = receive
    if "coalesce" in ENABLED:
        pipeline.process_event = process_event_coalescing
