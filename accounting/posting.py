"""Delivery: a planned posting row goes to Sage X3 exactly once (planning is accounting/planning.py).

Exactly once against an ERP without idempotency keys (docs/decisions/0002 and 0009):

1. *Intent row* — a :class:`Posting` with a unique ``(tenant, idempotency_key)`` and its lines, committed before
   anything is sent.
2. *Claim* — a compare-and-set ``UPDATE`` moves it to ``posting``; only the worker that changed the row calls X3.
3. *Check* — when an earlier send may have reached X3 (``may_exist_in_x3``, set by the claim before anything is
   sent: a timeout, reset or 5xx on create, a worker that died while posting, an error answer to a write), X3 is
   first asked for our reference; if the entry is there, it is recorded and nothing is re-sent. No retry counter
   or operator action resets that fact.
4. *Post* — otherwise create the entry; record the document number, or the error with X3's own message.
5. *Retry* — retryable failures wait in the database (``next_attempt_at``) for the sweep; permanent ones stop at
   ``needs_attention``. Nothing is dropped silently. X3 being unavailable is not a failure of the entry: the
   tenant's circuit breaker (:class:`X3Circuit`) holds postings without spending attempts until X3 answers.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from connector.models import Tenant
from integrations.errors import IntegrationError, PermanentError, RateLimitedError, ReauthorizationRequired
from integrations.http import CallRecord
from integrations.sagex3.types import Entry, EntryLine, PostedEntry, X3Client

from .audit_chain import append_records
from .history import log_transition, transition_record
from .models import Posting, PostingAttempt, PostingLine, X3Circuit
from .planning import REFERENCE_MAX_LENGTH
from .rows import select

logger = logging.getLogger(__name__)

S = Posting.Status
# --- Delivery: posting row → Sage X3 ------------------------------------------------------------------------------


def entry_for(posting: Posting) -> Entry:
    x3 = posting.tenant.x3
    return Entry(
        reference=posting.reference,
        accounting_date=posting.gl_date or timezone.localdate(),
        currency=posting.currency,
        description=posting.description,
        # Recorded by planning from the mapping version (entries planned before it: the connection's).
        entry_type=posting.entry_type or x3.entry_type,
        journal=posting.journal or x3.journal,
        site=posting.site or posting.accounts.get("site") or x3.site,
        company=posting.company,
        lines=tuple(
            EntryLine(
                account=line.account,
                debit=line.debit,
                credit=line.credit,
                description=line.description,
                dimensions=tuple(sorted((line.dimensions or {}).items())),  # jsonb keeps no key order
            )
            for line in select(PostingLine, '"posting_id" = %s', (posting.pk,), order_by='"line_no"')
        ),
        source_document=posting.reference if posting.kind == Posting.Kind.SUMMARY else str(posting.order_id),
        # BigCommerce's rate, when the entry is in the order's (foreign) currency; a converted entry is in the
        # store's own currency and carries none.
        exchange_rate=posting.exchange_rate if not posting.source_currency else None,
    )


@dataclass(frozen=True)
class Delivery:
    """What one delivery did, and what the caller (the pipeline, which owns follow-ups) should do next."""

    result: str  # posted, found-existing, not-due, circuit-open, unknown-outcome, retry-scheduled, needs-attention…
    order_entry_posted: tuple[int, int] | None = (
        None  # (tenant, order): refunds waiting for it may now be planned
    )
    resumed: tuple[int, ...] = ()  # postings made due again because X3 answers: queue them

    @property
    def posted(self) -> bool:
        return self.result in ("posted", "found-existing")


@dataclass(frozen=True)
class _Claim:
    posting: Posting
    may_exist: bool  # an earlier send may have reached X3: ask X3 for the reference before sending


def _claim(posting_id: int, tenant: Tenant | None = None) -> _Claim | None:
    """Move the posting to ``posting`` if it is due and nobody else holds it.

    A compare-and-set ``UPDATE``: only the worker whose update changed the row goes on. The same statement sets
    ``may_exist_in_x3`` *before* anything is sent, so a worker that dies mid-call, a lost response or an operator's
    retry can never lead to a second create without asking X3 first. A fresh posting (nothing sent yet) is tried
    first: the common case costs one statement, which also returns the row (``RETURNING``; the ORM's update()
    cannot, and reading the row back was a second statement). ``tenant``: the caller's already loaded tenant (with
    its X3 connection and circuit), used when the posting is that tenant's.
    """
    now = timezone.now()
    # Only columns of the posting row in the WHERE clause: PostgreSQL re-checks them against the row a concurrent
    # claim just committed. A join (say, on the tenant) would turn it into "id IN (subquery)", whose snapshot is
    # not re-checked, and two workers could both claim the same posting — and post it twice.
    posting = _claim_returning(posting_id, now, (S.PENDING, S.RETRY, S.HELD), fresh_only=True)
    may_exist = False
    if posting is None:
        posting = _claim_returning(posting_id, now, (S.PENDING, S.RETRY, S.UNKNOWN, S.HELD), fresh_only=False)
        may_exist = True
    if posting is None:
        return None  # not due, not open, or another worker got there first
    if tenant is not None and tenant.pk == posting.tenant_id:
        posting.tenant = tenant
        circuit = _circuit_of(tenant)
        if circuit is not None and (circuit.is_open or circuit.failures):
            circuit.refresh_from_db()  # X3 has been failing: its state may have moved since the tenant was read
    else:
        posting.tenant = Tenant.objects.select_related("x3", "bigcommerce", "x3_circuit").get(
            pk=posting.tenant_id
        )
    claimed = _Claim(posting, may_exist)
    if not posting.tenant.is_active:  # an inactive tenant sends nothing: give the claim back
        _release(claimed, S.UNKNOWN if may_exist else S.PENDING, None)
        return None
    return claimed


def _claim_returning(posting_id: int, now, statuses: tuple[str, ...], *, fresh_only: bool) -> Posting | None:
    """``UPDATE … WHERE <due> RETURNING *`` in plain SQL (PostgreSQL and SQLite ≥ 3.35): the claim and the read of
    the claimed row in one statement. Autocommitted like the ORM update it replaces."""
    table = Posting._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in Posting._meta.concrete_fields)
    # Table and column names come from the model's metadata; every value is a parameter.
    sql = (
        f'UPDATE "{table}" SET "status" = %s, "claimed_at" = %s, "attempts" = "attempts" + 1, '  # noqa: S608
        f'"updated_at" = %s, "may_exist_in_x3" = %s '
        f'WHERE "id" = %s AND ("next_attempt_at" IS NULL OR "next_attempt_at" <= %s) '
        f'AND "status" IN ({", ".join(["%s"] * len(statuses))})'
        + (' AND NOT "may_exist_in_x3"' if fresh_only else "")
        + f" RETURNING {columns}"
    )
    params = [S.POSTING, now, now, True, posting_id, now, *statuses]
    rows = list(Posting.objects.raw(sql, params))
    return rows[0] if rows else None


def _release(claim: _Claim, status: str, next_attempt_at, message: str = "") -> None:
    """Give a claim back untouched: the attempt is not counted and the flag keeps its earlier value."""
    updated = Posting.objects.filter(pk=claim.posting.pk, status=S.POSTING).update(
        status=status,
        claimed_at=None,
        attempts=F("attempts") - 1,
        may_exist_in_x3=claim.may_exist,
        next_attempt_at=next_attempt_at,
    )
    if updated and message:
        log_transition(claim.posting, status, message, from_status=S.POSTING)


def submit_posting(
    posting_id: int, *, client_for: Callable[[Tenant], X3Client], tenant: Tenant | None = None
) -> Delivery:
    """Deliver one posting to X3 if it is due: the one gate every path that sends to X3 goes through (worker,
    sweep, retry, re-post, replay). ``client_for`` builds (or hands back) the tenant's X3 client; it is called
    only once the posting is claimed. ``tenant``: the caller's loaded tenant, if it has one (saves a query)."""
    claim = _claim(posting_id, tenant)
    if claim is None:
        return Delivery("not-due")
    posting = claim.posting
    circuit = _circuit_of(posting.tenant)
    if circuit is not None and circuit.is_open and not _take_probe(circuit):
        # X3 is down and another posting is (or was just) the probe: wait for the next probe without an attempt.
        wait_until = max(circuit.next_probe_at or timezone.now(), timezone.now() + timedelta(seconds=1))
        _release(
            claim,
            S.UNKNOWN if claim.may_exist else S.RETRY,
            wait_until,
            f"Sage X3 is unavailable (since {timezone.localtime(circuit.opened_at):%Y-%m-%d %H:%M}): waiting "
            "for it to answer; this does not count as an attempt",
        )
        return Delivery("circuit-open")
    try:
        client = client_for(posting.tenant)
    except (ValueError, IntegrationError) as exc:  # an X3 connection that cannot work as configured
        message = exc.message if isinstance(exc, IntegrationError) else str(exc)
        return Delivery(
            _handle_failure(claim, PermanentError(f"Sage X3 connection is misconfigured: {message}"))
        )
    operation = "find"
    try:
        if len(posting.reference) > REFERENCE_MAX_LENGTH:
            raise PermanentError(
                f"Reference {posting.reference!r} is longer than X3's {REFERENCE_MAX_LENGTH}-character REFINT field: "
                "set a shorter reference prefix on the tenant's X3 connection, then retry"
            )
        if claim.may_exist:
            found = client.find_entry(posting.reference)
            if found is not None:
                _mark_posted(
                    posting,
                    found,
                    "Found in X3 by reference (an earlier send reached X3): not re-posted",
                    _attempt_records(posting, client, "find", PostingAttempt.Outcome.OK),
                )
                return _posted("found-existing", posting, _x3_answered(posting.tenant, circuit))
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
        result = _handle_failure(claim, exc)
        resumed = (
            () if exc.unavailable else _x3_answered(posting.tenant, circuit)
        )  # even a "no" says X3 is up
        return Delivery(result, resumed=resumed)
    except Exception as exc:
        # A bug, not an X3 answer. We may or may not have reached X3: check before any retry.
        logger.exception("Unexpected error while posting %s", posting.idempotency_key)
        _record_calls(
            posting, client, operation, PostingAttempt.Outcome.UNKNOWN, error=f"{type(exc).__name__}"
        )
        return Delivery(
            _handle_failure(
                claim,
                IntegrationError(
                    f"Unexpected error: {type(exc).__name__}", retryable=True, outcome_unknown=True
                ),
            )
        )
    # If the database fails here the posting stays "posting"; the sweep then makes it "unknown" and the next
    # attempt finds the entry in X3 by reference instead of posting it again (may_exist_in_x3 is already set).
    _mark_posted(
        posting,
        posted,
        "Posted to X3",
        _attempt_records(posting, client, "create", PostingAttempt.Outcome.OK),
    )
    return _posted("posted", posting, _x3_answered(posting.tenant, circuit))


def _posted(result: str, posting: Posting, resumed: tuple[int, ...]) -> Delivery:
    order = (posting.tenant_id, posting.order_id) if posting.kind == Posting.Kind.ORDER else None
    return Delivery(result, order_entry_posted=order, resumed=resumed + _period_open(posting))


def _record_calls(posting: Posting, client, operation: str, outcome: str, *, error: str = "") -> None:
    append_records(_attempt_records(posting, client, operation, outcome, error=error))


def _attempt_records(
    posting: Posting, client, operation: str, outcome: str, *, error: str = ""
) -> list[PostingAttempt]:
    """The X3 calls of this attempt as records, not yet written (the client's call log is taken and cleared)."""
    limit = settings.CONNECTOR["AUDIT_BODY_LIMIT"]
    calls: list[CallRecord] = list(getattr(client, "call_log", []))
    client.call_log = []
    if not calls:
        calls = [CallRecord(method="", url="", error=error)]
    return [
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
    ]


def _mark_posted(posting: Posting, posted: PostedEntry, message: str, attempts: list[PostingAttempt]) -> None:
    """Record the X3 document, the calls of the attempt and the history line in one transaction. The UPDATE comes
    first: it takes the posting's row lock, so the records (calls and "posted" line) are chained under one lock of
    the chain head, in lock order, without a separate locking statement."""
    now = timezone.now()
    with transaction.atomic():
        updated = Posting.objects.filter(pk=posting.pk, status=S.POSTING).update(
            status=S.POSTED,
            x3_document_number=posted.document_number[:60],
            x3_uuid=(posted.uuid or "")[:80],
            posted_at=now,
            last_error="",
            next_attempt_at=None,
            updated_at=now,
        )
        records: list = list(attempts)
        if updated:
            records.append(
                transition_record(
                    posting, S.POSTED, f"{message}: {posted.document_number}", from_status=S.POSTING
                )
            )
        append_records(records, posting_locked=bool(updated))


def backoff_seconds(attempt: int) -> float:
    base = settings.CONNECTOR["RETRY_BASE_SECONDS"]
    cap = settings.CONNECTOR["RETRY_CAP_SECONDS"]
    ceiling = min(cap, base * 2 ** max(attempt - 1, 0))
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # "equal jitter": spread out, never near zero


def _handle_failure(claim: _Claim, exc: IntegrationError) -> str:
    posting = claim.posting
    now = timezone.now()
    max_attempts = settings.CONNECTOR["MAX_ATTEMPTS"]
    attempts = posting.attempts
    message = exc.message
    if exc.unavailable and not isinstance(exc, ReauthorizationRequired):
        # X3 did not answer (refused, timeout, 5xx): not a verdict on the entry. The attempt is not counted and
        # the posting never gives up for this; the tenant's circuit breaker decides when to try again.
        circuit = _x3_unavailable(posting.tenant, exc.message)
        attempts -= 1
        if circuit.is_open:
            next_at = max(circuit.next_probe_at or now, now + timedelta(seconds=1))
            message = (
                f"Sage X3 is unavailable, waiting for it to answer (not counted as an attempt): {exc.message}"
            )
        else:
            next_at = now + timedelta(seconds=backoff_seconds(circuit.failures))
        status = S.UNKNOWN if exc.outcome_unknown else S.RETRY
        result = "unknown-outcome" if exc.outcome_unknown else "x3-unavailable"
    elif isinstance(exc, ReauthorizationRequired):
        # Not a failure of the entry: it waits until someone reconnects the tenant (resume_after_reauthorization).
        status, next_at, result = S.NEEDS_REAUTH, None, "needs-reauthorization"
    elif not exc.retryable and _closed_period(exc):
        return _period_closed(claim, exc)
    elif not exc.retryable:
        status, next_at, result = S.NEEDS_ATTENTION, None, "needs-attention"
    elif attempts >= max_attempts:
        status, next_at, result = S.NEEDS_ATTENTION, None, "gave-up"
        message = f"Gave up after {attempts} attempts: {exc.message}"
    elif exc.outcome_unknown:
        delay = max(settings.CONNECTOR["UNKNOWN_OUTCOME_DELAY_SECONDS"], backoff_seconds(attempts))
        status, next_at, result = S.UNKNOWN, now + timedelta(seconds=delay), "unknown-outcome"
    else:
        delay = backoff_seconds(attempts)
        if isinstance(exc, RateLimitedError) and exc.retry_after:
            delay = max(delay, exc.retry_after)
        status, next_at, result = S.RETRY, now + timedelta(seconds=delay), "retry-scheduled"
    # The flag stays set if this send may have reached X3, or an earlier one may have: only a claim that found it
    # clear and a failure that proves nothing reached X3 (refused connection, a 4xx refusal) clear it again.
    Posting.objects.filter(pk=posting.pk, status=S.POSTING).update(
        status=status,
        next_attempt_at=next_at,
        last_error=message[:5000],
        updated_at=now,
        attempts=attempts,
        may_exist_in_x3=claim.may_exist or exc.outcome_unknown,
    )
    log_transition(posting, status, message, from_status=S.POSTING)
    return result


# --- Closed periods: the tenant's policy ---------------------------------------------------------------------------


def _closed_period(exc: IntegrationError) -> bool:
    return bool(re.search(settings.CONNECTOR["X3_CLOSED_PERIOD_PATTERN"], exc.message))


def _period_closed(claim: _Claim, exc: IntegrationError) -> str:
    """X3 refused the entry's date: park it, move it to the next period, or hold it until the period opens."""
    posting, now = claim.posting, timezone.now()
    policy = posting.tenant.closed_period_policy
    gl_date = posting.gl_date or timezone.localdate()
    period = f"{gl_date:%Y-%m}"
    original = posting.original_gl_date or gl_date
    moves = (gl_date.year - original.year) * 12 + gl_date.month - original.month
    fields: dict = {"held_period": period, "attempts": posting.attempts - 1}  # not a failure of the entry
    if (
        policy == Tenant.ClosedPeriodPolicy.NEXT_PERIOD
        and moves < settings.CONNECTOR["CLOSED_PERIOD_MAX_MOVES"]
    ):
        moved = (gl_date.replace(day=1) + timedelta(days=32)).replace(day=1)
        note = f" (dated {original:%Y-%m-%d}; period {original:%Y-%m} closed in X3)"
        fields |= {
            "gl_date": moved,
            "original_gl_date": original,
            "description": (posting.description.split(" (dated ")[0] + note)[:200],
        }
        status, next_at, result = S.RETRY, now, "moved-to-next-period"
        message = f"Period {period} is closed in X3: posting on {moved:%Y-%m-%d} instead ({exc.message})"
    elif policy == Tenant.ClosedPeriodPolicy.WAIT:
        next_at = now + timedelta(minutes=settings.CONNECTOR["CLOSED_PERIOD_RECHECK_MINUTES"])
        status, result = S.HELD, "held-period-closed"
        message = (
            f"Held until period {period} is open in X3 again; checked again at "
            f"{timezone.localtime(next_at):%Y-%m-%d %H:%M} (one entry per period is tried, the others follow when "
            f"it posts). X3 said: {exc.message}"
        )
    else:
        status, next_at, result = S.NEEDS_ATTENTION, None, "needs-attention"
        message = (
            f"Period {period} is closed in X3: {exc.message}. Re-open it in X3 (Financials > Utilities > Closures > "
            "Re-open period) and press Retry now, or choose another closed-period policy on the tenant."
        )
        del fields["attempts"]
    Posting.objects.filter(pk=posting.pk, status=S.POSTING).update(
        status=status,
        next_attempt_at=next_at,
        last_error=message[:5000],
        updated_at=now,
        may_exist_in_x3=claim.may_exist or exc.outcome_unknown,
        **fields,
    )
    log_transition(posting, status, message, from_status=S.POSTING)
    return result


def _period_open(posting: Posting) -> tuple[int, ...]:
    """An entry posted into a period it was held for: the period is open again, so the entries held for it go now
    (the caller queues them). An entry moved to a later period proves nothing about its own."""
    if (
        not posting.held_period
        or posting.gl_date is None
        or f"{posting.gl_date:%Y-%m}" != posting.held_period
    ):
        return ()
    now = timezone.now()
    held = list(
        Posting.objects.filter(tenant_id=posting.tenant_id, status=S.HELD, held_period=posting.held_period)
    )
    released = []
    for other in held:  # no longer held: they go out as ordinary retries, and released once only
        if Posting.objects.filter(pk=other.pk, status=S.HELD).update(
            status=S.RETRY, next_attempt_at=now, updated_at=now
        ):
            log_transition(
                other, S.RETRY, f"Period {posting.held_period} is open in X3 again", from_status=S.HELD
            )
            released.append(other.pk)
    return tuple(released)


# --- Circuit breaker: a tenant's X3 is down ------------------------------------------------------------------------


def _circuit_of(tenant: Tenant) -> X3Circuit | None:
    try:
        return tenant.x3_circuit
    except X3Circuit.DoesNotExist:
        return None


def _probe_delay(probes: int) -> timedelta:
    base = settings.CONNECTOR["CIRCUIT_PROBE_SECONDS"]
    return timedelta(seconds=min(settings.CONNECTOR["CIRCUIT_PROBE_CAP_SECONDS"], base * 2 ** max(probes, 0)))


def _take_probe(circuit: X3Circuit) -> bool:
    """Become the one probe of an open circuit if its time has come (compare-and-set: one winner per interval)."""
    now = timezone.now()
    return (
        X3Circuit.objects.filter(pk=circuit.pk, opened_at__isnull=False, next_probe_at__lte=now).update(
            next_probe_at=now + _probe_delay(circuit.probes + 1), probes=F("probes") + 1, updated_at=now
        )
        == 1
    )


def _x3_unavailable(tenant: Tenant, error: str) -> X3Circuit:
    """Count one more consecutive "X3 unavailable" failure; open the circuit at the threshold."""
    now = timezone.now()
    circuit, _ = X3Circuit.objects.get_or_create(tenant=tenant)
    X3Circuit.objects.filter(pk=circuit.pk).update(
        failures=F("failures") + 1, last_error=error[:2000], updated_at=now
    )
    if X3Circuit.objects.filter(
        pk=circuit.pk, opened_at__isnull=True, failures__gte=settings.CONNECTOR["CIRCUIT_FAILURE_THRESHOLD"]
    ).update(opened_at=now, next_probe_at=now + _probe_delay(0), probes=0):
        logger.warning("Sage X3 of tenant %s is unavailable: circuit open (%s)", tenant.slug, error)
    circuit.refresh_from_db()
    return circuit


def _x3_answered(tenant: Tenant, circuit: X3Circuit | None) -> tuple[int, ...]:
    """X3 answered: reset the failure count; if the circuit was open, close it and make the waiting postings due.
    Returns the postings made due (the caller queues them)."""
    if circuit is None or (circuit.failures == 0 and not circuit.is_open):
        return ()  # the common case costs nothing
    now = timezone.now()
    with transaction.atomic():
        closed = X3Circuit.objects.filter(pk=circuit.pk, opened_at__isnull=False).update(
            opened_at=None, next_probe_at=None, probes=0, failures=0, updated_at=now
        )
        X3Circuit.objects.filter(pk=circuit.pk).update(failures=0, updated_at=now)
        if not closed:
            return ()
        waiting = tuple(
            Posting.objects.filter(
                tenant=tenant, status__in=(S.RETRY, S.UNKNOWN), next_attempt_at__gt=now
            ).values_list("pk", flat=True)
        )
        Posting.objects.filter(pk__in=waiting).update(next_attempt_at=now)
    logger.warning(
        "Sage X3 of tenant %s answers again: circuit closed, %d postings resumed", tenant.slug, len(waiting)
    )
    return waiting
