from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_date

from accounting.models import Posting
from accounting.reports import account_movements, needing_attention, status_counts
from connector.models import Tenant


class Command(BaseCommand):
    help = (
        "Summarise postings: counts by status, posted debits/credits per account, and what needs attention."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", help="Tenant slug (default: all tenants)")
        parser.add_argument("--from", dest="gl_from", help="GL date from (YYYY-MM-DD)")
        parser.add_argument("--to", dest="gl_to", help="GL date to (YYYY-MM-DD)")

    def handle(self, *args, tenant=None, gl_from=None, gl_to=None, **options) -> None:
        postings = Posting.objects.all()
        if tenant:
            t = Tenant.objects.filter(slug=tenant).first()
            if t is None:
                raise CommandError(f"No tenant {tenant!r}")
            postings = postings.filter(tenant=t)
        dates = {}
        for name, value in (("gl_from", gl_from), ("gl_to", gl_to)):
            if value:
                dates[name] = parse_date(value)
                if dates[name] is None:
                    raise CommandError(f"Not a date: {value!r}")
        w = self.stdout.write
        w("Postings by status")
        for status, count in status_counts(postings).items():
            w(f"  {Posting.Status(status).label:<32} {count:>6}")
        w("\nPosted entries by account")
        w(f"  {'account':<12} {'cur':<4} {'debit':>14} {'credit':>14} {'net':>14}")
        for m in account_movements(postings, **dates):
            w(f"  {m.account:<12} {m.currency:<4} {m.debit:>14} {m.credit:>14} {m.net:>14}")
        attention = list(needing_attention(postings)[:50])
        if attention:
            w("\nNeeds a look")
            for p in attention:
                reason = p.last_error or p.flag_reason
                w(f"  {p.idempotency_key:<24} {p.get_status_display():<28} {reason[:80]}")
