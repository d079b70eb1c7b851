"""Daily summary mode: closing a day (docs/decisions/0024-daily-summary-posting.md).

Per-order work in summary mode plans its postings as usual, lines and all, but leaves them ``in_summary``: nothing
is sent for them by themselves. This periodic task finds, in the database, every (tenant, channel, currency, day)
that has such entries not yet in a summary and whose day is closed (cut-off + grace passed in the tenant's time
zone), and in one transaction creates the summary posting(s), moves the entries into them (a compare-and-set on
``summary IS NULL``: an entry joins exactly one summary) and writes the aggregated lines. The summaries then go
through ``accounting.posting.submit_posting`` like any posting. A run that is lost or runs twice changes nothing:
the next run finds what is left, and a second closer either loses the unique key race or finds no entries left.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounting.history import log_transition
from accounting.journal import Line
from accounting.models import Posting
from accounting.planning import _review_gate, store_lines, x3_reference
from accounting.summary import (
    MemberLine,
    SummaryLine,
    SummaryPolicy,
    aggregate,
    day_closes_at,
    is_day_closed,
    split_parts,
    summary_key,
    summary_label,
    zone_of,
)

from . import tasks
from .models import Tenant

logger = logging.getLogger(__name__)
S = Posting.Status
K = Posting.Kind


class _NothingToSummarise(Exception):
    """Another closer took the entries first: roll back the summary row."""


def tenant_zone(tenant: Tenant) -> tzinfo:
    return zone_of(tenant.business_time_zone, timezone.get_default_timezone())


def open_members(tenant_id: int | None = None):
    members = Posting.objects.filter(status=S.IN_SUMMARY, summary__isnull=True)
    return members.filter(tenant_id=tenant_id) if tenant_id is not None else members


def close_due_days(*, now: datetime | None = None, enqueue: bool = True) -> str:
    """Build the summary of every closed day that has entries not yet in a summary; queue the summaries to post.

    The database is the source of truth: a day missed by a lost run is found by the next one."""
    now = now or timezone.now()
    groups = (
        open_members()
        .filter(tenant__is_active=True)
        .values_list("tenant_id", "channel_id", "currency", "gl_date")
        .distinct()
        .order_by("tenant_id", "gl_date", "channel_id", "currency")
    )
    tenants: dict[int, Tenant] = {}
    created: list[int] = []
    for tenant_id, channel_id, currency, day in groups[:1000]:
        if tenant_id not in tenants:
            tenants[tenant_id] = Tenant.objects.select_related("x3", "bigcommerce").get(pk=tenant_id)
        tenant = tenants[tenant_id]
        if day is None or not is_day_closed(SummaryPolicy.of(tenant), day, tenant_zone(tenant), now):
            continue
        # One day that cannot be built must not hold up the others; it is tried again by the next run.
        try:
            created += close_day(tenant, channel_id, currency, day)
        except Exception:
            logger.exception(
                "Tenant %s: could not build the summary of %s channel %s %s",
                tenant.slug,
                day,
                channel_id,
                currency,
            )
    if enqueue:
        for pk in created:
            tasks.enqueue_posting(pk)
    return f"summaries={len(created)}"


def close_day_now(day: date, *, tenant: Tenant | None = None, enqueue: bool = True) -> str:
    """Build the summaries of ``day`` now, closed or not: a tool for demos and operators (``close_summaries --day``).

    Entries dated that day that arrive afterwards are not lost: they go into the day's next summary (``:2:``), as a
    late refund does. Same exactly-once rules as :func:`close_due_days`."""
    groups = (
        open_members(tenant.pk if tenant is not None else None)
        .filter(tenant__is_active=True, gl_date=day)
        .values_list("tenant_id", "channel_id", "currency")
        .distinct()
        .order_by("tenant_id", "channel_id", "currency")
    )
    created: list[int] = []
    for tenant_id, channel_id, currency in groups:
        owner = (
            tenant
            if tenant is not None
            else Tenant.objects.select_related("x3", "bigcommerce").get(pk=tenant_id)
        )
        created += close_day(owner, channel_id, currency, day, trigger=Posting.Trigger.ADMIN)
    if enqueue:
        for pk in created:
            tasks.enqueue_posting(pk)
    return f"summaries={len(created)}"


def close_day(
    tenant: Tenant, channel_id: int, currency: str, day: date, *, trigger: str = Posting.Trigger.SWEEP
) -> list[int]:
    """Create the next summary of one channel, currency and day from its entries not yet in a summary.

    Returns the IDs of the parts that are due now (an empty list when there was nothing left, another closer got
    there first, or the parts await approval)."""
    try:
        with transaction.atomic():
            return _close_day(tenant, channel_id, currency, day, trigger)
    except (IntegrityError, _NothingToSummarise):
        return []


def _close_day(tenant: Tenant, channel_id: int, currency: str, day: date, trigger: str) -> list[int]:
    seq = _next_seq(tenant, channel_id, currency, day)
    head = _summary_posting(tenant, channel_id, currency, day, summary_key(channel_id, currency, day, seq, 1))
    head.trigger = trigger
    head.save(force_insert=True)  # the unique key: a closer racing for this day and sequence fails here
    claimed = open_members(tenant.pk).filter(channel_id=channel_id, currency=currency, gl_date=day)
    if claimed.update(summary=head) == 0:
        raise _NothingToSummarise
    members = list(Posting.objects.filter(summary=head).prefetch_related("lines").order_by("id"))
    member_lines = [
        MemberLine(
            posting_id=m.pk,
            order_id=m.order_id,
            line=Line(role=pl.role, account=pl.account, debit=pl.debit, credit=pl.credit, description=""),
            dimensions=pl.dimensions or None,
        )
        for m in members
        for pl in m.lines.all()
    ]
    label = summary_label(channel_id, currency, day, seq, 1, 1)
    lines = aggregate(member_lines, label=f"Daily summary {day:%Y-%m-%d}")
    parts = split_parts(
        lines,
        max_lines=tenant.summary_max_lines,
        clearing_account=tenant.summary_clearing_account or tenant.rounding_account,
        label=label,
    )
    flagged = [m for m in members if m.flagged]
    site = next((m.accounts.get("site", "") for m in members if m.accounts), "")
    member_list = [{"posting": m.pk, "order": m.order_id, "kind": m.kind} for m in members]
    if not parts:  # the day's entries cancel out: nothing to send, the members are accounted for
        _fill(head, label, lines=(), site=site, members=member_list, seq=seq, part=1, parts=1)
        head.status = S.SKIPPED
        head.save()
        log_transition(
            head, S.SKIPPED, f"Nothing to post: the {len(members)} entries cancel out", trigger=trigger
        )
        return []
    due = []
    for n, part_lines in enumerate(parts, start=1):
        posting = head
        if n > 1:
            posting = _summary_posting(
                tenant, channel_id, currency, day, summary_key(channel_id, currency, day, seq, n)
            )
            posting.parent = head
            posting.trigger = trigger
        part_label = summary_label(channel_id, currency, day, seq, n, len(parts))
        _fill(posting, part_label, part_lines, site, member_list, seq=seq, part=n, parts=len(parts))
        posting.flagged = bool(flagged)
        posting.flag_reason = (
            f"{len(flagged)} of its entries flagged for rounding (e.g. {flagged[0].entry_label})"
            if flagged
            else ""
        )[:300]
        posting.status = _review_gate(tenant, S.PENDING, posting.flagged)
        posting.save()
        posting.reference = x3_reference(tenant, posting)
        posting.save(update_fields=["reference"])
        store_lines(posting, part_lines)
        message = f"Daily summary of {len(members)} entries" + (
            f" (part {n} of {len(parts)})" if len(parts) > 1 else ""
        )
        if posting.status == S.AWAITING_APPROVAL:
            message += "; awaiting an accountant's approval before it is sent to X3"
        log_transition(posting, posting.status, message, trigger=trigger)
        if posting.status == S.PENDING:
            due.append(posting.pk)
    return due


def _next_seq(tenant: Tenant, channel_id: int, currency: str, day: date) -> int:
    """The day's next summary: 1, then 2, 3, … for entries that came after a summary was built."""
    prefix = f"summary:{channel_id}:{currency}:{day:%Y-%m-%d}:"
    heads = Posting.objects.filter(
        tenant=tenant, kind=K.SUMMARY, idempotency_key__startswith=prefix, parent__isnull=True
    )
    return heads.count() + 1


def _summary_posting(tenant: Tenant, channel_id: int, currency: str, day: date, key: str) -> Posting:
    return Posting(
        tenant=tenant,
        kind=K.SUMMARY,
        idempotency_key=key,
        order_id=0,
        status=S.WAITING,
        channel_id=channel_id,
        currency=currency,
        gl_date=day,
        description=f"Daily summary {day:%Y-%m-%d}",
    )


def _fill(
    posting: Posting,
    label: str,
    lines: Iterable[SummaryLine],
    site: str,
    members: list[dict],
    *,
    seq: int,
    part: int,
    parts: int,
) -> None:
    lines = tuple(lines)
    posting.description = label[:200]
    posting.total = sum((line.net for line in lines if line.role == "receivable"), Decimal(0))
    posting.accounts = {"site": site} if site else {}
    posting.snapshot = {
        "summary": {"day": f"{posting.gl_date:%Y-%m-%d}", "seq": seq, "part": part, "parts": parts},
        "members": members,
        "lines": [
            {
                "line_no": i,
                "account": line.account,
                "role": line.role,
                "dimensions": line.dimensions,
                "amount": str(line.net),
                "sources": [
                    {"posting": s.posting_id, "order": s.order_id, "amount": str(s.amount)}
                    for s in line.sources
                ],
            }
            for i, line in enumerate(lines, start=1)
        ],
    }


def drill_down(summary: Posting) -> list[dict]:
    """Per summary line: the member entries and amounts behind it (from the summary's snapshot)."""
    return list(summary.snapshot.get("lines", []))


def reject_with_summary(summary: Posting, *, user=None) -> int:
    """A summary rejected in review: the day is booked whole or not at all.

    Its other parts still awaiting approval are rejected with it, and — when no part of it was approved — its
    entries are rejected too, exactly as if each had been rejected by itself: ``skipped`` and out of the summary,
    so a later change of the order brings it back (into a next summary). Returns how many entries were rejected."""
    head = summary.parent_id or summary.pk
    parts = Posting.objects.filter(Q(pk=head) | Q(parent_id=head), kind=K.SUMMARY)
    who = getattr(user, "get_username", lambda: "")() or "an operator"
    for part in parts.filter(status=S.AWAITING_APPROVAL):
        if Posting.objects.filter(pk=part.pk, status=S.AWAITING_APPROVAL).update(status=S.SKIPPED):
            log_transition(
                part,
                S.SKIPPED,
                f"Rejected by {who} with another part of the same summary. Nothing was sent to X3.",
                from_status=S.AWAITING_APPROVAL,
                trigger=Posting.Trigger.ADMIN,
                user=user,
            )
    if parts.exclude(status=S.SKIPPED).exists():
        return 0  # a part was approved (and may be in X3): its entries stay with it
    rejected = 0
    for member in Posting.objects.filter(summary_id=head, status=S.IN_SUMMARY):
        if Posting.objects.filter(pk=member.pk, status=S.IN_SUMMARY).update(status=S.SKIPPED, summary=None):
            log_transition(
                member,
                S.SKIPPED,
                f"Its daily summary was rejected by {who}. Nothing was sent to X3; a change of the order brings it "
                "back.",
                from_status=S.IN_SUMMARY,
                trigger=Posting.Trigger.ADMIN,
                user=user,
            )
            rejected += 1
    return rejected


def overdue_days(tenant: Tenant, now: datetime, *, slack: timedelta) -> dict[date, int]:
    """Days whose summary should have been built more than ``slack`` ago but still have entries waiting, with how
    many: the closing task is not running (an alarm, connector/alerts.py)."""
    policy, zone = SummaryPolicy.of(tenant), tenant_zone(tenant)
    waiting = open_members(tenant.pk).values_list("gl_date").annotate(n=Count("id")).order_by("gl_date")
    return {
        day: n for day, n in waiting if day is not None and now - day_closes_at(policy, day, zone) > slack
    }
