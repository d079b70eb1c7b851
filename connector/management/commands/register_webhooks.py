"""Create or update the tenant's BigCommerce webhooks so they point at this deployment."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from connector.hooks import register_webhooks, webhook_destination
from connector.models import Tenant
from integrations.errors import IntegrationError


class Command(BaseCommand):
    help = (
        "Register (or re-activate and update) the order webhooks of a tenant's store, pointing at "
        "BASE_URL/webhooks/bigcommerce/<slug>/, with the custom secret header when that scheme is enabled."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--base-url", required=True, help="Public HTTPS base URL of this deployment")

    def handle(self, *args, tenant: str, base_url: str, **options) -> None:
        t = Tenant.objects.select_related("bigcommerce").filter(slug=tenant).first()
        if t is None:
            raise CommandError(f"No tenant {tenant!r}")
        try:
            for line in register_webhooks(t, base_url):
                self.stdout.write(line)
        except IntegrationError as exc:
            raise CommandError(f"BigCommerce: {exc.message}") from exc
        destination = webhook_destination(t, base_url)
        self.stdout.write(self.style.SUCCESS(f"Webhooks point at {destination}"))
