"""Walk each tenant's tamper-evident audit chain and report the first broken link (exit code 1 if any)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from accounting.audit_chain import verify_all
from connector.models import Tenant


class Command(BaseCommand):
    help = (
        "Verify the SHA-256 chain of every history and X3-call record, per tenant: report the first record that "
        "was changed, deleted or inserted afterwards. Exit code 0 if intact, 1 if broken. The result is kept for "
        "the admin (Postings page)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", help="Tenant slug (default: every tenant)")
        parser.add_argument(
            "--anchor",
            metavar="POSITION:HASH",
            help="With --tenant: a head printed by an earlier run (kept outside the database); the record at that "
            "position must still have that hash",
        )

    def handle(self, *args, tenant: str | None = None, anchor: str | None = None, **options) -> None:
        tenants, expected = None, None
        if anchor:
            position, _, digest = anchor.partition(":")
            if not tenant or not position.isdigit() or len(digest) != 64:
                raise CommandError("--anchor needs --tenant and the form POSITION:HASH (64 hex digits)")
            expected = (int(position), digest.lower())
        if tenant:
            tenants = list(Tenant.objects.filter(slug=tenant))
            if not tenants:
                raise CommandError(f"No tenant with slug {tenant!r}")
        results = verify_all(tenants, expected)
        for result in results:
            write = self.stdout.write if result.intact else self.stderr.write
            write(str(result))
        broken = [r for r in results if not r.intact]
        total = sum(r.records for r in results)
        if broken:
            raise CommandError(
                f"Audit chain broken for {len(broken)} of {len(results)} tenant(s) ({total} records verified)",
                returncode=1,
            )
        self.stdout.write(f"Audit chain intact: {total} records verified for {len(results)} tenant(s)")
