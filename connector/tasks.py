"""django-q2 tasks: primary keys in, a short status string out. Each one loads its row and calls a service.

Tasks are idempotent; the database decides whether there is work. Enqueue helpers are the only place that know
task paths, so tests and the sweep ring the same doorbell.
"""

from __future__ import annotations

import logging
from functools import cache

from django.conf import settings
from django_q.brokers import Broker, get_broker
from django_q.brokers.redis_broker import Redis as RedisBroker
from django_q.conf import Conf
from django_q.tasks import async_task
from redis import Redis
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
    """One event by id: the admin's retry and the sweep's failed events that are due. New events ring the
    events doorbell instead (:func:`ring_events_doorbell`)."""
    _enqueue("process_event", event_id, name=f"event-{event_id}", group="events")


# The events doorbell (docs/decisions/0029-coalesced-events-doorbell.md). New events are not queued one task each:
# a `drain_events` task takes every waiting event from the database. On the Redis broker, a key marks "a drain is
# queued and has not started yet": while it is set, a new event needs no task of its own, since that drain deletes
# the key before it looks for events and so finds the new one. The key expires, so a lost drain holds it briefly.


def doorbell_key() -> str:
    return f"django_q:{Conf.CLUSTER_NAME}:events-doorbell"


def doorbell_store() -> Redis | None:
    """The Redis connection of django-q2's broker, or None on the ORM broker (no shared store to coalesce in)."""
    current = broker()
    return current.connection if isinstance(current, RedisBroker) else None


def ring_events_doorbell() -> bool:
    """Make sure a ``drain_events`` task will look for waiting events after this call. Returns whether a task was
    queued (False: one was queued already and has not started). Raises on a broker error: callers decide."""
    store = doorbell_store()
    if store is not None:
        ttl_ms = int(settings.CONNECTOR.get("EVENTS_DOORBELL_SECONDS", 5.0) * 1000)
        if not store.set(doorbell_key(), 1, nx=True, px=ttl_ms):
            return False
    try:
        async_task("connector.tasks.drain_events", task_name="drain-events", group="events", broker=broker())
    except BaseException:
        if store is not None:  # nobody will delete the key: let the next event ring at once
            try:
                store.delete(doorbell_key())
            except RedisError:
                pass  # it expires by itself
        raise
    return True


def answer_doorbell() -> None:
    """A drain starts: from now on, a new event must ring again (called before the drain's first claim)."""
    store = doorbell_store()
    if store is not None:
        store.delete(doorbell_key())


def inline_tasks() -> bool:
    """Tasks run where they are queued (``Q_CLUSTER["sync"]``, the test settings)."""
    return bool(Conf.SYNC)


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


def drain_events() -> str:
    from .pipeline import drain_events as service

    return service()


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
