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
from collections.abc import Iterable
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import connection
from django.db.models import Count, Max, Min, Q, Sum

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
        number = Decimal(str(value))
    except InvalidOperation:
        return ZERO
    return number if number.is_finite() else ZERO


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


# The figures stored on each entry (accounting.models.Posting, docs/decisions/0030-reconciliation-figures-stored.md).
BC_FIELDS = {"sales": "bc_sales", "tax": "bc_tax", "shipping": "bc_shipping"}
GL_FIELDS = {column: f"gl_{column}" for column in GL_COLUMNS if column in GL_ROLE_COLUMN.values()}
STORED_FIELDS = (*BC_FIELDS.values(), "bc_refund", *GL_FIELDS.values())
_DEBIT_COLUMN = {  # a column's natural side is that of its first role, as the lines are summed
    column: NATURAL_SIDE.get(next(r for r, c in GL_ROLE_COLUMN.items() if c == column), "D") == "D"
    for column in GL_FIELDS
}


def stored_figures(kind: str, currency: str, snapshot: Any, lines: Iterable[Any]) -> dict[str, Decimal]:
    """The reconciliation's figures of one entry, by ``Posting`` field: BigCommerce's (an order part entry: its
    order snapshot's sales, tax and shipping; a refund: the refund's total), quantized to the currency, and the sums
    of its ``lines`` (anything with role, debit and credit) per GL column, on the column's natural side."""
    out = dict.fromkeys(STORED_FIELDS, ZERO)
    snapshot = snapshot if isinstance(snapshot, dict) else {}
    currency = currency or "USD"
    if kind in ORDER_PART:
        bc = _bc_order_figures({f"s_{k}": _scalar(snapshot.get(k)) for k in _SNAPSHOT_KEYS})
        for measure, field in BC_FIELDS.items():
            out[field] = quantize(bc[measure], currency)
    elif kind == K.REFUND:
        refund = snapshot.get("refund")
        total = refund.get("total_amount") if isinstance(refund, dict) else None
        out["bc_refund"] = quantize(_dec(_scalar(total)), currency)
    for line in lines:
        column = GL_ROLE_COLUMN.get(line.role)
        if column is None:
            continue
        amount = _dec(line.debit) - _dec(line.credit)
        out[GL_FIELDS[column]] += amount if _DEBIT_COLUMN[column] else -amount
    return out


def _scalar(value: Any) -> Any:
    """A snapshot value as the database's text extraction reads it (a nested object or list is no number)."""
    return None if isinstance(value, dict | list) else value


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


def _money(value) -> Decimal:
    """A sum from the database: Decimal on PostgreSQL; SQLite sums its decimal columns as floats, so it is read
    back at the stored precision (4 places; the sums of a month are far from a float's 15 significant digits)."""
    if value is None:
        return ZERO
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(_STORED_PLACES)
    return _dec(value)


_STORED_PLACES = Decimal("0.0001")  # accounting.models.MONEY: 4 decimal places


def _params(tenant, period: Period, channel_id: int | None) -> dict[str, Any]:
    """The named parameters of the reconciliation's statements: every value, no value in the SQL text."""
    params: dict[str, Any] = {
        "tenant": tenant.pk,
        "start": period.start,
        "end": period.end,
        "channel": channel_id,
        "usd": "USD",
        **{f"k_{k}": k.value for k in K},
        **{f"s_{s}": s.value for s in S},
        **{f"r_{i}": r for i, r in enumerate(STATUS_RANK)},
    }
    return params


def _one_of(column: str, statuses) -> str:
    return f"{column} IN ({', '.join(f'%(s_{s})s' for s in statuses)})"


def _rank_sql(failed: str, open_: str, differs: str) -> str:
    """The row status of an order or refund, as ``_row_status`` says it, from SQL conditions."""
    r = {name: f"%(r_{i})s" for i, name in enumerate(STATUS_RANK)}
    return (
        f"CASE WHEN {failed} THEN {r[FAILED_STATUS]} WHEN {open_} THEN {r[NOT_POSTED_YET]} "
        f"WHEN {differs} THEN {r[DIFFERS]} ELSE {r[MATCHED]} END"
    )


def _with_status(alias: str, columns: str, where: str) -> str:
    """The entries ``where`` says with ``columns`` and ``st``, their status, an entry in a summary having its
    summary's (not built yet: pending), as ``_as_posted``. Only entries in a summary read their summary's row."""
    table = connection.ops.quote_name(Posting._meta.db_table)
    return (
        f"SELECT {columns}, {alias}.status AS st FROM {table} {alias} "  # noqa: S608 - names from the models
        f"WHERE {where} AND {alias}.status <> %(s_in_summary)s "
        f"UNION ALL SELECT {columns}, COALESCE(summary.status, %(s_pending)s) AS st "
        f"FROM {table} {alias} LEFT JOIN {table} summary ON summary.id = {alias}.summary_id "
        f"WHERE {where} AND {alias}.status = %(s_in_summary)s"
    )


def _order_sql(channel: bool) -> str:
    """Per day, channel, currency and row status: the orders' counts and figures, with one group per order that is
    not matched (its id in ``problem``). One statement over the entries' stored figures: no lines, no JSON.

    Most orders have one entry, their order entry: it is at once the entry whose day counts, the latest one and
    the only one whose status and GL count, so those orders are summed straight from their rows. Orders with
    adjustments or reversals (the entries planning links to their order entry) are first summed per order."""
    table = connection.ops.quote_name(Posting._meta.db_table)
    gl, bc = GL_FIELDS.values(), BC_FIELDS.values()
    followers = (
        f"SELECT 1 FROM {table} c WHERE c.parent_id = b.id AND c.kind IN (%(k_adjustment)s, %(k_reversal)s)"  # noqa: S608, E501
    )
    bases = (
        "b.tenant_id = %(tenant)s AND b.kind = %(k_order)s AND b.gl_date >= %(start)s AND b.gl_date <= %(end)s "
        "AND b.status <> %(s_waiting)s"
    )
    differs = " OR ".join(
        f"ROUND({BC_FIELDS[m]} - {GL_FIELDS[m]}, 4) <> 0" for m in ("sales", "tax", "shipping")
    )
    single = _with_status(
        "b",
        ", ".join(
            ["b.order_id", "b.gl_date AS day", "b.channel_id", "b.currency", *(f"b.{f}" for f in (*bc, *gl))]
        ),
        f"{bases} {'AND b.channel_id = %(channel)s' if channel else ''} AND NOT EXISTS ({followers})",
    )
    part = _with_status(
        "p",
        ", ".join(["p.id", "p.order_id", "p.kind", "p.gl_date", *(f"p.{f}" for f in gl)]),
        "p.tenant_id = %(tenant)s AND p.kind IN (%(k_order)s, %(k_adjustment)s, %(k_reversal)s) "  # noqa: S608
        f"AND p.order_id IN (SELECT b.order_id FROM {table} b WHERE {bases} AND EXISTS ({followers}))",
    )
    return f"""
WITH single AS (
    {single}
), part AS (
    {part}
), per_order AS (
    SELECT order_id,
        MIN(CASE WHEN kind = %(k_order)s THEN gl_date END) AS day,
        MAX(CASE WHEN st <> %(s_skipped)s THEN id END) AS latest_id,
        SUM(CASE WHEN {_one_of("st", FAILED)} THEN 1 ELSE 0 END) AS n_failed,
        SUM(CASE WHEN {_one_of("st", NOT_POSTED)} THEN 1 ELSE 0 END) AS n_open,
        {", ".join(f"SUM(CASE WHEN st = %(s_posted)s THEN {f} ELSE 0 END) AS {f}" for f in gl)}
    FROM part GROUP BY order_id
), orders AS (
    SELECT order_id, day, channel_id, currency, {", ".join(bc)},
        {", ".join(f"CASE WHEN st = %(s_posted)s THEN {f} ELSE 0 END AS {f}" for f in gl)},
        CASE WHEN {_one_of("st", FAILED)} THEN 1 ELSE 0 END AS n_failed,
        CASE WHEN {_one_of("st", NOT_POSTED)} THEN 1 ELSE 0 END AS n_open
    FROM single WHERE st <> %(s_skipped)s
    UNION ALL
    SELECT o.order_id, o.day, l.channel_id, l.currency, {", ".join(f"l.{f}" for f in bc)},
        {", ".join(f"o.{f}" for f in gl)}, o.n_failed, o.n_open
    FROM per_order o JOIN {table} l ON l.id = o.latest_id
    {"WHERE l.channel_id = %(channel)s" if channel else ""}
), ranked AS (
    SELECT *, {_rank_sql("n_failed > 0", "n_open > 0", differs)} AS rs FROM orders
)
SELECT day, channel_id, COALESCE(NULLIF(currency, ''), %(usd)s), rs,
    CASE WHEN rs = %(r_0)s THEN NULL ELSE order_id END AS problem,
    COUNT(*), {", ".join(f"SUM({f})" for f in (*bc, *gl))}
FROM ranked
GROUP BY 1, 2, 3, 4, 5
"""  # noqa: S608 - table and field names from the models, values as parameters


def _refund_sql(channel: bool) -> str:
    """Per day, channel, currency and row status: the refunds' counts and figures, one group per refund that is
    not matched (its order, entry id and creation time for the page's order of problem orders)."""
    gl = GL_FIELDS["sales"]
    rank = _rank_sql(
        f"st <> %(s_waiting)s AND {_one_of('st', FAILED)}",
        f"(st = %(s_waiting)s OR {_one_of('st', NOT_POSTED)})",
        "ROUND(bc_refund - posted, 4) <> 0",
    )
    refunds = _with_status(
        "q",
        f"q.id, q.order_id, q.created_at, q.gl_date, q.channel_id, q.currency, q.bc_refund, q.{gl}",
        "q.tenant_id = %(tenant)s AND q.kind = %(k_refund)s AND q.gl_date >= %(start)s AND q.gl_date <= %(end)s "
        f"AND q.status <> %(s_skipped)s {'AND q.channel_id = %(channel)s' if channel else ''}",
    )
    return f"""
WITH refunds AS (
    {refunds}
), posted AS (
    SELECT *, CASE WHEN st = %(s_posted)s THEN -{gl} ELSE 0 END AS posted FROM refunds
), ranked AS (
    SELECT *, {rank} AS rs FROM posted
)
SELECT gl_date, channel_id, COALESCE(NULLIF(currency, ''), %(usd)s), rs,
    CASE WHEN rs = %(r_0)s THEN NULL ELSE id END AS problem,
    MAX(order_id), MAX(created_at), COUNT(*), SUM(bc_refund), SUM(posted)
FROM ranked
GROUP BY 1, 2, 3, 4, 5
"""  # noqa: S608 - table and field names from the models, values as parameters


def reconcile(tenant, period: Period, *, channel_id: int | None = None) -> Reconciliation:
    """BigCommerce's figures vs the GL per day, channel and currency, with a status per row and period totals.

    Two aggregate statements over the figures stored on each entry (``stored_figures``): the database returns
    one row per day, channel, currency and status, plus one per order or refund that is not matched."""
    channel = channel_id is not None
    params = _params(tenant, period, channel_id)
    rows: dict[tuple, ReconRow] = {}

    def row_for(day, channel_, currency) -> ReconRow:
        key = (day, channel_, currency)
        if key not in rows:
            rows[key] = ReconRow(day=day, channel_id=channel_, currency=currency)
        return rows[key]

    problems: dict[tuple, list[int]] = defaultdict(list)
    refund_problems = []
    with connection.cursor() as cursor:
        cursor.execute(_order_sql(channel), params)
        for day, ch, currency, rank, problem, n, *sums in cursor.fetchall():
            day = _day(day)
            row = row_for(day, ch, currency)
            row.orders += n
            row.counts[rank] += n
            for measure, value in zip(BC_FIELDS, sums[: len(BC_FIELDS)], strict=True):
                row.bc[measure] += _money(value)
            for column, value in zip(GL_FIELDS, sums[len(BC_FIELDS) :], strict=True):
                row.gl[column] += _money(value)
            if problem is not None:
                problems[(day, ch, currency)].append(problem)
        for key, ids in problems.items():
            rows[key].problem_orders.extend(sorted(ids))

        cursor.execute(_refund_sql(channel), params)
        for day, ch, currency, rank, problem, order_id, created, n, amount, posted in cursor.fetchall():
            day = _day(day)
            row = row_for(day, ch, currency)
            row.refunds += n
            row.counts[rank] += n
            row.bc["refunds"] += _money(amount)
            row.gl["refunds"] += _money(posted)
            if problem is not None:
                refund_problems.append((created, problem, (day, ch, currency), order_id))
    # As the page always listed them: a row's orders by id, then its refunds' orders, latest refund first.
    for _, _, key, order_id in sorted(refund_problems, reverse=True):
        if order_id not in rows[key].problem_orders:
            rows[key].problem_orders.append(order_id)

    ordered = [rows[k].quantized() for k in sorted(rows, key=lambda k: (k[0], k[1] or 0, k[2]))]
    totals: dict[str, ReconRow] = {}
    for row in ordered:
        total = totals.setdefault(row.currency, ReconRow(day=None, channel_id=None, currency=row.currency))
        total.add(row)
    return Reconciliation(period=period, rows=ordered, totals=[totals[c] for c in sorted(totals)])


def _day(value) -> date | None:
    """A date column from a raw statement (SQLite returns text)."""
    return date.fromisoformat(value) if isinstance(value, str) else value


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
