"""Month-end figures for the accountant's workspace: reconciliation against BigCommerce, trial balance, dashboard.

Every function here runs a fixed number of aggregate queries whatever the number of orders (no query per row),
then does the comparison in Decimal. docs/workspace.md explains each figure for accountants.

* BigCommerce's side comes from the order snapshots stored with the postings (``Posting.snapshot``): for an order,
  the snapshot of the latest entry of its order part (order, adjustments, reversals) is the order as BigCommerce
  last showed it; a cancelled, declined or archived order counts zero. For a refund, the refund itself.
* The GL side is what was posted (status ``posted``), by line role.
* Orders are counted on the GL date of their order entry, with every later entry of the same order (adjustments,
  reversals) attributed to that day, so an edited order still ties out on its own day. Refunds count on their own
  GL date. Orders still waiting for confirmation are not sales yet and are left out.
"""

from __future__ import annotations

import calendar
import dataclasses
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Count, F, Max, Min, Q, Sum
from django.db.models.fields.json import KT

from connector.models import Tenant, WebhookEvent

from .journal import NATURAL_SIDE, quantize
from .models import ChannelMapping, Posting, PostingLine

S = Posting.Status
K = Posting.Kind
ZERO = Decimal(0)
ORDER_PART = (K.ORDER, K.ADJUSTMENT, K.REVERSAL)
VOID_STATUS_IDS = frozenset({5, 6})  # Cancelled, Declined (as accounting/planning.py)
FAILED = (S.NEEDS_ATTENTION, S.NEEDS_MAPPING, S.NEEDS_REAUTH)
NOT_POSTED = (S.AWAITING_APPROVAL, S.PENDING, S.POSTING, S.RETRY, S.UNKNOWN, S.HELD)

# Row statuses, worst first.
MATCHED, NOT_POSTED_YET, DIFFERS, FAILED_STATUS = "matched", "not posted yet", "differs", "failed"
# Daily summary mode: an entry in a summary counts as posted once its summary is (docs/decisions/0024-daily-summary-posting.md).
POSTED_LINE = Q(posting__status=S.POSTED) | Q(posting__status=S.IN_SUMMARY, posting__summary__status=S.POSTED)


def _as_posted(row: Any) -> dict:
    """An entry in a summary has its summary's state (not built yet: pending)."""
    if row["status"] == S.IN_SUMMARY:
        row["status"] = row.pop("summary__status") or S.PENDING
    return row


STATUS_RANK = {MATCHED: 0, NOT_POSTED_YET: 1, DIFFERS: 2, FAILED_STATUS: 3}

# Compared measures: BigCommerce figure vs GL figure.
MEASURES = ("sales", "tax", "shipping", "refunds")
# GL columns by role (natural side amounts). "refunds" is the receivable of refund entries, as a positive amount.
GL_COLUMNS = ("sales", "revenue", "discount", "shipping", "tax", "cogs", "refunds")
GL_ROLE_COLUMN = {
    "receivable": "sales",
    "revenue": "revenue",
    "wrapping": "revenue",
    "fee": "revenue",
    "discount": "discount",
    "shipping": "shipping",
    "handling": "shipping",
    "tax": "tax",
    "cogs": "cogs",
}

_SNAPSHOT_KEYS = (
    "total_inc_tax",
    "total_tax",
    "shipping_cost_ex_tax",
    "shipping_cost_inc_tax",
    "shipping_cost_tax",
    "handling_cost_ex_tax",
    "handling_cost_inc_tax",
    "handling_cost_tax",
    "is_tax_inclusive_pricing",
    "is_deleted",
    "status_id",
)


# --- Periods -------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive

    @property
    def label(self) -> str:
        return self.start.isoformat() if self.start == self.end else f"{self.start} – {self.end}"

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


PERIOD_CHOICES = (
    ("day", "Day"),
    ("week", "Week"),
    ("month", "Month"),
    ("last_month", "Last month"),
    ("custom", "Custom"),
)


class PeriodError(ValueError):
    """A period the user asked for that makes no sense; the message says why in plain words."""


def parse_date(value: str | None, what: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise PeriodError(f"{what} must be a date like 2026-11-30, not {value!r}.") from None


def period_for(kind: str, today: date, *, on: date | None = None, start=None, end=None) -> Period:
    """``day``/``week``/``month`` around ``on`` (default today), ``last_month``, or ``custom`` from start to end."""
    on = on or today
    if kind == "day":
        return Period(on, on)
    if kind == "week":
        monday = on - timedelta(days=on.weekday())
        return Period(monday, monday + timedelta(days=6))
    if kind == "month":
        return Period(on.replace(day=1), on.replace(day=calendar.monthrange(on.year, on.month)[1]))
    if kind == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return Period(last.replace(day=1), last)
    if kind == "custom":
        if not (start and end):
            raise PeriodError("A custom period needs a start and an end date.")
        if end < start:
            raise PeriodError("The end date is before the start date.")
        if (end - start).days > 366:
            raise PeriodError("A period can be at most one year long.")
        return Period(start, end)
    raise PeriodError(f"Unknown period {kind!r}: choose day, week, month, last month or custom.")


# --- Reconciliation ------------------------------------------------------------------------------------------------


def _dec(value) -> Decimal:
    if isinstance(value, Decimal):
        return value
    if value in (None, ""):
        return ZERO
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return ZERO


def _true(value) -> bool:
    return str(value).lower() in ("1", "true")


def _bc_order_figures(row: dict) -> dict[str, Decimal]:
    """Sales, tax and shipping of one order snapshot (zero when the order is void)."""
    if _true(row["s_is_deleted"]) or int(_dec(row["s_status_id"])) in VOID_STATUS_IDS:
        return {"sales": ZERO, "tax": ZERO, "shipping": ZERO}
    inclusive = _true(row["s_is_tax_inclusive_pricing"])

    def net(prefix: str) -> Decimal:
        if inclusive:
            return _dec(row[f"s_{prefix}_inc_tax"]) - _dec(row[f"s_{prefix}_tax"])
        return _dec(row[f"s_{prefix}_ex_tax"])

    return {
        "sales": _dec(row["s_total_inc_tax"]),
        "tax": _dec(row["s_total_tax"]),
        "shipping": net("shipping_cost") + net("handling_cost"),
    }


@dataclasses.dataclass
class ReconRow:
    day: date | None  # None on a total row
    channel_id: int | None
    currency: str
    orders: int = 0
    refunds: int = 0
    bc: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(MEASURES, ZERO))
    gl: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(GL_COLUMNS, ZERO))
    counts: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(STATUS_RANK, 0))
    problem_orders: list = dataclasses.field(default_factory=list)  # order IDs that are not matched

    @property
    def difference(self) -> Decimal:
        """BigCommerce's net sales (sales − refunds) minus the GL's (receivable of orders − refunds)."""
        return (self.bc["sales"] - self.bc["refunds"]) - (self.gl["sales"] - self.gl["refunds"])

    @property
    def notes(self) -> str:
        """Plain words on what is off: counts that are not matched, then each compared figure that differs
        (BigCommerce minus GL)."""
        parts = [f"{self.counts[s]} {s}" for s in (FAILED_STATUS, NOT_POSTED_YET, DIFFERS) if self.counts[s]]
        gl = {**self.gl}
        for measure in MEASURES:
            delta = self.bc[measure] - gl[measure]
            if delta:
                parts.append(f"{measure} {delta:+,}")
        return "; ".join(parts)

    @property
    def status(self) -> str:
        return max((s for s, n in self.counts.items() if n), key=STATUS_RANK.__getitem__, default=MATCHED)

    def add(self, other: ReconRow) -> None:
        self.orders += other.orders
        self.refunds += other.refunds
        for k in MEASURES:
            self.bc[k] += other.bc[k]
        for k in GL_COLUMNS:
            self.gl[k] += other.gl[k]
        for k in STATUS_RANK:
            self.counts[k] += other.counts[k]

    def quantized(self) -> ReconRow:
        q = lambda v: quantize(v, self.currency or "USD")  # noqa: E731
        return dataclasses.replace(
            self,
            bc={k: q(v) for k, v in self.bc.items()},
            gl={k: q(v) for k, v in self.gl.items()},
        )


@dataclasses.dataclass
class Reconciliation:
    period: Period
    rows: list[ReconRow]
    totals: list[ReconRow]  # one per currency (day and channel None)


def _gl_columns(lines, key: str) -> dict:
    """{group key: {column: natural amount}}: the lines summed per group with one conditional sum per column, so
    the database returns one row per order (or refund), not one per order and role."""
    sums = {}
    for column in GL_COLUMNS:
        roles = [role for role, col in GL_ROLE_COLUMN.items() if col == column]
        if not roles:
            continue
        debit_side = NATURAL_SIDE.get(roles[0], "D") == "D"
        amount = F("debit") - F("credit") if debit_side else F("credit") - F("debit")
        sums[f"gl_{column}"] = Sum(amount, filter=Q(role__in=roles))
    out: dict = {}
    for row in lines.values(key).annotate(**sums).order_by():
        out[row[key]] = {column[3:]: _dec(value) for column, value in row.items() if column != key}
    return out


def _row_status(statuses: set[str], bc: dict, gl: dict, measures) -> str:
    if statuses & set(FAILED):
        return FAILED_STATUS
    if statuses & set(NOT_POSTED):
        return NOT_POSTED_YET
    if any(bc[m] != gl[m] for m in measures):
        return DIFFERS
    return MATCHED


def reconcile(tenant, period: Period, *, channel_id: int | None = None) -> Reconciliation:
    """BigCommerce's figures vs the GL per day, channel and currency, with a status per row and period totals."""
    bases = Posting.objects.filter(
        tenant=tenant, kind=K.ORDER, gl_date__gte=period.start, gl_date__lte=period.end
    ).exclude(status=S.WAITING)
    order_ids = bases.values("order_id")

    snapshot = {f"s_{k}": KT(f"snapshot__{k}") for k in _SNAPSHOT_KEYS}
    part = (
        Posting.objects.filter(tenant=tenant, kind__in=ORDER_PART, order_id__in=order_ids)
        .annotate(**snapshot)
        .values(
            "id",
            "order_id",
            "kind",
            "gl_date",
            "status",
            "summary__status",
            "channel_id",
            "currency",
            *snapshot,
        )
        .order_by("order_id", "id")
    )
    by_order: dict[int, list[dict]] = defaultdict(list)
    for row in part:
        by_order[row["order_id"]].append(_as_posted(row))

    gl_orders = _gl_columns(
        PostingLine.objects.filter(
            POSTED_LINE,
            posting__tenant=tenant,
            posting__kind__in=ORDER_PART,
            posting__order_id__in=order_ids,
        ),
        "posting__order_id",
    )

    rows: dict[tuple, ReconRow] = {}

    def row_for(day, channel, currency) -> ReconRow:
        key = (day, channel, currency)
        if key not in rows:
            rows[key] = ReconRow(day=day, channel_id=channel, currency=currency)
        return rows[key]

    for order_id, entries in by_order.items():
        base = next((e for e in entries if e["kind"] == K.ORDER), None)  # the order entry: its day counts
        if base is None:
            continue
        live = [e for e in entries if e["status"] != S.SKIPPED] or entries
        latest = live[-1]
        if channel_id is not None and latest["channel_id"] != channel_id:
            continue
        bc = _bc_order_figures(latest)
        gl = gl_orders.get(order_id) or dict.fromkeys(GL_COLUMNS, ZERO)
        statuses = {e["status"] for e in entries if e["status"] != S.SKIPPED}
        if not statuses:
            continue  # void before anything was posted, or nothing to post: nothing to reconcile
        currency = latest["currency"] or "USD"
        bc = {k: quantize(v, currency) for k, v in bc.items()}
        status = _row_status(statuses, bc, gl, ("sales", "tax", "shipping"))
        row = row_for(base["gl_date"], latest["channel_id"], currency)
        row.orders += 1
        for k, v in bc.items():
            row.bc[k] += v
        for k, v in gl.items():
            row.gl[k] += v
        row.counts[status] += 1
        if status != MATCHED:
            row.problem_orders.append(order_id)

    refunds = Posting.objects.filter(
        tenant=tenant, kind=K.REFUND, gl_date__gte=period.start, gl_date__lte=period.end
    ).exclude(status=S.SKIPPED)
    if channel_id is not None:
        refunds = refunds.filter(channel_id=channel_id)
    gl_refunds = _gl_columns(PostingLine.objects.filter(POSTED_LINE, posting__in=refunds), "posting_id")
    for r in map(
        _as_posted,
        refunds.annotate(r_total=KT("snapshot__refund__total_amount")).values(
            "id", "order_id", "status", "summary__status", "channel_id", "currency", "gl_date", "r_total"
        ),
    ):
        currency = r["currency"] or "USD"
        amount = quantize(_dec(r["r_total"]), currency)
        posted = -gl_refunds.get(r["id"], {}).get(
            "sales", ZERO
        )  # the storno receivable, as a positive amount
        status = _row_status({r["status"]}, {"refunds": amount}, {"refunds": posted}, ("refunds",))
        if r["status"] == S.WAITING:
            status = NOT_POSTED_YET
        row = row_for(r["gl_date"], r["channel_id"], currency)
        row.refunds += 1
        row.bc["refunds"] += amount
        row.gl["refunds"] += posted
        row.counts[status] += 1
        if status != MATCHED and r["order_id"] not in row.problem_orders:
            row.problem_orders.append(r["order_id"])

    ordered = [rows[k].quantized() for k in sorted(rows, key=lambda k: (k[0], k[1] or 0, k[2]))]
    totals: dict[str, ReconRow] = {}
    for row in ordered:
        total = totals.setdefault(row.currency, ReconRow(day=None, channel_id=None, currency=row.currency))
        total.add(row)
    return Reconciliation(period=period, rows=ordered, totals=[totals[c] for c in sorted(totals)])


# --- Trial balance -------------------------------------------------------------------------------------------------

ACCOUNT_FIELDS = {
    "receivable_account": "Receivable / payment clearing",
    "revenue_account": "Product revenue",
    "shipping_account": "Shipping revenue",
    "handling_account": "Handling revenue",
    "wrapping_account": "Gift wrapping revenue",
    "fee_account": "Fees",
    "tax_account": "Sales tax payable",
    "discount_account": "Discounts",
    "cogs_account": "Cost of goods sold",
    "inventory_account": "Inventory",
}


def account_names(tenant) -> dict[str, str]:
    """What the tenant's own setup says each account is for (until X3's chart of accounts gives real names)."""
    names: dict[str, set[str]] = defaultdict(set)
    for mapping in ChannelMapping.objects.filter(tenant=tenant).values(*ACCOUNT_FIELDS):
        for field, label in ACCOUNT_FIELDS.items():
            if mapping[field]:
                names[mapping[field]].add(label)
    if tenant.rounding_account:
        names[tenant.rounding_account].add("Rounding differences")
    if tenant.refund_account:
        names[tenant.refund_account].add("Refunds")
    return {account: " / ".join(sorted(labels)) for account, labels in names.items()}


@dataclasses.dataclass
class TrialBalanceRow:
    channel_id: int | None
    account: str
    name: str
    currency: str
    roles: list[str]
    debit: Decimal
    credit: Decimal
    lines: int

    @property
    def balance(self) -> Decimal:
        return self.debit - self.credit


@dataclasses.dataclass
class TrialBalance:
    period: Period
    rows: list[TrialBalanceRow]
    totals: list[TrialBalanceRow]  # one per currency


def trial_balance(tenant, period: Period, *, channel_id: int | None = None) -> TrialBalance:
    """Debits and credits of the posted lines per channel, account and currency over the period's GL dates."""
    lines = PostingLine.objects.filter(
        posting__tenant=tenant,
        posting__status=S.POSTED,
        posting__gl_date__gte=period.start,
        posting__gl_date__lte=period.end,
    )
    if channel_id is not None:
        lines = lines.filter(posting__channel_id=channel_id)
    grouped = (
        lines.values("posting__channel_id", "account", "posting__currency", "role")
        .annotate(d=Sum("debit"), c=Sum("credit"), n=Count("id"))
        .order_by()
    )
    names = account_names(tenant)
    rows: dict[tuple, TrialBalanceRow] = {}
    for g in grouped:
        key = (g["posting__channel_id"], g["account"], g["posting__currency"] or "USD")
        row = rows.setdefault(
            key, TrialBalanceRow(key[0], key[1], names.get(key[1], ""), key[2], [], ZERO, ZERO, 0)
        )
        row.debit += _dec(g["d"])
        row.credit += _dec(g["c"])
        row.lines += g["n"]
        if g["role"] not in row.roles:
            row.roles.append(g["role"])
    ordered = []
    totals: dict[str, TrialBalanceRow] = {}
    for key in sorted(rows, key=lambda k: (k[0] or 0, k[1], k[2])):
        row = rows[key]
        row.debit, row.credit = quantize(row.debit, row.currency), quantize(row.credit, row.currency)
        row.roles.sort()
        ordered.append(row)
        total = totals.setdefault(
            row.currency, TrialBalanceRow(None, "", "Total", row.currency, [], ZERO, ZERO, 0)
        )
        total.debit += row.debit
        total.credit += row.credit
        total.lines += row.lines
    return TrialBalance(period=period, rows=ordered, totals=[totals[c] for c in sorted(totals)])


# --- Dashboard -----------------------------------------------------------------------------------------------------

ATTENTION = (S.NEEDS_ATTENTION, S.NEEDS_MAPPING, S.NEEDS_REAUTH, S.AWAITING_APPROVAL, S.HELD, S.UNKNOWN)
UNFINISHED = (*NOT_POSTED, *FAILED)


@dataclasses.dataclass
class TenantSummary:
    tenant: Tenant
    posted: list[dict]  # {channel_id, currency, today, month, today_count, month_count}
    attention: dict[str, int]
    last_webhook: object
    oldest_unfinished: object


def dashboard(tenants, today: date) -> list[TenantSummary]:
    """Per tenant: posted totals today and this month by channel, what needs a person, last webhook, oldest work."""
    tenants = list(tenants)
    ids = [t.pk for t in tenants]
    month_start = today.replace(day=1)
    posted = (
        Posting.objects.filter(
            tenant_id__in=ids, status=S.POSTED, gl_date__gte=month_start, gl_date__lte=today
        )
        .values("tenant_id", "channel_id", "currency")
        .annotate(
            month=Sum("total"),
            month_count=Count("id"),
            today=Sum("total", filter=Q(gl_date=today)),
            today_count=Count("id", filter=Q(gl_date=today)),
        )
        .order_by("tenant_id", "channel_id", "currency")
    )
    by_tenant: dict[int, list[dict]] = defaultdict(list)
    for row in posted:
        cur = row["currency"] or "USD"
        by_tenant[row["tenant_id"]].append(
            {
                "channel_id": row["channel_id"],
                "currency": cur,
                "today": quantize(_dec(row["today"]), cur),
                "today_count": row["today_count"],
                "month": quantize(_dec(row["month"]), cur),
                "month_count": row["month_count"],
            }
        )
    attention: dict[int, dict[str, int]] = defaultdict(lambda: dict.fromkeys(ATTENTION, 0))
    for need in (
        Posting.objects.filter(tenant_id__in=ids, status__in=ATTENTION)
        .values("tenant_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        attention[need["tenant_id"]][need["status"]] = need["n"]
    last_webhook = dict(
        WebhookEvent.objects.filter(tenant_id__in=ids)
        .values("tenant_id")
        .annotate(last=Max("received_at"))
        .values_list("tenant_id", "last")
    )
    oldest = dict(
        Posting.objects.filter(tenant_id__in=ids, status__in=UNFINISHED)
        .values("tenant_id")
        .annotate(first=Min("created_at"))
        .values_list("tenant_id", "first")
    )
    return [
        TenantSummary(
            tenant=t,
            posted=by_tenant.get(t.pk, []),
            attention=attention[t.pk],
            last_webhook=last_webhook.get(t.pk),
            oldest_unfinished=oldest.get(t.pk),
        )
        for t in tenants
    ]


def revenue_by_day(tenant, start: date, end: date) -> dict[tuple[int | None, str], dict[date, Decimal]]:
    """Posted product revenue (revenue, wrapping and fee lines, net of refunds) per channel and currency per day."""
    rows = (
        PostingLine.objects.filter(
            posting__tenant=tenant,
            posting__status=S.POSTED,
            posting__gl_date__gte=start,
            posting__gl_date__lte=end,
            role__in=("revenue", "wrapping", "fee"),
        )
        .values("posting__channel_id", "posting__currency", "posting__gl_date")
        .annotate(d=Sum("debit"), c=Sum("credit"))
        .order_by()
    )
    series: dict[tuple, dict[date, Decimal]] = defaultdict(dict)
    for r in rows:
        if r["posting__gl_date"] is None:
            continue
        cur = r["posting__currency"] or "USD"
        series[(r["posting__channel_id"], cur)][r["posting__gl_date"]] = quantize(
            _dec(r["c"]) - _dec(r["d"]), cur
        )
    return dict(series)
