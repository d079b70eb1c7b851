"""django-q2 tasks: primary keys in, a short status string out. Each one loads its row and calls a service.

Tasks are idempotent; the database decides whether there is work. Enqueue helpers are the only place that know
task paths, so tests and the sweep ring the same doorbell.
"""

from __future__ import annotations

import logging
from functools import cache

from django_q.brokers import Broker, get_broker
from django_q.tasks import async_task
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


@cache
def broker() -> Broker:
    """One broker per process. Without one, django-q2 builds a broker (for Redis: a new connection pool, so a new
    TCP connection) on every ``async_task`` — most of the cost of a webhook request."""
    return get_broker()


def _enqueue(func: str, *args: int, name: str, group: str) -> None:
    """Ring the doorbell. The row is already stored: if Redis is down, the sweep finds the work later, so an admin
    action or a webhook never fails because of the broker."""
    try:
        async_task(f"connector.tasks.{func}", *args, task_name=name, group=group, broker=broker())
    except RedisError as exc:
        logger.warning("Could not queue %s (%s); the sweep will pick it up", name, type(exc).__name__)


def enqueue_event(event_id: int) -> None:
    _enqueue("process_event", event_id, name=f"event-{event_id}", group="events")


def enqueue_posting(posting_id: int) -> None:
    _enqueue("submit_posting", posting_id, name=f"posting-{posting_id}", group="postings")


def enqueue_order_sync(tenant_id: int, order_id: int) -> None:
    _enqueue("sync_order", tenant_id, order_id, name=f"order-{tenant_id}-{order_id}", group="orders")


def enqueue_bulk(batch_id: int) -> None:
    _enqueue("run_bulk", batch_id, name=f"bulk-{batch_id}", group="bulk")


def enqueue_reread(run_id: int) -> None:
    _enqueue("reread_period", run_id, name=f"reread-{run_id}", group="workspace")


def enqueue_tie_out(run_id: int) -> None:
    _enqueue("tie_out", run_id, name=f"tieout-{run_id}", group="workspace")


# The task functions import the pipeline on call: the pipeline imports this module for the enqueue helpers.


def process_event(event_id: int) -> str:
    from .pipeline import process_event as service

    return service(event_id)


def submit_posting(posting_id: int) -> str:
    from .pipeline import deliver_posting

    return deliver_posting(posting_id)


def sync_order(tenant_id: int, order_id: int) -> str:
    from .pipeline import sync_order_by_id

    return sync_order_by_id(tenant_id, order_id)


def run_bulk(batch_id: int) -> str:
    from .bulk import run_batch

    return run_batch(batch_id)


def reconcile() -> str:
    from .reconcile import reconcile_all

    return reconcile_all()


def sweep() -> str:
    from .pipeline import sweep as service

    return service()


def send_alerts() -> str:
    from .alerts import send_alerts as service

    return service()


def verify_audit() -> str:
    from accounting.audit_chain import verify_all

    return "; ".join(str(result) for result in verify_all()) or "no tenants"


def refresh_charts() -> str:
    from .chart import refresh_all

    return "; ".join(str(result) for result in refresh_all()) or "no tenants"


def reread_period(run_id: int) -> str:
    from .reconcile import run_reread

    return run_reread(run_id)


def tie_out(run_id: int) -> str:
    from .tieout import run_tie_out

    return run_tie_out(run_id)


def close_daily_summaries() -> str:
    from .summaries import close_due_days

    return close_due_days()
