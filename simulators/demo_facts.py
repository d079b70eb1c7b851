"""What the demo's summary explains, read from the connector's own database (run inside it: ``manage.py shell``).

    uv run python manage.py shell -v 0 -c "from simulators.demo_facts import main; main('demo')"

prints one JSON object: the tenant's entries with their channel, attempts at X3 and amounts at the currency's
precision; account names (X3's chart of accounts when loaded, else what the mappings use them for); the webhook
deliveries BigCommerce made and the events the connector kept of them.
"""

from __future__ import annotations

import json

from django.db.models import Count, Sum

from accounting.journal import quantize
from accounting.models import ChannelMapping, Posting
from accounting.reports import account_labels
from connector.models import Tenant, WebhookEvent


def facts(slug: str) -> dict:
    tenant = Tenant.objects.get(slug=slug)
    events = WebhookEvent.objects.filter(tenant=tenant).aggregate(
        events=Count("id"), deliveries=Sum("deliveries")
    )
    postings = []
    rows = Posting.objects.filter(tenant=tenant).select_related("summary").prefetch_related("attempt_log")
    for p in rows.order_by("id"):
        currency = p.currency or "USD"
        postings.append(
            {
                "reference": p.reference,
                "label": p.entry_label,
                "kind": p.kind,
                "channel_id": p.channel_id,
                "status": p.status,
                "currency": currency,
                "total": str(quantize(p.total, currency)),
                "document": p.x3_document_number,
                "in_summary": p.summary.reference if p.summary_id else "",
                # posted by itself, or (daily summary mode) carried by a summary that is posted
                "posted": p.status == "posted" or bool(p.summary_id and p.summary.status == "posted"),
                "attempts": [
                    {"operation": a.operation, "status_code": a.status_code, "outcome": a.outcome}
                    for a in p.attempt_log.all()
                ],
            }
        )
    return {
        "channels": {
            str(m.channel_id): m.name or f"channel {m.channel_id}"
            for m in ChannelMapping.objects.filter(tenant=tenant)
        },
        "accounts": account_labels(tenant),
        "events": events["events"] or 0,
        "deliveries": events["deliveries"] or 0,
        "postings": postings,
        "summaries": [
            {
                "reference": s.reference,
                "label": s.entry_label,
                "day": s.gl_date.isoformat() if s.gl_date else "",
                "channel_id": s.channel_id,
                "currency": s.currency,
                "status": s.status,
                "document": s.x3_document_number,
                "total": str(quantize(s.total, s.currency or "USD")),
                "entries": s.n_entries,
                "orders": s.n_orders,
                "lines": s.n_lines,
            }
            for s in Posting.objects.filter(tenant=tenant, kind=Posting.Kind.SUMMARY)
            .annotate(
                n_entries=Count("members", distinct=True),
                n_orders=Count("members__order_id", distinct=True),
                n_lines=Count("lines", distinct=True),
            )
            .order_by("id")
        ],
    }


def main(slug: str) -> None:
    print(json.dumps(facts(slug)))  # noqa: T201 - the output of the shell command
