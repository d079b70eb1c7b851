"""Summaries an accountant reconciles against: postings by status, and what the posted entries moved per account."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.db.models import Count, Q, Sum

from .journal import quantize
from .models import Posting, PostingLine


@dataclass(frozen=True)
class AccountMovement:
    account: str
    currency: str
    debit: Decimal
    credit: Decimal

    @property
    def net(self) -> Decimal:
        return self.debit - self.credit


def status_counts(postings) -> dict[str, int]:
    return dict(postings.values_list("status").annotate(n=Count("id")).order_by("status"))


def account_movements(
    postings, *, gl_from: date | None = None, gl_to: date | None = None
) -> Iterable[AccountMovement]:
    """Debits and credits per account and currency of the posted entries, optionally within a GL date range."""
    lines = PostingLine.objects.filter(posting__in=postings.filter(status=Posting.Status.POSTED))
    if gl_from:
        lines = lines.filter(posting__gl_date__gte=gl_from)
    if gl_to:
        lines = lines.filter(posting__gl_date__lte=gl_to)
    rows = (
        lines.values("account", "posting__currency")
        .annotate(debit=Sum("debit"), credit=Sum("credit"))
        .order_by("account", "posting__currency")
    )
    for row in rows:
        yield AccountMovement(
            account=row["account"],
            currency=row["posting__currency"],
            debit=quantize(Decimal(str(row["debit"] or 0)), row["posting__currency"]),
            credit=quantize(Decimal(str(row["credit"] or 0)), row["posting__currency"]),
        )


def needing_attention(postings):
    return postings.filter(
        Q(
            status__in=(
                Posting.Status.NEEDS_ATTENTION,
                Posting.Status.NEEDS_MAPPING,
                Posting.Status.NEEDS_REAUTH,
            )
        )
        | Q(flagged=True)
    ).order_by("created_at")
