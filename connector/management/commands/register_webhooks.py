"""Create or update the tenant's BigCommerce webhooks so they point at this deployment."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.management.base import CommandError

from connector.hooks import register_webhooks, webhook_destination
from connector.management.base import ConnectorCommand, tenant_by_slug, usage_error
from integrations.errors import IntegrationError


class Command(ConnectorCommand):
    help = (
        "Register (or re-activate and update) the order webhooks of a tenant's store, pointing at "
        "BASE_URL/webhooks/bigcommerce/<slug>/, with the custom secret header when that scheme is enabled."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--tenant", required=True)
        parser.add_argument("--base-url", required=True, help="Public HTTPS base URL of this deployment")

    def handle(self, *args, tenant: str, base_url: str, **options) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("https", "http") or not url.netloc:
            raise usage_error(
                f"--base-url {base_url!r} is not a URL: give the public https:// address of this deployment, e.g. "
                "https://connector.example.com"
            )
        t = tenant_by_slug(tenant, "bigcommerce")
        try:
            for line in register_webhooks(t, base_url):
                self.stdout.write(line)
        except IntegrationError as exc:
            raise CommandError(f"BigCommerce: {exc.message}") from exc
        destination = webhook_destination(t, base_url)
        self.stdout.write(self.style.SUCCESS(f"Webhooks point at {destination}"))
