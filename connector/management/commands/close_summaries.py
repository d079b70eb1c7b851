from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from connector.models import Tenant
from connector.summaries import close_day_now, close_due_days, tenant_zone


class Command(BaseCommand):
    help = (
        "Daily summary mode: build the summaries of every closed day that has entries waiting, and queue them "
        "(also runs every few minutes in the cluster; running it again changes nothing). With --day: build that "
        "day's summaries now, even before the day is over (a demo and operator tool: entries of that day that "
        "arrive later go into the day's next summary)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--day",
            help="close this day now: YYYY-MM-DD, or 'today' (the tenant's business time zone; needs --tenant)",
        )
        parser.add_argument("--tenant", help="tenant slug (with --day: only this tenant)")

    def handle(self, *args, **options) -> None:
        day_text, slug = options.get("day"), options.get("tenant")
        if not day_text:
            if slug:
                raise CommandError(
                    "--tenant goes with --day; without --day every tenant's closed days are closed"
                )
            self.stdout.write(close_due_days())
            return
        tenant = None
        if slug:
            tenant = Tenant.objects.select_related("x3", "bigcommerce").filter(slug=slug).first()
            if tenant is None:
                raise CommandError(f"No tenant {slug!r}. Check the slug on the Tenants page.")
        if day_text == "today":
            if tenant is None:
                raise CommandError(
                    "--day today needs --tenant: 'today' is in the tenant's business time zone"
                )
            day = timezone.localdate(timezone.now(), tenant_zone(tenant))
        else:
            try:
                day = date.fromisoformat(day_text)
            except ValueError:
                raise CommandError(f"--day {day_text!r}: give a date as YYYY-MM-DD, or 'today'") from None
        self.stdout.write(f"{day.isoformat()}: {close_day_now(day, tenant=tenant)}")
