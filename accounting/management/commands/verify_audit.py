"""Walk each tenant's tamper-evident audit chain and report the first broken link (exit code 1 if any)."""

from __future__ import annotations

from django.core.management.base import CommandError

from accounting.audit_chain import verify_all
from connector.management.base import ConnectorCommand, tenant_by_slug, usage_error
from connector.management.progress import Progress, add_progress_arguments
from connector.models import Tenant


class Command(ConnectorCommand):
    help = (
        "Verify the SHA-256 chain of every history and X3-call record, per tenant: report the first record that "
        "was changed, deleted or inserted afterwards. Exit code 0 if intact, 1 if broken, 2 for bad input. The "
        "result is kept for the admin (Postings page)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", help="Tenant slug (default: every tenant)")
        parser.add_argument(
            "--anchor",
            metavar="POSITION:HASH",
            help="With --tenant: a head printed by an earlier run (kept outside the database); the record at that "
            "position must still have that hash",
        )
        add_progress_arguments(parser)

    def handle(self, *args, tenant: str | None = None, anchor: str | None = None, **options) -> None:
        expected = None
        if anchor:
            position, _, digest = anchor.partition(":")
            if not tenant or not position.isdigit() or len(digest) != 64:
                raise usage_error("--anchor needs --tenant and the form POSITION:HASH (64 hex digits)")
            expected = (int(position), digest.lower())
        tenants = [tenant_by_slug(tenant)] if tenant else list(Tenant.objects.order_by("slug"))
        progress = Progress.of(self, options)
        results = []
        for t in progress.bar(tenants, desc="Verifying audit chains", unit="tenant"):
            (result,) = verify_all([t], expected)
            progress.note(str(result), self.stdout if result.intact else self.stderr)
            results.append(result)
        broken = [r for r in results if not r.intact]
        total = sum(r.records for r in results)
        if broken:
            raise CommandError(
                f"Audit chain broken for {len(broken)} of {len(results)} tenant(s) ({total} records verified)",
                returncode=1,
            )
        self.stdout.write(f"Audit chain intact: {total} records verified for {len(results)} tenant(s)")
