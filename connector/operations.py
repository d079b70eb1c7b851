"""Operator actions on postings: re-post, retry now, resume after re-authorization.

Entry points (admin actions, the OAuth callback, management commands) call these; they orchestrate the pipeline and
ring the queue, so they live here in connector/, above accounting/.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.db.models import QuerySet
from django.utils import timezone

from accounting.history import log_transition
from accounting.models import Posting
from integrations.errors import IntegrationError

from . import tasks
from .models import Tenant
from .pipeline import sync_order
from .summaries import reject_with_summary

logger = logging.getLogger(__name__)
S = Posting.Status


def repost_orders(
    queryset: QuerySet[Posting], *, user=None, trigger: str = Posting.Trigger.ADMIN
) -> list[tuple[int, str]]:
    """Re-fetch each selected posting's order and post only what is missing. Returns (level, message) pairs."""
    report: list[tuple[int, str]] = []
    seen: set[tuple[int, int]] = set()
    for posting in queryset.select_related("tenant__bigcommerce", "tenant__x3").order_by(
        "tenant_id", "order_id"
    ):
        if posting.kind == Posting.Kind.SUMMARY:  # not an order: its entries are re-posted one by one
            report.append(
                (messages.WARNING, f"{posting.entry_label}: a daily summary; re-post its orders instead")
            )
            continue
        key = (posting.tenant_id, posting.order_id)
        if key in seen:
            continue
        seen.add(key)
        try:
            result = sync_order(tenant=posting.tenant, order_id=posting.order_id, trigger=trigger, user=user)
        except IntegrationError as exc:
            report.append((messages.ERROR, f"Order {posting.order_id}: BigCommerce error: {exc.message}"))
            continue
        text = {
            "already-posted": "already posted; nothing new to post",
            "in-progress": "a posting is already in progress",
            "created": "posting created",
            "reopened": "rebuilt from the current order",
            "adjusted": "the order changed: an adjustment with only the difference",
            "reversed": "the order is void: a reversal",
            "unchanged": "not postable yet",
        }.get(result.outcome, result.outcome)
        level = messages.SUCCESS if result.posting_status == S.POSTED else messages.WARNING
        report.append(
            (
                level,
                f"Order {result.order_id}: {text} (status: {Posting.Status(result.posting_status).label})",
            )
        )
    return report


def retry_now(queryset: QuerySet[Posting], *, user=None) -> int:
    """Make failed, scheduled and unknown postings due now and queue them. Posted rows are never touched."""
    now = timezone.now()
    count = 0
    for posting in queryset.filter(status__in=(S.RETRY, S.UNKNOWN, S.NEEDS_ATTENTION)):
        to_status = S.UNKNOWN if posting.status == S.UNKNOWN else S.RETRY
        # A person asked: the attempt budget starts again (the call log keeps every earlier attempt). Whether an
        # earlier send may have reached X3 is a separate fact (may_exist_in_x3) that this never resets.
        if Posting.objects.filter(pk=posting.pk, status=posting.status).update(
            status=to_status, next_attempt_at=now, updated_at=now, attempts=0
        ):
            log_transition(
                posting,
                to_status,
                "Retry requested (attempt budget reset)",
                from_status=posting.status,
                trigger=Posting.Trigger.ADMIN,
                user=user,
            )
            tasks.enqueue_posting(posting.pk)
            count += 1
    return count


def resume_after_reauthorization(tenant: Tenant) -> int:
    """Release the tenant's postings held for re-authorization; returns how many were queued again."""
    now = timezone.now()
    held = list(Posting.objects.filter(tenant=tenant, status=S.NEEDS_REAUTH))
    for posting in held:
        # The call that hit the expired authorization never reached X3's books; a re-send still checks first if
        # an earlier send may have reached X3 (may_exist_in_x3, see submit_posting).
        if Posting.objects.filter(pk=posting.pk, status=S.NEEDS_REAUTH).update(
            status=S.RETRY, next_attempt_at=now, updated_at=now
        ):
            log_transition(posting, S.RETRY, "Sage X3 re-authorized: resuming", from_status=S.NEEDS_REAUTH)
            tasks.enqueue_posting(posting.pk)
    return len(held)


def approve(queryset: QuerySet[Posting], *, user=None) -> int:
    """Approve entries awaiting review: each goes out through the same exactly-once delivery as any other."""
    now = timezone.now()
    count = 0
    for posting in queryset.filter(status=S.AWAITING_APPROVAL):
        if Posting.objects.filter(pk=posting.pk, status=S.AWAITING_APPROVAL).update(
            status=S.PENDING, next_attempt_at=None, updated_at=now
        ):
            who = getattr(user, "get_username", lambda: "")() or "an operator"
            log_transition(
                posting,
                S.PENDING,
                f"Approved by {who}",
                from_status=S.AWAITING_APPROVAL,
                trigger=Posting.Trigger.ADMIN,
                user=user,
            )
            tasks.enqueue_posting(posting.pk)
            count += 1
    return count


def reject(queryset: QuerySet[Posting], *, user=None, reason: str = "") -> int:
    """Reject entries awaiting review: nothing is sent. A later change of the order brings it back for review."""
    now = timezone.now()
    count = 0
    for posting in queryset.filter(status=S.AWAITING_APPROVAL):
        if Posting.objects.filter(pk=posting.pk, status=S.AWAITING_APPROVAL).update(
            status=S.SKIPPED, updated_at=now
        ):
            who = getattr(user, "get_username", lambda: "")() or "an operator"
            log_transition(
                posting,
                S.SKIPPED,
                f"Rejected by {who}" + (f": {reason}" if reason else "") + ". Nothing was sent to X3.",
                from_status=S.AWAITING_APPROVAL,
                trigger=Posting.Trigger.ADMIN,
                user=user,
            )
            if posting.kind == Posting.Kind.SUMMARY:  # its parts and entries go with it
                reject_with_summary(posting, user=user)
            count += 1
    return count
