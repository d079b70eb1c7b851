"""Planning: from the order as BigCommerce shows it now to the posting rows the ledger still needs.

One rule covers creation, confirmation, edits, channel changes, cancellations and replays: the *order part* of the
ledger (the order entry plus its adjustments and reversals) must add up to the order's current journal — or to
nothing when the order is cancelled, declined or archived. Whatever differs becomes one new entry with only the
difference. Refunds are separate entries keyed by refund ID, built from the v3 refund on the accounts the order
part used, and only once the order's own entry is posted. See docs/accounting.md and
docs/decisions/0008-order-lifecycle-and-refunds.md.

Everything here is database work under a per-order row lock; no HTTP. Delivery is accounting/posting.py.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from connector.models import Tenant, WebhookEvent
from integrations.bigcommerce.types import Order, Refund

from .history import log_transition
from .journal import (
    Accounts,
    Line,
    Policy,
    RefundPolicy,
    build_order_journal,
    build_refund_journal,
    difference,
    natural_amount,
    negate,
)
from .models import ChannelMapping, Posting, PostingLine
from .rows import insert_unless_exists

logger = logging.getLogger(__name__)
S = Posting.Status
K = Posting.Kind

# BigCommerce statuses that void an order: Cancelled, Declined. Archived (deleted) orders count as void too.
VOID_STATUS_IDS = frozenset({5, 6})
# Refunded and Partially Refunded were paid once: an order first seen in them still posts (its refunds follow).
REFUNDED_STATUS_IDS = frozenset({4, 14})
# Statuses in which nothing of a posting can have reached X3, so it may be rebuilt from a fresher order.
# Rows that hold nothing sent to X3: rebuilt from the current order on every sync. An entry awaiting approval is
# rebuilt too — a changed order is shown (and approved) as it is now.
PLACEHOLDER = (S.WAITING, S.NEEDS_MAPPING, S.SKIPPED, S.AWAITING_APPROVAL)
TO_POST = (S.PENDING, S.AWAITING_APPROVAL)  # planned with lines: due now, or once approved
ORDER_PART = (K.ORDER, K.ADJUSTMENT, K.REVERSAL)


@dataclasses.dataclass(frozen=True)
class PlanResult:
    outcome: str  # created, reopened, adjusted, reversed, already-posted, in-progress, unchanged
    order_posting: Posting
    to_submit: tuple[int, ...]  # posting IDs that became due in this run, in the order they must post


# GACCENTRY.REFINT is A25 (docs/reference/sagex3.md §4.2): a longer reference would be cut and never found again.
REFERENCE_MAX_LENGTH = 25


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


def order_key(order_id: int) -> str:
    return f"order:{order_id}"


def snapshot_of(order: Order) -> dict[str, Any]:
    """The order's accounting-relevant fields as JSON (Decimals as strings), kept with the posting for audit."""
    data = {f.name: getattr(order, f.name) for f in dataclasses.fields(order) if f.name != "raw"}
    data["products"] = [dataclasses.asdict(p) for p in order.products]
    data["fees"] = [dataclasses.asdict(f) for f in order.fees]
    return _plain(data)


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def mapping_for(tenant: Tenant, channel_id: int) -> ChannelMapping | None:
    return ChannelMapping.objects.filter(tenant=tenant, channel_id=channel_id, is_active=True).first()


def accounts_json(accounts: Accounts, site: str) -> dict[str, str]:
    return {**dataclasses.asdict(accounts), "site": site}


def accounts_from_json(data: dict[str, str]) -> Accounts:
    return Accounts(**{f.name: data.get(f.name, "") for f in dataclasses.fields(Accounts)})


def lines_of(postings: Iterable[Posting]) -> list[Line]:
    return [
        Line(role=pl.role, account=pl.account, debit=pl.debit, credit=pl.credit, description=pl.description)
        for posting in postings
        for pl in posting.lines.all()
    ]


# --- The order part -----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Target:
    """What the order part of the ledger should hold now."""

    state: str  # "post", "void", "wait" (not confirmed yet: only before the first posting), "unmapped"
    lines: tuple[Line, ...] = ()
    journal: Any = None
    accounts: dict[str, str] = dataclasses.field(default_factory=dict)
    message: str = ""


def target_for(tenant: Tenant, order: Order, *, posted_accounts: dict[str, str] | None = None) -> Target:
    """What the order part should hold. ``posted_accounts`` is given once the order has been posted: from then on
    only a void status (or archiving) takes it back to nothing — any other status follows the order's amounts —
    and while the order stays on its channel its accounts are kept, so editing a channel mapping later never
    rewrites the books of orders already posted."""
    if order.is_deleted or order.status_id in VOID_STATUS_IDS:
        why = "archived" if order.is_deleted else f"{order.status} ({order.status_id})"
        return Target("void", message=f"Order {why}: nothing should remain posted")
    posted = posted_accounts is not None
    confirmed = tenant.is_confirmed_status(order.status_id) or order.status_id in REFUNDED_STATUS_IDS
    if not (posted or confirmed):
        return Target("wait", message=f"Order status {order.status_id} ({order.status}) is not confirmed yet")
    if posted_accounts:  # {} means posted, but on another channel: take that channel's mapping
        accounts, site = accounts_from_json(posted_accounts), posted_accounts.get("site", "")
    else:
        mapping = mapping_for(tenant, order.channel_id)
        if mapping is None:
            return Target(
                "unmapped", message=f"No GL mapping for channel {order.channel_id}: add one, then re-post"
            )
        accounts, site = Accounts.from_mapping(mapping), mapping.site
    journal = build_order_journal(
        order,
        accounts,
        Policy(rounding_account=tenant.rounding_account, rounding_threshold=tenant.rounding_threshold),
    )
    if not journal.is_balanced:  # impossible by construction; never send an unbalanced entry if it happens
        return Target("unmapped", message="Internal error: the built entry does not balance")
    return Target(
        "post",
        lines=journal.lines,
        journal=journal,
        accounts=accounts_json(accounts, site),
        message="; ".join(journal.warnings),
    )


def plan_order(
    *,
    tenant: Tenant,
    order: Order,
    refunds: Iterable[Refund] = (),
    trigger: str,
    event: WebhookEvent | None = None,
    user=None,
) -> PlanResult:
    """Record every posting the order still needs, and say which of the order's postings are due now (new ones
    and retries whose time has come, oldest first). Idempotent: the same order twice plans nothing new."""
    try:
        return _plan_order(tenant, order, refunds, trigger, event, user)
    except _RowTaken:  # another worker created the order's row meanwhile: plan again on top of it
        return _plan_order(tenant, order, refunds, trigger, event, user)


class _RowTaken(Exception):
    pass


def _plan_order(tenant, order, refunds, trigger, event, user) -> PlanResult:
    with transaction.atomic():
        base, created = _lock_base(tenant, order, trigger, event)
        if created or base.status in PLACEHOLDER or _rebuildable_failure(base):
            outcome = _plan_base(
                tenant, base, order, target_for(tenant, order), trigger, event, user, created
            )
        else:
            current = _current_order_part(tenant, order.id)
            same = current.accounts if current is not None and current.channel_id == order.channel_id else {}
            target = target_for(tenant, order, posted_accounts=same)
            outcome = _plan_difference(tenant, base, order, target, trigger, event, user)
        _plan_refunds(tenant, base, order, refunds, trigger, event, user)
        if created and not refunds:  # a new order row is the order's only posting: no query needed
            return PlanResult(outcome, base, (base.pk,) if base.status == S.PENDING else ())
        now = timezone.now()
        due = Posting.objects.filter(
            Q(status=S.PENDING)
            | Q(status__in=(S.RETRY, S.UNKNOWN))
            & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)),
            tenant=tenant,
            order_id=order.id,
        ).order_by("id")
        return PlanResult(outcome, base, tuple(due.values_list("pk", flat=True)))


def _current_order_part(tenant: Tenant, order_id: int) -> Posting | None:
    """The latest committed entry of the order part: its channel and accounts are the order's current ones."""
    return (
        Posting.objects.filter(tenant=tenant, order_id=order_id, kind__in=ORDER_PART)
        .exclude(status__in=PLACEHOLDER)
        .exclude(accounts={})
        .order_by("id")
        .last()
    )


def _lock_base(tenant, order, trigger, event) -> tuple[Posting, bool]:
    """The ``order:<id>`` row, locked for the rest of the transaction: it serialises all planning for one order
    across workers (on PostgreSQL; SQLite serialises writers anyway). A new row is returned unsaved (``created``);
    its INSERT holds it until we commit."""
    key = order_key(order.id)
    base = Posting.objects.select_for_update().filter(tenant=tenant, idempotency_key=key).first()
    if base is not None:
        return base, False
    base = Posting(
        tenant=tenant,
        idempotency_key=key,
        kind=K.ORDER,
        order_id=order.id,
        status=S.WAITING,
        trigger=trigger,
        source_event=event,
    )
    base.reference = x3_reference(tenant, base)
    return (
        base,
        True,
    )  # not inserted yet: _plan_base inserts it filled (one INSERT instead of INSERT + UPDATE)


def _rebuildable_failure(posting: Posting) -> bool:
    """A posting X3 refused outright may be rebuilt — unless an earlier send may have reached X3 (X3 might hold it
    with the old lines)."""
    return posting.status == S.NEEDS_ATTENTION and not posting.may_exist_in_x3


def _gl_date(tenant: Tenant, order: Order, base: Posting, created: bool) -> date:
    # BigCommerce keeps no status history. An order we saw unconfirmed became confirmed at its last modification;
    # one first seen confirmed was confirmed when it was created (or we cannot know better).
    if (
        tenant.gl_date_policy == Tenant.GlDatePolicy.CONFIRMED
        and not created
        and base.log.filter(to_status=S.WAITING).exists()
    ):
        return timezone.localdate(order.date_modified)
    return timezone.localdate(order.date_created)


def _plan_base(tenant, base, order, target: Target, trigger, event, user, created) -> str:
    previous = base.status
    status: str = {"post": S.PENDING, "void": S.SKIPPED, "wait": S.WAITING, "unmapped": S.NEEDS_MAPPING}[
        target.state
    ]
    if status == S.PENDING and target.journal.is_empty:
        status, target = (
            S.SKIPPED,
            dataclasses.replace(target, message="Nothing to post: every amount is zero"),
        )
    gl_date = _gl_date(tenant, order, base, created)
    journal = target.journal
    status = _fill(
        base,
        order,
        status=status,
        trigger=trigger,
        event=event,
        gl_date=gl_date,
        description=f"BigCommerce order {order.id}",
        accounts=target.accounts,
        message=target.message,
        journal=journal,
    )
    if not created:
        base.save()
        base.lines.all().delete()
    elif not insert_unless_exists(base):  # another worker inserted the order's row since we looked
        raise _RowTaken
    if status in TO_POST:
        _write_lines(base, target.lines)
    if created:
        log_transition(
            base,
            status,
            target.message or _planned(status, "Order posting created"),
            trigger=trigger,
            user=user,
            posting_locked=True,  # _lock_base holds the row
        )
        return "created"
    if previous != status or status in TO_POST:
        log_transition(
            base,
            status,
            target.message or _planned(status, "Rebuilt from a fresh order snapshot"),
            from_status=previous,
            trigger=trigger,
            user=user,
            posting_locked=True,  # _lock_base holds the row
        )
    return "reopened" if status in TO_POST else "unchanged"


def _fill(
    posting,
    order,
    *,
    status,
    trigger,
    event,
    gl_date,
    description,
    accounts,
    message,
    journal=None,
    total=None,
) -> str:
    """Fill a (re)planned posting from the order; returns its status (an entry to post may have to await review)."""
    posting.channel_id = order.channel_id
    posting.order_status_id = order.status_id
    posting.currency = order.currency_code
    posting.order_modified_at = order.date_modified
    posting.gl_date = gl_date
    posting.total = total if total is not None else (journal.total if journal else Decimal(0))
    posting.difference = journal.difference if journal else Decimal(0)
    posting.flagged = bool(journal and journal.flagged)
    posting.flag_reason = journal.flag_reason if journal else ""
    posting.description = description
    posting.snapshot = snapshot_of(order)
    posting.accounts = accounts
    posting.last_error = message if status in (S.NEEDS_MAPPING, S.NEEDS_ATTENTION) else ""
    posting.next_attempt_at = None
    posting.trigger = trigger
    posting.source_event = event
    posting.status = _review_gate(posting.tenant, status, posting.flagged)
    return posting.status


def _review_gate(tenant: Tenant, status: str, flagged: bool) -> str:
    """An entry ready to post waits for an accountant's approval when the tenant's review policy says so."""
    policy = tenant.review_policy
    if status == S.PENDING and (
        policy == Tenant.ReviewPolicy.ALL or (policy != Tenant.ReviewPolicy.OFF and flagged)
    ):
        return S.AWAITING_APPROVAL
    return status


def _planned(status: str, message: str) -> str:
    if status == S.AWAITING_APPROVAL:
        return f"{message}; awaiting an accountant's approval before it is sent to X3"
    return message


def _store(tenant: Tenant, posting: Posting, lines: Iterable[Line]) -> None:
    """Save a (re)planned posting with its reference and exactly these lines."""
    posting.save()
    if not posting.reference:
        posting.reference = x3_reference(tenant, posting)
        posting.save(update_fields=["reference"])
    posting.lines.all().delete()
    _write_lines(posting, lines)


def _write_lines(posting: Posting, lines: Iterable[Line]) -> None:
    PostingLine.objects.bulk_create(
        PostingLine(
            posting=posting,
            line_no=i,
            role=line.role,
            account=line.account,
            debit=line.debit,
            credit=line.credit,
            description=line.description[:200],
        )
        for i, line in enumerate(lines, start=1)
    )


def _plan_difference(tenant, base, order, target: Target, trigger, event, user) -> str:
    """The order entry is committed (posted or on its way): post only what changed, as one new entry."""
    part = list(
        Posting.objects.filter(tenant=tenant, order_id=order.id, kind__in=ORDER_PART)
        .exclude(pk=base.pk)
        .order_by("id")
    )
    open_placeholder = next((p for p in part if p.status in PLACEHOLDER or _rebuildable_failure(p)), None)
    committed = [base] + [p for p in part if p is not open_placeholder and p.status not in PLACEHOLDER]
    lines: tuple[Line, ...]
    if target.state == "unmapped":
        kind, lines, accounts = K.ADJUSTMENT, (), {}
    elif target.state == "void":
        kind, accounts = K.REVERSAL, committed[-1].accounts
        lines = difference((), lines_of(committed), description=f"Reversal of order {order.id}")
    else:
        kind, accounts = K.ADJUSTMENT, target.accounts
        lines = difference(target.lines, lines_of(committed), description=f"Adjustment of order {order.id}")
        if lines and all(natural_amount(line) == 0 for line in lines):
            lines = ()
    if target.state != "unmapped" and not lines:
        if open_placeholder is not None:  # e.g. a parked adjustment that no longer has anything to do
            _retire(open_placeholder, "Nothing left to adjust", trigger, user)
        return "already-posted" if base.status == S.POSTED else "in-progress"

    posting = open_placeholder
    if posting is None:
        n = 1 + sum(1 for p in part if p.kind == kind)
        posting = Posting(
            tenant=tenant, kind=kind, order_id=order.id, parent=base, idempotency_key=f"{kind}:{order.id}:{n}"
        )
    elif posting.kind != kind:
        _retire(posting, f"Superseded by a {kind}", trigger, user)
        n = 1 + sum(1 for p in part if p.kind == kind)
        posting = Posting(
            tenant=tenant, kind=kind, order_id=order.id, parent=base, idempotency_key=f"{kind}:{order.id}:{n}"
        )
    previous = posting.status if posting.pk else ""
    status: str = S.NEEDS_MAPPING if target.state == "unmapped" else S.PENDING
    receivable = sum((natural_amount(line) for line in lines if line.role == "receivable"), Decimal(0))
    label = "Reversal" if kind == K.REVERSAL else "Adjustment"
    status = _fill(
        posting,
        order,
        status=status,
        trigger=trigger,
        event=event,
        gl_date=timezone.localdate(order.date_modified),
        description=f"{label} of BigCommerce order {order.id}",
        accounts=accounts,
        message=target.message,
        total=receivable,
    )
    _store(tenant, posting, lines)
    log_transition(
        posting,
        status,
        target.message or _planned(status, f"{label}: only the difference from what was posted"),
        from_status=previous,
        trigger=trigger,
        user=user,
    )
    return "reversed" if kind == K.REVERSAL else "adjusted"


def _retire(posting: Posting, message: str, trigger: str, user) -> None:
    previous = posting.status
    posting.status = S.SKIPPED
    posting.last_error = ""
    posting.save()
    posting.lines.all().delete()
    log_transition(posting, S.SKIPPED, message, from_status=previous, trigger=trigger, user=user)


# --- Refunds ------------------------------------------------------------------------------------------------------


def refund_key(order_id: int, refund_id: int) -> str:
    return f"refund:{order_id}:{refund_id}"


def _plan_refunds(tenant, base, order, refunds: Iterable[Refund], trigger, event, user) -> None:
    refunds = list(refunds)
    if not refunds:
        return
    existing = {
        p.refund_id: p for p in Posting.objects.filter(tenant=tenant, order_id=order.id, kind=K.REFUND)
    }
    for refund in sorted(refunds, key=lambda r: r.id):
        posting = existing.get(refund.id)
        if posting is not None and not (posting.status in PLACEHOLDER or _rebuildable_failure(posting)):
            continue  # posted or on its way: a refund posts once
        if posting is None:
            posting = Posting(
                tenant=tenant,
                kind=K.REFUND,
                order_id=order.id,
                refund_id=refund.id,
                parent=base,
                idempotency_key=refund_key(order.id, refund.id),
            )
        previous = posting.status if posting.pk else ""
        status, lines, journal, message, accounts = _refund_plan(tenant, base, order, refund)
        status = _fill(
            posting,
            order,
            status=status,
            trigger=trigger,
            event=event,
            gl_date=timezone.localdate(refund.created),
            description=f"Refund {refund.id} of BigCommerce order {order.id}",
            accounts=accounts,
            message=message,
            journal=journal,
        )
        posting.snapshot = {
            "order": snapshot_of(order),
            "refund": _plain(refund.raw or dataclasses.asdict(refund)),
        }
        if status == S.NEEDS_ATTENTION:
            posting.last_error = message
        _store(tenant, posting, lines)
        if previous != status or status in TO_POST:
            log_transition(
                posting,
                status,
                message or _planned(status, "Refund posting planned"),
                from_status=previous,
                trigger=trigger,
                user=user,
            )


def _refund_plan(tenant, base, order, refund: Refund):
    """(status, lines, journal, message, accounts) for one refund."""
    if refund.payments and all(p.is_declined for p in refund.payments):
        return S.SKIPPED, (), None, "Every payment of this refund was declined: nothing was refunded", {}
    if base.status != S.POSTED:
        return S.WAITING, (), None, "Waiting for the order's own entry to be posted first", {}
    order_part = list(
        Posting.objects.filter(tenant=base.tenant, order_id=order.id, kind__in=ORDER_PART)
        .exclude(status__in=PLACEHOLDER)
        .order_by("id")
    )
    accounts_data = next((p.accounts for p in reversed(order_part) if p.accounts), base.accounts)
    accounts = accounts_from_json(accounts_data)
    journal = negate(
        build_refund_journal(
            refund,
            order,
            accounts,
            RefundPolicy(
                order_level=tenant.order_refund_policy,
                refund_account=tenant.refund_account,
                restock_cogs=tenant.refund_restock_cogs,
                rounding_account=tenant.rounding_account,
                rounding_threshold=tenant.rounding_threshold,
            ),
        )
    )
    posted_receivable = sum(
        (natural_amount(line) for line in lines_of(order_part) if line.role == "receivable"), Decimal(0)
    )
    refunded = sum(
        (
            natural_amount(line)
            for line in lines_of(
                Posting.objects.filter(tenant=base.tenant, order_id=order.id, kind=K.REFUND).exclude(
                    Q(refund_id=refund.id) | Q(status__in=PLACEHOLDER)
                )
            )
            if line.role == "receivable"
        ),
        Decimal(0),
    )  # negative: refunds are storno entries
    if posted_receivable + refunded + journal.total < 0:
        message = (
            f"Over-refund: refund {refund.id} of {-journal.total} {order.currency_code} would take the order below "
            f"zero (posted {posted_receivable}, already refunded {-refunded}). Check the refund in BigCommerce."
        )
        return S.NEEDS_ATTENTION, (), journal, message, accounts_data
    if journal.is_empty:
        return S.SKIPPED, (), journal, "Nothing to post: the refund is zero", accounts_data
    return S.PENDING, journal.lines, journal, "", accounts_data
