"""Delivery: a planned posting row goes to Sage X3 exactly once (planning is accounting/planning.py).

Exactly once against an ERP without idempotency keys (../shared/guides/lessons.md §9):

1. *Intent row* — a :class:`Posting` with a unique ``(tenant, idempotency_key)`` and its lines, committed before
   anything is sent.
2. *Claim* — a compare-and-set ``UPDATE`` moves it to ``posting``; only the worker that changed the row calls X3.
3. *Check* — when an earlier attempt may have reached X3 (timeout, reset, 5xx on create, a worker that died while
   posting), X3 is first asked for our reference; if the entry is there, it is recorded and nothing is re-sent.
4. *Post* — otherwise create the entry; record the document number, or the error with X3's own message.
5. *Retry* — retryable failures wait in the database (``next_attempt_at``) for the sweep; permanent ones stop at
   ``needs_attention``. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from connector.models import Tenant
from integrations.errors import IntegrationError, PermanentError, RateLimitedError, ReauthorizationRequired
from integrations.http import CallRecord
from integrations.sagex3.types import Entry, EntryLine, PostedEntry

from .audit_chain import append_attempts, append_log
from .models import Posting, PostingAttempt

logger = logging.getLogger(__name__)

S = Posting.Status
# GACCENTRY.REFINT is A25 (../shared/reference/sagex3.md §4.2): a longer reference would be cut and never found again.
REFERENCE_MAX_LENGTH = 25


# --- Shared helpers -------------------------------------------------------------------------------------------


def x3_reference(tenant: Tenant, posting: Posting) -> str:
    """Deterministic reference written into the X3 entry, e.g. ``BC-abc123-250`` or ``BC-abc123-250-R3``."""
    prefix = tenant.x3.reference_prefix or f"BC-{tenant.bigcommerce.store_hash}"
    suffix = {
        Posting.Kind.ORDER: "",
        Posting.Kind.REFUND: f"-R{posting.refund_id}",
        Posting.Kind.ADJUSTMENT: f"-A{posting.idempotency_key.rsplit(':', 1)[-1]}",
        Posting.Kind.REVERSAL: f"-V{posting.idempotency_key.rsplit(':', 1)[-1]}",
    }[Posting.Kind(posting.kind)]
    return f"{prefix}-{posting.order_id}{suffix}"


def log_transition(
    posting: Posting,
    to_status: str,
    message: str = "",
    *,
    from_status: str = "",
    trigger: str = "",
    user=None,
) -> None:
    append_log(
        posting=posting,
        from_status=from_status,
        to_status=to_status,
        trigger=trigger,
        user=user if getattr(user, "pk", None) else None,
        message=message[:5000],
    )


# --- Delivery: posting row → Sage X3 ------------------------------------------------------------------------------


def entry_for(posting: Posting) -> Entry:
    x3 = posting.tenant.x3
    return Entry(
        reference=posting.reference,
        accounting_date=posting.gl_date or timezone.localdate(),
        currency=posting.currency,
        description=posting.description,
        entry_type=x3.entry_type,
        journal=x3.journal,
        site=posting.accounts.get("site") or x3.site,
        lines=tuple(
            EntryLine(
                account=line.account, debit=line.debit, credit=line.credit, description=line.description
            )
            for line in posting.lines.all()
        ),
        source_document=str(posting.order_id),
    )


def _claim(posting_id: int) -> tuple[Posting, str] | None:
    """Move the posting to ``posting`` if it is due and nobody else holds it. Returns (posting, previous status).

    A compare-and-set ``UPDATE``: only the worker whose update changed the row goes on. The two statuses that need
    different handling afterwards are tried one after the other, the common one first.
    """
    now = timezone.now()
    # Only columns of the posting row in the WHERE clause: PostgreSQL re-checks them against the row a concurrent
    # claim just committed. A join (say, on the tenant) would turn it into "id IN (subquery)", whose snapshot is
    # not re-checked, and two workers could both claim the same posting — and post it twice.
    due = Posting.objects.filter(pk=posting_id).filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    claim = {"status": S.POSTING, "claimed_at": now, "attempts": F("attempts") + 1, "updated_at": now}
    for previous in ((S.PENDING, S.RETRY), (S.UNKNOWN,)):
        if due.filter(status__in=previous).update(**claim) == 1:
            posting = Posting.objects.select_related("tenant__x3", "tenant__bigcommerce").get(pk=posting_id)
            if not posting.tenant.is_active:  # an inactive tenant sends nothing: give the claim back
                Posting.objects.filter(pk=posting_id, status=S.POSTING).update(
                    status=previous[0], claimed_at=None, attempts=F("attempts") - 1
                )
                return None
            return posting, previous[0]
    return None  # not due, not open, or another worker got there first


def submit_posting(posting_id: int, *, client=None, release_refunds: bool = True) -> str:
    """Deliver one posting to X3 if it is due. Returns a short status for the task log (and tests)."""
    claim = _claim(posting_id)
    if claim is None:
        return "not-due"
    posting, previous = claim
    if client is None:
        from connector.clients import x3_client

        try:
            client = x3_client(posting.tenant)
        except (ValueError, IntegrationError) as exc:  # an X3 connection that cannot work as configured
            message = exc.message if isinstance(exc, IntegrationError) else str(exc)
            return _handle_failure(posting, PermanentError(f"Sage X3 connection is misconfigured: {message}"))
    # X3 is asked first when an earlier attempt may have reached it: the last one ended unknown, or any did.
    must_check = previous == S.UNKNOWN or (
        posting.attempts > 1
        and posting.attempt_log.filter(operation="create", outcome=PostingAttempt.Outcome.UNKNOWN).exists()
    )
    operation = "find"
    try:
        if len(posting.reference) > REFERENCE_MAX_LENGTH:
            raise PermanentError(
                f"Reference {posting.reference!r} is longer than X3's {REFERENCE_MAX_LENGTH}-character REFINT field: "
                "set a shorter reference prefix on the tenant's X3 connection, then retry"
            )
        if must_check:
            found = client.find_entry(posting.reference)
            if found is not None:
                with transaction.atomic():
                    _record_calls(posting, client, "find", PostingAttempt.Outcome.OK)
                    _mark_posted(
                        posting,
                        found,
                        release_refunds,
                        "Found in X3 by reference after an unknown outcome: not re-posted",
                    )
                return "found-existing"
            _record_calls(posting, client, "find", PostingAttempt.Outcome.NOT_FOUND)
        operation = "create"
        posted = client.create_entry(entry_for(posting))
    except IntegrationError as exc:
        outcome = (
            PostingAttempt.Outcome.UNKNOWN
            if exc.outcome_unknown
            else PostingAttempt.Outcome.RETRYABLE
            if exc.retryable
            else PostingAttempt.Outcome.PERMANENT
        )
        _record_calls(posting, client, operation, outcome, error=exc.message)
        return _handle_failure(posting, exc)
    except Exception as exc:
        # A bug, not an X3 answer. We may or may not have reached X3: check before any retry.
        logger.exception("Unexpected error while posting %s", posting.idempotency_key)
        _record_calls(
            posting, client, operation, PostingAttempt.Outcome.UNKNOWN, error=f"{type(exc).__name__}"
        )
        return _handle_failure(
            posting,
            IntegrationError(f"Unexpected error: {type(exc).__name__}", retryable=True, outcome_unknown=True),
        )
    # If the database fails here the posting stays "posting"; the sweep then makes it "unknown" and the next
    # attempt finds the entry in X3 by reference instead of posting it again.
    with transaction.atomic():
        _record_calls(posting, client, "create", PostingAttempt.Outcome.OK)
        _mark_posted(posting, posted, release_refunds, "Posted to X3")
    return "posted"


def _record_calls(posting: Posting, client, operation: str, outcome: str, *, error: str = "") -> None:
    limit = settings.CONNECTOR["AUDIT_BODY_LIMIT"]
    calls: list[CallRecord] = list(getattr(client, "call_log", []))
    client.call_log = []
    if not calls:
        calls = [CallRecord(method="", url="", error=error)]
    append_attempts(
        PostingAttempt(
            posting=posting,
            attempt=posting.attempts,
            operation=operation if c.method != "GET" else "find",
            method=c.method,
            url=c.url[:500],
            request_body=(c.request_body or "")[:limit],
            status_code=c.status_code,
            response_body=(c.response_body or "")[:limit],
            duration_ms=c.duration_ms,
            outcome=outcome if i == len(calls) - 1 else PostingAttempt.Outcome.OK,
            error=(error if i == len(calls) - 1 else c.error)[:5000],
        )
        for i, c in enumerate(calls)
    )


def _mark_posted(posting: Posting, posted: PostedEntry, release_refunds: bool, message: str) -> None:
    """Record the X3 document. Runs inside the caller's transaction, together with the call log of the attempt."""
    now = timezone.now()
    updated = Posting.objects.filter(pk=posting.pk, status=S.POSTING).update(
        status=S.POSTED,
        x3_document_number=posted.document_number[:60],
        x3_uuid=(posted.uuid or "")[:80],
        posted_at=now,
        last_error="",
        next_attempt_at=None,
        updated_at=now,
    )
    if not updated:
        return
    log_transition(posting, S.POSTED, f"{message}: {posted.document_number}", from_status=S.POSTING)
    if (
        release_refunds
        and posting.kind == Posting.Kind.ORDER
        and Posting.objects.filter(
            tenant_id=posting.tenant_id, order_id=posting.order_id, kind=Posting.Kind.REFUND, status=S.WAITING
        ).exists()
    ):
        # Refunds that arrived before the order's entry waited for it: plan them now, in order. (sync_order
        # passes release_refunds=False: it plans them itself in the same run.)
        from connector.tasks import enqueue_order_sync

        tenant_id, order_id = posting.tenant_id, posting.order_id
        transaction.on_commit(lambda: enqueue_order_sync(tenant_id, order_id))


def backoff_seconds(attempt: int) -> float:
    base = settings.CONNECTOR["RETRY_BASE_SECONDS"]
    cap = settings.CONNECTOR["RETRY_CAP_SECONDS"]
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter": spread out, never near zero


def _handle_failure(posting: Posting, exc: IntegrationError) -> str:
    now = timezone.now()
    max_attempts = settings.CONNECTOR["MAX_ATTEMPTS"]
    if isinstance(exc, ReauthorizationRequired):
        # Not a failure of the entry: it waits until someone reconnects the tenant (resume_after_reauthorization).
        status, next_at, result = S.NEEDS_REAUTH, None, "needs-reauthorization"
    elif not exc.retryable:
        status, next_at, result = S.NEEDS_ATTENTION, None, "needs-attention"
    elif posting.attempts >= max_attempts:
        # An unknown outcome among the attempts makes any later re-post ask X3 first (see submit_posting).
        status, next_at, result = S.NEEDS_ATTENTION, None, "gave-up"
    elif exc.outcome_unknown:
        delay = max(settings.CONNECTOR["UNKNOWN_OUTCOME_DELAY_SECONDS"], backoff_seconds(posting.attempts))
        status, next_at, result = S.UNKNOWN, now + timedelta(seconds=delay), "unknown-outcome"
    else:
        delay = backoff_seconds(posting.attempts)
        if isinstance(exc, RateLimitedError) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        status, next_at, result = S.RETRY, now + timedelta(seconds=delay), "retry-scheduled"
    message = exc.message
    if result == "gave-up":
        message = f"Gave up after {posting.attempts} attempts: {exc.message}"
    Posting.objects.filter(pk=posting.pk, status=S.POSTING).update(
        status=status, next_attempt_at=next_at, last_error=message[:5000], updated_at=now
    )
    log_transition(posting, status, message, from_status=S.POSTING)
    return result


def resume_after_reauthorization(tenant: Tenant) -> int:
    """Release the tenant's postings held for re-authorization; returns how many were queued again."""
    from connector.tasks import enqueue_posting

    now = timezone.now()
    held = list(Posting.objects.filter(tenant=tenant, status=S.NEEDS_REAUTH))
    for posting in held:
        # The call that hit the expired authorization never reached X3's books, but a re-send still checks first
        # if any earlier attempt of this posting had an unknown outcome (see submit_posting).
        if Posting.objects.filter(pk=posting.pk, status=S.NEEDS_REAUTH).update(
            status=S.RETRY, next_attempt_at=now, updated_at=now
        ):
            log_transition(posting, S.RETRY, "Sage X3 re-authorized: resuming", from_status=S.NEEDS_REAUTH)
            enqueue_posting(posting.pk)
    return len(held)
