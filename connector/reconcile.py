"""The reconciliation poll: webhooks are hints and can be lost, so compare the store with our postings.

Every few minutes, per active tenant: orders modified since the last run whose latest modification we have not
planned from, and refunds created since then that we have no posting for, get a sync queued; order hooks that
BigCommerce deactivated (after 48 hours of failed deliveries, or 90 days of inactivity) are switched back on.
See docs/reference/bigcommerce.md §0.5 and docs/decisions/0006-queue-is-a-doorbell.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from time import monotonic
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounting.models import Posting
from integrations.errors import IntegrationError, PermanentError

from . import clients, tasks
from .alerts import record_reconcile_finding
from .models import ReReadRun, Tenant

logger = logging.getLogger(__name__)
# Orders modified just before the last run may only show up now (clock skew, list caching): look back a little.
OVERLAP = timedelta(minutes=10)
PAGE = 250


@dataclass(frozen=True)
class ReconcileResult:
    orders_checked: int
    orders_queued: int
    refunds_queued: int
    hooks_reactivated: int


def reconcile_tenant(tenant: Tenant, *, bc_client=None, now: datetime | None = None) -> ReconcileResult:
    """Queue syncs for what the webhooks missed. Raises IntegrationError for BigCommerce failures (the checkpoint
    then stays where it was, so the next run covers the same time again)."""
    if bc_client is None:
        bc_client = clients.bigcommerce_client(tenant)
    now = now or timezone.now()
    lookback = timedelta(hours=settings.CONNECTOR["RECONCILE_FIRST_LOOKBACK_HOURS"])
    since = (tenant.reconciled_until or now - lookback) - OVERLAP

    scan = scan_store(tenant, bc_client, since)
    checked, orders_queued, refunds_queued, to_sync = (
        scan.orders_checked,
        len(scan.orders),
        len(scan.refund_orders - scan.orders),
        scan.orders | scan.refund_orders,
    )

    reactivated = 0
    path = f"/webhooks/bigcommerce/{tenant.slug}/"
    for hook in bc_client.list_hooks():
        if path in hook.destination and not hook.is_active:
            bc_client.update_hook(hook.id, is_active=True)
            reactivated += 1
            logger.warning(
                "Re-activated BigCommerce hook %s (%s) for tenant %s", hook.id, hook.scope, tenant.slug
            )

    for order_id in sorted(to_sync):
        tasks.enqueue_order_sync(tenant.pk, order_id)
    Tenant.objects.filter(pk=tenant.pk).update(reconciled_until=now)
    return ReconcileResult(checked, orders_queued, refunds_queued, reactivated)


@dataclass
class StoreScan:
    orders_checked: int = 0
    orders: set[int] = field(
        default_factory=set
    )  # modified since we last planned from them (or never planned)
    refund_orders: set[int] = field(default_factory=set)  # orders with a refund we have no posting for
    resume_from: datetime | None = (
        None  # set when the deadline stopped the scan: continue from this modification
    )


def scan_store(
    tenant: Tenant,
    bc_client,
    since: datetime,
    until: datetime | None = None,
    *,
    channel_id: int | None = None,
    refunds_since: datetime | None = None,
    deadline: float | None = None,
    clock: Callable[[], float] = monotonic,
) -> StoreScan:
    """Orders modified in [since, until] whose latest modification we have not planned from, and orders with a
    refund created since ``refunds_since`` (default ``since``) that we have no posting for. Raises IntegrationError
    for BigCommerce failures. Past ``deadline`` (a ``clock()`` value) it stops after the current page of orders
    and sets ``resume_from`` instead of reading the refunds: call again from there."""
    scan = StoreScan()
    # Keyset paging (see iter_orders_modified): an order modified while we scan shows up again at the end instead
    # of shifting an unread one onto a page already read. Checked against the postings a page at a time.
    for page_rows in _batched(bc_client.iter_orders_modified(since, until, limit=PAGE), PAGE):
        batch = page_rows
        if channel_id is not None:
            batch = [s for s in batch if s.get("channel_id") == channel_id]
        scan.orders_checked += len(batch)
        planned = dict(
            Posting.objects.filter(tenant=tenant, order_id__in=[s["id"] for s in batch])
            .values("order_id")
            .annotate(seen=Max("order_modified_at"))
            .values_list("order_id", "seen")
        )
        scan.orders.update(
            s["id"] for s in batch if planned.get(s["id"]) is None or planned[s["id"]] < s["date_modified"]
        )
        if deadline is not None and clock() >= deadline and len(page_rows) == PAGE:
            # Orders modified in the same second as the last one are read again next time (bounds are inclusive).
            scan.resume_from = page_rows[-1]["date_modified"]
            return scan

    refunds_since = refunds_since or since
    page = 1
    while True:
        refunds, has_more = bc_client.list_refunds(created_min=refunds_since, page=page, limit=PAGE)
        if until is not None:
            refunds = [r for r in refunds if r.created <= until]
        known = set(
            Posting.objects.filter(
                tenant=tenant, kind=Posting.Kind.REFUND, refund_id__in=[r.id for r in refunds]
            ).values_list("refund_id", flat=True)
        )
        scan.refund_orders.update(r.order_id for r in refunds if r.id not in known)
        if not has_more:
            break
        page += 1
    if channel_id is not None and scan.refund_orders:
        # Refunds do not name a channel: keep those of orders known on another channel out of this channel's run.
        elsewhere = set(
            Posting.objects.filter(tenant=tenant, order_id__in=scan.refund_orders)
            .exclude(channel_id=channel_id)
            .values_list("order_id", flat=True)
        )
        scan.refund_orders -= elsewhere
    return scan


def _batched(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def reconcile_all() -> str:
    results = []
    for tenant in Tenant.objects.filter(is_active=True).select_related("bigcommerce"):
        if not hasattr(tenant, "bigcommerce"):
            continue
        try:
            r = reconcile_tenant(tenant)
        except IntegrationError as exc:
            logger.warning("Reconciliation of tenant %s failed: %s", tenant.slug, exc.message)
            results.append(f"{tenant.slug}: error")
            continue
        record_reconcile_finding(tenant, r)  # for the "webhooks are failing" alarm; never raises
        results.append(
            f"{tenant.slug}: {r.orders_checked} checked, {r.orders_queued + r.refunds_queued} queued, "
            f"{r.hooks_reactivated} hooks re-activated"
        )
    return "; ".join(results) or "no tenants"


# --- Re-read a period from BigCommerce (the reconciliation page's button) ------------------------------------------

# A run whose latest task began this long ago and has not finished is taken as lost (worker stopped, broker down)
# and may be redone. A long run keeps its task start fresh: each task of it works at most TASK_BUDGET_SECONDS.
RUN_STALE_AFTER = timedelta(minutes=30)
# One task's share of a long run, below django-q2's task timeout (Q_TIMEOUT, 120 s): then it queues its own sequel.
TASK_BUDGET_SECONDS = 90.0


def stale_runs(model, tenant: Tenant, now: datetime):
    """The tenant's runs of ``model`` still queued or running whose latest task began (or was asked) too long ago."""
    cutoff = now - RUN_STALE_AFTER
    return model.objects.filter(
        Q(started_at__lt=cutoff) | Q(started_at__isnull=True, requested_at__lt=cutoff),
        tenant=tenant,
        status__in=(model.Status.QUEUED, model.Status.RUNNING),
    )


@dataclass(frozen=True)
class Started:
    run: ReReadRun
    created: bool  # False: one was already under way for the tenant


def start_period_run(
    model, tenant: Tenant, start: date, end: date, *, channel_id: int | None, user, enqueue, lost: str
) -> tuple[Any, bool]:
    """Record a run of ``model`` (a re-read or a tie-out) over [start, end] and queue it on commit: (run, created).
    One at a time per tenant: a busy run is returned instead; a stale one is closed first with ``lost`` as its
    message, so it can be started again."""
    now = timezone.now()
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(
            pk=tenant.pk
        ).first()  # one run of a kind per tenant at a time
        stale_runs(model, tenant, now).update(status=model.Status.FAILED, finished_at=now, message=lost)
        running = model.objects.filter(
            tenant=tenant, status__in=(model.Status.QUEUED, model.Status.RUNNING)
        ).first()
        if running is not None:
            return running, False
        run = model.objects.create(
            tenant=tenant,
            period_start=start,
            period_end=end,
            channel_id=channel_id,
            requested_by=getattr(user, "username", "") or "",
        )
        transaction.on_commit(lambda: enqueue(run.pk))
    return run, True


def claim_run(model, run_id: int):
    """Take a queued run for this task (compare-and-set): the run, or None when another task has it or it ended."""
    if not model.objects.filter(pk=run_id, status=model.Status.QUEUED).update(
        status=model.Status.RUNNING, started_at=timezone.now()
    ):
        return None
    return model.objects.select_related("tenant__bigcommerce", "tenant__x3").get(pk=run_id)


def start_reread(tenant: Tenant, start: date, end: date, *, channel_id: int | None, user=None) -> Started:
    """Record a re-read of [start, end] for the tenant and queue it (one at a time per tenant)."""
    run, created = start_period_run(
        ReReadRun,
        tenant,
        start,
        end,
        channel_id=channel_id,
        user=user,
        enqueue=tasks.enqueue_reread,
        lost="The re-read did not finish (the queue may have been stopped); it can be started again.",
    )
    return Started(run, created=created)


def run_reread(
    run_id: int,
    *,
    bc_client=None,
    clock: Callable[[], float] = monotonic,
    budget: float = TASK_BUDGET_SECONDS,
) -> str:
    """The queued re-read: orders modified since the period's first day (so an order placed in the period and edited
    since is read too) and refunds created since then, compared with the postings; what differs gets a sync queued
    through the normal pipeline (plan, exactly-once delivery). Orders we planned from their latest modification
    are current already: their stored snapshot is what BigCommerce shows. A long scan stops after ``budget``
    seconds and queues its own sequel from where it stopped."""
    run = claim_run(ReReadRun, run_id)
    if run is None:
        return "not-due"
    deadline = clock() + budget
    tenant = run.tenant
    first_day = timezone.make_aware(datetime.combine(run.period_start, time.min)) - OVERLAP
    try:
        if bc_client is None:
            if not hasattr(tenant, "bigcommerce"):
                raise PermanentError("the tenant has no BigCommerce store configured")
            bc_client = clients.bigcommerce_client(tenant)
        scan = scan_store(
            tenant,
            bc_client,
            run.resume_from or first_day,
            channel_id=run.channel_id,
            refunds_since=first_day,
            deadline=deadline,
            clock=clock,
        )
    except IntegrationError as exc:
        run.status = ReReadRun.Status.FAILED
        run.message = f"BigCommerce could not be read: {exc.message}. " + (
            "The orders read before that were queued as usual; start it again for the rest."
            if run.orders_checked
            else "Nothing was changed; try again later."
        )
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "message", "finished_at"])
        return "failed"
    for order_id in sorted(scan.orders | scan.refund_orders):
        tasks.enqueue_order_sync(tenant.pk, order_id)
    run.orders_checked += scan.orders_checked
    run.orders_queued += len(scan.orders)
    run.refunds_queued += len(scan.refund_orders - scan.orders)
    if scan.resume_from is not None:
        run.resume_from = scan.resume_from
        run.status = ReReadRun.Status.QUEUED
        run.message = f"{run.orders_checked} order(s) read so far; continuing."
        run.save()
        tasks.enqueue_reread(run.pk)
        return f"{scan.orders_checked} checked, continues"
    queued = run.orders_queued + run.refunds_queued
    run.status = ReReadRun.Status.DONE
    run.message = (
        f"{run.orders_checked} order(s) read; {queued} differed from what was posted and were queued to be "
        "brought up to date (their entries post as usual)."
        if queued
        else f"{run.orders_checked} order(s) read; all were already current."
    )
    run.finished_at = timezone.now()
    run.save()
    return f"{run.orders_checked} checked, {queued} queued"
