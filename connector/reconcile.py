"""The reconciliation poll: webhooks are hints and can be lost, so compare the store with our postings.

Every few minutes, per active tenant: orders modified since the last run whose latest modification we have not
planned from, and refunds created since then that we have no posting for, get a sync queued; order hooks that
BigCommerce deactivated (after 48 hours of failed deliveries, or 90 days of inactivity) are switched back on.
See docs/reference/bigcommerce.md §0.5 and docs/decisions/0006-queue-is-a-doorbell.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Max
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


def scan_store(
    tenant: Tenant,
    bc_client,
    since: datetime,
    until: datetime | None = None,
    *,
    channel_id: int | None = None,
) -> StoreScan:
    """Orders modified in [since, until] whose latest modification we have not planned from, and orders with a
    refund created then that we have no posting for. Raises IntegrationError for BigCommerce failures."""
    scan = StoreScan()
    # Keyset paging (see iter_orders_modified): an order modified while we scan shows up again at the end instead
    # of shifting an unread one onto a page already read. Checked against the postings a page at a time.
    for batch in _batched(bc_client.iter_orders_modified(since, until, limit=PAGE), PAGE):
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

    page = 1
    while True:
        refunds, has_more = bc_client.list_refunds(created_min=since, page=page, limit=PAGE)
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

# A run still queued or running after this long is taken as lost (worker stopped, broker down) and may be redone.
RUN_STALE_AFTER = timedelta(minutes=30)


@dataclass(frozen=True)
class Started:
    run: ReReadRun
    created: bool  # False: one was already under way for the tenant


def start_reread(tenant: Tenant, start: date, end: date, *, channel_id: int | None, user=None) -> Started:
    """Record a re-read of [start, end] for the tenant and queue it (one at a time per tenant)."""
    now = timezone.now()
    busy = ReReadRun.Status.QUEUED, ReReadRun.Status.RUNNING
    with transaction.atomic():
        Tenant.objects.select_for_update().filter(pk=tenant.pk).first()  # one re-read per tenant at a time
        ReReadRun.objects.filter(
            tenant=tenant, status__in=busy, requested_at__lt=now - RUN_STALE_AFTER
        ).update(
            status=ReReadRun.Status.FAILED,
            finished_at=now,
            message="The re-read did not finish (the queue may have been stopped); it can be started again.",
        )
        running = ReReadRun.objects.filter(tenant=tenant, status__in=busy).first()
        if running is not None:
            return Started(running, created=False)
        run = ReReadRun.objects.create(
            tenant=tenant,
            period_start=start,
            period_end=end,
            channel_id=channel_id,
            requested_by=getattr(user, "username", "") or "",
        )
        transaction.on_commit(lambda: tasks.enqueue_reread(run.pk))
    return Started(run, created=True)


def run_reread(run_id: int, *, bc_client=None) -> str:
    """The queued re-read: orders modified since the period's first day (so an order placed in the period and edited
    since is read too) and refunds created since then, compared with the postings; what differs gets a sync queued
    through the normal pipeline (plan, exactly-once delivery). Orders we planned from their latest modification
    are current already: their stored snapshot is what BigCommerce shows."""
    now = timezone.now()
    claimed = ReReadRun.objects.filter(pk=run_id, status=ReReadRun.Status.QUEUED).update(
        status=ReReadRun.Status.RUNNING, started_at=now
    )
    if claimed != 1:
        return "not-due"
    run = ReReadRun.objects.select_related("tenant__bigcommerce").get(pk=run_id)
    tenant = run.tenant
    since = timezone.make_aware(datetime.combine(run.period_start, time.min)) - OVERLAP
    try:
        if bc_client is None:
            if not hasattr(tenant, "bigcommerce"):
                raise PermanentError("the tenant has no BigCommerce store configured")
            bc_client = clients.bigcommerce_client(tenant)
        scan = scan_store(tenant, bc_client, since, channel_id=run.channel_id)
    except IntegrationError as exc:
        run.status = ReReadRun.Status.FAILED
        run.message = f"BigCommerce could not be read: {exc.message}. Nothing was changed; try again later."
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "message", "finished_at"])
        return "failed"
    to_sync = scan.orders | scan.refund_orders
    for order_id in sorted(to_sync):
        tasks.enqueue_order_sync(tenant.pk, order_id)
    run.orders_checked = scan.orders_checked
    run.orders_queued = len(scan.orders)
    run.refunds_queued = len(scan.refund_orders - scan.orders)
    run.status = ReReadRun.Status.DONE
    run.message = (
        f"{run.orders_checked} order(s) read; {len(to_sync)} differed from what was posted and were queued to be "
        "brought up to date (their entries post as usual)."
        if to_sync
        else f"{run.orders_checked} order(s) read; all were already current."
    )
    run.finished_at = timezone.now()
    run.save()
    return f"{run.orders_checked} checked, {len(to_sync)} queued"
