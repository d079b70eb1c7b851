from django.core.management.base import CommandError

from connector.chart import refresh_chart, tenants_to_refresh
from connector.management.base import ConnectorCommand, tenant_by_slug
from connector.management.progress import Progress, add_progress_arguments


class Command(ConnectorCommand):
    help = "Read the chart of accounts from Sage X3 (the tenant's method) and cache it; exit 1 if a refresh failed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", help="tenant slug; all active tenants when omitted")
        add_progress_arguments(parser)

    def handle(self, *args, tenant: str | None = None, **options) -> None:
        tenants = [tenant_by_slug(tenant, "x3")] if tenant else list(tenants_to_refresh())
        progress = Progress.of(self, options)
        results = []
        for t in progress.bar(tenants, desc="Reading charts of accounts", unit="tenant"):
            result = refresh_chart(t)
            progress.note(str(result), self.stdout if result.ok else self.stderr)
            results.append(result)
        failed = [r for r in results if not r.ok]
        if failed:
            raise CommandError(
                f"chart of accounts refresh failed for {len(failed)} of {len(results)} tenant(s)"
            )
