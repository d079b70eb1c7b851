"""Register (or re-activate) a tenant's BigCommerce order webhooks so they point at this deployment.

Used by ``manage.py register_webhooks`` and step 9 of the guided setup. Raises ``IntegrationError`` for a
BigCommerce failure; the caller words it.
"""

from __future__ import annotations

from . import clients
from .intake import ORDER_SCOPES
from .models import Tenant


def webhook_destination(tenant: Tenant, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/webhooks/bigcommerce/{tenant.slug}/"


def register_webhooks(tenant: Tenant, base_url: str) -> list[str]:
    """Create the missing order hooks and re-activate (and update) existing ones; one line per scope."""
    destination = webhook_destination(tenant, base_url)
    store = tenant.bigcommerce
    headers = (
        {store.webhook_header_name: store.webhook_header_value}
        if store.accept_custom_header and store.webhook_header_name and store.webhook_header_value
        else None
    )
    client = clients.bigcommerce_client(tenant)
    existing = {h.scope: h for h in client.list_hooks() if h.destination == destination}
    done = []
    for scope in sorted(ORDER_SCOPES):
        hook = existing.get(scope)
        if hook is None:
            client.create_hook(scope=scope, destination=destination, headers=headers, is_active=True)
            done.append(f"created {scope}")
        else:
            client.update_hook(hook.id, is_active=True, headers=headers or {})
            done.append(f"updated {scope} (hook {hook.id}, active)")
    return done
