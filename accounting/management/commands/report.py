"""Postings by status and by kind, posted debits/credits per account, what needs a look: as text or CSV."""

from __future__ import annotations

import csv
from contextlib import nullcontext
from pathlib import Path

from accounting.journal import quantize
from accounting.models import Posting
from accounting.reports import (
    account_labels,
    account_movements,
    in_gl_range,
    kind_counts,
    kind_table,
    needing_attention,
    status_counts,
)
from connector.management.base import ConnectorCommand, check_range, parse_day, tenant_by_slug, usage_error

ATTENTION_LIMIT = 50
CSV_COLUMNS = ("section", "key", "label", "status", "currency", "count", "debit", "credit", "net")


class Command(ConnectorCommand):
    help = (
        "Summarise postings: counts by status and by kind (orders, refunds, adjustments, reversals), posted "
        "debits/credits per account, and what needs a look. --from/--to limit every figure to those GL dates."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", help="Tenant slug (default: all tenants)")
        parser.add_argument("--from", dest="gl_from", help="GL date from (YYYY-MM-DD), inclusive")
        parser.add_argument("--to", dest="gl_to", help="GL date to (YYYY-MM-DD), inclusive")
        parser.add_argument("--format", choices=("text", "csv"), default="text", help="text (default) or csv")
        parser.add_argument("--output", type=Path, help="write to this file instead of standard output")

    def handle(self, *args, tenant=None, gl_from=None, gl_to=None, output=None, **options) -> None:
        start = parse_day(gl_from, "--from") if gl_from else None
        end = parse_day(gl_to, "--to") if gl_to else None
        check_range(start, end, "--from", "--to")
        postings = Posting.objects.all()
        names: dict[str, str] = {}
        if tenant:
            t = tenant_by_slug(tenant)
            postings = postings.filter(tenant=t)
            names = account_labels(t)
        if output is not None and not output.parent.is_dir():
            raise usage_error(f"--output {output}: the folder {output.parent} does not exist")
        postings = in_gl_range(postings, start, end)
        figures = {
            "statuses": status_counts(postings),
            "kinds": kind_counts(postings),
            "accounts": list(account_movements(postings, names=names)),
            "attention": list(needing_attention(postings)[:ATTENTION_LIMIT]),
        }
        with open(output, "w", newline="", encoding="utf-8") if output else nullcontext() as file:
            if options["format"] == "csv":
                self._csv(file or self.stdout, **figures)
            else:
                self._text(file, start, end, **figures)
        if output is not None:
            self.stderr.write(f"Report written to {output}")

    def _text(self, file, start, end, *, statuses, kinds, accounts, attention) -> None:
        def w(line: str = "") -> None:
            if file is None:
                self.stdout.write(line)
            else:
                file.write(line + "\n")

        if start or end:
            w(f"GL dates {start or '…'} to {end or '…'}")
            w()
        w("Postings by status")
        for status, count in statuses.items():
            w(f"  {Posting.Status(status).label:<32} {count:>6}")
        w()
        w("Entries by kind")
        for line in kind_table(kinds):
            w(line)
        w()
        w("Posted entries by account")
        w(f"  {'account':<12} {'cur':<4} {'debit':>14} {'credit':>14} {'net':>14}  name")
        for m in accounts:
            w(
                f"  {m.account:<12} {m.currency:<4} {m.debit:>14} {m.credit:>14} {m.net:>14}  {m.name}".rstrip()
            )
        if attention:
            w()
            w("Needs a look")
            for p in attention:
                reason = p.last_error or p.flag_reason
                w(f"  {p.idempotency_key:<24} {p.get_status_display():<28} {reason[:80]}")

    def _csv(self, file, *, statuses, kinds, accounts, attention) -> None:
        writer = csv.writer(file)  # one write per row, each ending in a newline: fine through OutputWrapper
        writer.writerow(CSV_COLUMNS)
        for status, count in statuses.items():
            writer.writerow(["status", status, Posting.Status(status).label, status, "", count, "", "", ""])
        for c in kinds:
            for column, count in (
                ("posted", c.posted),
                ("failed", c.failed),
                ("skipped", c.skipped),
                ("not posted yet", c.waiting),
            ):
                writer.writerow(["entries", c.kind, c.label, column, "", count, "", "", ""])
        for m in accounts:
            writer.writerow(
                ["account", m.account, m.name, "posted", m.currency, "", m.debit, m.credit, m.net]
            )
        for p in attention:
            reason = (p.last_error or p.flag_reason).replace("\n", " ")
            writer.writerow(
                ["attention", p.idempotency_key, reason, p.status, p.currency, "", "", "", total(p)]
            )


def total(posting: Posting):
    return quantize(posting.total, posting.currency or "USD")
