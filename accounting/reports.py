"""Summaries an accountant reconciles against: postings by status and kind, and what the posted entries moved per
account. The ``report`` and ``replay_orders`` commands print them; every figure can be limited to a GL date range.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Count, Q, Sum

from .chart import account_names as chart_names
from .figures import account_names as mapping_names
from .journal import quantize
from .models import Posting, PostingLine

S = Posting.Status
K = Posting.Kind

# Entry kinds in the order the summaries list them, with their plural label.
KINDS: tuple[tuple[str, str], ...] = (
    (K.ORDER, "orders"),
    (K.REFUND, "refunds"),
    (K.ADJUSTMENT, "adjustments"),
    (K.REVERSAL, "reversals"),
)
FAILED = (S.NEEDS_ATTENTION, S.NEEDS_MAPPING, S.NEEDS_REAUTH)


@dataclass(frozen=True)
class AccountMovement:
    account: str
    currency: str
    debit: Decimal
    credit: Decimal
    name: str = ""

    @property
    def net(self) -> Decimal:
        return self.debit - self.credit


@dataclass
class KindCounts:
    """Entries of one kind by where they stand: posted (``posted_now`` of them by the run that asks), failed
    (parked until a person acts), skipped (nothing to post, e.g. a cancelled order never posted), not posted yet."""

    kind: str
    label: str
    posted: int = 0
    posted_now: int = 0
    failed: int = 0
    skipped: int = 0
    waiting: int = 0

    @property
    def total(self) -> int:
        return self.posted + self.failed + self.skipped + self.waiting

    def add(self, other: KindCounts) -> None:
        self.posted += other.posted
        self.posted_now += other.posted_now
        self.failed += other.failed
        self.skipped += other.skipped
        self.waiting += other.waiting


def in_gl_range(postings, gl_from: date | None = None, gl_to: date | None = None):
    """The postings whose GL date lies in [gl_from, gl_to] (either bound optional)."""
    if gl_from:
        postings = postings.filter(gl_date__gte=gl_from)
    if gl_to:
        postings = postings.filter(gl_date__lte=gl_to)
    return postings


def status_counts(postings) -> dict[str, int]:
    return dict(postings.values_list("status").annotate(n=Count("id")).order_by("status"))


def kind_counts(postings, *, posted_since: datetime | None = None) -> list[KindCounts]:
    """One row per kind (every kind, zeros included), then the total row; one query."""
    posted_now = Q(status=S.POSTED, posted_at__gte=posted_since) if posted_since else Q(pk__in=[])
    rows = {kind: KindCounts(kind, label) for kind, label in KINDS}
    for r in (
        postings.values("kind")
        .annotate(
            posted=Count("id", filter=Q(status=S.POSTED)),
            posted_now=Count("id", filter=posted_now),
            failed=Count("id", filter=Q(status__in=FAILED)),
            skipped=Count("id", filter=Q(status=S.SKIPPED)),
            waiting=Count("id", filter=~Q(status__in=(S.POSTED, S.SKIPPED, *FAILED))),
        )
        .order_by()
    ):
        rows.setdefault(r["kind"], KindCounts(r["kind"], r["kind"])).add(
            KindCounts(r["kind"], "", r["posted"], r["posted_now"], r["failed"], r["skipped"], r["waiting"])
        )
    total = KindCounts("total", "total")
    for row in rows.values():
        total.add(row)
    return [*rows.values(), total]


def kind_table(counts: Sequence[KindCounts], *, posted_now: bool = False) -> list[str]:
    """The counts as text lines, for a terminal."""
    heads = ["posted now", "already posted"] if posted_now else ["posted"]
    heads += ["failed", "skipped", "not posted yet"]
    lines = [f"  {'entries':<12}" + "".join(f" {h:>14}" for h in heads)]
    for c in counts:
        values = [c.posted_now, c.posted - c.posted_now] if posted_now else [c.posted]
        values += [c.failed, c.skipped, c.waiting]
        lines.append(f"  {c.label:<12}" + "".join(f" {v:>14}" for v in values))
    return lines


def account_labels(tenant) -> dict[str, str]:
    """code -> name: X3's chart of accounts when it is loaded, else what the tenant's mappings use it for."""
    return {**mapping_names(tenant), **{c: n for c, n in chart_names(tenant.pk).items() if n}}


def account_movements(
    postings, *, gl_from: date | None = None, gl_to: date | None = None, names: dict[str, str] | None = None
) -> Iterable[AccountMovement]:
    """Debits and credits per account and currency of the posted entries, optionally within a GL date range,
    at the currency's precision."""
    lines = PostingLine.objects.filter(
        posting__in=in_gl_range(postings, gl_from, gl_to).filter(status=S.POSTED)
    )
    rows = (
        lines.values("account", "posting__currency")
        .annotate(debit=Sum("debit"), credit=Sum("credit"))
        .order_by("account", "posting__currency")
    )
    for row in rows:
        currency = row["posting__currency"] or "USD"
        yield AccountMovement(
            account=row["account"],
            currency=currency,
            debit=quantize(Decimal(str(row["debit"] or 0)), currency),
            credit=quantize(Decimal(str(row["credit"] or 0)), currency),
            name=(names or {}).get(row["account"], ""),
        )


def needing_attention(postings):
    return postings.filter(Q(status__in=FAILED) | Q(flagged=True)).order_by("created_at")
