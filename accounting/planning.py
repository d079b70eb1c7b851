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
from integrations.bigcommerce.types import Order, Refund, Transaction

from .dimensions import blank_roles, with_dimensions, with_fallbacks
from .dimensions import resolve as resolve_dimensions
from .figures import stored_figures
from .history import log_transition
from .journal import (
    Accounts,
    Line,
    Policy,
    RefundPolicy,
    Tender,
    TenderPolicy,
    TenderRule,
    build_order_journal,
    build_refund_journal,
    difference,
    in_store_currency,
    natural_amount,
    negate,
    order_tenders,
    refund_in_store_currency,
    tenders_in_store_currency,
)
from .models import ChannelMapping, Posting, PostingLine, TenderMapping
from .rows import insert_all, insert_unless_exists, select
from .summary import SummaryPolicy, goes_into_summary, zone_of

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
# Planned with lines: due now, once approved, or with the day's summary (daily summary mode).
TO_POST = (S.PENDING, S.AWAITING_APPROVAL, S.IN_SUMMARY)
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
    if posting.kind == Posting.Kind.SUMMARY:
        return f"{prefix}-S{posting.pk}"  # by row ID: channel, currency, day and part would not fit in A25
    suffix = {
        Posting.Kind.ORDER: "",
        Posting.Kind.REFUND: f"-R{posting.refund_id}",
        Posting.Kind.ADJUSTMENT: f"-A{posting.idempotency_key.rsplit(':', 1)[-1]}",
        Posting.Kind.REVERSAL: f"-V{posting.idempotency_key.rsplit(':', 1)[-1]}",
    }[Posting.Kind(posting.kind)]
    return f"{prefix}-{posting.order_id}{suffix}"


def local_date(tenant: Tenant, moment: datetime) -> date:
    """The day of ``moment`` in the tenant's business time zone (blank: the server's TIME_ZONE)."""
    return timezone.localdate(moment, zone_of(tenant.business_time_zone, timezone.get_default_timezone()))


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


def version_in_force(tenant_id: int, channel_id: int, on: date) -> ChannelMapping | None:
    """The channel's mapping version in force on GL date ``on``: the latest effective on or before it, active or not."""
    found = select(
        ChannelMapping,
        '"tenant_id" = %s AND "channel_id" = %s AND "effective_from" <= %s',
        (tenant_id, channel_id, on),
        order_by='"effective_from" DESC',
        first=True,
    )
    return found[0] if found else None


def mapping_for(tenant: Tenant, channel_id: int, on: date) -> ChannelMapping | None:
    """The version in force on ``on`` when it is switched on (None when there is none, or it is switched off)."""
    version = version_in_force(tenant.pk, channel_id, on)
    return version if version is not None and version.is_active else None


def tender_policy_for(tenant: Tenant) -> TenderPolicy:
    """The tenant's tender mappings and gift-certificate / store-credit accounts (docs/payments-and-currencies.md).
    A tenant read by a task knows whether it maps tenders at all (``maps_tenders``): then no query when it does not."""
    if getattr(tenant, "maps_tenders", None) is False:
        return TenderPolicy((), tenant.gift_certificate_account, tenant.store_credit_account)
    rules = tuple(
        TenderRule(m.gateway, m.method, m.account, m.name)
        for m in TenderMapping.objects.filter(tenant=tenant).order_by("gateway", "-method", "id")
    )
    return TenderPolicy(rules, tenant.gift_certificate_account, tenant.store_credit_account)


def _in_posting_currency(tenant, base, created, order, refunds, transactions):
    """(order, refunds, tenders) in the currency the order posts in. Before its first entry is committed that is
    the tenant's policy; afterwards the currency of that entry, so a policy change never mixes currencies in one
    order's books."""
    tenders = order_tenders(order, transactions)
    if created or base.status in PLACEHOLDER or _rebuildable_failure(base) or not base.currency:
        convert = tenant.posting_currency_policy == Tenant.PostingCurrencyPolicy.STORE_DEFAULT
    else:
        convert = base.currency != order.currency_code
    if not convert:
        return order, list(refunds), tenders
    converted = [refund_in_store_currency(r, order) for r in refunds]
    return in_store_currency(order), converted, tenders_in_store_currency(tenders, order)


@dataclasses.dataclass(frozen=True)
class MappingProblem:
    """Why a channel's orders cannot be built: no mapping, a mapping switched off, or a required account blank."""

    cause: str  # "missing", "inactive", "blank"
    channel_id: int
    mapping: ChannelMapping | None = None
    blank: tuple[str, ...] = ()

    @property
    def happened(self) -> str:
        if self.cause == "missing":
            return f"There is no GL mapping for channel {self.channel_id}."
        if self.cause == "inactive":
            return f"The GL mapping for channel {self.channel_id} exists but is switched off (inactive)."
        return f"The GL mapping for channel {self.channel_id} has no {', '.join(self.blank)}."

    @property
    def to_do(self) -> str:
        return {
            "missing": "Add a mapping for this channel (Channel mappings)",
            "inactive": "Switch the mapping on (tick “Is active”)",
            "blank": "Fill in the blank account(s) on the mapping",
        }[self.cause] + ", then select the entry in the postings list and use “Retry now”."


def mapping_problem(tenant_id: int, channel_id: int | None, on: date | None = None) -> MappingProblem | None:
    """What is wrong with the channel's mapping version in force on ``on`` (default today) as it is now — it may have
    been fixed since the entry was planned — or None."""
    if channel_id is None:
        return None
    return mapping_problem_of(channel_id, version_in_force(tenant_id, channel_id, on or timezone.localdate()))


def mapping_problem_of(channel_id: int, mapping: ChannelMapping | None) -> MappingProblem | None:
    """:func:`mapping_problem` for a mapping already read (or None: there is none)."""
    if mapping is None:
        return MappingProblem("missing", channel_id)
    if not mapping.is_active:
        return MappingProblem("inactive", channel_id, mapping)
    blank = mapping.blank_required_accounts()
    if blank:
        return MappingProblem("blank", channel_id, mapping, tuple(blank))
    return None


ORGANISATION = ("company", "site", "entry_type", "journal")


def accounts_json(accounts: Accounts, mapping: ChannelMapping, channel_id: int) -> dict[str, Any]:
    """What an entry records of its mapping version, and what the order's later entries reuse: the accounts by
    role, the X3 organisation (blank: the connection's), the dimensions resolved for the order, the version."""
    return {
        **dataclasses.asdict(accounts),
        **{key: getattr(mapping, key) for key in ORGANISATION},
        "dimensions": resolve_dimensions(
            with_fallbacks(mapping.dimensions, blank_roles(mapping)), channel_id=channel_id
        ),
        "version": mapping.pk,
    }


def accounts_from_json(data: dict[str, Any]) -> Accounts:
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
    accounts: dict[str, Any] = dataclasses.field(default_factory=dict)
    message: str = ""


def target_for(
    tenant: Tenant,
    order: Order,
    *,
    on: date,
    posted_accounts: dict[str, Any] | None = None,
    tenders: tuple[Tender, ...] = (),
) -> Target:
    """What the order part should hold, on the channel's mapping version in force on GL date ``on``.
    ``posted_accounts`` is given once the order has been posted: from then on only a void status (or archiving)
    takes it back to nothing — any other status follows the order's amounts — and while the order stays on its
    channel its accounts (organisation, dimensions, version) are kept, so a new mapping version never rewrites
    the books of orders already posted. ``tenders`` split the receivable per way of payment."""
    if order.is_deleted or order.status_id in VOID_STATUS_IDS:
        why = "archived" if order.is_deleted else f"{order.status} ({order.status_id})"
        return Target("void", message=f"Order {why}: nothing should remain posted")
    posted = posted_accounts is not None
    confirmed = tenant.is_confirmed_status(order.status_id) or order.status_id in REFUNDED_STATUS_IDS
    if not (posted or confirmed):
        return Target("wait", message=f"Order status {order.status_id} ({order.status}) is not confirmed yet")
    if posted_accounts:  # {} means posted, but on another channel: take that channel's mapping
        accounts, recorded = accounts_from_json(posted_accounts), posted_accounts
    else:
        mapping = version_in_force(tenant.pk, order.channel_id, on)
        problem = mapping_problem_of(order.channel_id, mapping)
        if problem is not None or mapping is None:
            problem = problem or MappingProblem("missing", order.channel_id)
            return Target("unmapped", message=f"{problem.happened} {problem.to_do}")
        accounts = Accounts.from_mapping(mapping)
        recorded = accounts_json(accounts, mapping, order.channel_id)
    journal = build_order_journal(
        order,
        accounts,
        Policy(rounding_account=tenant.rounding_account, rounding_threshold=tenant.rounding_threshold),
        tenders=tenders,
        tender_policy=tender_policy_for(tenant),
    )
    if not journal.is_balanced:  # impossible by construction; never send an unbalanced entry if it happens
        return Target("unmapped", message="Internal error: the built entry does not balance")
    return Target(
        "post",
        lines=journal.lines,
        journal=journal,
        accounts=recorded,
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
    transactions: Iterable[Transaction] | None = None,
    read_started_at: datetime | None = None,
    refunds_only: bool = False,
) -> PlanResult:
    """Record every posting the order still needs, and say which of the order's postings are due now (new ones
    and retries whose time has come, oldest first). Idempotent: the same order twice plans nothing new.

    ``transactions`` (the order's v3 transactions, when the caller fetched them) split the receivable per tender.
    ``read_started_at``: when the re-read of ``order`` started; recorded on the order's row (``order_read_at``) when
    the row is written anyway, so a webhook received before it can be recognised as covered
    (docs/decisions/0028-webhooks-covered-by-a-later-read.md). ``refunds_only``: the order part was planned from
    this same read and its entry has just been posted; only the refunds that waited for it are planned."""
    args = (tenant, order, refunds, trigger, event, user, transactions, read_started_at, refunds_only)
    try:
        return _plan_order(*args)
    except _RowTaken:  # another worker created the order's row meanwhile: plan again on top of it
        return _plan_order(*args)


class _RowTaken(Exception):
    pass


def _plan_order(
    tenant, order, refunds, trigger, event, user, transactions, read_started_at, refunds_only
) -> PlanResult:
    with transaction.atomic():
        base, created = _lock_base(tenant, order, trigger, event)
        if read_started_at is not None and (
            base.order_read_at is None or read_started_at > base.order_read_at
        ):
            # written with the row when planning saves it (its INSERT, or a rebuild's UPDATE): no statement of its
            # own. Left unchanged otherwise, which only makes the record older (fewer events counted as covered).
            base.order_read_at = read_started_at
        order, refunds, tenders = _in_posting_currency(
            tenant, base, created, order, refunds, None if transactions is None else list(transactions)
        )
        if refunds_only and not created:
            outcome = "already-posted"  # the caller keeps the outcome of its first plan
        elif created or base.status in PLACEHOLDER or _rebuildable_failure(base):
            on = _gl_date(tenant, order, base, created)
            target = target_for(tenant, order, on=on, tenders=tenders)
            if target.state == "post" and _waits_for_shipment(tenant, order):
                target = Target("wait", message=WAITING_FOR_SHIPMENT)
            outcome = _plan_base(
                tenant,
                base,
                order,
                target,
                trigger,
                event,
                user,
                created,
                on,
            )
        else:
            current = _current_order_part(tenant, order.id)
            same = current.accounts if current is not None and current.channel_id == order.channel_id else {}
            on = local_date(tenant, order.date_modified)  # the adjustment's own GL date
            target = target_for(tenant, order, on=on, posted_accounts=same, tenders=tenders)
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
    found = select(Posting, '"tenant_id" = %s AND "idempotency_key" = %s', (tenant.pk, key), lock=True)
    if found:  # (tenant, idempotency key) is unique
        found[0].tenant = tenant  # the caller's instance, with its connections: no lazy load later
        return found[0], False
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


WAITING_FOR_SHIPMENT = "Waiting for shipment"


def _waits_for_shipment(tenant: Tenant, order: Order) -> bool:
    """Under the *shipped_last* policy an order is recognised once nothing is left to ship."""
    return tenant.gl_date_policy == Tenant.GlDatePolicy.SHIPPED_LAST and not order.is_fully_shipped


def _gl_date(tenant: Tenant, order: Order, base: Posting, created: bool) -> date:
    if tenant.gl_date_policy == Tenant.GlDatePolicy.SHIPPED_LAST:
        return local_date(tenant, _last_shipment(order, base, created))
    # BigCommerce keeps no status history. An order we saw unconfirmed became confirmed at its last modification;
    # one first seen confirmed was confirmed when it was created (or we cannot know better).
    if (
        tenant.gl_date_policy == Tenant.GlDatePolicy.CONFIRMED
        and not created
        and base.log.filter(to_status=S.WAITING).exists()
    ):
        return local_date(tenant, order.date_modified)
    return local_date(tenant, order.date_created)


def _last_shipment(order: Order, base: Posting, created: bool) -> datetime:
    """When the order's last shipment left, from the order itself (no extra call; docs/decisions/0027-revenue-on-shipment.md):

    * seen not fully shipped before (its waiting entry's snapshot): the shipment that completed it is the order's last modification (the
      status change to Shipped that brought us here), as the *confirmed* policy reasons about confirmation;
    * first seen fully shipped: BigCommerce's ``date_shipped``;
    * nothing physical to ship, or no ``date_shipped`` (a completed pickup): the order's last modification.
    Only the first planning of the order's entry uses it; while it waits the date is not used."""
    if not created and base.status == S.WAITING and not _was_fully_shipped(base.snapshot):
        return order.date_modified
    return order.date_shipped or order.date_modified


def _was_fully_shipped(snapshot: dict[str, Any]) -> bool:
    """Whether the order was fully shipped in a waiting posting's snapshot (the order as we saw it last time)."""
    if not snapshot or snapshot.get("status_id") in (2, 10):
        return True  # no snapshot: nothing known, do as if first seen
    return all(
        int(p.get("quantity_shipped", 0)) >= int(p.get("quantity", 0)) - int(p.get("quantity_refunded", 0))
        for p in snapshot.get("products", ())
        if p.get("is_physical", True) and not p.get("is_gift_certificate")
    )


def _plan_base(tenant, base, order, target: Target, trigger, event, user, created, gl_date: date) -> str:
    previous = base.status
    status: str = {"post": S.PENDING, "void": S.SKIPPED, "wait": S.WAITING, "unmapped": S.NEEDS_MAPPING}[
        target.state
    ]
    if status == S.PENDING and target.journal.is_empty:
        status, target = (
            S.SKIPPED,
            dataclasses.replace(target, message="Nothing to post: every amount is zero"),
        )
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
    _set_figures(base, target.lines if status in TO_POST else ())
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
    posting.source_currency = order.source_currency_code  # set when converted to the store's currency
    foreign = order.store_default_currency_code not in ("", order.source_currency_code or order.currency_code)
    posting.exchange_rate = order.store_default_rate if foreign else None
    posting.order_modified_at = order.date_modified
    posting.gl_date = gl_date
    posting.total = total if total is not None else (journal.total if journal else Decimal(0))
    posting.difference = journal.difference if journal else Decimal(0)
    posting.flagged = bool(journal and journal.flagged)
    posting.flag_reason = journal.flag_reason if journal else ""
    posting.description = description
    posting.snapshot = snapshot_of(order)
    posting.accounts = accounts
    _record_organisation(posting, accounts)
    posting.last_error = message if status in (S.NEEDS_MAPPING, S.NEEDS_ATTENTION) else ""
    posting.next_attempt_at = None
    posting.trigger = trigger
    posting.source_event = event
    posting.status = _review_gate(posting.tenant, status, posting.flagged)
    if posting.status in (S.PENDING, S.AWAITING_APPROVAL) and goes_into_summary(
        SummaryPolicy.of(posting.tenant), gl_date, order.channel_id
    ):
        # Sent with the day's summary, which is reviewed instead (connector/summaries.py).
        posting.status = S.IN_SUMMARY
    return posting.status


def _record_organisation(posting: Posting, accounts: dict[str, Any]) -> None:
    """The mapping version and the X3 company, site, entry type and journal the entry is sent with (blanks in the
    version: the tenant's X3 connection; the company is then left to X3, which derives it from the site)."""
    posting.mapping_version_id = accounts.get("version") or None  # PROTECT keeps a recorded version in place
    x3 = getattr(posting.tenant, "x3", None)
    posting.company = accounts.get("company") or ""
    for key in ("site", "entry_type", "journal"):
        setattr(posting, key, accounts.get(key) or (getattr(x3, key, "") if accounts else ""))


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
    if status == S.IN_SUMMARY:
        return f"{message}; goes to X3 in the daily summary of its channel, currency and day"
    return message


def _store(tenant: Tenant, posting: Posting, lines: Iterable[Line]) -> None:
    """Save a (re)planned posting with its reference and exactly these lines."""
    lines = tuple(lines)
    _set_figures(posting, lines)
    posting.save()
    if not posting.reference:
        posting.reference = x3_reference(tenant, posting)
        posting.save(update_fields=["reference"])
    posting.lines.all().delete()
    _write_lines(posting, lines)


def _set_figures(posting: Posting, lines: Iterable[Line]) -> None:
    """The reconciliation's figures of the entry from its snapshot and the lines it is saved with (its lines are
    only ever written with it; docs/decisions/0030-reconciliation-figures-stored.md)."""
    for field, value in stored_figures(posting.kind, posting.currency, posting.snapshot, lines).items():
        setattr(posting, field, value)


def _write_lines(posting: Posting, lines: Iterable[Line]) -> None:
    """The lines, each with the dimensions the entry's mapping version gives its role (a pure post-step)."""
    store_lines(posting, with_dimensions(lines, (posting.accounts or {}).get("dimensions")))


def store_lines(posting: Posting, lines: Iterable[Any]) -> None:
    """Insert ``lines`` (anything with role, account, debit, credit, description and dimensions: (type, value)
    pairs, or a dict or list as stored) as the posting's lines, numbered from 1, in one statement."""
    insert_all(
        [
            PostingLine(
                posting=posting,
                line_no=i,
                role=line.role,
                account=line.account,
                debit=line.debit,
                credit=line.credit,
                description=line.description[:200],
                dimensions=_stored_dimensions(line.dimensions),
            )
            for i, line in enumerate(lines, start=1)
        ]
    )


def _stored_dimensions(dimensions: Any) -> Any:
    """(type, value) pairs as a dict; a non-empty dict or list as it is; nothing as an empty dict."""
    if dimensions and isinstance(dimensions, dict | list):
        return dimensions
    return dict(dimensions or ())


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
        gl_date=local_date(tenant, order.date_modified),
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
    _set_figures(posting, ())
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
        if posting is not None:
            posting.tenant = tenant  # the caller's instance, with its connections: no lazy load later
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
            gl_date=local_date(tenant, refund.created),
            description=f"Refund {refund.id} of BigCommerce order {order.id}",
            accounts=accounts,
            message=message,
            journal=journal,
        )
        refund_data = refund.raw or dataclasses.asdict(refund)
        if (
            order.source_currency_code
        ):  # converted: the refund's figures in the posting's currency, as its order's
            refund_data = {**refund_data, "total_amount": refund.total_amount, "total_tax": refund.total_tax}
        posting.snapshot = {"order": snapshot_of(order), "refund": _plain(refund_data)}
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
    if base.status not in (S.POSTED, S.IN_SUMMARY):  # in a daily summary: committed, as good as posted here
        return S.WAITING, (), None, "Waiting for the order's own entry to be posted first", {}
    order_part = list(
        Posting.objects.filter(tenant=tenant, order_id=order.id, kind__in=ORDER_PART)
        .exclude(status__in=PLACEHOLDER)
        .order_by("id")
        .prefetch_related("lines")  # lines_of() below: one query for all of them
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
            tender_policy=tender_policy_for(tenant),
        )
    )
    posted_receivable = sum(
        (natural_amount(line) for line in lines_of(order_part) if line.role == "receivable"), Decimal(0)
    )
    refunded = sum(
        (
            natural_amount(line)
            for line in lines_of(
                Posting.objects.filter(tenant=tenant, order_id=order.id, kind=K.REFUND)
                .exclude(Q(refund_id=refund.id) | Q(status__in=PLACEHOLDER))
                .prefetch_related("lines")
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
