from django.core.management.base import BaseCommand, CommandError

from connector.chart import refresh_all, refresh_chart
from connector.models import Tenant


class Command(BaseCommand):
    help = "Read the chart of accounts from Sage X3 (the tenant's method) and cache it; exit 1 if a refresh failed."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", help="tenant slug; all active tenants when omitted")

    def handle(self, *args, tenant: str | None = None, **options) -> None:
        if tenant:
            found = Tenant.objects.select_related("x3").filter(slug=tenant).first()
            if found is None:
                raise CommandError(f"No tenant {tenant!r}")
            results = [refresh_chart(found)]
        else:
            results = refresh_all()
        for result in results:
            (self.stdout if result.ok else self.stderr).write(str(result))
        if any(not r.ok for r in results):
            raise CommandError("chart of accounts refresh failed")
