"""Build postings with lines straight in the database, as planning and delivery leave them (for workspace tests)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from accounting.figures import stored_figures
from accounting.models import Posting, PostingLine

S = Posting.Status
D = Decimal


def order_snapshot(
    order_id, *, channel_id, total, tax, shipping, currency="USD", status_id=11, **extra
) -> dict:
    ship_tax = D("0")
    return {
        "id": order_id,
        "channel_id": channel_id,
        "status_id": status_id,
        "currency_code": currency,
        "is_tax_inclusive_pricing": False,
        "is_deleted": False,
        "total_inc_tax": str(D(total)),
        "total_tax": str(D(tax)),
        "shipping_cost_ex_tax": str(D(shipping)),
        "shipping_cost_inc_tax": str(D(shipping) + ship_tax),
        "shipping_cost_tax": str(ship_tax),
        "handling_cost_ex_tax": "0.0000",
        "handling_cost_inc_tax": "0.0000",
        "handling_cost_tax": "0.0000",
        **extra,
    }


def add_posting(
    tenant,
    order_id: int,
    *,
    day: date,
    channel_id: int = 1,
    total="100.00",
    tax="8.00",
    shipping="10.00",
    cogs="0",
    status=S.POSTED,
    currency="USD",
    kind=Posting.Kind.ORDER,
    key=None,
    parent=None,
    refund_id=None,
    snapshot=None,
    gl=None,
    last_error="",
    flagged=False,
) -> Posting:
    """One posting; its lines follow the order figures unless ``gl`` overrides them ((role, account, dr, cr), …)."""
    total, tax, shipping, cogs = D(total), D(tax), D(shipping), D(cogs)
    c = str(channel_id)
    if gl is None:
        gl = [
            ("receivable", f"41{c}000", total, 0),
            ("revenue", f"70{c}000", 0, total - tax - shipping),
            ("shipping", f"70{c}800", 0, shipping),
            ("tax", f"44{c}570", 0, tax),
        ]
        if cogs:
            gl += [("cogs", f"60{c}000", cogs, 0), ("inventory", f"37{c}000", 0, cogs)]
    if snapshot is None:
        snapshot = order_snapshot(
            order_id, channel_id=channel_id, total=total, tax=tax, shipping=shipping, currency=currency
        )
    posting = Posting.objects.create(
        tenant=tenant,
        idempotency_key=key or f"{kind}:{order_id}" + (f":{refund_id}" if refund_id else ""),
        kind=kind,
        order_id=order_id,
        refund_id=refund_id,
        parent=parent,
        status=S.PENDING,
        channel_id=channel_id,
        currency=currency,
        gl_date=day,
        total=total,
        snapshot=snapshot,
        last_error=last_error,
        flagged=flagged,
        flag_reason="Components differ from the order total by 0.09 USD" if flagged else "",
        x3_document_number=f"ODG-{order_id}" if status == S.POSTED else "",
    )
    lines = []
    if status in (S.POSTED, S.PENDING, S.POSTING, S.RETRY, S.UNKNOWN, S.NEEDS_ATTENTION, S.NEEDS_REAUTH):
        lines = PostingLine.objects.bulk_create(
            PostingLine(posting=posting, line_no=i, role=role, account=acct, debit=D(dr), credit=D(cr))
            for i, (role, acct, dr, cr) in enumerate(gl, start=1)
        )
    # The reconciliation's figures, as planning stores them with the entry and its lines.
    stored = stored_figures(kind, currency, snapshot, lines)
    Posting.objects.filter(pk=posting.pk).update(status=status, **stored)
    for field, value in stored.items():
        setattr(posting, field, value)
    posting.status = status
    return posting


def add_refund(
    tenant, parent: Posting, refund_id: int, *, day: date, amount="20.00", tax="0", status=S.POSTED
):
    amount, tax = D(amount), D(tax)
    c = str(parent.channel_id)
    snapshot = {
        "order": parent.snapshot,
        "refund": {
            "id": refund_id,
            "order_id": parent.order_id,
            "total_amount": str(amount),
            "total_tax": str(tax),
        },
    }
    gl = [
        ("receivable", f"41{c}000", -amount, 0),
        ("revenue", f"70{c}000", 0, -(amount - tax)),
        ("tax", f"44{c}570", 0, -tax),
    ]
    return add_posting(
        tenant,
        parent.order_id,
        day=day,
        channel_id=parent.channel_id,
        total=-amount,
        kind=Posting.Kind.REFUND,
        refund_id=refund_id,
        parent=parent,
        snapshot=snapshot,
        gl=[g for g in gl if g[2] or g[3]],
        status=status,
    )


def november(tenant) -> None:
    """November 2026: two matched orders on the 3rd (channel 1), one on channel 2 whose GL tax line differs, a
    refund on the 9th, an order X3 refused (needs attention) and one still pending on the 10th; one in December."""
    o1 = add_posting(
        tenant, 101, day=date(2026, 11, 3), total="108.00", tax="8.00", shipping="10.00", cogs="40"
    )
    add_posting(tenant, 102, day=date(2026, 11, 3), total="54.00", tax="4.00", shipping="5.00")
    add_posting(
        tenant,
        201,
        day=date(2026, 11, 3),
        channel_id=2,
        total="100.00",
        tax="8.00",
        shipping="0",
        gl=[
            ("receivable", "412000", D("100.00"), 0),
            ("revenue", "702000", 0, D("93.00")),
            ("tax", "442570", 0, D("7.00")),
        ],
    )
    add_refund(tenant, o1, 5001, day=date(2026, 11, 9), amount="21.60", tax="1.60")
    refused = add_posting(
        tenant,
        103,
        day=date(2026, 11, 10),
        total="30.00",
        status=S.NEEDS_ATTENTION,
        last_error="GACCENTRY: the period 11/2026 is closed for site FR011",
    )
    Posting.objects.filter(pk=refused.pk).update(attempts=1)
    add_posting(tenant, 104, day=date(2026, 11, 10), total="20.00", status=S.PENDING)
    add_posting(tenant, 105, day=date(2026, 12, 1), total="999.00")
