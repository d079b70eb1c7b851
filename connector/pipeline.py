"""The pipeline: a webhook event (or a replay) becomes posting rows, then deliveries to X3.

Webhooks are hints: every run re-reads the order from BigCommerce and decides from what it finds.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.db.models import F, Min, OuterRef, Q, Subquery
from django.utils import timezone
from redis.exceptions import RedisError

from accounting.history import log_transition
from accounting.models import Posting, TenderMapping, X3Circuit
from accounting.planning import VOID_STATUS_IDS, plan_order, refund_key
from accounting.posting import Delivery, backoff_seconds, submit_posting
from integrations.bigcommerce.types import Order
from integrations.errors import IntegrationError, NotFoundError, RateLimitedError
from integrations.sagex3.types import X3Client

from . import clients, tasks
from .models import Tenant, WebhookEvent
from .task_tenant import load_tenant, refund_postings

logger = logging.getLogger(__name__)
E = WebhookEvent.Status


@dataclass(frozen=True)
class SyncResult:
    order_id: int
    outcome: str  # created, reopened, adjusted, reversed, already-posted, in-progress, unchanged
    posting_id: int | None  # the order's own posting (order:<id>)
    posting_status: str
    submitted: tuple[str, ...] = ()  # results of the X3 deliveries attempted in this run


def sync_order(
    *,
    tenant: Tenant,
    order_id: int,
    trigger: str,
    event: WebhookEvent | None = None,
    refund_id: int | None = None,
    user=None,
    bc_client=None,
    x3_client=None,
    on_planned: Callable[[], None] | None = None,
    knows_refunds: bool | None = None,
    tenant_fresh: bool = False,
) -> SyncResult:
    """Re-fetch one order (and its refunds when it has any), bring its postings up to date and deliver what became
    due, in order. Raises IntegrationError for BigCommerce failures (the caller decides whether to retry).
    ``on_planned`` runs once the postings are planned, before anything is sent (an operator's retry records there
    what the rebuild changed). ``knows_refunds``: whether refund postings of the order exist, if the caller read it
    with the tenant. ``tenant_fresh``: the caller (a task) has just loaded the tenant with its X3 connection and
    circuit; deliveries use it instead of reading them again."""
    if bc_client is None:
        bc_client = clients.bigcommerce_client(tenant)
    read_started_at = timezone.now()  # before the request: the read sees every change committed before this
    order = bc_client.get_order(order_id)
    refunds = []
    if knows_refunds is None:
        knows_refunds = refund_postings(tenant.pk, order_id).exists()
    if order.may_have_refunds or refund_id is not None or knows_refunds:
        refunds = bc_client.get_order_refunds(order_id)
        if refund_id is not None and all(r.id != refund_id for r in refunds):
            refunds.append(bc_client.get_refund(refund_id))  # the list may lag behind the webhook
    transactions = bc_client.get_order_transactions(order_id) if wants_transactions(tenant, order) else None
    plan_now = functools.partial(
        plan_order,
        tenant=tenant,
        order=order,
        refunds=refunds,
        trigger=trigger,
        event=event,
        user=user,
        transactions=transactions,
        read_started_at=read_started_at,
    )
    plan = plan_now()
    if on_planned is not None:
        on_planned()
    client_for = _x3_client_for(x3_client)
    submitted: list[str] = []
    order_entry_posted = False
    base = plan.order_posting
    base_delivery = None
    for posting_id in plan.to_submit:
        delivery = submit_posting(posting_id, client_for=client_for, tenant=tenant if tenant_fresh else None)
        _queue_resumed(delivery)
        submitted.append(delivery.result)
        order_entry_posted |= delivery.order_entry_posted is not None
        if posting_id == base.pk:
            base_delivery = delivery
        if not delivery.posted:
            break  # later entries of the order wait for this one; the sweep carries on when it is through
    if base_delivery is not None:
        # Posted by this run: known without a re-read; any other outcome is read back from the row.
        base.status = (
            Posting.Status.POSTED
            if base_delivery.posted
            else Posting.objects.filter(pk=base.pk).values_list("status", flat=True).get()
        )
    if refunds and order_entry_posted and _refunds_wait(tenant.pk, order_id):
        # The order's entry was posted in this run: its waiting refunds can be planned right away (the order part
        # was planned from this same read: nothing to re-plan there).
        for posting_id in plan_now(refunds_only=True).to_submit:
            delivery = submit_posting(
                posting_id, client_for=client_for, tenant=tenant if tenant_fresh else None
            )
            _queue_resumed(delivery)
            submitted.append(delivery.result)
    return SyncResult(order.id, plan.outcome, base.pk, base.status, tuple(submitted))


def wants_transactions(tenant: Tenant, order: Order) -> bool:
    """Whether the order's v3 transactions are worth the one extra call: only when the tenant maps tenders to
    clearing accounts and some of the order was paid at a gateway (gift certificates and store credit are on the
    order itself). Void and archived orders post nothing, so they need none either."""
    if order.is_deleted or order.status_id in VOID_STATUS_IDS:
        return False
    if order.total_inc_tax - order.gift_certificate_amount - order.store_credit_amount <= 0:
        return False
    known = tenant.maps_tenders  # read with the tenant by a task (connector/task_tenant.py)
    return known if known is not None else TenderMapping.objects.filter(tenant=tenant).exists()


def deliver_posting(posting_id: int, *, client: X3Client | None = None) -> str:
    """Deliver one posting (the worker's task, and the sweep's) and take care of what follows from it."""
    delivery = submit_posting(posting_id, client_for=_x3_client_for(client))
    _queue_resumed(delivery)
    if delivery.order_entry_posted is not None and _refunds_wait(*delivery.order_entry_posted):
        # Refunds that arrived before the order's entry waited for it: a sync of the order plans them, in order.
        tenant_id, order_id = delivery.order_entry_posted
        tasks.enqueue_order_sync(tenant_id, order_id)
    return delivery.result


def _x3_client_for(client: X3Client | None) -> Callable[[Tenant], X3Client]:
    return (lambda tenant: client) if client is not None else clients.x3_client


def _refunds_wait(tenant_id: int, order_id: int) -> bool:
    return Posting.objects.filter(
        tenant_id=tenant_id, order_id=order_id, kind=Posting.Kind.REFUND, status=Posting.Status.WAITING
    ).exists()


def _queue_resumed(delivery: Delivery) -> None:
    for pk in delivery.resumed:  # X3 answers again: the postings that waited for it go out now
        tasks.enqueue_posting(pk)


def sync_order_by_id(tenant_id: int, order_id: int) -> str:
    # The tenant, its connections and X3 circuit (read again by the delivery's claim otherwise), whether the order
    # has refund postings and whether the tenant maps tenders: one statement while its configuration is unchanged.
    tenant = load_tenant(tenant_id, order_id)
    result = sync_order(
        tenant=tenant,
        order_id=order_id,
        trigger=Posting.Trigger.SWEEP,
        knows_refunds=tenant.knows_refunds,
        tenant_fresh=True,
    )
    return f"{result.outcome}:{result.posting_status}"


def orders_modified_between(tenant: Tenant, since, until=None, *, bc_client=None) -> Iterator[int]:
    """IDs of the tenant's orders modified in [since, until], oldest first, each once (for replays and backfills).

    ``until`` goes to BigCommerce as ``max_date_modified``, and the scan pages by keyset (see
    ``iter_orders_modified``), so an order modified while this runs cannot make it skip another one.
    """
    if bc_client is None:
        bc_client = clients.bigcommerce_client(tenant)
    seen: set[int] = set()
    for summary in bc_client.iter_orders_modified(since, until):
        if summary["id"] not in seen:
            seen.add(summary["id"])
            yield summary["id"]


def process_event(event_id: int) -> str:
    """Process one stored webhook event by id (the admin's retry, the sweep's failed events that are due).
    Idempotent: a processed event is not processed again. New events are taken by :func:`drain_events`."""
    now = timezone.now()
    claimed = WebhookEvent.objects.filter(
        Q(status=E.RECEIVED) | Q(status=E.FAILED, next_attempt_at__isnull=False, next_attempt_at__lte=now),
        pk=event_id,
    ).update(status=E.PROCESSING, attempts=F("attempts") + 1, processing_started_at=now)
    if claimed != 1:
        return "not-due"
    return _process_claimed(event_id, now)


def drain_events(*, max_events: int | None = None, max_seconds: float | None = None) -> str:
    """Process waiting (``received``) events of active tenants, oldest first, until none is left or the bound is
    reached; the task the events doorbell queues (docs/decisions/0029-coalesced-events-doorbell.md).

    * Before the first claim it answers the doorbell (deletes the Redis key), so an event stored from then on rings
      again, and one stored before is found by this drain.
    * When a claim sees another waiting event, it rings before processing, so another worker (if one is free)
      shares the burst. Only on the Redis broker: on the ORM broker every new event queues a drain of its own.
    * After ``DRAIN_MAX_EVENTS`` events or ``DRAIN_MAX_SECONDS`` (well below the task timeout) it rings once more
      and returns, so a long burst moves on to a fresh task.
    """
    limits = settings.CONNECTOR
    max_events = limits.get("DRAIN_MAX_EVENTS", 100) if max_events is None else max_events
    max_seconds = limits.get("DRAIN_MAX_SECONDS", 20.0) if max_seconds is None else max_seconds
    fan_out = tasks.doorbell_store() is not None and not tasks.inline_tasks()  # inline, nobody else would run
    # Inline (the tests), nothing else could arrive meanwhile: no settling.
    settle = 0.0 if tasks.inline_tasks() else limits.get("EVENTS_SETTLE_MS", 0) / 1000
    try:
        tasks.answer_doorbell()
    except RedisError as exc:  # the key expires by itself; events stored meanwhile are still found here
        logger.warning("Could not clear the events doorbell (%s)", type(exc).__name__)
    started = time.monotonic()
    done = failed = 0
    while True:
        if done >= max_events or time.monotonic() - started >= max_seconds:
            _ring_again("bound reached")
            return f"drained={done} failed={failed} bound reached"
        now = timezone.now()
        event_id, more = _claim_next_event(now, settle)
        if event_id is None:
            wait = _settle_wait(now, settle)
            if wait is None:
                return f"drained={done} failed={failed}"
            time.sleep(
                wait
            )  # the newest events settle; they are this drain's (nobody else was rung for them)
            continue
        if more and fan_out:
            _ring_again("more events waiting")
        try:
            _process_claimed(event_id, now)
        except Exception:  # logged and recorded on the event by _process_claimed; the others still go through
            failed += 1
        done += 1


def _ring_again(why: str) -> None:
    try:
        tasks.ring_events_doorbell()
    except Exception as exc:  # any broker error: the next event rings, and the sweep owns recovery
        logger.warning("Could not ring the events doorbell (%s: %s); the sweep will", why, type(exc).__name__)


def _settle_wait(now, settle: float) -> float | None:
    """Seconds until the oldest waiting event has settled, or None when no event waits (only asked when none was
    due: an idle drain's last look, no statement on a busy one)."""
    if settle <= 0:
        return None
    oldest = (
        WebhookEvent.objects.filter(status=E.RECEIVED, tenant__is_active=True)
        .order_by("pk")
        .values_list("received_at", flat=True)
        .first()
    )
    if oldest is None:
        return None
    return min(settle, max((oldest + timedelta(seconds=settle) - now).total_seconds(), 0.01))


def _claim_next_event(now, settle: float = 0.0) -> tuple[int | None, bool]:
    """Claim the oldest ``received`` event of an active tenant if it was received at least ``settle`` seconds
    ago: its id (None when there is none, or it has not settled), and whether another one is waiting (settled or
    not: another worker may start on it). Concurrent drains never take the same event,
    and on PostgreSQL never wait for each other either.

    Settling (``EVENTS_SETTLE_MS``): BigCommerce sends several webhooks for one change within milliseconds (a new
    order: ``created`` and ``statusUpdated``). Taken at once, the first one's re-read may start before the second
    is stored, and the second needs a re-read of its own; a moment later, the first one's worker takes the second
    along (one BigCommerce call for both, docs/decisions/0028). Under load events are older than that anyway."""
    cutoff = now - timedelta(seconds=settle)
    if connection.vendor == "postgresql":
        # One statement (one round trip, no transaction around it): lock the two oldest waiting events that no
        # other drain holds, claim the first; the second only tells whether more are waiting. The ORM's
        # select_for_update would need BEGIN, SELECT, UPDATE and COMMIT.
        events, tenants = WebhookEvent._meta.db_table, Tenant._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                WITH waiting AS (
                    SELECT e.id, e.received_at FROM {events} e JOIN {tenants} t ON t.id = e.tenant_id
                    WHERE e.status = %s AND t.is_active
                    ORDER BY e.id LIMIT 2
                    FOR UPDATE OF e SKIP LOCKED
                ), claimed AS (
                    UPDATE {events} SET status = %s, attempts = attempts + 1, processing_started_at = %s
                    WHERE id = (SELECT min(id) FROM waiting) AND received_at <= %s
                    RETURNING id
                )
                SELECT (SELECT id FROM claimed), (SELECT count(*) FROM waiting)
                """,  # noqa: S608 -- table names from the models, values as parameters
                [E.RECEIVED, E.PROCESSING, now, cutoff],
            )
            event_id, waiting = cursor.fetchone()
        return event_id, waiting > 1
    # SQLite (one writer at a time): read the two oldest, then compare-and-set; on a lost race, look again.
    waiting = WebhookEvent.objects.filter(status=E.RECEIVED, tenant__is_active=True).order_by("pk")
    while True:
        oldest = list(waiting.values_list("pk", "received_at")[:2])
        if not oldest or oldest[0][1] > cutoff:
            return None, False
        if (
            WebhookEvent.objects.filter(pk=oldest[0][0], status=E.RECEIVED).update(
                status=E.PROCESSING, attempts=F("attempts") + 1, processing_started_at=now
            )
            == 1
        ):
            return oldest[0][0], len(oldest) > 1


def _process_claimed(event_id: int, now) -> str:
    """Process an event this worker has just claimed (status ``processing``), whichever way it was claimed."""
    # The order row's last read start, and since when another worker holds one of the order's events, come with
    # the event (no statement of their own): see _covering_read.
    event = WebhookEvent.objects.annotate(**_order_read_state()).get(pk=event_id)
    if event.order_id is None:  # intake stores only order events with an id; an older row may lack it
        _finish(event, [], E.FAILED, "The event names no order")
        return "no-order"
    # A committed re-read that started after this event was received already saw its change: nothing to fetch.
    # Checked before companions are taken (their own received_at may be later than this read): they stay queued.
    covered_by = _covering_read(event, event.order_id)
    if covered_by is not None:
        _finish(event, [], E.PROCESSED, f"Covered by the re-read of {covered_by.isoformat()}")
        return "covered"
    # BigCommerce sends several events for one change (a new order: created and statusUpdated; a refund: three).
    # The order's other waiting events are taken along: one re-read of the order serves them all. Refund events
    # stay separate, since each names a refund that must be fetched.
    companions = _take_companions(event, now)
    try:
        event.tenant = load_tenant(event.tenant_id, event.order_id)
        result = sync_order(
            tenant=event.tenant,
            order_id=event.order_id,
            trigger=Posting.Trigger.WEBHOOK,
            event=event,
            refund_id=event.refund_id,
            knows_refunds=event.tenant.knows_refunds,
            tenant_fresh=True,
        )
    except NotFoundError as exc:
        _finish(
            event, companions, E.FAILED, f"Order {event.order_id} not found in BigCommerce: {exc.message}"
        )
        return "order-not-found"
    except IntegrationError as exc:
        retry_at = None
        if exc.retryable and event.attempts < settings.CONNECTOR["MAX_ATTEMPTS"]:
            delay = backoff_seconds(event.attempts)
            if isinstance(exc, RateLimitedError) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            retry_at = timezone.now() + timedelta(seconds=delay)
        _finish(event, companions, E.FAILED, exc.message, next_attempt_at=retry_at)
        return "retry-scheduled" if retry_at else "failed"
    except Exception as exc:
        logger.exception("Unexpected error processing webhook event %s", event_id)
        _finish(event, companions, E.FAILED, f"Unexpected error: {type(exc).__name__}: {exc}"[:2000])
        raise
    _finish(event, companions, E.PROCESSED, "")
    return f"{result.outcome}:{result.posting_status}"


def _order_read_state() -> dict:
    """Annotations for a WebhookEvent query: the order row's ``order_read_at``, and the latest claim time of the
    order's other events being processed (``holder_since``)."""
    return {
        "order_read_at": Subquery(
            Posting.objects.filter(
                tenant_id=OuterRef("tenant_id"), order_id=OuterRef("order_id"), kind=Posting.Kind.ORDER
            ).values("order_read_at")[:1]
        ),
        "holder_since": Subquery(
            WebhookEvent.objects.filter(
                tenant_id=OuterRef("tenant_id"), order_id=OuterRef("order_id"), status=E.PROCESSING
            )
            .exclude(pk=OuterRef("pk"))
            .order_by("-processing_started_at")
            .values("processing_started_at")[:1]
        ),
    }


def _covering_read(event: WebhookEvent, order_id: int):
    """When a committed re-read of the event's order started at or after the event was received, that read saw
    what the event announces (BigCommerce sends a webhook once the change is committed): its start time, else None.
    Only reads whose plan committed are recorded (``order_read_at``, written in the planning transaction), so a read
    that failed never counts. A refund event is covered only once its refund is recorded as a posting.

    When another worker claimed one of the order's events after this one was received, its read (which starts
    after its claim) will cover this event if it commits: wait for it a little (COVERED_READ_WAIT_SECONDS) rather
    than read the order a second time in parallel.

    Assumes the workers' and web servers' clocks agree (NTP) to within ``COVERED_READ_MARGIN_SECONDS``
    (docs/decisions/0028-webhooks-covered-by-a-later-read.md)."""
    if (
        event.refund_id is not None
        and not Posting.objects.filter(
            tenant_id=event.tenant_id, idempotency_key=refund_key(order_id, event.refund_id)
        ).exists()
    ):
        return None
    since = event.received_at + timedelta(seconds=settings.CONNECTOR.get("COVERED_READ_MARGIN_SECONDS", 0))
    read_at = getattr(event, "order_read_at", None)  # annotated by process_event's load of the event
    if read_at is not None and read_at >= since:
        return read_at
    holder_since = getattr(event, "holder_since", None)
    if holder_since is None or holder_since < since or event.refund_id is not None:
        return None
    deadline = time.monotonic() + settings.CONNECTOR.get("COVERED_READ_WAIT_SECONDS", 0)
    while time.monotonic() < deadline:
        time.sleep(0.05)
        state = WebhookEvent.objects.filter(pk=event.pk).only("pk").annotate(**_order_read_state()).get()
        read_at, holder_since = getattr(state, "order_read_at", None), getattr(state, "holder_since", None)
        if read_at is not None and read_at >= since:
            return read_at
        if (
            holder_since is None or holder_since < since
        ):  # the holder finished (or failed) without covering us
            return None
    return None


def _take_companions(event: WebhookEvent, now) -> list[int]:
    taken = []
    waiting = WebhookEvent.objects.filter(
        tenant_id=event.tenant_id, order_id=event.order_id, status=E.RECEIVED, refund_id__isnull=True
    ).exclude(pk=event.pk)
    for pk in waiting.values_list("pk", flat=True)[:50]:
        claimed = WebhookEvent.objects.filter(pk=pk, status=E.RECEIVED).update(
            status=E.PROCESSING, attempts=F("attempts") + 1, processing_started_at=now
        )
        if claimed:  # else another worker took it first: it will do its own re-read
            taken.append(pk)
    return taken


def _finish(
    event: WebhookEvent, companions: list[int], status: str, error: str, *, next_attempt_at=None
) -> None:
    """Record the outcome on the event and on the events taken along with it."""
    WebhookEvent.objects.filter(pk__in=[event.pk, *companions]).update(
        status=status, error=error[:5000], processed_at=timezone.now(), next_attempt_at=next_attempt_at
    )


def retry_event(event: WebhookEvent) -> bool:
    """Make a failed event due now (admin action). Returns whether it was re-queued."""
    updated = WebhookEvent.objects.filter(pk=event.pk, status=E.FAILED).update(
        next_attempt_at=timezone.now(), error=""
    )
    if updated:
        tasks.enqueue_event(event.pk)
    return bool(updated)


def sweep() -> str:
    """Find unfinished work and ring the doorbell again. Safe to run any time, from any number of machines.

    * events still ``received`` a while after arrival (their doorbell was lost): the events doorbell rings once;
    * events ``failed`` and due for a retry: queued one by one;
    * events stuck in ``processing`` (the worker died) go back to ``received``;
    * postings ``pending`` (enqueue lost), or ``retry``/``unknown`` whose time has come;
    * postings stuck in ``posting`` (the worker died mid-call) become ``unknown``: X3 is asked before any re-send;
    * for a tenant whose X3 is down (circuit open), one posting as the probe when the probe is due;
    * admin bulk actions whose task was lost (connector/bulk.py): they resume where they stopped.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CONNECTOR["STALE_AFTER_SECONDS"])
    grace = now - timedelta(seconds=30)

    WebhookEvent.objects.filter(status=E.PROCESSING, processing_started_at__lt=stale).update(
        status=E.RECEIVED
    )
    stuck = list(
        Posting.objects.filter(status=Posting.Status.POSTING, claimed_at__lt=stale).values_list(
            "pk", flat=True
        )
    )
    if stuck:
        for posting in Posting.objects.filter(pk__in=stuck, status=Posting.Status.POSTING):
            Posting.objects.filter(pk=posting.pk, status=Posting.Status.POSTING).update(
                status=Posting.Status.UNKNOWN, next_attempt_at=now
            )
            log_transition(
                posting,
                Posting.Status.UNKNOWN,
                "Worker stopped while posting: X3 will be checked before a re-send",
                from_status=Posting.Status.POSTING,
                trigger=Posting.Trigger.SWEEP,
            )

    # Events left waiting (their doorbell was lost): one ring, a drain takes them all. Failed events that are
    # due are not waiting for a drain (it takes only ``received`` ones): each is queued by id.
    waiting = WebhookEvent.objects.filter(
        status=E.RECEIVED, received_at__lt=grace, tenant__is_active=True
    ).exists()
    events = WebhookEvent.objects.filter(
        status=E.FAILED, next_attempt_at__lte=now, tenant__is_active=True
    ).values_list("pk", flat=True)[:1000]
    due_postings = Posting.objects.filter(
        Q(status=Posting.Status.PENDING, updated_at__lt=grace)
        | Q(status__in=(Posting.Status.RETRY, Posting.Status.UNKNOWN), next_attempt_at__lte=now),
        tenant__is_active=True,
    )
    # While a tenant's X3 is down (circuit open), only one posting goes out when the next probe is due; the
    # others wait in the database and are made due again by the probe that finds X3 back.
    down = dict(X3Circuit.objects.filter(opened_at__isnull=False).values_list("tenant_id", "next_probe_at"))
    postings = list(due_postings.exclude(tenant_id__in=down).values_list("pk", flat=True)[:1000])
    # Entries held for a closed period: one per tenant and period is tried; the others follow when it posts.
    postings += list(
        Posting.objects.filter(status=Posting.Status.HELD, next_attempt_at__lte=now, tenant__is_active=True)
        .exclude(tenant_id__in=down)
        .values("tenant_id", "held_period")
        .annotate(first=Min("id"))
        .values_list("first", flat=True)[:1000]
    )
    for tenant_id, next_probe_at in down.items():
        if next_probe_at is None or next_probe_at <= now:
            probe = due_postings.filter(tenant_id=tenant_id).order_by("next_attempt_at", "id").first()
            if probe is not None:
                postings.append(probe.pk)
    # Refunds that waited for their order's entry, which has been posted since (its follow-up sync was lost).
    released = (
        Posting.objects.filter(
            kind=Posting.Kind.REFUND,
            status=Posting.Status.WAITING,
            parent__status=Posting.Status.POSTED,
            updated_at__lt=grace,
            tenant__is_active=True,
        )
        .values_list("tenant_id", "order_id")
        .distinct()[:1000]
    )
    event_ids, posting_ids, orders = list(events), list(postings), list(released)
    from .bulk import lost_batches  # bulk imports operations, which imports this module

    batches = lost_batches()
    if waiting:
        _ring_again("events left waiting")
    for pk in event_ids:
        tasks.enqueue_event(pk)
    for pk in posting_ids:
        tasks.enqueue_posting(pk)
    for tenant_id, order_id in orders:
        tasks.enqueue_order_sync(tenant_id, order_id)
    for pk in batches:
        tasks.enqueue_bulk(pk)
    rang = " waiting=rang" if waiting else ""
    return (
        f"events={len(event_ids)}{rang} postings={len(posting_ids)} orders={len(orders)} unstuck={len(stuck)}"
        + (f" batches={len(batches)}" if batches else "")
    )
