"""The reconciliation as it was computed before its figures were stored on the entries (from the snapshots' JSON
and the lines, order by order in Python): the reference the stored-figures version must equal row by row."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import F, Q, Sum
from django.db.models.fields.json import KT

from accounting.figures import (
    _SNAPSHOT_KEYS,
    DIFFERS,
    FAILED,
    FAILED_STATUS,
    GL_COLUMNS,
    GL_ROLE_COLUMN,
    MATCHED,
    NATURAL_SIDE,
    NOT_POSTED,
    NOT_POSTED_YET,
    ORDER_PART,
    POSTED_LINE,
    ZERO,
    Period,
    Reconciliation,
    ReconRow,
    _as_posted,
    _bc_order_figures,
    _dec,
    quantize,
)
from accounting.models import Posting, PostingLine

S = Posting.Status
K = Posting.Kind
PLACES = Decimal("0.0001")


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
        # Read at the lines' 4 places, as PostgreSQL returns them: SQLite sums the decimal columns as floats and
        # Django does not round a sum of an expression, so 7.2 - 4.8 - 2.4 + 2.4 came back as 2.4000000000000004
        # and a matched order showed as "differs" (the former code did so on SQLite; PostgreSQL sums exactly).
        out[row[key]] = {
            column[3:]: _dec(value).quantize(PLACES) for column, value in row.items() if column != key
        }
    return out


def _row_status(statuses: set[str], bc: dict, gl: dict, measures) -> str:
    if statuses & set(FAILED):
        return FAILED_STATUS
    if statuses & set(NOT_POSTED):
        return NOT_POSTED_YET
    if any(bc[m] != gl[m] for m in measures):
        return DIFFERS
    return MATCHED


def old_reconcile(tenant, period: Period, *, channel_id: int | None = None) -> Reconciliation:
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


def assert_same(new: Reconciliation, old: Reconciliation) -> None:
    """Every row and total equal, figure by figure, in the same order."""

    def plain(row: ReconRow) -> tuple:
        return (
            row.day,
            row.channel_id,
            row.currency,
            row.orders,
            row.refunds,
            {k: (v, str(v)) for k, v in row.bc.items()},  # same value and same places
            {k: (v, str(v)) for k, v in row.gl.items()},
            row.counts,
            row.problem_orders,
            row.status,
            row.notes,
        )

    for mine, theirs in zip(new.rows, old.rows, strict=False):
        assert plain(mine) == plain(theirs), (mine, theirs)
    assert len(new.rows) == len(old.rows)
    assert [plain(r) for r in new.totals] == [plain(r) for r in old.totals]
