"""Admin actions on many postings, done by a worker instead of inside the web request.

A selection of more than ``BULK_INLINE_MAX`` postings (20) becomes a :class:`BulkOperation` row: the selected,
tenant-scoped posting IDs, the action, who asked. One django-q2 task works through it in small chunks, saving
its position and counts after each, and the admin shows a progress page until it ends with one summary. The queue
only rings the bell (docs/decisions/0006): a batch whose task was lost — never started, or its worker died — is
found by the sweep (``pending_batches``) and rung again; it resumes where it stopped. Each posting's action is a
compare-and-set, so a chunk done twice sends nothing twice. See docs/decisions/0019-failure-queue-retry.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounting.models import Posting

from . import operations, tasks
from .models import BulkOperation, Tenant

B = BulkOperation.Status
K = BulkOperation.Kind
CHUNK = 10  # postings per step: position, counts and heartbeat are saved after each

ACTIONS: dict[str, Callable[..., operations.Report]] = {
    K.RETRY: operations.retry,
    K.REPOST: operations.repost_orders,
    K.APPROVE: operations.approve_selected,
    K.REJECT: operations.reject_selected,
}


def inline_max() -> int:
    return int(settings.CONNECTOR.get("BULK_INLINE_MAX", 20))


def run_now(kind: str, queryset: QuerySet[Posting], *, user=None) -> operations.Report:
    """A small selection, in the request."""
    return ACTIONS[kind](queryset, user=user)


def start(kind: str, queryset: QuerySet[Posting], *, user=None) -> BulkOperation:
    """Store the batch (the caller's queryset is already limited to the user's tenants), then ring the bell."""
    ids = list(queryset.order_by("id").values_list("id", flat=True))
    tenant_ids = set(Posting.objects.filter(pk__in=ids).values_list("tenant_id", flat=True))
    with transaction.atomic():
        batch = BulkOperation.objects.create(
            kind=kind, posting_ids=ids, requested_by=user if getattr(user, "pk", None) else None
        )
        batch.tenants.set(Tenant.objects.filter(pk__in=tenant_ids))
    tasks.enqueue_bulk(batch.pk)
    return batch


def visible_to(user, batch: BulkOperation) -> bool:
    """A batch is the user's to see when every tenant it touches is one of theirs (superusers see all)."""
    if not (user and user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    from .access import tenants_for

    allowed = set(tenants_for(user).values_list("pk", flat=True))
    return set(batch.tenants.values_list("pk", flat=True)) <= allowed


def run_batch(batch_id: int, *, budget_seconds: float | None = None) -> str:
    """Work through a batch (the worker's task). Stops after ``budget_seconds`` (half the task timeout) with its
    position saved and rings the bell for the rest, so no task runs into django-q2's timeout."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CONNECTOR["STALE_AFTER_SECONDS"])
    claimed = BulkOperation.objects.filter(
        Q(status=B.QUEUED) | Q(status=B.RUNNING, heartbeat_at__lt=stale), pk=batch_id
    ).update(status=B.RUNNING, heartbeat_at=now)
    if not claimed:
        return "not-due"
    batch = BulkOperation.objects.select_related("requested_by").get(pk=batch_id)
    if budget_seconds is None:
        budget_seconds = settings.Q_CLUSTER.get("timeout", 120) / 2
    deadline = time.monotonic() + budget_seconds
    tenant_ids = list(batch.tenants.values_list("pk", flat=True))
    report = operations.Report.from_json(batch.report)
    action = ACTIONS[batch.kind]
    position = batch.position
    while position < batch.total:
        chunk = batch.posting_ids[position : position + CHUNK]
        postings = Posting.objects.filter(pk__in=chunk, tenant_id__in=tenant_ids)
        gone = len(chunk) - postings.count()
        part = action(postings, user=batch.requested_by)
        for _ in range(gone):
            part.add("skipped", "the entry no longer exists")
        report.merge(part)
        position += len(chunk)
        done, skipped, failed = report.counts
        BulkOperation.objects.filter(pk=batch.pk, status=B.RUNNING).update(
            position=position,
            done=done,
            skipped=skipped,
            failed=failed,
            report=report.as_json(),
            heartbeat_at=timezone.now(),
        )
        if position < batch.total and time.monotonic() > deadline:
            BulkOperation.objects.filter(pk=batch.pk, status=B.RUNNING).update(status=B.QUEUED)
            tasks.enqueue_bulk(batch.pk)
            return f"continued at {position}/{batch.total}"
    BulkOperation.objects.filter(pk=batch.pk, status=B.RUNNING).update(
        status=B.DONE,
        finished_at=timezone.now(),
        summary=report.summary(),
        level=report.level_name,
    )
    done, skipped, failed = report.counts
    return f"done={done} skipped={skipped} failed={failed}"


def lost_batches() -> list[int]:
    """Batches whose task was lost: queued a while ago and not started, or running without a sign of life."""
    now = timezone.now()
    grace = now - timedelta(seconds=30)
    stale = now - timedelta(seconds=settings.CONNECTOR["STALE_AFTER_SECONDS"])
    return list(
        BulkOperation.objects.filter(
            Q(status=B.QUEUED, created_at__lt=grace, heartbeat_at__isnull=True)
            | Q(status=B.QUEUED, heartbeat_at__lt=grace)
            | Q(status=B.RUNNING, heartbeat_at__lt=stale)
        ).values_list("pk", flat=True)[:100]
    )
