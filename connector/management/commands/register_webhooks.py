"""Create or update the tenant's BigCommerce webhooks so they point at this deployment."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.core.management.base import CommandError

from connector.clients import bigcommerce_client
from connector.intake import ORDER_SCOPES
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
        destination = f"{base_url.rstrip('/')}/webhooks/bigcommerce/{t.slug}/"
        store = t.bigcommerce
        headers = (
            {store.webhook_header_name: store.webhook_header_value}
            if store.accept_custom_header and store.webhook_header_name and store.webhook_header_value
            else None
        )
        client = bigcommerce_client(t)
        try:
            existing = {h.scope: h for h in client.list_hooks() if h.destination == destination}
            for scope in sorted(ORDER_SCOPES):
                hook = existing.get(scope)
                if hook is None:
                    client.create_hook(scope=scope, destination=destination, headers=headers, is_active=True)
                    self.stdout.write(f"created {scope}")
                else:
                    client.update_hook(hook.id, is_active=True, headers=headers or {})
                    self.stdout.write(f"updated {scope} (hook {hook.id}, active)")
        except IntegrationError as exc:
            raise CommandError(f"BigCommerce: {exc.message}") from exc
        self.stdout.write(self.style.SUCCESS(f"Webhooks point at {destination}"))
